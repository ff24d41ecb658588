"""Logging like a good daemon: once when a failure starts, once when it ends.

A collector that runs every minute must not write an ERROR per cycle while
StatsD or the monitoring API is down: the first failure is logged at ERROR
with its cause, a changed cause again at ERROR, a repeat at DEBUG, and the
recovery once at INFO.
"""

import logging

LOG = logging.getLogger('magnetodb_statsd_middleware')


class OutageLog:
    """Remembers the current failure of each named dependency."""

    def __init__(self, log=LOG):
        self._log = log
        self._current = {}

    def failed(self, what, cause, exc_info=False):
        """Record that ``what`` failed this cycle because of ``cause``."""
        previous = self._current.get(what)
        self._current[what] = cause
        if previous == cause:
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

    def failing(self, what):
        return what in self._current
