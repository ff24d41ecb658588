#!/usr/bin/env bash
# Installs the tests' and benchmarks' real peers unless they are there:
# the reference StatsD daemon (npm statsd@0.9.0) into the machine's cache
# (outside the clone, so that a fresh clone reuses it), redis-server and
# memcached for the tooz coordination tests, and Graphite (carbon-cache
# with whisper storage, graphite-web) for the Graphite and Grafana tests,
# and collectd (its statsd plugin) for the collectd tests, Gnocchi's
# statsd daemon (gnocchi-statsd 4.4.2) and PostgreSQL for its indexer for
# the Gnocchi tests, and uWSGI 2.0.21, all from Debian's packages; and
# monasca-agent's statsd daemon and Keystone (the identity service, for
# the tests of auth_type) from PyPI. The tests start every peer
# themselves, on loopback, with their own folders: no system service is
# started or configured.
set -euo pipefail

cache=${MAGNETODB_STATSD_CACHE:-$HOME/.cache/magnetodb-statsd-middleware}
mkdir -p "$cache"
# tox envs may run in parallel: one installer at a time.
exec 9>"$cache/install-peers.lock"
flock 9

missing=()
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v memcached >/dev/null 2>&1 || missing+=(memcached)
[ -x /usr/bin/carbon-cache ] || missing+=(graphite-carbon)
[ -f /usr/lib/python3/dist-packages/graphite/settings.py ] \
    || missing+=(graphite-web)
[ -x /usr/sbin/collectd ] || missing+=(collectd-core)
# gnocchi-statsd brings python3-gnocchi (its indexer, storage and Python
# API, which the tests read back through); its indexer needs a database
# server: the tests run a private PostgreSQL cluster.
[ -x /usr/bin/gnocchi-statsd ] || missing+=(gnocchi-statsd)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null \
    || missing+=(postgresql)
# Debian 12's uWSGI 2.0.21 and its plugin for the system's Python 3.11:
# the uWSGI that runs no Python threads without enable-threads.
[ -x /usr/bin/uwsgi_python3 ] || missing+=(uwsgi-core uwsgi-plugin-python3)
/usr/bin/python3 -c 'import ensurepip' >/dev/null 2>&1 \
    || missing+=(python3-venv)

if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "install ${missing[*]} (Debian packages) first, or run this" \
             "as root" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        "${missing[@]}" >/dev/null
fi

# pinned_venv DIR PYTHON PIP_ARGS...: a virtualenv of PYTHON in DIR with
# PIP_ARGS installed, made again only when PIP_ARGS change (kept in
# DIR/.pins).
pinned_venv() {
    local dir=$1 python=$2
    shift 2
    if [ "$(cat "$dir/.pins" 2>/dev/null)" != "$*" ]; then
        rm -rf "$dir"
        "$python" -m venv "$dir"
        "$dir/bin/pip" install --quiet --disable-pip-version-check "$@"
        echo "$*" >"$dir/.pins"
    fi
}

dest="$cache/statsd"
if [ ! -f "$dest/node_modules/statsd/stats.js" ]; then
    mkdir -p "$dest"
    npm install --prefix "$dest" --no-audit --no-fund --ignore-scripts \
        --loglevel=error statsd@0.9.0
fi

# monasca-agent's statsd daemon (udp.Server and MetricsAggregator) and
# Monasca's statsd client in a virtualenv of their own: the agent runs on
# Python 3 only, and the tests on 2.7 talk to it too. Those modules import
# nothing beyond monasca-common's metric validation, simplejson and six,
# so the agent's own dependencies (Kafka, keystone and oslo clients) are
# left out.
pinned_venv "$cache/monasca-agent" python3 --no-deps \
    monasca-agent==10.0.0 monasca-common==3.8.0 simplejson \
    monasca-statsd==2.7.0 six

# Debian's uWSGI runs Debian's own Python 3.11: the filter's libraries in
# a virtualenv of that Python, as an operator of Debian's uWSGI has them
# (the tests' own interpreters are other builds, whose C modules it
# cannot load).
pinned_venv "$cache/uwsgi-debian" /usr/bin/python3 \
    oslo.config WebOb eventlet statsd Paste PasteDeploy

# Keystone, the real identity service, in a virtualenv of its own on
# Debian's Python 3.11 (whichever Python runs the tests; the tests on 2.7
# talk to it over HTTP): the tests give it a sqlite database and Fernet
# keys in a temporary folder.
pinned_venv "$cache/keystone" /usr/bin/python3 keystone==30.0.0
