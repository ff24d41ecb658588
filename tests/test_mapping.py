"""etc/statsd_exporter/mapping.yml against the names the collector sends.

statsd_exporter is not packaged in any registry this project installs
from, so it is checked by specification: its line parsing and its mapping
rules are implemented here from its documentation (README, "Tagging
Extensions" and "Metric Mapping and Configuration"). A line is split at
its first ``:``; the name before it may carry InfluxDB (``name,k=v``),
Librato (``name#k=v``) or SignalFx (``name[k=v]``) tags, and the rest
DogStatsD tags (``|#k:v``), all four read by default and one style per
line; a tag without its separator, key or value is an error and dropped;
a gauge value with a sign is relative. A glob ``match`` is split on ``.``
like the name, ``*`` stands for one dot-separated component, ``$n`` /
``${n}`` in the name and labels is the n-th ``*``, the first matching rule
wins (we require exactly one), ``match_metric_type`` limits a rule to
gauges, counters or timers, an unmatched name would become an unlabeled
metric, and metrics of one name must have one set of label names. Tags
become labels as they are.
"""

import hashlib
import os
import re

import pytest
import yaml

from magnetodb_statsd_middleware import cycle
from magnetodb_statsd_middleware import outages
from magnetodb_statsd_middleware.demo import fakeapi
from tests.support import peers

MAPPING = os.path.join(peers.ROOT, 'etc', 'statsd_exporter', 'mapping.yml')
TYPES = {'g': 'gauge', 'c': 'counter', 'ms': 'timer'}
RULE_KEYS = {'match', 'name', 'help', 'labels', 'ttl', 'match_metric_type'}
PROMETHEUS_NAME = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*$')
LABEL_NAME = re.compile(r'^[a-zA-Z_][a-zA-Z0-9_]*$')
GO_DURATION = re.compile(r'^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$')


def load_rules():
    with open(MAPPING) as f:
        config = yaml.safe_load(f)
    assert set(config) == {'defaults', 'mappings'}
    assert config['defaults']['match_type'] == 'glob'
    assert GO_DURATION.match(config['defaults']['ttl'])
    for rule in config['mappings']:
        assert set(rule) <= RULE_KEYS, rule
        assert rule['match'] and rule['name'], rule
        ttl = rule.get('ttl', config['defaults']['ttl'])
        assert ttl == 0 or GO_DURATION.match(ttl), rule
    return config['mappings']


def _glob(pattern, name):
    """The captures of ``*`` in ``pattern`` if ``name`` matches, else None."""
    parts = pattern.split('.')
    components = name.split('.')
    if len(parts) != len(components):
        return None
    captures = []
    for part, component in zip(parts, components):
        if '*' not in part:
            if part != component:
                return None
            continue
        regex = '^%s$' % '([^.]+)'.join(re.escape(p)
                                         for p in part.split('*'))
        match = re.match(regex, component)
        if not match:
            return None
        captures.extend(match.groups())
    return captures


def _expand(template, captures):
    return re.sub(r'\$\{?([0-9]+)\}?',
                  lambda m: captures[int(m.group(1)) - 1], template)


def matching(rules, name, kind):
    """``[(rule, prometheus name, labels)]`` of every rule that matches."""
    found = []
    for rule in rules:
        if rule.get('match_metric_type', TYPES[kind]) != TYPES[kind]:
            continue
        captures = _glob(rule['match'], name)
        if captures is None:
            continue
        labels = dict((key, _expand(value, captures))
                      for key, value in rule.get('labels', {}).items())
        found.append((rule, _expand(rule['name'], captures), labels))
    return found


# Every label_mode the mapping serves (doc/source/receivers/prometheus.rst).
MODES = ('disabled', 'dogstatsd', 'influxdb', 'librato', 'signalfx')
TAG_SEPARATOR = re.compile(r'[,#\[]')


def _tags(text, separator, line):
    """statsd_exporter's ``k=v,k2=v2`` (``k:v`` for DogStatsD); a tag it
    would count as an error fails the test instead."""
    tags = {}
    for tag in text.split(','):
        key, sep, value = tag.partition(separator)
        assert sep and key and value, (line, tag)
        assert LABEL_NAME.match(key), (line, key)  # kept, not escaped
        tags[key] = value
    return tags


def exporter_event(line):
    """``(name, type, labels, value)`` as statsd_exporter reads ``line``."""
    head, sep, rest = line.partition(':')
    assert sep and head, line
    labels = {}
    if '[' in head or ']' in head:  # SignalFx, checked first
        start, end = head.find('['), head.find(']')
        assert 0 < start < end, line
        labels = _tags(head[start + 1:end], '=', line)
        name = head[:start] + head[end + 1:]
    else:
        split = TAG_SEPARATOR.search(head)
        name = head[:split.start()] if split else head
        if split:  # InfluxDB ',' or Librato '#', whichever comes first
            labels = _tags(head[split.end():], '=', line)
    fields = rest.split('|')
    assert len(fields) in (2, 3), line  # one sample, no sample rate
    value, kind = fields[0], fields[1]
    assert ':' not in value, line  # would be several samples
    # A signed gauge would move the gauge, not set it.
    assert not (kind == 'g' and value[:1] in '+-'), line
    if len(fields) == 3:
        assert fields[2].startswith('#') and not labels, line
        labels = _tags(fields[2][1:], ':', line)
    return name, kind, labels, float(value)


@pytest.fixture(scope='module')
def sent():
    """``{mode: [(name, type, labels, value)]}``: every line of a healthy
    cycle, a cycle with rejected values and a failed cycle, in each mode,
    as statsd_exporter reads it."""
    dataset = fakeapi.build_dataset(projects=3, tables=60, seed=2)
    # The last name is cut to max_name_length (253), keeping its parts.
    dataset['b2c3'] = [fakeapi.Table(u'Orders.2015', 'ACTIVE', 5, 1),
                       fakeapi.Table(u'tmp table', 'CREATING'),
                       fakeapi.Table(u'L.' * 127 + u'x', 'ACTIVE', 7, 2)]
    api_app = fakeapi.FakeMonitoringAPI(dataset)
    api = peers.LoopbackServer(api_app)
    health = peers.LoopbackServer(fakeapi.FakeHealthCheck(
        {'API': 'OK', 'Storage': 'ERROR'}))
    dead = 'http://127.0.0.1:%d/v1/monitoring/projects' % peers.free_port()
    found = {}
    try:
        for mode in MODES:
            udp = peers.UDPReceiver()
            for url, fault in ((api.url, 'none'), (api.url, 'negative'),
                               (dead, 'none')):
                api_app.fault = fault
                cycle.run_cycle(peers.make_settings(
                    monitoring_url=url, statsd_port=udp.port,
                    label_mode=mode, host_name='api-1',
                    healthcheck_url='http://127.0.0.1:%d/healthcheck?'
                    'fullcheck=true' % health.port), outages.OutageLog())
            api_app.fault = 'none'
            udp.drain()
            found[mode] = [exporter_event(line) for line in udp.lines]
            udp.close()
    finally:
        api.close()
        health.close()
    return found


def _series(rules, events):
    """``{prometheus name: {label items: last value}}`` of ``events``,
    each name mapped by exactly one rule."""
    series = {}
    for name, kind, tags, value in events:
        found = matching(rules, name, kind)
        assert len(found) == 1, (name, [r for r, _, _ in found])
        ((_, metric, labels),) = found
        labels.update(tags)
        series.setdefault(metric, {})[tuple(sorted(labels.items()))] = value
    return series


@pytest.mark.parametrize('mode', MODES)
def test_every_name_matches_exactly_one_rule(sent, mode):
    rules = load_rules()
    for name, kind in set((name, kind) for name, kind, _, _ in sent[mode]):
        found = matching(rules, name, kind)
        assert len(found) == 1, (name, [r for r, _, _ in found])


def test_every_rule_is_used(sent):
    rules = load_rules()
    used = set()
    for events in sent.values():
        for name, kind, _, _ in events:
            used.update(rule['match'] for rule, _, _ in
                        matching(rules, name, kind))
    assert set(rule['match'] for rule in rules) - used == set()


@pytest.mark.parametrize('mode', MODES)
def test_prometheus_names_and_labels(sent, mode):
    series = _series(load_rules(), sent[mode])
    label_sets = {}
    for metric, values in series.items():
        assert PROMETHEUS_NAME.match(metric), metric
        for labels in values:
            assert all(LABEL_NAME.match(k) and not k.startswith('__')
                       for k, _ in labels), labels
            label_sets.setdefault(metric, set()).add(
                tuple(k for k, _ in labels))
    for metric, sets in label_sets.items():
        assert len(sets) == 1, (metric, sets)  # one label set per name
    assert label_sets['magnetodb_table_size_bytes'] == {('project',
                                                         'table')}
    assert label_sets['magnetodb_health'] == {('host', 'subsystem')}
    assert label_sets['magnetodb_cloud_size_bytes'] == {()}
    assert label_sets['magnetodb_project_tables_by_status'] == {
        ('project', 'status')}
    assert 'magnetodb_collector_cycles_failed_total' in label_sets
    assert 'magnetodb_collector_values_rejected_total' in label_sets


@pytest.mark.parametrize('mode', MODES[1:])
def test_each_mode_gives_the_dotted_names_series(sent, mode):
    """The same metrics, label names, number of series and values as the
    dotted names (but the clock's: when a cycle ended, how long it took):
    no series merged, split or lost by the mapping (label values differ:
    dotted names hash a ``.`` away)."""
    rules = load_rules()
    clock = ('magnetodb_collector_cycle_duration_seconds',
             'magnetodb_collector_last_success_timestamp_seconds')

    def shape(events):
        return dict(
            (metric, (sorted(set(tuple(k for k, _ in labels)
                                 for labels in values)),
                      len(values) if metric in clock else
                      sorted(values.values())))
            for metric, values in _series(rules, events).items())
    assert shape(sent[mode]) == shape(sent['disabled'])


# The table u'Orders.2015' (project b2c3, 5 bytes): the dotted names
# and DogStatsD's lower-cased tags change its name, so add the first 8 hex
# digits of the SHA-1 of the raw name; the other tags keep it as it is.
ORDERS_HASH = hashlib.sha1(b'Orders.2015').hexdigest()[:8]


@pytest.mark.parametrize('mode, table', [
    ('disabled', 'Orders_2015_' + ORDERS_HASH),
    ('dogstatsd', 'orders.2015_' + ORDERS_HASH),
    ('influxdb', 'Orders.2015'),
    ('librato', 'Orders.2015'),
    ('signalfx', 'Orders.2015'),
])
def test_what_one_table_becomes(sent, mode, table):
    series = _series(load_rules(), sent[mode])['magnetodb_table_size_bytes']
    ours = dict((labels, value) for labels, value in series.items()
                if ('project', 'b2c3') in labels and value == 5)
    assert ours == {(('project', 'b2c3'), ('table', table)): 5.0}


def test_what_the_collector_sends_becomes():
    rules = load_rules()
    ((_, metric, labels),) = matching(rules, 'magnetodb.table.item_count',
                                      'g')
    assert (metric, labels) == ('magnetodb_table_items', {})
    ((_, metric, _),) = matching(rules, 'magnetodb.collector.cycle_duration',
                                 'ms')
    assert metric == 'magnetodb_collector_cycle_duration_seconds'
    assert matching(rules, 'magnetodb.collector.cycle_duration', 'g') == []
