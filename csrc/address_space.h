/*
 * address_space.h - private to the C core: the layout of pm_as, shared by
 * address_space.c and access.c.  Not part of the API (pymem.h is).
 */
#ifndef PYMEM_ADDRESS_SPACE_H
#define PYMEM_ADDRESS_SPACE_H

#include "pymem.h"

struct pm_as {
    pm_dispatch *current;    /* loaded with acquire inside a read-side section */
    pm_stats *stats;
};

static inline pm_dispatch *pm_as_current(pm_as *as)
{
    return __atomic_load_n(&as->current, __ATOMIC_ACQUIRE);
}

#endif
