"""Figure 13: one MagnetoDB host walking the whole listing, against three
hosts sharing the walk (``share_walk``).

MagnetoDB 2015.1's own API servers (eventlet mode, CPython 2.7, the
environment of ``tools/build-magnetodb-env.sh``, Cassandra and JMX faked in
process) share one data file of about 20,000 tables and one redis; each has
its own port, host lock, ``host_name`` and ``[statsd]`` options, and its
filter polls its own loopback ``monitoring_url``. StatsD is a process that
reads and drops every datagram (``children/udp_drain.py``).

Measured over the cycles after the first, from the servers' own records of
each request (``MagnetoDBServer(request_times=True)``): a cycle's wall time
(first listing request received to last answered, over all servers), each
API process's CPU per cycle (``/proc/<pid>/stat`` between the starts of the
first measured cycle and of the cycle after the last, so every interval is
counted whole), the listing rows each served per cycle, and the latency of
``GET /healthcheck`` sent to each server every 50 ms by a probe thread,
counting the probes that overlap a cycle.

MagnetoDB's servers are driven from CPython 3 (``tests/support/
magnetodb_peer.py``), so this figure runs there only.
"""

from __future__ import division

import os
import random
import subprocess
import sys
import threading
import time

from six.moves import http_client

from benchmarks import common
from magnetodb_statsd_middleware import compat
from tests.support import peers

# Case B: three hosts sharing the walk (False: three hosts, one walks).
SHARE_WALK = True

TABLES = 20000
# Shorter than the default 60 s to keep a case within about 3 minutes;
# still longer than a whole walk by one host.
INTERVAL = 30
# The probes measure the servers idle for this long before any cycle.
INITIAL_DELAY = 20
MEASURED = 3  # cycles measured, after the first
# Datagrams at send_rate, not spread over half the interval: pacing would
# hold a short walk back to the spread, and the wall time would be the
# plan's instead of the walk's.
SEND_SPREAD = 0
PROBE_EVERY = 0.05
PROBE_AGENT = 'magnetodb-statsd-bench-probe'
CPU_SAMPLE_EVERY = 0.2
# Requests further apart than this belong to two cycles.
CYCLE_GAP = INTERVAL / 3
HOSTS = ('mdb-a', 'mdb-b', 'mdb-c')


def make_cloud(tables=TABLES, seed=2015):
    """A cloud as clouds are: a few large projects (more than a page of
    1,000 tables each, none above the 5,000 that MagnetoDB fails to page),
    a dozen middling ones, hundreds of small ones."""
    from tests.support import magnetodb_peer as mdb
    rng = random.Random(seed)
    sizes = [3000, 2200, 1500] + [rng.randint(150, 600) for _ in range(12)]
    while sum(sizes) < tables:
        sizes.append(min(rng.randint(1, 40), tables - sum(sizes)))
    cloud = []
    for count in sizes:
        cloud += mdb.make_tables(rng, mdb.project_id(rng), count)
    return cloud, len(sizes)


def process_cpu(pid):
    """User + system CPU seconds of a process, from /proc."""
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


class CpuSampler(object):
    """Samples the CPU clocks of some processes, so that they can be read
    afterwards at the times the request records name."""

    def __init__(self, pids):
        self.pids = pids
        self.samples = []  # (wall-clock time, [CPU seconds per pid])
        self._stop = threading.Event()
        self.thread = peers.start_thread(self._run)

    def _run(self):
        while not self._stop.is_set():
            self.samples.append((time.time(),
                                 [process_cpu(pid) for pid in self.pids]))
            self._stop.wait(CPU_SAMPLE_EVERY)

    def at(self, when):
        """The CPU clocks sampled last at or before ``when``."""
        before = [cpu for sampled, cpu in self.samples if sampled <= when]
        return before[-1] if before else self.samples[0][1]

    def stop(self):
        self._stop.set()
        self.thread.join(5)


class Probe(object):
    """``GET /healthcheck`` every PROBE_EVERY seconds on one kept-alive
    connection, as a load balancer's health check does."""

    def __init__(self, port):
        self.port = port
        self.answers = []  # (sent, answered) wall-clock times, 200 only
        self.failed = 0
        self._stop = threading.Event()
        self.thread = peers.start_thread(self._run)

    def _run(self):
        conn = None
        while not self._stop.is_set():
            sent = time.time()
            try:
                if conn is None:
                    conn = http_client.HTTPConnection('127.0.0.1', self.port,
                                                      timeout=30)
                conn.request('GET', '/healthcheck',
                             headers={'User-Agent': PROBE_AGENT})
                response = conn.getresponse()
                response.read()
                answered = time.time()
                if response.status == 200:
                    self.answers.append((sent, answered))
                else:
                    self.failed += 1
            except (http_client.HTTPException,) + compat.OS_ERRORS:
                conn.close()
                conn = None
                self.failed += 1
                answered = time.time()
            self._stop.wait(max(0.0, PROBE_EVERY - (answered - sent)))
        if conn is not None:
            conn.close()

    def stop(self):
        self._stop.set()
        self.thread.join(35)


class Drain(object):
    """The StatsD stand-in, in a process of its own."""

    def __init__(self):
        self.process = subprocess.Popen(
            [sys.executable, '-m', 'benchmarks.children.udp_drain'],
            stdout=subprocess.PIPE, close_fds=True, env=common.CHILD_ENV,
            universal_newlines=True)
        self.port = int(self.process.stdout.readline())

    def stop(self):
        """``(datagrams, bytes)`` it read."""
        self.process.terminate()
        counts = self.process.stdout.read().split()
        self.process.wait()
        return [int(n) for n in counts] if counts else [0, 0]


def listing_cycles(servers):
    """The filters' monitoring requests of all servers, grouped by cycle:
    ``[{'start', 'end', 'requests': [(server index, TimedRequest)]}]``."""
    from tests.support import magnetodb_peer as mdb
    polls = []
    for index, server in enumerate(servers):
        for request in server.timed_requests():
            path = request.uri.partition('?')[0]
            if (mdb.POLLER_AGENT.match(request.agent)
                    and path.startswith(mdb.MONITORING_PATH)):
                polls.append((request.received, index, request))
    polls.sort(key=lambda poll: poll[0])
    cycles = []
    for received, index, request in polls:
        if not cycles or received > cycles[-1]['end'] + CYCLE_GAP:
            cycles.append(dict(start=received, end=request.answered,
                               requests=[]))
        cycle = cycles[-1]
        cycle['end'] = max(cycle['end'], request.answered)
        cycle['requests'].append((index, request))
    return cycles


def _options(port, host, drain, redis, share_walk):
    from tests.support import magnetodb_peer as mdb
    options = dict(
        enabled='true', statsd_port=drain.port, metric_prefix='bench_share',
        interval=INTERVAL, initial_delay=INITIAL_DELAY,
        send_spread=SEND_SPREAD, host_name=host,
        monitoring_url='http://127.0.0.1:%d%s' % (port, mdb.MONITORING_PATH),
        coordination_url='redis://127.0.0.1:%d' % redis.port)
    if share_walk:
        options['share_walk'] = 'true'
    return options


def _wait_for_cycles(servers, count):
    """Wait until ``count`` cycles have started; a server that dies, or
    cycles that do not come, fail the figure with the servers' logs."""
    deadline = (compat.monotonic() + INITIAL_DELAY + 120
                + (count + 1) * INTERVAL)
    while compat.monotonic() < deadline:
        for server in servers:
            if server.process.poll() is not None:
                raise AssertionError('MagnetoDB on port %d exited:\n%s'
                                     % (server.port, server.log[-3000:]))
        cycles = listing_cycles(servers)
        if len(cycles) >= count:
            return cycles
        time.sleep(1)
    raise AssertionError('%d cycles did not start in time; logs:\n%s' % (
        count, '\n'.join(server.log[-1500:] for server in servers)))


def _latencies(probe, windows):
    """Milliseconds of the probes that overlap one of ``windows``."""
    return sorted((answered - sent) * 1000
                  for sent, answered in probe.answers
                  if any(sent < end and answered > start
                         for start, end in windows))


def _run_case(env, workdir, data, count, share_walk):
    """The figures of one case: a dict of what the table prints."""
    from tests.support import magnetodb_peer as mdb
    path = os.path.join(workdir, 'case-%d-%s' % (count, share_walk))
    os.makedirs(path)
    redis = peers.RedisServer(path)
    drain = Drain()
    servers, probes, sampler = [], [], None
    try:
        for host in HOSTS[:count]:
            port = peers.free_port()
            serverdir = os.path.join(path, host)
            os.makedirs(serverdir)
            servers.append(mdb.MagnetoDBServer(
                env, serverdir, data, port=port, request_times=True,
                statsd=_options(port, host, drain, redis, share_walk)))
        for server in servers:
            server.wait_ready()
        sampler = CpuSampler([server.process.pid for server in servers])
        probes = [Probe(server.port) for server in servers]
        probed = time.time()
        cycles = _wait_for_cycles(servers, MEASURED + 2)
        for probe in probes:
            probe.stop()
        sampler.stop()
    finally:
        for probe in probes:
            probe.stop()
        if sampler is not None:
            sampler.stop()
        for server in servers:
            server.stop()
        datagrams = drain.stop()
        redis.stop()
    measured = cycles[1:MEASURED + 1]
    after = cycles[MEASURED + 1]['start']
    windows = [(cycle['start'], cycle['end']) for cycle in measured]
    first, last = sampler.at(measured[0]['start']), sampler.at(after)
    idle = sampler.at(probed + 1), sampler.at(cycles[0]['start'] - 1)
    idle_span = cycles[0]['start'] - 2 - probed
    per_server = []
    for index, server in enumerate(servers):
        rows = sum(request.rows for cycle in measured
                   for owner, request in cycle['requests'] if owner == index)
        failed = [request for cycle in measured
                  for owner, request in cycle['requests']
                  if owner == index and request.status != '200']
        latencies = _latencies(probes[index], windows)
        per_server.append(dict(
            host=HOSTS[index],
            cpu=(last[index] - first[index]) / MEASURED,
            idle_cpu=((idle[1][index] - idle[0][index]) / idle_span
                      * INTERVAL if idle_span >= 3 else None),
            rows=rows / MEASURED, failed=len(failed),
            probes=len(latencies), probe_failures=probes[index].failed,
            latency=latencies,
            tracebacks=server.log.count('Traceback')))
    walls = [cycle['end'] - cycle['start'] for cycle in measured]
    return dict(servers=count, share_walk=share_walk, walls=walls,
                per_server=per_server, datagrams=datagrams[0],
                gap=min(b['start'] - a['end']
                        for a, b in zip(cycles, cycles[1:])))


def _print_case(label, case):
    walls = case['walls']
    wall = '%.1f (%.1f-%.1f)' % (sum(walls) / len(walls), min(walls),
                                 max(walls))
    for number, server in enumerate(case['per_server']):
        latency = server['latency']
        if latency:
            health = '%.0f / %.0f / %.0f' % (
                common.percentile(latency, 0.5),
                common.percentile(latency, 0.99), latency[-1])
        else:
            health = 'no probe'
        common.say('%-28s %-6s %-16s %7.1f %9s  %-18s %5d' % (
            label if number == 0 else '', server['host'],
            wall if number == 0 else '', server['cpu'],
            '{:,.0f}'.format(server['rows']), health, server['probes']))
    idle = [server['idle_cpu'] for server in case['per_server']]
    notes = ['probes alone, idle: %s s CPU per server per interval'
             % (' / '.join('%.2f' % v for v in idle)
                if None not in idle else 'not measured')]
    notes.append('%d datagrams drained; shortest pause between cycles '
                 '%.1f s' % (case['datagrams'], case['gap']))
    failed = sum(s['failed'] + s['probe_failures']
                 for s in case['per_server'])
    tracebacks = sum(s['tracebacks'] for s in case['per_server'])
    if failed or tracebacks:
        notes.append('FAILED requests: %d, tracebacks in server logs: %d'
                     % (failed, tracebacks))
    for note in notes:
        common.say('%-28s %s' % ('', note))


def bench_sharing(workdir):
    if compat.PY2:
        common.say('13. skipped on CPython 2.7: the MagnetoDB servers are '
                   'driven from CPython 3')
        return
    from tests.support import magnetodb_peer as mdb
    env = mdb.MagnetoDBEnv.build()
    cloud, projects = make_cloud()
    data = os.path.join(workdir, 'sharing-data.json')
    mdb.write_data(data, cloud)
    try:
        keystone = mdb.serve_keystone()
    except RuntimeError as exc:
        # Only /healthcheck?fullcheck=true asks Keystone; none is sent.
        common.say('13. (no fake Keystone: %s)' % exc)
        keystone = None
    cases = (('A: 1 host walks all', 1, False),
             ('B: 3 hosts share the walk' if SHARE_WALK else
              'B*: 3 hosts, share_walk off', 3, SHARE_WALK))
    results = []
    try:
        for label, count, share_walk in cases:
            started = compat.monotonic()
            results.append((label, _run_case(env, workdir, data, count,
                                             share_walk)))
            common.say('13. %s: %.0f s' % (label,
                                           compat.monotonic() - started))
    finally:
        if keystone is not None:
            keystone.close()
    common.say('13. %d tables in %d projects, interval %d s, %d cycles '
               'measured after the first; healthcheck ms of the probes '
               'during cycles' % (len(cloud), projects, INTERVAL, MEASURED))
    common.say('%-28s %-6s %-16s %7s %9s  %-18s %5s' % (
        'case', 'server', 'cycle wall s', 'CPU s', 'rows', 'p50 / p99 / max',
        'n'))
    for label, case in results:
        _print_case(label, case)
    for label, case in results:
        walls = case['walls']
        worst = max(s['latency'][-1] if s['latency'] else 0
                    for s in case['per_server'])
        common.report('13. %s: cycle wall, worst healthcheck'
                      % label.split(':')[0], '%.1f s, %.0f'
                      % (sum(walls) / len(walls), worst), '', None, ' ms')
