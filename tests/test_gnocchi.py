# -*- coding: utf-8 -*-
"""Gnocchi: the collector's lines stored by Gnocchi's own statsd daemon.

Debian's gnocchi-statsd runs with a private PostgreSQL indexer and a file
storage (tests/support/gnocchi_peer.py), one for the module. It stores
each gauge as the Gnocchi metric ``<name>|g`` in a 255-character column:
fed with the long-names dataset (every length of table name up to 255,
shared prefixes, digits first, upper case, non-ASCII) through a served
pipeline, every table's two gauges and every project's and total's must
be stored under names of their own with the served values, no name
refused, no datagram lost, in the default mode and in a dialect that
writes its labels into the name.
"""

import pytest

from magnetodb_statsd_middleware import cycle
from magnetodb_statsd_middleware import outages
from magnetodb_statsd_middleware.demo import fakeapi
from tests.support import gnocchi_peer
from tests.support import peers

USER = (('region', 'r1'),)
# Datagrams a second that gnocchi-statsd takes without losing any while it
# creates the metrics of a first cycle (doc/source/receivers/gnocchi.rst:
# it lost some at 100 a second on a busy machine).
SEND_RATE = 50


@pytest.fixture(scope='module')
def gnocchi(tmp_path_factory):
    daemon = gnocchi_peer.Gnocchi(str(tmp_path_factory.mktemp('gnocchi')))
    yield daemon
    daemon.stop()


def _data(gauges):
    return dict((name, value) for name, value in gauges.items()
                if '.collector.' not in name and not name.endswith('.sent'))


@pytest.mark.parametrize('mode', ['disabled', 'graphite'])
def test_every_table_right_through_a_served_pipeline(gnocchi, api_server,
                                                     prefix, tmp_path, mode):
    """The filter in a running API server, default ``max_name_length``
    (253): with ``|g``, every name fits Gnocchi's 255 characters."""
    dataset = fakeapi.build_long_names_dataset()
    if mode == 'disabled':
        expected = peers.expected_gauges(dataset, prefix)
        labels = {}
    else:
        expected = peers.expected_labeled(dataset, prefix, False, USER,
                                          mode=mode)
        labels = dict(label_mode=mode, user_labels='region:r1')
    assert max(len(name) for name in expected) == 253
    dropped = gnocchi.dropped()
    api_server(peers.statsd_section(**peers.statsd_options(
        gnocchi.port, prefix, labels, interval=10, initial_delay=0.5,
        send_rate=SEND_RATE, lock_path=tmp_path / 'statsd.lock')),
        fixture_options='long_names = true')

    def arrived():
        data = _data(gnocchi.gauges(prefix + '.'))
        return all(data.get(k) == v for k, v in expected.items()) and data
    # Each read processes what the daemon stored: not too often, so as
    # not to compete with it for the machine.
    data = peers.wait_for(arrived, timeout=90, interval=2,
                          message='every gauge in Gnocchi')
    assert data == expected  # one metric per name: nothing merged or stray
    assert not gnocchi.refused(prefix + '.')
    assert gnocchi.dropped() == dropped  # no datagram lost in a burst
    assert [name for name in gnocchi.gauges(prefix + '.collector.tables')]
    assert gnocchi.version.startswith('4.4.2')
    assert 'PostgreSQL' in gnocchi.postgresql.version


def _cycle(serve, gnocchi, prefix, dataset, **options):
    """One in-process cycle to Gnocchi; returns what it stored once every
    datagram of the cycle was read (a marker sent after them)."""
    api = serve(fakeapi.FakeMonitoringAPI(dataset))
    result = cycle.run_cycle(peers.make_settings(
        monitoring_url=api.url, statsd_port=gnocchi.port,
        metric_prefix=prefix, send_rate=SEND_RATE, **options),
        outages.OutageLog())
    assert result.completed, result.error
    marker = prefix + '.sent'
    peers.send_udp(gnocchi.port, [marker + ':1|g'])
    return peers.wait_for(
        lambda: [g for g in [gnocchi.gauges(prefix + '.')] if marker in g],
        timeout=60, interval=2, message='the cycle in Gnocchi')[0]


def test_longer_names_are_refused_at_every_flush(gnocchi, serve, prefix):
    """Why 253: with 255, the names of 254 and 255 characters do not fit
    Gnocchi's column once ``|g`` is added, and it logs the refusal."""
    dataset = fakeapi.build_long_names_dataset()
    expected = peers.expected_gauges(dataset, prefix, max_length=255)
    too_long = set(name for name in expected if len(name) > 253)
    assert too_long
    data = _data(_cycle(serve, gnocchi, prefix, dataset,
                        max_name_length=255))
    assert data == dict((name, value) for name, value in expected.items()
                        if name not in too_long)
    assert gnocchi.refused(prefix + '.') == too_long
    assert 'value too long for type character varying(255)' in gnocchi.log


def test_values_are_doubles(gnocchi, prefix):
    """Gnocchi stores float64: a total above 2**53 loses its last digits
    (doc/source/receivers/gnocchi.rst says so)."""
    name = prefix + '.totals.size'
    peers.send_udp(gnocchi.port, ['%s:%d|g' % (name, 2 ** 53 + 1)])
    stored = peers.wait_for(lambda: gnocchi.gauges(name), timeout=30,
                            interval=1, message='the gauge in Gnocchi')
    assert stored == {name: float(2 ** 53)}


@pytest.mark.parametrize('mode', ['dogstatsd', 'monasca'])
def test_tags_after_the_type_lose_the_datagram(gnocchi, serve, prefix, mode):
    """gnocchi-statsd reads ``|#...`` as a sample rate, fails outside its
    error handling, and loses that line and the rest of its datagram:
    no labeled gauge of these dialects is stored (at most a total without
    labels that happens to open a datagram)."""
    dataset = fakeapi.build_dataset(projects=2, tables=4, seed=5)
    data = _data(_cycle(serve, gnocchi, prefix, dataset, label_mode=mode,
                        user_labels=USER))
    unlabeled = set('%s.total.%s' % (prefix, name) for name in (
        'size', 'item_count', 'tables', 'projects', 'stuck'))
    assert set(data) <= unlabeled
    assert 'could not convert string to float' in gnocchi.log
