"""A hints.json (QEMU-SEMANTICS §6) worked out from what QEMU printed.

`derive_hints(mtree_d, flat, dispatch)` takes one moment's `info mtree -D`,
`info mtree -f` and `info mtree -f -d` and says what the tree dump alone
cannot:

- `page_bits`: the size of a sub-page `(noname)` section; with no sub-page,
  the page size whose dispatch (rebuilt from the flat dump) is QEMU's.
- `iommu`: the regions of ` [iommu]` sections.  A region no view renders
  cannot show it: there QEMU 7.2's IOMMU names decide.
- `terminating` / `containers`: every place an `i/o` region is rendered
  from a view's root is walked (base address and clip window, through
  aliases).  It renders itself when the flat dump holds a range of its name
  whose start minus offset is that base, inside the window.  An i/o region
  with children that does is `terminating`; a childless one that never does
  (not even where it would be visible, or never visible) is a container.
- `readonly_aliases`: the views are rendered (QEMU's algorithm, §1); an
  alias is read-only when every range drawn through it that QEMU shows is
  `rom` and at least one of those is not a ROM by its own type, unless an
  alias above it on every such path already explains it.
- `as_order`: the AS lines in `info mtree -f` order, which numbers the
  FlatViews as QEMU did; `as_roots`, alongside, each one's root line in the
  tree dump (several address spaces can print the same AS line: Arm's
  tz-ppc ports, one vtd-root per device).  The view's ranges pick the root.

Thread safety:
    Pure functions of their text: any thread.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Dict, Iterator, List, Optional, Set, Tuple

from ..errors import DumpParseError
from ..region import MAX_ALIAS_VISITS
from ..region.loops import MAX_LOOP_WALK
from .flat import FlatViewText, _looks_like_iommu, parse_flat, view_dispatch_lines
from .mtree import _address_spaces, _alias_targets, _Node, _parse, _unify, _walk

_SPAN = 1 << 64
_SECTION = re.compile(r"^\s+#(\d+) @([0-9a-f]{16})\.\.([0-9a-f]{16}) (.*)$")
_LABELS = (" [unassigned]", " [not dirty]", " [ROM]", " [watch]", " [ROOT]", " [MRU]",
           " [iommu]")
_PAGE_BITS_TRIED = (12, 10, 14, 16, 11, 13, 15)


def _sections(dispatch: str) -> List[Tuple[int, int, int, str, Set[str]]]:
    """(index, start, size, name, labels) of every section line."""
    out = []
    for line in dispatch.splitlines():
        m = _SECTION.match(line)
        if m is None:
            continue
        rest = m.group(4)
        labels: Set[str] = set()
        stripped = True
        while stripped:
            stripped = False
            for label in _LABELS:
                if rest.endswith(label):
                    labels.add(label.strip(" []"))
                    rest = rest[:-len(label)]
                    stripped = True
        start, end = int(m.group(2), 16), int(m.group(3), 16)
        out.append((int(m.group(1)), start, end - start + 1, rest, labels))
    return out


def _blocks(text: str) -> List[str]:
    return sorted(b.strip("\n") for b in text.replace(" [MRU]", "").split("\n\n") if b.strip())


def _dispatch_matches(flats: List[FlatViewText], bits: int, iommu: List[str],
                      want: Dict[str, int]) -> bool:
    """Whether `dispatch_from_flat` of the views at `bits` prints the blocks
    `want` counts (as `_blocks` cuts them), compared a line at a time: the
    first line no wanted block has stops the dispatch being formatted (a
    wrong page size differs from the first radix node on).

    `dispatch_from_flat` prints each view as one block: its lines are never
    blank and hold no line end, and a blank line follows each view.
    """
    if not flats:
        return False            # dispatch_from_flat refuses a dump with no view
    left = dict(want)
    wanted = {block: block.split("\n") for block in left}
    try:
        for view in flats:
            cands = [lines for block, lines in wanted.items() if left[block]]
            n = 0
            for line in view_dispatch_lines(view, bits, iommu):
                line = line.replace(" [MRU]", "")
                cands = [c for c in cands if n < len(c) and c[n] == line]
                if not cands:
                    return False
                n += 1
            cands = [c for c in cands if len(c) == n]
            if not cands:
                return False
            left["\n".join(cands[0])] -= 1
    except ValueError:
        return False
    return not any(left.values())


def _page_bits(flats: List[FlatViewText], dispatch: str, iommu: List[str],
               notes: List[str]) -> int:
    sizes = {size for idx, _, size, name, _ in _sections(dispatch)
             if idx > 0 and name == "(noname)"}
    for size in sorted(sizes):
        if size & (size - 1) == 0 and size > 1:
            notes.append(f"page_bits {size.bit_length() - 1} from subpage section size")
            return size.bit_length() - 1
    want: Dict[str, int] = {}
    for block in _blocks(dispatch):
        want[block] = want.get(block, 0) + 1
    for bits in _PAGE_BITS_TRIED:
        if _dispatch_matches(flats, bits, iommu, want):
            notes.append(f"page_bits {bits}: no subpage section; the only page size "
                         f"whose dispatch matches")
            return bits
    notes.append("page_bits 12: no subpage section and no page size reproduces the dispatch")
    return 12


class _Tree:
    """The parsed `-D` dump with QEMU's objects (canonical nodes) resolved."""

    def __init__(self, text: str) -> None:
        self.blocks = _parse(text)
        if not self.blocks:
            raise DumpParseError("no address-space or memory-region block in the dump")
        _unify(self.blocks)
        self.nodes: List[_Node] = []
        self.names: Dict[str, List[_Node]] = {}
        self.roots: Dict[str, _Node] = {}
        self.targets = _alias_targets(self.blocks)
        for b in self.blocks:
            assert b.top is not None and b.top.canon is not None
            for n in _walk(b.top):
                self.nodes.append(n)
                assert n.canon is not None
                if n.canon is n:
                    self.names.setdefault(n.name, []).append(n)
            for name in b.spaces:
                self.roots.setdefault(name, b.top.canon)

    def target(self, node: _Node) -> Optional[_Node]:
        assert node.alias is not None
        found = self.targets.get(id(node))
        if found is None and len(self.names.get(node.alias, [])) == 1:
            found = self.names[node.alias][0]
        return found


def _render_order(node: _Node) -> List[_Node]:
    # load_mtree's subregion list: priority high first, ties in printed order.
    return sorted(node.children, key=lambda c: -c.prio)


_Placement = Tuple[int, int, int, int]   # view index, base, window start, window end


def _enter_alias(node: _Node, visits: Dict[int, int]) -> int:
    """Count a trip through an alias on the current path, as pymem renders
    alias loops (pymem.region.MAX_ALIAS_VISITS); returns the count before."""
    n = visits.get(id(node), 0)
    if n >= MAX_ALIAS_VISITS:
        raise DumpParseError(f"alias {node.name!r} is gone round more than "
                             f"{MAX_ALIAS_VISITS} times on one path: its loop never leaves "
                             f"its window", node.lineno)
    visits[id(node)] = n + 1
    return n


def _visible(tree: _Tree, top: _Node, children: Callable[[_Node], List[_Node]],
             leave: Callable[[_Node], bool] = lambda node: False,
             ) -> Iterator[Tuple[bool, _Node, int, int, int, Tuple[int, ...]]]:
    """Every enabled node of `top`'s tree as QEMU's render visits it, depth
    first in `children` order, through aliases into their targets, each
    clipped to the window it is seen in: (entering, node, base, lo, hi,
    aliases) where `base` is the node's address in the view, [lo, hi) the
    visible window and `aliases` the ids of the aliases passed through.
    A node for which `leave(node)` is true is yielded a second time, with
    entering False, once everything under it has been.  The walk keeps a
    stack of its own (a dump may nest deeper than Python's recursion limit)
    and bounds alias recursion as QEMU does (`_enter_alias`)."""
    visits: Dict[int, int] = {}
    # Entries: ("node", node, base, lo, hi, aliases); ("leave", node, base,
    # lo, hi, aliases); ("alias", id, count) puts an alias's visit count back.
    stack: List[Any] = [("node", top, 0, 0, _SPAN, ())]
    walked = 0
    while stack:
        item = stack.pop()
        walked += 1
        if walked > MAX_LOOP_WALK:
            # Aliases on a loop mapping it again and again: the paths multiply
            # (load_mtree refuses the same tree when it adds the alias).
            raise DumpParseError(f"rendering {top.name!r} walks more than {MAX_LOOP_WALK} "
                                 f"regions: aliases on one loop map it again and again "
                                 f"within their windows, and the render paths multiply",
                                 top.lineno)
        if item[0] == "alias":
            visits[item[1]] = item[2]
            continue
        if item[0] == "leave":
            yield (False,) + item[1:]
            continue
        _, node, base, lo, hi, path = item
        assert node.canon is not None
        node = node.canon
        if node.disabled:
            continue
        b = base + node.addr
        lo, hi = max(lo, b), min(hi, b + node.size)
        if lo >= hi:
            continue
        yield True, node, b, lo, hi, path
        if node.alias is not None:
            target = tree.target(node)
            if target is not None:
                n = _enter_alias(node, visits)
                stack.append(("alias", id(node), n))
                stack.append(("node", target, b - target.addr - node.alias_offset,
                              lo, hi, path + (id(node),)))
            continue
        if leave(node):
            stack.append(("leave", node, b, lo, hi, path))
        stack.extend(("node", child, b, lo, hi, path) for child in reversed(children(node)))


def _placements(tree: _Tree, views: List[Tuple[int, _Node]]) -> Dict[int, List[_Placement]]:
    """Every place each (canonical) region is rendered from, per view."""
    out: Dict[int, List[_Placement]] = {}
    for vi, root in views:
        for _, node, b, lo, hi, _ in _visible(tree, root, lambda node: node.children):
            out.setdefault(id(node), []).append((vi, b, lo, hi))
    return out


def _renders_itself(node: _Node, places: List[_Placement], flats: List[FlatViewText]) -> bool:
    for vi, base, lo, hi in places:
        for r in flats[vi].ranges:
            if (r.name == node.name and lo <= r.start and r.last < hi
                    and r.start - r.offset == base):
                return True
    return False


def _readonly_aliases(tree: _Tree, views: List[Tuple[int, _Node]], flats: List[FlatViewText],
                      terminates: Set[int]) -> Set[int]:
    """Aliases through which QEMU shows only `rom` where the region is not a ROM."""
    # per alias: [seen a visible piece, all visible pieces rom, one not rom by type]
    stats: Dict[int, List[bool]] = {}
    # per alias: does every rom-by-alias piece through it also pass a marked outer alias
    pieces: List[Tuple[List[int], bool]] = []

    for vi, root in views:
        taken: List[Tuple[int, int]] = []   # sorted, disjoint [lo, hi)
        drawn: List[Tuple[int, int, _Node, List[int]]] = []

        def insert(node: _Node, lo: int, hi: int, path: List[int]) -> None:
            pos = lo
            for tlo, thi in list(taken):
                if thi <= pos:
                    continue
                if tlo >= hi:
                    break
                if tlo > pos:
                    drawn.append((pos, tlo, node, path))
                pos = max(pos, thi)
                if pos >= hi:
                    break
            if pos < hi:
                drawn.append((pos, hi, node, path))
            taken.append((lo, hi))
            taken.sort()
            merged: List[Tuple[int, int]] = []
            for a, z in taken:
                if merged and a <= merged[-1][1]:
                    merged[-1] = (merged[-1][0], max(merged[-1][1], z))
                else:
                    merged.append((a, z))
            taken[:] = merged

        # Each region QEMU treats as terminating is drawn once its children
        # are (they take precedence over it), as QEMU's render does.
        for entering, node, _, lo, hi, aliases in _visible(
                tree, root, _render_order, lambda node: id(node) in terminates):
            if not entering:
                insert(node, lo, hi, list(aliases))
        ranges = flats[vi].ranges
        for lo, hi, node, path in drawn:
            if not path:
                continue
            shown = [r for r in ranges if r.start < hi and r.last >= lo and r.name == node.name]
            if not shown:
                continue
            rom = all(r.type.replace("nv-", "") == "rom" for r in shown)
            by_type = node.type == "rom"
            for a in path:
                st = stats.setdefault(a, [True, False])
                st[0] = st[0] and rom
                st[1] = st[1] or (rom and not by_type)
            if rom and not by_type:
                pieces.append((path, True))
    marked = {a for a, (all_rom, needed) in stats.items() if all_rom and needed}
    # An alias below a marked one on every path it was needed on is explained by it.
    keep: Set[int] = set()
    for path, _ in pieces:
        outer = next((a for a in path if a in marked), None)
        if outer is not None:
            keep.add(outer)
    return keep


def _root_fit(top: _Node, view: FlatViewText) -> int:
    """0 when the view's ranges span the root's window exactly, 1 when they
    lie inside it, 2 otherwise (an empty view fits any root)."""
    if not view.ranges:
        return 0
    lo, hi = top.start, top.start + top.size
    first, last = view.ranges[0].start, view.ranges[-1].last + 1
    if first == lo and last == hi:
        return 0
    return 1 if lo <= first and last <= hi else 2


def derive_hints(mtree_d: str, flat: str, dispatch: str) -> Dict[str, Any]:
    """A hints.json for `load_mtree(mtree_d, hints)` from one moment's dumps:
    `info mtree -D`, `info mtree -f` and `info mtree -f -d`.

    Raises:
        DumpParseError: one of the dumps does not parse, or they do not belong
            together (a flat view's address space missing from the tree dump, an
            alias gone round without end); the message names the line.
    """
    tree = _Tree(mtree_d)
    flats = parse_flat(flat)
    notes: List[str] = []

    iommu_seen = sorted({name for _, _, _, name, labels in _sections(dispatch)
                         if "iommu" in labels})
    page_bits = _page_bits(flats, dispatch, iommu_seen, notes)

    # Each AS line of the flat dump is an address space of the tree dump; a
    # line several spaces share goes to the one whose root spans the view.
    spaces = _address_spaces(tree.blocks)
    taken: Set[int] = set()
    views: List[Tuple[int, _Node]] = []
    as_order: List[str] = []
    as_roots: List[str] = []
    for vi, view in enumerate(flats):
        first: Optional[_Node] = None
        for line in view.as_lines:
            entry = line.strip()
            cands = [i for i, sp in enumerate(spaces) if sp[0] == entry and i not in taken]
            if not cands:
                raise DumpParseError(f"the flat dump's {entry!r} is not an address space of "
                                     f"the tree dump")
            pick = min(cands, key=lambda i: _root_fit(spaces[i][2], view))
            taken.add(pick)
            as_order.append(entry)
            as_roots.append(spaces[pick][2].key)
            if first is None:
                first = spaces[pick][2].canon
        if view.ranges and first is not None:
            views.append((vi, first))

    places = _placements(tree, views)
    canon = [n for n in tree.nodes if n.canon is n]
    rendered = {id(n) for n in canon
                if n.alias is None and n.type == "i/o"
                and _renders_itself(n, places.get(id(n), []), flats)}
    iommu_ids = {id(n) for n in canon if n.alias is None and n.name in iommu_seen}
    for n in canon:
        if (n.alias is None and n.type == "i/o" and id(n) not in places
                and _looks_like_iommu(n.name)):
            iommu_ids.add(id(n))
    iommu = sorted({n.name for n in canon if id(n) in iommu_ids})

    def io_plain(n: _Node) -> bool:
        return n.alias is None and n.type == "i/o" and id(n) not in iommu_ids

    terminating_ids = {id(n) for n in canon if io_plain(n) and n.children and id(n) in rendered}
    container_ids = {id(n) for n in canon
                     if io_plain(n) and not n.children and id(n) not in rendered}
    terminates = {id(n) for n in canon
                  if n.alias is None and (n.type != "i/o" or id(n) in iommu_ids
                                          or id(n) in terminating_ids
                                          or (not n.children and id(n) not in container_ids))}
    readonly_ids = _readonly_aliases(tree, views, flats, terminates)

    def keys(ids: Set[int], every: bool) -> List[str]:
        """Lines naming the chosen objects: a line printed for several objects
        is named when all of them (`every`) or any of them was chosen."""
        by_key: Dict[str, List[bool]] = {}
        for n in tree.nodes:
            assert n.canon is not None
            by_key.setdefault(n.key, []).append(id(n.canon) in ids)
        out = []
        for key, chosen in by_key.items():
            if (all(chosen) if every else any(chosen)):
                out.append(key)
            elif any(chosen):
                notes.append(f"one line names regions that differ, left out: {key}")
        return out

    shared = sorted({n for n, lst in tree.names.items() if len(lst) > 1})
    if shared:
        shown = ", ".join(shared[:12]) + (" ..." if len(shared) > 12 else "")
        notes.insert(0, f"{len(shared)} names are shared by distinct regions (hints are keyed "
                        f"by the whole dump line, not the name): {shown}")
    return {
        "page_bits": page_bits,
        "readonly_aliases": keys(readonly_ids, False),
        "containers": keys(container_ids, True),
        "terminating": keys(terminating_ids, False),
        "iommu": iommu,
        "as_order": as_order,
        "as_roots": as_roots,
        "notes": notes,
    }
