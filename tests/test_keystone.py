"""The collector behind keystonemiddleware's tokenauth, with a real Keystone.

One real Keystone (tests/support/keystone_peer.py) serves the module, with
tokens that live EXPIRATION seconds so that renewals happen while a test
runs. The API servers are the fixture API behind real keystonemiddleware
(current on 3.x, MagnetoDB 2015.1's 1.5.2 on 2.7), the collector gets its
token through keystoneauth1 (3.x) or python-keystoneclient 1.3.4 (2.7).
"""

import logging
import re
import socket
import sys

import pytest
from six.moves.urllib import error as urllib_error

from magnetodb_statsd_middleware import compat
from magnetodb_statsd_middleware import config
from magnetodb_statsd_middleware import httpget
from magnetodb_statsd_middleware import keystone
from magnetodb_statsd_middleware import outages
from magnetodb_statsd_middleware.demo import fakeapi
from tests.support import keystone_peer
from tests.support import peers

pytestmark = pytest.mark.timeout(300)

EXPIRATION = keystone_peer.EXPIRATION
REQUEST_TIMEOUT = keystone_peer.REQUEST_TIMEOUT
AGENT = keystone_peer.AGENT
# keystonemiddleware 1.5.2 (Kilo) names its plugin option auth_plugin.
PLUGIN_KEY = 'auth_plugin' if compat.PY2 else 'auth_type'


def _conf(daemon, prefix, tmp_path, **options):
    return peers.statsd_section(**peers.statsd_options(
        daemon.port, prefix, dict(healthcheck_url='$health', host_name='h',
                                  request_timeout=REQUEST_TIMEOUT,
                                  lock_path=tmp_path / 'statsd.lock'),
        **options))


def _behind_tokenauth(api_server, keystone_server, conf):
    """The fixture API's monitoring pipeline behind keystonemiddleware."""
    api = api_server(
        conf, monitoring_pipeline='authtoken statsd monitoring_app',
        extra_sections='\n[filter:authtoken]\npaste.filter_factory = '
                       'keystonemiddleware.auth_token:filter_factory\n'
                       + keystone_server.authtoken_section(PLUGIN_KEY))
    api.wait_ready()
    return api


def _log_lines(api, level):
    """The collector's log lines at ``level`` (keystonemiddleware logs
    its own view of a Keystone outage)."""
    return ['%s %s: %s' % line[1:]
            for line in peers.log_lines(api.log, ours=True)
            if line.level == level]


def _expected(prefix):
    return peers.expected_gauges(fakeapi.build_dataset(), prefix)


def _arrived(daemon, prefix, expected):
    def arrived():
        gauges = daemon.gauges(prefix + '.')
        return all(gauges.get(k) == v for k, v in expected.items())
    return arrived


def test_gauges_through_tokenauth_with_one_token_reused_and_renewed(
        api_server, keystone_server, statsd_daemon, prefix, tmp_path):
    credentials = keystone_server.credentials()
    before = len(keystone_server.token_requests(AGENT))
    api = _behind_tokenauth(api_server, keystone_server, _conf(
        statsd_daemon, prefix, tmp_path, auth_type='password',
        **credentials))
    # tokenauth is there: a request without a token is refused.
    with pytest.raises(urllib_error.HTTPError) as refused:
        peers.http_get(api.monitoring_url)
    assert refused.value.code == 401
    peers.wait_for(_arrived(statsd_daemon, prefix, _expected(prefix)),
                   timeout=60, message='the gauges through tokenauth')
    tokens, cycles = keystone_server.renewed_and_reused(
        statsd_daemon, prefix, before)
    assert all(request.status == 201 for request in tokens)
    # Renewed before it expired: tokenauth never refused the collector.
    assert not _log_lines(api, 'ERROR') and 'Traceback' not in api.log, \
        api.log
    assert statsd_daemon.gauges(prefix + '.health.')[
        prefix + '.health.h.overall'] == 1
    print('%d token requests over %d completed cycles' % (
        len(tokens), cycles))


def _keystone_error(api, cause):
    return [line for line in _log_lines(api, 'ERROR')
            if 'Keystone failed' in line and line.endswith(cause)]


def test_a_wrong_password_is_one_error_and_health_goes_on(
        api_server, keystone_server, statsd_daemon, prefix, tmp_path):
    credentials = keystone_server.credentials(wrong_password=True)
    api = _behind_tokenauth(api_server, keystone_server, _conf(
        statsd_daemon, prefix, tmp_path, auth_type='v3password',
        **credentials))
    before = len(keystone_server.token_requests(AGENT))
    peers.wait_for(
        lambda: len(keystone_server.token_requests(AGENT)) >= before + 4,
        timeout=30, message='four cycles asking Keystone')
    line = ("ERROR magnetodb_statsd_middleware: Keystone failed: no token "
            "for user 'statsd' (domain 'default'), project 'service' "
            "(domain 'default') at %s: Keystone refused the credentials "
            "(HTTP 401)" % keystone_server.url)
    errors = _log_lines(api, 'ERROR')
    assert errors == [line], api.log
    print(errors[0])
    assert keystone_peer.WRONG_PASSWORD not in api.log
    assert 'Traceback' not in api.log
    # No table gauge, health gauges as ever, the API serving.
    gauges = statsd_daemon.gauges(prefix + '.')
    assert gauges[prefix + '.health.h.overall'] == 1
    assert not [name for name in gauges if '.health.' not in name
                and '.collector.' not in name]
    assert api.get()[0] == 200


# -- the command line ------------------------------------------------------

def _cli_conf(tmp_path, api, keystone_server, **options):
    # keystonemiddleware's first validation in a new API process costs
    # it a token of its own and the catalog: seconds.
    values = dict(monitoring_url=api.monitoring_url, auth_type='password',
                  request_timeout=20)
    values.update(keystone_server.credentials())
    values.update(options)
    return peers.write_file(tmp_path / 'cli.conf',
                            peers.statsd_section(**values))


def _run(conf_path, *args):
    return peers.run([sys.executable, '-m',
                      'magnetodb_statsd_middleware.cli', '--config-file',
                      conf_path] + list(args))


def test_check_and_dry_run_authenticate_like_the_filter(
        api_server, keystone_server, statsd_daemon, prefix, tmp_path):
    api = _behind_tokenauth(api_server, keystone_server, _conf(
        statsd_daemon, prefix, tmp_path, enabled='false'))
    check = _run(_cli_conf(tmp_path, api, keystone_server), '--check')
    assert check.returncode == 0, check.stdout + check.stderr
    assert ("OK   Keystone: a token for user 'statsd' (domain 'default'), "
            "project 'service' (domain 'default') at %s"
            % keystone_server.url) in check.stdout.splitlines()
    assert 'OK   monitoring API: answered with 1 row' in check.stdout
    once = _run(_cli_conf(tmp_path, api, keystone_server), '--once',
                '--dry-run')
    assert once.returncode == 0, once.stderr
    assert 'magnetodb.totals.projects:3|g' in once.stdout.splitlines()
    wrong = _run(_cli_conf(tmp_path, api, keystone_server,
                           password='not-the-password'), '--check')
    assert wrong.returncode == 1
    assert ('FAIL Keystone: no token for user \'statsd\'' in wrong.stdout
            and wrong.stdout.count('Keystone refused the credentials '
                                   '(HTTP 401)') == 2), wrong.stdout
    assert 'not-the-password' not in wrong.stdout + wrong.stderr
    assert 'Traceback' not in wrong.stdout + wrong.stderr


# -- without Keystone: options, and Keystone that does not answer ----------

def test_credentials_from_auth_section_with_the_kilo_spelling(tmp_path):
    path = peers.write_file(tmp_path / 'api.conf', (
        '[statsd]\nenabled = true\nauth_section = keystone_authtoken\n'
        'username = statsd\npassword = statsd-secret\n\n'
        '[keystone_authtoken]\nauth_plugin = password\n'
        'auth_url = http://127.0.0.1:5000/v3\nusername = magnetodb\n'
        'password = magnetodb-secret\nproject_name = service\n'
        'user_domain_id = default\nproject_domain_id = default\n'))
    settings = config.load_settings({}, {'oslo_config_file': path,
                                         'project_name': 'statsd-project'})
    assert (settings.auth_type, settings.auth_url, settings.username,
            settings.password, settings.project_name,
            settings.user_domain_id) == (
        'password', 'http://127.0.0.1:5000/v3', 'statsd', 'statsd-secret',
        'statsd-project', 'default')
    assert 'statsd-secret' not in repr(settings)


def test_an_auth_section_without_a_plugin_fails_the_load(tmp_path):
    """MagnetoDB's shipped form (admin_user, admin_password) has no
    plugin: the collector would send no token, and says so at once."""
    path = peers.write_file(tmp_path / 'api.conf', (
        '[statsd]\nenabled = true\nauth_section = keystone_authtoken\n\n'
        '[keystone_authtoken]\nadmin_user = magnetodb\n'
        'admin_password = s3cret\nadmin_tenant_name = service\n'))
    with pytest.raises(config.ConfigError) as error:
        config.load_settings({}, {'oslo_config_file': path})
    assert str(error.value).startswith(
        "[statsd] auth_section = 'keystone_authtoken' is invalid: "
        "[keystone_authtoken] sets no auth_type (nor auth_plugin)")
    assert 's3cret' not in str(error.value)


@pytest.mark.parametrize('options, problem', [
    ({'project_name': ''}, 'project_name or project_id not set'),
    ({'user_domain_id': ''}, 'user_domain_name or user_domain_id not set'),
    ({'project_domain_id': ''},
     'project_domain_name or project_domain_id not set'),
    ({'auth_url': 'keystone:5000'}, "auth_url = 'keystone:5000'"),
])
def test_incomplete_credentials_fail_the_load_without_the_password(
        options, problem):
    values = dict(enabled='true', auth_type='password',
                  auth_url='http://127.0.0.1:5000/v3', username='statsd',
                  password='s3cret', project_name='service',
                  user_domain_id='default', project_domain_id='default')
    values.update(options)
    with pytest.raises(config.ConfigError) as error:
        config.load_settings({}, values)
    message = str(error.value)
    assert message.startswith("[statsd] auth_type = 'password' is invalid")
    assert problem in message and 's3cret' not in message


def test_an_unknown_auth_type_names_the_choices():
    with pytest.raises(config.ConfigError) as error:
        config.load_settings({}, {'enabled': 'true', 'auth_type': 'token'})
    assert str(error.value) == (
        "[statsd] auth_type = 'token' (the paste filter section) is "
        "invalid: not one of password, v3password, or empty")


def test_a_keystone_that_does_not_answer_costs_request_timeout(caplog):
    """Every call to Keystone is bounded; while it fails it is asked at
    most once an interval (however often the start-up grace retries
    cycles), and the outage is one ERROR."""
    listener = socket.socket()
    listener.bind(('127.0.0.1', 0))
    listener.listen(8)
    connections = []

    def accept():
        while True:
            try:
                connections.append(listener.accept()[0])
            except compat.OS_ERRORS:
                return
    peers.start_thread(accept)
    url = 'http://127.0.0.1:%d/v3' % listener.getsockname()[1]
    caplog.set_level(logging.DEBUG)
    source = keystone.TokenSource(_settings(url, request_timeout=0.5,
                                            interval=2), outages.OutageLog())
    started = compat.monotonic()
    for _ in range(2):  # two cycles within the interval: one attempt
        source.begin_cycle()
        for _ in range(2):
            with pytest.raises(keystone.KeystoneError) as error:
                source.token()
    assert compat.monotonic() - started < 0.5 + peers.SCHEDULING_SLACK
    assert len(connections) == 1
    assert str(error.value).endswith(': no answer within 0.5s')
    peers.wait_for(lambda: compat.monotonic() - started > 2.5,
                   message='an interval')
    source.begin_cycle()
    with pytest.raises(keystone.KeystoneError):
        source.token()
    assert len(connections) == 2
    errors = [r.getMessage() for r in caplog.records
              if r.levelno >= logging.WARNING]
    assert errors == ['Keystone failed: %s' % error.value]
    assert 's3cret' not in caplog.text
    assert not re.search('Traceback', caplog.text)
    listener.close()
    for connection in connections:
        connection.close()


def _settings(auth_url, **options):
    values = dict(auth_type='v3password', auth_url=auth_url,
                  username='statsd', password='s3cret',
                  project_name='service', user_domain_id='default',
                  project_domain_id='default', request_timeout=5)
    values.update(options)
    return peers.make_settings(**values)


def _not_found(environ, start_response):
    start_response('404 Not Found', [('Content-Type', 'text/plain')])
    return [b'not the identity API\n']


def test_ca_file_verifies_an_https_keystone(serve, tmp_path, caplog):
    """The token request goes through the filter's own trust: an
    https auth_url is verified against ca_file."""
    ours = peers.CertificateAuthority(str(tmp_path), 'ours')
    other = peers.CertificateAuthority(str(tmp_path), 'other')
    server = serve(_not_found, tls=ours.server_context())
    url = 'https://127.0.0.1:%d/v3' % server.port
    causes = []
    for ca_file in (other.ca_file, ours.ca_file):
        source = keystone.TokenSource(_settings(url, ca_file=ca_file),
                                      outages.OutageLog())
        with pytest.raises(keystone.KeystoneError) as error:
            source.token()
        causes.append(str(error.value).rsplit(': ', 1)[1])
    assert causes == [
        "certificate verification failed; set ca_file to the CA bundle "
        "that signed Keystone's certificate",
        # Verified: Keystone itself answered (this one is not Keystone).
        'Keystone answered HTTP 404']
    assert 's3cret' not in caplog.text


def test_a_refused_token_is_renewed_once_and_the_request_sent_again(serve):
    """A 401 to a request with a token (revoked, or Keystone's clock
    ahead): one renewal, the same request again; a new token refused too
    fails the request with what it means."""
    accepted = set(['second'])

    def api(environ, start_response):
        if environ.get('HTTP_X_AUTH_TOKEN') not in accepted:
            start_response('401 Unauthorized', [('Content-Length', '0')])
            return [b'']
        start_response('200 OK', [('Content-Type', 'application/json')])
        return [b'[]']

    class Tokens(object):
        """A TokenSource's two calls, counted."""
        def __init__(self):
            self.issued = ['first']

        def token(self):
            return self.issued[-1]

        def renew(self):
            self.issued.append(['second', 'third'][len(self.issued) - 1])
            return self.issued[-1]

    server = serve(api)
    settings = peers.make_settings(monitoring_url=server.url)
    tokens = Tokens()
    getter = httpget.HttpGetter(server.url, settings, tokens)
    assert getter.get(getter.path, {})[0] == 200
    assert getter.get(getter.path, {})[0] == 200
    assert tokens.issued == ['first', 'second']
    accepted.clear()
    with pytest.raises(httpget.HttpError) as error:
        getter.get(getter.path, {})
    assert tokens.issued == ['first', 'second', 'third']
    assert str(error.value).endswith(
        'failed: HTTP 401: %s' % httpget.TOKEN_REFUSED)
    getter.close()


def test_keystone_stopped_and_started_again(
        api_server, keystone_server, statsd_daemon, prefix, tmp_path):
    """Last in the module: the shared Keystone stops for a while."""
    api = _behind_tokenauth(api_server, keystone_server, _conf(
        statsd_daemon, prefix, tmp_path, auth_type='password',
        **keystone_server.credentials()))
    expected = _expected(prefix)
    peers.wait_for(_arrived(statsd_daemon, prefix, expected), timeout=60,
                   message='the gauges through tokenauth')
    keystone_server.stop()
    try:
        # The kept token serves on until it must be renewed.
        peers.wait_for(lambda: _keystone_error(api, ': cannot connect'),
                       timeout=2 * EXPIRATION, interval=0.5,
                       message='the Keystone outage logged')
        statsd_daemon.delete_gauges(prefix + '.totals.')
        checked = prefix + '.health.h.overall'
        statsd_daemon.delete_gauges(checked)
        peers.wait_for(lambda: statsd_daemon.gauges(checked),
                       message='health gauges meanwhile')
    finally:
        keystone_server.start()
    peers.wait_for(_arrived(statsd_daemon, prefix, expected), timeout=30,
                   message='the gauges after Keystone came back')
    peers.wait_for(lambda: 'INFO magnetodb_statsd_middleware: Keystone '
                   'recovered' in api.log, message='the recovery logged')
    (error,) = _keystone_error(api, ': cannot connect')
    print(error)
    assert len(_log_lines(api, 'ERROR')) == 1, api.log
    assert 'Traceback' not in api.log
