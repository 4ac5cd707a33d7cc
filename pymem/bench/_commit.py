"""The commit rows of `pymem bench`: a full commit beside its C part, small commits, region creation, scaling.

Part of pymem.bench (see its docstring); a pure move out of the old bench.py.
"""
from __future__ import annotations

import sys
import time
from typing import Dict, List, TextIO, Tuple

from ..address_space import AddressSpace, MemorySystem
from ..region import MemoryRegion
from ._core import Case, PAGE, Result, Timed, run_cases
from ._workloads import _DEVICE_OPS, synthetic_system

def commit_case(system: MemorySystem, asp: AddressSpace, name: str = "full commit",
                with_c: bool = False) -> Case:
    """A full commit: every view re-rendered and its dispatch rebuilt.  With
    `with_c`, its peer is the C part alone: `pm_render_dispatch` of each
    view's root (and freeing what it made), called straight through cffi.

    Raises nothing.
    """
    region = asp.root.subregions[0] if asp.root.subregions else asp.root

    def run() -> None:
        # Disable and re-enable: a change, so the outermost transaction commits
        # and rebuilds every FlatView, as QEMU would.
        with system.transaction():
            region.set_enabled(not region.enabled)
            region.set_enabled(not region.enabled)
    peers: Dict[str, Timed] = {}
    if with_c:
        from .._bindings import ffi, lib
        from ..region import MAX_ALIAS_VISITS

        nodes = [view.root._node for view in system.flatviews() if view.root is not None]
        out = (ffi.new("pm_range **"), ffi.new("size_t *"), ffi.new("size_t *"),
               ffi.new("pm_dispatch **"))

        def c_part() -> None:
            for node in nodes:
                lib.pm_render_dispatch(node, MAX_ALIAS_VISITS, system.page_bits, ffi.NULL, *out)
                lib.pm_ranges_free(out[0][0])
                lib.pm_dispatch_free(out[3][0])
        peers["C render+dispatch of the same views"] = c_part
    return Case(name, 1, run, peers)

def small_commit_cases() -> List[Case]:
    """Issue 12 goal 7's small cases: one `set_alias_offset` commit on a
    7-range machine with no listener, and a region made and added.

    Raises nothing.
    """
    system = MemorySystem()
    root = MemoryRegion.container("system", 1 << 32)
    banks = MemoryRegion.ram("banks", 2 * PAGE)
    window = MemoryRegion.alias("window", banks, 0, PAGE)
    with system.transaction():
        root.add_subregion(0, MemoryRegion.rom("rom", 0x10000))
        for i, name in enumerate(("syscon", "uart", "timer", "dma")):
            root.add_subregion(0x10000000 + i * PAGE, MemoryRegion.io(name, PAGE, _DEVICE_OPS))
        root.add_subregion(0x20000000, window)
        root.add_subregion(0x80000000, MemoryRegion.ram("ram", 1 << 20))
    system.address_space(root, "cpu")
    calls = 100

    def switch() -> None:
        for _ in range(calls):
            window.set_alias_offset(PAGE)
            window.set_alias_offset(0)

    def regions() -> None:
        bus = MemoryRegion.container("bus", 1 << 20)
        for i in range(calls):
            bus.add_subregion(i * PAGE, MemoryRegion.io("dev", PAGE, _DEVICE_OPS))
    return [Case("small commit (set_alias_offset, 7 ranges)", 2 * calls, switch, keep=system),
            Case("region + add_subregion", calls, regions)]

def run_scaling(sizes: Tuple[int, ...], repeats: int, progress: TextIO = sys.stderr) -> List[Result]:
    """A full commit of synthetic trees of each size, for the growth rate.
    One tree at a time, so the big ones do not weigh on other measurements.

    `sizes` are region counts of the synthetic machines.

    Raises nothing.
    """
    results = []
    for n in sizes:
        print(f"building a {n:,}-region tree", file=progress, flush=True)
        system = synthetic_system(n)
        case = commit_case(system, system.address_spaces[0], f"full commit, {n:,} regions")
        # The first commits of a big tree run while malloc adapts to its
        # arrays (fresh mmaps, page faults); time the steady state.
        for _ in range(3):
            case.pymem()
        results += run_cases([case], repeats, progress)
    return results
