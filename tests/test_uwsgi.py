"""uWSGI, the real server, as operators run it: the master loads the paste
app and forks its workers in C (or each worker loads it, ``lazy-apps``).

The collector never runs a thread in the master (a thread holding the GIL
at a C fork hangs every worker), one worker collects for the host and the
others take over when it dies; a uWSGI without Python threads gets one
ERROR that names the setting.
"""

import os
import re
import sys

import pytest

from tests.support import peers

INTERVAL = 1
STARTS = 10
REQUESTS_PER_START = 6
MODES = pytest.mark.parametrize('lazy_apps', [False, True],
                                ids=['prefork', 'lazy-apps'])
# pyuwsgi 2.0.19.1, the last uWSGI for 2.7, runs no Python threads
# without enable-threads; on 3.x PyPI's uWSGI (2.0.30) always runs them,
# so Debian 12's uWSGI 2.0.21 (on Debian's Python 3.11) shows that older
# default there.
THREADS_OFF_SERVER = 'uwsgi' if sys.version_info[0] == 2 else 'uwsgi-debian'


def _start(api_server, tmp_path, statsd_daemon, prefix, lazy_apps,
           server='uwsgi', **options):
    workdir = tmp_path / ('run%d' % len(list(tmp_path.iterdir())))
    workdir.mkdir()
    request_log = str(workdir / 'requests.log')
    lock_path = str(workdir / 'statsd.lock')
    conf = peers.statsd_section(**peers.statsd_options(
        statsd_daemon.port, prefix, interval=INTERVAL, lock_path=lock_path))
    api = api_server(conf, server=server, workers=3, lazy_apps=lazy_apps,
                     fixture_options='projects = 3\ntables = 5\n'
                     'request_log = %s' % request_log, **options)
    return api, request_log, lock_path


def _collectors(log):
    return {int(pid) for pid in
            re.findall(r'collector starting in pid (\d+)', log)}


def _threads(pid):
    return len(os.listdir('/proc/%d/task' % pid))


def _children(pid):
    """The pids of the processes ``pid`` forked (its workers)."""
    with open('/proc/%d/task/%d/children' % (pid, pid)) as f:
        return [int(child) for child in f.read().split()]


def _stop(api, loads):
    """Stop, once the app has been loaded ``loads`` times (by the master,
    or by each worker with ``lazy-apps``) or 20 s have passed: a uWSGI
    worker told to stop while it loads the app never ends, with or without
    the filter (``api.stop`` then kills it after 15 s)."""
    try:
        peers.wait_for(lambda: api.log.count('WSGI app 0 (mountpoint=')
                       >= loads, message='every app loaded')
    except AssertionError:
        pass  # not what these tests judge: the stop takes longer
    api.stop()


@pytest.mark.timeout(400)
@MODES
def test_every_start_answers_and_one_worker_collects(
        api_server, tmp_path, statsd_daemon, prefix, lazy_apps):
    answered = 0
    for start in range(STARTS):
        api, request_log, lock_path = _start(
            api_server, tmp_path, statsd_daemon, prefix, lazy_apps)
        api.wait_ready()
        for _ in range(REQUESTS_PER_START):
            assert api.get()[0] == 200
        answered += 1
        polls = peers.wait_for(lambda: peers.polls(request_log),
                               message='a poll')
        master = api.process.pid
        pollers = {pid for _, pid in polls}
        assert pollers == {peers.lock_holder(lock_path)}, (start, api.log)
        assert master not in pollers
        collectors = _collectors(api.log)
        assert master not in collectors and pollers <= collectors
        # uWSGI's master runs no thread of its own: any second one would
        # be a collector.
        assert _threads(master) == 1
        _stop(api, 3 if lazy_apps else 1)
    print('uWSGI %s: %d of %d starts answered, one polling worker each'
          % ('lazy-apps' if lazy_apps else 'prefork', answered, STARTS))


@MODES
def test_sigkill_of_the_collecting_worker_hands_over_within_an_interval(
        api_server, tmp_path, statsd_daemon, prefix, lazy_apps):
    api, request_log, lock_path = _start(
        api_server, tmp_path, statsd_daemon, prefix, lazy_apps)
    api.wait_ready()
    peers.wait_for(lambda: peers.polls(request_log), message='a poll')
    holder = peers.lock_holder(lock_path)
    assert holder not in (0, api.process.pid)
    failover, new_pids = peers.sigkill_takeover(request_log, holder)
    # The other workers retry the lock once per interval (uWSGI also
    # forks a new worker, which may win it).
    assert failover <= INTERVAL + peers.SCHEDULING_SLACK, failover
    assert holder not in new_pids and len(new_pids) == 1
    assert api.process.pid not in new_pids
    _stop(api, 4 if lazy_apps else 1)  # uWSGI's new worker loads it too
    print('uWSGI %s: takeover %.2fs after SIGKILL of the collecting worker'
          % ('lazy-apps' if lazy_apps else 'prefork', failover))


@MODES
def test_without_python_threads_one_error_names_enable_threads(
        api_server, tmp_path, statsd_daemon, prefix, lazy_apps):
    api, request_log, _ = _start(
        api_server, tmp_path, statsd_daemon, prefix, lazy_apps,
        server=THREADS_OFF_SERVER, enable_threads=False)
    api.wait_ready()
    # Whatever would start a collector has run once every process has
    # loaded the app (the master, or each worker with lazy-apps) and
    # workers have served requests (a worker's first one starts it).
    loads = 3 if lazy_apps else 1
    peers.wait_for(lambda: api.log.count('WSGI app 0 (mountpoint=')
                   >= loads, message='every app loaded')
    for _ in range(REQUESTS_PER_START):
        assert api.get()[0] == 200
    # A thread started there would exist even if it never got the GIL:
    # no process of the server runs a second one.
    master = api.process.pid
    processes = [master] + _children(master)
    assert len(processes) == 4, processes
    assert [_threads(pid) for pid in processes] == [1, 1, 1, 1]
    log = api.log
    assert 'Python threads support is disabled' in log
    errors = [line.message for line in peers.log_lines(log)
              if line.level == 'ERROR']
    assert len(errors) == 1, errors
    assert 'enable-threads = true' in errors[0]
    assert not _collectors(log)
    assert not peers.polls(request_log)
    _stop(api, loads)
    print(errors[0])
