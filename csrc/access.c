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
#include "dispatch.h"
#include "rcu.h"

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

/* What a space with nothing rendered has everywhere: one unassigned
 * section over all of it (offset = the address). */
static const pm_range unassigned = { .start = 0, .last = UINT64_MAX, .region = NO_REGION };

/* The section under addr, with the offset in its region and the in-section
 * length.  The section is the dispatch's own (no copy): valid only inside
 * the read-side section that loaded d. */
static inline const pm_range *section_at(pm_dispatch *d, uint64_t addr, uint64_t len,
                                         uint64_t *offset, uint64_t *plen)
{
    const pm_range *r = d ? pm_dispatch_range(d, addr) : &unassigned;
    *offset = r->offset + (addr - r->start);
    /* Bytes left in the section, minus one, so that 2^64 cannot overflow. */
    uint64_t left_minus_one = r->last - addr;
    *plen = (len == 0 || len - 1 <= left_minus_one) ? len : left_minus_one + 1;
    return r;
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
    uint64_t offset, plen;

    pm_rcu_lock();
    pm_dispatch *d = pm_as_current(as);
    while (done < len) {
        const pm_range *r = section_at(d, addr + done, len - done, &offset, &plen);
        if (!(is_write ? direct_write(r) : direct_read(r))) {
            set_stop(stop, done, r, offset, plen);
            stopped = 1;
            break;
        }
        /* memmove: the caller's buffer may be guest RAM itself (a view from
         * map() or region.buffer written back into the space), and a guest's
         * memmove through DMA overlaps. */
        if (is_write) {
            memmove(r->host + offset, buf + done, plen);
            mark_dirty(r, offset, plen);
        } else {
            memmove(buf + done, r->host + offset, plen);
        }
        done += plen;
    }
    pm_rcu_unlock();
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
    uint64_t offset, plen;

    pm_rcu_lock();
    const pm_range *r = section_at(pm_as_current(as), addr, len, &offset, &plen);
    set_stop(out, 0, r, offset, plen);
    pm_rcu_unlock();
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

/*
 * The section holding all of [addr, addr + n) if it is plain memory for the
 * direction asked (callers pass constants), with addr's offset in its
 * region; else NULL.  Like QEMU's fixed-width loads and stores, an access
 * that does not fit in one section is not memory's to answer.  The section
 * is the dispatch's: use it inside the caller's read-side section.
 */
static inline const pm_range *direct_section(pm_as *as, uint64_t addr, unsigned n,
                                             int is_write, uint64_t *offset)
{
    pm_dispatch *d = pm_as_current(as);
    if (!d) {
        return NULL;
    }
    const pm_range *r = pm_dispatch_range(d, addr);
    /* All n bytes in the section (addr <= r->last holds here). */
    if (r->last - addr < n - 1 || !(is_write ? direct_write(r) : direct_read(r))) {
        return NULL;
    }
    *offset = r->offset + (addr - r->start);
    return r;
}

/* n bytes at p (any alignment) as a little- or big-endian value, and back;
 * n and big are constants at every call, so each is one load or store (and
 * a byte swap where the host's order differs). */
static inline uint64_t load_bytes(const uint8_t *p, unsigned n, int big)
{
    uint8_t b1;
    uint16_t b2;
    uint32_t b4;
    uint64_t b8;
    int swap = big != (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__);
    switch (n) {
    case 1:
        memcpy(&b1, p, 1);
        return b1;
    case 2:
        memcpy(&b2, p, 2);
        return swap ? __builtin_bswap16(b2) : b2;
    case 4:
        memcpy(&b4, p, 4);
        return swap ? __builtin_bswap32(b4) : b4;
    default:
        memcpy(&b8, p, 8);
        return swap ? __builtin_bswap64(b8) : b8;
    }
}

static inline void store_bytes(uint8_t *p, unsigned n, int big, uint64_t v)
{
    int swap = big != (__BYTE_ORDER__ == __ORDER_BIG_ENDIAN__);
    uint8_t b1 = (uint8_t)v;
    uint16_t b2 = swap ? __builtin_bswap16((uint16_t)v) : (uint16_t)v;
    uint32_t b4 = swap ? __builtin_bswap32((uint32_t)v) : (uint32_t)v;
    uint64_t b8 = swap ? __builtin_bswap64(v) : v;
    switch (n) {
    case 1:
        memcpy(p, &b1, 1);
        break;
    case 2:
        memcpy(p, &b2, 2);
        break;
    case 4:
        memcpy(p, &b4, 4);
        break;
    default:
        memcpy(p, &b8, 8);
        break;
    }
}

/* A fixed-width load: 0 and *value, or 1 when the bytes are not plain memory. */
static inline int load_direct(pm_as *as, uint64_t addr, unsigned n, int big,
                              uint64_t *value)
{
    uint64_t offset;
    pm_rcu_lock();
    const pm_range *r = direct_section(as, addr, n, 0, &offset);
    if (r) {
        *value = load_bytes(r->host + offset, n, big);
    }
    pm_rcu_unlock();
    return r == NULL;
}

/* A fixed-width store: 0 when done, 1 when the bytes are not plain memory.
 * The page is marked dirty after the store, as QEMU does: a log reader that
 * clears the bit in between sees it set again, never a store it missed. */
static inline int store_direct(pm_as *as, uint64_t addr, unsigned n, int big, uint64_t v)
{
    uint64_t offset;
    pm_rcu_lock();
    const pm_range *r = direct_section(as, addr, n, 1, &offset);
    if (r) {
        store_bytes(r->host + offset, n, big, v);
        mark_dirty(r, offset, n);
    }
    pm_rcu_unlock();
    return r == NULL;
}

#define DEFINE_LOAD(name, n, big)                                   \
    uint64_t name(pm_as *as, uint64_t addr)                         \
    {                                                               \
        uint64_t v;                                                 \
        return load_direct(as, addr, n, big, &v) ? LOAD_MISS : v;   \
    }

#define DEFINE_LOAD64(name, big)                                    \
    int name(pm_as *as, uint64_t addr, uint64_t *value)             \
    {                                                               \
        return load_direct(as, addr, 8, big, value);                \
    }

#define DEFINE_STORE(name, n, big)                                  \
    int name(pm_as *as, uint64_t addr, uint64_t val)                \
    {                                                               \
        return store_direct(as, addr, n, big, val);                 \
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
