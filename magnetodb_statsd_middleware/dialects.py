"""How a measurement is spelled on the wire: dotted names or labels.

:mod:`.metrics` decides what is measured; a spelling only writes each
``(quantity, labels, value)`` as one StatsD line. The dotted names of
``label_mode = disabled`` are one spelling among the others, and
``emit_legacy`` simply spells every measurement twice.

For ``name`` with labels ``k1=v1, k2=v2`` (sorted by key, ``user_labels``
included) and a gauge value ``n``:

=============  ==============================
``dogstatsd``  ``name:n|g|#k1:v1,k2:v2``
``graphite``   ``name;k1=v1;k2=v2:n|g``
``influxdb``   ``name,k1=v1,k2=v2:n|g``
``librato``    ``name#k1=v1,k2=v2:n|g``
``signalfx``   ``name[k1=v1,k2=v2]:n|g``
``monasca``    ``name:n|g|#{'k1': 'v1', 'k2': 'v2'}``
=============  ==============================

A metric without labels is plain ``name:n|g`` in every dialect. Label
values are made safe by :func:`.metrics.safe_label` (lower-cased for
DogStatsD), dotted name parts by :func:`.metrics.safe_part`: neither can
hold a character that any of these syntaxes reads (``\\n : | # , = ; [ ]
{ } '`` or a space), nor one that Monasca refuses. Each spelling builds one
``%``-template per quantity, once, so that a line costs one formatting
operation. A name longer than ``max_name_length`` has its label parts cut
by :func:`.metrics.fit_parts`: a dotted name, and the name of the dialects
that write their labels into it (``graphite``, ``influxdb``, ``librato``,
``signalfx``), everything before ``:n|g``, which is what a receiver
without labels (Gnocchi's statsd daemon, Graphite without tags) stores.
"""

from magnetodb_statsd_middleware import metrics

# The room of a labeled name's label values: never cut here, each value is
# bounded by metrics.MAX_LABEL instead.
_NO_LIMIT = 1 << 62

DISABLED = 'disabled'
LABEL_MODES = (DISABLED, 'dogstatsd', 'graphite', 'influxdb', 'librato',
               'signalfx', 'monasca')
# Dialects whose value comes before the labels ("|#" after the type).
_VALUE_FIRST = ('dogstatsd', 'monasca')
# Dialects whose labels are part of the name, bounded by max_name_length.
NAME_LABEL_MODES = ('graphite', 'influxdb', 'librato', 'signalfx')

# Label keys of the measurements themselves: user_labels may not use them.
RESERVED_LABELS = ('project', 'table', 'host', 'subsystem', 'status')

_VALUE_FORMATS = {metrics.GAUGE: '%d', metrics.COUNTER: '%d',
                  metrics.TIMER: '%0.6f'}


def _literal(text):
    """Fixed template text, never read as a placeholder."""
    return text.replace('%', '%%')


def _literal_except_slots(dotted):
    """A dotted name pattern as template text, its ``%s`` kept."""
    return '%s'.join(_literal(part) for part in dotted.split('%s'))


def _safe_lower_label(raw):
    return metrics.safe_label(raw, lower=True)


def spellings(settings):
    """The spellings that ``settings`` asks for, labeled first."""
    found = []
    if settings.label_mode != DISABLED:
        found.append(Labeled(settings.metric_prefix, settings.label_mode,
                             settings.user_labels, settings.max_name_length))
    if settings.label_mode == DISABLED or settings.emit_legacy:
        found.append(Dotted(settings.metric_prefix,
                            settings.max_name_length))
    return found


class _Spelling(object):
    """Turns measurements into lines through one template per quantity."""

    # Whether the value comes before the label values in a template.
    value_first = False
    # How a label part is cut to fit its room (metrics.fit_parts).
    _cut = staticmethod(metrics.cut_part)

    def __init__(self, prefix):
        self._raw_prefix = prefix
        self._prefix = _literal(prefix)
        self._templates = {}
        # The room of each quantity's label parts, and the least of them:
        # labels that fit the least need no look at their quantity's room.
        self._rooms = {}
        self._least_room = _NO_LIMIT

    def _safe(self, raw):
        raise NotImplementedError()

    def _template(self, quantity):
        raise NotImplementedError()

    def _room(self, quantity):
        """Characters the quantity's label parts may take in all."""
        return _NO_LIMIT

    def lines(self, measurements):
        """One line per measurement, in order.

        Consecutive measurements that share one labels tuple (a table's
        size and item count) have their label values made safe once, and
        so do consecutive tables of one project (the first label). Label
        parts longer in all than the quantity's room are cut.
        """
        templates = self._templates
        rooms = self._rooms
        cut = self._cut
        least_room = self._least_room
        safe = self._safe
        value_first = self.value_first
        last_labels = None
        safe_labels = ()
        length = 0
        too_long = False
        first = safe_first = None
        first_length = 0
        lines = []
        append = lines.append
        for quantity, labels, value in measurements:
            template = templates.get(quantity)
            if template is None:
                template = templates[quantity] = self._template(quantity)
                room = rooms[quantity] = self._room(quantity)
                if room < least_room:
                    least_room = self._least_room = room
                    last_labels = None  # measured again against it
            if labels is not last_labels:
                last_labels = labels
                if labels:
                    if labels[0] is not first:
                        first = labels[0]
                        safe_first = safe(first)
                        first_length = len(safe_first)
                    if len(labels) == 2:  # (project, table), (host, subsystem)
                        second = safe(labels[1])
                        safe_labels = (safe_first, second)
                        length = first_length + len(second)
                    else:
                        safe_labels = ((safe_first,)
                                       + tuple(map(safe, labels[1:])))
                        length = sum(map(len, safe_labels))
                else:
                    safe_labels = ()
                    length = 0
                too_long = length > least_room
            if too_long and length > rooms[quantity]:
                parts = metrics.fit_parts(labels, safe_labels,
                                          rooms[quantity], quantity.labels,
                                          cut)
            else:
                parts = safe_labels
            if value_first:
                append(template % ((value,) + parts))
            else:
                append(template % (parts + (value,)))
        return lines


class Dotted(_Spelling):
    """``<prefix>.tables.<P>.<T>.size:n|g``: the labels are name parts.

    No name is longer than ``max_name_length``: receivers cut longer ones
    without a word (collectd: 127) or reject them (Gnocchi: 253, Monasca:
    255).
    """

    _safe = staticmethod(metrics.safe_part)

    def __init__(self, prefix, max_name_length=metrics.MAX_NAME_LENGTH):
        super(Dotted, self).__init__(prefix)
        self._max_name_length = max_name_length

    def _room(self, quantity):
        return metrics.dotted_room(self._raw_prefix, quantity,
                                   self._max_name_length)

    def _template(self, quantity):
        return '%s.%s:%s|%s' % (self._prefix, _literal_except_slots(
            quantity.dotted), _VALUE_FORMATS[quantity.kind], quantity.kind)


class Labeled(_Spelling):
    """``<prefix>.table.size`` with the labels in one of the dialects.

    In the dialects of :data:`NAME_LABEL_MODES` the name with its labels
    is no longer than ``max_name_length``: the table label value, then the
    project's, is cut (:func:`.metrics.cut_label`) until it fits.
    """

    _cut = staticmethod(metrics.cut_label)

    def __init__(self, prefix, mode, user_labels,
                 max_name_length=metrics.MAX_NAME_LENGTH):
        super(Labeled, self).__init__(prefix)
        if mode not in LABEL_MODES[1:]:
            raise ValueError('unknown label mode %r' % mode)
        self.mode = mode
        self.value_first = mode in _VALUE_FIRST
        self._user_labels = tuple(sorted(user_labels))
        self._max_name_length = max_name_length
        if mode == 'dogstatsd':
            self._safe = _safe_lower_label
        else:
            self._safe = metrics.safe_label

    def _room(self, quantity):
        """What ``max_name_length`` leaves for the label values of a name
        that holds them: the template's name part, without its label
        values, is the fixed text."""
        if self.mode not in NAME_LABEL_MODES:
            return _NO_LIMIT
        line = self._template(quantity) % (
            ('',) * len(quantity.labels) + (0,))
        value = ':%s|%s' % (_VALUE_FORMATS[quantity.kind] % 0, quantity.kind)
        return self._max_name_length - (len(line) - len(value))

    def _template(self, quantity):
        """The quantity's line, ``%s`` standing for each label value.

        The quantity's own keys are sorted and so are the user labels:
        merged, the quantity's values keep their relative order.
        """
        pairs = [(key, '%s') for key in quantity.labels]
        pairs.extend((key, _literal(value))
                     for key, value in self._user_labels)
        pairs.sort(key=lambda pair: pair[0])
        name = '%s.%s' % (self._prefix, quantity.name)
        value = '%s|%s' % (_VALUE_FORMATS[quantity.kind], quantity.kind)
        mode = self.mode
        if mode == 'dogstatsd':
            tags = ','.join('%s:%s' % pair for pair in pairs)
            return '%s:%s%s' % (name, value, '|#' + tags if tags else '')
        if mode == 'monasca':
            # str() of a dict, as monasca-statsd writes it and the agent's
            # ast.literal_eval reads it; safe values hold no quote.
            tags = ', '.join("'%s': '%s'" % pair for pair in pairs)
            return '%s:%s%s' % (name, value,
                                '|#{%s}' % tags if tags else '')
        if mode == 'graphite':
            tags = ''.join(';%s=%s' % pair for pair in pairs)
            return '%s%s:%s' % (name, tags, value)
        if mode == 'influxdb':
            tags = ''.join(',%s=%s' % pair for pair in pairs)
            return '%s%s:%s' % (name, tags, value)
        tags = ','.join('%s=%s' % pair for pair in pairs)
        if tags and mode == 'librato':
            tags = '#' + tags
        elif tags:  # signalfx
            tags = '[%s]' % tags
        return '%s%s:%s' % (name, tags, value)


def check_name_room(prefix, mode, user_labels, max_name_length):
    """None if every labeled name of ``mode`` can be kept within
    ``max_name_length`` (each label value cut to :data:`.metrics.MIN_CUT_PART`
    at most), else the first that cannot, as a message: the fixed text of a
    name that holds its labels (``metric_prefix``, the label keys,
    ``user_labels``) must leave room for them."""
    if mode not in NAME_LABEL_MODES:
        return None
    spelling = Labeled(prefix, mode, user_labels, max_name_length)
    for quantity in metrics.quantities():
        slots = len(quantity.labels)
        if spelling._room(quantity) < metrics.MIN_CUT_PART * slots:
            line = spelling._template(quantity) % (('*',) * slots + (0,))
            return '%s cannot be kept within %d characters' % (
                line.rsplit(':', 1)[0], max_name_length)
    return None
