"""One emitter per cluster through tooz, against a real redis-server and
a real memcached."""

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from magnetodb_statsd_middleware import config
from magnetodb_statsd_middleware import coordination
from magnetodb_statsd_middleware.demo import fakeapi
from tests.support import peers

INTERVAL = 1
LOCK_TIMEOUT = 2


def _host(api_server, tmp_path, daemon, prefix, name, request_log, url):
    """One 'host': an eventlet API server with its own host lock."""
    conf = peers.statsd_section(**peers.statsd_options(
        daemon.port, prefix, interval=INTERVAL,
        lock_path=tmp_path / ('%s.lock' % name), coordination_url=url,
        host_name=name, healthcheck_url='$health', request_timeout=2))
    api = api_server(conf, fixture_options='request_log = ' + request_log,
                     port=peers.free_port())
    return api


@pytest.fixture
def cluster(api_server, tmp_path, statsd_daemon, prefix):
    request_log = str(tmp_path / 'requests.log')

    def start(url, names=('host-a', 'host-b')):
        hosts = {name: _host(api_server, tmp_path, statsd_daemon,
                             prefix, name, request_log, url)
                 for name in names}
        for api in hosts.values():
            api.wait_ready()
        return hosts, request_log
    return start


def _pollers(request_log, since):
    return {pid for _, pid in peers.polls(request_log, since)}


def _leader(request_log):
    """The pid of the one process polling now (after two fresh polls)."""
    since = time.time()
    peers.wait_for(lambda: len(peers.polls(request_log, since)) >= 2,
                   timeout=30, message='two polls')
    (pid,) = _pollers(request_log, since)
    return pid


def test_one_emitter_in_the_cluster_and_health_from_every_host(
        cluster, backend, statsd_daemon, prefix):
    hosts, request_log = cluster(backend.url(LOCK_TIMEOUT))
    since = time.time()
    leader = _leader(request_log)
    peers.wait_for(lambda: len(peers.polls(request_log, since)) >= 4,
                   timeout=30, message='four polls')
    assert _pollers(request_log, since) == {leader}
    for name in hosts:
        peers.wait_for(
            lambda: statsd_daemon.gauges(
                '%s.health.%s.overall' % (prefix, name)),
            message='health gauges of %s' % name)
    # The one emitter's figures are the fixture API's data, each right
    # (its totals included), from a cycle after they were deleted.
    peers.every_gauge_back(statsd_daemon, prefix, peers.expected_gauges(
        fakeapi.build_dataset(), prefix), time.time())


def test_sigkill_of_the_leader_fails_over_within_the_bound(cluster, backend):
    hosts, request_log = cluster(backend.url(LOCK_TIMEOUT))
    leader = _leader(request_log)
    os.kill(leader, signal.SIGKILL)
    killed = time.time()
    takeover = peers.takeover_time(request_log, killed, leader)
    failover = takeover - killed
    # The lock expires within its timeout; the standby retries every
    # interval, and its first listing request follows at once.
    assert failover <= LOCK_TIMEOUT + INTERVAL + peers.SCHEDULING_SLACK, \
        failover
    print('cluster failover after SIGKILL (%s): %.2fs'
          % (backend.scheme, failover))


def test_a_clean_stop_hands_over_at_once(cluster, backend):
    # A lock timeout long enough to tell a handover within one retry
    # interval (and the slack) from a lock that was left to expire: a
    # held lock is renewed at least every (timeout - 1) / 3 seconds and
    # memcached may end a key a second early, so one left behind lives
    # on for (2 * timeout - 2) / 3 seconds at least: 6 s here, past the
    # handover's 4 s.
    lock_timeout = INTERVAL + 3 * peers.SCHEDULING_SLACK
    hosts, request_log = cluster(backend.url(lock_timeout))
    leader = _leader(request_log)
    (api,) = [a for a in hosts.values() if a.process.pid == leader]
    api.process.send_signal(signal.SIGINT)
    stopped = time.time()
    takeover = peers.takeover_time(request_log, stopped, leader)
    assert takeover - stopped <= INTERVAL + peers.SCHEDULING_SLACK
    assert takeover - stopped < lock_timeout
    # The lock is handed over first; the process may take longer to exit
    # on a loaded machine.
    peers.wait_exit(api.process, 30)


def test_the_backend_going_away_and_coming_back(
        cluster, backend, statsd_daemon, prefix):
    # A lock that a loaded machine keeps alive: a beat late past a 2 s
    # timeout (memcached's keys live 1-2 s) would lose it, which is one
    # more ERROR, rightly.
    hosts, request_log = cluster(backend.url(4))
    _leader(request_log)
    backend.stop()
    down = time.time()
    # Within a cycle everyone stands down: no more listing polls.
    peers.wait_for(lambda: all('coordination backend failed' in api.log
                               for api in hosts.values()),
                   timeout=30, message='the outage logged on every host')
    quiet_since = time.time()
    # Health goes on. A host sends its health gauges once a cycle, after
    # deciding whether to poll: the third to arrive after quiet_since
    # comes from a cycle after one that began and ended since then.
    for name in hosts:
        gauge = '%s.health.%s.overall' % (prefix, name)
        for _ in range(3):
            statsd_daemon.command('delgauges ' + gauge)
            peers.wait_for(lambda: statsd_daemon.gauges(gauge),
                           message='health during the outage')
    assert not peers.polls(request_log, quiet_since)
    backend.start()
    restarted = time.time()
    assert _leader(request_log)
    peers.wait_for(lambda: all('coordination backend recovered' in api.log
                               for api in hosts.values()),
                   timeout=30, message='every host to recover')
    print('table metrics back %.1fs after the backend restart; down %.1fs'
          % (time.time() - restarted, restarted - down))
    for api in hosts.values():
        errors = [line for line in peers.log_lines(api.log, ours=True)
                  if line.level == 'ERROR']
        assert len(errors) == 1, errors


def test_secrets_stay_out_of_the_logs(cluster, tmp_path):
    guarded = peers.RedisServer(str(tmp_path), None, '--requirepass',
                                'the-right-one')
    try:
        url = 'redis://:s3cret-pw@127.0.0.1:%d?timeout=2' % guarded.port
        hosts, _ = cluster(url, names=('host-a',))
        (api,) = hosts.values()
        peers.wait_for(lambda: 'coordination backend failed' in api.log,
                       message='the AUTH failure logged')
    finally:
        guarded.stop()
    assert 's3cret-pw' not in api.log


@pytest.mark.parametrize('url', ['zake://', 'etcd3+http://127.0.0.1:2379',
                                 '127.0.0.1:6379'])
def test_a_backend_other_than_redis_or_memcached_fails_the_paste_load(url):
    with pytest.raises(config.ConfigError) as error:
        config.load_settings({}, {'enabled': 'true', 'coordination_url': url})
    assert 'redis:// or memcached://' in str(error.value)


@pytest.mark.parametrize('url, name', [
    ('redis://:pw@127.0.0.1:6379?timeout=3&password=x',
     'redis://127.0.0.1:6379'),
    ('redis://user:pw@[::1]:6379', 'redis://[::1]:6379'),
    ('memcached://cache.example.org?timeout=10',
     'memcached://cache.example.org'),
    ('redis:///run/redis.sock?password=x', 'redis:///run/redis.sock')])
def test_log_lines_name_the_backend_without_credentials_or_options(url,
                                                                   name):
    assert coordination.backend_name(url) == name


def test_missing_tooz_fails_the_paste_load(monkeypatch):
    monkeypatch.setitem(sys.modules, 'tooz', None)
    monkeypatch.setitem(sys.modules, 'tooz.coordination', None)
    with pytest.raises(config.ConfigError) as error:
        config.load_settings({}, {
            'enabled': 'true',
            'coordination_url': 'redis://:pw@127.0.0.1:6379'})
    message = str(error.value)
    assert 'tooz is not installed' in message and 'pw' not in message


def test_the_heartbeat_runs_in_a_thread_of_ours(backend):
    """The heart beats in a thread made by runtime (a Ctrl-C landing
    there under eventlet still reaches the server), and keeps beating.

    Native threads here, as under gunicorn gthread: a background call
    that imported tooz itself never ended, and every other call failed.
    """
    lock = coordination.ClusterLock(backend.url(LOCK_TIMEOUT), 'heart-test')
    assert lock.held(5)
    try:
        hearts = [t for t in threading.enumerate()
                  if t.name == 'magnetodb-statsd-heart']
        assert len(hearts) == 1 and hearts[0].daemon
        # Past the lock timeout the lock is still ours: the heart beats.
        time.sleep(LOCK_TIMEOUT + 1)
        assert lock.held(5)
    finally:
        lock.release(5)
    peers.wait_for(lambda: not hearts[0].is_alive(),
                   message='the heart to stop')


def test_the_lock_keeps_its_timeout_while_held(backend):
    """While held, the lock's expiry in the backend never exceeds its
    timeout, so a holder that dies is replaced within it. (tooz's own
    redis heartbeat, up to 1.x, adds the timeout to the expiry at each
    beat: it grew by seconds per second held.) memcached counts whole
    seconds: its keys live one second less than their timeout at worst.
    With memcached the group membership is kept the same way."""
    lock = coordination.ClusterLock(backend.url(LOCK_TIMEOUT), 'ttl-test')
    assert lock.held(5)
    try:
        ttls, member_ttls = [], []
        checked = time.time()
        deadline = checked + 2 * LOCK_TIMEOUT + 1  # beats and checks
        while time.time() < deadline:
            ttls.append(backend.lock_ttl('ttl-test'))
            if backend.scheme == 'memcached':
                member_ttls.append(backend.ttl(
                    b'_TOOZ_MEMBER_' + lock._member))
            if time.time() >= checked + INTERVAL:  # a cycle's check
                assert lock.held(5)
                checked = time.time()
            time.sleep(0.1)
    finally:
        lock.release(5)
    assert None not in ttls + member_ttls, (ttls, member_ttls)
    assert 0 < min(ttls) and max(ttls) <= LOCK_TIMEOUT, ttls
    assert all(0 < ttl <= LOCK_TIMEOUT for ttl in member_ttls), member_ttls
    print('lock TTL while held (%s): %.2f-%.2fs (timeout %ds)'
          % (backend.scheme, min(ttls), max(ttls), LOCK_TIMEOUT))
    assert backend.lock_ttl('ttl-test') is None  # released at once


HOLDER = """
import sys, time
from magnetodb_statsd_middleware import coordination
lock = coordination.ClusterLock(sys.argv[1], 'lost-test')
assert lock.held(10)
print('held')
sys.stdout.flush()
time.sleep(60)
"""


def test_a_lost_lock_is_not_kept_alive_for_a_dead_successor(backend):
    """A holder that lost its lock (evicted, or stalled past its timeout)
    must not renew the key for whoever took it next: when that one dies,
    the lock expires within its timeout and is taken again. (tooz's
    memcached heartbeat renews the key whoever holds it.)"""
    lock = coordination.ClusterLock(backend.url(LOCK_TIMEOUT), 'lost-test')
    assert lock.held(5)
    successor = None
    try:
        backend.evict('lost-test')
        successor = subprocess.Popen(
            [sys.executable, '-c', HOLDER, backend.url(LOCK_TIMEOUT)],
            stdout=subprocess.PIPE,
            env=dict(os.environ, PYTHONPATH=peers.ROOT))
        assert successor.stdout.readline().strip() == b'held'
        assert not lock.held(5)
        successor.kill()  # SIGKILL: its lock is left to expire
        killed = time.time()
        peers.wait_for(lambda: lock.held(5), timeout=30,
                       interval=INTERVAL, message='the lock taken again')
        regained = time.time() - killed
        assert regained <= LOCK_TIMEOUT + INTERVAL + peers.SCHEDULING_SLACK
        print('lock taken again %.2fs after its successor died (%s)'
              % (regained, backend.scheme))
    finally:
        if successor is not None and successor.poll() is None:
            successor.kill()
        lock.release(5)


def test_a_memcached_timeout_under_two_seconds_is_refused(tmp_path):
    """memcached counts whole seconds: a key set to live 1 s may be gone
    at once, and the lock would change hands at random."""
    server = peers.MemcachedServer(str(tmp_path))
    try:
        lock = coordination.ClusterLock(
            'memcached://127.0.0.1:%d?timeout=1' % server.port, 'short')
        with pytest.raises(coordination.CoordinationError) as error:
            lock.held(5)
    finally:
        server.stop()
    assert 'timeouts must be 2 or more' in str(error.value)
