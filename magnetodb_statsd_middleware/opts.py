"""The ``[statsd]`` options: their names, types, defaults and help text.

The help text is the reference documentation: ``oslo-config-generator``
turns it into ``etc/magnetodb-statsd.conf.sample`` and operators read it
there, so every option says what it does, its unit and its failure mode.
Each default is declared here once; :class:`.config.Settings` takes its
own from these declarations.

The options are declared with what oslo.config 1.9.3 (a MagnetoDB 2015.1
host) offers: plain ``cfg.Opt`` declarations whose types (in
:mod:`.optiontypes`) add the checks that its own types lack (host
addresses, ports, URLs, patterns, float minimums).
"""

import copy

from oslo_config import cfg

from magnetodb_statsd_middleware import dialects
from magnetodb_statsd_middleware import metrics
from magnetodb_statsd_middleware import optiontypes

GROUP = 'statsd'

KNOWN_METRICS = metrics.TABLE_METRICS

DEFAULT_MONITORING_URL = 'http://127.0.0.1:8480/v1/monitoring/projects'

METRIC_PREFIX_PATTERN = r'^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\Z'

# keystoneauth's names of the password plugins: ``password`` discovers
# the identity API version at auth_url, ``v3password`` speaks v3 to it.
AUTH_TYPES = ('password', 'v3password')

# The service user's credentials, with keystoneauth's option names (the
# ones keystonemiddleware reads from [keystone_authtoken] too).
CREDENTIAL_NAMES = ('auth_url', 'username', 'password', 'project_name',
                    'project_id', 'user_domain_name', 'user_domain_id',
                    'project_domain_name', 'project_domain_id')

STATSD_OPTS = [
    cfg.BoolOpt(
        'enabled', default=False,
        help='Collect table statistics and send them to StatsD. When false '
             'the filter is a pure pass-through: it starts nothing and '
             'validates nothing.'),
    cfg.Opt(
        'statsd_host', type=optiontypes.HostAddress(), default='127.0.0.1',
        help='Host name, IPv4 or IPv6 address of the StatsD daemon. It is '
             'resolved again at every cycle, so a DNS change or outage '
             'never needs a restart and never fails the paste load.'),
    cfg.Opt(
        'statsd_port', default=8125,
        type=optiontypes.Integer(1, 65535, 'port value'),
        help='UDP port of the StatsD daemon.'),
    cfg.Opt(
        'metric_prefix', default='magnetodb',
        type=optiontypes.Pattern(METRIC_PREFIX_PATTERN,
                                 'dot-separated parts of A-Z, a-z, 0-9, '
                                 '"_" and "-"'),
        help='First part of every metric name: dot-separated parts made of '
             'A-Z, a-z, 0-9, "_" and "-".'),
    cfg.Opt(
        'interval', type=optiontypes.Integer(min=1), default=60,
        help='Seconds between the starts of two collection cycles. A cycle '
             'that takes longer delays the next one; cycles never overlap. '
             'Align StatsD\'s gauge expiry (deleteGauges, gaugesMaxTTL) '
             'with it so that deleted tables disappear.'),
    cfg.Opt(
        'initial_delay', type=optiontypes.Float(min=0), default=0.0,
        help='Seconds to wait after start-up before the first cycle.'),
    cfg.Opt(
        'monitoring_url', type=optiontypes.URI(),
        default=DEFAULT_MONITORING_URL,
        help='The all-projects resource of the MagnetoDB monitoring API, '
             'normally on the loopback address of the local API server.'),
    cfg.ListOpt(
        'projects', default=[],
        help='Project ids to report. Empty: every project, read through '
             'the paginated all-projects listing. Otherwise one request '
             'per listed project, and totals only over those projects.'),
    cfg.Opt(
        'metrics', type=optiontypes.MetricList(), default=list(KNOWN_METRICS),
        help='Table statistics to ask the monitoring API for: size (bytes) '
             'and/or item_count. The server fails on an unknown name, so '
             'only these two are accepted.'),
    cfg.Opt(
        'stuck_after', type=optiontypes.Integer(min=1), default=900,
        help='Seconds after which a table seen CREATING or DELETING counts '
             'as stuck (<prefix>.projects.<P>.stuck and '
             '<prefix>.totals.stuck). A table is timed from the first '
             'cycle that saw it in that status, so the time is known to '
             'within one interval; keep this several intervals long. The '
             'clock lives in the collecting process: a restart, or '
             'another process or host taking over, starts it again, so a '
             'table counts as stuck up to this much later than it would '
             'have, never earlier.'),
    cfg.Opt(
        'page_size', type=optiontypes.Integer(min=1), default=1000,
        help='Page size of the all-projects listing: the limit the server '
             'applies (MagnetoDB\'s default is 1000). A page shorter than '
             'this is taken as the last one.'),
    cfg.Opt(
        'request_timeout', type=optiontypes.Float(min=0.001), default=30.0,
        help='Seconds one HTTP request to the monitoring API may take, '
             'connection and whole body included.'),
    cfg.Opt(
        'max_response_bytes', type=optiontypes.Integer(min=1024),
        default=16 * 1024 * 1024,
        help='Largest monitoring API response body read, in bytes. A '
             'larger one is not read further and fails the cycle.'),
    cfg.Opt(
        'max_packet_size', type=optiontypes.Integer(64, 65000), default=512,
        help='Largest UDP datagram sent to StatsD, in bytes. 512 is safe '
             'on any path; 1432 fits a 1500-byte Ethernet MTU. Several '
             'metric lines share a datagram up to this size.'),
    cfg.Opt(
        'send_rate', type=optiontypes.Integer(min=0), default=5000,
        help='Most datagrams sent to StatsD per second, 0 for no limit: '
             'the rate of a first cycle, and the ceiling of send_spread. '
             'A burst of thousands of datagrams overflows the daemon\'s '
             'receive buffer and is silently lost. When even this rate '
             'cannot send a cycle within the interval, a warning says '
             'so once.'),
    cfg.Opt(
        'send_spread', type=optiontypes.Float(min=0, max=0.9), default=0.5,
        help='Share of the interval over which a cycle spreads its '
             'datagrams, planned from what the last cycle sent: with '
             'interval = 60 and 0.5, they go out evenly over the first 30 '
             's of the cycle, so the StatsD daemon never takes a burst. '
             'Never faster than send_rate; the first cycle, and what a '
             'cycle sends beyond the last one\'s count (the cloud grew), '
             'go at send_rate. 0: send at send_rate only.'),
    cfg.StrOpt(
        'lock_path', default=None,
        sample_default='<system temp dir>/magnetodb-statsd-<uid>/'
                       '<12 hex>.lock',
        help='Lock file that elects the one process per host that collects '
             'and emits; the others retry every interval and take over '
             'within one interval when it dies. Its directory (created with '
             'mode 0700 when missing) must belong to the service user and '
             'be writable by no one else, nor may the file; a directory or '
             'file that is writable by others, belongs to another user or '
             'is a symbolic link is refused, and so is a lock that a '
             'process of another user holds: then every process emits, '
             'unelected, and an ERROR says how to fix it. Default: a file '
             'named after the SHA-1 of monitoring_url (services polling '
             'different APIs do not share it) in magnetodb-statsd-<uid> in '
             'the system temporary folder. Run the standalone '
             'magnetodb-statsd as the same user to share the lock. Set to '
             'an empty value to let every process emit.'),
    cfg.StrOpt(
        'healthcheck_url', default='',
        help='This host\'s MagnetoDB health check, e.g. '
             'http://127.0.0.1:8480/healthcheck?fullcheck=true. When set, '
             'every cycle sends <prefix>.health.<host_name>.<subsystem> '
             'gauges (1 OK, 0 not) and .overall. Empty: no health gauges.'),
    cfg.StrOpt(
        'ca_file', default='',
        help='CA bundle (PEM) that verifies the certificate of an https '
             'monitoring_url, healthcheck_url or Keystone auth_url, e.g. '
             'a private CA\'s, '
             'for this filter alone: the rest of the API process keeps '
             'trusting what it trusted. Empty: the system\'s CAs. '
             'Certificates and host names are always verified. A file '
             'that cannot be read as PEM fails the paste load.'),
    cfg.StrOpt(
        'coordination_url', default='', secret=True,
        help='tooz backend URL that elects one process in the whole cluster '
             'to read and send the table metrics, e.g. '
             'redis://host:6379?timeout=10 or '
             'memcached://host:11211?timeout=10 (the two supported, also '
             'on CPython 2.7); backend options go in the query '
             'string as tooz defines them (the lock timeout bounds the '
             'failover). Needs the "coordination" extra. request_timeout '
             'bounds every call to it. When the backend is unreachable, '
             'slow or restarted empty, no process sends table metrics '
             'until it is back (one ERROR, then one INFO); health gauges '
             'go on. Empty: the per-host lock only.'),
    cfg.BoolOpt(
        'share_walk', default=False,
        help='With coordination_url: the API hosts share each cycle\'s walk '
             'of the listing, each reading one range of it through its own '
             'monitoring_url, instead of one host reading it all. Cycles '
             'start on wall-clock multiples of interval (keep the hosts\' '
             'clocks in sync), and totals are sent one interval after the '
             'ranges. Turn it on when one host\'s walk takes a large part '
             'of the interval (MagnetoDB spends about 0.7 ms of API CPU '
             'per table). Cannot be combined with projects or top_tables.'),
    cfg.StrOpt(
        'host_name', default=None,
        sample_default='<short host name>',
        help='Names this host in its health gauges; made safe like any '
             'metric name part. Default: the host name up to its first '
             'dot.'),
    cfg.Opt(
        'label_mode', default=dialects.DISABLED,
        type=optiontypes.Choice(dialects.LABEL_MODES),
        help='How metrics are named. disabled: dotted names with the '
             'project, table and host in them '
             '(<prefix>.tables.<P>.<T>.size). Any other value: one name per '
             'quantity (<prefix>.table.size) with the project, table, host, '
             'subsystem and status as labels, in that StatsD dialect: '
             'dogstatsd '
             '(name:n|g|#k:v; Datadog agent, Telegraf, statsd_exporter, '
             'Etsy statsd 0.9 which turns the tags into Graphite tags), '
             'graphite (name;k=v:n|g; Graphite 1.1 tags), influxdb '
             '(name,k=v:n|g; Telegraf), librato (name#k=v:n|g), signalfx '
             '(name[k=v]:n|g) or monasca (name:n|g|#{\'k\': \'v\'}, the '
             'dimensions as Monasca\'s own client writes them: '
             'monasca-agent\'s statsd daemon loses the first character of '
             'dogstatsd tags). Label values keep "." and are otherwise made '
             'safe like names; dogstatsd lower-cases them, with a hash '
             'suffix where that changed one.'),
    cfg.Opt(
        'max_name_length', type=optiontypes.Integer(64, 1024),
        default=metrics.MAX_NAME_LENGTH,
        help='Longest metric name sent, in characters, in every '
             'label_mode. A dotted name that would be longer has its table '
             'part (then its project part) cut, with "_" and 8 hex digits '
             'of the SHA-1 of the raw value appended, so names stay '
             'distinct and stable; names that fit are unchanged. With '
             'graphite, influxdb, librato and signalfx the name includes '
             'its labels (what a receiver without labels stores): the '
             'table label value, then the project\'s, is cut the same way '
             'until it fits, and a metric_prefix or user_labels that '
             'leave too little room are refused. 253 suits Gnocchi\'s '
             'statsd daemon (which stores <name>|g in 255 characters), '
             'Monasca (which rejects names over 255) and Graphite (255 '
             'bytes per dotted part); set 127 for collectd\'s statsd '
             'plugin, which cuts longer names without a word and merges '
             'what differs after them. With monasca, at most 255.'),
    cfg.BoolOpt(
        'emit_legacy', default=False,
        help='With a label_mode, also send the dotted names, so that '
             'dashboards can move from one to the other; twice the '
             'lines.'),
    cfg.Opt(
        'user_labels', type=optiontypes.UserLabels(), default={},
        help='Static labels added to every labeled metric, e.g. '
             'region:r1,cloud:prod. Keys are a lower-case letter followed '
             'by lower-case letters, digits and "_", and are not project, '
             'table, host, subsystem or status; values are 1 to 200 of '
             'A-Z, a-z, 0-9, "_", "-" and "." (lower case with '
             'dogstatsd). Not sent with the dotted names.'),
    cfg.Opt(
        'include_projects', type=optiontypes.RegexList(), default=[],
        help='Regular expressions; only projects whose raw id one of them '
             'matches whole get project and table metrics of their own. '
             'Empty: every project. Totals always count every project. '
             'Quote an expression that contains a comma.'),
    cfg.Opt(
        'exclude_projects', type=optiontypes.RegexList(), default=[],
        help='Regular expressions; projects whose raw id one of them '
             'matches whole get no project or table metrics of their own '
             '(they still count in the totals). Wins over '
             'include_projects.'),
    cfg.Opt(
        'include_tables', type=optiontypes.RegexList(), default=[],
        help='Regular expressions; only tables whose raw name one of them '
             'matches whole get table metrics of their own. Empty: every '
             'table. Project sums and totals always cover every table.'),
    cfg.Opt(
        'exclude_tables', type=optiontypes.RegexList(), default=[],
        help='Regular expressions; tables whose raw name one of them '
             'matches whole get no table metrics of their own (they still '
             'count in the project sums and totals). Wins over '
             'include_tables.'),
    cfg.Opt(
        'top_tables', type=optiontypes.Integer(min=0), default=0,
        help='With N > 0, table metrics only for the N largest tables of '
             'the cloud by size, among those the filters let through. '
             'Membership is stable: a table enters when it ranks in the '
             'top N and leaves when it falls below rank N + N/5 (or is '
             'gone), so at most 1.2 N tables are sent and series do not '
             'flap. Table metrics are then sent at the end of each '
             'listing. Needs size in metrics. 0: every table.'),
    cfg.Opt(
        'auth_type', type=optiontypes.Choice(('',) + AUTH_TYPES),
        default='',
        help='Keystone plugin with which the collector gets a token for '
             'its monitoring requests, for a monitoring pipeline behind '
             'keystonemiddleware\'s tokenauth: password (keystoneauth\'s '
             'name: the identity API version is discovered at auth_url) '
             'or v3password. The token is sent as X-Auth-Token (also to '
             'a health check on the monitoring_url\'s origin), kept '
             'across cycles, renewed when less than request_timeout of '
             'its life remains and once on an HTTP 401. Every call to '
             'Keystone is bounded by request_timeout. Keystone down or '
             'refusing the credentials is one ERROR naming the user, '
             'the project and auth_url, retried '
             'every cycle; health gauges go on. Needs the "keystone" '
             'extra (keystoneauth1; python-keystoneclient on CPython '
             '2.7). Empty: no token.'),
    cfg.StrOpt(
        'auth_section', default='',
        help='Name of a config file group that holds auth_type (or its '
             'Kilo spelling auth_plugin) and the credentials instead of '
             'this group, e.g. keystone_authtoken, where '
             'keystonemiddleware reads the same service user. Options '
             'set in this group or in the paste section win over it.'),
    cfg.StrOpt(
        'auth_url', default='',
        help='With auth_type: Keystone\'s identity endpoint, e.g. '
             'http://keystone:5000/v3 (https is verified against ca_file '
             'when it is set).'),
    cfg.StrOpt(
        'username', default='',
        help='With auth_type: the service user. Any valid token reads '
             'every project\'s tables through MagnetoDB\'s monitoring API '
             '(it checks no role): use a user of its own.'),
    cfg.StrOpt(
        'password', default='', secret=True,
        help='With auth_type: the service user\'s password. Never logged '
             'or printed.'),
    cfg.StrOpt(
        'project_name', default='',
        help='With auth_type: the project the token is scoped to (or '
             'project_id).'),
    cfg.StrOpt(
        'project_id', default='',
        help='With auth_type: the id of the project the token is scoped '
             'to (or project_name).'),
    cfg.StrOpt(
        'user_domain_name', default='',
        help='With auth_type: the domain of username (or '
             'user_domain_id), e.g. Default.'),
    cfg.StrOpt(
        'user_domain_id', default='',
        help='With auth_type: the id of the domain of username (or '
             'user_domain_name), e.g. default.'),
    cfg.StrOpt(
        'project_domain_name', default='',
        help='With auth_type and project_name: the project\'s domain (or '
             'project_domain_id).'),
    cfg.StrOpt(
        'project_domain_id', default='',
        help='With auth_type and project_name: the id of the project\'s '
             'domain (or project_domain_name).'),
]


def register_opts(conf):
    """Register the ``[statsd]`` options on ``conf`` (idempotent)."""
    conf.register_opts(STATSD_OPTS, group=GROUP)


def list_opts():
    """The options for ``oslo-config-generator`` and Sphinx."""
    return [(GROUP, copy.deepcopy(STATSD_OPTS))]
