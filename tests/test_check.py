"""`system.check()`: problems QEMU accepts silently, each found with its
region's path and a severity."""
from __future__ import annotations

from pymem import (IOMMUTLBEntry, MemoryRegion, MemoryRegionOps, MemorySystem, machines)
from pymem.check import Finding


def ops(**kw):
    return MemoryRegionOps(lambda offset, size: 0, lambda offset, value, size: None, **kw)


def findings(root, page_bits=12):
    system = MemorySystem(page_bits)
    system.address_space(root, "mem")
    return system.check()


def test_a_clean_map_has_no_findings():
    root = MemoryRegion.container("root", 1 << 32)
    root.add_subregion(0, MemoryRegion.ram("ram", 0x10000))
    root.add_subregion(0x10000, MemoryRegion.io("uart", 0x1000, ops()))
    assert findings(root) == []


def test_equal_priority_overlap_names_both_and_who_wins():
    root = MemoryRegion.container("root", 1 << 32)
    root.add_subregion(0, MemoryRegion.ram("ram", 0x10000))
    root.add_subregion(0x8000, MemoryRegion.io("dev", 0x1000, ops()))
    (f,) = findings(root)
    assert f == Finding("warning", "root/ram",
                        "overlaps 'dev' at 0x8000..0x8fff in 'root' at equal priority 0: "
                        "'dev', added later, wins (QEMU's result depends on insertion order)")


def test_overlap_at_different_priorities_is_fine():
    root = MemoryRegion.container("root", 1 << 32)
    root.add_subregion(0, MemoryRegion.ram("ram", 0x10000))
    root.add_subregion(0x8000, MemoryRegion.io("dev", 0x1000, ops()), priority=1)
    assert findings(root) == []


def test_alias_past_its_target_end_is_an_error():
    ram = MemoryRegion.ram("ram", 0x2000)
    root = MemoryRegion.container("root", 1 << 32)
    root.add_subregion(0, ram)
    root.add_subregion(0x10000, MemoryRegion.alias("mirror", ram, 0x1000, 0x2000))
    (f,) = findings(root)
    assert f.severity == "error" and f.path == "root/mirror"
    assert "runs past the end of its target 'ram' (size 0x2000)" in f.message
    assert "the last 0x1000 bytes" in f.message


def test_fully_shadowed_region_is_never_visible():
    root = MemoryRegion.container("root", 1 << 32)
    root.add_subregion(0x1000, MemoryRegion.io("hidden", 0x100, ops()))
    root.add_subregion(0, MemoryRegion.ram("ram", 0x10000), priority=1)
    (f,) = findings(root)
    assert f.path == "root/hidden" and f.message.startswith("never visible in any address space")


def test_region_outside_its_container_is_an_error_and_partly_outside_a_warning():
    bus = MemoryRegion.container("bus", 0x1000)
    bus.add_subregion(0x2000, MemoryRegion.io("gone", 0x100, ops()))
    bus.add_subregion(0xf00, MemoryRegion.io("cut", 0x200, ops()))
    root = MemoryRegion.container("root", 1 << 32)
    root.add_subregion(0, bus)
    got = {f.path: f for f in findings(root)}
    assert set(got) == {"root/bus/gone", "root/bus/cut"}
    assert got["root/bus/gone"].severity == "error"
    assert "entirely outside its container 'bus'" in got["root/bus/gone"].message
    assert got["root/bus/cut"].severity == "warning"
    assert "runs past the end of its container 'bus'" in got["root/bus/cut"].message


def test_zero_size_region_is_reported():
    root = MemoryRegion.container("root", 1 << 32)
    root.add_subregion(0x100, MemoryRegion.io("empty", 0, ops()))
    (f,) = findings(root)
    assert f.path == "root/empty" and f.message == "size 0: it can never be seen"


def test_mmio_region_smaller_than_any_access_its_ops_accept():
    root = MemoryRegion.container("root", 1 << 32)
    root.add_subregion(0x100, MemoryRegion.io("tiny", 2, ops(valid_min=4, valid_max=4)))
    (f,) = findings(root)
    assert f.severity == "error" and f.path == "root/tiny"
    assert "accept only 4..4-byte accesses" in f.message


def test_iommu_without_a_target_space():
    root = MemoryRegion.container("root", 1 << 32)
    root.add_subregion(0, MemoryRegion.iommu(
        "iommu", 0x1000, lambda addr, flag: IOMMUTLBEntry(None, addr, addr, 0xfff, 3)))
    (f,) = findings(root)
    assert f.path == "root/iommu" and f.message.startswith("IOMMU without a target")


def test_ram_not_page_aligned_is_reported_once_per_region():
    root = MemoryRegion.container("root", 1 << 32)
    root.add_subregion(0x800, MemoryRegion.ram("odd", 0x2000))
    (f,) = findings(root)
    assert f.path == "root/odd"
    assert "RAM shown at 0x800..0x27ff, not aligned to the 0x1000-byte page" in f.message


def test_disabled_regions_are_not_part_of_the_map_checked():
    ram = MemoryRegion.ram("ram", 0x1000)
    bad = MemoryRegion.alias("mirror", ram, 0x800, 0x1000)
    root = MemoryRegion.container("root", 1 << 32)
    root.add_subregion(0, ram)
    root.add_subregion(0x10000, bad)
    bad.set_enabled(False)
    assert findings(root) == []


def test_q35_option_rom_is_shadowed_by_the_pam_aliases():
    # QEMU's `info mtree -f` of q35 shows pc.ram (through PAM) at 0xc0000-0xdffff,
    # never pc.rom: pc.rom sits in `pci` (prio -1 in system) under the PAM aliases.
    assert [str(f) for f in machines.load("q35").check()] == [
        "warning: system/pci/pc.rom: never visible in any address space: fully shadowed "
        "by higher-priority (or later) regions, or outside every window that shows it"]
