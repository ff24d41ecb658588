"""Measure what Gnocchi's statsd daemon loses at each ``send_rate``.

``python -m tools.measure_gnocchi_pacing [--flush-delay S] RATE...`` from
the repository root, in an environment with the package and its test
extras, after tools/install-peers.sh (``python3 -m tox -e gnocchi-pacing
-- RATE...`` does both). Debian's gnocchi-statsd runs as in the tests
(tests/support/gnocchi_peer.py), with ``flush_delay`` S (1 by default,
Gnocchi's own default is 10); 1,172 tables (the long-names dataset and
876 ordinary tables of one project) are sent by the collector's own
cycle at each RATE (0: no limit), twice per naming (dotted, then
``label_mode = graphite``): a first cycle, whose metrics Gnocchi creates,
and a second. Each line printed gives the datagrams the daemon's socket
dropped during a cycle (its ``drops`` in /proc/net/udp), read once the
daemon has emptied its socket and flushed, and how many of the table,
project and total gauges it holds with the value sent (so far: a gauge
lost in a first cycle arrives with the next).
doc/source/receivers/gnocchi.rst reports the figures.
"""

from __future__ import print_function

import argparse
import shutil
import tempfile
import time

from magnetodb_statsd_middleware import cycle
from magnetodb_statsd_middleware import outages
from magnetodb_statsd_middleware.demo import fakeapi
from tests.support import gnocchi_peer
from tests.support import peers

USER_LABELS = (('region', 'r1'),)
MODES = ('disabled', 'graphite')


def dataset():
    tables = fakeapi.build_long_names_dataset()
    tables.update(fakeapi.build_dataset(projects=0, tables=0, big=(876,),
                                        seed=3))
    return tables


def _receive_queue(gnocchi):
    """Bytes waiting in the daemon's socket (/proc/net/udp rx_queue)."""
    local = '0100007F:%04X' % gnocchi.port
    with open('/proc/net/udp') as f:
        for line in f.read().splitlines()[1:]:
            fields = line.split()
            if fields[1] == local:
                return int(fields[4].split(':')[1], 16)
    raise AssertionError('gnocchi-statsd has no socket on %s' % local)


def _settle(gnocchi):
    """Until the socket stays empty for 2 s across a flush."""
    for wait in (0, gnocchi.flush_delay + 1):
        time.sleep(wait)
        peers.wait_for(lambda: _receive_queue(gnocchi) == 0, timeout=600,
                       interval=0.5, message='an empty socket')
        time.sleep(2)


def _stored_right(gnocchi, prefix, gauges):
    """How many ``gauges`` Gnocchi holds with their value, once two reads
    in a row agree (a flush may still be creating metrics)."""
    last = None
    while True:
        stored = gnocchi.gauges(prefix + '.')
        right = sum(1 for name, value in gauges.items()
                    if stored.get(name) == value)
        if right == last:
            return right
        last = right
        time.sleep(gnocchi.flush_delay + 1)


def expected(tables, mode, prefix):
    if mode == 'disabled':
        return peers.expected_gauges(tables, prefix)
    return peers.expected_labeled(tables, prefix, False, USER_LABELS,
                                  mode=mode)


def datagrams_per_cycle(api_url, mode):
    receiver = peers.UDPReceiver()
    try:
        cycle.run_cycle(_settings(api_url, receiver.port, 'pacing0', mode, 0),
                        outages.OutageLog())
        return len(receiver.drain())
    finally:
        receiver.close()


def _settings(api_url, port, prefix, mode, rate):
    return peers.make_settings(monitoring_url=api_url, statsd_port=port,
                               metric_prefix=prefix, send_rate=rate,
                               label_mode=mode, user_labels=USER_LABELS,
                               interval=60)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--flush-delay', type=int, default=1)
    parser.add_argument('rates', type=int, nargs='+', metavar='RATE')
    args = parser.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix='gnocchi-pacing-')
    gnocchi = gnocchi_peer.Gnocchi(workdir, flush_delay=args.flush_delay)
    tables = dataset()
    api = peers.LoopbackServer(fakeapi.FakeMonitoringAPI(tables))
    try:
        print('gnocchi-statsd %s, %s, flush_delay %d, %d tables' % (
            gnocchi.version, gnocchi.postgresql.version, args.flush_delay,
            sum(len(rows) for rows in tables.values())))
        for mode in MODES:
            print('%s: %d datagrams a cycle' % (
                mode, datagrams_per_cycle(api.url, mode)))
        number = 0
        for rate in args.rates:
            for mode in MODES:
                number += 1
                prefix = 'pacing%d' % number
                gauges = expected(tables, mode, prefix)
                for run in ('first', 'second'):
                    dropped = gnocchi.dropped()
                    cycle.run_cycle(_settings(api.url, gnocchi.port, prefix,
                                              mode, rate),
                                    outages.OutageLog())
                    _settle(gnocchi)
                    dropped = gnocchi.dropped() - dropped
                    right = _stored_right(gnocchi, prefix, gauges)
                    print('send_rate %5d  %-8s  %-6s cycle: %4d datagrams '
                          'dropped, %d/%d gauges right, %d names refused'
                          % (rate, mode, run, dropped, right, len(gauges),
                             len(gnocchi.refused(prefix + '.'))))
    finally:
        api.close()
        gnocchi.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == '__main__':
    main()
