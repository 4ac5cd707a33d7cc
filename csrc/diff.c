/*
 * diff.c - what changed between two views of an address space, for listeners.
 *
 * A commit with listeners compares every address space's old view with its
 * new one range by range.  On a view of 100,000 ranges that walk, done in
 * Python, costs far more than rendering; here it is one pass over the two
 * arrays, and Python only hears about the ranges that changed (and the
 * unchanged ones when a listener wants region_nop).
 */
#include <stdlib.h>

#include "pymem.h"

/* QEMU's flatrange_equal: everything but the dirty-log mask. */
static int same_range(const pm_range *a, const pm_range *b)
{
    return a->region == b->region && a->user == b->user && a->start == b->start
           && a->last == b->last && a->offset == b->offset && a->flags == b->flags;
}

pm_status pm_ranges_diff(const pm_range *old_ranges, size_t n_old,
                         const pm_range *new_ranges, size_t n_new, int with_same,
                         pm_diff **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!n_old && !n_new) {
        return PM_OK;
    }
    /* At most one entry per range of either view. */
    pm_diff *diff = malloc((n_old + n_new) * sizeof(*diff));
    if (!diff) {
        return PM_ERR_NOMEM;
    }
    size_t i = 0, j = 0, k = 0;
    while (i < n_old || j < n_new) {
        const pm_range *o = i < n_old ? &old_ranges[i] : NULL;
        const pm_range *w = j < n_new ? &new_ranges[j] : NULL;
        if (o && (!w || o->start < w->start || (o->start == w->start && !same_range(o, w)))) {
            diff[k++] = (pm_diff){ PM_DIFF_DEL, i, 0 };
            i++;
        } else if (o && w && same_range(o, w)) {
            if (with_same || o->dirty_mask != w->dirty_mask) {
                diff[k++] = (pm_diff){ PM_DIFF_SAME, i, j };
            }
            i++;
            j++;
        } else {
            diff[k++] = (pm_diff){ PM_DIFF_ADD, 0, j };
            j++;
        }
    }
    if (!k) {
        /* Nothing to report (every range unchanged, no with_same): the caller
         * gets NULL, which it has nothing to free. */
        free(diff);
        return PM_OK;
    }
    *out = diff;
    *n = k;
    return PM_OK;
}

void pm_diff_free(pm_diff *diff)
{
    free(diff);
}
