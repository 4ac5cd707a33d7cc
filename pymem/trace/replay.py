"""Replaying a trace against a machine and finding where it diverges.

Replay routes every access through the C dispatch of a machine, answers MMIO
reads with the recorded values (stub devices) unless real ops are kept,
checks RAM reads against the recorded bytes, and reports each divergence with
the commit it came after.  A QEMU log's accesses are matched by region name
and absolute address.  Knows the machine only through its address spaces
and regions; it records nothing (recorder.py) and prints nothing (report.py).

Thread safety:
    A replay swaps stub ops onto the machine's device regions and taps onto
    its spaces for its duration, and restores them: run it from the thread
    that edits the system, with no other thread accessing or editing that
    machine meanwhile.  Reports are plain values.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

from ..errors import PymemError
from ..region import MemoryRegion
from .format import READ, WRITE, Access, Commit, PathLike, Trace, flatview_digest
from .reader import load_trace

if TYPE_CHECKING:
    from ..address_space import AddressSpace, MemorySystem


def _translate(asp: Any, addr: int, size: int) -> Tuple[Any, Optional[MemoryRegion]]:
    """The access path's view of `addr`: a SectionAt (offset in region, bytes
    left in the section, section flags) and its region."""
    from ..access import translate_section

    t = translate_section(asp, addr, size)
    return t, t.region


@dataclass
class Divergence:
    """An access whose replay differs from the trace: `number` counts the
    replayed accesses from 1; `commit` is the last commit before it."""

    number: int
    access: Access
    kind: str
    expected: str
    got: str
    commit: Optional[Commit]
    context: List[Access]


@dataclass
class ReplayReport:
    """What a replay found.  `skipped` counts accesses of a QEMU log made
    before its last topology change, which no static map can replay; `via_alias`
    those of the replayed ones reached only through an alias."""

    source: str
    truncated: bool
    total: int = 0
    replayed: int = 0
    reads: int = 0
    writes: int = 0
    mmio: int = 0
    memory: int = 0
    skipped: int = 0
    via_alias: int = 0
    divergences: List[Divergence] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    problems: List[Tuple[int, str]] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        """True when every replayed access matched (`pymem replay` exits 0)."""
        return not self.divergences


class _Observer:
    """A device-access tap on every space during a replay: keeps the device
    accesses the replayed access caused."""

    def __init__(self) -> None:
        self.seen: List[Tuple[Any, Optional[MemoryRegion], int, int, int, int]] = []

    def __call__(self, event: Any) -> None:
        self.seen.append((event.space, event.region, event.offset, event.size, event.value,
                          event.result))


class _Stub:
    """The device behind every stubbed region: answers what the trace recorded."""

    def __init__(self) -> None:
        self.value = 0
        self.result = 0

    def read(self, offset: int, size: int, attrs: Any) -> Tuple[int, int]:
        return self.value, self.result

    def write(self, offset: int, value: int, size: int, attrs: Any) -> int:
        return self.result


def absolute_address(region: MemoryRegion) -> int:
    """The region's address through its real parents (never through aliases),
    as QEMU's trace events count it (memory_region_to_absolute_addr).

    Raises nothing.
    """
    addr = 0
    mr: Optional[MemoryRegion] = region
    while mr is not None:
        addr += mr.addr
        mr = mr.container
    return addr


def _where(region: Optional[MemoryRegion], offset: Optional[int]) -> str:
    if region is None:
        return "unassigned"
    return f"region {region.name!r} +{offset:#x}" if offset is not None else repr(region.name)


def _expected_where(access: Access) -> str:
    if access.region is None:
        return "unassigned"
    if access.offset is None:
        return f"region {access.region!r} at {access.addr:#x}"
    return f"region {access.region!r} +{access.offset:#x}"


StubChoice = Union[bool, Callable[[MemoryRegion], bool]]


@dataclass
class _Attachment:
    """What a replay swapped in: the real ops of the stubbed regions, the
    spaces given the observer, its taps; `permissive` for QEMU logs."""

    permissive: bool = False
    saved: List[Tuple[MemoryRegion, Any]] = field(default_factory=list)
    spaces: List[Any] = field(default_factory=list)
    taps: List[Any] = field(default_factory=list)


class Replayer:
    """Replays traces against `system`.  `stub` says which device regions are
    answered from the trace (True: all; a predicate: those it accepts); the
    others keep their ops, and their read values are checked.

    Raises nothing (the machine is looked at by `replay`).
    """

    CONTEXT = 3

    def __init__(self, system: "MemorySystem", stub: StubChoice = True) -> None:
        self.system = system
        self.stub_choice = stub
        self.spaces: Dict[str, "AddressSpace"] = {}
        for asp in system.address_spaces:
            self.spaces.setdefault(asp.name, asp)
        self._stub = _Stub()
        self._observer = _Observer()
        self._by_name: Optional[Dict[str, List[MemoryRegion]]] = None
        # The session and each space's view `_by_name` was made in.
        self._by_name_in: Tuple[Any, ...] = ()
        self._targets: Dict[Tuple[str, int, int], Optional[Tuple[Any, int, bool]]] = {}
        # What session() attached, while in one.
        self._session: Optional[_Attachment] = None

    # -------------------------------------------------------------- set-up

    def _device_regions(self) -> List[MemoryRegion]:
        from ..region import reachable

        seen: Dict[int, MemoryRegion] = {}
        for asp in self.system.address_spaces:
            for mr in reachable(asp.root):
                if mr.ops is not None:
                    seen.setdefault(mr.id, mr)
        return list(seen.values())

    def _attach(self, permissive: bool, done: "_Attachment") -> None:
        """Stubs on the chosen regions and the observer on every space; what
        it swapped is kept in `done`, for `_detach` (also when it stops half
        way: a predicate that raises, Ctrl-C)."""
        from ..region import MemoryRegionOps, set_ops

        done.permissive = permissive
        saved, spaces, taps = done.saved, done.spaces, done.taps
        for asp in self.system.address_spaces:
            if asp._recorder is not None:
                raise PymemError(f"address space {asp.name!r} is being recorded: "
                                 f"replay on another machine")
        for mr in self._device_regions():
            if self.stub_choice is True or (callable(self.stub_choice)
                                            and self.stub_choice(mr)):
                ops = mr.ops
                assert ops is not None
                # QEMU logs do not say what a device accepts: let it take
                # whatever the log shows it took.
                stub_ops = MemoryRegionOps(
                    self._stub.read, self._stub.write, endianness=ops.endianness,
                    valid_min=1 if permissive else ops.valid_min,
                    valid_max=8 if permissive else ops.valid_max, impl_min=1, impl_max=8,
                    unaligned=True if permissive else ops.unaligned, with_attrs=True)
                saved.append((mr, ops))
                set_ops(mr, stub_ops)
        for asp in self.system.address_spaces:
            spaces.append(asp)
            asp._recorder = self._observer
            taps.append(asp.add_tap(self._observer, mmio_only=True))

    @staticmethod
    def _detach(done: "_Attachment") -> None:
        from ..region import set_ops

        for tap in done.taps:
            tap.remove()
        for asp in done.spaces:
            asp._recorder = None
        for mr, ops in reversed(done.saved):
            set_ops(mr, ops)
        del done.saved[:], done.spaces[:], done.taps[:]

    @contextmanager
    def _attached(self, permissive: bool) -> Iterator[None]:
        """Stubs and the observer for the duration of one replay (none
        needed inside `session()` when it is already attached that way)."""
        session = self._session
        if session is not None:
            if session.permissive != permissive:
                self._detach(session)
                self._attach(permissive, session)
            yield
            return
        done = _Attachment()
        try:
            self._attach(permissive, done)
            yield
        finally:
            self._detach(done)

    @contextmanager
    def session(self) -> Iterator["Replayer"]:
        """Keep the stubs and the observer on for every `replay` made inside
        (replaying many traces on one machine: the device regions are found
        and stubbed once, not per trace); the real ops and taps are restored
        on leaving.  Do not edit the machine inside a session (the stubs are
        those of the regions there were on entry).  Not reentrant; not
        thread-safe (neither is `replay`).

        Raises:
            PymemError: this Replayer is already in a session, or a space of
                the machine is being recorded (as `replay` raises).
            Exception: what the `stub` predicate raises propagates; the
                machine's ops and taps are restored.
        """
        if self._session is not None:
            raise PymemError("this Replayer is already in a session")
        session = _Attachment()
        self._session = session
        try:
            self._attach(True, session)
            yield self
        finally:
            self._session = None
            self._by_name, self._by_name_in = None, ()
            self._detach(session)

    # -------------------------------------------------------------- replay

    def replay(self, trace: Trace, show_all: bool = True) -> ReplayReport:
        """Replay every access of `trace` (those after the last topology
        change, for a QEMU log) and report; stops at the first divergence
        unless `show_all`.

        Raises:
            PymemError: a space of the machine is being recorded (nothing is
                changed).
            IOMMUCycleError: a replayed access whose IOMMU translations do not end.
            Exception: what the `stub` predicate or a kept (not stubbed) device
                callback raises propagates; the machine's ops and taps are restored.
        """
        report = ReplayReport(source=trace.source, truncated=trace.truncated,
                              problems=list(trace.problems))
        # What the last replay found where is only good for the map it saw.
        # The regions by name stay for the replays of one session (whose
        # machine is not edited) while every space is on the view they were
        # collected in: walking q35's tree for them was half of a short log.
        if not self._same_map(self._by_name_in):
            self._by_name = None
            self._by_name_in = ()
        self._targets.clear()
        events = trace.events
        start = 0
        if trace.source == "qemu":
            last = max((i for i, e in enumerate(events) if isinstance(e, Commit)), default=-1)
            start = last + 1
            report.skipped = sum(1 for e in events[:start] if isinstance(e, Access))
        commit: Optional[Commit] = None
        for e in events[:start]:
            if isinstance(e, Commit):
                commit = e
        report.total = sum(1 for e in events[start:] if isinstance(e, Access))
        recent: List[Access] = []
        with self._attached(permissive=trace.source == "qemu"):
            for e in events[start:]:
                if isinstance(e, Commit):
                    commit = e
                    self._check_commit(e, report)
                    continue
                report.replayed += 1
                report.reads += e.op == READ
                report.writes += e.op == WRITE
                report.mmio += e.mmio
                report.memory += not e.mmio
                found = self._qemu_access(e, report) if e.space is None else self._access(e)
                if found is not None:
                    kind, expected, got = found
                    report.divergences.append(Divergence(report.replayed, e, kind, expected,
                                                         got, commit, list(recent)))
                    if not show_all:
                        break
                recent.append(e)
                if len(recent) > self.CONTEXT:
                    del recent[0]
        return report

    def _check_commit(self, commit: Commit, report: ReplayReport) -> None:
        for vd in commit.views:
            if vd.digest is None:
                continue
            for name in vd.spaces:
                asp = self.spaces.get(name)
                if asp is None or asp.flatview is None:
                    continue
                mine = flatview_digest(asp.flatview)
                if mine != vd.digest:
                    report.notes.append(
                        f"after commit #{commit.seq} (line {commit.line}) the view of "
                        f"{name!r} differs from the recorded one ({len(asp.flatview.ranges)} "
                        f"ranges, digest {mine}; recorded {vd.ranges} ranges, {vd.digest})")

    def _perform(self, asp: Any, addr: int, e: Access, region: Optional[MemoryRegion]) -> Any:
        """Issue `e` at `addr` in `asp` through the real access path; the
        bytes read (RAM) or the device accesses seen (MMIO)."""
        stub = self._stub
        stub.result = e.result
        self._observer.seen.clear()
        if e.value is not None:
            stub.value = e.value
            big = region is not None and region.ops is not None \
                and region.ops.endianness == "big"
            if e.op == READ:
                asp.load(addr, e.size, big, e.attrs)
            else:
                asp.store(addr, e.value & ((1 << (8 * e.size)) - 1), e.size, big, e.attrs)
            return None
        assert e.data is not None
        stub.value = int.from_bytes(e.data, "little")
        if e.op == READ:
            buf = bytearray(e.size)
            asp.rw(addr, buf, False, e.attrs)
            return bytes(buf)
        asp.rw(addr, e.data, True, e.attrs)
        return None

    def _access(self, e: Access) -> Optional[Tuple[str, str, str]]:
        """Replay one access of a pymem trace: (kind, expected, got) if it diverges."""
        asp = self.spaces.get(e.space or "")
        if asp is None:
            return "space", f"address space {e.space!r}", "no address space of that name"
        t, region = _translate(asp, e.addr, e.size)
        got_offset = t.offset if region is not None else None
        diverged: Optional[Tuple[str, str, str]] = None
        if (region.name if region is not None else None, got_offset) != (e.region, e.offset):
            diverged = "route", _expected_where(e), _where(region, got_offset)
        got = self._perform(asp, e.addr, e, region)
        if diverged is not None:
            return diverged
        seen = self._observer.seen
        if e.value is not None:
            if not seen:
                return "route", f"a device access to {_expected_where(e)}", \
                    "plain memory, no device access"
            _, mr, offset, size, value, result = seen[0]
            if (mr.name if mr is not None else None, offset if mr is not None else None,
                    size) != (e.region, e.offset, e.size):
                return "route", f"{_expected_where(e)}, {e.size} bytes", \
                    f"{_where(mr, offset)}, {size} bytes"
            if value != e.value:
                return "value", f"value {e.value:#x}", f"value {value:#x}"
            if result != e.result:
                return "result", f"result {e.result}", f"result {result}"
            return None
        if got is not None and got != e.data:
            assert e.data is not None
            return "data", f"bytes {e.data.hex()}", f"bytes {got.hex()}"
        return None

    # ----------------------------------------------------------- QEMU logs

    def _map_now(self) -> Tuple[Any, ...]:
        """The session (None outside one) and each space's current view."""
        return (self._session,) + tuple(asp.flatview for asp in self.system.address_spaces)

    def _same_map(self, seen: Tuple[Any, ...]) -> bool:
        """Whether `seen` (a `_map_now()`) was taken in this session, which
        is still on, with every space still on the same view."""
        now = self._map_now()
        return now[0] is not None and len(seen) == len(now) and \
            all(a is b for a, b in zip(seen, now))

    def _regions_named(self, name: str) -> List[MemoryRegion]:
        if self._by_name is None:
            from ..region import reachable

            by_name: Dict[str, Dict[int, MemoryRegion]] = {}
            for asp in self.system.address_spaces:
                for mr in reachable(asp.root):
                    by_name.setdefault(mr.name, {})[mr.id] = mr
            self._by_name = {k: list(v.values()) for k, v in by_name.items()}
            self._by_name_in = self._map_now() if self._session is not None else ()
        return self._by_name.get(name, [])

    def _qemu_target(self, e: Access) -> Optional[Tuple[Any, int, bool]]:
        """Where to issue a QEMU-traced access: (space, address, through an
        alias), or None if no space reaches a region of its name there."""
        assert e.region is not None
        key = (e.region, e.addr, e.size)
        if key in self._targets:
            return self._targets[key]
        found: Optional[Tuple[Any, int, bool]] = None
        views = self.system.flatviews()
        # The traced address is the address in every space that maps the
        # device where its real parents put it: try that first.
        for spaces in views.values():
            asp = spaces[0]
            t, mr = _translate(asp, e.addr, e.size)
            if mr is not None and mr.name == e.region and \
                    absolute_address(mr) + t.offset == e.addr:
                found = (asp, e.addr, False)
                break
        if found is None:
            # Else the device is reached only through an alias that moves it:
            # find a view that holds the traced offset of a region so named.
            for mr in self._regions_named(e.region):
                offset = e.addr - absolute_address(mr)
                if not 0 <= offset < mr.size:
                    continue
                for view, spaces in views.items():
                    for fr in view.ranges:
                        if fr.region is mr and fr.offset_in_region <= offset < \
                                fr.offset_in_region + fr.size:
                            found = (spaces[0], fr.addr + offset - fr.offset_in_region, True)
                            break
                    if found:
                        break
                if found:
                    break
        self._targets[key] = found
        return found

    def _qemu_access(self, e: Access, report: ReplayReport) -> Optional[Tuple[str, str, str]]:
        """Replay one access of a QEMU log: it must reach a region of the
        traced name at the traced address (its real parents' address plus
        the offset) in some address space."""
        if e.region is None:
            return "route", "a named region", "the log line names no region"
        target = self._qemu_target(e)
        expected = f"region {e.region!r} at {e.addr:#x}"
        if target is None:
            return "route", expected, self._what_is_at(e.addr, e.size)
        asp, addr, via_alias = target
        self._perform(asp, addr, e, _translate(asp, addr, e.size)[1])
        seen = self._observer.seen
        if not seen:
            return "route", expected, f"no device access in {asp.name!r} at {addr:#x}"
        _, mr, offset, size, value, _ = seen[0]
        if mr is None or mr.name != e.region or absolute_address(mr) + offset != e.addr:
            got = _where(mr, offset)
            if mr is not None:
                got += f" at {absolute_address(mr) + offset:#x}"
            return "route", expected, f"{got} (in {asp.name!r} at {addr:#x})"
        if e.op == WRITE and value != e.value:
            return "value", f"value {e.value:#x}", f"value {value:#x}"
        report.via_alias += via_alias
        return None

    def _what_is_at(self, addr: int, size: int) -> str:
        """What each view has at `addr`, for a divergence report."""
        found = []
        for spaces in self.system.flatviews().values():
            t, mr = _translate(spaces[0], addr, size)
            found.append(f"{spaces[0].name!r}: {_where(mr, t.offset if mr else None)}")
        return "; ".join(found) if found else "no address space"


def replay(trace: Union[Trace, PathLike], system: "MemorySystem", stub: StubChoice = True,
           show_all: bool = True) -> ReplayReport:
    """Replay a trace (or a trace file, either format) against `system`.

    Raises:
        TraceFormatError: `trace` is a path that cannot be read or parsed.
        PymemError: a space of the machine is being recorded.
        IOMMUCycleError: a replayed access whose IOMMU translations do not end.
        Exception: what the `stub` predicate or a kept device callback raises.
    """
    if not isinstance(trace, Trace):
        trace = load_trace(trace)
    return Replayer(system, stub).replay(trace, show_all)
