"""Figures 2 and 11b: the collector's CPU per table, beside a minimal
stdlib loop doing the same fetches and sends, and with labels beside
dotted names; ``--profile``: where a cycle's CPU goes."""

from __future__ import division

import contextlib
import cProfile
import json
import os
import pstats
import re
import socket

from six.moves.urllib import request as urllib_request

from benchmarks import common
from magnetodb_statsd_middleware import compat
from magnetodb_statsd_middleware import cycle
from magnetodb_statsd_middleware import httpget
from magnetodb_statsd_middleware import listing
from magnetodb_statsd_middleware import monitoring
from magnetodb_statsd_middleware import outages
from tests.support import peers


def baseline_cycle(fixture, targets, port, max_packet_size, prefix):
    """A minimal stdlib loop doing the same fetches and sends."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    address = ('127.0.0.1', port)
    origin = 'http://127.0.0.1:%d' % fixture.port
    seen = set()
    datagram = ''
    for target in targets:
        with contextlib.closing(urllib_request.urlopen(origin + target,
                                                       timeout=60)) as r:
            rows = json.loads(r.read().decode('utf-8'))
        for row in rows:
            key = (row['tenant'], row['name'])
            if key in seen:
                continue
            seen.add(key)
            for metric, value in row['usage_detailes'].items():
                line = '%s.tables.%s.%s.%s:%d|g' % (
                    prefix, row['tenant'], row['name'], metric, value)
                if len(datagram) + len(line) + 1 > max_packet_size:
                    sock.sendto(datagram.encode('ascii'), address)
                    datagram = line
                else:
                    datagram = datagram + '\n' + line if datagram else line
    if datagram:
        sock.sendto(datagram.encode('ascii'), address)
    sock.close()
    return len(seen)


def _recorded_targets(settings):
    """The request targets of one cycle, for the baseline to replay."""
    original = httpget.HttpGetter.get
    targets = []

    def recording(self, path, params, accept=(200,)):
        targets.append(path + '?' + compat.urlencode(params))
        return original(self, path, params, accept)

    httpget.HttpGetter.get = recording
    try:
        result = common.run_cycle(settings)
    finally:
        httpget.HttpGetter.get = original
    assert result.completed, result.error
    return targets


def bench_cpu(fixture):
    udp_port = peers.free_port(socket.SOCK_DGRAM)  # nobody listens
    settings = common.make_settings(fixture, udp_port, send_rate=0)
    targets = _recorded_targets(settings)
    ours, theirs = [], []
    for _ in range(9):
        result, spent = common.cpu_of(lambda: common.run_cycle(settings))
        ours.append(spent)
        tables, spent = common.cpu_of(lambda: baseline_cycle(
            fixture, targets, udp_port, 512, 'magnetodb'))
        theirs.append(spent)
    assert tables == result.counts.tables
    # The CPU time of one loop moves by a third from one run to the next
    # on this shared virtual machine: each of our runs is compared with
    # the baseline's run right after it, and the median of those ratios
    # is the figure (the best of each side may come from different
    # states of the machine).
    ratios = sorted(a / b for a, b in zip(ours, theirs))
    ratio = ratios[len(ratios) // 2]
    common.report('2. collector CPU / minimal stdlib loop, %d tables'
                  % result.counts.tables, '%.2fx' % ratio, '<= 1.30x',
                  ratio <= 1.3 if common.JUDGED else None)
    common.say('   ratios of 9 interleaved pairs %.2f-%.2fx; CPU per table, '
               'best of 9: ours %.1f us, baseline %.1f us; %d pages'
               % (ratios[0], ratios[-1], min(ours) / tables * 1e6,
                  min(theirs) / tables * 1e6, result.counts.pages))


def bench_label_cpu(big):
    """CPU per table of a labeled cycle beside the dotted names."""
    port = peers.free_port(socket.SOCK_DGRAM)  # nobody listens
    modes = (('disabled', 0), ('dogstatsd', 0), ('dogstatsd', 1000))
    best = dict.fromkeys(modes, float('inf'))
    tables = 0
    for _ in range(5):  # interleaved; the best of each, on a noisy machine
        for mode, top in modes:
            settings = common.make_settings(big, port, send_rate=0,
                                            label_mode=mode, top_tables=top)
            result, spent = common.cpu_of(lambda: common.run_cycle(settings))
            best[mode, top] = min(best[mode, top], spent)
            assert result.completed, result.error
            tables = result.counts.tables
    per_table = dict((key, spent / tables * 1e6)
                     for key, spent in best.items())
    common.say('   CPU per table: dotted %.1f us, dogstatsd %.1f us, '
               'dogstatsd with top_tables=1000 %.1f us'
               % (per_table['disabled', 0], per_table['dogstatsd', 0],
                  per_table['dogstatsd', 1000]))
    ratio = best['dogstatsd', 0] / best['disabled', 0]
    common.report('11b. CPU per table, dogstatsd / dotted names, %d tables'
                  % tables, '%.2fx' % ratio, '<= 1.10x',
                  ratio <= 1.10 if common.JUDGED else None)


class _CountingSink(object):
    """A sink that only walks the measurements: the cost of making them."""

    oversize = sent = unsent = 0

    def __init__(self, settings, pacer=None):
        self.seen = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        pass

    def send(self, measurements):
        for _ in measurements:
            self.seen += 1


def stage_split(fixture, settings):
    """CPU of a cycle's stages, without a profiler: reading and grouping
    the pages, making the gauges, and lines, datagrams and the socket
    (each the difference with the step before); the socket alone (as
    many sendto() of as many bytes) is the share no code of ours can
    save."""
    def read_only():
        client = monitoring.MonitoringClient(settings)
        try:
            for _ in listing.Walk(client).projects():
                pass
        finally:
            client.close()

    tables = common.run_cycle(settings).counts.tables
    # Every datagram of a cycle, read while they come: a receiver read
    # after the cycle would see only what its buffer held.
    receiver = peers.UDPReceiver()
    counted = common.make_settings(fixture, receiver.port, send_rate=0)
    reader = peers.start_thread(receiver.drain)
    common.run_cycle(counted)
    reader.join()
    receiver.drain()
    sizes = [len(d) for d in receiver.datagrams]
    receiver.close()

    def sendto_only():
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        address = ('127.0.0.1', settings.statsd_port)
        for size in sizes:
            sock.sendto(b'x' * size, address)
        sock.close()

    read = common.best_cpu(read_only)
    made = common.best_cpu(lambda: cycle.run_cycle(
        settings, outages.OutageLog(), _CountingSink))
    full = common.best_cpu(lambda: common.run_cycle(settings))
    socket_only = common.best_cpu(sendto_only)
    common.say('CPU per table of a %d-table cycle, by stage (best of 5):'
               % tables)
    for name, spent in (
            ('read, decode and group the pages', read),
            ('make the gauges (names, values, sums)', made - read),
            ('lines, datagrams, sendto() (%d datagrams)' % len(sizes),
             full - made),
            ('   of which sendto() itself', socket_only),
            ('whole cycle', full)):
        common.say('   %6.2f us  %s' % (spent / tables * 1e6, name))


def profile_cycle(fixture):
    """Where a cycle's CPU goes: by stage, then cProfile on CPU time, by
    function and by the file that spends it."""
    settings = common.make_settings(
        fixture, peers.free_port(socket.SOCK_DGRAM), send_rate=0)
    common.run_cycle(settings)  # warm up the connection and the caches
    stage_split(fixture, settings)
    profiler = cProfile.Profile(common.cpu_time)
    profiler.enable()
    result = common.run_cycle(settings)
    profiler.disable()
    assert result.completed, result.error
    stats = pstats.Stats(profiler)
    total = stats.total_tt
    common.say('cProfile of one %d-table cycle: %.2f s of CPU under the '
               'profiler (its own overhead inflates the many small calls)'
               % (result.counts.tables, total))
    by_place = {}
    for (path, _, function), row in stats.stats.items():
        place = os.path.basename(path) if path != '~' else function
        place = re.sub(r'^<(built-in )?method ', '', place)
        by_place[place] = by_place.get(place, 0.0) + row[2]
    common.say('   own time by file (or builtin):')
    for place, spent in sorted(by_place.items(), key=lambda i: -i[1])[:14]:
        common.say('   %5.1f %%  %s' % (100 * spent / total, place))
    common.say('   top functions:')
    stats.sort_stats('tottime').print_stats(16)
