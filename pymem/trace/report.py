"""A replay report as text, as `pymem replay` prints it: text only, no machine.

Thread safety:
    A pure function of the report: any thread.
"""
from __future__ import annotations

from typing import List

from .format import Access
from .replay import Divergence, ReplayReport


def _line_of(access: Access) -> str:
    return f" (line {access.line})" if access.line else ""


def format_report(report: ReplayReport, path: str = "", show_all: bool = False) -> str:
    """The replay report as `pymem replay` prints it.

    Raises nothing.
    """
    out: List[str] = []
    for lineno, problem in report.problems:
        out.append(f"{path}:{lineno}: {problem} (skipped)")
    name = f" from {path}" if path else ""
    count = (f"{report.replayed}" if report.replayed == report.total
             else f"{report.replayed} of {report.total}")
    out.append(f"replayed {count} accesses{name}: {report.reads} reads, "
               f"{report.writes} writes; {report.mmio} device, {report.memory} RAM/ROM")
    if report.source == "qemu":
        out.append(f"skipped {report.skipped} accesses made before the log's last "
                   f"topology change (last flatview_new)")
        routed = report.replayed - sum(d.kind == "route" for d in report.divergences)
        alias = f" ({report.via_alias} only through an alias)" if report.via_alias else ""
        out.append(f"routed {routed} of {report.replayed} to a region of the traced name "
                   f"at the traced address{alias}")
    if report.truncated:
        out.append("the trace is truncated: replayed up to its last complete line")
    for note in report.notes[:5]:
        out.append(f"note: {note}")
    if len(report.notes) > 5:
        out.append(f"note: {len(report.notes) - 5} more commits with a different view")
    if report.identical:
        out.append("identical")
        return "\n".join(out) + "\n"
    first = report.divergences[0]
    stopped = report.replayed < report.total
    out.append("first divergence (the replay stopped there; --all goes on):" if stopped
               else "first divergence:")
    out.extend(_format_divergence(first))
    if show_all:
        out.append(f"{len(report.divergences)} divergences:")
        for d in report.divergences:
            out.append(f"  #{d.number}{_line_of(d.access)} {d.kind}: expected {d.expected}, "
                       f"got {d.got}")
    return "\n".join(out) + "\n"


def _format_divergence(d: Divergence) -> List[str]:
    if d.commit is None:
        after = ", before any commit"
    else:
        where = f" (line {d.commit.line})" if d.commit.line else ""
        after = f", after commit #{d.commit.seq}{where}"
    out = [f"  access #{d.number}{_line_of(d.access)}{after}:"]
    for i, c in enumerate(d.context):
        out.append(f"      #{d.number - len(d.context) + i}{_line_of(c)} {c.describe()}")
    out.append(f"   >  #{d.number}{_line_of(d.access)} {d.access.describe()}")
    out.append(f"    {d.kind}: expected {d.expected}")
    out.append(f"    {' ' * len(d.kind)}       got {d.got}")
    return out
