"""Other local users, for the tests that keep the host lock out of their reach.

CI runs as root. The tests create two system users when missing (the
service user that runs the API under test, and a stranger who plants files
and holds locks), run the API server as the service user through setpriv,
and act as either user in forked children that drop their privileges
without an exec, so the child keeps every module the test imported.
"""

import collections
import os
import pickle
import pwd
import sys
import traceback

from tests.support import peers

User = collections.namedtuple('User', 'name uid gid')

SERVICE = 'msd-test-api'
STRANGER = 'msd-test-other'


def missing_tools():
    """Why these tests cannot run here, or None."""
    if os.geteuid() != 0:
        return 'switching users needs root (CI runs as root)'
    for tool in ('setpriv', 'useradd'):
        if peers.run(['which', tool]).returncode != 0:
            return '%s is not installed (util-linux, passwd)' % tool
    return None


def ensure_user(name):
    """The system user ``name``, created when missing (by this run or by
    another one at the same moment)."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        made = peers.run(['useradd', '--system', '--user-group',
                          '--no-create-home', '--home-dir', '/nonexistent',
                          '--shell', '/usr/sbin/nologin', name])
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise RuntimeError('useradd %s failed: %s' % (name, made.stderr))
    return User(name, entry.pw_uid, entry.pw_gid)


def setpriv(user, read_everything=False):
    """The command prefix that runs a command as ``user``, in no group.

    ``read_everything`` keeps CAP_DAC_READ_SEARCH, the one capability that
    lets the process read and search any file and folder and nothing more:
    the interpreter under test may live in root's 0700 home (pyenv), out
    of every other user's reach. Writing, creating and locking files stay
    as unprivileged as the user's own.
    """
    prefix = ['setpriv', '--reuid=%d' % user.uid, '--regid=%d' % user.gid,
              '--clear-groups']
    if read_everything:
        prefix += ['--inh-caps=+dac_read_search',
                   '--ambient-caps=+dac_read_search']
    return prefix


def interpreter_prefix(user, env):
    """setpriv's prefix that lets ``user`` run this very interpreter with
    the package: without any capability where it can."""
    probe = ('import sys, eventlet, magnetodb_statsd_middleware; '
             'sys.stdout.write(sys.version)')
    for read_everything in (False, True):
        prefix = setpriv(user, read_everything)
        ran = peers.run(prefix + [sys.executable, '-c', probe], env=env,
                        cwd='/')
        # A libpython found elsewhere would run another build: compare.
        if ran.returncode == 0 and ran.stdout == sys.version:
            return prefix
    raise RuntimeError('%s cannot run %s: %s'
                       % (user.name, sys.executable, ran.stderr))


class Child(object):
    """``action()`` run as ``user`` in a forked child of the test.

    :attr:`result` is what it returned (pickled through a pipe); an
    exception fails the test with the child's traceback. With ``hold``
    the child then waits until :meth:`release`, so that a lock it took
    stays held (a POSIX lock dies with its process).
    """

    def __init__(self, user, action, hold=False):
        results, results_w = os.pipe()
        release_r, self._release = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # pragma: no cover (the child)
            os.close(results)
            os.close(self._release)
            try:
                if user is not None:
                    os.setgroups([])
                    os.setgid(user.gid)
                    os.setuid(user.uid)
                outcome = (True, action())
            except BaseException:
                outcome = (False, traceback.format_exc())
            try:
                os.write(results_w, pickle.dumps(outcome, 2))
                os.close(results_w)
                if hold:
                    os.read(release_r, 1)
            finally:
                os._exit(0)
        os.close(results_w)
        os.close(release_r)
        chunks = []
        while True:
            chunk = os.read(results, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(results)
        if not hold:
            self.release()
        if not chunks:
            self.release()
            raise AssertionError('the child as %s died' % (user,))
        done, self.result = pickle.loads(b''.join(chunks))
        if not done:
            self.release()
            raise AssertionError('in the child as %s:\n%s'
                                 % (user, self.result))

    def release(self):
        """Let the child exit, and reap it."""
        if self._release is not None:
            os.close(self._release)
            self._release = None
            os.waitpid(self.pid, 0)


def as_user(user, action):
    """What ``action()`` returns when run as ``user`` (None: as root)."""
    return Child(user, action).result
