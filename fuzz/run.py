"""Run one fuzz target under atheris (libFuzzer with Python coverage).

    python -m fuzz.run TARGET [libFuzzer options] [CORPUS_DIR ...]
    python -m fuzz.run --seeds TARGET DIR     # write TARGET's seeds and windows to DIR
    python -m fuzz.run --replay TARGET PATH...  # run TARGET once on each file
                                                # (or each file in a directory)

Use scripts/fuzz.sh, which fuzzes with coverage, then replays the corpus on
the ASan/UBSan build of the C core, and keeps the corpus and any crash input
under .fuzz/.  pymem, the targets and the trace tests' machine are
instrumented for coverage; the C core is not (gcc builds it).  Inputs are at
most `fuzz.targets.MAX_LEN[TARGET]` bytes unless -max_len says otherwise.
"""
from __future__ import annotations

import gc
import os
import hashlib
import sys
from pathlib import Path


def write_seeds(name: str, directory: str) -> int:
    from fuzz.targets import seeds, windows

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    corpus = sorted(set(seeds(name)) | set(windows(name)))
    for data in corpus:
        (out / hashlib.sha1(data).hexdigest()).write_bytes(data)
    return len(corpus)


def replay(name: str, paths: list) -> int:
    """Run target `name` once on every input; the first non-pymem exception
    (or sanitizer report) stops it, after naming the input."""
    from fuzz.targets import TARGETS

    files = []
    for p in map(Path, paths):
        files.extend(sorted(f for f in p.iterdir() if f.is_file()) if p.is_dir() else [p])
    for f in files:
        print(f"input {f}", file=sys.stderr, flush=True)
        TARGETS[name](f.read_bytes())
    print(f"replayed {len(files)} inputs of {name}: no finding", file=sys.stderr)
    return 0


def main(argv: list) -> int:
    if len(argv) >= 4 and argv[1] == "--replay":
        return replay(argv[2], argv[3:])
    if len(argv) == 4 and argv[1] == "--seeds":
        print(f"{write_seeds(argv[2], argv[3])} seeds of {argv[2]} in {argv[3]}")
        return 0
    if len(argv) < 2 or argv[1].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    import atheris

    with atheris.instrument_imports(include=os.environ.get("PYMEM_FUZZ_INSTRUMENT", "pymem,fuzz,tests").split(",")):
        import pymem  # noqa: F401
        import pymem.machines  # noqa: F401
        import pymem.qemu.flat  # noqa: F401
        import pymem.qemu.hints  # noqa: F401
        import pymem.qemu.mtree  # noqa: F401
        import pymem.qemu.tracelog  # noqa: F401
        import pymem.trace  # noqa: F401
        import tests.trace_machine  # noqa: F401
        from fuzz import api  # noqa: F401
        from fuzz.targets import MAX_LEN, TARGETS, prepare
    name = argv[1]
    if name not in TARGETS:
        print(f"no fuzz target {name!r} (have: {', '.join(TARGETS)})", file=sys.stderr)
        return 2
    if not any(a.startswith("-max_len=") for a in argv[2:]):
        argv = argv + [f"-max_len={MAX_LEN[name]}"]
    prepare(name)
    atheris.Setup([argv[0]] + argv[2:], TARGETS[name])
    # Everything alive now (modules, the instrumented code, atheris's tables)
    # lives for the whole run: move it out of the collector's sight, so a
    # collection (the api target's `drop` forces one) scans what the inputs
    # made, not the whole heap (a full collection took ~50 ms here, ~1 ms after).
    gc.collect()
    gc.freeze()
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
