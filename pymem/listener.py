"""MemoryListener: callbacks told how an address space's flat map changed.

At every commit QEMU diffs each address space's old FlatView against its new
one (address_space_update_topology_pass): a first pass deletes the ranges that
vanished or changed, a second adds the new ones and reports the unchanged ones
(region_nop) and dirty-logging changes.  Deletions run in reverse listener
order and additions forward, so listeners unwind in the opposite order to the
one they built up in.  We reproduce the passes and the orders exactly.

Knows flat views (the difference of two); address spaces only in annotations:
the memory system calls its listeners, they never import it.

Thread safety:
    Listener hooks are called on the committing thread, inside the commit,
    with the system's writer lock held: a hook must not edit the topology,
    open a transaction or destroy an address space (EditDuringCommitError),
    but may access memory.  The functions here are called by the memory
    system under that lock; `MemoryRegionSection` is an immutable value.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, List, NamedTuple, Optional

if TYPE_CHECKING:
    from .address_space import AddressSpace
    from .flatview import FlatRange, FlatView
    from .region import MemoryRegion


class MemoryRegionSection(NamedTuple):
    """A piece of a region as mapped in a FlatView (QEMU's MemoryRegionSection)."""

    mr: "MemoryRegion"
    fv: Optional["FlatView"]
    offset_within_region: int
    size: int
    offset_within_address_space: int
    readonly: bool
    nonvolatile: bool


def section_from_flat_range(fr: "FlatRange", fv: Optional["FlatView"]) -> MemoryRegionSection:
    """The MemoryRegionSection a listener is handed for flat range `fr` of
    view `fv` (QEMU's section_from_flat_range).

    Raises nothing.
    """
    return MemoryRegionSection(fr.region, fv, fr.offset_in_region, fr.size, fr.addr,
                               fr.readonly, fr.nonvolatile)


class MemoryListener:
    """Subclass and override the callbacks you need; the defaults do nothing.

    `priority` orders listeners (lower first for forward calls), as in QEMU.

    The hooks' defaults raise nothing.  A hook that raises does not stop the
    commit: every listener is told the whole change, the new view is published,
    and then the first exception propagates to whoever committed (later ones
    are attached to it).
    """

    priority: int = 0

    def begin(self) -> None:
        """A commit (or this listener's registration) starts.

        Raises nothing (the default).
        """

    def commit(self) -> None:
        """A commit (or this listener's registration) ends.

        Raises nothing (the default).
        """

    def region_add(self, section: MemoryRegionSection) -> None:
        """`section` appeared in the address space.

        Raises nothing (the default).
        """

    def region_del(self, section: MemoryRegionSection) -> None:
        """`section` left the address space (or changed attributes).

        Raises nothing (the default).
        """

    def region_nop(self, section: MemoryRegionSection) -> None:
        """`section` is in both the old and the new view, unchanged.

        Raises nothing (the default).
        """

    def log_start(self, section: MemoryRegionSection, old: int, new: int) -> None:
        """Dirty logging gained clients: `old` and `new` are the masks.

        `old` and `new` are bit masks of DIRTY_MEMORY_* clients.

        Raises nothing (the default).
        """

    def log_stop(self, section: MemoryRegionSection, old: int, new: int) -> None:
        """Dirty logging lost clients: `old` and `new` are the masks.

        `old` and `new` are bit masks of DIRTY_MEMORY_* clients.

        Raises nothing (the default).
        """


class ViewListener(MemoryListener):
    """A listener told of whole views rather than sections (a pymem
    extension, for engines that keep a map of their own, as pymem.unicorn
    does): `view_changed(asp, old, new)` once per address space per commit
    that changed its view, after the space published `new` and while `old`
    is still alive (its ranges readable).  region_*, log_*, begin and commit
    are never called on it, and a commit whose only listeners are
    ViewListeners makes no MemoryRegionSection.

    Registering it calls `view_changed(asp, None, view)`; unregistering it
    (or destroying its space) `view_changed(asp, view, None)`.  Like any
    listener it is called with the system's writer lock held, and edits made
    from it raise EditDuringCommitError.
    """

    def view_changed(self, asp: "AddressSpace", old: Optional["FlatView"],
                     new: Optional["FlatView"]) -> None:
        """`asp`'s view went from `old` to `new` (None: no view, at
        registration and unregistration).

        Raises nothing (the default); what an override raises is raised by
        the commit (or registration) once every listener was told.
        """


def insert_by_priority(listeners: List[MemoryListener], listener: MemoryListener) -> None:
    """Insert after every listener of lower or equal priority (QEMU's order).

    Raises nothing.
    """
    i = len(listeners)
    while i > 0 and listeners[i - 1].priority > listener.priority:
        i -= 1
    listeners.insert(i, listener)


def _tell(errors: List[BaseException], hook: Callable[..., None], *args: Any) -> None:
    """Call one listener hook; an exception is kept in `errors` instead of
    stopping the walk, so every other listener still hears the whole change."""
    try:
        hook(*args)
    except BaseException as exc:   # noqa: B902 - re-raised by raise_first
        errors.append(exc)


def raise_first(errors: List[BaseException]) -> None:
    """Raise the first of the exceptions listeners raised, if any; the later
    ones are chained to it as notes (``__notes__``, shown by tracebacks on
    Python 3.11+) and kept in its ``listener_errors`` attribute.

    Raises:
        BaseException: the first of `errors`, whatever its class; nothing when
            `errors` is empty.
    """
    if not errors:
        return
    first = errors[0]
    if len(errors) > 1:
        try:
            first.listener_errors = list(errors[1:])  # type: ignore[attr-defined]
        except AttributeError:   # an exception type without __dict__
            pass
        for other in errors[1:]:
            note = f"another listener also raised: {type(other).__name__}: {other}"
            if hasattr(first, "add_note"):
                first.add_note(note)
    raise first


def update_topology(asp: "AddressSpace", old: Optional["FlatView"], new: "FlatView",
                    errors: List[BaseException]) -> None:
    """Tell `asp`'s listeners how `old` became `new`: deletions, then the rest.

    A listener that raises is told the rest of the change all the same, and so
    is every other listener: its exception is appended to `errors` for the
    caller to raise once the whole change is told (and published).

    The walk over both views runs in C (FlatView.diff); unchanged ranges are
    built into sections only when a listener has its own region_nop.

    Raises:
        OutOfMemoryError: C cannot allocate the difference of the views.
    """
    from .flatview import DIFF_ADD, DIFF_DEL, DIFF_SAME, diff_views

    forward = [listener for listener in asp.listeners
               if not isinstance(listener, ViewListener)]
    if not forward:
        return
    backward = forward[::-1]
    # Unchanged ranges matter only to a listener with its own region_nop
    # (overridden, or set on the instance as QEMU code fills callback slots).
    with_nops = any(getattr(listener.region_nop, "__func__", None)
                    is not MemoryListener.region_nop for listener in forward)
    steps = diff_views(old, new, with_nops)
    # During the passes QEMU's sections still name the old view (the space's
    # current map until it is published).  DEL and SAME steps need an old view.
    for kind, i, _ in steps:
        if kind == DIFF_DEL:
            assert old is not None
            section = section_from_flat_range(old.range_at(i), old)
            for listener in backward:
                _tell(errors, listener.region_del, section)
    for kind, i, j in steps:
        if kind == DIFF_SAME:
            assert old is not None
            frold, frnew = old.range_at(i), new.range_at(j)
            section = section_from_flat_range(frnew, old)
            for listener in forward:
                _tell(errors, listener.region_nop, section)
            if frnew.dirty_log & ~frold.dirty_log:
                for listener in forward:
                    _tell(errors, listener.log_start, section, frold.dirty_log, frnew.dirty_log)
            if frold.dirty_log & ~frnew.dirty_log:
                for listener in backward:
                    _tell(errors, listener.log_stop, section, frold.dirty_log, frnew.dirty_log)
        elif kind == DIFF_ADD:
            section = section_from_flat_range(new.range_at(j), old)
            for listener in forward:
                _tell(errors, listener.region_add, section)


def tell_views(asp: "AddressSpace", old: Optional["FlatView"], new: Optional["FlatView"],
               errors: List[BaseException]) -> None:
    """Tell `asp`'s ViewListeners that its view went from `old` to `new`
    (every one of them, even if one raises: exceptions go to `errors`).

    Raises nothing: the listeners' exceptions go to `errors`.
    """
    for listener in asp.listeners:
        if isinstance(listener, ViewListener):
            _tell(errors, listener.view_changed, asp, old, new)


def listener_add_address_space(listener: MemoryListener, fv: "FlatView",
                               errors: List[BaseException]) -> None:
    """Replay the current view to a newly registered listener (all of it,
    even if it raises: its exceptions go to `errors`).

    Raises nothing: the listener's exceptions go to `errors`.
    """
    _tell(errors, listener.begin)
    for fr in fv.ranges:
        section = section_from_flat_range(fr, fv)
        _tell(errors, listener.region_add, section)
        if fr.dirty_log:
            _tell(errors, listener.log_start, section, 0, fr.dirty_log)
    _tell(errors, listener.commit)


def listener_del_address_space(listener: MemoryListener, fv: "FlatView",
                               errors: List[BaseException]) -> None:
    """Take the current view away from a listener being unregistered (all
    of it, even if it raises: its exceptions go to `errors`).

    Raises nothing: the listener's exceptions go to `errors`.
    """
    _tell(errors, listener.begin)
    for fr in fv.ranges:
        section = section_from_flat_range(fr, fv)
        if fr.dirty_log:
            _tell(errors, listener.log_stop, section, fr.dirty_log, 0)
        _tell(errors, listener.region_del, section)
    _tell(errors, listener.commit)
