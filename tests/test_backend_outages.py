"""The coordination backend going away under two API hosts: frozen (as
behind a network partition), restarted empty, and emptied while it runs.

Real redis-server and memcached, real eventlet API servers, a real Etsy
statsd daemon. What must hold, in one-emitter and ``share_walk`` modes:

- each host says it once: one ERROR when the outage starts, one INFO
  when coordination works again, and nothing else at WARNING or above,
  no traceback, from this package or from tooz or the backend's client;
- the API never notices;
- every table and project gauge, and the totals, come back within the
  coordination timeout plus two intervals after the backend does, and
  no gauge ever carries a wrong value.
"""

import signal
import time

import pytest

from magnetodb_statsd_middleware import compat
from magnetodb_statsd_middleware import coordination
from magnetodb_statsd_middleware.demo import fakeapi
from tests.support import peers

INTERVAL = 2
# A shared walk's member waits up to half an interval for its plan: room
# for a loaded machine.
SHARED_INTERVAL = 3
LOCK_TIMEOUT = 4
# Long enough that a loaded 2-core machine answers in time when the
# backend is well.
REQUEST_TIMEOUT = 2
# Longer than the request timeout and the lock timeout: every call fails
# and every lock and membership expires meanwhile.
FROZEN = LOCK_TIMEOUT + 3
FIXTURE = dict(projects=12, tables=10, big=(), seed=5)
FIXTURE_OPTIONS = 'projects = 12\ntables = 10\nseed = 5'

FAILED = 'coordination backend failed'
RECOVERED = 'coordination backend recovered'


def test_no_call_to_a_frozen_backend_blocks_past_request_timeout(backend):
    """The heart's calls too (tooz's own heart blocked for the whole
    freeze): the client's socket timeouts come from request_timeout."""
    lock = coordination.ClusterLock(backend.url(LOCK_TIMEOUT), 'frozen-test',
                                    REQUEST_TIMEOUT)
    assert lock.held(REQUEST_TIMEOUT)
    backend.process.send_signal(signal.SIGSTOP)
    try:
        calls = {'membership beat': lock._coordinator.heartbeat,
                 'lock renewal': lock._lock.renewed}
        for what, call in sorted(calls.items()):
            started = compat.monotonic()
            try:
                call()  # memcached's beat is sent without a reply
            except Exception as exc:  # a timeout, as tooz words it
                outcome = type(exc).__name__
            else:
                outcome = 'no error'
            blocked = compat.monotonic() - started
            print('%s against a frozen %s: %s after %.2fs'
                  % (what, backend.scheme, outcome, blocked))
            assert blocked <= REQUEST_TIMEOUT + peers.SCHEDULING_SLACK
            # Not the lock timeout, nor several socket timeouts in a row.
            assert blocked < LOCK_TIMEOUT
    finally:
        backend.process.send_signal(signal.SIGCONT)
        lock.release(REQUEST_TIMEOUT)


@pytest.fixture(params=['one-emitter', 'share_walk'])
def two_hosts(request, api_server, tmp_path, backend, statsd_daemon,
              prefix):
    url = backend.url(LOCK_TIMEOUT)
    share = request.param == 'share_walk'
    interval = SHARED_INTERVAL if share else INTERVAL
    started = {}
    # Three hosts share the walk: ranges move among more than two.
    names = ['host-a', 'host-b', 'host-c'][:3 if share else 2]
    for name in names:
        conf = peers.statsd_section(**peers.statsd_options(
            statsd_daemon.port, prefix, interval=interval, initial_delay=0,
            healthcheck_url='$health',
            lock_path=tmp_path / ('%s.lock' % name),
            coordination_url=url, host_name=name,
            share_walk=str(share).lower(),
            request_timeout=REQUEST_TIMEOUT))
        started[name] = api_server(conf, port=peers.free_port(),
                                   fixture_options=FIXTURE_OPTIONS)
    for api in started.values():
        api.wait_ready()
    return started, share, interval


def _recovery_bound(interval):
    """The documented bound: the lock timeout plus two intervals."""
    return LOCK_TIMEOUT + 2 * interval + peers.SCHEDULING_SLACK


def _lines(api, *levels):
    """The lines logged at ``levels``, by any logger."""
    return ['%s %s: %s' % line[1:] for line in peers.log_lines(api.log)
            if line.level in levels]


def _says(hosts, text, count):
    return all(sum(text in line for line in _lines(api, 'ERROR', 'INFO'))
               >= count for api in hosts.values())


def _holders(hosts, share_walk):
    """The hosts that hold something in the backend: every member of a
    shared walk; the lock holder alone otherwise."""
    if share_walk:
        return hosts
    peers.wait_for(lambda: [api for api in hosts.values()
                            if _holds_the_lock(api)],
                   message='a host holding the lock')
    return dict((name, api) for name, api in hosts.items()
                if _holds_the_lock(api))


def _holds_the_lock(api):
    """Whether ``api`` took the cluster lock after its last outage."""
    said = [line for line in _lines(api, 'ERROR', 'INFO')
            if 'the cluster lock' in line or FAILED in line]
    return bool(said) and 'holds the cluster lock' in said[-1]


def test_frozen_restarted_empty_and_emptied(two_hosts, backend,
                                            statsd_daemon, prefix):
    hosts, share_walk, interval = two_hosts
    expected = peers.expected_gauges(fakeapi.build_dataset(**FIXTURE),
                                     prefix)
    probes = [peers.RequestLoop(api.url + '/v1/data')
              for api in hosts.values()]
    recoveries = {}
    try:
        peers.every_gauge_back(statsd_daemon, prefix, expected, time.time())

        # Frozen: connections are accepted, nothing answers.
        backend.process.send_signal(signal.SIGSTOP)
        peers.wait_for(lambda: _says(hosts, FAILED, 1), timeout=30,
                       message='the freeze logged by every host')
        # Still frozen: nothing may say it recovered.
        frozen_until = time.time() + FROZEN
        while time.time() < frozen_until:
            assert not _says(hosts, RECOVERED, 1)
            time.sleep(0.2)
        backend.process.send_signal(signal.SIGCONT)
        recoveries['frozen'] = peers.every_gauge_back(
            statsd_daemon, prefix, expected, time.time())
        peers.wait_for(lambda: _says(hosts, RECOVERED, 1), timeout=30,
                       message='the end of the freeze logged')

        # Restarted empty on the same port, after a while down.
        backend.stop()
        peers.wait_for(lambda: _says(hosts, FAILED, 2), timeout=30,
                       message='the restart logged by every host')
        backend.start()
        recoveries['restarted empty'] = peers.every_gauge_back(
            statsd_daemon, prefix, expected, time.time())
        peers.wait_for(lambda: _says(hosts, RECOVERED, 2), timeout=30,
                       message='the end of the restart logged')

        # Emptied while it runs: only the lock and the memberships tell.
        holders = _holders(hosts, share_walk)
        backend.flush()
        peers.wait_for(lambda: _says(holders, FAILED, 3), timeout=30,
                       message='the lost keys logged by who held them')
        recoveries['emptied'] = peers.every_gauge_back(
            statsd_daemon, prefix, expected, time.time())
        peers.wait_for(lambda: _says(holders, RECOVERED, 3), timeout=30,
                       message='the end of the loss logged')
    finally:
        for probe in probes:
            probe.stop()
        for name, api in sorted(hosts.items()):
            print('%s:\n  %s' % (name, '\n  '.join(
                _lines(api, 'WARNING', 'ERROR', 'CRITICAL', 'INFO'))))
    for what, seconds in sorted(recoveries.items()):
        print('%s (%s): every gauge back %.1fs after the backend'
              % (what, backend.scheme, seconds))
        assert seconds <= _recovery_bound(interval), (what, seconds)
    for probe in probes:
        assert probe.durations and not probe.failures, probe.failures
        print('API during the outages: %d requests, p99 %.3fs, max %.3fs'
              % (len(probe.durations), probe.percentile(0.99),
                 max(probe.durations)))
        assert max(probe.durations) < peers.SCHEDULING_SLACK
    for name, api in sorted(hosts.items()):
        outages = 3 if name in holders else 2
        loud = _lines(api, 'WARNING', 'ERROR', 'CRITICAL')
        assert 'Traceback' not in api.log
        assert len(loud) == outages, loud
        assert all(FAILED in line for line in loud), loud
        assert sum(RECOVERED in line
                   for line in _lines(api, 'INFO')) == outages
