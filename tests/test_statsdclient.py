"""The adapter over the statsd package, on the release each runtime has.

The same tests run on CPython 2.7 with statsd 3.3 and on 3.x with statsd
4.x: whatever the emitter relies on, on both.
"""

import errno
import os
import re
import socket

import pytest

import magnetodb_statsd_middleware
from magnetodb_statsd_middleware import statsdclient
from tests.support import peers


@pytest.fixture
def receiver():
    """A plain UDP socket on the IPv4 loopback."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(('127.0.0.1', 0))
    sock.settimeout(5)
    yield sock
    sock.close()


def test_datagrams_arrive_whole_and_in_order(receiver):
    client = statsdclient.DatagramClient('127.0.0.1',
                                         receiver.getsockname()[1])
    client.send(u'a.b:1|g\na.c:2|g')
    client.send(u'a.d:3|c')
    client.close()
    assert receiver.recv(512) == b'a.b:1|g\na.c:2|g'
    assert receiver.recv(512) == b'a.d:3|c'
    assert (client.unsent, client.send_error) == (0, '')


def test_ipv6():
    receiver = peers.ipv6_receiver()
    client = statsdclient.DatagramClient('::1', receiver.getsockname()[1],
                                         ipv6=True)
    client.send(u'v6:6|g')
    client.close()
    assert receiver.recv(512) == b'v6:6|g'
    receiver.close()


def test_nobody_listening_is_not_a_refusal(receiver):
    # The port was bound and is free again: the ICMP "port unreachable"
    # answers never fail a send (the socket is not connected).
    port = receiver.getsockname()[1]
    receiver.close()
    client = statsdclient.DatagramClient('127.0.0.1', port)
    for _ in range(20):
        client.send(u'x:1|g')
    client.close()
    assert client.unsent == 0


def test_refused_datagrams_are_counted_with_the_first_cause():
    # No SO_BROADCAST: the socket refuses the limited broadcast address.
    client = statsdclient.DatagramClient('255.255.255.255', 8125)
    for _ in range(3):
        client.send(u'x:1|g')
    assert client.unsent == 3
    first = client.send_error
    assert first
    client.close()
    client.send(u'x:1|g')  # a closed socket: another cause, no exception
    assert (client.unsent, client.send_error) == (4, first)


def test_close_closes_the_socket_at_once(receiver):
    client = statsdclient.DatagramClient('127.0.0.1',
                                         receiver.getsockname()[1])
    client.close()  # the client itself is still referenced
    client.send(u'x:1|g')
    assert client.unsent == 1
    assert os.strerror(errno.EBADF) in client.send_error


def test_only_the_adapter_uses_the_statsd_package():
    package = os.path.dirname(magnetodb_statsd_middleware.__file__)
    imports = re.compile(r'^\s*(import|from)\s+statsd\b', re.MULTILINE)
    users = []
    for root, _, files in os.walk(package):
        for name in sorted(files):
            if name.endswith('.py'):
                with open(os.path.join(root, name)) as source:
                    if imports.search(source.read()):
                        users.append(name)
    assert users == ['statsdclient.py']
