"""Names made safe and values checked before anything reaches StatsD."""

import hashlib

import pytest

from magnetodb_statsd_middleware import dialects
from magnetodb_statsd_middleware import metrics
from magnetodb_statsd_middleware import selection
from magnetodb_statsd_middleware import stuck
from magnetodb_statsd_middleware.demo import fakeapi
from tests.support import peers


def _hashed(raw, safe):
    return '%s_%s' % (safe, hashlib.sha1(raw.encode('utf-8')).hexdigest()[:8])


@pytest.mark.parametrize('raw', [
    'my_table', 'Table-01', 'a' * 300, '0123456789abcdef0123456789abcdef'])
def test_safe_names_stay_as_they_are(raw):
    assert metrics.safe_part(raw) == raw


@pytest.mark.parametrize('raw, safe', [
    ('my.table', 'my_table'),
    ('line\nbreak', 'line_break'),
    ('a:b|c#d@e;f=g/h i', 'a_b_c_d_e_f_g_h_i'),
    (u'caf\u00e9', 'caf_'),
    (u'\u8868', '_'),
    ('x' * 254 + '.', 'x' * 254 + '_'),
])
def test_unsafe_names_are_replaced_and_hashed(raw, safe):
    assert metrics.safe_part(raw) == _hashed(raw, safe)


def test_names_that_differ_stay_apart():
    names = ['a.b', 'a_b', 'a:b', 'a b', u'a\u00e9b', u'a\u00e8b']
    assert len({metrics.safe_part(n) for n in names}) == len(names)
    assert metrics.safe_part('a_b') == 'a_b'


def test_a_name_is_the_same_every_time():
    assert metrics.safe_part('t.1') == metrics.safe_part('t.1')


@pytest.mark.parametrize('raw', ['', None, 12, ['x'], {'a': 1}])
def test_names_that_cannot_be_named(raw):
    assert not metrics.nameable(raw)


@pytest.mark.parametrize('value, expected', [
    (0, 0), (1003432, 1003432), (2.0, 2), (2 ** 63 - 1, 2 ** 63 - 1),
    (-1, None), (1.5, None), ('12', None), (None, None), (True, None),
    (False, None), (2 ** 64, None), (2 ** 63, None), (float('nan'), None),
    (float('inf'), None), (-0.0, 0), ([1], None),
])
def test_values(value, expected):
    assert metrics.valid_value(value) == expected


def _table(name, status='ACTIVE', **usage):
    return metrics.TableStats('p1', name, status, usage)


def _metric_set(metrics_=('size', 'item_count')):
    return metrics.MetricSet(metrics_, selection.TableSelector(
        peers.make_settings()))


def _dotted(measurements, statuses=False):
    """``{dotted name: value}``, the prefix left out; the counts by status
    and of stuck tables only with ``statuses``."""
    lines = dialects.Dotted('x').lines(measurements)
    gauges = dict((line[2:].split(':')[0], int(line.split(':')[1][:-2]))
                  for line in lines)
    return dict((name, value) for name, value in gauges.items()
                if statuses or not ('.tables_by_status.' in name
                                    or name.endswith('.stuck')))


def test_project_gauges_and_totals():
    metric_set = _metric_set()
    gauges = _dotted(metric_set.project_measurements('p1', [
        _table('t1', size=10, item_count=1),
        _table('t.2', size=20, item_count=2),
        _table('t3', status='CREATING'),
    ]))
    t2 = metrics.safe_part('t.2')
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


# Name length -----------------------------------------------------------------

def _long_name_lines(max_length, prefix='magnetodb'):
    """``[(line, quantity, labels, value)]`` of every table, project and
    total gauge of the long-names dataset, spelled as dotted names."""
    dataset = fakeapi.build_long_names_dataset()
    metric_set = _metric_set()
    measurements = []
    for project, rows in sorted(dataset.items()):
        measurements.extend(metric_set.project_measurements(project, [
            metrics.TableStats(project, t.name, t.status,
                               {'size': t.size, 'item_count': t.item_count})
            for t in rows]))
    measurements.extend(metric_set.totals())
    lines = dialects.Dotted(prefix, max_length).lines(measurements)
    return [(line,) + m for line, m in zip(lines, measurements)]


@pytest.mark.parametrize('max_length', [64, 127, 253, 255, 1024])
def test_no_name_is_longer_and_every_name_is_its_own(max_length):
    spelled = _long_name_lines(max_length)
    names = [line.split(':')[0] for line, _, _, _ in spelled]
    assert len(spelled) > 2 * 290
    assert max(len(name) for name in names) <= max_length
    # Injective: every table's size and item count, every project sum.
    assert len(set(names)) == len(names)
    cut = 0
    for name, (_, quantity, labels, _) in zip(names, spelled):
        uncut = 'magnetodb.' + quantity.dotted % tuple(
            metrics.safe_part(raw) for raw in labels)
        # The documented rule, written again; a name that fits is the
        # name it would be without a limit.
        assert name == peers.expected_dotted_name(
            'magnetodb', quantity.dotted, labels, max_length,
            quantity.labels)
        if len(uncut) <= max_length:
            assert name == uncut
        else:
            cut += 1
            assert len(name) == max_length or max_length == 64
    assert (cut > 0) == (max_length < 1024)
    # Stable: the same names at the next cycle.
    assert [line for line, _, _, _ in _long_name_lines(max_length)] == [
        line for line, _, _, _ in spelled]


def test_a_cut_table_keeps_its_start_and_the_digest_of_its_raw_name():
    raw = 'c' * 127 + '.size'
    (size, items) = dialects.Dotted('magnetodb', 127).lines([
        (metrics.TABLE['size'], ('p', raw), 1),
        (metrics.TABLE['item_count'], ('p', raw), 2)])
    digest = hashlib.sha1(raw.encode('utf-8')).hexdigest()[:8]
    assert size == 'magnetodb.tables.p.%s_%s.size:1|g' % ('c' * 94, digest)
    assert items == 'magnetodb.tables.p.%s_%s.item_count:2|g' % ('c' * 88,
                                                                digest)
    assert len(size.split(':')[0]) == len(items.split(':')[0]) == 127


def test_the_project_part_is_cut_once_the_table_part_is_at_its_least():
    project, table = 'P' * 100, 'T' * 100
    (line,) = dialects.Dotted('magnetodb', 64).lines([
        (metrics.TABLE['item_count'], (project, table), 3)])
    name = line.split(':')[0]
    digest = dict((raw, hashlib.sha1(raw.encode()).hexdigest()[:8])
                  for raw in (project, table))
    # 64 - len("magnetodb.tables...item_count") = 35: 10 for the table.
    assert name == 'magnetodb.tables.%s_%s.T_%s.item_count' % (
        'P' * 16, digest[project], digest[table])
    assert len(name) == 64


def test_every_quantity_is_checked_for_room():
    """A quantity missing from metrics.quantities() would escape the
    configuration check of max_name_length."""
    declared = []
    for value in vars(metrics).values():
        if isinstance(value, metrics.Quantity):
            declared.append(value)
        elif isinstance(value, dict):
            declared.extend(v for v in value.values()
                            if isinstance(v, metrics.Quantity))
    assert declared and all(q in metrics.quantities() for q in declared)


def test_a_table_cut_for_item_count_only_keeps_its_size_name():
    """Each name fits on its own: ``.size`` is 6 characters shorter."""
    table = 't' * (127 - len('magnetodb.tables.p.') - len('.size'))
    labels = ('p', table)
    (size, items) = dialects.Dotted('magnetodb', 127).lines([
        (metrics.TABLE['size'], labels, 1),
        (metrics.TABLE['item_count'], labels, 2)])
    assert size == 'magnetodb.tables.p.%s.size:1|g' % table
    assert len(items.split(':')[0]) == 127
    assert items.split('.')[3] == metrics.cut_part(table, len(table) - 6)


# Tables by status, and stuck tables ----------------------------------------

class Clock(object):
    """A StuckClock's time source that a test moves."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _status_gauges(gauges, where='projects.p1'):
    """``{status or 'stuck': value}`` under ``where``."""
    found = {}
    for name, value in gauges.items():
        if name.startswith(where + '.tables_by_status.'):
            found[name.rsplit('.', 1)[1]] = value
        elif name == where + '.stuck':
            found['stuck'] = value
    return found


def _zeros(**counts):
    found = dict.fromkeys(('active', 'creating', 'deleting',
                           'create_failed', 'delete_failed', 'stuck'), 0)
    found.update(counts)
    return found


def _status_cycle(clock, projects, settings=None, listed=True):
    """One cycle's dotted gauges for ``{project: [(name, status)]}``."""
    metric_set = metrics.MetricSet(('size',), selection.TableSelector(
        settings or peers.make_settings()), clock)
    measurements = []
    for project in sorted(projects):
        measurements.extend(metric_set.project_measurements(project, [
            metrics.TableStats(project, name, status,
                               {'size': 1} if status == 'ACTIVE' else {})
            for name, status in projects[project]], listed))
    clock.forget_unlisted()
    measurements.extend(metric_set.totals())
    return _dotted(measurements, statuses=True), metric_set


def test_every_status_is_counted_zeros_included():
    clock = stuck.StuckClock(60, Clock())
    gauges, _ = _status_cycle(clock, {
        'p1': [('a', 'ACTIVE'), ('b', 'ACTIVE'), ('c', 'CREATE_FAILED'),
               ('d', 'DELETE_FAILED'), ('e', 'CREATING')],
        'p2': [('a', 'DELETING')]})
    assert _status_gauges(gauges) == _zeros(active=2, create_failed=1,
                                            delete_failed=1, creating=1)
    assert _status_gauges(gauges, 'projects.p2') == _zeros(deleting=1)
    assert _status_gauges(gauges, 'totals') == _zeros(
        active=2, create_failed=1, delete_failed=1, creating=1, deleting=1)
    assert gauges['totals.tables'] == 6


def test_another_status_is_lower_cased_and_made_safe():
    clock = stuck.StuckClock(60, Clock())
    gauges, metric_set = _status_cycle(clock, {'p1': [
        ('a', 'MIGRATING'), ('b', 'Odd.State'), ('c', None), ('d', 7)]})
    odd = '%s_%s' % ('odd_state', hashlib.sha1(b'odd.state').hexdigest()[:8])
    assert _status_gauges(gauges) == _zeros(migrating=1, **{odd: 1})
    assert metric_set.counts.rejected == 2  # null and 7: no status name


def test_a_project_read_without_statuses_gets_no_counts_nor_totals():
    clock = stuck.StuckClock(60, Clock())
    metric_set = metrics.MetricSet(('size',), selection.TableSelector(
        peers.make_settings()), clock)
    listed = metric_set.project_measurements('p1', [
        _table('a', size=1), _table('b', status='CREATING')])
    whole = metric_set.project_measurements('p2', [_table('a', size=1)],
                                            statuses=False)
    totals = _dotted(metric_set.totals(), statuses=True)
    assert _status_gauges(_dotted(listed, True)) == _zeros(active=1,
                                                           creating=1)
    assert _status_gauges(_dotted(whole, True), 'projects.p2') == {}
    assert _status_gauges(totals, 'totals') == {}
    assert totals['totals.tables'] == 3


def test_filtered_projects_still_count_in_the_totals():
    clock = stuck.StuckClock(60, Clock())
    gauges, _ = _status_cycle(clock, {
        'p1': [('a', 'CREATING')], 'p2': [('a', 'CREATE_FAILED')]},
        settings=peers.make_settings(exclude_projects=('p2',),
                                     exclude_tables=('a',)))
    assert _status_gauges(gauges, 'projects.p2') == {}
    assert _status_gauges(gauges) == _zeros(creating=1)
    assert _status_gauges(gauges, 'totals') == _zeros(creating=1,
                                                      create_failed=1)


def test_stuck_after_stuck_after_seconds_and_no_longer_once_active():
    now = Clock()
    clock = stuck.StuckClock(60, now)

    def stuck_now(projects):
        gauges, _ = _status_cycle(clock, projects)
        return dict((name, value) for name, value in gauges.items()
                    if name.endswith('.stuck'))

    slow = {'p1': [('slow', 'CREATING'), ('quick', 'CREATING'),
                   ('gone', 'DELETING')]}
    assert stuck_now(slow) == {'projects.p1.stuck': 0, 'totals.stuck': 0}
    now.now += 30
    slow['p1'][1] = ('quick', 'ACTIVE')  # in time: never stuck
    assert stuck_now(slow) == {'projects.p1.stuck': 0, 'totals.stuck': 0}
    now.now += 30  # exactly 60 s: not longer than stuck_after
    assert stuck_now(slow) == {'projects.p1.stuck': 0, 'totals.stuck': 0}
    now.now += 1
    assert stuck_now(slow) == {'projects.p1.stuck': 2, 'totals.stuck': 2}
    del slow['p1'][2]  # the DELETING table is gone
    assert stuck_now(slow) == {'projects.p1.stuck': 1, 'totals.stuck': 1}
    slow['p1'][0] = ('slow', 'ACTIVE')
    assert stuck_now(slow) == {'projects.p1.stuck': 0, 'totals.stuck': 0}
    assert clock.remembered() == 0
    # Seen again CREATING (created anew under the same name): a new clock.
    slow['p1'][0] = ('slow', 'CREATING')
    assert stuck_now(slow) == {'projects.p1.stuck': 0, 'totals.stuck': 0}


def test_a_change_of_passing_status_starts_the_clock_again():
    now = Clock()
    clock = stuck.StuckClock(60, now)
    _status_cycle(clock, {'p1': [('t', 'CREATING')]})
    now.now += 61
    gauges, _ = _status_cycle(clock, {'p1': [('t', 'DELETING')]})
    assert gauges['projects.p1.stuck'] == 0
    now.now += 61
    gauges, _ = _status_cycle(clock, {'p1': [('t', 'DELETING')]})
    assert gauges['projects.p1.stuck'] == 1


def test_only_passing_tables_are_remembered_and_unread_projects_kept():
    now = Clock()
    clock = stuck.StuckClock(60, now)
    _status_cycle(clock, {
        'p1': [('a', 'ACTIVE'), ('b', 'CREATE_FAILED'), ('c', 'CREATING')],
        'p2': [('a', 'DELETING')], 'p3': [('a', 'CREATING')]})
    assert clock.remembered() == 3
    now.now += 61
    # p1 read through its own resource (ACTIVE tables only), p2 not
    # reached by a listing that failed: both keep their clocks.
    metric_set = metrics.MetricSet(('size',), selection.TableSelector(
        peers.make_settings()), clock)
    metric_set.project_measurements('p1', [_table('a', size=1)],
                                    statuses=False)
    metric_set.project_measurements('p3', [_table('a', size=1)])
    assert clock.remembered() == 2
    gauges, _ = _status_cycle(clock, {
        'p1': [('c', 'CREATING')], 'p2': [('a', 'DELETING')]})
    assert gauges['projects.p1.stuck'] == gauges['projects.p2.stuck'] == 1
    # A complete listing without p2: p2 is forgotten.
    _status_cycle(clock, {'p1': [('c', 'CREATING')]})
    assert clock.remembered() == 1
