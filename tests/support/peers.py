"""Real peers for the tests: a loopback monitoring API, a real Etsy statsd
daemon read back through its management port, plain UDP receivers, and
the expected gauges of a dataset, computed independently of the package."""

import collections
import contextlib
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from wsgiref import simple_server

from six.moves import socketserver
from six.moves.urllib import request as urllib_request

from magnetodb_statsd_middleware import compat
from magnetodb_statsd_middleware import config

# The repository root: tests/support/ is two levels down.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
# Built once per machine, outside the clone (tools/install-peers.sh).
CACHE = os.environ.get('MAGNETODB_STATSD_CACHE', os.path.join(
    os.path.expanduser('~'), '.cache', 'magnetodb-statsd-middleware'))
STATSD_JS = os.environ.get(
    'STATSD_JS',
    os.path.join(CACHE, 'statsd', 'node_modules', 'statsd', 'stats.js'))
MONITORING_PATH = '/v1/monitoring/projects'
# How much later than the code under test promises a process may get the
# CPU on the CI machine: two cores shared by three tox environments, each
# running API servers, StatsD daemons and redis (CI once saw a failover
# 2 s past its bound). A wall-clock assertion allows the promise plus this;
# a test that must tell the promise apart from a slower behaviour sets its
# timings so the two differ by more than this.
SCHEDULING_SLACK = 3.0
_DEVNULL = open(os.devnull, 'w')


def wait_for(condition, timeout=20.0, interval=0.05, message='condition'):
    """Poll ``condition`` until it returns a true value, or fail."""
    deadline = compat.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if compat.monotonic() > deadline:
            raise AssertionError('timed out after %gs waiting for %s'
                                 % (timeout, message))
        time.sleep(interval)


def free_port(kind=socket.SOCK_STREAM):
    with contextlib.closing(socket.socket(socket.AF_INET, kind)) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def http_get(url, timeout=10, data=None):
    """``(status, body bytes)`` of a GET (a POST with ``data``)."""
    with contextlib.closing(urllib_request.urlopen(url, data=data,
                                                   timeout=timeout)) as r:
        return r.getcode(), r.read()


Completed = collections.namedtuple('Completed', 'returncode stdout stderr')


def run(command, timeout=60, **kwargs):
    """The Completed ``(returncode, stdout, stderr)`` of a command; text."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, close_fds=True,
                               universal_newlines=True, **kwargs)
    timer = threading.Timer(timeout, process.kill)
    timer.start()
    try:
        out, err = process.communicate()
    finally:
        timer.cancel()
    return Completed(process.returncode, out, err)


def wait_exit(process, timeout):
    """The exit code of ``process``, which must end within ``timeout``."""
    wait_for(lambda: process.poll() is not None, timeout=timeout,
             message='process %d to exit' % process.pid)
    return process.returncode


def write_file(path, text):
    """Write a text file; returns its path as a string."""
    with open(str(path), 'w') as f:
        f.write(text)
    return str(path)


def send_udp(port, lines):
    """Send metric lines to a daemon on loopback, one datagram each."""
    with contextlib.closing(socket.socket(socket.AF_INET,
                                          socket.SOCK_DGRAM)) as sock:
        for line in lines:
            sock.sendto(line.encode('utf-8'), ('127.0.0.1', port))


def start_thread(target):
    thread = threading.Thread(target=target)
    thread.daemon = True
    thread.start()
    return thread


class _QuietHandler(simple_server.WSGIRequestHandler):
    def log_message(self, *args):
        pass


class _ThreadingServer(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    daemon_threads = True
    tls = None  # an ssl.SSLContext: HTTPS

    def get_request(self):
        sock, address = self.socket.accept()
        if self.tls is not None:  # the handshake in the request's thread
            sock = self.tls.wrap_socket(sock, server_side=True,
                                        do_handshake_on_connect=False)
        return sock, address

    def finish_request(self, request, client_address):
        if self.tls is not None:
            try:
                request.do_handshake()
            except compat.OS_ERRORS:
                return  # a client that refused the certificate
        simple_server.WSGIServer.finish_request(self, request,
                                                client_address)


class LoopbackServer(object):
    """A WSGI app served over real loopback HTTP in a thread; HTTPS with
    ``tls``, an ``ssl.SSLContext`` holding the server's certificate."""

    def __init__(self, app, port=0, tls=None):
        self.app = app
        self._server = simple_server.make_server(
            '127.0.0.1', port, app, server_class=_ThreadingServer,
            handler_class=_QuietHandler)
        self._server.tls = tls
        self.port = self._server.server_address[1]
        self.url = '%s://127.0.0.1:%d%s' % ('https' if tls else 'http',
                                            self.port, MONITORING_PATH)
        # close() waits up to one poll interval: keep it short.
        self._thread = start_thread(
            lambda: self._server.serve_forever(poll_interval=0.05))

    def close(self):
        self._server.shutdown()
        self._server.server_close()


class CertificateAuthority(object):
    """A private CA made with the openssl command, and a certificate it
    signed for 127.0.0.1 (``server_context()`` serves with it)."""

    def __init__(self, workdir, name):
        self.ca_file = os.path.join(workdir, name + '-ca.pem')
        self._key = os.path.join(workdir, name + '-ca.key')
        self._server_cert = os.path.join(workdir, name + '-server.pem')
        self._server_key = os.path.join(workdir, name + '-server.key')
        csr = os.path.join(workdir, name + '-server.csr')
        # The extensions that Python 3.13's strict verification requires.
        ext = write_file(os.path.join(workdir, name + '-ext.cnf'), (
            'subjectAltName = IP:127.0.0.1\n'
            'basicConstraints = critical, CA:FALSE\n'
            'keyUsage = critical, digitalSignature, keyEncipherment\n'
            'extendedKeyUsage = serverAuth\n'
            'subjectKeyIdentifier = hash\n'
            'authorityKeyIdentifier = keyid, issuer\n'))
        for command in (
                ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days',
                 '2', '-subj', '/CN=%s test CA' % name, '-keyout',
                 self._key, '-out', self.ca_file,
                 '-addext', 'basicConstraints = critical, CA:TRUE',
                 '-addext', 'keyUsage = critical, keyCertSign, cRLSign'],
                ['req', '-newkey', 'rsa:2048', '-nodes', '-subj',
                 '/CN=127.0.0.1', '-keyout', self._server_key, '-out', csr],
                ['x509', '-req', '-in', csr, '-CA', self.ca_file, '-CAkey',
                 self._key, '-CAcreateserial', '-days', '2', '-extfile',
                 ext, '-out', self._server_cert]):
            result = run(['openssl'] + command)
            assert result.returncode == 0, result.stderr

    def server_context(self):
        import ssl
        context = ssl.SSLContext(getattr(ssl, 'PROTOCOL_TLS_SERVER',
                                         ssl.PROTOCOL_SSLv23))
        context.load_cert_chain(self._server_cert, self._server_key)
        return context


class Recorder(object):
    """WSGI middleware: ``(path, query, status)`` of every request."""

    def __init__(self, app):
        self.app = app
        self.requests = []

    def __call__(self, environ, start_response):
        path = environ['PATH_INFO']  # PEP 3333: bytes as latin-1 on 3.x
        if not isinstance(path, bytes):
            path = path.encode('latin-1')
        record = [path.decode('utf-8', 'replace'),
                  environ.get('QUERY_STRING', ''), None]
        self.requests.append(record)

        def start(status, headers, exc_info=None):
            record[2] = int(status.split()[0])
            return start_response(status, headers, exc_info)

        return self.app(environ, start)

    def reset(self):
        del self.requests[:]

    def resources(self):
        """Projects read through their own resource."""
        prefix = MONITORING_PATH + '/'
        return [path[len(prefix):] for path, _, _ in self.requests
                if path.startswith(prefix)]

    def failed(self):
        return [r for r in self.requests if r[2] != 200]


class UDPReceiver(object):
    """Collects the datagrams sent to it."""

    def __init__(self, port=0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
        self.sock.bind(('127.0.0.1', port))
        self.sock.settimeout(0.3)
        self.port = self.sock.getsockname()[1]
        self.datagrams = []

    def drain(self):
        """Read until the socket stays quiet for 0.3 s."""
        try:
            while True:
                self.datagrams.append(self.sock.recv(65536))
        except socket.timeout:
            pass
        return self.datagrams

    @property
    def lines(self):
        return [line for data in self.datagrams
                for line in data.decode('ascii').split('\n')]

    def close(self):
        self.sock.close()


_VALUE = re.compile(r"(?:'((?:[^'\\]|\\.)*)'|([A-Za-z_$][\w$]*)): "
                    r"(-?[0-9][0-9.e+]*)")


class StatsdDaemon(object):
    """The real Etsy statsd daemon, read back through its management port.

    With ``graphite_port`` its graphite backend, with the daemon's default
    namespaces (``stats.gauges.`` and the like), sends every
    ``flush_interval`` ms to a carbon line receiver on that port.
    """

    def __init__(self, workdir, port=None, graphite_port=None,
                 flush_interval=60000):
        if not os.path.exists(STATSD_JS):
            raise RuntimeError('the statsd daemon is not installed at %s: '
                               'run tools/install-peers.sh' % STATSD_JS)
        self.port = port or free_port(socket.SOCK_DGRAM)
        self.mgmt_port = free_port()
        backend = 'backends: []'
        if graphite_port:
            backend = ('backends: ["./backends/graphite"], graphiteHost: '
                       '"127.0.0.1", graphitePort: %d' % graphite_port)
        conf = os.path.join(workdir, 'statsd.js')
        with open(conf, 'w') as f:
            f.write('{ port: %d, address: "127.0.0.1", mgmt_port: %d, '
                    'mgmt_address: "127.0.0.1", flushInterval: %d, %s }'
                    % (self.port, self.mgmt_port, flush_interval, backend))
        self.log = open(os.path.join(workdir, 'statsd.log'), 'a')
        self.process = subprocess.Popen(['node', STATSD_JS, conf],
                                        stdout=self.log, stderr=self.log,
                                        close_fds=True)
        wait_for(self._answers, message='the statsd daemon to start')

    def _answers(self):
        try:
            self.command('health', end=b'\n')
            return True
        except compat.OS_ERRORS:
            return False

    def command(self, command, end=b'END\n\n', timeout=10):
        """Send a management command and read its whole answer."""
        with contextlib.closing(socket.create_connection(
                ('127.0.0.1', self.mgmt_port), timeout=timeout)) as sock:
            sock.sendall(command.encode() + b'\n')
            # A list, not +=: a million gauges are a 160 MB answer.
            chunks = [b'']
            while not (chunks[-1].endswith(end)
                       or b''.join(chunks[-2:]).endswith(end)):
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
            return b''.join(chunks).decode()

    def send(self, lines):
        """Send metric lines to the daemon, one datagram each."""
        send_udp(self.port, lines)

    def _values(self, command, prefix, timeout=10):
        found = _VALUE.findall(self.command(command, timeout=timeout))
        return {(quoted or bare): float(value)
                for quoted, bare, value in found
                if (quoted or bare).startswith(prefix)}

    def gauges(self, prefix='', timeout=10):
        """``timeout``: the daemon formats a million gauges in 15 s."""
        return self._values('gauges', prefix, timeout)

    def delete_gauges(self, prefix):
        """Forget every gauge under ``prefix``, to see them arrive again."""
        names = sorted(self.gauges(prefix))
        for start in range(0, len(names), 200):
            self.command('delgauges ' + ' '.join(names[start:start + 200]))

    def data_gauges(self, prefix, where=None):
        """The gauges under ``prefix`` that ``where(name)`` selects: the
        table, project and total ones by default."""
        where = where or data_gauge
        return dict((name, value) for name, value
                    in self.gauges(prefix + '.').items() if where(name))

    def wait_for_gauges(self, prefix, expected, where=None, strict=False,
                        timeout=60, interval=0.5):
        """Wait until the gauges under ``prefix`` that ``where(name)``
        selects (the table, project and total ones by default) are
        ``expected``, no more, no fewer, and return them: a burst may
        lose datagrams, and every cycle sends them all again. With
        ``strict``, none may hold another value meanwhile."""
        def arrived():
            found = self.data_gauges(prefix, where)
            if strict:
                wrong = dict((k, v) for k, v in found.items()
                             if expected.get(k) != v)
                assert not wrong, wrong
            return found if found == expected else None
        try:
            return wait_for(arrived, timeout=timeout, interval=interval,
                            message='%d gauges under %s' % (len(expected),
                                                            prefix))
        except AssertionError:
            assert self.data_gauges(prefix, where) == expected  # the diff
            raise

    def counters(self, prefix=''):
        return self._values('counters', prefix)

    def stats(self):
        text = self.command('stats')
        return dict(line.split(': ', 1) for line in text.splitlines()
                    if ': ' in line)

    def bad_lines(self):
        """Lines the daemon could not parse since it started (shared by
        the session's tests: compare counts, never assume 0)."""
        return int(self.stats()['messages.bad_lines_seen'])

    def stop(self):
        self.process.terminate()
        wait_exit(self.process, 10)
        self.log.close()


def statsd_options(port, prefix, defaults=(), **options):
    """A collector's ``[statsd]`` options, the one builder of the tests:
    on, sending to StatsD on loopback ``port`` under ``prefix``, reading
    ``$api`` (an APIServer's own monitoring API) every second; then a
    test module's ``defaults`` (a dict), then ``options``, each adding to
    or changing what comes before."""
    values = collections.OrderedDict([
        ('enabled', 'true'), ('statsd_port', port), ('metric_prefix', prefix),
        ('interval', 1), ('monitoring_url', '$api')])
    values.update(defaults)
    values.update(options)
    return values


def statsd_section(**options):
    """A ``[statsd]`` section of an oslo.config file, in the given order
    (see :func:`statsd_options`)."""
    return '[statsd]\n' + ''.join('%s = %s\n' % item
                                   for item in options.items())


def make_settings(**overrides):
    values = dict(enabled=True, lock_path='', interval=1, statsd_port=1)
    values.update(overrides)
    return config.Settings(**values)


# MagnetoDB 2015.1's statuses, each sent every cycle (doc/source/metrics.rst).
STATUSES = ('active', 'creating', 'deleting', 'create_failed',
            'delete_failed')


# A table as the expected gauges read it (any object with these
# attributes will do, the fixture API's tables too).
Row = collections.namedtuple('Row', 'name status size item_count')


def _expected(dataset, metrics, key, tables=None, withheld=(), stuck=()):
    """Every gauge a cycle must leave for ``dataset``, whatever the naming:
    ``key(level, quantity, project=None, table=None, status=None)`` names
    each (level is 'table', 'project' or 'total'); only the ``(project,
    table)`` in ``tables`` get table gauges when it is given. The projects
    in ``withheld`` were read without their statuses: no counts by status
    for them, nor totals of those; ``stuck`` holds the ``(project, table)``
    counted as stuck."""
    gauges = {}
    totals = dict.fromkeys(metrics, 0)
    by_status = dict.fromkeys(STATUSES, 0)
    count = 0
    for project, rows in dataset.items():
        sums = dict.fromkeys(metrics, 0)
        statuses = dict.fromkeys(STATUSES, 0)
        for table in rows:
            count += 1
            status = table.status.lower()
            statuses[status] = statuses.get(status, 0) + 1
            if table.status != 'ACTIVE':
                continue
            for metric in metrics:
                value = getattr(table, metric)
                if tables is None or (project, table.name) in tables:
                    gauges[key('table', metric, project, table.name)] = value
                sums[metric] += value
        for metric in metrics:
            gauges[key('project', metric, project)] = sums[metric]
            totals[metric] += sums[metric]
        gauges[key('project', 'tables', project)] = len(rows)
        if project in withheld:
            continue
        for status, tables_in in statuses.items():
            gauges[key('project', 'tables_by_status', project,
                       status=status)] = tables_in
            by_status[status] = by_status.get(status, 0) + tables_in
        gauges[key('project', 'stuck', project)] = len(
            [name for p, name in stuck if p == project])
    for metric in metrics:
        gauges[key('total', metric)] = totals[metric]
    gauges[key('total', 'tables')] = count
    gauges[key('total', 'projects')] = len(dataset)
    if not set(withheld) & set(dataset):
        for status, tables_in in by_status.items():
            gauges[key('total', 'tables_by_status', status=status)] = \
                tables_in
        gauges[key('total', 'stuck')] = len(stuck)
    return gauges


# The default max_name_length (doc/source/configuration.rst).
MAX_NAME_LENGTH = 253


def expected_gauges(dataset, prefix, metrics=('size', 'item_count'),
                    max_length=MAX_NAME_LENGTH, withheld=(), stuck=()):
    """What StatsD must hold for ``dataset``, ``{project: [table]}``
    with each table's ``name``, ``status``, ``size`` and ``item_count``
    (the fixture API's tables, or MagnetoDB's figures: see
    magnetodb_peer.expected_gauges), computed independently of the
    package."""
    plural = {'table': 'tables', 'project': 'projects', 'total': 'totals'}

    def key(level, quantity, project=None, table=None, status=None):
        raws = [raw for raw in (project, table) if raw is not None]
        parts = [plural[level]] + ['%s'] * len(raws) + [quantity]
        if status is not None:
            parts.append(expected_name_part(status))
        return expected_dotted_name(prefix, '.'.join(parts), raws,
                                    max_length)
    return _expected(dataset, metrics, key, withheld=withheld, stuck=stuck)


# The design's name rule, written once for every test, independently of
# the package (doc/source/metrics.rst, "Making a name safe").

def _replaced(raw, label=False):
    """``raw`` with each character outside ``A-Z a-z 0-9 _ -`` (and ``.``
    in a label value) replaced by ``_``."""
    return re.sub(r'[^A-Za-z0-9_.-]' if label else r'[^A-Za-z0-9_-]', '_',
                  raw)


def _digest(raw):
    """``_`` and 8 hex digits of the SHA-1 of ``raw``'s UTF-8: what
    follows a name part (or label value) that was changed or cut."""
    return '_' + hashlib.sha1(compat.utf8(raw)).hexdigest()[:8]


def _cut(raw, now, excess, label=False):
    """A name part (or label value) ``now``, made safe from ``raw``, cut
    by ``excess`` characters to what fits, at least 1, with ``raw``'s
    digest; as it is when it has 10 characters or fewer."""
    if len(now) <= 10:
        return now
    keep = max(1, len(now) - excess - 9)
    return _replaced(raw, label)[:keep] + _digest(raw)


def expected_label(raw, lower):
    """doc/source/metrics.rst, "Labeled metrics": a label value made
    safe."""
    safe = _replaced(raw, label=True)
    if lower:
        safe = safe.lower()
    if safe == raw and len(raw) <= 200:
        return raw
    return safe[:191] + _digest(raw)


def expected_name_part(raw):
    """One part of a dotted name (a project id, a table name) made safe:
    as it is when nothing had to change, else replaced and digested."""
    safe = _replaced(raw)
    if safe == raw:
        return raw
    return safe + _digest(raw)


def expected_dotted_name(prefix, dotted, raw_parts, max_length=MAX_NAME_LENGTH,
                         keys=()):
    """doc/source/metrics.rst, "Name length", written again for the tests: the
    name ``<prefix>.<dotted>`` with each ``%s`` a safe raw part; while it is
    longer than ``max_length``, the last part longer than 10 characters (then
    the one before; a part whose label key in ``keys`` is a status or a
    subsystem only after all the others) is cut to what fits, at least 1
    character, and gets ``_`` and 8 hex digits of its raw value's SHA-1."""
    parts = [expected_name_part(raw) for raw in raw_parts]
    words = [i for i, key in enumerate(keys) if key in ('status',
                                                         'subsystem')]
    order = [i for i in reversed(range(len(parts))) if i not in words]
    for index in order + words[::-1]:
        excess = len(prefix + '.' + dotted % tuple(parts)) - max_length
        if excess <= 0:
            break
        parts[index] = _cut(raw_parts[index], parts[index], excess)
    return prefix + '.' + dotted % tuple(parts)


# The dialects that write their labels into the name.
NAME_LABEL_MODES = ('graphite', 'influxdb', 'librato', 'signalfx')


def labeled_name(mode, name, labels):
    """``name`` with ``labels`` (sorted by key) as the ``mode`` dialect of
    :data:`NAME_LABEL_MODES` writes it before ``:n|g``."""
    pairs = sorted(labels.items())
    if mode == 'graphite':
        return name + ''.join(';%s=%s' % pair for pair in pairs)
    if mode == 'influxdb':
        return name + ''.join(',%s=%s' % pair for pair in pairs)
    tags = ','.join('%s=%s' % pair for pair in pairs)
    if not tags:
        return name
    return name + ('#%s' % tags if mode == 'librato' else '[%s]' % tags)


def expected_labels(mode, name, raw_labels, user_labels=(),
                    max_length=MAX_NAME_LENGTH, lower=False):
    """doc/source/metrics.rst, "Name length", for labels, written again for
    the tests: ``{key: value}`` of the quantity ``name`` whose own labels
    have the raw values ``raw_labels``, user labels merged in. In the
    dialects that write their labels into the name, while the name with
    them is longer than ``max_length``, the table's value (then the
    project's, the host's; a status or subsystem after all the others) is
    cut to what fits, at least 1 character with ``.`` kept, and gets ``_``
    and 8 hex digits of its raw value's SHA-1."""
    safe = dict((key, expected_label(raw, lower))
                for key, raw in raw_labels.items())
    words = ('status', 'subsystem')
    order = (sorted([k for k in safe if k not in words], reverse=True)
             + sorted([k for k in safe if k in words], reverse=True))

    def labels():
        found = dict(user_labels)
        found.update(safe)
        return found
    if mode not in NAME_LABEL_MODES:
        return labels()
    for key in order:
        excess = len(labeled_name(mode, name, labels())) - max_length
        if excess <= 0:
            break
        safe[key] = _cut(raw_labels[key], safe[key], excess, label=True)
    return labels()


def graphite_key(name, labels):
    """``name;k1=v1;k2=v2`` with the labels sorted by key: a Graphite 1.1
    tagged series, and the key Etsy statsd 0.9 makes of DogStatsD tags."""
    return name + ''.join(';%s=%s' % item for item in sorted(labels.items()))


def expected_labeled(dataset, prefix, lower, user_labels=(), tables=None,
                     metrics=('size', 'item_count'), withheld=(), stuck=(),
                     mode=None, max_length=MAX_NAME_LENGTH):
    """``{graphite_key: value}`` that StatsD must hold for ``dataset`` with
    labels; only the ``(project, table)`` in ``tables`` get table series
    when it is given (``withheld``, ``stuck``: see :func:`_expected`).
    With a ``mode`` of :data:`NAME_LABEL_MODES` the keys are that dialect's
    names with their labels, cut to ``max_length``."""

    def key(level, quantity, project=None, table=None, status=None):
        name = '%s.%s.%s' % (prefix, level, quantity)
        labels = expected_labels(
            mode, name, dict((k, v) for k, v in (
                ('project', project), ('table', table), ('status', status))
                if v is not None), user_labels, max_length, lower)
        if mode in NAME_LABEL_MODES:
            return labeled_name(mode, name, labels)
        return graphite_key(name, labels)
    return _expected(dataset, metrics, key, tables, withheld, stuck)


def fixture_stats(base_url):
    """Request counts of a FakeMonitoringAPI built with control = true."""
    return json.loads(http_get(base_url + '/_fixture')[1].decode('utf-8'))


def set_fault(base_url, name):
    http_get(base_url + '/_fixture/fault?name=' + name, data=b'')


def set_unreadable(base_url, project=None, table=None):
    """Make one table's statistics fail; without arguments, mend all."""
    query = ('project=%s&table=%s' % (compat.quote(project),
                                      compat.quote(table))
             if project is not None else 'readable=1')
    http_get(base_url + '/_fixture/unreadable?' + query, data=b'')



PASTE_INI = """\
[DEFAULT]
oslo_config_args = --config-file $here/magnetodb-api.conf

[composite:main]
use = egg:Paste#urlmap
/v1/data = rest_api
/v1/monitoring/projects = monitoring_api
/healthcheck = health_check

[pipeline:rest_api]
pipeline = statsd data_app

[pipeline:monitoring_api]
pipeline = {monitoring_pipeline}

[filter:statsd]
paste.filter_factory = magnetodb_statsd_middleware:filter_factory
{filter_options}

[app:data_app]
paste.app_factory = tests.support.apps:echo_app_factory
{data_options}

[app:monitoring_app]
paste.app_factory = magnetodb_statsd_middleware.demo.fakeapi:app_factory
control = true
{fixture_options}

[app:health_check]
paste.app_factory = magnetodb_statsd_middleware.demo.fakeapi:health_app_factory

[server:main]
# gunicorn 19 --paste needs it, as in MagnetoDB's api-paste-gunicorn.ini.
use = egg:gunicorn#main
{extra_sections}"""
MONITORING_PIPELINE = 'statsd monitoring_app'


# uWSGI reads the collector's logging from the ini (--paste-logger).
UWSGI_LOGGING = """
[loggers]
keys = root

[handlers]
keys = stderr

[formatters]
keys = plain

[logger_root]
level = INFO
handlers = stderr

[handler_stderr]
class = StreamHandler
args = (sys.stderr,)
formatter = plain

[formatter_plain]
format = %(process)d %(levelname)s %(name)s: %(message)s
"""


def uwsgi_command(server):
    """How to run a real uWSGI.

    ``uwsgi``: PyPI's pyuwsgi in this environment (2.0.30 on 3.x, where
    Python threads are always on; 2.0.19.1 on 2.7, where they are off
    without enable-threads). ``uwsgi-debian``: Debian 12's uWSGI 2.0.21
    (threads off by default) on Debian's Python 3.11, with the filter's
    libraries in a virtualenv that tools/install-peers.sh makes.
    """
    if server == 'uwsgi':
        return [sys.executable, '-c', 'import pyuwsgi; pyuwsgi.run()']
    return ['/usr/bin/uwsgi_python3', '--virtualenv',
            os.path.join(CACHE, 'uwsgi-debian')]


# gunicorn 19.3 (MagnetoDB 2015.1's) cannot be run with "python -m", and
# knows its gthread worker by class path only. Its eventlet workers are
# run by MagnetoDB's own gunicorn script (magnetodb_peer).
GUNICORN = ('from tests.support import apps; apps.configure_logging(); '
            'from gunicorn.app.wsgiapp import run; run()')
WORKER_CLASSES = {'sync': 'gunicorn.workers.sync.SyncWorker',
                  'gthread': 'gunicorn.workers.gthread.ThreadWorker'}


class APIServer(object):
    """magnetodb-api stand-in in a subprocess: eventlet.wsgi, gunicorn or
    uWSGI (``uwsgi``, ``uwsgi-debian``: see :func:`uwsgi_command`; the
    master loads the app and forks ``workers``, unless ``lazy_apps``).

    The ini is shaped like MagnetoDB's (urlmap composite, oslo_config_args)
    and lists the statsd filter in two pipelines; the monitoring app is the
    fake API, so the collector reads its own server over loopback.
    ``run_as`` is a command prefix (e.g. localusers' setpriv) and ``env``
    more environment variables, for a server run as another user.
    ``monitoring_pipeline`` and ``extra_sections`` put more filters (say,
    keystonemiddleware's) in front of the monitoring app.
    """

    def __init__(self, workdir, conf, server='eventlet', workers=3,
                 preload=False, filter_options='', fixture_options='',
                 data_options='', port=None, threads=4, run_as=(),
                 env=None, lazy_apps=False, enable_threads=True,
                 monitoring_pipeline=MONITORING_PIPELINE, extra_sections=''):
        self.port = port or free_port()
        self.url = 'http://127.0.0.1:%d' % self.port
        self.monitoring_url = self.url + MONITORING_PATH
        self.served = set()  # pids of the processes that answered get()
        ini = os.path.join(workdir, 'api-paste.ini')
        with open(ini, 'w') as f:
            f.write(PASTE_INI.format(filter_options=filter_options,
                                     fixture_options=fixture_options,
                                     data_options=data_options,
                                     monitoring_pipeline=monitoring_pipeline,
                                     extra_sections=extra_sections))
            if server.startswith('uwsgi'):
                f.write(UWSGI_LOGGING)
        with open(os.path.join(workdir, 'magnetodb-api.conf'), 'w') as f:
            f.write(conf.replace('$api', self.monitoring_url).replace(
                '$health', self.url + '/healthcheck?fullcheck=true'))
        # The package of this clone, whatever else is installed, and
        # tests.support for the paste factories.
        env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED='1',
                   **(env or {}))
        if server == 'eventlet':
            command = [sys.executable, '-m', 'tests.support.apiserver',
                       ini, str(self.port)]
        elif server.startswith('uwsgi'):
            command = uwsgi_command(server) + [
                '--master', '--processes', str(workers),
                '--http-socket', '127.0.0.1:%d' % self.port,
                '--paste', 'config:' + ini, '--paste-logger',
                '--die-on-term', '--need-app', '--disable-logging']
            if lazy_apps:
                command.append('--lazy-apps')
            if enable_threads:
                command.append('--enable-threads')
        else:
            command = [sys.executable, '-c', GUNICORN, '--paste', ini,
                       '--bind', '127.0.0.1:%d' % self.port,
                       '--workers', str(workers),
                       '--worker-class', WORKER_CLASSES[server],
                       '--threads', str(threads), '--graceful-timeout', '5']
            if preload:
                command.append('--preload')
        self.log_path = os.path.join(workdir, 'server.log')
        self._log = open(self.log_path, 'w')
        self.process = subprocess.Popen(list(run_as) + command,
                                        stdout=self._log,
                                        stderr=subprocess.STDOUT, env=env,
                                        close_fds=True)

    @property
    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def get(self, path='/v1/data', timeout=10):
        status, body = http_get(self.url + path, timeout=timeout)
        if path == '/v1/data':  # the echo app answers with its pid
            self.served.add(int(body))
        return status, body

    def wait_ready(self):
        def answers():
            try:
                return self.get()[0] == 200
            except compat.OS_ERRORS:
                assert self.process.poll() is None, self.log
                return False
        wait_for(answers, message='the API server to answer')

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                wait_exit(self.process, 15)
            except AssertionError:
                self.process.kill()
                self.process.wait()
        self._log.close()


LogLine = collections.namedtuple('LogLine', 'pid level logger message')
# A logged line of the tests' servers, in the stand-in API servers' format
# (apps.LOG_FORMAT, which UWSGI_LOGGING repeats) or in MagnetoDB's
# oslo.log one (date, time, pid, level, logger, request context).
_LOG_LINE = re.compile(
    r'^(?:\S+ \S+ (\d+) ([A-Z]+) (\S+) \[[^\]]*\] |(\d+) ([A-Z]+) (\S+): )'
    r'(.*)$')
_LEVELS = ('DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL')
PACKAGE_LOGGER = 'magnetodb_statsd_middleware'


def log_lines(text, ours=False):
    """The one log reader of the tests: ``[LogLine]`` of what a server
    logged in ``text`` (tracebacks and other output are passed over);
    with ``ours``, this package's lines only."""
    found = []
    for line in text.splitlines():
        match = _LOG_LINE.match(line)
        if not match:
            continue
        pid, level, logger = (match.group(1, 2, 3) if match.group(1)
                              else match.group(4, 5, 6))
        if level not in _LEVELS or (ours and logger.split('.')[0]
                                    != PACKAGE_LOGGER):
            continue
        found.append(LogLine(int(pid), level, logger, match.group(7)))
    return found


_POLLER = re.compile(r'^([0-9.]+) magnetodb-statsd-middleware \(pid (\d+)\)')


def polls(request_log, since=0.0):
    """``[(unix time, polling pid)]`` of the listing requests logged."""
    if not os.path.exists(request_log):
        return []
    with open(request_log) as f:
        found = [_POLLER.match(line) for line in f]
    return [(float(m.group(1)), int(m.group(2))) for m in found
            if m and float(m.group(1)) >= since]


def takeover_time(request_log, since, old_pid):
    """Wait for the first poll by another process than ``old_pid``."""
    polled = wait_for(
        lambda: [t for t, pid in polls(request_log, since) if pid != old_pid],
        timeout=30, message='another process to poll')
    return polled[0]


def sigkill_takeover(request_log, holder):
    """SIGKILL ``holder``, the process that polls: ``(seconds until
    another process polled, the pids that polled since)``."""
    os.kill(holder, signal.SIGKILL)
    killed = time.time()
    takeover = takeover_time(request_log, killed, holder)
    return takeover - killed, {pid for _, pid in polls(request_log, takeover)}


def ipv6_receiver():
    """A UDP socket on the IPv6 loopback, or the test is skipped."""
    import pytest
    receiver = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        receiver.bind(('::1', 0))
    except compat.OS_ERRORS:
        receiver.close()
        pytest.skip('no IPv6 loopback here')
    receiver.settimeout(5)
    return receiver


def lock_holder(lock_path):
    """The pid written into the lock file by the process holding it."""
    try:
        with open(lock_path) as f:
            return int(f.read().strip() or 0)
    except compat.OS_ERRORS + (ValueError,):
        return 0


class RequestLoop(object):
    """A client that keeps calling the API and records every answer."""

    def __init__(self, url):
        self.url = url
        self.durations = []
        self.failures = []
        self._stop = threading.Event()
        self._thread = start_thread(self._run)

    def _run(self):
        while not self._stop.is_set():
            started = compat.monotonic()
            try:
                status, _ = http_get(self.url)
                if status != 200:
                    self.failures.append(status)
            except Exception as exc:  # any failure is a finding
                self.failures.append(repr(exc))
            self.durations.append(compat.monotonic() - started)
            self._stop.wait(0.01)

    def stop(self):
        self._stop.set()
        self._thread.join(15)
        return self

    def percentile(self, fraction):
        ordered = sorted(self.durations)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def data_gauge(name):
    """Whether a gauge is a table, project or total one: not the
    collector's own, nor a health gauge."""
    return '.collector.' not in name and '.health.' not in name


def range_gauge(name):
    """Whether a gauge is a table or project one: what a host's range of
    a shared walk sends (the totals may be withheld meanwhile)."""
    return data_gauge(name) and '.totals.' not in name


def ranges_back(daemon, prefix, expected, since):
    """:func:`every_gauge_back` for the table and project gauges of
    ``expected`` alone."""
    ranges = dict((k, v) for k, v in expected.items() if range_gauge(k))
    return every_gauge_back(daemon, prefix, ranges, since,
                            where=range_gauge)


def every_gauge_back(daemon, prefix, expected, since, where=None):
    """Seconds from ``since`` until every gauge under ``prefix`` that
    ``where`` selects (see :meth:`StatsdDaemon.wait_for_gauges`) holds its
    ``expected`` value again (they are deleted first); none holds another
    value meanwhile."""
    daemon.delete_gauges(prefix + '.')
    daemon.wait_for_gauges(prefix, expected, where=where, strict=True,
                           interval=0.2)
    return time.time() - since


def shared_walk_planner(servers, timeout=20.0):
    """The name of the server (``{name: server}``, each with ``process``
    and ``log``) whose filter holds the cluster lock now, by its logs."""
    def planning():
        names = [name for name, server in servers.items()
                 if server.process.poll() is None
                 and server.log.count('holds the cluster lock')
                 > server.log.count('lost the cluster lock')]
        return names[0] if len(names) == 1 else None
    return wait_for(planning, timeout=timeout, message='one planner')


class BackendServer(object):
    """A real coordination backend on loopback: ``start()`` it on a port of
    its own, with the server's own ``options``; ``stop()`` kills it."""

    def __init__(self, workdir, port=None, *options):
        self.port = port or free_port()
        self.workdir = workdir
        self.options = list(options)
        self.start()

    @staticmethod
    def of(scheme, workdir):
        """A started server of tooz URL ``scheme``: redis or memcached."""
        return {'redis': RedisServer,
                'memcached': MemcachedServer}[scheme](workdir)

    def url(self, timeout):
        """The tooz ``coordination_url`` of this server, with the lock
        ``timeout`` in seconds."""
        return '%s://127.0.0.1:%d?timeout=%d' % (self.scheme, self.port,
                                                 timeout)

    def lock_ttl(self, name):
        """The seconds tooz's lock ``name`` has left (memcached counts
        whole ones), None when it is free."""
        raise NotImplementedError

    def evict(self, name):
        """Take tooz's lock ``name`` from whoever holds it, as a memcached
        that evicted it or a stall past its timeout would."""
        raise NotImplementedError

    def stop(self):
        self.process.kill()
        self.process.wait()

    def flush(self):
        """Forget every key at once, as a restart that comes back empty
        before anyone notices it was gone."""
        with contextlib.closing(socket.create_connection(
                ('127.0.0.1', self.port), 5)) as s:
            command, answer = self.FLUSH
            s.sendall(command + b'\r\n')
            assert s.recv(16).startswith(answer)


class RedisServer(BackendServer):
    """A real redis-server on loopback, for the tooz coordination tests."""

    scheme = 'redis'
    FLUSH = (b'FLUSHALL', b'+OK')  # command, answer

    def start(self):
        self.process = subprocess.Popen(
            ['redis-server', '--port', str(self.port), '--bind', '127.0.0.1',
             '--save', '', '--appendonly', 'no', '--dir', self.workdir]
            + self.options,
            stdout=_DEVNULL, stderr=_DEVNULL, close_fds=True)
        wait_for(self._answers, message='redis-server to start')

    def _answers(self):
        try:
            with contextlib.closing(socket.create_connection(
                    ('127.0.0.1', self.port), 1)) as s:
                s.sendall(b'PING\r\n')
                return s.recv(16).startswith((b'+PONG', b'-NOAUTH'))
        except compat.OS_ERRORS:
            return False

    def _lock_key(self, name):
        """``(client, key)`` of tooz's lock ``name`` (``<namespace>_<name>
        _lock``, in every tooz line); key None when it is free."""
        import redis
        client = redis.StrictRedis(port=self.port)
        keys = client.keys('*_%s_lock' % name)
        assert len(keys) <= 1, keys
        return client, keys[0] if keys else None

    def lock_ttl(self, name):
        client, key = self._lock_key(name)
        ttl = client.pttl(key) if key is not None else -1
        return ttl / 1000.0 if ttl >= 0 else None

    def evict(self, name):
        client, key = self._lock_key(name)
        client.delete(key)


class MemcachedServer(BackendServer):
    """A real memcached on loopback (TCP only), for the tooz coordination
    tests; ``options`` are memcached's, e.g. ``'-I', '2m'`` for a larger
    item size limit than its 1 MB."""

    scheme = 'memcached'
    FLUSH = (b'flush_all', b'OK')  # command, answer

    def start(self):
        # memcached refuses to run as root unless told which user to be.
        user = ['-u', 'root'] if os.geteuid() == 0 else []
        self.process = subprocess.Popen(
            ['memcached', '-p', str(self.port), '-l', '127.0.0.1', '-U', '0']
            + user + self.options,
            stdout=_DEVNULL, stderr=_DEVNULL, close_fds=True,
            cwd=self.workdir)
        wait_for(self._answers, message='memcached to start')

    def command(self, line):
        """memcached's first answer to one command line."""
        with contextlib.closing(socket.create_connection(
                ('127.0.0.1', self.port), 1)) as s:
            s.sendall(line + b'\r\n')
            return s.recv(256)

    def _answers(self):
        try:
            return self.command(b'version').startswith(b'VERSION')
        except compat.OS_ERRORS:
            assert self.process.poll() is None, 'memcached exited'
            return False

    @staticmethod
    def _lock_key(name):
        return b'__TOOZ_LOCK_' + name.encode('ascii')  # tooz's name

    def lock_ttl(self, name):
        return self.ttl(self._lock_key(name))

    def evict(self, name):
        self.command(b'delete ' + self._lock_key(name))

    def ttl(self, key):
        """The seconds ``key`` has left (memcached counts whole ones),
        -1 for none, or None when it is not there."""
        answer = self.command(b'mg ' + key + b' t')
        if not answer.startswith(b'HD'):
            assert answer.startswith(b'EN'), answer
            return None
        (ttl,) = [int(flag[1:]) for flag in answer.split()[1:]
                  if flag.startswith(b't')]
        return ttl
