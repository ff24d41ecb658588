"""Serve the fake monitoring API for the benchmarks, on loopback.

``python -m benchmarks.children.fixture PROJECTS TABLES PORT
PASSING_EVERY``: a dataset of PROJECTS x TABLES tables; with
PASSING_EVERY > 0, one table in that many is CREATING or DELETING and
every other one ACTIVE (the statuses whose tables the stuck clock
remembers). ``POST .../_bench/next`` moves to the next generation (see
:func:`next_generation`). Serves until killed.
"""

import sys
import time

from magnetodb_statsd_middleware.demo import fakeapi
from tests.support import peers

# Longer than any benchmark run: the parent kills the server when done.
SERVE_SECONDS = 7200


def next_generation(dataset):
    """Every value one more: the next cycle's gauges all differ."""
    for tables in dataset.values():
        for table in tables:
            table.size += 1
            table.item_count += 1


def build(projects, tables, passing_every=0):
    """The dataset served, before any :func:`next_generation`."""
    dataset = fakeapi.build_dataset(projects=projects, tables=tables)
    if passing_every:
        for index, project in enumerate(sorted(dataset)):
            for number, table in enumerate(dataset[project]):
                table.status = 'ACTIVE'
                if number % passing_every == 0:
                    table.status = ('CREATING', 'DELETING')[index % 2]
    return dataset


def main(projects, tables, port, passing_every):
    dataset = build(int(projects), int(tables), int(passing_every))
    api = fakeapi.FakeMonitoringAPI(dataset)

    def app(environ, start_response):
        if environ['PATH_INFO'].endswith('/_bench/next'):
            next_generation(dataset)
            api.load(dataset)
            start_response('200 OK', [('Content-Type', 'text/plain')])
            return [b'ok']
        return api(environ, start_response)

    peers.LoopbackServer(app, port=int(port))
    time.sleep(SERVE_SECONDS)


if __name__ == '__main__':
    main(*sys.argv[1:5])
