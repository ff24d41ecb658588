"""HTTPS monitoring and health URLs, a private CA through ca_file, and an
API that asks for a token."""

import logging

import pytest

from magnetodb_statsd_middleware import compat
from magnetodb_statsd_middleware import config
from magnetodb_statsd_middleware import cycle
from magnetodb_statsd_middleware import outages
from magnetodb_statsd_middleware.demo import fakeapi
from tests.support import peers


@pytest.fixture(scope='module')
def authorities(tmp_path_factory):
    """Ours, which signed the server's certificate, and another one."""
    workdir = str(tmp_path_factory.mktemp('ca'))
    return (peers.CertificateAuthority(workdir, 'private'),
            peers.CertificateAuthority(workdir, 'other'))


@pytest.fixture
def https_api(serve, authorities):
    """The fixture API and its health check on one HTTPS origin."""
    api = fakeapi.FakeMonitoringAPI(fakeapi.build_dataset())
    health = fakeapi.FakeHealthCheck()

    def app(environ, start_response):
        served = health if environ['PATH_INFO'] == '/healthcheck' else api
        return served(environ, start_response)
    return serve(app, tls=authorities[0].server_context())


def _cycle(server, udp, caplog, ca_file):
    caplog.set_level(logging.ERROR)
    origin = server.url.split('/v1/')[0]
    result = cycle.run_cycle(peers.make_settings(
        monitoring_url=server.url, statsd_port=udp.port, ca_file=ca_file,
        healthcheck_url=origin + '/healthcheck?fullcheck=true',
        host_name='h'), outages.OutageLog())
    udp.drain()
    return result, [r.getMessage() for r in caplog.records]


def test_a_private_ca_through_ca_file(https_api, authorities, udp, caplog):
    result, errors = _cycle(https_api, udp, caplog,
                            authorities[0].ca_file)
    assert result.completed and not errors
    assert 'magnetodb.totals.projects:3|g' in udp.lines
    assert 'magnetodb.health.h.overall:1|g' in udp.lines
    # What the rest of the process trusts is left as it was.
    with pytest.raises(compat.OS_ERRORS) as error:
        peers.http_get(https_api.url)
    assert 'CERTIFICATE_VERIFY_FAILED' in str(error.value)


@pytest.mark.parametrize('which', ['another CA', 'the system CAs'])
def test_a_certificate_from_another_ca_is_refused(
        https_api, authorities, udp, caplog, which):
    ca_file = authorities[1].ca_file if which == 'another CA' else ''
    result, errors = _cycle(https_api, udp, caplog, ca_file)
    assert not result.completed
    assert not [line for line in udp.lines if '.totals.' in line]
    assert 'magnetodb.health.h.overall:0|g' in udp.lines
    assert len(errors) == 2  # the monitoring API and the health check
    for error in errors:
        assert 'CERTIFICATE_VERIFY_FAILED' in error
        assert error.endswith("set ca_file to the CA bundle that signed "
                              "the server's certificate"), error
    print(errors[0])


@pytest.mark.parametrize('content', [None, 'not a certificate\n'])
def test_a_ca_file_that_cannot_verify_fails_the_load(tmp_path, content):
    path = str(tmp_path / 'ca.pem')
    if content is not None:
        peers.write_file(path, content)
    with pytest.raises(config.ConfigError) as error:
        config.load_settings({}, {'enabled': 'true', 'ca_file': path})
    assert str(error.value).startswith('[statsd] ca_file = %r is invalid: '
                                       % path)


@pytest.mark.parametrize('status', [401, 403])
def test_an_api_that_asks_for_a_token_says_so_once(serve, udp, caplog,
                                                   status):
    def tokenauth(environ, start_response):
        start_response('%d Unauthorized' % status, [])
        return [b'Authentication required']
    server = serve(tokenauth)
    caplog.set_level(logging.DEBUG)
    log = outages.OutageLog()
    settings = peers.make_settings(monitoring_url=server.url,
                                   statsd_port=udp.port)
    for _ in range(3):
        assert not cycle.run_cycle(settings, log).completed
    errors = [r.getMessage() for r in caplog.records
              if r.levelno >= logging.WARNING]
    assert len(errors) == 1, errors
    assert ('failed: HTTP %d: the API %s' % (
        status, 'asks for a token' if status == 401 else 'refuses the '
        'collector')) in errors[0]
    assert errors[0].endswith(
        "set auth_type and the service user's credentials (or auth_section)"
        if status == 401 else "give the collector's Keystone user "
        "(auth_type or auth_section) the role that filter asks for")
    print(errors[0])
