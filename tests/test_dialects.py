# -*- coding: utf-8 -*-
"""Every spelling, read back by a parser written from its own documentation.

The parsers below follow each dialect's published syntax, not the package's
formatter: DogStatsD's datagram format and tag rules (Datadog docs),
Graphite 1.1's tagged series (graphite docs, "Tags"), Telegraf's statsd
input with InfluxDB tags, statsd-librato-backend's ``#`` tags, SignalFx's
``[dimensions]``, Monasca's ``|#{dimensions}`` (monasca-statsd's format
and Monasca's metric rules), and Etsy statsd's ``name:value|type`` for the
dotted names. Hostile names go in as label values; what must come out is
one line per measurement, the same value, and one series per raw name.
"""

import ast
import re

import pytest

from magnetodb_statsd_middleware import dialects
from magnetodb_statsd_middleware import metrics
from tests.support import peers

HOSTILE = [
    u'new\nline', u'cr\rreturn', u'a,b', u'a=b', u'a:b', u'a|b', u'a#b',
    u'a;b', u'a[b]', u'a b', u'tab\tbed', u'caf\u00e9', u'\u8868\u683c',
    u'UPPER', u'Orders', u'orders', u'ORDERS', u'x' * 255, u'x' * 254 + u'y',
    u'x' * 200, u'X' * 195, u'my.table', u'my_table', u'~tilde', u'-dash',
    u'.', u'%d', u'%s%%', u'a/b', u'a\\b', u'\u0130stanbul', u'e\u0301',
    u'\ud800', u'|#evil:1,table:x', u'x:1|c\nmagnetodb.y:2|g', u'a@b',
]


expected_label = peers.expected_label


# Parsers, one per dialect ---------------------------------------------------

class Bad(AssertionError):
    pass


def _check(condition, line, why):
    if not condition:
        raise Bad('%s: %r' % (why, line))


# StatsD value and type, common to every dialect: "<value>|<type>".
_VALUE = re.compile(r'^([0-9]+(\.[0-9]+)?)\|(g|c|ms)$')


def _value(text, line):
    match = _VALUE.match(text)
    _check(match, line, 'value|type')
    return float(match.group(1)), match.group(3)


def parse_dogstatsd(line):
    """``<METRIC_NAME>:<VALUE>|<TYPE>|@<SAMPLE_RATE>|#<TAG_KEY_1>:<TAG_VALUE_1>,
    <TAG_2>``. Metric names start with a letter and hold ASCII
    alphanumerics, underscores and periods; tags start with a letter, hold
    alphanumerics, underscores, minuses, colons, periods and slashes, and
    are lower case (Datadog lower-cases them)."""
    name, sep, rest = line.partition(':')
    _check(sep and re.match(r'^[A-Za-z][A-Za-z0-9_.]*$', name), line, 'name')
    fields = rest.split('|')
    value, kind = _value('|'.join(fields[:2]), line)
    tags = {}
    for field in fields[2:]:
        _check(field.startswith('#'), line, 'only tags expected')
        for tag in field[1:].split(','):
            _check(re.match(r'^[a-z][a-z0-9_\-:./]*$', tag), line,
                   'tag %r' % tag)
            key, _, tag_value = tag.partition(':')
            _check(key not in tags and tag_value, line, 'tag %r' % tag)
            tags[key] = tag_value
    return name, tags, value, kind


def parse_graphite(line):
    """Graphite 1.1 tagged series ``my.series;tag1=value1;tag2=value2``, as
    the StatsD key before ``:``. Tag names are non-empty without ``;!^=``;
    tag values (and the metric name, which goes through the same check) are
    non-empty without ``;`` and do not start with ``~``."""
    key, sep, rest = line.partition(':')
    _check(sep, line, 'no ":"')
    value, kind = _value(rest, line)
    parts = key.split(';')
    name = parts[0]
    _check(name and not name.startswith('~'), line, 'name')
    tags = {}
    for part in parts[1:]:
        tag, sep, tag_value = part.partition('=')
        _check(sep and tag and not re.search(r'[;!^=]', tag), line, 'tag')
        _check(tag_value and not tag_value.startswith('~'), line, 'value')
        _check(tag not in tags, line, 'repeated tag')
        tags[tag] = tag_value
    return name, tags, value, kind


def parse_influxdb(line):
    """Telegraf's statsd input, InfluxDB tags:
    ``users.current,service=payroll,region=us-west:32|g``; an unescaped
    comma, equals sign or space in a tag would end it."""
    bucket, sep, rest = line.partition(':')
    _check(sep, line, 'no ":"')
    value, kind = _value(rest, line)
    parts = bucket.split(',')
    tags = {}
    for part in parts[1:]:
        tag, sep, tag_value = part.partition('=')
        _check(sep and tag and tag_value and ' ' not in part
               and '=' not in tag_value, line, 'tag %r' % part)
        tags[tag] = tag_value
    return parts[0], tags, value, kind


def parse_librato(line):
    """statsd-librato-backend:
    ``metric.name#tag1=value,tag2=value:value|type``; tag names
    ``[-.:_\\w]+``, values ``[-.:_\\\\/\\w ]+``, 255 at most."""
    bucket, sep, rest = line.partition(':')
    _check(sep, line, 'no ":"')
    value, kind = _value(rest, line)
    name, hash_sign, tag_text = bucket.partition('#')
    tags = {}
    if hash_sign:
        for part in tag_text.split(','):
            tag, sep, tag_value = part.partition('=')
            _check(sep and re.match(r'^[-.:_\w]+$', tag), line, 'tag')
            _check(re.match(r'^[-.:_\\/\w ]{1,255}$', tag_value), line,
                   'tag value %r' % tag_value)
            tags[tag] = tag_value
    return name, tags, value, kind


def parse_signalfx(line):
    """SignalFx StatsD dimensions: ``metric.name[foo=bar,dim=val]:value|type``;
    dimension names start with a letter and hold letters, digits, ``_``
    and ``-``; values are at most 256 characters."""
    bucket, sep, rest = line.partition(':')
    _check(sep, line, 'no ":"')
    value, kind = _value(rest, line)
    tags = {}
    name = bucket
    if bucket.endswith(']'):
        name, bracket, dims = bucket[:-1].partition('[')
        _check(bracket and ']' not in dims and '[' not in dims, line, '[]')
        for part in dims.split(','):
            tag, sep, tag_value = part.partition('=')
            _check(sep and re.match(r'^[A-Za-z][A-Za-z0-9_-]*$', tag), line,
                   'dimension')
            _check(0 < len(tag_value) <= 256, line, 'dimension value')
            tags[tag] = tag_value
    _check('[' not in name and ']' not in name, line, 'name')
    return name, tags, value, kind


def parse_monasca(line):
    """monasca-statsd: ``name:value|type|#{'key': 'value', ...}``, the
    dimensions a Python dict literal. Monasca's rules: a name of 1-255
    characters without ``<>={},"\\;&()`` or a space; dimension keys and
    values of 1-255 characters without ``<>={},"\\;&``, keys not starting
    with ``_``."""
    name, sep, rest = line.partition(':')
    _check(sep and 0 < len(name) <= 255
           and not re.search(r'[<>={},"\\;&() ]', name), line, 'name')
    fields = rest.split('|')
    value, kind = _value('|'.join(fields[:2]), line)
    tags = {}
    for field in fields[2:]:
        _check(field.startswith('#{'), line, 'only dimensions expected')
        tags = ast.literal_eval(field[1:])
        _check(isinstance(tags, dict), line, 'a dict')
        for key, tag_value in tags.items():
            for text in (key, tag_value):
                _check(0 < len(text) <= 255
                       and not re.search(r'[<>={},"\\;&]', text), line,
                       'dimension %r' % text)
            _check(not key.startswith('_'), line, 'key %r' % key)
    return name, tags, value, kind


def parse_dotted(line):
    """Etsy statsd: ``<name>:<value>|<type>``; the daemon splits a datagram
    on newlines, a line on ``|#`` then ``:``, and keeps ``a-zA-Z0-9_-.``
    of a key (``;=`` too)."""
    name, sep, rest = line.partition(':')
    _check(sep and re.match(r'^[A-Za-z0-9_.-]+$', name), line, 'name')
    value, kind = _value(rest, line)
    return name, {}, value, kind


PARSERS = {'dogstatsd': parse_dogstatsd, 'graphite': parse_graphite,
           'influxdb': parse_influxdb, 'librato': parse_librato,
           'signalfx': parse_signalfx, 'monasca': parse_monasca,
           'disabled': parse_dotted}


# The measurements of every kind, with hostile label values -----------------

def _measurements(names):
    found = []
    for name in names:
        labels = (u'proj' + name[:3], name)
        found.append((metrics.TABLE['size'], labels, 7))
        found.append((metrics.TABLE['item_count'], labels, 8))
        found.append((metrics.PROJECT['size'], (name,), 9))
        found.append((metrics.HEALTH, (name, u'storage'), 1))
        found.append((metrics.PROJECT['tables_by_status'],
                      (name, u'create_failed'), 2))
        found.append((metrics.PROJECT['stuck'], (name,), 0))
        found.append((metrics.TOTAL['tables_by_status'], (name,), 4))
    found.append((metrics.TOTAL['projects'], (), 3))
    found.append((metrics.TOTAL['stuck'], (), 1))
    found.append((metrics.COLLECTOR['cycles_completed'], (), 1))
    found.append((metrics.COLLECTOR['cycle_duration'], (), 12.25))
    return found


def _spell(mode, measurements, user_labels=(), emit_legacy=False,
           max_name_length=metrics.MAX_NAME_LENGTH):
    settings = peers.make_settings(label_mode=mode, metric_prefix='mdb',
                                   user_labels=user_labels,
                                   emit_legacy=emit_legacy,
                                   max_name_length=max_name_length)
    lines = []
    for spelling in dialects.spellings(settings):
        lines.extend(spelling.lines(measurements))
    return lines


LABELED = ['dogstatsd', 'graphite', 'influxdb', 'librato', 'signalfx',
           'monasca']


@pytest.mark.parametrize('mode', LABELED)
@pytest.mark.parametrize('max_length', [100, metrics.MAX_NAME_LENGTH, 1024])
def test_each_dialect_reads_back_every_measurement(mode, max_length):
    """In the dialects that write their labels into the name, the name
    with its labels is within ``max_name_length``: the table's value, then
    the project's, is cut (the documented rule, written again in
    :func:`peers.expected_labels`)."""
    measurements = _measurements(HOSTILE)
    user = ((u'region', u'r1'), (u'cloud', u'prod'))
    lines = _spell(mode, measurements, user_labels=user,
                   max_name_length=max_length)
    assert len(lines) == len(measurements)
    lower = mode == 'dogstatsd'
    cut = 0
    for line, (quantity, labels, value) in zip(lines, measurements):
        assert '\n' not in line and '\r' not in line
        line.encode('ascii')  # the statsd client sends ASCII
        name, tags, read_value, kind = PARSERS[mode](line)
        assert name == 'mdb.' + quantity.name
        assert (read_value, kind) == (value, quantity.kind)
        expected = peers.expected_labels(
            mode, name, dict(zip(quantity.labels, labels)), user,
            max_length, lower)
        assert tags == expected
        assert all(len(v) <= 200 for v in tags.values())
        uncut = dict(user)
        uncut.update((key, expected_label(raw, lower))
                     for key, raw in zip(quantity.labels, labels))
        cut += tags != uncut
        if mode in peers.NAME_LABEL_MODES:
            assert len(line.rsplit(':', 1)[0]) <= max_length
        else:
            assert tags == uncut
    assert cut if (mode in peers.NAME_LABEL_MODES
                   and max_length < 1024) else not cut


@pytest.mark.parametrize('mode', peers.NAME_LABEL_MODES)
def test_labels_cut_to_fit_stay_apart_and_stable(mode):
    """Tables that differ only after the room left, a table's size and
    item count, and the same table at the next cycle."""
    raws = [u'x' * 255, u'x' * 254 + u'y', u'x' * 200, u'x' * 199 + u'.']
    measurements = [(metrics.TABLE[metric], (u'p' * 150, raw), 1)
                    for raw in raws for metric in metrics.TABLE_METRICS]
    first = _spell(mode, measurements)
    assert first == _spell(mode, measurements)
    names = set(line.rsplit(':', 1)[0] for line in first)
    assert len(names) == len(measurements)
    assert max(len(name) for name in names) == metrics.MAX_NAME_LENGTH


@pytest.mark.parametrize('mode', LABELED + ['disabled'])
def test_no_two_names_share_a_series(mode):
    """Every raw name, the case-only pairs included, is its own series."""
    lines = _spell(mode, [(metrics.TABLE['size'], (u'p', name), 1)
                          for name in HOSTILE])
    series = set()
    for line in lines:
        name, tags, _, _ = PARSERS[mode](line)
        series.add((name, tuple(sorted(tags.items()))))
    assert len(series) == len(HOSTILE)


def test_labels_are_sorted_by_key_and_user_labels_merge_in():
    (line,) = _spell('graphite', [(metrics.TABLE['size'], ('p', 't'), 1)],
                     user_labels=(('zone', 'z'), ('az', 'a'), ('region', 'r')))
    assert line == 'mdb.table.size;az=a;project=p;region=r;table=t;zone=z:1|g'


@pytest.mark.parametrize('mode, line', [
    ('dogstatsd', 'mdb.table.size:5|g|#project:p,table:t'),
    ('graphite', 'mdb.table.size;project=p;table=t:5|g'),
    ('influxdb', 'mdb.table.size,project=p,table=t:5|g'),
    ('librato', 'mdb.table.size#project=p,table=t:5|g'),
    ('signalfx', 'mdb.table.size[project=p,table=t]:5|g'),
    ('monasca', "mdb.table.size:5|g|#{'project': 'p', 'table': 't'}"),
    ('disabled', 'mdb.tables.p.t.size:5|g'),
])
def test_the_lines_of_the_readme(mode, line):
    assert _spell(mode, [(metrics.TABLE['size'], ('p', 't'), 5)]) == [line]


@pytest.mark.parametrize('mode', LABELED)
def test_no_labels_is_a_plain_line(mode):
    assert _spell(mode, [(metrics.TOTAL['tables'], (), 4),
                         (metrics.COLLECTOR['cycle_duration'], (), 1.5)]) == [
        'mdb.total.tables:4|g', 'mdb.collector.cycle_duration:1.500000|ms']


def test_the_dotted_spelling_reads_back():
    measurements = _measurements(HOSTILE)
    lines = _spell('disabled', measurements)
    for line, (quantity, labels, value) in zip(lines, measurements):
        name, _, read_value, kind = parse_dotted(line)
        assert name == peers.expected_dotted_name(
            'mdb', quantity.dotted, labels, keys=quantity.labels)
        assert len(name) <= metrics.MAX_NAME_LENGTH
        assert (read_value, kind) == (value, quantity.kind)


def test_emit_legacy_spells_everything_twice():
    measurements = _measurements([u'a.b', u'C'])
    lines = _spell('librato', measurements, emit_legacy=True)
    assert len(lines) == 2 * len(measurements)
    half = len(measurements)
    assert [parse_librato(line)[0] for line in lines[:half]] == [
        'mdb.' + q.name for q, _, _ in measurements]
    assert [parse_dotted(line)[0] for line in lines[half:]] == [
        peers.expected_dotted_name('mdb', q.dotted, labels, keys=q.labels)
        for q, labels, _ in measurements]


@pytest.mark.parametrize('raw', HOSTILE)
@pytest.mark.parametrize('lower', [False, True])
def test_safe_label_is_the_rule_of_the_readme(raw, lower):
    assert metrics.safe_label(raw, lower) == expected_label(raw, lower)


def test_safe_labels():
    assert metrics.safe_label('my.table') == 'my.table'
    assert metrics.safe_label('Orders') == 'Orders'
    assert metrics.safe_label('Orders', lower=True).startswith('orders_')
    assert metrics.safe_label('orders', lower=True) == 'orders'
    assert metrics.safe_label('x' * 200) == 'x' * 200
    long_value = metrics.safe_label('x' * 201)
    assert len(long_value) == 200 and long_value.startswith('x' * 191 + '_')
    # A changed value is cut too, so that its suffix still fits.
    assert len(metrics.safe_label('X' * 195, lower=True)) == 200
    assert metrics.safe_label(u'a b') == metrics.safe_label(u'a b')
