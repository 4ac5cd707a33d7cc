"""What a caller can still hold keeps the memory it reads alive.

Builtins taken from a dispatch or an address space (`lk = d.lookup`,
`ld = asp.ldl_le`) call C with a raw pointer; whatever they can reach must
outlive them, whether the dispatch was closed, its view replaced and
reclaimed, or the whole MemorySystem dropped.  Run under scripts/sanitize.sh,
a violation is a use-after-free report; in a plain build, wrong answers.
"""
from __future__ import annotations

import copy
import gc
import pickle
import threading
from array import array

import pytest

from pymem import (Dispatch, DispatchRange, MemoryListener, MemoryRegion, MemorySystem,
                   MemTxError, NotCopyableError, ReadOnlyAttributeError, TopologyError, rcu)


def small_space():
    system = MemorySystem()
    root = MemoryRegion.container("system", 1 << 32)
    root.add_subregion(0, MemoryRegion.ram("ram", 0x10000))
    return system, root, system.address_space(root, "memory")


def test_a_lookup_taken_before_close_still_reads_its_table():
    d = Dispatch.build([DispatchRange(0x1000, 0x4000, region=2)])
    lookup, translate = d.lookup, d.translate
    d.close()
    assert lookup(0x2000) == 1 and translate(0x2000, 8).offset_in_region == 0x1000
    with pytest.raises(ValueError, match="closed"):
        d.lookup(0x2000)


def test_a_lookup_taken_from_a_replaced_view_still_reads_that_view():
    system, root, asp = small_space()
    lookup = asp.flatview.dispatch.lookup
    root.add_subregion(0x20000, MemoryRegion.ram("more", 0x1000))
    rcu.drain_call_rcu()
    gc.collect()
    assert lookup(0x1000) == 1 and lookup(0x20000) == 0   # the old view's answer


def make_loader():
    system, root, asp = small_space()
    asp.stl_le(0x100, 0x12345678)
    return asp.ldl_le, asp.read


def test_a_loader_outliving_its_memory_system_still_reads_its_ram():
    ldl_le, read = make_loader()
    gc.collect()
    rcu.drain_call_rcu()
    assert ldl_le(0x100) == 0x12345678 and read(0x100, 4) == bytes.fromhex("78563412")


def test_a_loader_keeps_its_whole_space_working_for_every_kind_of_access():
    ldl_le, _ = make_loader()
    gc.collect()
    with pytest.raises(MemTxError):        # unassigned: the slow path still has its space
        ldl_le(0x20000)


def test_a_dropped_system_with_bound_loaders_is_collected():
    stats = []

    def make():
        system, root, asp = small_space()
        asp.ldl_le(0)
        asp.read(0, 4)
        stats.append(system._stats)
    make()
    gc.collect()
    rcu.drain_call_rcu()
    assert stats[0].live_dispatches == 0 and stats[0].live_address_spaces == 0


def test_batched_lookups_on_a_view_being_replaced_stay_on_live_memory():
    system = MemorySystem()
    root = MemoryRegion.container("system", 1 << 32)
    rams = [MemoryRegion.ram(f"r{i}", 0x1000) for i in range(200)]
    for i, r in enumerate(rams):
        root.add_subregion(i * 0x2000 + 0x10, r)      # large: the radix path
    asp = system.address_space(root, "memory")
    addrs = array("Q", [(i * 7919) % (1 << 22) for i in range(1 << 16)])
    stop = threading.Event()
    batches = []
    errors = []

    def reader():
        try:
            while not stop.is_set():
                d = asp.flatview.dispatch
                if d is not None:
                    batches.append(max(d.lookup_many(addrs)))
        except Exception as exc:      # a reclaimed view must not fail its holder
            errors.append(exc)

    t = threading.Thread(target=reader)
    t.start()
    for k in range(300):
        rams[k % 200].set_enabled(k % 2 == 1)
    stop.set()
    t.join()
    assert not errors and batches and all(b < 1000 for b in batches)


class Raising(MemoryListener):
    def region_add(self, section):
        raise RuntimeError("listener bug")


def test_a_raising_listener_does_not_split_spaces_of_one_root():
    system = MemorySystem()
    r1 = MemoryRegion.container("sys1", 1 << 32)
    r2 = MemoryRegion.container("sys2", 1 << 32)
    a1, a2, a3 = (system.address_space(r1, "a1"), system.address_space(r2, "a2"),
                  system.address_space(r1, "a3"))
    a2.register_listener(Raising())
    with pytest.raises(RuntimeError, match="listener bug"):
        with system.transaction():
            r1.add_subregion(0, MemoryRegion.ram("ram", 0x1000))
            r2.add_subregion(0, MemoryRegion.ram("other", 0x1000))
    assert a1.flatview is a3.flatview
    a1.stl_le(0, 0xabcd)
    assert a3.ldl_le(0) == 0xabcd and a2.ldl_le(0) == 0


def test_a_raising_listener_still_gets_commit():
    system, root, asp = small_space()
    calls = []

    class Recording(MemoryListener):
        armed = False

        def region_add(self, section):
            if self.armed:
                raise RuntimeError("listener bug")

        def commit(self):
            calls.append("commit")
    listener = Recording()
    asp.register_listener(listener)
    listener.armed = True
    calls.clear()                          # registering replays the view, commit included
    with pytest.raises(RuntimeError):
        root.add_subregion(0x20000, MemoryRegion.ram("more", 0x1000))
    assert calls == ["commit"] and asp.ldl_le(0x20000) == 0
    with pytest.raises(MemTxError):
        asp.ldl_le(0x30000)


# The address space owns the dispatch it publishes: nothing a caller does to
# the view's Dispatch object or to the view frees the table C reads.
# Under scripts/sanitize.sh asan, a violation is a use-after-free report.

def published_space():
    system, root, asp = small_space()
    asp.stl_le(0x100, 0x12345678)
    return system, root, asp


def reads_still_work(asp):
    gc.collect()
    rcu.drain_call_rcu()
    big = asp.read(0, 0x10000)   # >= 64 KiB: C without the GIL
    assert asp.ldl_le(0x100) == 0x12345678 and big[0x100:0x104] == bytes.fromhex("78563412")
    asp.stl_le(0x200, 0xcafe)
    assert asp.read(0x200, 2) == b"\xfe\xca"


def test_closing_a_published_views_dispatch_leaves_the_space_reading_its_table():
    system, root, asp = published_space()
    dispatch = asp.flatview.dispatch
    dispatch.close()
    del dispatch
    reads_still_work(asp)
    with pytest.raises(ValueError, match="closed"):
        asp.flatview.dispatch.lookup(0x100)


def test_a_published_view_refuses_destroy_and_keeps_working():
    system, root, asp = published_space()
    with pytest.raises(TopologyError, match="flat view of 'ram'.*2 reference"):
        asp.flatview.destroy()
    reads_still_work(asp)
    assert asp.flatview.dispatch.lookup(0x100) == 1


def test_a_views_dispatch_cannot_be_dropped_by_assignment():
    system, root, asp = published_space()
    with pytest.raises(ReadOnlyAttributeError, match="flat view of 'ram'.*'dispatch' is read-only"):
        asp.flatview.dispatch = None
    reads_still_work(asp)


def test_a_closed_dispatch_of_a_shared_view_can_still_be_published_to_a_new_space():
    system, root, asp = published_space()
    asp.flatview.dispatch.close()
    gc.collect()
    other = system.address_space(root, "other")   # shares the view, publishes its table
    assert other.flatview is asp.flatview
    assert other.ldl_le(0x100) == 0x12345678


def test_a_view_nobody_holds_any_more_is_released_after_its_grace_period():
    system, root, asp = published_space()
    old = asp.flatview
    root.add_subregion(0x20000, MemoryRegion.ram("more", 0x1000))
    rcu.drain_call_rcu()
    assert old.refs == 0 and old.dispatch is None
    old.destroy()   # nothing left to hold: a no-op, not an error


# Objects that own C state cannot be copied: a copy of a region shares its C
# node, whose back-pointer names the original object only; once the original
# died, rendering the copy increfed freed memory.

@pytest.mark.parametrize("how", [copy.copy, copy.deepcopy, pickle.dumps],
                         ids=["copy", "deepcopy", "pickle"])
@pytest.mark.parametrize("make", [
    lambda: MemoryRegion.ram("template", 0x1000),
    lambda: MemoryRegion.container("bus", 0x1000),
    lambda: MemoryRegion.alias("window", MemoryRegion.ram("target", 0x1000), 0, 0x1000),
], ids=["ram", "container", "alias"])
def test_a_region_refuses_to_be_copied_or_pickled_naming_itself(how, make):
    region = make()
    with pytest.raises(NotCopyableError, match=repr(region.name)) as caught:
        how(region)
    assert isinstance(caught.value, TypeError)


def test_the_copy_reproducer_leaves_the_original_mapped_and_correct():
    system = MemorySystem()
    root = MemoryRegion.container("system", 1 << 32)
    asp = system.address_space(root, "memory")
    original = MemoryRegion.ram("ram", 0x1000)
    with pytest.raises(NotCopyableError):
        copy.copy(original)
    gc.collect()
    root.add_subregion(0, original)
    assert [r.region for r in asp.flatview.ranges] == [original]
    assert asp.translate(0)[0] is original


@pytest.mark.parametrize("how", [copy.copy, copy.deepcopy, pickle.dumps],
                         ids=["copy", "deepcopy", "pickle"])
def test_systems_spaces_views_and_dispatches_refuse_copies_too(how):
    system, root, asp = small_space()
    for obj in (system, asp, asp.flatview, asp.flatview.dispatch):
        with pytest.raises(NotCopyableError, match=type(obj).__name__):
            how(obj)


def test_an_address_spaces_view_cannot_be_swapped_by_assignment():
    # Assigning it would make the next commit unref the wrong view, which
    # could then be reclaimed while another space still publishes it.
    system, root, asp = published_space()
    other_root = MemoryRegion.container("other", 1 << 32)
    other = system.address_space(other_root, "other")
    with pytest.raises(ReadOnlyAttributeError, match="'memory'.*'flatview' is read-only"):
        asp.flatview = other.flatview
    assert asp.flatview is not other.flatview
    root.add_subregion(0x20000, MemoryRegion.ram("more", 0x1000))
    reads_still_work(asp)


@pytest.mark.parametrize("size", [0x1000, 64 << 20])   # slab memory, an mmap of its own
def test_releasing_the_buffer_a_region_hands_out_leaves_its_memory_alive(size: int) -> None:
    # `mr.buffer` used to be the region's own memoryview: its release()
    # dropped the last reference to the memory (the mmap, or the slab's
    # pages) under the C node, and the next access crashed the process.
    system = MemorySystem()
    root = MemoryRegion.container("root", 1 << 32)
    ram = MemoryRegion.ram("ram", size)
    root.add_subregion(0, ram)
    asp = system.address_space(root, "as")
    with ram.buffer as view:       # a with-block releases the view at its end
        view[:4] = b"\x01\x02\x03\x04"
    ram.buffer.release()
    gc.collect()
    asp.stl_le(0, 0x12345678)
    assert asp.ldl_le(0) == 0x12345678
    assert bytes(ram.buffer[:4]) == b"\x78\x56\x34\x12"
    assert ram.buffer is not ram.buffer
