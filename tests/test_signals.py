"""Ctrl-C never leaves pymem inconsistent.

A KeyboardInterrupt (or any signal handler that raises) is delivered where the
interpreter checks for pending signals: at function entries, backward jumps
and after calls return.  The proof here interrupts each operation at every
line it executes: `sys.settrace` raises KeyboardInterrupt at the Nth line
event, for N = 1, 2, ... until the operation completes, and after each
interrupt the invariants are checked:

- the C mirror of every region equals its Python object (children, in order;
  address, size, switches, alias), and every child's `container` is its parent;
- no RCU read-side section is open;
- no view is leaked: each view's reference count equals its holders, and
  after a grace period the live dispatches are exactly the held views';
- the system's lock is free and no transaction is left open;
- every address space publishes a live view, and after the next commit sees
  exactly what a fresh render of its root gives, and still reads and writes.

Line events are coarser than the interpreter's signal checks: the window
right after a C call returns and before the next line (the one a real Ctrl-C
hits most) is not one of them.  pymem closes those windows structurally (a C
state change and its Python mirror, or a lock and its unlock, happen in one C
call: `_fastpath.atomic`, `call_owned`, `ReadSection`, the `rw_*` steps), and
the timer-driven tests below fire real signals into the same operations.
"""
from __future__ import annotations

import dis
import gc
import os
import random
import signal
import sys
import threading
import time
import traceback
from typing import Any, Callable, Dict, List, Optional

import pytest

from pymem import (AddressSpace, MemoryListener, MemoryRegion, MemoryRegionOps, MemorySystem, TopologyError,
                   rcu)
from pymem._native import ffi, lib
from pymem.flatview import render



# Instructions after which CPython 3.11 runs pending signal handlers: a call
# returning (the handler runs before the next instruction), a function or
# generator starting or resuming, a backward jump.  Everywhere else no
# handler can run, so no KeyboardInterrupt can appear.
CHECKS = {dis.opmap[name] for name in ("CALL", "CALL_FUNCTION_EX", "RESUME", "JUMP_BACKWARD")}


def interrupted_at(n: int, operation: Callable[[], Any]) -> bool:
    """Run `operation`, raising KeyboardInterrupt at its n-th interrupt point
    in this thread; True if it was interrupted, False if it finished first.

    The points are where a real signal's handler runs: the instruction after
    each call, function entry, resume and backward jump, in every frame the
    operation runs (pymem's, the standard library's it calls, finalizers).
    `sys.settrace` with opcode events raises there; so every line of the
    operation that can be interrupted is, at every place it can be."""
    count = 0
    last: Dict[Any, int] = {}

    def on_event(frame: Any, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "opcode":
            code = frame.f_code.co_code
            if last.get(frame) in CHECKS:
                count += 1
                if count == n:
                    sys.settrace(None)
                    raise KeyboardInterrupt(
                        f"injected at point {n}: {frame.f_code.co_filename}:{frame.f_lineno}")
            last[frame] = code[frame.f_lasti]
        return on_event

    def on_call(frame: Any, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
        # The frame's entry (its RESUME) checks for signals too.
        last[frame] = dis.opmap["RESUME"]
        return on_event

    # Collections would run finalizers at varying points: the count of
    # points must not depend on them (the checks collect explicitly).
    collecting = gc.isenabled()
    gc.disable()
    sys.settrace(on_call)
    try:
        operation()
    except KeyboardInterrupt:
        return True
    finally:
        sys.settrace(None)
        last.clear()
        if collecting:
            gc.enable()
    return False


# ------------------------------------------------------------------- checks

def c_children(mr: MemoryRegion) -> List[Any]:
    info = ffi.new("pm_region_info *")
    lib.pm_region_info_get(mr._node, info)
    return [lib.pm_region_sub(mr._node, i) for i in range(info.nsubs)]


def assert_mirror_equal(mr: MemoryRegion) -> None:
    """The region's C node holds what its Python object says."""
    info = ffi.new("pm_region_info *")
    lib.pm_region_info_get(mr._node, info)
    where = f"region {mr.name!r}"
    assert info.id == mr.id, where
    assert info.addr == mr.addr, where
    assert (info.size_is_2_64, info.size) == (mr.size == 1 << 64, mr.size % (1 << 64)), where
    flags = {"enabled": lib.PM_REGION_ENABLED, "readonly": lib.PM_REGION_READONLY,
             "nonvolatile": lib.PM_REGION_NONVOLATILE, "romd": lib.PM_REGION_ROMD}
    for field, bit in flags.items():
        assert bool(info.flags & bit) == getattr(mr, field), f"{where}: {field}"
    assert info.dirty_log == mr.dirty_log, where
    target = mr._alias
    assert info.alias == (target._node if target is not None else ffi.NULL), where
    assert info.alias_offset == mr._alias_offset, where
    assert c_children(mr) == [sub._node for sub in mr._subs], f"{where}: children"
    for sub in mr._subs:
        assert sub.container is mr, f"{where}: child {sub.name!r}"


def all_regions(roots: List[MemoryRegion]) -> List[MemoryRegion]:
    seen: Dict[int, MemoryRegion] = {}
    stack = list(roots)
    while stack:
        mr = stack.pop()
        if mr.id in seen:
            continue
        seen[mr.id] = mr
        stack.extend(mr._subs)
        if mr._alias is not None:
            stack.append(mr._alias)
    return list(seen.values())


def lock_is_free(lock: Any) -> bool:
    got: List[bool] = []
    t = threading.Thread(target=lambda: got.append(lock.acquire(timeout=2) and
                                                   (lock.release() or True)))
    t.start()
    t.join()
    return got == [True]


def assert_consistent(system: MemorySystem, roots: List[MemoryRegion],
                      baseline: Optional[int] = 0) -> None:
    """The invariants of the module docstring; `baseline` is the number of
    the system's live dispatches no view holds (None: skip the leak check)."""
    assert not rcu.in_read_section(), "an RCU read-side section was left open"
    for mr in all_regions(roots):
        assert_mirror_equal(mr)
    assert system._depth == 0, "a transaction was left open"
    assert lock_is_free(system._lock), "the system's lock was left held"
    # Views: counts match holders (registry and spaces), each published view live.
    # The system keeps one reference to its empty view for good (as QEMU does).
    holders: Dict[int, int] = {id(system._empty_view): 1}
    views: Dict[int, Any] = {}
    # Destroyed spaces keep their reference to the empty view.
    gc.collect()
    spaces = [obj for obj in gc.get_objects()
              if isinstance(obj, AddressSpace) and obj.system is system]
    for view in list(system._views.values()) + [asp.flatview for asp in spaces]:
        holders[id(view)] = holders.get(id(view), 0) + 1
        views[id(view)] = view
    for key, view in views.items():
        if view is system._empty_view:
            # Kept for good; a destroyed space that was collected keeps its count.
            assert view.refs >= holders[key]
        else:
            assert view.refs == holders[key], (f"{view!r}: {view.refs} refs, "
                                               f"{holders[key]} holders")
        assert view.dispatch is not None, f"{view!r} is held but destroyed"
    for asp in system._spaces:
        assert asp._pin.view is asp.flatview
    # The next commit completes whatever an interrupted one left pending.
    with system.transaction():
        system._update_pending = True
    for asp in system._spaces:
        want = [(r.addr, r.size, r.region.name) for r in render(asp.root)]
        assert [(r.addr, r.size, r.region.name) for r in asp.flatview.ranges] == want
        asp.write(0x100, b"\x5a")
        assert asp.read(0x100, 1) == b"\x5a"
        assert asp.translate(0x100)[0] is not None
    # No leak: once reclaimed, only the held views' dispatches are alive.
    rcu.drain_call_rcu()
    gc.collect()
    rcu.drain_call_rcu()
    gc.collect()
    held = {id(v) for v in system._views.values()} | {id(a.flatview) for a in system._spaces}
    if baseline is not None:
        assert system.live_dispatches == baseline + len(held)


# ------------------------------------------------------------------ machine

class Counting(MemoryListener):
    def __init__(self) -> None:
        super().__init__()
        self.adds = 0

    def region_add(self, section: Any) -> None:
        self.adds += 1


def machine() -> Dict[str, Any]:
    """Two spaces (one through an alias), a listener, RAM, a device."""
    system = MemorySystem()
    root = MemoryRegion.container("root", 1 << 32)
    root.add_subregion(0, MemoryRegion.ram("ram", 0x10000))
    dev = MemoryRegion.io("dev", 0x1000, MemoryRegionOps(lambda o, s: 0x11, lambda o, v, s: None))
    root.add_subregion(0x20000, dev)
    cpu = system.address_space(root, "cpu")
    dma_root = MemoryRegion.container("dma-root", 1 << 32)
    dma_root.add_subregion(0, MemoryRegion.alias("dma-ram", root, 0, 0x30000))
    dma = system.address_space(dma_root, "dma")
    cpu.register_listener(Counting())
    spare = MemoryRegion.ram("spare", 0x1000)
    bus = MemoryRegion.container("bus", 0x10000)   # outside the system, for now
    return dict(system=system, root=root, dev=dev, cpu=cpu, dma=dma, dma_root=dma_root,
                spare=spare, bus=bus)


def _add(m: Dict[str, Any]) -> None:
    m["root"].add_subregion(0x40000, m["spare"], priority=1)


def _build(m: Dict[str, Any]) -> None:
    # Made and added outside any system (the one-C-call add), then mapped.
    m["bus"].add_subregion(0, MemoryRegion.ram("buf", 0x1000))
    m["bus"].add_subregion(0x1000, MemoryRegion.alias("window", m["spare"], 0, 0x100), 1)
    m["root"].add_subregion(0x40000, m["bus"])


def _del(m: Dict[str, Any]) -> None:
    m["root"].del_subregion(m["dev"])


def _transaction(m: Dict[str, Any]) -> None:
    with m["system"].transaction():
        m["dev"].set_address(0x50000)
        m["root"].add_subregion(0x40000, m["spare"])
        # Adopted and added in one C call (inside the transaction).
        m["root"].add_subregion(0x60000, MemoryRegion.io("timer", 0x100, MemoryRegionOps(
            lambda o, s: 0, lambda o, v, s: None)))
        m["dev"].set_enabled(False)


def _move_and_log(m: Dict[str, Any]) -> None:
    ram = m["root"].subregions[-1]
    ram.set_log(True)
    m["dev"].set_address(0x60000)


def _new_space(m: Dict[str, Any]) -> None:
    m["system"].address_space(m["root"], "another")


def _destroy(m: Dict[str, Any]) -> None:
    m["dma"].destroy()


def _render(m: Dict[str, Any]) -> None:
    render(m["root"])


def _read_lock(m: Dict[str, Any]) -> None:
    with rcu.read_lock():
        with rcu.read_lock():
            pass


def _rw(m: Dict[str, Any]) -> None:
    buf = bytearray(0x20)
    m["cpu"].rw(0x20000 - 0x10, buf, False)   # RAM, then the device
    m["cpu"].rw(0x20000 - 0x10, buf, True)


OPERATIONS = {
    "add_subregion": _add, "build_and_add": _build, "del_subregion": _del, "transaction": _transaction,
    "set_log_and_move": _move_and_log, "address_space": _new_space, "destroy": _destroy,
    "render": _render, "read_lock": _read_lock, "rw": _rw,
}


def interrupt_points(operation: Callable[[Dict[str, Any]], None]) -> int:
    """How many interrupt points the operation passes when not interrupted."""
    def interrupted(n: int) -> bool:
        m = machine()
        return interrupted_at(n, lambda: operation(m))

    n = 1
    while interrupted(n):
        n *= 2
    lo, hi = n // 2, n   # interrupted at lo (or lo == 0), finished at hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if interrupted(mid):
            lo = mid
        else:
            hi = mid
    return lo


@pytest.mark.parametrize("name", list(OPERATIONS))
def test_an_interrupt_at_any_point_leaves_pymem_consistent(name: str, request: Any) -> None:
    operation = OPERATIONS[name]
    points = interrupt_points(operation)
    assert points > 0
    # Every point under --stress; an evenly spread sample of about 12 (the
    # first and last included) in the default run.
    stride = 1 if request.config.getoption("--stress") else max(1, points // 12)
    for n in sorted(set(range(1, points + 1, stride)) | {points}):
        m = machine()
        system = m["system"]
        rcu.drain_call_rcu()
        gc.collect()
        baseline = system.live_dispatches - len(
            {id(v) for v in system._views.values()} | {id(a.flatview) for a in system._spaces})
        if not interrupted_at(n, lambda: operation(m)):
            continue   # a path a little shorter than the counted one
        try:
            assert_consistent(system, [m["root"], m["dma_root"], m["spare"], m["dev"],
                                       m["bus"]], baseline)
        except AssertionError as exc:
            raise AssertionError(f"{name} interrupted at point {n} of {points}: {exc}") from exc


# -------------------------------------------------------- real signals

def fire_signals_during(body: Callable[[], None], seconds: float, handler: Any) -> int:
    """Run `body` over and over for `seconds` while SIGALRM fires every
    20-200 microseconds into it; returns how many times it was interrupted."""
    hits = 0
    # A signal that lands in a finalizer (a weakref callback) is reported as
    # unraisable there, as CPython does.  Not kept: its traceback would keep
    # every frame under it (and what they hold) alive past the checks.
    unraisable = sys.unraisablehook
    sys.unraisablehook = lambda report: None
    old = signal.signal(signal.SIGALRM, handler)
    deadline = time.monotonic() + seconds
    rng = random.Random(17)
    try:
        while time.monotonic() < deadline:
            try:
                signal.setitimer(signal.ITIMER_REAL, rng.uniform(2e-5, 2e-4))
                body()
                signal.setitimer(signal.ITIMER_REAL, 0)
            except KeyboardInterrupt:
                hits += 1
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.signal(signal.SIGALRM, old)
        sys.unraisablehook = unraisable
    return hits


def stress_seconds(request: Any) -> float:
    return 30.0 if request.config.getoption("--stress") else 1.0


def test_ctrl_c_during_edits_keeps_the_c_and_python_trees_equal(request: Any) -> None:
    # bad-input #2: a signal between the C insert and the Python list used to
    # leave C holding a node Python let go of (use-after-free in render).
    system = MemorySystem()
    root = MemoryRegion.container("root", 1 << 32)
    root.add_subregion(0, MemoryRegion.ram("base", 0x1000), priority=-1)
    asp = system.address_space(root, "as")
    rng = random.Random(5)
    regions = [MemoryRegion.ram(f"r{i}", 0x1000) for i in range(8)]

    def edits() -> None:
        for mr in regions:
            if mr.container is None:
                root.add_subregion(0x1000 * rng.randrange(64), mr)
            else:
                root.del_subregion(mr)

    hits = fire_signals_during(edits, stress_seconds(request), signal.default_int_handler)
    assert hits > 0
    for mr in regions:
        if mr.container is not None:
            root.del_subregion(mr)   # never "not mapped anywhere" while in _subs
    assert_consistent(system, [root] + regions, 0)
    assert asp.translate(0x1000)[0] is None


def test_ctrl_c_during_accesses_never_leaks_a_read_section(request: Any) -> None:
    # c-core #4: a signal between pm_rcu_read_lock() and the `try` used to
    # leave the thread in a read-side section for good.
    system = MemorySystem()
    root = MemoryRegion.container("system", 1 << 32)
    root.add_subregion(0, MemoryRegion.io("dev", 0x1000, MemoryRegionOps(
        lambda o, s: 0, lambda o, v, s: None)))
    asp = system.address_space(root, "memory")
    buf = bytearray(4)

    def accesses() -> None:
        for _ in range(50):
            asp.rw(0, buf, False)
            with rcu.read_lock():
                pass
        assert not rcu.in_read_section()

    hits = fire_signals_during(accesses, stress_seconds(request), signal.default_int_handler)
    assert hits > 0
    assert not rcu.in_read_section()
    waiter = threading.Thread(target=rcu.synchronize_rcu, daemon=True)
    waiter.start()
    waiter.join(10)
    assert not waiter.is_alive(), "a grace period never ended: a read section leaked"


def test_ctrl_c_during_commits_and_destroys_leaks_no_view(request: Any) -> None:
    # bad-input #11: interrupted commits and destroys kept views (and their
    # dispatches) alive for good.
    system = MemorySystem()
    root = MemoryRegion.container("root", 1 << 32)
    ram = MemoryRegion.ram("ram", 0x10000)
    root.add_subregion(0, ram)
    system.address_space(root, "cpu")
    rng = random.Random(9)

    def churn() -> None:
        dma_root = MemoryRegion.container("dma", 1 << 32)
        dma_root.add_subregion(0, MemoryRegion.alias("win", root, 0, 0x10000))
        dma = system.address_space(dma_root, "dma")
        for _ in range(4):
            ram.set_log(rng.random() < 0.5)
            ram.set_readonly(rng.random() < 0.5)
        dma.destroy()

    hits = fire_signals_during(churn, stress_seconds(request), signal.default_int_handler)
    assert hits > 0
    for asp in list(system._spaces)[1:]:
        asp.destroy()
    ram.set_readonly(False)
    assert_consistent(system, [root], 0)


# --------------------------------------------------------------- fork

@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_fork_while_another_thread_edits_leaves_the_child_usable() -> None:
    # bad-input #12: the child inherited the system's lock held by a thread
    # that does not exist there, and blocked on it for ever.
    system = MemorySystem()
    root = MemoryRegion.container("root", 1 << 32)
    root.add_subregion(0, MemoryRegion.ram("base", 0x1000))
    asp = system.address_space(root, "as")
    stop = threading.Event()

    def editor() -> None:
        while not stop.is_set():
            mr = MemoryRegion.ram("r", 0x1000)
            root.add_subregion(0, mr)
            root.del_subregion(mr)

    thread = threading.Thread(target=editor, daemon=True)
    thread.start()
    try:
        for _ in range(3):
            time.sleep(0.02)
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    # A hang detector, not a time limit: the child copies
                    # the whole test session's heap, which its gc passes
                    # walk; on a loaded 2-core box under ASan that took
                    # over 10 s.  A deadlock still fails it.
                    signal.alarm(60)
                    child = MemoryRegion.ram("child", 0x1000)
                    root.add_subregion(0x1000, child)
                    asp.write(0x1000, b"ok")
                    assert asp.read(0x1000, 2) == b"ok"
                    # What the vanished editor's frames held is leaked in
                    # the child by CPython itself: no leak check here.
                    assert_consistent(system, [root], None)
                    code = 0
                except BaseException:
                    traceback.print_exc()
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
    finally:
        stop.set()
        thread.join()


# ------------------------------------------------------------ shutdown

def test_call_rcu_after_exit_waits_a_bounded_time_for_a_parked_reader(tmp_path: Any) -> None:
    # c-core #7: an atexit handler that ran after pymem's (registered before
    # pymem was imported) waited for ever for a daemon thread's read section.
    import subprocess
    import textwrap
    script = textwrap.dedent("""
        import atexit
        def unplug():
            dma.destroy()
            print("unplugged", flush=True)
        atexit.register(unplug)
        import threading
        from pymem import MemoryRegion, MemorySystem, rcu
        rcu._SHUTDOWN_TIMEOUT = 0.5
        system = MemorySystem()
        root = MemoryRegion.container("sys", 1 << 32)
        root.add_subregion(0, MemoryRegion.ram("ram", 0x1000))
        dma = system.address_space(MemoryRegion.container("dma-root", 1 << 32), "dma")
        dma.root.add_subregion(0, MemoryRegion.alias("dma-ram", root, 0, 0x1000))
        entered = threading.Event()
        def reader():
            with rcu.read_lock():
                entered.set()
                threading.Event().wait()
        threading.Thread(target=reader, daemon=True).start()
        entered.wait()
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "unplugged"


def test_ctrl_c_during_call_rcu_keeps_one_reclaimer(request: Any) -> None:
    # A KeyboardInterrupt inside CPython 3.11's Thread.is_alive() marks a
    # live thread stopped; when call_rcu asked is_alive() whether the
    # reclaimer ran, every later call started another one (hundreds in
    # 20 s), and the Thread.start() of one of them, interrupted in turn,
    # failed a commit with "release unlocked lock".
    def calls() -> None:
        for _ in range(200):
            rcu.call_rcu(lambda: None)
            time.sleep(0)

    hits = fire_signals_during(calls, 3 * stress_seconds(request), signal.default_int_handler)
    assert hits > 0
    rcu.drain_call_rcu()
    reclaimers = [t for t in threading.enumerate() if t.name == "pymem-rcu-reclaimer"]
    assert len(reclaimers) == 1, f"{len(reclaimers)} reclaimer threads run"
