"""A pure-Python model of QEMU's access rules, for differential tests.

It walks an access over a FlatView's ranges byte by byte where it can, with
its own copy of every region's memory, and answers device pieces with QEMU's
rules restated from physmem.c/memory.c independently of pymem/mmio.py:
memory_access_size, memory_region_access_valid, access_with_adjusted_size,
adjust_endianness.  Devices are modelled by `device(region, offset, size)`
(the value a read callback returns) and every callback is appended to `log`
as ("r", name, offset, size) or ("w", name, offset, value, size).

IOMMU regions are given as `iommus`: region id -> (translate, target model).
As in QEMU's address_space_translate, an access reaching one is translated
(its length cut at the end of the mapping's page, not at the end of the IOMMU
region, which is not RAM), and goes on in the target's model; a mapping
without the permission makes it an unassigned access at the IOMMU's offset.

Loads and stores (QEMU's address_space_ld*/st*) are direct only when all N
bytes lie in one *section* of the dispatch, not merely in one flat range:
flatview_add_to_dispatch cuts a range that starts or ends inside a page into
a head sub-page section (up to the first page boundary), whole pages, and a
tail sub-page section, and address_space_translate_internal clamps a RAM
access to the end of its section.  A load crossing such a cut is an I/O
access to the RAM region, which refuses it: DECODE_ERROR.  pymem clamps ROM
devices in romd mode the same way; QEMU does not clamp them (they are not
memory_region_is_ram) and reads their memory past the section.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple

OK, DECODE_ERROR = 0, 2
READ_PERM, WRITE_PERM = 1, 2


class AccessModel:
    def __init__(self, ranges: list, memory: Dict[int, bytearray],
                 device: Callable[[object, int, int], int],
                 iommus: Optional[Dict[int, tuple]] = None,
                 log: Optional[List[tuple]] = None, page_bits: int = 12) -> None:
        self.ranges = ranges
        self.page_size = 1 << page_bits
        self.memory = memory          # region id -> its bytes
        self.device = device
        self.iommus = iommus or {}
        self.log: List[tuple] = log if log is not None else []

    def _translate(self, region, offset: int, size: int, is_write: bool):
        """(target model, address there, length) or None: no permission."""
        translate, target = self.iommus[region.id]
        need = WRITE_PERM if is_write else READ_PERM
        entry = translate(offset, need)
        if not entry.perm & need:
            return None
        mask = entry.addr_mask
        taddr = (entry.translated_addr & ~mask) | (offset & mask)
        return target, taddr, min(size, (taddr | mask) - taddr + 1)

    def _find(self, addr: int):
        for fr in self.ranges:
            if fr.addr <= addr < fr.addr + fr.size:
                return fr
        return None

    def _section_end(self, fr, addr: int) -> int:
        """End of the dispatch section of `fr` holding `addr`: the range is
        cut after its head sub-page and before its tail sub-page."""
        start, end, page = fr.addr, fr.addr + fr.size, self.page_size
        head_end = min(end, -(-start // page) * page)
        tail_start = max(head_end, end // page * page)
        if addr < head_end:
            return head_end
        return tail_start if addr < tail_start else end

    # ----------------------------------------------------------- device rules

    @staticmethod
    def _max_size(ops, offset: int, left: int) -> int:
        limit = ops.valid_max if ops else 4
        if not (ops and ops.unaligned):
            while limit > 1 and offset % limit:
                limit //= 2
        size = 1
        while size * 2 <= min(left, limit):
            size *= 2
        return size

    @staticmethod
    def _accepts(ops, offset: int, size: int) -> bool:
        return (ops is not None and (ops.unaligned or offset % size == 0)
                and ops.valid_min <= size <= ops.valid_max)

    def _dev_read(self, region, offset: int, size: int) -> Tuple[bytes, int]:
        ops = region.ops if region is not None else None
        if not self._accepts(ops, offset, size):
            return bytes(size), DECODE_ERROR
        step = max(min(size, ops.impl_max), ops.impl_min)
        total = 0
        for i in range(0, size, step):
            part = self.device(region, offset + i, step) % (1 << (8 * step))
            self.log.append(("r", region.name, offset + i, step))
            if ops.endianness == "big":
                # The callback's bytes land at their big-endian position.
                pos = (size - step - i) * 8
                total |= part << pos if pos >= 0 else part >> -pos
            else:
                total |= part << (i * 8)
        total %= 1 << (8 * size)
        return total.to_bytes(size, ops.endianness), OK

    def _dev_write(self, region, offset: int, data: bytes) -> int:
        ops = region.ops if region is not None else None
        size = len(data)
        if not self._accepts(ops, offset, size):
            return DECODE_ERROR
        value = int.from_bytes(data, ops.endianness)
        step = max(min(size, ops.impl_max), ops.impl_min)
        for i in range(0, size, step):
            pos = (size - step - i) * 8 if ops.endianness == "big" else i * 8
            part = (value >> pos if pos >= 0 else value << -pos) % (1 << (8 * step))
            self.log.append(("w", region.name, offset + i, part, step))
        return OK

    # ---------------------------------------------------------- bulk accesses

    def rw(self, addr: int, data: Optional[bytes], size: int) -> Tuple[bytes, int]:
        """Read `size` bytes (data None) or write `data`: (bytes read, result)."""
        is_write = data is not None
        out = bytearray(size)
        result = OK
        done = 0
        while done < size:
            a = addr + done
            fr = self._find(a)
            left = size - done
            region = fr.region if fr else None
            offset = fr.offset_in_region + a - fr.addr if fr else a
            kind = region.kind if region else None
            if kind == "iommu":
                found = self._translate(region, offset, left, is_write)
                if found is not None:
                    target, taddr, n = found
                    got, r = target.rw(taddr, data[done:done + n] if is_write else None, n)
                    out[done:done + n] = got
                    result |= r
                    done += n
                    continue
                region = None             # a refused mapping: unassigned
            if kind in ("ram", "rom"):
                n = min(left, fr.addr + fr.size - a)
                mem = self.memory[region.id]
                if not is_write:
                    out[done:done + n] = mem[offset:offset + n]
                elif region.readonly:
                    result |= DECODE_ERROR
                elif not fr.readonly:
                    mem[offset:offset + n] = data[done:done + n]
                done += n
                continue
            if kind == "rom_device" and fr.romd and not is_write:
                n = min(left, fr.addr + fr.size - a)
                out[done:done + n] = self.memory[region.id][offset:offset + n]
                done += n
                continue
            n = self._max_size(region.ops if region else None, offset, left)
            if is_write:
                result |= self._dev_write(region, offset, data[done:done + n])
            else:
                got, r = self._dev_read(region, offset, n)
                out[done:done + n] = got
                result |= r
            done += n
        return bytes(out), result

    # ---------------------------------------------------------- loads, stores

    def _where(self, addr: int, size: int, is_write: bool):
        """QEMU's address_space_translate for a load or store of `size`
        bytes: (model, flat range or None, offset, whether all `size` bytes
        lie inside the range's section and its IOMMU pages)."""
        model, whole = self, True
        while True:
            fr = model._find(addr)
            if fr is None:
                return model, None, addr, whole
            offset = fr.offset_in_region + addr - fr.addr
            if fr.region.kind != "iommu":
                return model, fr, offset, whole and addr + size <= model._section_end(fr, addr)
            found = model._translate(fr.region, offset, size, is_write)
            if found is None:
                return model, None, offset, whole
            model, addr, n = found
            whole = whole and n == size

    def load(self, addr: int, size: int, big: bool) -> Tuple[int, int]:
        order = "big" if big else "little"
        model, fr, offset, fits = self._where(addr, size, False)
        if fr is not None:
            region = fr.region
            if fits and (region.kind in ("ram", "rom") or
                         (region.kind == "rom_device" and fr.romd)):
                mem = model.memory[region.id]
                return int.from_bytes(mem[offset:offset + size], order), OK
            got, r = self._dev_read(region if region.ops else None, offset, size)
        else:
            got, r = self._dev_read(None, offset, size)
        return int.from_bytes(got, order), r

    def store(self, addr: int, value: int, size: int, big: bool) -> int:
        data = value.to_bytes(size, "big" if big else "little")
        model, fr, offset, fits = self._where(addr, size, True)
        if fr is None:
            return self._dev_write(None, offset, data)
        region = fr.region
        if fits and region.kind == "ram" and not region.readonly:
            if not fr.readonly:
                model.memory[region.id][offset:offset + size] = data
            return OK
        return self._dev_write(region if region.ops else None, offset, data)
