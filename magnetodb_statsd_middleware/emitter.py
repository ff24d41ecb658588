"""Sending metrics to StatsD over UDP, batched and paced.

Measurements are spelled into lines by :mod:`.dialects` (dotted names or a
label dialect, whose tags may follow the type: ``|#k:v``), and the
``statsd`` package's pipeline packs those lines into datagrams of at most
``max_packet_size`` bytes and sends them. This module adds what a
collector inside an API server needs around it: the host is resolved again
at every cycle (a DNS change needs no restart, a DNS failure only fails
that cycle), a line that could never fit a datagram is dropped and counted
instead of being sent oversize, and datagrams are paced to ``send_rate``
so that a 100,000-table cycle does not overflow the daemon's receive
buffer.
"""

from __future__ import division

import socket
import sys
import time

import statsd
from statsd.client.base import StatsClientBase
from statsd.client.udp import Pipeline

from magnetodb_statsd_middleware import compat
from magnetodb_statsd_middleware import dialects
from magnetodb_statsd_middleware import runtime

# Datagrams handed to the socket between two pacing pauses: large enough
# that the partly filled last datagram of a batch costs little fill, small
# enough that a burst fits the receive buffer of a busy daemon.
DATAGRAMS_PER_BATCH = 32


class EmitError(Exception):
    """StatsD cannot be reached at all this cycle; the message is the cause."""


def resolve(host, port):
    """``(address, is_ipv6)`` of the first address ``host`` resolves to."""
    try:
        infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC,
                                   socket.SOCK_DGRAM)
    except compat.OS_ERRORS + (UnicodeError,) as exc:
        raise EmitError('cannot resolve StatsD host %r: %s'
                        % (host, compat.to_text(exc)))
    family, _, _, _, address = infos[0]
    return address[0], family == socket.AF_INET6


class Emitter(object):
    """One cycle's StatsD client; use as a context manager."""

    def __init__(self, settings):
        self._settings = settings
        self._spellings = dialects.spellings(settings)
        self._client = None
        self._pipe = None
        self._batch_bytes = DATAGRAMS_PER_BATCH * settings.max_packet_size
        self._pending_bytes = 0
        self._due = 0.0
        self.oversize = 0

    def __enter__(self):
        self._client = self._open_client()
        self._pipe = self._client.pipeline()
        return self

    def _open_client(self):
        address, ipv6 = resolve(self._settings.statsd_host,
                                self._settings.statsd_port)
        try:
            # The pipeline sends a datagram while it is shorter than
            # maxudpsize, hence the + 1.
            return statsd.StatsClient(
                address, self._settings.statsd_port,
                maxudpsize=self._settings.max_packet_size + 1, ipv6=ipv6)
        except compat.OS_ERRORS as exc:
            raise EmitError('cannot open a UDP socket to %s:%d: %s'
                            % (address, self._settings.statsd_port,
                               compat.to_text(exc)))

    def __exit__(self, *exc_info):
        try:
            self.flush()
        finally:
            compat.close_statsd_client(self._client)

    def send(self, measurements):
        """Spell and queue a list of measurements, in every spelling.

        The hot loop of a cycle. Every line is built from safe parts and
        checked values (:mod:`.dialects`); one that could never fit a
        datagram is dropped and counted in :attr:`oversize`.
        """
        # The pipeline's own formatters queue a finished line this way; it
        # packs whatever lines it holds into datagrams at send().
        add = self._pipe._after
        limit = self._settings.max_packet_size
        for spelling in self._spellings:
            for line in spelling.lines(measurements):
                length = len(line)
                if length > limit:
                    self.oversize += 1
                    continue
                add(line)
                self._pending_bytes += length
                if self._pending_bytes >= self._batch_bytes:
                    self.flush()

    def flush(self):
        """Send what is queued, then pause to keep to ``send_rate``.

        Time spent reading the monitoring API earns no credit: a batch is
        always followed by the pause its own size needs, so the daemon
        never sees a burst larger than one batch.
        """
        if not self._pending_bytes:
            return
        self._pipe.send()
        rate = self._settings.send_rate
        now = compat.monotonic()
        if rate:
            self._due = (max(self._due, now) + self._pending_bytes
                         / (rate * self._settings.max_packet_size))
        self._pending_bytes = 0
        if self._due > now:
            time.sleep(self._due - now)
        else:
            runtime.cooperative_yield()


class _PrintingClient(StatsClientBase):
    """A statsd client whose datagrams go to a stream, one line a metric."""

    def __init__(self, stream, maxudpsize):
        self._stream = stream
        self._prefix = None
        self._maxudpsize = maxudpsize

    def _send(self, data):
        self._stream.write(data + '\n')

    def pipeline(self):
        return Pipeline(self)

    def close(self):
        self._stream.flush()


class DryRunEmitter(Emitter):
    """Prints exactly the lines an Emitter would send, and sends nothing."""

    def _open_client(self):
        self._settings = self._settings._replace(send_rate=0)
        return _PrintingClient(sys.stdout, self._settings.max_packet_size + 1)
