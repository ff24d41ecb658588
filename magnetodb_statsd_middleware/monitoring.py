"""Reading MagnetoDB's monitoring API: what happens when it is down, slow,
wrong or quirky is decided here.

Every failure becomes a :class:`MonitoringError` whose message names the
cause in one line (no traceback is needed for a refused connection or an
HTTP 500). The all-projects listing is walked so that every table comes
exactly once and the walk always ends, whatever the server's pagination
quirks (see ``shared/reference/magnetodb-monitoring-api.md``):

* ``last_evaluated_project=P`` returns *all* of P, then the projects after
  it: so a page's last project is never trusted as complete; it is asked
  for again, whole, with ``last_evaluated_project``.
* ``last_evaluated_project=P&last_evaluated_table=T`` drops P's tables after
  T: it is used only to step past a project already complete (one whose
  tables fill a page on their own).
* ``limit`` is sent on the first page only; later pages get the server's
  default, which is the ``page_size`` option.
"""

import json
import re

from magnetodb_statsd_middleware import compat
from magnetodb_statsd_middleware import httpget
from magnetodb_statsd_middleware import metrics
from magnetodb_statsd_middleware import runtime

# A listing that needs more pages than this fails instead of running on:
# 10 million tables at the default page size.
MAX_PAGES = 10000

# Rows handled between two cooperative yields while parsing a page.
ROWS_PER_YIELD = 500

# A page text up to this size is decoded in one call (a few milliseconds).
WHOLE_PARSE_CHARS = 256 * 1024

_WHITESPACE = re.compile(r'[ \t\n\r]*')
_DECODER = json.JSONDecoder()


class MonitoringError(Exception):
    """The monitoring API could not be read; the message is the cause."""


def iter_json_list(text):
    """Yield the items of a JSON list, yielding the event loop as it goes.

    A normal page (1,000 rows, about 130 kB) is decoded at once, in a few
    milliseconds. One ``json.loads`` of a multi-megabyte page (a project
    with 100,000 tables comes whole) would hold an eventlet hub for tens of
    milliseconds, so a larger text is decoded item by item, and requests
    run between chunks.
    """
    if len(text) <= WHOLE_PARSE_CHARS:
        items = json.loads(text)
        if not isinstance(items, list):
            raise ValueError('a JSON list was expected')
        for item in items:
            yield item
        return
    match = _WHITESPACE.match
    idx = match(text, 0).end()
    if not text.startswith('[', idx):
        json.loads(text)  # a JSON syntax error names its position
        raise ValueError('a JSON list was expected')
    idx = match(text, idx + 1).end()
    if text.startswith(']', idx):
        idx = match(text, idx + 1).end()
    else:
        count = 0
        while True:
            item, idx = _DECODER.raw_decode(text, idx)
            yield item
            count += 1
            if count % ROWS_PER_YIELD == 0:
                runtime.cooperative_yield()
            idx = match(text, idx).end()
            if text.startswith(',', idx):
                idx = match(text, idx + 1).end()
            elif text.startswith(']', idx):
                idx = match(text, idx + 1).end()
                break
            else:
                raise ValueError('"," or "]" expected at char %d' % idx)
    if idx != len(text):
        raise ValueError('extra data at char %d' % idx)


class Run(object):
    """Consecutive rows of one project in a page."""

    __slots__ = ('project', 'tables')

    def __init__(self, project):
        self.project = project
        self.tables = []


class MonitoringClient(object):
    """One cycle's conversation with the monitoring API.

    Keeps one HTTP connection open across the pages of a cycle; call
    :meth:`close` at the end of the cycle.
    """

    def __init__(self, settings):
        self._settings = settings
        self._http = httpget.HttpGetter(settings.monitoring_url, settings)
        self._base_path = self._http.path
        self._query_metrics = ','.join(settings.metrics)
        self.pages = 0
        self.bad_rows = 0

    def close(self):
        self._http.close()

    def get_list(self, path, params):
        try:
            _, text, shown = self._http.get(path, params)
        except httpget.HttpError as exc:
            raise MonitoringError(compat.to_text(exc))
        self.pages += 1
        try:
            return list(iter_json_list(text))
        except ValueError as exc:
            raise MonitoringError('%s did not return a JSON list: %s'
                                  % (shown, compat.to_text(exc)))

    # Rows

    @staticmethod
    def _table(row, project, name_key):
        usage = row.get('usage_detailes')
        if usage is None:
            usage = row.get('usage_details')
        if not isinstance(usage, dict):
            usage = {}
        return metrics.TableStats(project, row.get(name_key),
                                  row.get('status', 'ACTIVE') == 'ACTIVE',
                                  usage)

    def _runs(self, rows):
        """Group a page's rows into runs of one project, in page order."""
        runs = []
        run = None
        table = self._table
        for row in rows:
            project = row.get('tenant') if isinstance(row, dict) else None
            if run is None or project != run.project:
                if not isinstance(project, compat.string_types) or not project:
                    self.bad_rows += 1
                    continue
                run = Run(project)
                runs.append(run)
            run.tables.append(table(row, project, 'name'))
        return runs

    # Listings

    def iter_all_projects(self):
        """Yield ``(project, tables)`` once for every project listed.

        Raises MonitoringError when a page fails or the listing does not
        advance; the projects already yielded were complete and correct.
        """
        page_size = self._settings.page_size
        params = {'metrics': self._query_metrics, 'limit': page_size}
        done = set()
        asked = set()
        whole = None  # the project a last_evaluated_project page has whole
        while True:
            if self.pages >= MAX_PAGES:
                raise MonitoringError('the listing goes on past %d pages'
                                      % MAX_PAGES)
            rows = self.get_list(self._base_path, params)
            runs = self._runs(rows)
            full = len(rows) >= page_size
            # The last run of a full page may continue on the next one,
            # unless it is the project asked for with last_evaluated_project
            # (which comes whole, unless it was deleted meanwhile).
            complete = runs[:-1] if full else runs
            if full and len(runs) == 1 and runs[0].project == whole:
                complete = runs
            for run in complete:
                if run.project not in done:
                    done.add(run.project)
                    yield run.project, run.tables
            if not full:
                return
            if not runs:
                raise MonitoringError('a full page had no valid row')
            last = runs[-1]
            if last.project in done:
                names = [t.name for t in last.tables
                         if isinstance(t.name, compat.string_types)]
                if not names:
                    raise MonitoringError('cannot page past project %r: no '
                                          'valid table name' % last.project)
                params = {'metrics': self._query_metrics,
                          'last_evaluated_project': last.project,
                          'last_evaluated_table': names[-1]}
                whole = None
            else:
                params = {'metrics': self._query_metrics,
                          'last_evaluated_project': last.project}
                whole = last.project
            key = (params['last_evaluated_project'],
                   params.get('last_evaluated_table'))
            if key in asked:
                raise MonitoringError('the listing does not advance past '
                                      'project %r' % last.project)
            asked.add(key)

    def probe(self):
        """The first row of the listing: proves the API answers."""
        return self.get_list(self._base_path, {
            'metrics': self._query_metrics, 'limit': 1})

    def project_tables(self, project):
        """The ACTIVE tables of one project (the per-project resource)."""
        path = '%s/%s' % (self._base_path, compat.quote(project))
        rows = self.get_list(path, {'metrics': self._query_metrics})
        bad = [row for row in rows if not isinstance(row, dict)]
        self.bad_rows += len(bad)
        return [self._table(row, project, 'table_name') for row in rows
                if isinstance(row, dict)]
