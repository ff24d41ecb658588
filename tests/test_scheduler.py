"""The loop: timing, survival, restarts, fork safety, election."""

import logging
import os
import sys
import threading
import time

import pytest

from magnetodb_statsd_middleware import compat
from magnetodb_statsd_middleware import cycle
from magnetodb_statsd_middleware import election
from magnetodb_statsd_middleware import filter as statsd_filter
from magnetodb_statsd_middleware import scheduler
from magnetodb_statsd_middleware.demo import fakeapi
from tests.support import peers


class SlowAPI(fakeapi.FakeMonitoringAPI):
    """Records when listings start and end, and how many overlap."""

    def __init__(self, delay):
        super(SlowAPI, self).__init__(
            fakeapi.build_dataset(projects=1, tables=2))
        self.delay = delay
        self.spans = []
        self.active = 0
        self.most_active = 0
        self._guard = threading.Lock()

    def __call__(self, environ, start_response):
        with self._guard:
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        started = compat.monotonic()
        time.sleep(self.delay)
        try:
            return super(SlowAPI, self).__call__(environ, start_response)
        finally:
            with self._guard:
                self.active -= 1
            self.spans.append((started, compat.monotonic()))


@pytest.fixture
def run_scheduler(udp):
    schedulers = []

    def start(server, **settings):
        settings.setdefault('statsd_port', udp.port)
        instance = scheduler.Scheduler(peers.make_settings(
            monitoring_url=server.url, **settings))
        schedulers.append(instance)
        instance.start()
        return instance

    yield start
    for instance in schedulers:
        instance.stop()


def test_cycles_never_overlap_and_a_long_one_delays_the_next(
        serve, run_scheduler):
    app = SlowAPI(delay=1.5)
    run_scheduler(serve(app), interval=1)
    peers.wait_for(lambda: len(app.spans) >= 3, message='three cycles')
    assert app.most_active == 1
    starts = [start for start, _ in app.spans]
    assert all(b - a >= 1.5 for a, b in zip(starts, starts[1:]))


class RecordedStop(object):
    """A scheduler's stop event that records each wait the loop asks for:
    unlike the wall clock, load cannot stretch those."""

    def __init__(self):
        self._event = threading.Event()
        self.waits = []

    def set(self):
        self._event.set()

    def is_set(self):
        return self._event.is_set()

    def wait(self, timeout=None):
        self.waits.append(timeout)
        return self._event.wait(timeout)


def test_interval_is_between_starts(serve, udp):
    # After each 1.2 s cycle the loop waits what is left of the 2 s
    # interval, 0.8 s at most; a loop that waited a whole interval after
    # each cycle would ask for 2 s. On the wall clock a start may only
    # come later than the interval by the suite's slack.
    interval, delay = 2, 1.2
    app = SlowAPI(delay=delay)
    instance = scheduler.Scheduler(peers.make_settings(
        monitoring_url=serve(app).url, statsd_port=udp.port,
        interval=interval))
    instance._stop = stop = RecordedStop()
    instance.start()
    try:
        peers.wait_for(lambda: len(app.spans) >= 3, message='three cycles')
    finally:
        instance.stop()
    after_cycles = stop.waits[1:3]  # the first one is the initial delay
    assert len(after_cycles) == 2
    assert all(wait <= interval - delay + 0.01 for wait in after_cycles), \
        after_cycles
    starts = [start for start, _ in app.spans]
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert all(1.5 <= gap <= interval + peers.SCHEDULING_SLACK
               for gap in gaps), gaps


def test_initial_delay_is_honoured(serve, run_scheduler):
    app = SlowAPI(delay=0)
    started = compat.monotonic()
    run_scheduler(serve(app), initial_delay=1.0)
    peers.wait_for(lambda: app.spans, message='a first cycle')
    assert app.spans[0][0] - started >= 1.0


def test_the_loop_survives_a_bug_and_logs_it_once(
        serve, run_scheduler, monkeypatch, caplog):
    calls = []

    def broken(settings, outages, sink_factory, tables, selector,
               memory, pacer, clock, **shared):
        calls.append(1)
        raise KeyError('boom')

    monkeypatch.setattr(cycle, 'run_cycle', broken)
    caplog.set_level(logging.DEBUG)
    run_scheduler(serve(SlowAPI(0)), interval=1)
    peers.wait_for(lambda: len(calls) >= 3, message='three broken cycles')
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1 and errors[0].exc_info
    assert 'KeyError' in errors[0].getMessage()


def test_a_dead_loop_is_restarted_by_the_next_request(
        serve, udp, monkeypatch, thread_deaths):
    class Fatal(BaseException):
        pass

    deaths = []

    def fatal(settings, outages, sink_factory, tables, selector,
              memory, pacer, clock, **shared):
        deaths.append(1)
        if len(deaths) == 1:
            raise Fatal()
        return cycle.CycleResult(True, None)

    monkeypatch.setattr(cycle, 'run_cycle', fatal)
    process = scheduler.ProcessCollector()
    settings = peers.make_settings(monitoring_url=serve(SlowAPI(0)).url,
                                   statsd_port=udp.port)
    process.ensure_started(settings)
    peers.wait_for(lambda: scheduler.collector_pid is None and thread_deaths,
                   message='the loop to die')
    assert len(thread_deaths) == 1 and 'Fatal' in thread_deaths[0]
    app = statsd_filter.StatsdFilter(lambda env, start: [b'ok'], process)
    assert app({}, None) == [b'ok']
    peers.wait_for(lambda: len(deaths) >= 2, message='a restarted loop')
    assert scheduler.collector_pid == os.getpid()
    process.stop()


def test_one_collector_however_many_filters(serve, udp):
    process = scheduler.ProcessCollector()
    settings = peers.make_settings(monitoring_url=serve(SlowAPI(0)).url,
                                   statsd_port=udp.port)
    process.ensure_started(settings)
    first = process.scheduler
    process.ensure_started(settings)
    assert process.scheduler is first
    process.stop()


def test_a_forked_child_drops_the_parents_collector(serve, udp, tmp_path):
    process = scheduler.ProcessCollector()
    settings = peers.make_settings(
        monitoring_url=serve(SlowAPI(0)).url, statsd_port=udp.port,
        lock_path=str(tmp_path / 'fork.lock'))
    process.ensure_started(settings)
    peers.wait_for(lambda: process.scheduler.lock.held, message='the lock')
    parent = process.scheduler
    pid = os.fork()
    if pid == 0:  # the child: report through the exit code
        # Reset by the at-fork hook where the runtime has one.
        owed = scheduler.collector_pid == (None if scheduler.FORK_HOOKED
                                           else parent.pid)
        lock_is_the_parents = not election.HostLock(
            settings.lock_path).acquire()
        # Its first request starts a collector of its own, which stands
        # by: the parent holds the lock.
        app = statsd_filter.StatsdFilter(lambda env, start: [b'ok'], process)
        app({}, None)
        own = process.scheduler
        ok = (owed and lock_is_the_parents and own is not parent
              and own.pid == os.getpid()
              and scheduler.collector_pid == os.getpid())
        process.stop()
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert process.scheduler.lock.held
    process.stop()


def test_startup_failures_are_quiet_until_the_grace_ends(
        monkeypatch, caplog, udp):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setattr(scheduler, 'STARTUP_GRACE', 1.0)
    monkeypatch.setattr(scheduler, 'STARTUP_RETRY', 0.2)
    url = 'http://127.0.0.1:%d/v1/monitoring/projects' % peers.free_port()
    instance = scheduler.Scheduler(peers.make_settings(
        monitoring_url=url, statsd_port=udp.port, interval=60))
    instance.start()
    try:
        # Retried every 0.2 s during the grace, not every 60 s.
        peers.wait_for(lambda: [r for r in caplog.records
                                if r.levelno == logging.ERROR],
                       timeout=5, message='the error after the grace')
    finally:
        instance.stop()
    quiet = [r for r in caplog.records if 'not ready yet' in r.getMessage()]
    assert len(quiet) >= 3
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1 and 'refused' in errors[0].getMessage()


def _health_lines(udp):
    udp.drain()
    return [line for line in udp.lines if '.health.' in line]


def test_a_starting_server_is_no_false_health_alarm(serve, udp, caplog,
                                                    monkeypatch):
    """The collector starts before the server listens: the refused health
    check sends no gauge and logs no ERROR; once it answers, 1 is sent,
    at the next start-up retry, not an interval later."""
    # A retry long enough that the server, started once a cycle's listing
    # was refused too, is listening before the next cycle's health check:
    # one started between a cycle's health check and its listing would
    # leave health to the next interval (a completed cycle ends the
    # grace).
    monkeypatch.setattr(scheduler, 'STARTUP_RETRY', 3.0)
    caplog.set_level(logging.DEBUG)
    port = peers.free_port()
    base = 'http://127.0.0.1:%d' % port
    instance = scheduler.Scheduler(peers.make_settings(
        monitoring_url=base + peers.MONITORING_PATH, statsd_port=udp.port,
        healthcheck_url=base + '/healthcheck?fullcheck=true',
        host_name='h', interval=60))
    instance.start()
    try:
        for what in ('health check', 'monitoring API'):
            peers.wait_for(lambda: [r for r in caplog.records
                                    if r.getMessage().startswith(
                                        what + ' not ready yet')],
                           message='a refused %s' % what)
        app = fakeapi.FakeMonitoringAPI(fakeapi.build_dataset())
        health = fakeapi.FakeHealthCheck()
        serve(lambda environ, start_response: (
            health if environ['PATH_INFO'] == '/healthcheck' else app)(
                environ, start_response), port=port)
        # Retried after STARTUP_RETRY, not after the 60 s interval.
        peers.wait_for(lambda: 'magnetodb.health.h.overall:1|g'
                       in _health_lines(udp),
                       timeout=scheduler.STARTUP_RETRY
                       + peers.SCHEDULING_SLACK,
                       message='the health gauge once the server answers')
    finally:
        instance.stop()
    assert not [line for line in _health_lines(udp) if line.endswith(':0|g')]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_health_check_still_refused_after_the_grace_is_a_failure(
        monkeypatch, serve, udp, caplog):
    monkeypatch.setattr(scheduler, 'STARTUP_GRACE', 1.0)
    monkeypatch.setattr(scheduler, 'STARTUP_RETRY', 0.2)
    api = serve(fakeapi.FakeMonitoringAPI(fakeapi.build_dataset()))
    dead = 'http://127.0.0.1:%d/healthcheck' % peers.free_port()
    # Only the health check is refused, and the grace runs out: with table
    # metrics left to another host, the cycle is health alone.
    instance = scheduler.Scheduler(peers.make_settings(
        monitoring_url=api.url, statsd_port=udp.port, healthcheck_url=dead,
        host_name='h', interval=60))
    monkeypatch.setattr(instance, '_cluster_elected', lambda: False)
    instance.start()
    try:
        peers.wait_for(lambda: 'magnetodb.health.h.overall:0|g'
                       in _health_lines(udp), timeout=5,
                       message='health 0 after the grace')
    finally:
        instance.stop()
    errors = [r.getMessage() for r in caplog.records
              if r.levelno >= logging.WARNING]
    assert len(errors) == 1 and errors[0].startswith('health check failed')


def test_join_gives_up_after_its_timeout():
    # Under eventlet 0.40+ on Python 3.13 a green join(timeout) raises
    # eventlet's Timeout: runtime.join must answer False either way.
    from magnetodb_statsd_middleware import runtime
    release = threading.Event()
    job = runtime.spawn(lambda: release.wait(10), 'test-join')
    started = compat.monotonic()
    assert runtime.join(job, 0.2) is False
    assert compat.monotonic() - started < 5
    release.set()
    assert runtime.join(job, 5) is True


GREEN_JOIN = '''
import eventlet
eventlet.monkey_patch()
import threading
from magnetodb_statsd_middleware import runtime
release = threading.Event()
job = runtime.spawn(lambda: release.wait(10), 'test-join')
print(runtime.join(job, 0.2))
release.set()
print(runtime.join(job, 5))
'''


def test_join_gives_up_after_its_timeout_under_eventlet():
    result = peers.run([sys.executable, '-c', GREEN_JOIN])
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ['False', 'True']


# The collector, busy in a cycle, when the server's Ctrl-C comes: under
# eventlet the signal's exception is raised in the running greenthread,
# here the collector's (made certain by the cycle signalling itself and
# running Python code until it lands).
CTRL_C_DURING_A_CYCLE = r'''
import logging, os, signal, sys
import eventlet
eventlet.monkey_patch()
from tests.support import peers
from magnetodb_statsd_middleware import cycle, scheduler
logging.basicConfig(stream=sys.stdout, level=logging.INFO,
                    format='%(levelname)s %(message)s')
signal.signal(signal.SIGINT, signal.default_int_handler)

def interrupted_cycle(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGINT)
    while True:  # Python code: the KeyboardInterrupt is raised here
        pass

cycle.run_cycle = interrupted_cycle
process = scheduler.ProcessCollector()
process.ensure_started(peers.make_settings(interval=60,
                                           initial_delay=0.5))
try:
    eventlet.sleep(30)
    print('the server never heard of its Ctrl-C')
except KeyboardInterrupt:
    print('the server got its Ctrl-C')
'''


def test_a_ctrl_c_that_lands_in_the_collector_reaches_the_server():
    done = peers.run([sys.executable, '-c', CTRL_C_DURING_A_CYCLE],
                     timeout=60, env=dict(os.environ, PYTHONPATH=peers.ROOT))
    assert 'the server got its Ctrl-C' in done.stdout, done
    assert 'The StatsD collector loop stops: KeyboardInterrupt' in done.stdout
    assert 'ERROR' not in done.stdout
    assert 'Traceback' not in done.stderr, done.stderr


def test_a_process_that_stops_collecting_forgets_its_stuck_clock(serve, udp):
    dataset = {'p': [fakeapi.Table('t', 'CREATING')]}
    instance = scheduler.Scheduler(peers.make_settings(
        monitoring_url=serve(fakeapi.FakeMonitoringAPI(dataset)).url,
        statsd_port=udp.port))
    assert instance._step()
    assert instance.clock.remembered() == 1
    instance._elected = lambda: False  # another process holds the lock
    assert instance._step()
    assert instance.clock.remembered() == 0
