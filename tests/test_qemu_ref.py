"""benchmarks/qemu_ref: QEMU's lookup algorithm (and the floors) that the
benchmarks time beside pymem answer pymem's section on every address."""
from __future__ import annotations

import json
import random
from array import array

import pytest

from pymem import machines
from pymem.bench import qemu_reference, sample_addresses, subpage_addresses, synthetic_system
from pymem.qemu.mtree import load_mtree

from .qemu_fixtures import FIXTURES

ref = qemu_reference()
pytestmark = pytest.mark.skipif(ref is None, reason="benchmarks/qemu_ref could not be built")


def views():
    q35 = machines.load("q35")
    pc = load_mtree((FIXTURES / "x86_64-pc-booted" / "mtree-D.txt").read_text(),
                    json.loads((FIXTURES / "x86_64-pc-booted" / "hints.json").read_text()))
    virt = load_mtree((FIXTURES / "aarch64-virt-reset" / "mtree-D.txt").read_text(),
                      json.loads((FIXTURES / "aarch64-virt-reset" / "hints.json").read_text()))
    out = [(f"q35 {a.name}", a.flatview) for a in q35.address_spaces if a.flatview.ranges]
    out += [(f"pc {a.name}", a.flatview) for a in pc.address_spaces[:2]]
    out += [(f"virt {a.name}", a.flatview) for a in virt.address_spaces[:1]]
    out.append(("synthetic 1k", synthetic_system(1_000).address_spaces[0].flatview))
    return out


def addresses(view, rng):
    """Inside the layout, inside sub-pages, anywhere, and around every boundary."""
    d = view.dispatch
    out = sample_addresses(view.ranges, 3000, "random", rng)
    out += subpage_addresses(d, view.ranges, 3000, rng)
    out += [rng.randrange(1 << 64) for _ in range(500)] + [rng.randrange(1 << 32) for _ in range(500)]
    for s in d.sections():
        out += [x for x in (s.start - 1, s.start, s.start + s.size - 1, s.start + s.size)
                if 0 <= x < 1 << 64]
    rng.shuffle(out)
    return array("Q", out)


@pytest.mark.parametrize("name,view", views(), ids=lambda v: v if isinstance(v, str) else "")
def test_qemus_lookup_and_the_floors_answer_pymems_sections(name, view):
    d = view.dispatch
    qemu = ref.QemuLookup(d)
    addrs = addresses(view, random.Random(name))
    want = d.lookup_many(addrs)
    assert list(want) == [d.lookup(a) for a in addrs]
    for mode in ("mru", "walk", "call"):
        out = array("I", bytes(4 * len(addrs)))
        qemu.runner(mode, addrs, out)()
        assert out == want, f"QEMU {mode} on {name}"
    bounds, secs = ref.resolved_bounds(d)
    for kind in ("bsearch", "avx2"):
        out = array("I", bytes(4 * len(addrs)))
        run = ref.floor_runner(kind, bounds, secs, addrs, out)
        if run is not None:
            run()
            assert out == want, f"floor {kind} on {name}"


def test_the_qemu_transcription_has_a_sub_page_table_per_pymem_sub_page():
    view = machines.load("q35").address_spaces[0].flatview
    q = ref.QemuLookup(view.dispatch)
    assert q.subpages == sum(s.is_subpage for s in view.dispatch.sections()) > 0
    assert q.sections == view.dispatch.section_count()
