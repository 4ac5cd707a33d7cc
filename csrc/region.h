/*
 * region.h - private to the C core: the layout of pm_region, shared by
 * region.c (the edits) and render.c (the walk).  Not part of the API.
 */
#ifndef PYMEM_REGION_H
#define PYMEM_REGION_H

#include "pymem.h"

/* Region sizes and render bases need 65 bits and a sign: a size may be 2^64,
 * and an alias's target may sit at a negative base (QEMU's int128 math). */
__extension__ typedef __int128 pm_i128;

struct pm_region {
    /* What the walk reads of every region: the first 64 bytes. */
    pm_i128 size;
    uint64_t addr;           /* offset in the container */
    uint64_t alias_offset;
    const pm_region *alias;  /* the target of an alias, else NULL */
    pm_region **subs;        /* reversed render order */
    uint32_t nsubs, cap_subs;
    uint32_t flags;          /* PM_REGION_* */
    uint32_t id;
    /* What only a terminating region's pieces read. */
    uint8_t *host;           /* memory of RAM, ROM and ROM devices */
    uint8_t *dirty;          /* RAM only: the dirty bytes */
    uint64_t dirty_pages;    /* how many, one per 2^dirty_page_bits bytes */
    uint32_t dirty_page_bits;
    void *user;
    uint32_t dirty_log;
};

#endif
