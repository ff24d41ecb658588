"""Run the figures: ``python -m benchmarks [--only 1,2] [--profile]
[--list]``.

The 1,000,000-table figures (``--only 7,8,9,12``) take several minutes,
and so does figure 13 (MagnetoDB 2015.1's own servers, CPython 3 only);
``--profile`` prints where a 100,000-table cycle spends its CPU instead.
"""

from __future__ import print_function

import argparse
import multiprocessing
import os
import sys
import tempfile

from benchmarks import common
from benchmarks import cpu
from benchmarks import delivery
from benchmarks import latency
from benchmarks import memory
from benchmarks import request_path
from benchmarks import sharing
from tests.support import peers

# Every figure, in the order they run: (number, tables, what it measures).
FIGURES = (
    ('1', '1,000', 'request through the collecting filter / pass-through'),
    ('2', '100,000', 'collector CPU / minimal stdlib loop'),
    ('3', '100,000', 'request latency during a cycle (eventlet, gthread)'),
    ('4', '100,000', 'gauges delivered to Etsy statsd, first and next cycle'),
    ('5', '100,000', 'peak RSS of a cycle; RSS growth over 1,000 cycles'),
    ('6', '100,000', 'datagram fill at max_packet_size'),
    ('11a', '100,000', 'memory between cycles kept by top_tables=1000'),
    ('11b', '100,000', 'CPU per table, dogstatsd labels / dotted names'),
    ('7', '1,000,000', 'cycle duration and delivery, production settings'),
    ('8', '1,000,000', 'peak RSS and RSS growth of cycles'),
    ('9', '1,000,000', 'request latency during a cycle (eventlet, gthread)'),
    ('12', '1,000,000', 'memory held by the stuck clock, 1% passing'),
    ('13', '20,000', 'one MagnetoDB host against three sharing the walk'),
)


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        prog='python -m benchmarks',
        description='The performance figures, each beside its target; '
                    'exit 1 on a miss.')
    parser.add_argument('--only', help='comma-separated figure numbers '
                        '(--list shows them): 1-6, 11a and 11b at 100,000 '
                        'tables, 7-9 and 12 at 1,000,000, 13 in MagnetoDB '
                        'servers')
    parser.add_argument('--profile', action='store_true',
                        help='profile one 100,000-table cycle and stop')
    parser.add_argument('--list', action='store_true',
                        help='list the figures and stop')
    args = parser.parse_args(argv)
    known = set(number for number, _, _ in FIGURES)
    args.only = set(args.only.split(',')) if args.only else known
    if args.only - known:
        parser.error('unknown figures: %s' % ', '.join(sorted(args.only
                                                                - known)))
    return args


def _run(args, workdir, fixture, daemon):
    """The figures of ``args.only``; ``fixture(size)`` and ``daemon()``
    start what they need once, on first use."""
    if args.profile:
        cpu.profile_cycle(fixture(common.BIG))
        return
    only = args.only

    def big():
        return fixture(common.BIG)

    if '1' in only:
        request_path.bench_request_path(fixture(common.SMALL))
    if '2' in only:
        cpu.bench_cpu(big())
    if '3' in only:
        latency.bench_latency(big(), daemon(), workdir, '3. 100k', '100k')
    if '4' in only:
        delivery.bench_delivery(big(), daemon())
    if '5' in only:
        memory.bench_memory(big(), fixture(common.SMALL))
    if '6' in only:
        delivery.bench_fill(big())
    if '11a' in only:
        memory.bench_top_tables_memory(big())
    if '11b' in only:
        cpu.bench_label_cpu(big())
    if '7' in only:
        delivery.bench_million_delivery(fixture(common.HUGE), workdir)
    if '8' in only:
        memory.bench_million_memory(fixture(common.HUGE))
    if '9' in only:
        latency.bench_million_latency(fixture(common.HUGE), workdir)
    if '12' in only:
        memory.bench_stuck_memory(fixture(common.HUGE_PASSING))
    if '13' in only:
        sharing.bench_sharing(workdir)


def main(argv=None):
    args = _parse_args(argv)
    if args.list:
        for number, tables, title in FIGURES:
            print('%-4s %9s tables  %s' % (number, tables, title))
        return 0
    common.say('python %s, %d cores, %s; load average %s'
               % (sys.version.split()[0], multiprocessing.cpu_count(),
                  os.uname()[2], common.load()))
    workdir = tempfile.mkdtemp(prefix='magnetodb-statsd-bench-')
    fixtures = {}
    daemons = []

    def fixture(size):
        key = tuple(sorted(size.items()))
        if key not in fixtures:
            fixtures[key] = common.FixtureProcess(**size)
        return fixtures[key]

    def daemon():
        if not daemons:
            daemons.append(peers.StatsdDaemon(workdir))
        return daemons[0]

    try:
        _run(args, workdir, fixture, daemon)
    finally:
        for started in daemons:
            started.stop()
        for process in fixtures.values():
            process.stop()
    if args.profile:
        return 0
    missed = [name for name, _, _, ok in common.RESULTS if ok is False]
    common.say('%d figures, %d missed; load average %s'
               % (len(common.RESULTS), len(missed), common.load()))
    return 1 if missed else 0


if __name__ == '__main__':
    sys.exit(main())
