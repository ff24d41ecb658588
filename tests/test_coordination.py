"""One emitter per cluster through tooz, against a real redis-server."""

import os
import signal
import sys
import threading
import time

import pytest

from magnetodb_statsd_middleware import config
from magnetodb_statsd_middleware import coordination
from tests.support import peers

INTERVAL = 1
LOCK_TIMEOUT = 2


@pytest.fixture
def redis(tmp_path):
    server = peers.RedisServer(str(tmp_path))
    yield server
    server.stop()


def _host(api_server, tmp_path, redis, daemon, prefix, name, request_log,
          url=None):
    """One 'host': an eventlet API server with its own host lock."""
    url = url or 'redis://127.0.0.1:%d?timeout=%d' % (redis.port,
                                                      LOCK_TIMEOUT)
    conf = peers.statsd_section(
        enabled='true', statsd_port=daemon.port, metric_prefix=prefix,
        interval=INTERVAL, monitoring_url='$api',
        lock_path=tmp_path / ('%s.lock' % name), coordination_url=url,
        host_name=name, healthcheck_url='$health', request_timeout=2)
    api = api_server(conf, fixture_options='request_log = ' + request_log,
                     port=peers.free_port())
    return api


@pytest.fixture
def cluster(api_server, tmp_path, redis, statsd_daemon, prefix):
    request_log = str(tmp_path / 'requests.log')

    def start(names=('host-a', 'host-b'), url=None):
        hosts = {name: _host(api_server, tmp_path, redis, statsd_daemon,
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
        cluster, statsd_daemon, prefix):
    hosts, request_log = cluster()
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
    assert statsd_daemon.gauges(prefix + '.totals.')


def test_sigkill_of_the_leader_fails_over_within_the_bound(cluster):
    hosts, request_log = cluster()
    leader = _leader(request_log)
    os.kill(leader, signal.SIGKILL)
    killed = time.time()
    takeover = peers.takeover_time(request_log, killed, leader)
    failover = takeover - killed
    # The lock expires within its timeout; the standby retries every
    # interval, and its first listing request follows at once.
    assert failover <= LOCK_TIMEOUT + INTERVAL + peers.SCHEDULING_SLACK, \
        failover
    print('cluster failover after SIGKILL: %.2fs' % failover)


def test_a_clean_stop_hands_over_at_once(cluster, redis):
    # A lock timeout long enough to tell a handover within one retry
    # interval from a lock that was left to expire, even on a loaded
    # machine.
    lock_timeout = INTERVAL + 2 * peers.SCHEDULING_SLACK
    hosts, request_log = cluster(url='redis://127.0.0.1:%d?timeout=%d'
                                 % (redis.port, lock_timeout))
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
        cluster, redis, statsd_daemon, prefix):
    hosts, request_log = cluster()
    _leader(request_log)
    redis.stop()
    down = time.time()
    # Within a cycle everyone stands down: no more listing polls.
    peers.wait_for(lambda: all('coordination backend failed' in api.log
                               for api in hosts.values()),
                   timeout=30, message='the outage logged on every host')
    quiet_since = time.time() + INTERVAL + 0.5
    time.sleep(INTERVAL + 0.5 + 3 * INTERVAL)
    assert not peers.polls(request_log, quiet_since)
    for name in hosts:  # health goes on
        gauge = '%s.health.%s.overall' % (prefix, name)
        statsd_daemon.command('delgauges ' + gauge)
        peers.wait_for(lambda: statsd_daemon.gauges(gauge),
                       message='health during the outage')
    redis.start()
    restarted = time.time()
    assert _leader(request_log)
    peers.wait_for(lambda: all('coordination backend recovered' in api.log
                               for api in hosts.values()),
                   timeout=30, message='every host to recover')
    print('table metrics back %.1fs after the backend restart; down %.1fs'
          % (time.time() - restarted, restarted - down))
    for api in hosts.values():
        errors = [line for line in api.log.splitlines()
                  if ' ERROR magnetodb_statsd_middleware' in line]
        assert len(errors) == 1, errors


def test_secrets_stay_out_of_the_logs(cluster, tmp_path):
    guarded = peers.RedisServer(str(tmp_path), None, '--requirepass',
                                'the-right-one')
    try:
        url = 'redis://:s3cret-pw@127.0.0.1:%d?timeout=2' % guarded.port
        hosts, _ = cluster(names=('host-a',), url=url)
        (api,) = hosts.values()
        peers.wait_for(lambda: 'coordination backend failed' in api.log,
                       message='the AUTH failure logged')
    finally:
        guarded.stop()
    assert 's3cret-pw' not in api.log


def test_missing_tooz_fails_the_paste_load(monkeypatch):
    monkeypatch.setitem(sys.modules, 'tooz', None)
    monkeypatch.setitem(sys.modules, 'tooz.coordination', None)
    with pytest.raises(config.ConfigError) as error:
        config.load_settings({}, {
            'enabled': 'true',
            'coordination_url': 'redis://:pw@127.0.0.1:6379'})
    message = str(error.value)
    assert 'tooz is not installed' in message and 'pw' not in message


def test_the_heartbeat_runs_in_a_thread_of_ours(redis):
    """tooz's heart beats in a thread made by runtime (a Ctrl-C landing
    there under eventlet still reaches the server), and keeps beating.

    Native threads here, as under gunicorn gthread: a background call
    that imported tooz itself never ended, and every other call failed.
    """
    lock = coordination.ClusterLock(
        'redis://127.0.0.1:%d?timeout=%d' % (redis.port, LOCK_TIMEOUT),
        'heart-test')
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


def test_the_lock_keeps_its_timeout_while_held(redis):
    """While held, the lock's expiry in redis never exceeds its timeout,
    so a holder that dies is replaced within it. (tooz's own redis
    heartbeat, up to 1.x, adds the timeout to the expiry at each beat: it
    grew by seconds per second held.)"""
    import redis as redis_client
    lock = coordination.ClusterLock(
        'redis://127.0.0.1:%d?timeout=%d' % (redis.port, LOCK_TIMEOUT),
        'ttl-test')
    client = redis_client.StrictRedis(port=redis.port)
    assert lock.held(5)
    try:
        (key,) = client.keys('*ttl-test*')
        ttls = []
        checked = time.time()
        deadline = checked + 2 * LOCK_TIMEOUT + 1  # beats and checks
        while time.time() < deadline:
            ttls.append(client.pttl(key) / 1000.0)
            if time.time() >= checked + INTERVAL:  # a cycle's check
                assert lock.held(5)
                checked = time.time()
            time.sleep(0.1)
    finally:
        lock.release(5)
    assert 0 < min(ttls) and max(ttls) <= LOCK_TIMEOUT, ttls
    print('lock TTL while held: %.2f-%.2fs (timeout %ds)'
          % (min(ttls), max(ttls), LOCK_TIMEOUT))
    assert not client.keys('*ttl-test*')  # released at once
