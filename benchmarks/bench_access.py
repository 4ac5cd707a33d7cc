"""Access: pymem's RAM loads, stores, reads and writes beside their peers.

Each group measures one operation, 10,000 times over the same addresses, for
pymem and for what a Python user would otherwise use: a bytearray (slice,
struct.unpack_from / pack_into: the Python floor) and unicorn's mem_read /
mem_write (skipped when unicorn is not installed).  The goals: `ldl_le` at
most 1.5x struct.unpack_from and at least 5x faster than unicorn's mem_read;
`stl_le` at least 3x faster than unicorn's mem_write.  One more group times
an MMIO access that reaches a Python callback.
"""
from __future__ import annotations

import random
import struct

import pytest

from pymem import MemoryRegion, MemoryRegionOps, MemorySystem

try:
    import unicorn
except ImportError:
    unicorn = None

RAM_BASE = 0x100000
RAM_SIZE = 1 << 24
N = 10_000
PAGE = 4096


def pymem_space():
    system = MemorySystem()
    root = MemoryRegion.container("system", 1 << 32)
    root.add_subregion(RAM_BASE, MemoryRegion.ram("ram", RAM_SIZE))
    ops = MemoryRegionOps(lambda offset, size: offset, lambda offset, value, size: None)
    root.add_subregion(0x1000, MemoryRegion.io("dev", 0x100, ops))
    return system.address_space(root, "memory")


def unicorn_engine():
    uc = unicorn.Uc(unicorn.UC_ARCH_X86, unicorn.UC_MODE_64)
    uc.mem_map(RAM_BASE, RAM_SIZE)
    return uc


def offsets(align, seed=3):
    rng = random.Random(seed)
    return [rng.randrange(0, RAM_SIZE - PAGE) & ~(align - 1) for _ in range(N)]


@pytest.mark.parametrize("impl", ["pymem.ldl_le", "pymem.read", "struct.unpack_from",
                                  "bytearray slice", "unicorn.mem_read"])
def test_read_4_bytes(benchmark, impl):
    benchmark.group = f"4-byte RAM read x{N}"
    offs = offsets(4)
    addrs = [RAM_BASE + o for o in offs]
    buf = bytearray(RAM_SIZE)
    # Each loop calls its operation directly: no wrapper taxes one side.
    if impl == "pymem.ldl_le":
        ldl_le = pymem_space().ldl_le

        def run():
            for a in addrs:
                ldl_le(a)
    elif impl == "pymem.read":
        read = pymem_space().read

        def run():
            for a in addrs:
                read(a, 4)
    elif impl == "struct.unpack_from":
        unpack_from = struct.unpack_from

        def run():
            for o in offs:
                unpack_from("<I", buf, o)
    elif impl == "bytearray slice":
        def run():
            for o in offs:
                buf[o:o + 4]
    else:
        if unicorn is None:
            pytest.skip("unicorn is not installed")
        mem_read = unicorn_engine().mem_read

        def run():
            for a in addrs:
                mem_read(a, 4)
    benchmark(run)


@pytest.mark.parametrize("impl", ["pymem.stl_le", "pymem.write", "struct.pack_into",
                                  "bytearray slice", "unicorn.mem_write"])
def test_write_4_bytes(benchmark, impl):
    benchmark.group = f"4-byte RAM write x{N}"
    offs = offsets(4)
    addrs = [RAM_BASE + o for o in offs]
    buf = bytearray(RAM_SIZE)
    data = b"\x01\x02\x03\x04"
    if impl == "pymem.stl_le":
        stl_le = pymem_space().stl_le

        def run():
            for a in addrs:
                stl_le(a, 0x04030201)
    elif impl == "pymem.write":
        write = pymem_space().write

        def run():
            for a in addrs:
                write(a, data)
    elif impl == "struct.pack_into":
        pack_into = struct.pack_into

        def run():
            for o in offs:
                pack_into("<I", buf, o, 0x04030201)
    elif impl == "bytearray slice":
        def run():
            for o in offs:
                buf[o:o + 4] = data
    else:
        if unicorn is None:
            pytest.skip("unicorn is not installed")
        mem_write = unicorn_engine().mem_write

        def run():
            for a in addrs:
                mem_write(a, data)
    benchmark(run)


@pytest.mark.parametrize("is_write", [False, True], ids=["read", "write"])
@pytest.mark.parametrize("impl", ["pymem", "bytearray slice", "unicorn"])
def test_page(benchmark, impl, is_write):
    benchmark.group = f"4 KiB RAM {'write' if is_write else 'read'} x{N}"
    offs = offsets(PAGE)
    data = bytes(range(256)) * 16
    if impl == "pymem":
        asp = pymem_space()
        addrs = [RAM_BASE + o for o in offs]
        op = ((lambda a, w=asp.write: w(a, data)) if is_write
              else (lambda a, r=asp.read: r(a, PAGE)))
    elif impl == "unicorn":
        if unicorn is None:
            pytest.skip("unicorn is not installed")
        uc = unicorn_engine()
        addrs = [RAM_BASE + o for o in offs]
        op = ((lambda a, w=uc.mem_write: w(a, data)) if is_write
              else (lambda a, r=uc.mem_read: r(a, PAGE)))
    else:
        buf = bytearray(RAM_SIZE)
        addrs = offs

        def op(o):
            if is_write:
                buf[o:o + PAGE] = data
            else:
                return bytes(buf[o:o + PAGE])

    def run():
        for a in addrs:
            op(a)
    benchmark(run)


@pytest.mark.parametrize("impl", ["pymem.ldl_le", "pymem.read", "python call"])
def test_mmio_read(benchmark, impl):
    benchmark.group = f"MMIO 4-byte read to a Python callback x{N}"
    asp = pymem_space()
    addrs = [0x1000 + (o & 0xfc) for o in offsets(4)]
    if impl == "pymem.ldl_le":
        op = asp.ldl_le
    elif impl == "pymem.read":
        op = (lambda a, r=asp.read: r(a, 4))
    else:
        # The floor: calling the device's callback directly.
        def callback(offset, size):
            return offset
        op = (lambda a: callback(a - 0x1000, 4))

    def run():
        for a in addrs:
            op(a)
    benchmark(run)
