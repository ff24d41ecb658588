"""A real Keystone as a test peer: PyPI ``keystone`` 30.0.0, v3 only.

``tools/install-peers.sh`` installs it into a CPython 3 virtualenv of its
own, outside the clone. A :class:`Keystone` gives it a sqlite database and
Fernet keys in a folder of its own (``keystone-manage db_sync``,
``fernet_setup``, ``credential_setup``, ``bootstrap`` with public, internal
and admin endpoints: keystonemiddleware 1.5.2 asks the catalog for the
admin one), a short ``[token] expiration`` so that tests see tokens
renewed, and serves ``keystone.wsgi.api:application`` with a small
threaded wsgiref runner (that module parses ``sys.argv`` with oslo.config,
so gunicorn's or uWSGI's command lines make it exit). The runner writes
one line per request to ``access.log``: time, method, path, status and
User-Agent, from which the tests count the token requests.

Users made at set-up, each with the password ``<name>-secret``:
``admin`` (bootstrap's), ``magnetodb`` (role ``service`` in project
``service``: keystonemiddleware validates tokens as this user) and
``statsd`` (role ``member`` in project ``service``: the collector).
"""

import collections
import os
import re
import subprocess

from magnetodb_statsd_middleware import compat
from tests.support import peers

VENV = os.path.join(peers.CACHE, 'keystone')
PYTHON = os.path.join(VENV, 'bin', 'python')
MANAGE = os.path.join(VENV, 'bin', 'keystone-manage')
SERVICE_PROJECT = 'service'
TOKENS_PATH = '/v3/auth/tokens'

RUNNER = '''\
"""keystone.wsgi.api served by a threaded wsgiref server, with an access
log: python runner.py PORT ACCESS_LOG (the config comes from
OS_KEYSTONE_CONFIG_FILES)."""
import socketserver
import sys
import time
from wsgiref import simple_server

port, access_log = int(sys.argv[1]), sys.argv[2]
del sys.argv[1:]  # keystone.wsgi.api parses sys.argv
from keystone.wsgi import api  # noqa: E402

log = open(access_log, 'a', buffering=1)


class Server(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    daemon_threads = True


class Handler(simple_server.WSGIRequestHandler):
    def log_message(self, *args):
        pass


def logged(environ, start_response):
    def start(status, headers, exc_info=None):
        log.write('%.3f %s %s %s "%s"\\n' % (
            time.time(), environ['REQUEST_METHOD'], environ['PATH_INFO'],
            status.split()[0], environ.get('HTTP_USER_AGENT', '')))
        return start_response(status, headers, exc_info)
    return api.application(environ, start)


simple_server.make_server('127.0.0.1', port, logged, server_class=Server,
                          handler_class=Handler).serve_forever()
'''

CONF = '''\
[DEFAULT]
log_file = {workdir}/keystone.log
[database]
connection = sqlite:///{workdir}/keystone.db
[token]
provider = fernet
expiration = {expiration}
[fernet_tokens]
key_repository = {workdir}/fernet-keys
[fernet_receipts]
key_repository = {workdir}/fernet-keys
[credential]
key_repository = {workdir}/credential-keys
[cache]
enabled = false
'''

Request = collections.namedtuple('Request', 'time method path status agent')
_LINE = re.compile(r'^(\S+) (\S+) (\S+) (\d+) "(.*)"$')


WRONG_PASSWORD = 'not-the-statsd-password'
# The tests' [token] expiration, and the collector's request_timeout with
# it: a token is renewed when less than request_timeout of its life
# remains, so each one serves about EXPIRATION - REQUEST_TIMEOUT seconds
# of one-second cycles, and a test sees renewals.
EXPIRATION = 12
REQUEST_TIMEOUT = 3
# The collector's User-Agent, in Keystone's access log.
AGENT = 'magnetodb-statsd-middleware'


def password(user):
    return '%s-secret' % user


class Keystone(object):
    """Keystone on ``127.0.0.1:port``; ``url`` is its ``/v3``."""

    def __init__(self, workdir, expiration=3600):
        if not os.path.exists(MANAGE):
            raise RuntimeError('Keystone is not installed in %s: run '
                               'tools/install-peers.sh' % VENV)
        self.workdir = workdir
        self.port = peers.free_port()
        self.url = 'http://127.0.0.1:%d/v3' % self.port
        self.access_log = os.path.join(workdir, 'access.log')
        self.conf = peers.write_file(
            os.path.join(workdir, 'keystone.conf'),
            CONF.format(workdir=workdir, expiration=expiration))
        self.runner = peers.write_file(os.path.join(workdir, 'runner.py'),
                                       RUNNER)
        self._environ = dict(
            (k, v) for k, v in os.environ.items()
            if k not in ('PYTHONPATH', 'PYTHONHOME', 'VIRTUAL_ENV'))
        self._environ['OS_KEYSTONE_CONFIG_FILES'] = self.conf
        user = str(os.getuid())
        group = str(os.getgid())
        self._manage('db_sync')
        self._manage('fernet_setup', '--keystone-user', user,
                     '--keystone-group', group)
        self._manage('credential_setup', '--keystone-user', user,
                     '--keystone-group', group)
        self._manage('bootstrap', '--bootstrap-password', password('admin'),
                     '--bootstrap-admin-url', self.url,
                     '--bootstrap-internal-url', self.url,
                     '--bootstrap-public-url', self.url,
                     '--bootstrap-region-id', 'RegionOne')
        for name, role in (('magnetodb', 'service'), ('statsd', 'member')):
            self._manage('bootstrap', '--bootstrap-username', name,
                         '--bootstrap-password', password(name),
                         '--bootstrap-project-name', SERVICE_PROJECT,
                         '--bootstrap-role-name', role)
        self.process = None
        self.start()

    def _manage(self, *args):
        result = peers.run([MANAGE, '--config-file', self.conf] + list(args),
                           timeout=120, env=self._environ)
        if result.returncode != 0:
            raise RuntimeError('keystone-manage %s failed: %s'
                               % (args[0], result.stderr[-2000:]))

    def start(self):
        """Serve (again, on the same port) and wait for ``/v3``."""
        self._log = open(os.path.join(self.workdir, 'runner.log'), 'a')
        self.process = subprocess.Popen(
            [PYTHON, self.runner, str(self.port), self.access_log],
            stdout=self._log, stderr=subprocess.STDOUT, env=self._environ,
            close_fds=True)

        def answers():
            assert self.process.poll() is None, self.log
            try:
                return peers.http_get(self.url, timeout=5)[0] == 200
            except compat.OS_ERRORS:
                return False
        peers.wait_for(answers, timeout=60, message='Keystone to answer')

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            peers.wait_exit(self.process, 15)
            self._log.close()

    @property
    def log(self):
        with open(os.path.join(self.workdir, 'runner.log')) as f:
            return f.read()

    def requests(self):
        """Every request served, oldest first."""
        if not os.path.exists(self.access_log):
            return []
        with open(self.access_log) as f:
            found = [_LINE.match(line.rstrip('\n')) for line in f]
        return [Request(float(m.group(1)), m.group(2), m.group(3),
                        int(m.group(4)), m.group(5)) for m in found if m]

    def token_requests(self, agent):
        """The token requests (POST /v3/auth/tokens) whose User-Agent
        starts with ``agent``."""
        return [r for r in self.requests()
                if r.method == 'POST' and r.path == TOKENS_PATH
                and r.agent.startswith(agent)]

    def renewed_and_reused(self, daemon, prefix, before):
        """Wait for the collector's second token since ``before`` token
        requests; assert that it renewed the first one only when less
        than REQUEST_TIMEOUT of its life remained (Keystone gives whole
        seconds: one more is allowed), and that the first one served
        more than one cycle: a token per cycle, or one renewed early,
        fails however fast the cycles run. Returns ``(token requests,
        completed cycles)``."""
        peers.wait_for(
            lambda: len(self.token_requests(AGENT)) >= before + 2,
            timeout=2 * EXPIRATION, interval=0.5, message='a renewal')
        tokens = self.token_requests(AGENT)[before:]
        completed = prefix + '.collector.cycles_completed'
        cycles = daemon.counters(completed)[completed]
        assert cycles > len(tokens), (cycles, tokens)
        served = tokens[1].time - tokens[0].time
        assert served >= EXPIRATION - REQUEST_TIMEOUT - 1, (served, tokens)
        return tokens, cycles

    def credentials(self, user='statsd', wrong_password=False):
        """keystoneauth's options for ``user`` of project service."""
        return collections.OrderedDict([
            ('auth_url', self.url), ('username', user),
            ('password', WRONG_PASSWORD if wrong_password
             else password(user)),
            ('project_name', SERVICE_PROJECT),
            ('user_domain_id', 'default'),
            ('project_domain_id', 'default')])

    def authtoken_section(self, plugin_key):
        """A ``[filter:authtoken]``-style body for keystonemiddleware with
        the password plugin (``plugin_key``: ``auth_plugin`` for 1.5.2,
        ``auth_type`` for current releases)."""
        lines = ['%s = password' % plugin_key,
                 '%s = %s' % ('auth_uri' if plugin_key == 'auth_plugin'
                              else 'www_authenticate_uri', self.url)]
        lines += ['%s = %s' % item
                  for item in self.credentials('magnetodb').items()]
        return '\n'.join(lines) + '\n'
