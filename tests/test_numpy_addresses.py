"""numpy integers as addresses, offsets and sizes: refused everywhere, with
the same error.

The decision: pymem's addresses are Python ints (0 .. 2^64 - 1).  A
numpy.uint64 (what indexing a numpy address array gives) is refused by every
call that takes an address, offset or size, with ArgumentTypeError saying
an int is needed and naming the type, rather than accepted by some calls
(the C fast paths) and refused by others.  Convert with int(x); whole arrays
of addresses go to Dispatch.lookup_many, which takes a uint64 buffer.
"""
from __future__ import annotations

import pytest

from pymem import ArgumentTypeError, MemoryRegion, MemorySystem

np = pytest.importorskip("numpy")


@pytest.fixture
def machine():
    system = MemorySystem()
    root = MemoryRegion.container("system", 1 << 32)
    ram = MemoryRegion.ram("ram", 0x10000)
    root.add_subregion(0x1000, ram)
    return root, ram, system.address_space(root, "memory")


def calls(root, ram, asp):
    a = np.uint64(0x1000)
    d = asp.flatview.dispatch
    return {
        "ldl_le": lambda: asp.ldl_le(a),
        "ldub": lambda: asp.ldub(a),
        "ldq_be": lambda: asp.ldq_be(a),
        "stl_le": lambda: asp.stl_le(a, 1),
        "read": lambda: asp.read(a, 4),
        "write": lambda: asp.write(a, b"1234"),
        "rw": lambda: asp.rw(a, bytearray(4), False),
        "load": lambda: asp.load(a, 4),
        "store": lambda: asp.store(a, 1, 4),
        "translate": lambda: asp.translate(a),
        "map": lambda: asp.map(a, 4, False),
        "explain": lambda: asp.explain(a),
        "AddressSpace.mark_dirty": lambda: asp.mark_dirty(a, 4),
        "MemoryRegion.mark_dirty": lambda: ram.mark_dirty(np.uint64(0), 4),
        "Dispatch.lookup": lambda: d.lookup(a),
        "Dispatch.translate": lambda: d.translate(a, 4),
        "add_subregion": lambda: root.add_subregion(np.uint64(0x20000),
                                                    MemoryRegion.ram("r2", 0x1000)),
        "set_address": lambda: ram.set_address(np.uint64(0x2000)),
        "MemoryRegion.ram size": lambda: MemoryRegion.ram("r3", np.uint64(0x1000)),
    }


NAMES = [
    "ldl_le", "ldub", "ldq_be", "stl_le", "read", "write", "rw", "load", "store", "translate",
    "map", "explain", "AddressSpace.mark_dirty", "MemoryRegion.mark_dirty", "Dispatch.lookup",
    "Dispatch.translate", "add_subregion", "set_address", "MemoryRegion.ram size"]


@pytest.mark.parametrize("name", NAMES)
def test_a_numpy_integer_is_refused_with_argument_type_error(machine, name):
    call = calls(*machine)[name]
    with pytest.raises(ArgumentTypeError) as info:
        call()
    message = str(info.value)
    assert "must be an int" in message or "must be ints" in message, message
    assert "uint64" in message, message


def test_the_same_address_as_an_int_works(machine):
    root, ram, asp = machine
    a = int(np.uint64(0x1000))
    asp.stl_le(a, 7)
    assert asp.ldl_le(a) == 7 and asp.flatview.dispatch.lookup(a) > 0


def test_arrays_of_addresses_go_to_lookup_many(machine):
    _, _, asp = machine
    d = asp.flatview.dispatch
    out = d.lookup_many(np.array([0x1000, 0x1004, 0x0], dtype=np.uint64))
    assert list(out) == [d.lookup(0x1000), d.lookup(0x1004), d.lookup(0)]
