"""ViewListeners (pymem.listener.ViewListener) hear whole views: once per
address space per commit, after the publish, with the old view still alive;
a commit whose only listeners are ViewListeners makes no sections."""
from __future__ import annotations

from typing import List

import pytest

from pymem import EditDuringCommitError, MemoryListener, MemoryRegion, MemorySystem
from pymem import listener as listener_module
from pymem.listener import ViewListener


class Views(ViewListener):
    def __init__(self) -> None:
        self.calls: List[tuple] = []

    def view_changed(self, asp, old, new):
        # What the space publishes at the time of the call, and both views'
        # ranges (the old one must still be readable).
        self.calls.append((asp.name, asp.flatview is new if new is not None else None,
                           None if old is None else [(r.addr, r.size, r.region.name)
                                                     for r in old.ranges],
                           None if new is None else [(r.addr, r.size, r.region.name)
                                                     for r in new.ranges]))

    def begin(self):
        raise AssertionError("a ViewListener is never told begin")

    def commit(self):
        raise AssertionError("a ViewListener is never told commit")


@pytest.fixture
def board():
    system = MemorySystem()
    root = MemoryRegion.container("system", 1 << 32)
    banks = MemoryRegion.ram("banks", 0x2000)
    window = MemoryRegion.alias("window", banks, 0, 0x1000)
    root.add_subregion(0x1000, window)
    asp = system.address_space(root, "memory")
    return system, root, window, asp


def test_registering_shows_the_current_view_and_unregistering_takes_it_away(board):
    system, root, window, asp = board
    views = Views()
    asp.register_listener(views)
    assert views.calls == [("memory", True, None, [(0x1000, 0x1000, "banks")])]
    asp.unregister_listener(views)
    assert views.calls[1] == ("memory", None, [(0x1000, 0x1000, "banks")], None)


def test_a_commit_tells_the_old_and_new_view_after_the_publish(board):
    system, root, window, asp = board
    views = Views()
    asp.register_listener(views)
    window.set_alias_offset(0x1000)
    name, published, old, new = views.calls[-1]
    assert (name, published) == ("memory", True)
    assert old == new == [(0x1000, 0x1000, "banks")]   # same place, other bank
    assert asp.flatview.ranges[0].offset_in_region == 0x1000


def test_every_commit_tells_a_new_view_even_with_the_same_ranges(board):
    # QEMU renders every space's view again at every commit, so a listener
    # hears each one (as QEMU's would, as nops); the ranges tell it apart.
    system, root, window, asp = board
    other = system.address_space(MemoryRegion.container("other", 0x1000), "other")
    views = Views()
    asp.register_listener(views)
    other.root.add_subregion(0, MemoryRegion.ram("scratch", 0x1000))
    assert len(views.calls) == 2
    assert views.calls[1][2] == views.calls[1][3] == [(0x1000, 0x1000, "banks")]


def test_only_view_listeners_make_no_sections(board, monkeypatch):
    system, root, window, asp = board
    asp.register_listener(Views())
    made = []
    real = listener_module.section_from_flat_range
    monkeypatch.setattr(listener_module, "section_from_flat_range",
                        lambda fr, fv: made.append(fr) or real(fr, fv))
    window.set_alias_offset(0x1000)
    assert made == []


def test_plain_listeners_beside_view_listeners_still_hear_sections(board):
    system, root, window, asp = board
    log: List[tuple] = []

    class Plain(MemoryListener):
        def region_add(self, section):
            log.append(("add", section.offset_within_region))

        def region_del(self, section):
            log.append(("del", section.offset_within_region))

    views = Views()
    asp.register_listener(views)
    asp.register_listener(Plain())
    window.set_alias_offset(0x1000)
    assert log[-2:] == [("del", 0), ("add", 0x1000)]
    assert views.calls[-1][1] is True and len(views.calls) == 2


def test_an_exception_from_a_view_listener_is_raised_after_the_commit(board):
    system, root, window, asp = board

    class Raises(ViewListener):
        armed = False

        def view_changed(self, asp, old, new):
            if self.armed:
                raise RuntimeError("view listener failed")

    raises = Raises()
    asp.register_listener(raises)
    views = Views()
    asp.register_listener(views)
    raises.armed = True
    with pytest.raises(RuntimeError, match="view listener failed"):
        window.set_alias_offset(0x1000)
    # Everybody heard it and the view is published all the same.
    assert views.calls[-1][3] == [(0x1000, 0x1000, "banks")]
    assert asp.flatview.ranges[0].offset_in_region == 0x1000


def test_an_edit_from_a_view_listener_is_refused(board):
    system, root, window, asp = board
    seen = []

    class Edits(ViewListener):
        def view_changed(self, asp, old, new):
            if old is not None and new is not None:
                try:
                    window.set_alias_offset(0)
                except EditDuringCommitError as exc:
                    seen.append(exc)

    asp.register_listener(Edits())
    window.set_alias_offset(0x1000)
    assert len(seen) == 1
    assert asp.flatview.ranges[0].offset_in_region == 0x1000


def test_destroying_the_space_takes_the_view_away(board):
    system, root, window, asp = board
    views = Views()
    asp.register_listener(views)
    asp.destroy()
    assert views.calls[-1][2:] == ([(0x1000, 0x1000, "banks")], None)
