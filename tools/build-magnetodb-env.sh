#!/usr/bin/env bash
# Builds the CPython 2.7 virtualenv of a MagnetoDB 2015.1 deployment, then
# installs this project into it, the way an operator would.
#
#   tools/build-magnetodb-env.sh [PROJECT_ROOT]
#
# The MagnetoDB part (magnetodb==2015.1 from its PyPI sdist, with the pins
# of tests/magnetodb/constraints-2015.1.txt) is built once and cached
# outside the clone, in
#   ${MAGNETODB_STATSD_CACHE:-$HOME/.cache/magnetodb-statsd-middleware}/py27-magnetodb
# and rebuilt only when the constraints file changes (its SHA-1 is kept in
# a stamp). MagnetoDB's etc/ files are not installed by its sdist, so the
# sdist is unpacked next to the env (src/magnetodb-2015.1/etc).
# The project itself is reinstalled on every run with a plain
# `pip install PROJECT_ROOT`. Writes <env>/freeze-magnetodb.txt (before the
# project) and <env>/freeze-with-filter.txt (after); prints the env path as
# its last line. A missing python2.7 (or, when the env must be built, C
# compiler) fails with one line saying what to install.
set -euo pipefail

root=$(cd "${1:-$(dirname "$0")/..}" && pwd)
constraints=$root/tests/magnetodb/constraints-2015.1.txt
cache=${MAGNETODB_STATSD_CACHE:-$HOME/.cache/magnetodb-statsd-middleware}
env=$cache/py27-magnetodb
log=$cache/py27-magnetodb.log

fail() {
    echo "build-magnetodb-env: $*" >&2
    exit 1
}

# pip 20.3.4 (the last one for 2.7) breaks on this machine's local index
# settings: give it none.
unset PIP_FIND_LINKS PIP_EXTRA_INDEX_URL PIP_INDEX_URL PIP_REQUIRE_VIRTUALENV
export PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1

find_python27() {
    local prefix
    local pyenv_python=${PYENV_ROOT:-$HOME/.pyenv}/versions/2.7.18/bin/python2.7
    if prefix=$(pyenv prefix 2.7.18 2>/dev/null) &&
            [ -x "$prefix/bin/python2.7" ]; then
        echo "$prefix/bin/python2.7"
    elif [ -x "$pyenv_python" ]; then
        # pyenv's own install, where pyenv itself is not on PATH.
        echo "$pyenv_python"
    elif command -v python2.7 >/dev/null 2>&1 &&
            python2.7 -c 'import sys; sys.exit(sys.version_info[:2] != (2, 7))' \
                >/dev/null 2>&1; then
        command -v python2.7
    else
        return 1
    fi
}

# Runs a build step with its output in the log; on failure shows the end of
# the log and names the step.
step() {
    local what=$1
    shift
    echo "== $what" >>"$log"
    if ! "$@" >>"$log" 2>&1; then
        tail -n 30 "$log" >&2
        fail "$what failed (full log: $log)"
    fi
}

build_magnetodb_env() {
    local python27=$1 sha1=$2
    # greenlet, blist, netifaces and the driver's murmur3 build from C.
    command -v cc >/dev/null 2>&1 ||
        fail "no C compiler (cc): apt-get install build-essential"
    rm -rf "$env"
    if ! "$python27" -c 'import virtualenv, sys
sys.exit(tuple(map(int, virtualenv.__version__.split(".")[:2])) >= (20, 22))' \
            >/dev/null 2>&1; then
        step "installing virtualenv<20.22 for $python27" \
            "$python27" -m pip install 'virtualenv<20.22'
    fi
    step "creating the virtualenv" "$python27" -m virtualenv "$env"
    step "installing pip 20.3.4 and setuptools 44.1.1" \
        "$env/bin/python" -m pip install pip==20.3.4 setuptools==44.1.1
    step "installing magnetodb==2015.1" \
        "$env/bin/python" -m pip install -c "$constraints" magnetodb==2015.1
    step "downloading the magnetodb 2015.1 sdist (for its etc/)" \
        "$env/bin/python" -m pip download --no-deps --no-binary :all: \
        -d "$env/sdist" magnetodb==2015.1
    mkdir -p "$env/src"
    tar -xzf "$env/sdist/magnetodb-2015.1.tar.gz" -C "$env/src"
    "$env/bin/python" -m pip freeze >"$env/freeze-magnetodb.txt" 2>/dev/null
    echo "$sha1" >"$env/.constraints.sha1"
}

install_project() {
    step "removing the previous magnetodb-statsd-middleware" \
        "$env/bin/python" -m pip uninstall -y magnetodb-statsd-middleware
    step "installing $root into the MagnetoDB env" \
        "$env/bin/python" -m pip install "$root"
    "$env/bin/python" -m pip freeze >"$env/freeze-with-filter.txt" 2>/dev/null
}

main() {
    local python27 sha1
    python27=$(find_python27) ||
        fail "python2.7 not found: install CPython 2.7.18 (pyenv install 2.7.18)"
    mkdir -p "$cache"
    # One build at a time: a second caller waits, then finds it done.
    exec 9>"$cache/py27-magnetodb.lock"
    flock 9
    : >"$log"
    sha1=$(sha1sum "$constraints" | cut -d' ' -f1)
    if [ "$(cat "$env/.constraints.sha1" 2>/dev/null)" != "$sha1" ]; then
        build_magnetodb_env "$python27" "$sha1"
    else
        echo "== reusing $env" >>"$log"
    fi
    install_project
    echo "$env"
}

main
