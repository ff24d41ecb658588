"""Logging like a good daemon: once when a failure starts, once when it ends.

A collector that runs every minute must not write an ERROR per cycle while
StatsD or the monitoring API is down: the first failure is logged at ERROR
with its cause, a changed cause again at ERROR, a repeat at DEBUG, and the
recovery once at INFO.

The collector starts when the paste app is built, before the server
listens: a failure of its own monitoring API or health check during a
short start-up grace is expected and only logged at DEBUG, until the first
complete cycle ends the grace (and the cycle sends no health gauge for a
health check that did not answer at all meanwhile).
"""

import logging

from magnetodb_statsd_middleware import compat

LOG = logging.getLogger('magnetodb_statsd_middleware')


class OutageLog(object):
    """Remembers the current failure of each named dependency."""

    def __init__(self, log=LOG, grace=0.0, grace_for=()):
        self._log = log
        self._current = {}
        self._quiet_until = compat.monotonic() + grace
        self._grace_for = frozenset(grace_for)

    @property
    def in_grace(self):
        return compat.monotonic() < self._quiet_until

    def end_grace(self):
        """Everything worked once: from now on a failure is news."""
        self._quiet_until = 0.0

    def failed(self, what, cause, exc_info=False, key=None):
        """Record that ``what`` failed this cycle because of ``cause``.

        ``key``, when given, identifies the failure instead of the text
        of ``cause`` (say, the whole set of failing projects, where the
        message names only the first few).
        """
        previous = self._current.get(what)
        if previous is None and what in self._grace_for and self.in_grace:
            self._log.debug('%s not ready yet: %s', what, cause)
            return
        identity = (cause,) if key is None else ('key', key)
        self._current[what] = identity
        if previous == identity:
            self._log.debug('%s still failing: %s', what, cause)
        elif previous is None:
            self._log.error('%s failed: %s', what, cause, exc_info=exc_info)
        else:
            self._log.error('%s failing differently now: %s', what, cause,
                            exc_info=exc_info)

    def succeeded(self, what):
        """Record that ``what`` worked this cycle."""
        if self._current.pop(what, None) is not None:
            self._log.info('%s recovered', what)
