# -*- coding: utf-8 -*-
"""Monasca: the collector's lines read by monasca-agent's own statsd daemon.

The agent's ``udp.Server`` and ``MetricsAggregator`` (monasca-agent 10.0.0,
monasca-common 3.8.0 from PyPI) validate every metric as Monasca does and
add their ``hostname`` dimension. Fed with the long-names dataset: every
length of table name up to 255, shared prefixes, digits first, upper case,
non-ASCII. What must come out is every table's two metrics, and each
project's and the totals, with the right dimensions and values, and no
line rejected or lost.
"""

import pytest

from magnetodb_statsd_middleware import cycle
from magnetodb_statsd_middleware import outages
from magnetodb_statsd_middleware.demo import fakeapi
from tests.support import monasca_peer
from tests.support import peers

USER = (('region', 'r1'),)


@pytest.fixture
def agent(tmp_path):
    server = monasca_peer.MonascaAgent(str(tmp_path))
    yield server
    server.stop()


def _dimensions(graphite_key, hostname):
    """``(name, sorted dimensions)`` of a ``name;k=v;...`` key, with the
    agent's own ``hostname``."""
    parts = graphite_key.split(';')
    dimensions = dict(part.split('=', 1) for part in parts[1:])
    dimensions['hostname'] = hostname
    return parts[0], tuple(sorted(dimensions.items()))


def expected_monasca(dataset, prefix, hostname, lower=False):
    """``{(name, dimensions): value}`` that Monasca must get for
    ``dataset`` in ``monasca`` mode: the documented labels, case kept
    (``lower``: as the dogstatsd dialect makes them)."""
    return dict((_dimensions(key, hostname), value) for key, value in
                peers.expected_labeled(dataset, prefix, lower, USER).items())


def expected_dotted(dataset, prefix, hostname, max_length):
    return dict(((name, (('hostname', hostname),)), value) for name, value
                in peers.expected_gauges(dataset, prefix,
                                         max_length=max_length).items())


def _data(received, prefix):
    """The table, project and total metrics received under ``prefix``."""
    return dict((key, value) for key, value in received.metrics.items()
                if key[0].startswith(prefix + '.')
                and '.collector.' not in key[0]
                and not key[0].endswith('.sent'))


def _table_lines(dataset):
    return 2 * sum(1 for rows in dataset.values() for t in rows
                   if t.status == 'ACTIVE')


def test_every_table_right_through_a_served_pipeline(agent, api_server,
                                                     prefix, tmp_path):
    """``label_mode = monasca``: the filter in a running API server."""
    dataset = fakeapi.build_long_names_dataset()
    expected = expected_monasca(dataset, prefix, agent.hostname)
    # Per project: size, item_count, tables, stuck and five statuses;
    # the totals add projects.
    assert len(expected) == _table_lines(dataset) + 3 * 9 + 10
    api_server(peers.statsd_section(**peers.statsd_options(
        agent.port, prefix, interval=2, initial_delay=0.5,
        lock_path=tmp_path / 'statsd.lock', label_mode='monasca',
        user_labels='region:r1')), fixture_options='long_names = true')

    def arrived():
        received = agent.read()
        data = _data(received, prefix)
        assert not received.rejected, received.rejected[:3]
        return all(data.get(k) == v for k, v in expected.items()) and (
            received, data)
    received, data = peers.wait_for(arrived, timeout=60, interval=0.5,
                                    message='every metric in the agent')
    # Nothing merged, missing or stray; the collector's own metrics too.
    assert data == expected
    assert (received.rejected, received.lost) == ([], 0)
    collector = [name for name, _ in received.metrics
                 if name.startswith(prefix + '.collector.')]
    assert prefix + '.collector.tables_sent' in collector
    assert agent.versions == {'monasca-agent': '10.0.0',
                              'monasca-common': '3.8.0'}


def test_a_cycle_sends_what_monasca_statsd_sends(agent, serve, udp, prefix):
    """A real cycle's lines (``label_mode = monasca``) are, line for line,
    what Monasca's own client, monasca-statsd, sends for the metrics the
    fixture's data must give (computed from it independently of the
    package); its datagrams, replayed to the agent's own statsd server,
    give exactly those metrics. The long-names dataset, plus names with a
    space, a non-ASCII letter and a dot."""
    dataset = fakeapi.build_long_names_dataset()
    dataset[u'b2c3'] = [fakeapi.Table(u'caf\u00e9', 'ACTIVE', 11, 1),
                        fakeapi.Table(u'a b', 'ACTIVE', 12, 2),
                        fakeapi.Table(u'Orders.2015', 'ACTIVE', 13, 3)]
    api = serve(fakeapi.FakeMonitoringAPI(dataset))
    result = cycle.run_cycle(peers.make_settings(
        monitoring_url=api.url, statsd_port=udp.port, metric_prefix=prefix,
        label_mode='monasca', user_labels=USER), outages.OutageLog())
    assert result.completed, result.error
    udp.drain()
    ours = [line for line in udp.lines
            if not line.startswith(prefix + '.collector.')]

    expected = expected_monasca(dataset, prefix, agent.hostname)
    client = peers.UDPReceiver()
    try:
        monasca_peer.send_with_client(client.port, [
            (name, value, [d for d in dimensions if d[0] != 'hostname'])
            for (name, dimensions), value in sorted(expected.items())])
        client.drain()
        theirs = client.lines
    finally:
        client.close()
    assert len(theirs) == len(expected)
    assert sorted(ours) == sorted(theirs)

    received = _replay(agent, udp.datagrams)
    assert received.datagrams == len(udp.datagrams)
    assert _data(received, prefix) == expected
    assert (received.rejected, received.lost) == ([], 0)


def _cycle(serve, agent, prefix, dataset, **options):
    """One in-process cycle to the agent; returns what it received once
    every datagram of the cycle was read (see :func:`_read_through`)."""
    api = serve(fakeapi.FakeMonitoringAPI(dataset))
    result = cycle.run_cycle(peers.make_settings(
        monitoring_url=api.url, statsd_port=agent.port,
        metric_prefix=prefix, **options), outages.OutageLog())
    assert result.completed, result.error
    return _read_through(agent, prefix)


def _replay(agent, datagrams, batch=50):
    """Send ``datagrams`` to a fresh agent as they are, a batch at a time,
    each once the agent has read the one before (a burst larger than its
    socket's buffer would be dropped by the kernel, as the collector's
    pacing avoids); returns what the agent received."""
    for start in range(0, len(datagrams), batch):
        peers.send_udp(agent.port, [datagram.decode('ascii') for datagram
                                    in datagrams[start:start + batch]])
        done = min(start + batch, len(datagrams))
        received = peers.wait_for(
            lambda: [r for r in [agent.read()] if r.datagrams >= done],
            timeout=30, interval=0.05,
            message='%d datagrams read by the agent' % done)[0]
    return received


def _read_through(agent, prefix):
    """What the agent received once every datagram sent to it so far was
    read: a marker sent after them has arrived."""
    marker = prefix + '.sent'

    def arrived():
        # Sent again until it arrives: an agent that falls behind (it logs
        # a traceback per rejected datagram) may lose it in its buffer.
        peers.send_udp(agent.port, [marker + ':1|g'])
        return [r for r in [agent.read()]
                if (marker, (('hostname', agent.hostname),)) in r.metrics]
    return peers.wait_for(arrived, timeout=30, interval=0.5,
                          message='the cycle in the agent')[0]


def test_dotted_names_within_255_characters_all_arrive(agent, serve,
                                                       prefix):
    """Monasca takes names of 255 characters: the most max_name_length
    may be with it (the default, 253, fits too)."""
    dataset = fakeapi.build_long_names_dataset()
    received = _cycle(serve, agent, prefix, dataset, max_name_length=255)
    assert _data(received, prefix) == expected_dotted(
        dataset, prefix, agent.hostname, 255)
    assert (received.rejected, received.lost) == ([], 0)


def test_longer_dotted_names_are_rejected_with_their_datagram(agent, serve,
                                                              prefix):
    """Why at most 255 with Monasca: with more, it rejects the long names,
    and each rejected line loses the lines after it in its datagram."""
    dataset = fakeapi.build_long_names_dataset()
    received = _cycle(serve, agent, prefix, dataset, max_name_length=1024)
    expected = expected_dotted(dataset, prefix, agent.hostname, 1024)
    data = _data(received, prefix)
    too_long = set(name for name, _ in expected if len(name) > 255)
    assert too_long and not [name for name, _ in data if name in too_long]
    assert received.rejected and all(
        line.split(':')[0] in too_long and 'InvalidMetricName' in error
        for line, error in received.rejected)
    # What arrived is right, but good lines were lost with the rejected.
    assert data and set(data) <= set(expected)
    assert all(expected[key] == value for key, value in data.items())
    assert received.lost > 0
    assert len(data) < len(expected) - len(too_long)


def _first_key_cut(dimensions):
    """The agent's misreading of DogStatsD tags: the first tag's key
    (the tags sorted, the agent's hostname aside) loses a character."""
    keys = sorted(key for key, _ in dimensions if key != 'hostname')
    return tuple(sorted((key[1:] if key == keys[0] else key, value)
                        for key, value in dimensions))


def test_dogstatsd_tags_lose_their_first_character(agent, serve, prefix):
    """The agent reads ``|#`` tags other than a dict from their second
    character: the first key loses its first letter (``project`` arrives
    as ``roject``, ``region`` alone as ``egion``). Nothing is rejected:
    the data is wrong."""
    dataset = fakeapi.build_dataset(projects=2, tables=4, seed=5)
    received = _cycle(serve, agent, prefix, dataset, label_mode='dogstatsd',
                      user_labels=USER)
    expected = dict(((name, _first_key_cut(dimensions)), value)
                    for (name, dimensions), value in expected_monasca(
                        dataset, prefix, agent.hostname, lower=True).items())
    data = _data(received, prefix)
    assert data == expected
    assert [d for _, d in data if 'roject' in dict(d)]
    assert not [d for _, d in data if 'project' in dict(d)]
    assert (received.rejected, received.lost) == ([], 0)


@pytest.mark.parametrize('mode', ['graphite', 'influxdb', 'librato',
                                  'signalfx'])
def test_other_dialects_are_rejected(agent, serve, prefix, mode):
    """Monasca forbids ``< > = { } , " \\ ; & ( )`` and a space in a name:
    these dialects put their labels in the name."""
    dataset = fakeapi.build_dataset(projects=2, tables=4, seed=5)
    received = _cycle(serve, agent, prefix, dataset, label_mode=mode,
                      user_labels=USER)
    assert not [name for name, _ in _data(received, prefix)
                if '.table.' in name]
    assert received.rejected
    assert all('InvalidMetricName' in error
               for _, error in received.rejected)
