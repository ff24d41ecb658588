"""Which tables are stuck: the clock a collector keeps from cycle to cycle.

MagnetoDB moves a table from CREATING or DELETING on by itself; one seen
in either status for longer than ``stuck_after`` is stuck. The clock of a
table starts at the first cycle that saw it in that status (a change
between the two starts it again), and every time is a cycle's start, so
that a table's place in the listing does not matter.

Only such tables are remembered, by project: ``{project: {name:
(status, since)}}``. ACTIVE and failed tables cost nothing between cycles,
whatever the size of the cloud. A project that a cycle read without its
statuses (its own resource lists ACTIVE tables only), or did not reach,
keeps what was known of it; one that a complete listing no longer has is
forgotten, and so is a table no longer seen passing.

The clock lives in the collector's memory: a restart, or another process
or host taking over the collection, starts every clock again (and so does
a process that takes the collection back: it did not see what happened
meanwhile). A table then counts as stuck up to ``stuck_after`` later than
it would have, never earlier.
"""

from magnetodb_statsd_middleware import compat


class StuckClock(object):
    """Times the tables seen CREATING or DELETING, across cycles."""

    def __init__(self, stuck_after, now=compat.monotonic):
        self.stuck_after = stuck_after
        self._now = now
        self._since = {}
        self._seen = set()
        self._cycle_start = None

    def begin(self):
        """A cycle starts: its start is the time of everything it sees."""
        self._cycle_start = self._now()
        self._seen = set()

    def stuck(self, project, passing):
        """How many of ``passing`` are stuck, ``passing`` being the
        ``(name, status name)`` of every table of ``project`` in a
        :data:`~.metrics.PASSING` status this cycle; they are remembered
        in place of what was known of the project."""
        self._seen.add(project)
        now = self._cycle_start
        known = self._since.get(project, {})
        timed = {}
        stuck = 0
        for name, status in passing:
            since = known.get(name)
            if since is None or since[0] != status:
                since = (status, now)
            elif now - since[1] > self.stuck_after:
                stuck += 1
            timed[name] = since
        if timed:
            self._since[project] = timed
        else:
            self._since.pop(project, None)
        return stuck

    def keep(self, project):
        """``project`` was read without its statuses: what is known of it
        stays as it was."""
        self._seen.add(project)

    def forget_unlisted(self):
        """After a complete listing: the projects it did not have are gone."""
        for project in [p for p in self._since if p not in self._seen]:
            del self._since[project]

    def forget(self):
        """Another collector times the tables now: if this one collects
        again, it starts every clock again, not knowing what happened
        meanwhile."""
        self._since = {}

    def remembered(self):
        """How many tables are timed (for tests and benchmarks)."""
        return sum(len(tables) for tables in self._since.values())

