"""The filter inside MagnetoDB 2015.1 itself, on CPython 2.7.

MagnetoDB's own servers (``bin/magnetodb-api-server`` and
``bin/magnetodb-api-server-gunicorn``) serve its own etc/ files from the
environment that ``tools/build-magnetodb-env.sh`` builds; only Cassandra
and its Jolokia agents are in-memory fakes (tests/magnetodb/). See
tests/magnetodb_peer.py. The expected gauges are computed from the data
here, never by the package.
"""

import difflib
import json
import os
import random

import pytest

import magnetodb_peer as mdb
import peers

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
def magnetodb_env():
    """The MagnetoDB 2015.1 env with this project installed; a failure to
    build it fails every test here with the build script's reason."""
    try:
        return mdb.MagnetoDBEnv.build()
    except mdb.EnvError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope='session')
def keystone():
    server = mdb.serve_keystone()
    yield server
    server.close()


@pytest.fixture
def magnetodb(magnetodb_env, keystone, tmp_path):
    """``magnetodb(tables, **options)`` -> a ready MagnetoDBServer."""
    servers = []

    def start(tables, **options):
        workdir = tmp_path / ('magnetodb%d' % len(servers))
        workdir.mkdir()
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


def _statsd_options(daemon, prefix, port, host):
    url = 'http://127.0.0.1:%d' % port
    return dict(enabled='true', statsd_port=daemon.port,
                metric_prefix=prefix, interval=2,
                monitoring_url=url + '/v1/monitoring/projects',
                healthcheck_url=url + '/healthcheck?fullcheck=true',
                host_name=host)


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

    def data_gauges():
        return {name: value for name, value
                in statsd_daemon.gauges(prefix + '.').items()
                if '.collector.' not in name and '.health.' not in name}
    peers.wait_for(lambda: statsd_daemon.gauges(prefix + '.totals.'),
                   timeout=120, interval=0.5, message='a complete cycle')
    # A burst of thousands of datagrams can overflow the daemon's socket
    # buffer; every cycle sends them all again.
    peers.wait_for(lambda: data_gauges().keys() >= expected.keys(),
                   timeout=60, interval=1.0, message='every gauge')
    assert data_gauges() == expected

    health = '%s.health.%s.' % (prefix, host)
    assert statsd_daemon.gauges(health) == {
        health + 'api': 1, health + 'identity': 1, health + 'storage': 1,
        # "Not Implemented" sends nothing (health.py).
        health + 'overall': 1}
    assert statsd_daemon.stats()['messages.bad_lines_seen'] == '0'

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


def test_fakes_reproduce_magnetodb_on_real_data(magnetodb, magnetodb_env):
    """MagnetoDB's own failures on real data, as the reference measured
    them, with the fakes and no filter at all."""
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

    def page(query):
        rows = server.get_json('/v1/monitoring/projects?' + query)
        for row in rows:
            assert row['usage_detailes'] == usage[row['tenant'], row['name']]
        return mdb.data_rows(rows)

    def fails(path):
        status, body = server.get(path)
        return status == 500

    # More than 5,000 tables: a PagedResult, whose len() fails.
    assert fails('/v1/monitoring/projects?last_evaluated_project=' + big)
    assert "object of type 'PagedResult' has no len()" in server.log
    whole = server.get_json('/v1/monitoring/projects/' + big)
    assert len(whole) == 5001
    assert all(row['usage_detailes'] == usage[big, row['table_name']]
               for row in whole)
    first = order.index((big, whole[0]['table_name']))
    assert page('last_evaluated_project=%s&last_evaluated_table=%s'
                % (big, whole[0]['table_name'])) == (
        [order[first]] + [row for row in order if row[0] in after])

    # A missing bean, a non-numeric value: every page with the row fails.
    assert fails('/v1/monitoring/projects?limit=3')
    assert fails('/v1/monitoring/projects?last_evaluated_project=' + broken)
    assert fails('/v1/monitoring/projects/' + broken)
    assert fails('/v1/monitoring/projects/' + odd)
    # What still works: the pages without the row, and stepping past its
    # project with a table name that does not exist.
    readable = [row for row in order if row[0] not in (odd, broken)]
    clean_page = page('last_evaluated_project=' + clean[0])
    assert clean_page == readable[:1000]
    assert page('last_evaluated_project=%s&last_evaluated_table=%s'
                % (broken, '~no-such-table')) == clean_page
    assert fails('/v1/monitoring/projects?last_evaluated_project=%s'
                 '&last_evaluated_table=~no-such-table' % odd)
    assert fails('/v1/monitoring/projects?last_evaluated_project=%s&limit=5'
                 % clean[0])

    # Storage down and back.
    server.storage_down()
    assert fails('/v1/monitoring/projects?last_evaluated_project=' + clean[0])
    status, body = server.get('/healthcheck?fullcheck=true')
    assert (status, json.loads(body)) == (503, dict(HEALTHY_HEALTH,
                                                    Storage='ERROR'))
    assert server.get('/healthcheck')[0] == 200
    server.storage_down(False)
    assert server.get_json('/healthcheck?fullcheck=true') == HEALTHY_HEALTH
    assert page('last_evaluated_project=' + clean[0]) == clean_page
