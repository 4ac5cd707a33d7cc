"""The access path of an AddressSpace: read, write, rw, loads, stores and map.

Plain memory is C's: `read`/`write` hand the whole access to csrc/access.c in
one call, and the fixed-width loads and stores (`ldl_le`, `stq_be`, ...) are
builtins bound to their C function (pymem/_fastpath), so a RAM access costs
one C call.  When C reaches a piece that is not plain memory it stops and says
where; this module answers that piece as QEMU's flatview_read/write_continue
would (MMIO rules in pymem/mmio.py, IOMMU translation into the target address
space, unassigned space, writes to ROM) and lets C go on with the rest.

Semantics worth knowing, all QEMU's unless said otherwise:
- A bus error does not stop an access: every piece is tried and the results
  are OR-ed.  `rw` returns that MemTxResult; `read`, `write` and the loads and
  stores raise MemTxError when it is not OK (the memory effects stay done).
- Unassigned space answers DECODE_ERROR; reads of it give zero bytes.
- Writes to ROM (a region that is itself read-only) change nothing and answer
  DECODE_ERROR, as QEMU's address_space_write does.  Writes through a
  read-only alias onto RAM change nothing and answer OK, as a CPU store to a
  read-only page (TLB_DISCARD_WRITE); QEMU's address_space_write would write.
- MMIO: each device access takes memory_access_size() of what is left (which
  is not clamped to the region, as in QEMU), sizes the device does not accept
  answer DECODE_ERROR without a callback, and wider or narrower sizes than it
  implements are split or widened.  Bytes on the bus are the value in the
  device's byte order.
- Loads and stores are QEMU's address_space_ld*/st*: if the N bytes are not
  plain memory of one section, the whole N-byte access goes to the region
  under the first byte, as one device access (a RAM region there answers
  DECODE_ERROR, as in QEMU).  One section, not one flat range: a range that
  starts or ends inside a page has sub-page sections cut at the page
  boundary.  A ROM device in romd mode is clamped to its section as RAM is;
  QEMU does not clamp it and reads its memory past the section.
- A callback that raises: the exception propagates to the caller of the
  access, `rw` included.  QEMU devices report bus errors through a
  MemTxResult (here: `with_attrs` callbacks), so an exception is a bug in the
  device model and hiding it in ACCESS_ERROR would lose its traceback.
  Pieces done before it stay done; no lock is held across a callback, so the
  address space keeps working.
- Each piece handed to Python is followed by a fresh look at the current
  view: a callback that changes the topology takes effect at its commit, and
  the rest of the same access already sees it (QEMU finishes the access on
  the view it started with).

Observers (pymem/taps.py: debuggers, fuzzers, the trace recorder) are told of
each piece through the space's taps; the access path knows nothing of them.

Thread safety:
    Accesses (`read`, `write`, `rw`, `ld*`/`st*`, `load`, `store`,
    `translate`, `map`/`unmap`) may run from any thread, in parallel with
    each other and with commits: plain memory is read and written in C
    with the GIL released, inside an RCU read-side section on the view
    current when the access began.  Device callbacks, IOMMU translate
    callbacks and taps run on the accessing thread, with the GIL and no
    pymem lock held.  A bound builtin keeps its space's C state alive.
    Concurrent plain-memory accesses to the same bytes race as guest
    memory does (no atomicity beyond each aligned load or store).
"""

from __future__ import annotations

from ._common import (ADDRESS_SPACE_SIZE as ADDRESS_SPACE_SIZE, OK as OK, DECODE_ERROR as DECODE_ERROR, translate_section as translate_section, _byte_view as _byte_view, _check_access as _check_access, _byteorder as _byteorder)
from ._iommu import (IOMMU_MAX_TRANSLATIONS as IOMMU_MAX_TRANSLATIONS, IOMMUAccessFlags as IOMMUAccessFlags, IOMMUTLBEntry as IOMMUTLBEntry)
from ._device import (device_answer_error as device_answer_error, _device_access as _device_access)
from ._tapping import (TapsMixin as TapsMixin)
from ._mapping import (_MAP_WRITE_MASK as _MAP_WRITE_MASK, MapMixin as MapMixin, _unmap_rest as _unmap_rest)
from ._path import (_LOADS as _LOADS, _STORES as _STORES, _range_start as _range_start, AccessMixin as AccessMixin, _one_more_translation as _one_more_translation, _iommu_translate as _iommu_translate, _bus_error as _bus_error, _name as _name)

__all__ = ["AccessMixin", "MapMixin", "TapsMixin", "IOMMUAccessFlags", "IOMMUTLBEntry", "IOMMU_MAX_TRANSLATIONS", "ADDRESS_SPACE_SIZE", "translate_section", "device_answer_error"]
