"""List the import cycles among pymem's modules (exit 1 if there is any).

Every import counts, lazy ones inside functions included; imports under
`if TYPE_CHECKING:` do not (they never run).  A package's `__init__` counts
as the module of that name.  The edges the layers contract in pyproject.toml
ignores (each with its reason there) are left out, so a cycle they close is
not reported twice.  Usage: python scripts/import_cycles.py
"""
from __future__ import annotations

import sys
import tomllib
from pathlib import Path
from typing import Dict, List, Set, Tuple

import grimp

ROOT = Path(__file__).resolve().parent.parent


def ignored_edges() -> Set[Tuple[str, str]]:
    """The `importer -> imported` pairs of the layers contract's ignore_imports."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    edges = set()
    for contract in config["contracts"]:
        if contract.get("id") == "layers":
            for line in contract.get("ignore_imports", []):
                importer, imported = (part.strip() for part in line.split("->"))
                edges.add((importer, imported))
    return edges


def graph() -> Dict[str, Set[str]]:
    g = grimp.build_graph("pymem", exclude_type_checking_imports=True)
    skip = ignored_edges()
    return {m: {i for i in g.find_modules_directly_imported_by(m)
                if i.startswith("pymem") and (m, i) not in skip}
            for m in g.modules}


def cycles(edges: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on: Set[str] = set()
    out: List[List[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges.get(v, ()):
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main() -> int:
    edges = graph()
    found = cycles(edges)
    for comp in found:
        print(f"cycle among {len(comp)} modules:")
        inside = set(comp)
        for m in comp:
            print(f"  {m} -> {', '.join(sorted(edges[m] & inside))}")
    if not found:
        print(f"no import cycle among {len(edges)} modules")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
