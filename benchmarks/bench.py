"""The README's performance figures: each beside its target; exit 1 on a
miss.

``tox -e bench`` on CPython 3, ``tox -e kilo-bench`` on CPython 2.7 with a
MagnetoDB 2015.1 deployment's libraries (or ``python benchmarks/bench.py``
with any interpreter that has the test dependencies). Every figure is a
ratio or a distribution measured within this one run, because the
machines are shared and noisy. The peers are the tests' own: the
quirk-faithful fake monitoring API (served by a separate process, so that
its CPU is not counted), the real Etsy statsd daemon, and eventlet.wsgi /
gunicorn API servers loading a MagnetoDB-shaped paste ini.

The 1,000,000-table figures (``--only 7,8,9,12``) take several minutes;
``--profile`` prints where a 100,000-table cycle spends its CPU instead.
"""

from __future__ import division
from __future__ import print_function

import argparse
import contextlib
import cProfile
import gc
import inspect
import json
import multiprocessing
import os
import pstats
import re
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import timeit

from six.moves import http_client
from six.moves.urllib import request as urllib_request

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.join(os.path.dirname(HERE), 'tests')
sys.path.insert(0, TESTS)

import peers  # noqa: E402
from magnetodb_statsd_middleware import compat  # noqa: E402
from magnetodb_statsd_middleware import config  # noqa: E402
from magnetodb_statsd_middleware import cycle  # noqa: E402
from magnetodb_statsd_middleware import fakeapi  # noqa: E402
from magnetodb_statsd_middleware import filter as statsd_filter  # noqa: E402
from magnetodb_statsd_middleware import httpget  # noqa: E402
from magnetodb_statsd_middleware import listing  # noqa: E402
from magnetodb_statsd_middleware import monitoring  # noqa: E402
from magnetodb_statsd_middleware import outages  # noqa: E402
from magnetodb_statsd_middleware import scheduler  # noqa: E402

try:  # pacing.py; absent from older trees measured "before"
    from magnetodb_statsd_middleware import pacing
except ImportError:  # pragma: no cover
    pacing = None

BIG = dict(projects=1000, tables=100)  # 100,000 tables, 112 pages
SMALL = dict(projects=10, tables=100)  # 1,000 tables
HUGE = dict(projects=10000, tables=100)  # 1,000,000 tables, 1,112 pages

# What a large cloud's operator sets: StatsD on the LAN (1432-byte
# datagrams fit a 1500-byte MTU); the interval and pacing are defaults.
PRODUCTION = dict(max_packet_size=1432, interval=60)

RESULTS = []

# The CPU and latency targets are for CPython 3; on 2.7 those
# figures are reported beside them, not judged (its request path asks
# os.getpid(), a system call, for want of an at-fork hook).
JUDGED = not compat.PY2


def say(text=''):
    print(text)
    sys.stdout.flush()


def report(name, value, target, ok, unit=''):
    """One figure; ``ok`` None: reported, with no target to meet."""
    RESULTS.append((name, value, target, ok))
    verdict = 'ok' if ok else ('MISSED' if ok is not None else '')
    say('%-62s %12s %-12s %s' % (name, value + unit, target, verdict))


def cpu_time():
    """User + system CPU seconds of this process, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load():
    return '%.2f %.2f %.2f' % os.getloadavg()


FIXTURE = r'''
import sys, time
sys.path.insert(0, sys.argv[1])
import peers
from magnetodb_statsd_middleware import fakeapi
dataset = fakeapi.build_dataset(projects=int(sys.argv[2]),
                                tables=int(sys.argv[3]))
passing_every = int(sys.argv[5])
if passing_every:  # one table in that many CREATING or DELETING, no other
    for index, project in enumerate(sorted(dataset)):
        for number, table in enumerate(dataset[project]):
            table.status = 'ACTIVE'
            if number %% passing_every == 0:
                table.status = ('CREATING', 'DELETING')[index %% 2]
api = fakeapi.FakeMonitoringAPI(dataset)

def app(environ, start_response):
    if environ['PATH_INFO'].endswith('/_bench/next'):
        next_generation(dataset)
        api.load(dataset)
        start_response('200 OK', [('Content-Type', 'text/plain')])
        return [b'ok']
    return api(environ, start_response)

%s
peers.LoopbackServer(app, port=int(sys.argv[4]))
time.sleep(7200)
'''


def next_generation(dataset):
    """Every value one more: the next cycle's gauges all differ."""
    for tables in dataset.values():
        for table in tables:
            table.size += 1
            table.item_count += 1


class FixtureProcess(object):
    """The fake monitoring API in its own process (its CPU is not ours).

    :meth:`next_generation` changes every value, so that a daemon that
    already holds the gauges shows whether the next cycle's arrived.
    """

    def __init__(self, projects, tables, passing_every=0):
        self.port = peers.free_port()
        code = FIXTURE % inspect.getsource(next_generation)
        self.process = subprocess.Popen(
            [sys.executable, '-c', code, TESTS, str(projects), str(tables),
             str(self.port), str(passing_every)], close_fds=True)
        self.url = 'http://127.0.0.1:%d%s' % (self.port, peers.MONITORING_PATH)
        self.dataset = dict(projects=projects, tables=tables)
        self.generation = 0
        peers.wait_for(self._answers, timeout=300, interval=0.5,
                       message='the fixture')

    def next_generation(self):
        peers.http_get(self.url + '/_bench/next', timeout=120, data=b'')
        self.generation += 1

    def expected_gauges(self, prefix):
        """What the daemon must hold after a cycle of this generation."""
        dataset = fakeapi.build_dataset(**self.dataset)
        for _ in range(self.generation):
            next_generation(dataset)
        return peers.expected_gauges(dataset, prefix)

    def _answers(self):
        try:
            peers.http_get(self.url + '?limit=1', timeout=5)
            return True
        except compat.OS_ERRORS:
            return False

    def stop(self):
        self.process.kill()
        self.process.wait()


def make_settings(fixture, port, **extra):
    """Settings for a cycle against ``fixture``; options this tree does
    not know (the benchmark also measures older trees) are left out."""
    values = dict(monitoring_url=fixture.url, statsd_port=port,
                  request_timeout=60, lock_path='', interval=60)
    values.update(extra)
    known = config.Settings._fields
    return peers.make_settings(**dict((k, v) for k, v in values.items()
                                      if k in known))


def run_cycle(settings, pacer=None):
    """One cycle, with the collector's pacer where this tree has one."""
    if pacer is None:
        return cycle.run_cycle(settings, outages.OutageLog())
    return cycle.run_cycle(settings, outages.OutageLog(), pacer=pacer)


def new_pacer(settings):
    return pacing.Pacer(settings) if pacing is not None else None


def percentile(ordered, fraction):
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# 1. Request path ------------------------------------------------------------

def bench_request_path(fixture):
    def app(environ, start_response):
        return [b'ok']

    class PassThrough(object):
        def __init__(self, app):
            self.app = app

        def __call__(self, environ, start_response):
            return self.app(environ, start_response)

    process = scheduler.ProcessCollector()
    udp = peers.UDPReceiver()
    process.ensure_started(make_settings(fixture, udp.port, interval=1))
    filtered = statsd_filter.StatsdFilter(app, process)
    minimal = PassThrough(app)
    environ = {}
    best = {'filter': float('inf'), 'minimal': float('inf')}
    calls = 200000
    for _ in range(15):  # interleaved: both see the same machine state
        for name, wrapped in (('minimal', minimal), ('filter', filtered)):
            spent = timeit.timeit(lambda: wrapped(environ, None),
                                  number=calls)
            best[name] = min(best[name], spent / calls)
    getpid = min(timeit.repeat(os.getpid, number=calls, repeat=15)) / calls
    process.stop()
    udp.close()
    ratio = best['filter'] / best['minimal']
    report('1. request through the collecting filter / pass-through',
           '%.2fx' % ratio, '<= 1.10x', ratio <= 1.10 if JUDGED else None)
    say('   per call: filter %.0f ns, pass-through %.0f ns (+%.0f ns); '
        'os.getpid() alone %.0f ns'
        % (best['filter'] * 1e9, best['minimal'] * 1e9,
           (best['filter'] - best['minimal']) * 1e9, getpid * 1e9))


# 2. CPU per table -----------------------------------------------------------

def baseline_cycle(fixture, targets, port, max_packet_size, prefix):
    """A minimal stdlib loop doing the same fetches and sends."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    address = ('127.0.0.1', port)
    origin = 'http://127.0.0.1:%d' % fixture.port
    seen = set()
    datagram = ''
    for target in targets:
        with contextlib.closing(urllib_request.urlopen(origin + target,
                                                       timeout=60)) as r:
            rows = json.loads(r.read().decode('utf-8'))
        for row in rows:
            key = (row['tenant'], row['name'])
            if key in seen:
                continue
            seen.add(key)
            for metric, value in row['usage_detailes'].items():
                line = '%s.tables.%s.%s.%s:%d|g' % (
                    prefix, row['tenant'], row['name'], metric, value)
                if len(datagram) + len(line) + 1 > max_packet_size:
                    sock.sendto(datagram.encode('ascii'), address)
                    datagram = line
                else:
                    datagram = datagram + '\n' + line if datagram else line
    if datagram:
        sock.sendto(datagram.encode('ascii'), address)
    sock.close()
    return len(seen)


def _recorded_targets(settings):
    """The request targets of one cycle, for the baseline to replay."""
    original = httpget.HttpGetter.get
    targets = []

    def recording(self, path, params, accept=(200,)):
        targets.append(path + '?' + compat.urlencode(params))
        return original(self, path, params, accept)

    httpget.HttpGetter.get = recording
    try:
        result = run_cycle(settings)
    finally:
        httpget.HttpGetter.get = original
    assert result.completed, result.error
    return targets


def _cpu_of(function):
    """``(result, CPU seconds)`` of one call, garbage collected before."""
    gc.collect()
    started = cpu_time()
    result = function()
    return result, cpu_time() - started


def bench_cpu(fixture):
    udp_port = peers.free_port(socket.SOCK_DGRAM)  # nobody listens
    settings = make_settings(fixture, udp_port, send_rate=0)
    targets = _recorded_targets(settings)
    ours, theirs = [], []
    for _ in range(9):
        result, spent = _cpu_of(lambda: run_cycle(settings))
        ours.append(spent)
        tables, spent = _cpu_of(lambda: baseline_cycle(
            fixture, targets, udp_port, 512, 'magnetodb'))
        theirs.append(spent)
    assert tables == result.counts.tables
    # The CPU time of one loop moves by a third from one run to the next
    # on this shared virtual machine: each of our runs is compared with
    # the baseline's run right after it, and the median of those ratios
    # is the figure (the best of each side may come from different
    # states of the machine).
    ratios = sorted(a / b for a, b in zip(ours, theirs))
    ratio = ratios[len(ratios) // 2]
    report('2. collector CPU / minimal stdlib loop, %d tables'
           % result.counts.tables, '%.2fx' % ratio, '<= 1.30x',
           ratio <= 1.3 if JUDGED else None)
    say('   ratios of 9 interleaved pairs %.2f-%.2fx; CPU per table, best '
        'of 9: ours %.1f us, baseline %.1f us; %d pages'
        % (ratios[0], ratios[-1], min(ours) / tables * 1e6,
           min(theirs) / tables * 1e6, result.counts.pages))


class _CountingSink(object):
    """A sink that only walks the measurements: the cost of making them."""

    oversize = sent = unsent = 0

    def __init__(self, settings, pacer=None):
        self.seen = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        pass

    def send(self, measurements):
        for _ in measurements:
            self.seen += 1


def _best_cpu(function, times=5):
    return min(_cpu_of(function)[1] for _ in range(times))


def stage_split(fixture, settings):
    """CPU of a cycle's stages, without a profiler: reading and grouping
    the pages, making the gauges, and lines, datagrams and the socket
    (each the difference with the step before); the socket alone (as
    many sendto() of as many bytes) is the share no code of ours can
    save."""
    def read_only():
        client = monitoring.MonitoringClient(settings)
        try:
            for _ in listing.Walk(client).projects():
                pass
        finally:
            client.close()

    tables = run_cycle(settings).counts.tables
    # Every datagram of a cycle, read while they come: a receiver read
    # after the cycle would see only what its buffer held.
    receiver = peers.UDPReceiver()
    counted = make_settings(fixture, receiver.port, send_rate=0)
    reader = peers.start_thread(receiver.drain)
    run_cycle(counted)
    reader.join()
    receiver.drain()
    sizes = [len(d) for d in receiver.datagrams]
    receiver.close()

    def sendto_only():
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        address = ('127.0.0.1', settings.statsd_port)
        for size in sizes:
            sock.sendto(b'x' * size, address)
        sock.close()

    read = _best_cpu(read_only)
    made = _best_cpu(lambda: cycle.run_cycle(settings, outages.OutageLog(),
                                             _CountingSink))
    full = _best_cpu(lambda: run_cycle(settings))
    socket_only = _best_cpu(sendto_only)
    say('CPU per table of a %d-table cycle, by stage (best of 5):' % tables)
    for name, spent in (
            ('read, decode and group the pages', read),
            ('make the gauges (names, values, sums)', made - read),
            ('lines, datagrams, sendto() (%d datagrams)' % len(sizes),
             full - made),
            ('   of which sendto() itself', socket_only),
            ('whole cycle', full)):
        say('   %6.2f us  %s' % (spent / tables * 1e6, name))


def profile_cycle(fixture):
    """Where a cycle's CPU goes: by stage, then cProfile on CPU time, by
    function and by the file that spends it."""
    settings = make_settings(fixture, peers.free_port(socket.SOCK_DGRAM),
                             send_rate=0)
    run_cycle(settings)  # warm up the connection and the caches
    stage_split(fixture, settings)
    profiler = cProfile.Profile(cpu_time)
    profiler.enable()
    result = run_cycle(settings)
    profiler.disable()
    assert result.completed, result.error
    stats = pstats.Stats(profiler)
    total = stats.total_tt
    say('cProfile of one %d-table cycle: %.2f s of CPU under the profiler '
        '(its own overhead inflates the many small calls)'
        % (result.counts.tables, total))
    by_place = {}
    for (path, _, function), row in stats.stats.items():
        place = os.path.basename(path) if path != '~' else function
        place = re.sub(r'^<(built-in )?method ', '', place)
        by_place[place] = by_place.get(place, 0.0) + row[2]
    say('   own time by file (or builtin):')
    for place, spent in sorted(by_place.items(), key=lambda i: -i[1])[:14]:
        say('   %5.1f %%  %s' % (100 * spent / total, place))
    say('   top functions:')
    stats.sort_stats('tottime').print_stats(16)


# 3. Event loop: request latency during a cycle -------------------------------

def _latencies_during_cycle(server_kind, fixture, workdir, daemon, **extra):
    options = dict(enabled='true', statsd_port=daemon.port, interval=3600,
                   initial_delay=2, monitoring_url=fixture.url, lock_path='',
                   request_timeout=60, metric_prefix='lat_%s' % server_kind)
    options.update(extra)
    api = peers.APIServer(workdir, peers.statsd_section(**options),
                          server=server_kind, workers=1, threads=4)
    try:
        api.wait_ready()
        conn = http_client.HTTPConnection('127.0.0.1', api.port, timeout=10)
        durations = []
        closed = 0
        prefix = 'lat_%s.collector.' % server_kind
        deadline = compat.monotonic() + 900
        done = False
        while not done and compat.monotonic() < deadline:
            for _ in range(50):
                started = compat.monotonic()
                try:
                    conn.request('GET', '/v1/data')
                    conn.getresponse().read()
                except (http_client.HTTPException,) + compat.OS_ERRORS:
                    # The server closed the kept-alive connection (seen
                    # once with gunicorn 19.3's gthread worker on 2.7):
                    # a client connects again, and so does this one.
                    conn.close()
                    closed += 1
                    continue
                durations.append(compat.monotonic() - started)
                time.sleep(0.002)
            done = bool(daemon.counters(prefix))
        conn.close()
        return durations, done, closed
    finally:
        api.stop()


def bench_latency(fixture, daemon, workdir, label, tag, kinds, **extra):
    for kind in kinds:
        path = os.path.join(workdir, '%s-%s' % (kind, tag))
        os.makedirs(path)
        started = compat.monotonic()
        durations, done, closed = _latencies_during_cycle(
            kind, fixture, path, daemon, **extra)
        elapsed = compat.monotonic() - started
        durations.sort()
        p99 = percentile(durations, 0.99) * 1000
        worst = durations[-1] * 1000
        report('%s %s: p99 of %d requests during the cycle'
               % (label, kind, len(durations)), '%.1f' % p99, '<= 10 ms',
               done and (p99 <= 10 if JUDGED else None), ' ms')
        report('   %s: max' % kind, '%.1f' % worst, '<= 50 ms',
               done and (worst <= 50 if JUDGED else None), ' ms')
        say('   %s: server start and cycle took %.0f s; connections the '
            'server closed: %d' % (kind, elapsed, closed))


# 4. Delivery and 6. datagram fill -------------------------------------------

def _delivered(daemon, expected):
    """How many of the expected gauges the daemon holds, with their value
    (read through its management port)."""
    gauges = daemon.gauges(timeout=300)
    return sum(1 for name, value in expected.items()
               if gauges.get(name) == value)


def bench_delivery(fixture, daemon):
    """A 100,000-table cycle at send_rate (the first), then the next one
    spread over the interval; every gauge must arrive both times."""
    settings = make_settings(fixture, daemon.port, metric_prefix='delivery')
    pacer = new_pacer(settings)
    for number in (1, 2):
        if number == 2:
            fixture.next_generation()  # every value changes
        started = compat.monotonic()
        result = run_cycle(settings, pacer)
        elapsed = compat.monotonic() - started
        assert result.completed, result.error
        expected = fixture.expected_gauges('delivery')
        time.sleep(1)
        fraction = _delivered(daemon, expected) / len(expected)
        label = 'first' if number == 1 else 'next'
        report('4. %s cycle: gauges delivered, %d tables'
               % (label, result.counts.tables), '%.4f' % fraction,
               '= 1.0000', fraction == 1.0)
        if number == 1 or pacer is None:
            say('   %d gauges; the cycle took %.1f s at send_rate %d'
                % (len(expected), elapsed, settings.send_rate))
            continue
        planned = settings.send_spread * settings.interval
        report('   next cycle: duration / send_spread * interval (%.0f s)'
               % planned, '%.2f' % (elapsed / planned), '0.9-1.1',
               0.9 <= elapsed / planned <= 1.1)


def bench_fill(fixture):
    receiver = peers.UDPReceiver()
    sizes = []
    stop = threading.Event()

    def read():
        receiver.sock.settimeout(0.2)
        while not stop.is_set():
            try:
                sizes.append(len(receiver.sock.recv(65536)))
            except socket.timeout:
                pass
    reader = threading.Thread(target=read)
    reader.start()
    settings = make_settings(fixture, receiver.port)
    run_cycle(settings)
    time.sleep(0.5)
    stop.set()
    reader.join()
    receiver.close()
    fill = sum(sizes) / len(sizes) / settings.max_packet_size
    report('6. datagram fill at max_packet_size %d (%d datagrams)'
           % (settings.max_packet_size, len(sizes)), '%.1f' % (fill * 100),
           '>= 90 %', fill >= 0.9, ' %')


def _million_cycle(fixture, daemon, pacer, label, count=True, target=True,
                   **extra):
    """One cycle of every table to ``daemon``; what arrived, and when."""
    options = dict(PRODUCTION, **extra)
    settings = make_settings(fixture, daemon.port, metric_prefix='million',
                             **options)
    started, cpu = compat.monotonic(), cpu_time()
    result = run_cycle(settings, pacer)
    elapsed, cpu = compat.monotonic() - started, cpu_time() - cpu
    assert result.completed, result.error
    report('7. %s: duration' % label, '%.1f' % elapsed,
           '<= %d s' % settings.interval, elapsed <= settings.interval, ' s')
    say('   %d tables, %d pages, %d datagrams; collector CPU %.1f s; load '
        'average %s' % (result.counts.tables, result.counts.pages,
                        pacer.sent if pacer else 0, cpu, load()))
    if count:
        expected = fixture.expected_gauges('million')
        time.sleep(1)
        arrived = _delivered(daemon, expected)
        fraction = arrived / len(expected)
        report('   %s: delivered' % label, '%.4f' % fraction, '= 1.0000',
               fraction == 1.0 if target else None)
        say('   %d of %d gauges' % (arrived, len(expected)))
    return settings


def _production_daemon(workdir, name):
    path = os.path.join(workdir, 'statsd-%s' % name)
    os.makedirs(path)
    return peers.StatsdDaemon(path, flush_interval=10000)


def bench_million_delivery(fixture, workdir):
    """A million tables to production-like daemons (flush every 10 s, no
    console backend), the collector configured as in PRODUCTION.

    The first cycle has no history and goes at send_rate, into a daemon
    that holds nothing yet; the second, spread over the interval, is the
    steady state: every value has changed since, and every one must
    arrive. Only then are the gauges read back: reading two million
    through the management port makes the daemon collect hundreds of MB
    of garbage, a pause that would cost the next cycle datagrams.

    A daemon that holds nothing grows its table of gauges as they come,
    and its rehashing pauses (0.35 s at 1.4 million keys with Node 20)
    overflow its receive buffer at any rate that fits the interval.
    Gauges are state, so the next cycle repairs them: a cycle to a
    daemon just started is reported, not held to a target.
    """
    daemon = _production_daemon(workdir, 'steady')
    try:
        settings = make_settings(fixture, daemon.port, **PRODUCTION)
        pacer = new_pacer(settings)
        _million_cycle(fixture, daemon, pacer, 'first cycle', count=False)
        fixture.next_generation()
        _million_cycle(fixture, daemon, pacer, 'next cycle')
    finally:
        daemon.stop()
    if pacer is not None:
        # The same, spread over 0.9 of the interval, to a daemon of its
        # own: the garbage of a gauges dump would pause the last one.
        wider = pacing.Pacer(settings._replace(send_spread=0.9))
        wider.expected = pacer.expected
        daemon = _production_daemon(workdir, 'spread-0.9')
        try:
            _million_cycle(fixture, daemon, wider, 'fill, send_spread 0.9',
                           count=False, send_spread=0.9)
            fixture.next_generation()
            _million_cycle(fixture, daemon, wider, 'next, send_spread 0.9',
                           send_spread=0.9)
        finally:
            daemon.stop()
    daemon = _production_daemon(workdir, 'restarted')
    try:
        fixture.next_generation()
        _million_cycle(fixture, daemon, pacer, 'to a daemon just started',
                       target=False)
    finally:
        daemon.stop()
    say('   send_rate %d, max_packet_size %d, interval %d, send_spread %s'
        % (settings.send_rate, settings.max_packet_size, settings.interval,
           getattr(settings, 'send_spread', 'n/a')))


# 5. Memory ----------------------------------------------------------------

MEMORY_CHILD = r'''
from __future__ import print_function
import gc, resource, sys
sys.path.insert(0, sys.argv[1])
import peers
from magnetodb_statsd_middleware import config, cycle, outages
values = dict(monitoring_url=sys.argv[2], lock_path='',
              statsd_port=int(sys.argv[3]), send_rate=0, request_timeout=60)
settings = peers.make_settings(**values)
def rss():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * resource.getpagesize()
cycles = int(sys.argv[4])
early = int(sys.argv[5])
run = lambda: cycle.run_cycle(settings, outages.OutageLog())
gc.collect()
before = rss()  # everything imported, no cycle run yet
samples = []
for number in range(cycles):
    assert run().completed
    if number in (early, cycles - 1):
        gc.collect()
        samples.append(rss())
# VmHWM, not ru_maxrss: the latter starts at the parent's RSS at fork.
with open('/proc/self/status') as f:
    peak = [int(line.split()[1]) * 1024 for line in f
            if line.startswith('VmHWM:')][0]
print(before, peak, samples[0], samples[-1])
'''


def _memory_child(fixture, cycles, early=0):
    done = peers.run([sys.executable, '-c', MEMORY_CHILD, TESTS, fixture.url,
                      str(peers.free_port(socket.SOCK_DGRAM)), str(cycles),
                      str(early)], timeout=3600)
    assert done.returncode == 0, done.stderr
    return [int(n) for n in done.stdout.split()]


def bench_memory(big, small):
    before, peak, _, _ = _memory_child(big, 1)
    added = (peak - before) / 2 ** 20
    report('5. peak RSS added by a 100k-table cycle', '%.1f' % added,
           '<= 50 MB', added <= 50, ' MB')
    _, _, early, late = _memory_child(small, 1000, early=100)
    growth = (late - early) / 2 ** 20
    report('5. RSS growth, cycle 100 -> 1000 (1,000 tables)',
           '%.2f' % growth, '<= 1 MB', growth <= 1, ' MB')


def bench_million_memory(huge, cycles=5):
    before, peak, early, late = _memory_child(huge, cycles, early=1)
    added = (peak - before) / 2 ** 20
    report('8. peak RSS added by 1M-table cycles', '%.1f' % added,
           '<= 50 MB', added <= 50, ' MB')
    growth = (late - early) / 2 ** 20
    report('8. RSS growth, 1M-table cycle 2 -> %d' % cycles,
           '%.2f' % growth, '<= 1 MB', growth <= 1, ' MB')


# 12. The stuck clock ---------------------------------------------------------

# 1,000,000 tables, 1% of them not ACTIVE: all CREATING or DELETING, the
# statuses whose tables the clock remembers (failed ones cost nothing).
HUGE_PASSING = dict(HUGE, passing_every=100)

STUCK_MEMORY_CHILD = r'''
from __future__ import print_function
import gc, resource, sys
sys.path.insert(0, sys.argv[1])
import peers
from magnetodb_statsd_middleware import cycle, outages, stuck
settings = peers.make_settings(
    monitoring_url=sys.argv[2], lock_path='', statsd_port=int(sys.argv[3]),
    send_rate=0, request_timeout=60)
kept = sys.argv[4] == 'kept'
def rss():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * resource.getpagesize()
clock = stuck.StuckClock(settings.stuck_after)  # kept, as the scheduler does
gc.collect()
before = rss()
between = []
for _ in range(int(sys.argv[5])):
    if not kept:
        clock = stuck.StuckClock(settings.stuck_after)
    result = cycle.run_cycle(settings, outages.OutageLog(), clock=clock)
    assert result.completed, result.error
    gc.collect()
    between.append(rss())
remembered = clock.remembered() if kept else 0
held = 0  # the clock's own objects, counted one by one
if kept:
    for project, tables in clock._since.items():
        held += sys.getsizeof(project) + sys.getsizeof(tables)
        for name, since in tables.items():
            held += (sys.getsizeof(name) + sys.getsizeof(since)
                     + sys.getsizeof(since[1]))
    held += sys.getsizeof(clock._since)
print(before, max(between), result.counts.tables, remembered, held)
'''


def _stuck_memory_child(fixture, mode, cycles=3):
    done = peers.run([sys.executable, '-c', STUCK_MEMORY_CHILD, TESTS,
                      fixture.url, str(peers.free_port(socket.SOCK_DGRAM)),
                      mode, str(cycles)], timeout=3600)
    assert done.returncode == 0, done.stderr
    return [int(n) for n in done.stdout.split()]


def bench_stuck_memory(huge):
    """Memory the stuck clock holds between cycles: a collector that keeps
    it, as the scheduler does, beside one that starts a new clock every
    cycle and so holds nothing between cycles. The RSS difference can be
    less than the clock's objects (they may fill pages a cycle freed), so
    the figure is the larger of the two."""
    held = {}
    for mode in ('fresh', 'kept'):
        before, between, tables, remembered, counted = _stuck_memory_child(
            huge, mode)
        held[mode] = (between - before) / 2 ** 20
        say('   %s clock: %.1f MB held between cycles of %d tables, %d '
            'tables remembered (%.1f MB of objects)'
            % (mode, held[mode], tables, remembered, counted / 2 ** 20))
    extra = max(held['kept'] - held['fresh'], counted / 2 ** 20)
    report('12. memory held between cycles by the stuck clock, 1M tables, '
           '1% passing', '%.1f' % extra, '<= 10 MB', extra <= 10, ' MB')


# 11. Labeled metrics and top_tables -----------------------------------------

TOP_MEMORY_CHILD = r'''
from __future__ import print_function
import gc, resource, sys
sys.path.insert(0, sys.argv[1])
import peers
from magnetodb_statsd_middleware import cycle, outages, selection
settings = peers.make_settings(
    monitoring_url=sys.argv[2], lock_path='', statsd_port=int(sys.argv[3]),
    send_rate=0, request_timeout=60, label_mode=sys.argv[4],
    top_tables=int(sys.argv[5]))
def rss():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * resource.getpagesize()
selector = selection.TableSelector(settings)  # kept, as the scheduler does
gc.collect()
before = rss()
between = []
for _ in range(int(sys.argv[6])):
    result = cycle.run_cycle(settings, outages.OutageLog(), selector=selector)
    assert result.completed, result.error
    gc.collect()
    between.append(rss())
print(before, max(between), result.counts.tables_sent,
      selector.member_count())
'''


def _top_memory_child(fixture, label_mode, top, cycles=3):
    done = peers.run([sys.executable, '-c', TOP_MEMORY_CHILD, TESTS,
                      fixture.url, str(peers.free_port(socket.SOCK_DGRAM)),
                      label_mode, str(top), str(cycles)], timeout=3600)
    assert done.returncode == 0, done.stderr
    return [int(n) for n in done.stdout.split()]


def bench_top_tables_memory(big):
    """Memory held between cycles by the top-N membership."""
    held = {}
    for top in (0, 1000):
        before, between, sent, members = _top_memory_child(
            big, 'dogstatsd', top)
        held[top] = (between - before) / 2 ** 20
        say('   top_tables = %d: %.1f MB held between cycles, %d tables '
            'sent, %d members kept' % (top, held[top], sent, members))
    extra = held[1000] - held[0]
    report('11a. memory between cycles, top_tables=1000 - top_tables=0, '
           '100k tables', '%.1f' % extra, '<= 20 MB', extra <= 20, ' MB')


def bench_label_cpu(big):
    """CPU per table of a labeled cycle beside the dotted names."""
    port = peers.free_port(socket.SOCK_DGRAM)  # nobody listens
    modes = (('disabled', 0), ('dogstatsd', 0), ('dogstatsd', 1000))
    best = dict.fromkeys(modes, float('inf'))
    tables = 0
    for _ in range(5):  # interleaved; the best of each, on a noisy machine
        for mode, top in modes:
            settings = make_settings(big, port, send_rate=0, label_mode=mode,
                                     top_tables=top)
            result, spent = _cpu_of(lambda: run_cycle(settings))
            best[mode, top] = min(best[mode, top], spent)
            assert result.completed, result.error
            tables = result.counts.tables
    per_table = dict((key, spent / tables * 1e6)
                     for key, spent in best.items())
    say('   CPU per table: dotted %.1f us, dogstatsd %.1f us, dogstatsd '
        'with top_tables=1000 %.1f us'
        % (per_table['disabled', 0], per_table['dogstatsd', 0],
           per_table['dogstatsd', 1000]))
    ratio = best['dogstatsd', 0] / best['disabled', 0]
    report('11b. CPU per table, dogstatsd / dotted names, %d tables' % tables,
           '%.2fx' % ratio, '<= 1.10x', ratio <= 1.10 if JUDGED else None)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--only', help='comma-separated figure numbers: '
                        '1-6, 11a and 11b at 100,000 tables, 7-9 and 12 '
                        'at 1,000,000')
    parser.add_argument('--profile', action='store_true',
                        help='profile one 100,000-table cycle and stop')
    args = parser.parse_args()
    figures = set('123456789') | {'11a', '11b', '12'}
    only = set(args.only.split(',')) if args.only else figures
    say('python %s, %d cores, %s; load average %s'
        % (sys.version.split()[0], multiprocessing.cpu_count(),
           os.uname()[2], load()))
    workdir = tempfile.mkdtemp(prefix='magnetodb-statsd-bench-')
    fixtures = []

    def fixture(size):
        fixtures.append(FixtureProcess(**size))
        return fixtures[-1]

    daemon = None
    try:
        if args.profile:
            profile_cycle(fixture(BIG))
            return 0
        if only & (set('123456') | {'11a', '11b'}):
            big = fixture(BIG)
            small = fixture(SMALL)
            daemon = peers.StatsdDaemon(workdir)
        if '1' in only:
            bench_request_path(small)
        if '2' in only:
            bench_cpu(big)
        if '3' in only:
            bench_latency(big, daemon, workdir, '3. 100k', '100k',
                          ('eventlet', 'gthread'))
        if '4' in only:
            bench_delivery(big, daemon)
        if '5' in only:
            bench_memory(big, small)
        if '6' in only:
            bench_fill(big)
        if '11a' in only:
            bench_top_tables_memory(big)
        if '11b' in only:
            bench_label_cpu(big)
        if only & set('789'):
            huge = fixture(HUGE)
            if '7' in only:
                bench_million_delivery(huge, workdir)
            if '8' in only:
                bench_million_memory(huge)
            if '9' in only:
                path = os.path.join(workdir, 'statsd-1m')
                os.makedirs(path)
                million = peers.StatsdDaemon(path)
                try:
                    bench_latency(huge, million, workdir, '9. 1M', '1m',
                                  ('eventlet', 'gthread'), **PRODUCTION)
                finally:
                    million.stop()
        if '12' in only:
            bench_stuck_memory(fixture(HUGE_PASSING))
    finally:
        if daemon is not None:
            daemon.stop()
        for process in fixtures:
            process.stop()
    missed = [name for name, _, _, ok in RESULTS if ok is False]
    say('%d figures, %d missed; load average %s'
        % (len(RESULTS), len(missed), load()))
    return 1 if missed else 0


if __name__ == '__main__':
    sys.exit(main())
