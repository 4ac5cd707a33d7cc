"""RCU for Python: deferred destruction of what C readers may still hold.

C readers (address-space lookups and accesses) run with the GIL released, truly in
parallel with a writer that swaps in a new view. The old view's dispatch, and every
buffer and handle a reader can reach through it, must outlive those readers: the
writer hands its release to `call_rcu`, and one reclaimer thread runs it after a
grace period. The reclaimer waits in C (`pm_rcu_synchronize`, GIL released), then
runs the whole batch queued before the wait started, so one grace period covers
many commits.

Waking the reclaimer costs the writer: the woken thread wants the GIL, and a
writer that releases it (any long C call) then waits for it back.  So only the
first callback of a batch wakes the reclaimer; it then lets the batch gather
for `_BATCH_DELAY` seconds (QEMU's call_rcu thread also sleeps to batch),
unless `_BATCH_LIMIT` callbacks are queued first or `drain_call_rcu` is
waiting.  A burst of commits thus wakes it about once per delay, not once per
commit.

Signals: a read-side section is taken and left only inside C calls, never
split across bytecodes.  `read_lock()` is a C context manager
(`_fastpath.ReadSection`): `with` takes the lock in its C `__enter__`, after
which the body's handler is already set up, and a C `__exit__` releases it
before any Python code runs, so a KeyboardInterrupt (or any signal handler
that raises) can land before the section begins or after it ended, never
between.  The access path's sections are likewise opened and closed within
one C call (pymem/access.py, csrc/ext/fastpath.c).

Thread safety:
    Every function here may be called from any thread.  `read_lock()` and
    `in_read_section()` are per thread (a section belongs to the thread that
    entered it); `synchronize_rcu` and `drain_call_rcu` block the caller
    (with the GIL released while waiting in C); neither may be called
    inside a read-side section, nor `drain_call_rcu` from an RCU callback.
    A callback runs on the reclaimer thread, not on the thread that queued
    it.
"""
from __future__ import annotations

import atexit
import collections
import os
import sys
import threading
import time
import traceback
import types
from typing import TYPE_CHECKING, Callable, ContextManager, Deque, List

if TYPE_CHECKING:
    from _typeshed import OptExcInfo

from ._bindings import _fastpath, ffi, lib
from .errors import ArgumentTypeError, RcuError, check

__all__ = ["call_rcu", "drain_call_rcu", "in_read_section", "read_lock", "synchronize_rcu"]

# The key every reader thread's record hangs on, made now: a process that has
# used up its keys fails this import instead of failing the first reader.
check(lib.pm_rcu_init(), "importing pymem: creating the RCU thread key")

# How long interpreter exit waits for the reclaimer's last grace period. A daemon
# thread parked inside a read-side section would otherwise hang exit for good.
_SHUTDOWN_TIMEOUT = 5.0
# How long the reclaimer lets a batch gather once woken (seconds), and how
# many callbacks end the wait early (each may hold a whole view's memory).
_BATCH_DELAY = 0.01
_BATCH_LIMIT = 64

# `with _lock` (a C lock, C __enter__/__exit__), never `with _cond`: a
# Condition's __exit__ is Python, where a signal can raise before it unlocks.
_lock = threading.RLock()
_cond = threading.Condition(_lock)
_pending: List[Callable[[], object]] = []                 # queued, grace period not yet started
_batch: Deque[Callable[[], object]] = collections.deque()  # grace period started or over
# Whether a reclaimer runs: set before it starts, cleared by it as it ends
# (under _lock both).  Not `_thread.is_alive()`: call_rcu runs inside commits,
# and a KeyboardInterrupt landing inside CPython 3.11's is_alive() marks the
# live thread stopped (its bpo-45274 clean-up releases the running thread's
# own tstate lock), after which every call_rcu would start another reclaimer.
_running = False


class _Counts:
    """Callbacks ever queued and run (or failed): one object with slots, so
    call_rcu bumps `queued` and queues in one `_fastpath.atomic` call."""

    __slots__ = ("queued", "done")

    def __init__(self) -> None:
        self.queued = 0
        self.done = 0


_counts = _Counts()
_thread: threading.Thread | None = None
_stopping = False                   # set at interpreter exit
_draining = 0                       # drain_call_rcu calls waiting: no batching delay


def in_read_section() -> bool:
    """Whether this thread is inside an RCU read-side section.

    Raises nothing.
    """
    return bool(lib.pm_rcu_in_reader())


_fastpath.set_rcu(int(ffi.cast("uintptr_t", ffi.addressof(lib, "pm_rcu_read_lock"))),
                  int(ffi.cast("uintptr_t", ffi.addressof(lib, "pm_rcu_read_unlock"))))


def read_lock() -> ContextManager[None]:
    """Hold an RCU read-side section for the `with` body (nestable).

    Nothing freed through `call_rcu` after the section began is freed before
    it ends. Keep it short and never wait for the writer inside it.  The
    section begins and ends in C (see the module docstring): an async
    exception cannot leave it open.  Use it in one thread: RuntimeError if
    it is left from another.

    Raises:
        RuntimeError: the same section object is entered twice, or left from
            another thread than the one that entered it.
    """
    return _fastpath.ReadSection()


def synchronize_rcu() -> None:
    """Wait until every read-side section that has begun has ended.

    Raises RcuError inside a read-side section, where waiting would never end.

    Raises:
        RcuError: called inside a read-side section, where waiting would never
            end; or the process ran out of thread-specific keys registering this
            thread as a reader.
    """
    check(lib.pm_rcu_synchronize())


def call_rcu(fn: Callable[[], object]) -> None:
    """Run `fn()` on the reclaimer thread after a grace period.

    Callbacks run in the order they were queued. An exception in one is
    reported through sys.unraisablehook and the rest still run.

    After interpreter exit has begun, `fn` runs at once on the calling thread
    instead.

    Raises:
        ArgumentTypeError: `fn` is not callable.
    """
    if not callable(fn):
        raise ArgumentTypeError(f"call_rcu() needs a callable, not {type(fn).__name__}")
    with _lock:
        if _stopping:
            inline = True
        else:
            inline = False
            # Queued and counted in one C call: an interrupt cannot make
            # drain_call_rcu wait for a callback that is not there.
            _fastpath.atomic((_pending.append, fn), ("=", _counts, "queued", _counts.queued + 1))
            # The reclaimer waits on _cond only while nothing is pending, or
            # while gathering a batch: wake it (starting it if need be) for
            # the first callback and from a full batch on, not for every one;
            # and whenever no reclaimer runs (none yet after a fork, or one
            # that ended, e.g. on an error, leaving callbacks pending).
            queued = len(_pending)
            if queued == 1 or queued >= _BATCH_LIMIT or not _running:
                _start_reclaimer()
                _cond.notify_all()
    if inline:
        _run_after_exit(fn)


def drain_call_rcu() -> None:
    """Wait until every callback queued before this call has run.

    Raises RcuError inside a read-side section or from a callback, where the
    reclaimer could never get there.

    Raises:
        RcuError: called inside a read-side section, or from an RCU callback
            (on the reclaimer thread).
    """
    if in_read_section():
        raise RcuError("drain_call_rcu() called inside an RCU read-side section")
    if threading.current_thread() is _thread:
        raise RcuError("drain_call_rcu() called from an RCU callback")
    global _draining
    with _lock:
        target = _counts.queued
        if _pending and not _stopping:
            _start_reclaimer()  # after fork the child has none yet
        _draining += 1
        _cond.notify_all()      # a batch being gathered is taken now
        try:
            while _counts.done < target:
                _cond.wait()
        finally:
            _draining -= 1


def _start_reclaimer() -> None:
    """Start the reclaimer if it is not running (called with _cond held)."""
    global _thread, _running
    if _running:
        return
    # Daemon: threading joins non-daemon threads *before* atexit handlers run,
    # so a non-daemon reclaimer would never be told to stop.
    _thread = threading.Thread(target=_reclaim, name="pymem-rcu-reclaimer", daemon=True)
    _running = True
    try:
        _thread.start()
    except BaseException:
        _running = False
        raise


def _reclaim() -> None:
    """The reclaimer's loop: take a batch, wait a grace period, run the batch."""
    global _pending, _running
    try:
        while True:
            with _lock:
                while not _pending and not _stopping:
                    _cond.wait()
                if not _pending:
                    return
                # Let the batch gather (the wait releases _cond, so call_rcu
                # goes on queueing meanwhile).
                deadline = time.monotonic() + _BATCH_DELAY
                while len(_pending) < _BATCH_LIMIT and not _draining and not _stopping:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    _cond.wait(left)
                # Take the batch before the grace period starts: everything in it
                # was unpublished before this point, so one grace period covers it.
                _batch.extend(_pending)
                _pending = []
            synchronize_rcu()
            while _batch:
                # No local keeps the callback: once run, what it held can go.
                _run(_batch.popleft())
                with _lock:
                    _counts.done += 1
                    # Only drain_call_rcu waits for callbacks to have run.
                    if _draining:
                        _cond.notify_all()
    finally:
        with _lock:
            _running = False


def _run(fn: Callable[[], object]) -> None:
    try:
        fn()
    except BaseException:
        _report(fn, sys.exc_info())


def _report(fn: object, exc_info: "OptExcInfo") -> None:
    """Hand a callback's exception to sys.unraisablehook, as CPython does for
    errors nobody can catch (finalizers, weakref callbacks)."""
    exc_type, exc_value, exc_tb = exc_info
    msg = "Exception ignored in RCU callback"
    if sys.unraisablehook is sys.__unraisablehook__:
        # The default hook accepts only CPython's own argument type; print as it would.
        lines = traceback.format_exception(exc_type, exc_value, exc_tb)
        sys.stderr.write(f"{msg}: {fn!r}\n{''.join(lines)}")
        return
    sys.unraisablehook(types.SimpleNamespace(
        exc_type=exc_type, exc_value=exc_value, exc_traceback=exc_tb,
        err_msg=msg, object=fn))


def _run_after_exit(fn: Callable[[], object]) -> None:
    """call_rcu after the reclaimer stopped: wait for a grace period, at most
    _SHUTDOWN_TIMEOUT as _shutdown does, then run `fn` now.  A reader that
    never leaves (a daemon thread parked in a section) would hang exit: then
    `fn` is leaked, as the process is exiting anyway."""
    if in_read_section():
        return  # the process is exiting; leaking beats waiting forever
    waiter = threading.Thread(target=synchronize_rcu, name="pymem-rcu-exit", daemon=True)
    try:
        waiter.start()
    except RuntimeError:
        return  # no new threads this late in finalization: leak, never hang
    waiter.join(_SHUTDOWN_TIMEOUT)
    if not waiter.is_alive():
        _run(fn)


def _shutdown() -> None:
    """At interpreter exit: let the reclaimer run what is queued, then stop it."""
    global _stopping
    with _lock:
        _stopping = True
        _cond.notify_all()
        thread = _thread
    if thread is not None and not in_read_section():
        thread.join(_SHUTDOWN_TIMEOUT)


def _after_fork_in_child() -> None:
    """Only the forking thread survives fork: start over with a fresh lock and
    reclaimer (started on demand), requeueing the batch the parent's reclaimer
    had taken. A callback that was running at the fork is lost in the child."""
    global _lock, _cond, _pending, _thread, _running
    _lock = threading.RLock()
    _cond = threading.Condition(_lock)
    _pending = list(_batch) + _pending
    _batch.clear()
    _counts.done = _counts.queued - len(_pending)
    _thread = None
    _running = False


atexit.register(_shutdown)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

# The reclaimer starts with the module, not at the first call_rcu: call_rcu
# runs inside commits, which must stay whole when a signal (Ctrl-C) lands
# anywhere in them, and Thread.start() waits on a Condition that CPython
# leaves broken when a KeyboardInterrupt lands inside its wait ("release
# unlocked lock").  After fork the child starts its own on demand.
with _lock:
    _start_reclaimer()
