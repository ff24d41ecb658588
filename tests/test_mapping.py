"""etc/statsd_exporter/mapping.yml against the names the collector sends.

statsd_exporter is not packaged in any registry this project installs
from, so its mapping rules are implemented here from its documentation
(README, "Metric Mapping and Configuration"): a glob ``match`` is split on
``.`` like the StatsD name, ``*`` stands for one dot-separated component,
``$n`` / ``${n}`` in the name and labels is the n-th ``*``, the first
matching rule wins (we require exactly one), ``match_metric_type`` limits a
rule to gauges, counters or timers, an unmatched name would become an
unlabeled metric, and metrics of one name must have one set of label
names. DogStatsD tags become labels as they are.
"""

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


def _parse(line, mode):
    """``(name, type, tags)`` of a dotted or dogstatsd line."""
    head, _, tags = line.partition('|#')
    name, _, rest = head.partition(':')
    kind = rest.split('|')[1]
    return name, kind, dict(tag.split(':', 1) for tag in tags.split(',')
                            if tags)


@pytest.fixture(scope='module')
def sent(request):
    """``{mode: [(name, type, tags)]}``: every line of healthy cycles, a
    cycle with rejected values and a failed cycle, dotted and labeled."""
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
        for mode in ('disabled', 'dogstatsd'):
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
            found[mode] = [_parse(line, mode) for line in udp.lines]
            udp.close()
    finally:
        api.close()
        health.close()
    return found


def test_every_name_matches_exactly_one_rule(sent):
    rules = load_rules()
    used = set()
    for mode, lines in sent.items():
        names = set((name, kind) for name, kind, _ in lines)
        for name, kind in names:
            found = matching(rules, name, kind)
            assert len(found) == 1, (mode, name, [r for r, _, _ in found])
            used.add(found[0][0]['match'])
    unused = set(rule['match'] for rule in rules) - used
    assert unused == set()


def test_prometheus_names_and_labels(sent):
    rules = load_rules()
    label_sets = {}
    for mode, lines in sent.items():
        for name, kind, tags in lines:
            ((_, metric, labels),) = matching(rules, name, kind)
            assert PROMETHEUS_NAME.match(metric), metric
            labels.update(tags)
            assert all(LABEL_NAME.match(k) and not k.startswith('__')
                       for k in labels), labels
            label_sets.setdefault(metric, set()).add(
                tuple(sorted(labels)))
    for metric, sets in label_sets.items():
        assert len(sets) == 1, (metric, sets)  # one label set per name
    assert label_sets['magnetodb_table_size_bytes'] == {('project',
                                                         'table')}
    assert label_sets['magnetodb_health'] == {('host', 'subsystem')}
    assert label_sets['magnetodb_cloud_size_bytes'] == {()}
    assert 'magnetodb_collector_cycles_failed_total' in label_sets
    assert 'magnetodb_collector_values_rejected_total' in label_sets


def test_what_one_table_becomes():
    rules = load_rules()
    ((_, metric, labels),) = matching(
        rules, 'magnetodb.tables.0a1b.Orders_2015_abcdef12.size', 'g')
    assert (metric, labels) == ('magnetodb_table_size_bytes', {
        'project': '0a1b', 'table': 'Orders_2015_abcdef12'})
    ((_, metric, labels),) = matching(rules, 'magnetodb.table.item_count',
                                      'g')
    assert (metric, labels) == ('magnetodb_table_items', {})
    ((_, metric, _),) = matching(rules, 'magnetodb.collector.cycle_duration',
                                 'ms')
    assert metric == 'magnetodb_collector_cycle_duration_seconds'
    assert matching(rules, 'magnetodb.collector.cycle_duration', 'g') == []
