/*
 * region.c - the C mirror of a region tree, kept in step by pymem/region/ (tree.py, node.py).
 *
 * Rendering a tree of 100,000 regions from Python objects costs most of its
 * time chasing pointers through the interpreter's objects; a compact node per
 * region, edited as the Python tree is, lets render.c walk the tree in C.
 * Nodes own only their subregion array; lifetimes are the Python objects'.
 */
#include <stdlib.h>
#include <string.h>

#include "region.h"

pm_status pm_region_new(uint32_t id, uint32_t flags, uint64_t size, int size_is_2_64,
                        void *user, pm_region **out)
{
    pm_region *r = calloc(1, sizeof(*r));
    *out = r;
    if (!r) {
        return PM_ERR_NOMEM;
    }
    r->id = id;
    r->flags = flags;
    pm_region_set_size(r, size, size_is_2_64);
    r->user = user;
    return PM_OK;
}

void pm_region_free(pm_region *r)
{
    if (r) {
        free(r->subs);
        free(r);
    }
}

void pm_region_set_flag(pm_region *r, uint32_t flag, int on)
{
    if (on) {
        r->flags |= flag;
    } else {
        r->flags &= ~flag;
    }
}

void pm_region_set_addr(pm_region *r, uint64_t addr)
{
    r->addr = addr;
}

void pm_region_set_size(pm_region *r, uint64_t size, int size_is_2_64)
{
    r->size = size_is_2_64 ? (pm_i128)1 << 64 : (pm_i128)size;
}

void pm_region_set_alias(pm_region *r, pm_region *target, uint64_t offset)
{
    r->alias = target;
    r->alias_offset = offset;
}

void pm_region_set_dirty_log(pm_region *r, uint32_t mask)
{
    r->dirty_log = mask;
}

void pm_region_set_memory(pm_region *r, uint8_t *host)
{
    r->host = host;
}

void pm_region_set_dirty_bytes(pm_region *r, uint8_t *dirty, uint32_t page_bits,
                               uint64_t pages)
{
    r->dirty = dirty;
    r->dirty_page_bits = page_bits;
    r->dirty_pages = dirty ? pages : 0;
}

pm_status pm_region_insert_sub(pm_region *r, size_t index, pm_region *sub)
{
    if (index > r->nsubs) {
        return PM_ERR_RANGE;
    }
    if (r->nsubs == UINT32_MAX) {
        return PM_ERR_NOMEM;
    }
    if (r->nsubs == r->cap_subs) {
        size_t cap = r->cap_subs ? (size_t)r->cap_subs * 2 : 4;
        if (cap > UINT32_MAX) {
            cap = UINT32_MAX;
        }
        pm_region **subs = realloc(r->subs, cap * sizeof(*subs));
        if (!subs) {
            return PM_ERR_NOMEM;
        }
        r->subs = subs;
        r->cap_subs = (uint32_t)cap;
    }
    memmove(&r->subs[index + 1], &r->subs[index], (r->nsubs - index) * sizeof(*r->subs));
    r->subs[index] = sub;
    r->nsubs++;
    return PM_OK;
}

pm_status pm_region_remove_sub(pm_region *r, size_t index)
{
    if (index >= r->nsubs) {
        return PM_ERR_RANGE;
    }
    r->nsubs--;
    memmove(&r->subs[index], &r->subs[index + 1], (r->nsubs - index) * sizeof(*r->subs));
    return PM_OK;
}

void pm_region_info_get(const pm_region *r, pm_region_info *out)
{
    out->addr = r->addr;
    out->size = (uint64_t)r->size;
    out->size_is_2_64 = r->size == (pm_i128)1 << 64;
    out->flags = r->flags;
    out->id = r->id;
    out->dirty_log = r->dirty_log;
    out->alias_offset = r->alias_offset;
    out->alias = r->alias;
    out->nsubs = r->nsubs;
}

const pm_region *pm_region_sub(const pm_region *r, size_t index)
{
    return index < r->nsubs ? r->subs[index] : NULL;
}
