/*
 * dispatch.h - private to the C core: the layout of pm_dispatch and its
 * single-address lookup, shared by dispatch.c (which builds and owns it) and
 * access.c (whose loads and stores inline the lookup instead of calling
 * through the PLT and copying the section out).  Not part of the API
 * (pymem.h is).
 */
#ifndef PYMEM_DISPATCH_H
#define PYMEM_DISPATCH_H

#include "pymem.h"

#define L2_BITS 9
#define L2_SIZE 512
#define MIN_PAGE_BITS 10
#define MAX_PAGE_BITS 16

typedef struct entry {
    uint32_t skip : 6;   /* levels to skip; 0 marks a leaf (ptr is a section) */
    uint32_t ptr : 26;   /* node index, section index, or PM_NIL */
} entry;

typedef entry node[L2_SIZE];

/* One piece of a sub-page: bytes first..last of the page go to `section`. */
typedef struct subpage_piece {
    uint32_t first, last, section;
} subpage_piece;

typedef struct section {
    pm_range r;
    subpage_piece *pieces;   /* sub-page sections only: sorted, disjoint */
    uint32_t npieces, cap_pieces;
    /* Sub-page sections within the table budget: the section of every byte
     * of the page (0: unassigned), QEMU's subpage_t sub_section table.  One
     * indexed load, where a search over the pieces branches on every step;
     * NULL: the page keeps the search (see build_subpage_tables). */
    const uint16_t *sub_section;
} section;

struct pm_dispatch {
    unsigned page_bits, levels;
    entry root;
    node *nodes;
    uint32_t nodes_nb, nodes_alloc, max_nodes;
    section *sections;
    uint32_t sections_nb, sections_alloc, max_sections;
    uint32_t mru;            /* accessed atomically: readers race on it */
    /* Small views only: every boundary of the resolved address map (sorted,
     * bounds[0] == 0, then bounds[nbounds] == 0 as the end of the last
     * interval, 2^64) and the section from it on, for batched lookups. */
    uint64_t *bounds;
    uint32_t *bound_sections;
    uint32_t nbounds;
    uint64_t *bounds_flipped; /* views of <= AVX2_MAX_BOUNDS: bounds ^ 2^63 */
    uint16_t *sub_tables;    /* every sub-page's sub_section table */
    uint64_t page_mask;      /* (1 << page_bits) - 1 */
    /* Views with bounds only, for single lookups that miss the MRU: the
     * resolved boundaries split at every sub-page's page edges, and for
     * each interval the page-level section (what QEMU's phys_page_find
     * answers, which becomes the MRU) and the resolved section (the
     * answer).  A branch-free search over them replaces the radix walk,
     * whose variable depth and data-dependent branches mispredict on
     * random addresses; the answers and the MRU are the walk's. */
    uint64_t *single_bounds;
    uint32_t *single_page, *single_res;
    uint32_t nsingle;
    /* Where the CPU has AVX2 and nsingle <= SINGLE_AVX2_MAX: the same
     * boundaries offset by 2^63 (AVX2 compares signed lanes), padded with
     * 2^64 - 1 to a multiple of four (nsingle_padded), for the search that
     * compares four at once (pm_single_search_avx2); and, in the same
     * allocation, each interval's answer as page << 32 | res minus the one
     * before it (0 for the padding): the sum over the boundaries at or below
     * an address is that address's answer. */
    uint64_t *single_flipped;
    const uint64_t *single_delta;
    uint32_t nsingle_padded;
    uint64_t next_start;     /* the lowest address the next range may start at */
    int any_added, full, committed, broken;
    pm_stats *stats;
};

/* One unsigned compare (below start wraps past last - start), so an MRU
 * check on random addresses is one well-predicted branch, not two. */
static inline int covers(const section *s, uint64_t addr)
{
    return addr - s->r.start <= s->r.last - s->r.start;
}

/* The page-level section of addr (sub-pages not resolved), as QEMU's phys_page_find. */
static inline uint32_t page_find(const pm_dispatch *d, uint64_t addr)
{
    entry lp = d->root;
    uint64_t index = addr >> d->page_bits;
    int i = (int)d->levels;

    while (lp.skip && (i -= lp.skip) >= 0) {
        if (lp.ptr == PM_NIL) {
            return 0;
        }
        lp = d->nodes[lp.ptr][(index >> (i * L2_BITS)) & (L2_SIZE - 1)];
    }
    if (lp.skip) {
        return 0;
    }
    /* Compaction may have skipped levels: the leaf must really cover addr. */
    return covers(&d->sections[lp.ptr], addr) ? lp.ptr : 0;
}

/* The piece of a sub-page without a table: a binary search over its pieces. */
static inline uint32_t subpage_search(const section *sp, uint32_t off)
{
    uint32_t lo = 0, hi = sp->npieces;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        const subpage_piece *p = &sp->pieces[mid];
        if (off < p->first) {
            hi = mid;
        } else if (off > p->last) {
            lo = mid + 1;
        } else {
            return p->section;
        }
    }
    return 0;
}

static inline uint32_t subpage_resolve(const section *sp, uint32_t off)
{
    return sp->sub_section ? sp->sub_section[off] : subpage_search(sp, off);
}

/* The boundary index of addr: branch-free, a conditional move per halving. */
static inline uint32_t bounds_search(const uint64_t *bounds, uint32_t nbounds, uint64_t addr)
{
    uint32_t base = 0, len = nbounds;
    while (len > 1) {
        uint32_t half = len / 2;
        base = bounds[base + half] <= addr ? base + half : base;
        len -= half;
    }
    return base;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define PM_SINGLE_AVX2 1
#define SINGLE_AVX2_MAX 64
/* The interval holding addr in d->single_bounds, found by comparing addr
 * with every boundary, four at a time (dispatch.c): its page-level section
 * (the MRU to keep) << 32 | its resolved section. */
__attribute__((visibility("hidden"))) uint64_t pm_single_search_avx2(const pm_dispatch *d,
                                                                     uint64_t addr);
#endif

/* QEMU's address_space_lookup_region: MRU first, then the radix walk (or,
 * on views with few boundaries, the same answer and MRU from a search).
 * The MRU is 0 until the dispatch is committed (only a committed one stores
 * it), so the MRU hit, the common case on local streams, needs no other
 * check; nothing is found in a dispatch not yet committed. */
static inline __attribute__((always_inline)) uint32_t pm_dispatch_lookup_inline(pm_dispatch *d,
                                                                             uint64_t addr)
{
    uint32_t s = __atomic_load_n(&d->mru, __ATOMIC_RELAXED);
    const section *sec = &d->sections[s];
    if (s == 0 || !covers(sec, addr)) {
        if (!d->committed) {
            return 0;
        }
        if (d->single_bounds) {
#ifdef PM_SINGLE_AVX2
            if (d->single_flipped) {
                uint64_t found = pm_single_search_avx2(d, addr);
                __atomic_store_n(&d->mru, (uint32_t)(found >> 32), __ATOMIC_RELAXED);
                return (uint32_t)found;
            }
#endif
            uint32_t i = bounds_search(d->single_bounds, d->nsingle, addr);
            __atomic_store_n(&d->mru, d->single_page[i], __ATOMIC_RELAXED);
            return d->single_res[i];
        }
        s = page_find(d, addr);
        __atomic_store_n(&d->mru, s, __ATOMIC_RELAXED);
        sec = &d->sections[s];
    }
    if (sec->r.flags & PM_SECTION_SUBPAGE) {
        return subpage_resolve(sec, (uint32_t)(addr & d->page_mask));
    }
    return s;
}

/* The section under addr (sub-pages resolved), by pointer: read it inside the
 * read-side section that found the dispatch. */
static inline const pm_range *pm_dispatch_range(pm_dispatch *d, uint64_t addr)
{
    return &d->sections[pm_dispatch_lookup_inline(d, addr)].r;
}

#endif /* PYMEM_DISPATCH_H */
