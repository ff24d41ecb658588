"""The types of the ``[statsd]`` options: the checks behind each value.

oslo.config 1.9.3 (a MagnetoDB 2015.1 host) has no types for host
addresses, ports, URLs or patterns, and checks no float bounds (nor an
integer bound of 0); these types add those checks on top of its own, so
that a bad value fails the paste load with a message that says why, on
both runtimes. Each type keeps the ``type_name`` and bounds that current
oslo.config's sample generator prints, so the sample config and the
configuration reference read the same as with current oslo.config's own
types. The options themselves are declared in :mod:`.opts`.
"""

import re
import socket

from oslo_config import types

from magnetodb_statsd_middleware import compat
from magnetodb_statsd_middleware import dialects
from magnetodb_statsd_middleware import metrics

LABEL_KEY_PATTERN = r'^[a-z][a-z0-9_]*\Z'
# A user label value is sent as it is: it must already be what
# metrics.safe_label() would leave unchanged.
LABEL_VALUE_PATTERN = r'^[A-Za-z0-9_.-]{1,200}\Z'

# RFC 1123 host names: dot-separated labels of letters, digits and '-'.
_HOST_NAME = re.compile(r'^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}'
                        r'[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}'
                        r'[A-Za-z0-9])?)*\.?$')


def _labelled(config_type, type_name):
    """Set the label current oslo.config's sample generator prints.

    Set on the instance, after ``__init__``: current oslo.config types set
    their own ``type_name`` there.
    """
    config_type.type_name = type_name
    return config_type


class Pattern(types.String):
    """A string that must match a regular expression."""

    def __init__(self, pattern, what):
        super(Pattern, self).__init__()
        _labelled(self, 'string value')
        self._pattern = pattern  # a string: list_opts() deep-copies it
        self._what = what

    def __call__(self, value):
        value = super(Pattern, self).__call__(value)
        if not re.match(self._pattern, value):
            raise ValueError('not %s' % self._what)
        return value


class HostAddress(types.String):
    """A host name, IPv4 or IPv6 address."""

    def __init__(self):
        super(HostAddress, self).__init__()
        _labelled(self, 'host address value')

    def __call__(self, value):
        value = super(HostAddress, self).__call__(value)
        for family in (socket.AF_INET, socket.AF_INET6):
            try:
                socket.inet_pton(family, value)
                return value
            except (socket.error, ValueError, UnicodeError):
                pass
        if not _HOST_NAME.match(value):
            raise ValueError('not a host name, IPv4 or IPv6 address')
        return value


class URI(types.String):
    """An http or https URL with a host."""

    def __init__(self):
        super(URI, self).__init__()
        _labelled(self, 'uri value')

    def __call__(self, value):
        value = super(URI, self).__call__(value)
        parts = compat.urlsplit(value)
        if parts.scheme not in ('http', 'https') or not parts.hostname:
            raise ValueError('not an http or https URL with a host')
        return value


class Integer(types.Integer):
    """An integer within bounds (1.9.3 checks them too, but skips a bound
    of 0)."""

    def __init__(self, min=None, max=None, type_name='integer value'):
        super(Integer, self).__init__(min=min, max=max)
        _labelled(self, type_name)

    def __call__(self, value):
        value = super(Integer, self).__call__(value)
        if self.min is not None and value < self.min:
            raise ValueError('Should be greater than or equal to %d'
                             % self.min)
        return value


class Float(types.Float):
    """A float within bounds, which oslo.config 1.9.3 cannot check."""

    def __init__(self, min=None, max=None):
        super(Float, self).__init__()
        _labelled(self, 'floating point value')
        self.min = min
        self.max = max

    def __call__(self, value):
        value = super(Float, self).__call__(value)
        if self.min is not None and value < self.min:
            raise ValueError('should be greater than or equal to %g'
                             % self.min)
        if self.max is not None and value > self.max:
            raise ValueError('should be less than or equal to %g'
                             % self.max)
        return value


class MetricList(types.List):
    """A list of known metric names, at least one."""

    def __init__(self):
        super(MetricList, self).__init__(
            item_type=types.String(choices=metrics.TABLE_METRICS))
        _labelled(self, 'list value')

    def __call__(self, value):
        value = super(MetricList, self).__call__(value)
        if not value:
            raise ValueError('name size, item_count or both')
        return value


class Choice(types.String):
    """One of a few names, listed and explained in the option's own help.

    oslo.config's ``String(choices=...)`` checks the same on 1.9.3 and
    current releases, but current sample generators then print every name
    again with "<No description provided>", and 1.9.3 takes no
    descriptions: the help text stays the one place that explains them.
    """

    def __init__(self, names):
        super(Choice, self).__init__()
        _labelled(self, 'string value')
        self._names = tuple(names)

    def __call__(self, value):
        value = super(Choice, self).__call__(value)
        if value not in self._names:
            raise ValueError('not one of %s%s' % (
                ', '.join(name for name in self._names if name),
                ', or empty' if '' in self._names else ''))
        return value


class UserLabels(types.Dict):
    """``key:value,...`` static labels; keys and values checked here,
    since oslo.config's Dict only splits them."""

    def __init__(self):
        super(UserLabels, self).__init__()
        _labelled(self, 'dict value')

    def __call__(self, value):
        labels = super(UserLabels, self).__call__(value)
        for key, label in sorted(labels.items()):
            if not re.match(LABEL_KEY_PATTERN, key):
                raise ValueError('label key %r is not [a-z][a-z0-9_]*'
                                 % key)
            if key in dialects.RESERVED_LABELS:
                raise ValueError('label key %r is one of the collector\'s '
                                 'own (%s)' % (key, ', '.join(
                                     dialects.RESERVED_LABELS)))
            if not re.match(LABEL_VALUE_PATTERN, label):
                raise ValueError('label value %r is not 1 to 200 of A-Z, '
                                 'a-z, 0-9, "_", "-" and "."' % label)
        return labels


class Regex(types.String):
    """A regular expression; quote it ("...") if it holds a comma."""

    def __init__(self):
        super(Regex, self).__init__(quotes=True)
        _labelled(self, 'string value')

    def __call__(self, value):
        value = super(Regex, self).__call__(value)
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError('%r is not a regular expression: %s'
                             % (value, exc))
        return value


class RegexList(types.List):
    """A list of regular expressions."""

    def __init__(self):
        super(RegexList, self).__init__(item_type=Regex())
        _labelled(self, 'list value')
