"""The lookup and access rows of `pymem bench`: pymem beside struct, bytearray, bisect, numpy, intervaltree and unicorn.

Part of pymem.bench (see its docstring); a pure move out of the old bench.py.
"""
from __future__ import annotations

import bisect
import random
import struct
from array import array
from typing import Any, List

from ..address_space import AddressSpace
from ._core import Case, PAGE, WINDOW, _loop, _loop_after, _loop_between, _loop_then
from ._workloads import BisectMap, _mmio_range, _ram_range, _view, sample_addresses

def lookup_cases(asp: AddressSpace, rng: random.Random, n: int, n_batch: int) -> List[Case]:
    """The lookup, batched lookup and translate rows of `asp`'s view, each
    beside bisect, intervaltree and numpy.searchsorted where installed: `n`
    addresses per single-lookup case, `n_batch` for the batched one.

    `n` and `n_batch` are how many addresses each single and batched row looks up.

    Raises nothing.
    """
    view = _view(asp)
    ranges = view.ranges
    dispatch = view.dispatch
    assert dispatch is not None   # only a destroyed view has none
    peer = BisectMap(ranges)
    tree = None
    try:
        import intervaltree  # type: ignore[import-not-found,unused-ignore]  # the peers extra
    except ImportError:
        pass
    else:
        tree = intervaltree.IntervalTree.from_tuples(
            (r.addr, r.end, i) for i, r in enumerate(ranges))

    cases = []
    for pattern in ("random", "sequential", "hot page"):
        addrs = sample_addresses(ranges, n, pattern.split()[0], rng)
        peers = {"bisect (pure Python)": _loop(peer.lookup, addrs)}
        if tree is not None:
            peers["intervaltree"] = _loop(tree.at, addrs)
        cases.append(Case(f"lookup ({pattern})", n, _loop(dispatch.lookup, addrs), peers))

    batch = array("Q", sample_addresses(ranges, n_batch, "random", rng))
    out = array("I", bytes(4 * n_batch))
    peers = {}
    try:
        import numpy as np
    except ImportError:
        pass
    else:
        starts = np.array(peer.starts, dtype=np.uint64)
        np_batch = np.frombuffer(batch, dtype=np.uint64)
        peers["numpy.searchsorted"] = lambda: np.searchsorted(starts, np_batch, side="right")
    cases.append(Case("batched lookup", n_batch, lambda: dispatch.lookup_many(batch, out), peers))

    addrs = sample_addresses(ranges, n, "random", rng)
    cases.append(Case("translate", n, _loop_then(dispatch.translate, addrs, 4),
                      {"bisect (pure Python)": _loop_then(peer.translate, addrs, 4)}))
    return cases

def _unicorn(base: int, size: int) -> Any:
    try:
        import unicorn
    except ImportError:
        return None
    uc = unicorn.Uc(unicorn.UC_ARCH_X86, unicorn.UC_MODE_64)
    uc.mem_map(base, size)
    return uc

def access_cases(asp: AddressSpace, rng: random.Random, n: int) -> List[Case]:
    """The RAM load/store/read/write rows (beside struct, bytearray slices and
    unicorn's mem_read/mem_write) and the MMIO load row, `n` accesses each,
    in the largest RAM range of `asp`.

    Raises:
        InvalidArgumentError: the space has no writable RAM to measure.
    """
    ram = _ram_range(asp)
    base = ram.addr
    window = min(WINDOW, ram.size) & ~(PAGE - 1)
    buf = bytearray(window)
    uc = _unicorn(base, window)
    offs4 = [rng.randrange(0, window - 4) & ~3 for _ in range(n)]
    addrs4 = [base + o for o in offs4]
    offs_page = [rng.randrange(0, window // PAGE) * PAGE for _ in range(max(1, n // 10))]
    addrs_page = [base + o for o in offs_page]
    page = bytes(PAGE)
    word = struct.Struct("<I")
    value = 0x12345678
    value_bytes = value.to_bytes(4, "little")

    cases = []
    peers = {"struct.unpack_from": _loop_after(word.unpack_from, buf, offs4)}
    if uc is not None:
        peers["unicorn mem_read"] = _loop_then(uc.mem_read, addrs4, 4)
    cases.append(Case("ldl_le RAM", n, _loop(asp.ldl_le, addrs4), peers))

    peers = {"struct.pack_into": _loop_between(word.pack_into, buf, offs4, value)}
    if uc is not None:
        peers["unicorn mem_write"] = _loop_then(uc.mem_write, addrs4, value_bytes)
    cases.append(Case("stl_le RAM", n, _loop_then(asp.stl_le, addrs4, value), peers))

    def slice_read() -> None:
        for o in offs_page:
            buf[o:o + PAGE]   # the copy is the work
    peers = {"bytearray slice": slice_read}
    if uc is not None:
        peers["unicorn mem_read"] = _loop_then(uc.mem_read, addrs_page, PAGE)
    cases.append(Case("read 4 KiB RAM", len(offs_page), _loop_then(asp.read, addrs_page, PAGE),
                      peers))

    def slice_write() -> None:
        for o in offs_page:
            buf[o:o + PAGE] = page
    peers = {"bytearray slice": slice_write}
    if uc is not None:
        peers["unicorn mem_write"] = _loop_then(uc.mem_write, addrs_page, page)
    cases.append(Case("write 4 KiB RAM", len(offs_page), _loop_then(asp.write, addrs_page, page),
                      peers))

    mmio = _mmio_range(asp)
    if mmio is not None:
        addrs = [mmio.addr + (rng.randrange(mmio.size - 3) & ~3) for _ in range(n // 4)]
        peer = BisectMap(_view(asp).ranges)
        # Any: the peer calls ops.read unchecked, as a user's own bus would.
        regions: List[Any] = [r.region for r in _view(asp).ranges]

        def python_bus(addr: int) -> int:
            i, offset, _ = peer.translate(addr)
            return int(regions[i].ops.read(offset, 4))
        cases.append(Case(f"ldl_le MMIO ({mmio.region.name})", len(addrs),
                          _loop(asp.ldl_le, addrs),
                          {"bisect + ops.read (pure Python)": _loop(python_bus, addrs)}))
    return cases
