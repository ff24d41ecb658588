"""Reading MagnetoDB's monitoring API: one request, one answer, one cause.

Every failure becomes a :class:`MonitoringError` whose message names the
cause in one line (no traceback is needed for a refused connection or an
HTTP 500) and whose ``status`` says whether the server answered at all.
Pages and per-project answers become :class:`~.metrics.TableStats`; how
the all-projects listing is walked, quirks and failing pages included, is
:mod:`.listing`'s job.
"""

import json
import re

from magnetodb_statsd_middleware import compat
from magnetodb_statsd_middleware import httpget
from magnetodb_statsd_middleware import metrics
from magnetodb_statsd_middleware import runtime

# Rows handled between two cooperative yields while parsing a page.
ROWS_PER_YIELD = 500

# A page text up to this size is decoded in one call (a few milliseconds).
WHOLE_PARSE_CHARS = 256 * 1024

_WHITESPACE = re.compile(r'[ \t\n\r]*')
_DECODER = json.JSONDecoder()


# A project id that no project has: its per-project resource costs
# MagnetoDB one query of its table list and no table statistics.
PROBE_PROJECT = 'magnetodb-statsd-probe'


class MonitoringError(Exception):
    """The monitoring API could not be read; the message is the cause.

    ``status`` is the HTTP status the server failed with, or None when it
    did not answer (or answered with something that is not a JSON list).
    """

    def __init__(self, message, status=None):
        Exception.__init__(self, message)
        self.status = status


def json_list(text):
    """The items of a JSON list, yielding the event loop as it goes.

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
        return items
    match = _WHITESPACE.match
    idx = match(text, 0).end()
    if not text.startswith('[', idx):
        json.loads(text)  # a JSON syntax error names its position
        raise ValueError('a JSON list was expected')
    idx = match(text, idx + 1).end()
    items = []
    if text.startswith(']', idx):
        idx = match(text, idx + 1).end()
    else:
        while True:
            item, idx = _DECODER.raw_decode(text, idx)
            items.append(item)
            if len(items) % ROWS_PER_YIELD == 0:
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
    return items


class Run(object):
    """Consecutive rows of one project in a page."""

    __slots__ = ('project', 'tables')

    def __init__(self, project):
        self.project = project
        self.tables = []


class MonitoringClient(object):
    """One cycle's conversation with the monitoring API.

    Keeps one HTTP connection open across the pages of a cycle; call
    :meth:`close` at the end of the cycle. With ``auth`` (a
    :class:`~.keystone.TokenSource`) every request carries its token, and
    no token fails a request with :class:`~.keystone.KeystoneError`.
    """

    def __init__(self, settings, auth=None):
        self._settings = settings
        self._http = httpget.HttpGetter(settings.monitoring_url, settings,
                                        auth)
        self.base_path = self._http.path
        self._query_metrics = ','.join(settings.metrics)
        self.pages = 0
        self.bad_rows = 0

    def close(self):
        self._http.close()

    @property
    def page_size(self):
        """Rows in a full page of the listing."""
        return self._settings.page_size

    def get_list(self, path, params):
        try:
            _, text, shown = self._http.get(path, params)
        except httpget.HttpError as exc:
            raise MonitoringError(compat.to_text(exc), exc.status)
        self.pages += 1
        try:
            return json_list(text)
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
        # The per-project resource sends no status: it lists ACTIVE
        # tables only.
        return metrics.new_table((project, row.get(name_key),
                                  row.get('status', metrics.ACTIVE), usage))

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
                tables = run.tables
            tables.append(table(row, project, 'name'))
        return runs

    # Requests

    def page(self, last_project=None, last_table=None):
        """One page of the all-projects listing: ``(full, runs)``, where
        ``full`` says whether more pages may follow.

        Only the first page (no ``last_project``) carries ``limit``: the
        reference server fails a later page that has one.
        """
        params = [('metrics', self._query_metrics)]
        if last_project is None:
            params.append(('limit', self._settings.page_size))
        else:
            params.append(('last_evaluated_project', last_project))
            if last_table is not None:
                params.append(('last_evaluated_table', last_table))
        rows = self.get_list(self.base_path, params)
        # Decoding a page and grouping its rows are the two longest steps
        # without a pause (milliseconds each on 2.7): requests run between.
        runtime.cooperative_yield()
        return len(rows) >= self.page_size, self._runs(rows)

    def probe(self):
        """The first row of the listing: proves the API answers."""
        return self.get_list(self.base_path, {
            'metrics': self._query_metrics, 'limit': 1})

    def project_tables(self, project):
        """The ACTIVE tables of one project (the per-project resource)."""
        path = '%s/%s' % (self.base_path, compat.quote(project))
        rows = self.get_list(path, {'metrics': self._query_metrics})
        bad = [row for row in rows if not isinstance(row, dict)]
        self.bad_rows += len(bad)
        return [self._table(row, project, 'table_name') for row in rows
                if isinstance(row, dict)]

    def storage_error(self):
        """Why MagnetoDB cannot read its storage at all; None if it can.

        Asks for the tables of a project that has none: MagnetoDB then
        reads its table list from Cassandra and no table statistics, so
        an HTTP 500 here is the storage (or the server) failing, not one
        project's data. The message is the same from one cycle to the
        next, whichever page the cycle was at.
        """
        try:
            self.project_tables(PROBE_PROJECT)
        except MonitoringError as exc:
            if exc.status is None:
                return exc
            return MonitoringError('MagnetoDB cannot read its storage (%s)'
                                   % compat.to_text(exc), exc.status)
        return None
