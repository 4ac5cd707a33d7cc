#!/usr/bin/env bash
# wheel-test.sh - the suite against the wheel a user installs, not the source tree.
#
#   scripts/wheel-test.sh [PYTHON] [pytest args]     # PYTHON defaults to python3
#
# 1. `python -m build` makes the sdist, then the wheel from that sdist (so a file
#    missing from the sdist fails here), in a throw-away directory;
# 2. `auditwheel show` prints the manylinux tag the wheel's C extensions qualify for;
# 3. the wheel (with its `test` extra) goes into a fresh venv;
# 4. the repository minus pymem/ is copied beside it and pytest runs there, so
#    `import pymem` can only find site-packages: PYMEM_TEST_WHEEL=1 makes
#    tests/test_installed.py assert exactly that, and the suite then runs
#    against the installed package.
# Tests that are about the source tree itself (C sources compile with -Werror,
# the sdist is complete, what the build script declares) are
# tests/test_build.py and those marked `source_tree`; they are left out here.
#
# Takes ~1 min (build + installs) plus one suite run on the 2-core box.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
python=${1:-python3}
[ $# -gt 0 ] && shift
work=$(mktemp -d "${TMPDIR:-/tmp}/pymem-wheel.XXXXXX")
trap 'rm -rf "$work"' EXIT

"$python" -m venv "$work/venv"
py=$work/venv/bin/python
# pip's log only when it fails (the local index mirrors warn about every name).
pip_install() { "$py" -m pip install -q "$@" >"$work/pip.log" 2>&1 || { cat "$work/pip.log" >&2; return 1; }; }
pip_install build auditwheel
# The source as committed plus new files not yet committed (never ignored ones).
mkdir "$work/tree" "$work/src"
copy_tree() {
    local f
    while IFS= read -r -d '' f; do
        if [ -e "$repo/$f" ]; then cp --parents -- "$f" "$work/tree/"; fi
    done < <(git -C "$repo" ls-files -z -co --exclude-standard)
}
(cd "$repo" && copy_tree)
"$py" -m build -q -o "$work/dist" "$work/tree" >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
wheel=$(ls "$work"/dist/*.whl)
sdist=$(ls "$work"/dist/*.tar.gz)
echo "built $(basename "$sdist") and $(basename "$wheel")"
"$work/venv/bin/auditwheel" show "$wheel" 2>/dev/null | tr '\n' ' ' \
    | grep -o 'consistent with the following platform tag: "[^"]*"' | sed 's/^/auditwheel: /'

pip_install "$wheel[test]"
# Everything but the package: tests, fixtures, README, benchmarks, examples.
(cd "$work/tree" && find . -mindepth 1 -maxdepth 1 ! -name pymem ! -name build ! -name '*.egg-info' \
    -exec cp -r {} "$work/src/" \;)
cd "$work/src"
PYMEM_TEST_WHEEL=1 "$py" -m pytest -q -p no:cacheprovider --ignore=tests/test_build.py \
    -m "not source_tree" "$@"
