"""FlatView sharing, transactions and view life cycles (QEMU-SEMANTICS §2)."""
from __future__ import annotations

import threading

import pytest

from pymem import MemoryListener, MemoryRegion, MemoryRegionOps, MemorySystem, TopologyError
from pymem import rcu
from pymem._native import lib

from .tree_model import view_root

OPS = MemoryRegionOps(lambda offset, size: 0, lambda offset, value, size: None)


def machine():
    system = MemorySystem()
    root = MemoryRegion.container("system", 1 << 64)
    root.add_subregion(0, MemoryRegion.ram("pc.ram", 0x100000))
    root.add_subregion(0xfee00000, MemoryRegion.io("apic", 0x1000, OPS))
    return system, root


def test_two_address_spaces_on_one_root_share_one_flatview():
    system, root = machine()
    memory = system.address_space(root, "memory")
    cpu = system.address_space(root, "cpu-memory-0")
    assert memory.flatview is cpu.flatview
    assert memory.flatview.dispatch is cpu.flatview.dispatch


def test_both_spaces_publish_the_shared_dispatch_to_c():
    system, root = machine()
    memory = system.address_space(root, "memory")
    cpu = system.address_space(root, "cpu-memory-0")
    handle = memory.flatview.dispatch.handle
    # Publishing returns the previous pointer: put it straight back.
    for asp in (memory, cpu):
        assert lib.pm_as_publish(asp._cas, handle) == handle


def test_a_commit_publishes_each_spaces_new_table_to_c():
    # The no-listener commit publishes in C (swap_views, through the core's
    # pm_as_publish): C's pointer is each space's new view's table.
    system, root = machine()
    memory = system.address_space(root, "memory")
    cpu = system.address_space(root, "cpu-memory-0")
    window = system.address_space(MemoryRegion.alias("low", root, 0x1000, 0x1000), "dma")
    before = {asp: asp.flatview for asp in (memory, cpu, window)}
    root.add_subregion(0x200000, MemoryRegion.ram("more", 0x1000))
    for asp in (memory, cpu, window):
        assert asp.flatview is not before[asp]
        handle = asp.flatview._handle
        assert lib.pm_as_publish(asp._cas, handle) == handle


def test_whole_alias_of_a_root_shares_the_roots_view():
    system, root = machine()
    memory = system.address_space(root, "memory")
    smm = system.address_space(MemoryRegion.alias("memory", root, 0, 1 << 64), "cpu-smm-0")
    assert smm.flatview is memory.flatview
    assert smm.flatview.root is root


def test_partial_alias_gets_a_view_of_its_own():
    system, root = machine()
    memory = system.address_space(root, "memory")
    window = system.address_space(MemoryRegion.alias("high", root, 0x1000, 1 << 32), "dma")
    assert window.flatview is not memory.flatview
    assert window.flatview.ranges[0].offset_in_region == 0x1000


def test_container_with_one_child_at_zero_shares_the_childs_view():
    system, root = machine()
    memory = system.address_space(root, "memory")
    bus = MemoryRegion.container("bus master container", 1 << 64)
    bus.add_subregion(0, MemoryRegion.alias("bus master", root, 0, 1 << 64))
    device = system.address_space(bus, "ich9-ahci")
    assert device.flatview is memory.flatview


def test_spaces_that_render_nothing_share_the_one_empty_view_forever():
    system, root = machine()
    system.address_space(root, "memory")
    buses = []
    for name in ("mch", "ICH9-LPC"):
        bus = MemoryRegion.container("bus master container", 1 << 64)
        master = MemoryRegion.alias("bus master", root, 0, 1 << 64)
        master.set_enabled(False)
        bus.add_subregion(0, master)
        buses.append(system.address_space(bus, name))
    empty = buses[0].flatview
    assert buses[1].flatview is empty and empty.root is None and empty.ranges == []
    root.add_subregion(0x200000, MemoryRegion.ram("more", 0x1000))
    assert buses[0].flatview is empty and buses[1].flatview is empty
    assert empty.dispatch.lookup(0) == 0


def test_every_commit_renders_new_views_and_retires_the_old_ones():
    system, root = machine()
    memory = system.address_space(root, "memory")
    system.address_space(root, "cpu-memory-0")
    old = memory.flatview
    assert old.refs == 3  # the registry and two address spaces
    # A reader inside a read-side section on another thread may still see
    # the old view: it is released only after that section ends.
    entered, leave = threading.Event(), threading.Event()

    def reader():
        with rcu.read_lock():
            entered.set()
            leave.wait(30)
    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    assert entered.wait(30)
    try:
        root.add_subregion(0x200000, MemoryRegion.ram("more", 0x1000))
        assert memory.flatview is not old
        assert old.refs == 0 and old.dispatch is not None  # freed only after a grace period
        assert memory.flatview.refs == 3
    finally:
        leave.set()
        thread.join(30)
    rcu.drain_call_rcu()
    assert old.dispatch is None


def test_a_commit_with_no_reader_inside_a_section_releases_the_old_view_at_once():
    # No read-side section is open anywhere: the grace period is over as
    # soon as it starts, and the writer frees the old table itself.
    system, root = machine()
    memory = system.address_space(root, "memory")
    old = memory.flatview
    root.add_subregion(0x200000, MemoryRegion.ram("more", 0x1000))
    assert old.refs == 0 and old.dispatch is None
    assert system.live_dispatches == 2   # the empty view's and the new one


def test_a_commit_inside_this_threads_read_section_leaves_the_old_view_to_call_rcu():
    system, root = machine()
    memory = system.address_space(root, "memory")
    old = memory.flatview
    with rcu.read_lock():
        root.add_subregion(0x200000, MemoryRegion.ram("more", 0x1000))
        assert old.refs == 0 and old.dispatch is not None
    rcu.drain_call_rcu()
    assert old.dispatch is None


def test_edits_inside_nested_transactions_commit_once_at_the_outermost_exit():
    system, root = machine()
    memory = system.address_space(root, "memory")
    before = memory.flatview
    with system.transaction():
        root.add_subregion(0x200000, MemoryRegion.ram("a", 0x1000))
        with system.transaction():
            root.add_subregion(0x300000, MemoryRegion.ram("b", 0x1000))
        assert memory.flatview is before
    assert memory.flatview is not before
    assert [r.region.name for r in memory.flatview.ranges] == ["pc.ram", "a", "b", "apic"]
    assert before.refs == 0


def test_an_edit_outside_a_transaction_commits_at_once():
    system, root = machine()
    memory = system.address_space(root, "memory")
    ram = memory.flatview.ranges[0].region
    ram.set_enabled(False)
    assert [r.region.name for r in memory.flatview.ranges] == ["apic"]


def test_a_transaction_without_changes_keeps_the_views():
    system, root = machine()
    memory = system.address_space(root, "memory")
    view = memory.flatview
    with system.transaction():
        pass
    assert memory.flatview is view


def test_regions_built_before_the_address_space_join_its_system():
    system, root = machine()
    ram = MemoryRegion.ram("target", 0x1000)
    root.add_subregion(0x400000, MemoryRegion.alias("win", ram, 0, 0x1000))
    memory = system.address_space(root, "memory")
    assert ram.system is system
    ram.set_readonly(True)
    assert [r.readonly for r in memory.flatview.ranges if r.addr == 0x400000] == [True]


def test_live_dispatches_count_every_view_not_yet_freed():
    system, root = machine()
    memory = system.address_space(root, "memory")
    assert system.live_dispatches == 2  # the empty view and the system view
    root.add_subregion(0x200000, MemoryRegion.ram("more", 0x1000))
    rcu.drain_call_rcu()  # the old view's grace period ends
    assert system.live_dispatches == 2
    assert memory.flatview.dispatch is not None


# ------------------------------------------------------- destroying a space

def test_a_destroyed_space_leaves_its_system_and_its_accesses_raise():
    system, root = machine()
    memory = system.address_space(root, "memory")
    dma = system.address_space(MemoryRegion.alias("dma", root, 0, 0x80000), "dma")
    ldl = dma.ldl_le              # a builtin taken before the destroy
    dma.stl_le(0x10, 0x1234)
    dma.destroy()
    assert system.address_spaces == [memory] and dma.destroyed
    for access in (lambda: ldl(0x10), lambda: dma.ldl_le(0x10), lambda: dma.read(0x10, 4),
                   lambda: dma.write(0x10, b"\1"), lambda: dma.translate(0x10),
                   lambda: dma.load(0x10, 4)):
        with pytest.raises(TopologyError, match="address space 'dma' is destroyed"):
            access()
    # The memory it showed is untouched and still seen by the other space.
    assert memory.ldl_le(0x10) == 0x1234
    with pytest.raises(TopologyError, match="already destroyed"):
        dma.destroy()


def test_destroying_a_space_releases_a_view_no_other_space_uses():
    system, root = machine()
    system.address_space(root, "memory")
    dma = system.address_space(MemoryRegion.alias("dma", root, 0, 0x80000), "dma")
    assert system.live_dispatches == 3
    dma.destroy()
    rcu.drain_call_rcu()
    assert system.live_dispatches == 2
    assert len(system.flatviews()) == 1
    root.add_subregion(0x200000, MemoryRegion.ram("more", 0x1000))   # commits without it
    rcu.drain_call_rcu()
    assert system.live_dispatches == 2


def test_destroying_one_of_two_spaces_on_a_root_keeps_the_shared_view():
    system, root = machine()
    memory = system.address_space(root, "memory")
    cpu = system.address_space(root, "cpu-memory-0")
    view = memory.flatview
    cpu.destroy()
    assert memory.flatview is view and view.dispatch is not None
    assert system.flatviews() == {view: [memory]}


def test_destroying_a_space_tells_its_listeners_every_range_is_gone():
    system, root = machine()
    asp = system.address_space(root, "memory")
    seen = []

    class Listener(MemoryListener):
        def region_add(self, section):
            seen.append(("add", section.mr.name))

        def region_del(self, section):
            seen.append(("del", section.mr.name))

    listener = Listener()
    asp.register_listener(listener)
    asp.destroy()
    assert seen == [("add", "pc.ram"), ("add", "apic"), ("del", "pc.ram"), ("del", "apic")]
    assert asp.listeners == []
    with pytest.raises(TopologyError, match="is destroyed"):
        asp.register_listener(listener)


def _walk_cases():
    """Roots whose flat-view root is each of the walk's outcomes."""
    whole = MemoryRegion.container("whole", 1 << 32)
    whole.add_subregion(0, MemoryRegion.ram("ram", 0x1000))
    yield "a container", whole
    yield "an alias of all of it", MemoryRegion.alias("all", whole, 0, 1 << 32)
    yield "an alias of all of an alias", MemoryRegion.alias(
        "all2", MemoryRegion.alias("all1", whole, 0, 1 << 32), 0, 1 << 32)
    yield "a partial alias", MemoryRegion.alias("part", whole, 0x1000, 0x1000)
    single = MemoryRegion.container("single", 1 << 32)
    single.add_subregion(0, MemoryRegion.container("child", 1 << 32))
    yield "a container with one child at 0", single
    shifted = MemoryRegion.container("shifted", 1 << 32)
    shifted.add_subregion(0x1000, MemoryRegion.container("child", 0x1000))
    yield "a container with one child elsewhere", shifted
    for enabled in (True, False):
        two = MemoryRegion.container("two", 1 << 32)
        two.add_subregion(0, MemoryRegion.container("a", 1 << 32))
        other = MemoryRegion.container("b", 0x1000)
        two.add_subregion(0x1000, other)
        other.set_enabled(enabled)
        yield ("a container with two children" if enabled
               else "a container with one child enabled"), two
    empty = MemoryRegion.container("empty", 1 << 32)
    empty.add_subregion(0, MemoryRegion.container("off", 0x1000))
    empty.subregions[0].set_enabled(False)
    yield "a container with no child enabled", empty
    disabled = MemoryRegion.container("disabled", 1 << 32)
    disabled.set_enabled(False)
    yield "a disabled root", disabled
    yield "a device", MemoryRegion.io("dev", 0x1000, OPS)
    # Loops of empty windows: the walk stops at the first region met twice,
    # which is not the root when the loop is entered from outside.
    loop = MemoryRegion.container("loop", 0)
    loop.add_subregion(0, MemoryRegion.alias("back", loop, 0, 0))
    yield "a loop through the root", loop
    inner = MemoryRegion.container("inner", 0)
    inner.add_subregion(0, MemoryRegion.alias("again", inner, 0, 0))
    outer = MemoryRegion.container("outer", 0)
    outer.add_subregion(0, MemoryRegion.alias("in", inner, 0, 0))
    yield "a loop entered from outside", outer


@pytest.mark.parametrize("case", [name for name, _ in _walk_cases()])
def test_a_commit_gives_each_space_the_view_of_its_flatview_root(case):
    # A commit walks every space's root in C (pm_flatview_root): each space
    # gets the view of the region the reference model's walk stops at.
    root = dict(_walk_cases())[case]
    system = MemorySystem()
    asp = system.address_space(root, "space")
    with system.transaction():
        system._update_pending = True
    expected = view_root(root)
    assert asp.flatview.root is expected
    assert system._views[expected.id if expected is not None else None] is asp.flatview
