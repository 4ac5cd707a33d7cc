#!/usr/bin/env bash
# fuzz.sh - run one fuzz target (fuzz/targets.py) with atheris, then replay
# everything it kept on the ASan/UBSan build of the C core.
#
#   scripts/fuzz.sh TARGET SECONDS [libFuzzer options]
#   scripts/fuzz.sh all SECONDS        # each target in turn, SECONDS each
#
# Targets: mtree flat hints trace qemu_log api.  Needs atheris in .venv
# (`.venv/bin/pip install atheris`).
#
# Two phases, each in a throw-away copy of the working tree:
# 1. Fuzz for SECONDS with coverage of pymem's Python code (atheris) on the
#    plain build.  (Under gcc's ASan runtime atheris's coverage runs 20-50x
#    slower: gcc's libasan also defines the SanitizerCoverage entry points.)
# 2. Replay the whole corpus (seeds and every input that found new coverage)
#    on a copy built with -fsanitize=address,undefined as scripts/sanitize.sh
#    builds it (gcc's ASan runtime LD_PRELOADed, PYTHONMALLOC=malloc): a
#    sanitizer report or a non-pymem exception fails the run.
# The corpus grows in .fuzz/corpus/TARGET (seeded from tests/fixtures/ on the
# first run); an input that makes a finding is kept in .fuzz/crashes/ (and
# printed in base64).  PYMEM_FUZZ_DIR puts both elsewhere (CI: a fresh
# directory, so every run starts from the seeds).  A
# finding is a crash, a sanitizer report, a hang (an input running over 30 s)
# or an exception that is not a PymemError.  Prints the number of inputs run
# and the CPU time they took (inputs per CPU second: on a shared box the wall
# time says more about the load than about the target).
set -euo pipefail

usage() { echo "usage: $0 TARGET|all SECONDS [libFuzzer options]" >&2; exit 2; }
[ $# -ge 2 ] || usage
target=$1 seconds=$2
shift 2
targets=(mtree flat hints trace qemu_log api)
if [ "$target" = all ]; then
    run=("${targets[@]}")
else
    case " ${targets[*]} " in *" $target "*) ;; *) usage ;; esac
    run=("$target")
fi

repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
[ -x "$python" ] || { echo "$0: no $python: run the README's test command first, or set PYTHON" >&2; exit 1; }
"$python" -c "import atheris" 2>/dev/null ||
    { echo "$0: atheris is not installed: $python -m pip install atheris" >&2; exit 1; }
cc=${CC:-gcc}

work=$(mktemp -d "${TMPDIR:-/tmp}/pymem-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
copy() {  # tracked and new files of the working tree, as they are now
    mkdir -p "$1"
    (cd "$repo" && git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
        xargs -0 cp --parents -t "$1")
}
build() {  # build DIR [CFLAGS]
    local flags=${2:-}
    (cd "$1" && CC=$cc PYMEM_CFLAGS=$flags PYMEM_LDFLAGS=${flags%% *} \
        "$python" setup.py -q build_ext --inplace >build.log 2>&1) ||
        { cat "$1/build.log" >&2; exit 1; }
}
copy "$work/plain" && build "$work/plain"
copy "$work/asan"
build "$work/asan" "-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1"

export PYTHONDONTWRITEBYTECODE=1
base=${PYMEM_FUZZ_DIR:-$repo/.fuzz}

fuzz_one() {
    target=$1
    shift
    corpus=$base/corpus/$target
    crashes=$base/crashes
    mkdir -p "$corpus" "$crashes"
    [ -n "$(ls -A "$corpus")" ] ||
        (cd "$work/plain" && PYTHONPATH=$PWD "$python" -m fuzz.run --seeds "$target" "$corpus" >/dev/null)

    status=0
    # The CPU time it got as well as the wall time: on a shared box (and
    # under nice) inputs per CPU second say what the target costs.
    local TIMEFORMAT='%U %S'
    { time (cd "$work/plain" && PYTHONPATH=$PWD "$python" -m fuzz.run "$target" -max_total_time="$seconds" \
        -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix="$crashes/$target-" \
        "$@" "$corpus" >"$work/fuzz.log" 2>&1); } 2>"$work/cpu" || status=$?
    grep -v -E '^#[0-9]+\s+(NEW|REDUCE|pulse)|^INFO: Instrumenting' "$work/fuzz.log" | tail -n 40 >&2
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/fuzz.log")
    cpu=$(awk 'NF == 2 { printf "%.0f", $1 + $2 }' "$work/cpu")
    per_cpu=$(awk -v r="${runs:-0}" -v c="${cpu:-0}" 'BEGIN { if (c > 0) printf "%.0f", r / c; else print "?" }')
    echo "fuzz $target: ${runs:-?} inputs in ${seconds}s, ${cpu:-?} CPU s (${per_cpu} inputs per CPU s), exit $status"

    # The corpus on the sanitized build.
    kept=$(ls "$corpus" | wc -l)
    (cd "$work/asan" && PYTHONPATH=$PWD PYTHONMALLOC=malloc \
        ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:allocator_may_return_null=1 \
        UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        LD_PRELOAD=$("$cc" -print-file-name=libasan.so) \
        timeout 1200 "$python" -m fuzz.run --replay "$target" "$corpus") >"$work/asan.log" 2>&1 || {
        grep -v '^input ' "$work/asan.log" | tail -n 40 >&2
        last=$(grep '^input ' "$work/asan.log" | tail -n 1 | cut -d' ' -f2-)
        [ -z "$last" ] || cp "$last" "$crashes/$target-asan-$(basename "$last")"
        echo "fuzz $target: the ASan/UBSan build failed on ${last:-?}" >&2
        status=1
}
echo "fuzz $target: $kept corpus inputs replayed on the ASan/UBSan build, exit $status"
return $status
}

overall=0
for t in "${run[@]}"; do fuzz_one "$t" "$@" || overall=1; done
exit $overall
