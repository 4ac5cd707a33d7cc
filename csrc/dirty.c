/*
 * Dirty bitmaps: a region's per-page dirty bytes (one PM_DIRTY_* bit per
 * client, set by the access path in csrc/access.c) read out and cleared as a
 * bitmap of one bit per page, and the scans that find runs in such bitmaps.
 *
 * Bitmaps are little-endian bit strings: page i is bit (i & 7) of byte i >> 3,
 * QEMU's unsigned-long bitmaps as a little-endian host lays them out, and what
 * numpy.unpackbits(..., bitorder="little") reads.
 */
#include "pymem.h"

uint64_t pm_dirty_fetch_and_clear_bits(uint8_t *dirty, uint64_t first, uint64_t count,
                                       uint8_t mask, uint8_t *bits)
{
    uint64_t found = 0;

    for (uint64_t i = 0; i < count; i++) {
        /* A relaxed load skips the clean pages (most of them) without a
         * read-modify-write: a bit set after the load is a write after the
         * snapshot, which the next one sees. */
        if (!(__atomic_load_n(&dirty[first + i], __ATOMIC_RELAXED) & mask)) {
            continue;
        }
        if (__atomic_fetch_and(&dirty[first + i], (uint8_t)~mask, __ATOMIC_RELAXED) & mask) {
            bits[i >> 3] |= (uint8_t)(1u << (i & 7));
            found++;
        }
    }
    return found;
}

uint64_t pm_bitmap_find(const uint8_t *bits, uint64_t nbits, uint64_t start, int value)
{
    uint8_t skip = value ? 0x00 : 0xff;   /* a byte with no bit of `value` */

    for (uint64_t i = start; i < nbits;) {
        if ((i & 7) == 0 && bits[i >> 3] == skip) {
            i += 8;
            continue;
        }
        if (((bits[i >> 3] >> (i & 7)) & 1) == (value != 0)) {
            return i;
        }
        i++;
    }
    return nbits;
}

uint64_t pm_bitmap_count(const uint8_t *bits, uint64_t nbits)
{
    uint64_t n = 0;

    for (uint64_t i = 0; i < (nbits >> 3); i++) {
        n += (uint64_t)__builtin_popcount(bits[i]);
    }
    if (nbits & 7) {
        n += (uint64_t)__builtin_popcount(bits[nbits >> 3] & ((1u << (nbits & 7)) - 1));
    }
    return n;
}
