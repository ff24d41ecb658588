"""What every figure family shares: the datasets, the fake monitoring API
in a process of its own, settings and cycles, CPU clocks, and the report
that prints each figure beside its target."""

from __future__ import division
from __future__ import print_function

import gc
import os
import resource
import subprocess
import sys

from benchmarks.children import fixture as fixture_child
from magnetodb_statsd_middleware import compat
from magnetodb_statsd_middleware import cycle
from magnetodb_statsd_middleware import outages
from tests.support import peers

BIG = dict(projects=1000, tables=100)  # 100,000 tables, 112 pages
SMALL = dict(projects=10, tables=100)  # 1,000 tables
HUGE = dict(projects=10000, tables=100)  # 1,000,000 tables, 1,112 pages
# 1,000,000 tables, 1% of them not ACTIVE: all CREATING or DELETING, the
# statuses whose tables the stuck clock remembers (failed ones cost
# nothing).
HUGE_PASSING = dict(HUGE, passing_every=100)

# What a large cloud's operator sets: StatsD on the LAN (1432-byte
# datagrams fit a 1500-byte MTU); the interval and pacing are defaults.
PRODUCTION = dict(max_packet_size=1432, interval=60)

# The CPU and latency targets are for CPython 3; on 2.7 those
# figures are reported beside them, not judged (its request path asks
# os.getpid(), a system call, for want of an at-fork hook).
JUDGED = not compat.PY2

# The child programs of benchmarks/children/ import the package, the
# benchmarks and the tests' peers from this clone, wherever they run.
CHILD_ENV = dict(os.environ, PYTHONPATH=peers.ROOT)

RESULTS = []


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


def cpu_of(function):
    """``(result, CPU seconds)`` of one call, garbage collected before."""
    gc.collect()
    started = cpu_time()
    result = function()
    return result, cpu_time() - started


def best_cpu(function, times=5):
    return min(cpu_of(function)[1] for _ in range(times))


def load():
    return '%.2f %.2f %.2f' % os.getloadavg()


def percentile(ordered, fraction):
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run_child(name, *args):
    """The numbers a program of benchmarks/children/ prints."""
    done = peers.run([sys.executable, '-m', 'benchmarks.children.' + name]
                     + [str(arg) for arg in args], timeout=3600,
                     env=CHILD_ENV)
    assert done.returncode == 0, done.stderr
    return [int(n) for n in done.stdout.split()]


class FixtureProcess(object):
    """The fake monitoring API in its own process (its CPU is not ours).

    :meth:`next_generation` changes every value, so that a daemon that
    already holds the gauges shows whether the next cycle's arrived.
    """

    def __init__(self, projects, tables, passing_every=0):
        self.port = peers.free_port()
        self.process = subprocess.Popen(
            [sys.executable, '-m', 'benchmarks.children.fixture',
             str(projects), str(tables), str(self.port), str(passing_every)],
            close_fds=True, env=CHILD_ENV)
        self.url = 'http://127.0.0.1:%d%s' % (self.port, peers.MONITORING_PATH)
        self.dataset = dict(projects=projects, tables=tables,
                            passing_every=passing_every)
        self.generation = 0
        peers.wait_for(self._answers, timeout=300, interval=0.5,
                       message='the fixture')

    def next_generation(self):
        peers.http_get(self.url + '/_bench/next', timeout=120, data=b'')
        self.generation += 1

    def expected_gauges(self, prefix):
        """What the daemon must hold after a cycle of this generation."""
        dataset = fixture_child.build(**self.dataset)
        for _ in range(self.generation):
            fixture_child.next_generation(dataset)
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
    """Settings for a cycle against ``fixture``, sending to ``port``."""
    values = dict(monitoring_url=fixture.url, statsd_port=port,
                  request_timeout=60, lock_path='', interval=60)
    values.update(extra)
    return peers.make_settings(**values)


def run_cycle(settings, pacer=None):
    """One cycle, paced by the collector's pacer if one is given."""
    return cycle.run_cycle(settings, outages.OutageLog(), pacer=pacer)
