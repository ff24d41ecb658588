#!/usr/bin/env bash
# Installs the reference StatsD daemon (npm statsd@0.9.0), the tests' and
# benchmarks' real peer, into .cache/statsd unless it is there already.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
dest="$top/.cache/statsd"
if [ -f "$dest/node_modules/statsd/stats.js" ]; then
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq nodejs npm
fi
mkdir -p "$dest"
npm install --prefix "$dest" --no-audit --no-fund --ignore-scripts \
    --loglevel=error statsd@0.9.0
