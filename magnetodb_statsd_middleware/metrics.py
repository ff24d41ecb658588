"""Where metric names and values come from, and what may reach the wire.

Every name part that comes from the monitoring API (project id, table name)
or from the operator (host name) goes through :func:`safe_name`; every value
through :func:`valid_value`. :class:`MetricSet` turns complete projects into
gauges and keeps the running totals, so this file alone answers "what does
StatsD receive for this listing". Gauges are ``(name, value)`` pairs whose
name lacks ``metric_prefix``: the StatsD client adds it.
"""

import collections
import hashlib
import re

from magnetodb_statsd_middleware import compat

MAX_VALUE = 2 ** 63 - 1

_UNSAFE = re.compile(r'[^A-Za-z0-9_-]')


def safe_name(raw):
    """Make one metric name part safe for any StatsD daemon, injectively.

    Every character outside ``A-Z a-z 0-9 _ -`` becomes ``_``; where that
    changed the name, ``_`` and the first 8 hex digits of the SHA-1 of the
    raw UTF-8 name are appended, so ``a.b`` and ``a_b`` stay apart and a
    name is the same at every cycle. Returns None for a non-string or
    empty name: such a row cannot be named.
    """
    if not isinstance(raw, compat.string_types) or not raw:
        return None
    if _UNSAFE.search(raw) is None:
        return raw
    safe = _UNSAFE.sub('_', raw)
    digest = hashlib.sha1(compat.utf8(raw)).hexdigest()
    return '%s_%s' % (safe, digest[:8])


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


class TableStats(collections.namedtuple(
        'TableStats', 'project name active usage')):
    """One row of a listing: a table's status and raw usage figures.

    ``name`` is as the API sent it (safe_name() decides). A namedtuple: a
    100,000-table cycle builds 100,000 of them.
    """

    __slots__ = ()


class CycleCounts(object):
    """What one cycle saw, for the collector's own metrics and logs."""

    def __init__(self):
        self.tables = 0
        self.projects = 0
        self.pages = 0
        self.rejected = 0


class MetricSet(object):
    """Gauges of one cycle, built project by project.

    A project's sum of a metric is sent only when every ACTIVE table of it
    had a valid value for that metric: a sum with a missing part would be a
    wrong number. Totals follow the same rule, and are produced only by
    :meth:`totals` after the caller knows the listing was complete.
    """

    def __init__(self, metrics):
        self._metrics = tuple(metrics)
        self._totals = collections.OrderedDict.fromkeys(self._metrics, 0)
        self.counts = CycleCounts()

    def project_gauges(self, project, tables):
        """Gauges of one complete project and its tables."""
        self.counts.tables += len(tables)
        self.counts.projects += 1
        safe_project = safe_name(project)
        if safe_project is None:
            self.counts.rejected += 1
            self._mark_incomplete(self._totals, self._metrics)
            return []
        gauges = []
        sums = collections.OrderedDict.fromkeys(self._metrics, 0)
        table_base = 'tables.%s.' % safe_project
        for table in tables:
            if not table.active:
                continue
            safe_table = safe_name(table.name)
            if safe_table is None:
                self.counts.rejected += 1
                self._mark_incomplete(sums, self._metrics)
                continue
            for metric in self._metrics:
                value = table.usage.get(metric)
                # Fast path for the usual JSON integer; the rest is checked.
                if type(value) is not int or not 0 <= value <= MAX_VALUE:
                    value = valid_value(value)
                if value is None:
                    self.counts.rejected += 1
                    self._mark_incomplete(sums, (metric,))
                    continue
                gauges.append(('%s%s.%s' % (table_base, safe_table, metric),
                               value))
                if sums[metric] is not None:
                    sums[metric] += value
        project_base = 'projects.%s.' % safe_project
        for metric, total in sums.items():
            gauges.extend(self._sum_gauge(project_base + metric, total))
            if self._totals[metric] is not None:
                self._totals[metric] = (None if total is None
                                        else self._totals[metric] + total)
        gauges.append((project_base + 'tables', len(tables)))
        return gauges

    def totals(self):
        """Global gauges; call only after a complete listing."""
        gauges = []
        for metric, total in self._totals.items():
            gauges.extend(self._sum_gauge('totals.' + metric, total))
        gauges.append(('totals.tables', self.counts.tables))
        gauges.append(('totals.projects', self.counts.projects))
        return gauges

    def _sum_gauge(self, name, total):
        if total is None:
            return []
        if valid_value(total) is None:
            self.counts.rejected += 1
            return []
        return [(name, total)]

    @staticmethod
    def _mark_incomplete(sums, metrics):
        for metric in metrics:
            sums[metric] = None
