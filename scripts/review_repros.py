"""Run every reproducer of the two outside reviews and say how each ends.

    python scripts/review_repros.py [--asan] [NAME ...]

The reviews (`../shared/reviews/c-core.md`, `bad-input.md`) each give a short
script per finding, with what went wrong (a crash, a hang, lost data, a bare
error).  Each reproducer below is that script, bounded (loops cut to a few
seconds) and ending in a check of what pymem promises now: it works, or it
raises a named pymem error (a `PymemError`).  Each runs in its own Python
process with a time limit, so a crash, a sanitizer report or a hang is seen
as such.  With --asan the C core is built with -fsanitize=address,undefined
in a throw-away copy of the working tree (as scripts/sanitize.sh builds it)
and the reproducers run on that build, the sanitizer's runtime preloaded.

A reproducer passes when its process exits 0: it printed what it saw, and
every check held (an error it expects is a PymemError subclass).  Anything
else (a non-zero exit, a signal, a sanitizer report, the time limit) fails
it.  Exit status: the number of failures (0: all pass).

Finding 11 of bad-input.md (KeyboardInterrupt at every line of seven
operations) is tests/test_signals.py, and c-core #10 is a comment and a TSan
false positive: they have no reproducer here.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Dict, List, Tuple

ROOT = Path(__file__).resolve().parent.parent

# Shared prelude: `expect(kind, fn, *args)` runs fn and requires it to raise a
# PymemError that is also a `kind` (the builtin it subclasses; or a tuple).
PRELUDE = '''
import sys
from pymem.errors import PymemError

def expect(kind, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except PymemError as exc:
        assert isinstance(exc, kind), f"{type(exc).__name__} is not a {kind}: {exc}"
        print(f"  {type(exc).__name__}: {str(exc)[:150]}")
        return exc
    raise AssertionError(f"{fn!r}{args} raised nothing")
'''

REPROS: Dict[str, str] = {}


def repro(name: str, code: str) -> None:
    REPROS[name] = textwrap.dedent(code)


# ----------------------------------------------------------- c-core.md

repro("c-core-1-dispatch-close", '''
import gc
from pymem import MemoryRegion, MemorySystem
from pymem.rcu import drain_call_rcu
for how in ("close", "destroy", "none"):
    system = MemorySystem()
    root = MemoryRegion.container("system", 1 << 32)
    root.add_subregion(0, MemoryRegion.ram("ram", 0x10000))
    asp = system.address_space(root, "memory")
    asp.stl_le(0x100, 0x12345678)
    try:
        if how == "close":
            asp.flatview.dispatch.close()
        elif how == "destroy":
            asp.flatview.destroy()
        else:
            asp.flatview.dispatch = None
    except PymemError as exc:
        print(f"  {how}: {type(exc).__name__}: {exc}")
    gc.collect(); drain_call_rcu()
    assert asp.ldl_le(0x100) == 0x12345678
    assert bytes(asp.read(0x100, 4)) == bytes.fromhex("78563412")
    print(f"  {how}: reads still answer 0x12345678")
''')

repro("c-core-2-copy-region", '''
import copy, pickle
from pymem import MemoryRegion
from pymem.errors import NotCopyableError
r = MemoryRegion.ram("ram", 0x1000)
for fn in (copy.copy, copy.deepcopy, pickle.dumps):
    expect(NotCopyableError, fn, r)
''')

repro("c-core-3-diff-leak", '''
import ctypes, os
from pymem import MemoryListener, MemoryRegion, MemorySystem, rcu
system = MemorySystem()
root = MemoryRegion.container("system", 1 << 40)
for i in range(200):
    root.add_subregion(i * 0x2000, MemoryRegion.ram(f"r{i}", 0x1000))
asp = system.address_space(root, "memory")
asp.register_listener(MemoryListener())
other = MemoryRegion.container("other", 1 << 40)
side = system.address_space(other, "side")
class Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc = ctypes.CDLL(None); libc.mallinfo2.restype = Mallinfo2
def heap(): return libc.mallinfo2().uordblks
def commits(n):
    for _ in range(n):
        other.set_size((1 << 40) - 1); other.set_size(1 << 40); rcu.drain_call_rcu()
commits(20)
before = heap(); commits(40); grown = heap() - before
print(f"  40 commits of a 200-range view with a listener: heap grew {grown} bytes")
if "asan" not in os.environ.get("LD_PRELOAD", ""):    # ASan's allocator: mallinfo says nothing
    assert grown < 48 * 200 * 40 // 10, grown
''')

repro("c-core-4-signal-read-section", '''
import random, signal, threading, time
from pymem import MemoryRegion, MemoryRegionOps, MemorySystem, rcu
class Tick(Exception): pass
def handler(s, f): raise Tick()
system = MemorySystem(); root = MemoryRegion.container("system", 1 << 32)
root.add_subregion(0, MemoryRegion.io("dev", 0x1000, MemoryRegionOps(lambda o, s: 0, lambda o, v, s: None)))
asp = system.address_space(root, "memory")
signal.signal(signal.SIGALRM, handler)
buf, ticks = bytearray(4), 0
for mode in ("rw", "ctx"):
    end = time.monotonic() + 2
    while time.monotonic() < end:
        try:
            # One-shot timers, and a loop only the signal ends: each Tick
            # lands inside the loop, never in this harness.
            signal.setitimer(signal.ITIMER_REAL, random.uniform(1e-5, 3e-4))
            while True:
                if mode == "rw":
                    asp.rw(0, buf, False)
                else:
                    with rcu.read_lock():
                        pass
        except Tick:
            ticks += 1
        assert not rcu.in_read_section(), f"read section leaked after {ticks} ticks ({mode})"
t = threading.Thread(target=rcu.synchronize_rcu, daemon=True); t.start(); t.join(5)
assert not t.is_alive(), "synchronize_rcu from another thread hangs"
print(f"  {ticks} signals: no read section leaked, grace periods end")
''')

repro("c-core-5-alias-attribute", '''
from pymem import MemoryRegion, MemorySystem
from pymem.errors import ReadOnlyAttributeError
system = MemorySystem(page_bits=10)
root = MemoryRegion.container("system", 1 << 32)
a = MemoryRegion.alias("window", MemoryRegion.ram("first", 0x4000), 0, 0x4000)
root.add_subregion(0, a)
asp = system.address_space(root, "memory")
other = MemoryRegion.ram("other", 0x4000)
other.set_log(True); other.get_dirty(0, 0x4000, 1)
expect(ReadOnlyAttributeError, setattr, a, "alias", other)
root.set_size((1 << 32) - 1)
asp.write(0x3c00, b"x" * 16)
print("  the write went to", asp.translate(0x3c00)[0].name)
''')

repro("c-core-6-pthread-keys", '''
import ctypes, threading
from pymem import rcu
libc = ctypes.CDLL(None); k = ctypes.c_uint()
n = 0
while libc.pthread_key_create(ctypes.byref(k), None) == 0: n += 1
api = ctypes.pythonapi; api.PyGILState_GetThisThreadState.restype = ctypes.c_void_p
api.PyThreadState_Get.restype = ctypes.c_void_p
out = {}
def body():
    with rcu.read_lock(): pass
    out["same"] = api.PyGILState_GetThisThreadState() == api.PyThreadState_Get()
    CMP = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
    arr = (ctypes.c_int * 4)(3, 1, 2, 0)
    libc.qsort(arr, 4, 4, CMP(lambda a, b: 0))
t = threading.Thread(target=body); t.start(); t.join()
assert out["same"], "the GIL-state key was overwritten"
for _ in range(8):
    t = threading.Thread(target=body); t.start(); t.join()
rcu.synchronize_rcu()
print(f"  {n} keys taken first: readers in new threads work, the GIL-state key is intact")
''')

repro("c-core-7-call-rcu-after-exit", '''
import atexit, time
start = time.monotonic()
def unplug():
    dma.destroy()
    print(f"  unplugged at exit, {time.monotonic() - start:.1f} s after start")
atexit.register(unplug)
import threading
from pymem import MemoryRegion, MemorySystem, rcu
system = MemorySystem()
root = MemoryRegion.container("sys", 1 << 32); root.add_subregion(0, MemoryRegion.ram("ram", 0x1000))
dma = system.address_space(MemoryRegion.container("dma-root", 1 << 32), "dma")
dma.root.add_subregion(0, MemoryRegion.alias("dma-ram", root, 0, 0x1000))
entered = threading.Event()
def reader():
    with rcu.read_lock(): entered.set(); threading.Event().wait()
threading.Thread(target=reader, daemon=True).start(); entered.wait()
''')

repro("c-core-8-overlapping-copy", '''
from pymem import MemoryRegion, MemorySystem
s = MemorySystem(); root = MemoryRegion.container("root", 1 << 32)
ram = MemoryRegion.ram("ram", 0x10000); root.add_subregion(0, ram)
asp = s.address_space(root, "as")
ram.buffer[0x1000:0x1400] = bytes(range(256)) * 4
src = asp.map(0x1000, 0x400, False)
asp.write(0x1010, src)
assert bytes(ram.buffer[0x1010:0x1410]) == bytes(range(256)) * 4
asp.unmap(src)
print("  write from a mapped view of the same RAM: memmove semantics")
''')

repro("c-core-9-read-before-check", '''
import time
from pymem import MemoryRegion, MemorySystem
s = MemorySystem(); root = MemoryRegion.container("root", 1 << 32)
asp = s.address_space(root, "as")
t = time.monotonic()
expect(ValueError, asp.read, (1 << 64) - 1, 1 << 31)
assert time.monotonic() - t < 1, "the buffer was allocated first"
''')

# ----------------------------------------------------------- bad-input.md

repro("bad-input-1-listener-edits", '''
from pymem import MemoryListener, MemoryRegion, MemorySystem
from pymem.errors import EditDuringCommitError
from pymem.rcu import drain_call_rcu
s = MemorySystem()
a, b = MemoryRegion.container("a", 1 << 32), MemoryRegion.container("b", 1 << 32)
b.add_subregion(0, MemoryRegion.ram("ram", 0x1000))
asp_a, asp_b = s.address_space(a, "a"), s.address_space(b, "b")
late = MemoryRegion.ram("late", 0x1000)
seen = []
class Mapper(MemoryListener):
    def region_add(self, section):
        if section.mr.name == "dev" and late.container is None:
            try:
                a.add_subregion(0x2000, late)
            except EditDuringCommitError as exc:
                seen.append(exc)
                raise
asp_a.register_listener(Mapper())
expect(EditDuringCommitError, a.add_subregion, 0x1000, MemoryRegion.ram("dev", 0x1000))
assert seen and late.container is None
assert asp_b.flatview.refs > 0
drain_call_rcu()
asp_b.stl_le(0, 0xabcd)
for _ in range(10000):
    assert asp_b.ldl_le(0) == 0xabcd
print("  the listener's edit is refused; b's view is live")
''')

repro("bad-input-2-ctrl-c-edits", '''
import gc, random, signal, time
from pymem import MemoryRegion, MemorySystem, TopologyError
random.seed(2)
s = MemorySystem(); root = MemoryRegion.container("root", 1 << 32)
asp = s.address_space(root, "as")
signal.signal(signal.SIGALRM, signal.default_int_handler)
hits, end = 0, time.monotonic() + 4
while time.monotonic() < end:
    try:
        signal.setitimer(signal.ITIMER_REAL, random.uniform(1e-5, 2e-4))
        for i in range(20):
            r = MemoryRegion.ram(f"r{i}", 0x1000)
            root.add_subregion(0x1000 * random.randrange(64), r)
            root.del_subregion(r)
        signal.setitimer(signal.ITIMER_REAL, 0)
    except KeyboardInterrupt:
        signal.setitimer(signal.ITIMER_REAL, 0)
        hits += 1
    for sub in list(root.subregions):
        assert sub.container is root
        root.del_subregion(sub)
    r = None; gc.collect(); asp.translate(0)
assert not root.subregions and not asp.flatview.ranges
print(f"  {hits} interrupts: the trees stayed equal, every region removable")
''')

repro("bad-input-3-copy", '''
import copy, gc
from pymem import MemoryRegion
from pymem.errors import NotCopyableError
r = MemoryRegion.ram("template", 0x1000)
expect(NotCopyableError, copy.copy, r)
expect(NotCopyableError, copy.deepcopy, MemoryRegion.container("c", 0x1000))
''')

repro("bad-input-4-iommu-cycle", '''
from pymem import IOMMUAccessFlags, IOMMUTLBEntry, MemoryRegion, MemorySystem
from pymem.errors import IOMMUCycleError
s = MemorySystem(); root = MemoryRegion.container("root", 1 << 32); box = {}
root.add_subregion(0, MemoryRegion.iommu("iommu", 0x10000,
    lambda addr, flag: IOMMUTLBEntry(box["as"], addr, addr, 0xfff, IOMMUAccessFlags.RW)))
box["as"] = asp = s.address_space(root, "dma")
expect(IOMMUCycleError, asp.ldl_le, 0x10)
expect(IOMMUCycleError, asp.translate, 0x10, 4, False)
expect(IOMMUCycleError, asp.map, 0x10, 4, False)
expect(IOMMUCycleError, asp.rw, 0x10, bytearray(4), False)
''')

repro("bad-input-5-huge-trace-size", '''
import json, os, tempfile, time
from pymem.trace import TraceFormatError, load_trace
hdr = {"type": "header", "format": "pymem-trace", "version": 1, "page_bits": 12, "mmio_only": True, "spaces": ["memory"]}
acc = {"type": "access", "space": "memory", "op": "write", "addr": "0xfed00000", "size": 1 << 33,
       "value": "0x0", "attrs": None, "result": 0, "region": "hpet", "offset": "0x0"}
fd, path = tempfile.mkstemp(suffix=".jsonl"); os.close(fd)
open(path, "w").write(json.dumps(hdr) + "\\n" + json.dumps(acc) + "\\n")
t = time.monotonic()
expect(TraceFormatError, load_trace, path)
assert time.monotonic() - t < 2
os.unlink(path)
''')

repro("bad-input-6-raising-listener", '''
from pymem import MemoryListener, MemoryRegion, MemorySystem
s = MemorySystem(); root = MemoryRegion.container("root", 1 << 32)
asp = s.address_space(root, "as")
class Buggy(MemoryListener):
    def region_add(self, sec):
        if sec.mr.name == "b": raise RuntimeError("listener bug")
class Mirror(MemoryListener):
    priority = 10
    def __init__(self): self.slots = set()
    def region_add(self, sec): self.slots.add(sec.mr.name)
    def region_del(self, sec): self.slots.discard(sec.mr.name)
m = Mirror(); asp.register_listener(Buggy()); asp.register_listener(m)
try:
    with s.transaction():
        root.add_subregion(0x1000, MemoryRegion.ram("b", 0x1000))
        root.add_subregion(0x2000, MemoryRegion.ram("c", 0x1000))
    raise AssertionError("the listener's error was swallowed")
except RuntimeError as exc:
    print("  the listener's own error reaches the editor:", exc)
view = sorted(r.region.name for r in asp.flatview.ranges)
assert view == sorted(m.slots) == ["b", "c"], (view, m.slots)
print("  the other listener heard every range:", sorted(m.slots))
''')

repro("bad-input-7-unremovable-listener", '''
from pymem import MemoryListener, MemoryRegion, MemorySystem
s = MemorySystem(); root = MemoryRegion.container("root", 1 << 32); asp = s.address_space(root, "as")
class Buggy(MemoryListener):
    def commit(self): raise RuntimeError("listener bug")
L = Buggy()
for step in (lambda: asp.register_listener(L), lambda: asp.unregister_listener(L)):
    try: step()
    except RuntimeError as e: print("  raised:", e)
assert L not in asp.listeners
try: asp.register_listener(L)
except RuntimeError as e: print("  raised:", e)
try: asp.destroy()
except RuntimeError as e: print("  destroy raised:", e)
assert L not in asp.listeners and asp.destroyed
root.add_subregion(0, MemoryRegion.ram("ram", 0x1000))
print("  removed by unregister and by destroy; later edits are fine")
''')

repro("bad-input-8-record-destroyed", '''
import os, tempfile
from pymem import MemoryRegion, MemoryRegionOps, MemorySystem
s = MemorySystem(); root = MemoryRegion.container("root", 1 << 32)
root.add_subregion(0, MemoryRegion.io("dev", 0x100, MemoryRegionOps(lambda o, n: 1, lambda o, v, n: None)))
asp = s.address_space(root, "hotplugged-dma")
fd, path = tempfile.mkstemp(suffix=".jsonl"); os.close(fd)
with asp.record(path):
    for i in range(100): asp.ldl_le(0)
    asp.destroy()
lines = open(path).read().count("\\n")
os.unlink(path)
assert lines >= 101, lines
print(f"  {lines} lines kept")
''')

repro("bad-input-9-replay-stub-raises", '''
from pymem import machines
from pymem.region import reachable
from pymem.trace import Access, Trace, replay
system = machines.load("q35")
devices = {mr: mr.ops for a in system.address_spaces for mr in reachable(a.root) if mr.ops}
calls = []
def stub(mr):
    calls.append(mr)
    if len(calls) == 5: raise RuntimeError("bug in my predicate")
    return True
try: replay(Trace({}, [Access("memory", "read", 0xfed00000, 4, value=7, region="hpet", offset=0)], False), system, stub=stub)
except RuntimeError: pass
changed = [mr.name for mr, ops in devices.items() if mr.ops is not ops]
assert not changed, changed
print(f"  every device's ops restored ({len(devices)} devices)")
''')

repro("bad-input-10-unmap-bad-len", '''
from pymem import MemoryRegion, MemoryRegionOps, MemorySystem
got = []; s = MemorySystem(); root = MemoryRegion.container("root", 1 << 32)
root.add_subregion(0, MemoryRegion.io("dev", 0x100, MemoryRegionOps(lambda o, n: 0, lambda o, v, n: got.append(v))))
asp = s.address_space(root, "as")
view = asp.map(0, 16, True); view[:] = b"\\x01" * 16
expect(ValueError, asp.unmap, view, -1)
asp.unmap(view)
assert got and all(v for v in got), got
print("  the retry wrote the bounce buffer:", len(got), "writes")
''')

repro("bad-input-12-fork-while-editing", '''
import os, signal, threading, time
from pymem import MemoryRegion, MemorySystem
s = MemorySystem(); root = MemoryRegion.container("root", 1 << 32); asp = s.address_space(root, "as")
def editor():
    while True:
        r = MemoryRegion.ram("r", 0x1000); root.add_subregion(0, r); root.del_subregion(r)
threading.Thread(target=editor, daemon=True).start(); time.sleep(0.2)
for i in range(5):
    pid = os.fork()
    if pid == 0:
        signal.alarm(5)
        root.add_subregion(0x1000, MemoryRegion.ram("child", 0x1000))
        assert asp.translate(0x1000)[0].name == "child"
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert status == 0, f"child {i}: status {status:#x}"
    time.sleep(0.05)
print("  5 of 5 children edited and exited 0")
''')

repro("bad-input-13-attributes", '''
from pymem import MemoryRegion, MemorySystem
from pymem.errors import ReadOnlyAttributeError
s = MemorySystem(); root = MemoryRegion.container("root", 1 << 32)
a, b = MemoryRegion.ram("a", 0x1000), MemoryRegion.ram("b", 0x1000)
root.add_subregion(0, a, priority=1); root.add_subregion(0, b, priority=0)
asp = s.address_space(root, "as")
for obj, field, value in ((b, "priority", 5), (a, "size", (1 << 64) + 0x10), (a, "addr", 4),
                          (a, "enabled", False), (a, "alias", b), (a, "container", None)):
    expect(ReadOnlyAttributeError, setattr, obj, field, value)
assert asp.translate(0)[0] is a and b.priority == 0 and a.size == 0x1000
''')

repro("bad-input-14-cli-exit-status", '''
import json, os, subprocess, sys, tempfile
d = tempfile.mkdtemp()
fx = "tests/fixtures/qemu/x86_64-pc-booted"
cases = {"list": [], "as_roots": {"as_roots": {"x": 1}}}
for name, hints in cases.items():
    path = os.path.join(d, name + ".json"); json.dump(hints, open(path, "w"))
    p = subprocess.run([sys.executable, "-m", "pymem", "replay", f"{fx}/trace.log", "--mtree",
                        f"{fx}/mtree-D.txt", "--hints", path], capture_output=True, text=True)
    assert p.returncode == 2 and "Traceback" not in p.stderr, (p.returncode, p.stderr[-500:])
    print(f"  hints {name}: exit 2:", p.stderr.strip().splitlines()[-1][:120])
deep = os.path.join(d, "deep.txt")
with open(deep, "w") as f:
    f.write("address-space: memory\\n")
    for i in range(600):
        f.write("  " * (i + 1) + f"0000000000000000-000000000000ffff (prio 0, i/o): c{i}\\n")
p = subprocess.run([sys.executable, "-m", "pymem", "mtree", deep], capture_output=True, text=True)
assert p.returncode in (0, 2) and "Traceback" not in p.stderr, (p.returncode, p.stderr[-500:])
print(f"  a dump 600 levels deep: exit {p.returncode}")
p = subprocess.run([sys.executable, "-m", "pymem", "bench", "--mtree", os.path.join(d, "missing.txt"),
                    "--hints", os.path.join(d, "x.json")], capture_output=True, text=True)
assert p.returncode == 2 and "Traceback" not in p.stderr, (p.returncode, p.stderr[-500:])
print("  bench --mtree missing.txt: exit 2:", p.stderr.strip().splitlines()[-1][:120])
''')

repro("bad-input-15-log-first-line", '''
import os, tempfile
from pathlib import Path
from pymem.trace import load_trace
log = Path("tests/fixtures/qemu/x86_64-pc-booted/trace.log").read_text()
n = len(load_trace("tests/fixtures/qemu/x86_64-pc-booted/trace.log").events)
d = tempfile.mkdtemp()
for name, head in (("warning", "qemu-system-x86_64: warning: TCG doesn't support requested feature\\n"),
                   ("blank", "\\n"), ("bom", "\\ufeff")):
    p = Path(d, name + ".log"); p.write_text(head + log, encoding="utf-8")
    t = load_trace(str(p))
    assert len(t.events) == n, (name, len(t.events), n)
    print(f"  first line {name}: {len(t.events)} events read")
''')

repro("bad-input-16-overlapping-rw", '''
from pymem import MemoryRegion, MemorySystem
s = MemorySystem(); root = MemoryRegion.container("root", 1 << 32)
ram = MemoryRegion.ram("ram", 0x10000); root.add_subregion(0, ram)
asp = s.address_space(root, "as")
ram.buffer[0:0x800] = bytes(range(256)) * 8
asp.rw(0x10, ram.buffer[0:0x800], True)
assert bytes(ram.buffer[0x10:0x810]) == bytes(range(256)) * 8
print("  overlapping rw: memmove semantics")
''')

repro("bad-input-17-unassigned-speed", '''
import time
from pymem import MemoryRegion, MemorySystem
s = MemorySystem(); root = MemoryRegion.container("root", 1 << 32)
root.add_subregion(0, MemoryRegion.ram("ram", 0x1000))
asp = s.address_space(root, "as")
t = time.monotonic()
asp.rw(0x100000, bytearray(1 << 20), False)
asp.rw(0x100000, bytearray(1 << 20), True)
dt = time.monotonic() - t
assert dt < 1.0, dt
print(f"  1 MiB read + 1 MiB write of a hole: {dt * 1000:.1f} ms")
''')

repro("bad-input-18-root-move", '''
from pymem import MemoryRegion, MemorySystem
s = MemorySystem()
one, two = MemoryRegion.container("one", 1 << 32), MemoryRegion.container("two", 1 << 32)
one.add_subregion(0, MemoryRegion.ram("a", 0x1000))
two.add_subregion(0, MemoryRegion.ram("b", 0x1000)); two.add_subregion(0x2000, MemoryRegion.ram("c", 0x1000))
as1, as2 = s.address_space(one, "one"), s.address_space(two, "two")
one.set_address(0x5000); two.set_address(0x5000)
# README ("Moving an address space's root"): as QEMU counts it.  A root with
# one child covering it is stood for by that child (the flat-view-root
# shortcut), which stays at 0; a root rendered itself moves.
r1, r2 = as1.translate(0x5000)[0], as2.translate(0x5000)[0]
print("  after moving both roots to 0x5000:", r1 and r1.name, r2 and r2.name)
assert r1 is None and as1.translate(0)[0].name == "a" and r2.name == "b"
''')

repro("bad-input-19-callbacks", '''
from pymem import (IOMMUTLBEntry, MemoryRegion, MemoryRegionOps, MemorySystem, MemTxAttrs)
from pymem.errors import ArgumentTypeError, InvalidArgumentError
def space(ops):
    s = MemorySystem(); root = MemoryRegion.container("root", 1 << 32)
    root.add_subregion(0, MemoryRegion.io("dev", 0x100, ops))
    return s, s.address_space(root, "as")
for answer in (None, "1", 1.5, (1,), b"\\x01"):
    _, asp = space(MemoryRegionOps(lambda o, n, a=answer: a, lambda o, v, n: None))
    expect(TypeError, asp.ldl_le, 0)
    expect(TypeError, asp.read, 0, 4)
for answer in (None, (1,)):
    _, asp = space(MemoryRegionOps(lambda o, n, at, a=answer: a, lambda o, v, n, at: 0, with_attrs=True))
    expect(TypeError, asp.load, 0, 4)
_, asp = space(MemoryRegionOps(lambda o, n, at: (0, 0), lambda o, v, n, at: "x", with_attrs=True))
expect(TypeError, asp.store, 0, 1, 4)
expect(TypeError, MemoryRegionOps, lambda o, n: 0, lambda o, v, n: None, valid_max=4.0)
expect(TypeError, MemoryRegion.iommu, "iommu", 0x1000, lambda a, f: None, 5)
''')

repro("bad-input-19-builtins", '''
from pymem import MemoryRegion, MemorySystem, MemTxAttrs
from pymem.dispatch import Dispatch
import numpy as np
s = MemorySystem(); root = MemoryRegion.container("root", 1 << 32)
ram = MemoryRegion.ram("ram", 0x1000); root.add_subregion(0, ram)
asp = s.address_space(root, "as")
expect(ValueError, asp.stl_le, 0, -1)
expect(ValueError, asp.stl_le, 0, 1 << 64)
expect(ValueError, asp.stl_le, 0, 1 << 32)
expect(TypeError, asp.ldl_le, True)
expect(TypeError, asp.ldl_le, np.uint64(0))
assert bytes(asp.read(0, 4, attrs=MemTxAttrs(secure=True))) == bytes(4)
asp.write(0, b"abcd", attrs=MemTxAttrs())
expect((ValueError, MemoryError), asp.read, 0, 1 << 63)
expect(TypeError, asp.rw, 0, memoryview(b"...."), False)
strided = np.arange(16, dtype=np.uint8)[::2]
asp.write(0, strided)
assert bytes(asp.read(0, 8)) == bytes(strided)
expect((TypeError, ValueError), MemoryRegion.ram, "f", 16, buffer=np.zeros((4, 4), dtype=np.uint8, order="F")[:, :3])
d = asp.flatview.dispatch
expect(IndexError, d.section, -1)
expect(IndexError, d.node, -1)
expect(IndexError, d.subpage, 1 << 32)
''')

repro("bad-input-19-hints", '''
from pymem.qemu.mtree import load_mtree
from pathlib import Path
dump = Path("tests/fixtures/qemu/x86_64-pc-booted/mtree-D.txt").read_text()
for hints in ({"page_bits": "12"}, {"as_order": 5}, {"as_order": [5]}, {"as_roots": 5},
              {"as_roots": {"x": 1}}, {"containers": [[1]]}, [], "x", 5):
    print(f"  hints {hints!r}:")
    exc = expect(Exception, load_mtree, dump, hints)
    assert isinstance(exc, (TypeError, ValueError)), exc
''')

repro("bad-input-19-deep", '''
import sys
from pymem import MemoryRegion, MemorySystem
from pymem.qemu import format_mtree
from pymem.qemu.mtree import load_mtree
s = MemorySystem(); top = MemoryRegion.container("c0", 1 << 32); mr = top
for i in range(1, 1500):
    child = MemoryRegion.container(f"c{i}", 1 << 32); mr.add_subregion(0, child); mr = child
s.address_space(top, "deep")
text = format_mtree(s)
print("  format_mtree of 1500 levels:", len(text.splitlines()), "lines")
lines = ["address-space: memory"] + ["  " * (i + 1) + f"0000000000000000-000000000000ffff (prio 0, i/o): c{i}" for i in range(800)]
load_mtree("\\n".join(lines) + "\\n")
print("  load_mtree of 800 levels: ok")
lines = ["address-space: memory", "  0000000000000000-000000000000ffff (prio 0, i/o): root",
         "    0000000000000000-00000000000000ff (prio 0, ram): r0"]
for i in range(1, 1500):
    lines.append(f"    0000000000000000-00000000000000ff (prio 0, i/o): a{i} [disabled]")
for i in range(1, 1500):
    tgt = "r0" if i == 1 else f"a{i - 1}"
    lines.append(f"    0000000000000000-00000000000000ff (prio 0, ram): {tgt} [disabled]")
try:
    load_mtree("\\n".join(lines) + "\\n")
    print("  a long alias-ish dump loads")
except PymemError as exc:
    print("  ", type(exc).__name__, str(exc)[:100])
''')

repro("bad-input-19-traces", '''
import json, os, tempfile
from pymem.trace import TraceFormatError, load_trace
hdr = {"type": "header", "format": "pymem-trace", "version": 1, "page_bits": 12, "mmio_only": True, "spaces": ["memory"]}
def access(**kw):
    a = {"type": "access", "space": "memory", "op": "read", "addr": "0xfed00000", "size": 4,
         "value": "0x0", "attrs": None, "result": 0, "region": "hpet", "offset": "0x0"}
    a.update(kw); return a
d = tempfile.mkdtemp()
for name, acc in (("addr 2^64", access(addr=hex(1 << 64))), ("past 2^64", access(addr=hex((1 << 64) - 2))),
                  ("size 3", access(size=3)), ("size 16", access(size=16))):
    path = os.path.join(d, "t.jsonl")
    open(path, "w").write(json.dumps(hdr) + "\\n" + json.dumps(acc) + "\\n")
    exc = expect(TraceFormatError, load_trace, path)
    assert "line 2" in str(exc), exc
log = os.path.join(d, "q.log")
open(log, "w").write("memory_region_ops_read cpu 0 mr 0x55d0 addr 0x10000000000000000 value 0x0 size 4 name 'hpet'\\n")
from pymem import machines
from pymem.trace import format_report, replay
t = load_trace(log)
report = format_report(replay(t, machines.load("q35")), "q.log")
assert not t.events and "q.log:1: access of 4 bytes at 0x10000000000000000 runs past 2^64 (skipped)" in report, report
print("  a QEMU log line past 2^64: skipped, and the report names it:", report.splitlines()[0])
''')

repro("bad-input-19-files-cli", '''
import os, subprocess, sys, tempfile
from pymem import MemoryRegion, MemorySystem
s = MemorySystem(); root = MemoryRegion.container("root", 1 << 32); asp = s.address_space(root, "as")
def record(path):
    with asp.record(path):
        pass
expect(OSError, record, "no/such/dir/t.jsonl")
d = tempfile.mkdtemp()
empty = os.path.join(d, "empty.txt"); open(empty, "w").close()
bad = os.path.join(d, "bad.txt"); open(bad, "wb").write(b"address-space: \\xff\\xfe\\n")
for args in (["qemu-dispatch", empty], ["mtree", bad]):
    p = subprocess.run([sys.executable, "-m", "pymem", *args], capture_output=True, text=True)
    assert p.returncode == 2 and "Traceback" not in p.stderr, (args, p.returncode, p.stderr[-400:])
    print(f"  pymem {args[0]}: exit 2:", p.stderr.strip().splitlines()[-1][:100])
''')

repro("bad-input-19-consistency", '''
from pymem import MemoryRegion, MemorySystem, rcu
s = MemorySystem(); root = MemoryRegion.container("root", 1 << 32)
ram = MemoryRegion.ram("ram", 0x1000); asp = s.address_space(root, "as")
expect(TypeError, MemoryRegion.ram, "f", 4096.0)
expect(TypeError, root.add_subregion, 0.0, ram)
expect(TypeError, root.add_subregion, 0, ram, 1.0)
root.add_subregion(0, ram)
view = asp.map(0, 16, False); asp.unmap(view)
expect(ValueError, asp.unmap, view)
ram.set_log(True)
expect(ValueError, ram.get_dirty, 0, 16, 7)
expect(TypeError, rcu.call_rcu, 5)
''')


# ------------------------------------------------------------------ runner

def build_asan(work: Path) -> Dict[str, str]:
    """A copy of the working tree with the C core built under ASan/UBSan;
    the environment that runs Python on it."""
    cc = os.environ.get("CC", "gcc")
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    for f in filter(None, files):
        src = ROOT / f.decode()
        if src.exists():
            (work / f.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, work / f.decode())
    flags = "-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1"
    subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=work, check=True,
                   env={**os.environ, "CC": cc, "PYMEM_CFLAGS": flags, "PYMEM_LDFLAGS": flags.split()[0]},
                   capture_output=True)
    runtime = subprocess.run([cc, "-print-file-name=libasan.so"], capture_output=True, text=True,
                             check=True).stdout.strip()
    return {"LD_PRELOAD": runtime, "PYTHONMALLOC": "malloc",
            "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1:allocator_may_return_null=1",
            "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}


def run(names: List[str], asan: bool, timeout: float = 120) -> List[Tuple[str, str, float]]:
    results = []
    with tempfile.TemporaryDirectory(prefix="pymem-repros-") as tmp:
        cwd, env = ROOT, dict(os.environ)
        if asan:
            cwd = Path(tmp) / "asan"
            env.update(build_asan(cwd))
        env["PYTHONPATH"] = str(cwd)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        # An editable install must not win over the copy: check what is imported.
        native = subprocess.run([sys.executable, "-c", "import pymem._native as n; print(n.__file__)"],
                                cwd=cwd, env=env, capture_output=True, text=True).stdout.strip()
        if not native.startswith(str(cwd)):
            raise SystemExit(f"the reproducers would import {native or 'nothing'}, not the build in {cwd}")
        print(f"pymem's C core: {native}")
        for name in names:
            start = time.monotonic()
            try:
                p = subprocess.run([sys.executable, "-c", PRELUDE + REPROS[name]], cwd=cwd, env=env,
                                   capture_output=True, text=True, timeout=timeout)
                ok = p.returncode == 0 and "ERROR: AddressSanitizer" not in p.stderr \
                    and "runtime error:" not in p.stderr
                verdict = "pass" if ok else f"FAIL (exit {p.returncode})"
                out = p.stdout + ("" if ok else p.stderr[-3000:])
            except subprocess.TimeoutExpired as exc:
                verdict, out = f"FAIL (hang: over {timeout:.0f} s)", str(exc.stdout or "")
            dt = time.monotonic() - start
            print(f"{name}: {verdict} ({dt:.1f} s)")
            for line in out.rstrip().splitlines():
                print("   ", line)
            results.append((name, verdict, dt))
    return results


def main(argv: List[str]) -> int:
    asan = "--asan" in argv
    names = [a for a in argv if not a.startswith("--")] or list(REPROS)
    unknown = [n for n in names if n not in REPROS]
    if unknown:
        print(f"no reproducer {', '.join(unknown)} (have: {', '.join(REPROS)})", file=sys.stderr)
        return 2
    results = run(names, asan)
    failed = [n for n, v, _ in results if v != "pass"]
    build = "ASan/UBSan" if asan else "plain"
    print(f"{len(results) - len(failed)} of {len(results)} reproducers pass on the {build} build"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return len(failed)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
