"""Memory the top-N membership holds between collector cycles.

``python -m benchmarks.children.top_memory URL STATSD_PORT LABEL_MODE
TOP_TABLES CYCLES`` keeps one selector from cycle to cycle, as the
scheduler does, and prints the RSS before the first cycle, the largest
RSS between cycles, the tables the last cycle sent and the members the
selector keeps.
"""

from __future__ import print_function

import gc
import sys

from benchmarks.children import rss
from magnetodb_statsd_middleware import cycle
from magnetodb_statsd_middleware import outages
from magnetodb_statsd_middleware import selection
from tests.support import peers


def main(url, statsd_port, label_mode, top_tables, cycles):
    settings = peers.make_settings(
        monitoring_url=url, lock_path='', statsd_port=int(statsd_port),
        send_rate=0, request_timeout=60, label_mode=label_mode,
        top_tables=int(top_tables))
    selector = selection.TableSelector(settings)
    gc.collect()
    before = rss.current()
    between = []
    for _ in range(int(cycles)):
        result = cycle.run_cycle(settings, outages.OutageLog(),
                                 selector=selector)
        assert result.completed, result.error
        gc.collect()
        between.append(rss.current())
    print(before, max(between), result.counts.tables_sent,
          selector.member_count())


if __name__ == '__main__':
    main(*sys.argv[1:6])
