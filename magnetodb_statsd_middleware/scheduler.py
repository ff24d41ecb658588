"""The background collector: one per process, never overlapping, never dead.

:class:`Scheduler` runs cycles every ``interval`` seconds in the runtime
chosen by :mod:`.runtime`, only while this process holds the host lock.
The module-level :data:`PROCESS` keeps one scheduler per process: the first
enabled filter starts it; :data:`collector_pid` names the process whose
collector runs, so a process forked later and a process whose loop died
start one at their next request. In a forked child an at-fork hook resets
it; where the runtime has none (2.7), the request compares it with
``os.getpid()``, a system call (see :mod:`.filter`).
"""

import atexit
import logging
import math
import os
import threading

from magnetodb_statsd_middleware import compat
from magnetodb_statsd_middleware import coordination
from magnetodb_statsd_middleware import cycle
from magnetodb_statsd_middleware import election
from magnetodb_statsd_middleware import emitter
from magnetodb_statsd_middleware import keystone
from magnetodb_statsd_middleware import listing
from magnetodb_statsd_middleware import outages
from magnetodb_statsd_middleware import pacing
from magnetodb_statsd_middleware import runtime
from magnetodb_statsd_middleware import selection
from magnetodb_statsd_middleware import sharing
from magnetodb_statsd_middleware import stuck
from magnetodb_statsd_middleware import uwsgihost

LOG = logging.getLogger(__name__)

LOCK = 'host lock'
LOOP = 'collector loop'
CLUSTER = 'coordination backend'
SHARED = 'shared walk'
PLANLESS = 'shared walk plan'

# The pid of the process whose collector runs; a request in any other
# process (a forked child), or after the loop died (None), starts one. A
# module global, because every request reads it and a module attribute is
# the cheapest thing to read.
collector_pid = None


def _forget_the_parents_collector():
    """In a forked child: the parent's collector does not run here."""
    global collector_pid
    collector_pid = None


# Whether a forked child has collector_pid reset by that hook: False on
# 2.7, which has no os.register_at_fork.
FORK_HOOKED = compat.at_fork_in_child(_forget_the_parents_collector)

# Seconds after start during which failures are expected (the server is
# not listening yet) and retried every STARTUP_RETRY seconds, quietly.
STARTUP_GRACE = 30.0
STARTUP_RETRY = 1.0


class Scheduler(object):
    """Runs :func:`cycle.run_cycle` every interval while elected."""

    def __init__(self, settings, on_death=None,
                 sink_factory=emitter.Emitter):
        self.settings = settings
        self._on_death = on_death
        self._sink_factory = sink_factory
        self.pacer = pacing.Pacer(settings)
        self.outages = outages.OutageLog(grace=STARTUP_GRACE,
                                         grace_for=(cycle.MONITORING,
                                                    cycle.HEALTH))
        # The projects' listing order, for the next cycle to get past a
        # page that fails.
        self.memory = listing.ListingMemory()
        self.lock = election.HostLock(settings.lock_path)
        # Top-N membership lives as long as the collector, and so do the
        # clocks of the tables seen CREATING or DELETING.
        self.selector = selection.TableSelector(settings)
        self.clock = stuck.StuckClock(settings.stuck_after)
        # One Keystone token for the collector's life, renewed as needed.
        self.auth = keystone.token_source(settings, self.outages)
        self.cluster = None
        if settings.coordination_url:
            self.cluster = coordination.ClusterLock(
                settings.coordination_url,
                'magnetodb-statsd-%s' % settings.metric_prefix,
                settings.request_timeout)
        self.shared = None
        # (walking a range, ranges) of the last plan, None: no plan.
        self._walking = None
        # Since when this host has had no plan while the backend answered.
        self._planless_since = None
        # The last cycle in which the backend failed this process.
        self._troubled_cycle = None
        if settings.share_walk and self.cluster is not None:
            self.shared = sharing.SharedWalk(settings, self.cluster)
        self._stop = threading.Event()
        self._thread = None
        self._finished = False
        self.pid = os.getpid()

    def start(self):
        LOG.info('StatsD collector starting in pid %d (%s), every %ds, '
                 'sending to %s:%d', os.getpid(),
                 'greenthread' if runtime.eventlet_patched() else 'thread',
                 self.settings.interval, self.settings.statsd_host,
                 self.settings.statsd_port)
        self._thread = runtime.spawn(self._run, 'magnetodb-statsd')

    def stop(self, timeout=2.0):
        """Stop after the current step and release the lock."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            runtime.join(thread, timeout)

    @property
    def alive(self):
        return (self._thread is not None and not self._finished
                and self._thread.is_alive())

    @property
    def forked(self):
        """True in a child forked after the start: this loop is the
        parent's (an eventlet hub copies its greenthreads into the child)
        and must not act there."""
        return os.getpid() != self.pid

    def _run(self):
        interrupted = None
        try:
            if self._stop.wait(self.settings.initial_delay):
                return
            while not self.forked:
                started = compat.monotonic()
                interval = self.settings.interval
                if not self._step() and self.outages.in_grace:
                    interval = min(interval, STARTUP_RETRY)
                if self.shared is not None:  # cycles are wall-clock slots
                    remaining = sharing.until_next_cycle(
                        self.settings.interval)
                    if remaining > interval:
                        remaining = interval
                else:
                    remaining = started + interval - compat.monotonic()
                if self._stop.wait(max(0.0, remaining)):
                    return
        except (KeyboardInterrupt, SystemExit) as exc:
            # The server's Ctrl-C, landed here (runtime hands it on).
            interrupted = exc
            raise
        finally:
            self._finished = True
            if self.cluster is not None and not self.forked:
                self.cluster.release(timeout=2.0)
            self.lock.release()
            if (not self._stop.is_set() and not self.forked
                    and self._on_death is not None):
                if interrupted is None:
                    LOG.error('The StatsD collector loop stopped '
                              'unexpectedly')
                else:
                    LOG.info('The StatsD collector loop stops: %s',
                             type(interrupted).__name__)
                self._on_death()

    def _step(self):
        """One interval's work; no exception leaves it.

        Returns False when a cycle ran and did not complete.
        """
        try:
            if not self._elected():
                # Another process times the tables meanwhile: what this
                # one saw is stale when it collects again.
                self.clock.forget()
                return True
            if self.shared is not None:
                return self._shared_step()
            tables = self._cluster_elected()
            if not tables:
                self.clock.forget()
            result = self._cycle(tables=tables)
            self.outages.succeeded(LOOP)
            if result.completed:
                self.outages.end_grace()
            return result.completed
        except Exception as exc:  # a bug must not stop the loop
            self.outages.failed(LOOP, 'unexpected %s: %s'
                                % (type(exc).__name__, exc), exc_info=True)
            return False

    def _cluster_elected(self):
        """Whether this process sends the table metrics of the cluster."""
        if self.cluster is None:
            return True
        try:
            held = self._cluster_held()
        except coordination.CoordinationError as exc:
            self._cluster_failed(exc, 'table metrics are left to nobody '
                                 'until it is back')
            return False
        self._cluster_answered('the first host to ask takes the lock '
                               'again')
        return held

    def _cluster_answered(self, retaken):
        """Every call answered: coordination works, unless the backend
        lost what this process held (then it is one outage, said once)."""
        losses = self.cluster.take_losses()
        if losses:
            self._cluster_failed('; '.join(losses), retaken)
        else:
            self.outages.succeeded(CLUSTER)

    def _recovering(self, number):
        """Whether cycle ``number`` is within the recovery bound (the
        lock timeout plus two intervals) of the last cycle in which the
        backend failed this process: the hosts come back one by one, and
        ranges missing meanwhile are the outage's, said by it."""
        interval = self.settings.interval
        bound = 2 + int(math.ceil(self.cluster.lock_timeout / interval))
        return (self._troubled_cycle is not None
                and number - self._troubled_cycle <= bound)

    def _cluster_failed(self, exc, consequence):
        """One ERROR when the backend fails, naming it without its
        password: an outage's causes change as it goes (no answer, a
        timeout, a refused connection, keys gone), and it is one outage
        until coordination works again."""
        self._troubled_cycle = sharing.cycle_number(self.settings.interval)
        self.outages.failed(CLUSTER, '%s: %s; %s' % (
            self.cluster.where, exc, consequence), key='outage')

    def _cluster_held(self):
        """Whether this process holds the cluster lock; says when it
        takes it. Raises CoordinationError (a lock lost included)."""
        was_holding = self.cluster.holding
        held = self.cluster.held(self.settings.request_timeout)
        if held and not was_holding:
            LOG.info('pid %d holds the cluster lock: %s', os.getpid(),
                     'this host plans the shared walk'
                     if self.shared is not None
                     else 'table metrics are sent from here')
        return held

    def _shared_step(self):
        """One cycle of the walk shared by the hosts (:mod:`.sharing`):
        plan it if this process holds the cluster lock, walk this host's
        range of it, report. Returns False when a cycle ran and did not
        complete."""
        shared = self.shared
        number = sharing.cycle_number(self.settings.interval)
        if shared.last_cycle is not None and number <= shared.last_cycle:
            # A retry within the cycle (start-up grace): health only.
            return self._cycle(tables=False).completed
        figures, plan = [], None
        try:
            was_planner = self.cluster.holding
            planner = self._cluster_held()
            shared.join(number)
            if planner:
                last, plan = shared.plan(number)
                figures = last.measurements
                if last.problem and self._recovering(number):
                    # Said by the outage that explains it.
                    LOG.debug('%s; its totals are withheld', last.problem)
                elif last.problem:
                    self.outages.failed(SHARED, last.problem + '; its '
                                        'totals are withheld')
                elif figures:
                    self.outages.succeeded(SHARED)
            else:
                if was_planner:
                    shared.stand_down()
                plan = shared.wait_for_plan(number, self._stop)
        except coordination.CoordinationError as exc:
            self._cluster_failed(exc, 'this host walks no range of the '
                                 'listing until it is back')
            self._walking = None  # said by the outage
            self.clock.forget()
            return self._cycle(tables=False).completed
        self._cluster_answered('what is lost is taken again where it can '
                               'be')
        self._check_planned(plan is not None)
        part = plan.range_of(shared.member) if plan is not None else None
        self._say_part(plan, part)
        if part is None:  # no range of this cycle is this host's
            self.clock.forget()
            return self._cycle(tables=False, cluster=figures).completed
        index, bounds = part
        self.memory.order = tuple(project for project, _ in plan.order)
        result = self._cycle(bounds=bounds, cluster=figures)
        try:
            shared.report(plan, index, result)
        except coordination.CoordinationError as exc:
            self._cluster_failed(exc, 'the range this host walked is not '
                                 'reported')
        return result.completed

    def _check_planned(self, planned):
        """One ERROR when this host has had no plan for more than two
        intervals while the backend answers: the cluster may be walking
        nothing, and only a host that waits can see it."""
        now = compat.monotonic()
        if planned:
            self._planless_since = None
            self.outages.succeeded(PLANLESS)
            return
        if self._planless_since is None:
            self._planless_since = now
        if now - self._planless_since > 2 * self.settings.interval:
            self.outages.failed(PLANLESS, 'no plan for this host for %ds '
                                'though the coordination backend answers: '
                                'no host may be walking the listing (the '
                                'planner died or stalled and its lock has '
                                'not expired yet, or the hosts\' clocks are '
                                'apart)' % (now - self._planless_since),
                                key='planless')

    def _say_part(self, plan, part):
        """Log when this host starts or stops walking a range, or the
        number of ranges changes."""
        state = (None if plan is None
                 else (part is not None, len(plan.ranges)))
        if state == self._walking:
            return
        self._walking = state
        if part is not None:
            LOG.info('pid %d walks a range of the listing shared by %d '
                     'host%s', os.getpid(), len(plan.ranges),
                     '' if len(plan.ranges) == 1 else 's')
        elif plan is None:
            LOG.info('pid %d walks no range this cycle: no plan came from '
                     'the planner within %gs of the cycle\'s start',
                     os.getpid(), sharing.plan_wait(self.settings.interval))
        else:
            LOG.info('pid %d walks no range this cycle: the plan (%d '
                     'range%s) leaves it out until the next one',
                     os.getpid(), len(plan.ranges),
                     '' if len(plan.ranges) == 1 else 's')

    def _cycle(self, tables=True, bounds=None, cluster=()):
        return cycle.run_cycle(self.settings, self.outages,
                               self._sink_factory, tables=tables,
                               selector=self.selector, memory=self.memory,
                               pacer=self.pacer, clock=self.clock,
                               bounds=bounds, cluster=cluster,
                               auth=self.auth)

    def _elected(self):
        """Whether this process collects for the host this interval.

        A lock that cannot elect (refused, or held by another user's
        process) must not let anyone switch the metrics off: then every
        process collects, unelected, and says so once, until it is fixed.
        """
        was_held, had_holder = self.lock.held, self.lock.holder
        try:
            held = self.lock.acquire()
        except election.LockError as exc:
            self.outages.failed(LOCK, '%s; until it is fixed every process '
                                'collects and sends, unelected; fix: %s'
                                % (exc.problem, exc.fix))
            return True
        self.outages.succeeded(LOCK)
        if held and not was_held and self.lock.path:
            LOG.info('pid %d holds %s: this process collects for the host',
                     os.getpid(), self.lock.path)
        elif not held and self.lock.holder not in (None, had_holder):
            LOG.info('pid %d stands by: pid %d holds %s and collects for '
                     'the host', os.getpid(), self.lock.holder,
                     self.lock.path)
        return held


class ProcessCollector(object):
    """The one scheduler of this process, and how it is (re)started."""

    def __init__(self):
        self._guards = {}
        self.scheduler = None
        self.settings = None
        self._left_to_workers = False
        self._said_threads_off = False
        atexit.register(self.stop)

    def _guard(self):
        """This process's start lock.

        A fresh lock per pid: a forked child never waits on a lock that a
        thread of its parent held at the fork, and ``dict.setdefault`` is
        atomic, so two first requests of a child share one lock.
        """
        return self._guards.setdefault(os.getpid(), threading.Lock())

    def ensure_started(self, settings):
        """Start the collector with ``settings`` unless one runs already."""
        with self._guard():
            if self.settings is not None and self.settings != settings:
                LOG.warning('Another statsd filter in this process has '
                            'different settings; the first one built is '
                            'used')
                return
            self.settings = settings
            if uwsgihost.in_master():
                self._leave_to_workers()
            else:
                self._start_locked()

    def _leave_to_workers(self):
        """uWSGI's master: start nothing here, but in each worker as soon
        as it is forked (see :mod:`.uwsgihost`)."""
        if self._left_to_workers:
            return
        self._left_to_workers = True
        if not uwsgihost.runs_threads():
            self._threads_off()
            return
        LOG.info('uWSGI master (pid %d): the StatsD collector starts in '
                 'each worker after its fork, never here', os.getpid())
        uwsgihost.start_in_workers(self.start_from_request)

    def _threads_off(self):
        """Say that no collector can run, once for the whole server: in
        its master, or else (``lazy-apps``) in worker 1; a worker forked
        from a master that said it stays silent."""
        if not self._said_threads_off and uwsgihost.first_process():
            LOG.error(uwsgihost.THREADS_OFF)
        self._said_threads_off = True

    def start_from_request(self):
        """Called by a request when :data:`collector_pid` is not this
        process, and in a uWSGI worker just forked; never raises."""
        try:
            with self._guard():
                if collector_pid != os.getpid():
                    self._start_locked()
        except Exception:
            LOG.exception('Cannot start the StatsD collector')

    def _start_locked(self):
        global collector_pid
        scheduler = self.scheduler
        if scheduler is not None and scheduler.forked:
            # The parent's: only its copy of the lock file descriptor is
            # ours to drop (a POSIX lock is never inherited).
            scheduler.lock.release()
            scheduler = self.scheduler = None
        collector_pid = os.getpid()  # before start: it may die at once
        if scheduler is not None and scheduler.alive:
            return
        if not uwsgihost.runs_threads():
            self._threads_off()  # requests need not ask again
            return
        self.scheduler = Scheduler(self.settings, self._loop_died)
        self.scheduler.start()

    @staticmethod
    def _loop_died():
        """The next request restarts the loop."""
        global collector_pid
        collector_pid = None

    def stop(self):
        scheduler = self.scheduler
        if scheduler is not None and not scheduler.forked:
            scheduler.stop()


PROCESS = ProcessCollector()
