"""The ``[statsd]`` options: their names, types, defaults and help text.

The help text is the reference documentation: ``oslo-config-generator``
turns it into ``etc/magnetodb-statsd.conf.sample`` and operators read it
there, so every option says what it does, its unit and its failure mode.
"""

import copy

from oslo_config import cfg
from oslo_config import types

GROUP = 'statsd'

KNOWN_METRICS = ('size', 'item_count')

DEFAULT_MONITORING_URL = 'http://127.0.0.1:8480/v1/monitoring/projects'

METRIC_PREFIX_PATTERN = r'^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$'

STATSD_OPTS = [
    cfg.BoolOpt(
        'enabled', default=False,
        help='Collect table statistics and send them to StatsD. When false '
             'the filter is a pure pass-through: it starts nothing and '
             'validates nothing.'),
    cfg.HostAddressOpt(
        'statsd_host', default='127.0.0.1',
        help='Host name, IPv4 or IPv6 address of the StatsD daemon. It is '
             'resolved again at every cycle, so a DNS change or outage '
             'never needs a restart and never fails the paste load.'),
    cfg.PortOpt(
        'statsd_port', default=8125, min=1,
        help='UDP port of the StatsD daemon.'),
    cfg.StrOpt(
        'metric_prefix', default='magnetodb',
        regex=METRIC_PREFIX_PATTERN,
        help='First part of every metric name: dot-separated parts made of '
             'A-Z, a-z, 0-9, "_" and "-".'),
    cfg.IntOpt(
        'interval', default=60, min=1,
        help='Seconds between the starts of two collection cycles. A cycle '
             'that takes longer delays the next one; cycles never overlap. '
             'Align StatsD\'s gauge expiry (deleteGauges, gaugesMaxTTL) '
             'with it so that deleted tables disappear.'),
    cfg.FloatOpt(
        'initial_delay', default=0.0, min=0,
        help='Seconds to wait after start-up before the first cycle.'),
    cfg.URIOpt(
        'monitoring_url', default=DEFAULT_MONITORING_URL,
        schemes=['http', 'https'],
        help='The all-projects resource of the MagnetoDB monitoring API, '
             'normally on the loopback address of the local API server.'),
    cfg.ListOpt(
        'projects', default=[],
        help='Project ids to report. Empty: every project, read through '
             'the paginated all-projects listing. Otherwise one request '
             'per listed project, and totals only over those projects.'),
    cfg.ListOpt(
        'metrics', default=list(KNOWN_METRICS),
        item_type=types.String(choices=KNOWN_METRICS),
        help='Table statistics to ask the monitoring API for: size (bytes) '
             'and/or item_count. The server fails on an unknown name, so '
             'only these two are accepted.'),
    cfg.IntOpt(
        'page_size', default=1000, min=1,
        help='Page size of the all-projects listing: the limit the server '
             'applies (MagnetoDB\'s default is 1000). A page shorter than '
             'this is taken as the last one.'),
    cfg.FloatOpt(
        'request_timeout', default=30.0, min=0.001,
        help='Seconds one HTTP request to the monitoring API may take, '
             'connection and whole body included.'),
    cfg.IntOpt(
        'max_response_bytes', default=16 * 1024 * 1024, min=1024,
        help='Largest monitoring API response body read, in bytes. A '
             'larger one is not read further and fails the cycle.'),
    cfg.IntOpt(
        'max_packet_size', default=512, min=64, max=65000,
        help='Largest UDP datagram sent to StatsD, in bytes. 512 is safe '
             'on any path; 1432 fits a 1500-byte Ethernet MTU. Several '
             'metric lines share a datagram up to this size.'),
    cfg.IntOpt(
        'send_rate', default=5000, min=0,
        help='Most datagrams sent to StatsD per second, 0 for no limit. '
             'A burst of thousands of datagrams overflows the daemon\'s '
             'receive buffer and is silently lost; pacing keeps every '
             'gauge while a 100,000-table cycle still takes seconds.'),
    cfg.StrOpt(
        'lock_path', default=None,
        sample_default='<system temp dir>/magnetodb-statsd-<12 hex>.lock',
        help='Lock file that elects the one process per host that collects '
             'and emits; the others retry every interval and take over '
             'within one interval when it dies. Default: a file in the '
             'system temporary folder named after the SHA-1 of '
             'monitoring_url, so services polling different APIs do not '
             'share it. Set to an empty value to let every process emit.'),
    cfg.StrOpt(
        'healthcheck_url', default='',
        help='This host\'s MagnetoDB health check, e.g. '
             'http://127.0.0.1:8480/healthcheck?fullcheck=true. When set, '
             'every cycle sends <prefix>.health.<host_name>.<subsystem> '
             'gauges (1 OK, 0 not) and .overall. Empty: no health gauges.'),
    cfg.StrOpt(
        'coordination_url', default='', secret=True,
        help='tooz backend URL that elects one process in the whole cluster '
             'to read and send the table metrics, e.g. '
             'redis://host:6379?timeout=10, zookeeper://host:2181, '
             'etcd3+http://host:2379; backend options go in the query '
             'string as tooz defines them (the lock timeout bounds the '
             'failover). Needs the "coordination" extra. When the backend '
             'is unreachable, no process sends table metrics until it is '
             'back; health gauges go on. Empty: the per-host lock only.'),
    cfg.StrOpt(
        'host_name', default=None,
        sample_default='<short host name>',
        help='Names this host in its health gauges; made safe like any '
             'metric name part. Default: the host name up to its first '
             'dot.'),
]


def register_opts(conf):
    """Register the ``[statsd]`` options on ``conf`` (idempotent)."""
    conf.register_opts(STATSD_OPTS, group=GROUP)


def list_opts():
    """The options for ``oslo-config-generator`` and Sphinx."""
    return [(GROUP, copy.deepcopy(STATSD_OPTS))]
