"""Health gauges for HTTP 200, 503, nonsense and an unreachable check."""

import logging
import socket

import pytest

from magnetodb_statsd_middleware import cycle
from magnetodb_statsd_middleware import dialects
from magnetodb_statsd_middleware import health
from magnetodb_statsd_middleware import outages
from magnetodb_statsd_middleware.demo import fakeapi
from tests.support import peers


def _gauges(url, host_name='api-1'):
    """``([(dotted name, value)], error)``."""
    measurements, error, _ = health.health_measurements(peers.make_settings(
        healthcheck_url=url, host_name=host_name, request_timeout=2))
    lines = dialects.Dotted('x').lines(measurements)
    return [(line[2:].split(':')[0], int(line.split(':')[1][:-2]))
            for line in lines], error


def _url(server):
    return 'http://127.0.0.1:%d/healthcheck?fullcheck=true' % server.port


def test_all_ok(serve):
    gauges, error = _gauges(_url(serve(fakeapi.FakeHealthCheck())))
    assert not error
    assert dict(gauges) == {'health.api-1.api': 1, 'health.api-1.identity': 1,
                            'health.api-1.storage': 1,
                            'health.api-1.overall': 1}


def test_a_failed_subsystem_is_503(serve):
    app = fakeapi.FakeHealthCheck({'API': 'OK', 'Storage': 'ERROR',
                                   'Messaging': 'Not Implemented'})
    gauges, error = _gauges(_url(serve(app)))
    assert not error
    assert dict(gauges) == {'health.api-1.api': 1, 'health.api-1.storage': 0,
                            'health.api-1.overall': 0}


@pytest.mark.parametrize('state, gauge, overall', [('OK', 1, 1),
                                                   ('ERROR', 0, 0)])
def test_messaging_is_sent_when_it_is_checked(serve, state, gauge, overall):
    """MagnetoDB checks its message broker only with a RabbitMQ or Qpid
    ``rpc_backend`` (with MagnetoDB in the tests, oslo.messaging's fake
    driver: "Not Implemented"): here, in the fixture API's health check."""
    app = fakeapi.FakeHealthCheck({'API': 'OK', 'Identity': 'OK',
                                   'Storage': 'OK', 'Messaging': state})
    gauges, error = _gauges(_url(serve(app)))
    assert not error
    assert dict(gauges) == {'health.api-1.api': 1, 'health.api-1.identity': 1,
                            'health.api-1.storage': 1,
                            'health.api-1.messaging': gauge,
                            'health.api-1.overall': overall}


def test_unreachable():
    url = 'http://127.0.0.1:%d/healthcheck' % peers.free_port()
    gauges, error = _gauges(url)
    assert gauges == [('health.api-1.overall', 0)]
    assert 'refused' in error


@pytest.mark.parametrize('body', [b'<html>', b'[1, 2]'])
def test_nonsense_is_unhealthy(serve, body):
    def app(environ, start_response):
        start_response('200 OK', [('Content-Type', 'text/html')])
        return [body]
    gauges, error = _gauges(_url(serve(app)))
    assert gauges == [('health.api-1.overall', 0)] and error


def test_another_status_is_unhealthy(serve):
    def app(environ, start_response):
        start_response('500 Internal Server Error', [])
        return [b'']
    gauges, error = _gauges(_url(serve(app)))
    assert gauges == [('health.api-1.overall', 0)]
    assert error.endswith('failed: HTTP 500')


def test_the_host_name_is_made_safe(serve):
    gauges, _ = _gauges(_url(serve(fakeapi.FakeHealthCheck())),
                        host_name='api.1')
    assert gauges[0][0].startswith('health.api_1_')


def test_health_and_tables_fail_independently(serve, udp, caplog):
    caplog.set_level(logging.ERROR)
    dead = 'http://127.0.0.1:%d/v1/monitoring/projects' % peers.free_port()
    health_url = _url(serve(fakeapi.FakeHealthCheck()))
    log = outages.OutageLog()
    result = cycle.run_cycle(peers.make_settings(
        monitoring_url=dead, healthcheck_url=health_url, host_name='h',
        statsd_port=udp.port), log)
    udp.drain()
    assert not result.completed
    assert 'magnetodb.health.h.overall:1|g' in udp.lines

    del udp.datagrams[:]
    api = serve(fakeapi.FakeMonitoringAPI(fakeapi.build_dataset()))
    dead_health = 'http://127.0.0.1:%d/healthcheck' % peers.free_port(
        socket.SOCK_STREAM)
    result = cycle.run_cycle(peers.make_settings(
        monitoring_url=api.url, healthcheck_url=dead_health, host_name='h',
        statsd_port=udp.port), log)
    udp.drain()
    assert result.completed
    assert 'magnetodb.health.h.overall:0|g' in udp.lines
    assert 'magnetodb.totals.projects:3|g' in udp.lines
    assert [r.getMessage().split(':')[0] for r in caplog.records] == [
        'monitoring API failed', 'health check failed']
