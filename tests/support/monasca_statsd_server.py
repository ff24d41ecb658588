"""monasca-agent's own statsd server, run for the tests in its virtualenv.

Usage: ``python monasca_statsd_server.py PORT HOSTNAME`` with the
interpreter of the virtualenv that tools/install-peers.sh builds
(monasca-agent and monasca-common from PyPI). It runs the agent's
``udp.Server`` on 127.0.0.1:PORT, feeding its ``MetricsAggregator`` (whose
``hostname`` dimension is HOSTNAME) as the agent's statsd daemon does, in
a thread; the forwarder is left out. It prints one JSON line when it
listens, then answers each ``read`` line on stdin with one
JSON line: every metric the aggregator flushed so far (the last value of
each name and dimensions), and the lines the agent rejected or lost.

A line that raises in the agent loses the rest of its datagram (the agent
logs "Error receiving datagram"): the server counts the lines after it as
lost. This file runs on the agent's Python 3 only; the tests talk to it
through tests/support/monasca_peer.py.
"""

import json
import logging
import sys
import threading
import time
from importlib import metadata

from monasca_agent.common import aggregator as agent_aggregator
from monasca_agent.statsd import udp


def main():
    port, hostname = int(sys.argv[1]), sys.argv[2]
    logging.basicConfig(stream=sys.stderr, level=logging.INFO)
    lock = threading.Lock()
    aggregator = agent_aggregator.MetricsAggregator(hostname)
    server = udp.Server(aggregator, '127.0.0.1', port)
    state = {'metrics': {}, 'lines': 0, 'accepted': 0, 'rejected': [],
             'lost': 0, 'datagrams': 0}
    submit_metric = aggregator.submit_metric

    def counted_submit(*args, **kwargs):
        submit_metric(*args, **kwargs)
        state['accepted'] += 1
    aggregator.submit_metric = counted_submit
    submit_packets = server.submit_packets

    def counted_packets(packets):
        lines = [line for line in packets.split(b'\n') if line.strip()]
        with lock:
            state['datagrams'] += 1
            state['lines'] += len(lines)
            before = state['accepted']
            try:
                submit_packets(packets)
            except Exception as exc:
                done = state['accepted'] - before
                state['rejected'].append(
                    [lines[done].decode('utf-8', 'replace'),
                     '%s: %s' % (type(exc).__name__, exc)])
                state['lost'] += len(lines) - done - 1
                raise
    server.submit_packets = counted_packets

    thread = threading.Thread(target=server.start, daemon=True)
    thread.start()
    while not server.running:
        time.sleep(0.01)
    versions = dict((name, metadata.version(name))
                    for name in ('monasca-agent', 'monasca-common'))
    print(json.dumps({'port': port, 'versions': versions}), flush=True)
    for command in sys.stdin:
        if command.strip() != 'read':
            continue
        with lock:
            for envelope in aggregator.flush():
                measurement = envelope['measurement']
                key = json.dumps([measurement['name'],
                                  sorted(measurement['dimensions'].items())])
                state['metrics'][key] = measurement['value']
            answer = dict((k, v) for k, v in state.items()
                          if k != 'metrics')
            answer['metrics'] = [json.loads(key) + [value] for key, value
                                 in state['metrics'].items()]
        print(json.dumps(answer), flush=True)
    server.stop()


if __name__ == '__main__':
    main()
