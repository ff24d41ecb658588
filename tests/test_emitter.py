"""Datagrams on the wire: sizes, batching, pacing, resolution."""

from __future__ import division

import socket

import pytest

import peers
from magnetodb_statsd_middleware import compat
from magnetodb_statsd_middleware import emitter
from magnetodb_statsd_middleware import metrics

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
    sink = _send(udp, [(SIZE, ('p', 'x' * 600), 1), (SIZE, ('p', 'ok'), 2)],
                 max_packet_size=512)
    assert udp.lines == ['magnetodb.tables.p.ok.size:2|g']
    assert sink.oversize == 1


def test_emit_legacy_sends_both_spellings(udp):
    _send(udp, [(SIZE, ('p', 'a.b'), 1)], label_mode='influxdb',
          emit_legacy=True)
    assert udp.lines == [
        'magnetodb.table.size,project=p,table=a.b:1|g',
        'magnetodb.tables.p.%s.size:1|g' % metrics.safe_name('a.b')]


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
    # less the first batch that goes out before any pause.
    assert elapsed >= (datagrams - emitter.DATAGRAMS_PER_BATCH) / 200.0
    assert len(udp.lines) == 4000


def test_an_unresolvable_host_is_an_emit_error():
    settings = peers.make_settings(statsd_host='no-such-host.invalid')
    with pytest.raises(emitter.EmitError, match='no-such-host.invalid'):
        with emitter.Emitter(settings):
            pass


def test_ipv6(udp):
    receiver = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    try:
        receiver.bind(('::1', 0))
    except compat.OS_ERRORS:
        pytest.skip('no IPv6 loopback here')
    receiver.settimeout(5)
    with emitter.Emitter(peers.make_settings(
            statsd_host='::1', statsd_port=receiver.getsockname()[1])) as s:
        s.send([(SIZE, ('p', 'v6'), 6)])
    assert receiver.recv(512) == b'magnetodb.tables.p.v6.size:6|g'
    receiver.close()


def test_nobody_listening_is_not_an_error():
    with emitter.Emitter(peers.make_settings(
            statsd_port=peers.free_port(socket.SOCK_DGRAM))) as sink:
        for _ in range(3):
            sink.send(_sizes(100))
            sink.flush()
