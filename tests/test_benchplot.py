"""`pymem bench --plot FILE`: the lookup and commit-scaling results drawn
(matplotlib, the optional `plot` extra); a clear error without it."""
from __future__ import annotations

import io
import json
import random
import struct
import sys

import pytest

from pymem import machines
from pymem.bench import lookup_cases, memory_space, run_cases, run_scaling
from pymem.cli import main
from pymem.errors import InvalidArgumentError

from pymem.benchplot import plot_report

from .optional import missing

try:
    import matplotlib  # noqa: F401
except ImportError:
    matplotlib = None


@pytest.fixture(autouse=True)
def _needs_matplotlib():
    if matplotlib is None:
        missing("matplotlib", "it is in the test extra: pip install -e '.[test]'")


@pytest.fixture(scope="module")
def report():
    """A report as `bench --json` writes it, from a small real run: the
    lookups of the bundled q35 and two commit-scaling points."""
    system = machines.load("q35")
    asp = memory_space(system)
    quiet = io.StringIO()
    results = run_cases(lookup_cases(asp, random.Random(1), 200, 2000), 1, quiet)
    results += run_scaling((100, 1000), 1, quiet)
    return {"machine": "q35", "address_space": asp.name, "repeats": 1,
            "results": [r.as_dict() for r in results], "goals": []}


def _png_size(path) -> tuple:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def test_plot_draws_a_png_of_the_lookups_and_the_commit_scaling(report, tmp_path):
    out = tmp_path / "bench.png"
    plot_report(report, out)
    width, height = _png_size(out)
    assert width > 800 and height > 300
    assert out.stat().st_size > 10_000   # drawn, not an empty canvas


def test_cli_plots_saved_results_without_running_the_benchmarks(report, tmp_path):
    saved = tmp_path / "bench.json"
    saved.write_text(json.dumps(report))
    out = tmp_path / "plot.svg"
    assert main(["bench", "--from-json", str(saved), "--plot", str(out)]) == 0
    assert out.read_text().lstrip().startswith(("<?xml", "<svg"))


def test_a_report_with_nothing_to_draw_is_refused(tmp_path):
    with pytest.raises(InvalidArgumentError, match="no list of results"):
        plot_report({"machine": "q35"}, tmp_path / "x.png")
    with pytest.raises(InvalidArgumentError, match="no lookup and no commit-scaling"):
        plot_report({"results": [{"operation": "ldl_le RAM", "implementation": "pymem",
                                  "ns_per_op": 10.0}]}, tmp_path / "x.png")


@pytest.mark.parametrize("argv, message", [
    (["--from-json", "{json}"], "--from-json goes with --plot"),
    (["--from-json", "{bad}", "--plot", "{png}"], "is not JSON"),
    (["--from-json", "{empty}", "--plot", "{png}"], "the report has no list of results"),
    (["--from-json", "{json}", "--plot", "/nonexistent-dir/x.png"], "cannot write"),
])
def test_cli_bad_input_exits_2_with_one_line(report, tmp_path, capsys, argv, message):
    files = {"json": tmp_path / "r.json", "bad": tmp_path / "bad.json",
             "empty": tmp_path / "empty.json", "png": tmp_path / "p.png"}
    files["json"].write_text(json.dumps(report))
    files["bad"].write_text("{not json")
    files["empty"].write_text("{}")
    argv = [a.format(**{k: str(v) for k, v in files.items()}) for a in argv]
    assert main(["bench"] + argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_without_matplotlib_the_error_names_the_extra_before_anything_runs(
        tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)   # import fails
    out = tmp_path / "p.png"
    assert main(["bench", "--quick", "--plot", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'pymem-qemu[plot]'" in err
    assert "[1/" not in err and not out.exists()   # no benchmark ran
