# -*- coding: utf-8 -*-
"""One cycle end to end over loopback: listed projects, failures, totals."""

import logging

from magnetodb_statsd_middleware import cycle
from magnetodb_statsd_middleware import listing
from magnetodb_statsd_middleware import outages
from magnetodb_statsd_middleware.demo import fakeapi
from tests.support import peers


def _gauges(udp):
    udp.drain()
    return {line.split(':')[0]: int(line.split(':')[1].split('|')[0])
            for line in udp.lines if line.endswith('|g')}


def test_listed_projects_are_read_one_by_one_and_totalled(serve, udp):
    dataset = fakeapi.build_dataset(projects=4, tables=30)
    app = fakeapi.FakeMonitoringAPI(dataset)
    server = serve(app)
    chosen = sorted(dataset)[:2]
    result = cycle.run_cycle(peers.make_settings(
        monitoring_url=server.url, statsd_port=udp.port,
        projects=tuple(chosen)), outages.OutageLog())
    assert result.completed and app.listing_requests == 0
    gauges = _gauges(udp)
    active = {p: [t for t in dataset[p] if t.status == 'ACTIVE']
              for p in chosen}
    assert gauges['magnetodb.totals.projects'] == 2
    assert gauges['magnetodb.totals.size'] == sum(
        t.size for tables in active.values() for t in tables)
    for project in chosen:
        assert gauges['magnetodb.projects.%s.tables' % project] == len(
            active[project])
    assert not [name for name in gauges if sorted(dataset)[3] in name]
    # Read through their own resources: ACTIVE tables only, so no counts
    # by status, never wrong ones.
    assert not [name for name in gauges
                if '.tables_by_status.' in name or name.endswith('.stuck')]


def test_a_failed_listed_project_withholds_the_totals_only(serve, udp):
    dataset = fakeapi.build_dataset(projects=2, tables=5)
    server = serve(fakeapi.FakeMonitoringAPI(dataset))
    good = sorted(dataset)[0]
    result = cycle.run_cycle(peers.make_settings(
        monitoring_url=server.url, statsd_port=udp.port,
        projects=(good, 'no/such:project')),
        outages.OutageLog())
    gauges = _gauges(udp)
    assert not result.completed
    assert 'magnetodb.projects.%s.tables' % good in gauges
    assert not [name for name in gauges if '.totals.' in name]
    assert gauges['magnetodb.collector.tables'] == 5
    assert gauges['magnetodb.collector.projects_failed'] == 1


class LogLines(logging.Handler):
    """``[(level, message)]`` of the records an OutageLog writes."""

    def __init__(self):
        logging.Handler.__init__(self, logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append((record.levelname, record.getMessage()))

    def take(self, min_level=logging.INFO):
        """The lines at ``min_level`` or above since the last take."""
        lines = [(level, message) for level, message in self.lines
                 if logging.getLevelName(level) >= min_level]
        del self.lines[:]
        return lines


class Collector(object):
    """A collector's cycles, one after another, against a fake API."""

    def __init__(self, serve, udp, dataset, page_size=50, **app_options):
        self.dataset = dataset
        self.app = fakeapi.FakeMonitoringAPI(dataset,
                                             default_limit=page_size,
                                             **app_options)
        self.recorder = peers.Recorder(self.app)
        self.udp = udp
        self.settings = peers.make_settings(
            monitoring_url=serve(self.recorder).url, statsd_port=udp.port,
            page_size=page_size)
        self.logs = LogLines()
        logger = logging.Logger('test-outages')
        logger.addHandler(self.logs)
        self.outages = outages.OutageLog(log=logger)
        self.memory = listing.ListingMemory()

    def cycle(self):
        """``(result, gauges)`` of one more cycle."""
        self.recorder.reset()
        self.udp.datagrams = []
        result = cycle.run_cycle(self.settings, self.outages,
                                 memory=self.memory)
        return result, _gauges(self.udp)

    def expected(self, readable):
        """Table and project gauges of the ``readable`` projects; those
        read through their own resource count their ACTIVE tables."""
        by_resource = set(self.recorder.resources())
        shown = {}
        for project in readable:
            rows = self.dataset[project]
            if project in by_resource:
                rows = [t for t in rows if t.status == 'ACTIVE']
            shown[project] = rows
        return {name: value for name, value in peers.expected_gauges(
                    shown, 'magnetodb', withheld=by_resource).items()
                if '.totals.' not in name}


def _data_gauges(gauges):
    return {name: value for name, value in gauges.items()
            if name.startswith(('magnetodb.tables.', 'magnetodb.projects.'))}


def _totals(gauges):
    return {name: value for name, value in gauges.items()
            if name.startswith('magnetodb.totals.')}


def test_unreadable_projects_are_counted_named_and_logged_once(serve, udp):
    dataset = fakeapi.build_dataset(projects=8, tables=30)
    order = sorted(dataset, key=fakeapi.token)
    collector = Collector(serve, udp, dataset)
    result, gauges = collector.cycle()
    assert result.completed
    healthy_totals = _totals(gauges)
    assert healthy_totals == _totals(peers.expected_gauges(dataset,
                                                           'magnetodb'))
    assert gauges['magnetodb.collector.projects_failed'] == 0
    assert collector.logs.take() == []

    first, second = order[3], order[6]
    collector.app.mark_unreadable(first, [
        t.name for t in dataset[first] if t.status == 'ACTIVE'][5])
    for repeat in range(2):
        result, gauges = collector.cycle()
        assert not result.completed
        readable = [p for p in order if p != first]
        assert _data_gauges(gauges) == collector.expected(readable)
        assert _totals(gauges) == {}
        assert gauges['magnetodb.collector.projects_failed'] == 1
        lines = collector.logs.take()
        if repeat == 0:
            assert lines == [('ERROR', (
                'project statistics failed: 1 project cannot be read '
                'through the monitoring API (every other project is sent, '
                'the totals are withheld): "%s"' % first))]
        else:
            assert lines == []  # the same failure: DEBUG only

    collector.app.mark_unreadable(second, [
        t.name for t in dataset[second] if t.status == 'ACTIVE'][0])
    result, gauges = collector.cycle()
    assert gauges['magnetodb.collector.projects_failed'] == 2
    assert _data_gauges(gauges) == collector.expected(
        [p for p in order if p not in (first, second)])
    lines = collector.logs.take()
    assert len(lines) == 1 and lines[0][0] == 'ERROR'
    assert 'failing differently now: 2 projects' in lines[0][1]
    assert lines[0][1].endswith('"%s", "%s"' % (first, second))

    for table in dataset[first] + dataset[second]:
        table.unreadable = False
    result, gauges = collector.cycle()
    assert result.completed
    assert _totals(gauges) == healthy_totals
    assert gauges['magnetodb.collector.projects_failed'] == 0
    assert collector.logs.take() == [('INFO',
                                      'project statistics recovered')]


def test_only_the_first_few_unreadable_projects_are_named(serve, udp):
    dataset = fakeapi.build_dataset(projects=9, tables=3, odd_names=False)
    order = sorted(dataset, key=fakeapi.token)
    collector = Collector(serve, udp, dataset, page_size=5)
    collector.cycle()
    for project in order[1:8]:
        dataset[project][0].unreadable = True
    result, gauges = collector.cycle()
    assert gauges['magnetodb.collector.projects_failed'] == 7
    assert sorted(p for p in order if 'magnetodb.projects.%s.tables' % p
                  in gauges) == sorted([order[0], order[8]])
    (level, message), = collector.logs.take()
    assert message.endswith(', '.join('"%s"' % p for p in order[1:6])
                            + ' and 2 more')


def test_a_project_too_large_to_page_keeps_the_totals(serve, udp):
    dataset = fakeapi.build_dataset(projects=6, tables=30, big=(120,))
    big = [p for p in dataset if len(dataset[p]) == 120][0]
    collector = Collector(serve, udp, dataset, paged_rows=100)
    result, gauges = collector.cycle()
    assert result.completed
    assert collector.recorder.resources() == [big]
    assert len(collector.recorder.failed()) == 1
    active = [t for t in dataset[big] if t.status == 'ACTIVE']
    assert gauges['magnetodb.projects.%s.tables' % big] == len(active) < 120
    assert _data_gauges(gauges) == collector.expected(list(dataset))
    shown = dict(dataset, **{big: active})
    assert _totals(gauges) == _totals(peers.expected_gauges(
        shown, 'magnetodb', withheld={big}))
    assert gauges['magnetodb.collector.projects_failed'] == 0
    assert collector.logs.take() == []


def test_storage_down_is_an_outage_not_unreadable_projects(serve, udp):
    dataset = fakeapi.build_dataset(projects=4, tables=30)
    collector = Collector(serve, udp, dataset)
    collector.cycle()
    collector.app.fault = 'http500'
    for repeat in range(2):
        result, gauges = collector.cycle()
        assert not result.completed
        assert result.error.startswith('MagnetoDB cannot read its storage')
        assert len(collector.recorder.requests) == 2  # page, probe
        assert 'magnetodb.collector.projects_failed' not in gauges
        assert _data_gauges(gauges) == {} and _totals(gauges) == {}
        lines = collector.logs.take()
        assert len(lines) == (1 - repeat)
        assert all(message.startswith('monitoring API failed: ')
                   for _, message in lines)
    collector.app.fault = 'none'
    result, gauges = collector.cycle()
    assert result.completed
    assert gauges['magnetodb.collector.projects_failed'] == 0
    assert collector.logs.take() == [('INFO', 'monitoring API recovered')]


def test_non_ascii_projects_through_every_fallback(serve, udp):
    # Stepped past, read through their resources, named in a log line:
    # never an exception, on 2.7 (unicode from JSON) as on 3.x.
    dataset = fakeapi.build_dataset(projects=5, tables=8, odd_names=False)
    big = u'проект-большой'
    bad = u'café-"quoted"\n'
    dataset[big] = [fakeapi.Table(u'таблица-%03d' % i, size=i, item_count=1)
                    for i in range(12)]
    dataset[bad] = [fakeapi.Table(u'表-%d' % i, size=1) for i in range(3)]
    collector = Collector(serve, udp, dataset, page_size=5, paged_rows=10)
    result, gauges = collector.cycle()
    assert result.completed and big in collector.recorder.resources()
    dataset[bad][1].unreadable = True
    result, gauges = collector.cycle()
    assert gauges['magnetodb.collector.projects_failed'] == 1
    assert _data_gauges(gauges) == collector.expected(
        [p for p in dataset if p != bad])
    (level, message), = collector.logs.take()
    assert level == 'ERROR'
    assert message.endswith(u': "caf\\u00e9-\\"quoted\\"\\n"')
