"""Where the options come from: the one place that decides.

First match wins: the filter's own paste section; then the oslo.config files
named by ``oslo_config_project``/``oslo_config_file`` (oslo.middleware's
convention) or by MagnetoDB's ``oslo_config_args`` in the paste
``[DEFAULT]``; then the process's global ``cfg.CONF``. Everything else in
the package receives a frozen :class:`Settings` and never reads oslo.config.
"""

import collections
import difflib
import glob
import hashlib
import logging
import os
import shlex
import socket
import string

from oslo_config import cfg

from magnetodb_statsd_middleware import compat
from magnetodb_statsd_middleware import coordination
from magnetodb_statsd_middleware import dialects
from magnetodb_statsd_middleware import election
from magnetodb_statsd_middleware import httpget
from magnetodb_statsd_middleware import metrics
from magnetodb_statsd_middleware import optiontypes
from magnetodb_statsd_middleware import opts

LOG = logging.getLogger(__name__)

# Paste keys that say where oslo.config files are, not option values.
OSLO_SOURCE_KEYS = ('oslo_config_project', 'oslo_config_file',
                    'oslo_config_program')

_OPTS_BY_NAME = dict((opt.dest, opt) for opt in opts.STATSD_OPTS)
_URL_TYPE = optiontypes.URI()


class ConfigError(ValueError):
    """A bad ``[statsd]`` setting; the message names the option and value."""


def _frozen(value):
    """An option's value as :class:`Settings` holds it: immutable (a list
    becomes a tuple, a dict its sorted ``(key, value)`` pairs)."""
    if isinstance(value, dict):
        return tuple(sorted(value.items()))
    if isinstance(value, list):
        return tuple(value)
    return value


# Every option's declared default, as Settings holds it. A default of None
# (lock_path, host_name) means "derived when the settings are loaded";
# Settings built by hand, never loaded, hold '' instead: no lock, and no
# host name of their own.
_DEFAULTS = collections.OrderedDict(
    (opt.dest, '' if opt.default is None else _frozen(opt.default))
    for opt in opts.STATSD_OPTS)


class Settings(collections.namedtuple(
        'Settings', list(_DEFAULTS))):
    """Validated, resolved settings of one collector (immutable).

    One field per option, built with keywords; the ones left out take the
    option's declared default.
    ``coordination_url`` and ``password`` are secrets and stay out of the
    repr.
    """

    __slots__ = ()

    def __new__(cls, **values):
        for name, default in _DEFAULTS.items():
            values.setdefault(name, default)
        return super(Settings, cls).__new__(cls, **values)

    def __repr__(self):
        shown = self._replace(
            coordination_url='***' if self.coordination_url else '',
            password='***' if self.password else '')
        return super(Settings, shown).__repr__()


def default_lock_path(monitoring_url):
    """Per-host lock file, distinct for each monitored API, in a folder of
    this user's own (a name of its own in the shared temp folder could be
    taken first by any local user)."""
    digest = hashlib.sha1(monitoring_url.encode('utf-8')).hexdigest()[:12]
    return os.path.join(election.default_directory(), '%s.lock' % digest)


def default_host_name():
    return socket.gethostname().split('.', 1)[0]


PASTE_SECTION = 'the paste filter section'

# Warnings already given in this process: several pipelines build the
# filter, and each would say the same again.
_WARNED = set()


def _shown(name, value):
    """A value as a message may show it: a secret never."""
    return '***' if _OPTS_BY_NAME[name].secret else repr(value)


def _invalid(name, value, source, exc):
    return ConfigError('[statsd] %s = %s (%s) is invalid: %s'
                       % (name, _shown(name, value), source, exc))


def _convert(name, value, source=PASTE_SECTION):
    """Convert a raw string with the option's own oslo.config type."""
    try:
        return _OPTS_BY_NAME[name].type(value)
    except ValueError as exc:
        raise _invalid(name, value, source, exc)


def _config_files(conf):
    """The oslo.config files ``conf`` read, in the order it read them."""
    try:
        files = list(conf.config_file or ())
        dirs = conf.config_dir or ()
    except cfg.Error:  # never parsed: no files
        return []
    if isinstance(dirs, compat.string_types):
        dirs = [dirs]
    for directory in dirs:
        files.extend(sorted(glob.glob(os.path.join(directory, '*.conf'))))
    return files


def file_values(conf, group=opts.GROUP):
    """``{key: (raw value, file)}`` of the ``[statsd]`` sections (or of
    another ``group``'s) of the files ``conf`` read, every key as written;
    the last one wins, as in oslo.config."""
    group = group.lower()
    found = {}
    for path in _config_files(conf):
        sections = {}
        try:
            cfg.ConfigParser(path, sections).parse()
        except (cfg.Error, ValueError) + compat.OS_ERRORS:
            continue  # oslo.config itself said what is wrong with it
        for section, values in sections.items():
            if section.lower() == group:
                for key, raw in values.items():
                    found[key] = (raw[-1], path)
    return found


def unknown_options(conf, local_conf=None):
    """One line per unknown ``[statsd]`` option name, with the nearest
    known name: in the paste section, then in the oslo.config files."""
    keys = [(key, PASTE_SECTION) for key in sorted(local_conf or ())
            if key not in OSLO_SOURCE_KEYS]
    keys.extend((key, source) for key, (_, source)
                in sorted(file_values(conf).items()))
    problems = []
    for key, source in keys:
        if key in _OPTS_BY_NAME:
            continue
        nearest = difflib.get_close_matches(key, list(_OPTS_BY_NAME), 1)
        problems.append('unknown option %r in [statsd] of %s is ignored%s'
                        % (key, source, '; did you mean %r?' % nearest[0]
                           if nearest else ''))
    return problems


def _warn_unknown(conf, local_conf):
    for problem in unknown_options(conf, local_conf):
        if problem not in _WARNED:
            _WARNED.add(problem)
            LOG.warning('StatsD filter: %s', problem)


def _oslo_conf_from_paste(global_conf, local_conf):
    """A private ConfigOpts named by the paste config, or None.

    A private object keeps the global ``cfg.CONF`` untouched, so several
    filters and the application can parse their files independently.
    """
    project = local_conf.get('oslo_config_project')
    config_file = local_conf.get('oslo_config_file')
    args_template = global_conf.get('oslo_config_args')
    if project or config_file:
        args = []
        files = [config_file] if config_file else None
    elif args_template:
        here = global_conf.get('here', os.getcwd())
        args = shlex.split(
            string.Template(args_template).safe_substitute(here=here))
        files = []
    else:
        return None
    conf = cfg.ConfigOpts()
    opts.register_opts(conf)
    try:
        conf(args, project=project,
             prog=local_conf.get('oslo_config_program'),
             default_config_files=files, validate_default_values=True,
             **compat.config_parse_kwargs(conf))
    except (cfg.Error, SystemExit) + compat.OS_ERRORS as exc:
        raise ConfigError('[statsd] cannot read the oslo.config files '
                          '(%s): %s' % (' '.join(args) or config_file,
                                        exc))
    return conf


def _oslo_values(conf):
    """Read every ``[statsd]`` value; a bad one's error names the option,
    the value and its file, in words of ours (oslo.config's own message
    carries its internals)."""
    group = getattr(conf, opts.GROUP)
    values = {}
    for name in _OPTS_BY_NAME:
        try:
            values[name] = getattr(group, name)
        except (cfg.ConfigFileValueError, ValueError) as exc:
            raw, source = file_values(conf).get(name, (None, None))
            if raw is None:
                raise ConfigError('[statsd] %s is invalid: %s'
                                  % (name, exc))
            _convert(name, raw, source)  # raises with the type's reason
            raise _invalid(name, raw, source, exc)
    return values


def load_settings(global_conf=None, local_conf=None, conf=None,
                  standalone=False):
    """Resolve the settings of a filter, validated when enabled.

    ``conf`` is the fallback ConfigOpts (the global ``cfg.CONF`` when not
    given); it is read now, when the collector is being started, never at
    import time. ``standalone`` (the command line) ignores ``enabled``.
    """
    global_conf = global_conf or {}
    local_conf = dict(local_conf or {})
    oslo_conf = _oslo_conf_from_paste(global_conf, local_conf)
    if oslo_conf is None:
        oslo_conf = cfg.CONF if conf is None else conf
        opts.register_opts(oslo_conf)
    # A misspelt name would leave its option at the default in silence.
    _warn_unknown(oslo_conf, local_conf)

    if standalone:
        enabled = True
    elif 'enabled' in local_conf:
        enabled = _convert('enabled', local_conf['enabled'])
    else:
        enabled = _oslo_values(oslo_conf)['enabled']
    if not enabled:
        return Settings(enabled=False)

    values = _oslo_values(oslo_conf)
    for name in _OPTS_BY_NAME:
        if name in local_conf:
            values[name] = _convert(name, local_conf[name])
    _read_auth_section(oslo_conf, values)
    return _validated(values)


# keystonemiddleware's Kilo name of auth_type in [keystone_authtoken].
KILO_AUTH_TYPE = 'auth_plugin'


def _read_auth_section(conf, values):
    """Fill auth_type and the credentials left empty in ``[statsd]`` and
    the paste section from the ``auth_section`` group of the config files.

    Its options belong to another library (keystonemiddleware registers
    them, with types of its own): they are read from the files as
    written, never registered here.
    """
    section = values['auth_section']
    if not section:
        return
    found = file_values(conf, section)
    if not found:
        raise ConfigError('[statsd] auth_section = %r is invalid: no config '
                          'file read by this process has a [%s] group'
                          % (section, section))
    raw = dict((key, value) for key, (value, _) in found.items())
    if 'auth_type' not in raw and KILO_AUTH_TYPE in raw:
        raw['auth_type'] = raw[KILO_AUTH_TYPE]
    for name in ('auth_type',) + opts.CREDENTIAL_NAMES:
        if not values[name] and raw.get(name):
            _, path = found.get(name) or found[KILO_AUTH_TYPE]
            values[name] = _convert(name, raw[name],
                                    '[%s] of %s' % (section, path))
    if not values['auth_type']:
        # Kilo's admin_user/admin_password form: no plugin to use.
        raise ConfigError('[statsd] auth_section = %r is invalid: [%s] sets '
                          'no auth_type (nor auth_plugin); give it the '
                          'password plugin (auth_plugin = password and '
                          'keystoneauth\'s credential options)'
                          % (section, section))


def _check_auth(values):
    """Why the Keystone settings cannot get a token, or ''."""
    missing = [name for name in ('auth_url', 'username', 'password')
               if not values[name]]
    for pair in (('project_name', 'project_id'),
                 ('user_domain_name', 'user_domain_id')):
        if not (values[pair[0]] or values[pair[1]]):
            missing.append(' or '.join(pair))
    if values['project_name'] and not (values['project_domain_name'] or
                                       values['project_domain_id']):
        missing.append('project_domain_name or project_domain_id')
    if missing:
        return '%s not set%s' % (
            ', '.join(missing), ' (nor in [%s])' % values['auth_section']
            if values['auth_section'] else '')
    try:
        _URL_TYPE(values['auth_url'])
    except ValueError as exc:
        return 'auth_url = %r: %s' % (values['auth_url'], exc)
    return compat.keystone_unavailable()


def _validated(values):
    """Checks that one option's type cannot express, and derived defaults."""
    # Text, like the ids the API sends: on 2.7 oslo.config gives bytes.
    projects = tuple(compat.to_text(p).strip() for p in values['projects']
                     if p.strip())
    url = values['healthcheck_url'] or ''
    if url:
        try:
            _URL_TYPE(url)
        except ValueError as exc:
            raise ConfigError('[statsd] healthcheck_url = %r is invalid: %s'
                              % (url, exc))
    ca_file = values['ca_file'] or ''
    if ca_file:
        problem = httpget.check_ca_file(ca_file)
        if problem:
            raise ConfigError('[statsd] ca_file = %r is invalid: %s'
                              % (ca_file, problem))
    coordination_url = values['coordination_url'] or ''
    if coordination_url:
        problem = coordination.check_available(coordination_url)
        if problem:  # the URL is a secret: never in the message
            raise ConfigError('[statsd] coordination_url is invalid: %s'
                              % problem)
    auth_type = values['auth_type'] or ''
    if auth_type:
        problem = _check_auth(values)
        if problem:  # never the password
            raise ConfigError('[statsd] auth_type = %r is invalid: %s'
                              % (auth_type, problem))
    credentials = dict((name, compat.to_text(values[name] or '') if auth_type
                        else '') for name in opts.CREDENTIAL_NAMES)
    user_labels = _frozen(values['user_labels'])
    if values['label_mode'] == 'dogstatsd':
        for key, value in user_labels:
            if value != value.lower():
                raise ConfigError(
                    '[statsd] user_labels = %r is invalid: Datadog lower-'
                    'cases tags: write %s:%s' % (
                        ','.join('%s:%s' % pair for pair in user_labels),
                        key, value.lower()))
    max_name_length = values['max_name_length']
    problem = metrics.check_name_room(values['metric_prefix'],
                                      max_name_length)
    if problem:
        raise ConfigError('[statsd] max_name_length = %r is invalid: %s; '
                          'shorten metric_prefix' % (max_name_length,
                                                     problem))
    problem = dialects.check_name_room(values['metric_prefix'],
                                       values['label_mode'], user_labels,
                                       max_name_length)
    if problem:
        raise ConfigError('[statsd] max_name_length = %r is invalid: %s; '
                          'shorten metric_prefix or user_labels'
                          % (max_name_length, problem))
    if values['label_mode'] == 'monasca' and max_name_length > (
            metrics.MONASCA_MAX_NAME_LENGTH):
        raise ConfigError('[statsd] max_name_length = %r is invalid: '
                          'Monasca rejects names over %d characters'
                          % (max_name_length,
                             metrics.MONASCA_MAX_NAME_LENGTH))
    if values['share_walk']:
        if not coordination_url:
            conflict = ('it needs coordination_url: the hosts share the walk '
                        'through the coordination backend')
        elif projects:
            conflict = ('it shares the all-projects listing, and projects '
                        'is set')
        elif values['top_tables']:
            conflict = ('each host sees one range of the listing, so the '
                        'largest tables of the cloud cannot be ranked: set '
                        'top_tables = 0')
        else:
            conflict = ''
        if conflict:
            raise ConfigError('[statsd] share_walk = True is invalid: %s'
                              % conflict)
    if values['top_tables'] and 'size' not in values['metrics']:
        raise ConfigError('[statsd] top_tables = %r is invalid: ranking by '
                          'size needs size in metrics' % values['top_tables'])
    lock_path = values['lock_path']
    if lock_path is None:
        lock_path = default_lock_path(values['monitoring_url'])
    host_name = compat.to_text(values['host_name'] or default_host_name())
    return Settings(
        enabled=True,
        statsd_host=values['statsd_host'],
        statsd_port=values['statsd_port'],
        metric_prefix=values['metric_prefix'],
        interval=values['interval'],
        initial_delay=values['initial_delay'],
        monitoring_url=values['monitoring_url'].rstrip('/'),
        projects=projects,
        metrics=tuple(collections.OrderedDict.fromkeys(
            values['metrics'])),
        stuck_after=values['stuck_after'],
        page_size=values['page_size'],
        request_timeout=values['request_timeout'],
        max_response_bytes=values['max_response_bytes'],
        max_packet_size=values['max_packet_size'],
        send_rate=values['send_rate'],
        send_spread=values['send_spread'],
        lock_path=lock_path,
        healthcheck_url=url,
        ca_file=ca_file,
        host_name=host_name,
        coordination_url=coordination_url,
        share_walk=values['share_walk'],
        label_mode=values['label_mode'],
        max_name_length=max_name_length,
        emit_legacy=values['emit_legacy'],
        user_labels=user_labels,
        include_projects=_frozen(values['include_projects']),
        exclude_projects=_frozen(values['exclude_projects']),
        include_tables=_frozen(values['include_tables']),
        exclude_tables=_frozen(values['exclude_tables']),
        top_tables=values['top_tables'],
        auth_type=auth_type,
        auth_section=values['auth_section'] or '',
        **credentials
    )
