"""One collection cycle: monitoring API -> table statistics -> StatsD.

This is where a failure's consequence is decided: gauges of projects read
before a failure are still true and are sent; totals only follow a complete
listing; the collector's own metrics say how the cycle went; each failure
goes to the :class:`~.outages.OutageLog`, which decides what to log.
"""

from magnetodb_statsd_middleware import compat
from magnetodb_statsd_middleware import emitter
from magnetodb_statsd_middleware import health
from magnetodb_statsd_middleware import metrics
from magnetodb_statsd_middleware import monitoring
from magnetodb_statsd_middleware import selection

MONITORING = 'monitoring API'
STATSD = 'StatsD'
DATA = 'monitoring data'
HEALTH = 'health check'


class CycleResult(object):
    """How one cycle went: completed or not, its counts, its error."""

    def __init__(self, completed, counts, error=''):
        self.completed = completed
        self.counts = counts
        self.error = error


def _read_listing(settings, client, metric_set, sink):
    """Send every project's measurements; returns the first error, or ''."""
    if not settings.projects:
        for project, tables in client.iter_all_projects():
            sink.send(metric_set.project_measurements(project, tables))
        return ''
    first_error = ''
    for project in settings.projects:
        try:
            tables = client.project_tables(project)
        except monitoring.MonitoringError as exc:
            first_error = first_error or compat.to_text(exc)
            continue
        sink.send(metric_set.project_measurements(project, tables))
    return first_error


def _send_health(settings, outages, sink):
    measurements, error = health.health_measurements(settings)
    sink.send(measurements)
    if error:
        outages.failed(HEALTH, error)
    else:
        outages.succeeded(HEALTH)


def _send_tables(settings, outages, sink, started, selector):
    """The table, project, total and collector metrics; returns the
    CycleResult."""
    metric_set = metrics.MetricSet(settings.metrics, selector)
    counts = metric_set.counts
    client = monitoring.MonitoringClient(settings)
    try:
        error = _read_listing(settings, client, metric_set, sink)
    except monitoring.MonitoringError as exc:
        error = compat.to_text(exc)
    finally:
        client.close()
    if not error and client.bad_rows:
        error = ('%d listing rows lack a project id; totals are withheld'
                 % client.bad_rows)
    # The top N can only be chosen once the listing is over.
    sink.send(metric_set.ranked_tables(complete=not error))
    if error:
        outages.failed(MONITORING, error)
    else:
        outages.succeeded(MONITORING)
        sink.send(metric_set.totals())
    counts.pages = client.pages
    counts.rejected += sink.oversize
    if counts.rejected:
        outages.failed(DATA, 'values that are not integers from 0 to '
                       '2**63-1, or names that cannot be sent, were '
                       'skipped (see collector.values_rejected)')
    else:
        outages.succeeded(DATA)
    # Rows without a project already failed the listing above.
    counts.rejected += client.bad_rows
    sink.send(metrics.collector_measurements(
        counts, not error, (compat.monotonic() - started) * 1000.0))
    return CycleResult(not error, counts, error)


def run_cycle(settings, outages, sink_factory=emitter.Emitter, tables=True,
              selector=None):
    """Collect once and send; never raises for an expected failure.

    The health check and the table listing are independent: either may
    fail without stopping the other. ``tables=False`` (another host holds
    the cluster lock) sends this host's health only. ``selector`` keeps
    the top-N membership from one cycle to the next (a fresh one ranks
    from scratch).
    """
    if selector is None:
        selector = selection.TableSelector(settings)
    started = compat.monotonic()
    result = CycleResult(True, metrics.CycleCounts())
    try:
        with sink_factory(settings) as sink:
            if settings.healthcheck_url:
                _send_health(settings, outages, sink)
            if tables:
                result = _send_tables(settings, outages, sink, started,
                                      selector)
    except emitter.EmitError as exc:
        outages.failed(STATSD, compat.to_text(exc))
        return CycleResult(False, result.counts, compat.to_text(exc))
    outages.succeeded(STATSD)
    return result

