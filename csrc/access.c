/*
 * access.c - reads, writes, loads and stores through an address space, in C for
 * whatever is plain memory.
 *
 * An emulator's CPU loop goes through here millions of times a second, so RAM
 * and ROM are copied without Python: one RCU read-side section, one lookup per
 * section crossed, memmove, and the dirty bytes of the pages a RAM write
 * touched.  Everything QEMU would hand to a device (MMIO, a ROM device outside
 * romd mode, writes to ROM, IOMMU translation, unassigned space) is left to the
 * Python caller, which applies QEMU's rules to that piece (pymem/mmio.py) and
 * calls again for the rest.
 */
#include <string.h>

#include "address_space.h"

#define NO_REGION UINT32_MAX
#define LOAD_MISS UINT64_MAX

/* QEMU's memory_access_is_direct(): what C may touch without the region's ops. */
static inline int direct_read(const pm_range *r)
{
    return r->host && (r->flags & (PM_SECTION_RAM | PM_SECTION_ROMD)) &&
           !(r->flags & PM_SECTION_IOMMU);
}

/* Writes to ROM devices (even in romd mode) go to their ops; writes to ROM or
 * through a read-only alias are the caller's to answer (QEMU answers them
 * differently), so only writable RAM is direct. */
static inline int direct_write(const pm_range *r)
{
    return r->host && (r->flags & PM_SECTION_RAM) &&
           !(r->flags & (PM_SECTION_READONLY | PM_SECTION_ROMD | PM_SECTION_IOMMU));
}

/* Set `mask` in the dirty byte of every page of [offset, offset + n) of the
 * region.  Readers of the log clear bits with atomics too, so OR atomically,
 * and skip pages already marked to keep the cache line clean.  Pages are the
 * log's own (it knows its page size and length), not the dispatch's: a log
 * made at another page size than the view's marks its own pages and never
 * indexes past its end. */
static inline void mark_dirty(const pm_range *r, uint64_t offset, uint64_t n)
{
    uint8_t mask = (uint8_t)r->dirty_mask;
    if (!r->dirty || !mask || !r->dirty_pages || r->dirty_page_bits > 63) {
        return;
    }
    unsigned page_bits = r->dirty_page_bits;
    uint64_t first = offset >> page_bits, last = (offset + n - 1) >> page_bits;
    if (last >= r->dirty_pages) {
        last = r->dirty_pages - 1;
    }
    for (uint64_t p = first; p <= last; p++) {
        if ((__atomic_load_n(&r->dirty[p], __ATOMIC_RELAXED) & mask) != mask) {
            __atomic_or_fetch(&r->dirty[p], mask, __ATOMIC_RELAXED);
        }
    }
}

/* The section under addr, with the offset in its region and the in-section
 * length; a space with nothing rendered is all unassigned. */
static inline void section_at(pm_dispatch *d, uint64_t addr, uint64_t len,
                              pm_range *r, uint64_t *offset, uint64_t *plen)
{
    if (!d) {
        memset(r, 0, sizeof(*r));
        r->region = NO_REGION;
        *offset = addr;
        *plen = len;
        return;
    }
    uint32_t s = pm_dispatch_translate(d, addr, len, offset, plen);
    pm_dispatch_section(d, s, r);
}

/* stop may be NULL: a caller that only wants to know whether C did it all. */
static inline void set_stop(pm_access *stop, uint64_t done, const pm_range *r,
                            uint64_t offset, uint64_t plen)
{
    if (!stop) {
        return;
    }
    stop->done = done;
    stop->offset = offset;
    stop->len = plen;
    stop->region = r->region;
    stop->flags = r->flags;
    stop->user = r->user;
}

/* Copy between buf and the space section by section while the memory is
 * plain (for the direction asked); stop at the first piece that is not and
 * say where.  Callers pass a constant is_write. */
static inline int access_walk(pm_as *as, uint64_t addr, uint8_t *buf, uint64_t len,
                              pm_access *stop, int is_write)
{
    int stopped = 0;
    uint64_t done = 0;
    pm_range r;
    uint64_t offset, plen;

    pm_rcu_read_lock();
    pm_dispatch *d = pm_as_current(as);
    while (done < len) {
        section_at(d, addr + done, len - done, &r, &offset, &plen);
        if (!(is_write ? direct_write(&r) : direct_read(&r))) {
            set_stop(stop, done, &r, offset, plen);
            stopped = 1;
            break;
        }
        /* memmove: the caller's buffer may be guest RAM itself (a view from
         * map() or region.buffer written back into the space), and a guest's
         * memmove through DMA overlaps. */
        if (is_write) {
            memmove(r.host + offset, buf + done, plen);
            mark_dirty(&r, offset, plen);
        } else {
            memmove(buf + done, r.host + offset, plen);
        }
        done += plen;
    }
    pm_rcu_read_unlock();
    return stopped;
}

int pm_as_read(pm_as *as, uint64_t addr, uint8_t *buf, uint64_t len,
               pm_access *stop)
{
    return access_walk(as, addr, buf, len, stop, 0);
}

int pm_as_write(pm_as *as, uint64_t addr, const uint8_t *buf, uint64_t len,
                pm_access *stop)
{
    /* Only read from when is_write: the cast drops no promise. */
    return access_walk(as, addr, (uint8_t *)buf, len, stop, 1);
}

void pm_as_translate(pm_as *as, uint64_t addr, uint64_t len, pm_access *out)
{
    pm_range r;
    uint64_t offset, plen;

    pm_rcu_read_lock();
    section_at(pm_as_current(as), addr, len, &r, &offset, &plen);
    pm_rcu_read_unlock();
    set_stop(out, 0, &r, offset, plen);
}

void pm_dirty_fetch_and_clear(uint8_t *dirty, uint64_t first, uint64_t count,
                              uint8_t mask, uint8_t *out)
{
    for (uint64_t i = 0; i < count; i++) {
        out[i] = __atomic_fetch_and(&dirty[first + i], (uint8_t)~mask,
                                    __ATOMIC_RELAXED) & mask;
    }
}

void pm_dirty_set(uint8_t *dirty, uint64_t first, uint64_t count, uint8_t mask)
{
    for (uint64_t i = 0; i < count; i++) {
        __atomic_or_fetch(&dirty[first + i], mask, __ATOMIC_RELAXED);
    }
}

/* ------------------------------------------------------ fixed-width paths */

/* Copy n bytes between buf and addr if they are plain memory of one section
 * (for the direction asked); callers pass a constant is_write. */
static inline int access_direct(pm_as *as, uint64_t addr, unsigned n, uint8_t *buf,
                                int is_write)
{
    int ok = 0;
    pm_range r;
    uint64_t offset, plen;

    pm_rcu_read_lock();
    pm_dispatch *d = pm_as_current(as);
    if (d) {
        section_at(d, addr, n, &r, &offset, &plen);
        /* Like QEMU's fixed-width loads and stores: an access that does not fit in
         * one section is not memory's to answer. */
        if (plen == n && (is_write ? direct_write(&r) : direct_read(&r))) {
            /* buf is the caller's 8 bytes on its stack, never guest RAM. */
            if (is_write) {
                memcpy(r.host + offset, buf, n);
                mark_dirty(&r, offset, n);
            } else {
                memcpy(buf, r.host + offset, n);
            }
            ok = 1;
        }
    }
    pm_rcu_read_unlock();
    return ok;
}

/* Little- or big-endian bytes to a value, and back, whatever the host. */
static inline uint64_t from_bytes(const uint8_t *b, unsigned n, int big)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) {
        v |= (uint64_t)b[big ? n - 1 - i : i] << (8 * i);
    }
    return v;
}

static inline void to_bytes(uint8_t *b, unsigned n, int big, uint64_t v)
{
    for (unsigned i = 0; i < n; i++) {
        b[big ? n - 1 - i : i] = (uint8_t)(v >> (8 * i));
    }
}

#define DEFINE_LOAD(name, n, big)                                   \
    uint64_t name(pm_as *as, uint64_t addr)                         \
    {                                                               \
        uint8_t b[8];                                               \
        return access_direct(as, addr, n, b, 0) ? from_bytes(b, n, big)  \
                                           : LOAD_MISS;             \
    }

#define DEFINE_LOAD64(name, big)                                    \
    int name(pm_as *as, uint64_t addr, uint64_t *value)             \
    {                                                               \
        uint8_t b[8];                                               \
        if (!access_direct(as, addr, 8, b, 0)) {                         \
            return 1;                                               \
        }                                                           \
        *value = from_bytes(b, 8, big);                             \
        return 0;                                                   \
    }

#define DEFINE_STORE(name, n, big)                                  \
    int name(pm_as *as, uint64_t addr, uint64_t val)                \
    {                                                               \
        uint8_t b[8];                                               \
        to_bytes(b, n, big, val);                                   \
        return !access_direct(as, addr, n, b, 1);                       \
    }

DEFINE_LOAD(pm_as_ldub, 1, 0)
DEFINE_LOAD(pm_as_lduw_le, 2, 0)
DEFINE_LOAD(pm_as_lduw_be, 2, 1)
DEFINE_LOAD(pm_as_ldl_le, 4, 0)
DEFINE_LOAD(pm_as_ldl_be, 4, 1)
DEFINE_LOAD64(pm_as_ldq_le, 0)
DEFINE_LOAD64(pm_as_ldq_be, 1)

DEFINE_STORE(pm_as_stb, 1, 0)
DEFINE_STORE(pm_as_stw_le, 2, 0)
DEFINE_STORE(pm_as_stw_be, 2, 1)
DEFINE_STORE(pm_as_stl_le, 4, 0)
DEFINE_STORE(pm_as_stl_be, 4, 1)
DEFINE_STORE(pm_as_stq_le, 8, 0)
DEFINE_STORE(pm_as_stq_be, 8, 1)
