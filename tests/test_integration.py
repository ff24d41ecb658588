"""End to end: real paste pipelines, real WSGI servers, real Etsy statsd."""

import time

import pytest
from paste import deploy

from magnetodb_statsd_middleware import config
from magnetodb_statsd_middleware.demo import fakeapi
from tests.support import peers

FIXTURE = dict(projects=40, tables=60, big=(1200,), seed=1)
FIXTURE_OPTIONS = 'projects = 40\ntables = 60\nbig = 1200\nseed = 1'
TABLES = 40 * 60 + 1200


def _conf(daemon, prefix, tmp_path, **extra):
    return peers.statsd_section(**peers.statsd_options(
        daemon.port, prefix, dict(interval=2, initial_delay=0.5,
                                  lock_path=tmp_path / 'statsd.lock'),
        **extra))


@pytest.mark.parametrize('server', ['eventlet', 'gthread'])
def test_gauges_reach_statsd_without_any_request(
        api_server, statsd_daemon, prefix, tmp_path, server):
    bad_lines = statsd_daemon.bad_lines()
    expected = peers.expected_gauges(fakeapi.build_dataset(**FIXTURE),
                                     prefix)
    assert len(expected) > 1.9 * TABLES
    api = api_server(_conf(statsd_daemon, prefix, tmp_path), server=server,
                     fixture_options=FIXTURE_OPTIONS)
    # Nothing else under the table, project and total names.
    statsd_daemon.wait_for_gauges(prefix, expected, timeout=90, interval=1.0)
    gauges = statsd_daemon.gauges(prefix + '.')
    assert gauges[prefix + '.collector.tables'] == TABLES
    assert statsd_daemon.bad_lines() == bad_lines
    runtime = 'greenthread' if server == 'eventlet' else '(thread)'
    assert runtime in api.log
    status, _ = api.get()
    assert status == 200


def test_self_metrics(api_server, statsd_daemon, prefix, tmp_path):
    api_server(_conf(statsd_daemon, prefix, tmp_path),
               fixture_options='projects = 2\ntables = 3')
    name = prefix + '.collector.'
    peers.wait_for(lambda: statsd_daemon.counters(name),
                   message='a completed cycle')
    timers = statsd_daemon.command('timers')
    assert name + 'cycle_duration' in timers
    gauges = statsd_daemon.gauges(name)
    assert gauges[name + 'tables'] == 6 and gauges[name + 'pages'] == 1
    assert abs(gauges[name + 'last_success'] - time.time()) < 60
    assert statsd_daemon.counters(name)[name + 'cycles_completed'] >= 1


@pytest.mark.parametrize('option, value', [
    ('interval', 'often'), ('include_tables', 'orders(,tmp'),
    ('user_labels', 'Region:r1'), ('label_mode', 'prometheus'),
    ('top_tables', '-5'),
])
def test_a_bad_option_fails_the_paste_load_naming_it(tmp_path, option,
                                                     value):
    peers.write_file(tmp_path / 'magnetodb-api.conf', '[statsd]\n')
    ini = peers.write_file(tmp_path / 'api-paste.ini', peers.PASTE_INI.format(
        filter_options='enabled = true\n%s = %s' % (option, value),
        fixture_options='', data_options='',
        monitoring_pipeline=peers.MONITORING_PIPELINE, extra_sections=''))
    with pytest.raises(config.ConfigError) as error:
        deploy.loadapp('config:%s' % ini)
    assert str(error.value).startswith('[statsd] %s = %r' % (option, value))


def test_a_misspelt_option_in_the_servers_config_is_warned_about_once(
        api_server, statsd_daemon, prefix, tmp_path):
    """magnetodb-api.conf, named by the paste [DEFAULT] oslo_config_args
    as in MagnetoDB, read by a real server whose two pipelines build the
    filter."""
    api = api_server(_conf(statsd_daemon, prefix, tmp_path) +
                     'statsd_hots = statsd.example.org\n')
    api.wait_ready()
    conf_path = str(tmp_path / 'server0' / 'magnetodb-api.conf')
    warning = ("WARNING magnetodb_statsd_middleware.config: StatsD filter: "
               "unknown option 'statsd_hots' in [statsd] of %s is ignored; "
               "did you mean 'statsd_host'?" % conf_path)
    assert api.log.count(warning) == 1, api.log
