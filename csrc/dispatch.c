/*
 * dispatch.c - one FlatView's address -> section table, built as QEMU builds its
 * AddressSpaceDispatch.
 *
 * Building follows QEMU's order step by step (head sub-page, whole pages, tail
 * sub-page; nodes allocated top-down on demand; post-order skip compaction), so
 * section numbers and node numbers come out identical to QEMU's and `info mtree
 * -f -d` can be reproduced byte for byte.  A built dispatch is immutable except
 * for its most-recently-used section, which readers update with relaxed atomics.
 */
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"

/* ------------------------------------------------------------- building */

static pm_status section_add(pm_dispatch *d, const pm_range *r, uint32_t *index)
{
    if (d->sections_nb >= d->max_sections) {
        return PM_ERR_TOO_MANY_SECTIONS;
    }
    if (d->sections_nb == d->sections_alloc) {
        uint32_t n = d->sections_alloc ? d->sections_alloc * 2 : 16;
        section *s = realloc(d->sections, (size_t)n * sizeof(*s));
        if (!s) {
            return PM_ERR_NOMEM;
        }
        d->sections = s;
        d->sections_alloc = n;
    }
    section *s = &d->sections[d->sections_nb];
    memset(s, 0, sizeof(*s));
    s->r = *r;
    *index = d->sections_nb++;
    return PM_OK;
}

/* Room for every node one page-range insertion can allocate (two per level). */
static pm_status nodes_reserve(pm_dispatch *d)
{
    uint32_t want = d->nodes_nb + 3 * d->levels;
    if (want <= d->nodes_alloc) {
        return PM_OK;
    }
    uint32_t n = d->nodes_alloc ? d->nodes_alloc : 16;
    while (n < want) {
        n *= 2;
    }
    node *nodes = realloc(d->nodes, (size_t)n * sizeof(node));
    if (!nodes) {
        return PM_ERR_NOMEM;
    }
    d->nodes = nodes;
    d->nodes_alloc = n;
    return PM_OK;
}

/* An entry's bits as the node arrays hold them (skip in the low 6 bits). */
static inline uint32_t entry_bits(entry e)
{
    uint32_t v;
    memcpy(&v, &e, sizeof(v));
    return v;
}

static pm_status node_alloc(pm_dispatch *d, int leaf_level, uint32_t *index)
{
    if (d->nodes_nb >= d->max_nodes) {
        return PM_ERR_TOO_MANY_NODES;
    }
    /* Level-0 nodes start as "every page unassigned"; others as "nothing below". */
    entry e = { .skip = leaf_level ? 0 : 1, .ptr = leaf_level ? 0 : PM_NIL };
    uint32_t bits = entry_bits(e), fill[L2_SIZE];
    node *n = &d->nodes[d->nodes_nb];
    if (bits == 0) {
        memset(n, 0, sizeof(*n));
    } else {
        for (int i = 0; i < L2_SIZE; i++) {
            fill[i] = bits;
        }
        memcpy(n, fill, sizeof(*n));
    }
    *index = d->nodes_nb++;
    return PM_OK;
}

/*
 * Point `*nb` pages from `*index` at `leaf`, below entry `lp` of `level`.  Pages
 * aligned to a whole step of this level become one leaf entry here, as in QEMU.
 * `lp` may point into d->nodes: nodes_reserve() guarantees no reallocation.
 */
static pm_status page_set_level(pm_dispatch *d, entry *lp, uint64_t *index,
                                uint64_t *nb, uint32_t leaf, int level)
{
    uint64_t step = (uint64_t)1 << (level * L2_BITS);

    if (lp->skip && lp->ptr == PM_NIL) {
        uint32_t n;
        pm_status st = node_alloc(d, level == 0, &n);
        if (st != PM_OK) {
            return st;
        }
        lp->ptr = n;
    }
    entry *p = d->nodes[lp->ptr];
    entry *e = &p[(*index >> (level * L2_BITS)) & (L2_SIZE - 1)];

    while (*nb && e < &p[L2_SIZE]) {
        if ((*index & (step - 1)) == 0 && *nb >= step) {
            e->skip = 0;
            e->ptr = leaf;
            *index += step;
            *nb -= step;
        } else {
            pm_status st = page_set_level(d, e, index, nb, leaf, level - 1);
            if (st != PM_OK) {
                return st;
            }
        }
        ++e;
    }
    return PM_OK;
}

static pm_status page_set(pm_dispatch *d, uint64_t index, uint64_t nb, uint32_t leaf)
{
    pm_status st = nodes_reserve(d);
    if (st != PM_OK) {
        return st;
    }
    return page_set_level(d, &d->root, &index, &nb, leaf, (int)d->levels - 1);
}

static pm_status subpage_append(section *sp, uint32_t first, uint32_t last,
                                uint32_t sec)
{
    if (sp->npieces == sp->cap_pieces) {
        uint32_t n = sp->cap_pieces ? sp->cap_pieces * 2 : 4;
        subpage_piece *p = realloc(sp->pieces, (size_t)n * sizeof(*p));
        if (!p) {
            return PM_ERR_NOMEM;
        }
        sp->pieces = p;
        sp->cap_pieces = n;
    }
    sp->pieces[sp->npieces++] = (subpage_piece){ first, last, sec };
    return PM_OK;
}

/* A piece smaller than a page: goes through its page's sub-page section. */
static pm_status register_subpage(pm_dispatch *d, const pm_range *r)
{
    uint64_t page_mask = ((uint64_t)1 << d->page_bits) - 1;
    uint64_t base = r->start & ~page_mask;
    uint32_t existing = page_find(d, base);
    uint32_t sp_index, sec;
    pm_status st;

    if (!(d->sections[existing].r.flags & PM_SECTION_SUBPAGE)) {
        /* QEMU registers the page's sub-page before the piece's own section. */
        pm_range page = { .start = base, .last = base + page_mask,
                          .region = UINT32_MAX, .flags = PM_SECTION_SUBPAGE };
        st = section_add(d, &page, &sp_index);
        if (st == PM_OK) {
            st = page_set(d, base >> d->page_bits, 1, sp_index);
        }
        if (st != PM_OK) {
            return st;
        }
    } else {
        sp_index = existing;
    }
    st = section_add(d, r, &sec);
    if (st != PM_OK) {
        return st;
    }
    return subpage_append(&d->sections[sp_index], (uint32_t)(r->start - base),
                          (uint32_t)(r->last - base), sec);
}

static pm_status register_multipage(pm_dispatch *d, const pm_range *r)
{
    uint32_t sec;
    pm_status st = section_add(d, r, &sec);
    if (st != PM_OK) {
        return st;
    }
    uint64_t pages = ((r->last - r->start) >> d->page_bits) + 1;
    return page_set(d, r->start >> d->page_bits, pages, sec);
}

static pm_range piece(const pm_range *r, uint64_t start, uint64_t last)
{
    pm_range p = *r;
    p.start = start;
    p.last = last;
    p.offset = r->offset + (start - r->start);
    return p;
}

/* Unaligned head, whole pages, unaligned tail: QEMU's flatview_add_to_dispatch. */
static pm_status add_range(pm_dispatch *d, const pm_range *r)
{
    uint64_t page_mask = ((uint64_t)1 << d->page_bits) - 1;
    uint64_t start = r->start;
    pm_status st;

    if (start & page_mask) {
        uint64_t head_last = start | page_mask;
        if (head_last >= r->last) {
            return register_subpage(d, r);
        }
        pm_range head = piece(r, start, head_last);
        st = register_subpage(d, &head);
        if (st != PM_OK) {
            return st;
        }
        start = head_last + 1;
    }
    /* Pages wholly inside [start, last]: last page ends at last rounded down. */
    if (((r->last + 1) & page_mask) == 0) {
        /* The range ends on a page boundary (or at 2^64): all whole pages. */
        pm_range body = piece(r, start, r->last);
        return register_multipage(d, &body);
    }
    uint64_t tail_start = r->last & ~page_mask;
    if (tail_start > start) {
        pm_range body = piece(r, start, tail_start - 1);
        st = register_multipage(d, &body);
        if (st != PM_OK) {
            return st;
        }
    }
    pm_range tail = piece(r, tail_start, r->last);
    return register_subpage(d, &tail);
}

pm_status pm_dispatch_new(unsigned page_bits, pm_stats *stats, pm_dispatch **out)
{
    *out = NULL;
    if (page_bits < MIN_PAGE_BITS || page_bits > MAX_PAGE_BITS) {
        return PM_ERR_PAGE_BITS;
    }
    pm_dispatch *d = calloc(1, sizeof(*d));
    if (!d) {
        return PM_ERR_NOMEM;
    }
    d->page_bits = page_bits;
    d->page_mask = ((uint64_t)1 << page_bits) - 1;
    d->levels = (64 - page_bits - 1) / L2_BITS + 1;
    d->root = (entry){ .skip = 1, .ptr = PM_NIL };
    d->max_nodes = PM_NIL;
    d->max_sections = PM_NIL;
    d->stats = stats;

    pm_range unassigned = { .start = 0, .last = UINT64_MAX, .region = UINT32_MAX };
    uint32_t index;
    if (section_add(d, &unassigned, &index) != PM_OK) {
        free(d);
        return PM_ERR_NOMEM;
    }
    if (stats) {
        __atomic_add_fetch(&stats->live_dispatches, 1, __ATOMIC_RELAXED);
    }
    *out = d;
    return PM_OK;
}

pm_status pm_dispatch_set_limits(pm_dispatch *d, uint32_t max_sections,
                                 uint32_t max_nodes)
{
    if (d->any_added || max_sections > PM_NIL || max_nodes > PM_NIL ||
        max_sections < 1) {
        return PM_ERR_STATE;
    }
    d->max_sections = max_sections;
    d->max_nodes = max_nodes;
    return PM_OK;
}

pm_status pm_dispatch_add(pm_dispatch *d, const pm_range *range)
{
    if (d->committed || d->broken) {
        return PM_ERR_STATE;
    }
    if (range->last < range->start) {
        return PM_ERR_SIZE;
    }
    if (d->full || (d->any_added && range->start < d->next_start)) {
        return PM_ERR_ORDER;
    }
    if (range->flags & PM_SECTION_SUBPAGE) {
        return PM_ERR_STATE;
    }
    pm_status st = add_range(d, range);
    if (st != PM_OK) {
        /* A half-registered range cannot be taken back: the dispatch is dead. */
        d->broken = 1;
        return st;
    }
    d->any_added = 1;
    if (range->last == UINT64_MAX) {
        d->full = 1;
    } else {
        d->next_start = range->last + 1;
    }
    return PM_OK;
}


/* ---------------------------------------------------------- compaction */

/*
 * QEMU's phys_page_compact, post-order.  `level` is the level of the node
 * lp points at.  A level-0 node holds a section in every entry (none is
 * PM_NIL), so it never has a single child and is left as it is, unread.
 * Entries still PM_NIL are skipped eight at a time.
 */
static void compact(entry *lp, node *nodes, int level)
{
    unsigned valid_ptr = L2_SIZE;
    int valid = 0;

    if (lp->ptr == PM_NIL || level == 0) {
        return;
    }
    entry *p = nodes[lp->ptr];
    /* The ptr field's bits, all set: PM_NIL is 2^26 - 1. */
    const uint32_t nil = entry_bits((entry){ .skip = 0, .ptr = PM_NIL });
    const uint64_t nil2 = ((uint64_t)nil << 32) | nil;
    for (unsigned i = 0; i < L2_SIZE; i += 8) {
        uint64_t w[4];
        memcpy(w, &p[i], sizeof(w));
        if (((w[0] & nil2) == nil2) & ((w[1] & nil2) == nil2)
            & ((w[2] & nil2) == nil2) & ((w[3] & nil2) == nil2)) {
            continue;
        }
        for (unsigned j = i; j < i + 8; j++) {
            if (p[j].ptr == PM_NIL) {
                continue;
            }
            valid_ptr = j;
            valid++;
            if (p[j].skip) {
                compact(&p[j], nodes, level - 1);
            }
        }
    }
    if (valid != 1) {
        return;
    }
    /* One child left: the parent entry points past this node. */
    lp->ptr = p[valid_ptr].ptr;
    if (!p[valid_ptr].skip) {
        lp->skip = 0;
    } else {
        lp->skip += p[valid_ptr].skip;
    }
}

/*
 * A view with few pieces answers batched lookups faster by a branch-free
 * binary search over its boundaries than by the radix walk (a handful of
 * conditional moves instead of dependent loads and unpredictable branches);
 * past this many boundaries the walk wins.  Both give the same sections.
 */
#define MAX_BOUNDS 256

/* Views of at most this many boundaries compare them all, four addresses at
 * a time, with AVX2 (where the CPU has it): see many_bounds_avx2. */
#define AVX2_MAX_BOUNDS 48

/* Boundaries of the resolved map: pieces are sections that are not sub-page
 * containers, registered in address order; the gaps between them are #0. */
static pm_status build_bounds(pm_dispatch *d)
{
    uint32_t cap = 2 * d->sections_nb + 1;
    if (cap > MAX_BOUNDS) {
        return PM_OK;
    }
    d->bounds = malloc((cap + 1) * sizeof(*d->bounds));
    d->bound_sections = malloc(cap * sizeof(*d->bound_sections));
    if (!d->bounds || !d->bound_sections) {
        free(d->bounds);
        free(d->bound_sections);
        d->bounds = NULL;
        d->bound_sections = NULL;
        return PM_ERR_NOMEM;
    }
    /* Every interval non-empty: the recent-interval checks rely on it. */
    uint32_t n = 0;
    uint64_t next = 0;          /* first address not yet covered */
    int covered_all = 0;
    for (uint32_t i = 1; i < d->sections_nb; i++) {
        const pm_range *r = &d->sections[i].r;
        if (r->flags & PM_SECTION_SUBPAGE) {
            continue;
        }
        if (r->start > next) {
            d->bounds[n] = next;
            d->bound_sections[n++] = 0;
        }
        d->bounds[n] = r->start;
        d->bound_sections[n++] = i;
        covered_all = r->last == UINT64_MAX;
        next = r->last + 1;
    }
    if (!covered_all) {         /* the gap to 2^64 (all of it if no piece) */
        d->bounds[n] = next;
        d->bound_sections[n++] = 0;
    }
    d->bounds[n] = 0;           /* the last interval ends at 2^64 */
    d->nbounds = n;
    if (n <= AVX2_MAX_BOUNDS) {
        d->bounds_flipped = malloc(n * sizeof(*d->bounds_flipped));
        if (!d->bounds_flipped) {
            return PM_ERR_NOMEM;
        }
        for (uint32_t i = 0; i < n; i++) {
            d->bounds_flipped[i] = d->bounds[i] ^ (UINT64_C(1) << 63);
        }
    }
    return PM_OK;
}

/*
 * QEMU's per-byte sub_section tables for the sub-pages, in section order,
 * while they fit SUBPAGE_TABLE_BUDGET bytes (32 sub-pages of 4 KiB at two
 * bytes a byte: a view like q35's I/O space has 3, the synthetic 10k tree
 * 6,321).  A sub-page past the budget, or with a piece whose section number
 * a uint16_t cannot hold (views of more than 65,536 sections, which QEMU
 * itself cannot build), keeps the search over its pieces.
 */
#define SUBPAGE_TABLE_BUDGET (256 * 1024)

static int subpage_table_fits(const section *sp)
{
    return sp->npieces && sp->pieces[sp->npieces - 1].section <= UINT16_MAX;
}

static pm_status build_subpage_tables(pm_dispatch *d)
{
    size_t page = (size_t)1 << d->page_bits, pages = 0;
    for (uint32_t i = 0; i < d->sections_nb; i++) {
        if (subpage_table_fits(&d->sections[i])) {
            if ((pages + 1) * page * sizeof(uint16_t) > SUBPAGE_TABLE_BUDGET) {
                break;
            }
            pages++;
        }
    }
    if (!pages) {
        return PM_OK;
    }
    d->sub_tables = malloc(pages * page * sizeof(uint16_t));
    if (!d->sub_tables) {
        return PM_ERR_NOMEM;
    }
    uint16_t *table = d->sub_tables;
    for (uint32_t i = 0; i < d->sections_nb && pages; i++) {
        section *sp = &d->sections[i];
        if (!subpage_table_fits(sp)) {
            continue;
        }
        /* Pieces are sorted and disjoint: fill the gaps before each with 0. */
        uint32_t next = 0;
        for (uint32_t k = 0; k < sp->npieces; k++) {
            const subpage_piece *p = &sp->pieces[k];
            memset(table + next, 0, (p->first - next) * sizeof(uint16_t));
            for (uint32_t off = p->first; off <= p->last; off++) {
                table[off] = (uint16_t)p->section;
            }
            next = p->last + 1;
        }
        memset(table + next, 0, (page - next) * sizeof(uint16_t));
        sp->sub_section = table;
        table += page;
        pages--;
    }
    return PM_OK;
}

/*
 * The single-lookup table of a view with boundaries (see pm_dispatch in
 * dispatch.h): the resolved boundaries merged with every sub-page's page
 * edges, and per interval the section QEMU's phys_page_find answers (the
 * sub-page container inside a sub-page's page, else the resolved section,
 * 0 in a gap) and the resolved section.  Sub-page sections are made in
 * address order (ranges come in address order, a page's sub-page when the
 * first range touches it); were they not, the view keeps the radix walk.
 */
#ifdef PM_SINGLE_AVX2
static int cpu_has_avx2(void);
#endif

/* Whether the compacted root points straight at a last-level node (all the
 * view maps lies within one node's pages, as in an I/O space of 64 KiB):
 * then the walk is one load and a covers check, shorter than any search and
 * as predictable. */
static int one_level(const pm_dispatch *d)
{
    return d->root.skip == d->levels && d->root.ptr != PM_NIL;
}

static pm_status build_single(pm_dispatch *d)
{
    /* One-level views keep the walk (one_level). */
    if (!d->bounds || one_level(d)) {
        return PM_OK;
    }
    uint32_t nsub = 0;
    uint64_t prev_end = 0;
    for (uint32_t i = 1; i < d->sections_nb; i++) {
        const pm_range *r = &d->sections[i].r;
        if (r->flags & PM_SECTION_SUBPAGE) {
            if (nsub && r->start < prev_end) {
                return PM_OK;
            }
            /* The last page's sub-page ends the space: nothing follows. */
            prev_end = r->last == UINT64_MAX ? UINT64_MAX : r->last + 1;
            nsub++;
        }
    }
    uint32_t *subs = malloc((nsub ? nsub : 1) * sizeof(*subs));
    uint32_t cap = d->nbounds + 2 * nsub;
    d->single_bounds = malloc(cap * sizeof(*d->single_bounds));
    d->single_page = malloc(cap * sizeof(*d->single_page));
    d->single_res = malloc(cap * sizeof(*d->single_res));
    if (!subs || !d->single_bounds || !d->single_page || !d->single_res) {
        free(subs);
        free(d->single_bounds);
        free(d->single_page);
        free(d->single_res);
        d->single_bounds = NULL;
        d->single_page = d->single_res = NULL;
        return PM_ERR_NOMEM;
    }
    for (uint32_t i = 1, k = 0; i < d->sections_nb; i++) {
        if (d->sections[i].r.flags & PM_SECTION_SUBPAGE) {
            subs[k++] = i;
        }
    }
    /* Merge the two sorted edge lists (the bounds; each sub-page's start
     * and end), and label each interval as it starts.  `inside`: the edges
     * so far entered sub-page subs[k] and have not left it. */
    uint32_t n = 0, b = 0, k = 0;
    int inside = 0;
    for (;;) {
        const pm_range *sp = k < nsub ? &d->sections[subs[k]].r : NULL;
        int sub_edge_valid = sp && !(inside && sp->last == UINT64_MAX);
        uint64_t sub_edge = !sub_edge_valid ? 0 : inside ? sp->last + 1 : sp->start;
        uint64_t e;
        if (b < d->nbounds && (!sub_edge_valid || d->bounds[b] <= sub_edge)) {
            e = d->bounds[b];
        } else if (sub_edge_valid) {
            e = sub_edge;
        } else {
            break;
        }
        while (b < d->nbounds && d->bounds[b] <= e) {
            b++;
        }
        /* Leave a sub-page ending at e, enter one starting there (both, for
         * neighbouring pages). */
        while (k < nsub) {
            sp = &d->sections[subs[k]].r;
            if (inside && sp->last != UINT64_MAX && sp->last + 1 == e) {
                inside = 0;
                k++;
            } else if (!inside && sp->start == e) {
                inside = 1;
            } else {
                break;
            }
        }
        /* bounds[0] == 0 <= e: b >= 1, and bounds[b - 1] is e's interval. */
        uint32_t res = d->bound_sections[b - 1];
        d->single_bounds[n] = e;
        d->single_res[n] = res;
        d->single_page[n] = inside ? subs[k] : res;
        n++;
    }
    free(subs);
    d->nsingle = n;
#ifdef PM_SINGLE_AVX2
    if (n <= SINGLE_AVX2_MAX && cpu_has_avx2()) {
        uint32_t padded = (n + 3) & ~3u;
        d->single_flipped = malloc(2 * padded * sizeof(*d->single_flipped));
        if (!d->single_flipped) {
            return PM_ERR_NOMEM;
        }
        uint64_t *delta = d->single_flipped + padded, before = 0;
        for (uint32_t i = 0; i < padded; i++) {
            uint64_t v = i < n ? d->single_bounds[i] : UINT64_MAX;
            d->single_flipped[i] = v ^ (UINT64_C(1) << 63);
            /* Differences mod 2^64: the sums telescope back to an answer. */
            uint64_t answer = i < n ? (uint64_t)d->single_page[i] << 32 | d->single_res[i]
                                    : before;
            delta[i] = answer - before;
            before = answer;
        }
        d->single_delta = delta;
        d->nsingle_padded = padded;
    }
#endif
    return PM_OK;
}

pm_status pm_dispatch_commit(pm_dispatch *d)
{
    if (d->committed || d->broken) {
        return PM_ERR_STATE;
    }
    if (d->root.skip) {
        compact(&d->root, d->nodes, (int)d->levels - 1);
    }
    pm_status st = build_bounds(d);
    if (st == PM_OK) {
        st = build_subpage_tables(d);
    }
    if (st == PM_OK) {
        st = build_single(d);
    }
    if (st != PM_OK) {
        return st;
    }
    d->committed = 1;
    return PM_OK;
}

void pm_dispatch_free(pm_dispatch *d)
{
    if (!d) {
        return;
    }
    for (uint32_t i = 0; i < d->sections_nb; i++) {
        free(d->sections[i].pieces);
    }
    free(d->sections);
    free(d->nodes);
    free(d->bounds);
    free(d->bound_sections);
    free(d->sub_tables);
    free(d->bounds_flipped);
    free(d->single_bounds);
    free(d->single_page);
    free(d->single_res);
    free(d->single_flipped);
    if (d->stats) {
        __atomic_sub_fetch(&d->stats->live_dispatches, 1, __ATOMIC_RELAXED);
    }
    free(d);
}

/* -------------------------------------------------------------- lookups */

uint32_t pm_dispatch_lookup(pm_dispatch *d, uint64_t addr)
{
    return pm_dispatch_lookup_inline(d, addr);
}

/*
 * Batched lookups walk LANES addresses through the radix tree together, level
 * by level: the walks are independent, so their node loads overlap instead of
 * waiting on each other as one walk's do.  The MRU short-cut is left out (a
 * mispredicted branch per address costs more than it saves on random input);
 * the batched paths keep their own interval instead (see `recent` below).
 */
#define LANES 16

static void lookup_lanes(const pm_dispatch *d, const uint64_t *addrs,
                         uint32_t *out, size_t n)
{
    entry lp[LANES];
    int level[LANES];
    const node *nodes = d->nodes;
    const section *sections = d->sections;
    const unsigned page_bits = d->page_bits, levels = d->levels;
    const uint64_t page_mask = ((uint64_t)1 << page_bits) - 1;

    for (size_t k = 0; k < n; k++) {
        lp[k] = d->root;
        level[k] = (int)levels;
    }
    for (unsigned depth = 0; depth < levels; depth++) {
        int active = 0;
        for (size_t k = 0; k < n; k++) {
            if (!lp[k].skip) {
                continue;
            }
            int i = level[k] - (int)lp[k].skip;
            if (i < 0 || lp[k].ptr == PM_NIL) {
                lp[k] = (entry){ .skip = 0, .ptr = 0 };
                continue;
            }
            level[k] = i;
            uint64_t index = addrs[k] >> page_bits;
            lp[k] = nodes[lp[k].ptr][(index >> (i * L2_BITS)) & (L2_SIZE - 1)];
            active = 1;
        }
        if (!active) {
            break;
        }
    }
    for (size_t k = 0; k < n; k++) {
        uint32_t s = lp[k].skip ? 0 : lp[k].ptr;
        const section *sec = &sections[s];
        if (!covers(sec, addrs[k])) {
            s = 0;
        } else if (sec->r.flags & PM_SECTION_SUBPAGE) {
            s = subpage_resolve(sec, (uint32_t)(addrs[k] & page_mask));
        }
        out[k] = s;
    }
}

/* A page-level section resolved to its piece, without touching the MRU. */
static inline uint32_t resolve(const pm_dispatch *d, uint64_t addr)
{
    uint32_t s = page_find(d, addr);
    const section *sec = &d->sections[s];
    if (sec->r.flags & PM_SECTION_SUBPAGE) {
        uint64_t page_mask = ((uint64_t)1 << d->page_bits) - 1;
        return subpage_resolve(sec, (uint32_t)(addr & page_mask));
    }
    return s;
}

/*
 * The batched paths' own most-recently-used answer, QEMU's MRU check made
 * exact: every address in [lo, lo + span] has section `sec`.  Sequential and
 * hot-page streams then cost a subtraction and a compare per address.  On
 * random streams the check almost never hits and only costs, so the batch
 * goes in blocks of BLOCK addresses and takes the check in a block only when
 * at least a quarter of the previous block's answers (sampled) repeated their
 * predecessor's.  Any correct interval will do, so a miss that finds none
 * (unassigned space on the radix path) keeps the old one.
 */
#define BLOCK 64

typedef struct recent {
    uint64_t lo, span;
    uint32_t sec;
} recent;

/* Whether the next block should check the recent interval first: a sample
 * of every fourth answer keeps this off the per-address cost. */
static inline int worth_checking(const uint32_t *out, size_t n)
{
    size_t same = 0, samples = 0;
    for (size_t i = 3; i < n; i += 4) {
        same += out[i] == out[i - 1];
        samples++;
    }
    return 4 * same >= samples;
}

static inline void recent_bound(const pm_dispatch *d, uint32_t b, recent *r)
{
    r->sec = d->bound_sections[b];
    r->lo = d->bounds[b];
    r->span = d->bounds[b + 1] - 1 - r->lo;   /* bounds[nbounds] is 0: to 2^64 */
}

/* A run of searches, kept out of line so that the block loop's state does not
 * take its registers (inlined, gcc 12 reloaded the loop bound from the stack
 * on every address). */
static __attribute__((noinline)) void search_run(const uint64_t *bounds, const uint32_t *secs,
                                                 uint32_t nbounds, const uint64_t *addrs,
                                                 uint32_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        out[i] = secs[bounds_search(bounds, nbounds, addrs[i])];
    }
}

/* Unchecked stretches (random streams) run this many blocks between samples:
 * the per-block bookkeeping is then a few percent of the search, not a tenth. */
#define UNCHECKED_BLOCKS 4

static void many_bounds_scalar(const pm_dispatch *d, const uint64_t *addrs,
                               uint32_t *out, size_t n, recent *r)
{
    const uint64_t *bounds = d->bounds;
    const uint32_t *secs = d->bound_sections;
    const uint32_t nbounds = d->nbounds;
    recent m = *r;
    int check = 1;
    size_t end;
    for (size_t at = 0; at < n; at = end) {
        size_t span = check ? BLOCK : UNCHECKED_BLOCKS * BLOCK;
        end = n - at < span ? n : at + span;
        if (check) {
            for (size_t i = at; i < end; i++) {
                uint64_t addr = addrs[i];
                if (addr - m.lo > m.span) {
                    recent_bound(d, bounds_search(bounds, nbounds, addr), &m);
                }
                out[i] = m.sec;
            }
        } else {
            /* m stays as it was: still a correct interval, if a stale one,
             * and the first miss once checking resumes replaces it. */
            search_run(bounds, secs, nbounds, addrs + at, out + at, end - at);
        }
        size_t sample = end - at < BLOCK ? end - at : BLOCK;
        check = worth_checking(out + end - sample, sample);
    }
    *r = m;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_AVX2 1

/*
 * Views of at most AVX2_MAX_BOUNDS boundaries: four addresses at a time
 * against every boundary in turn (3 vector operations per boundary for four
 * addresses), counting the boundaries above each; the count gives the
 * boundary index.  AVX2 compares signed 64-bit lanes, so both sides are
 * offset by 2^63 (the boundaries once, at commit: then each is broadcast
 * straight from memory).  The recent-interval check takes four addresses at
 * once.
 */

__attribute__((target("avx2")))
static inline __m256i avx2_above(const uint64_t *flipped, uint32_t nbounds, __m256i a)
{
    const uint64_t sign = UINT64_C(1) << 63;
    __m256i af = _mm256_xor_si256(a, _mm256_set1_epi64x((long long)sign));
    __m256i above0 = _mm256_setzero_si256(), above1 = _mm256_setzero_si256();
    uint32_t k = 1;
    /* Two counters: the additions form two chains, not one. */
    for (; k + 2 <= nbounds; k += 2) {
        __m256i b0 = _mm256_set1_epi64x((long long)flipped[k]);
        __m256i b1 = _mm256_set1_epi64x((long long)flipped[k + 1]);
        above0 = _mm256_sub_epi64(above0, _mm256_cmpgt_epi64(b0, af));
        above1 = _mm256_sub_epi64(above1, _mm256_cmpgt_epi64(b1, af));
    }
    if (k < nbounds) {
        __m256i b0 = _mm256_set1_epi64x((long long)flipped[k]);
        above0 = _mm256_sub_epi64(above0, _mm256_cmpgt_epi64(b0, af));
    }
    return _mm256_add_epi64(above0, above1);
}

__attribute__((target("avx2")))
static void many_bounds_avx2(const pm_dispatch *d, const uint64_t *addrs,
                             uint32_t *out, size_t n, recent *r)
{
    const uint64_t *flipped = d->bounds_flipped;
    const uint32_t *secs = d->bound_sections;
    const uint32_t nbounds = d->nbounds, last = nbounds - 1;
    const uint64_t sign = UINT64_C(1) << 63;
    const __m256i flip = _mm256_set1_epi64x((long long)sign);
    recent m = *r;
    int check = 1;
    size_t at = 0;
    for (; at + BLOCK <= n; at += BLOCK) {
        if (!check) {
            /* Up to UNCHECKED_BLOCKS blocks, then a sample of the last; m
             * stays a correct interval (see many_bounds_scalar). */
            size_t end = at + UNCHECKED_BLOCKS * BLOCK;
            end = end <= n ? end : at + (n - at) / BLOCK * BLOCK;
            for (size_t i = at; i < end; i += 4) {
                __m256i a = _mm256_loadu_si256((const __m256i *)(addrs + i));
                uint64_t above[4];
                _mm256_storeu_si256((__m256i *)above, avx2_above(flipped, nbounds, a));
                for (int j = 0; j < 4; j++) {
                    out[i + j] = secs[last - above[j]];
                }
            }
            check = worth_checking(out + end - BLOCK, BLOCK);
            at = end - BLOCK;
            continue;
        }
        for (size_t i = at; i < at + BLOCK; i += 4) {
            __m256i a = _mm256_loadu_si256((const __m256i *)(addrs + i));
            __m256i off = _mm256_sub_epi64(a, _mm256_set1_epi64x((long long)m.lo));
            __m256i outside = _mm256_cmpgt_epi64(
                _mm256_xor_si256(off, flip), _mm256_set1_epi64x((long long)(m.span ^ sign)));
            if (_mm256_testz_si256(outside, outside)) {
                _mm_storeu_si128((__m128i *)(out + i), _mm_set1_epi32((int)m.sec));
                continue;
            }
            uint64_t above[4];
            _mm256_storeu_si256((__m256i *)above, avx2_above(flipped, nbounds, a));
            for (int j = 0; j < 4; j++) {
                out[i + j] = secs[last - above[j]];
            }
            recent_bound(d, last - (uint32_t)above[3], &m);
        }
        check = worth_checking(out + at, BLOCK);
    }
    *r = m;
    many_bounds_scalar(d, addrs + at, out + at, n - at, r);
}

static int cpu_has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}

/* Single lookups on the smallest views: addr against four boundaries per
 * compare, and the answer summed straight from the compares: boundaries at
 * or below addr are a prefix of the sorted array (bounds[0] is 0), so adding
 * up their deltas leaves the last one's answer, with no index to turn into
 * a section by two more dependent loads.  The padding (2^64 - 1) adds 0
 * even for addr 2^64 - 1.  Two accumulators: two chains of additions. */
__attribute__((target("avx2")))
uint64_t pm_single_search_avx2(const pm_dispatch *d, uint64_t addr)
{
    const uint64_t sign = UINT64_C(1) << 63;
    const __m256i a = _mm256_set1_epi64x((long long)(addr ^ sign));
    const uint64_t *b = d->single_flipped, *delta = d->single_delta;
    const uint32_t n = d->nsingle_padded;
    __m256i sum0 = _mm256_setzero_si256(), sum1 = _mm256_setzero_si256();
    uint32_t k = 0;
    for (; k + 8 <= n; k += 8) {
        __m256i above0 = _mm256_cmpgt_epi64(_mm256_loadu_si256((const __m256i *)(b + k)), a);
        __m256i above1 = _mm256_cmpgt_epi64(_mm256_loadu_si256((const __m256i *)(b + k + 4)), a);
        sum0 = _mm256_add_epi64(sum0, _mm256_andnot_si256(
            above0, _mm256_loadu_si256((const __m256i *)(delta + k))));
        sum1 = _mm256_add_epi64(sum1, _mm256_andnot_si256(
            above1, _mm256_loadu_si256((const __m256i *)(delta + k + 4))));
    }
    if (k < n) {
        __m256i above0 = _mm256_cmpgt_epi64(_mm256_loadu_si256((const __m256i *)(b + k)), a);
        sum0 = _mm256_add_epi64(sum0, _mm256_andnot_si256(
            above0, _mm256_loadu_si256((const __m256i *)(delta + k))));
    }
    __m256i sum = _mm256_add_epi64(sum0, sum1);
    __m128i half = _mm_add_epi64(_mm256_castsi256_si128(sum), _mm256_extracti128_si256(sum, 1));
    return (uint64_t)_mm_cvtsi128_si64(half) + (uint64_t)_mm_extract_epi64(half, 1);
}
#endif

/* Large views: the lanes walk, for the addresses the recent interval misses
 * in blocks worth checking, for all of them in the others. */
static void many_walk(const pm_dispatch *d, const uint64_t *addrs, uint32_t *out,
                      size_t n, recent *r)
{
    uint64_t miss_addr[LANES];
    uint32_t miss_out[LANES];
    size_t miss_at[LANES];
    recent m = *r;
    int check = 1;
    for (size_t at = 0; at < n; at += BLOCK) {
        size_t end = n - at < BLOCK ? n : at + BLOCK;
        if (!check) {
            for (size_t i = at; i < end; i += LANES) {
                lookup_lanes(d, addrs + i, out + i, end - i < LANES ? end - i : LANES);
            }
            uint32_t s = out[end - 1];
            if (s) {
                m = (recent){ .lo = d->sections[s].r.start,
                              .span = d->sections[s].r.last - d->sections[s].r.start, .sec = s };
            }
            check = worth_checking(out + at, end - at);
            continue;
        }
        size_t i = at;
        while (i < end) {
            size_t misses = 0;
            for (; i < end && misses < LANES; i++) {
                uint64_t addr = addrs[i];
                if (addr - m.lo <= m.span) {
                    out[i] = m.sec;
                } else {
                    miss_addr[misses] = addr;
                    miss_at[misses++] = i;
                }
            }
            if (!misses) {
                continue;
            }
            lookup_lanes(d, miss_addr, miss_out, misses);
            for (size_t k = 0; k < misses; k++) {
                out[miss_at[k]] = miss_out[k];
            }
            uint32_t s = miss_out[misses - 1];
            if (s) {
                /* A resolved section is a piece: all of [start, last] is it. */
                m = (recent){ .lo = d->sections[s].r.start,
                              .span = d->sections[s].r.last - d->sections[s].r.start, .sec = s };
            }
        }
        check = worth_checking(out + at, end - at);
    }
    *r = m;
}

/*
 * Views walked in one load (one_level): an address is an index into the one
 * last-level node, a covers check and, inside a sub-page, its table: no load
 * waits on another address's.  Local streams check the recent interval
 * first, in the blocks worth it, as the other paths do.
 */
static inline uint32_t one_level_find(const entry *leaf, const section *sections,
                                      unsigned page_bits, uint64_t page_mask, uint64_t addr)
{
    uint32_t s = leaf[(addr >> page_bits) & (L2_SIZE - 1)].ptr;
    const section *sec = &sections[s];
    if (!covers(sec, addr)) {
        return 0;
    }
    if (sec->r.flags & PM_SECTION_SUBPAGE) {
        return subpage_resolve(sec, (uint32_t)(addr & page_mask));
    }
    return s;
}

static inline void recent_section(const section *sections, uint32_t s, recent *m)
{
    /* A resolved section is a piece: all of [start, last] is it. */
    *m = (recent){ .lo = sections[s].r.start,
                   .span = sections[s].r.last - sections[s].r.start, .sec = s };
}

static __attribute__((noinline)) void many_one_level(const pm_dispatch *d,
                                                    const uint64_t *addrs, uint32_t *out,
                                                    size_t n, recent *r)
{
    const entry *leaf = d->nodes[d->root.ptr];
    const section *sections = d->sections;
    const unsigned page_bits = d->page_bits;
    const uint64_t page_mask = d->page_mask;
    recent m = *r;
    int check = 1;
    for (size_t at = 0; at < n; at += BLOCK) {
        size_t end = n - at < BLOCK ? n : at + BLOCK;
        if (check) {
            for (size_t i = at; i < end; i++) {
                uint64_t addr = addrs[i];
                if (addr - m.lo > m.span) {
                    uint32_t s = one_level_find(leaf, sections, page_bits, page_mask, addr);
                    if (s) {
                        recent_section(sections, s, &m);
                    } else if (d->bounds) {
                        /* A gap: its extent is a boundary interval. */
                        recent_bound(d, bounds_search(d->bounds, d->nbounds, addr), &m);
                    } else {
                        m = (recent){ .lo = addr, .span = 0, .sec = 0 };
                    }
                }
                out[i] = m.sec;
            }
        } else {
            for (size_t i = at; i < end; i++) {
                out[i] = one_level_find(leaf, sections, page_bits, page_mask, addrs[i]);
            }
            if (out[end - 1]) {
                recent_section(sections, out[end - 1], &m);
            }
        }
        check = worth_checking(out + at, end - at);
    }
    *r = m;
}

/* Which batched path a committed dispatch takes (0: none, not committed). */
static int batch_path(const pm_dispatch *d, int allow_simd)
{
    if (!d->committed) {
        return 0;
    }
    if (!d->bounds) {
        return one_level(d) ? PM_BATCH_ONE_LEVEL : PM_BATCH_RADIX;
    }
    if (one_level(d) && !d->bounds_flipped) {
        return PM_BATCH_ONE_LEVEL;
    }
#ifdef HAVE_AVX2
    if (allow_simd && d->bounds_flipped && cpu_has_avx2()) {
        return PM_BATCH_AVX2;
    }
#else
    (void)allow_simd;
#endif
    return PM_BATCH_BOUNDS;
}

static void lookup_many(pm_dispatch *d, const uint64_t *addrs, uint32_t *sections,
                        size_t n, int allow_simd)
{
    int path = batch_path(d, allow_simd);
    if (!path) {
        memset(sections, 0, n * sizeof(*sections));
        return;
    }
    if (!n) {
        return;
    }
    recent r;
    if (d->bounds) {
        recent_bound(d, 0, &r);
    } else {
        r = (recent){ .lo = 0, .span = 0, .sec = resolve(d, 0) };
    }
    switch (path) {
#ifdef HAVE_AVX2
    case PM_BATCH_AVX2:
        many_bounds_avx2(d, addrs, sections, n, &r);
        break;
#endif
    case PM_BATCH_BOUNDS:
        many_bounds_scalar(d, addrs, sections, n, &r);
        break;
    case PM_BATCH_ONE_LEVEL:
        many_one_level(d, addrs, sections, n, &r);
        break;
    default:
        many_walk(d, addrs, sections, n, &r);
        break;
    }
    /* As if looked up one by one: the MRU is the last address's page-level section. */
    __atomic_store_n(&d->mru, page_find(d, addrs[n - 1]), __ATOMIC_RELAXED);
}

void pm_dispatch_lookup_many(pm_dispatch *d, const uint64_t *addrs,
                             uint32_t *sections, size_t n)
{
    lookup_many(d, addrs, sections, n, 1);
}

void pm_dispatch_lookup_many_scalar(pm_dispatch *d, const uint64_t *addrs,
                                    uint32_t *sections, size_t n)
{
    lookup_many(d, addrs, sections, n, 0);
}

uint32_t pm_dispatch_batch_path(const pm_dispatch *d)
{
    return (uint32_t)batch_path(d, 1);
}

uint32_t pm_dispatch_translate(pm_dispatch *d, uint64_t addr, uint64_t len,
                               uint64_t *offset_in_region, uint64_t *plen)
{
    uint32_t s = pm_dispatch_lookup_inline(d, addr);
    const section *sec = &d->sections[s];
    uint64_t in_section = addr - sec->r.start;
    *offset_in_region = sec->r.offset + in_section;
    /* Bytes left in the section, minus one, so that 2^64 cannot overflow. */
    uint64_t left_minus_one = sec->r.last - addr;
    *plen = (len == 0 || len - 1 <= left_minus_one) ? len : left_minus_one + 1;
    return s;
}

/* -------------------------------------------------------- introspection */

uint32_t pm_dispatch_page_bits(const pm_dispatch *d) { return d->page_bits; }
uint32_t pm_dispatch_levels(const pm_dispatch *d) { return d->levels; }
uint32_t pm_dispatch_section_count(const pm_dispatch *d) { return d->sections_nb; }
uint32_t pm_dispatch_node_count(const pm_dispatch *d) { return d->nodes_nb; }

pm_status pm_dispatch_section(const pm_dispatch *d, uint32_t index, pm_range *out)
{
    if (index >= d->sections_nb) {
        return PM_ERR_RANGE;
    }
    *out = d->sections[index].r;
    return PM_OK;
}

pm_status pm_dispatch_node(const pm_dispatch *d, uint32_t index,
                           uint8_t *skips, uint32_t *ptrs)
{
    if (index >= d->nodes_nb) {
        return PM_ERR_RANGE;
    }
    for (int i = 0; i < L2_SIZE; i++) {
        skips[i] = (uint8_t)d->nodes[index][i].skip;
        ptrs[i] = d->nodes[index][i].ptr;
    }
    return PM_OK;
}

void pm_dispatch_root(const pm_dispatch *d, uint32_t *ptr, uint32_t *skip)
{
    *ptr = d->root.ptr;
    *skip = d->root.skip;
}

uint32_t pm_dispatch_mru(const pm_dispatch *d)
{
    return __atomic_load_n(&d->mru, __ATOMIC_RELAXED);
}

uint32_t pm_dispatch_subpage_pieces(const pm_dispatch *d, uint32_t index,
                                    uint32_t *firsts, uint32_t *lasts,
                                    uint32_t *sections, uint32_t max)
{
    if (index >= d->sections_nb) {
        return 0;
    }
    const section *sp = &d->sections[index];
    uint32_t n = sp->npieces < max ? sp->npieces : max;
    for (uint32_t i = 0; i < n; i++) {
        firsts[i] = sp->pieces[i].first;
        lasts[i] = sp->pieces[i].last;
        sections[i] = sp->pieces[i].section;
    }
    return sp->npieces;
}

pm_status pm_dispatch_build(unsigned page_bits, pm_stats *stats, uint32_t max_sections,
                            uint32_t max_nodes, const pm_range *ranges, size_t n,
                            size_t *failed, pm_dispatch **out)
{
    pm_dispatch *d;
    *failed = n;
    pm_status st = pm_dispatch_new(page_bits, stats, &d);
    if (st != PM_OK) {
        *out = NULL;
        return st;
    }
    if (max_sections != PM_NIL || max_nodes != PM_NIL) {
        st = pm_dispatch_set_limits(d, max_sections, max_nodes);
    }
    for (size_t i = 0; st == PM_OK && i < n; i++) {
        st = pm_dispatch_add(d, &ranges[i]);
        if (st != PM_OK) {
            *failed = i;
        }
    }
    if (st == PM_OK) {
        st = pm_dispatch_commit(d);
    }
    if (st != PM_OK) {
        pm_dispatch_free(d);
        d = NULL;
    }
    *out = d;
    return st;
}

void pm_dispatch_release(pm_stats *stats, pm_dispatch *d)
{
    (void)stats;   /* kept alive by the caller until now */
    pm_dispatch_free(d);
}
