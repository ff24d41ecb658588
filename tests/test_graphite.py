"""Real Graphite end to end: the collector's gauges through the Etsy statsd
daemon's graphite backend into Debian's carbon-cache (whisper) and back
out of graphite-web, the way Grafana reads them; tagged series through
graphite-web's tag queries; and what does not work with these packages."""

import collections
import contextlib
import os
import sqlite3
import time

import pytest

from magnetodb_statsd_middleware import cycle
from magnetodb_statsd_middleware import outages
from magnetodb_statsd_middleware.demo import fakeapi
from tests.support import graphite_peer
from tests.support import peers

FIXTURE = dict(projects=4, tables=6, big=(25,), seed=3)
FIXTURE_OPTIONS = 'projects = 4\ntables = 6\nbig = 25\nseed = 3'
TABLES = 4 * 6 + 25
HOST = 'graphite-host'


def test_the_filter_gauges_in_graphite_under_statsd_names(
        api_server, graphite, graphite_statsd, prefix, tmp_path):
    """The filter in a served paste pipeline, statsd 0.9.0's default
    graphite namespaces (legacyNamespace): gauges under ``stats.gauges.``,
    timers under ``stats.timers.``, counters under ``stats_counts.`` (per
    flush) and ``stats.`` (per second)."""
    dataset = fakeapi.build_dataset(**FIXTURE)
    expected = dict(('stats.gauges.' + name, value) for name, value
                    in peers.expected_gauges(dataset, prefix).items())
    assert [n for n in expected if '.odd_name-00003_' in n]
    api_server(peers.statsd_section(**peers.statsd_options(
        graphite_statsd.port, prefix, interval=2, initial_delay=0.5,
        healthcheck_url='$health', host_name=HOST,
        lock_path=tmp_path / 'statsd.lock')),
        fixture_options=FIXTURE_OPTIONS)
    gauges = 'stats.gauges.%s.' % prefix
    # Exactly these series: no table that is not ACTIVE, no stray name.
    graphite.wait_for_values([gauges + 'tables.*.*.*',
                              gauges + 'projects.*.*', gauges + 'totals.*',
                              gauges + 'projects.*.tables_by_status.*',
                              gauges + 'totals.tables_by_status.*'],
                             expected)
    graphite.wait_for_values(
        [gauges + 'health.*.*'],
        dict((gauges + 'health.%s.%s' % (HOST, subsystem), 1)
             for subsystem in ('api', 'identity', 'storage', 'overall')))
    collector = graphite.wait_for_names(
        [gauges + 'collector.*'], [gauges + 'collector.' + name for name
                                   in ('tables', 'pages', 'last_success')])
    assert collector[gauges + 'collector.tables'] == TABLES
    assert collector[gauges + 'collector.pages'] == 1
    assert abs(collector[gauges + 'collector.last_success']
               - time.time()) < 60
    assert sorted(graphite.find(gauges + '*')) == [
        'collector', 'health', 'projects', 'tables', 'totals']

    counts = 'stats_counts.%s.collector.cycles_completed' % prefix
    rate = 'stats.%s.collector.cycles_completed' % prefix
    upper = 'stats.timers.%s.collector.cycle_duration.upper' % prefix
    graphite.wait_for_names([counts, rate, upper], [counts, rate, upper])
    series = dict((s['target'], graphite_peer.values(s))
                  for s in graphite.render([counts, rate, upper]))
    assert sum(series[counts]) >= 1  # per flush: the cycles
    assert 0 < max(series[rate]) <= 1  # per second, cycles every 2 s
    assert all(0 < ms < 60000 for ms in series[upper])


def test_names_of_255_characters_are_stored_and_read_back(
        graphite, graphite_statsd, serve, prefix):
    """Graphite stores each dotted part as a file or directory name of 255
    bytes at most (``.wsp`` included). A 255-character table name with a
    ``.`` becomes a 264-character part once made safe: cut to
    max_name_length (253) with its hash, it is stored and read back, and
    so are the longest names that fit and non-ASCII ones."""
    dotted = 'd' * 100 + '.' + 'D' * 154
    names = [dotted, 'x' * 255, 'L' * 254 + '.', '9' * 200, u'caf\u00e9',
             u'\u8868' * 255]
    dataset = {'a1b2c3d4e5f60718293a4b5c6d7e8f90': [
        fakeapi.Table(name, 'ACTIVE', 1000 + i, i + 1)
        for i, name in enumerate(names)]}
    assert len(peers.expected_name_part(dotted)) == 264
    api = serve(fakeapi.FakeMonitoringAPI(dataset))
    result = cycle.run_cycle(peers.make_settings(
        monitoring_url=api.url, statsd_port=graphite_statsd.port,
        metric_prefix=prefix), outages.OutageLog())
    assert result.completed, result.error
    expected = dict(('stats.gauges.' + name, value) for name, value
                    in peers.expected_gauges(dataset, prefix).items()
                    if '.tables.' in name)
    assert len(expected) == 2 * len(names)
    assert max(len(name) for name in expected) == len('stats.gauges.') + 253
    graphite.wait_for_values(['stats.gauges.%s.tables.*.*.*' % prefix],
                             expected)


# Tagged series: the collector with label_mode = graphite or dogstatsd and
# a user label, in-process cycles over loopback HTTP (a healthy host that
# also reads the tables, and one whose storage fails).

TAGGED = dict(projects=3, tables=5, big=(12,), seed=9)
REGION = 'r1'
HEALTH = {('h-1', 'api'): 1, ('h-1', 'identity'): 1, ('h-1', 'storage'): 1,
          ('h-1', 'overall'): 1, ('h-2', 'api'): 1, ('h-2', 'identity'): 1,
          ('h-2', 'storage'): 0, ('h-2', 'overall'): 0}


def run_labeled_cycles(serve, daemon, prefix, dataset, dialect,
                       user_labels=(('region', REGION),)):
    """h-1 sends the tables and its health, h-2 its health only."""
    api_url = serve(fakeapi.FakeMonitoringAPI(dataset)).url
    for host, storage in (('h-1', 'OK'), ('h-2', 'ERROR')):
        check = serve(fakeapi.FakeHealthCheck(
            {'API': 'OK', 'Identity': 'OK', 'Storage': storage}))
        settings = peers.make_settings(
            statsd_port=daemon.port, metric_prefix=prefix,
            monitoring_url=api_url, host_name=host,
            healthcheck_url='http://127.0.0.1:%d/healthcheck?fullcheck=true'
                            % check.port,
            label_mode=dialect, user_labels=user_labels)
        result = cycle.run_cycle(settings, outages.OutageLog(),
                                 tables=host == 'h-1')
        assert result.completed


def _series(prefix, name, **labels):
    """A tagged series' name as Graphite writes it (tags sorted)."""
    labels['region'] = REGION
    return 'stats.gauges.%s.%s%s' % (prefix, name, ''.join(
        ';%s=%s' % item for item in sorted(labels.items())))


def labeled_series(prefix, dataset):
    """``{tagged series name: value}`` of the tables, projects, totals and
    health of ``dataset``, computed from the dataset and the documented
    "Labeled metrics"."""
    expected = {}
    totals = dict(size=0, item_count=0, tables=0, projects=len(dataset))
    by_status = collections.Counter(dict.fromkeys(peers.STATUSES, 0))
    for project, rows in dataset.items():
        active = [t for t in rows if t.status == 'ACTIVE']
        for metric in ('size', 'item_count'):
            for table in active:
                expected[_series(prefix, 'table.' + metric, project=project,
                                 table=table.name)] = getattr(table, metric)
            total = sum(getattr(t, metric) for t in active)
            expected[_series(prefix, 'project.' + metric,
                             project=project)] = total
            totals[metric] += total
        expected[_series(prefix, 'project.tables', project=project)] = len(
            rows)
        totals['tables'] += len(rows)
        statuses = collections.Counter(t.status.lower() for t in rows)
        for status in set(peers.STATUSES) | set(statuses):
            expected[_series(prefix, 'project.tables_by_status',
                             project=project, status=status)] = \
                statuses[status]
            by_status[status] += statuses[status]
        expected[_series(prefix, 'project.stuck', project=project)] = 0
    for metric, value in totals.items():
        expected[_series(prefix, 'total.' + metric)] = value
    for status, count in by_status.items():
        expected[_series(prefix, 'total.tables_by_status',
                         status=status)] = count
    expected[_series(prefix, 'total.stuck')] = 0
    for (host, subsystem), ok in HEALTH.items():
        expected[_series(prefix, 'health', host=host,
                         subsystem=subsystem)] = ok
    return expected


def _active_tables(dataset):
    return [(p, t) for p, rows in dataset.items() for t in rows
            if t.status == 'ACTIVE']


def _project_sizes(dataset):
    return dict((p, sum(t.size for t in rows if t.status == 'ACTIVE'))
                for p, rows in dataset.items())


# The Graphite page's tagged queries (with the default prefix) and what
# each must return for the dataset: {series name: last value}, or a
# ranked list.
TAGGED_QUERIES = {
    "aliasByTags(highestCurrent(seriesByTag("
    "'name=stats.gauges.magnetodb.table.size'), 10), 'project', 'table')":
    lambda data: sorted((('%s.%s' % (p, t.name), t.size)
                         for p, t in _active_tables(data)),
                        key=lambda item: -item[1])[:10],
    "aliasByTags(highestCurrent(seriesByTag("
    "'name=stats.gauges.magnetodb.project.size'), 10), 'project')":
    lambda data: sorted(_project_sizes(data).items(),
                        key=lambda item: -item[1])[:10],
    "aliasByTags(seriesByTag('name=stats.gauges.magnetodb.total.size', "
    "'region=r1'), 'region')":
    lambda data: {REGION: sum(_project_sizes(data).values())},
    "aliasByTags(seriesByTag('name=stats.gauges.magnetodb.health', "
    "'subsystem=overall'), 'host')":
    lambda data: dict((host, ok) for (host, subsystem), ok in HEALTH.items()
                      if subsystem == 'overall'),
}


@pytest.mark.parametrize('dialect', ['graphite', 'dogstatsd'])
def test_the_collector_labeled_series_through_graphite_tag_queries(
        dialect, graphite, graphite_statsd, serve, prefix):
    """statsd 0.9.0 keeps graphite tags after its namespace, and turns
    dogstatsd tags into them; carbon indexes them in graphite-web."""
    dataset = fakeapi.build_dataset(**TAGGED)
    assert [t for _, t in _active_tables(dataset) if '.' in t.name]
    run_labeled_cycles(serve, graphite_statsd, prefix, dataset, dialect)
    # Each quantity, one tagged series per label set, with its value, and
    # nothing else under these names.
    graphite.wait_for_values(
        ["seriesByTag('name=~^stats.gauges.%s.(table|project|total|health)"
         "')" % prefix], labeled_series(prefix, dataset))
    collector = graphite.wait_for_names(
        ["seriesByTag('name=~^stats.gauges.%s.collector.')" % prefix],
        [_series(prefix, 'collector.' + name) for name in
         ('tables', 'pages', 'last_success')])
    assert collector[_series(prefix, 'collector.tables')] == sum(
        len(rows) for rows in dataset.values())
    timer = ('stats.timers.%s.collector.cycle_duration.upper;region=%s'
             % (prefix, REGION))
    assert graphite.wait_for_names([timer], [timer])[timer] > 0
    total = _series(prefix, 'total.size')
    (series,) = graphite.render(total)  # a tagged name is a target too
    assert series['tags'] == {'name': 'stats.gauges.%s.total.size' % prefix,
                              'region': REGION}
    # A regular expression on a tag, and a negated one.
    first = sorted(dataset)[0]
    assert sorted(graphite_peer.last_values(graphite.render(
        "seriesByTag('name=stats.gauges.%s.project.size', 'project=~%s.*', "
        "'project!=none')" % (prefix, first[:6])))) == [
        _series(prefix, 'project.size', project=first)]
    # Series grouped by a tag. A sum over series reads the newest point
    # while carbon may still be receiving the flush: wait for the whole.
    graphite.wait_for_values(
        ["aliasByTags(groupByTags(seriesByTag('name=stats.gauges.%s.table."
         "size'), 'sum', 'project'), 'project')" % prefix],
        _project_sizes(dataset))
    # What Grafana's tag editor and tag_values() variables ask for.
    expr = ('expr', 'name=stats.gauges.%s.table.size' % prefix)
    assert graphite.get_json('/tags/autoComplete/tags', [expr]) == [
        'project', 'region', 'table']
    assert graphite.get_json('/tags/autoComplete/values', [
        expr, ('tag', 'project')]) == sorted(dataset)
    for query, expected in TAGGED_QUERIES.items():
        series = graphite.render(query.replace(
            'stats.gauges.magnetodb.', 'stats.gauges.%s.' % prefix))
        want = expected(dataset)
        if isinstance(want, list):
            assert [(s['target'], graphite_peer.values(s)[-1])
                    for s in series] == want, query
        else:
            assert graphite_peer.last_values(series) == want, query


def test_the_readme_tagged_queries_are_these():
    assert sorted(q for q in graphite_peer.readme_queries()
                  if 'seriesByTag' in q) == sorted(TAGGED_QUERIES)


# What does not work with Debian 12's graphite-web 1.1.8 and carbon 1.1.7.

def test_a_series_being_created_fails_every_render_that_reaches_it(
        graphite, graphite_statsd, prefix):
    """carbon's whisper.create opens the new file before it writes its
    header, and graphite-web reads without a lock: a render whose glob
    reaches a file in that state fails as a whole (HTTP 500,
    CorruptWhisperFile), not only for that series. Shown with the empty
    file that carbon leaves for that moment."""
    name = 'stats.gauges.%s.projects.p1.size' % prefix
    graphite_statsd.send(['%s.projects.p1.size:5|g' % prefix])
    graphite.wait_for_values([name], {name: 5})
    folder = os.path.join(graphite.root, 'storage', 'whisper', 'stats',
                          'gauges', prefix, 'projects', 'p2')
    os.makedirs(folder)
    open(os.path.join(folder, 'size.wsp'), 'wb').close()
    with pytest.raises(graphite_peer.GraphiteError) as error:
        graphite.render('stats.gauges.%s.projects.*.size' % prefix)
    assert error.value.status == 500
    assert graphite_peer.CREATING in str(error.value)
    assert graphite_peer.last_values(graphite.render(name)) == {name: 5}

def test_graphite_web_cannot_list_its_functions(graphite):
    """``/functions`` calls ``inspect.getargspec``, which Python 3.11
    removed: HTTP 500. Grafana's Graphite data source asks for it to fill
    its query editor's function list and falls back to its own list;
    queries and rendering do not use it."""
    for path in ('/functions', '/functions/sumSeries'):
        status, body = graphite.request(path)
        assert status == 500 and b'getargspec' in body


def test_queries_fail_while_the_sqlite_tag_index_is_written(graphite):
    """graphite-web keeps its tag index in its Django database, SQLite in
    Debian's configuration. In SQLite's default journal mode a writer (carbon
    indexing new tagged series, one commit per row) locks queries out, and
    one that waits 5 s fails: HTTP 500, "database is locked" (this suite
    met it under load before its Graphite used WAL). In WAL mode queries
    read while the index is written. A held write lock shows both."""
    database = os.path.join(graphite.root, 'storage', 'graphite.db')
    with contextlib.closing(sqlite3.connect(
            database, isolation_level=None)) as connection:

        def journal(mode):
            try:
                return connection.execute(
                    'PRAGMA journal_mode=%s' % mode).fetchone()
            except sqlite3.OperationalError:  # in use: try again
                return None

        def query_while_locked():
            connection.execute('BEGIN EXCLUSIVE')
            try:
                return graphite.request('/tags/autoComplete/tags')
            finally:
                connection.execute('ROLLBACK')
        try:
            # Leaving WAL needs the database idle: graphite-web closes its
            # connections after each request, carbon's updates are rare.
            peers.wait_for(lambda: journal('DELETE') == ('delete',),
                           message='the journal mode to change')
            status, body = query_while_locked()
            assert status == 500 and b'database is locked' in body
        finally:
            peers.wait_for(lambda: journal('WAL') == ('wal',),
                           message='the journal mode to change back')
        assert query_while_locked()[0] == 200


def test_a_label_called_name_is_lost(graphite, graphite_statsd, serve,
                                     prefix):
    """Graphite keeps the tag ``name`` for the metric name: carbon drops a
    user label called ``name`` without a word (label_mode accepts it)."""
    dataset = fakeapi.build_dataset(projects=1, tables=2)
    run_labeled_cycles(serve, graphite_statsd, prefix, dataset, 'graphite',
                       user_labels=(('name', 'cloud-1'), ('region', REGION)))
    total = _series(prefix, 'total.projects')
    graphite.wait_for_values(
        ["seriesByTag('name=stats.gauges.%s.total.projects')" % prefix],
        {total: 1})
    assert graphite.get_json('/tags/findSeries', [
        ('expr', 'name=cloud-1')]) == []
