"""pymem: QEMU's memory API for Python, with a C dispatch core."""
from .dispatch import Dispatch, DispatchRange, Section, Translation
from .errors import (CapacityError, DumpParseError, PymemError, RangeOrderError,
                     RcuError, TopologyError)

__all__ = [
    "CapacityError", "Dispatch", "DispatchRange", "DumpParseError", "PymemError",
    "RangeOrderError", "RcuError", "Section", "TopologyError", "Translation",
]
