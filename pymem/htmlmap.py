"""A memory map drawn: `pymem map ... -o map.html`, one self-contained page.

`info mtree` is a wall of text; this draws it.  Each distinct FlatView (the
address spaces sharing it named together) becomes an address bar, lowest
address at the top, each flat range a block coloured by its region's kind.
Heights grow with the logarithm of the size and unassigned gaps are squeezed
to a thin hatched strip, so a 4 KiB device and 4 GiB of RAM are both visible.
The region tree stands beside the bar: clicking a node highlights the ranges
it answers or leads to (the regions on each range's chain from the root, so a
container or an alias highlights everything under it); hovering a block
shows what `asp.explain(addr)` says about its first address.

The page needs nothing at view time: CSS and JavaScript are inline and the
map is embedded as JSON in a `<script type="application/json">`, escaped so
that no region name can end the element (`</script>` in a name is text).
Opened with `#selftest` appended to its URL, the page exercises its own
click and hover handlers on load and writes what it saw into
`<pre id="pymem-selftest">` as JSON, which a headless browser's DOM dump
shows (tests/test_htmlmap.py).  With `#region=PATH` it opens with that
region selected and its first range explained (the README's screenshot).

Read-only; call with the tree quiet (no edit in another thread).

Thread safety:
    Reads the system's trees and current views without its writer lock:
    call with the system quiet (no edit or commit in another thread
    meanwhile).  The page and the data are new objects.
"""
from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Sequence

from .errors import ArgumentTypeError, InvalidArgumentError
from .find import region_path
from .region import reachable

if TYPE_CHECKING:
    from .address_space import AddressSpace, MemorySystem
    from .flatview import FlatView
    from .region import MemoryRegion

MAX_EXPLAINED = 4096
"""Per view, how many blocks at most carry an explanation; later blocks say
they were not explained."""

EXPLAIN_WORK = 500_000
"""Each explanation walks the whole tree, so a view of a tree of n regions
explains at most EXPLAIN_WORK // n blocks (and at least 64): a page of a
machine with 100,000 regions is still written in seconds."""

GAP_HEIGHT = 14
"""Pixels of an unassigned gap, whatever its size."""


def _height(size: int) -> int:
    """Pixels of a block of `size` bytes: 16 for 4 KiB and less, 3 more per
    doubling (4 GiB: 76, 2^64: 172)."""
    return 16 + 3 * max(0, size.bit_length() - 1 - 12)


def _chain_ids(explanation: Any) -> List[int]:
    return [link.region.id for link in explanation.chain]


def _containers(mr: "MemoryRegion") -> List[int]:
    out = [mr.id]
    while mr.container is not None:
        mr = mr.container
        out.append(mr.id)
    return out[::-1]


def _segments(space: "AddressSpace", view: "FlatView") -> List[Dict[str, Any]]:
    """The view's blocks and gaps, in address order."""
    out: List[Dict[str, Any]] = []
    regions = sum(1 for _ in reachable(space.root))
    budget = [min(MAX_EXPLAINED, max(64, EXPLAIN_WORK // max(regions, 1)))]
    at = 0
    end_of_space = 1 << 64

    def gap(start: int, end: int) -> None:
        explanation = space.explain(start) if budget[0] > 0 else None
        budget[0] -= 1
        out.append({"r": None, "a": f"{start:#x}", "e": f"{end - 1:#x}",
                    "s": f"{end - start:#x}", "h": GAP_HEIGHT,
                    "x": (str(explanation) if explanation is not None else
                          f"{start:#x}-{end - 1:#x}: unassigned"),
                    "c": _chain_ids(explanation) if explanation is not None else []})

    for fr in view.ranges:
        if fr.addr > at:
            gap(at, fr.addr)
        explanation = space.explain(fr.addr) if budget[0] > 0 else None
        budget[0] -= 1
        # Unexplained: its containers at least (the aliases it came through
        # are known only to a walk).
        chain = (_chain_ids(explanation) if explanation is not None else
                 _containers(fr.region))
        if fr.region.id not in chain:
            chain.append(fr.region.id)
        flags = [n for n in ("readonly", "romd", "nonvolatile") if getattr(fr, n)]
        out.append({"r": fr.region.id, "a": f"{fr.addr:#x}", "e": f"{fr.end - 1:#x}",
                    "s": f"{fr.size:#x}", "o": f"{fr.offset_in_region:#x}", "f": flags,
                    "h": _height(fr.size),
                    "x": (str(explanation) if explanation is not None else
                          f"{fr.addr:#x}: not explained (too many blocks in this view to "
                          f"explain each; use pymem explain)"),
                    "c": chain})
        at = fr.end
    if view.ranges and at < end_of_space:
        gap(at, end_of_space)
    return out


def _top(mr: "MemoryRegion") -> "MemoryRegion":
    while mr.container is not None:
        mr = mr.container
    return mr


def _collect(tops: Iterable["MemoryRegion"], regions: Dict[int, Dict[str, Any]],
             memo: Dict[int, str]) -> List[int]:
    """Describe every region under `tops` (and the alias targets they lead
    to) into `regions`; the tree roots to draw: the tops, then the alias
    targets no tree drawn for this view holds."""
    roots: List[int] = []
    drawn = set()   # this view's: another view may draw the same regions again
    pending = list(tops)
    while pending:
        top = pending.pop(0)
        if top.id in drawn:
            continue
        roots.append(top.id)
        stack = [top]
        while stack:
            mr = stack.pop()
            if mr.id in drawn:
                continue
            drawn.add(mr.id)
            target = mr.alias
            regions[mr.id] = {
                "n": mr.name, "k": mr.kind, "p": region_path(mr, memo),
                "a": f"{mr.addr:#x}", "s": f"{mr.size:#x}", "pr": mr.priority,
                "en": mr.enabled, "ro": mr.readonly,
                "c": [sub.id for sub in mr.subregions],
                "t": target.id if target is not None else None,
                "o": f"{mr.alias_offset:#x}" if target is not None else None,
            }
            stack.extend(mr.subregions)
            if target is not None:
                pending.append(_top(target))
    return roots


def map_data(system: "MemorySystem",
             spaces: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """What the page draws, as JSON-ready data: one entry per distinct view
    (`spaces` names every address space on it) with its blocks and its tree
    roots, and every region drawn by id.  `spaces` limits the page to the
    address spaces of those names (InvalidArgumentError for a name the
    system does not have).

    Raises:
        ArgumentTypeError: `system` is not a MemorySystem.
        InvalidArgumentError: `spaces` names an address space the system does
            not have.
    """
    from .address_space import MemorySystem

    if not isinstance(system, MemorySystem):
        raise ArgumentTypeError(f"map: system must be a MemorySystem, not "
                                f"{type(system).__name__}")
    live = [asp for asp in system.address_spaces if not asp.destroyed]
    if spaces is not None:
        names = {asp.name for asp in live}
        unknown = [n for n in spaces if n not in names]
        if unknown:
            raise InvalidArgumentError(f"map: no address space named {unknown[0]!r} (have: "
                                       f"{', '.join(repr(n) for n in names)})")
        live = [asp for asp in live if asp.name in spaces]
    regions: Dict[int, Dict[str, Any]] = {}
    memo: Dict[int, str] = {}
    views: List[Dict[str, Any]] = []
    by_view: Dict[int, Dict[str, Any]] = {}
    for asp in live:
        view = asp.flatview
        assert view is not None
        entry = by_view.get(id(view))
        if entry is not None:
            entry["spaces"].append(asp.name)
            continue
        entry = {"spaces": [asp.name], "root": asp.root.name,
                 "segments": _segments(asp, view),
                 "trees": _collect([_top(asp.root)], regions, memo)}
        by_view[id(view)] = entry
        views.append(entry)
    return {"views": views, "regions": {str(k): v for k, v in regions.items()}}


def _json_for_script(data: Any) -> str:
    """JSON that is safe inside a <script> element: no '<', '>' or '&'
    (so no `</script>` or `<!--`), nor the two line separators old
    JavaScript parsers reject."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text


_CSS = """
body{font:13px/1.35 system-ui,sans-serif;margin:12px;color:#222;background:#fafafa}
h1{font-size:18px;margin:0 0 6px}h2{font-size:15px;margin:18px 0 6px}
.legend span{display:inline-block;padding:1px 6px;margin:0 4px 4px 0;border-radius:3px}
.row{display:flex;gap:18px;align-items:flex-start}
.bar{flex:0 0 430px;border:1px solid #888;background:#fff}
.seg{display:flex;align-items:center;gap:6px;border-bottom:1px solid #fff;
 font:11px ui-monospace,monospace;overflow:hidden;cursor:default;box-sizing:border-box}
.seg .ad{flex:0 0 128px;padding-left:4px;color:#333}
.seg .nm{flex:1;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;font-weight:600}
.seg .sz{flex:0 0 70px;text-align:right;padding-right:4px;color:#333}
.seg.gap,.gapkey{font-size:10px;color:#888;
 background:repeating-linear-gradient(45deg,#eee 0 4px,#ddd 4px 8px)}
.seg.hl{outline:3px solid #1e90ff;outline-offset:-3px;filter:brightness(1.15)}
.seg:hover{filter:brightness(0.9)}
.tree{flex:1;font:12px ui-monospace,monospace;max-height:80vh;overflow:auto;
 border:1px solid #ccc;background:#fff;padding:4px}
.tree ul{list-style:none;margin:0;padding-left:14px}.tree>ul{padding-left:0}
.node{cursor:pointer;padding:0 3px;border-radius:3px;white-space:nowrap}
.node:hover{background:#eef}.node.sel{background:#1e90ff;color:#fff}
.node.off{text-decoration:line-through;color:#999}
.kd{display:inline-block;width:9px;height:9px;margin-right:4px;border-radius:2px}
#explain{position:fixed;right:10px;bottom:10px;width:46%;max-height:45vh;overflow:auto;
 margin:0;padding:8px;background:#fffbe6;border:1px solid #d9c77a;
 font:11px ui-monospace,monospace;white-space:pre-wrap}
#status{color:#555;margin:4px 0}
.k-ram{background:#8fd18a}.k-rom{background:#f5b971}.k-rom_device{background:#f3d37a}
.k-ram_device{background:#c3e88d}.k-io{background:#f19a9a}.k-iommu{background:#9aa8f1}
.k-alias{background:#c9a3e6}.k-container{background:#cfd6da}
"""

_JS = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("pymem-data").textContent);
  var explain = document.getElementById("explain");
  var status = document.getElementById("status");
  var byRegion = {};   // region id -> the blocks whose chain holds it
  var nodesOf = {};    // region id -> its tree nodes
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function push(map, key, value) { (map[key] = map[key] || []).push(value); }
  function show(text) { explain.textContent = text; }
  var selected = null;
  function highlight(id) {
    var old = document.querySelectorAll(".seg.hl, .node.sel"), i;
    for (i = 0; i < old.length; i++) old[i].classList.remove("hl", "sel");
    selected = id;
    var segs = byRegion[id] || [], nodes = nodesOf[id] || [];
    for (i = 0; i < segs.length; i++) segs[i].classList.add("hl");
    for (i = 0; i < nodes.length; i++) nodes[i].classList.add("sel");
    var r = data.regions[id];
    status.textContent = r.p + ": " + segs.length + " flat range" +
      (segs.length === 1 ? "" : "s") + " highlighted";
    if (segs.length) segs[0].scrollIntoView({block: "nearest"});
  }
  function label(r) {
    var s = r.n + " (" + r.k + ") @" + r.a + " size " + r.s;
    if (r.pr) s += " prio " + r.pr;
    if (r.t !== null) s += " \u2192 " + data.regions[r.t].n + " +" + r.o;
    if (!r.en) s += " [disabled]";
    return s;
  }
  function tree(rootId) {
    var top = el("ul"), stack = [[rootId, top]];
    while (stack.length) {
      var item = stack.pop(), r = data.regions[item[0]], li = el("li");
      var node = el("span", "node" + (r.en ? "" : " off"));
      node.appendChild(el("span", "kd k-" + r.k));
      node.appendChild(document.createTextNode(label(r)));
      node.dataset.region = item[0];
      node.title = r.p;
      node.addEventListener("click", highlight.bind(null, String(item[0])));
      push(nodesOf, item[0], node);
      li.appendChild(node);
      item[1].appendChild(li);
      if (r.c.length) {
        var ul = el("ul");
        li.appendChild(ul);
        for (var i = r.c.length - 1; i >= 0; i--) stack.push([r.c[i], ul]);
      }
    }
    return top;
  }
  var main = document.getElementById("views");
  data.views.forEach(function (v) {
    var sec = el("section", "view");
    sec.appendChild(el("h2", "", "address space" + (v.spaces.length > 1 ? "s " : " ") +
      v.spaces.join(", ") + " (root " + v.root + ")"));
    var row = el("div", "row"), bar = el("div", "bar"), tr = el("div", "tree");
    v.segments.forEach(function (s) {
      var r = s.r === null ? null : data.regions[s.r];
      var d = el("div", "seg " + (r ? "k-" + r.k : "gap"));
      d.style.height = s.h + "px";
      d.appendChild(el("span", "ad", s.a));
      d.appendChild(el("span", "nm", r ? r.n + (s.f.length ? " (" + s.f.join(", ") + ")" : "")
                                       : "unassigned"));
      d.appendChild(el("span", "sz", s.s));
      d.title = s.a + "-" + s.e;
      d.addEventListener("mouseenter", show.bind(null, s.x));
      s.c.forEach(function (id) { push(byRegion, id, d); });
      bar.appendChild(d);
    });
    if (!v.segments.length) bar.appendChild(el("div", "seg gap", "(nothing mapped)"));
    v.trees.forEach(function (id) { tr.appendChild(tree(id)); });
    row.appendChild(bar);
    row.appendChild(tr);
    sec.appendChild(row);
    main.appendChild(sec);
  });

  // #region=PATH: start with that region selected and its first range explained.
  if (location.hash.indexOf("#region=") === 0) {
    var want = decodeURIComponent(location.hash.slice(8));
    for (var key in data.regions) {
      if (data.regions[key].p === want) {
        highlight(key);
        var first = (byRegion[key] || [])[0];
        if (first) first.dispatchEvent(new MouseEvent("mouseenter"));
        break;
      }
    }
  }

  if (location.hash === "#selftest") {
    var res = {errors: window.__pymemErrors};
    res.views = document.querySelectorAll(".view").length;
    res.bars = document.querySelectorAll(".bar").length;
    res.segments = document.querySelectorAll(".seg").length;
    res.nodes = document.querySelectorAll(".node").length;
    var nodes = document.querySelectorAll(".node"), pick = null, i;
    for (i = 0; i < nodes.length && !pick; i++)
      if ((byRegion[nodes[i].dataset.region] || []).length) pick = nodes[i];
    if (pick) {
      pick.dispatchEvent(new MouseEvent("click", {bubbles: true}));
      res.clicked = pick.dataset.region;
      res.highlighted = document.querySelectorAll(".seg.hl").length;
      res.selected = document.querySelectorAll(".node.sel").length;
      res.status = status.textContent;
    }
    var seg = document.querySelector(".seg:not(.gap)");
    if (seg) {
      seg.dispatchEvent(new MouseEvent("mouseenter"));
      res.hovered = seg.querySelector(".ad").textContent;
      res.explain = explain.textContent;
    }
    if (res.nodes <= 500) {
      res.names = [];
      for (i = 0; i < nodes.length; i++) res.names.push(data.regions[nodes[i].dataset.region].n);
    }
    document.getElementById("pymem-selftest").textContent = JSON.stringify(res);
  }
})();
"""

_KINDS = ("ram", "rom", "rom_device", "ram_device", "io", "iommu", "alias", "container")


def render_html(system: "MemorySystem", spaces: Optional[Sequence[str]] = None,
                title: str = "memory map") -> str:
    """The page for `system` (see the module docstring) as a str; `spaces`
    limits it to the address spaces of those names.

    Raises:
        ArgumentTypeError: `system` is not a MemorySystem.
        InvalidArgumentError: `spaces` names an address space the system does
            not have.
    """
    data = map_data(system, spaces)
    legend = "".join(f'<span class="k-{k}">{k}</span>' for k in _KINDS)
    legend += '<span class="gapkey">unassigned</span>'
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>pymem: {html.escape(title)}</title>
<script>window.__pymemErrors=[];window.addEventListener("error",function(e){{
window.__pymemErrors.push(String(e.message));}});</script>
<style>{_CSS}</style></head>
<body>
<h1>pymem: {html.escape(title)}</h1>
<div class="legend">{legend}</div>
<div>Click a region in a tree to highlight its flat ranges; hover a block for why its
address reaches that region.</div>
<div id="status"></div>
<main id="views"></main>
<pre id="explain">Hover an address block.</pre>
<pre id="pymem-selftest" hidden></pre>
<script type="application/json" id="pymem-data">{_json_for_script(data)}</script>
<script>{_JS}</script>
</body></html>
"""


__all__ = ["EXPLAIN_WORK", "GAP_HEIGHT", "MAX_EXPLAINED", "map_data", "render_html"]
