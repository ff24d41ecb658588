"""The listing walk against the fixture's real-data failures, over HTTP.

The fixture fails like MagnetoDB 2015.1: ``last_evaluated_project=P``
alone for a project of more than ``paged_rows`` tables, every page and
project resource that holds an unreadable ACTIVE table. Small pages
(10 rows) and a small ``paged_rows`` (20) keep the layouts readable.
"""

import collections
import json
import random

import pytest

from magnetodb_statsd_middleware import listing
from magnetodb_statsd_middleware import monitoring
from magnetodb_statsd_middleware.demo import fakeapi
from tests.support import paging
from tests.support import peers

PAGE = 10
PAGED_ROWS = 20
BIG = 25  # tables of a project the listing cannot page through


class Fixture(object):
    """A dataset served by the fake API, and walks against it."""

    def __init__(self, serve, dataset, paged_rows=PAGED_ROWS):
        self.dataset = dataset
        self.app = fakeapi.FakeMonitoringAPI(dataset, default_limit=PAGE,
                                             paged_rows=paged_rows)
        self.recorder = peers.Recorder(self.app)
        self.server = serve(self.recorder)
        self.memory = listing.ListingMemory()

    @property
    def order(self):
        """Project ids in the server's listing order."""
        return sorted(self.dataset, key=fakeapi.token)

    def walk(self, memory=True):
        """``(Counter of (project, name), walk)``; the requests it made
        are in ``self.recorder``."""
        self.recorder.reset()
        seen = collections.Counter()
        walk = self.walk_into(seen, self.memory if memory else None)
        return seen, walk

    def walk_into(self, seen, memory, bounds=None):
        """One walk (of the :class:`~.listing.Range` ``bounds`` only, if
        given) that counts each ``(project, name)`` it yields in
        ``seen``; returns the Walk."""
        client = monitoring.MonitoringClient(peers.make_settings(
            monitoring_url=self.server.url, page_size=PAGE,
            request_timeout=5))
        walk = listing.Walk(client, memory, bounds)
        try:
            for project, tables, _ in walk.projects():
                for table in tables:
                    seen[(project, table.name)] += 1
        finally:
            client.close()
        return walk

    def break_table(self, project):
        """Make one ACTIVE table of ``project`` unreadable."""
        table = [t for t in self.dataset[project] if t.status == 'ACTIVE'][0]
        table.unreadable = True
        return table

    def reload(self, dataset):
        self.dataset = dataset
        self.app.load(dataset)

    def assert_read(self, seen, unreadable=()):
        """Every project but ``unreadable`` came exactly once, whole: all
        its tables from the listing, its ACTIVE ones from its resource."""
        assert max(list(seen.values()) + [1]) == 1
        by_resource = set(self.recorder.resources())
        for project, tables in self.dataset.items():
            got = {name for p, name in seen if p == project}
            if project in unreadable:
                assert not got, project
                continue
            expected = {t.name for t in tables
                        if project not in by_resource
                        or t.status == 'ACTIVE'}
            assert got == expected, project
        assert {p for p, _ in seen} <= set(self.dataset)


def tables(count, seed):
    """``count`` tables, a few of them not ACTIVE."""
    return list(fakeapi.build_dataset(projects=1, tables=count,
                                      seed=seed).values())[0]


def dataset_with(sizes, seed=0):
    """Projects of the given sizes, in listing order."""
    dataset = fakeapi.build_dataset(projects=len(sizes), tables=1,
                                    seed=seed)
    order = sorted(dataset, key=fakeapi.token)
    for index, (project, size) in enumerate(zip(order, sizes)):
        dataset[project] = tables(size, seed * 1000 + index)
    return dataset


def healthy_requests(sizes):
    """Requests of a walk of the same layout where nothing fails, as
    MagnetoDB's paging makes them (small pages: the first and the later
    ones hold PAGE rows)."""
    return paging.listing_requests(sizes, PAGE, PAGE)


# Where nothing fails

@pytest.mark.parametrize('sizes, requests', [
    ([3, 4], 1),  # one short page
    ([4, 6], 2),  # a full page: its last project is asked for again
    ([PAGE, 3], 3),  # a project that fills the first page on its own
    ([2, PAGE + 5, 1], 3),  # one longer than a page, stepped past
    # Pages: 7+3, 3+7, 12, 5+5, 9+1, 4+6, 11, 6.
    ([7, 3, 12, 5, 9, 4, 11, 6], 8),
])
def test_a_healthy_walk_sends_what_magnetodb_paging_needs(serve, sizes,
                                                          requests):
    # Not one request more or fewer than the paging needs.
    assert healthy_requests(sizes) == requests
    fixture = Fixture(serve, dataset_with(sizes))
    seen, walk = fixture.walk()
    fixture.assert_read(seen)
    assert not fixture.recorder.failed()
    assert len(fixture.recorder.requests) == requests


# Projects the listing cannot page through

@pytest.mark.parametrize('sizes', [
    [BIG, 7, 3, 12, 5, 9],  # first
    [7, 3, 12, BIG, 5, 9],  # in the middle
    [7, 3, 12, 5, 9, BIG],  # last
    [7, BIG, BIG + 10, 3, 5],  # two in a row
    [BIG],  # alone
])
def test_a_project_too_large_to_page_is_read_whole(serve, sizes):
    fixture = Fixture(serve, dataset_with(sizes))
    seen, walk = fixture.walk()
    big = {p for p in fixture.dataset if len(fixture.dataset[p]) > PAGED_ROWS}
    assert set(fixture.recorder.resources()) == big
    fixture.assert_read(seen)
    assert walk.unreadable == []
    # One failed page more than a healthy walk for each such project, and
    # the step past it names a table that does not exist.
    assert len(fixture.recorder.failed()) == len(big)
    healthy = healthy_requests(sizes)
    assert len(fixture.recorder.requests) == healthy + len(big)
    steps = [q for _, q, _ in fixture.recorder.requests
             if 'last_evaluated_table=statsd%3Astep-past' in q]
    assert len(steps) >= len(big)
    assert fixture.memory.order == tuple(fixture.order)
    assert fixture.memory.too_large == dict.fromkeys(
        big, listing.RETRY_PAGE_AFTER)
    # The next walk knows: it does not send the requests that fail.
    seen, walk = fixture.walk()
    fixture.assert_read(seen)
    assert set(fixture.recorder.resources()) == big
    assert not fixture.recorder.failed()
    assert len(fixture.recorder.requests) == healthy


def test_the_page_of_a_large_project_is_tried_again(serve, monkeypatch):
    # Its page failed and nothing says it always will (it has no more
    # than PAGED_ROWS ACTIVE tables): it is tried again after
    # RETRY_PAGE_AFTER walks, and listed with every status once it works.
    monkeypatch.setattr(listing, 'RETRY_PAGE_AFTER', 2)
    fixture = Fixture(serve, dataset_with([7, BIG, 12]))
    big = fixture.order[1]
    for left in (2, 1, None):
        seen, walk = fixture.walk()
        fixture.assert_read(seen)
        assert fixture.recorder.resources() == [big]
        assert fixture.memory.too_large.get(big) == left
    del fixture.dataset[big][PAGED_ROWS - 5:]  # 15 tables now
    fixture.reload(fixture.dataset)
    seen, walk = fixture.walk()  # its page is tried, and answers
    fixture.assert_read(seen)
    assert fixture.recorder.resources() == []
    assert len({name for p, name in seen if p == big}) == PAGED_ROWS - 5
    assert fixture.memory.too_large == {}


def test_a_page_sure_to_fail_is_never_tried_again(serve, monkeypatch):
    monkeypatch.setattr(listing, 'PAGED_ROWS', PAGED_ROWS)
    monkeypatch.setattr(listing, 'RETRY_PAGE_AFTER', 2)
    fixture = Fixture(serve, dataset_with([7, BIG, 12]))
    for _ in range(4):
        fixture.walk()
    assert len(fixture.recorder.failed()) == 0
    assert fixture.memory.too_large == {fixture.order[1]: 2}


def test_a_page_failing_for_the_next_projects_is_not_skipped(serve):
    # The page of a project failed because of the next one: its page is
    # asked for again at the next walk.
    fixture = Fixture(serve, dataset_with([7, 5, 3, 6]))
    fixture.walk()
    fixture.break_table(fixture.order[2])
    for _ in range(2):
        seen, walk = fixture.walk()
        fixture.assert_read(seen, unreadable={fixture.order[2]})
        assert fixture.memory.too_large == {}
        assert fixture.recorder.failed()[0][1].endswith(
            '&last_evaluated_project=%s' % fixture.order[1])


def test_a_project_too_large_to_page_needs_no_memory(serve):
    fixture = Fixture(serve, dataset_with([5, BIG, 7]))
    seen, walk = fixture.walk(memory=False)
    fixture.assert_read(seen)
    assert walk.unreadable == []


# Rows whose statistics cannot be read

@pytest.mark.parametrize('position', [0, 3, 7])
def test_a_project_with_an_unreadable_row(serve, position):
    sizes = [7, 3, 12, 5, 9, 4, 11, 6]
    fixture = Fixture(serve, dataset_with(sizes))
    fixture.walk()  # a healthy cycle: the listing order is known
    bad = fixture.order[position]
    fixture.break_table(bad)
    seen, walk = fixture.walk()
    fixture.assert_read(seen, unreadable={bad})
    assert walk.unreadable == [listing.Unreadable.project(bad)]
    assert fixture.memory.order == tuple(fixture.order)
    healthy = healthy_requests(sizes)
    assert len(fixture.recorder.requests) <= healthy + 3 * len(sizes) + 1


def test_known_projects_are_read_once_without_failing_steps(serve):
    # The culprit is known: the projects before it in the failing page
    # are read through their resources, each table once, and no step
    # page fails (each would make MagnetoDB read statistics again).
    sizes = [1] * 9 + [3, 4, 12]
    fixture = Fixture(serve, dataset_with(sizes))
    fixture.walk()
    bad = fixture.order[8]
    fixture.break_table(bad)
    seen, walk = fixture.walk()
    fixture.assert_read(seen, unreadable={bad})
    first_page = fixture.recorder.requests[0]
    assert fixture.recorder.failed() == [
        first_page, [peers.MONITORING_PATH + '/' + bad,
                     'metrics=size,item_count', 500]]
    assert fixture.recorder.resources() == (
        [monitoring.PROBE_PROJECT] + fixture.order[:9])
    # The first page, the probe, 9 resources, then 3 pages as usual.
    assert len(fixture.recorder.requests) == 1 + 1 + 9 + 3


def test_an_unreadable_project_too_large_to_page(serve):
    fixture = Fixture(serve, dataset_with([7, BIG, 12, 5]))
    fixture.walk()
    bad = fixture.order[1]
    fixture.break_table(bad)
    seen, walk = fixture.walk()
    fixture.assert_read(seen, unreadable={bad})
    assert walk.unreadable == [listing.Unreadable.project(bad)]


@pytest.mark.parametrize('seed', range(12))
def test_random_layouts_with_unreadable_rows(serve, seed):
    rng = random.Random(seed)
    sizes = [rng.choice((1, 2, 5, 9, 10, 11, 23, BIG, 40))
             for _ in range(rng.randrange(3, 16))]
    fixture = Fixture(serve, dataset_with(sizes, seed))
    fixture.walk()
    order = fixture.order
    bad = set(rng.sample(order, rng.randrange(0, min(4, len(order)) + 1)))
    for project in bad:
        fixture.break_table(project)
    seen, walk = fixture.walk()
    fixture.assert_read(seen, unreadable=bad)
    assert {u.key for u in walk.unreadable} == bad
    assert [u.key for u in walk.unreadable] == [p for p in order
                                                if p in bad]
    assert fixture.memory.order == tuple(order)
    healthy = healthy_requests(sizes)
    assert len(fixture.recorder.requests) <= healthy + 3 * len(sizes) + 1
    for project in bad:  # mended: a complete walk again
        for table in fixture.dataset[project]:
            table.unreadable = False
    seen, walk = fixture.walk()
    fixture.assert_read(seen)
    assert walk.unreadable == []


def test_without_memory_the_walk_stops_at_the_failing_page(serve):
    # A process that starts while a page fails knows only the projects of
    # the pages before it; the ones after it come back when it is mended.
    fixture = Fixture(serve, dataset_with([7, 3, 12, 5, 9, 4]))
    bad = fixture.order[3]
    fixture.break_table(bad)
    seen, walk = fixture.walk()
    before = fixture.order[:3]
    assert {p for p, _ in seen} == set(before)
    assert [u.key for u in walk.unreadable] == [('after', before[-1])]
    assert 'the projects after "%s"' % before[-1] in walk.unreadable[0].label
    assert fixture.memory.order == tuple(before)


def test_the_first_page_failing_with_nothing_known_is_an_outage(serve):
    fixture = Fixture(serve, dataset_with([7, 3, 12]))
    fixture.break_table(fixture.order[0])
    with pytest.raises(monitoring.MonitoringError, match='HTTP 500'):
        fixture.walk()
    assert len(fixture.recorder.requests) == 1
    assert fixture.memory.order == ()


def test_the_first_page_failing_with_projects_known(serve):
    fixture = Fixture(serve, dataset_with([7, 3, 12, 5]))
    fixture.walk()
    bad = fixture.order[0]
    fixture.break_table(bad)
    seen, walk = fixture.walk()
    fixture.assert_read(seen, unreadable={bad})
    paths = [path for path, _, _ in fixture.recorder.requests]
    # The first page fails; the storage answers the probe.
    assert paths[1].endswith('/' + monitoring.PROBE_PROJECT)


def test_a_project_created_since_the_last_walk_with_a_bad_row(serve):
    # Nothing names it: its stretch of the listing is counted unreadable,
    # named by a project before it, and every known project is read.
    fixture = Fixture(serve, dataset_with([7, 3, 12, 5, 9, 4]))
    fixture.walk()
    known = fixture.order
    dataset = dict(fixture.dataset)
    low, high = fakeapi.token(known[2]), fakeapi.token(known[3])
    new = [p for p in (u'new-%d' % i for i in range(1000))
           if low < fakeapi.token(p) < high][0]
    dataset[new] = tables(4, 99)
    fixture.reload(dataset)
    fixture.break_table(new)
    seen, walk = fixture.walk()
    fixture.assert_read(seen, unreadable={new})
    assert len(walk.unreadable) == 1
    kind, after = walk.unreadable[0].key
    assert kind == 'after' and after in known[:3]


def test_a_known_project_that_is_gone(serve):
    # Read through its resource, it has no table: it is neither reported
    # nor unreadable, nor stepped past, nor remembered.
    fixture = Fixture(serve, dataset_with([7, 3, 12, 5, 9, 4]))
    fixture.walk()
    order = fixture.order
    gone, bad = order[2], order[3]
    dataset = dict(fixture.dataset)
    del dataset[gone]
    fixture.reload(dataset)
    fixture.break_table(bad)
    seen, walk = fixture.walk()
    fixture.assert_read(seen, unreadable={bad})
    assert walk.unreadable == [listing.Unreadable.project(bad)]
    assert gone in fixture.recorder.resources()
    assert not [q for _, q, _ in fixture.recorder.requests
                if 'last_evaluated_project=%s&' % gone in q]
    assert fixture.memory.order == tuple(p for p in order if p != gone)


def test_a_project_deleted_while_it_is_asked_for_whole(serve):
    class Deleting(fakeapi.FakeMonitoringAPI):
        def listing(self, limit, last_project=None, last_table=None):
            if last_project == self.victim and last_table is None:
                self.live.pop(last_project, None)
                self.load(self.live)
            return super(Deleting, self).listing(limit, last_project,
                                                last_table)

    fixture = Fixture(serve, dataset_with([7, 3, 12, 5, 9, 4]))
    fixture.walk()
    app = Deleting(dict(fixture.dataset), default_limit=PAGE,
                   paged_rows=PAGED_ROWS)
    app.live = dict(fixture.dataset)
    app.victim = fixture.order[2]  # 12 tables: asked for whole
    fixture.recorder.app = app
    bad = fixture.order[4]
    fixture.break_table(bad)
    seen, walk = fixture.walk()
    assert app.victim not in app.live
    fixture.dataset = app.live
    fixture.assert_read(seen, unreadable={bad})


# MagnetoDB itself failing: an outage, at once

def test_storage_down_with_projects_known(serve):
    fixture = Fixture(serve, dataset_with([7, 3, 12, 5]))
    fixture.walk()
    order = fixture.memory.order
    fixture.app.fault = 'http500'
    with pytest.raises(monitoring.MonitoringError) as error:
        fixture.walk()
    # The first page, then the probe of the storage, which names it.
    assert len(fixture.recorder.requests) == 2
    assert str(error.value) == (
        'MagnetoDB cannot read its storage (GET %s/%s?metrics=size,'
        'item_count failed: HTTP 500)' % (fixture.server.url.split(
            peers.MONITORING_PATH)[0] + peers.MONITORING_PATH,
            monitoring.PROBE_PROJECT))
    assert fixture.memory.order == order


@pytest.mark.parametrize('after', [1, 2, 3, 5, 8])
def test_storage_failing_halfway_through(serve, after):
    fixture = Fixture(serve, dataset_with([7, 3, 12, BIG, 5, 9, 4]))
    fixture.walk()
    fixture.break_table(fixture.order[4])
    app = fixture.app

    class Failing(object):
        def __init__(self):
            self.count = 0

        def __call__(self, environ, start_response):
            self.count += 1
            if self.count > after:
                app.fault = 'http500'
            return app(environ, start_response)

    fixture.recorder.app = Failing()
    # Wherever the walk was, the same cause: a cycle cut halfway and the
    # next one, which fails at its first page, are one outage.
    with pytest.raises(monitoring.MonitoringError,
                       match=r'^MagnetoDB cannot read its storage \(GET '
                       r'\S+/magnetodb-statsd-probe\?\S+ failed: HTTP 500\)$'):
        fixture.walk()
    # At most PROBE_AFTER failures in a row, then the probe that fails.
    assert len(fixture.recorder.requests) - after <= listing.PROBE_AFTER + 1


def test_another_status_stops_the_walk_at_once(serve):
    fixture = Fixture(serve, dataset_with([7, 3, 12, 5]))
    fixture.walk()
    fixture.app.fault = 'http404'
    with pytest.raises(monitoring.MonitoringError, match='HTTP 404'):
        fixture.walk()
    assert len(fixture.recorder.requests) == 1


def test_a_refused_connection_in_the_fallback(serve):
    fixture = Fixture(serve, dataset_with([7, 3, 12, 5]))
    fixture.walk()
    fixture.break_table(fixture.order[2])
    url = 'http://127.0.0.1:%d%s' % (peers.free_port(),
                                     peers.MONITORING_PATH)
    client = monitoring.MonitoringClient(peers.make_settings(
        monitoring_url=url, page_size=PAGE))
    walk = listing.Walk(client, fixture.memory)
    with pytest.raises(monitoring.MonitoringError, match='refused'):
        list(walk.projects())


# Bounds

def test_every_step_failing_still_ends(serve):
    # Steps past a project always fail, project resources always answer:
    # every known project is read one by one, once, and the walk ends.
    class NoSteps(fakeapi.FakeMonitoringAPI):
        def listing(self, limit, last_project=None, last_table=None):
            if last_table is not None:
                raise fakeapi.webob.exc.HTTPInternalServerError()
            return super(NoSteps, self).listing(limit, last_project,
                                                last_table)

    sizes = [7, 3, 12, BIG, 5, 9, 4, 30, 2]
    fixture = Fixture(serve, dataset_with(sizes))
    fixture.walk()
    fixture.recorder.app = NoSteps(fixture.dataset, default_limit=PAGE,
                                   paged_rows=PAGED_ROWS)
    seen, walk = fixture.walk()
    fixture.assert_read(seen)
    assert len(walk.unreadable) == 1 and walk.unreadable[0].key[0] == 'after'
    healthy = healthy_requests(sizes)
    assert len(fixture.recorder.requests) <= healthy + 3 * len(sizes) + 1


def test_a_misbehaving_server_ends_the_walk(serve):
    class Stuck(fakeapi.FakeMonitoringAPI):
        def listing(self, limit, last_project=None, last_table=None):
            if last_project is not None:
                raise fakeapi.webob.exc.HTTPInternalServerError()
            return super(Stuck, self).listing(limit)

    fixture = Fixture(serve, dataset_with([7, 3, 12, 5]))
    fixture.walk()
    fixture.recorder.app = Stuck(fixture.dataset, default_limit=PAGE)
    seen, walk = fixture.walk()
    fixture.assert_read(seen)
    assert len(walk.unreadable) == 1
    assert len(fixture.recorder.requests) <= 3 * 4 + 3


# The fixture itself

def test_the_fixture_fails_like_magnetodb(serve):
    # The table that MagnetoDB itself answers in tests/test_magnetodb.py.
    fixture = Fixture(serve, dataset_with([2, 3, 4, 4, BIG, 4, 4]))
    odd, broken, clean, _, big, _, _ = fixture.order
    unreadable = [fixture.break_table(odd), fixture.break_table(broken)]
    order = [(project, table.name) for project in fixture.order
             for table in sorted(fixture.dataset[project],
                                 key=lambda t: t.name)]
    layout = paging.Layout(
        order=order,
        active=dict((project, set(t.name for t in tables
                                  if t.status == 'ACTIVE'))
                    for project, tables in fixture.dataset.items()),
        unreadable=[(odd, unreadable[0].name), (broken, unreadable[1].name)],
        roles=dict(odd=odd, broken=broken, clean=clean, big=big,
                   broken_table=unreadable[1].name,
                   big_table=[name for p, name in order if p == big][0]),
        default_limit=PAGE)

    def get(request):
        try:
            status, body = peers.http_get(fixture.server.url + request)
        except Exception as exc:  # urllib raises for an error status
            return getattr(exc, 'code', exc), None
        return status, json.loads(body.decode('utf-8'))
    paging.assert_quirks(layout, get)
    assert get('/%s' % monitoring.PROBE_PROJECT)[0] == 200
    # The statistics of a table that is not ACTIVE are not read: the
    # page after odd, which holds all of broken, answers then.
    unreadable[1].status = 'DELETING'
    assert get('?last_evaluated_project=%s&last_evaluated_table=%s'
               % (odd, paging.NO_TABLE))[0] == 200
