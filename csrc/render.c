/*
 * render.c - a region tree rendered into the merged flat ranges of a FlatView.
 *
 * QEMU's render_memory_region walks the tree (children before their parent,
 * highest priority first) and lets each terminating region fill only the
 * addresses no earlier region took, inserting every piece into a sorted
 * array: quadratic for a container of many children.  We walk in the same
 * order, keep every clipped piece with its render index, and resolve "first
 * rendered wins" with one sweep over the sorted piece boundaries, holding the
 * pieces that cover the current boundary in a min-heap of render indices.
 * The result is QEMU's ranges in O(n log n); neighbours that continue each
 * other are merged on the way out (flatview_simplify).
 *
 * The walk uses its own stack (no recursion: trees may be deep) and counts
 * the trips through each alias on the current path, so an alias loop is
 * gone round until its clip window is empty, within a bound.
 */
#include <stdlib.h>
#include <string.h>

#include "region.h"

enum { VISIT, EMIT, LEAVE };

/* One step of the walk: visit a region, emit a terminating region's piece
 * once its children are done, or leave an alias (pop it off the path). */
typedef struct frame {
    pm_i128 base;            /* the container's address in the space */
    const pm_region *mr;
    uint64_t start, last;    /* the clip window, inclusive */
    uint32_t path_flags;     /* READONLY / NONVOLATILE gathered on the path */
    uint32_t op;
} frame;

/* A terminating region clipped to its window, in render order. */
typedef struct piece {
    uint64_t start, last;
    uint64_t offset;         /* of start in the region */
    const pm_region *mr;
    uint32_t flags;          /* PM_SECTION_* */
} piece;

typedef struct walk {
    frame *stack;
    size_t nstack, cap_stack;
    const pm_region **path;  /* the aliases on the current path */
    size_t npath, cap_path;
    piece *pieces;
    size_t npieces, cap_pieces;
} walk;

/* Make room for one more element of `size` bytes in a growing array. */
static int reserve(void **data, size_t *cap, size_t n, size_t size)
{
    if (n < *cap) {
        return 1;
    }
    size_t grown = *cap ? *cap * 2 : 64;
    void *p = realloc(*data, grown * size);
    if (!p) {
        return 0;
    }
    *data = p;
    *cap = grown;
    return 1;
}

static int push(walk *w, const pm_region *mr, pm_i128 base, uint64_t start, uint64_t last,
                uint32_t path_flags, uint32_t op)
{
    if (!reserve((void **)&w->stack, &w->cap_stack, w->nstack, sizeof(frame))) {
        return 0;
    }
    w->stack[w->nstack++] = (frame){ base, mr, start, last, path_flags, op };
    return 1;
}

static uint32_t section_flags(const pm_region *mr, uint32_t path_flags)
{
    uint32_t rf = mr->flags, flags = 0;
    if (rf & PM_REGION_MEMORY) {
        flags |= PM_SECTION_RAM;
    }
    if (path_flags & PM_REGION_READONLY) {
        flags |= PM_SECTION_READONLY;
    }
    if ((rf & PM_REGION_ROM_DEVICE) && (rf & PM_REGION_ROMD)) {
        flags |= PM_SECTION_ROMD;
    }
    if (rf & PM_REGION_IOMMU) {
        flags |= PM_SECTION_IOMMU;
    }
    if (path_flags & PM_REGION_NONVOLATILE) {
        flags |= PM_SECTION_NONVOLATILE;
    }
    return flags;
}

static pm_status add_piece(walk *w, const pm_region *mr, pm_i128 base, uint64_t start,
                           uint64_t last, uint32_t path_flags)
{
    if (!reserve((void **)&w->pieces, &w->cap_pieces, w->npieces, sizeof(piece))) {
        return PM_ERR_NOMEM;
    }
    /* start >= base and start - base < size <= 2^64: it fits. */
    w->pieces[w->npieces++] = (piece){
        .start = start, .last = last, .offset = (uint64_t)((pm_i128)start - base), .mr = mr,
        .flags = section_flags(mr, path_flags),
    };
    return PM_OK;
}

static size_t visits(const walk *w, const pm_region *alias)
{
    size_t n = 0;
    for (size_t i = 0; i < w->npath; i++) {
        n += w->path[i] == alias;
    }
    return n;
}

/* Every terminating region's piece, in QEMU's render order. */
static pm_status collect(walk *w, const pm_region *root, uint32_t max_alias_visits)
{
    if (!push(w, root, 0, 0, UINT64_MAX, 0, VISIT)) {
        return PM_ERR_NOMEM;
    }
    while (w->nstack) {
        frame f = w->stack[--w->nstack];
        const pm_region *mr = f.mr;
        if (f.op == LEAVE) {
            w->npath--;
            continue;
        }
        if (f.op == EMIT) {
            if (add_piece(w, mr, f.base, f.start, f.last, f.path_flags) != PM_OK) {
                return PM_ERR_NOMEM;
            }
            continue;
        }
        if (!(mr->flags & PM_REGION_ENABLED) || mr->size == 0) {
            continue;
        }
        pm_i128 base = f.base + mr->addr;
        pm_i128 lo = base > (pm_i128)f.start ? base : (pm_i128)f.start;
        pm_i128 hi = base + mr->size - 1;
        if (hi > (pm_i128)f.last) {
            hi = f.last;
        }
        if (lo > hi) {
            continue;
        }
        uint32_t path_flags = f.path_flags
                              | (mr->flags & (PM_REGION_READONLY | PM_REGION_NONVOLATILE));
        if (mr->alias) {
            if (visits(w, mr) >= max_alias_visits) {
                return PM_ERR_LOOP;
            }
            if (!reserve((void **)&w->path, &w->cap_path, w->npath, sizeof(*w->path))) {
                return PM_ERR_NOMEM;
            }
            w->path[w->npath++] = mr;
            const pm_region *target = mr->alias;
            if (!push(w, mr, 0, 0, 0, 0, LEAVE)
                || !push(w, target, base - target->addr - mr->alias_offset, (uint64_t)lo,
                         (uint64_t)hi, path_flags, VISIT)) {
                return PM_ERR_NOMEM;
            }
            continue;
        }
        if (mr->flags & PM_REGION_TERMINATES) {
            /* Its piece follows its subregions' (a leaf's: at once). */
            if (!mr->nsubs) {
                if (add_piece(w, mr, base, (uint64_t)lo, (uint64_t)hi, path_flags) != PM_OK) {
                    return PM_ERR_NOMEM;
                }
                continue;
            }
            if (!push(w, mr, base, (uint64_t)lo, (uint64_t)hi, path_flags, EMIT)) {
                return PM_ERR_NOMEM;
            }
        }
        /* Pushed lowest priority first, so the highest is walked first.
         * Fetching the nodes now overlaps their cache misses. */
        for (size_t i = 0; i < mr->nsubs; i++) {
            __builtin_prefetch(mr->subs[i]);
            if (!push(w, mr->subs[i], base, (uint64_t)lo, (uint64_t)hi, path_flags, VISIT)) {
                return PM_ERR_NOMEM;
            }
        }
    }
    return PM_OK;
}

/* Below this many keys an insertion sort beats the radix sort's 16 KiB of
 * counters (a small machine's view has a few dozen pieces). */
#define SMALL_SORT 48

/* Stable insertion sort of keys (and vals alongside, when given). */
static void insertion_sort(uint64_t *keys, uint32_t *vals, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        uint64_t k = keys[i];
        uint32_t v = vals ? vals[i] : 0;
        size_t j = i;
        while (j > 0 && keys[j - 1] > k) {
            keys[j] = keys[j - 1];
            if (vals) {
                vals[j] = vals[j - 1];
            }
            j--;
        }
        keys[j] = k;
        if (vals) {
            vals[j] = v;
        }
    }
}

/* Stable LSD radix sort of keys (and vals alongside, when given), a byte at
 * a time, skipping the bytes every key shares. */
static int radix_sort(uint64_t *keys, uint32_t *vals, size_t n)
{
    if (n < SMALL_SORT) {
        insertion_sort(keys, vals, n);
        return 1;
    }
    size_t counts[8][256];
    memset(counts, 0, sizeof(counts));
    for (size_t i = 0; i < n; i++) {
        for (unsigned d = 0; d < 8; d++) {
            counts[d][(keys[i] >> (8 * d)) & 255]++;
        }
    }
    uint64_t *tkeys = malloc(n * sizeof(*tkeys));
    uint32_t *tvals = vals ? malloc(n * sizeof(*tvals)) : NULL;
    if (!tkeys || (vals && !tvals)) {
        free(tkeys);
        free(tvals);
        return 0;
    }
    uint64_t *k = keys, *kt = tkeys;
    uint32_t *v = vals, *vt = tvals;
    for (unsigned d = 0; d < 8; d++) {
        unsigned shift = 8 * d;
        if (counts[d][(k[0] >> shift) & 255] == n) {
            continue;
        }
        size_t pos[256], sum = 0;
        for (unsigned b = 0; b < 256; b++) {
            pos[b] = sum;
            sum += counts[d][b];
        }
        for (size_t i = 0; i < n; i++) {
            size_t at = pos[(k[i] >> shift) & 255]++;
            kt[at] = k[i];
            if (v) {
                vt[at] = v[i];
            }
        }
        uint64_t *ks = k;
        k = kt;
        kt = ks;
        uint32_t *vs = v;
        v = vt;
        vt = vs;
    }
    if (k != keys) {
        memcpy(keys, k, n * sizeof(*keys));
        if (vals) {
            memcpy(vals, v, n * sizeof(*vals));
        }
    }
    free(tkeys);
    free(tvals);
    return 1;
}

/* A piece covering the sweep's position: its render index (the heap's key:
 * the lowest was rendered first), its last address and where it sits in
 * address order, so that the heap is tested without reading pieces. */
typedef struct live {
    uint64_t last;
    uint32_t index, pos;
} live;

static void heap_push(live *heap, size_t *n, live x)
{
    size_t i = (*n)++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (heap[parent].index <= x.index) {
            break;
        }
        heap[i] = heap[parent];
        i = parent;
    }
    heap[i] = x;
}

static void heap_pop(live *heap, size_t *n)
{
    live x = heap[--*n];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= *n) {
            break;
        }
        if (child + 1 < *n && heap[child + 1].index < heap[child].index) {
            child++;
        }
        if (heap[child].index >= x.index) {
            break;
        }
        heap[i] = heap[child];
        i = child;
    }
    if (*n) {
        heap[i] = x;
    }
}

/* Sweep the sorted boundaries: each segment between two goes to the first
 * rendered piece covering it; merge it into the previous range if it
 * continues it in space and in the region, with the same attributes. */
static pm_status sweep(const piece *pieces, size_t n, pm_range **out, size_t *nout)
{
    uint32_t *order = malloc(n * sizeof(*order));
    uint64_t *starts = malloc(n * sizeof(*starts));
    uint64_t *bounds = malloc(2 * n * sizeof(*bounds));
    live *heap = malloc(n * sizeof(*heap));
    piece *sorted = malloc(n * sizeof(*sorted));
    pm_range *ranges = NULL;
    pm_status st = PM_ERR_NOMEM;
    if (!order || !starts || !bounds || !heap || !sorted) {
        goto done;
    }
    size_t nb = 0;
    for (size_t i = 0; i < n; i++) {
        order[i] = (uint32_t)i;
        starts[i] = pieces[i].start;
        bounds[nb++] = pieces[i].start;
        if (pieces[i].last != UINT64_MAX) {
            bounds[nb++] = pieces[i].last + 1;
        }
    }
    if (!radix_sort(starts, order, n) || !radix_sort(bounds, NULL, nb)) {
        goto done;
    }
    /* In address order the sweep reads pieces front to back. */
    for (size_t i = 0; i < n; i++) {
        sorted[i] = pieces[order[i]];
    }
    size_t unique = 0;
    for (size_t i = 0; i < nb; i++) {
        if (unique == 0 || bounds[i] != bounds[unique - 1]) {
            bounds[unique++] = bounds[i];
        }
    }
    nb = unique;
    ranges = malloc(nb * sizeof(*ranges));
    if (!ranges) {
        goto done;
    }
    size_t nranges = 0, nheap = 0, next = 0;
    const pm_region *last_mr = NULL;
    for (size_t k = 0; k < nb; k++) {
        uint64_t b = bounds[k];
        while (next < n && starts[next] <= b) {
            heap_push(heap, &nheap, (live){ sorted[next].last, order[next], (uint32_t)next });
            next++;
        }
        while (nheap && heap[0].last < b) {
            heap_pop(heap, &nheap);
        }
        if (!nheap) {
            continue;
        }
        /* The owner's last address is a boundary minus one, or 2^64 - 1:
         * it covers this whole segment. */
        const piece *p = &sorted[heap[0].pos];
        uint64_t seg_last = k + 1 < nb ? bounds[k + 1] - 1 : UINT64_MAX;
        const pm_region *mr = p->mr;
        uint64_t offset = p->offset + (b - p->start);
        pm_range *prev = nranges ? &ranges[nranges - 1] : NULL;
        /* Offsets continue in the region, in 65 bits: a range ending at the
         * region's 2^64th byte is not continued by its offset 0. */
        if (prev && last_mr == mr && prev->last + 1 == b
            && (pm_i128)prev->offset + (prev->last - prev->start) + 1 == offset
            && prev->flags == p->flags && prev->dirty_mask == mr->dirty_log) {
            prev->last = seg_last;
            continue;
        }
        ranges[nranges++] = (pm_range){
            .start = b,
            .last = seg_last,
            .offset = offset,
            .region = mr->id,
            .flags = p->flags,
            .host = mr->host,
            .dirty = mr->dirty,
            .dirty_mask = mr->dirty_log,
            .dirty_page_bits = mr->dirty_page_bits,
            .dirty_pages = mr->dirty_pages,
            .user = mr->user,
        };
        last_mr = p->mr;
    }
    *out = ranges;
    *nout = nranges;
    ranges = NULL;
    st = PM_OK;
done:
    free(order);
    free(starts);
    free(bounds);
    free(heap);
    free(sorted);
    free(ranges);
    return st;
}

pm_status pm_render(const pm_region *root, uint32_t max_alias_visits, pm_range **ranges,
                    size_t *n)
{
    walk w = { 0 };
    *ranges = NULL;
    *n = 0;
    pm_status st = collect(&w, root, max_alias_visits);
    if (st == PM_OK && w.npieces > UINT32_MAX) {
        st = PM_ERR_NOMEM;
    }
    if (st == PM_OK && w.npieces) {
        st = sweep(w.pieces, w.npieces, ranges, n);
    }
    free(w.stack);
    free(w.path);
    free(w.pieces);
    return st;
}

/* One step of the flat-view-root walk: 1 with *next the region to go on
 * with, or 0 with *next the answer (NULL: the root renders nothing). */
static int root_step(const pm_region *mr, const pm_region **next)
{
    if (!mr || !(mr->flags & PM_REGION_ENABLED)) {
        *next = NULL;
        return 0;
    }
    if (mr->alias) {
        if (mr->alias_offset == 0 && mr->size >= mr->alias->size) {
            /* The whole target is visible: share the target's view. */
            *next = mr->alias;
            return 1;
        }
    } else if (!(mr->flags & PM_REGION_TERMINATES)) {
        /* A container: one enabled child that covers it from 0 is the view. */
        const pm_region *only = NULL;
        uint32_t found = 0;
        for (uint32_t i = 0; i < mr->nsubs; i++) {
            const pm_region *child = mr->subs[i];
            if (child->flags & PM_REGION_ENABLED) {
                if (++found > 1) {
                    only = NULL;
                    break;
                }
                if (child->addr == 0 && mr->size >= child->size) {
                    only = child;
                }
            }
        }
        if (!found) {
            *next = NULL;
            return 0;
        }
        if (only) {
            *next = only;
            return 1;
        }
    }
    *next = mr;
    return 0;
}

const pm_region *pm_flatview_root(const pm_region *root)
{
    /* The walk is a function of the region alone, so it either ends or runs
     * into a loop (only through windows of size 0: any other loop renders
     * forever and is refused at the edit).  Floyd's cycle finding, no
     * memory: `fast` takes two steps for `slow`'s one; a walk that ends is
     * answered by `fast`, which gets there first.  If they meet, the first
     * region seen twice is where the loop begins: walked to from the root
     * and from the meeting point in step. */
    const pm_region *slow = root, *fast = root, *next;
    for (;;) {
        if (!root_step(fast, &next)) {
            return next;
        }
        if (!root_step(next, &fast)) {
            return fast;
        }
        (void)root_step(slow, &slow);
        if (slow == fast) {
            break;
        }
    }
    slow = root;
    while (slow != fast) {
        (void)root_step(slow, &slow);
        (void)root_step(fast, &fast);
    }
    return slow;
}

void *pm_region_user(const pm_region *r)
{
    return r->user;
}

void pm_ranges_free(pm_range *ranges)
{
    free(ranges);
}

pm_status pm_render_dispatch(const pm_region *root, uint32_t max_alias_visits,
                             unsigned page_bits, pm_stats *stats, pm_range **ranges,
                             size_t *n, size_t *failed, pm_dispatch **out)
{
    *out = NULL;
    *failed = 0;
    pm_status st = pm_render(root, max_alias_visits, ranges, n);
    if (st != PM_OK) {
        return st;
    }
    return pm_dispatch_build(page_bits, stats, PM_NIL, PM_NIL, *ranges, *n, failed, out);
}
