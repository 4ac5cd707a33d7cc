/*
 * rcu.c - read-copy-update: readers never block, writers wait for a grace period.
 *
 * Each thread that reads owns a record, allocated on its first read-side
 * section and linked into the one global registry (the only global state of
 * the C core).  The thread finds it through an initial-exec thread-local
 * pointer (rcu.h: pm_rcu_self), and a pthread key whose destructor unlinks
 * and frees it when the thread exits.  The key is created once, when pymem
 * is imported (pm_rcu_init), so a process out of keys fails the import
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
 * Records are malloc'd; only the pointer to one is thread-local, and only its
 * own thread reads that pointer.  A record in TLS would be freed with the
 * thread's TLS block, after its last write, by whichever thread reuses the
 * block, which ThreadSanitizer cannot order; in a dlopen'ed module a
 * general-dynamic TLS block is moreover malloc'd by glibc on first touch,
 * which aborts the process if that fails.  The initial-exec pointer lives in
 * the static TLS block made with the thread, so touching it never allocates.
 * If a record cannot be allocated or stored, the thread reads as an
 * "anonymous" reader instead: one shared counter of open anonymous sections,
 * which synchronize waits to see at zero.  read_lock therefore never fails.
 *
 * Ordering.  A reader's outermost lock is: load gp_ctr (acquire), store it
 * into its record's ctr (relaxed), one sequentially consistent fence, then
 * the section's loads of RCU-protected pointers (acquire).  Its last unlock
 * stores 0 into ctr with release order.  A writer has published the new
 * pointer (an atomic exchange, which happens before the synchronize that
 * follows it, in this thread or the reclaimer's: the queue between them is
 * a mutex); synchronize then runs a seq_cst fence, bumps gp_ctr (seq_cst),
 * runs a second fence and reads every record's ctr (acquire).  Why no
 * reader can use memory the writer frees after synchronize returns:
 *
 *  1. A section whose ctr store the writer does not see.  The two fences
 *     (the reader's, the writer's first) are ordered one way or the other in
 *     the single total order of seq_cst operations.  If the reader's came
 *     first, the writer's later load of ctr, sequenced after its own fence,
 *     must read the reader's store or a later one (C11 7.17.4: store ->
 *     fence A, fence B -> load, A before B in S: the load sees the store or
 *     what follows it), so it does see it.  Hence the writer's fence came
 *     first, and then the reader's load of the pointer, sequenced after its
 *     fence, sees the writer's exchange (sequenced before the writer's fence)
 *     or something newer: the section never sees the old view.  This is the
 *     store-buffering pattern; a fence on each side is exactly what it needs,
 *     and nothing weaker than a full fence orders a store before a later
 *     load.  QEMU (smp_mb_placeholder after the store) and liburcu's
 *     urcu-mb flavour do the same on their read side.
 *  2. A section whose ctr the writer reads as c >= target, the bumped
 *     value: the reader's acquire load of gp_ctr read the bump (or later),
 *     which the writer made after its first fence, after the publish; so
 *     the publish happens before the reader's pointer load, which returns
 *     the new view.  Nothing to wait for.
 *  3. A section whose ctr the writer reads as 0 or c < target: ctr != 0 and
 *     older makes the writer wait, re-reading until it sees 0 or a value >=
 *     target.  A 0 it reads is either the reader's unlock of that section
 *     (a release store read by an acquire load: all of the section's loads
 *     happen before the writer goes on to free) or a store from before the
 *     section's lock, which is case 1.
 * The old code stored ctr with an xchg and fenced again (two locked
 * instructions per lock); the store itself needs no ordering of its own, the
 * one fence after it gives it all it needs.  The unlock needs no fence: a
 * writer polls the records (it sleeps between passes) instead of being
 * woken by the last reader, which is what QEMU's unlock fences for (its
 * `waiting` flag).  Per lock/unlock pair this is one fence against QEMU's
 * two.  QEMU's membarrier build (and liburcu's urcu-memb) drop the reader's
 * fence too, making the writer force one on every CPU running the process
 * with the membarrier system call (Linux 4.14+, registered first, an IPI to
 * each of those CPUs per grace period); pymem keeps the fence, which already
 * puts the pair at QEMU's cost and works wherever C11 atomics do.
 * ThreadSanitizer ignores fences (gcc's -Wtsan says so): under it the
 * acquire/release edges of cases 2 and 3 are checked, while case 1 rests on
 * the fence alone, which the stress tests exercise on the real hardware.
 *
 * Signals: read_lock and read_unlock only touch this thread's record, so a
 * C-level signal handler cannot interfere with them; the danger is Python's.
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

#include "rcu.h"

typedef pm_rcu_reader reader;

/* Serialises writers; held across a whole grace period. */
static pthread_mutex_t gp_lock = PTHREAD_MUTEX_INITIALIZER;
/* Guards the reader lists; never held while waiting for a reader. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static reader *registry;
uint64_t pm_rcu_gp_ctr = 1;
_Thread_local pm_rcu_reader *pm_rcu_self __attribute__((tls_model("initial-exec")));
static pthread_key_t exit_key;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static pm_status init_status = PM_ERR_STATE;   /* until init has run */
/* Open read-side sections of threads without a record (see above); atomic.
 * While it is not zero, no recordless thread registers: one that is inside
 * an anonymous section then stays anonymous until it has left it, so its
 * unlocks always find the counter they must decrement. */
static uint64_t anonymous_readers;

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
    if (pm_rcu_self == r) {
        pm_rcu_self = NULL;
    }
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
    reader *self = pm_rcu_self;
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

void pm_rcu_lock_slow(void)
{
    reader *r = NULL;
    if (__atomic_load_n(&anonymous_readers, __ATOMIC_SEQ_CST) == 0) {
        r = register_reader();
    }
    if (!r) {
        /* Anonymous: counted, then the same fence as a record's store. */
        __atomic_add_fetch(&anonymous_readers, 1, __ATOMIC_SEQ_CST);
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        return;
    }
    pm_rcu_self = r;
    pm_rcu_lock();
}

void pm_rcu_unlock_slow(void)
{
    /* An anonymous section ends (an unlock without a lock is ignored as
     * long as no anonymous section is open anywhere). */
    uint64_t n = __atomic_load_n(&anonymous_readers, __ATOMIC_RELAXED);
    while (n && !__atomic_compare_exchange_n(&anonymous_readers, &n, n - 1, true,
                                             __ATOMIC_RELEASE, __ATOMIC_RELAXED)) {
    }
}

void pm_rcu_read_lock(void)
{
    pm_rcu_lock();
}

void pm_rcu_read_unlock(void)
{
    pm_rcu_unlock();
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
    reader *self = pm_rcu_self;
    if (self && self->depth) {
        return PM_ERR_IN_READER;
    }
    pthread_mutex_lock(&gp_lock);
    /* Order the writer's pointer swaps before the counter bump and before the
     * loads of the readers' records (the other half of read_lock's fence). */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint64_t target = __atomic_add_fetch(&pm_rcu_gp_ctr, 1, __ATOMIC_SEQ_CST);
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

/*
 * A grace period if one can be had without waiting: the writer half of
 * pm_rcu_synchronize (same fences, same bump, same reads of the records, so
 * the "Ordering" proof above covers it) with a single pass over the records
 * instead of a wait.  1 when every record was quiescent and no anonymous
 * section was open (everything unpublished before the call may be freed
 * now), 0 otherwise: some section may still see it, call_rcu it instead.
 * Also 0 inside a read-side section, and when another writer holds gp_lock
 * (the reclaimer mid-grace-period: never wait for it).  Bumping the counter
 * on a failed try is harmless: it only grows.
 */
int pm_rcu_try_synchronize(void)
{
    reader *self = pm_rcu_self;
    if (self && self->depth) {
        return 0;
    }
    if (pthread_mutex_trylock(&gp_lock)) {
        return 0;
    }
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint64_t target = __atomic_add_fetch(&pm_rcu_gp_ctr, 1, __ATOMIC_SEQ_CST);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    int done = __atomic_load_n(&anonymous_readers, __ATOMIC_ACQUIRE) == 0;
    if (done) {
        pthread_mutex_lock(&registry_lock);
        for (const reader *r = registry; r && done; r = r->next) {
            done = quiescent(r, target);
        }
        pthread_mutex_unlock(&registry_lock);
    }
    pthread_mutex_unlock(&gp_lock);
    return done;
}

int pm_rcu_in_reader(void)
{
    reader *self = pm_rcu_self;
    return self && self->depth != 0;
}
