"""collectd's statsd plugin as a test peer (Debian's collectd-core).

collectd runs in the foreground with the test's own configuration: the
statsd plugin on a loopback port and the csv writer in the test's folder,
nothing else. Each gauge becomes the identifier
``<Hostname>/statsd/gauge-<name>`` (the name cut to 127 characters), and
the csv writer appends ``epoch,value`` to
``csv/<Hostname>/statsd/gauge-<name>-<YYYY-MM-DD>`` every interval.
"""

import os
import re
import socket
import subprocess

from tests.support import peers

COLLECTD = '/usr/sbin/collectd'

_CONF = """\
Hostname "%(hostname)s"
FQDNLookup false
BaseDir "%(workdir)s"
PIDFile "%(workdir)s/collectd.pid"
Interval 1
LoadPlugin logfile
<Plugin logfile>
  LogLevel info
  File "%(workdir)s/collectd.log"
  Timestamp true
</Plugin>
LoadPlugin statsd
<Plugin statsd>
  Host "127.0.0.1"
  Port "%(port)d"
</Plugin>
LoadPlugin csv
<Plugin csv>
  DataDir "%(workdir)s/csv"
  StoreRates false
</Plugin>
"""

_CSV_NAME = re.compile(r'^gauge-(.*)-\d{4}-\d{2}-\d{2}$')


class Collectd(object):
    """collectd with only the statsd plugin and the csv writer."""

    hostname = 'collectd-host'

    def __init__(self, workdir):
        if not os.path.exists(COLLECTD):
            raise RuntimeError('collectd is not installed at %s: run '
                               'tools/install-peers.sh' % COLLECTD)
        self.workdir = workdir
        self.port = peers.free_port(socket.SOCK_DGRAM)
        conf = peers.write_file(os.path.join(workdir, 'collectd.conf'),
                                _CONF % dict(hostname=self.hostname,
                                             workdir=workdir,
                                             port=self.port))
        self.log_path = os.path.join(workdir, 'collectd.log')
        self._out = open(os.path.join(workdir, 'collectd.out'), 'w')
        self.process = subprocess.Popen([COLLECTD, '-f', '-C', conf],
                                        stdout=self._out,
                                        stderr=subprocess.STDOUT,
                                        close_fds=True)
        peers.wait_for(self._listening, message='collectd to listen')
        self.version = [line for line in peers.run(
            [COLLECTD, '-h']).stdout.splitlines()
            if line.startswith('collectd ')][0].split(',')[0]

    @property
    def log(self):
        if not os.path.exists(self.log_path):
            return ''
        with open(self.log_path) as f:
            return f.read()

    def _listening(self):
        assert self.process.poll() is None, self.log
        return 'statsd plugin: Listening on' in self.log

    def gauges(self, prefix=''):
        """``{name: last value}`` of the gauges written under ``prefix``
        (the name as collectd keeps it)."""
        folder = os.path.join(self.workdir, 'csv', self.hostname, 'statsd')
        if not os.path.isdir(folder):
            return {}
        found = {}
        for filename in sorted(os.listdir(folder)):  # dates in order
            match = _CSV_NAME.match(filename)
            if not match or not match.group(1).startswith(prefix):
                continue
            with open(os.path.join(folder, filename)) as f:
                lines = [line for line in f.read().split('\n')[1:-1] if line]
            if lines:
                found[match.group(1)] = float(lines[-1].split(',')[1])
        return found

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                peers.wait_exit(self.process, 10)
            except AssertionError:
                self.process.kill()
                self.process.wait()
        self._out.close()
