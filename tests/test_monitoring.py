"""The monitoring client against the quirky reference server, over HTTP."""

import collections
import random

import pytest

from magnetodb_statsd_middleware import listing
from magnetodb_statsd_middleware import monitoring
from magnetodb_statsd_middleware.demo import fakeapi
from tests.support import peers


def _walk(server, **settings):
    settings.setdefault('monitoring_url', server.url)
    settings.setdefault('request_timeout', 5)
    client = monitoring.MonitoringClient(peers.make_settings(**settings))
    try:
        seen = collections.Counter()
        statuses = {}
        for project, tables, _ in listing.Walk(client).projects():
            for table in tables:
                seen[(project, table.name)] += 1
                statuses[(project, table.name)] = (table.status, table.usage)
        return seen, statuses, client
    finally:
        client.close()


def _all_rows(dataset):
    return {(p, t.name) for p, rows in dataset.items() for t in rows}


def _assert_exactly_once(seen, dataset):
    assert set(seen) == _all_rows(dataset)
    assert max(list(seen.values()) + [1]) == 1


@pytest.mark.parametrize('big', [
    (2500,), (1000,), (999,), (1001,), (2000, 1000, 999, 1), (3000, 2500),
])
def test_every_table_once_across_page_boundaries(serve, big):
    dataset = fakeapi.build_dataset(projects=30, tables=37, big=big)
    app = fakeapi.FakeMonitoringAPI(dataset)
    seen, _, client = _walk(serve(app))
    _assert_exactly_once(seen, dataset)
    tables = sum(len(rows) for rows in dataset.values())
    # Each page but the last brings a page of new rows, less the one
    # project asked for again; a big project costs one extra page.
    assert client.pages == app.requests
    assert client.pages <= 2 * tables // 1000 + 2 * len(big) + 2


@pytest.mark.parametrize('seed', range(8))
def test_random_layouts_with_a_small_page_size(serve, seed):
    rng = random.Random(seed)
    sizes = [rng.choice((1, 2, 5, 9, 10, 11, 23)) for _ in range(25)]
    dataset = fakeapi.build_dataset(projects=0, big=sizes, seed=seed)
    app = fakeapi.FakeMonitoringAPI(dataset, default_limit=10)
    seen, _, client = _walk(serve(app), page_size=10)
    _assert_exactly_once(seen, dataset)
    assert client.pages <= 3 * sum(sizes) // 10 + 2 * len(sizes)


def test_a_project_deleted_between_pages(serve):
    # The project asked for with last_evaluated_project is gone: the page
    # then starts with the next project, which may not be whole.
    class Deleting(fakeapi.FakeMonitoringAPI):
        def listing(self, limit, last_project=None, last_table=None):
            if last_project is not None and not self.deleted:
                self.deleted = last_project
                del self.live[last_project]
                self.load(self.live)
            return super(Deleting, self).listing(limit, last_project,
                                                last_table)

    dataset = fakeapi.build_dataset(projects=0, big=[15] * 12)
    app = Deleting(dataset, default_limit=10)
    app.live = dict(dataset)
    app.deleted = None
    seen, _, _ = _walk(serve(app), page_size=10)
    assert app.deleted and max(seen.values()) == 1
    assert len(app.live) == 11
    for project in app.live:  # every surviving project came whole
        assert {t.name for t in app.live[project]} == {
            name for p, name in seen if p == project}


def test_limit_is_sent_only_on_the_first_page(serve):
    # The fixture answers HTTP 500 to limit + last_evaluated_project, like
    # the Python 2 server; a complete walk proves it never got one.
    dataset = fakeapi.build_dataset(projects=5, tables=400)
    server = serve(fakeapi.FakeMonitoringAPI(dataset))
    seen, _, client = _walk(server)
    _assert_exactly_once(seen, dataset)
    assert client.pages > 2


def test_an_empty_listing(serve):
    app = fakeapi.FakeMonitoringAPI({})
    seen, _, client = _walk(serve(app))
    assert not seen and client.pages == 1


def test_non_active_tables_come_with_empty_statistics(serve):
    dataset = fakeapi.build_dataset(projects=2, tables=120)
    _, statuses, _ = _walk(serve(fakeapi.FakeMonitoringAPI(dataset)))
    for project, rows in dataset.items():
        for table in rows:
            status, usage = statuses[(project, table.name)]
            assert status == table.status
            assert usage == ({'size': table.size,
                              'item_count': table.item_count}
                             if status == 'ACTIVE' else {})


def test_the_usage_details_spelling_is_accepted_too(serve):
    class Corrected(fakeapi.FakeMonitoringAPI):
        def _listing_body(self, request, metrics):
            rows = super(Corrected, self)._listing_body(request, metrics)
            for row in rows:
                row['usage_details'] = row.pop('usage_detailes')
            return rows

    dataset = fakeapi.build_dataset(projects=1, tables=3, odd_names=False)
    _, statuses, _ = _walk(serve(Corrected(dataset)))
    assert {usage['size'] for _, usage in statuses.values() if usage} == {
        t.size for t in dataset[next(iter(dataset))]
        if t.status == 'ACTIVE'}


def test_only_the_asked_metrics_are_requested(serve):
    dataset = fakeapi.build_dataset(projects=1, tables=3)
    _, statuses, _ = _walk(serve(fakeapi.FakeMonitoringAPI(dataset)),
                           metrics=('item_count',))
    assert {tuple(u) for status, u in statuses.values()
            if status == 'ACTIVE'} == {
        ('item_count',)}


def test_listed_projects_are_read_one_by_one(serve):
    dataset = fakeapi.build_dataset(projects=3, tables=60)
    app = fakeapi.FakeMonitoringAPI(dataset)
    server = serve(app)
    project = sorted(dataset)[1]
    client = monitoring.MonitoringClient(peers.make_settings(
        monitoring_url=server.url))
    tables = client.project_tables(project)
    client.close()
    assert {t.name for t in tables} == {
        t.name for t in dataset[project] if t.status == 'ACTIVE'}
    assert all(t.status == 'ACTIVE' and t.project == project
               for t in tables)
    assert app.listing_requests == 0


@pytest.mark.parametrize('fault, cause', [
    ('http500', 'HTTP 500'),
    ('http404', 'HTTP 404'),
    ('not_json', 'did not return a JSON list'),
    ('wrong_shape', 'a JSON list was expected'),
    ('hang', 'no answer within 0.5s'),
    ('huge', 'more than max_response_bytes'),
])
def test_failures_name_their_cause(serve, fault, cause):
    app = fakeapi.FakeMonitoringAPI(fakeapi.build_dataset())
    app.fault = fault
    server = serve(app)
    with pytest.raises(monitoring.MonitoringError) as error:
        _walk(server, request_timeout=0.5, max_response_bytes=1 << 20)
    assert cause in str(error.value)
    assert server.url.split('//')[1].split('/')[0] in str(error.value)


def test_a_refused_connection():
    url = 'http://127.0.0.1:%d/v1/monitoring/projects' % peers.free_port()
    client = monitoring.MonitoringClient(peers.make_settings(
        monitoring_url=url))
    with pytest.raises(monitoring.MonitoringError, match='refused'):
        list(listing.Walk(client).projects())


def test_an_endless_listing_stops(serve, monkeypatch):
    monkeypatch.setattr(listing, 'MAX_PAGES', 5)
    app = fakeapi.FakeMonitoringAPI({}, default_limit=10)
    app.fault = 'endless'
    with pytest.raises(monitoring.MonitoringError, match='past 5 pages'):
        _walk(serve(app), page_size=10)
    assert app.requests == 5


def test_a_listing_that_repeats_itself_stops(serve):
    class Stuck(fakeapi.FakeMonitoringAPI):
        def listing(self, limit, last_project=None, last_table=None):
            # ignores the position
            return super(Stuck, self).listing(limit)

    dataset = fakeapi.build_dataset(projects=3, tables=10)
    app = Stuck(dataset, default_limit=10)
    with pytest.raises(monitoring.MonitoringError, match='does not advance'):
        _walk(serve(app), page_size=10)
    assert app.requests <= 4


def test_user_information_never_reaches_a_message(serve):
    app = fakeapi.FakeMonitoringAPI({})
    app.fault = 'http500'
    server = serve(app)
    url = server.url.replace('//', '//admin:s3cret@')
    with pytest.raises(monitoring.MonitoringError) as error:
        _walk(server, monitoring_url=url)
    assert 's3cret' not in str(error.value)
    assert 'admin' not in str(error.value)


@pytest.fixture(params=['whole', 'item by item'])
def parse_mode(request, monkeypatch):
    if request.param == 'item by item':
        monkeypatch.setattr(monitoring, 'WHOLE_PARSE_CHARS', 0)


@pytest.mark.parametrize('text, items', [
    ('[]', []), (' [ 1 , {"a": [2]} ]\n', [1, {'a': [2]}]),
    (' [ ] ', []),
])
def test_json_list(parse_mode, text, items):
    assert monitoring.json_list(text) == items


@pytest.mark.parametrize('text', ['', '[1,', '[1 2]', '[1] x', '{"a": 1}',
                                  'null', '[1,]', '[', ']'])
def test_json_list_rejects(parse_mode, text):
    with pytest.raises(ValueError):
        monitoring.json_list(text)


def test_a_huge_project_is_parsed_in_chunks(serve, monkeypatch):
    monkeypatch.setattr(monitoring, 'WHOLE_PARSE_CHARS', 1000)
    dataset = fakeapi.build_dataset(projects=3, tables=10, big=(2500,))
    seen, _, _ = _walk(serve(fakeapi.FakeMonitoringAPI(dataset)))
    _assert_exactly_once(seen, dataset)
