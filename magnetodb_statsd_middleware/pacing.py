"""How fast a cycle's datagrams go out: spread over a share of the interval.

A StatsD daemon reads its UDP socket from one thread, out of a kernel
buffer of a few hundred kB (``net.core.rmem_default``): one or two hundred
datagrams. Whatever arrives beyond that while the daemon is busy for a
moment (its flush, a garbage collection) is dropped without a trace: a
burst is what loses gauges. So the datagrams of a cycle are spread out:

* The last cycle tells how many datagrams to expect (it saw about as many
  tables as this one will). Datagram number ``k`` of ``expected`` is not
  sent before ``start + k / expected * send_spread * interval``: the
  sending ends ``send_spread`` of the interval after the cycle started.
  Time spent reading the API counts towards that plan; pacing only ever
  waits for a datagram's due time, so it never makes a cycle longer than
  the plan (``send_spread`` is at most 0.9: the plan ends within the
  interval).
* Never faster than ``send_rate`` datagrams a second, whatever the plan:
  a batch goes out no sooner than the previous one's size allows.
* The first cycle (nothing to go by) and the datagrams a cycle sends
  beyond the last one's count (the cloud grew) go at ``send_rate``: the
  rate the operator says the daemon can take, so that a grown cycle still
  ends as soon as it safely can.

When even ``send_rate`` cannot send a cycle within the interval, the
operator is told once (and once when it fits again).
"""

from __future__ import division

import logging

LOG = logging.getLogger(__name__)


class Pacer(object):
    """The pacing of one collector's cycles.

    Call :meth:`begin` when a cycle starts; before each batch of datagrams
    is handed to the socket, :meth:`wait` says how long to wait first, and
    :meth:`sent_batch` records how many it was; :meth:`end` when the cycle is
    over. Times are seconds of a monotonic clock, passed in by the caller.
    """

    def __init__(self, settings):
        self.budget = settings.send_spread * settings.interval
        self.send_rate = settings.send_rate
        self.interval = settings.interval
        # Datagrams the last cycle sent (a failed one counts only when it
        # sent more); 0: no cycle yet, so no plan.
        self.expected = 0
        self.sent = 0
        self._start = 0.0
        self._sent_at = 0.0  # when the batch being sent was due
        self._rate_due = 0.0
        self._too_slow = False  # send_rate cannot fit the interval

    def begin(self, now):
        """A cycle starts at ``now``."""
        self._start = self._sent_at = self._rate_due = now
        self.sent = 0

    def wait(self, now):
        """Seconds to wait from ``now`` before sending the next batch.

        Work done since the last batch (reading the API) counts towards
        the wait, but two batches never go out closer than send_rate
        allows: the daemon never takes more than one batch at once.
        """
        due = self._rate_due
        if self.sent < self.expected:
            due = max(due, self._start
                      + self.budget * self.sent / self.expected)
        self._sent_at = max(due, now)
        return self._sent_at - now

    def sent_batch(self, datagrams):
        """The batch :meth:`wait` was asked about was ``datagrams``."""
        if self.send_rate:
            self._rate_due = self._sent_at + datagrams / self.send_rate
        self.sent += datagrams

    def end(self, completed):
        """The cycle is over; what it sent plans the next one."""
        if completed:
            self.expected = self.sent
        else:  # a partial cycle only says the next one is at least as big
            self.expected = max(self.expected, self.sent)
        self._check_rate(self.sent)

    def _check_rate(self, datagrams):
        """Tell the operator when send_rate alone exceeds the interval."""
        if not self.send_rate:
            return
        needed = datagrams / self.send_rate
        too_slow = needed > self.interval
        if too_slow and not self._too_slow:
            LOG.warning('A cycle sends %d datagrams to StatsD: at send_rate '
                        '%d a second that takes %.0f s, more than the '
                        'interval (%d s), so cycles run back to back. '
                        'Raise send_rate if the StatsD daemon can take it, '
                        'max_packet_size if the network can, or interval.',
                        datagrams, self.send_rate, needed, self.interval)
        elif self._too_slow and not too_slow:
            LOG.info('The datagrams of a cycle fit the interval again at '
                     'send_rate %d', self.send_rate)
        self._too_slow = too_slow
