/*
 * rcu.c - read-copy-update: readers never block, writers wait for a grace period.
 *
 * Each thread that reads owns a record, allocated on its first read-side
 * section and linked into the one global registry (the only global state of
 * the C core); the thread finds it through a pthread key, whose destructor
 * unlinks and frees it when the thread exits.  The key is created once, when
 * pymem is imported (pm_rcu_init), so a process out of keys fails the import
 * instead of pymem writing into some other library's key.  A reader
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
 *
 * Records are malloc'd, not _Thread_local: in a dlopen'ed module thread-local
 * storage is itself malloc'd by glibc on first touch (which aborts the process
 * if that fails) and freed by whichever thread reuses the stack (a free
 * ThreadSanitizer cannot order after the exiting thread's last write).  If a
 * record cannot be allocated or stored, the thread reads as an "anonymous"
 * reader instead: one shared counter of open anonymous sections, which
 * synchronize waits to see at zero.  read_lock therefore never fails.
 *
 * Signals: read_lock and read_unlock only touch this thread's record, so a
 * C-level signal handler cannot interfere with them; the danger is Python's.
 * A Python signal handler (Ctrl-C's KeyboardInterrupt) runs only between
 * bytecodes, so a lock taken by one Python call and released by a later one
 * can be left taken for good (depth stays 1, every grace period waits for
 * this thread).  pymem never splits a section across bytecodes: the C core
 * takes and leaves its sections within each call (access.c,
 * address_space.c); the Python side enters them only through C code that
 * also leaves them before returning (the `section` and `rw_*` builtins of
 * csrc/ext/fastpath.c) or through `ReadSection`, whose `__enter__` and
 * `__exit__` are both C, so no bytecode boundary lies between the lock and
 * the `with` handler that unlocks (pymem/rcu.py:read_lock).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "pymem.h"

typedef struct reader {
    uint64_t ctr;            /* 0 outside a read-side section; atomic */
    unsigned depth;          /* nesting, touched only by the owning thread */
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
static pm_status init_status = PM_ERR_STATE;   /* until init has run */
/* Open read-side sections of threads without a record (see above); atomic.
 * While it is not zero, no recordless thread registers: one that is inside
 * an anonymous section then stays anonymous until it has left it, so its
 * unlocks always find the counter they must decrement. */
static uint64_t anonymous_readers;

static reader *self_record(void)
{
    return __atomic_load_n(&init_status, __ATOMIC_ACQUIRE) == PM_OK
           ? pthread_getspecific(exit_key) : NULL;
}

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

/* The key's destructor, at thread exit (glibc has already set the thread's
 * value to NULL: a later key destructor that reads registers a new record,
 * which this destructor frees in turn). */
static void unregister_reader(void *arg)
{
    reader *r = arg;
    pthread_mutex_lock(&registry_lock);
    list_remove(r);
    pthread_mutex_unlock(&registry_lock);
    /* Unlinked under the lock: no writer can be reading it any more. */
    free(r);
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
    /* The other threads' records are gone with them (their memory leaks in
     * the child: their owners never run their destructors here). */
    reader *self = self_record();
    registry = NULL;
    if (self) {
        list_insert(&registry, self);
    }
    /* A thread that was in an anonymous section is gone too; this thread's
     * own anonymous sections, if any, leak a count (it reads on regardless,
     * and a later synchronize waits for them). */
    pthread_mutex_init(&gp_lock, NULL);
    pthread_mutex_unlock(&registry_lock);
}

static void init(void)
{
    /* Runs the destructor at thread exit: the registry never keeps dead
     * threads.  Checked: if it failed, the key would be whatever exit_key
     * held (0: another library's, CPython's own GIL-state key). */
    int err = pthread_key_create(&exit_key, unregister_reader);
    pm_status st = PM_OK;
    if (err) {
        st = err == ENOMEM ? PM_ERR_NOMEM : PM_ERR_RESOURCE;
    } else if (pthread_atfork(before_fork, after_fork_parent, after_fork_child)) {
        pthread_key_delete(exit_key);
        st = PM_ERR_NOMEM;
    }
    __atomic_store_n(&init_status, st, __ATOMIC_RELEASE);
}

pm_status pm_rcu_init(void)
{
    pthread_once(&init_once, init);
    return __atomic_load_n(&init_status, __ATOMIC_ACQUIRE);
}

/* This thread's record, made and registered now if it has none; NULL if it
 * cannot be (no memory, or no key), and then the thread reads anonymously. */
static reader *register_reader(void)
{
    if (pm_rcu_init() != PM_OK) {
        return NULL;
    }
    reader *r = calloc(1, sizeof(*r));
    if (!r) {
        return NULL;
    }
    if (pthread_setspecific(exit_key, r)) {
        free(r);
        return NULL;
    }
    pthread_mutex_lock(&registry_lock);
    list_insert(&registry, r);
    pthread_mutex_unlock(&registry_lock);
    return r;
}

void pm_rcu_read_lock(void)
{
    reader *r = self_record();
    if (!r && __atomic_load_n(&anonymous_readers, __ATOMIC_SEQ_CST) == 0) {
        r = register_reader();
    }
    if (!r) {
        /* Anonymous: counted, then the same fence as a record's store. */
        __atomic_add_fetch(&anonymous_readers, 1, __ATOMIC_SEQ_CST);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        return;
    }
    if (r->depth++ == 0) {
        /* Publish "reading since gp_ctr", then fence, before loading any
         * protected pointer: pairs with the fence in synchronize, so either the
         * writer sees this record non-zero or this reader sees the new view. */
        __atomic_store_n(&r->ctr, __atomic_load_n(&gp_ctr, __ATOMIC_SEQ_CST),
                         __ATOMIC_SEQ_CST);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
    }
}

void pm_rcu_read_unlock(void)
{
    reader *r = self_record();
    if (!r) {
        /* An anonymous section ends (an unlock without a lock is ignored as
         * long as no anonymous section is open anywhere). */
        uint64_t n = __atomic_load_n(&anonymous_readers, __ATOMIC_RELAXED);
        while (n && !__atomic_compare_exchange_n(&anonymous_readers, &n, n - 1, true,
                                                 __ATOMIC_RELEASE, __ATOMIC_RELAXED)) {
        }
        return;
    }
    if (r->depth && --r->depth == 0) {
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

static bool quiescent(const reader *r, uint64_t target)
{
    /* Acquire pairs with the release in read_unlock. */
    uint64_t c = __atomic_load_n(&r->ctr, __ATOMIC_ACQUIRE);
    return c == 0 || c >= target;
}

pm_status pm_rcu_synchronize(void)
{
    reader *self = self_record();
    if (self && self->depth) {
        return PM_ERR_IN_READER;
    }
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
    /* Anonymous readers have no start to compare: wait until none is open
     * (no lock held, as below). */
    while (__atomic_load_n(&anonymous_readers, __ATOMIC_ACQUIRE)) {
        pause_briefly(spins++);
    }
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
    reader *self = self_record();
    return self && self->depth != 0;
}
