"""magnetodb-statsd and magnetodb-statsd-demo, run as real subprocesses."""

import signal
import subprocess
import sys

import pytest

from magnetodb_statsd_middleware.demo import fakeapi
from tests.support import peers


def _run(conf_path, *args):
    return peers.run([sys.executable, '-m', 'magnetodb_statsd_middleware.cli',
                      '--config-file', conf_path] + list(args))


@pytest.fixture
def write_conf(tmp_path):
    def write(**options):
        return peers.write_file(tmp_path / 'magnetodb-statsd.conf',
                                peers.statsd_section(**options))
    return write


@pytest.fixture
def api(serve):
    return serve(fakeapi.FakeMonitoringAPI(fakeapi.build_dataset()))


def test_once_sends_to_a_real_daemon(write_conf, api, statsd_daemon, prefix):
    result = _run(write_conf(monitoring_url=api.url, metric_prefix=prefix,
                             statsd_port=statsd_daemon.port), '--once')
    assert result.returncode == 0, result.stderr
    expected = peers.expected_gauges(fakeapi.build_dataset(), prefix)

    def arrived():
        gauges = statsd_daemon.gauges(prefix + '.')
        return all(gauges.get(k) == v for k, v in expected.items())
    peers.wait_for(arrived, message='the gauges of one cycle')


def test_dry_run_prints_and_sends_nothing(write_conf, api, udp):
    result = _run(write_conf(monitoring_url=api.url, statsd_port=udp.port),
                  '--once', '--dry-run')
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    expected = peers.expected_gauges(fakeapi.build_dataset(), 'magnetodb')
    assert {line.rsplit('|', 1)[0] for line in lines
            if line.endswith('|g') and '.collector.' not in line} == {
        '%s:%d' % item for item in expected.items()}
    assert 'magnetodb.collector.cycles_completed:1|c' in lines
    assert udp.drain() == []


def test_once_against_a_dead_endpoint_fails_in_one_line(write_conf, udp):
    url = 'http://127.0.0.1:%d/v1/monitoring/projects' % peers.free_port()
    result = _run(write_conf(monitoring_url=url, statsd_port=udp.port),
                  '--once')
    assert result.returncode == 1
    assert 'Traceback' not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith('magnetodb-statsd: GET ') and 'refused' in line


def test_a_bad_option_fails_in_one_line(write_conf):
    result = _run(write_conf(interval='often'), '--once')
    assert result.returncode == 1
    assert result.stderr.count('\n') == 1 and 'interval' in result.stderr


def test_check_reports_each_peer(write_conf, api, serve):
    health = serve(fakeapi.FakeHealthCheck())
    good = _run(write_conf(
        monitoring_url=api.url, healthcheck_url='http://127.0.0.1:%d/'
        'healthcheck?fullcheck=true' % health.port), '--check')
    assert good.returncode == 0, good.stdout
    assert [line.split(':')[0] for line in good.stdout.splitlines()] == [
        'OK   configuration', 'OK   monitoring API', 'OK   StatsD',
        'OK   health check']
    bad = _run(write_conf(monitoring_url=api.url,
                          statsd_host='statsd.invalid'), '--check')
    assert bad.returncode == 1
    assert 'FAIL StatsD: cannot resolve' in bad.stdout
    assert 'Traceback' not in bad.stdout + bad.stderr


def test_check_lists_misspelt_options_and_passes(write_conf, api):
    result = _run(write_conf(monitoring_url=api.url, intreval='30'),
                  '--check')
    assert result.returncode == 0, result.stdout
    assert ("WARN configuration: unknown option 'intreval' in [statsd] of "
            in result.stdout)
    assert "is ignored; did you mean 'interval'?" in result.stdout


def test_the_service_runs_until_sigterm_and_releases_the_lock(
        write_conf, api, statsd_daemon, prefix, tmp_path):
    lock_path = str(tmp_path / 'statsd.lock')
    conf = write_conf(monitoring_url=api.url, metric_prefix=prefix,
                      statsd_port=statsd_daemon.port, interval=1,
                      lock_path=lock_path)
    process = subprocess.Popen(
        [sys.executable, '-m', 'magnetodb_statsd_middleware.cli',
         '--config-file', conf], stderr=subprocess.PIPE,
        universal_newlines=True, close_fds=True)
    try:
        peers.wait_for(lambda: statsd_daemon.gauges(prefix + '.totals.'),
                       message='gauges from the service')
        assert peers.lock_holder(lock_path) == process.pid
        process.send_signal(signal.SIGTERM)
        assert peers.wait_exit(process, 10) == 0
    finally:
        if process.poll() is None:
            process.kill()
        stderr = process.stderr.read()
    assert 'Traceback' not in stderr
    assert peers.run(
        [sys.executable, '-c', 'import fcntl, os, sys; fcntl.lockf('
         'os.open(sys.argv[1], os.O_RDWR), fcntl.LOCK_EX | fcntl.LOCK_NB)',
         lock_path]).returncode == 0


@pytest.mark.parametrize('label_mode, totals, table', [
    ('disabled', 'magnetodb.totals.tables:', 'magnetodb.tables.'),
    ('dogstatsd', 'magnetodb.total.tables:', 'magnetodb.table.size:'),
])
def test_the_demo_shows_metrics_within_seconds_and_stops_on_ctrl_c(
        label_mode, totals, table):
    process = subprocess.Popen(
        [sys.executable, '-m', 'magnetodb_statsd_middleware.demo',
         '--interval', '1', '--label-mode', label_mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, universal_newlines=True, close_fds=True)
    # Read all the time: a demo blocked on a full pipe would not stop.
    seen = []
    reader = peers.start_thread(
        lambda: seen.extend(iter(process.stdout.readline, '')))
    try:
        peers.wait_for(lambda: any('statsd <- ' + totals in line
                                   for line in list(seen)),
                       timeout=30, message='the demo to print totals')
        process.send_signal(signal.SIGINT)
        assert peers.wait_exit(process, 15) == 0
        reader.join(10)
    finally:
        if process.poll() is None:
            process.kill()
    rest = ''.join(seen)
    assert any(table in line for line in seen)
    assert 'Demo stopped.' in rest and 'Traceback' not in rest
