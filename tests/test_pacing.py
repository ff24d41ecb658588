"""The pacing rule: spread over a share of the interval, never above
send_rate, never past the interval; first and grown cycles stay safe.

The rule is checked on a clock of our own (no sleeping), then on real
UDP sockets, where load can only make sending later: there the spreading
takes at least its share of the interval, ends within that share plus the
suite's scheduling slack, and every datagram arrives.
"""

from __future__ import division

import logging

import pytest

from magnetodb_statsd_middleware import compat
from magnetodb_statsd_middleware import cycle
from magnetodb_statsd_middleware import emitter
from magnetodb_statsd_middleware import metrics
from magnetodb_statsd_middleware import outages
from magnetodb_statsd_middleware import pacing
from magnetodb_statsd_middleware.demo import fakeapi
from tests.support import peers

BATCH = 32
# On real sockets: a second cycle spread over a third of 3 s.
INTERVAL = 3
SPREAD = 1.0 / 3


def _pacer(interval=60, send_spread=0.5, send_rate=5000):
    return pacing.Pacer(peers.make_settings(
        interval=interval, send_spread=send_spread, send_rate=send_rate))


def _cycle(pacer, datagrams, start=0.0, work=0.0, completed=True):
    """Send ``datagrams`` in batches that take ``work`` seconds each to
    produce, waiting as told; returns when each batch was sent and when
    the cycle ended (at its last batch)."""
    now = start
    pacer.begin(now)
    sent_at = []
    remaining = datagrams
    while remaining:
        batch = min(BATCH, remaining)
        remaining -= batch
        now += work
        now += pacer.wait(now)
        pacer.sent_batch(batch)
        sent_at.append(now)
    pacer.end(completed)
    return sent_at, now


def test_a_first_cycle_goes_at_send_rate():
    pacer = _pacer(send_rate=1000)
    sent_at, end = _cycle(pacer, 3200)
    assert sent_at[0] == 0.0  # at once
    assert end == pytest.approx(3.2 - BATCH / 1000)
    # Evenly: each batch the time its predecessor's size needs later.
    gaps = [b - a for a, b in zip(sent_at, sent_at[1:])]
    assert min(gaps) == pytest.approx(BATCH / 1000) == max(gaps)


def test_work_counts_but_never_bunches_two_batches():
    pacer = _pacer(send_rate=1000)
    pacer.begin(0.0)
    assert pacer.wait(0.0) == 0.0
    pacer.sent_batch(BATCH)
    # A page took 5 s to read: its batch goes at once...
    assert pacer.wait(5.0) == 0.0
    pacer.sent_batch(BATCH)
    # ... but the next one no sooner than send_rate allows, whatever
    # time was saved before.
    assert pacer.wait(5.0) == pytest.approx(0.032)


def test_without_a_send_rate_a_first_cycle_is_not_paced():
    pacer = _pacer(send_rate=0)
    assert _cycle(pacer, 3200)[1] == 0.0


def test_the_next_cycle_is_spread_over_a_share_of_the_interval():
    pacer = _pacer(interval=60, send_spread=0.5, send_rate=5000)
    _cycle(pacer, 32000)  # 6.4 s at send_rate
    sent_at, end = _cycle(pacer, 32000, start=100.0)
    # Batch k of 1,000 at start + 0.5 * 60 * k / 1000: evenly over the
    # first 30 s, 0.03 s apart, never a burst.
    assert end == pytest.approx(130.0 - 0.03)
    gaps = [b - a for a, b in zip(sent_at, sent_at[1:])]
    assert min(gaps) == pytest.approx(0.03) == max(gaps)


def test_spreading_never_goes_above_send_rate():
    pacer = _pacer(interval=10, send_spread=0.5, send_rate=1000)
    _cycle(pacer, 32000)
    sent_at, end = _cycle(pacer, 32000, start=100.0)
    # The plan says 5 s, send_rate says 32 s: send_rate wins.
    assert end == pytest.approx(132.0 - BATCH / 1000)
    gaps = [b - a for a, b in zip(sent_at, sent_at[1:])]
    assert min(gaps) == pytest.approx(BATCH / 1000)


def test_slow_reading_is_never_made_slower():
    pacer = _pacer(interval=60, send_spread=0.5, send_rate=5000)
    _cycle(pacer, 3200)
    # Each batch takes 1 s to produce: 100 s, well past the 30 s plan;
    # pacing adds nothing.
    sent_at, end = _cycle(pacer, 3200, start=0.0, work=1.0)
    assert end == pytest.approx(100.0)


def test_a_cycle_that_grew_sends_the_excess_at_send_rate():
    pacer = _pacer(interval=60, send_spread=0.5, send_rate=5000)
    _cycle(pacer, 3200)
    # Ten times the tables: the 3,200 expected datagrams over 30 s, the
    # 28,800 more at 5,000 a second, not at the planned 107 a second
    # that would take 300 s.
    _, end = _cycle(pacer, 32000, start=0.0)
    assert end == pytest.approx(30.0 - 0.3 + 900 * BATCH / 5000)
    # The next one plans for the new size.
    _, end = _cycle(pacer, 32000, start=100.0)
    assert end == pytest.approx(130.0 - 0.03)


def test_a_cycle_that_shrank_ends_early():
    pacer = _pacer(interval=60, send_spread=0.5, send_rate=5000)
    _cycle(pacer, 3200)
    assert _cycle(pacer, 1600, start=0.0)[1] == pytest.approx(15.0 - 0.3)


def test_a_failed_cycle_does_not_shrink_the_plan():
    pacer = _pacer(interval=60, send_spread=0.5, send_rate=5000)
    _cycle(pacer, 3200)
    _cycle(pacer, 320, completed=False)  # the API failed early
    assert pacer.expected == 3200
    _cycle(pacer, 320, completed=True)  # the cloud did shrink
    assert pacer.expected == 320


def test_no_spreading_with_a_zero_share():
    pacer = _pacer(send_spread=0, send_rate=1000)
    _cycle(pacer, 3200)
    assert _cycle(pacer, 3200, start=10.0)[1] == pytest.approx(13.2 - 0.032)


def test_a_send_rate_too_slow_for_the_interval_is_told_once(caplog):
    caplog.set_level(logging.INFO, logger='magnetodb_statsd_middleware')
    pacer = _pacer(interval=10, send_rate=100)
    for _ in range(3):
        _cycle(pacer, 3200)  # 32 s at 100 a second
    _cycle(pacer, 320)
    _cycle(pacer, 320)
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert len(messages) == 2
    assert messages[0][0] == 'WARNING'
    assert 'send_rate 100' in messages[0][1] and '32 s' in messages[0][1]
    assert messages[1][0] == 'INFO'


# On real sockets ------------------------------------------------------------

def _sizes(count):
    size = metrics.TABLE['size']
    return [(size, ('p', 't%05d' % i), i) for i in range(count)]


def test_a_second_cycle_is_spread_on_the_wire(udp):
    settings = peers.make_settings(statsd_port=udp.port, interval=INTERVAL,
                                   send_spread=SPREAD, send_rate=0)
    pacer = pacing.Pacer(settings)
    durations = []
    for _ in range(2):
        started = compat.monotonic()
        with emitter.Emitter(settings, pacer) as sink:
            sink.send(_sizes(6000))
        durations.append(compat.monotonic() - started)
        pacer.end(True)
    datagrams = sink.sent
    assert datagrams * 512 > 10 * emitter.BATCH_BYTES
    # The first cycle is unpaced (send_rate 0). The second one's last
    # batch (a tenth of them at most) is due 1 s after its start, less
    # that tenth: load cannot make it faster, only later.
    assert durations[0] < durations[1]
    assert 0.9 <= durations[1] <= SPREAD * INTERVAL + peers.SCHEDULING_SLACK
    peers.wait_for(lambda: len(udp.drain()) >= 2 * datagrams, timeout=10,
                   message='every datagram')
    assert len(udp.lines) == 12000


def test_the_collector_paces_its_next_cycle_from_the_last(serve, udp):
    app = fakeapi.FakeMonitoringAPI(fakeapi.build_dataset(projects=20,
                                                          tables=100))
    settings = peers.make_settings(monitoring_url=serve(app).url,
                                   statsd_port=udp.port, interval=INTERVAL,
                                   send_spread=SPREAD, send_rate=0)
    pacer = pacing.Pacer(settings)
    durations = []
    for _ in range(2):
        started = compat.monotonic()
        result = cycle.run_cycle(settings, outages.OutageLog(), pacer=pacer)
        durations.append(compat.monotonic() - started)
        assert result.completed
    assert pacer.expected * 512 > 10 * emitter.BATCH_BYTES
    assert 0.9 <= durations[1] <= SPREAD * INTERVAL + peers.SCHEDULING_SLACK
