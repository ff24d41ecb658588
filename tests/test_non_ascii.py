# -*- coding: utf-8 -*-
"""Non-ASCII project ids and table names, on 2.7 (where JSON strings are
unicode and ``str`` is bytes) as on 3.x: never an exception, anywhere."""

import logging
import sys

from magnetodb_statsd_middleware import config
from magnetodb_statsd_middleware import cycle
from magnetodb_statsd_middleware import metrics
from magnetodb_statsd_middleware import outages
from magnetodb_statsd_middleware.demo import fakeapi
from tests.support import peers

PROJECT = u'проект-é'
TABLES = [u'таблица.1', u'café', u'表', u'plain_table']


def _dataset():
    return {PROJECT: [fakeapi.Table(name, size=10 * (i + 1), item_count=i)
                      for i, name in enumerate(TABLES)]}


# The design's rule, as every test reads it.
_safe = peers.expected_name_part


def test_names_are_made_safe_alike_on_every_runtime():
    for raw in [PROJECT] + TABLES:
        assert metrics.safe_part(raw) == _safe(raw)
    # A 2.7 caller may hand over UTF-8 bytes (oslo.config does): the
    # settings decode them first; safe_part keeps them apart anyway.
    assert metrics.safe_part(u'café') != metrics.safe_part(u'cafè')


def test_a_cycle_sends_every_non_ascii_table(serve, udp):
    api = serve(fakeapi.FakeMonitoringAPI(_dataset()))
    result = cycle.run_cycle(peers.make_settings(
        monitoring_url=api.url, statsd_port=udp.port), outages.OutageLog())
    assert result.completed
    udp.drain()
    sent = dict(line.split(':', 1) for line in udp.lines)
    for i, name in enumerate(TABLES):
        key = 'magnetodb.tables.%s.%s.size' % (_safe(PROJECT), _safe(name))
        assert sent[key] == '%d|g' % (10 * (i + 1))
    assert sent['magnetodb.totals.tables'] == '4|g'


def _configured(tmp_path, api, udp):
    """Settings read from a config file, as an operator writes it (UTF-8;
    oslo.config 1.9.3 on 2.7 hands the values over as bytes)."""
    path = tmp_path / 'statsd.conf'
    with open(str(path), 'wb') as f:
        f.write(peers.statsd_section(
            enabled='true', monitoring_url=api.url, lock_path='',
            statsd_port=udp.port,
            projects=u'%s,нет-такого' % PROJECT).encode('utf-8'))
    return config.load_settings({}, {'oslo_config_file': str(path)})


def test_configured_non_ascii_projects_are_read(serve, udp, tmp_path):
    api = serve(fakeapi.FakeMonitoringAPI(_dataset()))
    settings = _configured(tmp_path, api, udp)
    assert settings.projects == (PROJECT, u'нет-такого')
    assert cycle.run_cycle(settings, outages.OutageLog()).completed
    udp.drain()
    assert 'magnetodb.projects.%s.size:100|g' % _safe(PROJECT) in udp.lines


def test_a_failure_naming_non_ascii_projects_logs_one_clean_line(
        serve, udp, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    api = serve(fakeapi.FakeMonitoringAPI(_dataset(), control=True))
    settings = _configured(tmp_path, api, udp)
    peers.set_fault(api.url, 'http500')
    log = outages.OutageLog()
    assert not cycle.run_cycle(settings, log).completed
    errors = [r.getMessage() for r in caplog.records
              if r.levelno == logging.ERROR]
    assert len(errors) == 1 and 'HTTP 500' in errors[0]
    # The project is in the URL, percent-encoded UTF-8.
    assert '%D0%BF%D1%80%D0%BE' in errors[0]
    peers.set_fault(api.url, 'none')
    assert cycle.run_cycle(settings, log).completed


def test_dry_run_prints_non_ascii_data_as_safe_lines(serve, tmp_path):
    api = serve(fakeapi.FakeMonitoringAPI(_dataset()))
    conf = peers.write_file(tmp_path / 'statsd.conf', peers.statsd_section(
        monitoring_url=api.url, lock_path=''))
    result = peers.run([sys.executable, '-m',
                        'magnetodb_statsd_middleware.cli',
                        '--config-file', conf, '--once', '--dry-run'])
    assert result.returncode == 0, result.stderr
    assert 'Traceback' not in result.stderr
    assert ('magnetodb.tables.%s.%s.size:10|g'
            % (_safe(PROJECT), _safe(TABLES[0]))) in result.stdout.split()
