"""Comparing the memory maps of two machines: `pymem mtree diff A B`.

QEMU users compare `info mtree` dumps with a text diff, which reports every
line under a moved container and cannot tell a moved region from one removed
and another added.  `diff_systems(a, b)` compares two MemorySystems address
space by address space (matched by name): which regions were added, removed,
moved (their address in their container changed), resized, re-prioritised,
enabled or disabled, aliases pointed elsewhere, and which flat ranges of the
rendered views changed.  A regression test of a machine's map asserts that
the result is `equal`; a board before and after the guest programs its PCI
BARs shows exactly the BARs.

Regions are matched by their path (container names from the top of the tree,
as pymem/find.py gives them).  QEMU names are not unique, so among regions of
one path, identical ones are paired first and the rest by how few of their
fields differ, in tree order: thirteen `pam-rom` aliases of which one moved
give one "moved", not thirteen changes.  A region whose path changed (moved
to another container, renamed) reads as removed and added.

Read-only; call with both trees quiet (no edit in another thread).

Thread safety:
    Read-only, without locks: call with both systems quiet (no edit or
    commit in another thread meanwhile), e.g. from the thread that edits
    them.  The results are immutable values: any thread.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

from .errors import ArgumentTypeError
from .find import region_path
from .region import ALIAS, MemoryRegion

if TYPE_CHECKING:
    from .address_space import AddressSpace, MemorySystem
    from .flatview import FlatView


@dataclass(frozen=True)
class RegionState:
    """What the diff compares of one region: its place in the tree (`addr` is
    in its container, bytes), its kind and flags, and for an alias the path
    of its target and the offset into it."""

    path: str
    kind: str
    addr: int
    size: int
    priority: int
    enabled: bool
    readonly: bool
    romd: bool
    alias: Optional[str] = None
    alias_offset: int = 0

    @classmethod
    def of(cls, mr: MemoryRegion, memo: Dict[int, str]) -> "RegionState":
        """The state of `mr` now; `memo` caches region paths by id across calls.

        Raises nothing.
        """
        target = mr.alias
        return cls(region_path(mr, memo), mr.kind, mr.addr, mr.size, mr.priority,
                   mr.enabled, mr.readonly, mr.romd,
                   region_path(target, memo) if target is not None else None,
                   mr.alias_offset if mr.kind == ALIAS else 0)

    def describe(self) -> str:
        """The region in one phrase: kind, size, priority, flags.

        Raises nothing.
        """
        extra = "".join(f", {flag}" for flag, on in (("disabled", not self.enabled),
                                                      ("readonly", self.readonly)) if on)
        into = (f", alias of {self.alias!r} +{self.alias_offset:#x}"
                if self.alias is not None else "")
        return f"{self.kind}, size {self.size:#x}, prio {self.priority}{into}{extra}"


# The kinds of region change, in the order str() lists a region's changes.
ADDED = "added"
REMOVED = "removed"
MOVED = "moved"
RESIZED = "resized"
REPRIORITISED = "reprioritised"
ENABLED = "enabled"
DISABLED = "disabled"
RETARGETED = "retargeted"
CHANGED = "changed"


@dataclass(frozen=True)
class RegionChange:
    """One region that differs: `what` lists how (MOVED, RESIZED, ... or
    just ADDED / REMOVED); `a` and `b` are its states on each side (None on
    the side where it does not exist)."""

    path: str
    what: Tuple[str, ...]
    a: Optional[RegionState]
    b: Optional[RegionState]

    def details(self) -> List[str]:
        """One phrase per change ("0xfebf0000 -> 0xfe000000", ...).

        Raises nothing.
        """
        a, b = self.a, self.b
        if a is None:
            assert b is not None
            return [b.describe()]
        if b is None:
            return [a.describe()]
        out = []
        if a.addr != b.addr:
            out.append(f"at {a.addr:#x} -> {b.addr:#x}")
        if a.size != b.size:
            out.append(f"size {a.size:#x} -> {b.size:#x}")
        if a.priority != b.priority:
            out.append(f"priority {a.priority} -> {b.priority}")
        if a.alias != b.alias or a.alias_offset != b.alias_offset:
            out.append(f"alias of {a.alias!r} +{a.alias_offset:#x} -> {b.alias!r} "
                       f"+{b.alias_offset:#x}")
        for name in ("kind", "readonly", "romd"):
            if getattr(a, name) != getattr(b, name):
                out.append(f"{name} {getattr(a, name)} -> {getattr(b, name)}")
        return out

    def __str__(self) -> str:
        state = self.a if self.a is not None else self.b
        assert state is not None
        head = f"{'/'.join(self.what):<13} {self.path} @{state.addr:#x}"
        if self.what in ((ENABLED,), (DISABLED,)):
            return head
        return f"{head}: {'; '.join(self.details())}"


@dataclass(frozen=True)
class FlatChange:
    """A flat range only on side `side` ("a" or "b") of one space's view:
    absolute addresses, `end` exclusive, the region's path, the offset into
    it and the range's attributes."""

    side: str
    addr: int
    end: int
    path: str
    offset_in_region: int
    attrs: Tuple[str, ...] = ()

    def __str__(self) -> str:
        sign = "-" if self.side == "a" else "+"
        attrs = "".join(f" {a}" for a in self.attrs)
        return (f"{sign} {self.addr:#018x}-{self.end - 1:#018x} {self.path!r} "
                f"@{self.offset_in_region:#x}{attrs}")


@dataclass(frozen=True)
class SpaceDiff:
    """The differences of one address space, present on both sides."""

    name: str
    root_a: str
    root_b: str
    regions: Tuple[RegionChange, ...]
    flat: Tuple[FlatChange, ...]

    @property
    def equal(self) -> bool:
        """True when the space has the same root, regions and flat ranges on both sides."""
        return not self.regions and not self.flat and self.root_a == self.root_b

    def _having(self, what: str) -> List[RegionChange]:
        return [c for c in self.regions if what in c.what]

    @property
    def added(self) -> List[RegionChange]:
        """Regions only B has."""
        return self._having(ADDED)

    @property
    def removed(self) -> List[RegionChange]:
        """Regions only A has."""
        return self._having(REMOVED)

    @property
    def moved(self) -> List[RegionChange]:
        """Regions at another address in B."""
        return self._having(MOVED)

    @property
    def resized(self) -> List[RegionChange]:
        """Regions of another size in B."""
        return self._having(RESIZED)

    @property
    def reprioritised(self) -> List[RegionChange]:
        """Regions of another priority in B."""
        return self._having(REPRIORITISED)

    @property
    def enabled(self) -> List[RegionChange]:
        """Regions disabled in A, enabled in B."""
        return self._having(ENABLED)

    @property
    def disabled(self) -> List[RegionChange]:
        """Regions enabled in A, disabled in B."""
        return self._having(DISABLED)

    def body(self) -> List[str]:
        """The changes, one a line, without the heading.

        Raises nothing.
        """
        return self._root_line() + [str(c) for c in self.regions] + self._flat_lines()

    def _root_line(self) -> List[str]:
        return [f"root {self.root_a!r} -> {self.root_b!r}"] if self.root_a != self.root_b else []

    def _flat_lines(self) -> List[str]:
        if not self.flat:
            return []
        return ([f"flat ranges ({sum(c.side == 'a' for c in self.flat)} only in A, "
                 f"{sum(c.side == 'b' for c in self.flat)} only in B):"]
                + [f"  {c}" for c in self.flat])

    def __str__(self) -> str:
        body = self.body()
        if not body:
            return f"address space {self.name!r}: no differences"
        return "\n".join([f"address space {self.name!r}:"] + [f"  {line}" for line in body])


@dataclass(frozen=True)
class SystemDiff:
    """`diff_systems(a, b)`: the address spaces only on one side (by name),
    and each common space's differences (`spaces`, in A's order, equal ones
    included).  str() groups spaces whose differences read the same (the
    spaces of one root share them)."""

    only_a: Tuple[str, ...]
    only_b: Tuple[str, ...]
    spaces: Tuple[SpaceDiff, ...] = field(default_factory=tuple)

    @property
    def equal(self) -> bool:
        """True when both machines have the same address spaces and each is equal."""
        return not self.only_a and not self.only_b and all(s.equal for s in self.spaces)

    def space(self, name: str) -> SpaceDiff:
        """The differences of the space named `name` (KeyError if not common).

        Raises:
            KeyError: no address space of that name is in both systems.
        """
        for s in self.spaces:
            if s.name == name:
                return s
        raise KeyError(name)

    def __str__(self) -> str:
        if self.equal:
            return f"no differences ({len(self.spaces)} address spaces)"
        lines = []
        if self.only_a:
            lines.append("address spaces only in A: " + ", ".join(map(repr, self.only_a)))
        if self.only_b:
            lines.append("address spaces only in B: " + ", ".join(map(repr, self.only_b)))
        # Spaces on one tree share its changes: each line is printed once,
        # under the spaces it holds for.
        where: Dict[str, List[str]] = {}
        for s in self.spaces:
            for line in s._root_line() + [str(c) for c in s.regions]:
                where.setdefault(line, []).append(s.name)
        groups: Dict[Tuple[str, ...], List[str]] = {}
        for line, names in where.items():
            groups.setdefault(tuple(names), []).append(line)
        for spaces, group in groups.items():
            lines.append(f"regions in {_spaces(list(spaces))}:")
            lines.extend(f"  {line}" for line in group)
        flat: Dict[Tuple[str, ...], List[str]] = {}
        for s in self.spaces:
            if s.flat:
                flat.setdefault(tuple(s._flat_lines()), []).append(s.name)
        for body, names in flat.items():
            lines.append(f"{_spaces(names)}: {body[0]}")
            lines.extend(f"  {line}" for line in body[1:])
        same = [s.name for s in self.spaces if s.equal]
        if same:
            lines.append(f"no differences in {_spaces(same)}")
        return "\n".join(lines)


def _spaces(names: List[str]) -> str:
    plural = "s" if len(names) > 1 else ""
    return f"address space{plural} {', '.join(map(repr, names))}"


def _top(mr: MemoryRegion) -> MemoryRegion:
    while mr.container is not None:
        mr = mr.container
    return mr


def _states(space: "AddressSpace") -> List[RegionState]:
    """Every region reachable from the space's tree (subregions and alias
    targets), once each, in `info mtree` order."""
    out: List[RegionState] = []
    memo: Dict[int, str] = {}
    seen = set()
    stack = [_top(space.root)]
    targets: List[MemoryRegion] = []
    while stack or targets:
        mr = stack.pop() if stack else targets.pop(0)
        if mr.id in seen:
            continue
        seen.add(mr.id)
        out.append(RegionState.of(mr, memo))
        if mr.alias is not None:
            targets.append(mr.alias)
        stack.extend(reversed(mr.subregions))
    return out


def _what(a: RegionState, b: RegionState) -> Tuple[str, ...]:
    out = []
    if a.addr != b.addr:
        out.append(MOVED)
    if a.size != b.size:
        out.append(RESIZED)
    if a.priority != b.priority:
        out.append(REPRIORITISED)
    if a.enabled != b.enabled:
        out.append(ENABLED if b.enabled else DISABLED)
    if a.alias != b.alias or a.alias_offset != b.alias_offset:
        out.append(RETARGETED)
    if (a.kind, a.readonly, a.romd) != (b.kind, b.readonly, b.romd):
        out.append(CHANGED)
    return tuple(out)


def _pair(a: Sequence[RegionState], b: Sequence[RegionState]) -> List[RegionChange]:
    """The changes between two lists of regions of one path."""
    left = list(a)
    right = list(b)
    # Identical regions first: they are the same region, unchanged.
    for state in list(left):
        if state in right:
            right.remove(state)
            left.remove(state)
    out = []
    for state in left:
        if not right:
            out.append(RegionChange(state.path, (REMOVED,), state, None))
            continue
        best = min(right, key=lambda other: len(_what(state, other)))
        right.remove(best)
        out.append(RegionChange(state.path, _what(state, best), state, best))
    out.extend(RegionChange(state.path, (ADDED,), None, state) for state in right)
    return out


def _region_changes(a: List[RegionState], b: List[RegionState]) -> List[RegionChange]:
    by_path_a: Dict[str, List[RegionState]] = {}
    by_path_b: Dict[str, List[RegionState]] = {}
    for state in a:
        by_path_a.setdefault(state.path, []).append(state)
    for state in b:
        by_path_b.setdefault(state.path, []).append(state)
    out = []
    # In A's tree order, then what only B has in B's.
    for path, states in by_path_a.items():
        out.extend(_pair(states, by_path_b.get(path, [])))
    for path, states in by_path_b.items():
        if path not in by_path_a:
            out.extend(_pair([], states))
    return out


def _flat(view: Optional["FlatView"], side: str) -> List[FlatChange]:
    if view is None:
        return []
    memo: Dict[int, str] = {}
    return [FlatChange(side, fr.addr, fr.end, region_path(fr.region, memo),
                       fr.offset_in_region,
                       tuple(n for n in ("readonly", "romd", "nonvolatile") if getattr(fr, n)))
            for fr in view.ranges]


def _flat_changes(a: Optional["FlatView"], b: Optional["FlatView"]) -> List[FlatChange]:
    def key(c: FlatChange) -> Tuple[int, int, str, int, Tuple[str, ...]]:
        return (c.addr, c.end, c.path, c.offset_in_region, c.attrs)

    ranges_a = _flat(a, "a")
    ranges_b = _flat(b, "b")
    keys_a = {key(c) for c in ranges_a}
    keys_b = {key(c) for c in ranges_b}
    out = [c for c in ranges_a if key(c) not in keys_b]
    out += [c for c in ranges_b if key(c) not in keys_a]
    out.sort(key=lambda c: (c.addr, c.side))
    return out


def diff_spaces(a: "AddressSpace", b: "AddressSpace",
                name: Optional[str] = None) -> SpaceDiff:
    """The differences between two address spaces (of any two systems):
    their region trees and their current flat views; `name` (default A's)
    is what the result calls the pair.

    Raises nothing.
    """
    return SpaceDiff(a.name if name is None else name, a.root.name, b.root.name,
                     tuple(_region_changes(_states(a), _states(b))),
                     tuple(_flat_changes(a.flatview, b.flatview)))


def _by_name(system: "MemorySystem") -> Dict[str, "AddressSpace"]:
    """The system's live address spaces by name; a name used twice gets
    '#2', '#3', ... on its later spaces, so each still has a partner."""
    out: Dict[str, AddressSpace] = {}
    for asp in system.address_spaces:
        if asp.destroyed:
            continue
        name, n = asp.name, 1
        while name in out:
            n += 1
            name = f"{asp.name}#{n}"
        out[name] = asp
    return out


def diff_systems(a: "MemorySystem", b: "MemorySystem") -> SystemDiff:
    """How the map of system `b` differs from that of system `a`, per
    address space (matched by name).  ArgumentTypeError if either is not a
    MemorySystem.  Read-only; the trees must not change meanwhile.

    Raises:
        ArgumentTypeError: `a` or `b` is not a MemorySystem.
    """
    from .address_space import MemorySystem

    for label, system in (("A", a), ("B", b)):
        if not isinstance(system, MemorySystem):
            raise ArgumentTypeError(f"diff_systems: {label} must be a MemorySystem, "
                                    f"not {type(system).__name__}")
    spaces_a = _by_name(a)
    spaces_b = _by_name(b)
    common = [name for name in spaces_a if name in spaces_b]
    return SystemDiff(tuple(n for n in spaces_a if n not in spaces_b),
                      tuple(n for n in spaces_b if n not in spaces_a),
                      tuple(diff_spaces(spaces_a[n], spaces_b[n], n) for n in common))


__all__ = ["ADDED", "CHANGED", "DISABLED", "ENABLED", "MOVED", "REMOVED", "REPRIORITISED",
           "RESIZED", "RETARGETED", "FlatChange", "RegionChange", "RegionState", "SpaceDiff",
           "SystemDiff", "diff_spaces", "diff_systems"]
