"""`pymem bench --plot FILE`: the lookup and commit-scaling results drawn.

The table `pymem bench` prints holds dozens of rows; the plot shows the two
questions most readers ask of it: how a lookup costs next to its peers (each
operation's implementations side by side, log scale, the bar's whisker the
min..max of the repeats), and how a full commit grows with the number of
regions (log-log, beside the n log n line through the smallest tree).

matplotlib is an optional dependency (the `plot` extra); without it the
plot raises PymemError saying how to install it, before any benchmark runs
(`require_matplotlib`).  Drawn off screen (the Agg backend); the file's
extension picks the format (.png, .svg, .pdf).

Thread safety:
    matplotlib's pyplot is not thread-safe: draw from one thread at a time
    (`pymem bench --plot` draws from the main thread).
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Dict, List, Tuple, Union

from .errors import InvalidArgumentError, PymemError

PYMEM_COLOUR = "#2e86de"
PEER_COLOUR = "#b2bec3"
_SCALING = re.compile(r"full commit, ([\d,]+) regions$")


def require_matplotlib() -> Any:
    """matplotlib's pyplot on the Agg backend; PymemError naming the extra
    when matplotlib is not installed.

    Raises:
        PymemError: matplotlib is not installed (the message names the extra).
    """
    try:
        import matplotlib
    except ImportError:
        raise PymemError("--plot needs matplotlib, which is not installed: "
                         "pip install 'pymem-qemu[plot]' (or pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _lookups(results: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    return [r for r in results
            if ("lookup" in r["operation"] or "translate" in r["operation"])]


def _scaling(results: List[Dict[str, Any]]) -> List[Tuple[int, float]]:
    points = []
    for r in results:
        found = _SCALING.match(r["operation"])
        if found and r["implementation"] == "pymem":
            points.append((int(found.group(1).replace(",", "")), float(r["ns_per_op"])))
    return sorted(points)


def plot_report(report: Dict[str, Any], path: Union[str, Path]) -> None:
    """Draw `report` (what `pymem bench --json` writes) into `path`.
    InvalidArgumentError for a report without results, or with neither
    lookups nor commit-scaling results; PymemError without matplotlib.

    Raises:
        InvalidArgumentError: the report has no list of results, or neither
            lookup nor commit-scaling results.
        PymemError: matplotlib is not installed.
        OSError: `path` cannot be written.
    """
    results = report.get("results") if isinstance(report, dict) else None
    if not isinstance(results, list) or not all(
            isinstance(r, dict) and {"operation", "implementation", "ns_per_op"} <= r.keys()
            for r in results):
        raise InvalidArgumentError("bench --plot: the report has no list of results "
                                   "(operation, implementation, ns_per_op)")
    lookups = _lookups(results)
    scaling = _scaling(results)
    if not lookups and not scaling:
        raise InvalidArgumentError("bench --plot: the report has no lookup and no "
                                   "commit-scaling results to draw")
    plt = require_matplotlib()
    rows = max(len(lookups), 4)
    fig, (ax_lookup, ax_commit) = plt.subplots(
        1, 2, figsize=(14, max(4.0, 0.22 * rows + 1.5)),
        gridspec_kw={"width_ratios": [3, 2]})
    try:
        title = f"pymem bench: {report.get('machine', '?')}, address space " \
                f"{report.get('address_space', '?')!r}, {report.get('repeats', '?')} repeats"
        fig.suptitle(title)
        _draw_lookups(ax_lookup, lookups)
        _draw_scaling(ax_commit, scaling)
        fig.tight_layout()
        fig.savefig(str(path), dpi=90, bbox_inches="tight")
    finally:
        plt.close(fig)


def _draw_lookups(ax: Any, lookups: List[Dict[str, Any]]) -> None:
    ax.set_title("lookups: ns per operation (log scale; whiskers min..max)")
    if not lookups:
        ax.text(0.5, 0.5, "no lookup results", ha="center", transform=ax.transAxes)
        return
    labels = [f"{r['operation']} | {r['implementation']}" for r in lookups]
    values = [float(r["ns_per_op"]) for r in lookups]
    low = [max(0.0, v - float(r.get("spread_ns", [v, v])[0])) for v, r in zip(values, lookups)]
    high = [max(0.0, float(r.get("spread_ns", [v, v])[1]) - v) for v, r in zip(values, lookups)]
    colours = [PYMEM_COLOUR if r["implementation"] == "pymem" else PEER_COLOUR
               for r in lookups]
    positions = list(range(len(lookups)))[::-1]
    ax.barh(positions, values, xerr=[low, high], color=colours, ecolor="#555", capsize=2)
    ax.set_yticks(positions)
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("ns per operation")
    ax.grid(axis="x", which="both", alpha=0.3)


def _draw_scaling(ax: Any, points: List[Tuple[int, float]]) -> None:
    ax.set_title("full commit vs regions in the tree")
    if not points:
        ax.text(0.5, 0.5, "no commit-scaling results", ha="center", transform=ax.transAxes)
        return
    ns = [n for n, _ in points]
    ms = [t / 1e6 for _, t in points]
    ax.plot(ns, ms, "o-", color=PYMEM_COLOUR, label="pymem full commit")
    n0, t0 = ns[0], ms[0]
    if len(ns) > 1 and n0 > 1:
        ref = [t0 * (n * math.log(n)) / (n0 * math.log(n0)) for n in ns]
        ax.plot(ns, ref, "--", color="#e17055", label="n log n from the smallest tree")
    for n, t in zip(ns, ms):
        ax.annotate(f"{t:.2f} ms", (n, t), textcoords="offset points", xytext=(4, -12),
                    fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("regions")
    ax.set_ylabel("ms per commit")
    ax.grid(which="both", alpha=0.3)
    ax.legend()


__all__ = ["plot_report", "require_matplotlib"]
