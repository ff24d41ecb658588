"""A real Graphite for the tests and the dashboard pictures.

Debian's packages, as an operator runs them (tools/install-peers.sh installs
them): ``carbon-cache`` (graphite-carbon) writing whisper files, and
``graphite-web`` read through its HTTP API the way Grafana reads it. Both
are started here on free loopback ports with configuration, storage, logs
and database in one folder of their own: no system service, no path under
/etc/carbon, /etc/graphite or /var/lib/graphite is used. graphite-web runs
under Debian's ``/usr/bin/python3``, the interpreter it is packaged for,
whatever interpreter runs the tests.
"""

import contextlib
import json
import os
import re
import socket
import subprocess
import uuid

from six.moves.urllib import error as urllib_error
from six.moves.urllib import parse as urllib_parse
from six.moves.urllib import request as urllib_request

from magnetodb_statsd_middleware import compat
from tests.support import peers

CARBON_CACHE = '/usr/bin/carbon-cache'
SYSTEM_PYTHON = '/usr/bin/python3'
GRAPHITE_WEB = '/usr/lib/python3/dist-packages/graphite'
WEB_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          'graphite_web.py')

# graphite-web's error for a whisper file that carbon is creating.
CREATING = 'CorruptWhisperFile'

# One-second points for half an hour (the tests' statsd flushes every
# second), then minutes for a day.
RETENTIONS = '1s:30m,1m:1d'

CARBON_CONF = """\
[cache]
STORAGE_DIR = {root}/storage
LOCAL_DATA_DIR = {root}/storage/whisper
WHITELISTS_DIR = {root}/storage/lists
CONF_DIR = {root}/conf
LOG_DIR = {root}/log
PID_DIR = {root}
USER =
DATABASE = whisper
MAX_CACHE_SIZE = inf
MAX_UPDATES_PER_SECOND = inf
# Carbon's default (50) would take minutes to create a test's series.
MAX_CREATES_PER_MINUTE = inf
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = {line_port}
ENABLE_UDP_LISTENER = False
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = {pickle_port}
CACHE_QUERY_INTERFACE = 127.0.0.1
CACHE_QUERY_PORT = {query_port}
LOG_LISTENER_CONN_SUCCESS = False
# Tagged series (name;tag=value) are announced to graphite-web's tag index.
ENABLE_TAGS = True
GRAPHITE_URL = http://127.0.0.1:{web_port}
"""

STORAGE_SCHEMAS = """\
[everything]
pattern = .*
retentions = {retentions}
"""

SETTINGS = """\
SECRET_KEY = {secret!r}
STORAGE_DIR = {root!r} + '/storage'
WHISPER_DIR = {root!r} + '/storage/whisper'
INDEX_FILE = {root!r} + '/storage/index'
CONF_DIR = {root!r} + '/conf'
LOG_DIR = {root!r} + '/log/webapp'
LOG_ROTATION = False
DATABASES = {{'default': {{'ENGINE': 'django.db.backends.sqlite3',
                         'NAME': {root!r} + '/storage/graphite.db'}}}}
# Points still in carbon's cache are read through its query port.
CARBONLINK_HOSTS = ['127.0.0.1:{query_port}']
TIME_ZONE = 'UTC'
USE_WORKER_POOL = False
"""


def _installed():
    return (os.path.exists(CARBON_CACHE) and os.path.exists(SYSTEM_PYTHON)
            and os.path.isdir(GRAPHITE_WEB))


class GraphiteError(Exception):
    """graphite-web answered with an error status."""

    def __init__(self, status, body):
        # The end of graphite-web's error page is the traceback's.
        text = ' '.join(re.sub(r'<[^>]*>', ' ', body).split())
        Exception.__init__(self, 'HTTP %d: %s' % (status, text[-1500:]))
        self.status = status
        self.body = body


class Graphite(object):
    """carbon-cache and graphite-web on loopback, in ``workdir``."""

    def __init__(self, workdir, retentions=RETENTIONS):
        if not _installed():
            raise RuntimeError('Graphite (Debian packages graphite-carbon '
                               'and graphite-web) is not installed: run '
                               'tools/install-peers.sh')
        self.root = os.path.abspath(workdir)
        ports = dict(line_port=peers.free_port(),
                     pickle_port=peers.free_port(),
                     query_port=peers.free_port(),
                     web_port=peers.free_port())
        self.line_port = ports['line_port']
        self.url = 'http://127.0.0.1:%d' % ports['web_port']
        for folder in ('conf', 'storage/whisper', 'storage/lists',
                       'log/webapp'):
            os.makedirs(os.path.join(self.root, folder))
        conf = os.path.join(self.root, 'conf')
        carbon_conf = peers.write_file(
            os.path.join(conf, 'carbon.conf'),
            CARBON_CONF.format(root=self.root, **ports))
        peers.write_file(os.path.join(conf, 'storage-schemas.conf'),
                         STORAGE_SCHEMAS.format(retentions=retentions))
        peers.write_file(
            os.path.join(self.root, 'graphite_test_settings.py'),
            SETTINGS.format(root=self.root, secret=uuid.uuid4().hex,
                            query_port=ports['query_port']))
        self._logs = []
        self.web = self.carbon = None
        self.web = self._start(
            'graphite-web', [SYSTEM_PYTHON, '-I', WEB_SCRIPT, self.root,
                             str(ports['web_port'])])
        # --debug: in the foreground, logging to stdout.
        self.carbon = self._start(
            'carbon-cache', [CARBON_CACHE, '--config=' + carbon_conf,
                             '--pidfile=' + os.path.join(self.root,
                                                         'carbon.pid'),
                             '--debug', 'start'])
        try:
            peers.wait_for(self._carbon_listens, timeout=60,
                           message='carbon-cache to listen')
            peers.wait_for(self._web_answers, timeout=60,
                           message='graphite-web to answer')
        except AssertionError:
            self.stop()
            raise

    def _start(self, name, command):
        log = open(os.path.join(self.root, 'log', name + '.out'), 'w')
        self._logs.append(log)
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                cwd=self.root, close_fds=True)

    def log(self, name):
        with open(os.path.join(self.root, 'log', name + '.out')) as f:
            return f.read()

    def _carbon_listens(self):
        assert self.carbon.poll() is None, self.log('carbon-cache')
        try:
            socket.create_connection(('127.0.0.1', self.line_port), 1).close()
            return True
        except compat.OS_ERRORS:
            return False

    def _web_answers(self):
        assert self.web.poll() is None, self.log('graphite-web')
        try:
            return self.request('/version')[0] == 200
        except compat.OS_ERRORS:
            return False

    def request(self, path, params=(), post=False):
        """``(status, body bytes)`` of a request to graphite-web."""
        query = urllib_parse.urlencode(list(params))
        url, data = self.url + path, None
        if post:
            data = query.encode('ascii')
        elif query:
            url += '?' + query
        try:
            with contextlib.closing(urllib_request.urlopen(
                    url, data=data, timeout=60)) as response:
                return response.getcode(), response.read()
        except urllib_error.HTTPError as exc:
            return exc.code, exc.read()

    def get_json(self, path, params=(), post=False):
        status, body = self.request(path, params, post)
        if status != 200:
            raise GraphiteError(status, body.decode('utf-8', 'replace'))
        return json.loads(body.decode('utf-8'))

    def render(self, targets, since='-10min', until='now', max_points=1000):
        """The series of ``targets`` as Grafana asks for them: a POST of
        the form to ``/render`` with ``format=json``."""
        if isinstance(targets, compat.string_types):
            targets = [targets]
        params = [('target', t) for t in targets]
        params += [('from', since), ('until', until), ('format', 'json'),
                   ('maxDataPoints', max_points)]
        return self.get_json('/render', params, post=True)

    def render_png(self, path, targets, **options):
        """Draw ``targets`` into a PNG file with graphite-web's renderer;
        ``options`` are render API parameters (from, title, width...)."""
        params = [('target', t) for t in targets]
        params += sorted(options.items()) + [('format', 'png')]
        status, body = self.request('/render', params, post=True)
        if status != 200:
            raise GraphiteError(status, body.decode('utf-8', 'replace'))
        with open(path, 'wb') as f:
            f.write(body)
        return path

    def find(self, query, since='-10min', until='now'):
        """Node names under a glob, as a Grafana query variable lists
        them (``/metrics/find``, the ``text`` of each node)."""
        return [node['text'] for node in self.get_json(
            '/metrics/find', [('query', query), ('from', since),
                              ('until', until)])]

    def poll(self, targets, **render):
        """:meth:`render`, or None while carbon creates one of the whisper
        files the targets reach: graphite-web fails the whole render with
        CorruptWhisperFile until the new file has its header (see
        test_graphite)."""
        try:
            return self.render(targets, **render)
        except GraphiteError as exc:
            if CREATING not in str(exc):
                raise
            return None

    def wait_for_values(self, targets, expected, timeout=30, **render):
        """Render until the last values of the series are ``expected``
        (``{series name: value}``); returns the series."""
        found = {}

        def arrived():
            series = self.poll(targets, **render)
            found.clear()
            found.update(last_values(series or []))
            return series if found == expected else None
        try:
            return peers.wait_for(arrived, timeout=timeout, interval=0.25,
                                  message='%d series in Graphite'
                                  % len(expected))
        except AssertionError:
            missing = sorted(set(expected) - set(found))[:5]
            wrong = sorted((k, v, expected[k]) for k, v in found.items()
                           if k in expected and v != expected[k])[:5]
            raise AssertionError('Graphite did not show the expected series '
                                 'within %ds: missing %s, (name, found, '
                                 'expected) %s, %d unexpected'
                                 % (timeout, missing, wrong,
                                    len(set(found) - set(expected))))

    def wait_for_names(self, targets, names, timeout=30):
        """Render until every one of ``names`` is a series with a value;
        returns ``{series name: last value}``."""
        def arrived():
            found = last_values(self.poll(targets) or [])
            return found if set(names) <= set(found) else None
        return peers.wait_for(arrived, timeout=timeout, interval=0.25,
                              message='series %s' % sorted(names))

    def stop(self):
        for process in (self.carbon, self.web):
            if process is not None and process.poll() is None:
                process.terminate()
        for process in (self.carbon, self.web):
            if process is None:
                continue
            try:
                peers.wait_exit(process, 15)
            except AssertionError:
                process.kill()
                process.wait()
        for log in self._logs:
            log.close()


def values(series):
    """The non-null values of one rendered series, oldest first."""
    return [value for value, _ in series['datapoints'] if value is not None]


def last_values(series_list):
    """``{series name: last non-null value}`` of a render answer; a series
    without any value is left out."""
    found = {}
    for series in series_list:
        points = values(series)
        if points:
            found[series['target']] = points[-1]
    return found


def readme_queries():
    """The queries of the documentation's "Graphite and Grafana" page: the
    lines of its literal blocks that call a Graphite function or name a
    series (comments and configuration lines left out)."""
    with open(os.path.join(peers.ROOT, 'doc', 'source', 'receivers',
                           'graphite.rst')) as f:
        lines = f.read().splitlines()
    start = lines.index('Graphite and Grafana')
    assert set(lines[start + 1]) == set('=')
    found, literal = [], False
    for line, underline in zip(lines[start + 2:], lines[start + 3:]):
        if line and set(underline) == set('=') and len(underline) == len(
                line):
            break  # the next section
        if line.endswith('::'):
            literal = True
        elif line and not line.startswith(' '):
            literal = False
        elif literal and re.match(r'^ +(stats[._]|[a-zA-Z]+\()', line):
            found.append(line.strip())
    return found
