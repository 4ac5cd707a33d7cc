/*
 * address_space.c - the C handle of an AddressSpace: its current dispatch.
 *
 * Readers load `current` inside an RCU read-side section and may use it until
 * they leave; the writer swaps it and must not free the old dispatch before a
 * grace period has passed (pymem/rcu.py defers the free).
 */
#include <stdlib.h>

#include "address_space.h"

pm_status pm_as_new(pm_stats *stats, pm_as **out)
{
    pm_as *as = calloc(1, sizeof(*as));
    *out = as;
    if (!as) {
        return PM_ERR_NOMEM;
    }
    as->stats = stats;
    if (stats) {
        __atomic_add_fetch(&stats->live_address_spaces, 1, __ATOMIC_RELAXED);
    }
    return PM_OK;
}

void pm_as_free(pm_as *as)
{
    if (!as) {
        return;
    }
    if (as->stats) {
        __atomic_sub_fetch(&as->stats->live_address_spaces, 1, __ATOMIC_RELAXED);
    }
    free(as);
}

void pm_as_release(pm_stats *stats, pm_as *as)
{
    (void)stats;   /* kept alive by the caller until now */
    pm_as_free(as);
}

pm_dispatch *pm_as_publish(pm_as *as, pm_dispatch *d)
{
    return __atomic_exchange_n(&as->current, d, __ATOMIC_SEQ_CST);
}

void pm_as_lookup_many(pm_as *as, const uint64_t *addrs, uint32_t *sections,
                       size_t n)
{
    pm_rcu_read_lock();
    pm_dispatch *d = pm_as_current(as);
    if (d) {
        pm_dispatch_lookup_many(d, addrs, sections, n);
    } else {
        for (size_t i = 0; i < n; i++) {
            sections[i] = 0;
        }
    }
    pm_rcu_read_unlock();
}
