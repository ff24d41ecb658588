"""A walk shared by several hosts: the ranges, and what crosses them.

Each range is walked the way a host walks it (its own
:class:`~.listing.Walk`, the last complete walk's order in its memory)
against the fixture API, which pages like MagnetoDB 2015.1 (see
test_listing.py): across the ranges every table must come exactly once,
and the listing be read once plus at most one page per range edge.
"""

import collections
import random
import signal
import socket
import threading
import time

import pytest

from magnetodb_statsd_middleware import coordination
from magnetodb_statsd_middleware import cycle
from magnetodb_statsd_middleware import listing
from magnetodb_statsd_middleware import metrics
from magnetodb_statsd_middleware import sharing
from magnetodb_statsd_middleware.demo import fakeapi
from tests.support import peers
from tests.test_listing import BIG
from tests.test_listing import Fixture
from tests.test_listing import dataset_with
from tests.test_listing import tables

MEMBERS = ['host-a-1', 'host-b-2', 'host-c-3']


class SharedFixture(Fixture):
    """Walks of the fixture's listing, whole or shared in ranges."""

    def walked(self):
        """``[(project, tables)]`` of a complete walk, in listing order."""
        seen, walk = self.walk()
        assert not walk.unreadable
        counts = collections.Counter(project for project, _ in seen)
        return [(project, counts[project]) for project in self.order
                if counts[project]]

    def walk_ranges(self, walked, members=MEMBERS):
        """Walk each range of ``cut(walked, members)`` as its host would:
        ``(Counter of (project, name), [walk], [listing requests])``."""
        seen = collections.Counter()
        walks, pages = [], []
        self.recorder.reset()
        for _, bounds in sharing.cut(walked, members):
            memory = listing.ListingMemory()
            memory.order = tuple(project for project, _ in walked)
            before = self._listing_requests()
            walks.append(self.walk_into(seen, memory, bounds))
            pages.append(self._listing_requests() - before)
        return seen, walks, pages

    def _listing_requests(self):
        return len([r for r in self.recorder.requests
                    if r[0] == peers.MONITORING_PATH])


def whole_pages(serve, dataset):
    """Listing requests of one walk of ``dataset`` by one host."""
    fixture = SharedFixture(serve, dataset)
    fixture.walk()
    return len([r for r in fixture.recorder.requests
                if r[0] == peers.MONITORING_PATH])


def new_project_between(before, after, avoid=()):
    """A project id listed between ``before`` and ``after`` (None: the
    listing's end)."""
    low = fakeapi.token(before)
    return [p for p in (u'new-%d' % i for i in range(100000))
            if low < fakeapi.token(p) and p not in avoid and (
                after is None or fakeapi.token(p) < fakeapi.token(after))][0]


# Cutting

def test_ranges_hold_about_equal_numbers_of_tables():
    walked = [('p%02d' % i, 10) for i in range(30)]
    ranges = sharing.cut(walked, MEMBERS)
    assert [m for m, _ in ranges] == MEMBERS
    assert [r for _, r in ranges] == [listing.Range(None, 'p09'),
                                      listing.Range('p09', 'p19'),
                                      listing.Range('p19', None)]


def test_a_project_larger_than_a_share_makes_fewer_ranges():
    walked = [('a', 5), ('huge', 1000), ('b', 5)]
    ranges = sharing.cut(walked, MEMBERS)
    assert [r for _, r in ranges] == [listing.Range(None, 'huge'),
                                      listing.Range('huge', None)]


@pytest.mark.parametrize('walked', [[], [('only', 7)]])
def test_without_enough_projects_one_host_walks_it_all(walked):
    assert sharing.cut(walked, MEMBERS) == [
        (MEMBERS[0], listing.Range(None, None))]


# Exactly once across the ranges

@pytest.mark.parametrize('seed', range(4))
def test_every_table_once_and_one_page_more_per_edge(serve, seed):
    rng = random.Random(seed)
    sizes = [rng.choice([1, 2, 3, 5, 8, 13]) for _ in range(25)]
    fixture = SharedFixture(serve, dataset_with(sizes, seed))
    walked = fixture.walked()
    seen, walks, pages = fixture.walk_ranges(walked)
    fixture.assert_read(seen)
    assert not any(walk.unreadable for walk in walks)
    assert sum(pages) <= whole_pages(serve, fixture.dataset) + 2
    tables_per_range = [sum(1 for p, _ in seen if p in ours)
                        for ours in _projects_of(walks, walked)]
    total = sum(tables_per_range)
    assert max(tables_per_range) <= total / 3.0 + max(sizes)


def _projects_of(walks, walked):
    """The projects of each range, from the cut."""
    ranges = [r for _, r in sharing.cut(walked, MEMBERS)]
    order = [p for p, _ in walked]
    found = []
    for bounds in ranges:
        start = 0 if bounds.after is None else order.index(bounds.after) + 1
        end = len(order) if bounds.last is None else (
            order.index(bounds.last) + 1)
        found.append(set(order[start:end]))
    return found


@pytest.mark.parametrize('where', ['last of a range', 'first of a range'])
def test_a_project_too_large_to_page_at_a_range_edge(serve, where):
    sizes = [6] * 12
    fixture = SharedFixture(serve, dataset_with(sizes))
    walked = fixture.walked()
    edge = sharing.cut(walked, MEMBERS)[0][1].last
    at = fixture.order.index(edge) + (0 if where == 'last of a range'
                                      else 1)
    dataset = dict(fixture.dataset)
    dataset[fixture.order[at]] = tables(BIG + 5, 7)
    fixture.reload(dataset)
    seen, walks, pages = fixture.walk_ranges(walked)
    fixture.assert_read(seen)
    assert not any(walk.unreadable for walk in walks)


def test_a_failing_page_inside_a_range(serve):
    fixture = SharedFixture(serve, dataset_with([4] * 15))
    walked = fixture.walked()
    middle = sharing.cut(walked, MEMBERS)[1][1]
    order = fixture.order
    bad = order[order.index(middle.after) + 2]
    fixture.break_table(bad)
    seen, walks, _ = fixture.walk_ranges(walked)
    fixture.assert_read(seen, unreadable={bad})
    assert [w.unreadable for w in walks] == [
        [], [listing.Unreadable.project(bad)], []]


@pytest.mark.parametrize('side', ['before the edge', 'after the edge'])
def test_a_project_created_since_the_last_walk(serve, side):
    fixture = SharedFixture(serve, dataset_with([5] * 12))
    walked = fixture.walked()
    edge = sharing.cut(walked, MEMBERS)[0][1].last
    order = fixture.order
    at = order.index(edge)
    if side == 'before the edge':
        new = new_project_between(order[at - 1], edge)
    else:
        new = new_project_between(edge, order[at + 1])
    dataset = dict(fixture.dataset)
    dataset[new] = tables(3, 11)
    fixture.reload(dataset)
    seen, walks, pages = fixture.walk_ranges(walked)
    fixture.assert_read(seen)
    assert sum(pages) <= whole_pages(serve, dataset) + 2


@pytest.mark.parametrize('neighbours', [
    (), ('before',), ('after',), ('before', 'after')])
def test_a_boundary_project_deleted(serve, neighbours):
    """The first range's last project is gone, and projects may have
    been created on either side of where it was: each is read by the
    range it is listed in, once."""
    fixture = SharedFixture(serve, dataset_with([5] * 12))
    walked = fixture.walked()
    edge = sharing.cut(walked, MEMBERS)[0][1].last
    order = fixture.order
    at = order.index(edge)
    dataset = dict(fixture.dataset)
    del dataset[edge]
    if 'before' in neighbours:
        dataset[new_project_between(order[at - 1], edge)] = tables(3, 12)
    if 'after' in neighbours:
        dataset[new_project_between(edge, order[at + 1])] = tables(4, 13)
    fixture.reload(dataset)
    seen, walks, pages = fixture.walk_ranges(walked)
    fixture.assert_read(seen)
    assert not any(walk.unreadable for walk in walks)
    # The page from its place is asked for only when projects created
    # since wait for it (the second range starts with the same request).
    extra = 1 if neighbours else 0
    from_its_place = [q for path, q, _ in fixture.recorder.requests
                      if 'last_evaluated_project=%s&' % edge in q]
    assert len(from_its_place) == 1 + extra
    assert sum(pages) <= whole_pages(serve, dataset) + 2 + extra


def test_the_last_range_takes_in_projects_listed_after_all_known(serve):
    fixture = SharedFixture(serve, dataset_with([5] * 9))
    walked = fixture.walked()
    dataset = dict(fixture.dataset)
    dataset[new_project_between(fixture.order[-1], None)] = tables(3, 14)
    fixture.reload(dataset)
    seen, _, _ = fixture.walk_ranges(walked)
    fixture.assert_read(seen)


# Totals from every range

def test_totals_merged_from_ranges_equal_one_walk():
    def share(sums, tables, statuses, stuck):
        return {'sums': sums, 'tables': tables, 'projects': 1,
                'statuses': statuses, 'stuck': stuck}
    metric_names = ('size', 'item_count')
    parts = [share({'size': 10, 'item_count': 1}, 2,
                   dict.fromkeys(metrics.STATUSES, 1), 1),
             share({'size': 5, 'item_count': 2}, 3,
                   dict(dict.fromkeys(metrics.STATUSES, 0), active=3), 0)]
    merged = metrics.merged_shares(metric_names, parts)
    assert merged['sums'] == {'size': 15, 'item_count': 3}
    assert (merged['tables'], merged['projects'], merged['stuck']) == (5, 2,
                                                                       1)
    assert merged['statuses']['active'] == 4
    parts[1]['sums']['size'] = None  # a table's size could not be read
    parts[0]['statuses'] = None  # a project read without statuses
    merged = metrics.merged_shares(metric_names, parts)
    assert merged['sums'] == {'size': None, 'item_count': 3}
    assert merged['statuses'] is None


def _report(index, of=3, complete=True, cycle=7):
    share = {'sums': {'size': 100 * (index + 1), 'item_count': index},
             'tables': 10, 'projects': 2,
             'statuses': dict(dict.fromkeys(metrics.STATUSES, 0),
                              active=10), 'stuck': 0}
    counts = dict.fromkeys(sharing.COUNTED, 1)
    counts['projects_failed'] = 0 if complete else 1
    return sharing.Report(cycle, index, of, complete, [['p%d' % index, 10]],
                          share, counts, 100.0 * (index + 1))


def _named(measurements):
    return dict(((quantity.name,) + tuple(labels), value)
                for quantity, labels, value in measurements)


def test_the_cluster_cycle_sums_every_range():
    settings = peers.make_settings()
    result = sharing.cluster_cycle(settings, [_report(i) for i in range(3)],
                                   3)
    assert result.problem == ''
    sent = _named(result.measurements)
    assert sent[(metrics.TOTAL['size'].name,)] == 600
    assert sent[(metrics.TOTAL['tables'].name,)] == 30
    assert sent[(metrics.COLLECTOR['projects_failed'].name,)] == 0
    assert sent[(metrics.COLLECTOR['pages'].name,)] == 3
    assert sent[(metrics.COLLECTOR['cycle_duration'].name,)] == 300.0
    assert (metrics.COLLECTOR['cycles_completed'].name,) in sent


@pytest.mark.parametrize('reports, problem', [
    ([_report(0), _report(1)], '1 of the 3 ranges of the last cycle were '
     'not reported'),
    ([_report(0), _report(1, complete=False), _report(2)],
     '1 of the 3 ranges of the last cycle could not be read whole'),
])
def test_totals_are_withheld_when_a_range_is_missing_or_failed(reports,
                                                               problem):
    result = sharing.cluster_cycle(peers.make_settings(), reports, 3)
    assert result.problem.startswith(problem)
    sent = _named(result.measurements)
    assert not [name for name in sent
                if name[0] == metrics.TOTAL['tables'].name]
    assert (metrics.COLLECTOR['cycles_failed'].name,) in sent
    if len(reports) < 3:  # what the cycle saw is not the cluster's
        assert sorted(sent) == sorted([
            (metrics.COLLECTOR['cycle_duration'].name,),
            (metrics.COLLECTOR['cycles_failed'].name,)])
    else:
        assert sent[(metrics.COLLECTOR['projects_failed'].name,)] == 1
        assert sent[(metrics.COLLECTOR['tables'].name,)] == 3


def test_a_cycle_nobody_reported_is_failed_not_zero():
    result = sharing.cluster_cycle(peers.make_settings(), [], 3)
    assert result.problem.startswith('3 of the 3 ranges')
    sent = _named(result.measurements)
    assert list(sent) == [(metrics.COLLECTOR['cycles_failed'].name,)]
    assert sharing.cluster_cycle(peers.make_settings(), [], None) == (
        sharing.ClusterCycle([], ''))


def test_documents_round_trip_and_foreign_ones_are_ignored():
    plan = sharing.Plan(5, [('a', listing.Range(None, 'p1')),
                            ('b', listing.Range('p1', None))],
                        [('p1', 3), ('p2', 4)])
    assert sharing.Plan.from_document(
        sharing.decode(sharing.encode(plan.document()))) == plan
    report = _report(1)
    assert sharing.Report.from_document(
        sharing.decode(sharing.encode(report.document()))) == report
    for blob in (b'', b'not ours', sharing.encode([1, 2]),
                 sharing.encode({'format': 99})):
        assert sharing.decode(blob) is None


# Three hosts sharing the walk: real servers, redis, Etsy statsd

FIXTURE = dict(projects=30, tables=20, big=(300,), seed=3)
FIXTURE_OPTIONS = 'projects = 30\ntables = 20\nbig = 300\nseed = 3'
INTERVAL = 3  # a plan is waited for 1.5 s: room for a loaded machine
LOCK_TIMEOUT = 2


@pytest.fixture
def hosts(api_server, tmp_path, backend, statsd_daemon, prefix):
    """``hosts(names)`` -> {name: APIServer}, each its own host, all
    sharing the walk through ``backend``; their listing requests go to one
    request log."""
    request_log = str(tmp_path / 'requests.log')

    def start(names, timeout=LOCK_TIMEOUT):
        url = backend.url(timeout)
        started = {}
        for name in names:
            conf = peers.statsd_section(**peers.statsd_options(
                statsd_daemon.port, prefix, interval=INTERVAL,
                initial_delay=0, healthcheck_url='$health',
                lock_path=tmp_path / ('%s.lock' % name),
                coordination_url=url, share_walk='true', host_name=name,
                request_timeout=2))
            started[name] = api_server(
                conf, port=peers.free_port(),
                fixture_options=FIXTURE_OPTIONS + '\nrequest_log = '
                + request_log)
        for api in started.values():
            api.wait_ready()
        return started
    start.request_log = request_log
    start.url = backend.url
    return start


def _walkers(request_log, since):
    """The pids that read the listing since ``since``."""
    return set(pid for _, pid in peers.polls(request_log, since))


def _member(api):
    """A host's name in the shared walk: its machine and pid."""
    return '%s-%d' % (socket.gethostname(), api.process.pid)


class PlanWatch(object):
    """Reads the backend as the hosts do, every 0.2 s: ``plans``
    ``{cycle: set of the members given a range}`` and ``alive``
    ``{member: the last cycle it said it was in}``. A cycle is a slot of
    the wall clock, and each document names its own: what happened in
    which cycle is read, never guessed from the time it was seen."""

    def __init__(self, url, prefix):
        self.plans = {}
        self.alive = {}
        self._cluster = coordination.ClusterLock(url, 'plan-watch', 2)
        walk = sharing.SharedWalk(peers.make_settings(
            metric_prefix=prefix, interval=INTERVAL), self._cluster)
        self._groups = (walk.members_group, walk.plan_group)
        self._stop = threading.Event()
        self._thread = peers.start_thread(self._run)

    def _run(self):
        while not self._stop.wait(0.2):
            try:
                members, plans = [self._cluster.documents(group, 2)
                                  for group in self._groups]
            except coordination.CoordinationError:
                continue  # read again at the next turn
            for member, blob in members.items():
                alive = (sharing.decode(blob) or {}).get('alive')
                if alive is not None:
                    self.alive[member] = max(alive,
                                             self.alive.get(member, alive))
            for blob in plans.values():
                plan = sharing.Plan.from_document(sharing.decode(blob))
                if plan is not None:
                    self.plans[plan.cycle] = set(m for m, _ in plan.ranges)

    def plans_from(self, first):
        """``{cycle: members}`` of the plans of ``first`` and later, once
        one of them has been read."""
        peers.wait_for(lambda: max(self.plans or [0]) >= first,
                       timeout=4 * INTERVAL + peers.SCHEDULING_SLACK,
                       message='the plan of cycle %d' % first)
        return dict((number, members)
                    for number, members in self.plans.items()
                    if number >= first)

    def stop(self):
        self._stop.set()
        self._thread.join(10)
        self._cluster.release(2)


def test_three_hosts_share_every_cycle(hosts, statsd_daemon, prefix):
    expected = peers.expected_gauges(fakeapi.build_dataset(**FIXTURE),
                                     prefix)
    started = hosts(['host-a', 'host-b', 'host-c'])
    statsd_daemon.wait_for_gauges(prefix, expected)
    since = time.time()
    peers.wait_for(lambda: len(_walkers(hosts.request_log, since)) == 3,
                   timeout=4 * INTERVAL + peers.SCHEDULING_SLACK,
                   message='three hosts walking')
    statsd_daemon.delete_gauges(prefix + '.')
    statsd_daemon.wait_for_gauges(prefix, expected)
    collector = prefix + '.collector.'

    def cluster_figures():
        gauges = statsd_daemon.gauges(collector)
        return (gauges.get(collector + 'tables'),
                gauges.get(collector + 'projects_failed'))
    # A cycle that missed a range (a host slow on a loaded machine) sends
    # no count: the last complete one stays.
    peers.wait_for(lambda: cluster_figures() == (30 * 20 + 300, 0),
                   timeout=4 * INTERVAL + peers.SCHEDULING_SLACK,
                   message='the cluster figures of a complete cycle')
    for api in started.values():
        assert 'Traceback' not in api.log


def _back_after(daemon, prefix, expected, event):
    """Seconds from ``event`` until every table and project gauge has
    arrived again (they were deleted at ``event``); then the totals."""
    back = peers.ranges_back(daemon, prefix, expected, event)
    daemon.wait_for_gauges(prefix, expected)
    return back


def _join_and_stop(hosts, started, watch, daemon, prefix, expected,
                   timeout):
    """A host joins, then one stops cleanly: each changes the ranges
    within two cycles (README), counted by the cycles the hosts' own
    documents name."""
    # A host that joins is in the plan of the next cycle that starts
    # after it said it was in (by then the watch has read it), and in
    # every later one.
    started.update(hosts(['host-c'], timeout))
    joining = _member(started['host-c'])
    joined = peers.wait_for(lambda: watch.alive.get(joining),
                            message='the new host saying it is in')
    joined = max(joined, sharing.cycle_number(INTERVAL))
    plans = watch.plans_from(joined + 1)
    assert all(joining in members for members in plans.values()), (
        joined, plans)
    back = _back_after(daemon, prefix, expected, time.time())
    print('a host that joined in cycle %d walked from cycle %d; every '
          'gauge again %.2fs later' % (joined, min(plans), back))

    # A clean stop: from the second cycle after the last one the host
    # was in, the others read its range.
    planner = peers.shared_walk_planner(started)
    leaving = [n for n in sorted(started) if n != planner][0]
    member = _member(started[leaving])
    started[leaving].process.send_signal(signal.SIGINT)
    stopped = time.time()
    peers.wait_exit(started.pop(leaving).process, 30)
    last = max(watch.alive.get(member, 0),
               sharing.cycle_number(INTERVAL, stopped))
    back = _back_after(daemon, prefix, expected, stopped)
    plans = watch.plans_from(last + 2)
    assert not [number for number, members in plans.items()
                if member in members], (last, plans)
    print('a host stopped cleanly in cycle %d: left out from cycle %d '
          '(plans %s); every gauge again %.2fs after the stop'
          % (last, min(number for number, members in watch.plans.items()
                       if number > last and member not in members),
             sorted((number - last, len(members))
                    for number, members in watch.plans.items()
                    if number > last), back))


def test_hosts_join_stop_and_die(hosts, statsd_daemon, prefix):
    # A coordination timeout longer than two cycles: a stopped host's
    # range must move because it left or missed a cycle, not because its
    # membership expired.
    timeout = 3 * INTERVAL + 2 * peers.SCHEDULING_SLACK
    expected = peers.expected_gauges(fakeapi.build_dataset(**FIXTURE),
                                     prefix)
    started = hosts(['host-a', 'host-b'], timeout)
    statsd_daemon.wait_for_gauges(prefix, expected)
    watch = PlanWatch(hosts.url(timeout), prefix)
    try:
        _join_and_stop(hosts, started, watch, statsd_daemon, prefix,
                       expected, timeout)
    finally:
        watch.stop()

    # A SIGKILL of the planner: the other takes the lock when it expires,
    # and plans from the last plan's order.
    planner = peers.shared_walk_planner(started)
    survivor = [n for n in started if n != planner][0]
    started[planner].process.kill()
    killed = time.time()
    back = _back_after(statsd_daemon, prefix, expected, killed)
    print('range of a SIGKILLed planner read again after %.2fs' % back)
    assert back <= timeout + 2 * INTERVAL + peers.SCHEDULING_SLACK, back
    since = time.time()
    peers.wait_for(lambda: _walkers(hosts.request_log, since),
                   message='a walk after the takeover')
    assert _walkers(hosts.request_log, since) == set(
        [started[survivor].process.pid])
    assert 'Traceback' not in started[survivor].log


# The planner and the members, against an in-memory backend

class FakeBackend(object):
    """Groups of tooz as a dict: ``{group: {member: capabilities}}``."""

    def __init__(self):
        self.groups = collections.defaultdict(dict)


class FakeCluster(object):
    """The :class:`~.coordination.ClusterLock` calls a SharedWalk makes."""

    def __init__(self, backend, member):
        self.backend = backend
        self.member = member

    def publish(self, group, document, timeout):
        self.backend.groups[group][self.member] = document

    def documents(self, group, timeout):
        return dict(self.backend.groups[group])

    def leave(self, group, timeout):
        self.backend.groups[group].pop(self.member, None)


def _walk_result(walked, complete=True):
    result = cycle.CycleResult(complete, metrics.CycleCounts())
    result.walked = walked
    result.share = {'sums': {'size': 1, 'item_count': 1},
                    'tables': sum(n for _, n in walked),
                    'projects': len(walked), 'statuses': None, 'stuck': 0}
    result.counts.projects_failed = 0
    return result


WALKED = [('p%02d' % i, 10) for i in range(30)]


def _members(names):
    backend = FakeBackend()
    settings = peers.make_settings(interval=10, share_walk=True)
    return dict((name, sharing.SharedWalk(settings,
                                          FakeCluster(backend, name)))
                for name in names)


def _cycle_of(walks, number, planner, walking=None):
    """One cycle: every member in ``walking`` (default: all) says it is
    in, the planner plans, each walks its range of ``WALKED``; returns
    the planner's ClusterCycle of the cycle before, and the plan."""
    walking = list(walks) if walking is None else walking
    for name in walking:
        walks[name].join(number)
    last, plan = walks[planner].plan(number)
    order = [p for p, _ in WALKED]
    for name in walking:
        part = plan.range_of(name)
        if part is None:
            continue
        index, bounds = part
        start = 0 if bounds.after is None else order.index(bounds.after) + 1
        end = len(order) if bounds.last is None else (
            order.index(bounds.last) + 1)
        walks[name].report(plan, index, _walk_result(WALKED[start:end]))
    return last, plan


def test_the_first_cycle_is_walked_by_the_planner_alone_then_shared():
    walks = _members(['a', 'b', 'c'])
    last, plan = _cycle_of(walks, 100, 'a')
    assert [m for m, _ in plan.ranges] == ['a']
    assert last == sharing.ClusterCycle([], '')
    last, plan = _cycle_of(walks, 101, 'a')
    assert [m for m, _ in plan.ranges] == ['a', 'b', 'c']
    assert last.problem == ''
    sent = _named(last.measurements)
    assert sent[(metrics.TOTAL['tables'].name,)] == 300
    last, plan = _cycle_of(walks, 102, 'a')
    assert last.problem == ''
    assert _named(last.measurements)[(metrics.TOTAL['tables'].name,)] == 300


def test_a_retry_within_the_cycle_sends_nothing_twice():
    walks = _members(['a', 'b'])
    _cycle_of(walks, 100, 'a')
    _cycle_of(walks, 101, 'a')
    last, plan = walks['a'].plan(101)
    assert last.measurements == [] and plan.cycle == 101


def test_a_member_that_missed_a_cycle_is_left_out_of_the_next_plan():
    walks = _members(['a', 'b', 'c'])
    _cycle_of(walks, 100, 'a')
    _cycle_of(walks, 101, 'a')
    # 'c' stops: it says nothing in cycle 102, whose plan still has it.
    last, plan = _cycle_of(walks, 102, 'a', walking=['a', 'b'])
    assert [m for m, _ in plan.ranges] == ['a', 'b', 'c']
    last, plan = _cycle_of(walks, 103, 'a', walking=['a', 'b'])
    assert last.problem.startswith('1 of the 3 ranges')
    assert [m for m, _ in plan.ranges] == ['a', 'b']
    last, plan = _cycle_of(walks, 104, 'a', walking=['a', 'b'])
    assert last.problem == ''
    assert _named(last.measurements)[(metrics.TOTAL['tables'].name,)] == 300


def test_a_new_planner_plans_from_the_last_plan_it_saw():
    walks = _members(['a', 'b', 'c'])
    _cycle_of(walks, 100, 'a')
    for name in walks:
        assert walks[name].wait_for_plan(100, threading.Event()) or (
            name == 'a')
    _cycle_of(walks, 101, 'a')
    for name in 'bc':
        walks[name].wait_for_plan(101, threading.Event())
    # 'a' dies; 'b' takes the cluster lock two cycles later.
    walks['a']._cluster.leave(walks['a'].members_group, 1)
    walks['a']._cluster.leave(walks['a'].plan_group, 1)
    last, plan = _cycle_of(walks, 103, 'b', walking=['b', 'c'])
    assert [m for m, _ in plan.ranges] == ['b', 'c']
    assert last.measurements == []  # nothing reported of cycle 102


def _waiting_for_plan(walk, number, stopping):
    """``wait_for_plan`` in a thread: a list that gets its answer."""
    answer = []
    peers.start_thread(lambda: answer.append(
        walk.wait_for_plan(number, stopping)))
    return answer


def test_a_member_waits_for_its_plan_no_longer_than_the_budget(monkeypatch):
    # A budget (half the 10 s interval) longer than the suite's slack: a
    # member that waited it out anyway would be seen waiting.
    interval = 10
    assert sharing.plan_wait(interval) > peers.SCHEDULING_SLACK
    walks = _members(['a', 'b'])
    number = sharing.cycle_number(interval)
    monkeypatch.setattr(sharing, 'PLAN_POLL', 0.01)
    # A cycle that started long ago: its budget is over, no wait.
    stopping = threading.Event()
    try:
        answer = _waiting_for_plan(walks['b'], number - 5, stopping)
        peers.wait_for(lambda: answer, timeout=peers.SCHEDULING_SLACK,
                       message='the answer of a cycle whose budget is over')
        assert answer == [None]
    finally:
        stopping.set()  # a member that waits gives up
    # A cycle to come, but the collector stops: no wait either.
    answer = _waiting_for_plan(walks['b'], number + 5, stopping)
    peers.wait_for(lambda: answer, timeout=peers.SCHEDULING_SLACK,
                   message='the answer of a stopping member')
    assert answer == [None]
