#!/usr/bin/env bash
# Builds the CPython 2.7 environment in which the unit and integration
# tests run on 2.7: our dependencies at a MagnetoDB 2015.1 deployment's
# versions (tests/magnetodb/constraints-2015.1.txt) plus the test tools of
# tests/constraints-py27.txt, cached outside the clone in
#   ${MAGNETODB_STATSD_CACHE:-$HOME/.cache/magnetodb-statsd-middleware}/py27-tests
# and rebuilt only when one of those files or setup.py (the extras it
# installs) changes. The project is
# installed in develop mode on every run (cheap). Prints the env's path
# as its last line.
set -euo pipefail

root=$(cd "${1:-$(dirname "$0")/..}" && pwd)
. "$root/tools/py27-common.sh"
env=$cache/py27-tests
log=$cache/py27-tests.log
pins=("$root/tests/magnetodb/constraints-2015.1.txt"
      "$root/tests/constraints-py27.txt")
stamped=("${pins[@]}" "$root/setup.py")

python27=$(find_python27)
mkdir -p "$cache"
exec 9>"$cache/py27-tests.lock"
flock 9
: >"$log"
sha1=$(cat "${stamped[@]}" | sha1sum | cut -d' ' -f1)
if [ "$(cat "$env/.constraints.sha1" 2>/dev/null)" != "$sha1" ]; then
    make_virtualenv "$log" "$python27" "$env"
    # One constraints file for pip: the MagnetoDB pins, less magnetodb
    # itself and less what the test tools pin otherwise.
    names=$(sed -n 's/^\([A-Za-z0-9_.-]*\)==.*/\1/p' "${pins[1]}")
    { grep -v -i -x -E "(magnetodb|$(echo $names | tr ' ' '|'))==.*" \
          "${pins[0]}"; cat "${pins[1]}"; } >"$env/constraints.txt"
    step "$log" "installing the 2.7 test dependencies" \
        "$env/bin/python" -m pip install -c "$env/constraints.txt" \
        "$root[test,demo]"
    echo "$sha1" >"$env/.constraints.sha1"
fi
step "$log" "installing $root in develop mode" \
    "$env/bin/python" -m pip install --no-deps -e "$root"
echo "$env"
