"""The fuzz targets: `TARGETS[name](data)` feeds `data` to one part of pymem.

Parser targets take the file's bytes (several files are joined with SEP):
  mtree      `info mtree -D` dump SEP hints.json -> load_mtree, then format_mtree
             (tree, -D, -f -d) and a read at each flat range of each space
  flat       one byte (page_bits - 10) + `info mtree -f` dump -> dispatch_from_flat
  hints      `info mtree -D` SEP `info mtree -f` SEP `info mtree -f -d` -> derive_hints,
             and load_mtree + format_mtree with the hints it returns
  trace      a pymem trace file -> load_trace, replay on tests/trace_machine's
             machine, format_report, diff_traces with itself
  qemu_log   a QEMU trace log -> load_trace, replay on the bundled q35
  api        bytes read as a program of public API calls (fuzz/api.py)

A target returns normally or raises PymemError; anything else is a finding.
Findings other engineers are fixing are tolerated while listed in KNOWN (each
names its entry in the notes' fuzz-findings.md); the list shrinks to nothing.
"""
from __future__ import annotations

import atexit
import json
import os
import re
import tempfile
import traceback
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import pymem.machines
from pymem.errors import PymemError
from pymem.trace import record as record_trace

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
# The bundled machines where pymem is installed (the source tree, or a wheel).
MACHINES = Path(pymem.machines.__file__).resolve().parent
SEP = b"\n\x00--8<--\x00\n"

# The longest input libFuzzer makes for each target (scripts/fuzz.sh passes it
# as -max_len).  A target's cost grows with its input (a dump of 100 regions
# builds, renders and prints 100 regions), so the fuzzer works on pieces of
# the fixtures (`windows`), whole small fixtures and what it grows from them:
# every line form and block structure fits, and it runs 10-50x more inputs an
# hour than on whole q35 dumps.  The whole fixtures stay in the corpus; the
# fuzzer reads the first MAX_LEN bytes of them, the ASan/UBSan replay and
# tests/test_fuzz.py all of them.  An `api` program stops after MAX_OPS
# operations, which its first ~1 KiB hold.
MAX_LEN: Dict[str, int] = {"mtree": 4096, "flat": 4096, "hints": 6144, "trace": 4096,
                           "qemu_log": 4096, "api": 1024}

# Findings in other engineers' lists, tolerated until their fix lands:
# (exception type name, regex over "message | innermost frame"), entry.
KNOWN: List[Tuple[str, str, str]] = []  # F1-F3 fixed: only PymemError is accepted


def known(exc: BaseException) -> Optional[str]:
    """The fuzz-findings.md entry an exception is a known finding of, if any."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{Path(frames[-1].filename).name}:{frames[-1].name}" if frames else ""
    text = f"{exc} | {where}"
    for type_name, pattern, entry in KNOWN:
        if type(exc).__name__ == type_name and re.search(pattern, text):
            return entry
    return None


# Triage: with PYMEM_FUZZ_TRIAGE=FILE a finding is appended to FILE (once
# per exception type and place) and the run goes on, to list them all at once.
TRIAGE = os.environ.get("PYMEM_FUZZ_TRIAGE")
_triaged: set = set()


def _triage(exc: BaseException, data: bytes) -> None:
    frames = traceback.extract_tb(exc.__traceback__)
    key = (type(exc).__name__, frames[-1].filename, frames[-1].lineno) if frames else ()
    if key in _triaged:
        return
    _triaged.add(key)
    assert TRIAGE is not None
    with open(TRIAGE, "a") as f:
        f.write(f"=== {type(exc).__name__}: {exc!s:.300}\ninput: {data[:2000]!r}\n")
        f.write("".join(traceback.format_exception(exc)[-6:]) + "\n")


def guarded(fn: Callable[[bytes], None]) -> Callable[[bytes], None]:
    """`fn` with pymem's own errors (and tolerated known findings) swallowed."""
    def target(data: bytes) -> None:
        try:
            fn(data)
        except PymemError:
            pass
        except Exception as exc:  # noqa: BLE001 - the point: sort them
            if known(exc) is None:
                if TRIAGE is None:
                    raise
                _triage(exc, data)
    target.__name__ = fn.__name__
    target.__doc__ = fn.__doc__
    return target


def _split(data: bytes, n: int) -> List[bytes]:
    parts = data.split(SEP, n - 1)
    return parts + [b""] * (n - len(parts))


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def _hints(raw: bytes) -> Optional[dict]:
    """The hints as load_mtree takes them: a parsed JSON object, or None."""
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        return None        # not JSON: load_mtree is never given it
    return obj if isinstance(obj, dict) else None


def _exercise(system) -> None:
    """Print the system every way and read a little of every flat range."""
    from pymem.qemu.mtree import format_mtree

    format_mtree(system)
    format_mtree(system, disabled=True)
    format_mtree(system, flat=True, dispatch=True)
    for asp in system.address_spaces:
        for fr in asp.flatview.ranges[:16]:
            asp.rw(fr.addr, bytearray(min(fr.size, 8)), False)


# ------------------------------------------------------------------ parsers

@guarded
def mtree(data: bytes) -> None:
    """load_mtree(dump, hints) and format_mtree of the result."""
    from pymem.qemu.mtree import load_mtree

    dump, hints = _split(data, 2)
    _exercise(load_mtree(_text(dump), _hints(hints)))


@guarded
def flat(data: bytes) -> None:
    """dispatch_from_flat(dump, page_bits)."""
    from pymem.qemu.flat import dispatch_from_flat

    if not data:
        return
    dispatch_from_flat(_text(data[1:]), page_bits=10 + data[0] % 7)


@guarded
def hints(data: bytes) -> None:
    """derive_hints(mtree -D, -f, -f -d), then load the dump with its hints."""
    from pymem.qemu.hints import derive_hints
    from pymem.qemu.mtree import load_mtree

    tree, flat_dump, dispatch = (_text(p) for p in _split(data, 3))
    derived = derive_hints(tree, flat_dump, dispatch)
    json.dumps(derived)                 # what `pymem qemu-hints` prints
    _exercise(load_mtree(tree, derived))


# One scratch file per process for the trace targets (load_trace reads a
# path): rewritten in place for each input, which is cheaper than making and
# removing a temporary file every time.
_SCRATCH: list = []


def _scratch() -> Tuple[int, str]:
    if not _SCRATCH:
        shm = Path("/dev/shm")
        fd, path = tempfile.mkstemp(prefix="pymem-fuzz-", suffix=".trace",
                                    dir=str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None)
        atexit.register(os.unlink, path)
        _SCRATCH.append((fd, path))
    return _SCRATCH[0]


def _load(data: bytes):
    from pymem.trace import load_trace

    fd, path = _scratch()
    os.ftruncate(fd, 0)
    os.pwrite(fd, data, 0)
    return load_trace(path)


@guarded
def trace(data: bytes) -> None:
    """load_trace, replay on the trace tests' machine, report, diff."""
    from pymem.trace import diff_traces, format_diff, format_report, replay
    from tests import trace_machine

    t = _load(data)
    system, _ = trace_machine.build()
    format_report(replay(t, system), "fuzz.jsonl")
    format_diff(diff_traces(t, t), "a", "b")


_Q35: list = []


def _q35():
    """A Replayer of the bundled q35, built once and kept in a session: its
    46 device regions are found and stubbed once, not for every input."""
    if not _Q35:
        from pymem import machines
        from pymem.trace import Replayer

        replayer = Replayer(machines.load("q35"))
        session = replayer.session()
        session.__enter__()             # for the life of the process
        atexit.register(session.__exit__, None, None, None)
        _Q35.append((replayer, session))
    return _Q35[0][0]


@guarded
def qemu_log(data: bytes) -> None:
    """load_trace of a QEMU trace log, replay on the bundled q35 (built and
    stubbed once)."""
    from pymem.trace import format_report

    t = _load(data)
    format_report(_q35().replay(t), "trace.log")


def prepare(name: str) -> None:
    """Build once what target `name` reuses for every input (before fuzzing)."""
    if name == "qemu_log":
        _q35()


@guarded
def api(data: bytes) -> None:
    """A program of public API calls read from the bytes (fuzz/api.py)."""
    from fuzz.api import run

    run(data)


TARGETS: Dict[str, Callable[[bytes], None]] = {
    "mtree": mtree, "flat": flat, "hints": hints, "trace": trace,
    "qemu_log": qemu_log, "api": api,
}


# ------------------------------------------------------------------ seeds

def _fixture_dirs() -> Iterator[Path]:
    for base in ("qemu", "qemu-more", "qemu-flat"):
        yield from sorted(p for p in (FIXTURES / base).iterdir() if p.is_dir())


def _recorded_traces() -> Iterator[bytes]:
    """Two short recordings of the trace tests' machine (all accesses, MMIO only)."""
    from tests import trace_machine

    for seed, mmio_only in ((1, False), (2, True)):
        _, asp = trace_machine.build()
        fd, path = tempfile.mkstemp(prefix="pymem-fuzz-", suffix=".jsonl")
        os.close(fd)
        try:
            with record_trace(asp, path, mmio_only=mmio_only):
                trace_machine.run(asp, seed, n=40)
            yield Path(path).read_bytes()
        finally:
            os.unlink(path)


def _log_windows(lines_per_window: int = 60, windows: int = 8) -> Iterator[bytes]:
    """Windows spread over each fixture log (a whole log is slow to fuzz)."""
    for d in _fixture_dirs():
        log = d / "trace.log"
        if log.exists():
            lines = log.read_bytes().splitlines(keepends=True)
            for start in range(0, len(lines), len(lines) // windows or 1):
                yield b"".join(lines[start:start + lines_per_window])


def _blocks(text: bytes) -> List[bytes]:
    """A dump's blank-line separated blocks (address spaces, FlatViews), each
    with its trailing blank line."""
    return [b + b"\n\n" for b in re.split(rb"\n\s*\n", text) if b.strip()]


def _pack(blocks: List[bytes], limit: int) -> Iterator[bytes]:
    """Runs of consecutive blocks, each run as long as fits in `limit` bytes
    (a block longer than that alone, cut at a line end)."""
    run = b""
    for b in blocks:
        if len(b) > limit:
            b = b[:b.rfind(b"\n", 0, limit) + 1]
        if run and len(run) + len(b) > limit:
            yield run
            run = b""
        run += b
    if run:
        yield run


def _views_of(flat: bytes) -> List[Tuple[bytes, List[bytes]]]:
    """(FlatView block, the address-space names it lists) of a flat dump."""
    return [(b, re.findall(rb'^ AS "([^"\n]*)"', b, re.M)) for b in _blocks(flat)
            if b.startswith(b"FlatView")]


def windows(name: str) -> List[bytes]:
    """Pieces of the fixtures that fit in MAX_LEN[name]: runs of whole
    address-space blocks (mtree), FlatViews (flat), and one FlatView with its
    dispatch and the tree blocks of its address spaces (hints)."""
    limit = MAX_LEN[name]
    out: List[bytes] = []
    for d in _fixture_dirs():
        tree_file, flat_file = d / "mtree-D.txt", d / "flat.txt"
        if name == "mtree" and tree_file.exists():
            out.extend(w + SEP for w in _pack(_blocks(tree_file.read_bytes()), limit - len(SEP)))
        elif name == "flat":
            page_bits = d / "page_bits.txt"
            bits = int(page_bits.read_text()) if page_bits.exists() else 12
            for w in _pack(_blocks(flat_file.read_bytes()), limit - 1):
                out.append(bytes([bits - 10]) + w)
        elif name == "hints" and tree_file.exists() and (d / "dispatch.txt").exists():
            tree = _blocks(tree_file.read_bytes())
            dispatch = dict((b.split(b"\n", 1)[0], b) for b in _blocks((d / "dispatch.txt").read_bytes()))
            for view, spaces in _views_of(flat_file.read_bytes()):
                mine = [b for b in tree if b.startswith(b"memory-region:") or
                        any(b.startswith(b"address-space: " + sp + b"\n") or
                            b"\naddress-space: " + sp + b"\n" in b for sp in spaces)]
                data = SEP.join([b"".join(mine), view, dispatch.get(view.split(b"\n", 1)[0], b"")])
                if len(data) <= limit:
                    out.append(data)
    return sorted(set(out))


def seeds(name: str) -> List[bytes]:
    """The seed corpus of target `name`, from tests/fixtures/ and pymem/machines/."""
    out: List[bytes] = []
    if name == "mtree":
        for d in _fixture_dirs():
            if (d / "mtree-D.txt").exists():
                hints_file = d / "hints.json"
                out.append((d / "mtree-D.txt").read_bytes() + SEP +
                           (hints_file.read_bytes() if hints_file.exists() else b""))
        out.append((MACHINES / "q35.mtree-D.txt").read_bytes() + SEP +
                   (MACHINES / "q35.hints.json").read_bytes())
    elif name == "flat":
        for d in _fixture_dirs():
            page_bits = d / "page_bits.txt"
            bits = int(page_bits.read_text()) if page_bits.exists() else 12
            out.append(bytes([bits - 10]) + (d / "flat.txt").read_bytes())
    elif name == "hints":
        for d in _fixture_dirs():
            files = [d / "mtree-D.txt", d / "flat.txt", d / "dispatch.txt"]
            if all(f.exists() for f in files):
                out.append(SEP.join(f.read_bytes() for f in files))
    elif name == "trace":
        out.extend(_recorded_traces())
    elif name == "qemu_log":
        out.extend(_log_windows())
    elif name == "api":
        from fuzz.api import seed_programs
        out.extend(seed_programs())
    else:
        raise KeyError(f"no fuzz target named {name!r} (have: {', '.join(TARGETS)})")
    # Unique, in a fixed order: a corpus directory is named by content.
    return sorted(set(out))
