"""Installs the tests' fakes into every MagnetoDB 2015.1 process they start.

Python imports ``sitecustomize`` from ``sys.path`` at start-up. The tests
put this folder on ``PYTHONPATH`` of ``bin/magnetodb-api-server`` and of
``bin/magnetodb-api-server-gunicorn``, whose ``os.system("gunicorn ...")``
passes the environment on to gunicorn and its workers, so each process
that may load MagnetoDB's paste app gets the fakes before ``loadapp``.
Nothing happens unless ``MAGNETODB_FAKE_DATA`` names a data file.

Only two module attributes are replaced, and every MagnetoDB file stays as
released:

- ``cassandra.cluster.Cluster`` -> ``fake_cassandra.FakeCluster``;
- ``pyjolokia.urlopen`` -> ``fake_jolokia.urlopen``.

Nothing is imported here: MagnetoDB monkey-patches with eventlet first and
imports the Cassandra driver later, and an early import would bind the
driver to unpatched threading. An import hook waits for each module
instead, and patches it right after its own import completed.

Test instrumentation, separate from the fakes: eventlet.wsgi logs no
User-Agent, so with ``MAGNETODB_TEST_ACCESS_LOG`` set, the app given to
``eventlet.wsgi.server`` is wrapped to append ``<pid> GET /path?query
HTTP/1.1 "User-Agent"`` for each request to that file: the line gunicorn
writes through its own access log, configured by the test's
``gunicorn.conf.py``. With ``MAGNETODB_TEST_REQUEST_TIMES`` set too,
each request also appends ``<pid> <start> <end> <status> <rows> <path?query>
"User-Agent"`` to that file when its answer is ready: the wall-clock
times it was received and answered, and the rows of a JSON list answer
(counted as its ``"tenant": `` keys), for the benchmarks' cycle timings.
"""

import os
import sys
import time

DATA_ENV = 'MAGNETODB_FAKE_DATA'
ACCESS_LOG_ENV = 'MAGNETODB_TEST_ACCESS_LOG'
REQUEST_TIMES_ENV = 'MAGNETODB_TEST_REQUEST_TIMES'
ROW_KEY = b'"tenant": '


def _install_cluster(module):
    import fake_cassandra
    fake_cassandra.install(module)


def _install_urlopen(module):
    import fake_jolokia
    fake_jolokia.install(module)


class _RequestRecorder(object):
    """WSGI wrapper: one line a request, as gunicorn's access log writes it
    with ``access_log_format = '%(p)s %(r)s "%(a)s"'``."""

    def __init__(self, app, path, times_path=None):
        self.app = app
        self.path = path
        self.times_path = times_path

    def __call__(self, environ, start_response):
        received = time.time()
        uri = environ.get('SCRIPT_NAME', '') + environ.get('PATH_INFO', '')
        if environ.get('QUERY_STRING'):
            uri += '?' + environ['QUERY_STRING']
        agent = environ.get('HTTP_USER_AGENT', '-')
        _append(self.path, '<%d> %s %s %s "%s"\n' % (
            os.getpid(), environ['REQUEST_METHOD'], uri,
            environ.get('SERVER_PROTOCOL', '-'), agent))
        if not self.times_path:
            return self.app(environ, start_response)
        statuses = []

        def start(status, headers, exc_info=None):
            statuses.append(status.split(' ', 1)[0])
            return start_response(status, headers, exc_info)

        answer = self.app(environ, start)
        try:
            body = list(answer)
        finally:
            if hasattr(answer, 'close'):
                answer.close()
        rows = sum(chunk.count(ROW_KEY) for chunk in body)
        _append(self.times_path, '%d %.6f %.6f %s %d %s "%s"\n' % (
            os.getpid(), received, time.time(),
            statuses[-1] if statuses else '-', rows, uri, agent))
        return body


def _append(path, line):
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _install_request_recorder(module):
    serve = module.server
    path = os.environ[ACCESS_LOG_ENV]
    times_path = os.environ.get(REQUEST_TIMES_ENV)

    def server(sock, site, *args, **kwargs):
        return serve(sock, _RequestRecorder(site, path, times_path), *args,
                     **kwargs)

    module.server = server


class _PatchAfterImport(object):
    """A ``sys.meta_path`` hook (Python 2 protocol): lets the normal import
    of a listed module run, then calls its patch function once."""

    def __init__(self, patches):
        self.patches = patches
        self.importing = set()

    def find_module(self, fullname, path=None):
        if fullname in self.patches and fullname not in self.importing:
            return self
        return None

    def load_module(self, fullname):
        if fullname in sys.modules:
            return sys.modules[fullname]
        self.importing.add(fullname)
        try:
            __import__(fullname)
        finally:
            self.importing.discard(fullname)
        module = sys.modules[fullname]
        self.patches.pop(fullname)(module)
        return module


def _install():
    patches = {}
    if os.environ.get(DATA_ENV):
        patches['cassandra.cluster'] = _install_cluster
        patches['pyjolokia'] = _install_urlopen
    if os.environ.get(ACCESS_LOG_ENV):
        patches['eventlet.wsgi'] = _install_request_recorder
    if patches:
        sys.meta_path.insert(0, _PatchAfterImport(patches))


_install()
