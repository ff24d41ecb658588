"""The filter inside MagnetoDB 2015.1 itself, on CPython 2.7.

MagnetoDB's own servers (``bin/magnetodb-api-server`` and
``bin/magnetodb-api-server-gunicorn``) serve its own etc/ files from the
environment that ``tools/build-magnetodb-env.sh`` builds; only Cassandra
and its Jolokia agents are in-memory fakes (tests/magnetodb/). See
tests/support/magnetodb_peer.py. The expected gauges are computed from the
data here, never by the package.
"""

import collections
import difflib
import itertools
import json
import logging
import os
import random
import re
import signal
import time
import urllib.parse

import pytest

from magnetodb_statsd_middleware import listing
from magnetodb_statsd_middleware import monitoring
from magnetodb_statsd_middleware.demo import fakeapi
from tests.support import magnetodb_peer as mdb
from tests.support import paging
from tests.support import peers
from tests.support import status_scenario as scenario

# The first test builds the CPython 2.7 env when its cache is cold (about
# a minute on 2 cores, more on a slow network); every wait below has its
# own deadline.
pytestmark = pytest.mark.timeout(600)



def _healthy_tables():
    """A few thousand tables over many projects, one of them with more than
    a page (1,000) of tables, some not ACTIVE, names with '.' and '-'."""
    rng = random.Random(2015)
    tables = mdb.make_tables(rng, mdb.project_id(rng), 1100)
    for _ in range(80):
        tables += mdb.make_tables(rng, mdb.project_id(rng),
                                  rng.randint(1, 40))
    # Not creatable through the API, but possible in storage.
    unicode_project = mdb.project_id(rng)
    for name in (u'donn\xe9es', u'na\xefve.table', u'\u20ac-prices'):
        tables.append(mdb.Table(unicode_project, name, 'ACTIVE',
                                [3, 4, 5], [1, 1, 2]))
    return tables


HEALTHY = _healthy_tables()
HEALTHY_HEALTH = {'API': 'OK', 'Identity': 'OK', 'Storage': 'OK',
                  'Messaging': 'Not Implemented'}


@pytest.fixture(scope='session')
def keystone():
    server = mdb.serve_keystone()
    yield server
    server.close()


@pytest.fixture
def magnetodb(magnetodb_env, keystone, tmp_path):
    """``magnetodb(tables, **options)`` -> a ready MagnetoDBServer."""
    servers = []

    def start(tables, data=None, **options):
        """``data``: a data file to share with other servers, written
        already; else one of its own is written."""
        workdir = tmp_path / ('magnetodb%d' % len(servers))
        workdir.mkdir()
        if data is None:
            data = str(workdir / 'data.json')
            mdb.write_data(data, tables)
        server = mdb.MagnetoDBServer(magnetodb_env, str(workdir), data,
                                     **options)
        servers.append(server)
        return server.wait_ready()

    yield start
    for server in servers:
        server.stop()
        assert 'FAKE-CASSANDRA-UNSUPPORTED' not in server.log


def test_installing_the_filter_changes_no_magnetodb_library(magnetodb_env):
    before = magnetodb_env.freeze('magnetodb')
    after = magnetodb_env.freeze('with-filter')
    assert 'magnetodb==2015.1' in before
    assert before - after == set()
    added = after - before
    ours = {line for line in added
            if line.lower().startswith('magnetodb-statsd-middleware')}
    assert len(ours) == 1, added
    assert added - ours == {'statsd==3.3.0'}


def test_the_coordination_extra_changes_no_magnetodb_library(magnetodb_env):
    """``pip install 'magnetodb-statsd-middleware[coordination]'`` into
    MagnetoDB's env only adds packages: tooz, its redis client and what
    they need; every MagnetoDB pin stays."""
    before = magnetodb_env.freeze('magnetodb')
    after = magnetodb_env.freeze('with-coordination')
    assert before - after == set()
    added = {re.split(r'[ =@]', line, 1)[0].lower()
             for line in after - before}
    assert added == {'magnetodb-statsd-middleware', 'statsd', 'tooz',
                     'redis', 'kazoo', 'pymemcache', 'zake', 'retrying'}, \
        sorted(after - before)
    print('added to MagnetoDB 2015.1: %s' % ', '.join(sorted(
        line for line in after - before if 'statsd-middleware' not in line)))


CLUSTER_INTERVAL = 1
CLUSTER_LOCK_TIMEOUT = 2


def _listing_pollers(server):
    """The pids whose filter read the table listing (every host's filter
    polls its own health check)."""
    return {pid for pid, uri in server.polls()
            if uri.startswith(mdb.MONITORING_PATH)}


def test_a_sigkill_hands_the_table_metrics_to_another_magnetodb(
        magnetodb, statsd_daemon, prefix, backend):
    """Two MagnetoDB servers as two hosts (each its own port and host
    lock), one redis or memcached: MagnetoDB serves with coordination_url
    set, one server emits, and a SIGKILL of it hands the table metrics to
    the other within the lock timeout plus one interval."""
    url = backend.url(CLUSTER_LOCK_TIMEOUT)
    tables = HEALTHY[:50]
    servers = []
    for host in ('mdb-a', 'mdb-b'):
        port = peers.free_port()
        options = _statsd_options(statsd_daemon, prefix, port, host)
        options.update(coordination_url=url, interval=CLUSTER_INTERVAL)
        servers.append(magnetodb(tables, port=port, statsd=options))
    for server in servers:  # MagnetoDB's own API serves
        assert server.get_json('/v1/monitoring/projects/'
                               + tables[0].tenant)
    emitting = peers.wait_for(
        lambda: [s for s in servers if _listing_pollers(s)], timeout=60,
        message='one server to read the listing')
    (leader,) = emitting
    (standby,) = [s for s in servers if s is not leader]
    assert _listing_pollers(leader) == {leader.process.pid}
    expected = mdb.expected_gauges(tables, prefix)
    statsd_daemon.wait_for_gauges(prefix, expected, timeout=120,
                                  interval=1.0)
    assert not _listing_pollers(standby)
    # The lock's expiry stays within its timeout while held.
    ttls = []
    sampled = time.time()
    while time.time() < sampled + 2 * CLUSTER_LOCK_TIMEOUT:
        ttls.append(backend.lock_ttl('magnetodb-statsd-' + prefix))
        time.sleep(0.1)
    print('lock TTL inside MagnetoDB (%s): %.2f-%.2fs (timeout %ds)'
          % (backend.scheme, min(ttls), max(ttls), CLUSTER_LOCK_TIMEOUT))
    assert None not in ttls, ttls
    assert 0 < min(ttls) and max(ttls) <= CLUSTER_LOCK_TIMEOUT, ttls

    leader.process.kill()  # SIGKILL
    killed = time.time()
    peers.wait_for(lambda: _listing_pollers(standby), timeout=30,
                   message='the standby to read the listing')
    takeover = time.time() - killed
    print('takeover after SIGKILL inside MagnetoDB (%s): %.2fs'
          % (backend.scheme, takeover))
    assert takeover <= (CLUSTER_LOCK_TIMEOUT + CLUSTER_INTERVAL
                        + peers.SCHEDULING_SLACK), takeover
    statsd_daemon.delete_gauges(prefix + '.')
    statsd_daemon.wait_for_gauges(prefix, expected, timeout=120,
                                  interval=1.0)
    assert _listing_pollers(standby) == {standby.process.pid}
    for server in servers:
        assert 'Traceback' not in server.log
        assert 'coordination backend failed' not in server.log


OUTAGE_LOCK_TIMEOUT = 4
# Longer than the lock timeout and the request timeout: every call fails,
# every lock and membership expires meanwhile.
FROZEN = OUTAGE_LOCK_TIMEOUT + 3


def test_the_coordination_backend_frozen_and_restarted_empty(
        magnetodb, statsd_daemon, prefix, tmp_path, backend):
    """Two MagnetoDB 2015.1 servers sharing the walk through tooz's Kilo
    line, the backend frozen (SIGSTOP, as behind a partition) then
    restarted empty: each server logs each outage once at ERROR and its
    end once at INFO, nothing else at WARNING or above from any logger
    (tooz's included), no traceback; every gauge is back within the lock
    timeout plus two intervals of the backend; the API never notices."""
    url = backend.url(OUTAGE_LOCK_TIMEOUT)
    tables = HEALTHY[:50]
    data = str(tmp_path / 'shared.json')
    mdb.write_data(data, tables)
    expected = mdb.expected_gauges(tables, prefix)
    servers = []
    for host in ('mdb-a', 'mdb-b'):
        port = peers.free_port()
        options = _statsd_options(statsd_daemon, prefix, port, host)
        options.update(coordination_url=url, share_walk='true',
                       request_timeout=2)
        servers.append(magnetodb(tables, data=data, port=port,
                                 statsd=options))
    statsd_daemon.wait_for_gauges(prefix, expected, timeout=120,
                                  interval=1.0)
    probes = [peers.RequestLoop(server.url + '/healthcheck')
              for server in servers]
    offsets = [len(server.log) for server in servers]
    recoveries = {}
    try:
        backend.process.send_signal(signal.SIGSTOP)
        peers.wait_for(lambda: _all_say(servers, offsets, 'ERROR', 1),
                       timeout=30, message='the freeze logged')
        frozen_until = time.time() + FROZEN
        while time.time() < frozen_until:
            assert not _all_say(servers, offsets, 'INFO', 1, any)
            time.sleep(0.2)
        backend.process.send_signal(signal.SIGCONT)
        recoveries['frozen'] = peers.every_gauge_back(
            statsd_daemon, prefix, expected, time.time())
        peers.wait_for(lambda: _all_say(servers, offsets, 'INFO', 1),
                       timeout=30, message='the recovery logged')

        backend.stop()
        peers.wait_for(lambda: _all_say(servers, offsets, 'ERROR', 2),
                       timeout=30, message='the restart logged')
        backend.start()
        recoveries['restarted empty'] = peers.every_gauge_back(
            statsd_daemon, prefix, expected, time.time())
        peers.wait_for(lambda: _all_say(servers, offsets, 'INFO', 2),
                       timeout=30, message='the recovery logged')
    finally:
        backend.process.send_signal(signal.SIGCONT)
        for probe in probes:
            probe.stop()
    for server, offset in zip(servers, offsets):
        print('\n'.join('%s %s %s' % line[1:]
                        for line in _outage_lines(server, offset)))
    for what, seconds in sorted(recoveries.items()):
        print('%s (%s): every gauge back %.1fs after the backend'
              % (what, backend.scheme, seconds))
        assert seconds <= (OUTAGE_LOCK_TIMEOUT + 2 * 2
                           + peers.SCHEDULING_SLACK), (what, seconds)
    for probe in probes:
        print('/healthcheck meanwhile: %d requests, max %.3fs'
              % (len(probe.durations), max(probe.durations)))
        assert probe.durations and not probe.failures, probe.failures
        assert max(probe.durations) < peers.SCHEDULING_SLACK
    for server, offset in zip(servers, offsets):
        said = _outage_lines(server, offset)
        assert 'Traceback' not in server.log[offset:]
        assert [line.level for line in said
                if line.level != 'INFO'] == ['ERROR', 'ERROR'], said
        assert all('coordination backend failed' in line.message
                   for line in said if line.level == 'ERROR')
        assert sum('coordination backend recovered' in line.message
                   for line in said) == 2, said


def _outage_lines(server, offset):
    """peers.LogLine of every logger, logged since ``offset`` above DEBUG,
    the INFO lines of this package about the outage only."""
    return [line for line in peers.log_lines(server.log[offset:])
            if line.level != 'DEBUG' and (line.level != 'INFO' or
                                          'coordination backend'
                                          in line.message)]


def _all_say(servers, offsets, level, count, every=all):
    """Whether every server (or any) logged ``count`` outage lines at
    ``level`` since its offset."""
    return every(sum(line.level == level for line in
                     _outage_lines(server, offset)) >= count
                 for server, offset in zip(servers, offsets))


SHARE_INTERVAL = 6


def _shared_tables():
    """About 4,500 tables over 150 projects, none of them alone a third."""
    rng = random.Random(20)
    tables = []
    for _ in range(150):
        tables += mdb.make_tables(rng, mdb.project_id(rng),
                                  rng.randint(1, 58))
    return tables


def _rows_served(uris, order, active):
    """Rows the listing and project requests in ``uris`` answered with,
    as MagnetoDB pages ``order`` (``[(tenant, name)]``); ``active``:
    ``{tenant: ACTIVE tables}``."""
    layout = paging.Layout(order, {}, (), {}, 1000)
    rows = 0
    for uri in uris:
        path, _, query = uri.partition('?')
        if path != mdb.MONITORING_PATH:
            rows += active.get(urllib.parse.unquote(
                path[len(mdb.MONITORING_PATH) + 1:]), 0)
        else:
            rows += len(paging.page(layout, dict(
                urllib.parse.parse_qsl(query))))
    return rows


def _slot_end(interval, margin=0.5):
    """Sleep until ``margin`` seconds before the next wall-clock cycle."""
    now = time.time()
    end = (int(now // interval) + 1) * interval - margin
    if end <= now:
        end += interval
    time.sleep(end - now)


def test_three_magnetodb_hosts_share_the_walk(
        magnetodb, magnetodb_env, statsd_daemon, prefix, tmp_path):
    """Three MagnetoDB 2015.1 servers as three hosts (each its own port
    and host lock, one fake storage), one redis, Etsy statsd: with
    share_walk each serves about a third of the listing, every gauge is
    right, and a host that joins, dies or stops changes the ranges."""
    redis = peers.RedisServer(str(tmp_path))
    tables = _shared_tables()
    data = str(tmp_path / 'shared.json')
    mdb.write_data(data, tables)
    expected = mdb.expected_gauges(tables, prefix)
    url = 'redis://127.0.0.1:%d?timeout=%d' % (redis.port,
                                               CLUSTER_LOCK_TIMEOUT)

    def host(name):
        port = peers.free_port()
        options = _statsd_options(statsd_daemon, prefix, port, name)
        options.update(coordination_url=url, share_walk='true',
                       interval=SHARE_INTERVAL)
        return magnetodb(tables, data=data, port=port, statsd=options)

    try:
        servers = dict((name, host(name)) for name in ('mdb-a', 'mdb-b'))
        statsd_daemon.wait_for_gauges(prefix, expected, timeout=120,
                                      interval=1.0)

        # A host that joins takes a range from the next cycle on.
        joined = time.time()
        servers['mdb-c'] = host('mdb-c')
        peers.wait_for(lambda: _listing_pollers(servers['mdb-c']),
                       timeout=3 * SHARE_INTERVAL + peers.SCHEDULING_SLACK,
                       message='the new host to walk a range')
        print('joined host walking after %.1fs' % (time.time() - joined))

        # Each of the three serves about a third of the rows.
        tokens = magnetodb_env.tokens(set(t.tenant for t in tables))
        order = mdb.listing_order(tables, tokens)
        active = collections.Counter(t.tenant for t in tables
                                     if t.status == 'ACTIVE')
        _slot_end(SHARE_INTERVAL)
        before = dict((n, len(s.polls())) for n, s in servers.items())
        _slot_end(SHARE_INTERVAL)
        _slot_end(SHARE_INTERVAL)
        rows = dict((n, _rows_served([u for _, u in s.polls()[before[n]:]
                                      if u.startswith(mdb.MONITORING_PATH)],
                                     order, active) / 2.0)
                    for n, s in servers.items())
        print('rows served per host per cycle (%d tables): %s'
              % (len(tables), sorted(rows.items())))
        for served in rows.values():
            assert 0.2 * len(tables) <= served <= 0.5 * len(tables), rows
        # Once, plus at most one page of 1,000 rows per range edge.
        assert sum(rows.values()) <= len(tables) + 2 * 1000, rows
        statsd_daemon.delete_gauges(prefix + '.')
        statsd_daemon.wait_for_gauges(prefix, expected, timeout=120,
                                      interval=1.0)

        # A SIGKILL: its range is read again once its membership expires.
        planner = peers.shared_walk_planner(servers, timeout=60)
        victim = sorted(n for n in servers if n != planner)[0]
        servers.pop(victim).process.kill()
        killed = time.time()
        back = peers.ranges_back(statsd_daemon, prefix, expected, killed)
        print('range of a SIGKILLed host read again after %.1fs' % back)
        assert back <= (CLUSTER_LOCK_TIMEOUT + 2 * SHARE_INTERVAL
                        + peers.SCHEDULING_SLACK), back
        statsd_daemon.wait_for_gauges(prefix, expected, timeout=120,
                                      interval=1.0)

        # A clean stop (Ctrl-C): its range goes to the other host at once.
        planner = peers.shared_walk_planner(servers, timeout=60)
        leaving = [n for n in servers if n != planner][0]
        servers[leaving].process.send_signal(signal.SIGINT)
        stopped = time.time()
        back = peers.ranges_back(statsd_daemon, prefix, expected, stopped)
        print('range of a host stopped cleanly read again after %.1fs'
              % back)
        # The cycle in flight and the next one miss its range; the one
        # after reads it (one host walks everything then).
        assert back <= 3 * SHARE_INTERVAL + peers.SCHEDULING_SLACK, back
        statsd_daemon.wait_for_gauges(prefix, expected, timeout=120,
                                      interval=1.0)
        for server in servers.values():
            assert 'Traceback' not in server.log
    finally:
        redis.stop()


def _statsd_options(daemon, prefix, port, host):
    url = 'http://127.0.0.1:%d' % port
    return peers.statsd_options(
        daemon.port, prefix, interval=2,
        monitoring_url=url + '/v1/monitoring/projects',
        healthcheck_url=url + '/healthcheck?fullcheck=true', host_name=host)


def _assert_only_the_operator_edits(server, magnetodb_env):
    """The paste ini differs from MagnetoDB's by the filter alone."""
    original = os.path.join(magnetodb_env.etc,
                            os.path.basename(server.paste_ini))
    with open(original) as f, open(server.paste_ini) as g:
        diff = [line for line in difflib.unified_diff(
            f.read().splitlines(), g.read().splitlines(), n=0, lineterm='')
            if line[:1] in '+-' and line[:3] not in ('+++', '---')]
    assert diff == [
        '-' + mdb.MONITORING_PIPELINE,
        '+' + mdb.MONITORING_PIPELINE.replace(' monitoring_app',
                                              ' statsd monitoring_app'),
        '+',
        '+[filter:statsd]',
        '+paste.filter_factory = magnetodb_statsd_middleware:filter_factory',
    ]


def _usage(tables):
    """MagnetoDB's usage_detailes of each ACTIVE table it can read."""
    return {(t.tenant, t.name): {
        'size': mdb.magnetodb_value(t.size),
        'item_count': mdb.magnetodb_value(t.item_count)}
        for t in tables if t.status == 'ACTIVE' and all(
            isinstance(value, int) for value in t.size + t.item_count)}


def _answers_meanwhile(server, tables, tokens):
    """MagnetoDB's own requests, answered while the collector polls."""
    usage = _usage(tables)
    project = tables[-1].tenant
    expected = sorted(
        ({'table_name': t.name, 'usage_detailes': usage[t.tenant, t.name]}
         for t in tables if t.tenant == project and t.status == 'ACTIVE'),
        key=lambda row: row['table_name'].encode())
    assert server.get_json('/v1/monitoring/projects/' + project) == expected

    page = server.get_json('/v1/monitoring/projects?limit=400')
    order = mdb.listing_order(tables, tokens)
    assert mdb.data_rows(page) == order[:400]
    status = {(t.tenant, t.name): t.status for t in tables}
    for row in page:
        key = row['tenant'], row['name']
        assert row['status'] == status[key]
        assert row['usage_detailes'] == usage.get(key, {})

    assert server.get_json('/healthcheck?fullcheck=true') == HEALTHY_HEALTH


@pytest.mark.parametrize('mode', ['eventlet', 'gunicorn'])
def test_gauges_from_magnetodb_itself(magnetodb, magnetodb_env, statsd_daemon,
                                      prefix, mode):
    bad_lines = statsd_daemon.bad_lines()
    port = peers.free_port()
    host = 'mdb-%s' % mode
    server = magnetodb(HEALTHY, mode=mode, port=port, statsd=_statsd_options(
        statsd_daemon, prefix, port, host))
    _assert_only_the_operator_edits(server, magnetodb_env)
    tokens = magnetodb_env.tokens({t.tenant for t in HEALTHY})

    peers.wait_for(server.polls, timeout=60, message='the first poll')
    polls_before = len(server.polls())
    _answers_meanwhile(server, HEALTHY, tokens)
    peers.wait_for(lambda: len(server.polls()) > polls_before, timeout=60,
                   message='polling to go on after our requests')

    expected = mdb.expected_gauges(HEALTHY, prefix)
    assert len(expected) > 2 * len(HEALTHY)

    statsd_daemon.wait_for_gauges(prefix, expected, timeout=180,
                                  interval=1.0)

    health = '%s.health.%s.' % (prefix, host)
    assert statsd_daemon.gauges(health) == {
        health + 'api': 1, health + 'identity': 1, health + 'storage': 1,
        # "Not Implemented" sends nothing (health.py).
        health + 'overall': 1}
    assert statsd_daemon.bad_lines() == bad_lines

    # Two complete cycles (a third has started), the same requests each
    # time, all from one process.
    def complete_cycles():
        cycles = server.polled_cycles()
        return cycles[:2] if len(cycles) >= 3 else None
    first, second = peers.wait_for(complete_cycles, timeout=120,
                                   message='two complete cycles')
    assert first == second
    pollers = {pid for pid, _ in server.polls()}
    if mode == 'gunicorn':
        workers = server.worker_pids()
        assert len(workers) == 3, server.log[-3000:]
        assert len(pollers) == 1 and pollers <= workers
    else:
        assert pollers == {server.process.pid}
    assert 'Traceback' not in server.log


def test_a_sigkilled_gunicorn_worker_is_replaced_within_one_interval(
        magnetodb, statsd_daemon, prefix):
    """MagnetoDB's own production mode, gunicorn 19.3 with eventlet
    workers: SIGKILL the worker that polls; another worker, one that
    stood by, polls within one interval (plus the suite's slack), and
    only one worker polls at a time."""
    port = peers.free_port()
    interval = 2
    options = _statsd_options(statsd_daemon, prefix, port, 'mdb-gunicorn')
    options.update(interval=interval)
    server = magnetodb(HEALTHY[:50], mode='gunicorn', port=port,
                       statsd=options)
    peers.wait_for(lambda: len(server.worker_pids()) == 3, timeout=60,
                   message='three gunicorn workers')
    def pollers_since(count):
        return {pid for pid, _ in server.polls()[count:]}
    peers.wait_for(server.polls, timeout=60, message='the first poll')
    (holder,) = pollers_since(0)
    assert holder in server.worker_pids()
    os.kill(holder, signal.SIGKILL)
    killed, seen = time.time(), len(server.polls())
    taken = peers.wait_for(lambda: pollers_since(seen) - {holder},
                           timeout=60, message='another worker to poll')
    takeover = time.time() - killed
    print('gunicorn eventlet worker SIGKILLed: another polls after %.2fs'
          % takeover)
    assert takeover <= interval + peers.SCHEDULING_SLACK, takeover
    # One worker at a time: one that stood by, or the one gunicorn
    # started in the killed one's place.
    assert len(taken) == 1, taken
    assert 'Traceback' not in server.log


def test_a_healthy_start_sends_no_false_health_alarm(magnetodb, udp, prefix):
    """magnetodb-api-server builds the filter before it listens, so its
    first health check is refused: the first seconds on the wire carry
    no health gauge of 0, and the log no ERROR."""
    port = peers.free_port()
    server = magnetodb(HEALTHY[:50], port=port, statsd=_statsd_options(
        udp, prefix, port, 'h'))
    # The window is the assertion: 10 s from the moment MagnetoDB answers
    # (what the filter sent while it started waits in the socket).
    answering = time.time()
    while time.time() < answering + 10:
        udp.drain()
    health = [line for line in udp.lines if '.health.' in line]
    assert '%s.health.h.overall:1|g' % prefix in health
    assert not [line for line in health if line.endswith(':0|g')], health
    assert 'health check failed' not in server.log


def test_fakes_reproduce_magnetodb_on_real_data(magnetodb, magnetodb_env):
    """MagnetoDB's own failures on real data, as the reference measured
    them, with the fakes and no filter at all: the quirk table that the
    fixture API answers alike (tests/support/paging.py)."""
    rng = random.Random(5001)
    ids = [mdb.project_id(rng) for _ in range(12)]
    tokens = magnetodb_env.tokens(ids)
    ids.sort(key=tokens.get)
    # Token order: a non-numeric statistic, a missing bean, clean projects,
    # a 5,001-table project, two clean projects.
    odd, broken, clean, big, after = ids[0], ids[1], ids[2:9], ids[9], ids[10:]
    tables = mdb.make_tables(rng, big, 5001, not_active=0)
    for tenant in clean + after:
        tables += mdb.make_tables(rng, tenant, 4, not_active=0)
    broken_tables = mdb.make_tables(rng, broken, 3, not_active=0)
    broken_tables[1] = broken_tables[1]._replace(item_count=[5, None, 7])
    odd_tables = mdb.make_tables(rng, odd, 2, not_active=0)
    odd_tables[0] = odd_tables[0]._replace(size=[1, 'n/a', 3])
    tables += broken_tables + odd_tables
    order = mdb.listing_order(tables, tokens)
    usage = _usage(tables)
    server = magnetodb(tables)
    layout = paging.Layout(
        order=order,
        active=dict((tenant, set(t.name for t in tables
                                 if t.tenant == tenant
                                 and t.status == 'ACTIVE'))
                    for tenant in ids),
        unreadable=[(t.tenant, t.name) for t in tables if not _readable(t)],
        roles=dict(odd=odd, broken=broken, clean=clean[0], big=big,
                   broken_table=broken_tables[1].name,
                   big_table=[name for p, name in order if p == big][0]),
        default_limit=1000)

    def get(request):
        status, body = server.get(mdb.MONITORING_PATH + request)
        if status != 200:
            return status, None
        rows = json.loads(body)
        for row in rows:  # MagnetoDB's figures, whichever the request
            name = row.get('table_name', row.get('name'))
            tenant = row.get('tenant', request[1:].partition('?')[0])
            assert row['usage_detailes'] == usage[tenant, name]
        return status, rows

    paging.assert_quirks(layout, get)
    # More than 5,000 tables: a PagedResult, whose len() fails.
    assert "object of type 'PagedResult' has no len()" in server.log

    # Storage down and back.
    clean_page = get('?last_evaluated_project=' + clean[0])
    server.storage_down()
    assert get('?last_evaluated_project=' + clean[0])[0] == 500
    status, body = server.get('/healthcheck?fullcheck=true')
    assert (status, json.loads(body)) == (503, dict(HEALTHY_HEALTH,
                                                    Storage='ERROR'))
    assert server.get('/healthcheck')[0] == 200
    server.storage_down(False)
    assert server.get_json('/healthcheck?fullcheck=true') == HEALTHY_HEALTH
    assert get('?last_evaluated_project=' + clean[0]) == clean_page


# -- Never blind: the projects MagnetoDB can still serve --------------------
#
# Each case compares, cycle by cycle, MagnetoDB's access log with the walk a
# Replica makes: the fixture API (magnetodb_statsd_middleware.demo.fakeapi)
# holding the same rows in MagnetoDB's token order, with the same failures.
# How many requests a healthy cycle needs comes from MagnetoDB's paging
# (tests/support/paging.py), not from a walk.

PROBE_URI = '%s/%s?metrics=size,item_count' % (mdb.MONITORING_PATH,
                                               monitoring.PROBE_PROJECT)


def _readable(table):
    """MagnetoDB can read its statistics (it reads ACTIVE tables only)."""
    return table.status != 'ACTIVE' or all(
        isinstance(value, int) for value in table.size + table.item_count)


class Replica(object):
    """The same rows in the fixture API, in MagnetoDB's order; its walks
    are the collector's, request by request."""

    def __init__(self, tables, tokens):
        self.app = fakeapi.FakeMonitoringAPI({}, order_key=tokens.get)
        self.load(tables)
        self.recorder = peers.Recorder(self.app)
        self.server = peers.LoopbackServer(self.recorder)
        self.memory = listing.ListingMemory()

    def load(self, tables, down=False):
        dataset = collections.defaultdict(list)
        for table in tables:
            dataset[table.tenant].append(fakeapi.Table(
                table.name, table.status, unreadable=not _readable(table)))
        self.app.load(dict(dataset))
        self.app.fault = 'http500' if down else 'none'

    def walk(self):
        """The URIs of the collector's next walk, one per request."""
        self.recorder.reset()
        client = monitoring.MonitoringClient(peers.make_settings(
            monitoring_url=self.server.url))
        try:
            for _ in listing.Walk(client, self.memory).projects():
                pass
        except monitoring.MonitoringError:
            pass
        finally:
            client.close()
        return [path + ('?' + query if query else '')
                for path, query, _ in self.recorder.requests]

    def close(self):
        self.server.close()


def _healthy_requests(tables, tokens):
    """Requests of a cycle over the same rows where nothing fails, as
    MagnetoDB pages them (1,000 rows a page), whatever the walk does."""
    sizes = [len(list(rows)) for _, rows in itertools.groupby(
        mdb.listing_order(tables, tokens), key=lambda row: row[0])]
    return paging.listing_requests(sizes)


def _by_resource(uris):
    """Projects a cycle read through their own resource."""
    prefix = mdb.MONITORING_PATH + '/'
    return {uri[len(prefix):].partition('?')[0] for uri in uris
            if uri.startswith(prefix) and uri != PROBE_URI}


def _expected(tables, prefix, by_resource=(), failed=()):
    """Gauges of every project but ``failed``; those read through their
    own resource count their ACTIVE tables; totals only without failures."""
    shown = [t for t in tables if t.tenant not in failed and (
        t.tenant not in by_resource or t.status == 'ACTIVE')]
    gauges = mdb.expected_gauges(shown, prefix, withheld=by_resource)
    if failed:
        gauges = {k: v for k, v in gauges.items() if '.totals.' not in k}
    return gauges


def _failed_gauge(daemon, prefix):
    name = prefix + '.collector.projects_failed'
    return daemon.gauges(name).get(name)


def _report(case, tables, failed, cycles, healthy, lines, down=False):
    """The case's figures, shown with pytest -s."""
    readable = 0 if down else len({t.tenant for t in tables
                                   if t.tenant not in failed})
    print('\n%s: %d projects reported of %d readable, projects_failed %s; '
          'requests per cycle %s (healthy: %d); log: %r'
          % (case, readable, readable, 'not sent' if down else len(failed),
             ' then '.join(str(len(c)) for c in cycles), healthy, lines))


def _layout(env, rng, sizes):
    """Tables of 15 projects: ``sizes`` maps a position in token order
    (``first``, ``middle``, ``last``) to its project's table count; the
    others have 1 to 40 tables. A few tables are not ACTIVE."""
    ids = [mdb.project_id(rng) for _ in range(15)]
    tokens = env.tokens(ids)
    ids.sort(key=tokens.get)
    at = {'first': ids[0], 'middle': ids[7], 'last': ids[-1]}
    big = {at[position]: count for position, count in sizes.items()}
    tables = []
    for tenant in ids:
        tables += mdb.make_tables(rng, tenant,
                                  big.get(tenant) or rng.randint(1, 40))
    return tables, tokens, set(big)


def _final(lines, what):
    """The last line logged about ``what``: the state it settled in (a
    cycle in flight while the data changed may have logged another one
    before)."""
    about = [line for line in lines if line[1].startswith(what + ' ')]
    return about[-1] if about else None


def _projects_failing(project):
    return re.compile(
        r'project statistics (failed|failing differently now): 1 project '
        r'cannot be read through the monitoring API \(every other project is '
        r'sent, the totals are withheld\): "%s"$' % project)


def _options(daemon, prefix, port):
    options = _statsd_options(daemon, prefix, port, 'mdb')
    del options['healthcheck_url']  # requests per cycle: monitoring only
    options['request_timeout'] = 120  # 7,500 tables' statistics, loaded
    return options


@pytest.mark.parametrize('sizes', [
    {'first': 5001, 'middle': 7500},
    {'first': 7500, 'last': 5001},
    {'middle': 5001, 'last': 7500},
], ids=['5001-first-7500-middle', '7500-first-5001-last',
        '5001-middle-7500-last'])
def test_projects_too_large_to_page_through(magnetodb, magnetodb_env,
                                            statsd_daemon, prefix, sizes):
    tables, tokens, big = _layout(magnetodb_env, random.Random(str(sizes)),
                                  sizes)
    port = peers.free_port()
    server = magnetodb(tables, port=port,
                       statsd=_options(statsd_daemon, prefix, port))
    replica = Replica(tables, tokens)
    try:
        walks = [replica.walk(), replica.walk()]
    finally:
        replica.close()

    def two_cycles():
        cycles = server.polled_cycles()
        return cycles[:2] if len(cycles) >= 3 else None
    cycles = peers.wait_for(two_cycles, timeout=400, interval=0.5,
                            message='two complete cycles')
    # The first cycle asks for each large project with
    # last_evaluated_project alone, which fails (MagnetoDB logs its
    # traceback); later cycles read them through their resource at once.
    assert cycles == walks
    healthy = _healthy_requests(tables, tokens)
    assert [len(cycle) for cycle in cycles] == [healthy + len(big), healthy]
    assert _by_resource(cycles[0]) == _by_resource(cycles[1]) == big
    assert server.log.count(
        "\nTypeError: object of type 'PagedResult' has no len()") == len(big)

    expected = _expected(tables, prefix, by_resource=big)
    gauges = statsd_daemon.wait_for_gauges(prefix, expected, timeout=120,
                                           interval=1.0)
    # What StatsD holds, against the data: such a project's resource
    # lists its ACTIVE tables only.
    for tenant in big:
        listed = [t for t in tables if t.tenant == tenant]
        active = [t for t in listed if t.status == 'ACTIVE']
        assert gauges['%s.projects.%s.tables' % (prefix, tenant)] == \
            len(active) < len(listed)
    assert _failed_gauge(statsd_daemon, prefix) == 0
    lines = server.our_lines()
    assert [level for level, _ in lines] == ['INFO', 'INFO']  # start, lock
    _report('too large, %s' % ', '.join(
        '%d %s' % (n, p) for p, n in sorted(sizes.items())),
        tables, (), cycles, healthy, lines)


def test_projects_whose_statistics_cannot_be_read(magnetodb, magnetodb_env,
                                                  statsd_daemon, prefix):
    """A JMX bean missing on one of three nodes, a non-numeric statistic,
    storage down and back: one after the other, in one MagnetoDB."""
    rng = random.Random(10)
    ids = [mdb.project_id(rng) for _ in range(41)]
    tokens = magnetodb_env.tokens(ids)
    ids.sort(key=tokens.get)
    tables = []
    for index, tenant in enumerate(ids):  # one of more than a page
        tables += mdb.make_tables(
            rng, tenant, 1100 if index == 25 else rng.randint(1, 30))
    healthy = _healthy_requests(tables, tokens)
    # A bean missing on node 2 in the middle of the listing; a value that
    # is not a number in the first project (so the first page fails).
    missing, odd = ids[20], ids[0]

    def spoil(tenant, **values):
        rows = list(tables)
        index = next(i for i, t in enumerate(rows)
                     if t.tenant == tenant and t.status == 'ACTIVE')
        rows[index] = rows[index]._replace(**values)
        return rows

    port = peers.free_port()
    server = magnetodb(tables, port=port,
                       statsd=_options(statsd_daemon, prefix, port))
    replica = Replica(tables, tokens)

    def cycles_started(count):
        peers.wait_for(lambda: len(server.polled_cycles()) >= count,
                       timeout=120, message='%d cycles' % count)
        return server.polled_cycles()

    def check(case, rows, uris, failed, down, lines):
        """One cycle of the steady state: its requests are the replica's
        walk, statsd holds the gauges of every project but ``failed`` and
        the projects_failed gauge."""
        replica.load(rows, down)
        replica.walk()
        assert uris == replica.walk()
        if down:
            assert statsd_daemon.data_gauges(prefix) == {}
        else:
            expected = _expected(rows, prefix, _by_resource(uris), failed)
            statsd_daemon.wait_for_gauges(prefix, expected, timeout=120,
                                          interval=1.0)
        assert _failed_gauge(statsd_daemon, prefix) == (
            None if down else len(failed))
        _report(case, rows, failed, [uris], healthy, lines, down)

    def phase(case, rows, failed=(), down=False):
        """Change the data, then check the second cycle wholly after the
        change. The cycle in flight meanwhile may see both states (and
        log that): the lines logged until the first cycle after the change
        ended are returned; the second one logs nothing."""
        logged = len(server.our_lines())
        mdb.write_data(server.data_path, rows)
        server.storage_down(down)
        start = len(server.polled_cycles())
        cycles_started(start + 2)
        lines = server.our_lines()[logged:]
        statsd_daemon.delete_gauges(prefix + '.')
        uris = cycles_started(start + 3)[start + 1]
        check(case, rows, uris, failed, down, lines)
        assert server.our_lines()[logged + len(lines):] == []
        assert all(message.startswith(('project statistics ',
                                       'monitoring API '))
                   for _, message in lines), lines
        return uris, lines

    try:
        statsd_daemon.delete_gauges(prefix + '.')
        uris = cycles_started(3)[1]
        assert len(uris) == healthy
        lines = server.our_lines()
        check('healthy', tables, uris, (), False, lines)
        assert [level for level, _ in lines] == ['INFO', 'INFO']

        uris, lines = phase('a JMX bean missing on one of three nodes',
                            spoil(missing, item_count=[5, None, 7]),
                            failed={missing})
        level, message = _final(lines, 'project statistics')
        assert level == 'ERROR'
        assert _projects_failing(missing).match(message), message
        # The first page fails (it holds the row): after the probe, the
        # projects before it are read through their resources, then it.
        assert uris[1] == PROBE_URI
        assert sorted(_by_resource(uris)) == sorted(ids[:21])

        non_numeric = spoil(odd, size=[1, 'n/a', 3])
        uris, lines = phase('a non-numeric statistic', non_numeric,
                            failed={odd})
        level, message = _final(lines, 'project statistics')
        assert level == 'ERROR'
        assert _projects_failing(odd).match(message), message
        assert uris[1] == PROBE_URI and _by_resource(uris) == {odd}

        uris, lines = phase('storage down', non_numeric, failed={odd},
                            down=True)
        assert uris == [uris[0], PROBE_URI]  # the first page, the probe
        # Also when the cycle in flight failed halfway: one cause.
        assert lines == [('ERROR', (
            'monitoring API failed: MagnetoDB cannot read its storage (GET '
            'http://127.0.0.1:%d%s failed: HTTP 500)' % (port, PROBE_URI)))]
        assert _final(lines, 'project statistics') is None

        uris, lines = phase('storage back', non_numeric, failed={odd})
        assert _final(lines, 'monitoring API') == (
            'INFO', 'monitoring API recovered')
        state = _final(lines, 'project statistics')  # still odd, if said
        assert state is None or _projects_failing(odd).match(state[1])

        uris, lines = phase('mended', tables)
        assert _final(lines, 'project statistics') == (
            'INFO', 'project statistics recovered')
        assert len(uris) == healthy
    finally:
        replica.close()


# -- Tables by status and stuck tables, through MagnetoDB's own code ---------

STUCK_AFTER = 8  # seconds: a few cycles of interval 1


def _scenario_tables(tables):
    """The status scenario's tables in MagnetoDB's storage: each node
    holds the same figures, so MagnetoDB's are the scenario's."""
    nodes = len(mdb.JOLOKIA_NODES)
    return [mdb.Table(project, row.name, row.status, [row.size] * nodes,
                      [row.item_count] * nodes)
            for project, rows in sorted(tables.items()) for row in rows]


def test_tables_by_status_and_stuck_tables(magnetodb, statsd_daemon, prefix):
    """The scenario of tests/support/status_scenario.py in real time:
    every count right at each step, zeros sent."""
    bad_lines = statsd_daemon.bad_lines()
    port = peers.free_port()
    options = _options(statsd_daemon, prefix, port)
    options.update(interval=1, stuck_after=STUCK_AFTER)
    server = None
    for step, tables in scenario.steps():
        if server is None:
            server = magnetodb(_scenario_tables(tables), port=port,
                               statsd=options)
        else:
            mdb.write_data(server.data_path, _scenario_tables(tables))
        expected = scenario.expected(tables, prefix, step)

        found = statsd_daemon.wait_for_gauges(
            prefix, expected, where=scenario.status_gauge, interval=0.2,
            timeout=STUCK_AFTER + 30 if step.when == 'past' else 30)
        scenario.check(found, prefix, step)
        print('\n%s:' % step.title)
        for name in sorted(found):
            if scenario.STATUS in name or '.totals.' in name:
                print('  %s:%d|g' % (name, found[name]))
    assert statsd_daemon.bad_lines() == bad_lines
    loudest = logging.getLevelName(scenario.LOUDEST_LEVEL)
    lines = server.our_lines()
    assert [line for line in lines
            if logging.getLevelName(line[0]) > loudest] == []
    assert len(lines) == 2, lines  # it started, it holds the lock
