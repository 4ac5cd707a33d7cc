"""Moving an address space's root (set_address on a region with no container)
counts as QEMU counts it: the root's own address is added when the root itself
is rendered, and dropped when QEMU's flat-view-root shortcut renders its only
child instead (memory_region_get_flatview_root: a single enabled child at
offset 0 that covers the root stands for it, so views can be shared)."""
from __future__ import annotations

from pymem import MemoryRegion, MemorySystem


def test_a_moved_root_with_several_children_is_rendered_at_its_new_address():
    system = MemorySystem()
    two = MemoryRegion.container("two", 1 << 32)
    b = MemoryRegion.ram("b", 0x1000)
    two.add_subregion(0, b)
    two.add_subregion(0x2000, MemoryRegion.ram("c", 0x1000))
    asp = system.address_space(two, "two")
    two.set_address(0x5000)
    assert asp.translate(0x5000)[0] is b
    assert asp.translate(0)[0] is None


def test_a_moved_root_whose_only_child_stands_for_it_keeps_the_child_at_0_as_qemu():
    system = MemorySystem()
    one = MemoryRegion.container("one", 1 << 32)
    a = MemoryRegion.ram("a", 0x1000)
    one.add_subregion(0, a)
    asp = system.address_space(one, "one")
    one.set_address(0x5000)
    # QEMU renders `a` from base 0: the root's own address is not seen.
    assert asp.flatview.root is a
    assert asp.translate(0)[0] is a
    assert asp.translate(0x5000)[0] is None
    # A second child ends the shortcut: the root is rendered, at its address.
    one.add_subregion(0x2000, MemoryRegion.ram("b", 0x1000))
    assert asp.translate(0x5000)[0] is a
