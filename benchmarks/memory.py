"""Figures 5, 8, 11a and 12: the memory a collector's cycles take and
keep, each measured in a child process of benchmarks/children/ that
starts from a clean heap."""

from __future__ import division

import socket

from benchmarks import common
from tests.support import peers


def _udp_port():
    return peers.free_port(socket.SOCK_DGRAM)  # nobody listens


def _cycle_memory(fixture, cycles, early=0):
    return common.run_child('cycle_memory', fixture.url, _udp_port(), cycles,
                            early)


def bench_memory(big, small):
    before, peak, _, _ = _cycle_memory(big, 1)
    added = (peak - before) / 2 ** 20
    common.report('5. peak RSS added by a 100k-table cycle', '%.1f' % added,
                  '<= 50 MB', added <= 50, ' MB')
    _, _, early, late = _cycle_memory(small, 1000, early=100)
    growth = (late - early) / 2 ** 20
    common.report('5. RSS growth, cycle 100 -> 1000 (1,000 tables)',
                  '%.2f' % growth, '<= 1 MB', growth <= 1, ' MB')


def bench_million_memory(huge, cycles=5):
    before, peak, early, late = _cycle_memory(huge, cycles, early=1)
    added = (peak - before) / 2 ** 20
    common.report('8. peak RSS added by 1M-table cycles', '%.1f' % added,
                  '<= 50 MB', added <= 50, ' MB')
    growth = (late - early) / 2 ** 20
    common.report('8. RSS growth, 1M-table cycle 2 -> %d' % cycles,
                  '%.2f' % growth, '<= 1 MB', growth <= 1, ' MB')


def bench_top_tables_memory(big):
    """Memory held between cycles by the top-N membership."""
    held = {}
    for top in (0, 1000):
        before, between, sent, members = common.run_child(
            'top_memory', big.url, _udp_port(), 'dogstatsd', top, 3)
        held[top] = (between - before) / 2 ** 20
        common.say('   top_tables = %d: %.1f MB held between cycles, %d '
                   'tables sent, %d members kept'
                   % (top, held[top], sent, members))
    extra = held[1000] - held[0]
    common.report('11a. memory between cycles, top_tables=1000 - '
                  'top_tables=0, 100k tables', '%.1f' % extra, '<= 20 MB',
                  extra <= 20, ' MB')


def bench_stuck_memory(huge):
    """Memory the stuck clock holds between cycles: a collector that keeps
    it, as the scheduler does, beside one that starts a new clock every
    cycle and so holds nothing between cycles. The RSS difference can be
    less than the clock's objects (they may fill pages a cycle freed), so
    the figure is the larger of the two."""
    held = {}
    for mode in ('fresh', 'kept'):
        before, between, tables, remembered, counted = common.run_child(
            'stuck_memory', huge.url, _udp_port(), mode, 3)
        held[mode] = (between - before) / 2 ** 20
        common.say('   %s clock: %.1f MB held between cycles of %d tables, '
                   '%d tables remembered (%.1f MB of objects)'
                   % (mode, held[mode], tables, remembered,
                      counted / 2 ** 20))
    extra = max(held['kept'] - held['fresh'], counted / 2 ** 20)
    common.report('12. memory held between cycles by the stuck clock, 1M '
                  'tables, 1% passing', '%.1f' % extra, '<= 10 MB',
                  extra <= 10, ' MB')
