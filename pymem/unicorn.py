"""pymem.unicorn: a unicorn CPU whose whole memory is a pymem address space.

`attach(uc, asp)` keeps uc's memory map equal to the address space's FlatView
at every commit, as QEMU's KVM memory listener keeps KVM's slots:

- RAM and ROM (and ROM devices in romd mode) are mapped zero-copy with
  uc_mem_map_ptr onto the regions' own memory, in whole unicorn pages.  RAM
  is read/write/exec; ROM, read-only aliases and romd are read+exec and
  read-only, and a guest store to them goes to the address space as any store
  does: dropped for a read-only alias of RAM, to the device's ops for romd,
  DECODE_ERROR (a bus fault, below) for ROM, as pymem's `asp.stl_le` answers.
- Pages with anything else (devices, `ram_device`, IOMMUs, the parts of
  pages that RAM does not fill) are unicorn MMIO whose callbacks are C
  (csrc/ext/ucglue.c): they call the space's bound load/store builtins, so
  the access runs pymem's C dispatch and QEMU's rules (valid and impl sizes,
  splitting, byte order, IOMMUs) and reaches Python only for the device's
  callback.  Pages with nothing at all are left unmapped.
- Bus errors (unassigned space, a size or alignment the device refuses, a
  device's MemTxResult error, a store to ROM) stop the guest: `uc.emu_start`
  raises BusError, a unicorn UcError whose errno is UC_ERR_READ_UNMAPPED /
  UC_ERR_WRITE_UNMAPPED / UC_ERR_FETCH_UNMAPPED for unassigned space and
  UC_ERR_READ_PROT / UC_ERR_WRITE_PROT when a region refused the access;
  `binding.last_fault` keeps the BusFault.  The guest stops at the access
  (uc's PC is the instruction that made it; no later instruction runs).  An
  exception raised by a device callback comes out of `uc.emu_start` as it
  was raised, traceback included (unicorn's own `_hook_exception`
  mechanism), the guest stopped the same way.
- A commit made while the guest runs (a device's callback switching a bank
  with set_alias_offset, moving a region) remaps unicorn at once, and unicorn
  flushes its TLB and the translated code of the pages it unmaps, so the
  guest's next instruction sees it.  The one mapping unicorn is using for
  the access in progress cannot be unmapped under it (unicorn would use it
  after it is freed): it stays until emu_start returns or the next commit.
  For an MMIO mapping that changes nothing (its accesses go through the
  current view).  A read-only RAM mapping (ROM, romd) whose own store made
  the commit (a flash leaving romd mode) would be read stale: on RISC-V and
  ARM64 the guest is stopped after that store, remapped and resumed at the
  next instruction (unless emu_start was given a count or timeout: it then
  returns there); on other architectures it is read stale until emu_start
  returns.
- Dirty logging: while a RAM region is logged, a C UC_HOOK_MEM_WRITE hook
  limited to its mappings marks the pages guest stores reach; there is no
  hook at all while nothing is logged.

Several Uc objects may attach to one address space (one per vCPU) or to
different ones; one Uc attaches to one space at a time.  Not thread-safe:
commit from the thread running the guest (or while it is stopped).

Limits: unicorn's MMIO callbacks implement at most 4 bytes, so an 8-byte
guest access to a device page reaches pymem as two 4-byte accesses; an
unaligned one as single bytes (as QEMU's TCG splits it).  unicorn cannot
execute from MMIO, so code must sit in whole pages of RAM or ROM whose
memory is page-aligned (pymem's own allocations always are; a caller's
`buffer` may not be, and is then reached as MMIO).  The host's uc.mem_read and
uc.mem_write reach only the RAM and ROM pages: use the address space
(`asp.read`, `asp.write`) for the rest.

Thread safety:
    A binding is not thread-safe: run the guest (`uc.emu_start`) and commit
    topology changes of its address space from one thread, or commit while
    the guest is stopped; `attach` and `detach` from that thread too.  The
    MMIO callbacks run on the thread running the guest, calling the
    space's builtins (which hold the space's C state alive).  Other threads
    may access the address space meanwhile as any reader does.
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

try:
    import unicorn as _unicorn
    from unicorn import UcError
    from unicorn.unicorn_py3.unicorn import uclib as _uclib
except ImportError as _exc:   # pragma: no cover - exercised with a monkeypatched import
    raise ImportError("pymem.unicorn needs the unicorn engine: "
                      "pip install 'pymem-qemu[unicorn]'") from _exc

from ._bindings import ffi
from ._ucglue import DirtyRange, Mapper, Port, callbacks
from .address_space import AddressSpace
from .dirty import log_of
from .errors import ArgumentTypeError, TopologyError
from .flatview import FlatView
from .listener import ViewListener
from .memtx import MemTxError, MemTxResult
from .rcu import call_rcu
from .region import RAM, MemoryRegion

__all__ = ["attach", "UnicornBinding", "BusFault", "BusError"]

UC = _unicorn.unicorn_const

# Our own prototypes on our own handle to the library unicorn's binding
# loaded (the same engine): C callbacks are passed as plain addresses.  A
# PyDLL keeps the GIL across these short calls: releasing it would hand it
# to any waiting thread (pymem's RCU reclaimer after a commit) and wait to
# get it back, which costs more than the calls themselves.
_lib = ctypes.PyDLL(_uclib._name)
_u64 = ctypes.c_uint64
_ptr = ctypes.c_void_p
_lib.uc_mem_map_ptr.argtypes = [_ptr, _u64, _u64, ctypes.c_uint32, _ptr]
_lib.uc_mem_protect.argtypes = [_ptr, _u64, _u64, ctypes.c_uint32]
_lib.uc_mem_unmap.argtypes = [_ptr, _u64, _u64]
_lib.uc_mmio_map.argtypes = [_ptr, _u64, _u64, _ptr, _ptr, _ptr, _ptr]
_lib.uc_hook_add.argtypes = [_ptr, ctypes.POINTER(ctypes.c_size_t), ctypes.c_int, _ptr, _ptr,
                             _u64, _u64]
_lib.uc_hook_del.argtypes = [_ptr, ctypes.c_size_t]
_lib.uc_emu_stop.argtypes = [_ptr]
for _f in ("uc_mem_map_ptr", "uc_mem_protect", "uc_mem_unmap", "uc_mmio_map", "uc_hook_add",
           "uc_hook_del", "uc_emu_stop"):
    getattr(_lib, _f).restype = ctypes.c_int

_C = callbacks()

# The library functions the binding's C map (csrc/ext/ucmap.c) calls, by
# address, in the order Mapper takes them; read once, from the library
# unicorn's binding loaded.
_UC_FUNCTIONS: Dict[str, int] = {
    name: ctypes.cast(getattr(_lib, name), ctypes.c_void_p).value or 0
    for name in ("uc_mem_unmap", "uc_mem_map_ptr", "uc_mem_protect", "uc_mmio_map",
                 "uc_hook_add", "uc_hook_del", "uc_emu_stop", "uc_strerror")}

_RAM_PERMS = UC.UC_PROT_ALL
_ROM_PERMS = UC.UC_PROT_READ | UC.UC_PROT_EXEC


@dataclass(frozen=True)
class BusFault:
    """A guest access the bus refused: where, how wide, which way, the
    MemTxResult, and the region that answered (None: unassigned space).

    Raises nothing.
    """

    address: int
    size: int
    is_write: bool
    result: MemTxResult
    region: Optional[MemoryRegion]
    is_fetch: bool = False

    def __str__(self) -> str:
        kind = "fetch" if self.is_fetch else "write" if self.is_write else "read"
        where = repr(self.region.name) if self.region is not None else "unassigned space"
        return (f"guest {kind} of {self.size} bytes at {self.address:#x}: "
                f"{self.result!r} from {where}")


class BusError(UcError):
    """What uc.emu_start raises for a bus fault: a UcError (errno as the
    module says) carrying the BusFault as `fault`."""

    def __init__(self, fault: BusFault) -> None:
        if fault.region is None:
            errno = (UC.UC_ERR_FETCH_UNMAPPED if fault.is_fetch else
                     UC.UC_ERR_WRITE_UNMAPPED if fault.is_write else UC.UC_ERR_READ_UNMAPPED)
        else:
            errno = (UC.UC_ERR_FETCH_PROT if fault.is_fetch else
                     UC.UC_ERR_WRITE_PROT if fault.is_write else UC.UC_ERR_READ_PROT)
        super().__init__(errno)  # type: ignore[no-untyped-call]  # unicorn: unannotated
        self.fault = fault

    def __str__(self) -> str:
        return f"{super().__str__()}: {self.fault}"  # type: ignore[no-untyped-call]


def _riscv_insn_size(head: bytes) -> int:
    return 4 if head[0] & 3 == 3 else 2    # RVC instructions are 2 bytes


# Where the guest can be resumed after the instruction it stopped on: the
# PC register and the size of the instruction at the PC, from its first bytes.
_INSN_SIZES: Dict[int, Tuple[int, Any]] = {
    UC.UC_ARCH_RISCV: (_unicorn.riscv_const.UC_RISCV_REG_PC, _riscv_insn_size),
    UC.UC_ARCH_ARM64: (_unicorn.arm64_const.UC_ARM64_REG_PC, lambda head: 4),
}


class UnicornBinding(ViewListener):
    """A Uc attached to an AddressSpace (make it with `attach`).

    Raises:
        UcError: unicorn refuses a hook.
        TopologyError: unicorn cannot map the space's view (pages beyond the
            CPU's physical addresses); nothing stays attached.
    """

    priority = 10   # after the listeners that build the machine's state

    def __init__(self, uc: Any, asp: AddressSpace) -> None:
        self.uc = uc
        self.asp = asp
        self.last_fault: Optional[BusFault] = None
        self.page_size: int = uc.ctl_get_page_size()
        self._uch = uc._uch
        self._detached = False
        self._pending: Optional[BaseException] = None
        self._pc, self._insn_size = _INSN_SIZES.get(uc._arch, (0, None))
        big = bool(uc._mode & UC.UC_MODE_BIG_ENDIAN)
        suffix = "_be" if big else "_le"
        loads = (asp.ldub, getattr(asp, "lduw" + suffix), getattr(asp, "ldl" + suffix),
                 getattr(asp, "ldq" + suffix))
        stores = (asp.stb, getattr(asp, "stw" + suffix), getattr(asp, "stl" + suffix),
                  getattr(asp, "stq" + suffix))
        self._port = Port(loads, stores, self._on_error)
        # What the binding mapped, and the remap at each commit: C.
        self._map = Mapper(self._uch.value or 0, tuple(_UC_FUNCTIONS.values()), self._port,
                           (_RAM_PERMS, _ROM_PERMS), UC.UC_HOOK_MEM_WRITE, _dirty_range,
                           TopologyError, asp.name, self.page_size, self._insn_size is not None)
        self._hooks: List[int] = []
        self._py_hooks: List[int] = []
        # Stores to read-only pages: C, into the address space.
        self._hooks.append(self._hook_add(UC.UC_HOOK_MEM_WRITE_PROT, _C["write_prot"],
                                          id(self._port), 1, 0))
        # Unassigned space is unmapped: unicorn's Python hook, rarely run.
        self._py_hooks.append(uc.hook_add(UC.UC_HOOK_MEM_UNMAPPED, self._unmapped))
        self._emu_start = uc.emu_start
        uc.emu_start = self._run
        uc._pymem_binding = self
        try:
            asp.register_listener(self)
        except BaseException:
            self.detach()
            raise

    # ------------------------------------------------------------ public API

    def detach(self) -> None:
        """Unmap everything the binding mapped, remove its hooks, and give
        uc back its own emu_start; idempotent.

        Raises nothing.
        """
        if self._detached:
            return
        self._detached = True
        if any(listener is self for listener in self.asp.listeners):
            self.asp.unregister_listener(self)
        self._map.unmap_all()
        for handle in self._hooks:
            _lib.uc_hook_del(self._uch, handle)
        self._hooks.clear()
        for handle in self._py_hooks:
            self.uc.hook_del(handle)
        self._py_hooks.clear()
        self.uc.__dict__.pop("emu_start", None)
        self.uc.__dict__.pop("_pymem_binding", None)

    def __enter__(self) -> "UnicornBinding":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.detach()

    def mappings(self) -> List[Tuple[int, int, str]]:
        """What the binding mapped: (start, end, "ram" | "rom" | "mmio"), in
        address order (for tests and `info`).

        Raises nothing.
        """
        return self._map.mappings()

    # ------------------------------------------------------ listener call

    def view_changed(self, asp: AddressSpace, old: Optional[FlatView],
                     new: Optional[FlatView]) -> None:
        """The space's view changed (a commit, or the binding's registration):
        unmap what changed and map it again as RAM, ROM or MMIO, in one C
        call (csrc/ext/ucmap.c) that compares the two views' ranges (address,
        region, offset, flags, host memory, dirty-log mask) and calls unicorn;
        nothing once detached.  At unregistration (the space destroyed)
        everything the binding mapped is unmapped.  A mapping unicorn refuses
        is left unmapped, the rest of the change is still made, and
        `mappings()` says what unicorn has.

        Raises:
            TopologyError: unicorn refuses a mapping of the new view (pages
                beyond the CPU's physical addresses) or its dirty-log hook;
                it names the first such mapping.
        """
        if self._detached:
            return
        if new is None:
            self._map.unmap_all()
            return
        self._map.apply(*_view_array(old), *_view_array(new))

    def _hook_add(self, kind: int, callback: int, user: int, begin: int, end: int) -> int:
        handle = ctypes.c_size_t()
        err = _lib.uc_hook_add(self._uch, ctypes.byref(handle), kind, callback, user,
                               begin, end)
        if err:
            raise UcError(err)
        return handle.value

    # -------------------------------------------------------------- faults

    def _on_error(self, exc: BaseException, addr: int, size: int, is_write: bool) -> None:
        """From C: a guest access through the address space raised."""
        if isinstance(exc, MemTxError):
            try:
                region = self.asp.translate(addr, size, is_write)[0]
            except Exception:   # the fault is what matters; the region is a hint
                region = None
            fault = BusFault(addr, size, is_write, exc.result, region)
            self.last_fault = fault
            exc = BusError(fault)
        uc = self.uc
        if uc._hook_exception is None:
            uc._hook_exception = exc
        _lib.uc_emu_stop(self._uch)

    def _unmapped(self, uc: Any, access: int, address: int, size: int, value: int,
                  user_data: Any) -> bool:
        fault = BusFault(address, size, access == UC.UC_MEM_WRITE_UNMAPPED,
                         MemTxResult.DECODE_ERROR, None,
                         is_fetch=access == UC.UC_MEM_FETCH_UNMAPPED)
        self.last_fault = fault
        self._pending = BusError(fault)
        return False

    def _run(self, begin: int, until: int, timeout: int = 0, count: int = 0) -> None:
        """uc.emu_start while attached: unassigned-space faults raise
        BusError, changes deferred during the run are applied after, and a
        guest stopped to apply one is resumed (not with a count or timeout:
        unicorn does not say how much of them is left)."""
        while True:
            self._pending = None
            self._map.resume = 0
            try:
                self._emu_start(begin, until, timeout, count)
            except UcError as exc:
                pending, self._pending = self._pending, None
                if pending is not None and not isinstance(exc, BusError):
                    raise pending from None
                raise
            finally:
                if self._map.deferred and not self._detached:
                    view = self.asp.flatview
                    if view is not None:
                        self._map.apply_deferred(*_view_array(view))
            if not self._map.resume or timeout or count or self._insn_size is None:
                return
            pc = self.uc.reg_read(self._pc)
            begin = pc + self._insn_size(self.uc.mem_read(pc, 2))
            if begin == until:
                return


def _dirty_range(region: MemoryRegion, start: int, size: int, offset: int,
                 mask: int) -> Optional[DirtyRange]:
    """From C, for a writable mapping [start, start + size) of `region`'s
    memory (from `offset`) while `mask`'s dirty-log clients log: the
    DirtyRange its write hook marks, or None for memory without a log of
    its own (a RAM device)."""
    if region.kind != RAM:
        return None
    log = log_of(region)
    return DirtyRange(int(ffi.cast("uintptr_t", log.cdata)), start, size, offset,
                      log.page_bits, mask, log)


def _view_array(view: Optional[FlatView]) -> Tuple[int, int]:
    """The address of a view's C ranges (pm_range *) and how many there are,
    for the plan's C functions (0, 0 for none); the view must stay alive
    while they read them."""
    if view is None or view._array is None:
        return 0, 0
    return int(ffi.cast("uintptr_t", view._array)), len(view._regions)


def attach(uc: Any, address_space: AddressSpace) -> UnicornBinding:
    """Make `address_space` the whole memory of `uc` (a unicorn.Uc with
    nothing mapped where the space has anything) until `detach()`; also a
    context manager.  The binding replaces `uc.emu_start` on the instance
    (faults, deferred remaps) and, registered on the space, keeps uc alive
    until detached.  ArgumentTypeError for arguments of the wrong type;
    TopologyError if uc is already attached or unicorn cannot map the
    space's view (pages beyond the CPU's physical addresses).

    Raises:
        ArgumentTypeError: `uc` is not a unicorn.Uc or `address_space` not an
            AddressSpace.
        TopologyError: `uc` is already attached, the space is destroyed, or
            unicorn cannot map the space's view.
        UcError: unicorn refuses a hook or a mapping.
    """
    if not isinstance(address_space, AddressSpace):
        raise ArgumentTypeError(f"attach: address_space must be an AddressSpace, "
                        f"not {type(address_space).__name__}")
    if not isinstance(uc, _unicorn.Uc):
        raise ArgumentTypeError(f"attach: uc must be a unicorn.Uc, not {type(uc).__name__}")
    other = uc.__dict__.get("_pymem_binding")
    if other is not None:
        raise TopologyError(f"attach: this Uc is already attached to address space "
                            f"{other.asp.name!r}; detach it first")
    address_space._check_live()
    # A device callback's commit (a bank switch) hands old views to call_rcu;
    # start the reclaimer thread now rather than from inside a callback the
    # JIT called, where ThreadSanitizer cannot set the new thread up.
    call_rcu(_nothing)
    return UnicornBinding(uc, address_space)


def _nothing() -> None:
    pass
