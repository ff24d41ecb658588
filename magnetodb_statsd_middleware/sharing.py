"""The walk shared by the API hosts (``share_walk``): plans and reports.

MagnetoDB's listing costs the API process that serves it about 0.7 ms of
CPU per table (CPython 2.7), in pages that hold its hub: one host walking
a large cloud's listing every interval is saturated long before the
collector is. With ``share_walk`` the hosts that hold their host lock
share each cycle's walk through the coordination backend, in two tooz
groups:

* the *members* group, which every sharing process joins; its
  capabilities say which cycle the member last took part in, with its
  :class:`Report` of the last range it walked;
* the *plan* group, which only the holder of the cluster lock (the
  planner) joins; its capabilities are the :class:`Plan` of the cycle.

Cycles are wall-clock slots: cycle ``k`` starts at ``k * interval`` on
every host. At its start the planner reads the reports of cycle ``k-1``,
sends the cluster's totals and ``collector.*`` figures of that cycle (or
withholds the totals when a range failed or is missing), and publishes
the plan of cycle ``k``: the live members, and one contiguous range of
the listing each, cut from the order of the last complete walk into about
equal numbers of tables. Each member waits at most :data:`PLAN_WAIT`
seconds for that plan, walks its range through its own ``monitoring_url``
(:class:`~.listing.Walk` with a :class:`~.listing.Range`), sends its
range's table and project gauges, and publishes its report. Ranges never
overlap, so a table is sent at most once per cycle. A member that did not
take part in the cycle before (it stopped or died, or was still walking)
is left out of the plan, whether or not the backend has noticed yet: a
clean stop cannot always leave a group, since tooz may no longer run its
executor at the process's exit. With no order known (the very first
cycle) the planner walks alone, and that walk sets the order.
"""

import collections
import json
import time
import zlib

from magnetodb_statsd_middleware import listing
from magnetodb_statsd_middleware import metrics

# The longest a member waits for its cycle's plan, after the start of the
# cycle; past it, its range is left out of that cycle. Hosts' clocks are
# assumed in sync to well within it (NTP).
PLAN_WAIT = 5.0

# How often a member asks for the plan while it waits.
PLAN_POLL = 0.2

# The version of the documents exchanged; others are ignored.
FORMAT = 1

# The collector figures a report carries from each range.
COUNTED = ('tables', 'projects', 'pages', 'rejected', 'tables_sent',
           'tables_omitted', 'projects_failed')


def cycle_number(interval, now=None):
    """The wall-clock slot that ``now`` falls in."""
    return int((time.time() if now is None else now) // interval)


def until_next_cycle(interval, now=None):
    """Seconds from ``now`` to the start of the next slot."""
    now = time.time() if now is None else now
    return (cycle_number(interval, now) + 1) * interval - now


def plan_wait(interval):
    """How long after a cycle's start a member waits for its plan."""
    return min(PLAN_WAIT, interval / 2.0)


def encode(document):
    """A document as tooz capabilities: compressed JSON bytes."""
    return zlib.compress(json.dumps(document, separators=(',', ':'))
                         .encode('utf-8'))


def decode(blob):
    """The document in capabilities, or None when it is none of ours."""
    try:
        document = json.loads(zlib.decompress(blob).decode('utf-8'))
    except (TypeError, ValueError, zlib.error):
        return None
    if not isinstance(document, dict) or document.get('format') != FORMAT:
        return None
    return document


def cut(walked, members):
    """Ranges of the listing, one per member at most, with about equal
    numbers of tables: ``[(member, Range)]``.

    ``walked`` is the last complete walk, ``[(project, tables)]`` in
    listing order. A range ends with a project, so one project larger
    than a share makes fewer ranges than members; the last range runs to
    the listing's end, which takes in the projects created after it.
    """
    members = sorted(members)
    total = sum(count for _, count in walked)
    edges = []
    if total and len(members) > 1:
        share = float(total) / len(members)
        passed = 0
        for index, (project, count) in enumerate(walked[:-1]):
            passed += count
            if passed >= share * (len(edges) + 1):
                edges.append(project)
                if len(edges) == len(members) - 1:
                    break
    bounds = [None] + edges
    return [(members[i], listing.Range(bounds[i], (edges + [None])[i]))
            for i in range(len(bounds))]


class Plan(collections.namedtuple('Plan', 'cycle ranges order')):
    """Who walks what in one cycle: ``ranges`` is ``[(member, Range)]`` in
    listing order; ``order`` the ``[(project, tables)]`` it was cut from,
    which the walkers need to know where their range ends."""

    __slots__ = ()

    def range_of(self, member):
        """``(index, Range)`` of ``member``'s range, or None."""
        for index, (owner, bounds) in enumerate(self.ranges):
            if owner == member:
                return index, bounds
        return None

    def document(self):
        return {'format': FORMAT, 'plan': {
            'cycle': self.cycle,
            'ranges': [[m, r.after, r.last] for m, r in self.ranges],
            'order': [list(pair) for pair in self.order]}}

    @classmethod
    def from_document(cls, document):
        plan = (document or {}).get('plan')
        if not plan:
            return None
        return cls(plan['cycle'],
                   [(m, listing.Range(a, z)) for m, a, z in plan['ranges']],
                   [tuple(pair) for pair in plan['order']])


class Report(collections.namedtuple(
        'Report', 'cycle index of complete walked share counts '
        'duration_ms')):
    """What one member's walk of its range gave."""

    __slots__ = ()

    def document(self):
        return {'format': FORMAT, 'report': dict(self._asdict())}

    @classmethod
    def from_document(cls, document):
        report = (document or {}).get('report')
        if not report:
            return None
        return cls(**report)


class ClusterCycle(collections.namedtuple(
        'ClusterCycle', 'measurements problem')):
    """The cluster's figures of one cycle, from all its reports: what to
    send, and why the totals were withheld ('' when they were not)."""

    __slots__ = ()


def cluster_cycle(settings, reports, ranges):
    """Totals and ``collector.*`` figures of a cycle from its
    ``reports``; ``ranges``: how many the plan had (None when the plan was
    another planner's: the reports say)."""
    if ranges is None:
        if not reports:
            return ClusterCycle([], '')  # no plan known, nothing to say
        ranges = max(report.of for report in reports)
    missing = ranges - len(set(report.index for report in reports))
    if missing:
        # What the cycle saw is not the cluster's: no count is sent.
        measurements = [(metrics.COLLECTOR['cycles_failed'],
                         metrics.NO_LABELS, 1)]
        if reports:
            measurements.append((metrics.COLLECTOR['cycle_duration'],
                                 metrics.NO_LABELS,
                                 max(r.duration_ms for r in reports)))
        return ClusterCycle(measurements, (
            '%d of the %d ranges of the last cycle were not reported (a '
            'host died or stopped, or its walk outlasted the interval)'
            % (missing, ranges)))
    failed = len([r for r in reports if not r.complete])
    counts = metrics.CycleCounts()
    for name in COUNTED:
        values = [r.counts.get(name) for r in reports]
        setattr(counts, name, None if None in values else sum(values))
    problem = ''
    if failed:
        problem = ('%d of the %d ranges of the last cycle could not be '
                   'read whole (their hosts log why)' % (failed, ranges))
    measurements = []
    if not problem:
        share = metrics.merged_shares(settings.metrics,
                                      [r.share for r in reports])
        measurements, rejected = metrics.total_measurements(
            settings.metrics, share)
        counts.rejected += rejected
    measurements.extend(metrics.collector_measurements(
        counts, not problem, max(r.duration_ms for r in reports)))
    return ClusterCycle(measurements, problem)


class SharedWalk(object):
    """This process's part in the shared walk, kept between cycles."""

    def __init__(self, settings, cluster):
        self._settings = settings
        self._cluster = cluster
        self.members_group = 'magnetodb-statsd-%s' % settings.metric_prefix
        self.plan_group = self.members_group + '-plan'
        self._plan = None  # the last plan seen or made
        self._walked = None  # the last complete walk, if planned here
        self._planned = None  # the plan made here for the last cycle
        self._report = None  # this member's last report
        self.last_cycle = None  # the last cycle this member walked in
        self._alive = None  # the last cycle this member said it was in

    @property
    def member(self):
        return self._cluster.member

    def _timeout(self):
        return self._settings.request_timeout

    def join(self, number):
        """Be a member in cycle ``number``: publish that, with this
        member's last report."""
        self._alive = number
        document = (self._report.document() if self._report is not None
                    else {'format': FORMAT})
        document['alive'] = number
        self._cluster.publish(self.members_group, encode(document),
                              self._timeout())

    def plan(self, number):
        """As the planner at the start of cycle ``number``: ``(the
        ClusterCycle of the cycle before, the Plan published)``. Raises
        CoordinationError."""
        planned = self._planned
        if planned is not None and planned.cycle == number:
            # Planned already (a retry within the cycle): said and sent.
            return ClusterCycle([], ''), planned
        documents = self._cluster.documents(self.members_group,
                                            self._timeout())
        reports = {}
        members = set([self.member])
        for member, blob in documents.items():
            document = decode(blob)
            if (document or {}).get('alive', -1) >= number - 1:
                members.add(member)
            report = Report.from_document(document)
            if report is not None and report.cycle == number - 1:
                reports[report.index] = report
        ranges = (len(planned.ranges)
                  if planned is not None and planned.cycle == number - 1
                  else None)
        result = cluster_cycle(self._settings, list(reports.values()),
                               ranges)
        if reports and not result.problem:
            walked = []
            for index in sorted(reports):
                walked.extend(tuple(pair) for pair in reports[index].walked)
            self._walked = walked
        elif self._walked is None and self._plan is not None:
            self._walked = self._plan.order  # another planner's
        if not self._walked:
            plan = Plan(number, [(self.member, listing.Range(None, None))],
                        [])
        else:
            plan = Plan(number, cut(self._walked, members), self._walked)
        self._cluster.publish(self.plan_group, encode(plan.document()),
                              self._timeout())
        self._planned = self._plan = plan
        return result, plan

    def stand_down(self):
        """No longer the planner: leave the plan group."""
        self._planned = None
        self._walked = None
        self._cluster.leave(self.plan_group, self._timeout())

    def wait_for_plan(self, number, stopping):
        """The plan of cycle ``number`` (or a later one), or None when
        none came within :data:`PLAN_WAIT` of the cycle's start or
        ``stopping`` (an Event) is set. Raises CoordinationError."""
        deadline = (number * self._settings.interval
                    + plan_wait(self._settings.interval))
        while True:
            plan = self._newest_plan()
            if plan is not None and plan.cycle >= number:
                self._plan = plan
                return plan
            wait = min(PLAN_POLL, deadline - time.time())
            if wait <= 0 or stopping.wait(wait):
                return None

    def _newest_plan(self):
        newest = None
        documents = self._cluster.documents(self.plan_group,
                                            self._timeout())
        for blob in documents.values():
            plan = Plan.from_document(decode(blob))
            if plan is not None and (newest is None
                                     or plan.cycle > newest.cycle):
                newest = plan
        return newest

    def report(self, plan, index, result):
        """Publish what this member's walk of its range gave."""
        self.last_cycle = plan.cycle
        self._report = Report(
            plan.cycle, index, len(plan.ranges), result.completed,
            [list(pair) for pair in result.walked], result.share,
            dict((name, getattr(result.counts, name)) for name in COUNTED),
            result.duration_ms)
        self.join(self._alive)

