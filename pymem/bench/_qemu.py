"""The rows beside QEMU's own algorithm (benchmarks/qemu_ref): lookups, ldl_le and the RCU pair, and issue 12's goals.

Part of pymem.bench (see its docstring); a pure move out of the old bench.py.
"""
from __future__ import annotations

import importlib.util
import math
import random
import sys
from array import array
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, TextIO, Tuple

from ..address_space import AddressSpace, MemorySystem
from ._core import PAGE, Result, Timed, _row, time_interleaved
from ._workloads import _mix, _ram_range, _view, sample_addresses

# ------------------------------------------------- beside QEMU's algorithm

QEMU_MIXES = ("random", "sequential", "hot page", "sub-page")

QEMU_GOALS = {
    "subpage": 1.5, "local": 1.0, "random": 0.5, "floor": 1.2, "lookup": 1.2, "translate": 1.3,
    "ldl_le": 1.1, "rcu": 1.5, "space_translate": 2.0}

def qemu_reference() -> Any:
    """benchmarks/qemu_ref of the source tree (QEMU 7.2's lookup transcribed,
    and the floors), built on first use; None outside a source checkout or
    without a compiler (the QEMU column is then left out).

    Raises nothing: a reference that cannot be built is left out (said on stderr).
    """
    init = Path(__file__).resolve().parent.parent.parent / "benchmarks" / "qemu_ref" / "__init__.py"
    if not init.exists():
        return None
    spec = importlib.util.spec_from_file_location("pymem_bench_qemu_ref", init)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
        module.load()
    except Exception as e:   # no compiler, no headers: say so and go on
        print(f"QEMU column left out: {e}", file=sys.stderr)
        return None
    return module

def qemu_lookup_cases(ref: Any, asp: AddressSpace, n: int, repeats: int,
                      rng: random.Random) -> Tuple[List[Result], Dict[str, float]]:
    """Lookups in C beside QEMU's algorithm and the floors on one view, every
    implementation checked to answer pymem's section on every timed address.
    Returns (results, ratios by goal key).

    Raises:
        AssertionError: pymem and QEMU's algorithm answer different sections
            for an address (a pymem bug; the row would compare different work).
    """
    from .._bindings import ffi, lib
    from ..dispatch import c_address

    view = _view(asp)
    d = view.dispatch
    assert d is not None
    qemu = ref.QemuLookup(d)
    bounds, secs = ref.resolved_bounds(d)
    small = len(bounds) <= 256
    call_fn = c_address(ffi.addressof(lib, "pm_dispatch_lookup"))
    handle = c_address(d.handle)
    results: List[Result] = []
    ratios: Dict[str, float] = {}
    for mix in QEMU_MIXES:
        addr_list = _mix(d, view.ranges, mix, n, rng)
        if not addr_list:
            continue
        addrs = array("Q", addr_list)
        want = d.lookup_many(addrs)
        outs = {k: array("I", bytes(4 * len(addrs))) for k in
                ("pymem", "scalar", "mru", "walk", "call", "pcall", "bsearch", "avx2")}
        def pymem_many(a: "array[int]" = addrs, o: "array[int]" = outs["pymem"]) -> None:
            d.lookup_many(a, o)

        def pymem_scalar(a: "array[int]" = addrs, o: "array[int]" = outs["scalar"]) -> None:
            d.lookup_many(a, o, simd=False)

        def pymem_calls(a: "array[int]" = addrs, o: "array[int]" = outs["pcall"]) -> None:
            ref.load().call_many(call_fn, handle, a, o)
        batched: Dict[str, Timed] = {
            "pymem": pymem_many,
            "QEMU walk+MRU (loop)": qemu.runner("mru", addrs, outs["mru"]),
            "QEMU walk (loop)": qemu.runner("walk", addrs, outs["walk"]),
        }
        if small:
            batched["floor: binary search"] = ref.floor_runner(
                "bsearch", bounds, secs, addrs, outs["bsearch"])
            avx2 = ref.floor_runner("avx2", bounds, secs, addrs, outs["avx2"])
            if avx2 is not None and len(bounds) <= 64:
                batched["floor: AVX2 compare"] = avx2
            if d.batch_path == "avx2":
                # The path CPUs without AVX2 take, beside its own floor.
                batched["pymem, scalar path"] = pymem_scalar
        single: Dict[str, Timed] = {
            "pymem": pymem_calls,
            "QEMU lookup (a call each)": qemu.runner("call", addrs, outs["call"]),
        }
        for fn in list(batched.values()) + list(single.values()):
            fn()
        used = {"pymem", "mru", "walk", "call", "pcall"}
        used |= {"scalar"} if "pymem, scalar path" in batched else set()
        used |= {k for k in ("bsearch", "avx2") if f"floor: {'binary search' if k == 'bsearch' else 'AVX2 compare'}" in batched}
        for k, o in outs.items():
            if k in used and o != want:
                bad = next(i for i in range(len(want)) if o[i] != want[i])
                raise AssertionError(f"{asp.name}: {k} answers section {o[bad]} at "
                                     f"{addrs[bad]:#x}, pymem {want[bad]}")
        label = f"{asp.name} {mix}"
        tb = time_interleaved(batched, len(addrs), repeats)
        ts = time_interleaved(single, len(addrs), repeats)
        results += _row(f"C batched lookup, {label}", tb, "pymem")
        results += _row(f"C single lookup, {label}", ts, "pymem")
        best_qemu = min(tb["QEMU walk+MRU (loop)"][0], tb["QEMU walk (loop)"][0])
        ratios[f"batched {label}"] = tb["pymem"][0] / best_qemu
        ratios[f"single {label}"] = ts["pymem"][0] / ts["QEMU lookup (a call each)"][0]
        floors = [t[0] for k, t in tb.items() if k.startswith("floor")]
        if floors:
            ratios[f"floor {label}"] = tb["pymem"][0] / min(floors)
        if "pymem, scalar path" in tb:
            ratios[f"scalar floor {label}"] = (tb["pymem, scalar path"][0]
                                               / tb["floor: binary search"][0])
    return results, ratios

def qemu_access_cases(ref: Any, asp: AddressSpace, n: int, repeats: int,
                      rng: random.Random) -> Tuple[List[Result], Dict[str, float]]:
    """The access path in C beside QEMU's: pm_as_ldl_le against the model of
    address_space_ldl_le (benchmarks/qemu_ref), both called once per address
    from a C loop, on 4-byte loads inside one page of the largest RAM range
    (L1-resident: the path is measured, not the cache), every value checked
    equal; and the RCU read-side lock+unlock pair against QEMU's (its
    default build, and built with membarrier).  Returns (results, ratios).

    Raises:
        InvalidArgumentError: the space has no writable RAM to measure.
        AssertionError: pymem and the model of QEMU's ldl_le load different
            values (a pymem bug).
    """
    from ..dispatch import c_address

    d = _view(asp).dispatch
    assert d is not None
    qemu = ref.QemuLookup(d)
    qemu.attach_memory(d)
    ram = _ram_range(asp)
    page = min(ram.end - PAGE, (ram.addr + PAGE - 1) & ~(PAGE - 1)) if ram.size >= PAGE \
        else ram.addr
    span = min(PAGE, ram.end - page)
    asp.write(page, bytes(rng.randrange(256) for _ in range(span)))
    addrs = array("Q", [page + (rng.randrange(span - 3) & ~3) for _ in range(n)])
    got = {k: array("Q", bytes(8 * n)) for k in ("pymem", "qemu")}
    loads = {"pymem": ref.pymem_ldl_runner(c_address(asp._cas), addrs, got["pymem"]),
             "QEMU address_space_ldl_le (model)": qemu.ldl_runner(addrs, got["qemu"])}
    for fn in loads.values():
        fn()
    if got["pymem"] != got["qemu"] or (1 << 64) - 1 in got["pymem"]:
        bad = next((i for i in range(n) if got["pymem"][i] != got["qemu"][i]), 0)
        raise AssertionError(f"{asp.name}: ldl_le at {addrs[bad]:#x}: pymem "
                             f"{got['pymem'][bad]:#x}, QEMU model {got['qemu'][bad]:#x}")
    tl = time_interleaved(loads, n, repeats)
    pairs = {"pymem": ref.rcu_runner("pymem", n),
             "QEMU rcu_read_lock/unlock": ref.rcu_runner("qemu", n),
             "QEMU built with membarrier": ref.rcu_runner("qemu-membarrier", n)}
    tp = time_interleaved(pairs, n, repeats)
    results = (_row(f"C ldl_le RAM, one page ({asp.name})", tl, "pymem")
               + _row("C RCU read lock+unlock pair", tp, "pymem"))
    ratios = {"ldl_le": tl["pymem"][0] / tl["QEMU address_space_ldl_le (model)"][0],
              "rcu": tp["pymem"][0] / tp["QEMU rcu_read_lock/unlock"][0]}
    return results, ratios

def python_lookup_cases(ref: Any, asp: AddressSpace, n: int, repeats: int,
                        rng: random.Random) -> Tuple[List[Result], Dict[str, float]]:
    """Dispatch.lookup and translate beside builtins that only convert their
    arguments (and return a small int, or a plain tuple), net of the loop.

    Raises:
        AssertionError: Dispatch.lookup disagrees with lookup_many (a pymem bug).
    """
    d = _view(asp).dispatch
    assert d is not None
    mod = ref.load()
    addrs = sample_addresses(_view(asp).ranges, n, "random", rng)
    if [d.lookup(a) for a in addrs[:1000]] != list(d.lookup_many(array("Q", addrs[:1000]))):
        raise AssertionError("Dispatch.lookup disagrees with lookup_many")
    lookup, translate = d.lookup, d.translate

    def empty() -> None:
        for a in addrs:
            pass

    def loop1(f: Callable[[int], Any]) -> Timed:
        def run() -> None:
            for a in addrs:
                f(a)
        return run

    def loop2(f: Callable[[int, int], Any]) -> Timed:
        def run() -> None:
            for a in addrs:
                f(a, 4)
        return run
    timed = time_interleaved({
        "empty loop": empty, "lookup": loop1(lookup), "translate": loop2(translate),
        "convert": loop1(mod.convert_only_std), "convert fast": loop1(mod.convert_only),
        "tuple": loop2(mod.plain_tuple_std), "tuple fast": loop2(mod.plain_tuple),
        "space translate": loop2(asp.translate)}, n, repeats)
    base = timed["empty loop"][0]

    def net(operation: str, impl: str, k: str, pymem: Optional[str] = None) -> Result:
        # A difference of medians: on a noisy machine (or under a sanitizer)
        # a cheap row can come out at or below the empty loop.  Its ratio is
        # then infinite (no goal can be claimed met on it), never a division
        # by zero or a negative ratio that would read as met.
        ns, (lo, hi) = timed[k]
        ratio = None
        if pymem is not None:
            ratio = (timed[pymem][0] - base) / (ns - base) if ns > base else math.inf
        return Result(operation, impl, ns - base, (lo - base, hi - base), ratio)
    op_l, op_t = "Python Dispatch.lookup (net of loop)", "Python Dispatch.translate (net of loop)"
    results = [
        net(op_l, "pymem", "lookup"),
        net(op_l, "METH_O converting (PyLong_AsUnsignedLongLong)", "convert", "lookup"),
        net(op_l, "METH_O converting (pymem's digit read)", "convert fast", "lookup"),
        net(op_t, "pymem", "translate"),
        net(op_t, "builtin returning a tuple (PyLong_As...)", "tuple", "translate"),
        net(op_t, "builtin returning a tuple (digit read)", "tuple fast", "translate"),
        net("Python AddressSpace.translate (net of loop)", "pymem", "space translate"),
        net("Python AddressSpace.translate (net of loop)", "Dispatch.translate", "translate",
            "space translate")]
    ratios = {"lookup": results[1].ratio, "translate": results[4].ratio,
              "space_translate": results[7].ratio}
    return results, {k: v for k, v in ratios.items() if v is not None}

def qemu_goals(ratios: Dict[str, float], views: List[str]) -> List[Dict[str, Any]]:
    """Issue 12's dispatch goals from the measured ratios.

    Raises nothing.
    """
    goals = []

    def add(text: str, keys: List[str], limit: float) -> None:
        got = [ratios[k] for k in keys if k in ratios]
        if got:
            worst = max(got)
            goals.append({"goal": text, "ratio": round(worst, 3), "met": worst <= limit})
    add("single lookup in a sub-page <= 1.5x QEMU",
        [f"single {v} sub-page" for v in views], QEMU_GOALS["subpage"])
    add("batched sequential and hot-page <= 1.0x QEMU walk+MRU",
        [f"batched {v} {m}" for v in views for m in ("sequential", "hot page")],
        QEMU_GOALS["local"])
    add("batched random <= 0.5x QEMU", [f"batched {views[0]} random"], QEMU_GOALS["random"])
    add("batched on small views <= 1.2x the best compare floor",
        [f"floor {v} random" for v in views], QEMU_GOALS["floor"])
    add("batched, scalar path, small views <= 1.2x its binary-search floor",
        [f"scalar floor {v} random" for v in views], QEMU_GOALS["floor"])
    add("pm_as_ldl_le in C <= 1.1x QEMU's address_space_ldl_le", ["ldl_le"],
        QEMU_GOALS["ldl_le"])
    add("RCU read lock+unlock pair <= 1.5x QEMU's", ["rcu"], QEMU_GOALS["rcu"])
    add("Dispatch.lookup <= 1.2x a builtin converting the address", ["lookup"],
        QEMU_GOALS["lookup"])
    add("AddressSpace.translate <= 2x Dispatch.translate", ["space_translate"],
        QEMU_GOALS["space_translate"])
    add("Dispatch.translate <= 1.3x a builtin returning a tuple", ["translate"],
        QEMU_GOALS["translate"])
    return goals

def run_qemu_cases(system: MemorySystem, asp: AddressSpace, quick: bool,
                   progress: TextIO = sys.stderr) -> Tuple[List[Result], List[Dict[str, Any]]]:
    """The lookup rows beside QEMU's algorithm: the CPU's view and, where the
    machine has one, its I/O view (QEMU's sub-page-heavy case).

    Raises:
        InvalidArgumentError: the space has no writable RAM to measure.
        AssertionError: pymem and QEMU's algorithm disagree (a pymem bug).
    """
    ref = qemu_reference()
    if ref is None:
        return [], []
    rng = random.Random(3)
    n, py_n, repeats = (1 << 14, 5_000, 5) if quick else (1 << 16, 20_000, 15)
    spaces = [asp] + [a for a in system.address_spaces if a.name == "I/O"]
    results: List[Result] = []
    ratios: Dict[str, float] = {}
    for space in spaces:
        print(f"[qemu] lookups on {space.name!r}", file=progress, flush=True)
        r, q = qemu_lookup_cases(ref, space, n, repeats, rng)
        results += r
        ratios.update(q)
    print("[qemu] ldl_le and the RCU read side in C", file=progress, flush=True)
    r, q = qemu_access_cases(ref, asp, n, repeats, rng)
    results += r
    ratios.update(q)
    print("[qemu] Python-level lookups", file=progress, flush=True)
    r, q = python_lookup_cases(ref, asp, py_n, repeats, rng)
    results += r
    ratios.update(q)
    return results, qemu_goals(ratios, [s.name for s in spaces])
