"""Tables by status and stuck tables, cycle after cycle, through the real
Etsy statsd daemon: the scenario of tests/support/status_scenario.py (run
against MagnetoDB itself too) against the fixture API, in dotted names and
with labels. The collector's clock is moved by the test, not waited
for."""

import logging

import pytest

from magnetodb_statsd_middleware import cycle
from magnetodb_statsd_middleware import outages
from magnetodb_statsd_middleware import stuck
from magnetodb_statsd_middleware.demo import fakeapi
from tests.support import peers
from tests.support import status_scenario as scenario

STUCK_AFTER = 60


class Clock(object):
    """The collector's time source, moved by the test."""

    def __init__(self):
        self.now = 5000.0

    def __call__(self):
        return self.now


def _dataset(tables):
    """The scenario's tables as the fixture API serves them."""
    return dict((project, [fakeapi.Table(*row) for row in rows])
                for project, rows in tables.items())


class Collector(object):
    """One collector's cycles against the fixture API, with its clock."""

    def __init__(self, serve, daemon, prefix, **options):
        self.app = fakeapi.FakeMonitoringAPI(_dataset(scenario.TABLES))
        self.settings = peers.make_settings(
            monitoring_url=serve(self.app).url, statsd_port=daemon.port,
            metric_prefix=prefix, stuck_after=STUCK_AFTER, **options)
        self.time = Clock()
        self.clock = stuck.StuckClock(STUCK_AFTER, self.time)

    def cycle(self, after, tables=None):
        """Serve ``tables`` (if given), move the clock ``after`` seconds
        on, run a cycle."""
        if tables is not None:
            self.app.load(_dataset(tables))
        self.time.now += after
        result = cycle.run_cycle(self.settings, outages.OutageLog(),
                                 clock=self.clock)
        assert result.completed, result.error


def _wait_for(daemon, prefix, expected):
    """StatsD holds ``expected`` (the status gauges under ``prefix``)."""
    return daemon.wait_for_gauges(prefix, expected,
                                  where=scenario.status_gauge, timeout=10,
                                  interval=0.05)


# Seconds the clock moves on before each step's cycle: just before
# stuck_after, then just past it.
MOVES = {'start': 0, 'in time': STUCK_AFTER - 1, 'past': 2, 'later': 30}


def test_transitions_through_statsd(serve, statsd_daemon, prefix, caplog):
    bad_lines = statsd_daemon.bad_lines()
    collector = Collector(serve, statsd_daemon, prefix)
    for step, tables in scenario.steps():
        collector.cycle(MOVES[step.when], tables)
        found = _wait_for(statsd_daemon, prefix,
                          scenario.expected(tables, prefix, step))
        scenario.check(found, prefix, step)
    assert statsd_daemon.bad_lines() == bad_lines
    loud = logging.getLevelName(scenario.LOUDEST_LEVEL)
    assert [r.getMessage() for r in caplog.records
            if r.name.startswith('magnetodb_statsd_middleware')
            and r.levelno > loud] == []


@pytest.mark.parametrize('mode', ['dogstatsd', 'graphite'])
def test_labeled_and_legacy_spellings(serve, statsd_daemon, prefix, mode):
    collector = Collector(serve, statsd_daemon, prefix, label_mode=mode,
                          emit_legacy=True)
    steps = scenario.steps()
    for when in ('start', 'in time', 'past'):  # the scenario's first steps
        step, tables = next(steps)
        assert step.when == when
        collector.cycle(MOVES[when], tables)
    stuck_tables = [(scenario.STATUS, name) for name in step.stuck]
    expected = peers.expected_gauges(tables, prefix, stuck=stuck_tables)
    expected.update(peers.expected_labeled(
        tables, prefix, mode == 'dogstatsd', stuck=stuck_tables))
    found = _wait_for(statsd_daemon, prefix,
                      scenario.status_gauges(expected))
    assert found[peers.graphite_key(prefix + '.project.tables_by_status', {
        'project': 'p-status', 'status': 'create_failed'})] == 1
    assert found[peers.graphite_key(prefix + '.total.stuck', {})] == 2
