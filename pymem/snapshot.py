"""Snapshots: a whole board's memory and device state, taken and put back
incrementally, and written to or read from a file.

A snapshot holds the contents of every RAM, ROM, ROM-device and RAM-device
region reachable from a MemorySystem's address spaces (through subregions and
alias targets, enabled or not), page by page, and the states of the devices
that take part (`save()`/`load(state)`, see `participants`).  Contents
belong to regions, not addresses: a region moved or resized since keeps its
memory, and gets it back wherever it is mapped.

Incremental, as QEMU's migration is: RAM regions are logged for pymem's own
dirty client, DIRTY_MEMORY_SNAPSHOT (8, beside VGA 1, CODE 2, MIGRATION 4),
from the first snapshot on.  The system remembers its baseline (the snapshot
last taken or restored): its memory equals the baseline but for the pages
whose snapshot bit is set.  So the next snapshot copies only those pages and
shares the rest with the baseline (pages are immutable bytes), and restoring
the baseline writes back only those pages.  Restoring another snapshot also
writes the pages in which it differs from the baseline (found by comparing
page identities).  ROM, ROM-device and RAM-device memory is not dirty-logged
(writes to it do not pass through the RAM path): it is copied whole at each
snapshot and compared page by page at each restore.

Writes pymem does not see must be reported with `mark_dirty` (on the region
or the address space), as for any dirty client; pymem's unicorn binding does
this for the guest's stores already.  Stop turning the snapshot client's
logging off by hand: restores would then miss pages.

Threads: snapshot() and restore() hold the system's lock (no commit runs
meanwhile).  Reads of what a restore does not write (clean pages, other
regions, devices, lookups) run on through it and see the same bytes
throughout; once restore() returns, every read sees the snapshot.  Reads of
the pages being written back race with the copy (a data race on guest
memory, as a vCPU's with QEMU's migration): stop the CPU and DMA using them
first.  A write racing a snapshot or restore is marked dirty all the same
(bits are cleared before pages are copied), so the next restore puts its
page back.

File format (version 1; all integers little-endian):
    magic    8 bytes  b"PYMEMSNP"
    version  u16      1
    reserved u16      0
    page_bits u32     the system's page size (log2) when written
    regions  u32      how many region records follow
    devices  u32      how many device records follow
    region record:  name_len u16, name (UTF-8), kind u8 (1 ram, 2 rom,
                    3 rom_device, 4 ram_device), length u64, `length` bytes
    device record:  key_len u16, key (UTF-8, "region name:role"), state_len
                    u32, `state_len` bytes
    crc32    u32      zlib.crc32 of every byte before it
A file is read and checked whole (magic, version, lengths, checksum, the
regions it names) before anything is restored: a truncated, corrupted or
foreign file raises SnapshotFormatError, a mismatch with the system
SnapshotError.  Regions are matched by name, so names must be unique among
a file's regions.

Knows the region tree and the dirty logs; the memory system only in
annotations (it is handed one).

Thread safety:
    `take` and `restore` (MemorySystem.snapshot/restore) hold the system's
    writer lock and may be called from any thread; see above for what reads
    and writes racing them see.  A `Snapshot` is immutable: keep, save and
    restore it from any thread.  Device `save()`/`load()` are called on the
    thread taking or restoring, under the writer lock.
"""
from __future__ import annotations

import os
import struct
import weakref
import zlib
from typing import IO, Any, Dict, Iterator, List, Optional, Tuple, Union

from . import dirty
from .errors import ArgumentTypeError, SnapshotError, SnapshotFormatError
from .region import (DIRTY_MEMORY_SNAPSHOT, RAM, RAM_DEVICE, ROM, ROM_DEVICE, MemoryRegion,
                     reachable)

MAGIC = b"PYMEMSNP"
VERSION = 1
_KINDS = {RAM: 1, ROM: 2, ROM_DEVICE: 3, RAM_DEVICE: 4}
_KIND_NAMES = {code: kind for kind, code in _KINDS.items()}
_HEADER = struct.Struct("<8sHHIII")
_CRC = struct.Struct("<I")

# The system -> its baseline (the Snapshot last taken or restored).
_baselines: "weakref.WeakKeyDictionary[Any, Snapshot]" = weakref.WeakKeyDictionary()


class _Image:
    """One region's memory in a snapshot: immutable pages of 2^page_bits bytes
    (the last one shorter if the memory is), shared between snapshots."""

    __slots__ = ("region", "name", "kind", "length", "pages")

    def __init__(self, region: MemoryRegion, pages: List[bytes]) -> None:
        self.region = weakref.ref(region)
        self.name = region.name
        self.kind = region.kind
        self.length = len(region.buffer)
        self.pages = pages


class Snapshot:
    """The memory and device states of one MemorySystem at one moment.

    Made by `MemorySystem.snapshot()` or `Snapshot.load(file, system)`; put
    back by `MemorySystem.restore(snap)`; written with `save(file)`.  It
    holds its pages, not the regions (weak references), and is immutable:
    any number of snapshots can be kept and restored in any order.

    Raises nothing (snapshots are made by `MemorySystem.snapshot()` or `Snapshot.load`).
    """

    def __init__(self, system: Any, page_bits: int, images: Dict[int, _Image],
                 devices: List[Tuple[str, Any, Any]]) -> None:
        self._system = weakref.ref(system)
        self.page_bits = page_bits
        self._images = images
        self._devices = devices     # (key, participant, state)

    @property
    def regions(self) -> List[str]:
        """Names of the regions whose memory the snapshot holds."""
        return [image.name for image in self._images.values()]

    @property
    def devices(self) -> List[str]:
        """Keys ("region name:role") of the device states it holds."""
        return [key for key, _, _ in self._devices]

    def memory(self, region: MemoryRegion) -> bytes:
        """The snapshot's copy of `region`'s memory.  Raises SnapshotError if
        it holds none for that region.

        Raises:
            SnapshotError: the snapshot holds no memory of `region`.
        """
        image = self._images.get(region.id)
        if image is None or image.region() is not region:
            raise SnapshotError(f"snapshot holds no memory of region {region.name!r}")
        return b"".join(image.pages)

    def __repr__(self) -> str:
        size = sum(image.length for image in self._images.values())
        return (f"<Snapshot {len(self._images)} regions, {size:#x} bytes, "
                f"{len(self._devices)} device states>")

    # ---------------------------------------------------------------- files

    def save(self, file: Union[str, "os.PathLike[str]", IO[bytes]]) -> None:
        """Write the snapshot to `file` (a path or a binary file object) in
        the format the module docstring describes.  Device states must be
        bytes-like to be written.  Raises SnapshotError (duplicate region
        names, a state that is not bytes) before writing anything.

        Raises:
            SnapshotError: region names are not unique, or a device state is not
                bytes-like (nothing is written).
            OSError: the file cannot be opened or written.
        """
        names = [image.name for image in self._images.values()]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise SnapshotError(f"snapshot cannot be written: region names {twice} are not "
                                f"unique, and a file matches regions by name")
        parts = [_HEADER.pack(MAGIC, VERSION, 0, self.page_bits, len(self._images),
                              len(self._devices))]
        for image in self._images.values():
            name = image.name.encode()
            parts += [struct.pack("<H", len(name)), name,
                      struct.pack("<BQ", _KINDS[image.kind], image.length)]
            parts += image.pages
        for key, _, state in self._devices:
            try:
                data = memoryview(state).cast("B").tobytes()
            except TypeError:
                raise SnapshotError(f"snapshot cannot be written: device {key!r} saved a "
                                    f"{type(state).__name__}, not bytes") from None
            encoded = key.encode()
            parts += [struct.pack("<H", len(encoded)), encoded, struct.pack("<I", len(data)),
                      data]
        body = b"".join(parts)
        body += _CRC.pack(zlib.crc32(body))
        if isinstance(file, (str, os.PathLike)):
            with open(file, "wb") as f:
                f.write(body)
        else:
            file.write(body)

    @classmethod
    def load(cls, file: Union[str, "os.PathLike[str]", IO[bytes]], system: Any) -> "Snapshot":
        """Read a snapshot written by `save` and bind it to `system`'s regions
        (by name) and devices (by key).  Raises SnapshotFormatError for a
        file that is not a whole, intact pymem snapshot, SnapshotError for one
        whose regions or devices `system` lacks (named) or holds with another
        kind or size.

        Raises:
            SnapshotFormatError: the file cannot be read, is not a pymem snapshot,
                is of another version, truncated or corrupted.
            SnapshotError: `system` lacks a region or device the file holds, or
                holds it with another kind or size.
        """
        if isinstance(file, (str, os.PathLike)):
            where = os.fspath(file)
            try:
                with open(file, "rb") as f:
                    data = f.read()
            except OSError as e:
                raise SnapshotFormatError(f"snapshot file {where!r}: {e.strerror}") from None
        else:
            where = getattr(file, "name", repr(file))
            data = file.read()
        regions, devices = _parse(bytes(data), str(where))
        return _bind(system, regions, devices, str(where))


# ------------------------------------------------------------------ taking

def _memory_regions(system: Any) -> List[MemoryRegion]:
    """The regions with memory reachable from the system's address spaces,
    in address-space order, once each."""
    out: Dict[int, MemoryRegion] = {}
    for asp in system.address_spaces:
        for mr in reachable(asp.root):
            if mr.kind in _KINDS and mr.id not in out:
                out[mr.id] = mr
    return list(out.values())


def participants(system: Any) -> Iterator[Tuple[str, Any]]:
    """The objects that take part in snapshots, each once, with its key
    ("region name:role").  For every reachable region: the region itself
    (role "region", a MemoryRegion subclass), its ops (role "ops", a
    MemoryRegionOps subclass) and the object its ops' read callback is a
    bound method of (role "device", the device model) — each if it has
    callable `save()` and `load(state)`.  `save()` returns the device's
    state (bytes to be written to a file); `load(state)` puts it back.

    Raises nothing.
    """
    seen = set()
    for asp in system.address_spaces:
        for mr in reachable(asp.root):
            ops = mr.ops if mr.kind not in (RAM, ROM, RAM_DEVICE) else None
            found = [("region", mr), ("ops", ops),
                     ("device", getattr(getattr(ops, "read", None), "__self__", None))]
            for role, obj in found:
                if (obj is not None and id(obj) not in seen
                        and callable(getattr(obj, "save", None))
                        and callable(getattr(obj, "load", None))):
                    seen.add(id(obj))
                    yield f"{mr.name}:{role}", obj


def _copy_pages(buf: memoryview, page_size: int) -> List[bytes]:
    return [bytes(buf[o:o + page_size]) for o in range(0, len(buf), page_size)]


def take(system: Any) -> Snapshot:
    """MemorySystem.snapshot(): see the module docstring.

    Raises:
        SnapshotError: taken inside a transaction while some RAM region is not
            yet logged for snapshots (that needs a commit).
        EditDuringCommitError: taken from a listener being told of a change
            while a region needs its logging turned on.
        Exception: what a participant's `save()` raises propagates.
    """
    with system._lock:
        regions = _memory_regions(system)
        unlogged = [mr for mr in regions
                    if mr.kind == RAM and not mr.dirty_log & DIRTY_MEMORY_SNAPSHOT]
        if unlogged:
            if system._depth:
                raise SnapshotError(f"snapshot inside a transaction: regions "
                                    f"{[mr.name for mr in unlogged]} are not yet logged "
                                    f"for snapshots, which needs a commit")
            with system.transaction():
                for mr in unlogged:
                    mr.set_log(True, DIRTY_MEMORY_SNAPSHOT)
        base = _baselines.get(system)
        page_bits = system.page_bits
        page_size = 1 << page_bits
        images: Dict[int, _Image] = {}
        for mr in regions:
            buf = mr.buffer
            prev = _base_image(base, mr, page_bits)
            if mr.kind == RAM:
                # Clear, then copy: a write after the clear is marked again,
                # so the pages left unmarked equal this snapshot.
                written = dirty.fetch_all(mr, DIRTY_MEMORY_SNAPSHOT)
                if prev is not None:
                    pages = list(prev.pages)
                    for i in written.page_indices():
                        pages[i] = bytes(buf[i << page_bits:(i + 1) << page_bits])
                    images[mr.id] = _Image(mr, pages)
                    continue
            images[mr.id] = _Image(mr, _copy_pages(buf, page_size))
        devices = [(key, obj, obj.save()) for key, obj in participants(system)]
        snap = Snapshot(system, page_bits, images, devices)
        _baselines[system] = snap
        return snap


def _base_image(base: Optional[Snapshot], mr: MemoryRegion, page_bits: int) -> Optional[_Image]:
    """The baseline's image of `mr` if the dirty log tells how memory left it."""
    if base is None:
        return None
    image = base._images.get(mr.id)
    if (image is None or image.region() is not mr or image.length != len(mr.buffer)
            or mr.kind != RAM or base.page_bits != page_bits):
        return None
    return image


# --------------------------------------------------------------- restoring

def restore(system: Any, snap: Snapshot, full: bool = False) -> List[MemoryRegion]:
    """MemorySystem.restore(snap): see the module docstring.  `full` writes
    every page (ignoring the dirty log): the slow path, for comparison.

    Raises:
        ArgumentTypeError: `snap` is not a Snapshot.
        SnapshotError: the snapshot is of another system, of regions removed or
            resized since, of devices removed since, or of another page size;
            nothing is restored.
        Exception: what a participant's `load(state)` raises propagates.
    """
    if not isinstance(snap, Snapshot):
        raise ArgumentTypeError(f"restore: expected a Snapshot, not {type(snap).__name__}")
    page_bits: int = system.page_bits
    with system._lock:
        if snap._system() is not system:
            raise SnapshotError(f"restore: the snapshot was taken of another MemorySystem "
                                f"({len(snap._images)} regions: {snap.regions[:4]}...)")
        regions = _memory_regions(system)
        current = {mr.id: mr for mr in regions}
        alive = {key: image.region() for key, image in snap._images.items()}
        gone = [image.name for key, image in snap._images.items()
                if alive[key] is None or key not in current or alive[key] is not current[key]]
        if gone:
            raise SnapshotError(f"restore: regions {gone} were removed since the snapshot "
                                f"was taken; nothing was restored")
        resized = [image.name for key, image in snap._images.items()
                   if image.length != len(current[key].buffer)]
        if resized:
            raise SnapshotError(f"restore: regions {resized} have memory of another size "
                                f"than the snapshot's; nothing was restored")
        keys = dict(participants(system))
        lost = [key for key, obj, _ in snap._devices if keys.get(key) is not obj]
        if lost:
            raise SnapshotError(f"restore: devices {lost} were removed since the snapshot "
                                f"was taken; nothing was restored")
        if snap.page_bits != page_bits:
            raise SnapshotError(f"restore: the snapshot's pages are 2^{snap.page_bits} bytes, "
                                f"the system's 2^{page_bits}")
        base = _baselines.get(system)
        for key, image in snap._images.items():
            mr = current[key]
            _restore_image(mr, image, None if full else _base_image(base, mr, snap.page_bits),
                           snap.page_bits)
        for _, obj, state in snap._devices:
            obj.load(state)
        _baselines[system] = snap
        return [mr for mr in regions if mr.id not in snap._images]


def _restore_image(mr: MemoryRegion, image: _Image, prev: Optional[_Image],
                   page_bits: int) -> None:
    buf = mr.buffer
    pages = image.pages
    logged = mr.kind == RAM and mr.dirty_log & DIRTY_MEMORY_SNAPSHOT
    if logged:
        # Clear, then write: pages written from here on are marked again.
        written = dirty.fetch_all(mr, DIRTY_MEMORY_SNAPSHOT)
    if logged and prev is not None:
        if prev is image:
            todo: Any = written.page_indices()
        else:
            differ = {i for i, (a, b) in enumerate(zip(prev.pages, pages)) if a is not b}
            todo = sorted(differ.union(written.page_indices()))
    elif mr.kind == RAM:
        todo = range(len(pages))
    else:
        # Not logged: compare each page, write the ones that differ.
        todo = [i for i, page in enumerate(pages)
                if buf[i << page_bits:(i << page_bits) + len(page)] != page]
    others = mr.dirty_log & ~DIRTY_MEMORY_SNAPSHOT if mr.kind == RAM else 0
    for i in todo:
        page = pages[i]
        at = i << page_bits
        buf[at:at + len(page)] = page
        if others:
            # Restored pages changed: the other clients (a display, a
            # migration) must see them as written.
            dirty.set_pages(mr, i, 1, others)


# ----------------------------------------------------------------- reading

def _parse(data: bytes, where: str) -> Tuple[List[Tuple[str, str, bytes]], List[Tuple[str, bytes]]]:
    """The region and device records of a snapshot file's bytes, checked."""
    def bad(what: str) -> SnapshotFormatError:
        return SnapshotFormatError(f"snapshot file {where!r}: {what}")

    if len(data) < len(MAGIC) or data[:len(MAGIC)] != MAGIC:
        raise bad("not a pymem snapshot (no PYMEMSNP magic)")
    if len(data) < _HEADER.size + _CRC.size:
        raise bad("truncated in its header")
    _, version, _, _, nregions, ndevices = _HEADER.unpack_from(data)
    if version != VERSION:
        raise bad(f"version {version}, pymem reads version {VERSION}")
    (crc,) = _CRC.unpack_from(data, len(data) - _CRC.size)
    body = memoryview(data)[:len(data) - _CRC.size]
    at = _HEADER.size

    def take_bytes(n: int, what: str) -> bytes:
        nonlocal at
        if at + n > len(body):
            raise bad(f"truncated in {what}")
        out = bytes(body[at:at + n])
        at += n
        return out

    def take_text(size_format: str, what: str) -> str:
        (n,) = struct.unpack(size_format, take_bytes(struct.calcsize(size_format), what))
        try:
            return take_bytes(n, what).decode()
        except UnicodeDecodeError:
            raise bad(f"{what} is not UTF-8") from None

    regions = []
    for k in range(nregions):
        name = take_text("<H", f"region record {k}")
        kind_code, length = struct.unpack("<BQ", take_bytes(9, f"region {name!r}"))
        if kind_code not in _KIND_NAMES:
            raise bad(f"region {name!r} has unknown kind {kind_code}")
        regions.append((name, _KIND_NAMES[kind_code], take_bytes(length, f"region {name!r}")))
    devices = []
    for k in range(ndevices):
        key = take_text("<H", f"device record {k}")
        (n,) = struct.unpack("<I", take_bytes(4, f"device {key!r}"))
        devices.append((key, take_bytes(n, f"device {key!r}")))
    if at != len(body):
        raise bad(f"{len(body) - at} bytes after its last record")
    if zlib.crc32(body) != crc:
        raise bad("checksum mismatch: the file is corrupted")
    return regions, devices


def _bind(system: Any, regions: List[Tuple[str, str, bytes]], devices: List[Tuple[str, bytes]],
          where: str) -> Snapshot:
    with system._lock:
        by_name: Dict[str, List[MemoryRegion]] = {}
        for mr in _memory_regions(system):
            by_name.setdefault(mr.name, []).append(mr)
        missing = [name for name, _, _ in regions if name not in by_name]
        if missing:
            raise SnapshotError(f"snapshot file {where!r}: the system has no regions {missing}")
        twice = [name for name, _, _ in regions if len(by_name[name]) > 1]
        if twice:
            raise SnapshotError(f"snapshot file {where!r}: the system has several regions "
                                f"named {twice}")
        page_size = 1 << system.page_bits
        images: Dict[int, _Image] = {}
        for name, kind, data in regions:
            mr = by_name[name][0]
            if mr.kind != kind or len(mr.buffer) != len(data):
                raise SnapshotError(f"snapshot file {where!r}: region {name!r} is {kind} of "
                                    f"{len(data):#x} bytes there, {mr.kind} of "
                                    f"{len(mr.buffer):#x} here")
            images[mr.id] = _Image(mr, _copy_pages(memoryview(data), page_size))
        keys = dict(participants(system))
        lost = [key for key, _ in devices if key not in keys]
        if lost:
            raise SnapshotError(f"snapshot file {where!r}: the system has no devices {lost}")
        return Snapshot(system, system.page_bits, images,
                        [(key, keys[key], state) for key, state in devices])
