/*
 * rcu.c - read-copy-update: readers never block, writers wait for a grace period.
 *
 * Each thread that reads owns a record in its thread-local storage and links it
 * into the one global registry (the only global state of the C core) on first
 * use; a pthread key destructor unlinks it when the thread exits.  A reader
 * entering its outermost read-side section copies the grace-period counter into
 * its record; leaving, it stores 0.  synchronize bumps the counter and waits
 * until no record holds a non-zero value older than the bump: every reader that
 * might still see an old view has left.  The counter is 64-bit and only grows,
 * so one pass suffices (QEMU needs two because its counter may wrap).
 *
 * Waiting is done with the registry lock released, as QEMU's wait_for_readers
 * does: a thread may register, or exit and unregister, while a writer waits, so
 * a reader that starts a thread (or a thread that ends) inside a read-side
 * section cannot deadlock against synchronize.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <time.h>

#include "pymem.h"

typedef struct reader {
    uint64_t ctr;            /* 0 outside a read-side section; atomic */
    unsigned depth;          /* nesting, touched only by the owning thread */
    bool registered;         /* owning thread only */
    /* Links, under registry_lock.  pprev points at whatever points at us, so a
     * record unlinks itself from the registry or from a writer's quiescent list
     * alike (QLIST's le_prev trick). */
    struct reader *next, **pprev;
} reader;

/* Serialises writers; held across a whole grace period. */
static pthread_mutex_t gp_lock = PTHREAD_MUTEX_INITIALIZER;
/* Guards the reader lists; never held while waiting for a reader. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static reader *registry;
static uint64_t gp_ctr = 1;
static pthread_key_t exit_key;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
/* Static TLS space, not malloc: registering cannot fail, so read_lock cannot. */
static _Thread_local reader self;

static void list_insert(reader **head, reader *r)
{
    r->next = *head;
    if (r->next) {
        r->next->pprev = &r->next;
    }
    *head = r;
    r->pprev = head;
}

static void list_remove(reader *r)
{
    if (r->next) {
        r->next->pprev = r->pprev;
    }
    *r->pprev = r->next;
}

static void unregister_reader(void *arg)
{
    reader *r = arg;
    pthread_mutex_lock(&registry_lock);
    list_remove(r);
    pthread_mutex_unlock(&registry_lock);
    /* A later key destructor that reads registers again (and is undone again). */
    r->registered = false;
    r->depth = 0;
    __atomic_store_n(&r->ctr, 0, __ATOMIC_RELAXED);
}

/* fork() copies only the calling thread.  Hold the registry lock across it so
 * the child inherits consistent links, then keep only the forking thread's
 * record.  gp_lock is not taken: a writer may hold it for as long as a reader
 * (perhaps the forking thread) stays in its section, and waiting for it here
 * would deadlock; instead the child, where that writer does not exist, gets a
 * fresh one. */
static void before_fork(void)
{
    pthread_mutex_lock(&registry_lock);
}

static void after_fork_parent(void)
{
    pthread_mutex_unlock(&registry_lock);
}

static void after_fork_child(void)
{
    registry = NULL;
    if (self.registered) {
        list_insert(&registry, &self);
    }
    pthread_mutex_init(&gp_lock, NULL);
    pthread_mutex_unlock(&registry_lock);
}

static void init(void)
{
    /* Runs the destructor at thread exit: the registry never keeps dead threads. */
    (void)pthread_key_create(&exit_key, unregister_reader);
    (void)pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

static void register_reader(void)
{
    pthread_once(&init_once, init);
    pthread_mutex_lock(&registry_lock);
    list_insert(&registry, &self);
    pthread_mutex_unlock(&registry_lock);
    (void)pthread_setspecific(exit_key, &self);
    self.registered = true;
}

void pm_rcu_read_lock(void)
{
    if (!self.registered) {
        register_reader();
    }
    if (self.depth++ == 0) {
        /* Publish "reading since gp_ctr", then fence, before loading any
         * protected pointer: pairs with the fence in synchronize, so either the
         * writer sees this record non-zero or this reader sees the new view. */
        __atomic_store_n(&self.ctr, __atomic_load_n(&gp_ctr, __ATOMIC_SEQ_CST),
                         __ATOMIC_SEQ_CST);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
    }
}

void pm_rcu_read_unlock(void)
{
    if (self.depth && --self.depth == 0) {
        /* Release: every load of the section happens before the writer sees 0. */
        __atomic_store_n(&self.ctr, 0, __ATOMIC_RELEASE);
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

static bool quiescent(const reader *r, uint64_t target)
{
    /* Acquire pairs with the release in read_unlock. */
    uint64_t c = __atomic_load_n(&r->ctr, __ATOMIC_ACQUIRE);
    return c == 0 || c >= target;
}

pm_status pm_rcu_synchronize(void)
{
    if (self.depth) {
        return PM_ERR_IN_READER;
    }
    pthread_once(&init_once, init);
    pthread_mutex_lock(&gp_lock);
    /* Order the writer's pointer swaps before the counter bump and before the
     * loads of the readers' records (the other half of read_lock's fence). */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint64_t target = __atomic_add_fetch(&gp_ctr, 1, __ATOMIC_SEQ_CST);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);

    /* Readers seen quiescent move to `done`; the registry shrinks to those
     * still inside a section that began before the bump.  Threads registering
     * meanwhile start after the bump and need no waiting. */
    reader *done = NULL;
    unsigned spins = 0;
    pthread_mutex_lock(&registry_lock);
    for (;;) {
        reader *r = registry, *next;
        for (; r; r = next) {
            next = r->next;
            if (quiescent(r, target)) {
                list_remove(r);
                list_insert(&done, r);
            }
        }
        if (!registry) {
            break;
        }
        pthread_mutex_unlock(&registry_lock);
        pause_briefly(spins++);
        pthread_mutex_lock(&registry_lock);
    }
    /* Hand the records back; those that exited meanwhile unlinked themselves. */
    while (done) {
        reader *r = done;
        list_remove(r);
        list_insert(&registry, r);
    }
    pthread_mutex_unlock(&registry_lock);
    pthread_mutex_unlock(&gp_lock);
    return PM_OK;
}

int pm_rcu_in_reader(void)
{
    return self.depth != 0;
}
