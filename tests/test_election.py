"""The host lock: one holder, a folder of this user's own, refusals that say
what to fix. Runs as any user; tests/test_lock_security.py adds the other
users' files and locks."""

import errno
import hashlib
import logging
import os
import pwd
import stat
import tempfile

import pytest

from magnetodb_statsd_middleware import compat
from magnetodb_statsd_middleware import config
from magnetodb_statsd_middleware import election
from magnetodb_statsd_middleware import scheduler
from magnetodb_statsd_middleware.demo import fakeapi
from tests.support import localusers
from tests.support import peers

URL = 'http://127.0.0.1:8480/v1/monitoring/projects'


@pytest.fixture
def temp_dir(tmp_path, monkeypatch):
    """The system temp folder, as the package sees it, is ``tmp_path``."""
    monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path))
    return str(tmp_path)


def _me():
    return 'uid %d (%s)' % (os.geteuid(), pwd.getpwuid(os.geteuid()).pw_name)


def _refusal(path):
    with pytest.raises(election.LockError) as error:
        election.HostLock(path).acquire()
    return str(error.value)


def _holds(path):
    """A forked child of this user that holds the lock until released."""
    return localusers.Child(None, lambda: election.HostLock(path).acquire(),
                            hold=True)


def test_the_default_lock_lives_in_a_folder_of_this_user(temp_dir):
    path = config.default_lock_path(URL)
    folder = os.path.join(temp_dir, 'magnetodb-statsd-%d' % os.geteuid())
    digest = hashlib.sha1(URL.encode('ascii')).hexdigest()[:12]
    assert path == os.path.join(folder, digest + '.lock')
    lock = election.HostLock(path)
    assert lock.acquire()
    made = os.stat(folder)
    assert stat.S_IMODE(made.st_mode) == 0o700
    assert made.st_uid == os.geteuid()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert peers.lock_holder(path) == os.getpid()
    lock.release()


def test_a_folder_others_can_write_is_refused_until_fixed(temp_dir):
    folder = election.default_directory()
    os.mkdir(folder)
    os.chmod(folder, 0o770)
    path = config.default_lock_path(URL)
    assert _refusal(path) == (
        'refused %s: it is writable by other users (mode 0770); '
        'fix: chmod go-w %s' % (folder, folder))
    os.chmod(folder, 0o750)
    lock = election.HostLock(path)
    assert lock.acquire()
    lock.release()


def test_a_symlink_in_place_of_the_folder_is_refused(temp_dir, tmp_path):
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir(mode=0o700)
    folder = election.default_directory()
    os.symlink(str(elsewhere), folder)
    assert _refusal(config.default_lock_path(URL)) == (
        'refused %s: it is a symbolic link; fix: remove %s as root (it is '
        'made again with mode 0700)' % (folder, folder))
    assert os.listdir(str(elsewhere)) == []


def test_a_file_in_place_of_the_folder_is_refused(temp_dir):
    folder = peers.write_file(election.default_directory(), '')
    assert _refusal(config.default_lock_path(URL)) == (
        'refused %s: it is not a directory; fix: remove %s as root (it is '
        'made again with mode 0700)' % (folder, folder))


def test_a_symlink_in_place_of_the_lock_file_is_refused(tmp_path):
    victim = peers.write_file(tmp_path / 'victim', 'precious\n')
    path = str(tmp_path / 'statsd.lock')
    os.symlink(victim, path)
    assert _refusal(path) == (
        'refused %s: it is a symbolic link; fix: remove %s (it is made '
        'again with mode 0600)' % (path, path))
    with open(victim) as f:
        assert f.read() == 'precious\n'


def test_a_folder_in_place_of_the_lock_file_is_refused(tmp_path):
    path = tmp_path / 'statsd.lock'
    path.mkdir()
    assert _refusal(str(path)) == (
        'refused %s: it is not a regular file; fix: remove %s (it is made '
        'again with mode 0600)' % (path, path))


def test_a_lock_file_others_can_write_is_refused(tmp_path):
    path = peers.write_file(tmp_path / 'statsd.lock', '')
    os.chmod(path, 0o666)
    assert _refusal(path) == (
        'refused %s: it is writable by other users (mode 0666); fix: remove '
        '%s (it is made again with mode 0600)' % (path, path))


def test_a_folder_that_cannot_be_made_is_a_clear_error(tmp_path):
    path = str(tmp_path / 'missing' / 'more' / 'x.lock')
    assert _refusal(path) == (
        'cannot create %s: No such file or directory; fix: set [statsd] '
        'lock_path to a file in a directory that only %s can write'
        % (os.path.dirname(path), _me()))


def test_the_host_lock_excludes_other_processes_and_names_them(tmp_path):
    path = str(tmp_path / 'x.lock')
    other = _holds(path)
    try:
        assert other.result is True
        lock = election.HostLock(path)
        assert not lock.acquire()
        assert lock.holder == other.pid == peers.lock_holder(path)
    finally:
        other.release()
    assert lock.acquire() and lock.acquire()
    assert lock.holder is None
    assert peers.lock_holder(path) == os.getpid()
    lock.release()


def test_an_empty_lock_path_always_wins():
    assert election.HostLock('').acquire()


def test_a_name_is_opened_inside_the_open_folder_not_by_path(tmp_path):
    folder = tmp_path / 'folder'
    folder.mkdir()
    dir_fd = os.open(str(folder), os.O_RDONLY)
    try:
        # The folder's name now leads elsewhere: the descriptor still wins.
        os.rename(str(folder), str(tmp_path / 'moved'))
        folder.mkdir()
        fd = compat.open_private('x', os.O_RDWR | os.O_CREAT, 0o600,
                                 dir_fd=dir_fd)
        os.close(fd)
        assert os.listdir(str(tmp_path / 'moved')) == ['x']
        assert os.listdir(str(folder)) == []
        os.symlink('x', str(tmp_path / 'moved' / 'link'))
        with pytest.raises(OSError) as error:
            compat.open_private('link', os.O_RDWR | os.O_NOFOLLOW, 0,
                                dir_fd=dir_fd)
        assert error.value.errno == errno.ELOOP
    finally:
        os.close(dir_fd)


def _collector_lines(caplog):
    """(level, message) of the collector's INFO and above, but its start."""
    return [(r.levelname, r.getMessage()) for r in caplog.records
            if r.name.startswith('magnetodb_statsd_middleware')
            and r.levelno >= logging.INFO
            and 'collector starting' not in r.getMessage()]


def _cycles_sent(udp):
    udp.drain()
    return sum(line.endswith('.totals.tables:2|g') for line in udp.lines)


def _dataset_api(serve):
    return serve(fakeapi.FakeMonitoringAPI(fakeapi.build_dataset(
        projects=1, tables=2)))


def test_a_refused_lock_never_stops_the_metrics_and_says_so_twice(
        serve, udp, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    shared = tmp_path / 'shared'
    shared.mkdir()
    os.chmod(str(shared), 0o1777)
    path = str(shared / 'statsd.lock')
    instance = scheduler.Scheduler(peers.make_settings(
        monitoring_url=_dataset_api(serve).url, statsd_port=udp.port,
        lock_path=path))
    instance.start()
    try:
        # Sent every interval although no process is elected.
        peers.wait_for(lambda: _cycles_sent(udp) >= 2,
                       message='two unelected cycles')
        os.chmod(str(shared), 0o755)
        peers.wait_for(lambda: instance.lock.held, message='the lock')
    finally:
        instance.stop()
    assert _collector_lines(caplog) == [
        ('ERROR', 'host lock failed: refused %s: it is writable by other '
                  'users (mode 1777); until it is fixed every process '
                  'collects and sends, unelected; fix: chmod go-w %s'
                  % (shared, shared)),
        ('INFO', 'host lock recovered'),
        ('INFO', 'pid %d holds %s: this process collects for the host'
                 % (os.getpid(), path))]


def test_a_process_standing_by_names_the_holder_once(
        serve, udp, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    path = str(tmp_path / 'statsd.lock')
    other = _holds(path)
    instance = scheduler.Scheduler(peers.make_settings(
        monitoring_url=_dataset_api(serve).url, statsd_port=udp.port,
        lock_path=path))
    tries = []
    acquire = instance.lock.acquire
    instance.lock.acquire = lambda: tries.append(1) or acquire()
    instance.start()
    try:
        peers.wait_for(lambda: len(tries) >= 3, message='three tries')
        assert udp.drain() == []
    finally:
        instance.stop()
        other.release()
    assert _collector_lines(caplog) == [
        ('INFO', 'pid %d stands by: pid %d holds %s and collects for the '
                 'host' % (os.getpid(), other.pid, path))]
