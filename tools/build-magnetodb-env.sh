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
# `pip install PROJECT_ROOT`, then with its keystone extra, then with its
# coordination extra. Writes <env>/freeze-magnetodb.txt (before the
# project), <env>/freeze-with-filter.txt (after),
# <env>/freeze-with-keystone.txt and <env>/freeze-with-coordination.txt
# (after each extra); prints the env path
# as its last line. A missing python2.7 (or, when the env must be built, C
# compiler) fails with one line saying what to install.
set -euo pipefail

root=$(cd "${1:-$(dirname "$0")/..}" && pwd)
. "$root/tools/py27-common.sh"
constraints=$root/tests/magnetodb/constraints-2015.1.txt
env=$cache/py27-magnetodb
log=$cache/py27-magnetodb.log

build_magnetodb_env() {
    local python27=$1 sha1=$2
    make_virtualenv "$log" "$python27" "$env"
    step "$log" "installing magnetodb==2015.1" \
        "$env/bin/python" -m pip install -c "$constraints" magnetodb==2015.1
    step "$log" "downloading the magnetodb 2015.1 sdist (for its etc/)" \
        "$env/bin/python" -m pip download --no-deps --no-binary :all: \
        -d "$env/sdist" magnetodb==2015.1
    mkdir -p "$env/src"
    tar -xzf "$env/sdist/magnetodb-2015.1.tar.gz" -C "$env/src"
    "$env/bin/python" -m pip freeze >"$env/freeze-magnetodb.txt" 2>/dev/null
    echo "$sha1" >"$env/.constraints.sha1"
}

install_project() {
    # Back to MagnetoDB's own packages: the project and what its extra
    # added last time, so that each freeze below shows one install.
    local added
    added=$("$env/bin/python" -m pip freeze 2>/dev/null |
        sed 's/[ =@].*//' | tr 'A-Z_' 'a-z-' | sort |
        comm -23 - <(sed 's/[ =@].*//' "$env/freeze-magnetodb.txt" |
                     tr 'A-Z_' 'a-z-' | sort))
    if [ -n "$added" ]; then
        step "$log" "removing what MagnetoDB did not install" \
            "$env/bin/python" -m pip uninstall -y $added
    fi
    step "$log" "installing $root into the MagnetoDB env" \
        "$env/bin/python" -m pip install "$root"
    "$env/bin/python" -m pip freeze >"$env/freeze-with-filter.txt" 2>/dev/null
    step "$log" "installing $root[keystone] into the MagnetoDB env" \
        "$env/bin/python" -m pip install "$root[keystone]"
    "$env/bin/python" -m pip freeze >"$env/freeze-with-keystone.txt" 2>/dev/null
    step "$log" "installing $root[coordination] into the MagnetoDB env" \
        "$env/bin/python" -m pip install "$root[coordination]"
    "$env/bin/python" -m pip freeze \
        >"$env/freeze-with-coordination.txt" 2>/dev/null
}

main() {
    local python27 sha1
    python27=$(find_python27)
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
