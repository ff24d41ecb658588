"""MagnetoDB 2015.1's paging, as documented, worked out here apart from
both servers and from the package: what a page holds, how many requests
a walk needs where nothing fails, and the table of its quirks and
real-data failures that the fixture API (tests/test_listing.py) and
MagnetoDB itself (tests/test_magnetodb.py) must answer alike.

The first page is the first ``limit`` rows; ``last_evaluated_project=P``
is all of P, then the rows of the projects after P, up to the server's
default limit (a later page carries no ``limit``); with
``last_evaluated_table=T`` the row P/T alone stands for P; a page shorter
than its limit is the last. A page or resource that holds a row whose
statistics cannot be read fails with HTTP 500.
"""

import collections

from six.moves.urllib import parse as urlparse

from magnetodb_statsd_middleware import compat

# A layout, in listing order: ``odd`` and ``broken`` each have an ACTIVE
# table whose statistics cannot be read (``broken_table``, of broken),
# then ``clean`` and the other readable projects, ``big`` (more tables
# than the server pages: ``big_table`` is its first), more readable ones.
# ``order``: ``[(project, name)]``; ``active``: ``{project: {names}}``;
# ``unreadable``: the ``(project, name)`` that fail; ``roles``: ``{role:
# project or table}`` of the names above; ``default_limit``: the server's
# page size. :func:`page` reads ``order`` and ``default_limit`` only.
Layout = collections.namedtuple(
    'Layout', 'order active unreadable roles default_limit')

NO_TABLE = '~no-such-table'  # a table name no project has

# (what the reference says, the request under the listing's path, the
# answer: 500, 'page' (the rows worked out here) or 'active' (the
# project's ACTIVE tables)).
QUIRKS = (
    ('the first page holds an unreadable row: it fails', '?limit=3', 500),
    ('last_evaluated_project=P alone, P with an unreadable row: fails',
     '?last_evaluated_project={broken}', 500),
    ("so does P's own resource", '/{broken}', 500),
    ("and every such project's", '/{odd}', 500),
    ("and the unreadable table's", '/{broken}/tables/{broken_table}', 500),
    ('stepping past P with a table no project has: the page after P',
     '?last_evaluated_project={broken}&last_evaluated_table=' + NO_TABLE,
     'page'),
    ('stepping past a project when the page after it holds an unreadable '
     'row: fails',
     '?last_evaluated_project={odd}&last_evaluated_table=' + NO_TABLE, 500),
    ('last_evaluated_project=C alone: all of C, then the projects after '
     'it', '?last_evaluated_project={clean}', 'page'),
    ('limit on a later page fails (the server was written for Python 2)',
     '?last_evaluated_project={clean}&limit=5', 500),
    ('last_evaluated_project=B alone, B too large to page: fails',
     '?last_evaluated_project={big}', 500),
    ('an empty last_evaluated_table is not given at all: fails alike',
     '?last_evaluated_project={big}&last_evaluated_table=', 500),
    ("B's own resource answers with its ACTIVE tables", '/{big}', 'active'),
    ('last_evaluated_table=T of B: the row B/T, then the projects after '
     'B; the rest of B never',
     '?last_evaluated_project={big}&last_evaluated_table={big_table}',
     'page'),
    ('a project that does not exist has no tables', '/no-such-project',
     'active'),
)


def page(layout, params):
    """The ``[(project, name)]`` of the listing page asked for with
    ``params`` (a dict of the query)."""
    project = params.get('last_evaluated_project')
    if project is None:
        return layout.order[:int(params.get('limit', layout.default_limit))]
    limit = layout.default_limit
    own = [row for row in layout.order if row[0] == project]
    after = layout.order[layout.order.index(own[-1]) + 1:]
    if params.get('last_evaluated_table'):
        own = [row for row in own if row[1] == params['last_evaluated_table']]
    if len(own) >= limit:
        return own
    return own + after[:limit - len(own)]


def listing_requests(sizes, page_size=1000, default_limit=1000):
    """How many listing requests read every table of projects of ``sizes``
    tables (in listing order) exactly once where nothing fails. The last
    project of a full page may go on past it: it is asked for again,
    whole; a project that fills a page on its own is stepped past."""
    layout = Layout([('%d' % project, '%d' % table)
                     for project, size in enumerate(sizes)
                     for table in range(size)], {}, (), {}, default_limit)
    params = {'limit': page_size}
    requests = 0
    while True:
        requests += 1
        rows = page(layout, params)
        if len(rows) < int(params.get('limit', default_limit)):
            return requests
        last = rows[-1][0]
        if params == {'last_evaluated_project': last}:  # it fills the page
            params = {'last_evaluated_project': last,
                      'last_evaluated_table': NO_TABLE}
        else:
            params = {'last_evaluated_project': last}


def assert_quirks(layout, get):
    """Every quirk of :data:`QUIRKS` on ``layout``, where ``get(request)``
    is ``(HTTP status, decoded JSON or None)`` of a request under the
    listing's path."""
    roles = dict((role, compat.quote(value))
                 for role, value in layout.roles.items())
    for what, template, answer in QUIRKS:
        request = template.format(**roles)
        status, body = get(request)
        if answer == 500:
            assert status == 500, (what, request, status)
            continue
        assert status == 200, (what, request, status)
        if answer == 'active':
            project = urlparse.unquote(request[1:])
            assert sorted(row['table_name'] for row in body) == sorted(
                layout.active.get(project, ())), what
            continue
        rows = [(row['tenant'], row['name']) for row in body]
        expected = page(layout, dict(urlparse.parse_qsl(
            request.partition('?')[2], keep_blank_values=True)))
        assert rows == expected, what
        assert not set(rows) & set(layout.unreadable), what
