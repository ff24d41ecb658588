#!/usr/bin/env bash
# Installs the tests' and benchmarks' real peers unless they are there:
# the reference StatsD daemon (npm statsd@0.9.0) into the machine's cache
# (outside the clone, so that a fresh clone reuses it), and redis-server
# (Debian's package) for the tooz coordination tests.
set -euo pipefail

cache=${MAGNETODB_STATSD_CACHE:-$HOME/.cache/magnetodb-statsd-middleware}
mkdir -p "$cache"
# tox envs may run in parallel: one installer at a time.
exec 9>"$cache/install-peers.lock"
flock 9

apt_install() {
    if [ "$(id -u)" != 0 ]; then
        echo "install $* (Debian packages) first, or run this as root" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

command -v npm >/dev/null 2>&1 || apt_install nodejs npm
command -v redis-server >/dev/null 2>&1 || apt_install redis-server

dest="$cache/statsd"
if [ ! -f "$dest/node_modules/statsd/stats.js" ]; then
    mkdir -p "$dest"
    npm install --prefix "$dest" --no-audit --no-fund --ignore-scripts \
        --loglevel=error statsd@0.9.0
fi
