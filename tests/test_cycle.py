"""One cycle end to end over loopback: listed projects, failures, totals."""

import peers
from magnetodb_statsd_middleware import cycle
from magnetodb_statsd_middleware import fakeapi
from magnetodb_statsd_middleware import outages


def _gauges(udp):
    udp.drain()
    return {line.split(':')[0]: int(line.split(':')[1].split('|')[0])
            for line in udp.lines if line.endswith('|g')}


def test_listed_projects_are_read_one_by_one_and_totalled(serve, udp):
    dataset = fakeapi.build_dataset(projects=4, tables=30)
    app = fakeapi.FakeMonitoringAPI(dataset)
    server = serve(app)
    chosen = sorted(dataset)[:2]
    result = cycle.run_cycle(peers.make_settings(
        monitoring_url=server.url, statsd_port=udp.port,
        projects=tuple(chosen)), outages.OutageLog())
    assert result.completed and app.listing_requests == 0
    gauges = _gauges(udp)
    active = {p: [t for t in dataset[p] if t.status == 'ACTIVE']
              for p in chosen}
    assert gauges['magnetodb.totals.projects'] == 2
    assert gauges['magnetodb.totals.size'] == sum(
        t.size for tables in active.values() for t in tables)
    for project in chosen:
        assert gauges['magnetodb.projects.%s.tables' % project] == len(
            active[project])
    assert not [name for name in gauges if sorted(dataset)[3] in name]


def test_a_failed_listed_project_withholds_the_totals_only(serve, udp):
    dataset = fakeapi.build_dataset(projects=2, tables=5)
    server = serve(fakeapi.FakeMonitoringAPI(dataset))
    good = sorted(dataset)[0]
    result = cycle.run_cycle(peers.make_settings(
        monitoring_url=server.url, statsd_port=udp.port,
        projects=(good, 'no/such:project')),
        outages.OutageLog())
    gauges = _gauges(udp)
    assert not result.completed
    assert 'magnetodb.projects.%s.tables' % good in gauges
    assert not [name for name in gauges if '.totals.' in name]
    assert gauges['magnetodb.collector.tables'] == 5
