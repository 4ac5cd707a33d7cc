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


    def attach_memory(self, dispatch: Any) -> None:
        """Give the model's plain sections the memory pymem's have (the same
        host bytes, flags and offsets), for `ldl_runner`."""
        from pymem._native import ffi, lib

        r = ffi.new("pm_range *")
        entries = []
        used: Dict[int, int] = {}
        for i in range(self.sections):
            lib.pm_dispatch_section(dispatch.handle, i, r)
            if r.flags & 1:   # PM_SECTION_SUBPAGE
                continue
            host = int(ffi.cast("uintptr_t", r.host))
            reach = min(r.offset + (r.last - r.start) + 1, (1 << 64) - 1)
            entries.append((i, r.offset, host, r.flags, reach))
            if host:
                used[host] = max(used.get(host, 0), entries[-1][4])
        # A RAMBlock is as long as its region: the longest reach of any
        # section over the same memory.
        self.impl.attach_memory([(i, off, host, flags, used.get(host, n))
                                 for i, off, host, flags, n in entries])

    def ldl_runner(self, addrs: array, out: array) -> Callable[[], None]:
        """A call timing QEMU's address_space_ldl_le on each of addrs (out: 'Q')."""
        impl = self.impl

        def run() -> None:
            impl.ldl_many(addrs, out)
        return run


def pymem_ldl_runner(as_handle: int, addrs: array, out: array) -> Callable[[], None]:
    """pymem's pm_as_ldl_le on each of addrs, one C call each through its address."""
    from pymem._native import ffi, lib

    mod = load()
    fn = int(ffi.cast("uintptr_t", ffi.addressof(lib, "pm_as_ldl_le")))

    def run() -> None:
        mod.call_ldl_many(fn, as_handle, addrs, out)
    return run


def rcu_runner(kind: str, n: int) -> Callable[[], None]:
    """n RCU read-side lock+unlock pairs: "pymem" (pm_rcu_read_lock/unlock,
    a call each), "qemu" (QEMU's default build) or "qemu-membarrier"."""
    mod = load()
    if kind == "pymem":
        from pymem._native import ffi, lib
        lock = int(ffi.cast("uintptr_t", ffi.addressof(lib, "pm_rcu_read_lock")))
        unlock = int(ffi.cast("uintptr_t", ffi.addressof(lib, "pm_rcu_read_unlock")))

        def run() -> None:
            mod.call_rcu_pairs(lock, unlock, n)
        return run
    mode = {"qemu": 0, "qemu-membarrier": 1}[kind]

    def run_qemu() -> None:
        mod.rcu_pairs(n, mode)
    return run_qemu


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
