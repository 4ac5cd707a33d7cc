"""A pure-Python model of QEMU's access rules, for differential tests.

It walks an access over a FlatView's ranges byte by byte where it can, with
its own copy of every region's memory, and answers device pieces with QEMU's
rules restated from physmem.c/memory.c independently of pymem/mmio.py:
memory_access_size, memory_region_access_valid, access_with_adjusted_size,
adjust_endianness.  Devices are modelled by `device(region, offset, size)`
(the value a read callback returns) and every callback is appended to `log`
as ("r", name, offset, size) or ("w", name, offset, value, size).
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple

OK, DECODE_ERROR = 0, 2


class AccessModel:
    def __init__(self, ranges: list, memory: Dict[int, bytearray],
                 device: Callable[[object, int, int], int]) -> None:
        self.ranges = ranges
        self.memory = memory          # region id -> its bytes
        self.device = device
        self.log: List[tuple] = []

    def _find(self, addr: int):
        for fr in self.ranges:
            if fr.addr <= addr < fr.addr + fr.size:
                return fr
        return None

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

    def load(self, addr: int, size: int, big: bool) -> Tuple[int, int]:
        fr = self._find(addr)
        order = "big" if big else "little"
        if fr is not None:
            region = fr.region
            offset = fr.offset_in_region + addr - fr.addr
            fits = addr + size <= fr.addr + fr.size
            if fits and (region.kind in ("ram", "rom") or
                         (region.kind == "rom_device" and fr.romd)):
                mem = self.memory[region.id]
                return int.from_bytes(mem[offset:offset + size], order), OK
            got, r = self._dev_read(region if region.ops else None, offset, size)
        else:
            got, r = self._dev_read(None, addr, size)
        return int.from_bytes(got, order), r

    def store(self, addr: int, value: int, size: int, big: bool) -> int:
        fr = self._find(addr)
        data = value.to_bytes(size, "big" if big else "little")
        if fr is None:
            return self._dev_write(None, addr, data)
        region = fr.region
        offset = fr.offset_in_region + addr - fr.addr
        if addr + size <= fr.addr + fr.size and region.kind == "ram" and not region.readonly:
            if not fr.readonly:
                self.memory[region.id][offset:offset + size] = data
            return OK
        return self._dev_write(region if region.ops else None, offset, data)
