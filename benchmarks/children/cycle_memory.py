"""RSS of a process that runs collector cycles, one after another.

``python -m benchmarks.children.cycle_memory URL STATSD_PORT CYCLES
EARLY`` prints four byte counts: the RSS with everything imported and no
cycle run yet, the peak RSS (VmHWM), and the RSS after cycle EARLY and
after the last cycle (each after a garbage collection).
"""

from __future__ import print_function

import gc
import sys

from benchmarks.children import rss
from magnetodb_statsd_middleware import cycle
from magnetodb_statsd_middleware import outages
from tests.support import peers


def main(url, statsd_port, cycles, early):
    settings = peers.make_settings(
        monitoring_url=url, lock_path='', statsd_port=int(statsd_port),
        send_rate=0, request_timeout=60)
    cycles, early = int(cycles), int(early)
    gc.collect()
    before = rss.current()
    samples = []
    for number in range(cycles):
        assert cycle.run_cycle(settings, outages.OutageLog()).completed
        if number in (early, cycles - 1):
            gc.collect()
            samples.append(rss.current())
    print(before, rss.peak(), samples[0], samples[-1])


if __name__ == '__main__':
    main(*sys.argv[1:5])
