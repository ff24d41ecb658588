"""One emitting process per host, elected by a POSIX lock on ``lock_path``.

POSIX (``lockf``) locks belong to a process: a forked child never inherits
its parent's lock, the kernel drops the lock when its holder dies, even by
SIGKILL, and every other process can take it at its next try. ``flock``
would follow the shared descriptor into forked children instead.

The POSIX caveat: closing *any* descriptor of the lock file drops the
process's lock, so nothing else in the process may open that file.
"""

import fcntl
import os

from magnetodb_statsd_middleware import compat


class LockError(Exception):
    """The lock file cannot be opened; the message is the cause."""


class HostLock(object):
    """Non-blocking, retryable exclusive lock; an empty path always wins."""

    def __init__(self, path):
        self.path = path
        self._fd = None
        self.held = False

    def acquire(self):
        """True if this process holds the lock now (no waiting)."""
        if not self.path or self.held:
            return True
        if self._fd is None:
            try:
                self._fd = compat.open_private(
                    self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
            except compat.OS_ERRORS as exc:
                raise LockError('cannot open lock_path %s: %s'
                                % (self.path, exc.strerror))
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except compat.OS_ERRORS:
            return False
        self.held = True
        # For the operator who wonders which process emits.
        os.ftruncate(self._fd, 0)
        compat.pwrite(self._fd, ('%d\n' % os.getpid()).encode('ascii'), 0)
        return True

    def release(self):
        """Give the lock up, so that another process takes over at once.

        Also right in a forked child: closing the inherited descriptor
        drops only the child's locks, never the parent's.
        """
        if self._fd is not None:
            os.close(self._fd)
        self._fd = None
        self.held = False
