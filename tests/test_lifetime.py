"""What a caller can still hold keeps the memory it reads alive.

Builtins taken from a dispatch or an address space (`lk = d.lookup`,
`ld = asp.ldl_le`) call C with a raw pointer; whatever they can reach must
outlive them, whether the dispatch was closed, its view replaced and
reclaimed, or the whole MemorySystem dropped.  Run under scripts/sanitize.sh,
a violation is a use-after-free report; in a plain build, wrong answers.
"""
from __future__ import annotations

import gc
import threading
from array import array

import pytest

from pymem import (Dispatch, DispatchRange, MemoryListener, MemoryRegion, MemorySystem,
                   MemTxError, rcu)


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
