"""Why an access failed: the facts a MemTxError carries.

QEMU answers a failed access with a MemTxResult bit and nothing else; which
of its pieces failed, in which region and why is left to the reader.  When an
access that raises comes back with an error, `diagnose` looks again at where
it went, without calling any device (IOMMU translate callbacks aside, which
answer without side effects): the first piece that the map alone says must
fail gives the reason (nothing mapped; a size outside the device's
valid_min..valid_max; an unaligned access the device refuses; a write to ROM;
an IOMMU refusing the access; a fixed-width load or store crossing out of
RAM).  When the map says every piece could succeed, a device answered the
error itself (a `with_attrs` callback).

Only the error path runs this: accesses that succeed never build anything,
and the message itself is composed when the exception is printed.  It looks
at the map as it is when the error is raised (the same moment the access
ended on); a diagnosis that cannot be made (an IOMMU model raising) falls
back to the result alone, never to another exception.

Thread safety:
    Any thread (the access path calls it on the thread whose access
    failed); it reads the current view without locks and calls no device.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Optional, Tuple

from . import mmio
from .memtx import MemTxError, MemTxReason, MemTxResult
from .region import IOMMU, ROM, ROM_DEVICE

if TYPE_CHECKING:
    from .address_space import AddressSpace
    from .region import MemoryRegion

MAX_HOPS = 16
"""IOMMU translations followed before the diagnosis gives up (as accesses do)."""


class Failure(NamedTuple):
    """Where and why: the address space and absolute address of the failing
    piece, its size, the region (None: unassigned) and the offset in it, the
    reason and a sentence saying it."""

    space: Optional[str]
    addr: int
    size: int
    region: Optional["MemoryRegion"]
    offset: Optional[int]
    reason: MemTxReason
    detail: str

    def __str__(self) -> str:
        mr = self.region
        where = (f"{mr.name!r} ({mr.kind}) at offset {self.offset:#x}"
                 if mr is not None and self.offset is not None else "unassigned")
        return (f"{where}, the piece of {self.size} bytes at {self.addr:#x} in "
                f"{self.space!r}: {self.detail}")


IOMMUTranslate = Callable[["MemoryRegion", int, int, bool],
                          Optional[Tuple["AddressSpace", int, int]]]
"""pymem/access.py's `_iommu_translate`: (region, offset, length, is_write)
-> (target space, address, length) or None when the IOMMU refuses.  Handed
in by the access path, which sits above this module."""


def _where(space: "AddressSpace", addr: int, size: int, is_write: bool,
           iommu_translate: IOMMUTranslate
           ) -> Tuple[Any, int, Optional["MemoryRegion"], int, int, int, Optional[Failure]]:
    """The section under `addr` in `space`, through IOMMUs: (space, addr,
    region, offset, bytes left in the section, flags, a Failure when an
    IOMMU refused the access)."""
    for _ in range(MAX_HOPS):
        t = space._section(addr, size)   # one C call, as the access path translates
        region = t.region
        if region is None or region.kind != IOMMU:
            return space, addr, region, t.offset, t.len, t.flags, None
        found = iommu_translate(region, t.offset, size, is_write)
        if found is None:
            what = "write" if is_write else "read"
            return space, addr, region, t.offset, t.len, t.flags, Failure(
                space.name, addr, size, region, t.offset, MemTxReason.IOMMU_DENIED,
                f"IOMMU permission denied: its mapping of offset {t.offset:#x} does not "
                f"allow a {what}")
        space, addr, size = found
    raise RecursionError("more IOMMU translations than an access follows")


def _device_fault(space: "AddressSpace", addr: int, region: "MemoryRegion", offset: int,
                  size: int, whole: bool) -> Optional[Failure]:
    """Why the device `region` refuses `size` bytes at `offset`, or None
    if it accepts them."""
    ops = region.ops
    name = space.name
    if ops is None:
        return Failure(name, addr, size, region, offset, MemTxReason.NOT_A_DEVICE,
                       f"the {size} bytes run past the end of its memory section, so they "
                       f"go to it as one device access, and a {region.kind} region has no "
                       f"device callbacks")
    if not ops.valid_min <= size <= ops.valid_max:
        how = ("" if whole else f" (the access reaches it in {size}-byte pieces: the "
               f"device takes only accesses aligned to their size)")
        return Failure(name, addr, size, region, offset, MemTxReason.INVALID_SIZE,
                       f"size {size} outside the device's valid sizes "
                       f"{ops.valid_min}..{ops.valid_max}{how}")
    if not ops.unaligned and offset & (size - 1):
        return Failure(name, addr, size, region, offset, MemTxReason.UNALIGNED,
                       f"unaligned ({size} bytes at offset {offset:#x}) and the device "
                       f"refuses unaligned accesses")
    return None


def diagnose(space: "AddressSpace", addr: int, size: int, is_write: bool,
             iommu_translate: IOMMUTranslate, whole: bool = False) -> Failure:
    """Why the access of `size` bytes at `addr` in `space` failed (or
    would fail).  `whole`: a fixed-width load or store (QEMU's ld*/st*),
    which goes to one region as one access; otherwise a bulk access split
    into pieces as `rw` splits it.  Exceptions of an IOMMU's translate
    propagate (`bus_error` swallows them).

    `addr` is a byte address, `size` a byte count.

    Raises:
        Exception: what an IOMMU's translate callback raises propagates.
    """
    device: Optional[Failure] = None
    done = 0
    while done < max(size, 1):
        rest = size - done
        piece_space, piece_addr, region, offset, length, _, refused = _where(
            space, addr + done, max(rest, 1), is_write, iommu_translate)
        if refused is not None:
            return refused
        if region is None:
            return Failure(piece_space.name, piece_addr, rest, None, None,
                           MemTxReason.UNASSIGNED,
                           "nothing mapped there")
        name = piece_space.name
        if is_write and region.ram_backed and region.readonly:
            what = "ROM" if region.kind == ROM else "read-only RAM"
            return Failure(name, piece_addr, rest, region, offset, MemTxReason.ROM_WRITE,
                           f"write to {what}")
        # What C copies without a device: RAM and ROM, a ROM device's reads
        # in romd mode (a write through a read-only alias is dropped, OK).
        plain = region.ram_backed or (region.kind == ROM_DEVICE and region.romd
                                      and not is_write)
        if whole:
            fault = None
            if not (plain and length >= size):
                fault = _device_fault(piece_space, piece_addr, region, offset, size, True)
                if fault is None and region.ops is not None and region.ops.with_attrs:
                    fault = _device_error(piece_space, piece_addr, size, region, offset)
            return fault or _accepted(space, addr, size)
        if plain:
            done += min(rest, length)
            continue
        n = mmio.access_size(region.ops, rest, offset)
        fault = _device_fault(piece_space, piece_addr, region, offset, n, False)
        if fault is not None:
            return fault
        if device is None and region.ops is not None and region.ops.with_attrs:
            device = _device_error(piece_space, piece_addr, n, region, offset)
        done += n
    return device if device is not None else _accepted(space, addr, size)


def _accepted(space: "AddressSpace", addr: int, size: int) -> Failure:
    return Failure(space.name, addr, size, None, None, MemTxReason.UNKNOWN,
                   "the map as it is now accepts this access (changed since?)")


def _device_error(space: "AddressSpace", addr: int, size: int, region: "MemoryRegion",
                  offset: int) -> Failure:
    return Failure(space.name, addr, size, region, offset, MemTxReason.DEVICE_ERROR,
                   f"the device returned an error (its with_attrs callback, for {size} "
                   f"bytes at offset {offset:#x})")


def bus_error(space: "AddressSpace", result: MemTxResult, addr: int, size: int,
              is_write: bool, iommu_translate: IOMMUTranslate,
              whole: bool = False) -> MemTxError:
    """The MemTxError for an access that answered `result`, with the
    address space, the region and the reason (see `diagnose`).

    Raises nothing: a diagnosis that fails falls back to the result alone.
    """
    try:
        failure: Optional[Failure] = diagnose(space, addr, size, is_write, iommu_translate,
                                              whole)
    except Exception:   # noqa: BLE001 - a diagnosis must never hide the bus error
        failure = None
    if failure is None:
        return MemTxError(result, addr, size, is_write, space=space.name)
    region = failure.region
    return MemTxError(result, addr, size, is_write, space=space.name,
                      region=region.name if region is not None else None,
                      region_kind=region.kind if region is not None else None,
                      offset=failure.offset, reason=failure.reason, detail=failure.detail,
                      piece=(failure.space, failure.addr, failure.size))


__all__ = ["Failure", "IOMMUTranslate", "bus_error", "diagnose"]
