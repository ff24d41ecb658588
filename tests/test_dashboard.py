"""The Grafana dashboard and the Graphite page's queries, panel by panel.

Every query of etc/grafana/magnetodb-statsd.json is evaluated the way
Grafana evaluates it (template variables substituted by Grafana's rules,
then a POST to graphite-web's ``/render`` with ``format=json``) against
the real Graphite of tests/support/graphite_peer.py, after collector
cycles sent known data through the Etsy statsd daemon's graphite backend;
each panel's series and values are compared with what that data must
show. The Graphite page's queries (doc/source/receivers/graphite.rst)
must be the dashboard's, and are checked the same way.
"""

import collections
import copy
import time

import pytest

from magnetodb_statsd_middleware import cycle
from magnetodb_statsd_middleware import metrics
from magnetodb_statsd_middleware import outages
from magnetodb_statsd_middleware import stuck
from magnetodb_statsd_middleware.demo import fakeapi
from tests.support import grafana
from tests.support import graphite_peer
from tests.support import peers

# The dashboard's and the Graphite page's default prefix, so that its
# queries run verbatim; no other test sends under it.
PREFIX = 'magnetodb'
HEALTHY, SICK = 'api-1', 'api-2'
# What the two hosts' health checks say: the sick one's storage fails.
HEALTH = {HEALTHY + '.api': 1, HEALTHY + '.identity': 1,
          HEALTHY + '.storage': 1, HEALTHY + '.overall': 1,
          SICK + '.api': 1, SICK + '.identity': 1, SICK + '.storage': 0,
          SICK + '.overall': 0}
FAILED_CYCLES = 2
PROJECTS_FAILED = 3
STUCK_AFTER = 60
# Tables that are not ACTIVE in both cycles: (project index, name, status).
NOT_ACTIVE = ((3, 'stuck_table', 'CREATING'), (4, 'failed_c', 'CREATE_FAILED'),
              (5, 'failed_d', 'DELETE_FAILED'))


# The data: two complete cycles (the second one grown), failed cycles, two
# hosts' health.

def _grown(dataset):
    """A later state of ``dataset``: projects grow by distinct amounts (two
    not at all), the largest table shrinks, one project gets a new table."""
    grown = copy.deepcopy(dataset)
    projects = sorted(grown)
    for index, project in enumerate(projects):
        if index in (0, 6):
            continue
        for number, table in enumerate(grown[project]):
            table.size += 10000 * (index + 1) * (number + 1)
            table.item_count += 10 * (index + 1) * (number + 1)
    largest = max((t for rows in grown.values() for t in rows
                   if t.status == 'ACTIVE'), key=lambda t: t.size)
    largest.size, largest.item_count = 1000, 10
    grown[projects[1]].append(fakeapi.Table('new_table', 'ACTIVE',
                                            5 * 10 ** 6, 100))
    return grown


def _active(dataset, projects=None):
    """``{'project.table': Table}`` of the ACTIVE tables, as aliasByNode
    names them."""
    return dict(('%s.%s' % (p, metrics.safe_part(t.name)), t)
                for p, rows in dataset.items()
                if projects is None or p in projects
                for t in rows if t.status == 'ACTIVE')


def _project_sizes(dataset):
    return dict((p, sum(t.size for t in rows if t.status == 'ACTIVE'))
                for p, rows in dataset.items())


class Demo(object):
    """What the collector sent, for the panels' expectations.

    The collector's stuck clock moves past ``stuck_after`` between the two
    complete cycles: the tables CREATING or DELETING in both are stuck.
    """

    def __init__(self):
        self.before = fakeapi.build_dataset(projects=12, tables=3,
                                            big=(15,), seed=5)
        projects = sorted(self.before)
        for index, name, status in NOT_ACTIVE:
            self.before[projects[index]].append(fakeapi.Table(name, status))
        self.after = _grown(self.before)
        self.stuck = [(p, t.name) for p, rows in self.after.items()
                      for t in rows if t.status in ('CREATING', 'DELETING')]
        self.time = [1000.0]
        self.clock = stuck.StuckClock(STUCK_AFTER, lambda: self.time[0])
        self.durations = []
        self.last_success = None  # (earliest, latest) unix time

    def growth(self):
        before = _project_sizes(self.before)
        return dict((p, size - before[p])
                    for p, size in _project_sizes(self.after).items())


def _gauges(dataset, stuck_tables=()):
    return dict(('stats.gauges.' + name, value) for name, value
                in peers.expected_gauges(dataset, PREFIX,
                                         stuck=stuck_tables).items())


DATA_TARGETS = ['stats.gauges.%s.%s' % (PREFIX, pattern) for pattern in
                ('tables.*.*.*', 'projects.*.*', 'totals.*',
                 'projects.*.tables_by_status.*', 'totals.tables_by_status.*')]


def _wait_for_sum(graphite, target, expected):
    def arrived():
        series = graphite.poll(target)
        return series and sum(graphite_peer.values(series[0])) == expected
    peers.wait_for(arrived, timeout=30, message='%s to sum to %s'
                   % (target, expected))


@pytest.fixture(scope='module')
def demo(graphite, graphite_statsd):
    data = Demo()
    api = fakeapi.FakeMonitoringAPI(data.before)
    servers = [peers.LoopbackServer(api)]
    health_urls = {}
    for host, subsystems in ((HEALTHY, None), (SICK, {
            'API': 'OK', 'Identity': 'OK', 'Storage': 'ERROR'})):
        servers.append(peers.LoopbackServer(
            fakeapi.FakeHealthCheck(subsystems)))
        health_urls[host] = ('http://127.0.0.1:%d/healthcheck?fullcheck=true'
                             % servers[-1].port)

    def run(host=HEALTHY, tables=True):
        settings = peers.make_settings(
            statsd_port=graphite_statsd.port, metric_prefix=PREFIX,
            monitoring_url=servers[0].url, healthcheck_url=health_urls[host],
            host_name=host)
        started = time.time()
        result = cycle.run_cycle(settings, outages.OutageLog(),
                                 tables=tables, clock=data.clock)
        data.durations.append(time.time() - started)
        return result, started

    try:
        assert run()[0].completed
        graphite.wait_for_values(DATA_TARGETS, _gauges(data.before))
        api.load(data.after)
        data.time[0] += STUCK_AFTER + 1
        result, started = run()
        assert result.completed
        data.last_success = (int(started), int(time.time()))
        graphite.wait_for_values(DATA_TARGETS, _gauges(data.after,
                                                       data.stuck))
        api.fault = 'http500'
        for _ in range(FAILED_CYCLES):
            assert not run()[0].completed
        run(SICK, tables=False)
        # These faults fail whole cycles, not single projects: the panel
        # of collector.projects_failed is fed that gauge directly.
        graphite_statsd.send(['%s.collector.projects_failed:%d|g'
                              % (PREFIX, PROJECTS_FAILED)])
        # Every series a panel reads exists: a render that reaches a file
        # carbon is still creating fails (see test_graphite).
        _wait_for_sum(graphite, 'stats_counts.%s.collector.cycles_failed'
                      % PREFIX, FAILED_CYCLES)
        health = 'stats.gauges.%s.health.' % PREFIX
        graphite.wait_for_values([health + '*.*'], dict(
            (health + name, value) for name, value in HEALTH.items()))
        collector = 'stats.gauges.%s.collector.' % PREFIX
        graphite.wait_for_names([collector + '*'], [
            collector + name for name in ('last_success', 'tables', 'pages',
                                          'projects_failed')])
        timer = 'stats.timers.%s.collector.cycle_duration.upper' % PREFIX
        graphite.wait_for_names([timer], [timer])
        yield data
    finally:
        for server in servers:
            server.close()


# Each panel's expectation: ``check(demo, series, chosen)``, ``chosen`` the
# Selection its query was evaluated with.

Selection = collections.namedtuple('Selection', 'projects now')

EXPECTATIONS = {}


def expect(title):
    def register(check):
        EXPECTATIONS[title] = check
        return check
    return register


def _last(series):
    return graphite_peer.last_values(series)


def _totals(demo):
    return peers.expected_gauges(demo.after, PREFIX)


@expect('Size of all tables')
def _total_size(demo, series, chosen):
    assert _last(series) == {'bytes': _totals(demo)[PREFIX + '.totals.size']}


@expect('Items')
def _total_items(demo, series, chosen):
    assert _last(series) == {
        'items': _totals(demo)[PREFIX + '.totals.item_count']}


@expect('Tables')
def _total_tables(demo, series, chosen):
    # Every table listed, those not ACTIVE and the new one included.
    assert _last(series) == {'tables': 3 * 12 + 15 + len(NOT_ACTIVE) + 1}


@expect('Projects')
def _total_projects(demo, series, chosen):
    assert _last(series) == {'projects': 13}


def _ranked(series):
    """``[(name, current value)]`` in the order Graphite returned."""
    return [(s['target'], graphite_peer.values(s)[-1]) for s in series]


def _top_tables(demo, series, chosen, metric):
    tables = _active(demo.after, chosen.projects)
    expected = sorted(((name, getattr(t, metric))
                       for name, t in tables.items()),
                      key=lambda item: -item[1])[:10]
    assert len(expected) == min(10, len(tables))
    assert _ranked(series) == expected


@expect('10 largest tables by size')
def _largest_by_size(demo, series, chosen):
    _top_tables(demo, series, chosen, 'size')
    # The largest table of the first cycle shrank: the current size ranks,
    # not the largest one ever seen.
    shrunk = max(_active(demo.before).items(),
                 key=lambda item: item[1].size)[0]
    assert shrunk not in dict(_ranked(series))


@expect('10 largest tables by items')
def _largest_by_items(demo, series, chosen):
    _top_tables(demo, series, chosen, 'item_count')


@expect('Largest projects by size')
def _largest_projects(demo, series, chosen):
    sizes = _project_sizes(demo.after)
    expected = sorted(((p, size) for p, size in sizes.items()
                       if chosen.projects is None or p in chosen.projects),
                      key=lambda item: -item[1])[:10]
    assert _ranked(series) == expected


def _sums(series):
    return dict((s['target'], sum(graphite_peer.values(s))) for s in series)


@expect('Cloud growth per day')
def _cloud_growth(demo, series, chosen):
    assert _sums(series) == {'bytes added': sum(demo.growth().values())}


@expect('Growth per day by project')
def _project_growth(demo, series, chosen):
    growth = dict((p, g) for p, g in demo.growth().items()
                  if chosen.projects is None or p in chosen.projects)
    # The change of a cycle falls in one day: a project's largest daily
    # growth is its whole growth. Ten distinct leaders, so no tie decides.
    top = sorted(growth.items(), key=lambda item: -item[1])[:10]
    assert len(set(g for _, g in top)) == len(top)
    assert [s['target'] for s in series] == [p for p, _ in top]
    assert _sums(series) == dict(top)


@expect('API health per host')
def _health(demo, series, chosen):
    assert _last(series) == {HEALTHY: 1, SICK: 0}


@expect('API subsystems per host')
def _subsystems(demo, series, chosen):
    assert _last(series) == dict((name, value) for name, value
                                 in HEALTH.items() if 'overall' not in name)


@expect('Since the last complete cycle')
def _age(demo, series, chosen):
    # From the last complete cycle to the end of the range: the two failed
    # cycles since then did not reset it.
    earliest, latest = demo.last_success
    assert list(_last(series)) == ['seconds']
    assert chosen.now - latest <= _last(series)['seconds'] <= \
        chosen.now - earliest


@expect('Cycle duration')
def _cycle_duration(demo, series, chosen):
    (points,) = [graphite_peer.values(s) for s in series]
    assert [s['target'] for s in series] == ['longest cycle']
    assert 1 <= len(points) <= len(demo.durations)
    assert all(0 < ms <= max(demo.durations) * 1000 for ms in points)


@expect('Failed cycles per hour')
def _failed_cycles(demo, series, chosen):
    assert _sums(series) == {'failed cycles': FAILED_CYCLES}


@expect('Projects not read')
def _projects_failed(demo, series, chosen):
    assert _last(series) == {'projects': PROJECTS_FAILED}


def _not_active(demo, chosen):
    """``{(project, lower-case status): tables}`` of the selected projects,
    and ``{project: stuck tables}``."""
    counts = collections.Counter(
        (p, t.status.lower()) for p, rows in demo.after.items()
        for t in rows if t.status != 'ACTIVE'
        and (chosen.projects is None or p in chosen.projects))
    stuck_tables = collections.Counter(
        p for p, _ in demo.stuck
        if chosen.projects is None or p in chosen.projects)
    return counts, stuck_tables


@expect('Stuck or failed tables')
def _stuck_or_failed(demo, series, chosen):
    counts, stuck_tables = _not_active(demo, chosen)
    failed = sum(n for (_, status), n in counts.items()
                 if status.endswith('_failed'))
    if chosen.projects is None:  # the demo has both
        assert failed and stuck_tables
    assert _last(series) == {'tables': failed + sum(stuck_tables.values())}


@expect('Tables by status')
def _tables_by_status(demo, series, chosen):
    counts = collections.Counter(t.status.lower() for rows in
                                 demo.after.values() for t in rows)
    for status in peers.STATUSES:
        counts.setdefault(status, 0)  # zeros are series too
    assert _last(series) == dict(counts)


@expect('Tables not ACTIVE by project')
def _not_active_by_project(demo, series, chosen):
    counts, _ = _not_active(demo, chosen)
    assert _last(series) == dict(('%s.%s' % key, n)
                                 for key, n in counts.items())


@expect('Stuck tables by project')
def _stuck_by_project(demo, series, chosen):
    _, stuck_tables = _not_active(demo, chosen)
    assert _last(series) == dict(stuck_tables)


# The tests.

def test_every_panel_has_an_expectation():
    dashboard = grafana.load()
    titles = [panel['title'] for panel in grafana.panels(dashboard)]
    assert len(titles) == len(set(titles))
    ids = [panel['id'] for panel in dashboard['panels']]
    assert len(ids) == len(set(ids))
    assert sorted(titles) == sorted(EXPECTATIONS)
    for panel in grafana.panels(dashboard):
        assert panel['datasource'] == {'type': 'graphite',
                                       'uid': '${datasource}'}
        assert [t['refId'] for t in panel['targets']] == ['A']


def test_the_variables_list_what_the_collector_sent(demo, graphite):
    dashboard = grafana.load()
    prefix = grafana.variable(dashboard, 'prefix')
    assert prefix['type'] == 'textbox' and prefix['query'] == PREFIX
    project = grafana.variable(dashboard, 'project')
    assert project['multi'] and project['includeAll']
    query = grafana.interpolate(dashboard, project['query'],
                                {'prefix': PREFIX})
    assert sorted(graphite.find(query)) == sorted(demo.after)


def _selections(target, demo):
    """The project selections a panel is evaluated with: All, and a
    multi-value selection of three projects when the panel uses it."""
    yield None
    if '$project' in target:
        yield sorted(demo.after)[2:5]


def evaluate(graphite, dashboard, query, projects=None):
    """``(series, Selection)``: the query as Grafana sends it, the time
    range ending now."""
    now = int(time.time())
    series = graphite.render(grafana.interpolate(
        dashboard, query, {'prefix': PREFIX, 'project': projects or 'All'},
        now=now))
    return series, Selection(projects, now)


@pytest.mark.parametrize('title', sorted(EXPECTATIONS))
def test_panel(title, demo, graphite):
    dashboard = grafana.load()
    (target,) = [t['target']
                 for t in grafana.panel(dashboard, title)['targets']]
    for projects in _selections(target, demo):
        series, chosen = evaluate(graphite, dashboard, target, projects)
        EXPECTATIONS[title](demo, series, chosen)


def test_the_readme_queries_are_the_dashboards(demo, graphite):
    """Every query of the dashboard, none other, with the default prefix
    and every project; Grafana's ``${__to:date:seconds}`` stays in them
    (the Graphite page says what it is)."""
    dashboard = grafana.load()
    every = {'prefix': PREFIX, 'project': 'All'}
    by_query = dict(
        (grafana.interpolate(dashboard, t['target'], every), p['title'])
        for p in grafana.panels(dashboard) for t in p['targets'])
    queries = [q for q in graphite_peer.readme_queries()
               if 'seriesByTag' not in q]
    assert sorted(queries) == sorted(by_query)
    for query in queries:
        series, chosen = evaluate(graphite, dashboard, query)
        EXPECTATIONS[by_query[query]](demo, series, chosen)
