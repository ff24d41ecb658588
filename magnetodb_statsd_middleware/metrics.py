"""What is measured: every quantity the collector sends, and its values.

A measurement is a plain tuple ``(quantity, labels, value)``: a
:class:`Quantity` says what is measured (its labeled name, its label keys,
its StatsD type, its dotted name), ``labels`` gives the raw label values in
the quantity's key order (a project id, a table name, a host...), and
``value`` is a checked number. This module alone decides what StatsD
receives; :mod:`.dialects` only spells each measurement, as a dotted name
or in a label dialect, making every label value safe on the way
(:func:`safe_part`, :func:`safe_label`).

:class:`MetricSet` turns complete projects into measurements and keeps the
running totals; which tables get measurements of their own is asked of a
:class:`~.selection.TableSelector` (filters, top N).
"""

import collections
import functools
import hashlib
import re
import time

from magnetodb_statsd_middleware import compat
from magnetodb_statsd_middleware import stuck

MAX_VALUE = 2 ** 63 - 1

# Longest label value sent; a longer one, or one that had to change, is cut
# to make room for "_" and 8 hex digits.
MAX_LABEL = 200
_DIGEST_LENGTH = 8

# Longest name sent by default (max_name_length): Gnocchi's statsd daemon
# stores "<name>|g" in 255 characters; Monasca takes 255, Graphite 255 bytes
# a dotted part. A name part cut to fit keeps at least one character before
# its "_" and 8 hex digits.
MAX_NAME_LENGTH = 253
# Monasca rejects longer names (and loses the rest of their datagram).
MONASCA_MAX_NAME_LENGTH = 255
MIN_CUT_PART = 1 + 1 + _DIGEST_LENGTH

_UNSAFE = re.compile(r'[^A-Za-z0-9_-]')
_UNSAFE_LABEL = re.compile(r'[^A-Za-z0-9_.-]')
_UNSAFE_LOWER_LABEL = re.compile(r'[^a-z0-9_.-]')


def _digest(raw):
    return hashlib.sha1(compat.utf8(raw)).hexdigest()[:_DIGEST_LENGTH]


def nameable(raw):
    """Whether a raw id or name can be named at all (a non-empty string)."""
    return isinstance(raw, compat.string_types) and bool(raw)


def safe_part(raw):
    """Make one metric name part safe for any StatsD daemon, injectively.

    Every character outside ``A-Z a-z 0-9 _ -`` becomes ``_``; where that
    changed the name, ``_`` and the first 8 hex digits of the SHA-1 of the
    raw UTF-8 name are appended, so ``a.b`` and ``a_b`` stay apart and a
    name is the same at every cycle. ``raw`` is :func:`nameable`: a row
    whose name is not cannot be named at all.
    """
    if _UNSAFE.search(raw) is None:
        return raw
    return '%s_%s' % (_UNSAFE.sub('_', raw), _digest(raw))


def cut_part(raw, length):
    """``raw`` made safe and cut to ``length`` characters, ``_`` and the 8
    hex digits of its raw value's SHA-1 included (``length`` is at least
    :data:`MIN_CUT_PART` and less than the safe part's length).

    The same shape as a changed name, so two raw values stay apart and a
    value is cut the same way at every cycle.
    """
    return '%s_%s' % (_UNSAFE.sub('_', raw)[:length - _DIGEST_LENGTH - 1],
                      _digest(raw))


def cut_label(raw, length):
    """As :func:`cut_part` for a label value, whose ``.`` is kept (the
    shape of a value :func:`safe_label` changed)."""
    return '%s_%s' % (
        _UNSAFE_LABEL.sub('_', raw)[:length - _DIGEST_LENGTH - 1],
        _digest(raw))


# Label keys whose values are the collector's own words (a table status,
# a health subsystem): dashboards name them, so they are cut only when
# cutting the project and table parts is not enough.
CUT_LAST = ('status', 'subsystem')


def fit_parts(raw_parts, safe_parts, room, keys, cut=cut_part):
    """Safe name parts cut until their lengths add up to at most ``room``.

    The last part is cut first (a table before its project, see "Name length"
    in doc/source/metrics.rst), the parts of :data:`CUT_LAST` keys after all
    the others, each down to :data:`MIN_CUT_PART` at most; parts that fit are
    not touched. :func:`check_name_room` (and, for the label values a
    dialect writes into the name, :func:`.dialects.check_name_room`) makes
    sure, at configuration time, that every name can fit. ``keys`` are the
    parts' label keys; ``cut`` cuts one part (:func:`cut_part`, or
    :func:`cut_label` for the label values a dialect writes into the
    name).
    """
    parts = list(safe_parts)
    excess = sum(map(len, parts)) - room
    last = range(len(parts) - 1, -1, -1)
    order = ([i for i in last if keys[i] not in CUT_LAST]
             + [i for i in last if keys[i] in CUT_LAST])
    for index in order:
        if excess <= 0:
            break
        length = len(parts[index])
        if length <= MIN_CUT_PART:
            continue
        keep = max(MIN_CUT_PART, length - excess)
        parts[index] = cut(raw_parts[index], keep)
        excess -= length - keep
    return tuple(parts)


def safe_label(raw, lower=False):
    """Make a label value safe for every dialect, injectively.

    As :func:`safe_part`, except that ``.`` is kept (``A-Z a-z 0-9 _ - .``
    stay as they are), and that a value is at most :data:`MAX_LABEL`
    characters: a value that changed, or was longer, is cut to 191
    characters before its ``_`` and 8 hex digits. With ``lower``
    (DogStatsD: Datadog lower-cases tags) the value is lower-cased and an
    upper-case letter counts as a change, so ``Orders`` and ``orders``
    stay two series. ``raw`` is a non-empty string (see :func:`nameable`).
    """
    unsafe = _UNSAFE_LOWER_LABEL if lower else _UNSAFE_LABEL
    if len(raw) <= MAX_LABEL and unsafe.search(raw) is None:
        return raw
    safe = _UNSAFE_LABEL.sub('_', raw)
    if lower:
        safe = safe.lower()  # ASCII only by now
    return '%s_%s' % (safe[:MAX_LABEL - _DIGEST_LENGTH - 1], _digest(raw))


def valid_value(value):
    """The value as an int if it may be sent as a gauge, else None.

    Only integers from 0 to 2**63-1 qualify: a JSON integer, or a float with
    no fractional part. Booleans, strings, null, negatives (which StatsD
    would read as a delta) and fractions are bad data, not numbers to send.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, float):
        if not value.is_integer():
            return None
        value = int(value)
    elif not isinstance(value, compat.integer_types):
        return None
    if 0 <= value <= MAX_VALUE:
        return value
    return None


# Quantities ------------------------------------------------------------------

GAUGE = 'g'
COUNTER = 'c'
TIMER = 'ms'


class Quantity(object):
    """One thing measured, whatever the spelling.

    ``name`` follows ``<prefix>.`` in labeled modes; ``labels`` are the
    label keys, sorted, and a measurement gives their values in that order;
    ``kind`` is the StatsD type; ``dotted`` is the dotted name (after the
    prefix) with ``%s`` where each label value goes, in the same order.
    Quantities are module constants, hashed by identity.
    """

    __slots__ = ('name', 'labels', 'kind', 'dotted')

    def __init__(self, name, labels, kind, dotted):
        assert list(labels) == sorted(labels), labels
        assert dotted.count('%s') == len(labels), dotted
        self.name = name
        self.labels = labels
        self.kind = kind
        self.dotted = dotted

    def __repr__(self):
        return 'Quantity(%r)' % self.name


TABLE_METRICS = ('size', 'item_count')

TABLE = dict((metric, Quantity('table.' + metric, ('project', 'table'), GAUGE,
                               'tables.%s.%s.' + metric))
             for metric in TABLE_METRICS)
PROJECT = dict((name, Quantity('project.' + name, ('project',), GAUGE,
                               'projects.%s.' + name))
               for name in TABLE_METRICS + ('tables', 'stuck'))
PROJECT['tables_by_status'] = Quantity(
    'project.tables_by_status', ('project', 'status'), GAUGE,
    'projects.%s.tables_by_status.%s')
TOTAL = dict((name, Quantity('total.' + name, (), GAUGE, 'totals.' + name))
             for name in TABLE_METRICS + ('tables', 'projects', 'stuck'))
TOTAL['tables_by_status'] = Quantity(
    'total.tables_by_status', ('status',), GAUGE,
    'totals.tables_by_status.%s')
HEALTH = Quantity('health', ('host', 'subsystem'), GAUGE, 'health.%s.%s')
COLLECTOR = dict((name, Quantity('collector.' + name, (), kind,
                                 'collector.' + name))
                 for name, kind in (('cycle_duration', TIMER),
                                    ('cycles_completed', COUNTER),
                                    ('cycles_failed', COUNTER),
                                    ('values_rejected', COUNTER),
                                    ('tables', GAUGE),
                                    ('pages', GAUGE),
                                    ('tables_sent', GAUGE),
                                    ('tables_omitted', GAUGE),
                                    ('projects_failed', GAUGE),
                                    ('last_success', GAUGE)))

NO_LABELS = ()


def quantities():
    """Every quantity the collector may send."""
    found = []
    for group in (TABLE, PROJECT, TOTAL, COLLECTOR):
        found.extend(group.values())
    found.append(HEALTH)
    return found


def dotted_room(prefix, quantity, max_length):
    """Characters left for the label parts of ``quantity``'s dotted name,
    ``<prefix>.`` and its fixed text counted, within ``max_length``."""
    fixed = len(quantity.dotted) - 2 * len(quantity.labels)
    return max_length - len(prefix) - 1 - fixed


def check_name_room(prefix, max_length):
    """None if every name can be kept within ``max_length`` characters with
    this prefix (each label part cut to :data:`MIN_CUT_PART` at most), else
    the first name that cannot, as a message."""
    for quantity in quantities():
        labeled = len(prefix) + 1 + len(quantity.name)
        room = dotted_room(prefix, quantity, max_length)
        if labeled > max_length or room < MIN_CUT_PART * len(quantity.labels):
            return '%s.%s cannot be kept within %d characters' % (
                prefix, quantity.dotted.replace('%s', '*'), max_length)
    return None


# Table statuses ----------------------------------------------------------

# As the API sends it (text, like every string of a JSON document).
ACTIVE = u'ACTIVE'

# MagnetoDB 2015.1's statuses as named in metrics, each sent every cycle,
# 0 included, so that a count that falls to zero reads 0 in a daemon that
# keeps a gauge's last value.
STATUSES = ('active', 'creating', 'deleting', 'create_failed',
            'delete_failed')
_STATUS_NAMES = dict((name.upper(), name) for name in STATUSES)

# Statuses MagnetoDB leaves by itself: a table seen in one of them for
# longer than stuck_after is stuck.
PASSING = ('creating', 'deleting')


def status_name(status):
    """A status as named in metrics: lower case (a spelling then makes it
    safe), one shared string for the known ones; None for a status that
    cannot be named (not a non-empty string)."""
    if not nameable(status):
        return None
    known = _STATUS_NAMES.get(status)
    return status.lower() if known is None else known


class TableStats(collections.namedtuple(
        'TableStats', 'project name status usage')):
    """One row of a listing: a table's status and raw usage figures.

    ``name`` and ``status`` are as the API sent them (the spelling makes
    them safe). A namedtuple: a million-table cycle builds a million of
    them, with :data:`new_table`.
    """

    __slots__ = ()


# ``new_table((project, name, status, usage))`` builds a TableStats without
# the Python-level ``__new__`` of a namedtuple, at half the cost.
new_table = functools.partial(tuple.__new__, TableStats)


class CycleCounts(object):
    """What one cycle saw, for the collector's own metrics and logs."""

    def __init__(self):
        self.tables = 0
        self.projects = 0
        self.pages = 0
        self.rejected = 0
        self.tables_sent = 0
        self.tables_omitted = 0
        # Projects that could not be read; None when the listing was not
        # read to its end (the API failed).
        self.projects_failed = None


class MetricSet(object):
    """Measurements of one cycle, built project by project.

    A project's sum of a metric is sent only when every ACTIVE table of it
    had a valid value for that metric: a sum with a missing part would be a
    wrong number. Totals follow the same rule, and are produced only by
    :meth:`totals` after the caller knows the listing was complete. Sums,
    counts by status and totals cover every table listed; the selector
    only decides which projects and tables get measurements of their own.

    Counts by status need every table of a project with its status: a
    project read without them (its own resource lists ACTIVE tables only)
    gets none that cycle, nor do the totals. ``clock`` is the collector's
    :class:`~.stuck.StuckClock`; without one, a clock of this cycle alone
    finds nothing stuck.
    """

    def __init__(self, metrics, selector, clock=None):
        self._metrics = tuple(metrics)
        # Plain dicts (an OrderedDict is pure Python on 2.7): the order
        # is that of self._metrics.
        self._totals = dict.fromkeys(self._metrics, 0)
        self._table_quantities = tuple((metric, TABLE[metric])
                                       for metric in self._metrics)
        self._selector = selector
        self._ranking = selector.ranking()
        # A clock of this cycle alone finds nothing stuck, whatever its
        # stuck_after.
        self._clock = clock if clock is not None else stuck.StuckClock(1)
        self._clock.begin()
        # Tables by status name and stuck tables over the projects so
        # far; None once a project's statuses are unknown.
        self._status_totals = dict.fromkeys(STATUSES, 0)
        self._stuck_total = 0
        self.counts = CycleCounts()

    def project_measurements(self, project, tables, statuses=True):
        """Measurements of one complete project and, unless they must wait
        for the ranking of the whole listing, of its tables; ``statuses``:
        ``tables`` are all of the project's tables, with their statuses."""
        counts = self.counts
        counts.tables += len(tables)
        counts.projects += 1
        if not nameable(project):
            counts.rejected += 1
            self._mark_incomplete(self._totals, self._metrics)
            self._status_totals = None
            return []
        measurements = []
        sums = dict.fromkeys(self._metrics, 0)
        own = self._selector.project_wanted(project)
        table_filter = self._selector.table_filter
        ranking = self._ranking
        quantities = self._table_quantities
        string_types = compat.string_types
        max_value = MAX_VALUE
        sent = 0
        waiting = []  # (name, raw status) of the tables not ACTIVE
        for _, name, status, usage in tables:  # TableStats, unpacked
            if status != ACTIVE:
                waiting.append((name, status))
                continue
            if not (isinstance(name, string_types) and name):
                counts.rejected += 1
                self._mark_incomplete(sums, self._metrics)
                continue
            if not own or (table_filter is not None
                           and not table_filter(name)):
                own_measurements = None
            elif ranking is None:
                own_measurements = measurements
            else:
                own_measurements = []
            labels = (project, name)  # shared: see dialects
            valid = 0
            for metric, quantity in quantities:
                value = usage.get(metric)
                # Fast path for the usual JSON integer; the rest is checked.
                if type(value) is not int or not 0 <= value <= max_value:
                    value = valid_value(value)
                if value is None:
                    counts.rejected += 1
                    sums[metric] = None
                    continue
                valid += 1
                total = sums[metric]
                if total is not None:
                    sums[metric] = total + value
                if own_measurements is not None:
                    own_measurements.append((quantity, labels, value))
            if not valid:
                continue
            if own_measurements is None:
                counts.tables_omitted += 1
            elif ranking is not None:
                ranking.offer(project, name, own_measurements)
            else:
                sent += 1
        counts.tables_sent += sent
        for metric in self._metrics:
            total = sums[metric]
            if own:
                measurements.extend(self._sum(PROJECT[metric], (project,),
                                              total))
            if self._totals[metric] is not None:
                self._totals[metric] = (None if total is None
                                        else self._totals[metric] + total)
        if own:
            measurements.append((PROJECT['tables'], (project,), len(tables)))
        if statuses:
            measurements.extend(self._statuses(project, len(tables),
                                               waiting, own))
        else:
            self._clock.keep(project)
            self._status_totals = None
        return measurements

    def _statuses(self, project, listed, waiting, own):
        """A project's tables by status and its stuck tables; the totals
        grow by them."""
        by_status = dict.fromkeys(STATUSES, 0)
        by_status['active'] = listed - len(waiting)
        passing = []
        for name, status in waiting:
            status = status_name(status)
            if status is None:
                self.counts.rejected += 1
                continue
            by_status[status] = by_status.get(status, 0) + 1
            if status in PASSING and nameable(name):
                passing.append((name, status))
        stuck_tables = self._clock.stuck(project, passing)
        totals = self._status_totals
        if totals is not None:
            for status, count in by_status.items():
                totals[status] = totals.get(status, 0) + count
            self._stuck_total += stuck_tables
        if not own:
            return []
        quantity = PROJECT['tables_by_status']
        measurements = [(quantity, (project, status), by_status[status])
                        for status in _in_order(by_status)]
        measurements.append((PROJECT['stuck'], (project,), stuck_tables))
        return measurements

    def ranked_tables(self, complete):
        """Measurements of the tables chosen by the top-N ranking, once the
        listing is over (``complete``: it listed everything); nothing when
        every selected table was already sent project by project."""
        if self._ranking is None:
            return []
        chosen, omitted = self._ranking.choose(complete)
        self.counts.tables_sent += len(chosen)
        self.counts.tables_omitted += omitted
        measurements = []
        for table_measurements in chosen:
            measurements.extend(table_measurements)
        return measurements

    def totals(self):
        """Global measurements; call only after a complete listing."""
        measurements, rejected = total_measurements(self._metrics,
                                                    self.share())
        self.counts.rejected += rejected
        return measurements

    def share(self):
        """What the projects so far add to the totals, as plain data: the
        totals of a walk shared by several hosts are the
        :func:`merged_shares` of every range's."""
        return {'sums': dict(self._totals), 'tables': self.counts.tables,
                'projects': self.counts.projects,
                'statuses': (None if self._status_totals is None
                             else dict(self._status_totals)),
                'stuck': self._stuck_total}

    def _sum(self, quantity, labels, total):
        measurements, rejected = _checked_sum(quantity, labels, total)
        self.counts.rejected += rejected
        return measurements

    @staticmethod
    def _mark_incomplete(sums, metrics):
        for metric in metrics:
            sums[metric] = None


def _checked_sum(quantity, labels, total):
    """``(measurements, values rejected)`` of a sum: none when a part was
    unknown (None), and the sum rejected when it cannot be sent."""
    if total is None:
        return [], 0
    if valid_value(total) is None:
        return [], 1
    return [(quantity, labels, total)], 0


def total_measurements(metrics, share):
    """The totals of a :meth:`MetricSet.share` (or merged shares):
    ``(measurements, values rejected)``."""
    measurements = []
    rejected = 0
    for metric in metrics:
        summed, bad = _checked_sum(TOTAL[metric], NO_LABELS,
                                   share['sums'].get(metric))
        measurements.extend(summed)
        rejected += bad
    measurements.append((TOTAL['tables'], NO_LABELS, share['tables']))
    measurements.append((TOTAL['projects'], NO_LABELS, share['projects']))
    statuses = share['statuses']
    if statuses is not None:
        measurements.extend((TOTAL['tables_by_status'], (status,),
                             statuses[status])
                            for status in _in_order(statuses))
        measurements.append((TOTAL['stuck'], NO_LABELS, share['stuck']))
    return measurements, rejected


def merged_shares(metrics, shares):
    """One share of the totals from several: a sum or a status count
    unknown in one of them is unknown in all."""
    sums = dict.fromkeys(metrics, 0)
    statuses = dict.fromkeys(STATUSES, 0)
    merged = {'sums': sums, 'tables': 0, 'projects': 0,
              'statuses': statuses, 'stuck': 0}
    for share in shares:
        for metric in metrics:
            part = share['sums'].get(metric)
            sums[metric] = (None if part is None or sums[metric] is None
                            else sums[metric] + part)
        merged['tables'] += share['tables']
        merged['projects'] += share['projects']
        merged['stuck'] += share['stuck']
        if share['statuses'] is None or merged['statuses'] is None:
            merged['statuses'] = None
        else:
            for status, count in share['statuses'].items():
                statuses[status] = statuses.get(status, 0) + count
    return merged


def _in_order(by_status):
    """MagnetoDB's statuses first, then any other in name order."""
    if len(by_status) == len(STATUSES):  # the usual case: no other
        return STATUSES
    return STATUSES + tuple(sorted(s for s in by_status
                                   if s not in STATUSES))


def collector_measurements(counts, completed, duration_ms):
    """The collector's own figures about one cycle."""
    measurements = [
        (COLLECTOR['cycle_duration'], NO_LABELS, duration_ms),
        (COLLECTOR['cycles_completed' if completed else 'cycles_failed'],
         NO_LABELS, 1)]
    if counts.rejected:
        measurements.append((COLLECTOR['values_rejected'], NO_LABELS,
                             counts.rejected))
    for name in ('tables', 'pages', 'tables_sent', 'tables_omitted'):
        measurements.append((COLLECTOR[name], NO_LABELS,
                             getattr(counts, name)))
    if counts.projects_failed is not None:
        measurements.append((COLLECTOR['projects_failed'], NO_LABELS,
                             counts.projects_failed))
    if completed:
        measurements.append((COLLECTOR['last_success'], NO_LABELS,
                             int(time.time())))
    return measurements
