"""The C dispatch against the pure-Python model, and its handling of bad input."""
from __future__ import annotations

from array import array

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pymem import CapacityError, Dispatch, DispatchRange, RangeOrderError, TopologyError
from pymem.dispatch import ENTRY_LIMIT
from pymem.errors import ArgumentTypeError

from .model import SPACE, DispatchModel


@st.composite
def flat_views(draw, min_ranges=0, max_ranges=24):
    """(page_bits, ranges): sorted, disjoint ranges of every scale, up to all of 2^64."""
    page_bits = draw(st.integers(10, 16))
    ps = 1 << page_bits
    scale = st.one_of(
        st.integers(1, 3),                                   # single bytes and slivers
        st.integers(1, 2 * ps),                              # sub-page and around a page
        st.integers(1, 64).map(lambda n: n * ps),            # whole pages
        st.integers(1, 1 << 44),                             # large, unaligned
        st.integers(1, 4).map(lambda n: n << (page_bits + 9)),  # level-1 leaves
    )
    gap = st.one_of(st.just(0), scale)
    ranges = []
    addr = draw(st.one_of(st.just(0), scale))
    for _ in range(draw(st.integers(min_ranges, max_ranges))):
        size = draw(scale)
        if addr + size > SPACE:
            break
        ranges.append((addr, size, draw(st.integers(0, 1 << 32))))
        addr += size + draw(gap)
        if addr >= SPACE:
            break
    if draw(st.booleans()) and addr < SPACE:
        ranges.append((addr, SPACE - addr, 0))               # a range ending at 2^64
    return page_bits, ranges


def build(page_bits, ranges):
    return Dispatch.build([DispatchRange(s, n, o, i) for i, (s, n, o) in enumerate(ranges)],
                          page_bits)


def probes(page_bits, ranges, data):
    ps = 1 << page_bits
    out = {0, SPACE - 1}
    for start, size, _ in ranges:
        last = start + size - 1
        for a in (start - 1, start, start + 1, last - 1, last, last + 1,
                  start - start % ps, last - last % ps + ps - 1):
            if 0 <= a < SPACE:
                out.add(a)
    out.update(data.draw(st.lists(st.integers(0, SPACE - 1), max_size=20)))
    return sorted(out)


@given(flat_views(), st.data())
def test_every_address_resolves_to_the_models_section(view, data):
    page_bits, ranges = view
    d, model = build(page_bits, ranges), DispatchModel(ranges, page_bits)
    assert d.section_count() == len(model.sections)
    for addr in probes(page_bits, ranges, data):
        assert d.lookup(addr) == model.lookup(addr), hex(addr)


def page_level_section(sections, addr):
    """What QEMU's phys_page_find answers for addr, the section its lookup
    keeps as the MRU: the sub-page of addr's page, else the section covering
    addr, else 0 (unassigned)."""
    for s in sorted(sections[1:], key=lambda s: not s.is_subpage):
        if s.start <= addr < s.start + s.size:
            return s.index
    return 0


@given(st.one_of(flat_views(), flat_views(min_ranges=40, max_ranges=60)), st.data())
def test_every_lookup_leaves_qemus_page_level_section_as_the_mru(view, data):
    # Small views resolve an MRU miss by a search over their boundaries
    # instead of the radix walk (comparing four at once with AVX2 up to 64
    # boundaries, a binary search up to 256: the second strategy's views);
    # the answer and the MRU they store must still be the walk's.
    page_bits, ranges = view
    d, model = build(page_bits, ranges), DispatchModel(ranges, page_bits)
    sections = d.sections()
    addrs = probes(page_bits, ranges, data)
    data.draw(st.randoms()).shuffle(addrs)
    for addr in addrs:
        assert d.lookup(addr) == model.lookup(addr), hex(addr)
        assert d.mru == page_level_section(sections, addr), hex(addr)


def test_q35s_views_keep_qemus_mru_on_every_boundary():
    from pymem import machines

    for asp in machines.load("q35").address_spaces:
        d = asp.flatview.dispatch
        sections = d.sections()
        addrs = [x for s in sections for x in (s.start - 1, s.start, s.start + s.size - 1,
                                                 s.start + s.size) if 0 <= x < SPACE]
        for addr in addrs[::-1] + addrs:
            assert d.lookup(addr) == d.lookup_many(array("Q", [addr]))[0]
            assert d.mru == page_level_section(sections, addr), (asp.name, hex(addr))


@given(flat_views(), st.data())
def test_batched_lookup_matches_single_lookups(view, data):
    page_bits, ranges = view
    d, model = build(page_bits, ranges), DispatchModel(ranges, page_bits)
    addrs = probes(page_bits, ranges, data)
    data.draw(st.randoms()).shuffle(addrs)
    got = d.lookup_many(array("Q", addrs))
    assert list(got) == [model.lookup(a) for a in addrs]


@settings(max_examples=25)
@given(flat_views(min_ranges=150, max_ranges=300), st.data())
def test_batched_lookup_of_a_large_view_walks_the_radix_tree_to_the_models_sections(view, data):
    # Small views answer batches from a boundary table; past 256 boundaries
    # the batch walks the radix tree, 16 addresses at a time.
    page_bits, ranges = view
    d, model = build(page_bits, ranges), DispatchModel(ranges, page_bits)
    addrs = probes(page_bits, ranges, data)
    data.draw(st.randoms()).shuffle(addrs)
    assert list(d.lookup_many(array("Q", addrs))) == [model.lookup(a) for a in addrs]


@given(flat_views(), st.data())
def test_translate_never_crosses_a_section_end(view, data):
    page_bits, ranges = view
    d, model = build(page_bits, ranges), DispatchModel(ranges, page_bits)
    for addr in probes(page_bits, ranges, data):
        length = data.draw(st.integers(1, 1 << 20))
        t = d.translate(addr, length)
        assert tuple(t) == model.translate(addr, length)
        section = d.section(t.section)
        assert addr + t.length - 1 <= section.last


@given(flat_views())
def test_sections_table_matches_the_models_numbering(view):
    page_bits, ranges = view
    d, model = build(page_bits, ranges), DispatchModel(ranges, page_bits)
    assert [(s.start, s.last) for s in d.sections()] == model.sections


def test_section_zero_is_unassigned_and_covers_everything():
    d = build(12, [(0x1000, 0x1000, 0)])
    s0 = d.section(0)
    assert (s0.start, s0.size, s0.is_subpage) == (0, SPACE, False)
    assert d.lookup(0) == 0 and d.lookup(SPACE - 1) == 0 and d.lookup(0x1800) == 1


def test_partial_page_gets_a_subpage_section_before_its_own():
    d = build(12, [(0x10, 0x10, 0), (0x20, 0x8, 0)])
    sections = d.sections()
    assert sections[1].is_subpage and (sections[1].start, sections[1].size) == (0, 0x1000)
    assert [(s.start, s.size) for s in sections[2:]] == [(0x10, 0x10), (0x20, 0x8)]
    assert d.subpage(1) == [(0x10, 0x1f, 2), (0x20, 0x27, 3)]
    assert [d.lookup(a) for a in (0xf, 0x10, 0x1f, 0x20, 0x27, 0x28)] == [0, 2, 2, 3, 3, 0]


def test_whole_space_range_is_one_section():
    d = build(12, [(0, SPACE, 0)])
    assert d.section(1).size == SPACE
    assert d.lookup(SPACE - 1) == 1 and d.translate(SPACE - 4, 100).length == 4


def test_aligned_block_becomes_a_leaf_at_a_higher_level():
    # 512 pages aligned to 2 MiB: one level-1 entry is a leaf, no level-0 node for it.
    d = build(12, [(0x200000, 0x200000, 0)])
    assert d.node_count() == d.levels - 1
    assert d.root == (1, 0)          # compacted all the way down to the leaf
    assert [d.lookup(a) for a in (0x1fffff, 0x200000, 0x3fffff, 0x400000)] == [0, 1, 1, 0]


def test_compaction_skips_levels_with_one_child():
    d = build(12, [(0x1000, 0x1000, 0)])
    ptr, skip = d.root
    assert skip > 1 and d.lookup(0x1000) == 1


def test_lookup_sets_the_mru_to_the_page_level_section():
    d = build(12, [(0x10, 0x10, 0), (0x2000, 0x1000, 0)])
    d.lookup(0x2010)
    assert d.mru == 3
    d.lookup(0x18)
    assert d.mru == 1      # the sub-page, as QEMU's mru_section


def test_lookup_many_fills_a_caller_buffer():
    d = build(12, [(0x1000, 0x1000, 0)])
    out = array("I", [7, 7, 7])
    assert d.lookup_many(array("Q", [0, 0x1000, 0x1fff]), out) is out
    assert list(out) == [0, 1, 1]


def test_lookup_many_rejects_a_short_output_buffer():
    d = build(12, [(0x1000, 0x1000, 0)])
    with pytest.raises(ValueError, match="2 needed"):
        d.lookup_many(array("Q", [0, 1]), array("I", [0]))


@pytest.mark.parametrize("page_bits", [9, 17, 0, 64])
def test_page_bits_out_of_range_is_refused(page_bits):
    with pytest.raises(TopologyError, match="page_bits must be between 10 and 16"):
        Dispatch.build([], page_bits)


def test_unsorted_ranges_are_refused_naming_the_range():
    with pytest.raises(RangeOrderError, match="range 1 at 0x1000"):
        build(12, [(0x2000, 0x1000, 0), (0x1000, 0x1000, 0)])


def test_overlapping_ranges_are_refused():
    with pytest.raises(RangeOrderError, match="range 1 at 0x1fff starts before the end"):
        build(12, [(0x1000, 0x1000, 0), (0x1fff, 0x10, 0)])


def test_a_range_after_one_ending_at_2_64_is_refused():
    with pytest.raises(RangeOrderError, match="ends at 2\\^64"):
        build(12, [(0, SPACE, 0), (0, 1, 0)])


@pytest.mark.parametrize("size", [0, -1])
def test_empty_sizes_are_refused(size):
    with pytest.raises(TopologyError, match="size must be positive"):
        build(12, [(0x1000, size, 0)])


def test_sizes_beyond_2_64_are_refused():
    with pytest.raises(TopologyError, match="runs past 2\\^64"):
        build(12, [(0x1000, SPACE, 0)])


def test_non_integer_fields_are_a_type_error():
    with pytest.raises(TypeError, match="start must be an int"):
        Dispatch.build([DispatchRange("0", 1)], 12)


def test_more_sections_than_allowed_is_a_capacity_error():
    ranges = [(i * 0x1000, 0x1000, 0) for i in range(10)]
    with pytest.raises(CapacityError, match="needs more than 5 sections"):
        Dispatch.build([DispatchRange(*r) for r in ranges], 12, max_sections=5)


def test_more_nodes_than_allowed_is_a_capacity_error():
    ranges = [(i << 40, 0x1000, 0) for i in range(10)]
    with pytest.raises(CapacityError, match="needs more than 8 nodes"):
        Dispatch.build([DispatchRange(*r) for r in ranges], 12, max_nodes=8)


def test_the_default_limits_are_what_an_entry_can_address():
    assert ENTRY_LIMIT == (1 << 26) - 1


def test_a_failed_build_raises_without_leaking_a_half_built_table():
    from pymem._native import ffi

    stats = ffi.new("pm_stats *")
    with pytest.raises(CapacityError):
        Dispatch.build([DispatchRange(i << 30, 1) for i in range(10)], 12, stats=stats,
                       max_sections=4)
    import gc

    gc.collect()
    assert stats.live_dispatches == 0


def test_freed_dispatches_are_counted_down():
    from pymem._native import ffi

    stats = ffi.new("pm_stats *")
    d = Dispatch.build([DispatchRange(0, 0x1000)], 12, stats=stats)
    assert stats.live_dispatches == 1
    d.close()
    assert stats.live_dispatches == 0


@pytest.mark.parametrize("page_bits", range(10, 17))
def test_every_page_size_resolves_pages_and_subpages(page_bits):
    ps = 1 << page_bits
    ranges = [(3, 5, 0), (ps, 3 * ps, 0x100), (5 * ps - 2, 4, 0)]
    d, model = build(page_bits, ranges), DispatchModel(ranges, page_bits)
    for addr in range(0, 6 * ps, max(1, ps // 64)):
        assert d.lookup(addr) == model.lookup(addr)


def test_a_closed_dispatch_says_so_on_every_call():
    d = build(12, [(0x1000, 0x1000, 0)])
    d.close()
    for call in (lambda: d.lookup(0), lambda: d.lookup_many(array("Q", [0])),
                 lambda: d.sections(), lambda: d.levels, lambda: d.node(0)):
        with pytest.raises(ValueError, match="closed"):
            call()


@pytest.mark.parametrize("addrs, out, message", [
    (array("I", [0x1000, 0x2000]), None, "addrs must hold 64-bit items, not 32-bit"),
    (array("Q", [0x1000]), array("Q", [0]), "out must hold 32-bit items, not 64-bit"),
])
def test_lookup_many_refuses_buffers_of_the_wrong_width(addrs, out, message):
    d = build(12, [(0x1000, 0x1000, 0)])
    with pytest.raises(TypeError, match=message):
        d.lookup_many(addrs, out)


@pytest.mark.parametrize("kwargs, message", [
    ({"max_sections": 0}, "max_sections must be between 1"),
    ({"hosts": []}, "hosts has 0 entries for 1 ranges"),
])
def test_build_options_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Dispatch.build([DispatchRange(0, 1)], 12, **kwargs)


def test_unchecked_ranges_out_of_order_are_still_refused_by_c():
    with pytest.raises(RangeOrderError, match="adding range 1 at 0x1000"):
        Dispatch.build([DispatchRange(0x2000, 0x1000), DispatchRange(0x1000, 0x1000)], 12,
                       checked=True)


def _every_byte_matches_the_model(page_bits, ranges, pages):
    d, model = build(page_bits, ranges), DispatchModel(ranges, page_bits)
    ps = 1 << page_bits
    addrs = [p * ps + off for p in pages for off in range(ps)]
    want = [model.lookup(a) for a in addrs]
    assert [d.lookup(a) for a in addrs] == want
    assert list(d.lookup_many(array("Q", addrs))) == want


def test_subpages_past_the_table_budget_resolve_as_those_with_tables():
    # 100 sub-pages of 4 KiB: the first 32 get QEMU's per-byte table of
    # section numbers (2 bytes a byte, 256 KiB of them), the rest keep the
    # search over their pieces.
    ranges = []
    for page in range(100):
        base = page * 0x1000
        ranges += [(base + 0x10, 0x10, 0), (base + 0x100, 0x3, 0), (base + 0x800, 0x800, 0)]
    _every_byte_matches_the_model(12, ranges, [0, 1, 30, 31, 32, 33, 99])


def test_subpages_of_many_pieces_resolve_every_byte():
    # 256 and 341 pieces in one page, a byte apart: one table entry each.
    ranges = [(4 * i, 3, 0) for i in range(256)]
    _every_byte_matches_the_model(10, ranges, [0])
    ranges = [(1024 + 3 * i, 2, 0) for i in range(300) if 3 * i + 2 <= 1024]
    _every_byte_matches_the_model(11, ranges, [0, 1])


def test_a_subpage_whose_sections_a_uint16_cannot_hold_is_searched():
    # 65,600 one-page ranges with gaps, then a sub-page: its pieces are
    # sections past 65,535, which a table of uint16_t cannot name.
    ranges = [(2 * i * 0x1000, 0x1000, 0) for i in range(65_600)]
    base = 2 * 65_600 * 0x1000
    ranges += [(base + 0x10, 0x10, 0), (base + 0x100, 0x3, 0), (base + 0x800, 0x800, 0)]
    d = build(12, ranges)
    assert d.section_count() > 65_536
    pieces = d.sections()[-3:]
    assert all(s.index > 0xFFFF for s in pieces)
    want = {s.start + k: s.index for s in pieces for k in range(s.size)}
    got = [d.lookup(base + off) for off in range(0x1000)]
    assert got == [want.get(base + off, 0) for off in range(0x1000)]
    assert list(d.lookup_many(array("Q", range(base, base + 0x1000)))) == got


def test_a_view_within_one_nodes_pages_walks_and_keeps_qemus_mru():
    # An I/O space of 64 KiB: the compacted root points at one last-level
    # node, so an MRU miss walks (one load) instead of searching.  The same
    # layout 4 GiB higher needs the search: both answer the model's section
    # and leave QEMU's page-level section as the MRU on every byte.
    layout = [(0x0, 0x8, 0), (0x20, 0x2, 0), (0x40, 0x20, 0), (0x60, 0x4, 0),
              (0x1000, 0x3000, 0), (0x5000, 0x10, 0), (0x5010, 0x7f0, 0), (0xc000, 0x4, 0),
              (0xcf8, 0x4, 0)]
    layout.sort()
    for shift in (0, 1 << 32):
        ranges = [(s + shift, n, o) for s, n, o in layout]
        d, model = build(12, ranges), DispatchModel(ranges, 12)
        sections = d.sections()
        for addr in range(shift, shift + 0x10000, 7):
            assert d.lookup(addr) == model.lookup(addr), hex(addr)
            assert d.mru == page_level_section(sections, addr), hex(addr)


@given(flat_views(), st.data())
def test_batched_lookup_of_runs_in_address_order_matches_the_model(view, data):
    # Sorted and repeated addresses: the batched paths' recent-interval
    # check answers most of them; every path, SIMD or not, must agree.
    page_bits, ranges = view
    d, model = build(page_bits, ranges), DispatchModel(ranges, page_bits)
    addrs = sorted(probes(page_bits, ranges, data) * 3)
    want = [model.lookup(a) for a in addrs]
    assert list(d.lookup_many(array("Q", addrs))) == want
    assert list(d.lookup_many(array("Q", addrs), simd=False)) == want


def _cpu_has_avx2():
    try:
        with open("/proc/cpuinfo") as f:
            return " avx2" in f.read()
    except OSError:
        return None


def test_a_small_view_batches_with_avx2_where_the_cpu_has_it_and_the_scalar_path_agrees():
    import random

    ranges = [(i * 0x10000 + (i % 3) * 0x80, 0x1000 + i * 0x100, 0) for i in range(10)]
    d, model = build(12, ranges), DispatchModel(ranges, 12)
    has = _cpu_has_avx2()
    if has is not None:
        assert d.batch_path == ("avx2" if has else "bounds")
    rng = random.Random(5)
    addrs = [rng.randrange(0xa0000) for _ in range(5000)] + list(range(0x7f0, 0x1200))
    want = [model.lookup(a) for a in addrs]
    assert list(d.lookup_many(array("Q", addrs))) == want
    assert list(d.lookup_many(array("Q", addrs), simd=False)) == want


@pytest.mark.parametrize("ranges", [
    [(i * 0x10000 + (i % 3) * 0x80, 0x1000 + i * 0x100, 0) for i in range(10)],   # avx2
    [(i * 0x200000 + 0x40, 0x1000, 0) for i in range(60)],                         # bounds
    [(i * 0x2000 + 0x40, 0x1000, 0) for i in range(60)],                           # one-level
    [(i * 0x2000 + 0x40, 0x1000, 0) for i in range(200)],    # one-level, too many to bound
], ids=["avx2-size", "bounds", "one-level", "one-level-unbounded"])
def test_batches_turning_between_random_and_local_streams_answer_the_model(ranges):
    # Random stretches stop the recent-interval check for several blocks and
    # local ones bring it back: stretches of every length around the block
    # sizes (64, and 4 blocks unchecked), and tails that fill no block.
    import random

    d, model = build(12, ranges), DispatchModel(ranges, 12)
    rng = random.Random(11)

    def anywhere():   # a random range, then a random byte of it: few repeats
        start, size, _ = rng.choice(ranges)
        return start + rng.randrange(size)
    addrs = []
    for length in (1, 3, 63, 64, 65, 255, 256, 257, 300, 700):
        addrs += [anywhere() for _ in range(length)]
        base = anywhere()
        addrs += [base + k for k in range(length)]
        start, size, _ = rng.choice(ranges)       # across a range's end, into the gap
        addrs += [start + size - length // 2 + k for k in range(length)]
    addrs.append(anywhere())
    want = [model.lookup(a) for a in addrs]
    for cut in (len(addrs), len(addrs) - 5, 130):
        assert list(d.lookup_many(array("Q", addrs[:cut]))) == want[:cut]
        assert list(d.lookup_many(array("Q", addrs[:cut]), simd=False)) == want[:cut]


def test_batch_paths_by_view_size():
    assert build(12, [(0, 0x1000, 0)]).batch_path in ("avx2", "bounds")
    # Spread over many radix nodes: a search up to 256 boundaries, the walk past.
    assert build(12, [(i * 0x200000, 0x1000, 0) for i in range(60)]).batch_path == "bounds"
    assert build(12, [(i * 0x200000, 0x1000, 0) for i in range(200)]).batch_path == "radix"
    # Within one last-level node's pages (2 MiB of 4 KiB pages), past the
    # AVX2 compare's size: the one-load walk, whatever the boundary count.
    assert build(12, [(i * 0x2000, 0x1000, 0) for i in range(60)]).batch_path == "one-level"
    assert build(12, [(i * 0x2000, 0x1000, 0) for i in range(200)]).batch_path == "one-level"


def test_a_view_within_one_nodes_pages_batches_by_the_one_load_walk():
    # An I/O space of 64 KiB: 60 sub-page pieces in page 0, whole pages, a
    # sub-page at 0x5000, a gap and a sliver; random, sorted and repeated
    # addresses (the recent-interval check) answer the model's sections.
    import random

    ranges = [(8 * i, 4, 0) for i in range(60)] + [(0x1000, 0x3000, 0), (0x5000, 0x10, 0),
                                                   (0x5010, 0x7f0, 0), (0xc000, 0x4, 0)]
    d, model = build(12, ranges), DispatchModel(ranges, 12)
    assert d.batch_path == "one-level"
    rng = random.Random(7)
    addrs = [rng.randrange(0x10000) for _ in range(4000)] + [rng.randrange(1 << 40) for _ in range(200)]
    addrs += sorted(addrs) + [0x5008] * 300 + list(range(0, 0x6000, 3))
    want = [model.lookup(a) for a in addrs]
    assert list(d.lookup_many(array("Q", addrs))) == want
    assert list(d.lookup_many(array("Q", addrs), simd=False)) == want


class _Address(int):
    """An int subclass: converted by CPython's call, not the digit read."""


def test_addresses_convert_exactly_around_every_digit_boundary():
    # CPython 3.11 keeps ints in 30-bit digits; pymem reads up to three of
    # them directly (pyaddr.h).  Each edge lands in the section it belongs to.
    d = Dispatch.build([DispatchRange(0, 1 << 30), DispatchRange(1 << 30, (1 << 60) - (1 << 30)),
                        DispatchRange(1 << 60, SPACE - (1 << 60))], 12)
    edges = {0: 1, 1: 1, (1 << 30) - 1: 1, 1 << 30: 2, (1 << 60) - 1: 2, 1 << 60: 3,
             (1 << 63) + 5: 3, SPACE - 1: 3}
    for addr, section in edges.items():
        assert d.lookup(addr) == section, hex(addr)
        assert d.translate(addr, 1).section == section, hex(addr)
        assert d.lookup(_Address(addr)) == section, hex(addr)
    # A bool is refused, as every Python access path refuses it.
    with pytest.raises(ArgumentTypeError, match="not bool"):
        d.lookup(True)
    assert d.translate(SPACE - 1, SPACE - 1) == (3, SPACE - 1 - (1 << 60), 1)


@pytest.mark.parametrize("bad", [-1, -(1 << 40), SPACE, SPACE + 5, 1 << 90, -(1 << 90)])
def test_addresses_outside_the_64_bit_space_are_refused_by_every_builtin(bad):
    d = build(12, [(0, 0x1000, 0)])
    for call in (lambda: d.lookup(bad), lambda: d.translate(bad), lambda: d.translate(0, bad),
                 lambda: d.lookup(_Address(bad))):
        with pytest.raises(ValueError, match="outside the 64-bit space"):
            call()


@pytest.mark.parametrize("bad", [1.0, "1", None, b"\1"])
def test_addresses_that_are_not_ints_are_a_type_error(bad):
    d = build(12, [(0, 0x1000, 0)])
    with pytest.raises(TypeError):
        d.lookup(bad)
    with pytest.raises(TypeError):
        d.translate(bad)


def test_a_translation_is_still_a_struct_sequence():
    d = build(12, [(0x1000, 0x1000, 7)])
    t = d.translate(0x1004, 8)
    assert isinstance(t, tuple) and type(t).__name__ == "Translation"
    assert (t.section, t.offset_in_region, t.length) == (1, 11, 8) == tuple(t) == t[:]
    assert repr(t) == "pymem.Translation(section=1, offset_in_region=11, length=8)"
