"""Faults of the monitoring API and of StatsD, injected while requests flow.

In every case API requests keep answering normally and fast, totals are
not sent after a failed listing, the next good cycle sends fresh gauges,
and the log says each outage once: one ERROR when it starts, one INFO when
it ends.
"""

import socket
import time

import pytest

from magnetodb_statsd_middleware.demo import fakeapi
from tests.support import peers

INTERVAL = 1
REQUEST_TIMEOUT = 1


def _conf(statsd_port, prefix, tmp_path, **extra):
    return peers.statsd_section(**peers.statsd_options(
        statsd_port, prefix, dict(interval=INTERVAL,
                                  request_timeout=REQUEST_TIMEOUT,
                                  max_response_bytes=1 << 20,
                                  lock_path=tmp_path / 'statsd.lock'),
        **extra))


def _our_lines(log, level):
    """What this package logged at ``level``."""
    return [line.message for line in peers.log_lines(log, ours=True)
            if line.level == level]


def _our_tracebacks(log):
    """Tracebacks through the collector's code (the server's own, such as
    eventlet 0.17's for a client that hangs up, are not ours)."""
    found = []
    block = None
    for line in log.splitlines():
        if line.startswith('Traceback'):
            block = [line]
        elif block is not None:
            block.append(line)
            if not line.startswith(' '):  # the exception line ends it
                if any('magnetodb_statsd_middleware' in b for b in block):
                    found.append('\n'.join(block))
                block = None
    return found


def _totals(daemon, prefix):
    return {k: v for k, v in daemon.gauges(prefix + '.totals.').items()}


def _delete_totals(daemon, prefix):
    for name in sorted(_totals(daemon, prefix)):
        daemon.command('delgauges %s' % name)


def _requests_after(request_log, count):
    """Wait until ``count`` more monitoring requests have been logged."""
    start = len(peers.polls(request_log))
    peers.wait_for(lambda: len(peers.polls(request_log)) >= start + count,
                   timeout=30, message='%d more polls' % count)


def _between_cycles(request_log, quiet=0.3):
    """Wait until no monitoring request came for ``quiet`` seconds: a
    cycle's requests come back to back, then the interval passes. A fault
    that ends there does not end halfway through a cycle (where a first
    page failing and the storage probe answering would read as projects
    that cannot be read)."""
    peers.wait_for(lambda: time.time() - peers.polls(request_log)[-1][0]
                   >= quiet, timeout=30, message='a pause between cycles')


def _check_requests(loop):
    """No failure of the collector ever reaches a request (README): none
    fails, and none waits for the collector. Its calls to a faulty API
    last up to ``request_timeout``; a request path that waited for them
    would keep nearly every request of a hang that long (the loop sends
    the next one as soon as one returns), so its p99 would be about
    ``request_timeout``, where ours is milliseconds. Half of it tells the
    two apart with room for a loaded machine, and the percentile leaves
    out the few requests that a loaded machine stalls. This is no speed
    target: the latency itself is a benchmark's (figures 3 and 9 of
    doc/source/performance.rst, p99 within 10 ms)."""
    assert not loop.failures
    assert len(loop.durations) > 20
    assert loop.percentile(0.99) < REQUEST_TIMEOUT / 2.0


@pytest.mark.parametrize('fault, server', [
    ('http500', 'eventlet'), ('http404', 'eventlet'),
    ('hang', 'eventlet'), ('not_json', 'eventlet'),
    ('wrong_shape', 'eventlet'), ('missing_fields', 'eventlet'),
    ('huge', 'eventlet'), ('http500', 'gthread'), ('hang', 'gthread'),
])
def test_monitoring_api_faults(api_server, statsd_daemon, prefix, tmp_path,
                               fault, server):
    request_log = str(tmp_path / 'requests.log')
    # Each timed-out request leaves a fixture thread hanging until the
    # fault ends, hence the many threads.
    api = api_server(_conf(statsd_daemon.port, prefix, tmp_path),
                     server=server, workers=1, threads=32,
                     fixture_options='request_log = ' + request_log)
    api.wait_ready()
    expected = {k: v for k, v in peers.expected_gauges(
        fakeapi.build_dataset(), prefix).items() if '.totals.' in k}
    peers.wait_for(lambda: _totals(statsd_daemon, prefix) == expected,
                   message='totals of a good cycle')
    loop = peers.RequestLoop(api.url + '/v1/data')
    peers.set_fault(api.monitoring_url, fault)
    _requests_after(request_log, 2)  # the cycle in flight is over
    _delete_totals(statsd_daemon, prefix)
    _requests_after(request_log, 3)
    assert _totals(statsd_daemon, prefix) == {}
    _between_cycles(request_log)
    peers.set_fault(api.monitoring_url, 'none')
    peers.wait_for(lambda: _totals(statsd_daemon, prefix) == expected,
                   message='fresh totals after the outage')
    _check_requests(loop.stop())

    log = api.log
    errors = _our_lines(log, 'ERROR')
    assert len(errors) == 1, errors
    assert 'monitoring API failed' in errors[0]
    assert not _our_lines(log, 'WARNING')
    assert len([line for line in _our_lines(log, 'INFO')
                if 'recovered' in line]) == 1
    assert not _our_tracebacks(log)


def test_monitoring_api_refusing_connections(
        api_server, statsd_daemon, prefix, tmp_path):
    port = peers.free_port()
    url = 'http://127.0.0.1:%d/v1/monitoring/projects' % port
    app = fakeapi.FakeMonitoringAPI(fakeapi.build_dataset())
    server = peers.LoopbackServer(app, port=port)
    api = api_server(_conf(statsd_daemon.port, prefix, tmp_path,
                           monitoring_url=url))
    api.wait_ready()
    loop = peers.RequestLoop(api.url + '/v1/data')
    peers.wait_for(lambda: _totals(statsd_daemon, prefix),
                   message='totals of a good cycle')
    server.close()
    peers.wait_for(lambda: 'refused' in api.log.lower(),
                   message='the refusal logged')
    _delete_totals(statsd_daemon, prefix)
    server = peers.LoopbackServer(app, port=port)
    try:
        peers.wait_for(lambda: _totals(statsd_daemon, prefix),
                       message='totals once the API answers again')
    finally:
        server.close()
    _check_requests(loop.stop())
    assert len(_our_lines(api.log, 'ERROR')) == 1
    assert not _our_tracebacks(api.log)


def test_bad_values_are_skipped_counted_and_logged_once(
        api_server, statsd_daemon, prefix, tmp_path):
    request_log = str(tmp_path / 'requests.log')
    # The fault from the API's first answer on: a cycle that saw it well
    # would have sent totals.
    api = api_server(_conf(statsd_daemon.port, prefix, tmp_path),
                     fixture_options='fault = negative\nrequest_log = '
                     + request_log)
    api.wait_ready()
    _requests_after(request_log, 3)
    gauges = statsd_daemon.gauges(prefix + '.')
    assert not [k for k, v in gauges.items() if v < 0]
    assert not [k for k in gauges if k.startswith(prefix + '.tables.') and
                '.bad.' in k]
    assert gauges[prefix + '.totals.tables'] == 1
    assert prefix + '.totals.size' not in gauges
    counters = statsd_daemon.counters(prefix + '.collector.')
    assert counters.get(prefix + '.collector.values_rejected', 0) >= 2
    errors = _our_lines(api.log, 'ERROR')
    assert len(errors) == 1 and 'skipped' in errors[0]


def test_statsd_host_not_resolving(api_server, prefix, tmp_path):
    request_log = str(tmp_path / 'requests.log')
    api = api_server(_conf(8125, prefix, tmp_path,
                           statsd_host='statsd.invalid'),
                     data_options='debug = true',
                     fixture_options='request_log = ' + request_log)
    api.wait_ready()
    loop = peers.RequestLoop(api.url + '/v1/data')
    peers.wait_for(lambda: api.log.count('StatsD still failing') >= 3,
                   message='three failed cycles')
    _check_requests(loop.stop())
    errors = _our_lines(api.log, 'ERROR')
    assert len(errors) == 1
    assert "cannot resolve StatsD host 'statsd.invalid'" in errors[0]
    assert not peers.polls(request_log)  # no point reading the API


def test_statsd_absent_then_restarted(api_server, prefix, tmp_path):
    port = peers.free_port(socket.SOCK_DGRAM)
    api = api_server(_conf(port, prefix, tmp_path))
    api.wait_ready()
    loop = peers.RequestLoop(api.url + '/v1/data')
    peers.wait_for(lambda: 'holds' in api.log, message='an elected emitter')
    daemon = peers.StatsdDaemon(str(tmp_path), port=port)
    try:
        peers.wait_for(lambda: daemon.gauges(prefix + '.totals.'),
                       message='gauges once a daemon listens')
        daemon.stop()
        daemon = peers.StatsdDaemon(str(tmp_path), port=port)
        peers.wait_for(lambda: daemon.gauges(prefix + '.totals.'),
                       message='gauges after a daemon restart')
    finally:
        daemon.stop()
    _check_requests(loop.stop())
    assert not _our_lines(api.log, 'ERROR')


def test_a_project_that_cannot_be_read(api_server, statsd_daemon, prefix,
                                       tmp_path):
    request_log = str(tmp_path / 'requests.log')
    api = api_server(_conf(statsd_daemon.port, prefix, tmp_path),
                     fixture_options='request_log = ' + request_log)
    api.wait_ready()
    dataset = fakeapi.build_dataset()
    expected = peers.expected_gauges(dataset, prefix)
    failed = prefix + '.collector.projects_failed'
    peers.wait_for(lambda: _totals(statsd_daemon, prefix) == {
        k: v for k, v in expected.items() if '.totals.' in k},
        message='totals of a good cycle')
    peers.wait_for(lambda: statsd_daemon.gauges(failed) == {failed: 0},
                   message='no project failing')
    bad = sorted(dataset, key=fakeapi.token)[1]
    table = [t for t in dataset[bad] if t.status == 'ACTIVE'][0]
    peers.set_unreadable(api.monitoring_url, bad, table.name)
    peers.wait_for(lambda: statsd_daemon.gauges(failed) == {failed: 1},
                   message='one project failing')
    _delete_totals(statsd_daemon, prefix)
    statsd_daemon.command('delgauges ' + ' '.join(
        name for name in expected if '.projects.' in name))
    _requests_after(request_log, 8)  # two more cycles
    assert _totals(statsd_daemon, prefix) == {}
    # Every other project is still sent, fresh (its ACTIVE tables: read
    # through its own resource, since its page fails).
    projects = statsd_daemon.gauges(prefix + '.projects.')
    for project in dataset:
        if project != bad:
            assert projects[prefix + '.projects.%s.size' % project] == (
                expected[prefix + '.projects.%s.size' % project])
    assert not [k for k in projects if bad in k]
    peers.set_unreadable(api.monitoring_url)
    peers.wait_for(lambda: _totals(statsd_daemon, prefix),
                   message='totals once the project reads again')
    peers.wait_for(lambda: statsd_daemon.gauges(failed) == {failed: 0},
                   message='no project failing any more')

    log = api.log
    errors = _our_lines(log, 'ERROR')
    assert len(errors) == 1, errors
    assert 'project statistics failed: 1 project cannot be read' in errors[0]
    assert '"%s"' % bad in errors[0]
    assert [line for line in _our_lines(log, 'INFO')
            if 'recovered' in line] == [
        line for line in _our_lines(log, 'INFO')
        if 'project statistics recovered' in line]
    assert len([line for line in _our_lines(log, 'INFO')
                if 'recovered' in line]) == 1
    assert not _our_tracebacks(log)
