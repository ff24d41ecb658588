"""The host lock out of other users' reach, tried as another local user would.

The API runs as an unprivileged service user; a stranger (a third uid)
plants files and holds locks in the shared temp folder first. Whatever is
planted, every gauge still reaches the real StatsD daemon, and each refusal
is one ERROR line when it starts and one INFO line when it ends.

Switching users needs root, as in CI; elsewhere these tests are skipped
with that reason. The shared temp folder is a folder made like /tmp (root's,
sticky, writable by everyone) and given to the server as TMPDIR, so that
runs side by side never meet.
"""

import collections
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from magnetodb_statsd_middleware import election
from magnetodb_statsd_middleware.demo import fakeapi
from tests.support import localusers
from tests.support import peers

WHY_NOT = localusers.missing_tools()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=str(WHY_NOT))

INTERVAL = 1
DATASET = dict(projects=3, tables=4, seed=1)
FIXTURE_OPTIONS = 'projects = 3\ntables = 4\nseed = 1'
UNELECTED = 'until it is fixed every process collects and sends, unelected'

Shared = collections.namedtuple('Shared', 'base tmp')


@pytest.fixture(scope='module')
def service():
    return localusers.ensure_user(localusers.SERVICE)


@pytest.fixture(scope='module')
def stranger():
    return localusers.ensure_user(localusers.STRANGER)


@pytest.fixture(scope='module')
def run_as_service(service):
    return localusers.interpreter_prefix(
        service, dict(os.environ, PYTHONPATH=peers.ROOT))


@pytest.fixture
def shared():
    base = tempfile.mkdtemp(prefix='msd-lock-')
    os.chmod(base, 0o755)
    tmp = os.path.join(base, 'tmp')
    os.mkdir(tmp)
    os.chmod(tmp, 0o1777)
    yield Shared(base, tmp)
    shutil.rmtree(base)


def _service_dir(shared, service, name, mode=0o755):
    """A folder of the service user's own (e.g. /var/lib/magnetodb)."""
    path = os.path.join(shared.base, name)
    os.mkdir(path)
    os.chown(path, service.uid, service.gid)
    os.chmod(path, mode)
    return path


@pytest.fixture
def service_api(shared, service, run_as_service):
    """``service_api(conf, **options)``: a peers.APIServer run as the
    service user, with the shared temp folder as its TMPDIR."""
    servers = []

    def start(conf, **options):
        workdir = _service_dir(shared, service, 'server%d' % len(servers))
        umask = os.umask(0o022)  # its files must be readable to it
        try:
            server = peers.APIServer(workdir, conf, run_as=run_as_service,
                                     env={'TMPDIR': shared.tmp}, **options)
        finally:
            os.umask(umask)
        servers.append(server)
        peers.wait_for(lambda: _uid_of(server.process.pid) == service.uid,
                       message='the server to run as ' + service.name)
        return server

    yield start
    for server in servers:
        server.stop()


def _uid_of(pid):
    with open('/proc/%d/status' % pid) as status:
        return [int(line.split()[2]) for line in status
                if line.startswith('Uid:')][0]


def _conf(daemon, prefix, **extra):
    return peers.statsd_section(**peers.statsd_options(
        daemon.port, prefix, dict(interval=INTERVAL), **extra))


def _user(user):
    return 'uid %d (%s)' % (user.uid, user.name)


def _default_dir(shared, user):
    return os.path.join(shared.tmp, 'magnetodb-statsd-%d' % user.uid)


def _digest(url):
    return hashlib.sha1(url.encode('ascii')).hexdigest()[:12]


def _default_lock(shared, user, url):
    return os.path.join(_default_dir(shared, user), _digest(url) + '.lock')


def _log_lines(api):
    """``(pid, level, message)`` of the collector's lines in the log, but
    its start line and its DEBUG."""
    return [(line.pid, line.level, line.message)
            for line in peers.log_lines(api.log, ours=True)
            if line.level != 'DEBUG'
            and 'collector starting' not in line.message]


def _messages(api):
    return [(level, message) for _, level, message in _log_lines(api)]


def _show(api):
    """The collector's lines, for the record (pytest -rP shows them)."""
    print('\n'.join('%d %s %s' % line for line in _log_lines(api)))


def _wait_for_line(api, text):
    return peers.wait_for(
        lambda: [m for _, m in _messages(api) if text in m],
        timeout=30, message='%r in the server log' % text)


def _wait_for_every_gauge(daemon, prefix):
    expected = peers.expected_gauges(fakeapi.build_dataset(**DATASET),
                                     prefix)
    daemon.wait_for_gauges(prefix, expected, timeout=30)


def _holds_now(api, path):
    """The server's collector holds ``path``, in a folder made for it."""
    folder = os.stat(os.path.dirname(path))
    assert oct(folder.st_mode & 0o7777) == oct(0o700)
    assert oct(os.stat(path).st_mode & 0o7777) == oct(0o600)
    assert peers.lock_holder(path) == api.process.pid
    return folder.st_uid


# The unit level, in forked children without any capability: the very
# permission checks of the kernel, as the service user meets them.

def _acquire_as(user, shared, path):
    """What HostLock(path).acquire() gives ``user``: True, False or the
    LockError's text."""
    def attempt():
        tempfile.tempdir = shared.tmp
        try:
            return election.HostLock(path).acquire()
        except election.LockError as exc:
            return str(exc)
    return localusers.as_user(user, attempt)


@pytest.mark.parametrize('mode', [0o700, 0o755], ids=['0700', '0755'])
def test_a_strangers_folder_is_refused_whether_or_not_it_opens(
        shared, service, stranger, mode):
    folder = _default_dir(shared, service)
    localusers.as_user(stranger, lambda: os.mkdir(folder, mode))
    path = os.path.join(folder, 'x.lock')
    assert _acquire_as(service, shared, path) == (
        'refused %s: it belongs to %s, not to %s; fix: remove %s as root (it '
        'is made again with mode 0700)' % (folder, _user(stranger),
                                           _user(service), folder))


def test_the_stranger_cannot_reach_the_default_lock(
        shared, service, stranger):
    path = _default_lock(shared, service, 'http://127.0.0.1:1/')
    assert _acquire_as(service, shared, path) is True

    def reach():
        try:
            os.open(path, os.O_RDONLY)
        except OSError as exc:
            return exc.strerror
    assert localusers.as_user(stranger, reach) == 'Permission denied'


def test_a_lock_file_of_root_is_refused(shared, service):
    folder = _service_dir(shared, service, 'var-lib', 0o700)
    path = os.path.join(folder, 'statsd.lock')
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))  # as root
    assert _acquire_as(service, shared, path) == (
        'refused %s: it belongs to uid 0 (root), not to %s; fix: remove %s '
        '(it is made again with mode 0600)' % (path, _user(service), path))


def test_a_lock_held_by_root_is_an_error(shared, service):
    path = _default_lock(shared, service, 'http://127.0.0.1:1/')
    assert _acquire_as(service, shared, path) is True

    def lock():  # as root, e.g. a magnetodb-statsd run by root by mistake
        fcntl.lockf(os.open(path, os.O_RDWR), fcntl.LOCK_EX | fcntl.LOCK_NB)
    root = localusers.Child(None, lock, hold=True)
    try:
        assert _acquire_as(service, shared, path) == (
            '%s is locked by pid %d of uid 0 (root); fix: stop that process '
            '(fuser -v %s); run every collector of this host as %s'
            % (path, root.pid, path, _user(service)))
    finally:
        root.release()
    assert _acquire_as(service, shared, path) is True


# End to end: the API server as the service user, the real StatsD daemon.

def _old_private_file(path):
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def _old_locked_file(path):
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o666)
    os.fchmod(fd, 0o666)
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _old_symlink(path):
    os.symlink(os.path.join(os.path.dirname(os.path.dirname(path)),
                            'victim'), path)


@pytest.mark.parametrize('plant', [_old_private_file, _old_locked_file,
                                   _old_symlink])
def test_a_trap_at_the_old_shared_name_changes_nothing(
        service_api, shared, service, stranger, statsd_daemon, prefix,
        plant):
    victim = peers.write_file(os.path.join(shared.base, 'victim'), 'mine\n')
    os.chown(victim, service.uid, service.gid)
    port = peers.free_port()
    url = 'http://127.0.0.1:%d%s' % (port, peers.MONITORING_PATH)
    old = os.path.join(shared.tmp, 'magnetodb-statsd-%s.lock' % _digest(url))
    trap = localusers.Child(stranger, lambda: plant(old), hold=True)
    try:
        api = service_api(_conf(statsd_daemon, prefix), port=port,
                          fixture_options=FIXTURE_OPTIONS)
        _wait_for_every_gauge(statsd_daemon, prefix)
        path = _default_lock(shared, service, url)
        assert _holds_now(api, path) == service.uid
        assert _messages(api) == [
            ('INFO', 'pid %d holds %s: this process collects for the host'
                     % (api.process.pid, path))]
    finally:
        trap.release()
    _show(api)
    with open(victim) as f:
        assert f.read() == 'mine\n'


def _strangers_folder(path):
    os.mkdir(path, 0o700)


def _strangers_symlink(path):
    os.mkdir(path + '-real', 0o700)
    os.symlink(path + '-real', path)


def _strangers_file(path):
    peers.write_file(path, '')


def _folder_open_to_all(path):
    os.mkdir(path)
    os.chmod(path, 0o777)


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.remove(path)


HIJACKS = {
    # by whom, how, the problem logged, the fix logged, the fix done
    'stranger-folder': (
        'stranger', _strangers_folder, 'it belongs to {stranger}, not to '
        '{service}', 'remove {folder} as root (it is made again with mode '
        '0700)', _remove),
    'stranger-symlink': (
        'stranger', _strangers_symlink, 'it is a symbolic link',
        'remove {folder} as root (it is made again with mode 0700)',
        _remove),
    'stranger-file': (
        'stranger', _strangers_file, 'it is not a directory',
        'remove {folder} as root (it is made again with mode 0700)',
        _remove),
    'open-to-all': (
        'service', _folder_open_to_all,
        'it is writable by other users (mode 0777)', 'chmod go-w {folder}',
        lambda path: os.chmod(path, 0o700)),
}


@pytest.mark.parametrize('hijack', sorted(HIJACKS))
def test_a_hijacked_default_folder_is_refused_and_metrics_go_on(
        service_api, shared, service, stranger, statsd_daemon, prefix,
        hijack):
    by, plant, problem, fix, mend = HIJACKS[hijack]
    folder = _default_dir(shared, service)
    users = {'service': service, 'stranger': stranger}
    localusers.as_user(users[by], lambda: plant(folder))
    api = service_api(_conf(statsd_daemon, prefix),
                      fixture_options=FIXTURE_OPTIONS)
    _wait_for_every_gauge(statsd_daemon, prefix)
    names = dict(folder=folder, service=_user(service),
                 stranger=_user(stranger))
    refusal = ('host lock failed: refused %s: %s; %s; fix: %s'
               % (folder, problem.format(**names), UNELECTED,
                  fix.format(**names)))
    assert _messages(api) == [('ERROR', refusal)]
    mend(folder)  # what the operator does
    path = _default_lock(shared, service, api.monitoring_url)
    _wait_for_line(api, 'holds')
    assert _messages(api) == [
        ('ERROR', refusal), ('INFO', 'host lock recovered'),
        ('INFO', 'pid %d holds %s: this process collects for the host'
                 % (api.process.pid, path))]
    assert _holds_now(api, path) == service.uid
    _show(api)


def test_a_sticky_shared_folder_as_lock_path_is_refused(
        service_api, shared, service, statsd_daemon, prefix):
    path = os.path.join(shared.tmp, 'statsd.lock')
    api = service_api(_conf(statsd_daemon, prefix, lock_path=path),
                      fixture_options=FIXTURE_OPTIONS)
    _wait_for_every_gauge(statsd_daemon, prefix)
    assert _messages(api) == [(
        'ERROR', 'host lock failed: refused %s: it is writable by other '
                 'users (mode 1777); %s; fix: set [statsd] lock_path to a '
                 'file in a directory that only %s can write'
                 % (shared.tmp, UNELECTED, _user(service)))]
    assert not os.path.exists(path)
    _show(api)


def test_a_lock_held_by_a_strangers_process_is_an_error_until_it_ends(
        service_api, shared, service, stranger, statsd_daemon, prefix):
    folder = _service_dir(shared, service, 'var-lib')
    path = os.path.join(folder, 'statsd.lock')
    # Left by an older release, which made its lock file 0644.
    localusers.as_user(service, lambda: os.close(
        os.open(path, os.O_CREAT | os.O_RDWR, 0o644)))

    def read_lock():
        fcntl.lockf(os.open(path, os.O_RDONLY),
                    fcntl.LOCK_SH | fcntl.LOCK_NB)
    holder = localusers.Child(stranger, read_lock, hold=True)
    try:
        api = service_api(_conf(statsd_daemon, prefix, lock_path=path),
                          fixture_options=FIXTURE_OPTIONS)
        _wait_for_every_gauge(statsd_daemon, prefix)
        error = ('host lock failed: %s is locked by pid %d of %s; %s; fix: '
                 'stop that process and chmod 600 %s'
                 % (path, holder.pid, _user(stranger), UNELECTED, path))
        assert _messages(api) == [('ERROR', error)]
    finally:
        holder.release()
    _wait_for_line(api, 'holds')
    assert _messages(api) == [
        ('ERROR', error), ('INFO', 'host lock recovered'),
        ('INFO', 'pid %d holds %s: this process collects for the host'
                 % (api.process.pid, path))]
    assert peers.lock_holder(path) == api.process.pid
    _show(api)


def _standing_by(api, holder):
    return sorted(pid for pid, level, message in _log_lines(api)
                  if message.startswith('pid %d stands by: pid %d holds '
                                        % (pid, holder)))


def test_the_election_is_unchanged_for_an_unprivileged_service(
        service_api, shared, service, statsd_daemon, prefix,
        run_as_service):
    logs = _service_dir(shared, service, 'logs')
    request_log = os.path.join(logs, 'requests.log')
    api = service_api(_conf(statsd_daemon, prefix), server='gthread',
                      workers=3, fixture_options=FIXTURE_OPTIONS
                      + '\nrequest_log = %s' % request_log)
    api.wait_ready()
    path = _default_lock(shared, service, api.monitoring_url)
    holder = peers.wait_for(lambda: peers.lock_holder(path),
                            message='a lock holder')
    started = time.time()
    peers.wait_for(lambda: len(peers.polls(request_log, started)) >= 3,
                   message='three polls')
    assert {pid for _, pid in peers.polls(request_log, started)} == {holder}
    # The two other workers stand by, each saying so once.
    others = peers.wait_for(lambda: len(_standing_by(api, holder)) == 2
                            and _standing_by(api, holder),
                            message='two workers standing by')
    assert holder not in others
    assert not {level for _, level, _ in _log_lines(api)} & {'WARNING',
                                                              'ERROR'}

    os.kill(holder, signal.SIGKILL)
    killed = time.time()
    takeover = peers.takeover_time(request_log, killed, holder)
    assert takeover - killed <= INTERVAL + peers.SCHEDULING_SLACK, \
        takeover - killed
    print('failover after SIGKILL: %.2fs' % (takeover - killed))
    successor = peers.wait_for(lambda: peers.lock_holder(path) != holder
                               and peers.lock_holder(path),
                               message='the new holder')
    # A standing-by worker, or the one gunicorn started in its place.
    assert successor != holder

    # The standalone command, as the same user, shares the same lock.
    stderr = open(os.path.join(shared.base, 'command.log'), 'w+')
    command = subprocess.Popen(
        run_as_service + [sys.executable, '-m',
                          'magnetodb_statsd_middleware.cli', '--config-file',
                          os.path.join(os.path.dirname(api.log_path),
                                       'magnetodb-api.conf')],
        stderr=stderr, close_fds=True, cwd='/',
        env=dict(os.environ, PYTHONPATH=peers.ROOT, TMPDIR=shared.tmp))
    try:
        line = 'INFO magnetodb_statsd_middleware.scheduler: pid %d stands ' \
               'by: pid %d holds %s and collects for the host' \
               % (command.pid, successor, path)

        def logged():
            stderr.seek(0)
            return line in stderr.read()
        peers.wait_for(logged, message='the command standing by')
        print('the command: ' + line)
    finally:
        command.terminate()
        peers.wait_exit(command, 10)
        stderr.close()
    assert peers.lock_holder(path) == successor
    _show(api)
