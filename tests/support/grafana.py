"""What Grafana does with etc/grafana/magnetodb-statsd.json before a query
reaches Graphite: its panels, its template variables, and how their values
are put into a query (the tests and tools/draw_dashboard_pictures.py)."""

import json
import os
import re

from tests.support import peers

DASHBOARD = os.path.join(peers.ROOT, 'etc', 'grafana',
                         'magnetodb-statsd.json')


def load(path=DASHBOARD):
    with open(path) as f:
        return json.load(f)


def panels(dashboard):
    """Every panel that queries, the panels nested in rows included."""
    for panel in dashboard['panels']:
        for inner in [panel] + panel.get('panels', []):
            if inner.get('targets'):
                yield inner


def panel(dashboard, title):
    (found,) = [p for p in panels(dashboard) if p['title'] == title]
    return found


def variable(dashboard, name):
    (found,) = [v for v in dashboard['templating']['list']
                if v['name'] == name]
    return found


_VARIABLE = re.compile(r'\$(\w+)|\$\{(\w+)(?::([\w:]+))?\}|\[\[(\w+)\]\]')


def interpolate(dashboard, query, selected, now=None):
    """``query`` with variables replaced as Grafana's Graphite data source
    replaces them: a multi-value selection becomes a ``{a,b}`` glob, a
    single value stays itself, "All" becomes the variable's ``allValue``;
    the global ``${__to:date:seconds}`` is the end of the time range in
    unix seconds, ``now`` (left as it is when ``now`` is None)."""
    def value(match):
        plain, braced, fmt, legacy = match.groups()
        name = plain or braced or legacy
        if name == '__to':
            assert fmt == 'date:seconds', match.group(0)
            return match.group(0) if now is None else '%d' % now
        chosen = selected[name]
        if chosen == 'All':
            return variable(dashboard, name)['allValue']
        if isinstance(chosen, (list, tuple)):
            return chosen[0] if len(chosen) == 1 else \
                '{%s}' % ','.join(chosen)
        return chosen
    return _VARIABLE.sub(value, query)
