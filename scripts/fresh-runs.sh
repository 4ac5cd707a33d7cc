#!/usr/bin/env bash
# Run the tests N times, each from a fresh clone of HEAD with its C extension
# built in place: nothing (build, .hypothesis, caches) carries from one run to
# the next.  Uses .venv's Python and packages (make it first: see README).
#
#   bash scripts/fresh-runs.sh N [pytest args...]
#   bash scripts/fresh-runs.sh 50 tests/test_access_model.py tests/test_render.py
#
# Prints one line per run and a summary; exits 1 if any run failed (its
# output is kept in $TMPDIR/pymem-fresh.N/run-I.log).
set -uo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)
python="$repo/.venv/bin/python"
runs=${1:?usage: fresh-runs.sh N [pytest args...]}
shift
out=$(mktemp -d "${TMPDIR:-/tmp}/pymem-fresh.XXXXXX")
failed=0
for i in $(seq 1 "$runs"); do
    clone="$out/clone"
    rm -rf "$clone"
    git clone -q "$repo" "$clone"
    log="$out/run-$i.log"
    if (cd "$clone" && "$python" setup.py -q build_ext --inplace >"$log" 2>&1 &&
        PYTHONPATH="$clone" "$python" -m pytest -q -p no:cacheprovider "$@" >>"$log" 2>&1); then
        echo "run $i: ok ($(tail -n 1 "$log"))"
        rm -f "$log"
    else
        echo "run $i: FAILED, see $log"
        failed=$((failed + 1))
    fi
done
rm -rf "$out/clone"
echo "$((runs - failed)) of $runs fresh runs passed ($(git rev-parse --short HEAD))"
[ "$failed" -eq 0 ]
