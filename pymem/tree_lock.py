"""TREE_LOCK: the lock every change to a region's C node and every render holds.

Below the region tree (pymem/region/), rendering (pymem/flatview.py) and the
dirty logs (pymem/dirty.py), which all take it; it knows nothing of them.
"""
from __future__ import annotations

import os
import threading

TREE_LOCK = threading.RLock()
"""Held for every change to a region's C node and for every render.  C
rendering runs without the GIL (cffi releases it), so without this lock a
tree edited in another thread, above all one outside any MemorySystem, could
be changed or freed under the walk.  Taken after a system's own lock, never
before it."""
# A fork while another thread renders would leave the child's lock held for
# ever: fork only between renders.
os.register_at_fork(before=TREE_LOCK.acquire, after_in_parent=TREE_LOCK.release,
                    after_in_child=TREE_LOCK.release)
