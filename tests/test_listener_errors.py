"""Listeners that misbehave: one that edits the map while it is told of a
commit is refused (QEMU forbids it) and the commit stays whole; one that
raises neither keeps the others from hearing the change nor becomes
unremovable."""
from __future__ import annotations

from typing import List, Set

import pytest

from pymem import (EditDuringCommitError, MemoryListener, MemoryRegion, MemorySystem,
                   TopologyError)
from pymem.rcu import drain_call_rcu, read_lock


def _two_spaces():
    system = MemorySystem()
    a = MemoryRegion.container("a", 1 << 32)
    b = MemoryRegion.container("b", 1 << 32)
    b.add_subregion(0, MemoryRegion.ram("ram", 0x1000))
    return system, a, b, system.address_space(a, "a"), system.address_space(b, "b")


class Mapper(MemoryListener):
    """Maps `late` into `parent` from the callback named `hook`, once."""

    def __init__(self, hook: str, parent: MemoryRegion, late: MemoryRegion) -> None:
        self.hook, self.parent, self.late = hook, parent, late
        self.refused: List[BaseException] = []
        self.armed = False   # not while its registration replays the view

    def _edit(self) -> None:
        if self.armed and self.late.container is None:
            try:
                self.parent.add_subregion(0x2000, self.late)
            except EditDuringCommitError as exc:
                self.refused.append(exc)
                raise

    def begin(self):
        if self.hook == "begin":
            self._edit()

    def region_add(self, section):
        if self.hook == "region_add" and section.mr.name == "dev":
            self._edit()

    def region_del(self, section):
        if self.hook == "region_del" and section.mr.name == "dev":
            self._edit()

    def region_nop(self, section):
        if self.hook == "region_nop" and section.mr.name == "dev":
            self._edit()


@pytest.mark.parametrize("hook", ["begin", "region_add", "region_del", "region_nop"])
def test_an_edit_from_a_listener_during_a_commit_is_refused_and_the_views_stay_alive(hook):
    system, a, b, asp_a, asp_b = _two_spaces()
    dev = MemoryRegion.ram("dev", 0x1000)
    if hook in ("region_del", "region_nop"):
        a.add_subregion(0x1000, dev)
    late = MemoryRegion.ram("late", 0x1000)
    mapper = Mapper(hook, a, late)
    asp_a.register_listener(mapper)
    mapper.armed = True
    with pytest.raises(EditDuringCommitError, match="region 'a'.*during a commit"):
        with read_lock():
            if hook == "region_del":
                a.del_subregion(dev)
            elif hook == "region_nop":
                a.add_subregion(0x8000, MemoryRegion.ram("other", 0x1000))
            else:
                a.add_subregion(0x1000, dev)
    assert len(mapper.refused) == 1
    # Nothing of the refused edit happened; the commit itself is whole.
    assert late.container is None
    assert asp_a.translate(0x2000)[0] is None
    assert (asp_a.translate(0x1000)[0] is None) == (hook == "region_del")
    # Every view still published holds a reference, and reading it after a
    # grace period reads a live dispatch (ASan: no use-after-free).
    for view in system.flatviews():
        assert view.refs >= 2
    drain_call_rcu()
    asp_b.stl_le(0x10, 0x12345678)
    assert asp_b.ldl_le(0x10) == 0x12345678
    # Once the commit is over the same edit is fine.
    a.add_subregion(0x2000, late)
    assert asp_a.translate(0x2000)[0] is late


def test_a_transaction_or_destroy_from_a_listener_during_a_commit_is_refused():
    system, a, b, asp_a, asp_b = _two_spaces()
    seen: List[BaseException] = []

    class Meddler(MemoryListener):
        def commit(self):
            try:
                with system.transaction():
                    pass
            except EditDuringCommitError as exc:
                seen.append(exc)
            try:
                asp_b.destroy()
            except EditDuringCommitError as exc:
                seen.append(exc)

    asp_a.register_listener(Meddler())
    seen.clear()   # the registration's own replay was refused the same way
    a.add_subregion(0, MemoryRegion.ram("x", 0x1000))
    assert [type(e) for e in seen] == [EditDuringCommitError] * 2
    assert "destroying address space 'b'" in str(seen[1])
    assert not asp_b.destroyed and asp_b.ldl_le(0) == 0


def test_an_edit_from_a_listener_being_registered_or_unregistered_is_refused():
    system, a, b, asp_a, asp_b = _two_spaces()
    late = MemoryRegion.ram("late", 0x1000)

    class Eager(MemoryListener):
        def region_add(self, section):
            a.add_subregion(0x2000, late)

        def region_del(self, section):
            a.add_subregion(0x3000, MemoryRegion.ram("later", 0x1000))

    a.add_subregion(0, MemoryRegion.ram("x", 0x1000))
    listener = Eager()
    with pytest.raises(EditDuringCommitError):
        asp_a.register_listener(listener)
    assert listener in asp_a.listeners and late.container is None
    with pytest.raises(EditDuringCommitError):
        asp_a.unregister_listener(listener)
    assert listener not in asp_a.listeners


class Mirror(MemoryListener):
    """A KVM-slot style mirror of the regions in the view."""

    priority = 10

    def __init__(self) -> None:
        self.slots: Set[str] = set()

    def region_add(self, section):
        self.slots.add(section.mr.name)

    def region_del(self, section):
        self.slots.discard(section.mr.name)


class Buggy(MemoryListener):
    def __init__(self, hooks, message="listener bug") -> None:
        self.hooks, self.message = hooks, message

    def _maybe(self, hook):
        if hook in self.hooks:
            raise RuntimeError(self.message)

    def begin(self):
        self._maybe("begin")

    def commit(self):
        self._maybe("commit")

    def region_add(self, section):
        self._maybe("region_add")

    def region_del(self, section):
        self._maybe("region_del")


def test_a_raising_listener_does_not_keep_the_others_from_hearing_a_commit():
    system = MemorySystem()
    root = MemoryRegion.container("root", 1 << 32)
    asp = system.address_space(root, "as")
    mirror = Mirror()
    asp.register_listener(Buggy({"region_add"}))
    asp.register_listener(mirror)
    with pytest.raises(RuntimeError, match="listener bug"):
        with system.transaction():
            root.add_subregion(0x1000, MemoryRegion.ram("b", 0x1000))
            root.add_subregion(0x2000, MemoryRegion.ram("c", 0x1000))
    assert sorted(r.region.name for r in asp.flatview.ranges) == ["b", "c"]
    assert mirror.slots == {"b", "c"}


def test_several_raising_listeners_raise_the_first_with_the_others_attached():
    system = MemorySystem()
    root = MemoryRegion.container("root", 1 << 32)
    asp = system.address_space(root, "as")
    asp.register_listener(Buggy({"region_add"}, "first"))
    with pytest.raises(RuntimeError, match="second"):
        asp.register_listener(Buggy({"commit"}, "second"))
    with pytest.raises(RuntimeError, match="first") as info:
        root.add_subregion(0x1000, MemoryRegion.ram("b", 0x1000))
    assert [str(e) for e in info.value.listener_errors] == ["second"]


@pytest.mark.parametrize("hooks", [{"begin"}, {"commit"}, {"region_del"}, {"region_add"}])
def test_a_raising_listener_can_always_be_unregistered(hooks):
    system = MemorySystem()
    root = MemoryRegion.container("root", 1 << 32)
    root.add_subregion(0, MemoryRegion.ram("ram", 0x1000))
    asp = system.address_space(root, "as")
    listener = Buggy(hooks)
    try:
        asp.register_listener(listener)
    except RuntimeError:
        pass
    assert listener in asp.listeners
    try:
        asp.unregister_listener(listener)
    except RuntimeError:
        pass
    assert listener not in asp.listeners and listener not in system._listeners
    # Later edits no longer reach it.
    root.add_subregion(0x1000, MemoryRegion.ram("more", 0x1000))


def test_destroy_with_a_raising_listener_destroys_and_unregisters_everything():
    system = MemorySystem()
    root = MemoryRegion.container("root", 1 << 32)
    root.add_subregion(0, MemoryRegion.ram("ram", 0x1000))
    asp = system.address_space(root, "as")
    mirror = Mirror()
    try:
        asp.register_listener(Buggy({"commit"}))
    except RuntimeError:
        pass
    asp.register_listener(mirror)
    with pytest.raises(RuntimeError, match="listener bug"):
        asp.destroy()
    assert asp.destroyed and asp.listeners == [] and system._listeners == []
    assert mirror.slots == set()
    with pytest.raises(TopologyError, match="destroyed"):
        asp.ldl_le(0)
    root.add_subregion(0x1000, MemoryRegion.ram("more", 0x1000))
