"""QEMU's `info mtree`, parsed back into a MemorySystem.

Printing one is mtree_format.py's (`format_mtree`, re-exported here).
`load_mtree` rebuilds a MemorySystem from an `info mtree -D` dump.  A dump
does not say everything; the hints file (QEMU-SEMANTICS §6) names the
read-only aliases, the childless i/o regions that are pure containers, the
i/o regions with children that still render themselves, the IOMMU regions,
the page size and the order in which QEMU created the address spaces.  A
region printed in several places (an address-space root that is also a
subregion, an alias target's `memory-region:` block) is one object when its
printed subtree is identical.  Imported MMIO regions get harmless ops: reads
return 0, writes are ignored.

Thread safety:
    `load_mtree` builds a new MemorySystem from text: any thread.
"""
from __future__ import annotations

import json
import re
from os import PathLike
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple, Union

from ..access import IOMMUAccessFlags, IOMMUTLBEntry
from ..address_space import MemorySystem
from ..errors import ArgumentTypeError, DumpParseError
from ..region import ADDRESS_SPACE_SIZE, MemoryRegion, MemoryRegionOps
from .mtree_format import format_mtree

__all__ = ["format_mtree", "load_mtree"]

_MASK = ADDRESS_SPACE_SIZE - 1

_LINE = re.compile(
    r"^(?:\[DETECTED OVERFLOW!\] )?(?P<indent>(?:  )*)"
    r"(?P<start>[0-9a-f]{16})-(?P<end>[0-9a-f]{16}) "
    r"\(prio (?P<prio>-?\d+), (?P<nv>nv-)?(?P<type>ramd|romd|rom|ram|i/o)\): "
    r"(?P<rest>.*?)(?P<disabled> \[disabled\])?$")
_ALIAS = re.compile(r"^alias (?P<name>.*?) @(?P<target>.*) "
                    r"(?P<ostart>[0-9a-f]{16})-(?P<oend>[0-9a-f]{16})$")


class _Node:
    """One printed region line, placed in its block's tree."""

    __slots__ = ("lineno", "key", "start", "size", "prio", "nv", "type", "name", "alias",
                 "alias_offset", "disabled", "children", "parent", "block", "addr", "sig",
                 "canon")

    def __init__(self, lineno: int, line: str, m: "re.Match[str]") -> None:
        self.lineno = lineno
        # Hints name a line without its indent and without " [disabled]".
        self.key = line[m.start("start"):m.start("disabled") if m.group("disabled")
                        else len(line)]
        self.start = int(m.group("start"), 16)
        self.size = ((int(m.group("end"), 16) - self.start) & _MASK) + 1
        self.prio = int(m.group("prio"))
        self.nv = bool(m.group("nv"))
        self.type = m.group("type")
        self.disabled = bool(m.group("disabled"))
        rest = m.group("rest")
        am = _ALIAS.match(rest)
        if am:
            self.name = am.group("name")
            self.alias: Optional[str] = am.group("target")
            self.alias_offset = int(am.group("ostart"), 16)
        else:
            self.name = rest
            self.alias = None
            self.alias_offset = 0
        self.children: List[_Node] = []
        self.parent: Optional[_Node] = None
        self.block: Optional[_Block] = None
        self.addr = self.start
        self.sig: Any = None
        self.canon: Optional[_Node] = None


class _Block:
    """An `address-space:` block (with its AS names) or a `memory-region:` one."""

    __slots__ = ("spaces", "region_name", "top", "lineno")

    def __init__(self, lineno: int) -> None:
        self.spaces: List[str] = []
        self.region_name: Optional[str] = None
        self.top: Optional[_Node] = None
        self.lineno = lineno


def _parse(text: str) -> List[_Block]:
    blocks: List[_Block] = []
    block: Optional[_Block] = None
    stack: List[_Node] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            block = None
            continue
        if line.startswith("address-space: "):
            if block is None or block.top is not None or block.region_name is not None:
                block = _Block(lineno)
                blocks.append(block)
            block.spaces.append(line[len("address-space: "):])
            continue
        if line.startswith("memory-region: "):
            block = _Block(lineno)
            block.region_name = line[len("memory-region: "):]
            blocks.append(block)
            continue
        m = _LINE.match(line)
        if m is None:
            raise DumpParseError("not an `info mtree` line", lineno, line)
        if block is None:
            raise DumpParseError("region line outside an address-space or memory-region "
                                 "block", lineno, line)
        node = _Node(lineno, line, m)
        node.block = block
        level = len(m.group("indent")) // 2
        if level == 1:
            if block.top is not None:
                raise DumpParseError("a second top-level region in one block", lineno, line)
            block.top = node
            stack = [node]
            continue
        if level < 2 or level - 1 > len(stack):
            raise DumpParseError("indentation does not follow the tree", lineno, line)
        del stack[level - 1:]
        parent = stack[-1]
        node.parent = parent
        node.addr = (node.start - parent.start) & _MASK
        parent.children.append(node)
        stack.append(node)
    for b in blocks:
        if b.top is None:
            raise DumpParseError("block without a region", b.lineno)
    return blocks


def _signatures(top: _Node, table: Dict[Any, int]) -> None:
    """Set `sig` on `top` and every node under it: what the dump shows of a
    region and its subtree, position-independent.  Equal subtrees get equal
    signatures: small ints handed out by `table` (hash-consing, one table
    per dump), so comparing two never recurses, however deep the trees."""
    order = list(_walk(top))
    for node in reversed(order):   # children before their parent
        key = (node.addr, node.size, node.prio, node.nv, node.type, node.name, node.alias,
               node.alias_offset, node.disabled, tuple(c.sig for c in node.children))
        node.sig = table.setdefault(key, len(table))


def _walk(node: _Node) -> Iterable[_Node]:
    """`node` and everything under it, parents first, in printed order."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n.children))


def _unify(blocks: List[_Block]) -> None:
    """Set each node's `canon`: the node whose object it is.

    QEMU prints one `address-space:` block per distinct root and one
    `memory-region:` block per distinct alias target, so two blocks of one
    kind are never one object, however alike they look.  A block's top is
    matched one to one: an address-space root with an identical region
    printed inside another block (it is also a subregion), a memory-region
    top with such a region or else with an identical address-space root."""
    inner: Dict[Any, List[_Node]] = {}
    as_tops: Dict[Any, List[_Node]] = {}
    signatures: Dict[Any, int] = {}
    for b in blocks:
        assert b.top is not None
        _signatures(b.top, signatures)
        for n in _walk(b.top):
            if n is not b.top:
                inner.setdefault(n.sig, []).append(n)
        if b.spaces:
            as_tops.setdefault(b.top.sig, []).append(b.top)

    def maybe_copy(b: Optional[_Block]) -> bool:
        # A block that may repeat a region printed elsewhere: its nodes are
        # the last choice for a match.
        assert b is not None and b.top is not None
        return b.top.sig in inner or (b.region_name is not None and b.top.sig in as_tops)

    match: Dict[int, _Node] = {}
    used_by_as: Set[int] = set()
    used_by_mr: Set[int] = set()
    for b in blocks:
        top = b.top
        assert top is not None
        found = sorted(inner.get(top.sig, []), key=lambda n: maybe_copy(n.block))
        used = used_by_as if b.spaces else used_by_mr
        if b.region_name is not None:
            found += [t for t in as_tops.get(top.sig, []) if t is not top]
        for other in found:
            if id(other) not in used:
                used.add(id(other))
                match[id(top)] = other
                break

    def canon(node: _Node, depth: int = 0) -> _Node:
        if node.canon is not None:
            return node.canon
        if depth > len(blocks):
            raise DumpParseError("regions printed inside each other", node.lineno)
        path = []
        top = node
        while top.parent is not None:
            path.append(top.parent.children.index(top))
            top = top.parent
        other = match.get(id(top))
        if other is None:
            node.canon = node
            return node
        target = canon(other, depth + 1)
        for i in reversed(path):
            target = target.children[i]
        node.canon = canon(target, depth + 1)
        return node.canon

    for b in blocks:
        assert b.top is not None
        for n in _walk(b.top):
            canon(n)


def _alias_targets(blocks: List[_Block]) -> Dict[int, _Node]:
    """The target of each (canonical) alias node, by replaying QEMU's print
    queue: the first printing of an alias whose target is not queued yet
    queues it, and the `memory-region:` blocks come in queue order.  So an
    alias meets the next unclaimed block when that block bears its target's
    name, and otherwise a target of that name queued before."""
    pending = [b for b in blocks if b.region_name is not None]
    claimed: Dict[str, List[_Node]] = {}
    out: Dict[int, _Node] = {}
    for b in blocks:
        assert b.top is not None
        for n in _walk(b.top):
            node = n.canon if n.canon is not None else n
            if node.alias is None or id(node) in out:
                continue
            name = node.alias
            pick: Optional[_Block] = None
            if pending and pending[0].region_name == name:
                pick = pending[0]
            elif name not in claimed:
                pick = next((p for p in pending if p.region_name == name), None)
            if pick is not None:
                pending.remove(pick)
                assert pick.top is not None and pick.top.canon is not None
                claimed.setdefault(name, []).append(pick.top.canon)
                out[id(node)] = pick.top.canon
            elif name in claimed:
                out[id(node)] = claimed[name][0]
    return out


def _address_spaces(blocks: List[_Block]) -> List[Tuple[str, str, _Node]]:
    """(AS line as `info mtree -f` prints it, AS name, root node) of every
    address space of the dump, in dump order."""
    out = []
    for b in blocks:
        top = b.top
        assert top is not None
        for name in b.spaces:
            line = f'AS "{name}", root: {top.name}' + (f", alias {top.alias}" if top.alias
                                                        else "")
            out.append((line, name, top))
    return out


def _read_zero(offset: int, size: int) -> int:
    return 0


def _write_ignore(offset: int, value: int, size: int) -> None:
    return None


def _translate_unmapped(addr: int, flag: int) -> IOMMUTLBEntry:
    # A dump names no IOMMU target or mappings: every access faults (and is
    # answered as unassigned) until the user attaches a real translate.
    page = addr & ~0xfff
    return IOMMUTLBEntry(None, page, page, 0xfff, IOMMUAccessFlags.NONE)


_DEFAULT_OPS = MemoryRegionOps(_read_zero, _write_ignore, valid_min=1, valid_max=8,
                               impl_min=1, impl_max=8, unaligned=True)


# hints.json fields (QEMU-SEMANTICS §6) and what each holds.
_HINT_LISTS = ("readonly_aliases", "containers", "terminating", "iommu", "as_order",
               "as_roots", "notes")


def _load_hints(hints: Union[None, Dict[str, Any], str, "PathLike[str]"]) -> Dict[str, Any]:
    if hints is None:
        return {}
    if isinstance(hints, dict):
        return _check_hints(hints, "hints")
    if not isinstance(hints, (str, PathLike)):
        raise ArgumentTypeError(f"load_mtree: hints must be a dict, a path or None, "
                                f"not {type(hints).__name__}")
    path = Path(hints)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DumpParseError(f"cannot read hints file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise DumpParseError(f"hints file {path} is not UTF-8 text (byte {exc.start})") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise DumpParseError(f"hints file {path} is not JSON: {exc}") from None
    return _check_hints(obj, f"hints file {path}")


def _check_hints(h: Any, where: str) -> Dict[str, Any]:
    """`h` if every field has the type load_mtree reads it as; otherwise a
    DumpParseError naming `where` and the field."""
    if not isinstance(h, dict):
        raise DumpParseError(f"{where}: must hold a JSON object, not {type(h).__name__}")
    page_bits = h.get("page_bits", 12)
    if not isinstance(page_bits, int) or isinstance(page_bits, bool):
        raise DumpParseError(f"{where}: page_bits must be an integer, not {page_bits!r}")
    if not 10 <= page_bits <= 16:
        raise DumpParseError(f"{where}: page_bits must be between 10 and 16, not {page_bits}")
    for field in _HINT_LISTS:
        entries = h.get(field, [])
        if field == "as_roots" and entries is None:
            continue
        if not isinstance(entries, list):
            raise DumpParseError(f"{where}: {field} must be a list of dump lines, "
                                 f"not {type(entries).__name__}")
        for entry in entries:
            # as_roots may leave a space's root unsaid.
            if not isinstance(entry, str) and not (field == "as_roots" and entry is None):
                raise DumpParseError(f"{where}: {field} must hold strings, not {entry!r}")
    return h


def load_mtree(text: str, hints: Union[None, Dict[str, Any], str, "PathLike[str]"] = None) -> MemorySystem:
    """A MemorySystem rebuilt from QEMU's `info mtree -D` output and its hints.

    `hints` is a dict (the parsed hints.json), a path to one, or None (no
    hints: every region is RAM, MMIO or a container as the dump's type says).

    Raises:
        DumpParseError: the text is not `info mtree -D` output, or the hints are
            unreadable, not JSON, or of the wrong shape (the message names the
            line or the hints field).
        ArgumentTypeError: `hints` is neither a dict, a path nor None.
        TopologyError: the dump describes a tree pymem cannot build (an alias
            loop that never leaves its window, a region past 2^64).
    """
    h = _load_hints(hints)
    blocks = _parse(text)
    if not blocks:
        raise DumpParseError("no address-space or memory-region block in the dump")
    _unify(blocks)

    canon_nodes: List[_Node] = []
    keys: Dict[str, List[_Node]] = {}
    names: Dict[str, List[_Node]] = {}
    for b in blocks:
        assert b.top is not None
        for n in _walk(b.top):
            assert n.canon is not None
            keys.setdefault(n.key, []).append(n.canon)
            names.setdefault(n.name, []).append(n.canon)
            if n.canon is n:
                canon_nodes.append(n)

    def hinted(field: str, by_name: bool = False) -> Set[int]:
        entries = h.get(field, [])
        if not isinstance(entries, list):
            raise DumpParseError(f"hints: {field} must be a list")
        out: Set[int] = set()
        for entry in entries:
            found = keys.get(entry) or (names.get(entry) if by_name else None)
            if not found:
                raise DumpParseError(f"hints: {field} names no line of the dump: {entry!r}")
            out.update(id(n) for n in found)
        return out

    readonly = hinted("readonly_aliases")
    containers = hinted("containers")
    terminating = hinted("terminating")
    iommu = hinted("iommu", by_name=True)
    # A name or line may also fit the container QEMU puts around an IOMMU
    # region (virtio-iommu names both alike): the IOMMU is the innermost.
    iommu -= {id(n) for n in canon_nodes
              if id(n) in iommu and any(id(d) in iommu for d in _walk(n) if d is not n)}

    targets = _alias_targets(blocks)

    objects: Dict[int, MemoryRegion] = {}
    building: Set[int] = set()

    def alias_target(node: _Node) -> _Node:
        target = targets.get(id(node))
        if target is None:
            candidates = {id(c): c for c in names.get(node.alias or "", [])}
            if len(candidates) != 1:
                raise DumpParseError(f"alias {node.name!r}: no single region named "
                                     f"{node.alias!r}", node.lineno)
            target = next(iter(candidates.values()))
        return target

    def region_of(first: _Node) -> MemoryRegion:
        # An alias needs its target's object first.  The chain of aliases is
        # followed with a list of our own, not recursion: a dump may hold a
        # chain longer than Python's recursion limit.
        chain: List[_Node] = []
        node = first
        while id(node) not in objects:
            if id(node) in building:
                raise DumpParseError(f"alias cycle through {node.name!r}", node.lineno)
            building.add(id(node))
            chain.append(node)
            if node.alias is None:
                break
            node = alias_target(node)
        for node in reversed(chain):
            objects[id(node)] = build(node)
            building.discard(id(node))
        return objects[id(first)]

    def build(node: _Node) -> MemoryRegion:
        if node.alias is not None:
            target = objects[id(alias_target(node))]   # built first by region_of
            mr = MemoryRegion.alias(node.name, target, node.alias_offset, node.size)
            if id(node) in readonly:
                mr.set_readonly(True)
        elif node.type == "ram":
            mr = MemoryRegion.ram(node.name, node.size)
        elif node.type == "ramd":
            mr = MemoryRegion.ram_device(node.name, node.size)
        elif node.type == "rom":
            mr = MemoryRegion.rom(node.name, node.size)
        elif node.type == "romd":
            mr = MemoryRegion.rom_device(node.name, node.size, _DEFAULT_OPS)
        elif id(node) in iommu:
            mr = MemoryRegion.iommu(node.name, node.size, _translate_unmapped)
        elif node.children:
            mr = (MemoryRegion.io(node.name, node.size, _DEFAULT_OPS) if id(node) in terminating
                  else MemoryRegion.container(node.name, node.size))
        else:
            mr = (MemoryRegion.container(node.name, node.size) if id(node) in containers
                  else MemoryRegion.io(node.name, node.size, _DEFAULT_OPS))
        # Not mapped yet: the edit methods only set the fields (no system).
        mr.set_nonvolatile(node.nv)
        mr.set_enabled(not node.disabled)
        mr.set_address(node.addr)
        # A root keeps the priority its dump line shows; add_subregion sets
        # every other region's.
        mr._priority = node.prio
        return mr

    for node in canon_nodes:
        region_of(node)
    for node in canon_nodes:
        if node.children:
            parent = objects[id(node)]
            # Added in reverse printed order so that, among equal priorities,
            # the subregion list comes out in printed order (QEMU puts the
            # newest first).
            for child in reversed(node.children):
                parent.add_subregion(child.addr, objects[id(child)], child.prio)

    page_bits = h.get("page_bits", 12)
    system = MemorySystem(page_bits)
    # Several address spaces may share a name (one per device, say), even
    # their whole AS line: as_order takes the lines in turn, and as_roots
    # (when given) names each one's root line too.
    spaces = _address_spaces(blocks)
    order = list(range(len(spaces)))
    if "as_order" in h:
        order = []
        as_roots = h.get("as_roots") or []
        for k, entry in enumerate(h["as_order"]):
            m = re.match(r'^AS "(?P<name>.*)", root: ', entry)
            root = as_roots[k] if k < len(as_roots) else None
            pick = next((i for i, sp in enumerate(spaces) if sp[0] == entry and i not in order
                         and (root is None or sp[2].key == root)), None)
            if pick is None:
                pick = next((i for i, sp in enumerate(spaces)
                             if sp[0] == entry and i not in order), None)
            if pick is None and m is not None:
                pick = next((i for i, sp in enumerate(spaces)
                             if sp[1] == m.group("name") and i not in order), None)
            if pick is None:
                raise DumpParseError(f"hints: as_order names no address space of the "
                                     f"dump: {entry!r}")
            order.append(pick)
        order.extend(i for i in range(len(spaces)) if i not in order)
    with system.transaction():
        for i in order:
            top = spaces[i][2].canon
            assert top is not None
            system.address_space(objects[id(top)], spaces[i][1])
    return system
