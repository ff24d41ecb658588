"""Draw the dashboard's main panels as PNGs from a demo run.

``python3 -m tox -e pictures`` runs it (``python -m
tools.draw_dashboard_pictures [DIR]`` from the repository root, in an
environment with the package and its test extras; DIR defaults to
doc/source/images). A demo cloud is collected every 2 s for 2.5 minutes
by the collector's own cycle and sent through the Etsy statsd daemon's
graphite backend to Debian's carbon-cache, as in the tests
(tests/support/graphite_peer.py): projects whose tables grow at
different rates, a table that is compacted, a host whose storage fails
for a while, and a monitoring API that fails for a while. graphite-web's
render API then draws each main panel of etc/grafana/magnetodb-statsd.json,
its query as Grafana sends it, into DIR/dashboard-*.png.
"""

from __future__ import print_function

import os
import shutil
import sys
import tempfile
import time

from magnetodb_statsd_middleware import cycle
from magnetodb_statsd_middleware import outages
from magnetodb_statsd_middleware.demo import fakeapi
from tests.support import grafana
from tests.support import graphite_peer
from tests.support import peers

ROOT = peers.ROOT

DURATION = 150
INTERVAL = 2
PREFIX = 'magnetodb'

# project: {table: (bytes at start, bytes added per second)}
CLOUD = {
    'billing': {'invoices': (380e6, 900e3), 'payments': (210e6, 350e3),
                'ledger': (90e6, 120e3)},
    'catalog': {'products': (300e6, 100e3), 'prices': (120e6, 500e3),
                'images': (40e6, 60e3)},
    'search': {'documents': (420e6, 200e3), 'queries': (160e6, 1300e3)},
    'sessions': {'sessions': (260e6, 600e3), 'tokens': (30e6, 50e3)},
    'audit': {'events': (150e6, 1000e3), 'archive': (340e6, 0)},
    'mail': {'messages': (80e6, 250e3), 'contacts': (20e6, 10e3)},
}
ITEM_BYTES = 400
COMPACTED = ('audit', 'archive')  # shrinks to a third half-way through

# (panel title, file name, render options beyond the common ones)
PICTURES = [
    ('10 largest tables by size', 'dashboard-largest-tables.png',
     {'yUnitSystem': 'binary', 'height': 330}),
    ('Largest projects by size', 'dashboard-largest-projects.png',
     {'yUnitSystem': 'binary', 'areaMode': 'stacked'}),
    ('Size of all tables', 'dashboard-total-size.png',
     {'yUnitSystem': 'binary'}),
    ('API subsystems per host', 'dashboard-api-health.png',
     {'yMin': -0.1, 'yMax': 1.1, 'height': 300}),
    ('Cycle duration', 'dashboard-cycle-duration.png',
     {'drawNullAsZero': 'false', 'lineMode': 'connected'}),
]
COMMON = {'width': 720, 'height': 280, 'bgcolor': 'white',
          'fgcolor': 'black', 'majorGridLineColor': '#bbbbbb',
          'minorGridLineColor': '#eeeeee', 'lineWidth': 2, 'fontSize': 10}


def dataset(elapsed):
    """The demo cloud ``elapsed`` seconds into the run."""
    data = {}
    for project, tables in CLOUD.items():
        rows = []
        for table, (start, per_second) in sorted(tables.items()):
            size = start + per_second * elapsed
            if (project, table) == COMPACTED and elapsed > DURATION / 2:
                size /= 3
            rows.append(fakeapi.Table(table, 'ACTIVE', int(size),
                                      int(size / ITEM_BYTES)))
        data[project] = rows
    return data


def health(elapsed):
    """``{host: its health check's subsystems}`` at ``elapsed``: api-2's
    storage fails during the middle fifth of the run."""
    storage = 'ERROR' if 0.4 * DURATION < elapsed < 0.6 * DURATION else 'OK'
    return {'api-1': {'API': 'OK', 'Identity': 'OK', 'Storage': 'OK'},
            'api-2': {'API': 'OK', 'Identity': 'OK', 'Storage': storage}}


def run_demo(graphite, daemon):
    api = fakeapi.FakeMonitoringAPI(dataset(0))
    checks = dict((host, fakeapi.FakeHealthCheck())
                  for host in health(0))
    servers = [peers.LoopbackServer(api)] + [
        peers.LoopbackServer(check) for check in checks.values()]
    ports = dict(zip(checks, [s.port for s in servers[1:]]))
    started = time.time()
    try:
        while time.time() - started < DURATION:
            elapsed = time.time() - started
            api.load(dataset(elapsed))
            api.fault = ('http500' if 0.75 * DURATION < elapsed
                         < 0.85 * DURATION else 'none')
            for host, subsystems in health(elapsed).items():
                checks[host].subsystems = subsystems
                settings = peers.make_settings(
                    statsd_port=daemon.port, metric_prefix=PREFIX,
                    monitoring_url=servers[0].url,
                    healthcheck_url='http://127.0.0.1:%d/healthcheck'
                                    '?fullcheck=true' % ports[host],
                    host_name=host)
                cycle.run_cycle(settings, outages.OutageLog(),
                                tables=host == 'api-1')
            print('\r%3ds of %ds' % (elapsed, DURATION), end='')
            sys.stdout.flush()
            time.sleep(max(0, started + elapsed + INTERVAL - time.time()))
        print()
        time.sleep(3)  # the last flushes
    finally:
        for server in servers:
            server.close()
    return started


def draw(graphite, started, folder):
    dashboard = grafana.load()
    now = int(time.time())
    for title, name, options in PICTURES:
        (target,) = [t['target'] for t in
                     grafana.panel(dashboard, title)['targets']]
        query = grafana.interpolate(
            dashboard, target, {'prefix': PREFIX, 'project': 'All'}, now)
        params = dict(COMMON, title=title, until=now,
                      **{'from': int(started) - 5})
        params.update(options)
        path = graphite.render_png(os.path.join(folder, name), [query],
                                   **params)
        print('drew %s: %s' % (path, query))


def main(argv):
    folder = os.path.abspath(
        argv[0] if argv else os.path.join(ROOT, 'doc', 'source', 'images'))
    if not os.path.isdir(folder):
        os.makedirs(folder)
    workdir = tempfile.mkdtemp(prefix='magnetodb-statsd-pictures-')
    graphite = graphite_peer.Graphite(os.path.join(workdir, 'graphite'))
    daemon = None
    try:
        daemon = peers.StatsdDaemon(workdir, graphite_port=graphite.line_port,
                                    flush_interval=1000)
        started = run_demo(graphite, daemon)
        draw(graphite, started, folder)
    finally:
        if daemon is not None:
            daemon.stop()
        graphite.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
