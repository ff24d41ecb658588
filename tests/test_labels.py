# -*- coding: utf-8 -*-
"""Labeled metrics at the real Etsy statsd 0.9 daemon.

The daemon turns DogStatsD tags into Graphite 1.1 tags: it keys
``name:n|g|#k1:v1,k2:v2`` as ``name;k1=v1;k2=v2``, the very key that a
``graphite``-dialect line carries itself. Both are read back through the
management port and compared with the data: hostile names must neither
inject a line, nor make a bad line, nor merge two series.
"""

import pytest

from magnetodb_statsd_middleware import cycle
from magnetodb_statsd_middleware import outages
from magnetodb_statsd_middleware.demo import fakeapi
from tests.support import peers

HOSTILE_TABLES = [
    u'new\nline', u'a,b', u'a=b', u'a:b', u'a|b', u'a#b', u'a;b', u'a[b]',
    u'a b', u'caf\u00e9', u'\u8868', u'UPPER', u'Orders', u'orders',
    u'x' * 255, u'x' * 254 + u'y', u'my.table', u'my_table',
    u'x:1|c\nevil:2|g', u'|#project:other', u'%s', u'\u0130',
]
USER = (('cloud', 'prod'), ('region', 'r1'))


def _hostile_dataset(prefix):
    """Three projects of hostile tables, one of which would inject a line
    under the test's own prefix if anything let it through."""
    names = HOSTILE_TABLES + [u'x:1|g\n%s.injected:1|g' % prefix]
    dataset = {}
    for number, project in enumerate([u'0a1b2c3d4e5f', u'Proj.One',
                                      u'proj\u00e9']):
        tables = [fakeapi.Table(name, 'ACTIVE', 1000 * (i + 1) + number,
                                10 * i + number)
                  for i, name in enumerate(names)]
        tables.append(fakeapi.Table(u'Creating.Now', 'CREATING'))
        dataset[project] = tables
    return dataset


@pytest.mark.parametrize('mode', ['dogstatsd', 'graphite'])
def test_hostile_names_reach_statsd_as_tags(serve, statsd_daemon, prefix,
                                            mode):
    dataset = _hostile_dataset(prefix)
    api = serve(fakeapi.FakeMonitoringAPI(dataset))
    health = serve(fakeapi.FakeHealthCheck())
    bad_before = statsd_daemon.bad_lines()
    result = cycle.run_cycle(peers.make_settings(
        monitoring_url=api.url, statsd_port=statsd_daemon.port,
        metric_prefix=prefix, label_mode=mode, user_labels=USER,
        healthcheck_url='http://127.0.0.1:%d/healthcheck?fullcheck=true'
        % health.port, host_name=u'API-Host.1'), outages.OutageLog())
    assert result.completed, result.error
    lower = mode == 'dogstatsd'
    expected = peers.expected_labeled(dataset, prefix, lower, USER,
                                      mode=mode)
    tables = len(HOSTILE_TABLES) + 1
    # Per project: tables and sums, 5 statuses, stuck; totals likewise.
    assert len(expected) == 3 * (2 * tables + 3 + 5 + 1) + 4 + 5 + 1

    def label(raw):
        return peers.expected_label(raw, lower)

    for subsystem in ('api', 'identity', 'storage', 'overall'):
        expected[peers.graphite_key(prefix + '.health', dict(
            USER, host=label(u'API-Host.1'), subsystem=subsystem))] = 1
    collector = prefix + '.collector.'
    gauges = peers.wait_for(lambda: statsd_daemon.gauges(prefix + '.'),
                            message='the gauges')

    def arrived():
        gauges.update(statsd_daemon.gauges(prefix + '.'))
        return all(k in gauges for k in expected) and any(
            k.startswith(collector + 'last_success;') for k in gauges)
    peers.wait_for(arrived, message='every gauge of the cycle')
    data = dict((k, v) for k, v in gauges.items()
                if not k.startswith(collector))
    assert data == expected  # nothing injected, merged or missing
    assert statsd_daemon.bad_lines() == bad_before
    user = ''.join(';%s=%s' % item for item in USER)
    assert gauges[collector + 'tables' + user] == 3 * (tables + 1)
    assert gauges[collector + 'tables_sent' + user] == 3 * tables
    assert gauges[collector + 'tables_omitted' + user] == 0
    counters = statsd_daemon.counters(collector)
    assert counters[collector + 'cycles_completed' + user] == 1
    assert collector + 'cycle_duration' + user in statsd_daemon.command(
        'timers')


def test_a_labeled_top_n_through_the_paste_pipeline(api_server,
                                                    statsd_daemon, prefix,
                                                    tmp_path):
    """MagnetoDB-shaped paste ini, options in its oslo.config file."""
    dataset = fakeapi.build_dataset(projects=20, tables=30, seed=4)
    active = [(t.size, p, t.name) for p, rows in dataset.items()
              for t in rows if t.status == 'ACTIVE']
    top = set((p, name) for _, p, name in sorted(active, reverse=True)[:25])
    expected = peers.expected_labeled(dataset, prefix, True, USER,
                                      tables=top)
    api_server(peers.statsd_section(**peers.statsd_options(
        statsd_daemon.port, prefix, interval=60,
        lock_path=tmp_path / 'statsd.lock', label_mode='dogstatsd',
        user_labels='region:r1,cloud:prod', top_tables=25,
        exclude_projects='no-such-project')),
        fixture_options='projects = 20\ntables = 30\nseed = 4')
    collector = prefix + '.collector.'
    peers.wait_for(lambda: statsd_daemon.counters(collector),
                   message='a completed cycle')
    statsd_daemon.wait_for_gauges(prefix, expected)
    gauges = statsd_daemon.gauges(prefix + '.')
    user = ';cloud=prod;region=r1'
    assert gauges[collector + 'tables_sent' + user] == 25
    assert gauges[collector + 'tables_omitted' + user] == len(active) - 25
