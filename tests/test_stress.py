"""Readers in C racing a writer that keeps changing the topology.

Reader threads do RAM loads, MMIO loads and batched lookups through one address
space while the writer commits thousands of changes: regions enabled and
disabled, moved, an alias retargeted, a hot-plugged RAM region deleted and its
memory released. Every commit is recorded with what each probe address answers
under it; a reader notes how many commits had been recorded before and after
each access, and the value it saw must be one that some topology current in
that window gives. The run ends with every deferred callback run and, once the
system is gone, no dispatch left alive in C.

The default run is short; `pytest --stress` runs the long one (the ASan and TSan
builds of scripts/sanitize.sh are where it earns its keep).
"""
import gc
import random
import threading
from array import array

import pytest

from pymem import MemoryRegion, MemoryRegionOps, MemorySystem, MemTxError, rcu
from pymem._native import ffi, lib

SPACE = 1 << 20
PROBES = [0x0, 0x3ffc, 0x4000, 0x5ffc, 0x8000, 0x8ffc, 0xfffc, 0x20000, 0x21ffc,
          0x30000, 0x33ffc, 0x40000, 0x40ffc, 0x50000, 0x53ffc, 0x60000]
BATCH = array("Q", range(0, 0x60000, 0x800))
MMIO_TAG = 0xC0
MAX_CHECKED = 100_000   # loads checked per reader thread


def ram(name, size, tag):
    """A RAM region whose every 4-byte word says `tag` and its own offset."""
    words = array("I", ((tag << 24) | i for i in range(size // 4)))
    return MemoryRegion.ram(name, size, bytearray(words.tobytes()))


def mmio_read(offset, size):
    return (MMIO_TAG << 24) | offset


def io(name, size):
    return MemoryRegion.io(name, size, MemoryRegionOps(
        mmio_read, lambda offset, value, size: None, valid_max=4, impl_max=4))


class Machine:
    """The topology the writer edits, and the answers it gives per commit."""

    def __init__(self, seed):
        self.rng = random.Random(seed)
        self.system = MemorySystem()
        self.root = MemoryRegion.container("system", SPACE)
        self.base = ram("base", 0x10000, 1)
        self.mover = ram("mover", 0x2000, 2)
        self.source = ram("source", 0x10000, 3)
        self.window = MemoryRegion.alias("window", self.source, 0, 0x4000)
        self.device = io("device", 0x1000)
        self.next_tag = 4
        self.hotplug = ram("hotplug", 0x4000, self.next_tag)
        with self.system.transaction():
            self.root.add_subregion(0, self.base)
            self.root.add_subregion(0x4000, self.mover, priority=1)
            self.root.add_subregion(0x30000, self.window)
            self.root.add_subregion(0x40000, self.device, priority=2)
            self.root.add_subregion(0x50000, self.hotplug)
        self.asp = self.system.address_space(self.root, "memory")
        self.loads = []      # per commit: the value (or None) each probe loads
        self.batches = []    # per commit: the sections BATCH looks up
        self.record()

    def record(self):
        view = self.asp.flatview
        values = []
        for addr in PROBES:
            fr = view.lookup(addr)
            if fr is None:
                values.append(None)
                continue
            offset = addr - fr.addr + fr.offset_in_region
            if fr.region.ops is not None:
                values.append(mmio_read(offset, 4))
            else:
                values.append(int.from_bytes(fr.region.buffer[offset:offset + 4], "little"))
        self.batches.append(bytes(view.dispatch.lookup_many(BATCH)))
        # Appended last: a reader that sees this length may rely on both lists.
        self.loads.append(tuple(values))

    def change(self):
        """One committed topology change, chosen at random."""
        rng = self.rng
        kind = rng.randrange(5)
        if kind == 0:
            self.base.set_enabled(not self.base.enabled)
        elif kind == 1:
            self.mover.set_address(0x20000 if self.mover.addr == 0x4000 else 0x4000)
        elif kind == 2:
            self.window.set_alias_offset(rng.choice([0, 0x1000, 0x8000, 0xc000]))
        elif kind == 3:
            self.device.set_address(rng.choice([0x40000, 0x8000]))
        else:
            # Hot-unplug: once the old view is reclaimed nothing holds its memory.
            with self.system.transaction():
                self.root.del_subregion(self.hotplug)
                self.next_tag = 4 + (self.next_tag - 3) % 200
                self.hotplug = ram("hotplug", 0x4000, self.next_tag)
                self.root.add_subregion(0x50000, self.hotplug)
        self.record()


def allowed(history, before, after):
    """What any topology current between two readings of len(history) gives."""
    return history[max(before - 1, 0):after + 1]


def run(commits, seed=1):
    machine = Machine(seed)
    asp = machine.asp
    stats = machine.system._stats  # kept: outlives the system, for the final count
    stop = threading.Event()
    failures = []

    def loader(probes, load):
        seen = []
        while not stop.is_set():
            for i in probes:
                before = len(machine.loads)
                value = load(PROBES[i])
                after = len(machine.loads)
                # Every load races the writer; a bounded sample is checked,
                # so the check does not outgrow the run.
                if len(seen) < MAX_CHECKED:
                    seen.append((i, before, after, value))
        return seen

    def ldl_le(addr):
        """The fast path: one C call for RAM."""
        try:
            return asp.ldl_le(addr)
        except MemTxError:
            return None

    def load(addr):
        """address_space_ldl with attributes: the general path."""
        value, result = asp.load(addr, 4)
        return None if result else value

    def batcher():
        src = ffi.from_buffer("uint64_t[]", BATCH)
        out = array("I", bytes(4 * len(BATCH)))
        dst = ffi.from_buffer("uint32_t[]", out)
        seen = []
        while not stop.is_set():
            before = len(machine.loads)
            lib.pm_as_lookup_many(asp._cas, src, dst, len(BATCH))
            after = len(machine.loads)
            seen.append((before, after, bytes(out)))
        return seen

    results = {}

    def keep(name, fn, *args):
        def body():
            try:
                results[name] = fn(*args)
            except BaseException as exc:
                failures.append((name, exc))
        return threading.Thread(target=body, name=name, daemon=True)

    ram_probes = [i for i, a in enumerate(PROBES) if not 0x40000 <= a < 0x41000]
    threads = [keep("ram loads", loader, ram_probes, ldl_le),
               keep("all loads", loader, range(len(PROBES)), load),
               keep("batched lookups", batcher)]
    for t in threads:
        t.start()
    for _ in range(commits):
        machine.change()
    stop.set()
    for t in threads:
        t.join(120)
        assert not t.is_alive(), f"{t.name} hung"
    assert not failures, failures

    for name in ("ram loads", "all loads"):
        for i, before, after, value in results[name]:
            ok = {loads[i] for loads in allowed(machine.loads, before, after)}
            assert value in ok, (f"{name}: load at {PROBES[i]:#x} gave {value!r}, "
                                 f"commits {before - 1}..{after} allow {ok}")
    for before, after, got in results["batched lookups"]:
        assert got in allowed(machine.batches, before, after), (
            f"batched lookup matches no view of commits {before - 1}..{after}")
    assert all(results.values()), "a reader never got to run"

    rcu.drain_call_rcu()
    del machine, asp, threads, results
    gc.collect()
    rcu.drain_call_rcu()
    assert stats.live_dispatches == 0
    assert stats.live_address_spaces == 0


def test_readers_racing_commits_see_old_or_new_topology():
    run(commits=1000)


@pytest.mark.stress
def test_readers_racing_ten_thousand_commits_see_old_or_new_topology():
    run(commits=12000, seed=2)


def test_retired_views_are_freed_after_a_grace_period():
    machine = Machine(seed=3)
    for _ in range(50):
        machine.change()
    rcu.drain_call_rcu()
    # Left alive: the current view and QEMU's shared empty view.
    assert machine.system.live_dispatches == 2


def test_a_dropped_system_frees_every_dispatch_after_fast_path_loads():
    machine = Machine(seed=4)
    stats = machine.system._stats
    machine.asp.ldl_le(0)
    del machine
    gc.collect()
    rcu.drain_call_rcu()
    assert stats.live_dispatches == 0
