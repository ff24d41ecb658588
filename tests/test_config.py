"""Where options come from, and how bad ones are refused."""

import logging

import pytest
import stevedore
from oslo_config import cfg
from oslo_config import fixture as config_fixture
from paste.deploy import loadwsgi

from magnetodb_statsd_middleware import config
from magnetodb_statsd_middleware import filter as statsd_filter
from magnetodb_statsd_middleware import opts
from tests.support import peers


@pytest.fixture
def conf():
    """A fresh ConfigOpts standing in for the global cfg.CONF."""
    fixture = config_fixture.Config(cfg.ConfigOpts())
    fixture.setUp()
    opts.register_opts(fixture.conf)
    fixture.conf([])
    yield fixture
    fixture.cleanUp()


def _write(tmp_path, name, text):
    return peers.write_file(tmp_path / name, text)


def test_disabled_by_default_and_nothing_validated(conf):
    settings = config.load_settings({}, {'interval': 'not a number'},
                                    conf=conf.conf)
    assert settings == config.Settings(enabled=False)


def test_settings_take_their_defaults_from_the_declarations(conf):
    """Settings built by hand hold what loading the declared defaults
    gives, save the two defaults derived at load time; and they are
    immutable through and through (hashable)."""
    assert set(config.Settings._fields) == {
        opt.dest for opt in opts.STATSD_OPTS}
    conf.config(group='statsd', enabled=True)
    loaded = config.load_settings({}, {}, conf=conf.conf)
    assert loaded == config.Settings(
        enabled=True,
        lock_path=config.default_lock_path(opts.DEFAULT_MONITORING_URL),
        host_name=config.default_host_name())
    by_hand = config.Settings()
    assert (by_hand.lock_path, by_hand.host_name) == ('', '')
    assert by_hand.metrics == opts.KNOWN_METRICS
    assert by_hand.user_labels == by_hand.include_tables == ()
    hash(by_hand)


def test_global_conf_is_the_last_resort(conf):
    conf.config(group='statsd', enabled=True, interval=7,
                metrics=['size'], projects=['a', ' b '])
    settings = config.load_settings({}, {}, conf=conf.conf)
    assert settings.enabled and settings.interval == 7
    assert settings.metrics == ('size',)
    assert settings.projects == ('a', 'b')
    assert settings.lock_path == config.default_lock_path(
        opts.DEFAULT_MONITORING_URL)
    assert settings.host_name == config.default_host_name()


def test_paste_values_win_and_are_converted(conf):
    conf.config(group='statsd', enabled=True, interval=7, statsd_port=1)
    settings = config.load_settings(
        {}, {'interval': '30', 'metrics': 'item_count',
             'initial_delay': '0.5', 'lock_path': ''}, conf=conf.conf)
    assert settings.interval == 30 and settings.statsd_port == 1
    assert settings.metrics == ('item_count',)
    assert settings.initial_delay == 0.5
    assert settings.lock_path == ''
    assert conf.conf.statsd.interval == 7  # cfg.CONF is never changed


def test_oslo_config_args_with_here(conf, tmp_path):
    _write(tmp_path, 'magnetodb-api.conf',
           '[DEFAULT]\nverbose = true\n[statsd]\nenabled = true\n'
           'interval = 11\nstatsd_host = ::1\n[other]\nx = 1\n')
    global_conf = {
        'here': str(tmp_path),
        'oslo_config_args': '--config-file $here/magnetodb-api.conf'}
    settings = config.load_settings(global_conf, {}, conf=conf.conf)
    assert settings.interval == 11 and settings.statsd_host == '::1'


def test_oslo_config_file_in_the_paste_section(conf, tmp_path):
    path = _write(tmp_path, 'statsd.conf',
                  '[statsd]\nenabled = true\nmetric_prefix = prod.mdb\n')
    settings = config.load_settings(
        {}, {'oslo_config_file': path, 'interval': '5'}, conf=conf.conf)
    assert settings.metric_prefix == 'prod.mdb' and settings.interval == 5


def test_the_lock_path_follows_the_monitoring_url():
    one = config.default_lock_path('http://127.0.0.1:8480/v1/monitoring/projects')
    two = config.default_lock_path('http://127.0.0.1:9480/v1/monitoring/projects')
    assert one != two
    assert one.endswith('.lock') and 'magnetodb-statsd-' in one


@pytest.mark.parametrize('key, value', [
    ('interval', '0'), ('interval', 'soon'), ('statsd_port', '70000'),
    ('metrics', 'size,bytes'), ('metrics', ''), ('enabled', 'maybe'),
    ('metric_prefix', 'a..b'), ('metric_prefix', 'a b'),
    ('monitoring_url', 'ftp://x/y'), ('statsd_host', 'bad host!'),
    ('healthcheck_url', 'not a url'), ('max_packet_size', '10'),
    ('initial_delay', '-1'), ('label_mode', 'prometheus'),
    ('label_mode', 'DogStatsD'), ('emit_legacy', 'both'),
    ('user_labels', 'region'), ('user_labels', 'Region:r1'),
    ('user_labels', 'region:r 1'), ('user_labels', 'table:t'),
    ('user_labels', 'region:a,region:b'), ('user_labels', 'region:'),
    ('user_labels', '1x:y'), ('include_projects', 'a('),
    ('exclude_projects', '*'), ('include_tables', 'ok,[z'),
    ('exclude_tables', '(?P<'), ('top_tables', '-1'),
    ('top_tables', 'ten'),
    ('send_spread', '0.95'), ('send_spread', '-0.1'),
    ('max_name_length', '63'), ('max_name_length', '1025'),
    ('max_name_length', 'long'),
    ('stuck_after', '0'), ('stuck_after', '15m'), ('user_labels', 'status:x'),
])
def test_a_bad_value_names_the_option_and_the_value(conf, key, value):
    conf.config(group='statsd', enabled=True)
    with pytest.raises(config.ConfigError) as error:
        config.load_settings({}, {key: value}, conf=conf.conf)
    message = str(error.value)
    assert key in message and repr(value) in message
    assert '\n' not in message


def test_send_spread_ends_a_plan_within_the_interval(conf):
    conf.config(group='statsd', enabled=True)
    assert config.load_settings({}, {}, conf=conf.conf).send_spread == 0.5
    assert config.load_settings({}, {'send_spread': '0.9'},
                                conf=conf.conf).send_spread == 0.9


def test_stuck_after(conf, tmp_path):
    conf.config(group='statsd', enabled=True)
    assert config.load_settings({}, {}, conf=conf.conf).stuck_after == 900
    path = _write(tmp_path, 'statsd.conf',
                  '[statsd]\nenabled = true\nstuck_after = 1800\n')
    assert config.load_settings({}, {'oslo_config_file': path},
                                conf=conf.conf).stuck_after == 1800
    assert config.load_settings({}, {'stuck_after': '60'},
                                conf=conf.conf).stuck_after == 60


def test_label_options(conf):
    conf.config(group='statsd', enabled=True)
    settings = config.load_settings({}, {
        'label_mode': 'librato', 'emit_legacy': 'true',
        'user_labels': 'region:RegionOne, cloud:prod',
        'include_projects': 'prod-.*', 'exclude_projects': 'prod-test,x',
        'include_tables': '"t{1,3}",orders', 'top_tables': '100'},
        conf=conf.conf)
    assert settings.label_mode == 'librato' and settings.emit_legacy
    assert settings.user_labels == (('cloud', 'prod'),
                                    ('region', 'RegionOne'))
    assert settings.include_projects == ('prod-.*',)
    assert settings.exclude_projects == ('prod-test', 'x')
    assert settings.include_tables == ('t{1,3}', 'orders')
    assert settings.top_tables == 100


def test_max_name_length(conf):
    conf.config(group='statsd', enabled=True)
    # Gnocchi's statsd daemon stores "<name>|g" in 255 characters.
    assert config.load_settings({}, {}, conf=conf.conf).max_name_length == 253
    for value in ('64', '127', '1024'):
        assert config.load_settings(
            {}, {'max_name_length': value},
            conf=conf.conf).max_name_length == int(value)
    # The longest prefix that leaves 10 characters to each of a name's
    # two parts: "<prefix>.projects.<10>.tables_by_status.<10>" is 64.
    assert config.load_settings({}, {
        'metric_prefix': 'a' * 16, 'max_name_length': '64'},
        conf=conf.conf).metric_prefix == 'a' * 16
    with pytest.raises(config.ConfigError, match='tables_by_status'):
        config.load_settings({}, {'metric_prefix': 'a' * 17,
                                  'max_name_length': '64'}, conf=conf.conf)
    assert config.load_settings({}, {
        'label_mode': 'monasca', 'max_name_length': '255'},
        conf=conf.conf).label_mode == 'monasca'


@pytest.mark.parametrize('mode', ['graphite', 'influxdb', 'librato',
                                  'signalfx'])
def test_labels_in_the_name_need_room(conf, mode):
    """Where the labels are part of the name, the prefix, the label keys
    and the user labels must leave 10 characters to each cut value: a
    setup that cannot keep its names within max_name_length is refused at
    load, naming the option and the name."""
    conf.config(group='statsd', enabled=True)
    roomy = {'label_mode': mode, 'user_labels': 'region:' + 'r' * 150}
    assert config.load_settings({}, roomy, conf=conf.conf).label_mode == mode
    crowded = dict(roomy, user_labels='region:' + 'r' * 200)
    with pytest.raises(config.ConfigError,
                       match=r'max_name_length = 253 is invalid: '
                             r'magnetodb\.table\.(size|item_count).* '
                             r'cannot be kept within 253 characters; '
                             r'shorten metric_prefix or user_labels'):
        config.load_settings({}, crowded, conf=conf.conf)
    # The dialects whose labels are not in the name have no such limit.
    assert config.load_settings({}, dict(crowded, label_mode='dogstatsd'),
                                conf=conf.conf).label_mode == 'dogstatsd'


def test_label_options_from_an_oslo_config_file(conf, tmp_path):
    path = _write(tmp_path, 'statsd.conf',
                  '[statsd]\nenabled = true\nlabel_mode = dogstatsd\n'
                  'user_labels = region:r1,az:a-1\n'
                  'exclude_tables = tmp_.*, .*_bak\ntop_tables = 5\n')
    settings = config.load_settings({}, {'oslo_config_file': path},
                                    conf=conf.conf)
    assert settings.user_labels == (('az', 'a-1'), ('region', 'r1'))
    assert settings.exclude_tables == ('tmp_.*', '.*_bak')
    assert settings.top_tables == 5


@pytest.mark.parametrize('options, name', [
    ({'label_mode': 'dogstatsd', 'user_labels': 'region:RegionOne'},
     'user_labels'),
    ({'top_tables': '10', 'metrics': 'item_count'}, 'top_tables'),
    # Monasca rejects names over 255 characters.
    ({'label_mode': 'monasca', 'max_name_length': '256'},
     'max_name_length'),
    # The table and project parts cannot be cut below 10 characters.
    ({'metric_prefix': 'a' * 25, 'max_name_length': '64'},
     'max_name_length'),
    # The hosts share the walk through the coordination backend, and each
    # sees one range of the all-projects listing.
    ({'share_walk': 'true'}, 'share_walk'),
    ({'share_walk': 'true', 'coordination_url': 'redis://h:6379',
      'projects': 'p1'}, 'share_walk'),
    ({'share_walk': 'true', 'coordination_url': 'redis://h:6379',
      'top_tables': '10'}, 'share_walk'),
])
def test_options_that_contradict_each_other(conf, options, name):
    conf.config(group='statsd', enabled=True)
    with pytest.raises(config.ConfigError) as error:
        config.load_settings({}, options, conf=conf.conf)
    assert str(error.value).startswith('[statsd] %s = ' % name)


@pytest.mark.parametrize('name, value, reason', [
    ('interval', 'often', 'invalid literal'),
    ('statsd_port', '70000', 'less than or equal to 65535'),
    ('label_mode', 'prometheus', 'prometheus'),
])
def test_a_bad_value_in_a_config_file_names_option_value_and_file(
        conf, tmp_path, name, value, reason):
    path = _write(tmp_path, 'bad.conf',
                  '[statsd]\nenabled = true\n%s = %s\n' % (name, value))
    with pytest.raises(config.ConfigError) as error:
        config.load_settings({}, {'oslo_config_file': path}, conf=conf.conf)
    message = str(error.value)
    assert message.startswith('[statsd] %s = %r (%s) is invalid: '
                              % (name, value, path)), message
    assert reason in message
    assert 'LocationInfo' not in message and 'Locations' not in message


def test_a_bad_secret_is_named_but_never_shown():
    error = config._invalid('coordination_url', 'redis://:hunter2@h',
                            'a.conf', ValueError('no such backend'))
    assert str(error) == ('[statsd] coordination_url = *** (a.conf) is '
                          'invalid: no such backend')


def test_misspelt_names_in_a_config_file_are_warned_about_once(
        conf, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    path = _write(tmp_path, 'typo.conf',
                  '[statsd]\nenabled = true\nstatsd_hots = s.example\n'
                  'intreval = 30\nnothing_like_it = 1\n')
    for _ in range(2):  # two pipelines build the filter
        settings = config.load_settings({}, {'oslo_config_file': path},
                                        conf=conf.conf)
    assert settings.interval == 60  # left at the default, hence the warning
    warnings = sorted(r.getMessage() for r in caplog.records)
    assert warnings == [
        "StatsD filter: unknown option 'intreval' in [statsd] of %s is "
        "ignored; did you mean 'interval'?" % path,
        "StatsD filter: unknown option 'nothing_like_it' in [statsd] of %s "
        "is ignored" % path,
        "StatsD filter: unknown option 'statsd_hots' in [statsd] of %s is "
        "ignored; did you mean 'statsd_host'?" % path]


def test_misspelt_names_are_warned_about_when_disabled_too(
        conf, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    path = _write(tmp_path, 'off.conf', '[statsd]\nenabeld = true\n')
    settings = config.load_settings({}, {'oslo_config_file': path},
                                    conf=conf.conf)
    assert not settings.enabled
    assert "did you mean 'enabled'?" in caplog.text


def test_a_missing_config_file_is_a_clear_error(conf, tmp_path):
    global_conf = {'here': str(tmp_path),
                   'oslo_config_args': '--config-file $here/missing.conf'}
    with pytest.raises(config.ConfigError, match='missing.conf'):
        config.load_settings(global_conf, {}, conf=conf.conf)


def test_an_unknown_paste_key_is_warned_about(conf, caplog):
    caplog.set_level(logging.WARNING)
    config.load_settings({}, {'intervall': '5'}, conf=conf.conf)
    assert ("unknown option 'intervall' in [statsd] of the paste filter "
            "section is ignored; did you mean 'interval'?" in caplog.text)


def test_disabled_filter_is_the_app_itself(conf, monkeypatch):
    monkeypatch.setattr(cfg, 'CONF', conf.conf)
    app = object()
    assert statsd_filter.filter_factory({}, enabled='false')(app) is app


def test_list_opts_names_every_option():
    ((group, listed),) = opts.list_opts()
    assert group == 'statsd'
    assert {o.name for o in listed} >= {
        'enabled', 'statsd_host', 'statsd_port', 'metric_prefix',
        'interval', 'initial_delay', 'monitoring_url', 'projects',
        'metrics', 'page_size', 'request_timeout', 'max_response_bytes',
        'max_packet_size', 'lock_path', 'healthcheck_url', 'host_name',
        'label_mode', 'emit_legacy', 'user_labels', 'include_projects',
        'exclude_projects', 'include_tables', 'exclude_tables',
        'top_tables', 'stuck_after'}
    assert all(o.help for o in listed)


def test_entry_points_load_through_their_consumers():
    # PasteDeploy resolves "use = egg:...#statsd"; oslo-config-generator
    # finds the options through stevedore.
    context = loadwsgi.loadcontext(
        loadwsgi.FILTER, 'egg:magnetodb-statsd-middleware#statsd')
    assert context.object is statsd_filter.filter_factory
    manager = stevedore.ExtensionManager('oslo.config.opts')
    assert (manager['magnetodb_statsd_middleware'].plugin
            is opts.list_opts)
