"""Walking MagnetoDB's all-projects listing: every table exactly once,
every project MagnetoDB can still serve, and always an end.

How MagnetoDB's server pages (doc/source/contributor/listing.rst):

* ``last_evaluated_project=P`` returns *all* of P, then the projects after
  it: so a full page's last project is never trusted as complete; it is
  asked for again, whole, with ``last_evaluated_project``.
* ``last_evaluated_project=P&last_evaluated_table=T`` returns the row P/T,
  then the projects after P. With a T that no table can be named
  (:data:`STEP_PAST`) the page starts right after P: that is how the walk
  steps past a project it has whole, or cannot read.
* ``limit`` goes on the first page only.

What real data makes fail (the table at the end of ``real-magnetodb.md``),
and how the walk gets past it with what still works:

* ``last_evaluated_project=P`` fails (HTTP 500) for a project of more than
  5,000 tables: P is read whole through its own resource (``/projects/P``,
  which leaves out tables that are not ACTIVE), then stepped past. The
  next walks read it so at once, without the request that fails: while
  its resource returns more than :data:`PAGED_ROWS` tables (the request
  is sure to fail), else for :data:`RETRY_PAGE_AFTER` walks.
* A row whose statistics cannot be read fails every page that holds it,
  and its project's resource. From the failing page on, the projects known
  to come next (from this walk's pages and from the last walk's, see
  :class:`ListingMemory`) are read through their own resources in listing
  order until one cannot be read, or until they make up a page of tables
  (the failing page held no more); the walk steps past that one, and goes
  on so until a step answers again: each table's statistics are read about
  once. The projects that cannot be read are :attr:`Walk.unreadable`; a
  failing stretch that no known project explains (a project created since
  the last walk) is unreadable too, named by the project it follows.
* MagnetoDB itself failing is not one project's data, and ends the walk at
  once with :class:`~.monitoring.MonitoringError`: no answer or a status
  other than 500; the very first page failing while no project is known;
  the storage probe (:meth:`~.monitoring.MonitoringClient.storage_error`)
  failing, which is asked at a cycle's first failure and after
  :data:`PROBE_AFTER` failures in a row.

Bounds: each known project is read through its resource at most once and
stepped past at most once, each listed project is asked for whole at most
once, no listing request is sent twice and a probe follows at most one
failure in three: a walk costs at most about three requests per known
project more than a healthy one (far fewer in practice), and always ends.
"""

import collections
import json

from magnetodb_statsd_middleware import compat
from magnetodb_statsd_middleware import monitoring

# A listing that needs more pages than this fails instead of running on:
# 10 million tables at the default page size.
MAX_PAGES = 10000

# MagnetoDB 2015.1's listing fails for last_evaluated_project=P when P has
# more rows than this: the Cassandra driver's fetch size, above which it
# pages a result, which has no len().
PAGED_ROWS = 5000

# A project whose own page failed (while it read fine through its
# resource, and the page after it answered) is read through its resource
# at once for this many walks; then its page is tried again.
RETRY_PAGE_AFTER = 10

# A table name no table has, nor can have (the API only creates names of
# [a-zA-Z0-9_.-]{3,255}), and safe in MagnetoDB's CQL. As
# last_evaluated_table it starts a page right after its project; an empty
# one would be ignored.
STEP_PAST = 'statsd:step-past'

# After this many failed requests in a row the storage is probed again.
PROBE_AFTER = 3

# The status of a failure that may be one project's data rather than the
# server's: MagnetoDB answers 500 to any storage or statistics error.
DATA_FAILURE = 500

# Longest project id shown in a log line.
SHOWN_CHARS = 80


def shown(project):
    """A project id fit for a log line: quoted, escaped, not too long."""
    text = compat.to_text(json.dumps(compat.to_text(project)))
    if len(text) > SHOWN_CHARS:
        text = text[:SHOWN_CHARS - 4] + '..."'
    return text


class Unreadable(collections.namedtuple('Unreadable', 'key label')):
    """A project that could not be read, or a stretch of the listing.

    ``key`` stays the same from cycle to cycle while the same thing fails;
    ``label`` names it in a log line.
    """

    __slots__ = ()

    @classmethod
    def project(cls, project):
        return cls(project, shown(project))

    @classmethod
    def after(cls, project):
        if project is None:
            return cls(('after', None), 'the first projects of the listing')
        return cls(('after', project), 'the projects after %s'
                   % shown(project))


class ListingMemory(object):
    """What one walk leaves to the next: its projects in listing order,
    and those too large to be paged through.

    Project ids the listing produced anyway (a few bytes each), kept from
    the last walk that reached its end; a walk cut short by an outage
    leaves them as they were. When a page fails, ``order`` holds the
    projects still worth reading one by one. ``too_large`` maps a project
    whose own page fails to the number of walks that read it through its
    resource at once, before its page is tried again.
    """

    __slots__ = ('order', 'too_large')

    def __init__(self):
        self.order = ()
        self.too_large = {}


class Walk(object):
    """One cycle's walk of the listing: iterate over :meth:`projects`."""

    def __init__(self, client, memory=None):
        self._client = client
        self._memory = memory if memory is not None else ListingMemory()
        self._known = self._memory.order
        self._known_at = dict((p, i) for i, p in enumerate(self._known))
        self._next_known = 0
        self._done = set()
        self._order = []  # this walk's projects, for the next walk
        self._too_large = {}
        self._asked = set()
        self._listing_requests = 0
        self._answered = False  # a request of this walk succeeded
        self._streak = 0  # failed requests in a row
        self._stretch = None  # [after, explained] of a failing stretch
        self.unreadable = []

    def projects(self):
        """Yield ``(project, tables, listed)`` once for every readable
        project; ``listed``: its tables come from the listing, every one
        with its status (else from the project's own resource, which
        leaves out the tables that are not ACTIVE).

        Raises MonitoringError when MagnetoDB itself fails, or the listing
        misbehaves; the projects already yielded were complete and right.
        """
        request = (None, None)  # the first page
        cursor = None  # the project after which the listing goes on
        suspect = None  # read whole after its own page failed
        while True:
            project, table = request
            skipped = (table is None
                       and self._memory.too_large.get(project, 0) > 0)
            failed = skipped  # the request would fail: not sent
            if not skipped:
                try:
                    full, runs = self._page(project, table)
                except monitoring.MonitoringError as exc:
                    self._failed(exc)
                    failed = True
            if suspect is not None and project == suspect and not failed:
                # The page after it answers: its own page failed because
                # of it, and it reads fine whole.
                self._too_large[suspect] = RETRY_PAGE_AFTER
            suspect = None
            if failed:
                if project is not None and table is None:
                    # A project too large to be paged through, or a row
                    # that cannot be read, in it or in the next projects.
                    cursor = project
                    tables = self._read_whole(project)
                    if tables:
                        left = self._memory.too_large.get(project, 0) - 1
                        if len(tables) > PAGED_ROWS:  # sure to fail
                            self._too_large[project] = RETRY_PAGE_AFTER
                        elif skipped and left > 0:
                            self._too_large[project] = left
                        elif not skipped:
                            suspect = project
                        yield project, tables, False
                else:
                    # The first page, or the page after cursor, holds a row
                    # that cannot be read: read the next known projects
                    # until one cannot be read (the likely cause), or they
                    # make up a page of tables (the cause was unknown), and
                    # step past that one. One without tables (gone, or none
                    # ACTIVE) is passed over: nothing says where it stood.
                    if self._stretch is None:
                        self._stretch = [cursor, False]
                    cursor = None
                    rows = 0
                    for candidate in iter(self._next_candidate, None):
                        tables = self._read_whole(candidate)
                        if tables:
                            yield candidate, tables, False
                            rows += len(tables)
                        if tables is None or tables:
                            cursor = candidate
                        if tables is None or rows >= self._client.page_size:
                            break
                    if cursor is None:
                        self._end_stretch()
                        break
                request = (cursor, STEP_PAST)
                continue
            self._end_stretch()
            whole = project if table is None else None
            complete = runs[:-1] if full else runs
            # The project asked for whole fills the page on its own.
            if full and len(runs) == 1 and runs[0].project == whole:
                complete = runs
            for run in complete:
                if run.project not in self._done:
                    self._pass(run.project)
                    yield run.project, run.tables, True
            if not full:
                break
            if not runs:
                raise monitoring.MonitoringError('a full page had no valid '
                                                 'row')
            cursor = runs[-1].project
            request = (cursor,
                       STEP_PAST if cursor in self._done else None)
        self._memory.order = tuple(self._order)
        self._memory.too_large = self._too_large

    # Requests

    def _page(self, project, table):
        if self._listing_requests >= MAX_PAGES:
            raise monitoring.MonitoringError('the listing goes on past %d '
                                             'pages' % MAX_PAGES)
        if (project, table) in self._asked:
            raise monitoring.MonitoringError(
                'the listing does not advance past project %s'
                % shown(project))
        self._asked.add((project, table))
        self._listing_requests += 1
        result = self._client.page(project, table)
        self._succeeded()
        return result

    def _read_whole(self, project):
        """The ACTIVE tables of a project through its own resource; None
        when it cannot be read."""
        try:
            tables = self._client.project_tables(project)
        except monitoring.MonitoringError as exc:
            self._failed(exc)
            self.unreadable.append(Unreadable.project(project))
            if self._stretch is not None:
                self._stretch[1] = True
            self._pass(project)
            return None
        self._succeeded()
        # Without tables it is gone, or has none ACTIVE: either way there
        # is nothing to report, nor to remember.
        self._pass(project, remember=bool(tables))
        return tables

    # Knowledge

    def _failed(self, exc):
        """Go on after a failed request only if it may be one project's
        data; otherwise raise it."""
        if exc.status != DATA_FAILURE:
            raise exc
        if not self._answered and not self._known:
            raise exc  # the very first page, and no project to go on with
        self._streak += 1
        if ((self._streak == 1 and not self._answered)
                or self._streak >= PROBE_AFTER):
            error = self._client.storage_error()
            if error is not None:
                raise error
            self._succeeded()

    def _succeeded(self):
        self._answered = True
        self._streak = 0

    def _pass(self, project, remember=True):
        """``project`` is done with, and so is every known one before it."""
        self._done.add(project)
        if remember:
            self._order.append(project)
        at = self._known_at.get(project)
        if at is not None and at >= self._next_known:
            self._next_known = at + 1

    def _next_candidate(self):
        """The next known project not passed yet, in listing order."""
        while self._next_known < len(self._known):
            project = self._known[self._next_known]
            self._next_known += 1
            if project not in self._done:
                return project
        return None

    def _end_stretch(self):
        """A failing stretch is over: if no project was unreadable in it,
        what failed was unknown, and is named by where it started."""
        stretch, self._stretch = self._stretch, None
        if stretch is not None and not stretch[1]:
            self.unreadable.append(Unreadable.after(stretch[0]))
