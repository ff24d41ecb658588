"""One emitting process per host, elected by a POSIX lock on ``lock_path``.

POSIX (``lockf``) locks belong to a process: a forked child never inherits
its parent's lock, the kernel drops the lock when its holder dies, even by
SIGKILL, and every other process can take it at its next try. ``flock``
would follow the shared descriptor into forked children instead.

The POSIX caveat: closing *any* descriptor of the lock file drops the
process's lock, so nothing else in the process may open that file.

Out of other users' reach: whoever can open the lock file can hold the lock
and so switch the host's metrics off, and whoever can write its directory
can put another file or a symbolic link in its place. So the directory must
belong to this user and be writable by nobody else (it is created with mode
0700 when missing), the file likewise (created 0600); each is opened without
following a symbolic link and judged on its open descriptor (``fstat``),
and the file is opened by name inside the directory already judged
(``dir_fd``), so no name can be swapped between the check and the use.
Anything else raises :class:`LockError`, and so does a lock held anyway by
a process of another user (root, or a reader of an old 0644 file): the
kernel names the holder (``F_GETLK``) and ``/proc`` its user, so the caller
never waits on a stranger.
"""

import errno
import fcntl
import os
import pwd
import stat
import struct
import tempfile

from magnetodb_statsd_middleware import compat

# struct flock of F_GETLK: short l_type, l_whence; off_t l_start, l_len;
# pid_t l_pid, padded to its C size by "0q" (Python's off_t is 64-bit).
_FLOCK = 'hhqqi0q'


def default_directory():
    """This user's own folder in the system temp folder."""
    return os.path.join(tempfile.gettempdir(),
                        'magnetodb-statsd-%d' % os.geteuid())


class LockError(Exception):
    """The lock cannot elect: ``problem`` says why, ``fix`` what to do."""

    def __init__(self, problem, fix):
        super(LockError, self).__init__('%s; fix: %s' % (problem, fix))
        self.problem = problem
        self.fix = fix


class HostLock(object):
    """Non-blocking, retryable exclusive lock; an empty path always wins."""

    def __init__(self, path):
        self.path = path
        self._fd = None
        self.held = False
        self.holder = None  # pid of this user's process that holds it

    def acquire(self):
        """True if this process holds the lock now (no waiting).

        False while another process of this user holds it (its pid, the
        one it wrote into the file, is then in :attr:`holder`, or None if
        it has just let go); :class:`LockError` when the lock cannot elect.
        """
        if not self.path or self.held:
            return True
        if self._fd is None:
            self._fd = _open_lock_file(self.path)
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except compat.OS_ERRORS as exc:
            if exc.errno not in (errno.EACCES, errno.EAGAIN):
                raise LockError('cannot lock %s: %s'
                                % (self.path, exc.strerror), _any_fix())
            self.holder = self._holder_of_this_user()
            return False
        self.held = True
        self.holder = None
        # For the operator who wonders which process emits.
        os.ftruncate(self._fd, 0)
        compat.pwrite(self._fd, ('%d\n' % os.getpid()).encode('ascii'), 0)
        return True

    def _holder_of_this_user(self):
        """The pid holding the lock if it is this user's; else LockError."""
        pid = _conflicting_pid(self._fd)
        if pid is None:
            return None
        uid = _process_uid(pid)
        if uid == os.geteuid():
            return pid
        if uid is None and _conflicting_pid(self._fd) != pid:
            return None  # it exited meanwhile, and its /proc entry went
        open_to_others = os.fstat(self._fd).st_mode & (stat.S_IRWXG
                                                        | stat.S_IRWXO)
        if uid is None:
            problem = ('%s is locked by a process this user cannot see '
                       '(pid %d)' % (self.path, pid))
        else:
            problem = '%s is locked by pid %d of %s' % (self.path, pid,
                                                        _user(uid))
        if open_to_others:  # removing it would split the election
            fix = 'stop that process and chmod 600 %s' % self.path
        else:
            fix = ('stop that process (fuser -v %s); run every collector '
                   'of this host as %s' % (self.path, _user(os.geteuid())))
        raise LockError(problem, fix)

    def release(self):
        """Give the lock up, so that another process takes over at once.

        Also right in a forked child: closing the inherited descriptor
        drops only the child's locks, never the parent's.
        """
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None
        self.held = False
        self.holder = None


def _open_lock_file(path):
    """A descriptor of the lock file, every name judged on its descriptor."""
    directory, name = os.path.split(os.path.abspath(path))
    try:
        os.mkdir(directory, 0o700)
    except compat.OS_ERRORS as exc:
        if exc.errno != errno.EEXIST:
            raise LockError('cannot create %s: %s'
                            % (directory, exc.strerror), _any_fix())
    dir_fd = _open_judged(directory, True, directory,
                          os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, 0)
    try:
        return _open_judged(path, False, name,
                            os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600,
                            dir_fd)
    finally:
        os.close(dir_fd)


def _open_judged(path, want_dir, name, flags, mode, dir_fd=None):
    """Open ``name`` (``path``), refused unless :func:`_flaw` is None.

    The decision is taken on the open descriptor; when the open itself
    fails (a symbolic link, a folder of another user's), ``lstat`` only
    words the refusal.
    """
    try:
        fd = compat.open_private(name, flags, mode, dir_fd=dir_fd)
    except compat.OS_ERRORS as exc:
        try:
            found = os.lstat(path)
        except compat.OS_ERRORS:
            found = None
        flaw = found and _flaw(found, want_dir)
        if flaw:
            raise LockError('refused %s: it %s' % (path, flaw),
                            _fix(path, found, want_dir))
        raise LockError('cannot open %s: %s' % (path, exc.strerror),
                        _fix(path, found, want_dir))
    found = os.fstat(fd)
    flaw = _flaw(found, want_dir)
    if flaw:
        os.close(fd)
        raise LockError('refused %s: it %s' % (path, flaw),
                        _fix(path, found, want_dir))
    return fd


def _flaw(found, want_dir):
    """Why a lock folder or file (a stat result) is unsafe, or None."""
    mode = found.st_mode
    if stat.S_ISLNK(mode):
        return 'is a symbolic link'
    if want_dir and not stat.S_ISDIR(mode):
        return 'is not a directory'
    if not want_dir and not stat.S_ISREG(mode):
        return 'is not a regular file'
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        return 'is writable by other users (mode %04o)' % stat.S_IMODE(mode)
    if found.st_uid != os.geteuid():
        return 'belongs to %s, not to %s' % (_user(found.st_uid),
                                             _user(os.geteuid()))
    return None


def _fix(path, found, want_dir):
    """What the operator does about a refused or unopenable name."""
    if not want_dir:
        return 'remove %s (it is made again with mode 0600)' % path
    if (found is not None and stat.S_ISDIR(found.st_mode)
            and found.st_uid == os.geteuid()):
        return 'chmod go-w %s' % path
    if path == default_directory():
        return 'remove %s as root (it is made again with mode 0700)' % path
    return _any_fix()


def _any_fix():
    return ('set [statsd] lock_path to a file in a directory that only %s '
            'can write' % _user(os.geteuid()))


def _user(uid):
    try:
        return 'uid %d (%s)' % (uid, pwd.getpwuid(uid).pw_name)
    except KeyError:
        return 'uid %d' % uid


def _conflicting_pid(fd):
    """The pid the kernel names as holding a lock that excludes ours.

    None when nothing holds it; 0 for a process of another pid namespace
    and -1 for an open file description lock, neither of them ours.
    """
    query = struct.pack(_FLOCK, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
    kind, _, _, _, pid = struct.unpack(
        _FLOCK, fcntl.fcntl(fd, fcntl.F_GETLK, query))
    return None if kind == fcntl.F_UNLCK else pid


def _process_uid(pid):
    """The effective uid of a process, None if this user cannot see it.

    ``/proc/<pid>/status`` rather than the owner of ``/proc/<pid>``: a
    process that changed its uid (gunicorn's ``--user``) is not dumpable,
    and its ``/proc`` folder then belongs to root.
    """
    if pid <= 0:
        return None
    try:
        with open('/proc/%d/status' % pid) as status:
            for line in status:
                if line.startswith('Uid:'):
                    return int(line.split()[2])
    except compat.OS_ERRORS:
        return None
    return None
