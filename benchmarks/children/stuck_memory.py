"""Memory the stuck clock holds between collector cycles.

``python -m benchmarks.children.stuck_memory URL STATSD_PORT MODE
CYCLES``: MODE ``kept`` keeps one clock from cycle to cycle, as the
scheduler does; ``fresh`` starts a new one every cycle, and so holds
nothing between cycles. Prints the RSS before the first cycle, the
largest RSS between cycles, the tables of the last cycle, the tables
the clock remembers and the bytes of the clock's own objects, counted
one by one.
"""

from __future__ import print_function

import gc
import sys

from benchmarks.children import rss
from magnetodb_statsd_middleware import cycle
from magnetodb_statsd_middleware import outages
from magnetodb_statsd_middleware import stuck
from tests.support import peers


def _bytes_held(clock):
    held = sys.getsizeof(clock._since)
    for project, tables in clock._since.items():
        held += sys.getsizeof(project) + sys.getsizeof(tables)
        for name, since in tables.items():
            held += (sys.getsizeof(name) + sys.getsizeof(since)
                     + sys.getsizeof(since[1]))
    return held


def main(url, statsd_port, mode, cycles):
    settings = peers.make_settings(
        monitoring_url=url, lock_path='', statsd_port=int(statsd_port),
        send_rate=0, request_timeout=60)
    kept = mode == 'kept'
    clock = stuck.StuckClock(settings.stuck_after)
    gc.collect()
    before = rss.current()
    between = []
    for _ in range(int(cycles)):
        if not kept:
            clock = stuck.StuckClock(settings.stuck_after)
        result = cycle.run_cycle(settings, outages.OutageLog(), clock=clock)
        assert result.completed, result.error
        gc.collect()
        between.append(rss.current())
    remembered = clock.remembered() if kept else 0
    held = _bytes_held(clock) if kept else 0
    print(before, max(between), result.counts.tables, remembered, held)


if __name__ == '__main__':
    main(*sys.argv[1:5])
