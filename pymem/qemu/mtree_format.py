"""QEMU's `info mtree`, printed from a MemorySystem byte for byte.

`format_mtree` prints what QEMU 7.2 prints for `info mtree` (the region trees
of the address spaces, then every alias target), `-D` (disabled regions too),
`-f` (the FlatViews) and `-f -d` (each view's dispatch), so a diff against a
real dump is a diff of the memory maps.  Reading a dump back is mtree.py's.
Reads the tree and the views it is handed; changes nothing.

Thread safety:
    Holds the system's writer lock while it reads the tree and views, so it
    may be called from any thread, even while another edits the system
    (it then waits for that commit).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Dict, List, Optional, Set, Tuple

from ..region import ADDRESS_SPACE_SIZE, MemoryRegion
from .dispatch_text import format_dispatch

if TYPE_CHECKING:
    from ..address_space import AddressSpace, MemorySystem

_MASK = ADDRESS_SPACE_SIZE - 1
_INDENT = "  "


def _mr_size(size: int) -> int:
    """QEMU's MR_SIZE: the printed length minus one (0 for an empty region)."""
    return size - 1 if size else 0


def _print_mr(top: MemoryRegion, level: int, base: int, queue: List[MemoryRegion],
              queued: Set[int], disabled: bool, out: List[str]) -> None:
    # Depth first with a stack of our own, not recursion: a tree nested
    # deeper than Python's recursion limit prints as any other.
    stack = [(top, level, base)]
    while stack:
        mr, level, base = stack.pop()
        cur_start = (base + mr.addr) & _MASK
        cur_end = (cur_start + _mr_size(mr.size)) & _MASK
        # QEMU flags a region whose window wraps past 2^64, before the indent.
        warn = "[DETECTED OVERFLOW!] " if cur_start < base or cur_end < cur_start else ""
        nv = "nv-" if mr.nonvolatile else ""
        state = "" if mr.enabled else " [disabled]"
        head = f"{warn}{_INDENT * level}{cur_start:016x}-{cur_end:016x} (prio {mr.priority}, " \
               f"{nv}{mr.type_name()}): "
        if mr.alias is not None:
            if mr.alias.id not in queued:
                queued.add(mr.alias.id)
                queue.append(mr.alias)
            if mr.enabled or disabled:
                off_end = (mr.alias_offset + _mr_size(mr.size)) & _MASK
                out.append(f"{head}alias {mr.name} @{mr.alias.name} "
                           f"{mr.alias_offset:016x}-{off_end:016x}{state}")
        elif mr.enabled or disabled:
            out.append(f"{head}{mr.name}{state}")
        # Children print by address, then priority (high first); ties keep
        # subregion order.  A hidden disabled region's children still print.
        # Pushed last first, so the first pops next.
        children = sorted(mr.subregions, key=lambda r: (r.addr, -r.priority))
        stack.extend((sub, level + 1, cur_start) for sub in reversed(children))


def _format_tree(system: MemorySystem, disabled: bool) -> List[str]:
    out: List[str] = []
    roots: Dict[int, Tuple[MemoryRegion, List[str]]] = {}
    for asp in system.address_spaces:
        roots.setdefault(asp.root.id, (asp.root, []))[1].append(asp.name)
    queue: List[MemoryRegion] = []
    queued: Set[int] = set()
    for root, names in roots.values():
        for name in sorted(names, key=lambda n: n.encode()):
            out.append(f"address-space: {name}")
        _print_mr(root, 1, 0, queue, queued, disabled, out)
        out.append("")
    # The queue grows while it is printed: targets of aliases found in
    # memory-region blocks get blocks of their own.
    i = 0
    while i < len(queue):
        mr = queue[i]
        out.append(f"memory-region: {mr.name}")
        _print_mr(mr, 1, 0, queue, queued, disabled, out)
        out.append("")
        i += 1
    return out


def _as_line(asp: AddressSpace) -> str:
    line = f' AS "{asp.name}", root: {asp.root.name}'
    if asp.root.alias is not None:
        line += f", alias {asp.root.alias.name}"
    return line


def _region_name(region_id: int) -> Optional[str]:
    mr = MemoryRegion.by_id(region_id)
    return mr.name if mr is not None else None


def _format_flat(system: MemorySystem, dispatch: bool) -> List[str]:
    out: List[str] = []
    for n, (view, spaces) in enumerate(system.flatviews().items()):
        out.append(f"FlatView #{n}")
        out.extend(_as_line(asp) for asp in spaces)
        out.append(f" Root memory region: {view.root.name if view.root is not None else '(none)'}")
        if not view.ranges:
            out.append(f"{_INDENT}No rendered FlatView")
            out.append("")
            continue
        for fr in view.ranges:
            mr = fr.region
            kind = "rom" if fr.readonly else mr.type_name()
            nv = "nv-" if fr.nonvolatile else ""
            line = (f"{_INDENT}{fr.addr:016x}-{(fr.addr + fr.size - 1):016x} "
                    f"(prio {mr.priority}, {nv}{kind}): {mr.name}")
            if fr.offset_in_region:
                line += f" @{fr.offset_in_region:016x}"
            out.append(line)
        if dispatch and view.root is not None and view.dispatch is not None:
            out.append(format_dispatch(view.dispatch, _region_name, view.root.id).rstrip("\n"))
        out.append("")
    return out


def format_mtree(system: MemorySystem, flat: bool = False, dispatch: bool = False,
                 disabled: bool = False) -> str:
    """`info mtree` as QEMU prints it: `flat` is `-f`, `dispatch` `-d` (with
    `-f`), `disabled` `-D` (tree only).

    Raises nothing.
    """
    with system._lock:
        lines = _format_flat(system, dispatch) if flat else _format_tree(system, disabled)
    return "\n".join(lines) + "\n" if lines else ""
