"""The one place that reaches inside the ``statsd`` package's client.

statsd's UDP client resolves its address and opens its socket, but its
public interface sends one metric per call, or a pipeline that builds its
datagrams line by line, and it drops a datagram the socket refuses in
silence. The emitter packs whole datagrams itself (the hot loop of a
cycle) and must count the refused ones, so it needs the client's socket
and address, which are private (``_sock``, ``_addr``) and which any statsd
release may change. Only this module touches them, and only when a client
opens; its tests run against both statsd releases the package supports
(3.3, the last for Python 2.7, and 4.x).
"""

import statsd

from magnetodb_statsd_middleware import compat


class DatagramClient(object):
    """Sends whole datagrams to one StatsD address over UDP.

    A datagram the socket refuses (a firewall rule, a full buffer, no
    route) is counted in :attr:`unsent`, with the first cause in
    :attr:`send_error`, instead of raising. ``host`` is an address that
    is already resolved (the emitter resolves it at every cycle).
    """

    def __init__(self, host, port, ipv6=False):
        client = statsd.StatsClient(host, port, ipv6=ipv6)
        self._sock = client._sock
        self._addr = client._addr
        self.unsent = 0
        self.send_error = ''  # why, the first time

    def send(self, datagram):
        """Send one datagram: text of ASCII lines joined by ``\\n``."""
        try:
            self._sock.sendto(datagram.encode('ascii'), self._addr)
        except compat.OS_ERRORS as exc:
            self.unsent += 1
            self.send_error = self.send_error or compat.to_text(exc)

    def close(self):
        """Close the socket now, not when it is collected (statsd 3.3's
        client cannot close it; 4.x's closes this very socket)."""
        self._sock.close()
