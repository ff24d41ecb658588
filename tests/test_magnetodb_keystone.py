"""MagnetoDB 2015.1 hardened: tokenauth in its monitoring pipeline, with a
real Keystone.

MagnetoDB's own server and api-paste.ini on CPython 2.7 (see
tests/support/magnetodb_peer.py: only Cassandra and JMX are faked), with
its own keystonemiddleware 1.5.2 ``tokenauth`` in front of the monitoring
app in the password plugin form that a v3-only Keystone serves, and the
filter after it, authenticating with python-keystoneclient 1.3.4 against
a real Keystone (tests/support/keystone_peer.py).
"""

import random
import re

import pytest

from tests.support import keystone_peer
from tests.support import magnetodb_peer as mdb
from tests.support import peers

pytestmark = pytest.mark.timeout(600)

AGENT = keystone_peer.AGENT
EXPIRATION = keystone_peer.EXPIRATION


def _tables():
    rng = random.Random(5000)
    tables = []
    for _ in range(4):
        tables += mdb.make_tables(rng, mdb.project_id(rng), 6)
    return tables


TABLES = _tables()


@pytest.fixture
def hardened(magnetodb_env, keystone_server, tmp_path):
    """``hardened(statsd_options, keystone_in_paste=True)`` -> a ready
    MagnetoDB with tokenauth in front of its monitoring app."""
    servers = []

    def start(statsd, keystone_in_paste=True):
        workdir = tmp_path / ('magnetodb%d' % len(servers))
        workdir.mkdir()
        data = str(workdir / 'data.json')
        mdb.write_data(data, TABLES)
        port = peers.free_port()
        url = 'http://127.0.0.1:%d' % port
        statsd = dict(statsd, monitoring_url=url + mdb.MONITORING_PATH,
                      healthcheck_url=url + '/healthcheck?fullcheck=true')
        server = mdb.MagnetoDBServer(
            magnetodb_env, str(workdir), data, port=port, statsd=statsd,
            keystone=keystone_server, keystone_in_paste=keystone_in_paste)
        servers.append(server)
        return server.wait_ready()

    yield start
    for server in servers:
        server.stop()


def _statsd(daemon, prefix, **options):
    return peers.statsd_options(
        daemon.port, prefix,
        dict(host_name='mdb', request_timeout=keystone_peer.REQUEST_TIMEOUT),
        **options)


def _every_gauge(server, daemon, prefix):
    expected = mdb.expected_gauges(TABLES, prefix)
    daemon.wait_for_gauges(prefix, expected, timeout=90)
    health = '%s.health.mdb.' % prefix
    assert daemon.gauges(health) == {
        health + 'api': 1, health + 'identity': 1, health + 'storage': 1,
        health + 'overall': 1}
    # tokenauth is in front: without a token MagnetoDB refuses.
    status, _ = server.get(mdb.MONITORING_PATH)
    assert status == 401


def test_the_keystone_extra_changes_no_magnetodb_library(magnetodb_env):
    """On 2.7 the extra needs only what MagnetoDB 2015.1 has already:
    python-keystoneclient 1.3.4."""
    before = magnetodb_env.freeze('magnetodb')
    after = magnetodb_env.freeze('with-keystone')
    assert 'python-keystoneclient==1.3.4' in before
    assert before - after == set()
    assert {re.split(r'[ =@]', line, 1)[0].lower()
            for line in after - before} == {'magnetodb-statsd-middleware',
                                           'statsd'}


def test_gauges_from_magnetodb_behind_tokenauth(
        hardened, keystone_server, statsd_daemon, prefix):
    """Credentials in [statsd]: every gauge right, one token reused across
    cycles and renewed before it expires."""
    before = len(keystone_server.token_requests(AGENT))
    server = hardened(_statsd(statsd_daemon, prefix, auth_type='password',
                              **keystone_server.credentials()))
    _every_gauge(server, statsd_daemon, prefix)
    tokens, cycles = keystone_server.renewed_and_reused(
        statsd_daemon, prefix, before)
    assert server.our_lines() and not [
        line for line in server.our_lines() if line[0] != 'INFO'], \
        server.our_lines()
    assert 'Traceback' not in server.log
    print('MagnetoDB: %d token requests over %d completed cycles'
          % (len(tokens), cycles))


def test_a_wrong_password_is_one_error_and_magnetodb_serves_on(
        hardened, keystone_server, statsd_daemon, prefix):
    server = hardened(_statsd(
        statsd_daemon, prefix, auth_type='password',
        **keystone_server.credentials(wrong_password=True)))
    before = len(keystone_server.token_requests(AGENT))
    peers.wait_for(
        lambda: len(keystone_server.token_requests(AGENT)) >= before + 4,
        timeout=60, message='four cycles asking Keystone')
    errors = [line for line in server.our_lines() if line[0] != 'INFO']
    assert errors == [('ERROR', (
        "Keystone failed: no token for user 'statsd' (domain 'default'), "
        "project 'service' (domain 'default') at %s: Keystone refused the "
        "credentials (HTTP 401)" % keystone_server.url))], server.log
    assert keystone_peer.WRONG_PASSWORD not in server.log
    assert 'Traceback' not in server.log
    health = '%s.health.mdb.overall' % prefix
    peers.wait_for(lambda: statsd_daemon.gauges(health), message='health')
    assert statsd_daemon.gauges(health) == {health: 1}
    assert statsd_daemon.data_gauges(prefix) == {}
    assert server.get('/healthcheck')[0] == 200


def test_auth_section_keystone_authtoken_and_keystone_restarted(
        hardened, keystone_server, statsd_daemon, prefix):
    """The service user that keystonemiddleware reads from
    [keystone_authtoken] (Kilo's auth_plugin spelling), through
    auth_section; then Keystone stops and starts again (last in the
    module)."""
    server = hardened(_statsd(statsd_daemon, prefix,
                              auth_section='keystone_authtoken'),
                      keystone_in_paste=False)
    _every_gauge(server, statsd_daemon, prefix)
    keystone_server.stop()
    try:
        peers.wait_for(lambda: [line for line in server.our_lines()
                                if line[0] == 'ERROR'],
                       timeout=3 * EXPIRATION, interval=0.5,
                       message='the Keystone outage logged')
        health = '%s.health.mdb.' % prefix
        statsd_daemon.delete_gauges(health)
        peers.wait_for(lambda: statsd_daemon.gauges(health + 'api'),
                       message='health gauges meanwhile')
    finally:
        keystone_server.start()
    statsd_daemon.delete_gauges(prefix + '.totals.')
    peers.wait_for(lambda: statsd_daemon.gauges(prefix + '.totals.'),
                   timeout=60, message='the totals after Keystone is back')
    peers.wait_for(lambda: ('INFO', 'Keystone recovered')
                   in server.our_lines(), message='the recovery logged')
    errors = [line for line in server.our_lines() if line[0] != 'INFO']
    assert errors == [('ERROR', (
        "Keystone failed: no token for user 'magnetodb' (domain "
        "'default'), project 'service' (domain 'default') at %s: cannot "
        "connect" % keystone_server.url))], server.log
    print(errors[0][1])
    # MagnetoDB's own Identity health check logs a traceback of its
    # discovery each time it finds Keystone down; nothing else does.
    tracebacks = server.log.split('Traceback (most recent call last):')[1:]
    assert tracebacks and all(
        'keystoneclient/generic/client.py' in block.split(' [-] ')[0]
        for block in tracebacks), server.log
    assert keystone_peer.password('magnetodb') not in server.log
