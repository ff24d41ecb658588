"""Gnocchi's indexer and storage, driven for the tests.

Run by tests/support/gnocchi_peer.py with Debian's ``/usr/bin/python3 -I``
(the interpreter python3-gnocchi is packaged for, isolated from the tests'
virtualenv), with the peer's own Gnocchi configuration file:

``gnocchi_store.py CONFIG policy NAME``
    creates the archive policy NAME: 1 s granularity, aggregation ``last``
    (the value a gauge held, whatever arrived before it in its second).
``gnocchi_store.py CONFIG read RESOURCE_ID``
    processes the measures gnocchi-statsd added, as gnocchi-metricd would,
    and prints ``{metric name: last stored value}`` of the resource's
    metrics as one JSON object.
"""

import json
import logging
import sys
import uuid

import numpy
from gnocchi import archive_policy
from gnocchi import chef
from gnocchi import incoming
from gnocchi import indexer
from gnocchi import service
from gnocchi import storage
from gnocchi.cli import metricd

GRANULARITY = numpy.timedelta64(1, 's')


def create_policy(conf, name):
    indexer.get_driver(conf).create_archive_policy(
        archive_policy.ArchivePolicy(
            name, 0, [archive_policy.ArchivePolicyItem(
                granularity=GRANULARITY, points=3600)],
            aggregation_methods=['last']))


def read(conf, resource_id):
    index = indexer.get_driver(conf)
    metrics = index.get_resource('generic', uuid.UUID(resource_id),
                                 with_metrics=True).metrics
    store = storage.get_driver(conf)
    measures = incoming.get_driver(conf)
    # As the REST API's refresh: only the metrics with new measures (the
    # processing of a metric without any fails).
    unprocessed = [metric for metric in metrics
                   if measures.has_unprocessed(metric.id)]
    if unprocessed:
        coordinator = metricd.get_coordinator_and_start(
            str(uuid.uuid4()), conf.coordination_url)
        try:
            chef.Chef(coordinator, measures, index, store).refresh_metrics(
                unprocessed, timeout=30, sync=True)
        finally:
            coordinator.stop()
    aggregations = dict(
        (metric, [metric.archive_policy.get_aggregation('last',
                                                        GRANULARITY)])
        for metric in metrics)
    values = {}
    for metric, series in store.get_aggregated_measures(
            aggregations).items():
        for points in series.values():
            if len(points):
                values[metric.name] = float(points['values'][-1])
    return values


def main(path, command, argument):
    conf = service.prepare_service(args=['--config-file', path],
                                   logging_level=logging.ERROR,
                                   skip_log_opts=True)
    if command == 'policy':
        create_policy(conf, argument)
    else:
        json.dump(read(conf, argument), sys.stdout)


if __name__ == '__main__':
    main(*sys.argv[1:])
