/*
 * rcu.h - private to the C core: the read side of rcu.c, inline, for the
 * access paths (access.c, address_space.c).  Not part of the API (pymem.h
 * is); pm_rcu_read_lock/unlock are these same functions, out of line.
 *
 * A thread that has read before finds its record through one thread-local
 * pointer in the initial-exec TLS model: a load at a fixed offset from the
 * thread pointer, where the general-dynamic model a shared object gets by
 * default costs a __tls_get_addr call per access.  The memory ordering and
 * why it is enough are explained in rcu.c ("Ordering").
 */
#ifndef PYMEM_RCU_H
#define PYMEM_RCU_H

#include <stdint.h>

#include "pymem.h"

#define PM_HIDDEN __attribute__((visibility("hidden")))

typedef struct pm_rcu_reader {
    uint64_t ctr;            /* 0 outside a read-side section; atomic */
    unsigned depth;          /* nesting, touched only by the owning thread */
    /* Links, under rcu.c's registry_lock.  pprev points at whatever points
     * at us, so a record unlinks itself from the registry or from a writer's
     * quiescent list alike (QLIST's le_prev trick). */
    struct pm_rcu_reader *next, **pprev;
} pm_rcu_reader;

/* This thread's record, or NULL until its first read-side section (and for
 * a thread reading "anonymously", see rcu.c).  Written only by the owning
 * thread.  A static TLS block of 8 bytes: it fits the surplus glibc keeps
 * for initial-exec variables of dlopen'ed objects. */
extern PM_HIDDEN _Thread_local pm_rcu_reader *pm_rcu_self
    __attribute__((tls_model("initial-exec")));
/* The grace-period counter: starts at 1 and only grows (64 bits never wrap). */
extern PM_HIDDEN uint64_t pm_rcu_gp_ctr;

/* What the inline functions do for a thread without a record. */
PM_HIDDEN void pm_rcu_lock_slow(void);
PM_HIDDEN void pm_rcu_unlock_slow(void);

static inline void pm_rcu_lock(void)
{
    pm_rcu_reader *r = pm_rcu_self;
    if (__builtin_expect(r == NULL, 0)) {
        pm_rcu_lock_slow();
        return;
    }
    if (r->depth++ == 0) {
        /* Announce "reading since the counter's current value", then one
         * full fence before any RCU-protected load (rcu.c, "Ordering"). */
        __atomic_store_n(&r->ctr, __atomic_load_n(&pm_rcu_gp_ctr, __ATOMIC_ACQUIRE),
                         __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
    }
}

static inline void pm_rcu_unlock(void)
{
    pm_rcu_reader *r = pm_rcu_self;
    if (__builtin_expect(r == NULL, 0)) {
        pm_rcu_unlock_slow();
        return;
    }
    if (r->depth && --r->depth == 0) {
        /* Release: every load of the section happens before a writer that
         * reads this 0 frees anything. */
        __atomic_store_n(&r->ctr, 0, __ATOMIC_RELEASE);
    }
}

#endif /* PYMEM_RCU_H */
