"""Which projects and tables get series of their own: filters and top N.

Every series costs the operator something (a Datadog custom metric, a
Prometheus time series, carbon creates and disk): a cloud of 100,000
tables is 200,000 table series. Filters (regular expressions that must
match a whole raw project id or table name) pick projects and tables;
``top_tables = N`` keeps only the N largest tables of the cloud. Project
sums and totals are not decided here: they always cover every table.

Top N, stable. A table enters when it ranks among the N largest by size,
and leaves only when it falls below rank ``keep`` = N + max(1, ceil(N/5))
(1.2 N for N >= 5), or is no longer listed. Why this rule:

* Without a band, two tables of nearly equal size at rank N swap places
  at every cycle (sizes move with compactions and writes), and each swap
  ends one series and starts another: dashboards show gaps and backends
  bill new series. With the band, a member must lose a fifth of N ranks
  to leave, which takes a real change in size, not noise.
* The cost is bounded: at most ``keep`` tables (1.2 N) are sent, never
  more, whatever the churn.
* A member only has to be ranked among the ``keep`` largest, so one pass
  over the listing with a min-heap of ``keep`` entries ranks the whole
  cloud in O(keep) memory; the first cycle already sends a top N, and
  between cycles only the member names are kept (a few hundred kB for
  N = 1000).

A listing that did not complete (a page or a project failed) ranks what it
saw: tables it saw enter and leave as usual, and members it did not see
stay members (their data is unknown, not gone) but are not sent.
"""

import heapq
import re

from magnetodb_statsd_middleware import metrics

SIZE = metrics.TABLE['size']


def _full_matchers(patterns):
    """Compiled expressions that must match a whole string (2.7's re has
    no fullmatch)."""
    return tuple(re.compile(r'(?:%s)\Z' % pattern) for pattern in patterns)


def _matches(matchers, text):
    for matcher in matchers:
        if matcher.match(text):
            return True
    return False


def keep_rank(top):
    """The rank below which a member of the top ``top`` stays one."""
    return top + max(1, -(-top // 5))


class TableSelector(object):
    """Filters and top-N membership of one collector, kept across cycles."""

    def __init__(self, settings):
        self._include_projects = _full_matchers(settings.include_projects)
        self._exclude_projects = _full_matchers(settings.exclude_projects)
        self._include_tables = _full_matchers(settings.include_tables)
        self._exclude_tables = _full_matchers(settings.exclude_tables)
        self.top = settings.top_tables
        self.keep = keep_rank(self.top) if self.top else 0
        # {project: set of table names}: the tables in the top N now.
        self.members = {}
        # table_wanted, or None when no table filter is set (the hot path
        # then skips the call).
        self.table_filter = None
        if self._include_tables or self._exclude_tables:
            self.table_filter = self.table_wanted

    def project_wanted(self, project):
        """Whether a project gets project and table series of its own."""
        if self._include_projects and not _matches(self._include_projects,
                                                   project):
            return False
        return not _matches(self._exclude_projects, project)

    def table_wanted(self, name):
        """Whether a table passes the table filters."""
        if self._include_tables and not _matches(self._include_tables,
                                                 name):
            return False
        return not _matches(self._exclude_tables, name)

    def ranking(self):
        """A new cycle's :class:`Ranking`, or None without top_tables."""
        return Ranking(self) if self.top else None

    def member_count(self):
        return sum(len(names) for names in self.members.values())


class Ranking(object):
    """One cycle's candidates for the top N, in O(keep) memory.

    :meth:`offer` is called for every table that passed the filters, with
    its measurements; :meth:`choose`, after the listing, updates the
    selector's members and returns the measurements to send.
    """

    def __init__(self, selector):
        self._selector = selector
        self._heap = []  # (size, project, name, measurements): the largest
        self._seen = set()  # (project, name) of the members offered
        self.offered = 0

    def offer(self, project, name, measurements):
        """A candidate table and its measurements.

        A table without a valid size cannot be ranked: it is omitted.
        """
        self.offered += 1
        size = None
        for quantity, _, value in measurements:
            if quantity is SIZE:
                size = value
        if size is None:
            return
        names = self._selector.members.get(project)
        if names is not None and name in names:
            self._seen.add((project, name))
        entry = (size, project, name, measurements)
        heap = self._heap
        if len(heap) < self._selector.keep:
            heapq.heappush(heap, entry)
        elif entry > heap[0]:
            heapq.heapreplace(heap, entry)

    def choose(self, complete):
        """``(chosen, omitted)``: the measurements of each table to send,
        largest first, and how many offered tables are left out.

        Ties in size are broken by project id, then table name, so that the
        ranking is the same at every cycle.
        """
        selector = self._selector
        old = selector.members
        members = {}
        chosen = []
        ranked = sorted(self._heap, reverse=True)
        for rank, (_, project, name, measurements) in enumerate(ranked):
            if rank < selector.top or name in old.get(project, ()):
                members.setdefault(project, set()).add(name)
                chosen.append(measurements)
        if not complete:
            for project, names in old.items():
                for name in names:
                    if (project, name) not in self._seen:
                        members.setdefault(project, set()).add(name)
        selector.members = members
        self._heap = []
        return chosen, self.offered - len(chosen)
