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
=============  ==============================

A metric without labels is plain ``name:n|g`` in every dialect. Label
values are made safe by :func:`.metrics.safe_label` (lower-cased for
DogStatsD), dotted name parts by :func:`.metrics.safe_name`: neither can
hold a character that any of these syntaxes reads (``\\n : | # , = ; [ ]``
or a space). Each spelling builds one ``%``-template per quantity, once,
so that a line costs one formatting operation.
"""

from magnetodb_statsd_middleware import metrics

DISABLED = 'disabled'
LABEL_MODES = (DISABLED, 'dogstatsd', 'graphite', 'influxdb', 'librato',
               'signalfx')

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
                             settings.user_labels))
    if settings.label_mode == DISABLED or settings.emit_legacy:
        found.append(Dotted(settings.metric_prefix))
    return found


class _Spelling(object):
    """Turns measurements into lines through one template per quantity."""

    # Whether the value comes before the label values in a template.
    value_first = False

    def __init__(self, prefix):
        self._prefix = _literal(prefix)
        self._templates = {}

    def _safe(self, raw):
        raise NotImplementedError()

    def _template(self, quantity):
        raise NotImplementedError()

    def lines(self, measurements):
        """One line per measurement, in order.

        Consecutive measurements that share one labels tuple (a table's
        size and item count) have their label values made safe once, and
        so do consecutive tables of one project (the first label).
        """
        templates = self._templates
        safe = self._safe
        value_first = self.value_first
        last_labels = None
        safe_labels = ()
        first = safe_first = None
        lines = []
        append = lines.append
        for quantity, labels, value in measurements:
            template = templates.get(quantity)
            if template is None:
                template = templates[quantity] = self._template(quantity)
            if labels is not last_labels:
                last_labels = labels
                if labels:
                    if labels[0] is not first:
                        first = labels[0]
                        safe_first = safe(first)
                    if len(labels) == 2:  # (project, table), (host, subsystem)
                        safe_labels = (safe_first, safe(labels[1]))
                    else:
                        safe_labels = ((safe_first,)
                                       + tuple(map(safe, labels[1:])))
                else:
                    safe_labels = ()
            if value_first:
                append(template % ((value,) + safe_labels))
            else:
                append(template % (safe_labels + (value,)))
        return lines


class Dotted(_Spelling):
    """``<prefix>.tables.<P>.<T>.size:n|g``: the labels are name parts."""

    _safe = staticmethod(metrics.safe_part)

    def _template(self, quantity):
        return '%s.%s:%s|%s' % (self._prefix, _literal_except_slots(
            quantity.dotted), _VALUE_FORMATS[quantity.kind], quantity.kind)


class Labeled(_Spelling):
    """``<prefix>.table.size`` with the labels in one of the dialects."""

    def __init__(self, prefix, mode, user_labels):
        super(Labeled, self).__init__(prefix)
        if mode not in LABEL_MODES[1:]:
            raise ValueError('unknown label mode %r' % mode)
        self.mode = mode
        self.value_first = mode == 'dogstatsd'
        self._user_labels = tuple(sorted(user_labels))
        if mode == 'dogstatsd':
            self._safe = _safe_lower_label
        else:
            self._safe = metrics.safe_label

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
