"""A StatsD stand-in that reads and drops every datagram, on loopback.

``python -m benchmarks.children.udp_drain``: prints the UDP port it
listens on, then drains until SIGTERM and prints the datagrams and bytes
it read. Being a process of its own, it takes no CPU or interpreter lock
from the benchmark's probes.
"""

from __future__ import print_function

import signal
import socket
import sys


def main():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
    sock.bind(('127.0.0.1', 0))
    counts = [0, 0]

    def finish(signum, frame):
        print(counts[0], counts[1])
        sys.stdout.flush()
        sys.exit(0)

    signal.signal(signal.SIGTERM, finish)
    print(sock.getsockname()[1])
    sys.stdout.flush()
    while True:
        data = sock.recv(65536)
        counts[0] += 1
        counts[1] += len(data)


if __name__ == '__main__':
    main()
