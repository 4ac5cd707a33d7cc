/*
 * qemu_ref.c - benchmark-only yardsticks for pymem's dispatch lookups.  Not
 * part of the library: benchmarks/qemu_ref/__init__.py builds it on demand.
 *
 * 1. QEMU 7.2's own lookup algorithm, written from scratch for this project
 *    from a reading of QEMU's system/physmem.c (no code taken from it): the
 *    radix walk over 512-entry nodes of 6/26-bit entries (phys_page_find),
 *    the covers-the-address check with a 128-bit size, the most-recently-used
 *    section (address_space_lookup_region), and the sub-page step, which goes
 *    from the section to its MemoryRegion, from there to the containing
 *    subpage_t and indexes its per-byte table of section numbers.  The data
 *    has QEMU's shapes: 64-byte sections holding a pointer to a separately
 *    allocated ~272-byte MemoryRegion (only the `subpage` flag is read), and a
 *    uint16_t per byte of a sub-page (8 KiB a page; uint32_t when a view has
 *    more sections than that holds, which QEMU itself cannot build).  The
 *    tables are filled from a pymem Dispatch's contents (its nodes, sections
 *    and sub-page pieces), so both answer from the same map.
 * 2. Floors: the best compare-based searches over the view's resolved
 *    boundaries (branch-free binary search; AVX2 transposed compare), and
 *    CPython builtins that do nothing but convert their arguments, for the
 *    Python-level ratios.
 * 3. A loop calling pymem's pm_dispatch_lookup once per address through its
 *    address, as a C user (a CPU loop) would; the same for pm_as_ldl_le and
 *    for the pair pm_rcu_read_lock/pm_rcu_read_unlock.
 * 4. QEMU 7.2's RCU read side and its address_space_ldl_le path, modelled
 *    from a reading of include/qemu/rcu.h, softmmu/physmem.c and
 *    memory_ldst.c.inc (again no code taken): see "the RCU read side" and
 *    "the load path" below for what each step is.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pyaddr.h"

#define L2_BITS 9
#define L2_SIZE 512
#define NIL ((1u << 26) - 1)

typedef struct {
    uint32_t skip : 6;
    uint32_t ptr : 26;
} PageEntry;

typedef PageEntry Node[L2_SIZE];

/* QEMU's RAMBlock up to the fields qemu_map_ram_ptr reads (an rcu_head and
 * the MemoryRegion pointer first). */
typedef struct {
    void *rcu[2];
    void *mr;
    uint8_t *host;
    uint8_t *colo_cache;
    uint64_t offset;
    uint64_t used_length;
    uint64_t max_length;
} RAMBlock;

/* The fields of QEMU's MemoryRegion that the lookup and the load path read,
 * at their 7.2 offsets on x86-64 as I read the struct (a 40-byte QOM Object
 * header, then the flags, the RAMBlock pointer, ...); the rest is padding. */
typedef struct {
    uint8_t object[40];
    bool romd_mode;                 /* 40 */
    bool ram;                       /* 41 */
    bool subpage;                   /* 42 */
    bool readonly;
    bool nonvolatile;
    bool rom_device;                /* 45 */
    bool flush_coalesced_mmio;
    uint8_t dirty_log_mask;
    bool is_iommu;                  /* 48 */
    RAMBlock *ram_block;            /* 56 */
    uint8_t middle[153 - 64];       /* owner, dev, ops, opaque, container, size, ... */
    bool ram_device;                /* 153 */
    uint8_t flags2[6];
    void *alias;                    /* 160 */
    uint8_t after[272 - 168];
} Region;

_Static_assert(offsetof(Region, subpage) == 42, "subpage at QEMU's offset");
_Static_assert(offsetof(Region, ram_block) == 56, "ram_block at QEMU's offset");
_Static_assert(offsetof(Region, alias) == 160, "alias at QEMU's offset");
_Static_assert(sizeof(Region) == 272, "a MemoryRegion is ~272 bytes");

typedef struct {
    __int128 size;                  /* 2^64 fits */
    Region *mr;
    void *fv;
    uint64_t offset_within_region;
    uint64_t offset_within_address_space;
    bool readonly, nonvolatile;
} Section;

_Static_assert(sizeof(Section) == 64, "QEMU's MemoryRegionSection is 64 bytes");

/* A sub-page: its MemoryRegion first, then one section number per byte. */
typedef struct {
    Region iomem;
    void *fv;
    uint64_t base;
    uint8_t table[];                /* uint16_t or uint32_t entries */
} Subpage;

struct QemuDispatch;

/* QEMU's FlatView and AddressSpace up to the pointers the load path follows
 * (as->current_map, then fv->dispatch). */
typedef struct {
    void *rcu[2];
    unsigned ref;
    void *ranges;
    unsigned nr, nr_allocated;
    struct QemuDispatch *dispatch;
    void *root;
} FlatView;

typedef struct {
    void *rcu[2];
    char *name;
    void *root;
    FlatView *current_map;
} AddressSpace;

typedef struct QemuDispatch {
    PyObject_HEAD
    PageEntry root;
    Node *nodes;
    Section *sections;
    Section *mru;
    Region *regions;                /* one per plain section */
    Subpage **subpages;             /* one per sub-page section, else NULL */
    RAMBlock *blocks;               /* one per plain section (attach_memory) */
    uint32_t nsections, nnodes;
    unsigned page_bits, levels;
    int wide;                       /* sub-page entries are uint32_t */
    FlatView fv;                    /* the view whose dispatch this is */
    AddressSpace as;                /* and an address space showing it */
} QemuDispatch;

static inline bool covers(const Section *s, uint64_t addr)
{
    /* A size of 2^64 covers everything; else start <= addr < start + size. */
    return (uint64_t)(s->size >> 64) != 0
        || addr - s->offset_within_address_space < (uint64_t)s->size;
}

static inline Section *page_find(const QemuDispatch *d, uint64_t addr, unsigned page_bits)
{
    PageEntry lp = d->root;
    uint64_t index = addr >> page_bits;
    int i = (int)d->levels;

    while (lp.skip && (i -= lp.skip) >= 0) {
        if (lp.ptr == NIL) {
            return &d->sections[0];
        }
        lp = d->nodes[lp.ptr][(index >> (i * L2_BITS)) & (L2_SIZE - 1)];
    }
    if (lp.skip) {
        return &d->sections[0];
    }
    return covers(&d->sections[lp.ptr], addr) ? &d->sections[lp.ptr] : &d->sections[0];
}

/* Four builds of the lookup: a page size fixed at compile time (x86) or read
 * from the dispatch (Arm's variable page size), and 16- or 32-bit sub-page
 * entries. */
#define DEFINE_LOOKUPS(NAME, PAGE_BITS, ENTRY)                                   \
static inline Section *NAME##_resolve(const QemuDispatch *d, Section *s,        \
                                      uint64_t addr)                            \
{                                                                               \
    if (s->mr->subpage) {                                                       \
        const Subpage *sp = (const Subpage *)((char *)s->mr                     \
                                              - offsetof(Subpage, iomem));      \
        uint64_t off = addr & ((UINT64_C(1) << (PAGE_BITS)) - 1);               \
        s = &d->sections[((const ENTRY *)sp->table)[off]];                      \
    }                                                                           \
    return s;                                                                   \
}                                                                               \
static inline Section *NAME##_mru(QemuDispatch *d, uint64_t addr)               \
{                                                                               \
    Section *s = __atomic_load_n(&d->mru, __ATOMIC_RELAXED);                    \
    if (!s || s == d->sections || !covers(s, addr)) {                           \
        s = page_find(d, addr, (PAGE_BITS));                                    \
        __atomic_store_n(&d->mru, s, __ATOMIC_RELAXED);                         \
    }                                                                           \
    return NAME##_resolve(d, s, addr);                                          \
}                                                                               \
static __attribute__((noinline)) Section *NAME##_call(QemuDispatch *d,          \
                                                      uint64_t addr)            \
{                                                                               \
    return NAME##_mru(d, addr);                                                 \
}                                                                               \
static void NAME##_many(QemuDispatch *d, const uint64_t *addrs, uint32_t *out,  \
                        size_t n, int mode)                                     \
{                                                                               \
    const Section *base = d->sections;                                          \
    switch (mode) {                                                             \
    case 0:                                                                     \
        for (size_t i = 0; i < n; i++) {                                        \
            out[i] = (uint32_t)(NAME##_mru(d, addrs[i]) - base);                \
        }                                                                       \
        break;                                                                  \
    case 1:                                                                     \
        for (size_t i = 0; i < n; i++) {                                        \
            Section *s = page_find(d, addrs[i], (PAGE_BITS));                   \
            out[i] = (uint32_t)(NAME##_resolve(d, s, addrs[i]) - base);         \
        }                                                                       \
        break;                                                                  \
    default:                                                                    \
        for (size_t i = 0; i < n; i++) {                                        \
            out[i] = (uint32_t)(NAME##_call(d, addrs[i]) - base);               \
        }                                                                       \
        break;                                                                  \
    }                                                                           \
}

DEFINE_LOOKUPS(x86_16, 12, uint16_t)
DEFINE_LOOKUPS(x86_32, 12, uint32_t)
DEFINE_LOOKUPS(vary_16, d->page_bits, uint16_t)
DEFINE_LOOKUPS(vary_32, d->page_bits, uint32_t)

/* ------------------------------------------------ the RCU read side
 *
 * QEMU 7.2's rcu_read_lock/rcu_read_unlock (include/qemu/rcu.h), modelled:
 * the thread's record is reached through a noinline getter (QEMU's
 * coroutine-TLS wrapper, get_ptr_rcu_reader); the outermost lock copies the
 * grace-period counter into the record, the last unlock stores 0 with
 * release order and then checks the `waiting` flag a writer sets to be
 * woken.  After each of those stores comes smp_mb_placeholder(): a full
 * fence in QEMU's default build, a compiler barrier when it is built with
 * membarrier (the writer then makes the fence with a system call).  QEMU is
 * an executable, where the record is a local-exec TLS variable; this module
 * is a shared object, so it uses initial-exec, the nearest it can have (one
 * more load).
 */
typedef struct {
    unsigned long ctr;
    bool waiting;
    unsigned depth;
    void *next, **prev;
} QemuRcuReader;

static __thread QemuRcuReader qemu_rcu_reader __attribute__((tls_model("initial-exec")));
static unsigned long qemu_rcu_gp_ctr = 1;
static unsigned long qemu_rcu_wakeups;   /* stands for qemu_event_set; never reached */

__attribute__((noipa)) static QemuRcuReader *qemu_rcu_reader_ptr(void)
{
    QemuRcuReader *p = &qemu_rcu_reader;
    __asm__ volatile("" : "+rm"(p));
    return p;
}

#define QEMU_FENCE() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define QEMU_COMPILER_BARRIER() __asm__ volatile("" ::: "memory")

#define DEFINE_QEMU_RCU(NAME, PLACEHOLDER)                                       \
static inline void NAME##_lock(void)                                            \
{                                                                               \
    QemuRcuReader *r = qemu_rcu_reader_ptr();                                   \
    if (r->depth++ > 0) {                                                       \
        return;                                                                 \
    }                                                                           \
    unsigned long ctr = __atomic_load_n(&qemu_rcu_gp_ctr, __ATOMIC_RELAXED);    \
    __atomic_store_n(&r->ctr, ctr, __ATOMIC_RELAXED);                           \
    PLACEHOLDER();                                                              \
}                                                                               \
static inline void NAME##_unlock(void)                                          \
{                                                                               \
    QemuRcuReader *r = qemu_rcu_reader_ptr();                                   \
    if (r->depth == 0) {                                                        \
        abort();   /* QEMU asserts */                                           \
    }                                                                           \
    if (--r->depth > 0) {                                                       \
        return;                                                                 \
    }                                                                           \
    __atomic_store_n(&r->ctr, 0, __ATOMIC_RELEASE);                             \
    PLACEHOLDER();                                                              \
    if (__builtin_expect(__atomic_load_n(&r->waiting, __ATOMIC_RELAXED), 0)) {  \
        __atomic_store_n(&r->waiting, false, __ATOMIC_RELAXED);                 \
        qemu_rcu_wakeups++;                                                     \
    }                                                                           \
}

DEFINE_QEMU_RCU(qemu_rcu_mb, QEMU_FENCE)
DEFINE_QEMU_RCU(qemu_rcu_membarrier, QEMU_COMPILER_BARRIER)

/* ------------------------------------------------------- the load path
 *
 * address_space_ldl_le of QEMU 7.2 (memory_ldst.c.inc with the softmmu
 * glue), modelled step by step: the RCU read lock; the address space's
 * current FlatView (an RCU pointer read) and its dispatch; the lookup with
 * sub-pages resolved (address_space_lookup_region, above); the offset in
 * the region and, for RAM, the length clamped to what is left of the
 * section (an Int128 subtraction and minimum); the IOMMU check
 * (memory_region_get_iommu follows aliases, then reads is_iommu); the
 * section handed back by value; Xen's checks (a global flag); whether the
 * region may be read directly (RAM that is no RAM device, or a ROM device in
 * romd mode); the host pointer from qemu_map_ram_ptr (a real call, with
 * ramblock_ptr's bounds assertion) and a 4-byte little-endian load; the
 * unlock.  Anything that would go to a device (or through an IOMMU, which
 * is not modelled) answers UINT64_MAX, as pymem's pm_as_ldl_le does.
 */
static bool qemu_xen_allowed;   /* xen_enabled() */

static inline bool qemu_read_is_direct(const Region *mr)
{
    return (mr->ram && !mr->ram_device) || (mr->rom_device && mr->romd_mode);
}

static inline const Region *qemu_get_iommu(const Region *mr)
{
    while (mr->alias) {
        mr = mr->alias;
    }
    return mr->is_iommu ? mr : NULL;
}

__attribute__((noipa)) static void *qemu_map_ram_ptr(RAMBlock *block, uint64_t addr)
{
    if (!block) {
        abort();   /* QEMU finds the block by ram_addr_t; not modelled */
    }
    if (qemu_xen_allowed && !block->host) {
        abort();
    }
    if (!(block->host && addr < block->used_length)) {
        abort();   /* ramblock_ptr's assertion */
    }
    return block->host + addr;
}

#define DEFINE_LOAD(NAME)                                                        \
static inline Section *NAME##_translate_internal(QemuDispatch *d, uint64_t addr, \
                                                 uint64_t *xlat, uint64_t *plen) \
{                                                                               \
    Section *s = NAME##_mru(d, addr);                                           \
    addr -= s->offset_within_address_space;                                     \
    *xlat = addr + s->offset_within_region;                                     \
    if (s->mr->ram) {                                                           \
        __int128 diff = s->size - (__int128)addr;                               \
        *plen = diff < (__int128)*plen ? (uint64_t)diff : *plen;                \
    }                                                                           \
    return s;                                                                   \
}                                                                               \
static inline Section NAME##_do_translate(FlatView *fv, uint64_t addr,          \
                                          uint64_t *xlat, uint64_t *plen)       \
{                                                                               \
    Section *s = NAME##_translate_internal(fv->dispatch, addr, xlat, plen);     \
    if (__builtin_expect(qemu_get_iommu(s->mr) != NULL, 0)) {                   \
        /* IOMMU translation is not modelled: no region (the caller's) */       \
        Section none = { .mr = NULL };                                          \
        return none;                                                            \
    }                                                                           \
    return *s;                                                                  \
}                                                                               \
static inline Region *NAME##_flatview_translate(FlatView *fv, uint64_t addr,    \
                                                uint64_t *xlat, uint64_t *plen) \
{                                                                               \
    Section section = NAME##_do_translate(fv, addr, xlat, plen);                \
    if (!section.mr) {                                                          \
        return NULL;                                                            \
    }                                                                           \
    if (qemu_xen_allowed && qemu_read_is_direct(section.mr)) {                  \
        uint64_t page = (addr & ~UINT64_C(0xfff)) + 0x1000;                     \
        *plen = page - addr < *plen ? page - addr : *plen;                      \
    }                                                                           \
    return section.mr;                                                          \
}                                                                               \
__attribute__((noipa)) static uint64_t NAME##_ldl_le(AddressSpace *as,           \
                                                        uint64_t addr,          \
                                                        uint32_t attrs,         \
                                                        int *result)            \
{                                                                               \
    uint64_t addr1, l = 4, val;                                                 \
    int r;                                                                      \
    (void)attrs;                                                                \
    qemu_rcu_mb_lock();                                                         \
    FlatView *fv = __atomic_load_n(&as->current_map, __ATOMIC_CONSUME);         \
    Region *mr = NAME##_flatview_translate(fv, addr, &addr1, &l);               \
    if (!mr || l < 4 || !qemu_read_is_direct(mr)) {                             \
        val = UINT64_MAX;   /* memory_region_dispatch_read */                   \
        r = 1;                                                                  \
    } else {                                                                    \
        const uint8_t *ptr = qemu_map_ram_ptr(mr->ram_block, addr1);            \
        uint32_t v;                                                             \
        memcpy(&v, ptr, 4);   /* ldl_le_p on a little-endian host */            \
        val = v;                                                                \
        r = 0;                                                                  \
    }                                                                           \
    if (result) {                                                               \
        *result = r;                                                            \
    }                                                                           \
    qemu_rcu_mb_unlock();                                                       \
    return val;                                                                 \
}                                                                               \
static void NAME##_ldl_many(QemuDispatch *d, const uint64_t *addrs,             \
                            uint64_t *out, size_t n)                            \
{                                                                               \
    for (size_t i = 0; i < n; i++) {                                            \
        out[i] = NAME##_ldl_le(&d->as, addrs[i], 0, NULL);                      \
    }                                                                           \
}

DEFINE_LOAD(x86_16)
DEFINE_LOAD(x86_32)
DEFINE_LOAD(vary_16)
DEFINE_LOAD(vary_32)

static void qemu_ldl_many(QemuDispatch *d, const uint64_t *addrs, uint64_t *out, size_t n)
{
    if (d->page_bits == 12) {
        (d->wide ? x86_32_ldl_many : x86_16_ldl_many)(d, addrs, out, n);
    } else {
        (d->wide ? vary_32_ldl_many : vary_16_ldl_many)(d, addrs, out, n);
    }
}

static void qemu_many(QemuDispatch *d, const uint64_t *addrs, uint32_t *out, size_t n,
                      int mode)
{
    if (d->page_bits == 12) {
        (d->wide ? x86_32_many : x86_16_many)(d, addrs, out, n, mode);
    } else {
        (d->wide ? vary_32_many : vary_16_many)(d, addrs, out, n, mode);
    }
}

/* ------------------------------------------------------------ building */

static void qd_dealloc(QemuDispatch *d)
{
    if (d->subpages) {
        for (uint32_t i = 0; i < d->nsections; i++) {
            free(d->subpages[i]);
        }
    }
    free(d->subpages);
    free(d->blocks);
    free(d->regions);
    free(d->sections);
    free(d->nodes);
    Py_TYPE(d)->tp_free((PyObject *)d);
}

static int get_u64(PyObject *seq, Py_ssize_t i, uint64_t *v)
{
    PyObject *item = PySequence_GetItem(seq, i);
    if (!item) {
        return -1;
    }
    *v = PyLong_AsUnsignedLongLong(item);
    Py_DECREF(item);
    return PyErr_Occurred() ? -1 : 0;
}

/*
 * QemuDispatch(page_bits, levels, root_ptr, root_skip, nodes, sections, pieces)
 *   nodes: bytes, 512 little-endian uint32 (skip << 26 | ptr) per node
 *   sections: sequence of (start, last, is_subpage) per section
 *   pieces: dict {sub-page section index: [(first, last, section), ...]}
 */
static PyObject *qd_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    unsigned page_bits, levels, root_ptr, root_skip;
    Py_buffer nodes;
    PyObject *sections, *pieces;
    (void)kwds;
    if (!PyArg_ParseTuple(args, "IIIIy*OO!", &page_bits, &levels, &root_ptr, &root_skip,
                          &nodes, &sections, &PyDict_Type, &pieces)) {
        return NULL;
    }
    QemuDispatch *d = (QemuDispatch *)type->tp_alloc(type, 0);
    Py_ssize_t ns = PySequence_Size(sections);
    if (!d || ns <= 0 || page_bits < 10 || page_bits > 16) {
        if (d && !PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "bad page_bits or no sections");
        }
        PyBuffer_Release(&nodes);
        Py_XDECREF(d);
        return NULL;
    }
    d->page_bits = page_bits;
    d->levels = levels;
    d->root.ptr = root_ptr;
    d->root.skip = root_skip;
    d->nsections = (uint32_t)ns;
    d->nnodes = (uint32_t)(nodes.len / (L2_SIZE * 4));
    d->wide = ns > 0xFFFF;
    d->nodes = malloc((d->nnodes ? d->nnodes : 1) * sizeof(Node));
    d->sections = aligned_alloc(64, (size_t)ns * sizeof(Section));
    d->regions = calloc((size_t)ns, sizeof(Region));
    d->subpages = calloc((size_t)ns, sizeof(Subpage *));
    if (!d->nodes || !d->sections || !d->regions || !d->subpages) {
        PyBuffer_Release(&nodes);
        Py_DECREF(d);
        return PyErr_NoMemory();
    }
    const uint8_t *raw = nodes.buf;
    for (uint32_t k = 0; k < d->nnodes * L2_SIZE; k++) {
        uint32_t v;
        memcpy(&v, raw + 4 * k, 4);
        d->nodes[k / L2_SIZE][k % L2_SIZE] = (PageEntry){ .skip = v >> 26, .ptr = v & NIL };
    }
    PyBuffer_Release(&nodes);
    memset(d->sections, 0, (size_t)ns * sizeof(Section));
    size_t page = (size_t)1 << page_bits, entry = d->wide ? 4 : 2;
    for (Py_ssize_t i = 0; i < ns; i++) {
        PyObject *t = PySequence_GetItem(sections, i);
        uint64_t start, last, is_sub;
        int bad = !t || get_u64(t, 0, &start) < 0 || get_u64(t, 1, &last) < 0
                  || get_u64(t, 2, &is_sub) < 0;
        Py_XDECREF(t);
        if (bad || last < start) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_ValueError, "bad section");
            }
            Py_DECREF(d);
            return NULL;
        }
        Section *s = &d->sections[i];
        s->size = (__int128)(last - start) + 1;   /* 2^64 for the whole space */
        s->offset_within_address_space = start;
        if (is_sub) {
            Subpage *sp = calloc(1, sizeof(Subpage) + page * entry);
            if (!sp) {
                Py_DECREF(d);
                return PyErr_NoMemory();
            }
            sp->iomem.subpage = true;
            sp->base = start;
            d->subpages[i] = sp;
            s->mr = &sp->iomem;
        } else {
            s->mr = &d->regions[i];
        }
    }
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(pieces, &pos, &key, &value)) {
        Py_ssize_t idx = PyLong_AsSsize_t(key);
        if (idx < 0 || idx >= ns || !d->subpages[idx]) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_ValueError, "pieces of a section that is no sub-page");
            }
            Py_DECREF(d);
            return NULL;
        }
        Subpage *sp = d->subpages[idx];
        Py_ssize_t np = PySequence_Size(value);
        for (Py_ssize_t j = 0; j < np; j++) {
            PyObject *p = PySequence_GetItem(value, j);
            uint64_t first, last, sec;
            int bad = !p || get_u64(p, 0, &first) < 0 || get_u64(p, 1, &last) < 0
                      || get_u64(p, 2, &sec) < 0;
            Py_XDECREF(p);
            if (bad || last >= page || first > last || sec >= (uint64_t)ns) {
                if (!PyErr_Occurred()) {
                    PyErr_SetString(PyExc_ValueError, "bad sub-page piece");
                }
                Py_DECREF(d);
                return NULL;
            }
            for (uint64_t b = first; b <= last; b++) {
                if (d->wide) {
                    ((uint32_t *)sp->table)[b] = (uint32_t)sec;
                } else {
                    ((uint16_t *)sp->table)[b] = (uint16_t)sec;
                }
            }
        }
    }
    d->fv.dispatch = d;
    d->as.current_map = &d->fv;
    return (PyObject *)d;
}

/* addrs (uint64s) and out (n items of out_width bytes) of a *_many call;
 * on success the caller releases both. */
static int get_buffers(PyObject *a, PyObject *o, Py_buffer *addrs, Py_buffer *out, size_t *n,
                       size_t out_width)
{
    if (PyObject_GetBuffer(a, addrs, PyBUF_SIMPLE) < 0) {
        return -1;
    }
    if (PyObject_GetBuffer(o, out, PyBUF_WRITABLE) < 0) {
        PyBuffer_Release(addrs);
        return -1;
    }
    *n = (size_t)addrs->len / 8;
    if ((size_t)out->len / out_width < *n) {
        PyBuffer_Release(addrs);
        PyBuffer_Release(out);
        PyErr_SetString(PyExc_ValueError, "out is shorter than addrs");
        return -1;
    }
    return 0;
}

/* lookup_many(addrs, out, mode): 0 walk + MRU in a loop, 1 walk without MRU,
 * 2 one non-inlined call (with MRU) per address. */
static PyObject *qd_lookup_many(QemuDispatch *d, PyObject *args)
{
    PyObject *a, *o;
    int mode;
    Py_buffer addrs, out;
    size_t n;
    if (!PyArg_ParseTuple(args, "OOi", &a, &o, &mode) ||
        get_buffers(a, o, &addrs, &out, &n, 4) < 0) {
        return NULL;
    }
    qemu_many(d, addrs.buf, out.buf, n, mode);
    PyBuffer_Release(&addrs);
    PyBuffer_Release(&out);
    Py_RETURN_NONE;
}

/* PM_SECTION_* of pymem.h, for attach_memory */
#define SECTION_RAM 2
#define SECTION_READONLY 4
#define SECTION_ROMD 8
#define SECTION_IOMMU 16

/*
 * attach_memory([(index, offset_in_region, host_address, flags, used_length)]):
 * make plain sections RAM, ROM or ROM devices over the given host memory (a
 * RAMBlock each, used_length bytes), as QEMU's regions would be.  The
 * others stay MMIO.
 */
static PyObject *qd_attach_memory(QemuDispatch *d, PyObject *list)
{
    Py_ssize_t n = PySequence_Size(list);
    if (n < 0) {
        return NULL;
    }
    if (!d->blocks) {
        d->blocks = calloc(d->nsections, sizeof(RAMBlock));
        if (!d->blocks) {
            return PyErr_NoMemory();
        }
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *t = PySequence_GetItem(list, i);
        uint64_t index, offset, host, flags, used;
        int bad = !t || get_u64(t, 0, &index) < 0 || get_u64(t, 1, &offset) < 0
                  || get_u64(t, 2, &host) < 0 || get_u64(t, 3, &flags) < 0
                  || get_u64(t, 4, &used) < 0;
        Py_XDECREF(t);
        if (bad || index >= d->nsections || d->subpages[index]) {
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_ValueError, "bad memory entry");
            }
            return NULL;
        }
        Section *s = &d->sections[index];
        Region *mr = &d->regions[index];
        RAMBlock *b = &d->blocks[index];
        s->offset_within_region = offset;
        s->readonly = (flags & SECTION_READONLY) != 0;
        mr->ram = host && (flags & SECTION_RAM);
        mr->readonly = s->readonly;
        mr->rom_device = mr->romd_mode = host && (flags & SECTION_ROMD);
        mr->is_iommu = (flags & SECTION_IOMMU) != 0;
        b->mr = mr;
        b->host = (uint8_t *)(uintptr_t)host;
        b->used_length = b->max_length = used;
        mr->ram_block = host ? b : NULL;
    }
    Py_RETURN_NONE;
}

/* ldl_many(addrs, out): out[i] = address_space_ldl_le(addrs[i]) (uint64s;
 * UINT64_MAX where the load would go to a device). */
static PyObject *qd_ldl_many(QemuDispatch *d, PyObject *args)
{
    PyObject *a, *o;
    Py_buffer addrs, out;
    size_t n;
    if (!d->blocks) {
        PyErr_SetString(PyExc_ValueError, "attach_memory first");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "OO", &a, &o) ||
        get_buffers(a, o, &addrs, &out, &n, 8) < 0) {
        return NULL;
    }
    qemu_ldl_many(d, addrs.buf, out.buf, n);
    PyBuffer_Release(&addrs);
    PyBuffer_Release(&out);
    Py_RETURN_NONE;
}

static PyMethodDef qd_methods[] = {
    { "attach_memory", (PyCFunction)qd_attach_memory, METH_O,
      "attach_memory([(index, offset, host, flags, used_length)]): RAM, ROM and ROM "
      "devices for the load path." },
    { "ldl_many", (PyCFunction)qd_ldl_many, METH_VARARGS,
      "ldl_many(addrs, out): QEMU's address_space_ldl_le of each address." },
    { "lookup_many", (PyCFunction)qd_lookup_many, METH_VARARGS,
      "lookup_many(addrs, out, mode): QEMU's lookup of each address "
      "(mode 0: walk + MRU inlined, 1: walk without MRU, 2: one call each)." },
    { NULL, NULL, 0, NULL },
};

static PyTypeObject QemuDispatchType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "_qemu_ref.QemuDispatch",
    .tp_basicsize = sizeof(QemuDispatch),
    .tp_dealloc = (destructor)qd_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = qd_new,
    .tp_methods = qd_methods,
    .tp_doc = "QEMU 7.2's dispatch lookup over a pymem Dispatch's tables.",
};

/* --------------------------------------------------------------- floors */

static void bsearch_many(const uint64_t *bounds, const uint32_t *secs, uint32_t nb,
                         const uint64_t *addrs, uint32_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t a = addrs[i];
        uint32_t base = 0, len = nb;
        while (len > 1) {
            uint32_t half = len / 2;
            base = bounds[base + half] <= a ? base + half : base;
            len -= half;
        }
        out[i] = secs[base];
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_AVX2_FLOOR 1

/* Four addresses at once against every boundary, broadcast in turn: the
 * count of boundaries <= the address, minus one, is its boundary index.
 * Two accumulators halve the dependency chain. */
__attribute__((target("avx2")))
static void avx2_many(const uint64_t *bounds, const uint32_t *secs, uint32_t nb,
                      const uint64_t *addrs, uint32_t *out, size_t n)
{
    const __m256i flip = _mm256_set1_epi64x((long long)0x8000000000000000ULL);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        __m256i a = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(addrs + i)), flip);
        __m256i c0 = _mm256_setzero_si256(), c1 = _mm256_setzero_si256();
        uint32_t k = 1;
        for (; k + 2 <= nb; k += 2) {
            __m256i b0 = _mm256_set1_epi64x((long long)(bounds[k] ^ 0x8000000000000000ULL));
            __m256i b1 = _mm256_set1_epi64x((long long)(bounds[k + 1] ^ 0x8000000000000000ULL));
            c0 = _mm256_sub_epi64(c0, _mm256_cmpgt_epi64(b0, a));
            c1 = _mm256_sub_epi64(c1, _mm256_cmpgt_epi64(b1, a));
        }
        for (; k < nb; k++) {
            __m256i b0 = _mm256_set1_epi64x((long long)(bounds[k] ^ 0x8000000000000000ULL));
            c0 = _mm256_sub_epi64(c0, _mm256_cmpgt_epi64(b0, a));
        }
        /* c counts the boundaries above the address */
        uint64_t above[4];
        _mm256_storeu_si256((__m256i *)above, _mm256_add_epi64(c0, c1));
        for (int j = 0; j < 4; j++) {
            out[i + j] = secs[nb - 1 - above[j]];
        }
    }
    bsearch_many(bounds, secs, nb, addrs + i, out + i, n - i);
}
#endif

static int cpu_has_avx2(void)
{
#ifdef HAVE_AVX2_FLOOR
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
#else
    return 0;
#endif
}

/* floor_many(bounds, secs, addrs, out, kind): kind 0 binary search, 1 AVX2. */
static PyObject *floor_many(PyObject *module, PyObject *args)
{
    PyObject *b, *s, *a, *o;
    int kind;
    Py_buffer bounds, secs, addrs, out;
    size_t n;
    (void)module;
    if (!PyArg_ParseTuple(args, "OOOOi", &b, &s, &a, &o, &kind)) {
        return NULL;
    }
    if (kind == 1 && !cpu_has_avx2()) {
        PyErr_SetString(PyExc_RuntimeError, "this CPU has no AVX2");
        return NULL;
    }
    if (PyObject_GetBuffer(b, &bounds, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(s, &secs, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&bounds);
        return NULL;
    }
    uint32_t nb = (uint32_t)(bounds.len / 8);
    if (nb == 0 || (size_t)secs.len / 4 != nb || get_buffers(a, o, &addrs, &out, &n, 4) < 0) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "bounds and secs must match and be non-empty");
        }
        PyBuffer_Release(&bounds);
        PyBuffer_Release(&secs);
        return NULL;
    }
#ifdef HAVE_AVX2_FLOOR
    if (kind == 1) {
        avx2_many(bounds.buf, secs.buf, nb, addrs.buf, out.buf, n);
    } else
#endif
    {
        bsearch_many(bounds.buf, secs.buf, nb, addrs.buf, out.buf, n);
    }
    PyBuffer_Release(&bounds);
    PyBuffer_Release(&secs);
    PyBuffer_Release(&addrs);
    PyBuffer_Release(&out);
    Py_RETURN_NONE;
}

typedef uint32_t (*lookup_fn)(void *d, uint64_t addr);
typedef uint64_t (*load_fn)(void *as, uint64_t addr);

/* (fn_address, object_address, addrs, out): out[i] = fn(object, addrs[i]),
 * one call each, as a C CPU loop calls pymem: a lookup_fn filling uint32s
 * or, wide, a load_fn filling uint64s. */
static PyObject *call_each(PyObject *args, int wide)
{
    unsigned long long fn, obj;
    PyObject *a, *o;
    Py_buffer addrs, out;
    size_t n;
    if (!PyArg_ParseTuple(args, "KKOO", &fn, &obj, &a, &o) ||
        get_buffers(a, o, &addrs, &out, &n, wide ? 8 : 4) < 0) {
        return NULL;
    }
    void *object = (void *)(uintptr_t)obj;
    const uint64_t *in = addrs.buf;
    if (wide) {
        load_fn f = (load_fn)(uintptr_t)fn;
        uint64_t *res = out.buf;
        for (size_t i = 0; i < n; i++) {
            res[i] = f(object, in[i]);
        }
    } else {
        lookup_fn f = (lookup_fn)(uintptr_t)fn;
        uint32_t *res = out.buf;
        for (size_t i = 0; i < n; i++) {
            res[i] = f(object, in[i]);
        }
    }
    PyBuffer_Release(&addrs);
    PyBuffer_Release(&out);
    Py_RETURN_NONE;
}

/* call_many(fn, dispatch, addrs, out): a section index (uint32) per address. */
static PyObject *call_many(PyObject *module, PyObject *args)
{
    (void)module;
    return call_each(args, 0);
}

/* call_ldl_many(fn, as, addrs, out): pm_as_ldl_le's value (uint64) per address. */
static PyObject *call_ldl_many(PyObject *module, PyObject *args)
{
    (void)module;
    return call_each(args, 1);
}

typedef void (*void_fn)(void);

/* rcu_pairs(n, mode): n read-side lock+unlock pairs; mode 0 QEMU's default
 * build (a fence after each store), 1 QEMU built with membarrier (compiler
 * barriers).  call_rcu_pairs(lock, unlock, n): the same through pymem's
 * pm_rcu_read_lock/unlock, one call each. */
static PyObject *rcu_pairs(PyObject *module, PyObject *args)
{
    Py_ssize_t n;
    int mode;
    (void)module;
    if (!PyArg_ParseTuple(args, "ni", &n, &mode)) {
        return NULL;
    }
    if (mode == 0) {
        for (Py_ssize_t i = 0; i < n; i++) {
            qemu_rcu_mb_lock();
            qemu_rcu_mb_unlock();
        }
    } else {
        for (Py_ssize_t i = 0; i < n; i++) {
            qemu_rcu_membarrier_lock();
            qemu_rcu_membarrier_unlock();
        }
    }
    Py_RETURN_NONE;
}

static PyObject *call_rcu_pairs(PyObject *module, PyObject *args)
{
    unsigned long long lock, unlock;
    Py_ssize_t n;
    (void)module;
    if (!PyArg_ParseTuple(args, "KKn", &lock, &unlock, &n)) {
        return NULL;
    }
    void_fn l = (void_fn)(uintptr_t)lock, u = (void_fn)(uintptr_t)unlock;
    for (Py_ssize_t i = 0; i < n; i++) {
        l();
        u();
    }
    Py_RETURN_NONE;
}

/* The Python-level floors: as cheap as a builtin taking an address can be. */
static PyObject *noop(PyObject *module, PyObject *arg)
{
    (void)module;
    (void)arg;
    Py_RETURN_NONE;
}

static PyObject *convert_only(PyObject *module, PyObject *arg)
{
    uint64_t addr;
    (void)module;
    if (pm_address_arg(arg, &addr) < 0) {
        return NULL;
    }
    return PyLong_FromUnsignedLong((unsigned long)(addr & 1));
}

/* The same with CPython's documented conversion (PyLong_AsUnsignedLongLong). */
static PyObject *convert_only_std(PyObject *module, PyObject *arg)
{
    uint64_t addr;
    (void)module;
    if (pm_address_arg_slow(arg, &addr) < 0) {
        return NULL;
    }
    return PyLong_FromUnsignedLong((unsigned long)(addr & 1));
}

static PyObject *tuple_of(uint64_t addr, uint64_t len)
{
    PyObject *t = PyTuple_New(3);
    if (!t) {
        return NULL;
    }
    PyTuple_SET_ITEM(t, 0, PyLong_FromUnsignedLong((unsigned long)(addr & 1)));
    PyTuple_SET_ITEM(t, 1, PyLong_FromUnsignedLongLong(addr));
    PyTuple_SET_ITEM(t, 2, PyLong_FromUnsignedLongLong(len));
    if (PyErr_Occurred()) {
        Py_DECREF(t);
        return NULL;
    }
    return t;
}

/* (addr, length=1) -> a plain 3-tuple; `slow`: convert with the documented call. */
static PyObject *tuple_call(PyObject *const *args, Py_ssize_t nargs, int slow)
{
    uint64_t addr, len = 1;
    int (*conv)(PyObject *, uint64_t *) = slow ? pm_address_arg_slow : pm_address_arg;
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "expected (addr, length=1)");
        return NULL;
    }
    if (conv(args[0], &addr) < 0 || (nargs == 2 && conv(args[1], &len) < 0)) {
        return NULL;
    }
    return tuple_of(addr, len);
}

static PyObject *plain_tuple(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    return tuple_call(args, nargs, 0);
}

static PyObject *plain_tuple_std(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    return tuple_call(args, nargs, 1);
}

static PyObject *has_avx2(PyObject *module, PyObject *unused)
{
    (void)module;
    (void)unused;
    return PyBool_FromLong(cpu_has_avx2());
}

static PyMethodDef module_methods[] = {
    { "floor_many", floor_many, METH_VARARGS,
      "floor_many(bounds, secs, addrs, out, kind): 0 binary search, 1 AVX2 transposed." },
    { "call_many", call_many, METH_VARARGS,
      "call_many(fn, obj, addrs, out): out[i] = fn(obj, addrs[i]), one call each." },
    { "call_ldl_many", call_ldl_many, METH_VARARGS,
      "call_ldl_many(fn, as, addrs, out): out[i] = fn(as, addrs[i]) (uint64), one call each." },
    { "rcu_pairs", rcu_pairs, METH_VARARGS,
      "rcu_pairs(n, mode): n QEMU read-side lock+unlock pairs (0: fences, 1: membarrier build)." },
    { "call_rcu_pairs", call_rcu_pairs, METH_VARARGS,
      "call_rcu_pairs(lock, unlock, n): n calls of each function, alternating." },
    { "noop", noop, METH_O, "Takes one argument, does nothing." },
    { "convert_only", convert_only, METH_O,
      "Converts an address as pymem's builtins do; returns a small int." },
    { "plain_tuple", (PyCFunction)(void (*)(void))plain_tuple, METH_FASTCALL,
      "Converts (addr, length=1); returns a plain 3-tuple." },
    { "convert_only_std", convert_only_std, METH_O,
      "convert_only with PyLong_AsUnsignedLongLong." },
    { "plain_tuple_std", (PyCFunction)(void (*)(void))plain_tuple_std, METH_FASTCALL,
      "plain_tuple with PyLong_AsUnsignedLongLong." },
    { "has_avx2", has_avx2, METH_NOARGS, "Whether this CPU runs the AVX2 floor." },
    { NULL, NULL, 0, NULL },
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_qemu_ref",
    "Benchmark-only: QEMU 7.2's lookup algorithm and the floors (see qemu_ref.c).",
    -1, module_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__qemu_ref(void)
{
    if (PyType_Ready(&QemuDispatchType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddObjectRef(m, "QemuDispatch", (PyObject *)&QemuDispatchType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
