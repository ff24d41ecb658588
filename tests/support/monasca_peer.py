"""monasca-agent's statsd daemon as a test peer (see monasca_statsd_server),
and Monasca's own statsd client.

The agent (monasca-agent 10.0.0, monasca-common 3.8.0, Python 3 only) and
the client (monasca-statsd 2.7.0) live in their own virtualenv in the
cache, built by tools/install-peers.sh, so that the tests on CPython 2.7
and 3.x talk to the same real daemon.
"""

import collections
import json
import os
import socket
import subprocess

from tests.support import peers

VENV = os.path.join(peers.CACHE, 'monasca-agent')
PYTHON = os.path.join(VENV, 'bin', 'python')
SERVER = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      'monasca_statsd_server.py')

# Sends gauges read as JSON from stdin, [[name, value, [[key, value]...]]],
# with monasca-statsd's client, one datagram each.
_CLIENT = """
import collections, json, sys
from monascastatsd import client
port = int(sys.argv[1])
gauge = client.Client(host='127.0.0.1', port=port).get_gauge()
for name, value, dimensions in json.load(sys.stdin):
    gauge.send(name, value, collections.OrderedDict(dimensions) or None)
"""


def send_with_client(port, gauges):
    """Send ``[(name, value, [(key, value)...])]`` to ``port`` with
    monasca-statsd's client, the dimensions in the order given."""
    process = subprocess.Popen([PYTHON, '-c', _CLIENT, str(port)],
                               stdin=subprocess.PIPE,
                               universal_newlines=True, close_fds=True)
    process.communicate(json.dumps(gauges))
    assert process.returncode == 0


# What the agent read: its metrics {(name, sorted dimensions): value}, the
# lines it received, the ones it rejected ([line, error]) and the lines
# lost after them in their datagrams.
Received = collections.namedtuple('Received',
                                  'metrics lines rejected lost datagrams')


class MonascaAgent(object):
    """The agent's ``udp.Server`` and ``MetricsAggregator`` on loopback."""

    hostname = 'agent-host'

    def __init__(self, workdir):
        if not os.path.exists(PYTHON):
            raise RuntimeError('monasca-agent is not installed in %s: run '
                               'tools/install-peers.sh' % VENV)
        self.port = peers.free_port(socket.SOCK_DGRAM)
        self.log_path = os.path.join(workdir, 'monasca-statsd.log')
        self._log = open(self.log_path, 'w')
        self.process = subprocess.Popen(
            [PYTHON, SERVER, str(self.port), self.hostname],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
            close_fds=True, universal_newlines=True)
        started = json.loads(self.process.stdout.readline() or 'null')
        if not started:
            self.stop()
            raise RuntimeError('monasca-agent did not start: %s' % self.log)
        self.versions = started['versions']

    @property
    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def read(self):
        """Received so far (every flush of the aggregator, accumulated)."""
        self.process.stdin.write('read\n')
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        metrics = dict(((name, tuple(tuple(pair) for pair in dimensions)),
                        value)
                       for name, dimensions, value in answer['metrics'])
        return Received(metrics, answer['lines'],
                        [tuple(r) for r in answer['rejected']],
                        answer['lost'], answer['datagrams'])

    def stop(self):
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                peers.wait_exit(self.process, 10)
            except AssertionError:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()
        self._log.close()
