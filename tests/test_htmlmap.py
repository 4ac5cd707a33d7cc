"""`pymem map -o map.html`: one self-contained page drawing each view as an
address bar beside its region tree; checked as data, as text, and loaded in
a real browser (Debian's chromium, headless) that runs the page's own
click-and-hover self-test."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from pymem import MemoryRegion, MemoryRegionOps, MemorySystem, machines
from pymem.cli import main
from pymem.errors import ArgumentTypeError, InvalidArgumentError
from pymem.htmlmap import GAP_HEIGHT, map_data, render_html

from .optional import missing

HOSTILE = "</script><script>document.title='pwned'</script><!--&amp;\u2028"


def _ops() -> MemoryRegionOps:
    return MemoryRegionOps(lambda o, s: 0, lambda o, v, s: None)


def _board() -> MemorySystem:
    """4 GiB of RAM and a 4 KiB device far above it, a device with a
    hostile name, and an alias."""
    root = MemoryRegion.container("board", 1 << 64)
    ram = MemoryRegion.container("ram", 1 << 32)
    root.add_subregion(0, ram)
    root.add_subregion(0x1_0000_0000_0000, MemoryRegion.io("uart", 0x1000, _ops()))
    root.add_subregion(0x2_0000_0000_0000, MemoryRegion.io(HOSTILE, 0x100, _ops()))
    low = MemoryRegion.ram("low", 0x10000)
    ram.add_subregion(0, low)
    root.add_subregion(0x3_0000_0000_0000, MemoryRegion.alias("low-alias", low, 0, 0x1000))
    system = MemorySystem()
    system.address_space(root, "cpu")
    return system


def _page_data(page: str) -> dict:
    found = re.search(r'<script type="application/json" id="pymem-data">(.*?)</script>',
                      page, re.S)
    assert found is not None
    return json.loads(found.group(1))


def test_a_4k_device_and_4g_of_ram_are_both_visible_and_gaps_are_squeezed():
    # A 4 GiB device stands in for 4 GiB of RAM (no 4 GiB buffer needed).
    mmio_system = MemorySystem()
    big = MemoryRegion.container("board", 1 << 64)
    big.add_subregion(0, MemoryRegion.io("ram-like", 1 << 32, _ops()))
    big.add_subregion(0xfe000000_0000, MemoryRegion.io("dev", 0x1000, _ops()))
    mmio_system.address_space(big, "cpu")
    segments = map_data(mmio_system)["views"][0]["segments"]
    heights = {s["a"]: (s["h"], s["r"] is None) for s in segments}
    assert heights["0x0"] == (76, False)              # 4 GiB
    assert heights["0xfe0000000000"] == (16, False)    # 4 KiB
    # The gaps between and after them, terabytes wide, are thin strips.
    assert heights["0x100000000"] == (GAP_HEIGHT, True)
    assert heights["0xfe0000001000"] == (GAP_HEIGHT, True)
    assert sum(h for h, _ in heights.values()) < 76 + 16 + 3 * GAP_HEIGHT


def test_each_block_carries_the_explanation_and_the_chain_of_its_first_address():
    system = machines.load("q35")
    data = map_data(system, ["memory"])
    (view,) = data["views"]
    assert view["spaces"] == ["memory"]
    ahci = next(s for s in view["segments"] if s["a"] == "0xfebff000")
    memory = next(a for a in system.address_spaces if a.name == "memory")
    explanation = memory.explain(0xfebff000)
    assert ahci["x"] == str(explanation)
    assert ahci["c"] == [link.region.id for link in explanation.chain]
    assert [data["regions"][str(i)]["p"] for i in ahci["c"]] == [
        "system", "system/pci", "system/pci/ahci"]


def test_views_shared_by_several_spaces_are_drawn_once_and_naming_an_unknown_space_fails():
    data = map_data(machines.load("q35"))
    assert [v["spaces"] for v in data["views"]] == [
        ["I/O"], ["memory", "cpu-memory-0", "ich9-ahci"], ["cpu-smm-0"],
        ["mch", "ICH9-LPC", "ICH9-SMB"]]
    with pytest.raises(InvalidArgumentError, match="no address space named 'nope'"):
        map_data(machines.load("q35"), ["nope"])
    with pytest.raises(ArgumentTypeError, match="must be a MemorySystem"):
        map_data("q35")  # type: ignore[arg-type]


def test_a_name_that_closes_the_script_element_stays_text():
    page = render_html(_board())
    # One closing tag per real script element: the name's is escaped.
    assert page.count("</script>") == 3
    assert "\u2028" not in page
    names = [r["n"] for r in _page_data(page)["regions"].values()]
    assert HOSTILE in names


def test_cli_writes_one_self_contained_page(tmp_path, capsys):
    out = tmp_path / "map.html"
    assert main(["map", "--as", "memory", "-o", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    # Nothing is fetched at view time: no external script, style, image or font.
    assert not re.search(r"""(src|href)\s*=|@import|url\(|https?://""", page)
    assert main(["map", "--machine", "q35"]) == 0
    assert capsys.readouterr().out.startswith("<!DOCTYPE html>")


@pytest.mark.parametrize("argv, message", [
    (["--as", "nope"], "no address space named 'nope'"),
    (["-o", "/nonexistent-dir/map.html"], "cannot write /nonexistent-dir/map.html"),
    (["--machine", "nope"], "no bundled machine named 'nope'"),
])
def test_cli_bad_input_exits_2_with_one_line(capsys, argv, message):
    assert main(["map"] + argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("pymem map: ") and message in err


# ------------------------------------------------------------ in a browser

def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        missing("chromium", "apt-get install chromium")
    return found


def _selftest(page: Path, tmp_path: Path) -> tuple:
    """Load `page` headless with #selftest; the page's report and chromium's
    stderr.  The browser does not inherit a sanitizer runtime preloaded
    into this Python (scripts/sanitize.sh)."""
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    run = subprocess.run(
        [_chromium(), "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
         f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=5000", "--dump-dom", page.as_uri() + "#selftest"],
        capture_output=True, text=True, timeout=180, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    found = re.search(r'<pre id="pymem-selftest"[^>]*>(.*?)</pre>', run.stdout, re.S)
    assert found is not None and found.group(1), "the page's self-test did not run"
    import html

    return json.loads(html.unescape(found.group(1))), run.stderr


def test_in_chromium_the_page_loads_without_errors_and_click_and_hover_work(tmp_path):
    _chromium()
    system = machines.load("q35")
    page = tmp_path / "q35.html"
    assert main(["map", "-o", str(page)]) == 0
    data = _page_data(page.read_text(encoding="utf-8"))
    report, stderr = _selftest(page, tmp_path)
    assert report["errors"] == []
    assert "Uncaught" not in stderr
    assert report["views"] == report["bars"] == len(data["views"]) == len(
        {id(a.flatview) for a in system.address_spaces})
    # A block per range and gap; a view with nothing mapped shows one saying so.
    assert report["segments"] == sum(len(v["segments"]) or 1 for v in data["views"])

    def drawn(view: dict) -> int:   # every region of each tree drawn for the view
        count, stack = 0, list(view["trees"])
        while stack:
            count += 1
            stack.extend(data["regions"][str(stack.pop())]["c"])
        return count

    assert report["nodes"] == sum(drawn(v) for v in data["views"])
    # The click selected the region's nodes and highlighted every block whose
    # chain from the root passes through it.
    clicked = int(report["clicked"])
    assert report["highlighted"] == sum(clicked in s["c"] for v in data["views"]
                                        for s in v["segments"]) > 0
    assert report["selected"] >= 1
    assert report["status"].startswith(data["regions"][str(clicked)]["p"] + ": ")
    # Hovering the first block shows what explain says of its address.
    first = next(s for s in data["views"][0]["segments"] if s["r"] is not None)
    assert report["hovered"] == first["a"]
    assert report["explain"] == first["x"]
    space = next(a for a in system.address_spaces if a.name == data["views"][0]["spaces"][0])
    assert report["explain"] == str(space.explain(int(first["a"], 16)))


def test_in_chromium_a_hostile_region_name_is_shown_as_text(tmp_path):
    _chromium()
    page = tmp_path / "board.html"
    page.write_text(render_html(_board()), encoding="utf-8")
    report, stderr = _selftest(page, tmp_path)
    assert report["errors"] == [] and "Uncaught" not in stderr
    assert HOSTILE in report["names"]
    assert report["views"] == 1 and report["highlighted"] >= 1


def test_past_the_explanation_budget_blocks_say_so_and_still_light_up_with_their_containers(
        monkeypatch):
    import pymem.htmlmap

    monkeypatch.setattr(pymem.htmlmap, "MAX_EXPLAINED", 1)
    data = map_data(machines.load("q35"), ["memory"])
    explained, *rest = [s for s in data["views"][0]["segments"] if s["r"] is not None]
    assert "answered by:" in explained["x"]
    ahci = next(s for s in rest if s["a"] == "0xfebff000")
    assert ahci["x"].startswith("0xfebff000: not explained")
    assert [data["regions"][str(i)]["p"] for i in ahci["c"]] == [
        "system", "system/pci", "system/pci/ahci"]
