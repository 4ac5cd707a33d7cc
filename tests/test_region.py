"""Region edits: what they accept, and the clear errors for what they refuse.

Every refused edit names the regions involved and leaves every address space
on its last good view (the same FlatView object, still published).
"""
from __future__ import annotations

import pytest

from pymem import (CapacityError, MemoryRegion, MemoryRegionOps, MemorySystem,
                   ReadOnlyAttributeError, TopologyError)
from pymem import flatview as flatview_module
from pymem import region as region_module

OPS = MemoryRegionOps(lambda offset, size: 0, lambda offset, value, size: None)


@pytest.fixture
def machine():
    system = MemorySystem()
    root = MemoryRegion.container("system", 1 << 64)
    ram = MemoryRegion.ram("pc.ram", 0x10000)
    root.add_subregion(0, ram)
    asp = system.address_space(root, "memory")
    return system, root, ram, asp


def assert_unchanged(asp, view):
    assert asp.flatview is view
    assert view.dispatch is not None
    assert [(r.addr, r.size, r.region.name) for r in view.ranges] == [(0, 0x10000, "pc.ram")]


def snapshot(*regions):
    """What edits may change, for every region given and its subregions."""
    return [(mr.name, mr.container, mr.addr, mr.priority, mr.size, mr.enabled,
             mr.alias_offset, list(mr.subregions)) for mr in regions]


def ranges_of(view):
    return [(r.addr, r.size, r.region.name, r.offset_in_region) for r in view.ranges]


def test_alias_cycle_that_keeps_its_window_is_refused_naming_both_regions(machine):
    system, root, ram, asp = machine
    bus = MemoryRegion.container("bus", 0x1000)
    root.add_subregion(0x100000, bus)
    view = asp.flatview
    before = ranges_of(view)
    loop = MemoryRegion.alias("loop", bus, 0, 0x1000)
    with pytest.raises(TopologyError, match="adding 'loop' to 'bus' would make a cycle that "
                                            "rendering never leaves: 'loop' -> 'bus' -> "
                                            "'loop'"):
        bus.add_subregion(0, loop)
    assert asp.flatview is view and ranges_of(view) == before
    assert loop.container is None and bus.subregions == [] and not loop._on_loop


def test_alias_loop_that_moves_its_window_is_accepted_and_rendered(machine):
    system, root, ram, asp = machine
    bus = MemoryRegion.container("bus", 0x10000)
    bus.add_subregion(0, MemoryRegion.io("dev", 0x100, OPS))
    root.add_subregion(0x100000, bus)
    # Each trip moves the window 0x1000 up and clips it: 0x3000 wide, 3 trips.
    bus.add_subregion(0x1000, MemoryRegion.alias("up", bus, 0, 0x3000))
    assert [(a - 0x100000, s, n) for a, s, n, _ in ranges_of(asp.flatview)[1:]] == \
        [(0, 0x100, "dev"), (0x1000, 0x100, "dev"), (0x2000, 0x100, "dev"),
         (0x3000, 0x100, "dev")]


def test_alias_loops_whose_shifts_cancel_are_refused_and_change_nothing(machine):
    system, root, ram, asp = machine
    bus = MemoryRegion.container("bus", 0x10000)
    root.add_subregion(0x100000, bus)
    up = MemoryRegion.alias("up", bus, 0, 0x8000)       # +0x1000 a trip
    bus.add_subregion(0x1000, up)
    view = asp.flatview
    before = ranges_of(view)
    down = MemoryRegion.alias("down", bus, 0x1000, 0x8000)   # -0x1000 a trip
    state = snapshot(bus, up, down)
    # Alone, each loop ends; together, up-then-down goes round for ever.
    with pytest.raises(TopologyError, match="adding 'down' to 'bus' would make a cycle that "
                                            "rendering never leaves: 'down' -> 'bus' -> 'up' "
                                            "-> 'bus' -> 'down'"):
        bus.add_subregion(0, down)
    assert snapshot(bus, up, down) == state
    assert asp.flatview is view and ranges_of(view) == before and view.dispatch is not None


def test_edits_that_would_make_an_accepted_loop_endless_are_refused(machine):
    system, root, ram, asp = machine
    bus = MemoryRegion.container("bus", 0x100000)
    bus.add_subregion(0, MemoryRegion.ram("sram", 0x100))
    inner = MemoryRegion.container("inner", 0x100000)
    bus.add_subregion(0, inner)
    root.add_subregion(0x100000, bus)
    mirror = MemoryRegion.alias("mirror", bus, 0x3000, 0x2000)
    inner.add_subregion(0x2000, mirror)           # 0 + 0x2000 - 0x3000: -0x1000 a trip
    view = asp.flatview
    before = ranges_of(view)
    state = snapshot(bus, inner, mirror)
    loop = "'mirror' -> 'bus' -> 'inner' -> 'mirror'"
    with pytest.raises(TopologyError, match=f"sliding alias 'mirror' to offset 0x2000 would "
                                            f"make a cycle that rendering never leaves: {loop}"):
        mirror.set_alias_offset(0x2000)
    with pytest.raises(TopologyError, match=f"moving 'mirror' to 0x3000 would .*: {loop}"):
        mirror.set_address(0x3000)
    with pytest.raises(TopologyError, match="moving 'inner' to 0x1000 would .*: 'inner' -> "
                                            "'mirror' -> 'bus' -> 'inner'"):
        inner.set_address(0x1000)
    # A window of 0x11000 would be gone round 17 times, 0x1000 a trip.
    with pytest.raises(TopologyError, match=f"resizing 'mirror' to 0x11000 would .*{loop}.*"
                                            f"more than 16 times"):
        mirror.set_size(0x11000)
    assert snapshot(bus, inner, mirror) == state
    assert asp.flatview is view and ranges_of(view) == before
    # Edits that keep it finite go through; disabling a loop, then enabling
    # it once it would be endless, is refused at the enable.
    mirror.set_size(0x10000)                      # 16 trips: the most allowed
    assert mirror.size == 0x10000 and asp.flatview is not view
    with system.transaction():
        inner.set_enabled(False)
        mirror.set_alias_offset(0x2000)
    view = asp.flatview
    with pytest.raises(TopologyError, match="enabling 'inner' would .*'inner' -> 'mirror'"):
        inner.set_enabled(True)
    assert not inner.enabled and asp.flatview is view


def test_loops_outside_every_system_are_checked_too():
    bus = MemoryRegion.container("bus", 0x1000)
    with pytest.raises(TopologyError, match="'self' -> 'bus' -> 'self'"):
        bus.add_subregion(0, MemoryRegion.alias("self", bus, 0, 0x1000))
    bus.add_subregion(0x800, MemoryRegion.alias("half", bus, 0, 0x800))
    assert [(r.addr, r.size) for r in flatview_module.render(bus)] == []


def test_a_loop_made_endless_behind_the_edits_back_fails_to_render_by_name():
    bus = MemoryRegion.container("bus", 0x1000)
    bus.add_subregion(0, MemoryRegion.io("dev", 0x10, OPS))
    half = MemoryRegion.alias("half", bus, 0, 0x800)
    bus.add_subregion(0x800, half)
    region_module._set(half, "addr", 0)   # behind the edits' back: nothing checks it
    with pytest.raises(TopologyError, match="rendering 'bus': 'half' -> 'bus' -> 'half' "
                                            "never leaves its window"):
        flatview_module.render(bus)


def test_a_commit_whose_render_fails_in_c_names_the_failure_and_keeps_the_last_view():
    # A commit renders in C (_fastpath.render_view); a failure there frees
    # what C made and the Python render names it.
    system = MemorySystem()
    bus = MemoryRegion.container("bus", 0x1000)
    bus.add_subregion(0, MemoryRegion.io("dev", 0x10, OPS))
    asp = system.address_space(bus, "space")
    half = MemoryRegion.alias("half", bus, 0, 0x800)
    bus.add_subregion(0x800, half)
    view = asp.flatview
    live = system.live_dispatches
    region_module._set(half, "addr", 0)   # behind the edits' back: nothing checks it
    with pytest.raises(TopologyError, match="rendering 'bus': 'half' -> 'bus' -> 'half' "
                                            "never leaves its window"):
        with system.transaction():
            system._update_pending = True
    assert asp.flatview is view
    assert system.live_dispatches == live


def test_a_loop_of_empty_windows_renders_nothing_and_has_a_flatview_root():
    system = MemorySystem()
    bus = MemoryRegion.container("bus", 0)
    bus.add_subregion(0, MemoryRegion.alias("none", bus, 0, 0))
    asp = system.address_space(bus, "empty")
    assert asp.flatview.ranges == []
    assert flatview_module.get_flatview_root(bus) is bus


def test_cycle_through_aliases_of_aliases_is_refused(machine):
    system, root, ram, asp = machine
    a = MemoryRegion.container("a", 0x1000)
    b = MemoryRegion.container("b", 0x1000)
    to_a = MemoryRegion.alias("to-a", a, 0, 0x1000)
    to_to_a = MemoryRegion.alias("to-to-a", to_a, 0, 0x1000)
    b.add_subregion(0, to_to_a)
    to_b = MemoryRegion.alias("to-b", b, 0, 0x1000)
    with pytest.raises(TopologyError, match="'to-b' -> 'b' -> 'to-to-a' -> 'to-a' -> 'a'"):
        a.add_subregion(0, to_b)


def test_region_added_under_its_own_descendant_is_refused(machine):
    system, root, ram, asp = machine
    view = asp.flatview
    outer = MemoryRegion.container("outer", 0x1000)
    inner = MemoryRegion.container("inner", 0x1000)
    outer.add_subregion(0, inner)
    with pytest.raises(TopologyError, match="'outer' to 'inner'.*cycle"):
        inner.add_subregion(0, outer)
    with pytest.raises(TopologyError, match="cycle"):
        root.add_subregion(0, root)
    assert_unchanged(asp, view)


def test_region_added_twice_or_to_two_parents_is_refused(machine):
    system, root, ram, asp = machine
    view = asp.flatview
    with pytest.raises(TopologyError, match="'pc.ram' is already a subregion of 'system'"):
        root.add_subregion(0x20000, ram)
    other = MemoryRegion.container("other", 1 << 32)
    with pytest.raises(TopologyError, match="adding 'pc.ram' to 'other'.*already a subregion"
                                            " of 'system'"):
        other.add_subregion(0, ram)
    assert_unchanged(asp, view)


def test_deleting_a_region_that_is_not_a_child_is_refused(machine):
    system, root, ram, asp = machine
    view = asp.flatview
    stray = MemoryRegion.ram("stray", 0x1000)
    with pytest.raises(TopologyError, match="removing 'stray' from 'system'.*not mapped"):
        root.del_subregion(stray)
    bus = MemoryRegion.container("bus", 0x1000)
    with pytest.raises(TopologyError, match="removing 'pc.ram' from 'bus'.*subregion of "
                                            "'system'"):
        bus.del_subregion(ram)
    assert_unchanged(asp, view)


@pytest.mark.parametrize("make", [
    lambda: MemoryRegion.ram("big", (1 << 64) + 1),
    lambda: MemoryRegion.container("big", 1 << 65),
    lambda: MemoryRegion.io("neg", -1, OPS),
    lambda: MemoryRegion.alias("far", MemoryRegion.ram("t", 16), 1 << 64, 16),
], ids=["ram", "container", "negative", "alias-offset"])
def test_sizes_and_offsets_beyond_2_to_the_64_are_refused_at_construction(make):
    with pytest.raises(TopologyError, match="beyond 2\\^64"):
        make()


def test_offsets_and_sizes_that_run_past_2_to_the_64_are_refused_on_edit(machine):
    system, root, ram, asp = machine
    view = asp.flatview
    dev = MemoryRegion.io("dev", 0x1000, OPS)
    with pytest.raises(TopologyError, match="'dev' to 'system'.*beyond 2\\^64"):
        root.add_subregion(1 << 64, dev)
    with pytest.raises(TopologyError, match="'dev' to 'system'.*runs past 2\\^64"):
        root.add_subregion((1 << 64) - 0x800, dev)
    with pytest.raises(TopologyError, match="moving 'pc.ram'.*runs past 2\\^64"):
        ram.set_address((1 << 64) - 0x100)
    with pytest.raises(TopologyError, match="'pc.ram'.*beyond 2\\^64"):
        ram.set_size((1 << 64) + 1)
    assert_unchanged(asp, view)


def test_a_failed_commit_leaves_every_address_space_on_its_last_good_view(machine, monkeypatch):
    system, root, ram, asp = machine
    other = system.address_space(MemoryRegion.alias("all", root, 0, 1 << 64), "cpu")
    view = asp.flatview

    def refuse(*args, **kwargs):
        raise CapacityError("more sections than a dispatch entry can address")

    # Both renders: a commit's in C, and the Python one it falls back to.
    monkeypatch.setattr(flatview_module, "_render_view", refuse)
    monkeypatch.setattr(flatview_module, "_render", refuse)
    with pytest.raises(CapacityError):
        root.add_subregion(0x20000, MemoryRegion.ram("more", 0x1000))
    assert asp.flatview is view and other.flatview is view
    assert_unchanged(asp, view)
    monkeypatch.undo()
    # The change is still pending: the next commit brings the view up to date.
    with system.transaction():
        system._update_pending = True
    assert [r.region.name for r in asp.flatview.ranges] == ["pc.ram", "more"]


def test_regions_of_two_systems_cannot_be_mixed(machine):
    system, root, ram, asp = machine
    other_root = MemoryRegion.container("other", 1 << 32)
    MemorySystem().address_space(other_root, "elsewhere")
    with pytest.raises(TopologyError, match="different MemorySystems"):
        root.add_subregion(0x100000, other_root)


def test_alias_cannot_hold_subregions():
    alias = MemoryRegion.alias("win", MemoryRegion.ram("ram", 0x1000), 0, 0x1000)
    with pytest.raises(TopologyError, match="'win' is an alias"):
        alias.add_subregion(0, MemoryRegion.ram("x", 0x10))


def test_kind_specific_setters_refuse_other_kinds():
    ram = MemoryRegion.ram("ram", 0x1000)
    with pytest.raises(TopologyError, match="'ram' is not an alias"):
        ram.set_alias_offset(0x10)
    with pytest.raises(TopologyError, match="'ram' is not a ROM device"):
        ram.set_romd(False)


def test_wrong_argument_types_raise_type_error():
    root = MemoryRegion.container("root", 0x1000)
    with pytest.raises(TypeError):
        root.add_subregion(0, "not a region")
    with pytest.raises(TypeError):
        root.add_subregion(0.5, MemoryRegion.ram("r", 0x10))
    with pytest.raises(TypeError):
        MemoryRegion.io("dev", 0x10, ops=None)
    with pytest.raises(TypeError):
        MemoryRegion.alias("a", "target", 0, 0x10)


def test_ram_uses_the_callers_buffer_and_checks_its_size():
    backing = bytearray(0x1000)
    ram = MemoryRegion.ram("ram", 0x1000, buffer=backing)
    ram.buffer[5] = 0xAA
    assert backing[5] == 0xAA
    with pytest.raises(ValueError, match="holds 0x10 bytes, size is 0x1000"):
        MemoryRegion.ram("small", 0x1000, buffer=bytearray(16))
    with pytest.raises(ValueError, match="read-only"):
        MemoryRegion.ram("ro", 4, buffer=b"abcd")


def test_own_ram_is_zeroed_and_writable():
    ram = MemoryRegion.ram("ram", 0x2000)
    assert bytes(ram.buffer[:16]) == bytes(16)
    ram.buffer[0x1fff] = 7
    assert ram.buffer[0x1fff] == 7


def test_rom_holds_its_data_and_renders_read_only():
    rom = MemoryRegion.rom("bios", data=b"\x55\xaa")
    assert rom.size == 2 and bytes(rom.buffer) == b"\x55\xaa"
    assert rom.readonly and rom.type_name() == "rom"


def test_subregions_list_highest_priority_first_and_newest_first_among_equals():
    root = MemoryRegion.container("root", 0x10000)
    a, b, c, d = (MemoryRegion.io(n, 0x10, OPS) for n in "abcd")
    root.add_subregion(0, a, 0)
    root.add_subregion(0x10, b, 1)
    root.add_subregion(0x20, c, 0)
    root.add_subregion(0x30, d, -1)
    assert [r.name for r in root.subregions] == ["b", "c", "a", "d"]


def test_container_and_alias_are_constructors_on_the_class_and_links_on_instances():
    bus = MemoryRegion.container("bus", 0x1000)
    ram = MemoryRegion.ram("ram", 0x1000)
    win = MemoryRegion.alias("win", ram, 0, 0x1000)
    bus.add_subregion(0, win)
    assert win.container is bus and win.alias is ram
    assert bus.container is None and ram.alias is None


def test_regions_are_found_by_id():
    ram = MemoryRegion.ram("ram", 0x10)
    assert MemoryRegion.by_id(ram.id) is ram


def test_memory_too_large_to_map_is_refused_when_the_region_is_made():
    with pytest.raises(TopologyError, match="ram 'huge': cannot allocate 0x8000000000000000"):
        MemoryRegion.ram("huge", 1 << 63)
    with pytest.raises(TopologyError, match="rom 'bios': cannot allocate"):
        MemoryRegion.rom("bios", 1 << 63)


def test_a_machine_may_have_more_small_memories_than_the_process_has_mappings():
    # One anonymous mapping each would stop at vm.max_map_count (65,530).
    rams = [MemoryRegion.ram(f"buf{i}", 0x10) for i in range(70_000)]
    rams[-1].buffer[0] = 1
    assert rams[-1].buffer[0] == 1 and rams[0].buffer[0] == 0


# ------------------------------------------- fields change only through edits

def _fields_and_methods():
    ops = MemoryRegionOps(lambda o, s: 0, lambda o, v, s: None)
    return [
        ("addr", 0x1000, "set_address"), ("size", (1 << 64) + 0x10, "set_size"),
        ("enabled", False, "set_enabled"), ("readonly", True, "set_readonly"),
        ("nonvolatile", True, "set_nonvolatile"), ("romd", False, "set_romd"),
        ("alias_offset", 0x10, "set_alias_offset"), ("dirty_log", 1, "set_log"),
        ("priority", 5, "add_subregion"), ("container", None, "del_subregion"),
        ("alias", MemoryRegion.ram("other", 0x1000), "new alias"),
        ("ops", ops, "new region"), ("translate", None, "iommu"),
        ("target", None, "iommu"), ("id", 7, "fixed"), ("name", "renamed", "new region"),
        ("kind", "ram", "new region"),
    ]


@pytest.mark.parametrize("field, value, method", _fields_and_methods(),
                         ids=[f for f, _, _ in _fields_and_methods()])
def test_assigning_a_public_field_is_refused_pointing_at_its_edit_method(field, value, method):
    system = MemorySystem()
    root = MemoryRegion.container("root", 1 << 32)
    window = MemoryRegion.alias("window", MemoryRegion.ram("ram", 0x4000), 0, 0x4000)
    root.add_subregion(0, window, priority=1)
    asp = system.address_space(root, "as")
    before = getattr(window, field), [(r.addr, r.size, r.region.name)
                                      for r in asp.flatview.ranges]
    with pytest.raises(ReadOnlyAttributeError, match=f"'window'.*'{field}' is read-only.*"
                                                      f"{method}") as caught:
        setattr(window, field, value)
    assert isinstance(caught.value, AttributeError)
    with pytest.raises(ReadOnlyAttributeError):
        delattr(window, field)
    root.add_subregion(0x10000, MemoryRegion.ram("c", 0x1000))   # any commit
    assert getattr(window, field) is before[0] or getattr(window, field) == before[0]
    assert [(r.addr, r.size, r.region.name) for r in asp.flatview.ranges][:1] == before[1]


def test_priority_and_size_cannot_make_the_dump_disagree_with_the_accesses():
    # bad-input #13: `b.priority = 5` showed b as the winner while a answered.
    from pymem.qemu import format_mtree
    s = MemorySystem()
    root = MemoryRegion.container("root", 1 << 32)
    a, b = MemoryRegion.ram("a", 0x1000), MemoryRegion.ram("b", 0x1000)
    root.add_subregion(0, a, priority=1)
    root.add_subregion(0, b, priority=0)
    asp = s.address_space(root, "as")
    with pytest.raises(ReadOnlyAttributeError, match="del_subregion.*add_subregion"):
        b.priority = 5
    with pytest.raises(ReadOnlyAttributeError, match="set_size"):
        a.size = (1 << 64) + 0x10
    root.add_subregion(0x10000, MemoryRegion.ram("c", 0x1000))
    assert "(prio 1, ram): a" in format_mtree(s).splitlines()[2]
    assert asp.translate(0)[0] is a and asp.translate(0x20)[0] is a and a.size == 0x1000


def test_an_alias_cannot_be_retargeted_by_assignment():
    # c-core #5: `a.alias = other` skipped adoption; other's 4 KiB-page log
    # was then marked with the system's 1 KiB pages, past its end.
    system = MemorySystem(page_bits=10)
    root = MemoryRegion.container("system", 1 << 32)
    first = MemoryRegion.ram("first", 0x4000)
    a = MemoryRegion.alias("window", first, 0, 0x4000)
    root.add_subregion(0, a)
    asp = system.address_space(root, "memory")
    other = MemoryRegion.ram("other", 0x4000)
    with pytest.raises(ReadOnlyAttributeError, match="'alias' is read-only"):
        a.alias = other
    asp.write(0x3c00, b"x" * 16)
    assert bytes(first.buffer[0x3c00:0x3c10]) == b"x" * 16 and a.alias is first


def test_a_dirty_log_at_another_page_size_is_marked_in_its_own_pages_and_never_past_its_end():
    # The C bound under the Python rule: a log made outside the system (4 KiB
    # pages, 4 bytes for 16 KiB) reached by a 1 KiB-page view behind the
    # edits' back.  Under ASan, the old mark_dirty wrote byte 15 of 4.
    from pymem import DIRTY_MEMORY_VGA
    system = MemorySystem(page_bits=10)
    root = MemoryRegion.container("system", 1 << 32)
    a = MemoryRegion.alias("window", MemoryRegion.ram("first", 0x4000), 0, 0x4000)
    root.add_subregion(0, a)
    asp = system.address_space(root, "memory")
    other = MemoryRegion.ram("other", 0x4000)
    other.set_log(True)
    assert not other.get_dirty(0, 0x4000, DIRTY_MEMORY_VGA)   # a 4-byte log
    region_module._set(a, "alias", other)   # what `a.alias = other` used to do
    root.set_size((1 << 32) - 1)           # any commit renders `other`
    asp.write(0x3c00, b"x" * 16)
    assert bytes(other.buffer[0x3c00:0x3c10]) == b"x" * 16
    assert other.get_and_clear_dirty(0, 0x4000, DIRTY_MEMORY_VGA).pages_dirty() == [0x3000]
