"""MemorySystem and AddressSpace: transactions, commits and shared FlatViews.

A MemorySystem is what QEMU keeps in globals: the address spaces, the memory
listeners, the transaction depth, and the registry of FlatViews keyed by the
region each view renders.  Edits inside `with system.transaction():` are
committed once, when the outermost transaction ends; an edit outside any
transaction is its own transaction, as in QEMU.

A commit renders one FlatView per distinct root (address spaces whose roots
reduce to the same region share it and its dispatch), builds every dispatch
before touching any address space, so a failure leaves all of them on their
last good view, and only then swaps the views in, telling the listeners.

Thread safety:
    A `MemorySystem`'s edits, transactions and commits are serialised by
    its writer lock (an RLock: QEMU's big lock), so any thread may edit,
    one at a time; listeners run inside the commit on the committing
    thread.  Accesses through its address spaces never take that lock (see
    `AddressSpace`).
"""
from __future__ import annotations

import os
import threading
import weakref
from functools import partial
from typing import TYPE_CHECKING, Any, ContextManager, Dict, List, Optional, Tuple, cast

from . import dirty
from ._bindings import _fastpath, ffi, lib
from .access import AccessMixin
from .dispatch import Dispatch, check_page_bits
from .errors import (ArgumentTypeError, EditDuringCommitError, ReadOnlyAttributeError,
                     TopologyError, Uncopyable, ViewLifetimeError, check)
from .flatview import FlatView, get_flatview_root
from .listener import (MemoryListener, ViewListener, _tell, insert_by_priority,
                       listener_add_address_space, listener_del_address_space, raise_first,
                       tell_views, update_topology)
from .rcu import call_rcu
from .region import RAM, MemoryRegion, reachable

if TYPE_CHECKING:
    from .check import Finding
    from .snapshot import Snapshot
    from .explain import Explanation
    from .find import RegionEntry


# Every live system, for the fork handler below.
_systems: "weakref.WeakSet[MemorySystem]" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """Only the forking thread survives fork.  A system whose lock another
    thread held is mid-edit in the child, and that edit will never finish:
    give it a fresh lock, depth and notification count, and have its next
    commit re-render.  The state itself is consistent: every edit keeps C
    and Python in step at each bytecode boundary (the same property that
    makes Ctrl-C safe), and the C tree is never mid-change (TREE_LOCK is
    held across fork).  The spaces' C handles are pointed again at the views
    their pins hold, in case the fork fell inside a publish."""
    for system in list(_systems):
        if system._lock._is_owned():   # type: ignore[attr-defined]
            continue                   # the forking thread's own edit
        system._lock = threading.RLock()
        system._depth = 0
        system._notifying = 0
        system._update_pending = True
        for asp in system._spaces:
            view = asp._pin.view
            if view is not None and view._handle is not None:
                lib.pm_as_publish(asp._cas, view._handle)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class MemorySystem(Uncopyable):
    """The regions' world: address spaces, listeners, views, transactions.

    Edits and commits are serialised by the system's lock.  A
    fork while another thread edits leaves the child usable (see
    _after_fork_in_child).  A KeyboardInterrupt (or any signal handler that
    raises) anywhere in an edit, commit or destroy leaves the C and Python
    trees equal, every space on a live view and no view leaked: each change
    to C and its Python mirror is made in one C call (`_fastpath.atomic`),
    and what an interrupted commit left undone the next one does.

    `page_bits` is the target page size as a power of two, 10..16 (1 KiB to
    64 KiB; 12 is 4 KiB).

    Raises:
        ArgumentTypeError: `page_bits` is not an int.
        TopologyError: `page_bits` is outside 10..16.
    """

    def __init__(self, page_bits: int = 12) -> None:
        check_page_bits(page_bits)
        self.page_bits = page_bits
        self._stats = ffi.new("pm_stats *")
        # For the commit's renders in C (_fastpath.render_view).
        self._stats_address = int(ffi.cast("uintptr_t", self._stats))
        # QEMU's big lock: writers (edits, commits) are serialised by it.
        self._lock = threading.RLock()
        self._depth = 0
        # How many listener notifications (a commit's, a registration's
        # replay) are under way: edits made from them are refused.
        self._notifying = 0
        self._update_pending = False
        self._spaces: List[AddressSpace] = []
        self._listeners: List[MemoryListener] = []
        # How many of them are not ViewListeners: with none, a commit takes
        # the fast path (ViewListeners are told after its publish).
        self._plain_listeners = 0
        self._views: Dict[Optional[int], FlatView] = {}
        # QEMU renders the empty view once and keeps it forever; every
        # address space whose root renders nothing shares it.
        # Made once: every view's dispatch is freed by it.
        self._destructor = Dispatch.destructor(self._stats)
        self._empty_view = FlatView(None, page_bits, self._reclaim, self._stats)
        self._views[None] = self._empty_view
        self._empty_view.ref()
        # Views whose last reference went, waiting to be handed to call_rcu
        # (see _retire): appended in the same C call that drops the reference.
        self._retired: List[FlatView] = []
        _systems.add(self)

    # ----------------------------------------------------------- public API

    def address_space(self, root: MemoryRegion, name: str) -> "AddressSpace":
        """A new address space seeing the tree under `root`.

        Raises:
            ArgumentTypeError: `root` is not a MemoryRegion or `name` not a str.
            TopologyError: a region under `root` belongs to another MemorySystem,
                or an alias loop under it never leaves its window.
            CapacityError: the view needs more sections or radix nodes than a
                dispatch entry can address.
        """
        if not isinstance(root, MemoryRegion):
            raise ArgumentTypeError(f"address_space {name!r}: root must be a MemoryRegion, "
                                    f"not {type(root).__name__}")
        if not isinstance(name, str):
            raise ArgumentTypeError("address_space: name must be a str")
        with self._lock:
            self._adopt(root)
            # address_space_init: the new space gets its view at once, shared
            # with any space already on the same root.  The view is built
            # before the space is registered: if building fails, nothing is.
            phys = get_flatview_root(root)
            key = phys.id if phys is not None else None
            view = self._views.get(key)
            if view is None:
                view = self._generate(phys)
                self._views[key] = view
            asp = AddressSpace(self, root, name)
            errors: List[BaseException] = []
            # Registered and published in one step: never a space without a
            # view.  A new space has no listeners yet.
            asp._set_flatview(view, errors, ((self._spaces.append, asp),))
            raise_first(errors)
            return asp

    def transaction(self) -> ContextManager["MemorySystem"]:
        """Batch edits; the outermost exit commits them (even after an
        exception, since the edits made so far are in the tree).

        Raises EditDuringCommitError from a memory listener that is being
        told of a change: edits must wait until the commit is over.
        Entered and left in C (`_fastpath.Transaction`): a KeyboardInterrupt
        cannot leave the lock held or the transaction open.  One that lands
        inside the commit leaves the update pending: the next transaction's
        end commits it.

        Raises:
            EditDuringCommitError: entered from a memory listener being told of a
                change.
            PymemError: the commit at the outermost exit fails as a commit does
                (TopologyError, CapacityError, OutOfMemoryError): every space stays
                on its last good view.
            Exception: the first exception a listener raised while told of the
                commit, once the whole change is told and published.
        """
        return cast(_Transaction, _fastpath.Transaction(self))

    @property
    def address_spaces(self) -> List["AddressSpace"]:
        """Address spaces in creation order."""
        return list(self._spaces)

    def flatviews(self) -> Dict[FlatView, List["AddressSpace"]]:
        """Each current view and the address spaces on it, in creation order.

        Raises nothing.
        """
        out: Dict[FlatView, List[AddressSpace]] = {}
        for asp in self._spaces:
            assert asp.flatview is not None   # set by address_space()
            out.setdefault(asp.flatview, []).append(asp)
        return out

    def regions(self) -> List["RegionEntry"]:
        """Every region reachable from an address space's root, once per place
        it is mapped, with its path (pymem/find.py).

        Raises nothing.
        """
        from .find import regions

        return regions(self)

    def find(self, name: str) -> List["RegionEntry"]:
        """Every region named `name` (QEMU names are not unique), with its path.

        Raises:
            ArgumentTypeError: `name` is not a str.
        """
        from .find import find

        return find(self, name)

    def check(self) -> List["Finding"]:
        """Problems in the map: overlaps at equal priority, aliases past their
        target, regions never visible, ... (pymem/check.py).

        Raises nothing.
        """
        from .check import check_system

        return check_system(self)

    def snapshot(self) -> "Snapshot":
        """The contents of every RAM, ROM, ROM-device and RAM-device region
        reachable from this system's address spaces, and the states of the
        devices that take part (pymem/snapshot.py).  Incremental after the
        first: only the pages dirtied since the last snapshot or restore are
        copied.  Holds the system's lock.

        Raises:
            SnapshotError: taken inside a transaction while some RAM region is not
                yet logged for snapshots.
            EditDuringCommitError: taken from a listener being told of a change
                while a region needs its logging turned on.
            Exception: what a participant's `save()` raises propagates.
        """
        from .snapshot import take

        return take(self)

    def restore(self, snap: "Snapshot", full: bool = False) -> List[MemoryRegion]:
        """Put back `snap`'s memory and device states, writing only the pages
        dirtied since the last snapshot or restore (every page with `full`);
        returns the regions added since it was taken, left as they are.
        Raises SnapshotError naming the regions it no longer finds, or for
        another system's snapshot, before anything is written.

        Raises:
            ArgumentTypeError: `snap` is not a Snapshot.
            SnapshotError: another system's snapshot, or of regions or devices
                removed or resized since, or of another page size (nothing is
                written).
            Exception: what a participant's `load(state)` raises propagates.
        """
        from .snapshot import restore

        return restore(self, snap, full=full)

    @property
    def live_dispatches(self) -> int:
        """Dispatch tables of this system not yet freed (C's count)."""
        return int(self._stats.live_dispatches)

    # ------------------------------------------------------------ internals

    def _check_editable(self, what: str) -> None:
        """Refuse `what` (an edit, described for the message) while listeners
        are being told of a change: QEMU forbids topology changes from a
        listener, and a nested commit would release views the outer one is
        about to publish.  Called with the lock held."""
        if self._notifying:
            raise EditDuringCommitError(
                f"{what} was made from a memory listener while it was being told of a "
                f"change: edits during a commit are refused (QEMU forbids them); make "
                f"the edit after the commit")

    def _telling(self) -> ContextManager[None]:
        """Listeners are being told of a change: edits are refused meanwhile.
        The count is raised and put back in C (`_fastpath.Setting`), so an
        interrupt cannot leave edits refused for good.  Call with the lock."""
        return cast(ContextManager[None],
                    _fastpath.Setting(self, "_notifying", self._notifying + 1))

    def _adopt(self, region: MemoryRegion) -> None:
        """Make `region` and all it reaches part of this system, so their
        edits commit here."""
        found = list(reachable(region))
        for mr in found:
            if mr._system is not None and mr._system is not self:
                raise TopologyError(f"region {mr.name!r} (reached from {region.name!r}) "
                                    f"belongs to another MemorySystem")
        for mr in found:
            mr._system = self
            if mr.kind == RAM:
                # Made now, at the system's page size, for C's writes to mark.
                dirty.log_of(mr)

    def _reclaim(self, view: FlatView) -> None:
        # QEMU's flatview_unref -> call_rcu(flatview_destroy): a C reader may
        # still hold the view's dispatch; the callback keeps the view (and the
        # RAM buffers and regions it reaches) alive until the grace period ends.
        call_rcu(view._release)

    def _generate(self, root: Optional[MemoryRegion]) -> FlatView:
        # _commit makes its views as this does, inline.
        if root is None:
            return self._empty_view
        last = self._views.get(root.id)
        return FlatView(root, self.page_bits, self._reclaim, self._stats,
                        len(last._regions) if last is not None else 0, self._destructor,
                        self._stats_address)

    def _retire(self) -> None:
        """Release the views whose last reference went: at once when a grace
        period can be had without waiting (`pm_rcu_try_synchronize`: no
        read-side section open anywhere, the usual case), else through
        call_rcu.  At once, the old tables are freed by the writer that
        made them, while their memory is still in its cache, and the next
        render reuses it; behind call_rcu they would pile up for the
        reclaimer's batch delay (a commit cost about twice as much).
        Restartable: a view leaves the list only after it was released or
        queued, and a view released twice is harmlessly so, so an
        interrupted hand-over is finished by the next one (every commit
        and publish ends with one)."""
        retired = self._retired
        if retired:
            batch = tuple(retired)
            if _try_synchronize():
                _release_views(batch)
            else:
                call_rcu(partial(_release_views, batch))
            del retired[:len(batch)]

    def _unref_steps(self, changes: Dict[int, Tuple[FlatView, int]]) -> List[Tuple[Any, ...]]:
        """The `_fastpath.atomic` steps that apply reference count changes
        (id -> (view, change)) and retire the views that reach 0."""
        steps: List[Tuple[Any, ...]] = []
        for view, change in changes.values():
            if change:
                refs = view._refs + change
                steps.append(("=", view, "_refs", refs))
                if refs == 0:
                    steps.append((self._retired.append, view))
        return steps

    def _commit(self) -> None:
        # An interrupted commit (Ctrl-C) leaves `_update_pending` set, so the
        # next transaction's end commits again; each step below leaves every
        # space on a live view, with counts that match its holders.
        if self._retired:
            self._retire()
        spaces = self._spaces
        # Every space's flat-view root, walked in C (pm_flatview_root):
        # keys[i] names the view of spaces[i] (its root's id, None for the
        # empty view), `roots` maps each key to its root, in first-use order.
        keys, roots = _fastpath.flatview_roots(spaces)
        views: Dict[Optional[int], FlatView] = {}
        last_views = self._views
        try:
            for key, phys in roots.items():
                # _generate's work, inline: this runs for every view of
                # every commit.
                if phys is None:
                    views[key] = self._empty_view
                    continue
                last = last_views.get(key)
                views[key] = FlatView(phys, self.page_bits, self._reclaim, self._stats,
                                      len(last._regions) if last is not None else 0,
                                      self._destructor, self._stats_address)
        except BaseException:
            for view in views.values():
                if view is not self._empty_view:
                    view._release()
            raise
        # flatviews_reset: the registry drops its references to the old views
        # (address spaces still hold theirs) and takes the new ones (new
        # views start with the registry's reference).
        if None not in views:
            views[None] = self._empty_view
        if not self._listeners:
            # Nobody to tell at all: the registry swap, every space's publish
            # and the reference counts, then the release of the replaced
            # views when no reader can hold them (swap_views' `release`:
            # after every publish, see csrc/ext/commit.c), in one C call.
            # Views a reader may still hold stay in `_retired`: call_rcu.
            _fastpath.swap_views(self, views, spaces, keys, True, True)
            if self._retired:
                self._retire()
            return
        if not self._plain_listeners:
            # Nobody to tell of sections: the registry swap, every space's
            # publish (C readers see each space switch, as they would one by
            # one) and the reference counts in one C call
            # (csrc/ext/commit.c: no signal falls between them), then the
            # ViewListeners, before the old views are retired.
            pairs = [(asp, views[key]) for asp, key in zip(spaces, keys)]
            told = [(asp, asp._pin.view, new) for asp, new in pairs
                    if asp.listeners and asp._pin.view is not new]
            _fastpath.swap_views(self, views, spaces, keys, True, False)
            if told:
                errors: List[BaseException] = []
                with self._telling():
                    for asp, old, new in told:
                        tell_views(asp, old, new, errors)
                self._retire()
                raise_first(errors)
            self._retire()
            return
        _fastpath.swap_views(self, views, [], [], False, False)
        # Every space is switched whatever the listeners do: a listener that
        # raises is told the rest anyway, every other listener hears the
        # whole commit, and the first exception is raised once every space
        # is on its new view.  The lists are copied: a listener may
        # (un)register listeners or create spaces meanwhile.
        errors = []
        with self._telling():
            listeners = [listener for listener in self._listeners
                         if not isinstance(listener, ViewListener)]
            for listener in listeners:
                _tell(errors, listener.begin)
            for asp, key in list(zip(spaces, keys)):
                asp._set_flatview(views[key], errors)
            self._update_pending = False
            for listener in listeners:
                _tell(errors, listener.commit)
        self._retire()
        raise_first(errors)


_try_synchronize = lib.pm_rcu_try_synchronize
# Made once: a subscripted generic evaluated at every transaction() costs
# more than the rest of the call.
_Transaction = ContextManager["MemorySystem"]


def _release_views(views: Tuple[FlatView, ...]) -> None:
    for view in views:
        view._release()


class _Pin:
    """What an address space's C handle can reach, kept alive with it.  The
    builtins bound to the handle (`asp.ldl_le`, ...) hold this, so one that
    outlives its AddressSpace, or the whole MemorySystem, still finds its
    last published view (dispatch, RAM buffers) alive instead of freed."""

    __slots__ = ("cas", "view", "recorder")

    def __init__(self, cas: Any) -> None:
        self.cas = cas
        self.view: Optional[FlatView] = None
        # While set, C leaves device accesses to the Python path, which
        # reports them to it (pymem.trace).
        self.recorder: Any = None


class AddressSpace(AccessMixin, Uncopyable):
    """A view of a region tree from its root, as the CPU or a device sees it.

    Made by `MemorySystem.address_space(root, name)`.  Addresses are Python
    ints in 0 .. 2^64 - 1 and sizes are bytes: an address or size of another
    type raises ArgumentTypeError (numpy integers included: convert with
    int()), one out of range InvalidArgumentError.  Bus errors raise
    MemTxError (`.result` holds the MemTxResult bits) from the raising calls
    (`read`, `write`, the fixed-width `ld*`/`st*`); `rw`, `load` and `store`
    return the result instead.  An access through a destroyed space raises
    TopologyError.

    Thread safety:
        Every access method may be called from any thread at any time,
        concurrently with commits on other threads: each runs in C inside an
        RCU read-side section on the view that was current when it began,
        and never blocks on the writer.  A builtin taken from a space
        (`ld = asp.ldl_le`) keeps the space's C state alive and always reads
        its current view.  A device callback or tap runs on the thread that
        made the access, with no pymem lock held.  Listener registration and
        `destroy` take the system's writer lock.

    Raises nothing (spaces are made by `MemorySystem.address_space`).
    """

    def __init__(self, system: MemorySystem, root: MemoryRegion, name: str) -> None:
        self.system = system
        self.root = root
        self.name = name
        self.listeners: List[MemoryListener] = []
        self.destroyed = False
        out = ffi.new("pm_as **")
        # Owned in the call that makes it (no interrupt can leak it); the
        # destructor holds the stats so they outlive the handle that counts
        # itself in them, and is C (see Dispatch.destructor).
        status, self._cas = _fastpath.call_owned(
            ffi.gc, lib.pm_as_new, (system._stats, out),
            ((out, partial(lib.pm_as_release, system._stats)),))
        check(status, f"creating address space {name!r}")
        self._pin = _Pin(self._cas)
        # For the commit's publishes in C (_fastpath.swap_views).
        self._cas_address = int(ffi.cast("uintptr_t", self._cas))
        self._bind_bulk()

    @property
    def flatview(self) -> Optional[FlatView]:
        """The view C reads now (read-only: each space holds a counted
        reference on it, which only commits and destroy() move).  Kept on
        the pin only, so the space and its builtins never disagree."""
        return cast(Optional[FlatView], self._pin.view)

    @flatview.setter
    def flatview(self, value: Any) -> None:
        raise ReadOnlyAttributeError(f"address space {self.name!r}: 'flatview' is read-only; "
                                     f"edit the regions (a commit publishes the new view)")

    def _set_flatview(self, new: FlatView, errors: List[BaseException],
                      also: Tuple[Tuple[Any, ...], ...] = ()) -> None:
        """QEMU's address_space_set_flatview: tell the listeners the difference,
        then publish.  A listener that raises does not stop the publish (the
        space must not be left on a view its siblings have left): its
        exception is appended to `errors` for the caller to raise once all
        is done.  `also`: `_fastpath.atomic` steps to make with the publish."""
        old = self.flatview
        if old is new:
            return
        # A view whose last reference is gone is on its way to call_rcu:
        # publishing it would hand C a dispatch about to be freed.
        if new._handle is None or new._refs <= 0:
            raise ViewLifetimeError(f"address space {self.name!r}: the view to publish "
                                    f"was already released")
        if self.listeners:
            update_topology(self, old, new, errors)
        _fastpath.atomic(*self._publish_steps(new), *also)
        if self.listeners:
            tell_views(self, old, new, errors)
        self.system._retire()

    def _publish_steps(self, new: FlatView, extra_unref: int = 0) -> List[Tuple[Any, ...]]:
        """The steps of a publish, for one `_fastpath.atomic` call: the new
        view's reference, the pin (before C can reach the new table, so
        builtins keep it alive), the C swap and the old view's reference
        (`extra_unref` more dropped with it); no signal can fall between
        them.  C gets the view's own handle, which no Dispatch.close() can
        drop: the view owns the table C points at while it is published, and
        the old table lives until a grace period after its view is retired."""
        old = self.flatview
        changes = {id(new): (new, 1)}
        if old is not None:
            changes[id(old)] = (old, changes.get(id(old), (old, 0))[1] - 1 - extra_unref)
        steps = [("=", self._pin, "view", new), (lib.pm_as_publish, self._cas, new._handle)]
        return self.system._unref_steps(changes) + steps

    def mark_dirty(self, addr: int, size: int) -> None:
        """Report a write to [addr, addr + size) of this space made outside
        pymem (a CPU engine's stores, a DMA engine): the RAM regions the
        current view maps there are marked dirty for the clients logging
        them, as pymem's own writes would be.  ROM, devices and holes in the
        range are skipped.  Thread-safe.

        `addr` and `size` are bytes of this space, within [0, 2^64].

        Raises:
            TopologyError: the space is destroyed.
            ArgumentTypeError: `addr` or `size` is not an int.
            InvalidArgumentError: the range is outside [0, 2^64).
        """
        self._check_live()
        view = self.flatview
        assert view is not None
        dirty.mark_dirty_in_view(view, addr, size)

    def destroy(self) -> None:
        """QEMU's address_space_destroy: the space leaves its system and sees
        nothing from now on.  Its listeners are unregistered first (each is
        told that every range is gone); a view no other space uses is
        released, after a grace period as any replaced view.  Accesses
        through it afterwards, builtins taken earlier included, raise.

        A listener that raises while told does not stop the destruction: the
        space is destroyed and every listener unregistered, then the first
        exception is raised.  Raises EditDuringCommitError from a listener
        being told of a change.

        Raises:
            TopologyError: the space is already destroyed.
            EditDuringCommitError: called from a listener being told of a change.
            Exception: the first exception a listener raised while told.
        """
        system = self.system
        with system._lock:
            if self.destroyed:
                raise TopologyError(f"address space {self.name!r} is already destroyed")
            system._check_editable(f"destroying address space {self.name!r}")
            errors: List[BaseException] = []
            for listener in list(self.listeners):
                self._remove_listener(listener, errors)
            system._retire()
            old = self.flatview
            # Leaving the system, the empty view and the registry's hold on a
            # view no other space uses: one step (see _publish_steps).
            also: List[Tuple[Any, ...]] = [(system._spaces.remove, self),
                                           ("=", self, "destroyed", True)]
            unused = [key for key, view in system._views.items() if view is old]
            if (old is not system._empty_view and not any(
                    asp.flatview is old for asp in system._spaces if asp is not self)):
                also += [(system._views.pop, key) for key in unused]
            else:
                unused = []
            steps = (self._publish_steps(system._empty_view, len(unused))
                     if old is not system._empty_view else [])
            _fastpath.atomic(*also, *steps)
            system._retire()
            raise_first(errors)

    def _check_live(self) -> None:
        if self.destroyed:
            raise TopologyError(f"address space {self.name!r} is destroyed")

    def register_listener(self, listener: MemoryListener) -> None:
        """Add a listener; it is shown the current view at once.  If it raises
        while shown, it is shown the rest anyway and stays registered (it
        knows the whole view); the first exception is then raised.

        Raises:
            ArgumentTypeError: `listener` is not a MemoryListener.
            TopologyError: the space is destroyed, or the listener is already
                registered (on any space of the system).
            Exception: the first exception the listener raised while shown the
                view (it stays registered).
        """
        if not isinstance(listener, MemoryListener):
            raise ArgumentTypeError("register_listener: listener must be a MemoryListener")
        self._check_live()
        with self.system._lock:
            if any(listener is other for other in self.system._listeners):
                raise TopologyError(f"listener {listener!r} is already registered")
            insert_by_priority(self.system._listeners, listener)
            insert_by_priority(self.listeners, listener)
            view = isinstance(listener, ViewListener)
            if not view:
                self.system._plain_listeners += 1
            assert self.flatview is not None
            errors: List[BaseException] = []
            with self.system._telling():
                if view:
                    _tell(errors, cast(ViewListener, listener).view_changed, self, None,
                          self.flatview)
                else:
                    listener_add_address_space(listener, self.flatview, errors)
            raise_first(errors)

    def unregister_listener(self, listener: MemoryListener) -> None:
        """Remove a listener; it sees every range of the current view deleted.
        It is removed even if it raises while told (the first exception is
        raised afterwards).

        Raises:
            TopologyError: the listener is not registered on this space.
            Exception: the first exception the listener raised while told (it is
                removed all the same).
        """
        with self.system._lock:
            if not any(listener is other for other in self.listeners):
                raise TopologyError(f"listener {listener!r} is not registered on "
                                    f"address space {self.name!r}")
            errors: List[BaseException] = []
            self._remove_listener(listener, errors)
            raise_first(errors)

    def _remove_listener(self, listener: MemoryListener, errors: List[BaseException]) -> None:
        # Removed first, told afterwards: a listener that raises is gone all the same.
        self.system._listeners.remove(listener)
        self.listeners.remove(listener)
        view = isinstance(listener, ViewListener)
        if not view:
            self.system._plain_listeners -= 1
        assert self.flatview is not None
        with self.system._telling():
            if view:
                _tell(errors, cast(ViewListener, listener).view_changed, self, self.flatview,
                      None)
            else:
                listener_del_address_space(listener, self.flatview, errors)

    def explain(self, addr: int, size: Optional[int] = None,
                is_write: bool = False) -> "Explanation":
        """Why `addr` reaches the region it does in this space's current view:
        the flat range, dispatch section and walk, the chain from the root,
        and every other region covering it with why it lost (pymem/explain.py).
        With `size` (bytes), also whether an access of that size there (a
        write if `is_write`) fails, where and why, as a MemTxError would say.
        ArgumentTypeError / InvalidArgumentError for a non-int address or one
        outside [0, 2^64), or a size that is not a positive int within it.

        Raises:
            ArgumentTypeError: `addr` or `size` is not an int.
            InvalidArgumentError: `addr` is outside [0, 2^64), or the access is
                empty or runs past 2^64.
        """
        from .explain import explain

        return explain(self, addr, size, is_write)

    def __repr__(self) -> str:
        gone = " destroyed" if self.destroyed else ""
        return f"<AddressSpace {self.name!r} root={self.root.name!r}{gone}>"
