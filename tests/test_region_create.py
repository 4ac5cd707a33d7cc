"""Making regions and adding them: the C base's one-call paths
(csrc/ext/regionobj.c) build what the checked Python path builds, keep the
tree lock, and leave nothing behind."""
import gc
import threading

import pytest

from pymem import MemoryListener, MemoryRegion, MemoryRegionOps, MemorySystem
from pymem._bindings import ffi, lib
from pymem.errors import ArgumentTypeError, EditDuringCommitError, TopologyError
from pymem.region import TREE_LOCK

OPS = MemoryRegionOps(lambda offset, size: 0, lambda offset, value, size: None)


def c_children(mr):
    info = ffi.new("pm_region_info *")
    lib.pm_region_info_get(mr._node, info)
    return [lib.pm_region_sub(mr._node, i) for i in range(info.nsubs)]


def c_addr(mr):
    info = ffi.new("pm_region_info *")
    lib.pm_region_info_get(mr._node, info)
    return info.addr


def build(add):
    """A bus of regions of every kind, added at mixed priorities through `add`."""
    ram = MemoryRegion.ram("ram", 0x4000)
    bus = MemoryRegion.container("bus", 1 << 20)
    made = [MemoryRegion.io("io", 0x100, OPS), MemoryRegion.ram("buf", 0x1000),
            MemoryRegion.alias("window", ram, 0x1000, 0x1000),
            MemoryRegion.container("sub", 0x1000), MemoryRegion.rom("rom", 0x100),
            MemoryRegion.io("io2", 0x100, OPS), MemoryRegion.container("sub2", 0x1000)]
    for i, (mr, priority) in enumerate(zip(made, [0, 2, -1, 2, 0, 1, -1])):
        add(bus, i * 0x1000, mr, priority)
    return bus


def test_the_one_call_add_builds_the_tree_the_checked_add_builds():
    fast = build(lambda bus, offset, mr, priority: bus.add_subregion(offset, mr, priority))
    checked = build(lambda bus, offset, mr, priority:
                    bus._add_subregion(offset, mr, priority))
    assert ([(r.name, r.addr, r.priority) for r in fast.subregions]
            == [(r.name, r.addr, r.priority) for r in checked.subregions])
    assert [r.name for r in fast.subregions] == ["sub", "buf", "io2", "rom", "io", "sub2",
                                                 "window"]
    for bus in (fast, checked):
        assert c_children(bus) == [sub._node for sub in bus._subs]
        assert all(sub.container is bus and c_addr(sub) == sub.addr for sub in bus._subs)


def test_priority_by_keyword_and_bad_arguments_take_the_checked_path():
    bus = MemoryRegion.container("bus", 0x10000)
    bus.add_subregion(0x100, MemoryRegion.io("a", 0x10, OPS), priority=3)
    bus.add_subregion(offset=0x200, region=MemoryRegion.io("b", 0x10, OPS))
    assert [(r.name, r.addr, r.priority) for r in bus.subregions] == [
        ("a", 0x100, 3), ("b", 0x200, 0)]
    with pytest.raises(ArgumentTypeError, match="adding 'c' to 'bus': priority must be an int"):
        bus.add_subregion(0, MemoryRegion.io("c", 0x10, OPS), True)
    with pytest.raises(TopologyError, match="'d' to 'bus': priority 4294967296 does not fit"):
        bus.add_subregion(0, MemoryRegion.io("d", 0x10, OPS), 1 << 32)
    with pytest.raises(TopologyError, match="offset 0xfffffffffffffff8 \\+ size 0x10 runs past"):
        bus.add_subregion((1 << 64) - 8, MemoryRegion.io("e", 0x10, OPS))
    with pytest.raises(TopologyError, match="would make a cycle"):
        bus.add_subregion(0, bus)
    window = MemoryRegion.alias("window", bus, 0, 0x100)
    with pytest.raises(TopologyError, match="'window' is an alias and cannot hold"):
        window.add_subregion(0, MemoryRegion.io("f", 0x10, OPS))
    assert [r.name for r in bus.subregions] == ["a", "b"]
    assert len(c_children(bus)) == 2


def add_while_another_thread_holds(holding, add, what):
    """Run `add()` on a thread while another thread is inside `holding()` (a
    context manager): the add must wait until the holder lets go (`what`
    says what it would have done otherwise), then finish."""
    held, release, added = threading.Event(), threading.Event(), threading.Event()

    def hold():
        with holding():
            held.set()
            release.wait(5)

    def adding():
        add()
        added.set()

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    adder = threading.Thread(target=adding)
    adder.start()
    try:
        assert not added.wait(0.2), what
    finally:
        release.set()
        holder.join()
        adder.join()
    assert added.is_set()


def test_an_add_waits_for_a_render_holding_the_tree_lock_in_another_thread():
    bus = MemoryRegion.container("bus", 0x10000)
    add_while_another_thread_holds(
        lambda: TREE_LOCK, lambda: bus.add_subregion(0, MemoryRegion.io("dev", 0x10, OPS)),
        "the add changed the tree under a render")
    assert [r.name for r in bus.subregions] == ["dev"]


def test_by_id_forgets_regions_that_are_gone_even_in_a_cycle():
    ram = MemoryRegion.ram("ram", 0x1000)
    ram_id = ram.id
    assert MemoryRegion.by_id(ram_id) is ram
    del ram
    assert MemoryRegion.by_id(ram_id) is None
    # An alias of a container that holds it: a cycle only the collector frees.
    outer = MemoryRegion.container("outer", 0x10000)
    outer.add_subregion(0x8000, MemoryRegion.alias("loop", outer, 0x4000, 0x1000))
    outer_id = outer.id
    del outer
    gc.collect()
    assert MemoryRegion.by_id(outer_id) is None


def test_region_ids_grow_and_name_their_region():
    first, second = MemoryRegion.container("a", 1), MemoryRegion.io("b", 1, OPS)
    assert second.id > first.id
    assert MemoryRegion.by_id(second.id) is second


def test_an_add_inside_a_transaction_adopts_the_region_and_commits_at_its_end():
    system = MemorySystem()
    root = MemoryRegion.container("root", 1 << 32)
    ram = MemoryRegion.ram("ram", 0x10000)
    ram.buffer[0x1000:0x1004] = b"win!"
    root.add_subregion(0, ram)
    space = system.address_space(root, "cpu")
    with system.transaction():
        dev = MemoryRegion.io("dev", 0x100, OPS)
        root.add_subregion(0x20000, dev)
        window = MemoryRegion.alias("window", ram, 0x1000, 0x1000)
        root.add_subregion(0x30000, window, 1)
        assert [r.region.name for r in space.flatview.ranges] == ["ram"]   # not yet
    assert dev.system is system and window.system is system
    assert [(r.addr, r.region.name) for r in space.flatview.ranges] == [
        (0, "ram"), (0x20000, "dev"), (0x30000, "ram")]
    assert space.read(0x30000, 4) == b"win!"
    assert c_children(root) == [sub._node for sub in root._subs]


def test_an_add_into_a_system_another_thread_is_editing_waits_for_its_transaction():
    system = MemorySystem()
    root = MemoryRegion.container("root", 1 << 32)
    space = system.address_space(root, "cpu")
    add_while_another_thread_holds(
        system.transaction,
        lambda: root.add_subregion(0x1000, MemoryRegion.io("dev", 0x100, OPS)),
        "the add went into another thread's transaction")
    assert [r.region.name for r in space.flatview.ranges] == ["dev"]


def test_an_add_from_a_listener_being_told_is_still_refused():
    system = MemorySystem()
    root = MemoryRegion.container("root", 1 << 32)
    space = system.address_space(root, "cpu")
    refused = []

    class Adding(MemoryListener):
        def commit(self):
            try:
                root.add_subregion(0x9000, MemoryRegion.io("late", 0x10, OPS))
            except EditDuringCommitError as exc:
                refused.append(exc)

    space.register_listener(Adding())
    root.add_subregion(0, MemoryRegion.ram("ram", 0x1000))
    assert refused and [r.name for r in root.subregions] == ["ram"]
