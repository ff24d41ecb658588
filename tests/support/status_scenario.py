"""Tables by status and stuck tables: one scenario, run against the
fixture API (tests/test_statuses.py, the collector's clock moved by the
test) and against MagnetoDB 2015.1 itself (tests/test_magnetodb.py, in
real time). It states the data, each step's change, what StatsD must
hold after it, and what the collector may log meanwhile.

A table that stays CREATING becomes stuck and, once ACTIVE, is no longer
counted; one that goes CREATING -> ACTIVE in time never counts; a DELETING
table stuck, then gone; CREATE_FAILED and DELETE_FAILED counted; zeros
sent, so that a count that falls to zero reads 0 in a daemon that keeps
the last value (doc/source/metrics.rst).
"""

import collections

from tests.support import peers

# Two projects: one with a table in every status, one all ACTIVE.
STATUS, CALM = 'p-status', 'p-calm'
TABLES = {
    STATUS: [peers.Row('slow', 'CREATING', 0, 0),
             peers.Row('quick', 'CREATING', 0, 0),
             peers.Row('going', 'DELETING', 0, 0),
             peers.Row('cf', 'CREATE_FAILED', 0, 0),
             peers.Row('df', 'DELETE_FAILED', 0, 0),
             peers.Row('t.1', 'ACTIVE', 100, 10)],
    CALM: [peers.Row('a', 'ACTIVE', 5, 1), peers.Row('b', 'ACTIVE', 7, 2)]}

# A step: ``changes`` ``((table of STATUS, new status or None: gone),)``;
# ``when``: 'start' (the first cycles), 'in time' (before stuck_after
# has passed since the start), 'past' (just after it has), 'later' (any
# time after the step before); ``stuck``: the tables of STATUS counted
# as stuck then; ``checks``: ``{name under the prefix: value}`` read from
# StatsD, written out by hand.
Step = collections.namedtuple('Step', 'title changes when stuck checks')
STEPS = (
    Step('first cycles', (), 'start', (), {
        'projects.p-status.tables_by_status.creating': 2,
        'projects.p-calm.tables_by_status.deleting': 0,
        'totals.stuck': 0}),
    Step('quick: CREATING -> ACTIVE in time', (('quick', 'ACTIVE'),),
         'in time', (), {'projects.p-status.tables_by_status.creating': 1}),
    Step('slow (CREATING) and going (DELETING) past stuck_after', (),
         'past', ('slow', 'going'), {'totals.stuck': 2}),
    Step('going: DELETING -> gone', (('going', None),), 'later', ('slow',),
         {'projects.p-status.tables_by_status.deleting': 0}),
    Step('slow: CREATING -> ACTIVE', (('slow', 'ACTIVE'),), 'later', (), {
        'projects.p-status.stuck': 0,
        'projects.p-status.tables_by_status.creating': 0,
        'totals.tables_by_status.create_failed': 1,
        'totals.tables_by_status.delete_failed': 1}),
)
# The collector logs nothing about statuses: no line above INFO.
LOUDEST_LEVEL = 'INFO'


def steps():
    """``(step, tables)`` in order, ``tables`` as :data:`TABLES` after the
    step's change."""
    tables = dict((project, list(rows)) for project, rows in TABLES.items())
    for step in STEPS:
        for name, status in step.changes:
            rows = tables[STATUS]
            (index,) = [i for i, row in enumerate(rows) if row.name == name]
            if status is None:
                del rows[index]
            else:
                rows[index] = rows[index]._replace(status=status)
        yield step, dict((p, list(rows)) for p, rows in tables.items())


def status_gauge(name):
    """Whether a gauge is a count by status or of stuck tables, dotted or
    labeled."""
    return ('.tables_by_status' in name or name.endswith('.stuck')
            or ';status=' in name or '.stuck;' in name)


def status_gauges(gauges):
    """The counts by status and of stuck tables among ``gauges``."""
    return dict((name, value) for name, value in gauges.items()
                if status_gauge(name))


def expected(tables, prefix, step):
    """The dotted status gauges StatsD must hold for ``tables`` at
    ``step``."""
    return status_gauges(peers.expected_gauges(
        tables, prefix, stuck=[(STATUS, name) for name in step.stuck]))


def check(found, prefix, step):
    """The step's hand-written values in ``found`` (the gauges StatsD
    held once they were all as expected)."""
    for name, value in step.checks.items():
        assert found[prefix + '.' + name] == value, (step.title, name)
