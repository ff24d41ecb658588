"""``magnetodb-statsd``: the same collector outside the API server.

* no mode: a standalone service (the original blueprint's design) until
  SIGTERM or SIGINT, with the same options, lock and metrics;
* ``--once``: one cycle; exit 0 if it completed, 1 with a one-line error;
* ``--dry-run``: print the metric lines instead of sending them (with
  ``--once``, a configuration test like ``telegraf --test``);
* ``--check``: validate the configuration, get a Keystone token (with
  ``auth_type``), reach the monitoring API and the health check, resolve
  the StatsD host; one line each, exit 1 on failure.

The ``[statsd]`` group is read from ``--config-file``/``--config-dir``;
``enabled`` is ignored here: running the command is the switch.
"""

import logging
import signal
import sys
import threading

from oslo_config import cfg

from magnetodb_statsd_middleware import compat
from magnetodb_statsd_middleware import config
from magnetodb_statsd_middleware import cycle
from magnetodb_statsd_middleware import emitter
from magnetodb_statsd_middleware import health
from magnetodb_statsd_middleware import keystone
from magnetodb_statsd_middleware import monitoring
from magnetodb_statsd_middleware import outages
from magnetodb_statsd_middleware import scheduler

PROG = 'magnetodb-statsd'

CLI_OPTS = [
    cfg.BoolOpt('once', default=False,
                help='Run one cycle and exit: 0 if it completed, else 1.'),
    cfg.BoolOpt('dry-run', default=False,
                help='Print every metric line to stdout; send nothing.'),
    cfg.BoolOpt('check', default=False,
                help='Validate the configuration and reach every peer.'),
    cfg.BoolOpt('debug', default=False,
                help='Log at DEBUG level.'),
]


def _fail(message):
    compat.write_line(sys.stderr, '%s: %s' % (PROG, message))
    return 1


def _check(settings, conf):
    """One line per peer; True when every check passed (a WARN line, such
    as a misspelt option name, does not fail it)."""
    results = [('OK', 'configuration', 'valid')]
    results.extend(('WARN', 'configuration', problem)
                   for problem in config.unknown_options(conf))
    auth = keystone.token_source(settings, outages.OutageLog())
    if auth is not None:
        try:
            auth.token()
            results.append(('OK', 'Keystone', 'a token for %s' % auth.whom))
        except keystone.KeystoneError as exc:
            results.append(('FAIL', 'Keystone', compat.to_text(exc)))
    client = monitoring.MonitoringClient(settings, auth)
    try:
        rows = client.probe()
        results.append(('OK', 'monitoring API', 'answered with %d row'
                        % len(rows)))
    except (monitoring.MonitoringError, keystone.KeystoneError) as exc:
        results.append(('FAIL', 'monitoring API', compat.to_text(exc)))
    finally:
        client.close()
    try:
        address, _ = emitter.resolve(settings.statsd_host,
                                     settings.statsd_port)
        results.append(('OK', 'StatsD', '%s resolves to %s, port %d'
                        % (settings.statsd_host, address,
                           settings.statsd_port)))
    except emitter.EmitError as exc:
        results.append(('FAIL', 'StatsD', compat.to_text(exc)))
    if settings.healthcheck_url:
        measurements, error, _ = health.health_measurements(settings, auth)
        overall = measurements[-1][2]  # overall comes last
        results.append(('FAIL' if error else 'OK', 'health check',
                        error or 'overall %d' % overall))
    for status, what, detail in results:
        compat.write_line(sys.stdout, '%-4s %s: %s' % (status, what, detail))
    return all(status != 'FAIL' for status, _, _ in results)


def _serve(settings, sink_factory):
    """Run the collector until SIGTERM or SIGINT, then release the lock."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    collector = scheduler.Scheduler(settings, sink_factory=sink_factory)
    collector.start()
    while not stop.wait(1.0):
        if not collector.alive:
            return _fail('the collector loop stopped')
    collector.stop()
    return 0


def main(argv=None):
    conf = cfg.ConfigOpts()
    conf.register_cli_opts(CLI_OPTS)
    try:
        conf(sys.argv[1:] if argv is None else argv, project='magnetodb',
             prog=PROG)
    except cfg.Error as exc:
        return _fail(compat.to_text(exc).splitlines()[0])
    level = logging.DEBUG if conf.debug else logging.INFO
    if conf.once or conf.check:
        level = logging.CRITICAL  # the outcome is printed instead
    # Before the settings are read: reading them may warn.
    logging.basicConfig(level=level, stream=sys.stderr,
                        format='%(asctime)s %(levelname)s %(name)s: '
                               '%(message)s')
    try:
        settings = config.load_settings(conf=conf, standalone=True)
    except config.ConfigError as exc:
        return _fail(compat.to_text(exc).splitlines()[0])
    sink_factory = (emitter.DryRunEmitter if conf.dry_run
                    else emitter.Emitter)
    if conf.check:
        return 0 if _check(settings, conf) else 1
    if conf.once:
        result = cycle.run_cycle(settings, outages.OutageLog(), sink_factory)
        if not result.completed:
            return _fail(result.error)
        if result.counts.rejected:
            compat.write_line(sys.stderr, '%s: %d values rejected'
                              % (PROG, result.counts.rejected))
        return 0
    return _serve(settings, sink_factory)


if __name__ == '__main__':
    sys.exit(main())
