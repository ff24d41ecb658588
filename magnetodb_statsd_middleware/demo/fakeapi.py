"""A MagnetoDB-compatible monitoring API, quirks included, as a WSGI app.

The demo, the tests and the benchmarks serve it where the real
``monitoring_app`` would stand in ``api-paste.ini``. It pages as
MagnetoDB 2015.1 does (doc/source/contributor/listing.rst): rows ordered
by the token of the project id (not alphabetically), the ``usage_detailes``
spelling, overlapping pages, ``last_evaluated_table`` dropping the rest of a
project, HTTP 500 for ``limit`` sent with ``last_evaluated_project``.

And it fails where real data makes MagnetoDB 2015.1 fail (as
tests/test_magnetodb.py shows on MagnetoDB itself):
``last_evaluated_project=P`` alone for a project of more than
``paged_rows`` (5,000) tables, and every page, project resource or table
resource that holds an ACTIVE table marked ``unreadable`` (a JMX bean
missing on a node, a non-numeric statistic).

Tests inject faults, mark tables unreadable and read request counts
through ``<base>/_fixture`` when the app is built with ``control = true``.
"""

import bisect
import hashlib
import os
import random
import time

import webob
import webob.dec
import webob.exc

from magnetodb_statsd_middleware import compat

# What the fixture can be told to do wrong, on every monitoring request.
FAULTS = ('none', 'http500', 'http404', 'hang', 'not_json', 'wrong_shape',
          'missing_fields', 'huge', 'endless', 'negative')

_PREFIX = '/v1/monitoring/projects'


class Table(object):
    """One table of the dataset; ``unreadable``: its statistics fail."""

    __slots__ = ('name', 'status', 'size', 'item_count', 'unreadable')

    def __init__(self, name, status='ACTIVE', size=0, item_count=0,
                 unreadable=False):
        self.name = name
        self.status = status
        self.size = size
        self.item_count = item_count
        self.unreadable = unreadable

    @property
    def fails(self):
        """Reading its statistics fails: MagnetoDB reads them for ACTIVE
        tables only."""
        return self.unreadable and self.status == 'ACTIVE'


def token(project):
    """Stand-in for Cassandra's token order of project ids."""
    return hashlib.sha1(compat.utf8(project)).hexdigest()


def build_dataset(projects=3, tables=5, big=(), seed=0, odd_names=True):
    """A deterministic ``{project: [Table]}``.

    ``projects`` ordinary projects of ``tables`` tables each, plus one
    project per number in ``big`` with that many tables. Some tables are
    not ACTIVE, and with ``odd_names`` a few names need sanitizing.
    """
    rng = random.Random(seed)
    sizes = [tables] * projects + list(big)
    dataset = {}
    for index, count in enumerate(sizes):
        project = hashlib.md5(('%d-%d' % (seed, index)).encode()).hexdigest()
        rows = []
        for number in range(count):
            name = 'table_%05d' % number
            if odd_names and number % 97 == 3:
                name = 'odd.name-%05d' % number
            status = 'ACTIVE'
            if number % 50 == 7:
                status = rng.choice(('CREATING', 'DELETING',
                                     'CREATE_FAILED'))
            items = rng.randrange(0, 10 ** 6)
            rows.append(Table(name, status, items * rng.randrange(50, 400),
                              items))
        dataset[project] = rows
    return dataset


def long_table_names():
    """Table names that receivers' name limits trip over, MagnetoDB-legal
    (3 to 255 of ``A-Z a-z 0-9 _ . -``) unless said otherwise.

    Every length from 3 to 255 (one in three with a ``.``, which the
    dotted names must change); long shared prefixes; names that differ
    only after character 127 (where collectd cuts) or only in their 255th;
    digits first; upper case and case-only pairs; and non-ASCII names, as
    a storage may hold them (not legal in MagnetoDB 2015.1).
    """
    names = []
    for length in range(3, 256):
        head = ('n%d' % length) + ('.' if length % 3 == 0 else '_')
        names.append((head + 'Tbl-' * 64)[:length])
    shared = 'shared_prefix_' * 10  # 140 characters
    names.extend(shared + tail for tail in ('a', 'b', 'a.b', 'A', 'x' * 115))
    names.extend('c' * 127 + tail for tail in ('1', '2', '.size', '-x' * 64))
    names.extend('L' * 254 + last for last in ('a', 'b', 'A', '.'))
    names.extend(['0123', '9' * 255, '007.' * 63 + 'bnd', '12345678_9abcdef0'])
    names.extend(['ORDERS', 'Orders', 'orders', 'UPPER_' * 42 + 'END'])
    names.extend([u'caf\u00e9', u'Caf\u00e9', u'\u8868\u683c' * 100,
                  u'\u00fcber_' * 40 + u'\u00e9'])
    return names


def build_long_names_dataset(tables=None):
    """``{project: [Table]}`` of :func:`long_table_names` (or ``tables``)
    under a 32-hex project id, a few of them under a 123-character project
    id too (longer than Keystone's, to cut a project part), and one
    project whose names are short. Every ACTIVE table has its own size and
    item count, and none equals another table's, so a merge shows."""
    names = long_table_names() if tables is None else list(tables)
    projects = [(hashlib.md5(b'long-names').hexdigest(), names),
                ('Tenant-' + 'l0ng' * 28 + 'ID-x', names[-12:]),
                (hashlib.md5(b'short-names').hexdigest(),
                 ['abc', 'orders', 'odd.one'])]
    dataset = {}
    number = 0
    for project, project_names in projects:
        rows = []
        for name in project_names:
            number += 1
            rows.append(Table(name, 'ACTIVE', 1000003 * number, number))
        rows.append(Table(project_names[0] + '-new', 'CREATING'))
        dataset[project] = rows
    return dataset


def _usage(table, metrics):
    if table.status != 'ACTIVE':
        return {}
    return {metric: getattr(table, metric) for metric in metrics}


class FakeMonitoringAPI(object):
    """The monitoring API over an in-memory dataset (see module doc)."""

    def __init__(self, dataset, default_limit=1000, control=False,
                 growth=0.0, request_log=None, paged_rows=5000,
                 order_key=token):
        self.default_limit = default_limit
        # Where a project id sorts: a test may give Cassandra's tokens.
        self._order_key = order_key
        # MagnetoDB's Cassandra driver pages a result of more rows than
        # this, and its listing then fails on len() of it.
        self.paged_rows = paged_rows
        self.request_log = request_log
        self.control = control
        self.growth = growth
        self.fault = 'none'
        self.requests = 0
        self.listing_requests = 0
        self._started = compat.monotonic()
        self.load(dataset)

    def load(self, dataset):
        """Replace the data; rows are kept in the server's order."""
        self._projects = sorted(dataset, key=self._order_key)
        self._tokens = [self._order_key(p) for p in self._projects]
        self._tables = {p: sorted(dataset[p], key=lambda t: t.name)
                        for p in self._projects}

    # Listing semantics

    def _rows_after(self, project, limit):
        """Rows of the projects after ``project`` in token order."""
        start = bisect.bisect_right(self._tokens, self._order_key(project))
        rows = []
        for other in self._projects[start:]:
            for table in self._tables[other]:
                if len(rows) >= limit:
                    return rows
                rows.append((other, table))
        return rows

    def listing(self, limit, last_project=None, last_table=None):
        """``(project, Table)`` rows of one page, as the server picks them."""
        if last_project is None:
            rows = []
            for project in self._projects:
                for table in self._tables[project]:
                    if len(rows) >= limit:
                        return rows
                    rows.append((project, table))
            return rows
        own = self._tables.get(last_project, [])
        if last_table is None:
            if len(own) > self.paged_rows:
                raise webob.exc.HTTPInternalServerError()
            rows = [(last_project, t) for t in own]
        else:
            rows = [(last_project, t) for t in own if t.name == last_table]
        if len(rows) >= limit:
            return rows
        return rows + self._rows_after(last_project, limit - len(rows))

    # WSGI

    @webob.dec.wsgify
    def __call__(self, request):
        path = compat.to_text(request.path_info)  # bytes on 2.7
        if path.startswith(_PREFIX):
            path = path[len(_PREFIX):]
        parts = [p for p in path.split('/') if p]
        if parts[:1] == ['_fixture'] and self.control:
            return self._control(request, parts[1:])
        self.requests += 1
        if self.request_log:
            self._log_request(request)
        if request.method != 'GET':
            raise webob.exc.HTTPMethodNotAllowed()
        if self.fault != 'none':
            response = self._faulty(request)
            if response is not None:
                return response
        metrics = request.GET.get('metrics', 'size,item_count').split(',')
        if any(m not in ('size', 'item_count') for m in metrics):
            raise webob.exc.HTTPInternalServerError()
        if not parts:
            self.listing_requests += 1
            body = self._listing_body(request, metrics)
        elif len(parts) == 1:
            tables = self._tables.get(parts[0], [])
            _read_statistics(tables)
            body = [{'table_name': t.name,
                     'usage_detailes': self._grown(_usage(t, metrics))}
                    for t in tables if t.status == 'ACTIVE']
        elif len(parts) == 3 and parts[1] == 'tables':
            found = [t for t in self._tables.get(parts[0], [])
                     if t.name == parts[2]]
            if not found:
                raise webob.exc.HTTPNotFound()
            _read_statistics(found)
            body = self._grown(_usage(found[0], metrics))
        else:
            raise webob.exc.HTTPNotFound()
        return webob.Response(json=body)

    def _log_request(self, request):
        """One line per request, shared by all the server's processes."""
        line = '%.3f %s %s\n' % (time.time(), request.user_agent,
                                 request.query_string)
        fd = os.open(self.request_log,
                     os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, compat.utf8(line))
        finally:
            os.close(fd)

    def _listing_body(self, request, metrics):
        params = request.GET
        last_project = params.get('last_evaluated_project')
        if 'limit' in params and last_project is not None:
            # The Python 2 server compares a str limit with an int.
            raise webob.exc.HTTPInternalServerError()
        limit = int(params.get('limit', self.default_limit))
        # MagnetoDB ignores an empty last_evaluated_table.
        rows = self.listing(limit, last_project,
                            params.get('last_evaluated_table') or None)
        _read_statistics(table for _, table in rows)
        return [{'tenant': project, 'name': table.name,
                 'status': table.status,
                 'usage_detailes': self._grown(_usage(table, metrics))}
                for project, table in rows]

    def _grown(self, usage):
        """The demo's tables grow with time; tests keep growth at 0."""
        if not self.growth or not usage:
            return usage
        factor = 1 + self.growth * (compat.monotonic() - self._started)
        return {k: int(v * factor) for k, v in usage.items()}

    def _faulty(self, request):
        """The response of the current fault, or None to answer normally."""
        fault = self.fault
        if fault == 'http500':
            raise webob.exc.HTTPInternalServerError()
        if fault == 'http404':
            raise webob.exc.HTTPNotFound()
        if fault == 'hang':
            while self.fault == 'hang':
                time.sleep(0.05)
            return None  # released: answer normally
        if fault == 'not_json':
            return webob.Response('<html>maintenance</html>',
                                  content_type='text/html')
        if fault == 'wrong_shape':
            return webob.Response(json={'tables': []})
        if fault == 'missing_fields':
            return webob.Response(json=[{'name': 'orphan',
                                         'usage_detailes': {'size': 1}}])
        if fault == 'huge':
            return webob.Response(app_iter=_endless_json(),
                                  content_type='application/json')
        if fault == 'negative':
            project = self._projects[0]
            return webob.Response(json=[
                {'tenant': project, 'name': 'bad', 'status': 'ACTIVE',
                 'usage_detailes': {'size': -1, 'item_count': 1.5}}])
        # 'endless': always a full page of brand-new projects.
        self.listing_requests += 1
        limit = int(request.GET.get('limit', self.default_limit))
        stamp = '%d-%.9f' % (self.requests, compat.monotonic())
        return webob.Response(json=[
            {'tenant': 'endless-%s-%d' % (stamp, i), 'name': 'table',
             'status': 'ACTIVE', 'usage_detailes': {'size': 1}}
            for i in range(limit)])

    def mark_unreadable(self, project, name, unreadable=True):
        """Make one table's statistics fail (or read again)."""
        found = [t for t in self._tables.get(project, []) if t.name == name]
        if not found:
            raise KeyError((project, name))
        found[0].unreadable = unreadable

    def _control(self, request, parts):
        if request.method == 'POST' and parts == ['fault']:
            fault = request.GET.get('name', 'none')
            if fault not in FAULTS:
                raise webob.exc.HTTPBadRequest()
            self.fault = fault
        elif request.method == 'POST' and parts == ['unreadable']:
            # ?project=P&table=T marks one table, ?readable=1 clears all.
            if request.GET.get('readable'):
                for tables in self._tables.values():
                    for table in tables:
                        table.unreadable = False
            else:
                try:
                    self.mark_unreadable(request.GET.get('project'),
                                         request.GET.get('table'))
                except KeyError:
                    raise webob.exc.HTTPNotFound()
        return webob.Response(json={'requests': self.requests,
                                    'listing_requests': self.listing_requests,
                                    'fault': self.fault})


class FakeHealthCheck(object):
    """MagnetoDB's ``/healthcheck``: 200 when all is well, else 503."""

    def __init__(self, subsystems=None):
        self.subsystems = subsystems or {'API': 'OK', 'Identity': 'OK',
                                         'Storage': 'OK',
                                         'Messaging': 'Not Implemented'}

    @webob.dec.wsgify
    def __call__(self, request):
        if request.GET.get('fullcheck') != 'true':
            return webob.Response(json={'API': 'OK'})
        failed = 'ERROR' in self.subsystems.values()
        return webob.Response(json=self.subsystems,
                              status=503 if failed else 200)


def health_app_factory(global_conf, **local_conf):
    """Paste app factory of :class:`FakeHealthCheck`; keys are subsystems
    and values their state, e.g. ``Storage = ERROR``."""
    return FakeHealthCheck(dict(local_conf) or None)


def _read_statistics(tables):
    """Fail like MagnetoDB when a table's statistics cannot be read."""
    if any(table.fails for table in tables):
        raise webob.exc.HTTPInternalServerError()


def _endless_json():
    yield b'['
    row = b'{"tenant": "x", "name": "y", "usage_detailes": {}},'
    chunk = row * 1000
    while True:
        yield chunk


def app_factory(global_conf, **local_conf):
    """Paste app factory: ``paste.app_factory = ...fakeapi:app_factory``.

    Keys: ``projects``, ``tables`` (per project), ``big`` (comma-separated
    sizes of extra projects), ``seed``, ``long_names`` (true: the dataset
    of :func:`build_long_names_dataset` instead), ``page_size`` (the
    server's default limit), ``paged_rows`` (the size above which a
    project cannot be paged through), ``growth`` (per second, for the
    demo), ``control`` (true to allow fault injection), ``fault`` (with
    ``control``: the fault from the first request on, before any cycle
    could see the API well), ``request_log`` (a file that gets one line
    per monitoring request, from every process of the server).
    """
    big = tuple(int(n) for n in local_conf.get('big', '').split(',') if n)
    if local_conf.get('long_names', 'false').lower() == 'true':
        dataset = build_long_names_dataset()
    else:
        dataset = build_dataset(
            projects=int(local_conf.get('projects', 3)),
            tables=int(local_conf.get('tables', 5)), big=big,
            seed=int(local_conf.get('seed', 0)))
    api = FakeMonitoringAPI(
        dataset, default_limit=int(local_conf.get('page_size', 1000)),
        control=local_conf.get('control', 'false').lower() == 'true',
        growth=float(local_conf.get('growth', 0)),
        request_log=local_conf.get('request_log'),
        paged_rows=int(local_conf.get('paged_rows', 5000)))
    if api.control:
        api.fault = local_conf.get('fault', 'none')
    return api
