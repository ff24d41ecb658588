"""Names made safe and values checked before anything reaches StatsD."""

import hashlib

import pytest

import peers
from magnetodb_statsd_middleware import dialects
from magnetodb_statsd_middleware import metrics
from magnetodb_statsd_middleware import selection


def _hashed(raw, safe):
    return '%s_%s' % (safe, hashlib.sha1(raw.encode('utf-8')).hexdigest()[:8])


@pytest.mark.parametrize('raw', [
    'my_table', 'Table-01', 'a' * 300, '0123456789abcdef0123456789abcdef'])
def test_safe_names_stay_as_they_are(raw):
    assert metrics.safe_name(raw) == raw


@pytest.mark.parametrize('raw, safe', [
    ('my.table', 'my_table'),
    ('line\nbreak', 'line_break'),
    ('a:b|c#d@e;f=g/h i', 'a_b_c_d_e_f_g_h_i'),
    (u'caf\u00e9', 'caf_'),
    (u'\u8868', '_'),
    ('x' * 254 + '.', 'x' * 254 + '_'),
])
def test_unsafe_names_are_replaced_and_hashed(raw, safe):
    assert metrics.safe_name(raw) == _hashed(raw, safe)


def test_names_that_differ_stay_apart():
    names = ['a.b', 'a_b', 'a:b', 'a b', u'a\u00e9b', u'a\u00e8b']
    assert len({metrics.safe_name(n) for n in names}) == len(names)
    assert metrics.safe_name('a_b') == 'a_b'


def test_a_name_is_the_same_every_time():
    assert metrics.safe_name('t.1') == metrics.safe_name('t.1')


@pytest.mark.parametrize('raw', ['', None, 12, ['x'], {'a': 1}])
def test_names_that_cannot_be_named(raw):
    assert metrics.safe_name(raw) is None


@pytest.mark.parametrize('value, expected', [
    (0, 0), (1003432, 1003432), (2.0, 2), (2 ** 63 - 1, 2 ** 63 - 1),
    (-1, None), (1.5, None), ('12', None), (None, None), (True, None),
    (False, None), (2 ** 64, None), (2 ** 63, None), (float('nan'), None),
    (float('inf'), None), (-0.0, 0), ([1], None),
])
def test_values(value, expected):
    assert metrics.valid_value(value) == expected


def _table(name, active=True, **usage):
    return metrics.TableStats('p1', name, active, usage)


def _metric_set(metrics_=('size', 'item_count')):
    return metrics.MetricSet(metrics_, selection.TableSelector(
        peers.make_settings()))


def _dotted(measurements):
    """``{dotted name: value}``, the prefix left out."""
    lines = dialects.Dotted('x').lines(measurements)
    return dict((line[2:].split(':')[0], int(line.split(':')[1][:-2]))
                for line in lines)


def test_project_gauges_and_totals():
    metric_set = _metric_set()
    gauges = _dotted(metric_set.project_measurements('p1', [
        _table('t1', size=10, item_count=1),
        _table('t.2', size=20, item_count=2),
        _table('t3', active=False),
    ]))
    t2 = metrics.safe_name('t.2')
    assert gauges == {
        'tables.p1.t1.size': 10, 'tables.p1.t1.item_count': 1,
        'tables.p1.%s.size' % t2: 20, 'tables.p1.%s.item_count' % t2: 2,
        'projects.p1.size': 30, 'projects.p1.item_count': 3,
        'projects.p1.tables': 3,
    }
    assert _dotted(metric_set.totals()) == {
        'totals.size': 30, 'totals.item_count': 3, 'totals.tables': 3,
        'totals.projects': 1}
    assert (metric_set.counts.tables_sent,
            metric_set.counts.tables_omitted) == (2, 0)


def test_a_bad_value_withholds_only_the_sums_it_would_falsify():
    metric_set = _metric_set()
    gauges = _dotted(metric_set.project_measurements('p1', [
        _table('t1', size=-1, item_count=5),
        _table('t2', size=7, item_count=1.5),
        _table('t3', size='12', item_count=None),
    ]))
    assert gauges == {'tables.p1.t1.item_count': 5, 'tables.p1.t2.size': 7,
                      'projects.p1.tables': 3}
    assert metric_set.counts.rejected == 4
    metric_set.project_measurements('p2', [_table('t', size=1,
                                                  item_count=1)])
    assert _dotted(metric_set.totals()) == {'totals.tables': 4,
                                         'totals.projects': 2}


def test_a_project_sum_too_large_is_not_sent():
    metric_set = _metric_set(('size',))
    gauges = _dotted(metric_set.project_measurements('p1', [
        _table('a', size=2 ** 63 - 1), _table('b', size=1)]))
    assert 'projects.p1.size' not in gauges
    assert gauges['tables.p1.b.size'] == 1
    assert 'totals.size' not in _dotted(metric_set.totals())


def test_an_unnamed_project_or_table_is_skipped_and_counted():
    metric_set = _metric_set(('size',))
    assert metric_set.project_measurements('', [_table('t', size=1)]) == []
    gauges = _dotted(metric_set.project_measurements('p', [
        _table(None, size=1), _table('ok', size=2)]))
    assert gauges == {'tables.p.ok.size': 2, 'projects.p.tables': 2}
    assert metric_set.counts.rejected == 2
    assert _dotted(metric_set.totals()) == {'totals.tables': 3,
                                         'totals.projects': 2}
