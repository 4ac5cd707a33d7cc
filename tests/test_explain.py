"""`asp.explain(addr)`: which region answers an address, the way there, and
why every other region covering it lost."""
from __future__ import annotations

import re

import pytest

from pymem import (ArgumentTypeError, IOMMUTLBEntry, InvalidArgumentError, MemoryRegion,
                   MemoryRegionOps, MemorySystem, machines)
from pymem.explain import Explanation
from pymem.qemu import load_mtree

from .qemu_fixtures import CASES, hints, read


def ops():
    return MemoryRegionOps(lambda offset, size: 0, lambda offset, value, size: None)


def space(root, name="mem"):
    system = MemorySystem()
    return system.address_space(root, name)


def reasons(expl: Explanation) -> dict:
    return {c.region.name: c.reason for c in expl.losers}


# ------------------------------------------------------------- the bundled q35


@pytest.fixture(scope="module")
def q35():
    system = machines.load("q35")
    return system, {asp.name: asp for asp in system.address_spaces}


def qemu_flat_ranges(view_number: int):
    """(start, end, name) of each range of FlatView #n in QEMU's own q35 `info mtree -f`."""
    text = machines.read("q35", "flat.txt")
    block = text.split(f"FlatView #{view_number}\n")[1].split("\nFlatView #")[0]
    found = re.findall(r"^  ([0-9a-f]{16})-([0-9a-f]{16}) \(prio -?\d+, [a-z/]+\): (\S+)",
                       block, re.M)
    return [(int(s, 16), int(e, 16), name) for s, e, name in found]


@pytest.mark.parametrize("view_number, space_name", [(0, "I/O"), (1, "memory")])
def test_every_range_of_qemus_flat_view_is_explained_as_answered_by_its_region(
        q35, view_number, space_name):
    _, spaces = q35
    for start, end, name in qemu_flat_ranges(view_number):
        for addr in {start, end, (start + end) // 2}:
            expl = spaces[space_name].explain(addr)
            assert expl.region is not None and expl.region.name == name, hex(addr)
            # The tree walk's winner is the region the view and dispatch use.
            assert expl.chain[-1].region is expl.region
            assert expl.notes == () or all("disagree" not in n for n in expl.notes)


def test_q35_smram_window_is_shadowed_by_ram_because_pci_has_nothing_there(q35):
    # QEMU's flat view: 0xa0000 is pc.ram, although the smram-region alias
    # (prio 1) covers it: that alias shows `pci`, which has nothing at 0xa0000.
    _, spaces = q35
    expl = spaces["memory"].explain(0xa0000)
    assert expl.region.name == "pc.ram" and expl.offset_in_region == 0xa0000
    assert [link.region.name for link in expl.chain] == ["system", "ram-below-4g", "pc.ram"]
    assert reasons(expl)["smram-region"] == "nothing in its target 'pci' answers here"


def test_q35_smm_space_sees_smram_low_over_the_normal_map(q35):
    # cpu-smm-0's root holds `smram` (prio 1) over an alias of `system`
    # (prio 0): in SMM, 0xa0000 is RAM through smram-low (QEMU's FlatView #2
    # shows pc.ram there), whatever the normal map has.
    _, spaces = q35
    expl = spaces["cpu-smm-0"].explain(0xa0000)
    assert expl.region.name == "pc.ram" and expl.offset_in_region == 0xa0000
    assert [link.region.name for link in expl.chain] == ["memory", "smram", "smram",
                                                         "smram-low", "pc.ram"]
    assert ("'pc.ram' (ram) via alias 'ram-below-4g': lower priority: 'memory' has 0, "
            "'smram' has 1 in 'memory'") in str(expl)


def test_q35_bus_master_space_is_empty_because_its_alias_is_disabled(q35):
    # QEMU: `mch`'s FlatView is "No rendered FlatView" until the guest sets
    # bus mastering on.
    _, spaces = q35
    expl = spaces["mch"].explain(0x1000)
    assert expl.unassigned and expl.walk[-1].ptr == (1 << 26) - 1
    assert reasons(expl) == {"bus master": "disabled"}


def test_q35_option_rom_area_goes_to_the_highest_priority_alias(q35):
    _, spaces = q35
    expl = spaces["memory"].explain(0xc1000)
    assert expl.region.name == "pc.ram"
    assert [link.region.name for link in expl.chain] == ["system", "kvmvapic-rom", "pc.ram"]
    text = str(expl)
    assert ("'pc.ram' (ram) via alias 'pam-rom': lower priority: 'pam-rom' has 1, "
            "'kvmvapic-rom' has 1000 in 'system'") in text
    assert "'pam-ram' (alias): disabled" in text
    assert "'pc.bios' (rom) via alias 'isa-bios': outside the window of alias 'isa-bios'" in text


def test_q35_pci_hole_is_unassigned_and_says_the_pci_container_has_nothing_there(q35):
    _, spaces = q35
    expl = spaces["memory"].explain(0xc0000000)
    assert expl.unassigned and expl.flat_range is None and expl.section == 0
    assert reasons(expl) == {"pci": "nothing in it answers here"}
    assert "answered by: nothing (unassigned)" in str(expl)
    assert expl.walk[-1].ptr == (1 << 26) - 1 and "ptr=NIL" in str(expl)


def test_q35_read_only_pam_range_says_writes_are_dropped(q35):
    _, spaces = q35
    expl = spaces["memory"].explain(0xe0000)
    assert expl.flat_range.readonly
    assert "read-only here: writes are dropped" in expl.notes


def test_q35_io_port_under_a_terminating_parent_names_the_parent_as_loser(q35):
    _, spaces = q35
    expl = spaces["I/O"].explain(0x71)
    assert expl.region.name == "rtc" and expl.offset_in_region == 1
    assert reasons(expl)["io"].startswith("'rtc' inside it takes the address")
    # A 1-byte port is a piece of a sub-page.
    assert expl.piece == (0x71, 0x71) and expl.page_section != expl.section


# ------------------------------------------------------- each reason on its own


def test_lower_priority_region_loses():
    root = MemoryRegion.container("root", 0x10000)
    root.add_subregion(0, MemoryRegion.ram("low", 0x2000), priority=0)
    root.add_subregion(0x1000, MemoryRegion.io("high", 0x1000, ops()), priority=2)
    expl = space(root).explain(0x1800)
    assert expl.region.name == "high" and expl.offset_in_region == 0x800
    assert reasons(expl) == {"low": "lower priority: 'low' has 0, 'high' has 2 in 'root'"}


def test_equal_priority_region_added_earlier_loses():
    root = MemoryRegion.container("root", 0x10000)
    root.add_subregion(0, MemoryRegion.ram("first", 0x2000))
    root.add_subregion(0x1000, MemoryRegion.ram("second", 0x2000))
    expl = space(root).explain(0x1800)
    assert expl.region.name == "second"
    assert reasons(expl) == {"first": "added earlier than 'second' at equal priority 0 in "
                                      "'root' (the later one wins)"}


def test_disabled_region_loses_as_disabled():
    root = MemoryRegion.container("root", 0x10000)
    root.add_subregion(0, MemoryRegion.ram("ram", 0x2000))
    dev = MemoryRegion.io("dev", 0x1000, ops())
    root.add_subregion(0x1000, dev, priority=5)
    dev.set_enabled(False)
    expl = space(root).explain(0x1000)
    assert expl.region.name == "ram" and reasons(expl) == {"dev": "disabled"}


def test_region_outside_an_alias_window_is_named_with_the_alias():
    big = MemoryRegion.ram("big", 0x4000)
    root = MemoryRegion.container("root", 0x10000)
    root.add_subregion(0x1000, MemoryRegion.alias("window", big, 0, 0x1000))
    expl = space(root).explain(0x2800)
    assert expl.unassigned
    assert reasons(expl) == {"big": "outside the window of alias 'window'"}


def test_subregion_past_its_container_end_is_outside_the_container():
    inner = MemoryRegion.container("inner", 0x1000)
    inner.add_subregion(0x800, MemoryRegion.ram("spill", 0x1000))
    root = MemoryRegion.container("root", 0x10000)
    root.add_subregion(0, inner)
    expl = space(root).explain(0x1200)
    assert expl.unassigned
    assert reasons(expl) == {"spill": "outside the window of container 'inner'"}


def test_alias_past_the_end_of_its_target_says_so():
    small = MemoryRegion.ram("small", 0x1000)
    root = MemoryRegion.container("root", 0x10000)
    root.add_subregion(0, MemoryRegion.alias("long", small, 0, 0x3000))
    expl = space(root).explain(0x2000)
    assert expl.unassigned
    assert reasons(expl) == {"long": "its window runs past the end of its target 'small' "
                                     "(size 0x1000)"}


def test_rom_device_in_mmio_mode_is_noted():
    rd = MemoryRegion.rom_device("flash", 0x1000, ops())
    root = MemoryRegion.container("root", 0x10000)
    root.add_subregion(0, rd)
    rd.set_romd(False)
    expl = space(root).explain(0x10)
    assert expl.region is rd
    assert any("romd off" in note for note in expl.notes)


def test_dispatch_walk_ends_at_the_page_section_and_chain_names_alias_offsets():
    ram = MemoryRegion.ram("ram", 0x10000)
    root = MemoryRegion.container("root", 1 << 32)
    root.add_subregion(0x40000000, MemoryRegion.alias("hi", ram, 0x8000, 0x8000))
    expl = space(root).explain(0x40001234)
    assert expl.offset_in_region == 0x9234
    assert expl.walk[-1].skip == 0 and expl.walk[-1].ptr == expl.section
    assert expl.piece is None
    assert "alias 'hi' @0x40000000 (+0x8000 into 'ram')" in str(expl)


def test_flat_view_explains_without_a_space():
    root = MemoryRegion.container("root", 0x10000)
    root.add_subregion(0x100, MemoryRegion.io("uart", 8, ops()))
    asp = space(root)
    expl = asp.flatview.explain(0x104)
    assert expl.space is None and expl.region.name == "uart"
    assert expl.piece == (0x100, 0x107)
    assert str(expl).startswith("0x104 in flat view (root 'root')")


def test_iommu_shows_the_translation_and_the_target_answer():
    system = MemorySystem()
    droot = MemoryRegion.container("dram-root", 1 << 32)
    droot.add_subregion(0, MemoryRegion.ram("dram", 0x10000))
    dma = system.address_space(droot, "dma")

    def translate(addr, flag):
        return IOMMUTLBEntry(dma, addr & ~0xfff, (addr & ~0xfff) + 0x1000, 0xfff, 3)

    root = MemoryRegion.container("bus", 1 << 32)
    root.add_subregion(0x100000, MemoryRegion.iommu("iommu", 0x8000, translate, dma))
    bus = system.address_space(root, "bus")
    expl = bus.explain(0x100010)
    assert expl.region.name == "iommu"
    assert expl.iommu.target_space == "dma" and expl.iommu.target_addr == 0x1010
    assert expl.iommu.then.region.name == "dram" and expl.iommu.then.offset_in_region == 0x1010
    assert "translates offset 0x10 to 0x1010 in 'dma'" in str(expl)


def test_iommu_refusing_a_read_is_explained():
    system = MemorySystem()
    root = MemoryRegion.container("bus", 1 << 32)
    root.add_subregion(0, MemoryRegion.iommu(
        "iommu", 0x8000, lambda addr, flag: IOMMUTLBEntry(None, addr, addr, 0xfff, 0)))
    expl = system.address_space(root, "bus").explain(0x10)
    assert expl.iommu.target_space is None and "refused" in expl.iommu.refused


@pytest.mark.parametrize("addr, error", [(1 << 64, InvalidArgumentError),
                                         (-1, InvalidArgumentError),
                                         ("0x10", ArgumentTypeError),
                                         (True, ArgumentTypeError),
                                         (1.0, ArgumentTypeError)])
def test_bad_addresses_are_refused_with_named_errors(addr, error):
    asp = space(MemoryRegion.container("root", 0x1000), "cpu")
    with pytest.raises(error, match="explain 'cpu': address"):
        asp.explain(addr)


def test_a_tree_deeper_than_the_recursion_limit_is_explained_checked_and_found():
    import sys

    depth = sys.getrecursionlimit() + 200
    root = cur = MemoryRegion.container("root", 1 << 32)
    for i in range(depth):
        child = MemoryRegion.container(f"c{i}", 1 << 32)
        cur.add_subregion(0, child)
        cur = child
    cur.add_subregion(0x1000, MemoryRegion.ram("ram", 0x1000))
    asp = space(root)
    expl = asp.explain(0x1800)
    assert expl.region.name == "ram" and len(expl.chain) == depth + 2
    assert asp.system.check() == []
    (entry,) = asp.system.find("ram")
    assert entry.path.count("/") == depth + 1


@pytest.mark.parametrize("case", CASES)
def test_explain_agrees_with_qemus_flat_view_at_both_ends_of_every_range(case):
    """Every QEMU 7.2 fixture machine: the region QEMU's `info mtree -f` shows
    at a range's first and last byte is the one explain names, and the tree
    walk's winner is the region the view publishes."""
    system = load_mtree(read(case, "mtree-D.txt"), hints(case))
    spaces = {asp.name: asp for asp in system.address_spaces}
    checked = 0
    for block in read(case, "flat.txt").split("FlatView #")[1:]:
        asp = spaces[re.search(r'^ AS "([^"]+)"', block, re.M).group(1)]
        for start, end, name in re.findall(
                r"^  ([0-9a-f]{16})-([0-9a-f]{16}) \(prio -?\d+, [a-z/]+\): (.+?)"
                r"(?: @[0-9a-f]{16})?$", block, re.M):
            for addr in (int(start, 16), int(end, 16)):
                expl = asp.explain(addr)
                assert expl.region is not None and expl.region.name == name, hex(addr)
                assert expl.chain[-1].region is expl.region, hex(addr)
                checked += 1
    assert checked > 0
