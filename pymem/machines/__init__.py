"""Bundled machine maps: real QEMU 7.2 dumps (`info mtree -D` + hints) by name.

`load("q35")` rebuilds the q35 machine as QEMU had it after booting its
firmware (PCI BARs, PAM and SMRAM programmed); `load("pc")` the i440FX pc
machine the same way (both `-m 128M`, from tests/fixtures/qemu/*-booted).
MMIO regions get harmless default ops (reads return 0, writes are ignored).

Thread safety:
    Any thread: each call reads the bundled files and builds a new, separate
    MemorySystem.
"""
from __future__ import annotations

import json
from importlib import resources
from typing import TYPE_CHECKING, List

from ..errors import InvalidArgumentError

if TYPE_CHECKING:
    from ..address_space import MemorySystem


def available() -> List[str]:
    """Names of the bundled machines.

    Raises nothing.
    """
    return sorted(p.name[: -len(".mtree-D.txt")] for p in resources.files(__name__).iterdir()
                  if p.name.endswith(".mtree-D.txt"))


def read(name: str, kind: str) -> str:
    """One file of a bundled machine: kind is "mtree-D.txt", "flat.txt" or "hints.json".

    Raises:
        InvalidArgumentError: no bundled machine is called `name`.
        FileNotFoundError: `kind` is not one of the three.
    """
    if name not in available():
        raise InvalidArgumentError(f"no bundled machine named {name!r} "
                                   f"(have: {', '.join(available())})")
    return resources.files(__name__).joinpath(f"{name}.{kind}").read_text()


def load(name: str = "q35") -> "MemorySystem":
    """The bundled machine `name` as a MemorySystem.

    Raises:
        InvalidArgumentError: no bundled machine is called `name`.
    """
    from ..qemu.mtree import load_mtree

    return load_mtree(read(name, "mtree-D.txt"), json.loads(read(name, "hints.json")))
