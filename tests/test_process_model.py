"""One collector per process, one emitter per host, takeover on death."""

import re
import signal
import time

import pytest

from tests.support import peers

INTERVAL = 1


def _start(api_server, tmp_path, statsd_daemon, prefix, **options):
    request_log = str(tmp_path / 'requests.log')
    lock_path = str(tmp_path / 'statsd.lock')
    conf = peers.statsd_section(**peers.statsd_options(
        statsd_daemon.port, prefix, interval=INTERVAL, lock_path=lock_path))
    api = api_server(conf, fixture_options='projects = 5\ntables = 20\n'
                     'request_log = %s' % request_log, **options)
    return api, request_log, lock_path, conf


def _collector_pids(log):
    return re.findall(r'collector starting in pid (\d+)', log)


@pytest.mark.parametrize('worker, preload', [
    ('gthread', False), ('gthread', True), ('sync', False), ('sync', True)])
def test_one_emitter_among_gunicorn_workers(
        api_server, tmp_path, statsd_daemon, prefix, worker, preload):
    api, request_log, lock_path, _ = _start(
        api_server, tmp_path, statsd_daemon, prefix, server=worker,
        workers=3, preload=preload)
    api.wait_ready()
    # With --preload, a forked worker starts its collector at its first
    # request.
    for _ in range(30):
        api.get()
    served = api.served
    started = time.time()
    peers.wait_for(lambda: len(peers.polls(request_log, started)) >= 4,
                   timeout=30, message='four polls')
    pids = {pid for _, pid in peers.polls(request_log, started)}
    assert pids == {peers.lock_holder(lock_path)}
    collectors = _collector_pids(api.log)
    # Each process starts exactly one collector, although the filter is
    # listed in two pipelines; with --preload the master has one too.
    assert len(collectors) == len(set(collectors))
    started_in = {int(pid) for pid in collectors}
    # Every process that served a request (ours, or the collector's own
    # monitoring requests) started one; with --preload the master too,
    # and a worker that got no request yet has none.
    assert served <= started_in
    assert len(started_in) <= 3 + preload
    if not preload:
        assert len(started_in) == 3
    assert (api.process.pid in started_in) == preload


def test_sigkill_of_the_emitter_hands_over_within_an_interval(
        api_server, tmp_path, statsd_daemon, prefix):
    api, request_log, lock_path, _ = _start(
        api_server, tmp_path, statsd_daemon, prefix, server='gthread',
        workers=3)
    api.wait_ready()
    holder = peers.wait_for(lambda: peers.lock_holder(lock_path),
                            message='a lock holder')
    peers.wait_for(lambda: peers.polls(request_log), message='a poll')
    failover, new_pids = peers.sigkill_takeover(request_log, holder)
    # The survivors retry the lock once per interval; the new emitter's
    # first listing request follows at once.
    assert failover <= INTERVAL + peers.SCHEDULING_SLACK, failover
    assert holder not in new_pids and len(new_pids) == 1
    print('failover after SIGKILL: %.2fs' % failover)


def test_a_clean_stop_releases_the_lock_at_once(
        api_server, tmp_path, statsd_daemon, prefix):
    first, request_log, lock_path, conf = _start(
        api_server, tmp_path, statsd_daemon, prefix)
    holder = peers.wait_for(lambda: peers.lock_holder(lock_path),
                            message='a lock holder')
    assert holder == first.process.pid
    second = api_server(conf, fixture_options='request_log = ' + request_log)
    second.wait_ready()
    # The second one tries the lock as it starts, says once that it
    # stands by, and tries again every interval: while the first one
    # polls three more times, it keeps standing by.
    peers.wait_for(lambda: 'pid %d stands by: pid %d holds' % (
        second.process.pid, holder) in second.log,
        message='the second server standing by')
    standing_by = time.time()
    peers.wait_for(lambda: len(peers.polls(request_log, standing_by)) >= 3,
                   message='three more polls')
    assert {pid for _, pid in peers.polls(request_log, standing_by)} == {
        holder}
    assert peers.lock_holder(lock_path) == holder
    # The host lock is a POSIX lock: it has no expiry to wait out. It
    # goes as the process ends (the collector lets it go at exit, the
    # kernel at the latest), and the standby takes it at its next try,
    # as after a SIGKILL. What a clean stop adds is a way out that could
    # hang with the lock held (a collector that would not end): it ends
    # within one interval and the suite's slack.
    first.process.send_signal(signal.SIGINT)
    stopped = time.time()
    peers.wait_for(lambda: peers.lock_holder(lock_path) ==
                   second.process.pid, timeout=10,
                   message='the second server to take over')
    assert time.time() - stopped <= INTERVAL + peers.SCHEDULING_SLACK
    # The lock is handed over first; the process may take longer to exit
    # on a loaded machine.
    peers.wait_exit(first.process, 30)
