"""See metrics flow in seconds, without a MagnetoDB: ``magnetodb-statsd-demo``.

This package is the demo and nothing else: :func:`main` here, and in
:mod:`.fakeapi` the MagnetoDB-compatible monitoring API it serves in place
of MagnetoDB's (the tests and benchmarks serve it too). The filter never
imports it. ``python3 -m magnetodb_statsd_middleware.demo`` runs
:func:`main`, as the console script does.

It writes an ``api-paste.ini`` shaped like MagnetoDB's (urlmap composite,
``oslo_config_args``) whose monitoring pipeline holds the statsd filter in
front of a MagnetoDB-compatible monitoring API with synthetic, growing
tables and a health check; serves it with eventlet.wsgi like
``magnetodb-api-server``; and prints every line that reaches a UDP port
standing in for StatsD (or sends to a real daemon with ``--statsd-host``).
Ctrl-C ends it.
"""

import argparse
import logging
import os
import signal
import socket
import sys
import tempfile
import warnings

from magnetodb_statsd_middleware import compat
from magnetodb_statsd_middleware import dialects

PASTE_INI = """\
[DEFAULT]
oslo_config_args = --config-file $here/magnetodb-api.conf

[composite:main]
use = egg:Paste#urlmap
/v1/monitoring/projects = monitoring_api
/healthcheck = health_check

[pipeline:monitoring_api]
pipeline = statsd monitoring_app

[filter:statsd]
paste.filter_factory = magnetodb_statsd_middleware:filter_factory

[app:monitoring_app]
paste.app_factory = magnetodb_statsd_middleware.demo.fakeapi:app_factory
projects = {projects}
tables = {tables}
growth = 0.01

[app:health_check]
paste.app_factory = magnetodb_statsd_middleware.demo.fakeapi:health_app_factory
"""

CONF = """\
[statsd]
enabled = true
statsd_host = {statsd_host}
statsd_port = {statsd_port}
interval = {interval}
monitoring_url = http://127.0.0.1:{api_port}/v1/monitoring/projects
healthcheck_url = http://127.0.0.1:{api_port}/healthcheck?fullcheck=true
host_name = demo-host
lock_path =
label_mode = {label_mode}
"""


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        prog='magnetodb-statsd-demo', description=__doc__.split('\n')[0])
    parser.add_argument('--projects', type=int, default=3)
    parser.add_argument('--tables', type=int, default=4,
                        help='tables per project')
    parser.add_argument('--interval', type=int, default=2)
    parser.add_argument('--statsd-host',
                        help='send to this StatsD daemon instead of '
                             'printing the lines')
    parser.add_argument('--statsd-port', type=int, default=8125)
    parser.add_argument('--label-mode', default='disabled',
                        choices=dialects.LABEL_MODES,
                        help='the label_mode option: dotted names or a '
                             'label dialect')
    return parser.parse_args(argv)


def _print_datagrams(sock):
    while True:
        data = sock.recv(65536)
        for line in data.decode('ascii', 'replace').split('\n'):
            compat.write_line(sys.stdout, 'statsd <- %s' % line)


def main(argv=None):
    args = _parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format='%(asctime)s %(levelname)s %(name)s: '
                               '%(message)s')
    warnings.filterwarnings('ignore', message='.*Eventlet is deprecated')
    import eventlet
    eventlet.monkey_patch()
    import eventlet.wsgi
    from paste import deploy

    listener = eventlet.listen(('127.0.0.1', 0))
    api_port = listener.getsockname()[1]
    statsd_host, statsd_port = args.statsd_host, args.statsd_port
    if statsd_host is None:
        receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        receiver.bind(('127.0.0.1', 0))
        statsd_host, statsd_port = receiver.getsockname()
        eventlet.spawn_n(_print_datagrams, receiver)

    workdir = tempfile.mkdtemp(prefix='magnetodb-statsd-demo-')
    with open(os.path.join(workdir, 'api-paste.ini'), 'w') as f:
        f.write(PASTE_INI.format(projects=args.projects, tables=args.tables))
    with open(os.path.join(workdir, 'magnetodb-api.conf'), 'w') as f:
        f.write(CONF.format(statsd_host=statsd_host, statsd_port=statsd_port,
                            interval=args.interval, api_port=api_port,
                            label_mode=args.label_mode))
    compat.write_line(sys.stdout, 'Monitoring API: http://127.0.0.1:%d'
                      '/v1/monitoring/projects' % api_port)
    compat.write_line(sys.stdout, 'Config: %s; StatsD: %s:%d; Ctrl-C ends '
                      'the demo.' % (workdir, statsd_host, statsd_port))
    app = deploy.loadapp('config:' + os.path.join(workdir, 'api-paste.ini'))
    # Ctrl-C ends the demo, also when it was started with SIGINT ignored
    # (a background job of a shell script).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        eventlet.wsgi.server(listener, app, log=open(os.devnull, 'w'))
    except KeyboardInterrupt:
        pass
    compat.write_line(sys.stdout, 'Demo stopped.')
    return 0
