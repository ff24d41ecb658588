# -*- coding: utf-8 -*-
"""collectd: the collector's dotted names read by collectd's statsd plugin.

collectd (Debian's collectd-core) runs in the foreground with its statsd
plugin and a csv writer that the test reads back. It keeps 127 characters
of a name and merges what differs after them; with ``max_name_length =
127`` every table of the long-names dataset (every length up to 255,
names differing only after character 127, shared prefixes, digits first,
upper case, non-ASCII) must be its own identifier with its own value.
"""

import pytest

from magnetodb_statsd_middleware import cycle
from magnetodb_statsd_middleware import outages
from magnetodb_statsd_middleware.demo import fakeapi
from tests.support import collectd_peer
from tests.support import peers


@pytest.fixture
def collectd(tmp_path):
    daemon = collectd_peer.Collectd(str(tmp_path))
    yield daemon
    daemon.stop()


def _data(gauges):
    return dict((name, value) for name, value in gauges.items()
                if '.collector.' not in name and not name.endswith('.sent'))


def test_every_table_right_with_127_characters(collectd, api_server, prefix,
                                               tmp_path):
    """The filter in a running API server, ``max_name_length = 127``."""
    dataset = fakeapi.build_long_names_dataset()
    expected = peers.expected_gauges(dataset, prefix, max_length=127)
    assert max(len(name) for name in expected) == 127
    api_server(peers.statsd_section(**peers.statsd_options(
        collectd.port, prefix, interval=2, initial_delay=0.5,
        lock_path=tmp_path / 'statsd.lock', max_name_length=127)),
        fixture_options='long_names = true')

    def arrived():
        data = _data(collectd.gauges(prefix + '.'))
        return all(data.get(k) == v for k, v in expected.items()) and data
    data = peers.wait_for(arrived, timeout=60, interval=0.5,
                          message='every gauge in collectd')
    assert data == expected  # one identifier per name: nothing merged
    assert 'Unable to parse' not in collectd.log
    assert collectd.gauges(prefix + '.collector.tables')
    assert collectd.version.startswith('collectd 5.12')


def test_longer_names_are_merged_without_a_word(collectd, serve, prefix):
    """Why 127: with the default 253, collectd cuts the names and the
    tables (and a table's size and item count) that share their first 127
    characters overwrite each other."""
    dataset = fakeapi.build_long_names_dataset()
    expected = peers.expected_gauges(dataset, prefix)
    merged = {}
    for name, value in expected.items():
        merged.setdefault(name[:127], set()).add(value)
    assert len(merged) < len(expected)
    api = serve(fakeapi.FakeMonitoringAPI(dataset))
    result = cycle.run_cycle(peers.make_settings(
        monitoring_url=api.url, statsd_port=collectd.port,
        metric_prefix=prefix), outages.OutageLog())
    assert result.completed, result.error
    marker = prefix + '.sent'
    peers.send_udp(collectd.port, [marker + ':1|g'])

    def arrived():
        gauges = collectd.gauges(prefix + '.')
        data = _data(gauges)
        return marker in gauges and set(data) == set(merged) and data
    data = peers.wait_for(arrived, timeout=30, interval=0.5,
                          message='the cycle in collectd')
    # Each identifier holds one of the values sent under it; the others
    # are lost.
    assert all(value in merged[name] for name, value in data.items())
    assert 'Unable to parse' not in collectd.log


@pytest.mark.parametrize('mode', ['dogstatsd', 'monasca'])
def test_tags_after_the_type_are_rejected(collectd, serve, prefix, mode):
    """collectd refuses a gauge line with anything after its type: the
    labeled dialects that put their labels there do not work with it."""
    dataset = fakeapi.build_dataset(projects=1, tables=2, odd_names=False)
    api = serve(fakeapi.FakeMonitoringAPI(dataset))
    result = cycle.run_cycle(peers.make_settings(
        monitoring_url=api.url, statsd_port=collectd.port,
        metric_prefix=prefix, label_mode=mode, user_labels=(('r', 'x'),)),
        outages.OutageLog())
    assert result.completed, result.error
    marker = prefix + '.sent'
    peers.send_udp(collectd.port, [marker + ':1|g'])
    peers.wait_for(lambda: marker in collectd.gauges(prefix + '.'),
                   message='the cycle in collectd')
    assert not _data(collectd.gauges(prefix + '.'))
    assert 'Unable to parse line: "%s.table.size:' % prefix in collectd.log
