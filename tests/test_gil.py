"""Which work hands the GIL to other threads (issue 12, goal 8).

A commit that releases the GIL while another thread wants it hands the GIL
over and waits out the switch interval to get it back: short C calls (tree
edits, publishing, small renders) keep it; renders of large trees release it.
Each test runs a thread that counts in a Python loop and looks whether it
counted while the main thread was inside commits.  The switch interval is
raised so that only a release, never the interval, lets the counter run.  A
release hands the GIL over only when the waiting thread wakes before the
releasing one takes it back (a race), so the edits are repeated: one release
per edit loses that race almost never twenty times in a row.  The replaced
views are handed to the RCU reclaimer only after the measurement: its thread
takes the GIL in turn when woken (once per batch, see pymem/rcu.py), which is
not a release by the commit.
"""
from __future__ import annotations

import gc
import sys
import threading
import time
from typing import Callable, Iterator

import pytest

from pymem import MemoryRegion, MemoryRegionOps, MemorySystem
from pymem.flatview import RENDER_NOGIL_RANGES
from pymem import address_space
from pymem.rcu import call_rcu, drain_call_rcu


@pytest.fixture
def counter() -> Iterator[Callable[[], int]]:
    """A thread counting in Python; returns how far it has counted."""
    count = [0]
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            count[0] += 1

    old = sys.getswitchinterval()
    sys.setswitchinterval(1.0)
    thread = threading.Thread(target=run)
    thread.start()
    try:
        while count[0] == 0:
            time.sleep(0.001)
        yield lambda: count[0]
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(old)


@pytest.fixture
def reclaimer_held(monkeypatch) -> Iterator[None]:
    """Replaced views queue here, and go to call_rcu at the end of the test."""
    held: list = []
    monkeypatch.setattr(address_space, "call_rcu", held.append)
    yield
    monkeypatch.undo()
    for release in held:
        call_rcu(release)
    drain_call_rcu()


def counted_during(counter: Callable[[], int], fn: Callable[[], None]) -> int:
    # The reclaimer idle (a batch it is gathering would take the GIL in turn),
    # and the counter running, so that it is waiting for the GIL now.
    # The cyclic GC is off while fn runs: a collection there could finalize
    # garbage from earlier tests (a unicorn engine closed through ctypes, a
    # file), and those finalizers release the GIL; that is not the commit's.
    drain_call_rcu()
    gc.collect()
    time.sleep(0.001)
    gc.disable()
    try:
        before = counter()
        fn()
        return counter() - before
    finally:
        gc.enable()


def machine() -> tuple:
    system = MemorySystem()
    root = MemoryRegion.container("system", 1 << 32)
    banks = MemoryRegion.ram("banks", 0x2000)
    window = MemoryRegion.alias("window", banks, 0, 0x1000)
    ops = MemoryRegionOps(lambda offset, size: 0, lambda offset, value, size: None)
    with system.transaction():
        root.add_subregion(0, MemoryRegion.ram("ram", 0x10000))
        root.add_subregion(0x10000, MemoryRegion.io("device", 0x1000, ops))
        root.add_subregion(0x20000, window)
    return system, root, window, system.address_space(root, "cpu")


def test_a_small_commit_keeps_the_gil(counter, reclaimer_held):
    system, root, window, asp = machine()

    def edits() -> None:
        for i in range(20):
            window.set_alias_offset(0x1000)
            window.set_enabled(False)
            window.set_enabled(True)
            more = MemoryRegion.ram("more", 0x1000)
            root.add_subregion(0x30000, more)
            root.del_subregion(more)
            with system.transaction():
                window.set_alias_offset(0)
                window.set_address(0x40000 + 0x1000 * (i % 2))
            asp.ldl_le(0)
        window.set_address(0x40000)

    assert counted_during(counter, edits) == 0
    # The edits were made: the window moved.
    assert asp.flatview.lookup(0x40000) is not None
    assert asp.flatview.lookup(0x20000) is None


class _RenderNames:
    """Stands in for flatview's `lib`, noting which render each call uses."""

    def __init__(self, lib) -> None:
        self._lib = lib
        self.used: list = []

    def __getattr__(self, name: str):
        if name.startswith("pm_render_dispatch"):
            self.used.append(name)
        return getattr(self._lib, name)


@pytest.mark.source_tree
def test_the_build_declares_which_render_keeps_the_gil():
    # pymem/_build.py reads csrc/pymem.h: a source checkout only (the wheel
    # run leaves this out; the compiled choice is pinned below either way).
    from pymem import _build
    assert "pm_render_dispatch" in _build.HOLDS_GIL
    assert "pm_render_dispatch_nogil" not in _build.HOLDS_GIL


def test_large_renders_release_the_gil_and_small_ones_keep_it(monkeypatch):
    # Whether a thread wins the GIL during a release is a race (a loaded
    # machine may not schedule it within a render), so this pins the choice.
    from pymem import flatview
    names = _RenderNames(flatview.lib)
    monkeypatch.setattr(flatview, "lib", names)
    # A commit's small render is one C call, _fastpath.render_view, which
    # calls pm_render_dispatch (the one that keeps the GIL: set_commit_api).
    in_c = flatview._render_view

    def render_view(*args):
        names.used.append("render_view")
        return in_c(*args)
    monkeypatch.setattr(flatview, "_render_view", render_view)
    ops = MemoryRegionOps(lambda offset, size: 0, lambda offset, value, size: None)
    system = MemorySystem()
    root = MemoryRegion.container("system", 1 << 40)
    with system.transaction():
        for i in range(RENDER_NOGIL_RANGES):
            root.add_subregion(i * 0x2000, MemoryRegion.io(f"dev{i}", 0x1000, ops))
    asp = system.address_space(root, "cpu")
    assert asp.flatview.range_count == RENDER_NOGIL_RANGES
    small = MemorySystem()
    small_root = MemoryRegion.container("small", 1 << 32)
    with small.transaction():
        small_root.add_subregion(0x1000, MemoryRegion.io("dev", 0x1000, ops))
        small_root.add_subregion(0x3000, MemoryRegion.io("dev2", 0x1000, ops))
    small.address_space(small_root, "cpu")
    names.used.clear()
    root.subregions[0].set_enabled(False)        # its last view: 10,000 ranges
    root.subregions[0].set_enabled(True)         # 9,999
    small_root.subregions[0].set_enabled(False)  # 2
    assert names.used == ["pm_render_dispatch_nogil", "render_view", "render_view"]
