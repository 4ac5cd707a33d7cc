"""RCU behaviour: grace periods wait for readers, callbacks run once they may.

Readers here are real threads; C calls release the GIL, so they overlap the writer
for real. Waits carry generous timeouts only so that a bug fails a test instead of
hanging the suite: nothing asserts how long anything takes.
"""
import os
import subprocess
import sys
import textwrap
import threading
from array import array

import pytest

from pymem import rcu
from pymem._native import ffi, lib
from pymem.dispatch import Dispatch, DispatchRange
from pymem.errors import RcuError

DEADLOCK = 60.0  # seconds after which a wait counts as a hang


def run_in_thread(fn):
    """Start fn on a daemon thread; returns (thread, result dict)."""
    result = {}

    def body():
        try:
            result["value"] = fn()
        except BaseException as exc:  # surfaced by the test that joins
            result["error"] = exc

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, result


def join(thread, result):
    thread.join(DEADLOCK)
    assert not thread.is_alive(), "thread hung"
    if "error" in result:
        raise result["error"]
    return result.get("value")


def synchronize_elsewhere():
    """synchronize_rcu() on another thread, failing instead of hanging."""
    join(*run_in_thread(rcu.synchronize_rcu))


def wait_until(predicate):
    done = threading.Event()
    for _ in range(int(DEADLOCK * 100)):
        if predicate():
            return
        done.wait(0.01)
    raise AssertionError("condition never became true")


def hold_read_section(entered, release, left=None):
    """Body of a reader thread: enter, signal, wait for `release`, leave."""
    def body():
        with rcu.read_lock():
            entered.set()
            release.wait(DEADLOCK)
            if left is not None:
                left.set()  # set before the section ends: a callback must see it
    return body


def test_callback_waits_for_a_reader_that_holds_a_read_section():
    entered, release, left = threading.Event(), threading.Event(), threading.Event()
    reader = run_in_thread(hold_read_section(entered, release, left))
    entered.wait(DEADLOCK)
    seen = []
    rcu.call_rcu(lambda: seen.append(left.is_set()))
    # Let the reclaimer take the callback and start its grace period.
    wait_until(lambda: not rcu._pending)
    release.wait(0.05)
    assert seen == []
    release.set()
    join(*reader)
    rcu.drain_call_rcu()
    assert seen == [True]


def test_synchronize_waits_for_a_reader_that_holds_a_read_section():
    entered, release, left = threading.Event(), threading.Event(), threading.Event()
    reader = run_in_thread(hold_read_section(entered, release, left))
    entered.wait(DEADLOCK)
    writer = run_in_thread(lambda: (rcu.synchronize_rcu(), left.is_set())[1])
    release.wait(0.05)
    release.set()
    assert join(*writer) is True
    join(*reader)


def test_try_synchronize_succeeds_only_when_no_section_is_open():
    # The commit's shortcut (MemorySystem._retire): a grace period without
    # waiting, refused while any read-side section may see an old pointer.
    assert lib.pm_rcu_try_synchronize() == 1
    entered, release, left = threading.Event(), threading.Event(), threading.Event()
    reader = run_in_thread(hold_read_section(entered, release, left))
    assert entered.wait(DEADLOCK)
    assert lib.pm_rcu_try_synchronize() == 0     # another thread reads
    release.set()
    join(*reader)
    assert lib.pm_rcu_try_synchronize() == 1
    with rcu.read_lock():
        assert lib.pm_rcu_try_synchronize() == 0  # this thread reads
    assert lib.pm_rcu_try_synchronize() == 1


def test_synchronize_inside_a_read_section_raises():
    with rcu.read_lock():
        with pytest.raises(RcuError, match="inside an RCU read-side section"):
            rcu.synchronize_rcu()
        assert rcu.in_read_section()
    rcu.synchronize_rcu()


def test_drain_inside_a_read_section_raises():
    with rcu.read_lock():
        with pytest.raises(RcuError, match="drain_call_rcu"):
            rcu.drain_call_rcu()


def test_nested_read_locks_end_with_the_outermost():
    assert not rcu.in_read_section()
    with rcu.read_lock():
        with rcu.read_lock():
            assert rcu.in_read_section()
        assert rcu.in_read_section()
        with pytest.raises(RcuError):
            rcu.synchronize_rcu()
    assert not rcu.in_read_section()
    rcu.synchronize_rcu()


def test_read_lock_is_released_when_the_body_raises():
    with pytest.raises(KeyError):
        with rcu.read_lock():
            raise KeyError("boom")
    assert not rcu.in_read_section()


def test_callback_waits_for_the_outermost_of_nested_sections():
    entered, release, left = threading.Event(), threading.Event(), threading.Event()

    def reader():
        with rcu.read_lock():
            with rcu.read_lock():
                entered.set()
            release.wait(DEADLOCK)
            left.set()

    thread = run_in_thread(reader)
    entered.wait(DEADLOCK)
    seen = []
    rcu.call_rcu(lambda: seen.append(left.is_set()))
    wait_until(lambda: not rcu._pending)
    release.set()
    join(*thread)
    rcu.drain_call_rcu()
    assert seen == [True]


def test_drain_runs_every_callback_queued_before_it():
    ran = []
    lock = threading.Lock()

    def queue(base):
        def body():
            for i in range(200):
                def cb(i=base + i):
                    with lock:
                        ran.append(i)
                rcu.call_rcu(cb)
        return body

    producers = [run_in_thread(queue(k * 1000)) for k in range(4)]
    for producer in producers:
        join(*producer)
    rcu.drain_call_rcu()
    assert sorted(ran) == sorted(k * 1000 + i for k in range(4) for i in range(200))


def test_callbacks_run_in_the_order_they_were_queued():
    ran = []
    for i in range(500):
        rcu.call_rcu(lambda i=i: ran.append(i))
    rcu.drain_call_rcu()
    assert ran == list(range(500))


def test_drain_with_nothing_queued_returns():
    rcu.drain_call_rcu()
    rcu.drain_call_rcu()


def test_call_rcu_rejects_a_non_callable():
    with pytest.raises(TypeError, match="callable"):
        rcu.call_rcu(42)


def test_reclaimer_survives_a_raising_callback(monkeypatch):
    reports = []
    monkeypatch.setattr(sys, "unraisablehook", reports.append)
    ran = []

    def bad():
        raise ValueError("callback failed")

    rcu.call_rcu(bad)
    rcu.call_rcu(lambda: ran.append("after"))
    rcu.drain_call_rcu()
    rcu.call_rcu(lambda: ran.append("next batch"))
    rcu.drain_call_rcu()
    assert ran == ["after", "next batch"]
    assert len(reports) == 1
    assert reports[0].exc_type is ValueError
    assert reports[0].object is bad
    assert "RCU callback" in reports[0].err_msg


def test_drain_from_a_callback_raises(monkeypatch):
    reports = []
    monkeypatch.setattr(sys, "unraisablehook", reports.append)
    rcu.call_rcu(rcu.drain_call_rcu)
    rcu.drain_call_rcu()
    assert [r.exc_type for r in reports] == [RcuError]


def test_callback_may_queue_another_callback():
    ran = []
    rcu.call_rcu(lambda: rcu.call_rcu(lambda: ran.append("second")))
    rcu.drain_call_rcu()
    rcu.drain_call_rcu()
    assert ran == ["second"]


def test_synchronize_does_not_wait_for_a_reader_thread_that_exited():
    def reader():
        with rcu.read_lock():
            pass

    join(*run_in_thread(reader))
    synchronize_elsewhere()


def test_synchronize_does_not_wait_for_a_thread_that_exited_inside_a_section():
    # A thread that dies holding a section can hold nothing any more.
    join(*run_in_thread(lib.pm_rcu_read_lock))
    synchronize_elsewhere()


def test_a_thread_can_start_reading_while_a_writer_waits():
    entered, release = threading.Event(), threading.Event()
    holder = run_in_thread(hold_read_section(entered, release))
    entered.wait(DEADLOCK)
    writer = run_in_thread(rcu.synchronize_rcu)
    release.wait(0.05)  # let the writer start waiting for the holder
    # A fresh thread registers as a reader while the writer waits: it must not
    # queue behind the grace period it is not part of.
    newcomer = run_in_thread(lambda: (lib.pm_rcu_read_lock(), lib.pm_rcu_read_unlock()))
    join(*newcomer)
    assert writer[0].is_alive()
    release.set()
    join(*holder)
    join(*writer)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_can_wait_for_grace_periods_and_run_callbacks():
    entered, release = threading.Event(), threading.Event()
    holder = run_in_thread(hold_read_section(entered, release))
    entered.wait(DEADLOCK)
    rcu.call_rcu(lambda: None)  # the parent's reclaimer is stuck on the holder
    pid = os.fork()
    if pid == 0:
        # The holder thread does not exist in the child: nothing to wait for.
        code = 1
        try:
            ran = []
            rcu.call_rcu(lambda: ran.append(1))
            rcu.drain_call_rcu()
            rcu.synchronize_rcu()
            code = 0 if ran == [1] else 2
        finally:
            os._exit(code)
    release.set()
    join(*holder)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    rcu.drain_call_rcu()


def run_python(source):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(source)],
                          capture_output=True, text=True, timeout=DEADLOCK)


def test_interpreter_exit_runs_queued_callbacks():
    proc = run_python("""
        from pymem import rcu
        for i in range(3):
            rcu.call_rcu(lambda i=i: print("ran", i, flush=True))
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:3] == ["ran 0", "ran 1", "ran 2"]


def test_interpreter_exit_does_not_hang_on_a_parked_daemon_reader():
    proc = run_python("""
        import threading
        from pymem import rcu
        entered = threading.Event()
        def reader():
            with rcu.read_lock():
                entered.set()
                threading.Event().wait()
        threading.Thread(target=reader, daemon=True).start()
        entered.wait()
        rcu.call_rcu(lambda: None)
    """)
    assert proc.returncode == 0, proc.stderr


# ------------------------------------------------- the C read side, for real

ADDRS = 4096
SPACE = 1 << 20


def layouts():
    """Two topologies with different section numbers for the same addresses:
    one range over the whole space, or the space split in two at a page."""
    whole = [DispatchRange(0, SPACE, region=1)]
    split = [DispatchRange(0, SPACE // 2, region=1),
             DispatchRange(SPACE // 2, SPACE // 2, region=2)]
    return whole, split


def expected(ranges, addrs):
    disp = Dispatch.build(ranges)
    try:
        return disp.lookup_many(addrs)
    finally:
        disp.close()


def test_lookups_racing_commits_see_one_whole_view_and_nothing_leaks():
    stats = ffi.new("pm_stats *")
    out = ffi.new("pm_as **")
    assert lib.pm_as_new(stats, out) == lib.PM_OK
    asp = ffi.gc(out[0], lib.pm_as_free)
    addrs = array("Q", ((i * 2654435761) % SPACE for i in range(ADDRS)))
    whole, split = layouts()
    answers = {bytes(expected(whole, addrs)), bytes(expected(split, addrs))}
    assert len(answers) == 2
    empty = bytes(4 * ADDRS)  # before the first publish every address is unassigned
    stop = threading.Event()

    def reader():
        src = ffi.from_buffer("uint64_t[]", addrs)
        sections = array("I", empty)
        dst = ffi.from_buffer("uint32_t[]", sections)
        batches = 0
        while not stop.is_set() or batches == 0:
            lib.pm_as_lookup_many(asp, src, dst, ADDRS)
            # One read-side section covers the whole batch: it sees one view.
            got = bytes(sections)
            assert got in answers or got == empty
            batches += 1
        return batches

    readers = [run_in_thread(reader) for _ in range(3)]
    current = {}  # the published Dispatch, kept alive while C may read it
    for i in range(400):
        new = Dispatch.build(split if i % 2 else whole, stats=stats)
        old = lib.pm_as_publish(asp, new.handle)
        if old != ffi.NULL:
            # Free only after every reader that may hold `old` has left.
            rcu.call_rcu(current.pop("d").close)
        current["d"] = new
    stop.set()
    assert all(join(*r) > 0 for r in readers)
    lib.pm_as_publish(asp, ffi.NULL)
    rcu.call_rcu(current.pop("d").close)
    rcu.drain_call_rcu()
    ffi.release(asp)  # before `stats`, which it points at, goes away
    assert stats.live_dispatches == 0
    assert stats.live_address_spaces == 0


# --------------------------------------------------- reader records and keys

EXHAUST_KEYS = """
    import _cffi_backend   # cffi makes a key of its own when imported
    import ctypes
    libc = ctypes.CDLL(None)
    key = ctypes.c_uint()
    while libc.pthread_key_create(ctypes.byref(key), None) == 0:
        pass
"""


def test_a_process_out_of_thread_keys_fails_the_import_naming_the_cause():
    # Before: the key was made lazily and unchecked, so the first reader wrote
    # its record into key 0 (CPython's GIL-state key).
    proc = run_python(EXHAUST_KEYS + """
    try:
        import pymem
    except Exception as exc:
        print(type(exc).__name__, isinstance(exc, RuntimeError), exc)
    else:
        print("imported")
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("RcuError True importing pymem: creating the RCU thread key: "
                                  "the process has run out of thread-specific keys"), proc.stdout


def test_readers_started_after_the_keys_ran_out_keep_other_libraries_keys_intact():
    proc = run_python("""
    from pymem import rcu                  # the import makes the key
    """ + EXHAUST_KEYS + """
    import threading
    api = ctypes.pythonapi
    api.PyGILState_GetThisThreadState.restype = ctypes.c_void_p
    api.PyThreadState_Get.restype = ctypes.c_void_p
    same = []
    def body():
        with rcu.read_lock():
            pass
        same.append(api.PyGILState_GetThisThreadState() == api.PyThreadState_Get())
        # PyGILState_Ensure from a C callback: crashed when key 0 was clobbered.
        CMP = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
        arr = (ctypes.c_int * 4)(3, 1, 2, 0)
        libc.qsort(arr, 4, 4, CMP(lambda a, b: 0))
    for _ in range(3):
        t = threading.Thread(target=body)
        t.start()
        t.join()
    rcu.synchronize_rcu()
    print(same)
    """)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[True, True, True]"


def test_short_lived_reader_threads_come_and_go_while_grace_periods_run():
    # Each thread's record is malloc'd at its first section and freed by its
    # key destructor when it exits: under ASan no grace period reads a dead
    # thread's record; under TSan (thread churn) no race is reported.
    stop = threading.Event()
    periods = [0]

    def writer():
        while not stop.is_set():
            rcu.synchronize_rcu()
            periods[0] += 1

    def reader(nested):
        for _ in range(3):
            with rcu.read_lock():
                if nested:
                    with rcu.read_lock():
                        assert rcu.in_read_section()
        assert not rcu.in_read_section()

    w = threading.Thread(target=writer)
    w.start()
    try:
        for round_ in range(40):
            threads = [threading.Thread(target=reader, args=(i % 2,)) for i in range(5)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    finally:
        stop.set()
        w.join()
    assert periods[0] > 0
    rcu.synchronize_rcu()   # no dead record left to wait for


def test_the_reclaimer_runs_from_import_so_no_commit_starts_a_thread():
    # Starting it from call_rcu put Thread.start() inside commits, where a
    # Ctrl-C landing in its Condition wait turned into "RuntimeError: release
    # unlocked lock" (test_signals' edits under SIGALRM, seen in CI).
    code = ("import threading, pymem.rcu\n"
            "print('pymem-rcu-reclaimer' in [t.name for t in threading.enumerate()])\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "True"


def test_call_rcu_restarts_a_reclaimer_that_ended_with_callbacks_pending(monkeypatch):
    # A reclaimer that ends (here: its grace period raises) with callbacks
    # still pending is started again by the next call_rcu, not only once 64
    # are pending (call_rcu once checked for no thread object at all, which
    # only a fork leaves).
    rcu.drain_call_rcu()
    in_grace_period, fail = threading.Event(), threading.Event()
    real_synchronize = rcu.synchronize_rcu

    def failing_grace_period():
        in_grace_period.set()
        fail.wait(DEADLOCK)
        raise SystemExit   # ends the reclaimer thread quietly

    monkeypatch.setattr(threading, "excepthook", lambda args: None)
    monkeypatch.setattr(rcu, "synchronize_rcu", failing_grace_period)
    ran = []
    rcu.call_rcu(lambda: ran.append("a"))
    assert in_grace_period.wait(DEADLOCK)
    dying = rcu._thread
    rcu.call_rcu(lambda: ran.append("b"))     # pending while the reclaimer dies
    rcu.call_rcu(lambda: ran.append("c"))
    monkeypatch.setattr(rcu, "synchronize_rcu", real_synchronize)
    fail.set()
    dying.join(DEADLOCK)
    assert not dying.is_alive() and not rcu._running
    rcu.call_rcu(lambda: ran.append("d"))     # the third pending callback
    assert rcu._running and rcu._thread is not dying
    rcu.drain_call_rcu()
    assert ran == ["a", "b", "c", "d"]
