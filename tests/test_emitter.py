"""Datagrams on the wire: sizes, batching, pacing, resolution."""

from __future__ import division

import logging
import random
import socket

import pytest

from magnetodb_statsd_middleware import compat
from magnetodb_statsd_middleware import cycle
from magnetodb_statsd_middleware import emitter
from magnetodb_statsd_middleware import metrics
from magnetodb_statsd_middleware import outages
from magnetodb_statsd_middleware.demo import fakeapi
from tests.support import peers

SIZE = metrics.TABLE['size']


def _send(udp, measurements, **settings):
    settings.setdefault('statsd_port', udp.port)
    settings.setdefault('statsd_host', '127.0.0.1')
    with emitter.Emitter(peers.make_settings(**settings)) as sink:
        sink.send(measurements)
    udp.drain()
    return sink


def _sizes(count, project='p'):
    return [(SIZE, (project, 't%d' % i), i * 7919) for i in range(count)]


@pytest.mark.parametrize('size', [64, 512, 1432])
def test_datagrams_never_exceed_max_packet_size(udp, size):
    _send(udp, _sizes(3000), max_packet_size=size, send_rate=0)
    assert max(len(d) for d in udp.datagrams) <= size
    assert udp.lines == ['magnetodb.tables.p.t%d.size:%d|g' % (i, i * 7919)
                         for i in range(3000)]
    fill = sum(len(d) for d in udp.datagrams) / (len(udp.datagrams) * size)
    assert fill > (0.9 if size >= 512 else 0.5)


@pytest.mark.parametrize('mode', ['disabled', 'dogstatsd', 'signalfx'])
def test_labeled_datagrams_never_exceed_max_packet_size(udp, mode):
    # Long labels: few lines fit a datagram, none may be split.
    measurements = _sizes(500, project='p' * 150)
    _send(udp, measurements, max_packet_size=512, send_rate=0,
          label_mode=mode, user_labels=(('region', 'r' * 100),))
    assert max(len(d) for d in udp.datagrams) <= 512
    assert len(udp.lines) == 500


def test_a_line_that_cannot_fit_is_dropped_and_counted(udp):
    # Cut to max_name_length (253), the name is still longer than 200.
    sink = _send(udp, [(SIZE, ('p', 'x' * 600), 1), (SIZE, ('p', 'ok'), 2)],
                 max_packet_size=200)
    assert udp.lines == ['magnetodb.tables.p.ok.size:2|g']
    assert sink.oversize == 1


def _greedy(lines, limit):
    """The packing promised, written plainly: lines in order, as many to a
    datagram as fit, a line longer than a datagram left out."""
    datagrams, current = [], None
    for line in lines:
        if len(line) > limit:
            continue
        if current is not None and len(current) + 1 + len(line) <= limit:
            current += '\n' + line
        else:
            if current is not None:
                datagrams.append(current)
            current = line
    if current is not None:
        datagrams.append(current)
    return datagrams


def test_datagrams_are_packed_greedily_across_sends(udp):
    """Lines too long, exactly as long as a datagram, and carried over
    from one send() to the next: the datagrams are what a plain greedy
    packing makes of the whole sequence."""
    rng = random.Random(7)
    limit = 64
    exact = 'x' * (limit - len('magnetodb.tables.p..size:5|g'))
    sends = []
    for _ in range(60):
        measurements = [(SIZE, ('p', 'n' * rng.randint(1, 60)),
                         rng.randint(0, 10 ** 6))
                        for _ in range(rng.randint(0, 12))]
        if rng.random() < 0.3:
            measurements.insert(rng.randint(0, len(measurements)),
                                (SIZE, ('p', exact), 5))
        sends.append(measurements)
    settings = peers.make_settings(statsd_port=udp.port, send_rate=0,
                                   max_packet_size=limit)
    with emitter.Emitter(settings) as sink:
        for measurements in sends:
            sink.send(measurements)
    lines = ['magnetodb.tables.p.%s.size:%d|g' % (labels[1], value)
             for measurements in sends for _, labels, value in measurements]
    expected = _greedy(lines, limit)
    peers.wait_for(lambda: len(udp.drain()) >= len(expected),
                   message='every datagram')
    assert [d.decode('ascii') for d in udp.datagrams] == expected
    assert sink.oversize == sum(len(line) > limit for line in lines) > 0
    assert any(len(d) == limit for d in expected)


def test_emit_legacy_sends_both_spellings(udp):
    _send(udp, [(SIZE, ('p', 'a.b'), 1)], label_mode='influxdb',
          emit_legacy=True)
    assert udp.lines == [
        'magnetodb.table.size,project=p,table=a.b:1|g',
        'magnetodb.tables.p.%s.size:1|g' % metrics.safe_part('a.b')]


def test_counters_and_timers(udp):
    with emitter.Emitter(peers.make_settings(
            statsd_port=udp.port, metric_prefix='a.b')) as sink:
        sink.send([
            (metrics.COLLECTOR['cycles_completed'], (), 1),
            (metrics.COLLECTOR['cycle_duration'], (), 12.5)])
    udp.drain()
    assert udp.lines == ['a.b.collector.cycles_completed:1|c',
                         'a.b.collector.cycle_duration:12.500000|ms']


def test_pacing_keeps_to_the_send_rate(udp):
    started = compat.monotonic()
    _send(udp, _sizes(4000), send_rate=200, max_packet_size=512)
    elapsed = compat.monotonic() - started
    datagrams = len(udp.datagrams)
    # 4000 lines of ~35 bytes fill ~300 datagrams: at most 200 a second,
    # less the last batch (about 35), whose wait is for the one before.
    last_batch = emitter.BATCH_BYTES // 480 + 1
    assert elapsed >= (datagrams - last_batch) / 200.0
    assert len(udp.lines) == 4000


def test_an_unresolvable_host_is_an_emit_error():
    settings = peers.make_settings(statsd_host='no-such-host.invalid')
    with pytest.raises(emitter.EmitError, match='no-such-host.invalid'):
        with emitter.Emitter(settings):
            pass


def test_ipv6(udp):
    receiver = peers.ipv6_receiver()
    with emitter.Emitter(peers.make_settings(
            statsd_host='::1', statsd_port=receiver.getsockname()[1])) as s:
        s.send([(SIZE, ('p', 'v6'), 6)])
    assert receiver.recv(512) == b'magnetodb.tables.p.v6.size:6|g'
    receiver.close()


def test_nobody_listening_is_not_an_error():
    with emitter.Emitter(peers.make_settings(
            statsd_port=peers.free_port(socket.SOCK_DGRAM),
            send_rate=0)) as sink:
        sink.send(_sizes(10000))  # several batches
    assert sink.sent * 512 > 3 * emitter.BATCH_BYTES
    assert sink.unsent == 0


# The socket refuses every datagram to the limited broadcast address
# (SO_BROADCAST is not set), as it would under a firewall rule.
REFUSED_HOST = '255.255.255.255'


def test_a_refused_datagram_is_counted_with_its_cause():
    with emitter.Emitter(peers.make_settings(
            statsd_host=REFUSED_HOST)) as sink:
        sink.send(_sizes(2))
    assert (sink.sent, sink.unsent) == (1, 1)
    assert sink.send_error


def test_a_cycle_reports_refused_datagrams_once(serve, caplog):
    app = fakeapi.FakeMonitoringAPI(fakeapi.build_dataset())
    settings = peers.make_settings(monitoring_url=serve(app).url,
                                   statsd_host=REFUSED_HOST)
    log = outages.OutageLog()
    for _ in range(2):
        result = cycle.run_cycle(settings, log)
        assert result.completed
    errors = [r.getMessage() for r in caplog.records
              if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert 'StatsD failed' in errors[0] and 'could not be sent' in errors[0]
    with emitter.Emitter(settings) as sink:
        sink.send(_sizes(1))
    assert sink.send_error in errors[0]


def test_dry_run_prints_one_line_per_metric_and_never_waits(capsys):
    settings = peers.make_settings(send_rate=1, send_spread=0.9)
    started = compat.monotonic()
    with emitter.DryRunEmitter(settings) as sink:
        sink.send(_sizes(2000))
    assert compat.monotonic() - started < 5  # 1 datagram/s would be 200 s
    lines = capsys.readouterr().out.splitlines()
    assert lines == ['magnetodb.tables.p.t%d.size:%d|g' % (i, i * 7919)
                     for i in range(2000)]
