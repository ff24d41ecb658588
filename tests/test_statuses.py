"""Tables by status and stuck tables, cycle after cycle, through the real
Etsy statsd daemon: the counts of every status (zeros included, so that a
count that falls to zero reads 0 in a daemon that keeps the last value),
and the stuck clock across transitions, in dotted names and with labels.
The collector's clock is moved by the test, not waited for."""

import pytest

from magnetodb_statsd_middleware import cycle
from magnetodb_statsd_middleware import outages
from magnetodb_statsd_middleware import stuck
from magnetodb_statsd_middleware.demo import fakeapi
from tests.support import peers

STUCK_AFTER = 60


class Clock(object):
    """The collector's time source, moved by the test."""

    def __init__(self):
        self.now = 5000.0

    def __call__(self):
        return self.now


def _dataset():
    """Two projects: one with a table in every status, one all ACTIVE."""
    return {
        'p-status': [fakeapi.Table('slow', 'CREATING'),
                     fakeapi.Table('quick', 'CREATING'),
                     fakeapi.Table('going', 'DELETING'),
                     fakeapi.Table('cf', 'CREATE_FAILED'),
                     fakeapi.Table('df', 'DELETE_FAILED'),
                     fakeapi.Table('t.1', 'ACTIVE', 100, 10)],
        'p-calm': [fakeapi.Table('a', 'ACTIVE', 5, 1),
                   fakeapi.Table('b', 'ACTIVE', 7, 2)]}


def _find(dataset, project, name):
    (table,) = [t for t in dataset[project] if t.name == name]
    return table


class Collector(object):
    """One collector's cycles against the fixture API, with its clock."""

    def __init__(self, serve, daemon, prefix, **options):
        self.dataset = _dataset()
        self.app = fakeapi.FakeMonitoringAPI(self.dataset)
        self.settings = peers.make_settings(
            monitoring_url=serve(self.app).url, statsd_port=daemon.port,
            metric_prefix=prefix, stuck_after=STUCK_AFTER, **options)
        self.time = Clock()
        self.clock = stuck.StuckClock(STUCK_AFTER, self.time)
        self.daemon = daemon
        self.prefix = prefix

    def cycle(self, after):
        """Move the clock ``after`` seconds on, run a cycle."""
        self.time.now += after
        result = cycle.run_cycle(self.settings, outages.OutageLog(),
                                 clock=self.clock)
        assert result.completed, result.error

    def reload(self):
        self.app.load(self.dataset)


def _status_gauges(gauges):
    return dict((name, value) for name, value in gauges.items()
                if '.tables_by_status' in name or name.endswith('.stuck')
                or ';status=' in name or '.stuck;' in name)


def _wait_for(daemon, prefix, expected):
    """StatsD holds ``expected`` (the status gauges under ``prefix``)."""
    def arrived():
        found = _status_gauges(daemon.gauges(prefix + '.'))
        return found if found == expected else None
    try:
        return peers.wait_for(arrived, timeout=10,
                              message='the status gauges')
    except AssertionError:
        assert _status_gauges(daemon.gauges(prefix + '.')) == expected
        raise


def test_transitions_through_statsd(serve, statsd_daemon, prefix):
    bad_lines = statsd_daemon.bad_lines()
    collector = Collector(serve, statsd_daemon, prefix)
    dataset = collector.dataset

    def expect(stuck_tables):
        expected = _status_gauges(peers.expected_gauges(
            dataset, prefix, stuck=stuck_tables))
        _wait_for(statsd_daemon, prefix, expected)
        return expected

    collector.cycle(0)
    first = expect(())
    assert first[prefix + '.projects.p-status.tables_by_status.creating'] \
        == 2
    assert first[prefix + '.projects.p-calm.tables_by_status.deleting'] == 0
    assert first[prefix + '.totals.stuck'] == 0

    # In time: CREATING -> ACTIVE before stuck_after never counts.
    _find(dataset, 'p-status', 'quick').status = 'ACTIVE'
    collector.cycle(STUCK_AFTER - 1)
    expect(())

    # Still CREATING and DELETING past stuck_after: stuck.
    collector.cycle(2)
    both = expect([('p-status', 'slow'), ('p-status', 'going')])
    assert both[prefix + '.totals.stuck'] == 2

    # The DELETING table disappears: no longer counted, deleting reads 0.
    dataset['p-status'].remove(_find(dataset, 'p-status', 'going'))
    collector.reload()
    collector.cycle(30)
    gone = expect([('p-status', 'slow')])
    assert gone[prefix + '.projects.p-status.tables_by_status.deleting'] == 0

    # Once ACTIVE, the stuck table is no longer counted: 0 is sent.
    _find(dataset, 'p-status', 'slow').status = 'ACTIVE'
    collector.cycle(30)
    last = expect(())
    assert last[prefix + '.projects.p-status.stuck'] == 0
    assert last[prefix + '.projects.p-status.tables_by_status.creating'] == 0
    assert last[prefix + '.totals.tables_by_status.create_failed'] == 1
    assert last[prefix + '.totals.tables_by_status.delete_failed'] == 1
    assert statsd_daemon.bad_lines() == bad_lines


@pytest.mark.parametrize('mode', ['dogstatsd', 'graphite'])
def test_labeled_and_legacy_spellings(serve, statsd_daemon, prefix, mode):
    collector = Collector(serve, statsd_daemon, prefix, label_mode=mode,
                          emit_legacy=True)
    collector.cycle(0)
    _find(collector.dataset, 'p-status', 'quick').status = 'ACTIVE'
    collector.cycle(STUCK_AFTER + 1)
    stuck_tables = [('p-status', 'slow'), ('p-status', 'going')]
    expected = peers.expected_gauges(collector.dataset, prefix,
                                     stuck=stuck_tables)
    expected.update(peers.expected_labeled(
        collector.dataset, prefix, mode == 'dogstatsd',
        stuck=stuck_tables))
    found = _wait_for(statsd_daemon, prefix, _status_gauges(expected))
    assert found[peers.graphite_key(prefix + '.project.tables_by_status', {
        'project': 'p-status', 'status': 'create_failed'})] == 1
    assert found[peers.graphite_key(prefix + '.total.stuck', {})] == 2
