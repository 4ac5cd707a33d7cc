"""Rendering a region tree into a FlatView, as QEMU-SEMANTICS §1 says, and the
dispatch built from it checked against a model that walks the tree."""
from __future__ import annotations

import contextlib
import itertools
import os
import sys
import threading
import time
from typing import List, Optional

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from pymem import (MemoryRegion, MemoryRegionOps, MemorySystem, ReadOnlyAttributeError,
                   TopologyError)
from pymem.dispatch import NO_REGION, SECTION_RAM, SECTION_READONLY
from pymem.flatview import render

from .tree_model import owner, probes

OPS = MemoryRegionOps(lambda offset, size: 0, lambda offset, value, size: None)


def spans(root: MemoryRegion) -> List[tuple]:
    return [(r.addr, r.size, r.region.name, r.offset_in_region, r.readonly)
            for r in render(root)]


def test_higher_priority_wins_an_overlap_whatever_the_order():
    root = MemoryRegion.container("root", 0x10000)
    high = MemoryRegion.io("high", 0x1000, OPS)
    low = MemoryRegion.ram("low", 0x4000)
    root.add_subregion(0x1000, high, 1)
    root.add_subregion(0, low, 0)
    assert spans(root) == [(0, 0x1000, "low", 0, False), (0x1000, 0x1000, "high", 0, False),
                           (0x2000, 0x2000, "low", 0x2000, False)]


def test_region_added_last_wins_among_equal_priorities():
    root = MemoryRegion.container("root", 0x10000)
    first = MemoryRegion.io("first", 0x1000, OPS)
    second = MemoryRegion.io("second", 0x1000, OPS)
    root.add_subregion(0, first)
    root.add_subregion(0x800, second)
    assert spans(root) == [(0, 0x800, "first", 0, False), (0x800, 0x1000, "second", 0, False)]


def test_terminating_region_with_children_fills_only_the_gaps():
    io = MemoryRegion.io("io", 0x100, OPS)
    io.add_subregion(0x10, MemoryRegion.io("dev", 0x10, OPS))
    assert spans(io) == [(0, 0x10, "io", 0, False), (0x10, 0x10, "dev", 0, False),
                         (0x20, 0xe0, "io", 0x20, False)]


def test_disabled_region_hides_its_whole_subtree():
    root = MemoryRegion.container("root", 0x10000)
    bus = MemoryRegion.container("bus", 0x1000)
    bus.add_subregion(0, MemoryRegion.ram("ram", 0x1000))
    root.add_subregion(0x2000, bus)
    bus.set_enabled(False)
    assert spans(root) == []


def test_alias_renders_its_target_window_at_its_own_address():
    ram = MemoryRegion.ram("ram", 0x10000)
    root = MemoryRegion.container("root", 1 << 64)
    root.add_subregion(0x100000, MemoryRegion.alias("win", ram, 0x3000, 0x2000))
    assert spans(root) == [(0x100000, 0x2000, "ram", 0x3000, False)]


def test_alias_of_an_alias_composes_offsets_and_clips_to_each_window():
    ram = MemoryRegion.ram("ram", 0x10000)
    inner = MemoryRegion.alias("inner", ram, 0x1000, 0x4000)
    outer = MemoryRegion.alias("outer", inner, 0x3000, 0x4000)
    root = MemoryRegion.container("root", 1 << 64)
    root.add_subregion(0x8000, outer)
    assert spans(root) == [(0x8000, 0x1000, "ram", 0x4000, False)]


def test_read_only_alias_does_not_merge_with_the_writable_path_to_the_same_ram():
    ram = MemoryRegion.ram("ram", 0x4000)
    ro = MemoryRegion.alias("ro", ram, 0x1000, 0x1000)
    ro.set_readonly(True)
    root = MemoryRegion.container("root", 1 << 64)
    root.add_subregion(0, ram)
    root.add_subregion(0x1000, ro, 1)
    assert spans(root) == [(0, 0x1000, "ram", 0, False), (0x1000, 0x1000, "ram", 0x1000, True),
                           (0x2000, 0x2000, "ram", 0x2000, False)]


def test_neighbours_that_continue_each_other_merge_into_one_range():
    ram = MemoryRegion.ram("ram", 0x4000)
    root = MemoryRegion.container("root", 1 << 64)
    root.add_subregion(0, MemoryRegion.alias("lo", ram, 0, 0x2000))
    root.add_subregion(0x2000, MemoryRegion.alias("hi", ram, 0x2000, 0x2000))
    assert spans(root) == [(0, 0x4000, "ram", 0, False)]


def test_view_root_address_shifts_the_whole_rendering():
    bios = MemoryRegion.rom("bios", 0x1000)
    pci = MemoryRegion.container("pci", 1 << 64)
    pci.add_subregion(0xfffff000, bios)
    assert spans(bios) == [(0xfffff000, 0x1000, "bios", 0, True)]


def test_subregion_beyond_its_container_is_clipped():
    root = MemoryRegion.container("root", 0x1000)
    root.add_subregion(0x800, MemoryRegion.ram("ram", 0x1000))
    assert spans(root) == [(0x800, 0x800, "ram", 0, False)]


def test_region_covering_the_whole_64_bit_space_renders():
    io = MemoryRegion.io("all", 1 << 64, OPS)
    assert spans(io) == [(0, 1 << 64, "all", 0, False)]


def test_alias_loop_is_rendered_round_until_its_window_is_empty():
    # As Arm SSE's `alias 3` (QEMU-SEMANTICS §1): "mirror" shows its own
    # container from 0x2000 at 0x4000, so each trip moves the window up by
    # 0x2000 and clips it: [0x4000, 0xc000), then [0x6000, 0xc000),
    # [0x8000, 0xc000), [0xa000, 0xc000), then nothing.
    cpu = MemoryRegion.container("cpu", 0x10000)
    cpu.add_subregion(0, MemoryRegion.ram("ram", 0x1000))
    seen = []
    dev_ops = MemoryRegionOps(lambda offset, size: seen.append(offset) or 0x5a,
                              lambda offset, value, size: None)
    cpu.add_subregion(0x2000, MemoryRegion.io("dev", 0x1000, dev_ops))
    mirror = MemoryRegion.alias("mirror", cpu, 0x2000, 0x8000)
    cpu.add_subregion(0x4000, mirror, -1)
    # Trip 1 (base 0x2000): ram at 0x2000 is outside the clip, dev lands at
    # 0x4000; trips 2-4 put dev at 0x6000, 0x8000, 0xa000.
    assert spans(cpu) == [(0, 0x1000, "ram", 0, False), (0x2000, 0x1000, "dev", 0, False),
                          (0x4000, 0x1000, "dev", 0, False), (0x6000, 0x1000, "dev", 0, False),
                          (0x8000, 0x1000, "dev", 0, False), (0xa000, 0x1000, "dev", 0, False)]
    # An address space on it reaches dev through four trips round the loop.
    asp = MemorySystem().address_space(cpu, "cpu-memory")
    assert asp.read(0xa010, 1) == b"\x5a" and seen == [0x10]
    assert asp.flatview.lookup(0x5000) is None


def test_alias_loop_downwards_and_overlapping_pieces_keep_render_order():
    # Shift -0x1000 per trip ("down" at 0 shows the container from 0x1000);
    # "ram" (prio 1) overlaps every trip's copy of "dev", and wins each time.
    top = MemoryRegion.container("top", 0x4000)
    top.add_subregion(0x1000, MemoryRegion.ram("ram", 0x800), 1)
    top.add_subregion(0x1400, MemoryRegion.io("dev", 0x1000, OPS))
    down = MemoryRegion.alias("down", top, 0x1000, 0x3000)
    top.add_subregion(0, down, -1)
    # Trip 1 (base -0x1000): ram [0, 0x800), dev [0x400, 0x1400) -> [0x800, 0x1400)
    # after ram; trip 2 (base -0x2000, clip [0, 0x2000)): ram [-0x1000, -0x800)
    # and dev [-0xc00, 0x400) -> [0, 0x400) is already taken.  Top level:
    # ram [0x1000, 0x1800), dev [0x1800, 0x2400) over the down copies.
    assert spans(top) == [(0, 0x800, "ram", 0, False), (0x800, 0x800, "dev", 0x400, False),
                          (0x1000, 0x800, "ram", 0, False), (0x1800, 0xc00, "dev", 0x400, False)]


def test_a_tree_nested_far_deeper_than_pythons_recursion_limit_renders():
    depth = 20 * sys.getrecursionlimit()
    root = MemoryRegion.container("root", 1 << 64)
    inner = root
    for i in range(depth):
        child = MemoryRegion.container(f"level{i}", 1 << 40)
        inner.add_subregion(0x10, child)
        inner = child
    inner.add_subregion(0, MemoryRegion.ram("ram", 0x1000))
    system = MemorySystem()
    asp = system.address_space(root, "memory")
    assert spans(root) == [(0x10 * depth, 0x1000, "ram", 0, False)]
    asp.stl_le(0x10 * depth + 4, 0x12345678)
    assert asp.ldl_le(0x10 * depth + 4) == 0x12345678


def test_edits_reach_the_renderer_and_attributes_cannot_bypass_them():
    root = MemoryRegion.container("root", 1 << 64)
    ram = MemoryRegion.ram("ram", 0x4000)
    other = MemoryRegion.ram("other", 0x4000)
    window = MemoryRegion.alias("window", ram, 0x1000, 0x1000)
    root.add_subregion(0x10000, window)
    assert spans(root) == [(0x10000, 0x1000, "ram", 0x1000, False)]
    with pytest.raises(ReadOnlyAttributeError, match="'alias' is read-only"):
        window.alias = other             # the attribute, not an edit method
    window.set_alias_offset(0x2000)
    window.set_readonly(True)
    assert spans(root) == [(0x10000, 0x1000, "ram", 0x2000, True)]
    window.set_size(0x800)
    window.set_address(0x20000)
    assert spans(root) == [(0x20000, 0x800, "ram", 0x2000, True)]
    root.del_subregion(window)
    assert spans(root) == []


def test_dispatch_flags_say_ram_and_readonly():
    system = MemorySystem()
    root = MemoryRegion.container("root", 1 << 64)
    root.add_subregion(0, MemoryRegion.ram("ram", 0x1000))
    root.add_subregion(0x1000, MemoryRegion.rom("rom", 0x1000))
    view = system.address_space(root, "memory").flatview
    d = view.dispatch
    assert d.section(d.lookup(0x10)).flags == SECTION_RAM
    assert d.section(d.lookup(0x1010)).flags == SECTION_RAM | SECTION_READONLY
    assert [r.flags for r in view.ranges] == [SECTION_RAM, SECTION_RAM | SECTION_READONLY]


# --------------------------------------------------------------- properties

SIZES = [0x10, 0x100, 0x800, 0x1000, 0x1800, 0x3000, 0x10000]
OFFSETS = st.one_of(st.sampled_from([0, 0x1000, 0x2000, 0x8000]),
                    st.integers(0, 0x20000 // 0x10).map(lambda x: x * 0x10))
PRIORITIES = st.sampled_from([-1, 0, 0, 0, 1, 2])


@st.composite
def trees(draw):
    """A root container and a pool of regions: nested containers, RAM, ROM,
    MMIO, aliases (of anything earlier, aliases included), some disabled,
    some aliases read-only, some only reachable through aliases, and alias
    loops: an alias mapped inside the container it shows, shifting by a
    fraction of its window (rendered round a few times), by nothing or
    both ways (refused)."""
    root = MemoryRegion.container("root", draw(st.sampled_from([1 << 64, 0x20000])))
    pool = [root]
    for i in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["container", "ram", "rom", "io", "io", "alias", "alias",
                                     "loop"]))
        size = draw(st.sampled_from(SIZES))
        name = f"{kind}{i}"
        if kind == "container":
            mr = MemoryRegion.container(name, size)
        elif kind == "ram":
            mr = MemoryRegion.ram(name, size)
        elif kind == "rom":
            mr = MemoryRegion.rom(name, size)
        elif kind == "io":
            mr = MemoryRegion.io(name, size, OPS)
        elif kind == "loop":
            target = draw(st.sampled_from([p for p in pool if p.kind == "container"]))
            offset = draw(st.integers(0, 0x2000 // 0x10)) * 0x10
            mr = MemoryRegion.alias(name, target, offset, size)
            # Placed in its own target: each trip round moves the window by
            # addr - offset.
            shift = draw(st.sampled_from([size, size // 2, size // 4, size // 8, 0, -size // 2,
                                          -size // 4]))
            try:
                target.add_subregion(max(offset + shift, 0), mr, draw(PRIORITIES))
            except TopologyError:
                pass
            pool.append(mr)
            continue
        else:
            target = draw(st.sampled_from(pool))
            mr = MemoryRegion.alias(name, target, draw(st.integers(0, 0x2000 // 0x10)) * 0x10,
                                    size)
            if draw(st.booleans()):
                mr.set_readonly(True)
        if draw(st.integers(0, 9)) == 0:
            mr.set_enabled(False)
        if draw(st.integers(0, 5)) > 0:
            parents = [p for p in pool if p.kind != "alias"]
            parent = draw(st.sampled_from(parents))
            try:
                parent.add_subregion(draw(OFFSETS), mr, draw(PRIORITIES))
            except TopologyError:
                pass
        pool.append(mr)
    return root, pool


def describe(pool: List[MemoryRegion]) -> str:
    """The pool as text, for hypothesis to print with a failing example."""
    lines = []
    for mr in pool:
        where = (f"in {mr.container.name} @{mr.addr:#x} prio {mr.priority}"
                 if mr.container is not None else "unmapped")
        extra = (f" -> {mr.alias.name} +{mr.alias_offset:#x}" if mr.alias is not None else "")
        flags = ("" if mr.enabled else " disabled") + (" ro" if mr.readonly else "")
        lines.append(f"{mr.name} size {mr.size:#x} {where}{extra}{flags}")
    return "\n".join(lines)


def assert_dispatch_matches_model(system: MemorySystem, extra: List[int]) -> None:
    for asp in system.address_spaces:
        view = asp.flatview
        d = view.dispatch
        points = probes(asp.root, extra)
        for addr in points:
            expect = owner(asp.root, addr)
            section, offset, _ = d.translate(addr)
            s = d.section(section)
            if expect is None:
                assert s.region == NO_REGION, (asp.name, hex(addr), s)
            else:
                assert (s.region, offset, bool(s.flags & SECTION_READONLY)) == \
                    (expect.region.id, expect.offset, expect.readonly), (asp.name, hex(addr))
        ranges = view.ranges
        for a, b in zip(ranges, ranges[1:]):
            assert a.addr + a.size <= b.addr
            # Merged: no neighbour that merely continues the previous range.
            assert not (a.addr + a.size == b.addr and a.region is b.region
                        and a.offset_in_region + a.size == b.offset_in_region
                        and (a.readonly, a.nonvolatile, a.romd, a.dirty_log)
                        == (b.readonly, b.nonvolatile, b.romd, b.dirty_log))


def edit(draw, pool: List[MemoryRegion]) -> None:
    mr: MemoryRegion = draw(st.sampled_from(pool))
    action = draw(st.sampled_from(["enable", "move", "alias_offset", "readonly", "del",
                                   "add", "size"]))
    try:
        if action == "enable":
            mr.set_enabled(not mr.enabled)
        elif action == "move":
            mr.set_address(draw(OFFSETS))
        elif action == "alias_offset" and mr.kind == "alias":
            mr.set_alias_offset(draw(st.integers(0, 0x2000 // 0x10)) * 0x10)
        elif action == "readonly":
            mr.set_readonly(not mr.readonly)
        elif action == "del" and mr.container is not None:
            mr.container.del_subregion(mr)
        elif action == "add" and mr.container is None:
            parent = draw(st.sampled_from([p for p in pool if p.kind != "alias"]))
            parent.add_subregion(draw(OFFSETS), mr, draw(PRIORITIES))
        elif action == "size" and mr.kind in ("container", "io", "alias"):
            mr.set_size(draw(st.sampled_from(SIZES)))
    except TopologyError:
        pass


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_dispatch_resolves_every_probe_like_the_tree_model_after_every_commit(data):
    root, pool = data.draw(trees())
    system = MemorySystem()
    system.address_space(root, "memory")
    alias_root = MemoryRegion.alias("root-alias", root, 0, root.size)
    system.address_space(alias_root, "via-alias")
    extra = data.draw(st.lists(st.integers(0, 0x30000), max_size=8))
    note(describe(pool))
    assert_dispatch_matches_model(system, extra)
    for _ in range(data.draw(st.integers(1, 6))):
        if data.draw(st.booleans()):
            with system.transaction():
                for _ in range(data.draw(st.integers(1, 4))):
                    edit(data.draw, pool)
        else:
            edit(data.draw, pool)
        note(describe(pool))
        assert_dispatch_matches_model(system, extra)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_a_second_root_inside_the_same_tree_resolves_like_the_model(data):
    root, pool = data.draw(trees())
    system = MemorySystem()
    system.address_space(root, "memory")
    inner: Optional[MemoryRegion] = data.draw(st.sampled_from(pool))
    system.address_space(inner, "inner")
    assert_dispatch_matches_model(system, [])
    edit(data.draw, pool)
    assert_dispatch_matches_model(system, [])


def test_pieces_whose_offsets_wrap_past_2_64_do_not_merge():
    # Byte 2^64 - 1 of a whole-space device, then its byte 0: neighbours in
    # the address space but not in the region (QEMU compares in 128 bits).
    dev = MemoryRegion.io("dev", 1 << 64, OPS)
    root = MemoryRegion.container("root", 1 << 64)
    root.add_subregion(0, MemoryRegion.alias("last", dev, (1 << 64) - 1, 1))
    root.add_subregion(1, MemoryRegion.alias("first", dev, 0, 1))
    assert spans(root) == [(0, 1, "dev", (1 << 64) - 1, False), (1, 1, "dev", 0, False)]


def wide_bus(n: int) -> MemoryRegion:
    root = MemoryRegion.container("root", 1 << 64)
    for i in range(n):
        root.add_subregion(i * 0x1000, MemoryRegion.io(f"d{i}", 0x1000, OPS))
    return root


@contextlib.contextmanager
def repeated_in_another_thread(step):
    """Run `step` over and over in a thread for as long as the block runs."""
    stop = threading.Event()

    def loop():
        while not stop.is_set():
            step()

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def test_rendering_while_another_thread_edits_and_drops_regions_is_safe():
    # C renders without the GIL; edits in other threads wait for it (the
    # tree lock), so a region dropped meanwhile is never walked once freed.
    root = wide_bus(20_000)
    names = itertools.count()

    def churn():
        extra = MemoryRegion.ram(f"hot{next(names)}", 0x1000)
        root.add_subregion(1 << 40, extra, priority=-1)
        extra.set_address((1 << 40) + 0x1000)
        root.del_subregion(extra)

    with repeated_in_another_thread(churn):
        counts = {len(render(root)) for _ in range(30)}
    assert counts <= {20_000, 20_001}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_fork_while_another_thread_renders_leaves_the_child_able_to_render():
    root = wide_bus(20_000)
    with repeated_in_another_thread(lambda: render(root)):
        for _ in range(5):
            pid = os.fork()
            if pid == 0:     # the child: build and render, then leave at once
                mr = MemoryRegion.container("child", 1 << 20)
                mr.add_subregion(0, MemoryRegion.ram("ram", 0x1000))
                os._exit(0 if len(render(mr)) == 1 else 1)
            deadline = time.monotonic() + 20
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                if time.monotonic() > deadline:
                    os.kill(pid, 9)
                    os.waitpid(pid, 0)
                    raise AssertionError("the forked child hung")
                time.sleep(0.01)
            assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def test_range_at_and_first_range_after_agree_with_the_built_ranges():
    # A view's ranges read one at a time from C (the unicorn binding's way
    # into a big view) are the ones `ranges` builds, before and after it did.
    from pymem import machines

    system = machines.load("q35")
    for view in system.flatviews():
        probes_at = [0, 0xfff, 0x1000, (1 << 64) - 1]
        for i in range(view.range_count):
            fr = view.range_at(i)
            probes_at += [fr.addr, fr.end - 1, fr.end]
        probes_at = [a for a in probes_at if a < 1 << 64]
        found = [view.first_range_after(a) for a in probes_at]
        ranges = view.ranges
        assert [view.range_at(i).addr for i in range(len(ranges))] == [r.addr for r in ranges]
        for a, index in zip(probes_at, found):
            want = next((i for i, r in enumerate(ranges) if r.end > a), len(ranges))
            assert index == want == view.first_range_after(a)


def test_range_at_refuses_an_index_past_the_view_before_reading_c_memory():
    # Before `ranges` is built, range_at reads C's array: an index past its
    # end (or before it) must be refused, not read; negative ones count from
    # the end, as `ranges[i]` does.
    from pymem import machines
    from pymem.errors import ArgumentTypeError, IndexOutOfRangeError

    view = machines.load("q35").address_spaces[0].flatview
    assert view is not None
    n = view.range_count
    last = view.range_at(-1)
    for index in (n, n + 1000, -n - 1):
        with pytest.raises(IndexOutOfRangeError, match="out of range"):
            view.range_at(index)
    with pytest.raises(ArgumentTypeError):
        view.range_at(1.0)  # type: ignore[arg-type]
    assert (last.addr, last.size) == (view.ranges[-1].addr, view.ranges[-1].size)
    with pytest.raises(IndexOutOfRangeError):
        view.range_at(n)
