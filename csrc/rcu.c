/*
 * rcu.c - read-copy-update: readers never block, writers wait for a grace period.
 *
 * Each thread that reads registers a small record in the one global registry (the
 * only global state of the C core).  A reader entering its outermost read-side
 * section copies the grace-period counter into its record; leaving, it stores 0.
 * synchronize bumps the counter and waits until no record holds a value older
 * than the bump: every reader that might still see an old view has left.  The
 * counter is 64-bit and only grows, so one phase suffices (no wrap to guard).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <time.h>

#include "pymem.h"

typedef struct reader {
    uint64_t ctr;            /* 0 outside a read-side section */
    unsigned depth;          /* nesting, touched only by the owning thread */
    struct reader *prev, *next;
} reader;

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static reader *registry;
static uint64_t gp_ctr = 1;
static pthread_key_t exit_key;
static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;
static _Thread_local reader *self;

static void unregister_reader(void *arg)
{
    reader *r = arg;
    pthread_mutex_lock(&registry_lock);
    if (r->prev) {
        r->prev->next = r->next;
    } else {
        registry = r->next;
    }
    if (r->next) {
        r->next->prev = r->prev;
    }
    pthread_mutex_unlock(&registry_lock);
    free(r);
}

static void make_exit_key(void)
{
    /* Runs the destructor at thread exit: the registry never keeps dead threads. */
    (void)pthread_key_create(&exit_key, unregister_reader);
}

static reader *register_reader(void)
{
    reader *r = calloc(1, sizeof(*r));
    if (!r) {
        return NULL;
    }
    pthread_once(&exit_key_once, make_exit_key);
    pthread_mutex_lock(&registry_lock);
    r->next = registry;
    if (registry) {
        registry->prev = r;
    }
    registry = r;
    pthread_mutex_unlock(&registry_lock);
    pthread_setspecific(exit_key, r);
    self = r;
    return r;
}

void pm_rcu_read_lock(void)
{
    reader *r = self ? self : register_reader();
    if (!r) {
        abort();  /* no memory for 32 bytes: nothing sensible is left to do */
    }
    if (r->depth++ == 0) {
        /* Publish "reading since gp_ctr" before loading any protected pointer. */
        __atomic_store_n(&r->ctr, __atomic_load_n(&gp_ctr, __ATOMIC_SEQ_CST),
                         __ATOMIC_SEQ_CST);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
    }
}

void pm_rcu_read_unlock(void)
{
    reader *r = self;
    if (r && r->depth && --r->depth == 0) {
        /* Release: every load of the section happens before the writer sees 0. */
        __atomic_store_n(&r->ctr, 0, __ATOMIC_RELEASE);
    }
}

static void pause_briefly(unsigned spins)
{
    if (spins < 64) {
        sched_yield();
    } else {
        struct timespec ts = { 0, 50 * 1000 };
        nanosleep(&ts, NULL);
    }
}

pm_status pm_rcu_synchronize(void)
{
    if (self && self->depth) {
        return PM_ERR_IN_READER;
    }
    /* Order the writer's pointer swaps before the counter bump. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    pthread_mutex_lock(&registry_lock);
    uint64_t target = __atomic_add_fetch(&gp_ctr, 1, __ATOMIC_SEQ_CST);
    for (reader *r = registry; r; r = r->next) {
        unsigned spins = 0;
        for (;;) {
            uint64_t c = __atomic_load_n(&r->ctr, __ATOMIC_ACQUIRE);
            if (c == 0 || c >= target) {
                break;
            }
            pause_briefly(spins++);
        }
    }
    pthread_mutex_unlock(&registry_lock);
    return PM_OK;
}
