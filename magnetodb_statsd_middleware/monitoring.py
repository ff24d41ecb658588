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

import http.client
import json
import os
import re
import socket
import time
import urllib.parse

from magnetodb_statsd_middleware import metrics
from magnetodb_statsd_middleware import runtime

# A listing that needs more pages than this fails instead of running on:
# 10 million tables at the default page size.
MAX_PAGES = 10000

# Rows handled between two cooperative yields while parsing a page.
ROWS_PER_YIELD = 500

_READ_CHUNK = 256 * 1024
_WHITESPACE = re.compile(r'[ \t\n\r]*')
_DECODER = json.JSONDecoder()


class MonitoringError(Exception):
    """The monitoring API could not be read; the message is the cause."""


def redact_url(url):
    """The URL without user information, fit for a log line."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    netloc = parts.hostname or ''
    if ':' in netloc:
        netloc = '[%s]' % netloc
    if parts.port:
        netloc += ':%d' % parts.port
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def iter_json_list(text):
    """Yield the items of a JSON list, yielding the event loop as it goes.

    One ``json.loads`` of a multi-megabyte page would hold an eventlet hub
    for tens of milliseconds; decoding item by item lets requests run
    between chunks.
    """
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


class Run:
    """Consecutive rows of one project in a page."""

    __slots__ = ('project', 'tables')

    def __init__(self, project):
        self.project = project
        self.tables = []


class MonitoringClient:
    """One cycle's conversation with the monitoring API.

    Keeps one HTTP connection open across the pages of a cycle; call
    :meth:`close` at the end of the cycle.
    """

    def __init__(self, settings):
        self._settings = settings
        parts = urllib.parse.urlsplit(settings.monitoring_url)
        self._https = parts.scheme == 'https'
        self._host = parts.hostname
        self._port = parts.port
        self._base_path = parts.path.rstrip('/')
        self._origin = redact_url(
            urllib.parse.urlunsplit(parts[:2] + ('', '', '')))
        self._conn = None
        # Names the polling process in the API server's access log.
        self._headers = {'Accept': 'application/json',
                         'User-Agent': 'magnetodb-statsd-middleware (pid %d)'
                                       % os.getpid()}
        self._query_metrics = ','.join(settings.metrics)
        self.pages = 0
        self.bad_rows = 0

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # HTTP

    def _connection(self):
        if self._conn is None:
            cls = (http.client.HTTPSConnection if self._https
                   else http.client.HTTPConnection)
            self._conn = cls(self._host, self._port,
                             timeout=self._settings.request_timeout)
        return self._conn

    def get_text(self, path, params):
        """GET ``path`` and return its body as text, or fail with a cause.

        The whole request, body included, must finish within
        ``request_timeout`` and the body must fit ``max_response_bytes``.
        """
        query = urllib.parse.urlencode(params, safe=',')
        target = path + ('?' + query if query else '')
        shown = 'GET %s%s' % (self._origin, target)
        deadline = time.monotonic() + self._settings.request_timeout
        try:
            conn = self._connection()
            conn.request('GET', target, headers=self._headers)
            response = conn.getresponse()
            if response.status != 200:
                raise MonitoringError('%s failed: HTTP %d %s'
                                      % (shown, response.status,
                                         response.reason))
            body = self._read_body(response, deadline, shown)
        except MonitoringError:
            self.close()
            raise
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            reason = ('no answer within %gs' % self._settings.request_timeout
                      if isinstance(exc, socket.timeout)
                      else str(exc) or type(exc).__name__)
            raise MonitoringError('%s failed: %s' % (shown, reason)) from None
        try:
            return body.decode('utf-8'), shown
        except UnicodeDecodeError as exc:
            raise MonitoringError('%s returned a body that is not UTF-8: %s'
                                  % (shown, exc)) from None

    def _read_body(self, response, deadline, shown):
        limit = self._settings.max_response_bytes
        length = response.getheader('Content-Length')
        if length and length.isdigit() and int(length) > limit:
            raise MonitoringError('%s returned %s bytes, more than '
                                  'max_response_bytes (%d)'
                                  % (shown, length, limit))
        chunks = []
        size = 0
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise socket.timeout()
            if self._conn.sock is not None:
                self._conn.sock.settimeout(remaining)
            chunk = response.read(_READ_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise MonitoringError('%s returned more than '
                                      'max_response_bytes (%d)'
                                      % (shown, limit))
            chunks.append(chunk)
            runtime.cooperative_yield()
        if response.will_close:
            self.close()
        return b''.join(chunks)

    def get_list(self, path, params):
        text, shown = self.get_text(path, params)
        self.pages += 1
        try:
            return list(iter_json_list(text))
        except ValueError as exc:
            raise MonitoringError('%s did not return a JSON list: %s'
                                  % (shown, exc)) from None

    # Rows

    def _table(self, row, project, name_key):
        if not isinstance(row, dict):
            self.bad_rows += 1
            return None
        usage = row.get('usage_detailes', row.get('usage_details'))
        if not isinstance(usage, dict):
            usage = {}
        active = row.get('status', 'ACTIVE') == 'ACTIVE'
        return metrics.TableStats(project, row.get(name_key), active, usage)

    def _runs(self, rows):
        """Group a page's rows into runs of one project, in page order."""
        runs = []
        for row in rows:
            project = row.get('tenant') if isinstance(row, dict) else None
            if not isinstance(project, str) or not project:
                self.bad_rows += 1
                continue
            if not runs or runs[-1].project != project:
                runs.append(Run(project))
            runs[-1].tables.append(self._table(row, project, 'name'))
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
        whole_first = False
        while True:
            if self.pages >= MAX_PAGES:
                raise MonitoringError('the listing goes on past %d pages'
                                      % MAX_PAGES)
            rows = self.get_list(self._base_path, params)
            runs = self._runs(rows)
            full = len(rows) >= page_size
            # The first run of a last_evaluated_project page is whole; the
            # last run of a full page may continue on the next one.
            complete = runs if not full else runs[:-1]
            if full and whole_first and len(runs) == 1:
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
                         if isinstance(t.name, str)]
                if not names:
                    raise MonitoringError('cannot page past project %r: no '
                                          'valid table name' % last.project)
                params = {'metrics': self._query_metrics,
                          'last_evaluated_project': last.project,
                          'last_evaluated_table': names[-1]}
                whole_first = False
            else:
                params = {'metrics': self._query_metrics,
                          'last_evaluated_project': last.project}
                whole_first = True
            key = (params['last_evaluated_project'],
                   params.get('last_evaluated_table'))
            if key in asked:
                raise MonitoringError('the listing does not advance past '
                                      'project %r' % last.project)
            asked.add(key)

    def project_tables(self, project):
        """The ACTIVE tables of one project (the per-project resource)."""
        path = '%s/%s' % (self._base_path,
                          urllib.parse.quote(project, safe=''))
        rows = self.get_list(path, {'metrics': self._query_metrics})
        tables = [self._table(row, project, 'table_name') for row in rows]
        return [t for t in tables if t is not None]
