"""Fixtures around the real peers of tests/support/peers.py."""

import os
import threading
import traceback

import pytest

from tests.support import peers


@pytest.fixture
def serve():
    """``serve(app, port=0, tls=None)`` -> LoopbackServer, shut down
    after the test."""
    servers = []

    def start(app, port=0, tls=None):
        server = peers.LoopbackServer(app, port, tls)
        servers.append(server)
        return server

    yield start
    for server in servers:
        if hasattr(server.app, 'fault'):
            server.app.fault = 'none'  # release hanging requests
        server.close()


@pytest.fixture
def udp():
    receiver = peers.UDPReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope='session')
def statsd_daemon(tmp_path_factory):
    # No flush during a session (one a day): a flush resets the counters,
    # and a test reading one just after its cycle would find it zeroed.
    daemon = peers.StatsdDaemon(str(tmp_path_factory.mktemp('statsd')),
                                flush_interval=24 * 3600 * 1000)
    yield daemon
    daemon.stop()


@pytest.fixture(scope='session')
def magnetodb_env():
    """The MagnetoDB 2015.1 env with this project installed; a failure to
    build it fails every test that needs it with the build script's
    reason."""
    from tests.support import magnetodb_peer
    try:
        return magnetodb_peer.MagnetoDBEnv.build()
    except magnetodb_peer.EnvError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope='module')
def keystone_server(tmp_path_factory):
    """A real Keystone for the module (it stops for a while in some
    tests), with tokens that live keystone_peer.EXPIRATION seconds."""
    from tests.support import keystone_peer
    server = keystone_peer.Keystone(str(tmp_path_factory.mktemp('keystone')),
                                    expiration=keystone_peer.EXPIRATION)
    yield server
    server.stop()


@pytest.fixture(scope='session')
def graphite(tmp_path_factory):
    """Debian's carbon-cache and graphite-web, shared by the session."""
    from tests.support import graphite_peer
    server = graphite_peer.Graphite(str(tmp_path_factory.mktemp('graphite')))
    yield server
    server.stop()


@pytest.fixture(scope='session')
def graphite_statsd(graphite, tmp_path_factory):
    """An Etsy statsd daemon whose graphite backend flushes every second
    to :func:`graphite`."""
    daemon = peers.StatsdDaemon(str(tmp_path_factory.mktemp('statsd')),
                                graphite_port=graphite.line_port,
                                flush_interval=1000)
    yield daemon
    daemon.stop()


_prefix_counter = iter(range(1, 10 ** 6))


@pytest.fixture
def prefix():
    """A metric prefix of the test's own, so that gauges never mix."""
    return 'test%d_%d' % (os.getpid(), next(_prefix_counter))


@pytest.fixture
def api_server(tmp_path):
    """``api_server(conf, **options)`` -> a started peers.APIServer."""
    servers = []

    def start(conf, **options):
        workdir = tmp_path / ('server%d' % len(servers))
        workdir.mkdir()
        server = peers.APIServer(str(workdir), conf, **options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


# A skipped test proves nothing: the suite fails where a real peer or a
# privilege a test needs is missing, and says which, unless whoever runs
# it allows skips (e.g. a developer without root: the lock tests need
# system users).
ALLOW_SKIPS = os.environ.get('MAGNETODB_STATSD_ALLOW_SKIPS') == '1'


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not ALLOW_SKIPS and not hasattr(report,
                                                          'wasxfail'):
        reason = report.longrepr[-1] if isinstance(
            report.longrepr, tuple) else report.longrepr
        report.outcome = 'failed'
        report.longrepr = ('%s would be skipped: %s (the suite runs every '
                           'test; MAGNETODB_STATSD_ALLOW_SKIPS=1 allows '
                           'skips)' % (item.nodeid, reason))


# A thread of a test that dies of an exception proves nothing either: its
# check may never have run. Each death fails the test it happened in,
# unless the test asks for ``thread_deaths`` to check the death itself.
_deaths = []
_recording = []


def _excepthook(args):
    """threading.excepthook (CPython 3.8+) while a test runs."""
    if issubclass(args.exc_type, SystemExit):
        return  # a thread's deliberate end, ignored as threading does
    _deaths.append('%s: %s' % (
        args.thread.name if args.thread else '?',
        ''.join(traceback.format_exception(
            args.exc_type, args.exc_value, args.exc_traceback))))


if not hasattr(threading, 'excepthook'):
    # CPython 2.7 has no hook: threading prints the traceback and goes on.
    _bootstrap_inner = threading.Thread._Thread__bootstrap_inner

    def _recording_bootstrap_inner(self):
        run = self.run

        def recorded_run():
            try:
                run()
            except SystemExit:
                raise  # a thread's deliberate end, ignored by threading
            except BaseException:
                if not _recording:
                    raise
                _deaths.append('%s: %s' % (self.name,
                                           traceback.format_exc()))

        self.run = recorded_run
        _bootstrap_inner(self)

    threading.Thread._Thread__bootstrap_inner = _recording_bootstrap_inner


@pytest.fixture
def thread_deaths():
    """The deaths of the test's threads, for a test that causes one."""
    return _deaths


@pytest.fixture(autouse=True)
def no_thread_dies(request):
    del _deaths[:]
    _recording.append(True)
    previous_hook = getattr(threading, 'excepthook', None)
    if previous_hook:
        threading.excepthook = _excepthook
    yield
    if previous_hook:
        threading.excepthook = previous_hook
    _recording.pop()
    if _deaths and 'thread_deaths' not in request.fixturenames:
        pytest.fail('a thread of the test died:\n' + '\n'.join(_deaths),
                    pytrace=False)


@pytest.fixture(params=['redis', 'memcached'])
def backend(request, tmp_path):
    """A real tooz coordination backend on loopback, each kind in turn: a
    started peers.BackendServer (``scheme``, ``port``, ``url()``), killed
    after the test (SIGKILL ends it also where a test froze it)."""
    server = peers.BackendServer.of(request.param, str(tmp_path))
    yield server
    server.stop()
