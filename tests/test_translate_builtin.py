"""AddressSpace.translate is a builtin that answers a region's section in one
C call; everything else (IOMMUs, unassigned space, a destroyed space,
keywords, bad arguments) goes to the Python method.  Both must answer, and
refuse, exactly alike."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from pymem import IOMMUAccessFlags, IOMMUTLBEntry, MemoryRegion, MemorySystem, machines
from pymem.access import AccessMixin
from pymem.errors import ArgumentTypeError, InvalidArgumentError, TopologyError
from pymem.qemu.mtree import load_mtree

MORE = Path(__file__).parent / "fixtures" / "qemu-more"


def spaces():
    q35 = machines.load("q35")
    case = MORE / "x86_64-q35-intel-iommu"
    iommu = load_mtree((case / "mtree-D.txt").read_text(),
                       json.loads((case / "hints.json").read_text()))
    return [a for system in (q35, iommu) for a in system.address_spaces if a.flatview.ranges]


def probes(asp, rng):
    out = [0, (1 << 64) - 1]
    for r in asp.flatview.ranges:
        out += [x for x in (r.addr - 1, r.addr, r.addr + r.size // 2, r.end - 1, r.end)
                if 0 <= x < 1 << 64]
        out += [r.addr + rng.randrange(r.size) for _ in range(3)]
    return out


def test_the_builtin_answers_what_the_method_answers_everywhere():
    rng = random.Random(12)
    checked = 0
    for asp in spaces():
        assert type(asp.translate).__name__ == "builtin_function_or_method"
        for addr in probes(asp, rng):
            for length in (0, 1, 4, 0x1000, 1 << 40):
                if addr + max(length, 1) > 1 << 64:
                    continue
                assert asp.translate(addr, length) == AccessMixin.translate(asp, addr, length), \
                    (asp.name, hex(addr), length)
                checked += 1
        assert asp.translate(0x1000) == AccessMixin.translate(asp, 0x1000)
    assert checked > 1000


def iommu_space():
    system = MemorySystem()
    dram = MemoryRegion.ram("dram", 0x10000)
    droot = MemoryRegion.container("dma-root", 1 << 32)
    droot.add_subregion(0, dram)
    dma = system.address_space(droot, "dma")

    def translate(addr, flag):
        perm = IOMMUAccessFlags.RO if addr < 0x1000 else IOMMUAccessFlags.RW
        return IOMMUTLBEntry(dma, addr & ~0xfff, (addr & ~0xfff) + 0x1000, 0xfff, perm)
    root = MemoryRegion.container("bus", 1 << 32)
    root.add_subregion(0x100000, MemoryRegion.iommu("iommu", 0x8000, translate, dma))
    return dram, system.address_space(root, "bus")


def test_an_iommu_is_translated_by_the_method():
    dram, bus = iommu_space()
    assert bus.translate(0x101010, 4) == (dram, 0x2010, 4)
    # A write the IOMMU refuses: no region.
    assert bus.translate(0x100010, 4, True) == AccessMixin.translate(bus, 0x100010, 4, True)
    assert bus.translate(0x100010, 4, True)[0] is None
    assert bus.translate(0x100010, 4, is_write=False)[0] is dram


def test_bad_arguments_raise_as_the_method_does():
    asp = machines.load("q35").address_spaces[0]
    for args, error in (((-1,), InvalidArgumentError), ((1 << 64,), InvalidArgumentError),
                        (((1 << 64) - 1, 2), InvalidArgumentError), ((0, -1), InvalidArgumentError),
                        ((True,), ArgumentTypeError), (("0",), ArgumentTypeError),
                        ((0, True), InvalidArgumentError), ((0, 4.0), InvalidArgumentError)):
        with pytest.raises(error):
            asp.translate(*args)
        with pytest.raises(error):
            AccessMixin.translate(asp, *args)
    with pytest.raises(TypeError):
        asp.translate()
    assert asp.translate(addr=0x1000, length=4) == AccessMixin.translate(asp, 0x1000, 4)


def test_a_builtin_taken_before_the_space_is_destroyed_raises_after():
    system = MemorySystem()
    root = MemoryRegion.container("root", 1 << 32)
    ram = MemoryRegion.ram("ram", 0x1000)
    root.add_subregion(0, ram)
    asp = system.address_space(root, "memory")
    translate = asp.translate
    assert translate(0x10, 4) == (ram, 0x10, 4)
    asp.destroy()
    with pytest.raises(TopologyError):
        translate(0x10, 4)
