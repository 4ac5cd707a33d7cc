"""`system.find(name)` and `system.regions()`: every region, with its path,
because QEMU region names are not unique."""
from __future__ import annotations

import pytest

from pymem import ArgumentTypeError, MemoryRegion, MemorySystem, machines


def test_find_returns_every_region_of_a_name_with_its_path():
    system = machines.load("q35")
    found = system.find("pam-rom")
    assert len(found) == 13
    assert {entry.path for entry in found} == {"system/pam-rom"}
    assert sorted(entry.region.addr for entry in found) == [0xc0000 + 0x4000 * i
                                                            for i in range(13)]


def test_find_reaches_alias_targets_that_no_container_holds():
    system = machines.load("q35")
    (entry,) = system.find("pc.ram")
    assert entry.path == "pc.ram" and entry.region.kind == "ram"
    assert str(entry).startswith("pc.ram (ram, size 0x8000000")


def test_regions_lists_each_region_once_in_tree_order():
    root = MemoryRegion.container("root", 0x10000)
    ram = MemoryRegion.ram("ram", 0x1000)
    bus = MemoryRegion.container("bus", 0x8000)
    bus.add_subregion(0x100, MemoryRegion.alias("ram", ram, 0, 0x100))
    root.add_subregion(0, ram)
    root.add_subregion(0x8000, bus, priority=1)
    system = MemorySystem()
    system.address_space(root, "a")
    system.address_space(root, "b")
    assert [e.path for e in system.regions()] == ["root", "root/bus", "root/bus/ram",
                                                  "root/ram"]
    assert [e.region.kind for e in system.find("ram")] == ["alias", "ram"]
    assert system.find("nothing") == []


def test_find_refuses_a_name_that_is_not_a_string():
    with pytest.raises(ArgumentTypeError, match="find: name must be a str"):
        MemorySystem().find(3)
