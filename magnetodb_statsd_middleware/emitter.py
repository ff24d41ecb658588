"""Sending metrics to StatsD over UDP, batched and paced.

Measurements are spelled into lines by :mod:`.dialects` (dotted names or a
label dialect, whose tags may follow the type: ``|#k:v``); this module
packs the lines into datagrams of at most ``max_packet_size`` bytes
(several lines to a datagram, separated by ``\\n`` as the StatsD protocol
allows), and the ``statsd`` package's client sends them, through
:mod:`.statsdclient`. The packing is ours rather than the package's
pipeline, which concatenates a datagram line by line: this is the hot
loop of a cycle (two lines per table, two million for a large cloud). A
project's lines are joined once and cut at the last line end that fits,
which costs a few string operations per datagram instead of several per
line, and the pacing needs to know how many datagrams a batch is before it
goes.

Around it: the host is resolved again at every cycle (a DNS change needs
no restart, a DNS failure only fails that cycle); a line that could never
fit a datagram is dropped and counted instead of being sent oversize;
datagrams go out in batches, each when :mod:`.pacing` says (spread over a
share of the interval, never above ``send_rate``); a datagram the socket
refuses is counted and reported instead of being dropped in silence.
"""

from __future__ import division

import socket
import sys
import time

from magnetodb_statsd_middleware import compat
from magnetodb_statsd_middleware import dialects
from magnetodb_statsd_middleware import pacing
from magnetodb_statsd_middleware import runtime
from magnetodb_statsd_middleware import statsdclient

# Bytes of datagrams handed to the socket between two pacing waits, about
# 200 lines: a burst that takes a tenth of a daemon's receive buffer
# whatever max_packet_size is, and a millisecond or two of work between
# two chances for requests to run.
BATCH_BYTES = 16 * 1024


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
    """One cycle's StatsD client; use as a context manager.

    ``pacer`` is the collector's :class:`~.pacing.Pacer`, which remembers
    the cycles before this one; without it the cycle is paced like a
    first one.
    """

    def __init__(self, settings, pacer=None):
        self._settings = settings
        self._spellings = dialects.spellings(settings)
        self._limit = settings.max_packet_size
        self._pacer = pacer if pacer is not None else pacing.Pacer(settings)
        self._client = None
        self._pending = ''  # the datagram being filled: whole lines
        self._batch = []  # datagrams ready to go
        self._batch_bytes = 0
        self.oversize = 0

    @property
    def sent(self):
        """Datagrams handed to the socket this cycle (the pacer counts
        them)."""
        return self._pacer.sent

    @property
    def unsent(self):
        """Datagrams the socket refused."""
        return self._client.unsent

    @property
    def send_error(self):
        return self._client.send_error

    def __enter__(self):
        self._client = self._open_client()
        self._pacer.begin(compat.monotonic())
        return self

    def _open_client(self):
        address, ipv6 = resolve(self._settings.statsd_host,
                                self._settings.statsd_port)
        try:
            return statsdclient.DatagramClient(
                address, self._settings.statsd_port, ipv6=ipv6)
        except compat.OS_ERRORS as exc:
            raise EmitError('cannot open a UDP socket to %s:%d: %s'
                            % (address, self._settings.statsd_port,
                               compat.to_text(exc)))

    def __exit__(self, *exc_info):
        try:
            self._end_datagram()
            self._send_batch()
        finally:
            self._client.close()

    def send(self, measurements):
        """Spell and queue a list of measurements, in every spelling.

        The hot loop of a cycle. Every line is built from safe parts and
        checked values (:mod:`.dialects`); one that could never fit a
        datagram is dropped and counted in :attr:`oversize`.
        """
        limit = self._limit
        for spelling in self._spellings:
            lines = spelling.lines(measurements)
            if not lines:
                continue
            text = '\n'.join(lines)
            if self._pending:
                text = self._pending + '\n' + text
            start = 0
            # Lines hold no '\n': a datagram ends at the last line end
            # within ``limit`` characters, and none ends there when the
            # first line is longer than that.
            while len(text) - start > limit:
                end = text.rfind('\n', start, start + limit + 1)
                if end != -1:
                    self._queue(text[start:end])
                else:
                    self.oversize += 1
                    end = text.find('\n', start + limit + 1)
                    if end == -1:
                        end = len(text)
                start = end + 1
            self._pending = text[start:]

    def _end_datagram(self):
        """The lines pending make one datagram."""
        if self._pending:
            self._queue(self._pending)
            self._pending = ''

    def _queue(self, datagram):
        self._batch.append(datagram)
        self._batch_bytes += len(datagram)
        if self._batch_bytes >= BATCH_BYTES:
            self._send_batch()

    def _send_batch(self):
        """Wait as long as the pacer says, then hand the batch over."""
        batch = self._batch
        if not batch:
            return
        delay = self._pacer.wait(compat.monotonic())
        if delay > 0:
            time.sleep(delay)
        else:
            runtime.cooperative_yield()
        send = self._client.send
        for datagram in batch:
            send(datagram)
        self._pacer.sent_batch(len(batch))
        del batch[:]
        self._batch_bytes = 0


class _PrintingClient(object):
    """Stands in for :class:`.statsdclient.DatagramClient`: the datagrams
    go to a stream, one line a metric."""

    unsent = 0
    send_error = ''

    def __init__(self, stream):
        self._stream = stream

    def send(self, datagram):
        self._stream.write(datagram + '\n')

    def close(self):
        self._stream.flush()


class DryRunEmitter(Emitter):
    """Prints exactly the lines an Emitter would send, sends nothing and
    never waits."""

    def __init__(self, settings, pacer=None):
        super(DryRunEmitter, self).__init__(
            settings, pacing.Pacer(settings._replace(send_rate=0,
                                                     send_spread=0.0)))

    def _open_client(self):
        return _PrintingClient(sys.stdout)
