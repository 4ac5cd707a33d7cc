"""RegionOwner: what a region asks of the system it belongs to.

A region knows no MemorySystem, no address space and no flat view.  When a
system adopts a region it registers itself as the region's owner
(`region._system = system`); from then on an edit of the region takes the
owner's lock, checks that the owner may be edited now, opens a transaction
on it, and tells it "something changed, render again" by setting
`_update_pending`.  That is the whole interface, declared here so that the
region layer depends on it and not on pymem/address_space.py, which
implements it (mypy checks that MemorySystem fits).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, ContextManager, Protocol

if TYPE_CHECKING:
    from .tree import MemoryRegion


class RegionOwner(Protocol):
    """The system a region belongs to, as the region's edits use it.

    Thread safety:
        The owner's lock serialises every edit of its regions and every
        commit; `_check_editable` refuses edits made from listeners.
    """

    _update_pending: bool
    """Set by an edit that changes what rendering makes of the tree: the
    owner's next commit (at the end of the transaction) renders again."""

    # Read (never written) by the C base's add_subregion (csrc/ext/regionobj.c),
    # which adds into the owner only inside a transaction the thread holds
    # and while no listener is being told; plain attributes, or it leaves
    # the add to the Python path.
    _depth: int
    """How many transactions are open (under `_lock`)."""

    _notifying: int
    """Non-zero while listeners are being told of a change (edits refused)."""

    @property
    def _lock(self) -> ContextManager[Any]:
        """The owner's lock: held while an edit is tried and checked."""

    def _check_editable(self, what: str) -> None:
        """Raise (naming `what`) if the owner cannot be edited now (in a commit)."""

    def transaction(self) -> ContextManager[Any]:
        """A transaction: edits inside it are committed once, when it ends.

        Raises:
            EditDuringCommitError: entered from a listener being told of a change.
        """

    def _adopt(self, region: "MemoryRegion") -> None:
        """Take `region` (and its subtree) into the owner, registering itself."""
