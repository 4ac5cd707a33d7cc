"""Memory listeners see each commit as QEMU's listeners do: begin, deletions in
reverse listener order, additions and no-ops forward, commit."""
from __future__ import annotations

from typing import List

import pytest
from hypothesis import given, strategies as st

from pymem import (MemoryListener, MemoryRegion, MemoryRegionOps, MemoryRegionSection,
                   MemorySystem, TopologyError)

OPS = MemoryRegionOps(lambda offset, size: 0, lambda offset, value, size: None)


class Recorder(MemoryListener):
    def __init__(self, name: str, log: List[tuple], priority: int = 0) -> None:
        self.name = name
        self.log = log
        self.priority = priority

    def _section(self, s: MemoryRegionSection) -> tuple:
        return (s.mr.name, s.offset_within_address_space, s.size, s.readonly)

    def begin(self):
        self.log.append((self.name, "begin"))

    def commit(self):
        self.log.append((self.name, "commit"))

    def region_add(self, section):
        self.log.append((self.name, "add") + self._section(section))

    def region_del(self, section):
        self.log.append((self.name, "del") + self._section(section))

    def region_nop(self, section):
        self.log.append((self.name, "nop") + self._section(section))

    def log_start(self, section, old, new):
        self.log.append((self.name, "log_start", section.mr.name, old, new))

    def log_stop(self, section, old, new):
        self.log.append((self.name, "log_stop", section.mr.name, old, new))


@pytest.fixture
def setup():
    system = MemorySystem()
    root = MemoryRegion.container("system", 1 << 64)
    ram = MemoryRegion.ram("ram", 0x4000)
    root.add_subregion(0, ram)
    asp = system.address_space(root, "memory")
    return system, root, ram, asp


def test_registering_replays_the_current_view_as_additions(setup):
    system, root, ram, asp = setup
    log: List[tuple] = []
    asp.register_listener(Recorder("a", log))
    assert log == [("a", "begin"), ("a", "add", "ram", 0, 0x4000, False), ("a", "commit")]


def test_deletions_run_in_reverse_listener_order_and_additions_forward(setup):
    system, root, ram, asp = setup
    log: List[tuple] = []
    asp.register_listener(Recorder("a", log))
    asp.register_listener(Recorder("b", log))
    log.clear()
    ram.set_address(0x10000)
    assert log == [
        ("a", "begin"), ("b", "begin"),
        ("b", "del", "ram", 0, 0x4000, False), ("a", "del", "ram", 0, 0x4000, False),
        ("a", "add", "ram", 0x10000, 0x4000, False), ("b", "add", "ram", 0x10000, 0x4000, False),
        ("a", "commit"), ("b", "commit"),
    ]


def test_unchanged_ranges_are_reported_as_nops_after_all_deletions(setup):
    system, root, ram, asp = setup
    dev = MemoryRegion.io("dev", 0x100, OPS)
    root.add_subregion(0x100000, dev)
    log: List[tuple] = []
    asp.register_listener(Recorder("a", log))
    log.clear()
    with system.transaction():
        root.del_subregion(dev)
        root.add_subregion(0x200000, MemoryRegion.io("new", 0x100, OPS))
    assert log == [
        ("a", "begin"),
        ("a", "del", "dev", 0x100000, 0x100, False),
        ("a", "nop", "ram", 0, 0x4000, False),
        ("a", "add", "new", 0x200000, 0x100, False),
        ("a", "commit"),
    ]


def test_a_range_whose_attributes_change_is_deleted_and_added_again(setup):
    system, root, ram, asp = setup
    log: List[tuple] = []
    asp.register_listener(Recorder("a", log))
    log.clear()
    ram.set_readonly(True)
    assert log == [("a", "begin"), ("a", "del", "ram", 0, 0x4000, False),
                   ("a", "add", "ram", 0, 0x4000, True), ("a", "commit")]


def test_dirty_logging_changes_are_log_start_and_log_stop(setup):
    system, root, ram, asp = setup
    log: List[tuple] = []
    asp.register_listener(Recorder("a", log))
    asp.register_listener(Recorder("b", log))
    log.clear()
    ram.set_log(True)
    assert log[2:6] == [("a", "nop", "ram", 0, 0x4000, False),
                        ("b", "nop", "ram", 0, 0x4000, False),
                        ("a", "log_start", "ram", 0, 1), ("b", "log_start", "ram", 0, 1)]
    log.clear()
    ram.set_log(False)
    assert [e for e in log if e[1] == "log_stop"] == [("b", "log_stop", "ram", 1, 0),
                                                      ("a", "log_stop", "ram", 1, 0)]


def test_lower_priority_listeners_come_first(setup):
    system, root, ram, asp = setup
    log: List[tuple] = []
    asp.register_listener(Recorder("late", log, priority=10))
    asp.register_listener(Recorder("early", log, priority=-10))
    assert [listener.name for listener in asp.listeners] == ["early", "late"]


def test_unregistering_deletes_every_range_for_that_listener(setup):
    system, root, ram, asp = setup
    log: List[tuple] = []
    listener = Recorder("a", log)
    asp.register_listener(listener)
    log.clear()
    asp.unregister_listener(listener)
    assert log == [("a", "begin"), ("a", "del", "ram", 0, 0x4000, False), ("a", "commit")]
    log.clear()
    ram.set_address(0x8000)
    assert log == []
    with pytest.raises(TopologyError, match="not registered"):
        asp.unregister_listener(listener)


def test_begin_and_commit_reach_listeners_of_every_address_space(setup):
    system, root, ram, asp = setup
    other_root = MemoryRegion.io("io", 0x10000, OPS)
    io_space = system.address_space(other_root, "I/O")
    log: List[tuple] = []
    io_space.register_listener(Recorder("io", log))
    log.clear()
    ram.set_address(0x8000)
    # The I/O view is re-rendered identically: only nops for its listener.
    assert log == [("io", "begin"), ("io", "nop", "io", 0, 0x10000, False), ("io", "commit")]


def test_adding_a_disabled_region_commits_nothing(setup):
    system, root, ram, asp = setup
    log: List[tuple] = []
    asp.register_listener(Recorder("a", log))
    log.clear()
    hidden = MemoryRegion.ram("hidden", 0x1000)
    hidden.set_enabled(False)
    view = asp.flatview
    root.add_subregion(0x100000, hidden)
    assert log == [] and asp.flatview is view


# ------------------------------------------------------------------ property

def reference_passes(old, new, with_nops):
    """QEMU's address_space_update_topology_pass, twice, over Python FlatRange
    lists: what the listeners must hear, as (call, region, address, size, ...)."""
    calls = []
    for adding in (False, True):
        i = j = 0
        while i < len(old) or j < len(new):
            o = old[i] if i < len(old) else None
            n = new[j] if j < len(new) else None
            if o is not None and (n is None or o.addr < n.addr
                                  or (o.addr == n.addr and not o.same_as(n))):
                if not adding:
                    calls.append(("del", o.region.name, o.addr, o.size, o.readonly))
                i += 1
            elif o is not None and n is not None and o.same_as(n):
                if adding:
                    if with_nops:
                        calls.append(("nop", n.region.name, n.addr, n.size, n.readonly))
                    if n.dirty_log & ~o.dirty_log:
                        calls.append(("log_start", n.region.name, o.dirty_log, n.dirty_log))
                    if o.dirty_log & ~n.dirty_log:
                        calls.append(("log_stop", n.region.name, o.dirty_log, n.dirty_log))
                i += 1
                j += 1
            else:
                if adding:
                    calls.append(("add", n.region.name, n.addr, n.size, n.readonly))
                j += 1
    return calls


class Calls(MemoryListener):
    def __init__(self, with_nops):
        self.calls = []
        if with_nops:
            self.region_nop = self._nop    # type: ignore[method-assign]

    def _nop(self, s):
        self.calls.append(("nop", s.mr.name, s.offset_within_address_space, s.size, s.readonly))

    def region_add(self, s):
        self.calls.append(("add", s.mr.name, s.offset_within_address_space, s.size, s.readonly))

    def region_del(self, s):
        self.calls.append(("del", s.mr.name, s.offset_within_address_space, s.size, s.readonly))

    def log_start(self, s, old, new):
        self.calls.append(("log_start", s.mr.name, old, new))

    def log_stop(self, s, old, new):
        self.calls.append(("log_stop", s.mr.name, old, new))


class NopCalls(Calls):
    def region_nop(self, s):
        self._nop(s)


edits = st.lists(st.tuples(st.sampled_from(["move", "toggle", "log", "readonly", "resize"]),
                           st.integers(0, 5), st.integers(0, 15)), min_size=1, max_size=12)


@given(edits, st.sampled_from(["none", "overridden", "on the instance"]))
def test_listeners_hear_what_qemus_topology_passes_say(steps, nops):
    system = MemorySystem()
    root = MemoryRegion.container("root", 1 << 20)
    ram = MemoryRegion.ram("ram", 0x10000)
    regions = [MemoryRegion.ram(f"r{k}", 0x2000) for k in range(3)]
    regions += [MemoryRegion.io(f"d{k}", 0x800, OPS) for k in range(2)]
    regions.append(MemoryRegion.alias("win", ram, 0x1000, 0x3000))
    for k, mr in enumerate(regions):
        root.add_subregion(k * 0x1800, mr, k % 3 - 1)
    asp = system.address_space(root, "memory")
    with_nops = nops != "none"
    listener = NopCalls(False) if nops == "overridden" else Calls(with_nops)
    asp.register_listener(listener)
    for what, k, x in steps:
        mr = regions[k]
        old_view = asp.flatview
        old = old_view.ranges
        listener.calls.clear()
        if what == "move":
            mr.set_address(x * 0x800)
        elif what == "toggle":
            mr.set_enabled(not mr.enabled)
        elif what == "log":
            mr.set_log(bool(x & 1), 1 << (x % 3))
        elif what == "readonly":
            mr.set_readonly(not mr.readonly)
        else:
            mr.set_size(min(0x800 * (x + 1), 0x2000 if mr.kind == "ram" else 0x800))
        if asp.flatview is old_view:      # an edit that changed nothing commits nothing
            assert listener.calls == []
        else:
            assert listener.calls == reference_passes(old, asp.flatview.ranges, with_nops)


# A commit that leaves a listener's view unchanged reports nothing, and must
# leave nothing allocated behind either (it leaked 48 bytes per range).

def test_comparing_two_equal_views_hands_back_no_array_to_free():
    from pymem._native import ffi, lib
    ranges = ffi.new("pm_range[]", 3)
    for i in range(3):
        ranges[i].start, ranges[i].last, ranges[i].region = i * 0x1000, i * 0x1000 + 0xfff, i
    out, count = ffi.new("pm_diff **"), ffi.new("size_t *")
    assert lib.pm_ranges_diff(ranges, 3, ranges, 3, 0, out, count) == 0
    assert count[0] == 0 and out[0] == ffi.NULL


def c_heap_in_use() -> int:
    """glibc's bytes in use (mallinfo2); C allocations that tracemalloc cannot see."""
    import ctypes

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL(None)
    if not hasattr(libc, "mallinfo2"):
        pytest.skip("needs glibc's mallinfo2 to see the C heap")
    libc.mallinfo2.restype = MallInfo2
    info = libc.mallinfo2()
    return info.uordblks + info.hblkhd


def test_commits_that_leave_a_listeners_view_unchanged_do_not_grow_the_c_heap():
    import gc

    from pymem import rcu
    system = MemorySystem()
    root = MemoryRegion.container("system", 1 << 32)
    n = 2000
    with system.transaction():
        for i in range(n):
            root.add_subregion(i * 0x1000, MemoryRegion.io(f"dev{i}", 0x1000, OPS))
    asp = system.address_space(root, "memory")
    asp.register_listener(MemoryListener())   # one listener: the diff runs in C
    other = MemoryRegion.container("other", 1 << 40)
    system.address_space(other, "side")

    def commits(k):
        for _ in range(k):
            other.set_size((1 << 40) - 1)
            other.set_size(1 << 40)
        rcu.drain_call_rcu()
        gc.collect()

    commits(5)   # warm up the allocator's free lists
    before = c_heap_in_use()
    commits(10)
    grown = c_heap_in_use() - before
    leaked_before_the_fix = 20 * n * 48
    assert grown < leaked_before_the_fix // 10, f"C heap grew by {grown} bytes in 20 commits"
