"""Gnocchi's statsd daemon as a test peer (Debian's gnocchi-statsd).

Gnocchi's indexer needs PostgreSQL or MySQL: a private PostgreSQL cluster
runs in a temporary folder of its own (``initdb``, then ``postgres`` on a
free loopback port with fsync off, as the ``postgres`` user when the tests
run as root), ``gnocchi-upgrade`` creates the indexer's tables and a file
storage in the test's folder, and ``gnocchi-statsd`` runs in the
foreground on a free UDP port. It stores each StatsD metric as the Gnocchi
metric ``<name>|<type>`` of one generic resource, adding the last value of
each gauge every second under an archive policy with 1 s granularity and
aggregation ``last``. What it stored is read back through Gnocchi's own
Python API by tests/support/gnocchi_store.py, run with Debian's python3.
"""

import glob
import json
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import uuid

from tests.support import peers

GNOCCHI_STATSD = '/usr/bin/gnocchi-statsd'
GNOCCHI_UPGRADE = '/usr/bin/gnocchi-upgrade'
DEBIAN_PYTHON = '/usr/bin/python3'
_STORE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      'gnocchi_store.py')
POLICY = 'magnetodb-statsd-last'

_CONF = """\
[DEFAULT]
debug = false
[indexer]
url = postgresql://postgres@127.0.0.1:%(pg_port)d/postgres
[storage]
driver = file
file_basepath = %(workdir)s/storage
[statsd]
host = 127.0.0.1
port = %(port)d
resource_id = %(resource_id)s
creator = magnetodb-statsd-tests
archive_policy_name = %(policy)s
flush_delay = %(flush_delay)s
"""

# gnocchi-statsd's log line for a metric its indexer refused.
_REFUSED = re.compile(r'Unable to add measure (\S+): ')


def _run(command, **kwargs):
    """The standard output of a command that must succeed."""
    result = peers.run(command, **kwargs)
    assert result.returncode == 0, (command, result.stderr[-6000:])
    return result.stdout


def _postgres_binary(name):
    found = sorted(glob.glob('/usr/lib/postgresql/*/bin/' + name))
    if not found:
        raise RuntimeError('PostgreSQL is not installed: run '
                           'tools/install-peers.sh')
    return found[-1]


class PostgreSQL(object):
    """A throw-away cluster: trust authentication on loopback only."""

    def __init__(self):
        # PostgreSQL refuses to run as root, and the postgres user cannot
        # enter the tests' own (0700) folders: a folder of its own.
        self.folder = tempfile.mkdtemp(prefix='magnetodb-statsd-pg-')
        self._as_user = []
        if os.geteuid() == 0:
            owner = pwd.getpwnam('postgres')
            os.chown(self.folder, owner.pw_uid, owner.pw_gid)
            self._as_user = ['runuser', '-u', 'postgres', '--']
        data = os.path.join(self.folder, 'data')
        _run(self._as_user + [
            _postgres_binary('initdb'), '-D', data, '-A', 'trust',
            '-U', 'postgres', '-E', 'UTF8', '--no-sync'], cwd=self.folder)
        self.port = peers.free_port()
        self.log_path = os.path.join(self.folder, 'postgres.log')
        self._out = open(self.log_path, 'w')
        self.process = subprocess.Popen(self._as_user + [
            _postgres_binary('postgres'), '-D', data, '-h', '127.0.0.1',
            '-p', str(self.port), '-k', self.folder, '-c', 'fsync=off',
            '-c', 'full_page_writes=off', '-c', 'synchronous_commit=off'],
            stdout=self._out, stderr=subprocess.STDOUT, cwd=self.folder,
            close_fds=True)
        peers.wait_for(self._ready, message='PostgreSQL to accept '
                                            'connections')
        self.version = _run([_postgres_binary('postgres'),
                             '--version']).strip()

    @property
    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def _ready(self):
        assert self.process.poll() is None, self.log
        return 'ready to accept connections' in self.log

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()  # "smart" shutdown
            try:
                peers.wait_exit(self.process, 20)
            except AssertionError:
                self.process.kill()
                self.process.wait()
        self._out.close()
        shutil.rmtree(self.folder, ignore_errors=True)


class Gnocchi(object):
    """gnocchi-statsd with its indexer and file storage; it adds what it
    received every ``flush_delay`` seconds."""

    def __init__(self, workdir, flush_delay=1):
        if not os.path.exists(GNOCCHI_STATSD):
            raise RuntimeError('gnocchi-statsd is not installed at %s: run '
                               'tools/install-peers.sh' % GNOCCHI_STATSD)
        self.workdir = workdir
        self.flush_delay = flush_delay
        self.resource_id = str(uuid.uuid4())
        self.process = None
        self.postgresql = PostgreSQL()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self):
        self.port = peers.free_port(socket.SOCK_DGRAM)
        self.conf = peers.write_file(
            os.path.join(self.workdir, 'gnocchi.conf'), _CONF % dict(
                pg_port=self.postgresql.port, workdir=self.workdir,
                port=self.port, resource_id=self.resource_id,
                policy=POLICY, flush_delay=self.flush_delay))
        _run([GNOCCHI_UPGRADE, '--config-file', self.conf,
                   '--sacks-number', '1'], cwd=self.workdir)
        self._store('policy', POLICY)
        self.log_path = os.path.join(self.workdir, 'gnocchi-statsd.log')
        self._out = open(self.log_path, 'w')
        self.process = subprocess.Popen(
            [GNOCCHI_STATSD, '--config-file', self.conf],
            stdout=self._out, stderr=subprocess.STDOUT, cwd=self.workdir,
            close_fds=True)
        peers.wait_for(self._listening, message='gnocchi-statsd to listen')
        self.version = _run(['dpkg-query', '-W', '-f', '${Version}',
                             'gnocchi-statsd']).strip()

    def _store(self, *arguments):
        return _run([DEBIAN_PYTHON, '-I', _STORE, self.conf]
                    + list(arguments), cwd=self.workdir)

    @property
    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def _listening(self):
        assert self.process.poll() is None, self.log
        return 'Started on 127.0.0.1' in self.log

    def gauges(self, prefix=''):
        """``{name: last stored value}`` of the gauges stored under
        ``prefix`` (the name as sent, without Gnocchi's ``|g``)."""
        return dict((name[:-2], value) for name, value
                    in json.loads(self._store('read',
                                              self.resource_id)).items()
                    if name.startswith(prefix) and name.endswith('|g'))

    def refused(self, prefix=''):
        """Names whose metric Gnocchi's indexer refused (logged at each
        flush), without the ``|g``."""
        return set(name.rsplit('|', 1)[0]
                   for name in _REFUSED.findall(self.log)
                   if name.startswith(prefix))

    def dropped(self):
        """Datagrams the kernel dropped because gnocchi-statsd's receive
        buffer was full (the socket's ``drops`` in /proc/net/udp)."""
        local = '0100007F:%04X' % self.port
        with open('/proc/net/udp') as f:
            for line in f.read().splitlines()[1:]:
                fields = line.split()
                if fields[1] == local:
                    return int(fields[-1])
        raise AssertionError('gnocchi-statsd has no socket on %s' % local)

    def stop(self):
        if self.process is not None:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    peers.wait_exit(self.process, 10)
                except AssertionError:
                    self.process.kill()
                    self.process.wait()
            self._out.close()
        self.postgresql.stop()
