"""One collection cycle: monitoring API -> table statistics -> StatsD.

This is where a failure's consequence is decided: gauges of projects read
are true and are sent, also when other projects cannot be read or the API
fails halfway; totals only follow a complete listing; the collector's own
metrics say how the cycle went (``collector.projects_failed`` how many
projects could not be read); each failure goes to the
:class:`~.outages.OutageLog`, which decides what to log. MagnetoDB failing
as a whole (``monitoring API``) and some projects' data failing
(``project statistics``) are two different failures, each logged once.
"""

from magnetodb_statsd_middleware import compat
from magnetodb_statsd_middleware import emitter
from magnetodb_statsd_middleware import health
from magnetodb_statsd_middleware import keystone
from magnetodb_statsd_middleware import listing
from magnetodb_statsd_middleware import metrics
from magnetodb_statsd_middleware import monitoring
from magnetodb_statsd_middleware import pacing
from magnetodb_statsd_middleware import selection
from magnetodb_statsd_middleware import stuck

MONITORING = 'monitoring API'
PROJECTS = 'project statistics'
STATSD = 'StatsD'
DATA = 'monitoring data'
HEALTH = 'health check'

# Unreadable projects named in a log line; a count says how many more.
NAMED_UNREADABLE = 5


class CycleResult(object):
    """How one cycle went: completed or not, its counts, its error.

    A cycle that walked a range of a shared walk also says what the
    cluster needs of it: ``walked``, its ``[(project, tables)]`` in
    listing order; ``share``, what it adds to the totals
    (:meth:`~.metrics.MetricSet.share`); ``duration_ms``.
    """

    def __init__(self, completed, counts, error=''):
        self.completed = completed
        self.counts = counts
        self.error = error
        self.walked = []
        self.share = None
        self.duration_ms = 0.0


def _read_listing(settings, client, metric_set, sink, memory, bounds=None,
                  walked=None):
    """Send every readable project's measurements (of the
    :class:`~.listing.Range` ``bounds`` only, if given); returns the
    unreadable ones (:class:`~.listing.Unreadable`). Raises
    MonitoringError when MagnetoDB itself fails. ``walked`` gets each
    project sent with its number of tables."""
    if not settings.projects:
        walk = listing.Walk(client, memory, bounds)
        for project, tables, listed in walk.projects():
            if walked is not None:
                walked.append((project, len(tables)))
            sink.send(metric_set.project_measurements(project, tables,
                                                      listed))
        return walk.unreadable
    unreadable = []
    first_error = None
    for project in settings.projects:
        try:
            tables = client.project_tables(project)
        except monitoring.MonitoringError as exc:
            if exc.status is None:  # no answer: the API, not the project
                raise
            first_error = first_error or exc
            unreadable.append(listing.Unreadable.project(project))
            continue
        # Its own resource lists its ACTIVE tables only: no statuses.
        sink.send(metric_set.project_measurements(project, tables, False))
    if len(unreadable) == len(settings.projects):
        raise first_error  # nothing could be read: the API fails
    return unreadable


def _unreadable_cause(unreadable):
    count = len(unreadable)
    named = ', '.join(u.label for u in unreadable[:NAMED_UNREADABLE])
    if count > NAMED_UNREADABLE:
        named += ' and %d more' % (count - NAMED_UNREADABLE)
    return ('%d project%s cannot be read through the monitoring API (every '
            'other project is sent, the totals are withheld): %s'
            % (count, '' if count == 1 else 's', named))


def _send_health(settings, outages, sink, auth):
    """Send this host's health; False when it was withheld: no answer
    during the start-up grace is the server starting, not a host down."""
    checked = health.health_measurements(settings, auth)
    if checked.error and not checked.answered and outages.in_grace:
        outages.failed(HEALTH, checked.error)  # quiet: DEBUG
        return False
    sink.send(checked.measurements)
    if checked.error:
        outages.failed(HEALTH, checked.error)
    else:
        outages.succeeded(HEALTH)
    return True


def _send_tables(settings, outages, sink, started, selector, memory,
                 clock, bounds=None, auth=None):
    """The table, project, total and collector metrics (of the range
    ``bounds`` of a shared walk: table and project metrics only); returns
    the CycleResult."""
    metric_set = metrics.MetricSet(settings.metrics, selector, clock)
    counts = metric_set.counts
    client = monitoring.MonitoringClient(settings, auth)
    unreadable = None  # stays None unless the listing was read to its end
    error = ''
    walked = []
    without_token = False
    try:
        unreadable = _read_listing(settings, client, metric_set, sink,
                                   memory, bounds, walked)
    except monitoring.MonitoringError as exc:
        error = compat.to_text(exc)
    except keystone.KeystoneError as exc:
        # Logged by the TokenSource; the API itself was not asked.
        error = compat.to_text(exc)
        without_token = True
    finally:
        client.close()
    if not error and client.bad_rows:
        error = ('%d listing rows lack a project id; totals are withheld'
                 % client.bad_rows)
    if not error:
        outages.succeeded(MONITORING)
    elif not without_token:
        outages.failed(MONITORING, error)
    if unreadable is not None:
        counts.projects_failed = len(unreadable)
        if unreadable:
            cause = _unreadable_cause(unreadable)
            outages.failed(PROJECTS, cause,
                           key=frozenset(u.key for u in unreadable))
            error = error or cause
        else:
            outages.succeeded(PROJECTS)
    # The top N can only be chosen once the listing is over.
    sink.send(metric_set.ranked_tables(complete=not error))
    if not error:
        clock.forget_unlisted()
        if bounds is None:
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
    duration_ms = (compat.monotonic() - started) * 1000.0
    result = CycleResult(not error, counts, error)
    if bounds is None:
        sink.send(metrics.collector_measurements(counts, not error,
                                                 duration_ms))
    else:  # the cluster's figures come from every range's report
        result.walked = walked
        result.share = metric_set.share()
        result.duration_ms = duration_ms
    return result


def run_cycle(settings, outages, sink_factory=emitter.Emitter, tables=True,
              selector=None, memory=None, pacer=None, clock=None,
              bounds=None, cluster=(), auth=None):
    """Collect once and send; never raises for an expected failure.

    The health check and the table listing are independent: either may
    fail without stopping the other. ``tables=False`` (another host holds
    the cluster lock) sends this host's health only. ``selector`` keeps
    the top-N membership from one cycle to the next (a fresh one ranks
    from scratch); ``memory`` is the :class:`~.listing.ListingMemory` a
    collector keeps from cycle to cycle (a single cycle may go without);
    ``pacer``, the collector's :class:`~.pacing.Pacer`, knows the cycles
    before (without one the cycle is paced like a first one); ``clock``,
    the collector's :class:`~.stuck.StuckClock`, times the tables seen
    CREATING or DELETING (a fresh one finds none stuck yet). In a shared
    walk, ``bounds`` is this host's :class:`~.listing.Range` (the memory
    holds the order it was cut from), and ``cluster`` the measurements of
    the cluster's last cycle that the planner sends. ``auth``, the
    collector's :class:`~.keystone.TokenSource` (None: no token), keeps
    the token from one cycle to the next; without one, a cycle with
    ``auth_type`` makes its own.
    """
    if auth is None:
        auth = keystone.token_source(settings, outages)
    if auth is not None:
        auth.begin_cycle()
    if selector is None:
        selector = selection.TableSelector(settings)
    if clock is None:
        clock = stuck.StuckClock(settings.stuck_after)
    started = compat.monotonic()
    result = CycleResult(True, metrics.CycleCounts())
    if pacer is None:
        pacer = pacing.Pacer(settings)
    try:
        with sink_factory(settings, pacer) as sink:
            if (settings.healthcheck_url
                    and not _send_health(settings, outages, sink, auth)):
                result = CycleResult(False, result.counts,
                                     'health check not answering yet')
            sink.send(cluster)
            if tables:
                result = _send_tables(settings, outages, sink, started,
                                      selector, memory, clock, bounds, auth)
    except emitter.EmitError as exc:
        outages.failed(STATSD, compat.to_text(exc))
        return CycleResult(False, result.counts, compat.to_text(exc))
    pacer.end(result.completed)
    if sink.unsent:
        outages.failed(STATSD, '%d of %d datagrams to %s:%d could not be '
                       'sent: %s' % (sink.unsent, sink.sent,
                                     settings.statsd_host,
                                     settings.statsd_port, sink.send_error))
    else:
        outages.succeeded(STATSD)
    return result

