"""MemoryRegion's dirty pages: QEMU's memory_region_*_dirty on a RAM region.

Thin methods over pymem/dirty.py (the bitmaps, per client and target
page), a base class of MemoryRegion (pymem/region/tree.py).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, cast

from .. import dirty
from .._bindings import _fastpath

if TYPE_CHECKING:
    from .tree import MemoryRegion


class _RegionDirtyPages(_fastpath.Region):
    """MemoryRegion's dirty-page methods (a base class of it, no class of
    its own: an instance of it is a MemoryRegion)."""

    __slots__ = ()

    def get_dirty(self, addr: int, size: int, client: int) -> bool:
        """Whether a page of [addr, addr + size) was written since `client` last cleared it.

        Raises:
            InvalidArgumentError: `client` is unknown, or the range is outside the
                region.
            ArgumentTypeError: the region is not RAM, or `addr`/`size` are not ints.
        """
        return dirty.get_dirty(cast("MemoryRegion", self), addr, size, client)

    def set_dirty(self, addr: int, size: int) -> None:
        """Mark [addr, addr + size) written, for every client logging this region.

        Raises:
            InvalidArgumentError: the range is outside the region.
            ArgumentTypeError: the region is not RAM, or `addr`/`size` are not ints.
        """
        dirty.set_dirty(cast("MemoryRegion", self), addr, size)

    def reset_dirty(self, addr: int, size: int, client: int) -> None:
        """Clear `client`'s dirty bits of [addr, addr + size).

        Raises:
            InvalidArgumentError: `client` is unknown, or the range is outside the
                region.
            ArgumentTypeError: the region is not RAM, or `addr`/`size` are not ints.
        """
        dirty.reset_dirty(cast("MemoryRegion", self), addr, size, client)

    def get_and_clear_dirty(self, addr: int, size: int, client: int) -> "dirty.DirtyBitmap":
        """The pages of [addr, addr + size) dirty for `client`, cleared at once,
        as a DirtyBitmap (one bit a page; `.pages_dirty()` lists their offsets).

        `addr` and `size` are bytes (region offsets); pages are the system's target
        pages (4 KiB for a region in no system).

        Raises:
            InvalidArgumentError: `client` is unknown, or the range is outside the
                region.
            ArgumentTypeError: the region is not RAM, or `addr`/`size` are not ints.
        """
        return dirty.get_and_clear_dirty(cast("MemoryRegion", self), addr, size, client)

    def snapshot_and_clear_dirty(self, addr: int, size: int,
                                 client: int) -> "dirty.DirtyBitmap":
        """QEMU's memory_region_snapshot_and_clear_dirty: as get_and_clear_dirty.

        Raises:
            InvalidArgumentError: `client` is unknown, or the range is outside the
                region.
            ArgumentTypeError: the region is not RAM, or `addr`/`size` are not ints.
        """
        return dirty.snapshot_and_clear_dirty(cast("MemoryRegion", self), addr, size, client)

    def mark_dirty(self, addr: int, size: int) -> None:
        """Report a write to [addr, addr + size) (bytes, region offsets) made
        outside pymem (a CPU engine's store, a DMA engine): marked for every
        client logging this region, as pymem's own writes are.

        Raises:
            ArgumentTypeError: the region is not RAM, or `addr`/`size` are not ints.
            InvalidArgumentError: the range is outside the region.
        """
        dirty.mark_dirty(cast("MemoryRegion", self), addr, size)
