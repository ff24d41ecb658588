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


class Range(collections.namedtuple('Range', 'after last')):
    """One host's part of a shared walk (see :mod:`.sharing`).

    The projects listed after ``after`` (None: from the first) through
    ``last`` (None: to the end), both from the order of the last complete
    walk, which the walk's :class:`ListingMemory` holds: a project known
    to come after ``last`` ends the range also when ``last`` has been
    deleted since.
    """

    __slots__ = ()


class Walk(object):
    """One cycle's walk of the listing, or of one :class:`Range` of it:
    iterate over :meth:`projects`.

    A range is read from the page right after ``after`` and ends with
    ``last``. Projects created since the order was known are in the range
    they are listed in; those listed after the place of a deleted
    ``last`` are held back until one page from that place (the only
    extra request) tells which of them the next range reads.
    """

    def __init__(self, client, memory=None, bounds=None):
        self._client = client
        self._memory = memory if memory is not None else ListingMemory()
        self._known = self._memory.order
        self._known_at = dict((p, i) for i, p in enumerate(self._known))
        self._bounds = bounds
        self._next_known = 0
        self._known_end = len(self._known)
        if bounds is not None:
            if bounds.after is not None:
                self._next_known = self._known_at.get(bounds.after, -1) + 1
            if bounds.last is not None and bounds.last in self._known_at:
                self._known_end = self._known_at[bounds.last] + 1
        self._held_back = []  # listed after where ``last`` would be
        self._ended = False  # the range's end was reached
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
        after = self._bounds.after if self._bounds is not None else None
        # The first page, or the page right after the range's start.
        request = (after, None if after is None else STEP_PAST)
        cursor = after  # the project after which the listing goes on
        suspect = None  # read whole after its own page failed
        while not self._ended:
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
                        for found in self._in_range(project, tables, False):
                            yield found
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
                            for found in self._in_range(candidate, tables,
                                                        False):
                                yield found
                            rows += len(tables)
                        if tables is None or tables:
                            cursor = candidate
                        if tables is None or rows >= self._client.page_size:
                            break
                    if cursor is None or self._ended:
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
                    for found in self._in_range(run.project, run.tables,
                                                True):
                        yield found
                if self._ended:
                    break
            if not full or self._ended:
                break
            if not runs:
                raise monitoring.MonitoringError('a full page had no valid '
                                                 'row')
            cursor = runs[-1].project
            if self._beyond(cursor):
                break  # the next range's: not asked for again
            request = (cursor,
                       STEP_PAST if cursor in self._done else None)
        if not self._ended:
            for found in self._place_held_back():  # the listing's end
                yield found
        if self._bounds is None:  # a range's order is the planner's
            self._memory.order = tuple(self._order)
        self._memory.too_large = self._too_large

    # Range

    def _beyond(self, project):
        """Whether ``project`` is known to come after the range."""
        return self._known_at.get(project, -1) >= self._known_end

    def _in_range(self, project, tables, listed):
        """What to yield for a complete project just read: nothing past
        the range's end, and nothing yet of a project that may be the
        next range's."""
        if self._beyond(project):
            return self._place_held_back()
        if project not in self._done:  # else read whole, and passed
            self._pass(project)
        found = (project, tables, listed)
        last = self._bounds.last if self._bounds is not None else None
        if last is None:
            return [found]
        if project != last and project not in self._known_at:
            # New since the order was known: ours if it comes before the
            # place of ``last``, which a project known to be ours proves.
            self._held_back.append(found)
            return []
        if project == last:
            self._ended = True
        held, self._held_back = self._held_back, []
        return held + [found]

    def _place_held_back(self):
        """``last`` is gone: the page right after its place says which of
        the projects held back come before it (ours), which after (the
        next range's). The range ends."""
        self._ended = True
        held, self._held_back = self._held_back, []
        if not held or self._bounds is None or self._bounds.last is None:
            return held
        try:
            _, runs = self._page(self._bounds.last, STEP_PAST)
        except monitoring.MonitoringError as exc:
            self._failed(exc)
            self.unreadable.append(Unreadable.after(self._bounds.last))
            runs = None
        first = runs[0].project if runs else None
        ours = []
        for found in held:
            if runs is None or found[0] == first:
                runs = None  # this one and all after it are not ours
                self._order.remove(found[0])
            else:
                ours.append(found)
        return ours

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
        while self._next_known < self._known_end:
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
