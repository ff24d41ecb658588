"""Filters and the stable top N, cycle after cycle.

Tables grow, shrink and disappear between cycles; each cycle asserts which
tables got series of their own, and that project sums and totals still
cover every table.
"""

from __future__ import division

import random

import pytest

from magnetodb_statsd_middleware import cycle
from magnetodb_statsd_middleware import metrics
from magnetodb_statsd_middleware import outages
from magnetodb_statsd_middleware import selection
from magnetodb_statsd_middleware.demo import fakeapi
from tests.support import peers


def _run(selector, sizes, complete=True):
    """One cycle over ``{project: {table: size}}`` at the MetricSet level;
    returns (tables sent, {dotted-like key: value}, counts)."""
    metric_set = metrics.MetricSet(('size', 'item_count'), selector)
    measurements = []
    for project in sorted(sizes):
        measurements.extend(metric_set.project_measurements(project, [
            metrics.TableStats(project, name, 'ACTIVE',
                               {'size': size, 'item_count': size // 10})
            for name, size in sorted(sizes[project].items())]))
    measurements.extend(metric_set.ranked_tables(complete))
    if complete:
        measurements.extend(metric_set.totals())
    sent = set(labels for quantity, labels, _ in measurements
               if quantity is metrics.TABLE['size'])
    values = dict(((quantity.name,) + tuple(labels), value)
                  for quantity, labels, value in measurements)
    return sent, values, metric_set.counts


def _selector(**settings):
    return selection.TableSelector(peers.make_settings(**settings))


def test_keep_rank_is_a_fifth_above_top():
    assert [selection.keep_rank(n) for n in (1, 3, 5, 10, 1000)] == [
        2, 4, 6, 12, 1200]


def test_top_n_over_cycles_of_growth_shrinking_and_deletion():
    selector = _selector(top_tables=3)  # keep rank 4
    sizes = {'p1': {'a': 100, 'b': 90, 'c': 80}, 'p2': {'d': 70, 'e': 60}}

    # Cycle 1: the first cycle already sends a top 3.
    sent, values, counts = _run(selector, sizes)
    assert sent == {('p1', 'a'), ('p1', 'b'), ('p1', 'c')}
    assert (counts.tables_sent, counts.tables_omitted) == (3, 2)
    assert values[('total.size',)] == 400
    assert values[('project.size', 'p2')] == 130

    # Cycle 2: d grows into the top 3; c, now fourth, stays (rank < 4).
    sizes['p2']['d'] = 85
    sent, _, _ = _run(selector, sizes)
    assert sent == {('p1', 'a'), ('p1', 'b'), ('p2', 'd'), ('p1', 'c')}

    # Cycle 3: e jumps ahead; c falls to fifth, below the band, and leaves.
    sizes['p2']['e'] = 200
    sent, _, counts = _run(selector, sizes)
    assert sent == {('p2', 'e'), ('p1', 'a'), ('p1', 'b'), ('p2', 'd')}
    assert counts.tables_sent == 4

    # Cycle 4: a is deleted; c (fourth again) does not come back on its own.
    del sizes['p1']['a']
    sent, values, _ = _run(selector, sizes)
    assert sent == {('p2', 'e'), ('p1', 'b'), ('p2', 'd')}
    assert values[('total.size',)] == 90 + 80 + 85 + 200

    # Cycle 5: b shrinks to nothing behind new tables and leaves; c enters.
    sizes['p1']['b'] = 1
    sizes['p2'].update(f=50, g=40)
    sent, values, _ = _run(selector, sizes)
    assert sent == {('p2', 'e'), ('p2', 'd'), ('p1', 'c')}
    assert values[('project.size', 'p1')] == 81  # b still counted


def test_equal_sizes_rank_the_same_way_every_cycle():
    selector = _selector(top_tables=2)
    sizes = {'p': dict((name, 5) for name in 'abcdef')}
    first = _run(selector, sizes)[0]
    for _ in range(3):
        assert _run(_selector(top_tables=2), sizes)[0] == first
        assert _run(selector, sizes)[0] == first
    assert len(first) == 2


def test_an_incomplete_listing_keeps_unseen_members_without_sending_them():
    selector = _selector(top_tables=2)
    sizes = {'p1': {'a': 100}, 'p2': {'b': 90, 'c': 10}, 'p3': {'d': 50}}
    assert _run(selector, sizes)[0] == {('p1', 'a'), ('p2', 'b')}
    # p2 cannot be read: b is unknown, not gone; d ranks second of what
    # was seen and enters.
    partial = dict((p, t) for p, t in sizes.items() if p != 'p2')
    sent, _, _ = _run(selector, partial, complete=False)
    assert sent == {('p1', 'a'), ('p3', 'd')}
    assert selector.members == {'p1': {'a'}, 'p2': {'b'}, 'p3': {'d'}}
    # Back to complete: b is a member still, d stays within the band.
    assert _run(selector, sizes)[0] == {('p1', 'a'), ('p2', 'b'),
                                        ('p3', 'd')}
    # A complete listing without b drops it.
    del sizes['p2']['b']
    assert _run(selector, sizes)[0] == {('p1', 'a'), ('p3', 'd')}
    assert selector.members == {'p1': {'a'}, 'p3': {'d'}}


def test_filters_choose_projects_and_tables_and_sums_stay_whole():
    selector = _selector(include_projects=('prod-.*',),
                         exclude_projects=('prod-test',),
                         include_tables=('orders.*', 'users'),
                         exclude_tables=('.*_tmp',))
    sizes = {'prod-a': {'orders': 1, 'orders_tmp': 2, 'users': 4,
                        'users2': 8},
             'prod-test': {'orders': 16}, 'dev': {'orders': 32}}
    sent, values, counts = _run(selector, sizes)
    assert sent == {('prod-a', 'orders'), ('prod-a', 'users')}
    assert (counts.tables_sent, counts.tables_omitted) == (2, 4)
    # Project series only for the projects the filters let through...
    assert [k for k in values if k[0] == 'project.size'] == [
        ('project.size', 'prod-a')]
    assert values[('project.size', 'prod-a')] == 15  # every table summed
    # ...and totals over everything.
    assert values[('total.size',)] == 63
    assert values[('total.projects',)] == 3


def test_full_match_on_the_raw_name():
    selector = _selector(include_tables=('a.b',))
    assert selector.table_wanted('a.b') and selector.table_wanted('axb')
    assert not selector.table_wanted('a.bc')
    assert not selector.table_wanted('xa.b')
    assert not selector.table_wanted('a.b\n')


def test_top_n_among_what_the_filters_let_through():
    selector = _selector(top_tables=1, exclude_tables=('huge',))
    sent, _, counts = _run(selector, {'p': {'huge': 10 ** 9, 'big': 10,
                                            'small': 1}})
    assert sent == {('p', 'big')}
    assert (counts.tables_sent, counts.tables_omitted) == (1, 2)


def test_the_ranking_holds_keep_entries_only():
    selector = _selector(top_tables=10)
    ranking = selector.ranking()
    rng = random.Random(1)
    for number in range(10000):
        size = rng.randrange(10 ** 6)
        ranking.offer('p', 't%d' % number,
                      [(metrics.TABLE['size'], ('p', 't%d' % number), size)])
        assert len(ranking._heap) <= selector.keep
    chosen, omitted = ranking.choose(True)
    assert (len(chosen), omitted) == (10, 9990)
    assert selector.member_count() == 10


def _churn(selector, cycles, drift, jitter, tables=2000, seed=3):
    """Series started plus series ended over ``cycles`` cycles of tables
    whose sizes drift (each its own trend, ``drift`` wide) and jitter
    (noise, ``jitter`` wide); and the most tables sent in one cycle."""
    rng = random.Random(seed)
    names = ['t%04d' % i for i in range(tables)]
    sizes = dict((name, rng.lognormvariate(20, 1.5)) for name in names)
    trend = dict((name, rng.gauss(0, drift)) for name in names)
    previous = None
    changes = 0
    widest = 0
    for _ in range(cycles):
        for name in names:
            sizes[name] *= 1 + trend[name] + rng.gauss(0, jitter)
        sent = _run(selector, {'p': dict((n, int(s)) for n, s in
                                         sizes.items())})[0]
        widest = max(widest, len(sent))
        if previous is not None:
            changes += len(sent ^ previous)
        previous = sent
    return changes, widest


@pytest.mark.parametrize('drift, jitter, gain', [
    (0.0, 0.02, 4),  # noise only: the band removes most of the flapping
    (0.01, 0.02, 2),  # real growth too: tables still move up and down
])
def test_the_band_cuts_churn_and_bounds_the_series(drift, jitter, gain):
    stable = _selector(top_tables=100)
    naive = _selector(top_tables=100)
    naive.keep = naive.top  # no band: rank < N or out
    cycles = 30
    stable_churn, stable_widest = _churn(stable, cycles, drift, jitter)
    naive_churn, naive_widest = _churn(naive, cycles, drift, jitter)
    print('top 100 of 2000 tables, %d cycles, drift %g, jitter %g: %d '
          'series started or ended with the band (at most %d sent), %d '
          'without' % (cycles, drift, jitter, stable_churn, stable_widest,
                       naive_churn))
    assert naive_widest == 100
    assert 100 <= stable_widest <= 120
    assert stable_churn * gain <= naive_churn


# End to end: cycles over loopback HTTP, lines read back from UDP ---------

def _tables_sent(udp):
    """``{(project, table)}`` of the table.size lines (influxdb dialect)."""
    udp.drain()
    found = set()
    for line in udp.lines:
        bucket = line.split(':')[0]
        parts = bucket.split(',')
        if parts[0] == 'magnetodb.table.size':
            tags = dict(part.split('=') for part in parts[1:])
            found.add((tags['project'], tags['table']))
    del udp.datagrams[:]
    return found


def _dataset(sizes):
    return dict((project, [fakeapi.Table(name, 'ACTIVE', size, size // 100)
                           for name, size in tables.items()])
                for project, tables in sizes.items())


@pytest.mark.parametrize('listing', ['all', 'listed'])
def test_cycles_over_http_send_the_stable_top_n(serve, udp, listing):
    sizes = {'p1': {'a': 500, 'b': 400, 'tmp_x': 10 ** 9},
             'p2': {'c': 300, 'd': 200}, 'p3': {'e': 100}}
    app = fakeapi.FakeMonitoringAPI(_dataset(sizes))
    server = serve(app)
    settings = peers.make_settings(
        monitoring_url=server.url, statsd_port=udp.port, top_tables=2,
        label_mode='influxdb', exclude_tables=('tmp_.*',),
        projects=('p1', 'p2', 'p3') if listing == 'listed' else ())
    selector = selection.TableSelector(settings)

    def cycle_sends():
        result = cycle.run_cycle(settings, outages.OutageLog(),
                                 selector=selector)
        assert result.completed, result.error
        return _tables_sent(udp)

    assert cycle_sends() == {('p1', 'a'), ('p1', 'b')}
    sizes['p2']['c'] = 450  # enters; b, third, stays (keep rank 3)
    app.load(_dataset(sizes))
    assert cycle_sends() == {('p1', 'a'), ('p2', 'c'), ('p1', 'b')}
    sizes['p3']['e'] = 600  # enters; b falls to fourth and leaves
    app.load(_dataset(sizes))
    assert cycle_sends() == {('p3', 'e'), ('p1', 'a'), ('p2', 'c')}
    del sizes['p1']['a']  # deleted: gone from the next cycle
    app.load(_dataset(sizes))
    assert cycle_sends() == {('p3', 'e'), ('p2', 'c')}
    sizes['p2']['c'] = 1  # shrinks below the band
    app.load(_dataset(sizes))
    assert cycle_sends() == {('p3', 'e'), ('p1', 'b')}
