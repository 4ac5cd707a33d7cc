/*
 * pymem.h - the whole C API of pymem's core, and nothing else.
 *
 * pymem/_build.py feeds this file to cffi's cdef, so it must stay plain C99 that
 * cdef can parse: no macros with arguments, no includes, no inline code.  Every
 * function either returns a pm_status or cannot fail.  Nothing here prints,
 * aborts or keeps global state, except the RCU reader registry.
 */
#ifndef PYMEM_H
#define PYMEM_H

#include <stddef.h>
#include <stdint.h>

/* Nothing declared here is exported from the module's dynamic symbol table:
 * Python reaches it through cffi (pymem._native's lib) and the fast path
 * through addresses taken from there, so calls between the core's files bind
 * directly instead of through the PLT.  (cdef skips these lines.) */
#pragma GCC visibility push(hidden)

/* ------------------------------------------------------------------ status */

typedef enum pm_status {
    PM_OK = 0,
    PM_ERR_NOMEM = 1,          /* an allocation failed */
    PM_ERR_ORDER = 2,          /* ranges not in address order or overlapping */
    PM_ERR_SIZE = 3,           /* empty range, or one wrapping past 2^64 */
    PM_ERR_TOO_MANY_SECTIONS = 4, /* section index would not fit an entry */
    PM_ERR_TOO_MANY_NODES = 5, /* node index would not fit an entry */
    PM_ERR_PAGE_BITS = 6,      /* page_bits outside 10..16 */
    PM_ERR_STATE = 7,          /* call not valid in the object's state */
    PM_ERR_IN_READER = 8,      /* synchronize called inside a read-side section */
    PM_ERR_RANGE = 9,          /* index or address out of range */
    PM_ERR_LOOP = 10,          /* an alias entered too often on one render path */
    PM_ERR_RESOURCE = 11       /* a system resource ran out (thread-specific keys) */
} pm_status;

/* ---------------------------------------------------------------- dispatch */

/*
 * A dispatch is the lookup structure of one FlatView, built exactly as QEMU's
 * AddressSpaceDispatch so that section and node numbers are QEMU's: a table of
 * sections (#0 is "unassigned"), sub-page sections for partial pages, and a
 * radix tree of 512-entry nodes, 9 bits per level, compacted after building.
 */

typedef struct pm_dispatch pm_dispatch;

/* Counts live dispatches of one owner (a MemorySystem); optional. */
typedef struct pm_stats {
    long live_dispatches;
    long live_address_spaces;
} pm_stats;

/* Section flags.  The dispatch stores them; only SUBPAGE is its own. */
#define PM_SECTION_SUBPAGE 1     /* a page-sized sub-page container */
#define PM_SECTION_RAM 2         /* reads and writes go straight to host memory */
#define PM_SECTION_READONLY 4    /* writes are dropped (ROM, read-only alias) */
#define PM_SECTION_ROMD 8        /* ROM device in romd mode: reads direct */
#define PM_SECTION_IOMMU 16      /* an IOMMU region: translate, then retry */
#define PM_SECTION_NONVOLATILE 32

#define PM_DIRTY_VGA 1
#define PM_DIRTY_CODE 2
#define PM_DIRTY_MIGRATION 4
#define PM_DIRTY_SNAPSHOT 8   /* pymem's own client: pymem/snapshot.py */

#define PM_NIL 67108863          /* 2^26 - 1: the largest ptr an entry holds */

/* One flat range handed to the builder, or one section read back. */
typedef struct pm_range {
    uint64_t start;     /* first address in the address space */
    uint64_t last;      /* last address, inclusive (a size of 2^64 fits) */
    uint64_t offset;    /* offset of start within the region */
    uint32_t region;    /* the caller's region id */
    uint32_t flags;     /* PM_SECTION_* */
    uint8_t *host;      /* the region's memory for RAM/ROM, else NULL */
    uint8_t *dirty;     /* the region's per-page dirty bytes, or NULL */
    uint32_t dirty_mask; /* PM_DIRTY_* bits a write through this range sets */
    uint32_t dirty_page_bits; /* the page size of `dirty`'s bytes (log2) */
    void *user;         /* the caller's pointer for the region (pymem: the
                           region object, kept alive by the FlatView), or NULL */
    uint64_t dirty_pages; /* how many bytes `dirty` holds: writes past them
                             mark nothing */
} pm_range;

pm_status pm_dispatch_new(unsigned page_bits, pm_stats *stats, pm_dispatch **out);
/* Lower the section and node limits below the entry format's (for tests). */
pm_status pm_dispatch_set_limits(pm_dispatch *d, uint32_t max_sections,
                                 uint32_t max_nodes);
/* Add one flat range; ranges must come in address order, without overlap. */
pm_status pm_dispatch_add(pm_dispatch *d, const pm_range *range);
/* new + set_limits + add of each range + commit, in one call (one GIL
 * release from Python).  On failure nothing is left allocated, *out is NULL
 * and *failed is the index of the range that failed (n if none did). */
pm_status pm_dispatch_build(unsigned page_bits, pm_stats *stats, uint32_t max_sections,
                            uint32_t max_nodes, const pm_range *ranges, size_t n,
                            size_t *failed, pm_dispatch **out);
/* Finish building: compact the radix tree.  Lookups need a committed dispatch. */
pm_status pm_dispatch_commit(pm_dispatch *d);
void pm_dispatch_free(pm_dispatch *d);
/* pm_dispatch_free for ffi.gc, as functools.partial(pm_dispatch_release,
 * stats): the partial keeps the stats the dispatch counts itself in alive
 * until it is freed, and runs no Python code, so no signal can skip it. */
void pm_dispatch_release(pm_stats *stats, pm_dispatch *d);

/* Lookups (committed dispatch).  The result is a section index, sub-pages resolved. */
uint32_t pm_dispatch_lookup(pm_dispatch *d, uint64_t addr);
void pm_dispatch_lookup_many(pm_dispatch *d, const uint64_t *addrs,
                             uint32_t *sections, size_t n);
/* The same answers without SIMD (the path CPUs without AVX2 take; for tests). */
void pm_dispatch_lookup_many_scalar(pm_dispatch *d, const uint64_t *addrs,
                                    uint32_t *sections, size_t n);
/* Which path pm_dispatch_lookup_many takes on this dispatch and CPU: a
 * radix walk (large views), a search over the resolved boundaries (views of
 * at most 256), or the AVX2 compare over them (the smallest views, where the
 * CPU has AVX2); 0 before commit. */
#define PM_BATCH_RADIX 1
#define PM_BATCH_BOUNDS 2
#define PM_BATCH_AVX2 3
#define PM_BATCH_ONE_LEVEL 4
uint32_t pm_dispatch_batch_path(const pm_dispatch *d);
/* Section, offset in region, and the length from addr that stays inside it. */
uint32_t pm_dispatch_translate(pm_dispatch *d, uint64_t addr, uint64_t len,
                               uint64_t *offset_in_region, uint64_t *plen);

/* Introspection, for printing and tests. */
uint32_t pm_dispatch_page_bits(const pm_dispatch *d);
uint32_t pm_dispatch_levels(const pm_dispatch *d);
uint32_t pm_dispatch_section_count(const pm_dispatch *d);
pm_status pm_dispatch_section(const pm_dispatch *d, uint32_t index, pm_range *out);
uint32_t pm_dispatch_node_count(const pm_dispatch *d);
/* Fills skips[512] and ptrs[512] of node `index`. */
pm_status pm_dispatch_node(const pm_dispatch *d, uint32_t index,
                           uint8_t *skips, uint32_t *ptrs);
void pm_dispatch_root(const pm_dispatch *d, uint32_t *ptr, uint32_t *skip);
/* The most recently used section (a page-level one: sub-pages unresolved). */
uint32_t pm_dispatch_mru(const pm_dispatch *d);
/* A sub-page section's pieces: offsets within the page and their sections. */
uint32_t pm_dispatch_subpage_pieces(const pm_dispatch *d, uint32_t section,
                                    uint32_t *firsts, uint32_t *lasts,
                                    uint32_t *sections, uint32_t max);

/* ----------------------------------------------------------------- regions */

/*
 * The C mirror of a region tree: what rendering reads, nothing else.  Each
 * Python MemoryRegion owns one node and writes every edit through to it; the
 * node holds no references (a container's Python object keeps its
 * subregions, an alias its target, so their nodes, alive), and freeing a node
 * touches no other.  Subregions are kept in render order reversed: index 0 is
 * rendered last (lowest priority, oldest among equals).
 */
typedef struct pm_region pm_region;

/* What a region is (given once, when the node is made). */
#define PM_REGION_TERMINATES 1   /* renders itself: not a container or alias */
#define PM_REGION_MEMORY 2       /* RAM or ROM: the section is PM_SECTION_RAM */
#define PM_REGION_ROM_DEVICE 4
#define PM_REGION_IOMMU 8
/* Its switches (pm_region_set_flag). */
#define PM_REGION_ENABLED 16
#define PM_REGION_READONLY 32    /* for it and everything rendered through it */
#define PM_REGION_NONVOLATILE 64 /* likewise */
#define PM_REGION_ROMD 128       /* ROM device in romd mode */

/* A region at offset 0, with no subregions: `flags` says what it is and its
 * switches; size_is_2_64 means a size of 2^64 (`size` is then ignored).
 * `user` goes to pm_range.user of every range the region renders. */
pm_status pm_region_new(uint32_t id, uint32_t flags, uint64_t size, int size_is_2_64,
                        void *user, pm_region **out);
void pm_region_free(pm_region *r);
void pm_region_set_flag(pm_region *r, uint32_t flag, int on);
void pm_region_set_addr(pm_region *r, uint64_t addr);
/* size_is_2_64: the size is 2^64 (size is then ignored). */
void pm_region_set_size(pm_region *r, uint64_t size, int size_is_2_64);
void pm_region_set_alias(pm_region *r, pm_region *target, uint64_t offset);
void pm_region_set_dirty_log(pm_region *r, uint32_t mask);
/* The memory a RAM, ROM or ROM-device region's ranges point at, and a RAM
 * region's dirty bytes (see pm_dirty_*): `pages` bytes, one per page of
 * 2^page_bits bytes of its memory. */
void pm_region_set_memory(pm_region *r, uint8_t *host);
void pm_region_set_dirty_bytes(pm_region *r, uint8_t *dirty, uint32_t page_bits,
                               uint64_t pages);
/* Subregion list edits, at an index of the reversed render order. */
pm_status pm_region_insert_sub(pm_region *r, size_t index, pm_region *sub);
pm_status pm_region_remove_sub(pm_region *r, size_t index);

/* What a node holds, read back (tests compare it with the Python tree). */
typedef struct pm_region_info {
    uint64_t addr;
    uint64_t size;          /* low 64 bits; size_is_2_64 says 2^64 */
    int size_is_2_64;
    uint32_t flags;         /* PM_REGION_* */
    uint32_t id;
    uint32_t dirty_log;
    uint64_t alias_offset;
    const pm_region *alias; /* NULL unless an alias */
    size_t nsubs;
} pm_region_info;

void pm_region_info_get(const pm_region *r, pm_region_info *out);
/* Subregion `index` (reversed render order), or NULL past the end. */
const pm_region *pm_region_sub(const pm_region *r, size_t index);

/*
 * Render the tree under `root` as QEMU's render_memory_region does (children
 * before their parent, in render order; the first rendered region owns each
 * address) and merge neighbours that continue each other (flatview_simplify).
 * *ranges gets a malloc'd array of *n ranges in address order (NULL when
 * none), to free with pm_ranges_free.  A path that goes through one alias more
 * than max_alias_visits times fails with PM_ERR_LOOP.
 */
pm_status pm_render(const pm_region *root, uint32_t max_alias_visits,
                    pm_range **ranges, size_t *n);
void pm_ranges_free(pm_range *ranges);
/*
 * QEMU's memory_region_get_flatview_root: the region whose rendering an
 * address space rooted at `root` shares (an enabled alias showing all of its
 * target from offset 0 goes to the target, an enabled container whose only
 * enabled child covers it from 0 goes to the child), or NULL when the root
 * renders nothing.  A walk that comes back to a region (only a loop of empty
 * windows can) stops at the first region seen twice.
 */
const pm_region *pm_flatview_root(const pm_region *root);
/* The `user` pointer a region was made with (pymem: its Python object). */
void *pm_region_user(const pm_region *r);
/* pm_render then pm_dispatch_build on its ranges, in one call.  On a build
 * failure *ranges and *n stay valid (to name the range *failed). */
pm_status pm_render_dispatch(const pm_region *root, uint32_t max_alias_visits,
                             unsigned page_bits, pm_stats *stats, pm_range **ranges,
                             size_t *n, size_t *failed, pm_dispatch **out);

/*
 * QEMU's address_space_update_topology_pass as data: walk an old and a new
 * view's ranges in address order, as both passes do, and write one entry per
 * step: a range only in the old view or changed (DEL, old_index), one in both
 * and equal but for dirty logging (SAME, both indices), one only in the new
 * view (ADD, new_index).  Equality is QEMU's flatrange_equal: region, start,
 * last, offset and flags.  Without with_same, SAME entries are written only
 * where the dirty-log masks differ.  *out is malloc'd, to free with
 * pm_diff_free, or NULL when no entry was written (*n == 0).
 */
#define PM_DIFF_DEL 1
#define PM_DIFF_SAME 2
#define PM_DIFF_ADD 3

typedef struct pm_diff {
    uint64_t kind;
    uint64_t old_index;
    uint64_t new_index;
} pm_diff;

pm_status pm_ranges_diff(const pm_range *old_ranges, size_t n_old,
                         const pm_range *new_ranges, size_t n_new, int with_same,
                         pm_diff **out, size_t *n);
void pm_diff_free(pm_diff *diff);

/* ----------------------------------------------------------- address space */

/*
 * The C side of an AddressSpace: the pointer to its current dispatch, which
 * readers load inside an RCU read-side section.  Publishing swaps it atomically
 * and hands back the old one; the caller frees that after a grace period.
 */
typedef struct pm_as pm_as;

pm_status pm_as_new(pm_stats *stats, pm_as **out);
void pm_as_free(pm_as *as);
/* pm_as_free for ffi.gc, as pm_dispatch_release is for dispatches. */
void pm_as_release(pm_stats *stats, pm_as *as);
/* Make d (NULL: nothing rendered) current; returns the previous dispatch. */
pm_dispatch *pm_as_publish(pm_as *as, pm_dispatch *d);
/* Batched lookup through the current dispatch, inside a read-side section. */
void pm_as_lookup_many(pm_as *as, const uint64_t *addrs, uint32_t *sections,
                       size_t n);

/* ------------------------------------------------------------------ access */

/*
 * Reads and writes through an address space's current dispatch, inside an RCU
 * read-side section.  C does what needs no Python: RAM and ROM are copied with
 * memcpy (ROM devices in romd mode too, for reads), and RAM writes set the
 * region's per-page dirty bytes.  Any other piece (MMIO, a ROM device's ops,
 * an IOMMU, unassigned space, a write to a read-only section) ends the call:
 * it reports where, and the caller applies QEMU's rules to that piece and
 * calls again for the rest.  Each call loads the current dispatch afresh.
 */

/* Where a read or write stopped, or what pm_as_translate found. */
typedef struct pm_access {
    uint64_t done;      /* bytes completed before the piece left to the caller */
    uint64_t offset;    /* offset of that piece in its region */
    uint64_t len;       /* bytes of the rest of the access inside its section */
    uint32_t region;    /* the region id; UINT32_MAX for unassigned space */
    uint32_t flags;     /* the section's PM_SECTION_* flags */
    void *user;         /* the section's pm_range.user (NULL: unassigned) */
} pm_access;

/* 0: all `len` bytes done; 1: stopped, *stop (if not NULL) says where. */
int pm_as_read(pm_as *as, uint64_t addr, uint8_t *buf, uint64_t len,
               pm_access *stop);
int pm_as_write(pm_as *as, uint64_t addr, const uint8_t *buf, uint64_t len,
                pm_access *stop);
/* The section under addr (out->done is 0). */
void pm_as_translate(pm_as *as, uint64_t addr, uint64_t len, pm_access *out);

/*
 * Fixed-width loads and stores, for a CPU loop (pymem/_fastpath binds them).
 * Loads of up to 4 bytes answer UINT64_MAX, which no such load can hold, when
 * the access is not plain memory; 8-byte loads answer 0 and fill *value, or
 * nonzero.  Stores take the value's low bytes and answer 0 when done.  Any
 * nonzero answer sends the caller to the slow path, which follows QEMU.
 */
uint64_t pm_as_ldub(pm_as *as, uint64_t addr);
uint64_t pm_as_lduw_le(pm_as *as, uint64_t addr);
uint64_t pm_as_lduw_be(pm_as *as, uint64_t addr);
uint64_t pm_as_ldl_le(pm_as *as, uint64_t addr);
uint64_t pm_as_ldl_be(pm_as *as, uint64_t addr);
int pm_as_ldq_le(pm_as *as, uint64_t addr, uint64_t *value);
int pm_as_ldq_be(pm_as *as, uint64_t addr, uint64_t *value);
int pm_as_stb(pm_as *as, uint64_t addr, uint64_t val);
int pm_as_stw_le(pm_as *as, uint64_t addr, uint64_t val);
int pm_as_stw_be(pm_as *as, uint64_t addr, uint64_t val);
int pm_as_stl_le(pm_as *as, uint64_t addr, uint64_t val);
int pm_as_stl_be(pm_as *as, uint64_t addr, uint64_t val);
int pm_as_stq_le(pm_as *as, uint64_t addr, uint64_t val);
int pm_as_stq_be(pm_as *as, uint64_t addr, uint64_t val);

/*
 * A RAM region's dirty log: one byte per page, one PM_DIRTY_* bit per client.
 * Writers in C set bits atomically, so readers test and clear them atomically:
 * out[i] gets the `mask` bits page first + i had, and they are cleared.
 */
void pm_dirty_fetch_and_clear(uint8_t *dirty, uint64_t first, uint64_t count,
                              uint8_t mask, uint8_t *out);
void pm_dirty_set(uint8_t *dirty, uint64_t first, uint64_t count, uint8_t mask);

/*
 * Dirty bitmaps (csrc/dirty.c): page i is bit (i & 7) of byte i >> 3.
 * pm_dirty_fetch_and_clear_bits sets in `bits` (zeroed by the caller, count
 * bits long) the pages first + i that had a `mask` bit, clears those bits,
 * and returns how many it set.  pm_bitmap_find returns the first index >=
 * start whose bit equals `value` (0 or 1), or nbits; pm_bitmap_count how
 * many of the nbits are set.
 */
uint64_t pm_dirty_fetch_and_clear_bits(uint8_t *dirty, uint64_t first, uint64_t count,
                                       uint8_t mask, uint8_t *bits);
uint64_t pm_bitmap_find(const uint8_t *bits, uint64_t nbits, uint64_t start, int value);
uint64_t pm_bitmap_count(const uint8_t *bits, uint64_t nbits);

/* --------------------------------------------------------------------- rcu */

/*
 * Readers: nestable, per-thread (a thread registers itself on first use and is
 * unregistered when it exits).  synchronize waits until every read-side section
 * that began before it has ended; inside a read-side section it returns
 * PM_ERR_IN_READER instead of deadlocking.
 */
/* Create the thread key the per-thread records hang on (once; pymem calls
 * it at import).  PM_ERR_RESOURCE when the process has no key left. */
pm_status pm_rcu_init(void);
void pm_rcu_read_lock(void);
void pm_rcu_read_unlock(void);
pm_status pm_rcu_synchronize(void);
/* A grace period without waiting: 1 if no read-side section that began
 * before the call is still open (what was unpublished before it may be freed
 * now), 0 if one may be, inside a read-side section, or while another writer
 * is in a grace period.  Never blocks. */
int pm_rcu_try_synchronize(void);
/* Non-zero while the calling thread is inside a read-side section. */
int pm_rcu_in_reader(void);

#pragma GCC visibility pop

#endif /* PYMEM_H */
