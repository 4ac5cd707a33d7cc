"""Bad input gets a named pymem error: each row is one input from the
bad-input review (finding 19) and what it must raise, a PymemError that
subclasses the matching builtin, with a message naming the object."""
from __future__ import annotations

import json

import pytest

from pymem import (ArgumentTypeError, DumpParseError, IndexOutOfRangeError, InvalidArgumentError,
                   MemoryRegion, MemoryRegionOps, MemorySystem, OutOfMemoryError, PymemError,
                   TopologyError)
from pymem.memtx import MemTxAttrs, MemTxResult
from pymem.qemu import load_mtree
from pymem.rcu import call_rcu
from pymem.trace import TraceWriteError
from pymem.trace import record as record_trace

np = pytest.importorskip("numpy")


def space(read=lambda o, n: 0, write=lambda o, v, n: None, **ops_args):
    system = MemorySystem()
    root = MemoryRegion.container("root", 1 << 32)
    root.add_subregion(0, MemoryRegion.io("dev", 0x100, MemoryRegionOps(read, write,
                                                                         **ops_args)))
    root.add_subregion(0x1000, MemoryRegion.ram("ram", 0x1000))
    return system.address_space(root, "as")


def returning(value, **ops_args):
    return space(lambda o, n: value, **ops_args)


def attrs_space(read_answer=(0, 0), write_answer=None):
    return space(lambda o, n, a: read_answer, lambda o, v, n, a: write_answer,
                 with_attrs=True)


def mapped_twice():
    asp = space()
    view = asp.map(0x1000, 4, False)
    asp.unmap(view)
    asp.unmap(view)


MTREE = (
    "address-space: memory\n"
    "  0000000000000000-ffffffffffffffff (prio 0, i/o): system\n"
    "    0000000000000000-0000000000000fff (prio 0, ram): ram\n"
)


def hints(obj):
    load_mtree(MTREE, obj)


# (id, action, expected class, message fragment)
CASES = [
    # Device callbacks answering something that is not an int: the C fast
    # path (ldl_le on a device that implements 4 bytes) and the Python paths.
    *[(f"read returns {label} ({path})", (lambda v=v, path=path: (
        returning(v).ldl_le(0) if path == "fast" else
        returning(v).rw(0, bytearray(8), False) if path == "rw" else
        returning(v, impl_max=1).load(0, 4))),
       ArgumentTypeError, f"device 'dev': its read callback answered {label}")
      for label, v in (("NoneType", None), ("str", "x"), ("float", 1.5), ("tuple", (1,)),
                       ("bytes", b"\x01"))
      for path in ("fast", "rw", "split")],
    ("with_attrs read returns None", lambda: attrs_space(None).ldl_le(0),
     ArgumentTypeError, "not a (value, MemTxResult) pair"),
    ("with_attrs read returns a 1-tuple", lambda: attrs_space((1,)).read(0, 4),
     ArgumentTypeError, "not a (value, MemTxResult) pair"),
    ("with_attrs write returns a str", lambda: attrs_space(write_answer="s").stl_le(0, 1),
     ArgumentTypeError, "its write (with_attrs) callback answered str"),
    # Constructors.
    ("ops valid_max=4.0", lambda: MemoryRegionOps(lambda o, n: 0, lambda o, v, n: None,
                                                  valid_max=4.0),
     ArgumentTypeError, "valid access sizes must be ints"),
    ("ops impl_min=True", lambda: MemoryRegionOps(lambda o, n: 0, lambda o, v, n: None,
                                                  impl_min=True),
     ArgumentTypeError, "impl access sizes must be ints"),
    ("iommu target=5", lambda: MemoryRegion.iommu("iommu", 0x1000, lambda a, f: None,
                                                  target=5),
     ArgumentTypeError, "iommu 'iommu': target must be an AddressSpace"),
    ("ram size 2.0", lambda: MemoryRegion.ram("r", 16.0), ArgumentTypeError,
     "region 'r': size must be an int, not float"),
    ("ram size past 2^64", lambda: MemoryRegion.ram("r", (1 << 64) + 1), TopologyError,
     "region 'r': size 0x10000000000000001 is beyond 2^64"),
    ("offset 1.0", lambda: MemoryRegion.container("c", 100).add_subregion(
        1.0, MemoryRegion.ram("r", 16)), ArgumentTypeError, "adding 'r' to 'c': offset"),
    ("offset numpy", lambda: MemoryRegion.container("c", 100).add_subregion(
        np.int64(1), MemoryRegion.ram("r", 16)), ArgumentTypeError, "not int64"),
    ("priority 1.0", lambda: MemoryRegion.container("c", 100).add_subregion(
        0, MemoryRegion.ram("r", 16), priority=1.0), ArgumentTypeError,
     "adding 'r' to 'c': priority must be an int"),
    ("ram buffer Fortran-order", lambda: MemoryRegion.ram(
        "r", 16, buffer=np.zeros((4, 4), dtype=np.uint8, order="F")),
     InvalidArgumentError, "ram 'r': buffer is not C-contiguous"),
    ("set_log client 77", lambda: MemoryRegion.ram("r", 16).set_log(True, 77),
     InvalidArgumentError, "unknown dirty-memory client 77"),
    # Accesses.
    ("rw into a read-only buffer", lambda: space().rw(0x1000, memoryview(b"abcd"), False),
     ArgumentTypeError, "cannot read into a read-only memoryview"),
    ("rw into a strided array", lambda: space().rw(
        0x1000, np.zeros((4, 4), dtype=np.uint8)[:, ::2], False),
     ArgumentTypeError, "non-contiguous (strided) ndarray"),
    ("rw from an int", lambda: space().rw(0x1000, 5, True), ArgumentTypeError,
     "buffer must support the buffer protocol, not int"),
    ("unmap twice", mapped_twice, InvalidArgumentError, "did not come from map()"),
    ("translate length -1", lambda: space().translate(0, -1), InvalidArgumentError,
     "translate length must be a non-negative int"),
    ("load size 3", lambda: space().load(0, 3), InvalidArgumentError,
     "load size must be 1, 2, 4 or 8"),
    ("read(0, 2**63)", lambda: space().read(0, 1 << 63), OutOfMemoryError,
     "read of 0x8000000000000000 bytes at 0x0: no memory"),
    ("call_rcu(5)", lambda: call_rcu(5), ArgumentTypeError, "needs a callable, not int"),
    ("MemTxAttrs(secure=1)", lambda: MemTxAttrs(secure=1), ArgumentTypeError,
     "MemTxAttrs: secure must be a bool"),
    ("MemTxAttrs(requester_id=2**16)", lambda: MemTxAttrs(requester_id=1 << 16),
     InvalidArgumentError, "requester_id 65536 does not fit 16 bits"),
    ("MemTxAttrs(pid='1')", lambda: MemTxAttrs(pid="1"), ArgumentTypeError,
     "pid must be an int"),
    # Dispatch tables.
    ("Dispatch.section(-1)", lambda: space().flatview.dispatch.section(-1),
     IndexOutOfRangeError, "section index -1 is out of range"),
    ("Dispatch.node(-1)", lambda: space().flatview.dispatch.node(-1),
     IndexOutOfRangeError, "node index -1 is out of range"),
    ("Dispatch.subpage(2**32)", lambda: space().flatview.dispatch.subpage(1 << 32),
     IndexOutOfRangeError, "subpage index 4294967296 is out of range"),
    ("Dispatch.section(1.0)", lambda: space().flatview.dispatch.section(1.0),
     ArgumentTypeError, "section index must be an int"),
    # Files.
    ("record into a missing directory", lambda: record_trace(space(), 
        "/no/such/dir/t.jsonl").__enter__(), TraceWriteError, "cannot write trace"),
    # hints given as an object, wrong types anywhere.
    ("hints page_bits '12'", lambda: hints({"page_bits": "12"}), DumpParseError,
     "page_bits must be an integer"),
    ("hints page_bits 40", lambda: hints({"page_bits": 40}), DumpParseError,
     "page_bits must be between 10 and 16"),
    ("hints as_order 5", lambda: hints({"as_order": 5}), DumpParseError,
     "as_order must be a list"),
    ("hints as_order [5]", lambda: hints({"as_order": [5]}), DumpParseError,
     "as_order must hold strings"),
    ("hints as_roots 5", lambda: hints({"as_roots": 5}), DumpParseError,
     "as_roots must be a list"),
    ("hints as_roots dict", lambda: hints({"as_order": ['AS "memory", root: system'],
                                           "as_roots": {"x": 1}}),
     DumpParseError, "as_roots must be a list"),
    ("hints containers [[1]]", lambda: hints({"containers": [[1]]}), DumpParseError,
     "containers must hold strings"),
    # hints given as neither an object nor a path.
    ("hints argument []", lambda: hints([]), ArgumentTypeError,
     "hints must be a dict, a path or None, not list"),
    ("hints argument 5", lambda: hints(5), ArgumentTypeError,
     "hints must be a dict, a path or None, not int"),
]


@pytest.mark.parametrize("action, expected, fragment",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_a_named_pymem_error(action, expected, fragment):
    with pytest.raises(expected) as info:
        action()
    assert isinstance(info.value, PymemError)
    assert fragment in str(info.value), str(info.value)


def test_argument_errors_subclass_the_matching_builtins():
    assert issubclass(ArgumentTypeError, TypeError)
    assert issubclass(InvalidArgumentError, ValueError)
    assert issubclass(IndexOutOfRangeError, IndexError)
    assert issubclass(TraceWriteError, OSError)


@pytest.mark.parametrize("top", [[], "x", 5, None])
def test_a_hints_file_that_is_not_an_object_names_the_file(tmp_path, top):
    path = tmp_path / "hints.json"
    path.write_text(json.dumps(top))
    with pytest.raises(DumpParseError, match=f"hints file {path}: must hold a JSON "):
        load_mtree(MTREE, str(path))


def test_a_numpy_integer_from_a_device_callback_is_taken():
    """Anything with __index__ is an int to the access path (fast and slow)."""
    asp = returning(np.uint32(0x12345678))
    assert asp.ldl_le(0) == 0x12345678
    assert asp.rw(0, bytearray(4), False) == MemTxResult.OK


def test_a_strided_array_can_be_written():
    asp = space()
    data = np.arange(16, dtype=np.uint8).reshape(4, 4)[:, ::2]
    asp.write(0x1000, data)
    assert asp.read(0x1000, 8) == data.tobytes()


def test_a_read_too_large_to_buffer_is_a_named_out_of_memory_error():
    """In a child process with 2 GiB of address space, so nothing else starves.
    Under ASan or TSan (scripts/sanitize.sh), whose shadow memory needs the
    address space, the child keeps it and the sanitizer's allocator answers
    NULL instead."""
    import os
    import subprocess
    import sys

    env = dict(os.environ)
    preload = env.get("LD_PRELOAD", "")
    sanitizer = "ASAN" if "asan" in preload else "TSAN" if "tsan" in preload else None
    if sanitizer:
        # The expected "failed to allocate" warnings go to its stderr, not
        # to the report files that fail the sanitizer run.  (TSan's largest
        # allocation is 2^40 bytes: a bytearray of 2^40 asks for a few more.)
        env[f"{sanitizer}_OPTIONS"] = (env.get(f"{sanitizer}_OPTIONS", "")
                                       + ":allocator_may_return_null=1:log_path=stderr")
    limit = "" if sanitizer else "resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
    code = (
        "import resource\n"
        "from pymem import MemoryRegion, MemorySystem, OutOfMemoryError\n"
        "from pymem.access import AccessMixin\n"
        "s = MemorySystem(); root = MemoryRegion.container('root', 1 << 62)\n"
        "asp = s.address_space(root, 'as')\n"
        + limit +
        "for read in (asp.read, lambda a, n: AccessMixin.read(asp, a, n)):\n"
        "    try:\n"
        "        read(0, 1 << 40)\n"
        "    except OutOfMemoryError as exc:\n"
        "        assert isinstance(exc, MemoryError), exc\n"
        "        print(exc)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("read of 0x10000000000 bytes at 0x0: no memory") == 2
