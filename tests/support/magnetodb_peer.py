"""MagnetoDB 2015.1 itself as a test peer, driven from the Python 3 suite.

``tools/build-magnetodb-env.sh`` builds the CPython 2.7 virtualenv of a
MagnetoDB 2015.1 deployment and installs this project into it. A
MagnetoDBServer runs that environment's own ``bin/magnetodb-api-server``
or ``bin/magnetodb-api-server-gunicorn`` on a copy of MagnetoDB's own
``etc/`` files, changed only where a deployment of the filter (or a test
host) must change them. Cassandra and the Cassandra nodes' Jolokia agents
are the in-memory fakes of ``tests/magnetodb/``, installed in each
MagnetoDB process by its ``sitecustomize`` and fed by a JSON data file
written here.

What the gauges must be is computed from the data, independently of the
package: MagnetoDB's own arithmetic here (sum over the nodes, divided by
the replication factor, rounded as Python 2 rounds), fed to the one
expected-gauge calculator of the tests (peers.expected_gauges, with the
documented names).
"""

import collections
import decimal
import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request

from tests.support import peers

ROOT = peers.ROOT
BUILD_SCRIPT = os.path.join(ROOT, 'tools', 'build-magnetodb-env.sh')
FAKES = os.path.join(ROOT, 'tests', 'magnetodb')
# The jolokia_endpoint_list of MagnetoDB's etc/magnetodb-api.conf, and the
# replication_factor of its storage_manager_config: the data uses both.
JOLOKIA_NODES = ('http://127.0.0.1:8778/jolokia/',
                 'http://127.0.0.2:8778/jolokia/',
                 'http://127.0.0.3:8778/jolokia/')
REPLICATION_FACTOR = 3
# The auth_uri of the [DEFAULT] of MagnetoDB's api-paste ini files.
KEYSTONE_PORT = 5000
MONITORING_PIPELINE = ('pipeline = connection_handler probe_filter '
                       'faultwrapper rate_limit contextwrapper '
                       'monitoring_app')
FILTER_SECTION = ('\n[filter:statsd]\n'
                  'paste.filter_factory = '
                  'magnetodb_statsd_middleware:filter_factory\n')
MONITORING_PATH = '/v1/monitoring/projects'
POLLER_AGENT = re.compile(r'^magnetodb-statsd-middleware \(pid (\d+)\)$')


class EnvError(Exception):
    """The MagnetoDB environment could not be built; the message is the
    build script's one-line reason."""


class MagnetoDBEnv:
    """The built CPython 2.7 environment (see the build script)."""

    def __init__(self, path):
        self.path = path
        self.bin = os.path.join(path, 'bin')
        self.python = os.path.join(self.bin, 'python')
        self.etc = os.path.join(path, 'src', 'magnetodb-2015.1', 'etc')

    @classmethod
    def build(cls):
        """Run the build script (fast when cached), or raise EnvError."""
        result = subprocess.run(['bash', BUILD_SCRIPT, ROOT],
                                capture_output=True, text=True)
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines()
            raise EnvError(lines[-1] if lines else
                           'build-magnetodb-env.sh exited with %d'
                           % result.returncode)
        return cls(result.stdout.strip().splitlines()[-1])

    def freeze(self, name):
        """The lines of ``freeze-magnetodb.txt`` (before the project was
        installed) or ``freeze-with-filter.txt`` (after)."""
        with open(os.path.join(self.path, 'freeze-%s.txt' % name)) as f:
            return {line.strip() for line in f if line.strip()}

    def tokens(self, tenants):
        """``{tenant: Murmur3 token}``, computed by the driver in the env."""
        script = ('import json, sys\n'
                  'from cassandra.murmur3 import murmur3\n'
                  'tenants = json.load(sys.stdin)\n'
                  'json.dump(dict((t, murmur3(t.encode("utf-8")))'
                  ' for t in tenants), sys.stdout)\n')
        result = subprocess.run([self.python, '-c', script],
                                input=json.dumps(sorted(tenants)),
                                capture_output=True, text=True, check=True,
                                env=_python27_environ(self))
        return json.loads(result.stdout)


def _python27_environ(env, **extra):
    """This process's environment, cleaned for the 2.7 env's processes."""
    environ = {k: v for k, v in os.environ.items()
               if k not in ('PYTHONPATH', 'PYTHONHOME', 'VIRTUAL_ENV',
                            'PYTHONSTARTUP')}
    environ['PATH'] = env.bin + os.pathsep + environ.get('PATH', '')
    environ.update(extra)
    return environ


# -- data ------------------------------------------------------------------

class Table(collections.namedtuple('Table',
                                   'tenant name status size item_count')):
    """One row of table_info, with one size and one item count per node
    (None: the JMX bean is missing there; a string: a non-numeric value)."""

    __slots__ = ()

NOT_ACTIVE = ('CREATING', 'DELETING', 'CREATE_FAILED', 'DELETE_FAILED')
_WORDS = ('orders', 'users', 'events', 'sessions', 'carts', 'logs',
          'metrics', 'audit', 'items', 'profiles')


def project_id(rng):
    """A Keystone project id: 32 hex digits."""
    return '%032x' % rng.getrandbits(128)


def table_name(rng, index):
    """Names as the API allows them, ``.`` and ``-`` included."""
    word = rng.choice(_WORDS)
    shape = index % 5
    if shape == 1:
        return '%s.v%d' % (word, index)
    if shape == 2:
        return '%s-%d' % (word, index)
    if shape == 3:
        return 'Tbl_%s.%s-%d' % (word, rng.choice(_WORDS), index)
    return '%s_%04d' % (word, index)


def make_tables(rng, tenant, count, not_active=0.04, nodes=3):
    """``count`` tables of one project, a few of them not ACTIVE."""
    tables = []
    for index in range(count):
        status = 'ACTIVE'
        if rng.random() < not_active:
            status = rng.choice(NOT_ACTIVE)
        tables.append(Table(
            tenant, table_name(rng, index), status,
            [rng.randrange(0, 5 * 10 ** 6) for _ in range(nodes)],
            [rng.randrange(0, 10 ** 5) for _ in range(nodes)]))
    return tables


def write_data(path, tables):
    """The fakes' data file (see tests/magnetodb/fake_data.py)."""
    document = {'jolokia_nodes': list(JOLOKIA_NODES),
                'tables': [table._asdict() for table in tables]}
    with open(path + '.tmp', 'w') as f:
        json.dump(document, f)
    os.replace(path + '.tmp', path)


def magnetodb_value(per_node):
    """MagnetoDB's figure: ``int(round(sum / float(replication factor)))``
    with Python 2's round (half away from zero)."""
    mean = decimal.Decimal(sum(per_node) / float(REPLICATION_FACTOR))
    return int(mean.quantize(decimal.Decimal(1), decimal.ROUND_HALF_UP))


def expected_gauges(tables, prefix, withheld=(), stuck=()):
    """The table, project and total gauges StatsD must hold for a
    complete listing of ``tables`` (``withheld``, ``stuck``: see
    peers.expected_gauges), with MagnetoDB's figures of each ACTIVE
    table."""
    dataset = collections.OrderedDict()
    for table in tables:
        active = table.status == 'ACTIVE'
        dataset.setdefault(table.tenant, []).append(peers.Row(
            table.name, table.status,
            magnetodb_value(table.size) if active else None,
            magnetodb_value(table.item_count) if active else None))
    return peers.expected_gauges(dataset, prefix, withheld=withheld,
                                 stuck=stuck)


def listing_order(tables, tokens):
    """``[(tenant, name)]`` in the order Cassandra keeps table_info:
    partitions by token, names by their UTF-8 bytes."""
    return sorted(((t.tenant, t.name) for t in tables),
                  key=lambda row: (tokens[row[0]], row[0].encode(),
                                   row[1].encode()))


# -- peers -----------------------------------------------------------------

def keystone_app(environ, start_response):
    """A Keystone v3 version document at the paste ``auth_uri``, enough for
    keystoneclient's discovery in MagnetoDB's Identity health check."""
    if environ['PATH_INFO'].rstrip('/') != '/v3':
        start_response('404 Not Found', [('Content-Type', 'text/plain')])
        return [b'not found\n']
    body = json.dumps({'version': {
        'id': 'v3.0', 'status': 'stable', 'updated': '2013-03-06T00:00:00Z',
        'media-types': [{
            'base': 'application/json',
            'type': 'application/vnd.openstack.identity-v3+json'}],
        'links': [{'rel': 'self',
                   'href': 'http://127.0.0.1:%d/v3/' % KEYSTONE_PORT}]}})
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [body.encode()]


def serve_keystone():
    """The fake Keystone, listening where MagnetoDB's ini expects it."""
    try:
        return peers.LoopbackServer(keystone_app, port=KEYSTONE_PORT)
    except OSError as exc:
        raise RuntimeError('cannot serve the fake Keystone on 127.0.0.1:%d '
                           '(the auth_uri of MagnetoDB\'s api-paste.ini): %s'
                           % (KEYSTONE_PORT, exc))


def set_option(path, section, name, value):
    """Set ``name = value`` in an ini file's section: replace the line that
    sets it, or add one right after the section header."""
    with open(path) as f:
        lines = f.read().splitlines()
    header = lines.index('[%s]' % section)
    end = next((i for i in range(header + 1, len(lines))
                if lines[i].startswith('[')), len(lines))
    setting = re.compile(r'^%s\s*=' % re.escape(name))
    for i in range(header + 1, end):
        if setting.match(lines[i]):
            lines[i] = '%s = %s' % (name, value)
            break
    else:
        lines.insert(header + 1, '%s = %s' % (name, value))
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def replace_section(path, section, body):
    """Give an ini file's section a new body (the header stays)."""
    with open(path) as f:
        lines = f.read().splitlines()
    header = lines.index('[%s]' % section)
    end = next((i for i in range(header + 1, len(lines))
                if lines[i].startswith('[')), len(lines))
    lines[header + 1:end] = body.splitlines() + ['']
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def put_tokenauth_in_front(ini, keystone, in_paste=True):
    """The hardening edit: MagnetoDB's own ``tokenauth`` (keystonemiddleware
    1.5.2) in the monitoring_api pipeline too, where ``rest_api`` has it,
    configured with the password plugin against ``keystone`` (a
    keystone_peer.Keystone): in ``[filter:tokenauth]``, or (``in_paste``
    False) left to a ``[keystone_authtoken]`` group of the oslo.config
    file (see :func:`keystone_authtoken_group`). The paste ``auth_uri``
    (also the health check's Identity) becomes that Keystone's."""
    with open(ini) as f:
        text = f.read()
    statsd_pipeline = MONITORING_PIPELINE.replace(' monitoring_app',
                                                  ' statsd monitoring_app')
    assert statsd_pipeline + '\n' in text, ini
    text = text.replace(statsd_pipeline, statsd_pipeline.replace(
        ' contextwrapper', ' tokenauth contextwrapper'))
    with open(ini, 'w') as f:
        f.write(text)
    set_option(ini, 'DEFAULT', 'auth_uri', keystone.url)
    body = ('paste.filter_factory = '
            'keystonemiddleware.auth_token:filter_factory\n')
    if in_paste:
        body += keystone.authtoken_section('auth_plugin')
    replace_section(ini, 'filter:tokenauth', body)


def keystone_authtoken_group(keystone):
    """``[keystone_authtoken]`` for keystonemiddleware 1.5.2 (its Kilo
    ``auth_plugin`` spelling), as the API's oslo.config file holds it."""
    return '[keystone_authtoken]\n' + keystone.authtoken_section(
        'auth_plugin')


def add_statsd_filter(ini):
    """The operator's edit: ``statsd`` just before monitoring_app in the
    monitoring_api pipeline, and its [filter:statsd] section."""
    with open(ini) as f:
        text = f.read()
    section = text.index('[pipeline:monitoring_api]\n')
    line = text.index(MONITORING_PIPELINE + '\n', section)
    assert line == section + len('[pipeline:monitoring_api]\n'), ini
    text = (text[:line] +
            MONITORING_PIPELINE.replace(' monitoring_app',
                                        ' statsd monitoring_app') +
            text[line + len(MONITORING_PIPELINE):])
    with open(ini, 'w') as f:
        f.write(text + FILTER_SECTION)


Request = collections.namedtuple('Request', 'pid method uri agent')
_ACCESS_LINE = re.compile(r'^<(\d+)> (\S+) (\S+) \S+ "(.*)"$')
# A request answered: wall-clock times received and answered, the HTTP
# status, the rows of a JSON list answer.
TimedRequest = collections.namedtuple(
    'TimedRequest', 'pid received answered status rows uri agent')
_TIMES_LINE = re.compile(r'^(\d+) (\S+) (\S+) (\S+) (\d+) (\S+) "(.*)"$')


class MagnetoDBServer:
    """MagnetoDB 2015.1's own API server on its own etc/ files.

    ``mode`` ``eventlet`` runs ``bin/magnetodb-api-server`` (monkey_patch,
    loadapp, eventlet.wsgi); ``gunicorn`` runs
    ``bin/magnetodb-api-server-gunicorn``, which ``os.system()``s gunicorn
    19.3 with ``--worker-class eventlet`` and ``workers`` workers. The copy
    of ``etc/`` differs from MagnetoDB's only by: the bind address and
    port (and the worker count) in the server's conf, ``rpc_backend =
    fake`` in ``magnetodb-api.conf`` (so the health check's Messaging is
    "Not Implemented" instead of needing RabbitMQ), and, with ``statsd``
    options, the filter in the paste ini and a ``[statsd]`` section; with
    ``keystone``, MagnetoDB's tokenauth in front of the monitoring app too
    (see :func:`put_tokenauth_in_front`).

    Every request served is recorded with its User-Agent in
    ``access.log``: by gunicorn's own access log, or by the test
    instrumentation of ``tests/magnetodb/sitecustomize.py``; with
    ``request_times`` (eventlet mode), also with its times and rows in
    ``request-times.log`` (see :meth:`timed_requests`).
    """

    def __init__(self, env, workdir, data_path, mode='eventlet',
                 statsd=None, workers=3, port=None, request_times=False,
                 keystone=None, keystone_in_paste=True):
        self.env = env
        self.mode = mode
        self.workdir = workdir
        self.data_path = data_path
        self.port = port or peers.free_port()
        self.url = 'http://127.0.0.1:%d' % self.port
        self.access_log = os.path.join(workdir, 'access.log')
        self.times_log = os.path.join(workdir, 'request-times.log')
        self.etc = os.path.join(workdir, 'etc')
        shutil.copytree(env.etc, self.etc)
        gunicorn = mode == 'gunicorn'
        self.paste_ini = os.path.join(
            self.etc, 'api-paste-gunicorn.ini' if gunicorn else
            'api-paste.ini')
        server_conf = os.path.join(
            self.etc, 'magnetodb-api-server-gunicorn.conf' if gunicorn else
            'magnetodb-api-server.conf')
        api_conf = os.path.join(self.etc, 'magnetodb-api.conf')
        set_option(server_conf, 'DEFAULT', 'bind_host', '127.0.0.1')
        set_option(server_conf, 'DEFAULT', 'bind_port', self.port)
        set_option(api_conf, 'DEFAULT', 'rpc_backend', 'fake')
        if statsd is not None:
            add_statsd_filter(self.paste_ini)
            with open(api_conf, 'a') as f:
                f.write('\n' + peers.statsd_section(**statsd))
        if keystone is not None:
            put_tokenauth_in_front(self.paste_ini, keystone,
                                   keystone_in_paste)
            if not keystone_in_paste:
                with open(api_conf, 'a') as f:
                    f.write('\n' + keystone_authtoken_group(keystone))
        tmpdir = os.path.join(workdir, 'tmp')
        os.mkdir(tmpdir)
        environ = _python27_environ(
            env, PYTHONPATH=FAKES, MAGNETODB_FAKE_DATA=data_path,
            TMPDIR=tmpdir)
        if gunicorn:
            set_option(server_conf, 'DEFAULT', 'magnetodb_api_workers',
                       workers)
            # gunicorn 19.3 reads ./gunicorn.conf.py by default: the one
            # way to give it settings that the script's command lacks.
            with open(os.path.join(workdir, 'gunicorn.conf.py'), 'w') as f:
                f.write('accesslog = %r\n'
                        'access_log_format = \'%%(p)s %%(r)s "%%(a)s"\'\n'
                        % self.access_log)
            script = 'magnetodb-api-server-gunicorn'
        else:
            environ['MAGNETODB_TEST_ACCESS_LOG'] = self.access_log
            if request_times:
                environ['MAGNETODB_TEST_REQUEST_TIMES'] = self.times_log
            script = 'magnetodb-api-server'
        self.log_path = os.path.join(workdir, 'server.log')
        self._log = open(self.log_path, 'w')
        self.process = subprocess.Popen(
            [os.path.join(env.bin, script), '--config-file', server_conf],
            cwd=workdir, env=environ, stdout=self._log,
            stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def log(self):
        with open(self.log_path, errors='replace') as f:
            return f.read()

    def our_lines(self):
        """``[(level, message)]`` the collector logged above DEBUG."""
        return [(line.level, line.message)
                for line in peers.log_lines(self.log, ours=True)
                if line.level != 'DEBUG']

    def get(self, path, timeout=60):
        """``(status, body)`` of a GET; an HTTP error status is returned."""
        try:
            with urllib.request.urlopen(self.url + path,
                                        timeout=timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def get_json(self, path):
        status, body = self.get(path)
        assert status == 200, (path, status, body[:500])
        return json.loads(body)

    def wait_ready(self):
        def answers():
            assert self.process.poll() is None, self.log[-3000:]
            try:
                return self.get('/healthcheck', timeout=5)[0] == 200
            except OSError:
                return False
        peers.wait_for(answers, timeout=60,
                       message='MagnetoDB (%s) to answer' % self.mode)
        return self

    def worker_pids(self):
        """The pids that gunicorn says it booted as workers."""
        return {int(pid) for pid in
                re.findall(r'Booting worker with pid: (\d+)', self.log)}

    def requests(self):
        """Every request recorded in the access log, oldest first."""
        if not os.path.exists(self.access_log):
            return []
        with open(self.access_log, errors='replace') as f:
            found = [_ACCESS_LINE.match(line.rstrip('\n')) for line in f]
        return [Request(int(m.group(1)), m.group(2), m.group(3), m.group(4))
                for m in found if m]

    def timed_requests(self):
        """Every request recorded in ``request-times.log`` (the server was
        started with ``request_times``), in the order answered."""
        if not os.path.exists(self.times_log):
            return []
        with open(self.times_log, errors='replace') as f:
            found = [_TIMES_LINE.match(line.rstrip('\n')) for line in f]
        return [TimedRequest(int(m.group(1)), float(m.group(2)),
                             float(m.group(3)), m.group(4), int(m.group(5)),
                             m.group(6), m.group(7))
                for m in found if m]

    def polls(self):
        """``[(polling pid, uri)]`` of the requests the filter sent."""
        polled = []
        for request in self.requests():
            agent = POLLER_AGENT.match(request.agent)
            if agent:
                polled.append((int(agent.group(1)), request.uri))
        return polled

    def polled_cycles(self):
        """The filter's requests grouped by cycle: a group starts at each
        first page of the listing (no ``last_evaluated_project``); the
        last group may still be growing."""
        cycles = []
        for _, uri in self.polls():
            path, _, query = uri.partition('?')
            if (path == MONITORING_PATH
                    and 'last_evaluated_project=' not in query):
                cycles.append([])
            if cycles:
                cycles[-1].append(uri)
        return cycles

    def storage_down(self, down=True):
        """Take the fake Cassandra down (or bring it back) at once."""
        flag = self.data_path + '.down'
        if down:
            open(flag, 'w').close()
        elif os.path.exists(flag):
            os.unlink(flag)

    def stop(self):
        """End the process group started here (the script, and gunicorn
        with its workers in gunicorn mode)."""
        group = self.process.pid
        # gunicorn: SIGINT is its quick shutdown (SIGTERM waits for the
        # requests in flight); the script waits in os.system() meanwhile.
        stop = signal.SIGINT if self.mode == 'gunicorn' else signal.SIGTERM
        try:
            os.killpg(group, stop)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            self.process.poll()
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            os.killpg(group, signal.SIGKILL)
        self.process.wait()
        self._log.close()


def data_rows(listing):
    """``[(tenant, name)]`` of an all-projects monitoring answer."""
    return [(row['tenant'], row['name']) for row in listing]
