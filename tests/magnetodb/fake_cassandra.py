"""An in-memory stand-in for ``cassandra.cluster.Cluster`` (cassandra-driver
2.1.3), holding only MagnetoDB's ``magnetodb.table_info`` table.

MagnetoDB 2015.1 builds its CQL as text (``ClusterHandler.execute_query``
wraps it in a ``SimpleStatement`` at QUORUM) and reads the rows through
``session.row_factory = dict_factory``. This fake parses that text and
runs it against the rows of ``fake_data``, with Cassandra's rules for
``PRIMARY KEY (tenant, name)``:

- ``SELECT cols|* FROM magnetodb.table_info [WHERE ...] [LIMIT n]`` where
  the WHERE clause is ``tenant = 'P'``, optionally ``AND name <op> 'T'``,
  or ``TOKEN(tenant) <op> TOKEN('P')``; rows in token order of the
  partitions, then name order; no wrap-around.
- ``UPDATE magnetodb.table_info SET col = value, ... WHERE tenant = 'P'
  AND name = 'T' [IF exists = 1]`` (the status change MagnetoDB makes
  when it times out a CREATING or DELETING table), answered with the
  ``[applied]`` row.

Anything else raises: a statement that is not valid CQL (a ``'`` inside a
name MagnetoDB did not escape, say) raises the driver's SyntaxException as
Cassandra would; valid CQL this fake does not implement raises
Unsupported and is logged with the marker ``FAKE-CASSANDRA-UNSUPPORTED``
so that a test can look for it. Storage down (``fake_data``) raises the
driver's NoHostAvailable on every query.

A result of more than ``fetch_size`` rows (5,000 by default, as the driver
pages at protocol v2) comes back as a real driver ``PagedResult``, which
has no ``len()``: exactly what MagnetoDB meets with a large project.
"""

import datetime
import logging
import re
import time

import cassandra
import fake_data
from cassandra import cluster
from cassandra import protocol
from cassandra import query as cassandra_query

LOG = logging.getLogger(__name__)
TABLE = 'magnetodb.table_info'
COLUMNS = (u'tenant', u'name', u'creation_date_time', u'exists', u'id',
           u'internal_name', u'last_update_date_time', u'schema', u'status')
KEY_COLUMNS = ('tenant', 'name')
TIMESTAMP_COLUMNS = ('creation_date_time', 'last_update_date_time')


class Unsupported(Exception):
    """Valid CQL that this fake does not implement: a test gap, not data."""


def _syntax_error(cql, detail):
    """What the driver raises for Cassandra's syntax error answer."""
    return protocol.SyntaxException(
        code=protocol.SyntaxException.error_code,
        message=u'line 1: %s in %r' % (detail, cql), info=None)


def _invalid(detail):
    """What the driver raises for Cassandra's invalid query answer."""
    return cassandra.InvalidRequest(
        u'code=2200 [Invalid query] message="%s"' % detail)


# -- parsing -----------------------------------------------------------

_TOKEN = re.compile(r"""
    \s*(?:
      (?P<string>'(?:[^']|'')*')
    | (?P<quoted>"(?:[^"]|"")+")
    | (?P<number>-?[0-9]+)
    | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<op>>=|<=|!=|[=<>(),.*;])
    )""", re.VERBOSE)


def _tokens(cql):
    """``[(kind, value)]``; a string literal's value is its text."""
    tokens = []
    position = 0
    text = cql.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise _syntax_error(cql, 'unexpected %r' % text[position:][:20])
        kind = match.lastgroup
        value = match.group(kind)
        if kind == 'string':
            value = value[1:-1].replace("''", "'")
        elif kind == 'quoted':
            kind, value = 'word', value[1:-1].replace('""', '"')
        elif kind == 'number':
            value = int(value)
        elif kind == 'word':
            value = value.lower()
        tokens.append((kind, value))
        position = match.end()
    return tokens


class _Parser(object):
    """A recursive-descent parser for the statements listed above."""

    def __init__(self, cql):
        self.cql = cql
        self.tokens = _tokens(cql)
        self.position = 0

    def peek(self):
        if self.position < len(self.tokens):
            return self.tokens[self.position]
        return None, None

    def take(self, kind=None, value=None):
        found = self.peek()
        if found[0] is None or (kind and found[0] != kind) or (
                value is not None and found[1] != value):
            raise _syntax_error(self.cql, 'expected %s near %r'
                                % (value or kind, found[1]))
        self.position += 1
        return found[1]

    def accept(self, kind, value=None):
        found = self.peek()
        if found[0] == kind and (value is None or found[1] == value):
            self.position += 1
            return True
        return False

    def end(self):
        self.accept('op', ';')
        if self.peek()[0] is not None:
            raise _syntax_error(self.cql, 'unexpected %r' % (self.peek()[1],))

    def table(self):
        keyspace = self.take('word')
        self.take('op', '.')
        name = keyspace + '.' + self.take('word')
        if name != TABLE:
            raise Unsupported('table %s' % name)

    def column(self):
        name = self.take('word')
        if name not in COLUMNS:
            raise _invalid(u'Undefined name %s' % name)
        return name

    def literal(self):
        kind, value = self.peek()
        if kind in ('string', 'number'):
            self.position += 1
            return value
        if kind == 'word' and value == 'null':
            self.position += 1
            return None
        raise _syntax_error(self.cql, 'expected a literal near %r' % (value,))

    def condition(self):
        if self.accept('word', 'token'):
            self.take('op', '(')
            if self.take('word') != 'tenant':
                raise _invalid(u'TOKEN() takes the '
                                              u'partition key')
            self.take('op', ')')
            op = self.take('op')
            self.take('word', 'token')
            self.take('op', '(')
            value = self.literal()
            self.take('op', ')')
            return ('token', op, value)
        column = self.column()
        return (column, self.take('op'), self.literal())

    def where(self):
        conditions = []
        if self.accept('word', 'where'):
            conditions.append(self.condition())
            while self.accept('word', 'and'):
                conditions.append(self.condition())
        return conditions

    def statement(self):
        verb = self.take('word')
        if verb == 'select':
            return self.select()
        if verb == 'update':
            return self.update()
        raise Unsupported(verb.upper())

    def select(self):
        if self.accept('op', '*'):
            columns = COLUMNS
        else:
            columns = [self.column()]
            while self.accept('op', ','):
                columns.append(self.column())
        self.take('word', 'from')
        self.table()
        conditions = self.where()
        limit = None
        if self.accept('word', 'limit'):
            limit = self.take('number')
        self.end()
        return ('select', tuple(columns), conditions, limit)

    def update(self):
        self.table()
        self.take('word', 'set')
        assignments = []
        while True:
            column = self.column()
            self.take('op', '=')
            assignments.append((column, self.literal()))
            if not self.accept('op', ','):
                break
        conditions = self.where()
        expected = []
        if self.accept('word', 'if'):
            expected.append(self.condition())
            while self.accept('word', 'and'):
                expected.append(self.condition())
        self.end()
        return ('update', assignments, conditions, expected)


# -- running ---------------------------------------------------------------

OPERATORS = ('=', '>', '>=', '<', '<=')


def _key(value):
    """Cassandra compares text as UTF-8 bytes."""
    return value.encode('utf-8') if isinstance(value, type(u'')) else value


def _restrictions(conditions):
    """Split a WHERE clause the way Cassandra allows it for this table."""
    tenant = token = None
    names = []
    for column, op, value in conditions:
        if op not in OPERATORS:
            raise _invalid(u'operator %s' % op)
        if column == 'tenant' and op == '=' and tenant is None:
            tenant = value
        elif column == 'token' and token is None:
            token = (op, fake_data.token(value))
        elif column == 'name':
            names.append((op, _key(value)))
        else:
            raise _invalid(
                u'Cannot execute this query as it might involve data '
                u'filtering (%s %s)' % (column, op))
    if names and tenant is None:
        raise _invalid(
            u'Cannot restrict name without restricting tenant')
    if token and tenant is not None:
        raise Unsupported('TOKEN() together with tenant =')
    return tenant, token, names


def _select(storage, conditions, limit):
    tenant, token, names = _restrictions(conditions)
    if tenant is not None:
        partitions = [storage.partition(tenant, names)]
    elif token is not None:
        op, value = token
        if op != '>':
            raise Unsupported('TOKEN(tenant) %s' % op)
        partitions = storage.partitions_after(value)
    else:
        partitions = storage.all_partitions()
    rows = []
    for partition in partitions:
        rows.extend(partition)
        if limit is not None and len(rows) >= limit:
            return rows[:limit]
    return rows


def _update(storage, assignments, conditions, expected):
    tenant, token, names = _restrictions(conditions)
    if tenant is None or [op for op, _ in names] != ['=']:
        raise _invalid(u'UPDATE needs the full primary key')
    found = storage.partition(tenant, names)
    for column, op, value in expected:
        if op != '=':
            raise Unsupported('IF %s %s' % (column, op))
        if not found or found[0].get(column) != value:
            return [{u'[applied]': False}]
    if not found:
        raise Unsupported('UPDATE creating a row')
    for column, value in assignments:
        if column in KEY_COLUMNS:
            raise _invalid(u'cannot SET %s' % column)
        if column in TIMESTAMP_COLUMNS and value is not None:
            # The driver's Encoder writes a datetime as milliseconds.
            value = datetime.datetime.utcfromtimestamp(value / 1000.0)
        found[0][column] = value
    return [{u'[applied]': True}]


class _PagingFuture(object):
    """Stands for the driver's ResponseFuture of a paged query: hands the
    pages after the first to the real PagedResult, as it asks for them."""

    def __init__(self, pages):
        self._pages = pages
        self._current = 0

    @property
    def has_more_pages(self):
        return self._current + 1 < len(self._pages)

    def start_fetching_next_page(self):
        if not self.has_more_pages:
            raise cluster.QueryExhausted()
        self._current += 1

    def result(self, timeout=None):
        page = self._pages[self._current]
        if self.has_more_pages:
            return cluster.PagedResult(self, page, timeout)
        return page


class FakeSession(object):
    """What MagnetoDB uses of ``cassandra.cluster.Session``."""

    default_fetch_size = 5000  # the driver's, at protocol v2
    default_timeout = 10.0

    def __init__(self, cluster):
        self.cluster = cluster
        self.row_factory = cassandra_query.named_tuple_factory
        self.is_shutdown = False

    def execute(self, query, parameters=None, timeout=None, trace=False):
        cql = getattr(query, 'query_string', query)
        if isinstance(cql, bytes):
            # MagnetoDB formats text into str: UTF-8 bytes on Python 2.
            cql = cql.decode('utf-8')
        # A real query waits on the network: let other greenthreads run.
        time.sleep(0)
        data = fake_data.data_file()
        if data.storage_is_down():
            raise cluster.NoHostAvailable(
                u'Unable to complete the operation against any hosts',
                {u'127.0.0.1': u'Connection refused (fake storage down)'})
        try:
            if parameters:
                raise Unsupported('bound parameters')
            return self._run(_Parser(cql).statement(), data.storage(), query)
        except Unsupported as exc:
            LOG.error('FAKE-CASSANDRA-UNSUPPORTED %s: %s', exc, cql)
            raise

    def _run(self, statement, storage, query):
        if statement[0] == 'update':
            return _update(storage, *statement[1:])
        _, columns, conditions, limit = statement
        rows = _select(storage, conditions, limit)
        return self._result(columns, rows, query)

    def _result(self, columns, rows, query):
        fetch_size = getattr(query, 'fetch_size',
                             cassandra_query.FETCH_SIZE_UNSET)
        if fetch_size is cassandra_query.FETCH_SIZE_UNSET:
            fetch_size = self.default_fetch_size
        if not fetch_size:  # None: paging switched off
            fetch_size = max(len(rows), 1)
        pages = [self.row_factory(list(columns),
                                  [tuple(row[c] for c in columns)
                                   for row in rows[start:start + fetch_size]])
                 for start in range(0, len(rows), fetch_size)] or [[]]
        if len(pages) == 1:
            return pages[0]
        return cluster.PagedResult(_PagingFuture(pages), pages[0])

    def shutdown(self):
        self.is_shutdown = True


class _Connection(object):
    is_closed = False


class _ControlConnection(object):
    """ClusterHandler._is_connected() looks at ``_connection.is_closed``."""

    def __init__(self):
        self._connection = _Connection()


class FakeCluster(object):
    """Takes the place of ``cassandra.cluster.Cluster``: MagnetoDB's
    ClusterHandler calls ``Cluster(**cluster_params).connect()``."""

    def __init__(self, contact_points=('127.0.0.1',), **kwargs):
        self.contact_points = contact_points
        self.params = kwargs
        self.control_connection = _ControlConnection()
        self.sessions = []
        self.is_shutdown = False

    def connect(self, keyspace=None):
        if self.is_shutdown:
            raise Exception('Cluster is already shut down')
        if keyspace:
            raise Unsupported('connect(keyspace)')
        session = FakeSession(self)
        self.sessions.append(session)
        return session

    def shutdown(self):
        self.is_shutdown = True
        self.control_connection._connection.is_closed = True
        for session in self.sessions:
            session.shutdown()


def install(cluster_module):
    """Replace ``Cluster`` in the imported ``cassandra.cluster`` module."""
    cluster_module.Cluster = FakeCluster
