#!/usr/bin/env bash
# sanitize.sh - run the test suite against a sanitizer build of the C core.
#
#   scripts/sanitize.sh asan [pytest args]   # AddressSanitizer + UndefinedBehaviorSanitizer
#   scripts/sanitize.sh tsan [pytest args]   # ThreadSanitizer
#
# C readers run with the GIL released, in parallel with the writer, so the C core
# is tested under both: ASan/UBSan for use-after-free (a view freed before its
# grace period) and overflow, TSan for data races between readers and writers.
# The build goes into a throw-away copy of the working tree: the in-place
# extension other people are importing is never touched.  Without pytest args it
# runs the whole suite (tests/); add --stress for the long stress runs.
#
# CPython is not instrumented, so the sanitizer runtime is LD_PRELOADed into it;
# PYTHONMALLOC=malloc routes Python objects (RAM buffers among them) through the
# sanitizer's allocator too.  LeakSanitizer is off: CPython leaks by design at
# exit.  TSan's shadow memory needs a fixed layout, which the kernel's mmap
# randomisation breaks (FATAL: unexpected memory mapping); setarch -R turns it
# off for the run.
#
# Duration on the 2-core dev box (gcc 12, Python 3.11), build included:
#   tests/test_rcu.py:                       asan ~11 s, tsan ~12 s
#   rcu + stress (--stress) + dispatch tests: asan ~70-95 s
set -euo pipefail

usage() { echo "usage: $0 asan|tsan [pytest args]" >&2; exit 2; }
[ $# -ge 1 ] || usage
mode=$1; shift

repo=$(cd "$(dirname "$0")/.." && pwd)
# The README's test environment (.venv) unless PYTHON names another.
python=${PYTHON:-$repo/.venv/bin/python}
[ -x "$python" ] || { echo "$0: no $python: run the README's test command first, or set PYTHON" >&2; exit 1; }
cc=${CC:-gcc}

work=$(mktemp -d "${TMPDIR:-/tmp}/pymem-$mode.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/logs"

case $mode in
asan)
    cflags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1"
    runtime=$("$cc" -print-file-name=libasan.so)
    export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:log_path=$work/logs/$mode
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$work/logs/$mode
    launch=()
    ;;
tsan)
    cflags="-fsanitize=thread -g -O1"
    runtime=$("$cc" -print-file-name=libtsan.so)
    # die_after_fork=0: the fork test starts a reclaimer in the forked child.
    export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:die_after_fork=0:log_path=$work/logs/$mode
    launch=(setarch "$(uname -m)" -R)
    ;;
*)
    usage
    ;;
esac
[ -e "$runtime" ] || { echo "$0: no $mode runtime ($runtime)" >&2; exit 1; }
# C++ extensions in the test environment (matplotlib's ft2font) throw through
# the sanitizer's __cxa_throw interceptor, which finds the real one only if
# libstdc++ is loaded when the runtime starts (else: CHECK failed, abort).
cxx=$("$cc" -print-file-name=libstdc++.so.6)
[ -e "$cxx" ] && runtime="$runtime:$cxx"
start=$SECONDS

# Tracked and new files of the working tree, as they are now (no build output).
(cd "$repo" && git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
    xargs -0 cp --parents -t "$work")

(cd "$work" && CC=$cc PYMEM_CFLAGS=$cflags PYMEM_LDFLAGS=${cflags%% *} \
    "$python" setup.py -q build_ext --inplace >build.log 2>&1) ||
    { cat "$work/build.log" >&2; exit 1; }
echo "$mode: built in $((SECONDS - start))s"

[ $# -gt 0 ] || set -- tests/
cd "$work"
export PYTHONPATH=$work PYTHONMALLOC=malloc PYTHONDONTWRITEBYTECODE=1
# The editable install must not win over the copy: check what gets imported.
LD_PRELOAD=$runtime "${launch[@]}" "$python" -c "
import pymem._native, sys
sys.exit(not pymem._native.__file__.startswith('$work'))" ||
    { echo "$0: the sanitized copy is not what python imports" >&2; exit 1; }
status=0
LD_PRELOAD=$runtime "${launch[@]}" "$python" -m pytest -p no:cacheprovider "$@" || status=$?
# Reports go to files: pytest captures fd 2, and a sanitizer that stops the
# process leaves pytest no chance to show what it captured.
for log in logs/*; do
    [ -e "$log" ] || continue
    cat "$log" >&2
    [ "$status" -ne 0 ] || status=1
done
echo "$mode: $* finished in $((SECONDS - start))s, exit $status"
exit $status
