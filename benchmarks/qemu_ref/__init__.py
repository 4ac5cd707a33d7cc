"""Benchmark-only yardsticks: QEMU 7.2's lookup algorithm and the floors, in C.

`load()` compiles qemu_ref.c on first use (setuptools, the interpreter's own
compiler flags) into build/qemu_ref/ of the source tree and imports it; the
module is never part of pymem's wheel.  `QemuLookup(dispatch)` fills QEMU's
data structures from a pymem Dispatch's tables (nodes, sections, sub-page
pieces) and `check()` proves both give the same section on every address a
benchmark is about to time.  See qemu_ref.c for what is transcribed and how.
"""
from __future__ import annotations

import importlib.util
import sysconfig
from array import array
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BUILD = ROOT / "build" / "qemu_ref"

_module: Any = None


def load() -> Any:
    """The compiled `_qemu_ref` module (built here on first use)."""
    global _module
    if _module is not None:
        return _module
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    target = BUILD / f"_qemu_ref{suffix}"
    sources = [HERE / "qemu_ref.c", ROOT / "csrc" / "ext" / "pyaddr.h"]
    if not target.exists() or target.stat().st_mtime < max(s.stat().st_mtime for s in sources):
        _build(target)
    spec = importlib.util.spec_from_file_location("_qemu_ref", target)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _module = module
    return module


def _build(target: Path) -> None:
    from setuptools import Distribution, Extension

    ext = Extension("_qemu_ref", [str(HERE / "qemu_ref.c")],
                    include_dirs=[str(ROOT / "csrc" / "ext")],
                    # The flags pymem's own core is built with.
                    extra_compile_args=["-O2", "-Wall", "-Wextra"])
    dist = Distribution({"name": "qemu_ref", "ext_modules": [ext]})
    cmd = dist.get_command_obj("build_ext")
    cmd.build_lib = str(target.parent)
    cmd.build_temp = str(target.parent / "tmp")
    cmd.ensure_finalized()
    cmd.run()


def resolved_bounds(dispatch: Any) -> Tuple[array, array]:
    """Every boundary of the dispatch's resolved map and the section from it
    on (gaps are section 0): what the compare-based floors search."""
    bounds, secs = array("Q"), array("I")
    nxt = 0
    for s in dispatch.sections()[1:]:
        if s.is_subpage:
            continue
        if s.start > nxt:
            bounds.append(nxt)
            secs.append(0)
        bounds.append(s.start)
        secs.append(s.index)
        nxt = s.start + s.size
    if nxt < 1 << 64:
        bounds.append(nxt)
        secs.append(0)
    return bounds, secs


class QemuLookup:
    """QEMU's address_space_lookup_region over a copy of `dispatch`'s tables."""

    def __init__(self, dispatch: Any) -> None:
        mod = load()
        nodes = array("I")
        for i in range(dispatch.node_count()):
            nodes.extend(skip << 26 | ptr for skip, ptr in dispatch.node(i))
        sections = dispatch.sections()
        pieces: Dict[int, List[Tuple[int, int, int]]] = {
            s.index: dispatch.subpage(s.index) for s in sections if s.is_subpage}
        root_ptr, root_skip = dispatch.root
        self.impl = mod.QemuDispatch(dispatch.page_bits, dispatch.levels, root_ptr, root_skip,
                                     nodes.tobytes(),
                                     [(s.start, s.last, int(s.is_subpage)) for s in sections],
                                     pieces)
        self.page_bits = dispatch.page_bits
        self.sections = len(sections)
        self.subpages = len(pieces)

    def runner(self, mode: str, addrs: array, out: array) -> Callable[[], None]:
        """A call timing one pass over addrs: "mru" (walk + MRU, inlined),
        "walk" (no MRU), "call" (one call per address, with MRU)."""
        code = {"mru": 0, "walk": 1, "call": 2}[mode]
        impl = self.impl

        def run() -> None:
            impl.lookup_many(addrs, out, code)
        return run


def floor_runner(kind: str, bounds: array, secs: array, addrs: array,
                 out: array) -> Optional[Callable[[], None]]:
    """The compare-based floor `kind` ("bsearch", "avx2"), or None where the
    CPU cannot run it."""
    mod = load()
    code = {"bsearch": 0, "avx2": 1}[kind]
    if code == 1 and not mod.has_avx2():
        return None

    def run() -> None:
        mod.floor_many(bounds, secs, addrs, out, code)
    return run
