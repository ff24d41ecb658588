# Shared by the scripts that build the cached CPython 2.7 environments:
# where the cache is, how to find python2.7, and how a failed build step
# is reported (one line that names the step, the log's tail above it).
# Source it; it sets `cache` and defines fail, find_python27, step,
# make_virtualenv.

cache=${MAGNETODB_STATSD_CACHE:-$HOME/.cache/magnetodb-statsd-middleware}

# pip 20.3.4 (the last one for 2.7) breaks on this machine's local index
# settings: give it none.
unset PIP_FIND_LINKS PIP_EXTRA_INDEX_URL PIP_INDEX_URL PIP_REQUIRE_VIRTUALENV
export PIP_CONFIG_FILE=/dev/null PIP_DISABLE_PIP_VERSION_CHECK=1

fail() {
    echo "$(basename "$0"): $*" >&2
    exit 1
}

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
        fail "python2.7 not found: install CPython 2.7.18 (pyenv install 2.7.18)"
    fi
}

# step LOG WHAT COMMAND...: runs a build step with its output in LOG.
step() {
    local log=$1 what=$2
    shift 2
    echo "== $what" >>"$log"
    if ! "$@" >>"$log" 2>&1; then
        tail -n 30 "$log" >&2
        fail "$what failed (full log: $log)"
    fi
}

# make_virtualenv LOG PYTHON27 DIR: a 2.7 virtualenv with pip 20.3.4 and
# setuptools 44.1.1, the last ones for 2.7 (tox 4's virtualenv cannot).
make_virtualenv() {
    local log=$1 python27=$2 dir=$3
    # greenlet, blist, netifaces and cassandra-driver's murmur3 build from C.
    command -v cc >/dev/null 2>&1 ||
        fail "no C compiler (cc): apt-get install build-essential"
    rm -rf "$dir"
    if ! "$python27" -c 'import virtualenv, sys
sys.exit(tuple(map(int, virtualenv.__version__.split(".")[:2])) >= (20, 22))' \
            >/dev/null 2>&1; then
        step "$log" "installing virtualenv<20.22 for $python27" \
            "$python27" -m pip install 'virtualenv<20.22'
    fi
    step "$log" "creating the virtualenv $dir" "$python27" -m virtualenv "$dir"
    step "$log" "installing pip 20.3.4 and setuptools 44.1.1" \
        "$dir/bin/python" -m pip install pip==20.3.4 setuptools==44.1.1
}
