/* A small persistent pool of worker threads, shared by the C kernels (float_net.c, fixed_net.c).
 * Header-only with static functions and static state: each shared library that includes it has
 * its own pool.  A kernel calls
 *
 *     pool_run(run_block, context, blocks, threads);
 *
 * and run_block(context, b) is called once for each b in 0 .. blocks - 1, on the calling thread
 * and on up to threads - 1 workers; pool_run returns when every block is done.
 *
 * Why this design (issue 14): an OpenMP team's closing barrier waits for every team member, and
 * on a busy machine a member that is not scheduled holds the call for a time slice (measured:
 * 15 ms for a call of 8 images on a 2-core machine under load); threads made per call cost tens
 * of microseconds, too much for a call of 10 images.  Here:
 *  - workers are created on the first call that wants them and kept for the life of the process
 *    (the libraries are never unloaded: sharedlib pins them with RTLD_NODELETE, so no worker runs
 *    code that is unmapped at interpreter exit; they simply die with the process);
 *  - an idle worker spins for POOL_SPIN_NS with a pause instruction, so back-to-back calls find
 *    it awake, then sleeps on a condition variable;
 *  - the caller always works, blocks are claimed first come, first served (a compare-and-swap on
 *    one word that holds the job's generation and its next block), and the caller waits only for
 *    blocks a worker has already claimed: a worker that is descheduled before it claims anything
 *    costs nothing, the caller simply does more blocks;
 *  - a worker touches the caller's context only after claiming one of its blocks, and the call
 *    does not return before that block is done, so contexts may live on the caller's stack.
 *
 * Thread safety: pool_run may be called from several threads at once.  One call at a time owns
 * the pool; a call that finds it owned by another runs all of its blocks on its own thread
 * (correct, never blocked by the other call).  run_block must be safe to run concurrently for
 * distinct blocks.
 *
 * Fork: a child process has no workers (fork copies only the calling thread).  A pthread_atfork
 * handler resets the child's pool (no workers, no owner, no job, fresh mutex and condition
 * variable) and the child creates its own workers on its next parallel call.
 *
 * Needs POSIX threads (-pthread) and _POSIX_C_SOURCE >= 200809L defined before the first system
 * header (clock_gettime, pthread_sigmask under -std=c99).
 */
#ifndef LENET5_WORK_POOL_H
#define LENET5_WORK_POOL_H

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>

#ifndef POOL_MAX_WORKERS
#define POOL_MAX_WORKERS 255 /* threads beyond 256 a call are not used */
#endif
#ifndef POOL_SPIN_NS
#define POOL_SPIN_NS 10000 /* how long an idle worker stays awake for the next call (measured) */
#endif

/* The ticket: the job's generation in the high bits, its next unclaimed block in the low ones.
 * A generation of 40 bits never wraps (10^12 jobs); a job is published in chunks of at most
 * POOL_CHUNK blocks so that the block index never reaches its field's limit. */
#define POOL_INDEX_BITS 24
#define POOL_INDEX_MASK ((UINT64_C(1) << POOL_INDEX_BITS) - 1)
#define POOL_CHUNK (INT64_C(1) << (POOL_INDEX_BITS - 1))

typedef void (*pool_block_fn)(void *context, int64_t block);

#define POOL_LINE __attribute__((aligned(64))) /* apart on their own cache lines */

static POOL_LINE uint64_t pool_ticket;     /* atomic: generation << POOL_INDEX_BITS | next block */
static POOL_LINE int64_t pool_done;        /* atomic: blocks of the current job finished */
static POOL_LINE struct {                  /* the current job, written by its owner before the ticket */
    pool_block_fn run;                     /* atomic (relaxed), validated by the ticket's CAS */
    void *context;                         /* atomic (relaxed) */
    int64_t blocks, base;                  /* atomic (relaxed): blocks in this chunk, the first's index */
    int helpers;                           /* atomic (relaxed): workers 0 .. helpers - 1 take part */
} pool_job;
static POOL_LINE int pool_owner;           /* atomic: 1 while a call owns the pool */
static int pool_workers;                   /* created so far; changed by the owner only */
static int pool_sleepers;                  /* atomic: workers waiting on pool_wake */
static pthread_mutex_t pool_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_wake = PTHREAD_COND_INITIALIZER;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static inline void pool_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || (defined(__ARM_ARCH) && __ARM_ARCH >= 7)
    __asm__ __volatile__("yield");
#endif
}

static int64_t pool_now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Claims and runs blocks of the job whose ticket is `ticket` while any is left; `worker` is the
 * worker's number, -1 for the owner.  Returns the generation it worked on; *excluded is set
 * when the job wants fewer workers than this one's number (it then sleeps at once). */
static uint64_t pool_work(uint64_t ticket, int worker, int *excluded) {
    for (;;) {
        const uint64_t index = ticket & POOL_INDEX_MASK;
        /* A newer job's fields may be read here; the CAS below then fails, since a newer job is
         * published only after every block of this one has been claimed. */
        const int64_t blocks = __atomic_load_n(&pool_job.blocks, __ATOMIC_RELAXED);
        const int helpers = __atomic_load_n(&pool_job.helpers, __ATOMIC_RELAXED);
        *excluded = worker >= helpers;
        if ((int64_t)index >= blocks || *excluded) return ticket >> POOL_INDEX_BITS;
        const pool_block_fn run = __atomic_load_n(&pool_job.run, __ATOMIC_RELAXED);
        void *const context = __atomic_load_n(&pool_job.context, __ATOMIC_RELAXED);
        const int64_t base = __atomic_load_n(&pool_job.base, __ATOMIC_RELAXED);
        if (__atomic_compare_exchange_n(&pool_ticket, &ticket, ticket + 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE)) {
            run(context, base + (int64_t)index);
            __atomic_fetch_add(&pool_done, 1, __ATOMIC_RELEASE); /* the block's writes with it */
            ticket = __atomic_load_n(&pool_ticket, __ATOMIC_ACQUIRE);
        } /* else `ticket` now holds the current value: try again with it */
    }
}

static void *pool_worker(void *arg) {
    const int worker = (int)(intptr_t)arg;
    uint64_t seen = UINT64_MAX; /* the generation last worked on: none yet */
    int excluded = 0;
    for (;;) {
        uint64_t ticket = __atomic_load_n(&pool_ticket, __ATOMIC_ACQUIRE);
        if (ticket >> POOL_INDEX_BITS != seen) {
            seen = pool_work(ticket, worker, &excluded);
            continue;
        }
        const int64_t until = excluded ? 0 : pool_now_ns() + POOL_SPIN_NS;
        for (int spins = excluded ? 64 : 1; ticket >> POOL_INDEX_BITS == seen; ++spins) {
            if (spins % 64 == 0 && pool_now_ns() > until) { /* no new job for a while: sleep */
                pthread_mutex_lock(&pool_mutex);
                __atomic_fetch_add(&pool_sleepers, 1, __ATOMIC_SEQ_CST);
                /* seq_cst pairs with pool_run's store of the ticket then load of pool_sleepers:
                 * either this load sees the new job or that load sees this sleeper. */
                while (__atomic_load_n(&pool_ticket, __ATOMIC_SEQ_CST) >> POOL_INDEX_BITS == seen)
                    pthread_cond_wait(&pool_wake, &pool_mutex);
                __atomic_fetch_sub(&pool_sleepers, 1, __ATOMIC_SEQ_CST);
                pthread_mutex_unlock(&pool_mutex);
            } else {
                pool_pause();
            }
            ticket = __atomic_load_n(&pool_ticket, __ATOMIC_ACQUIRE);
        }
    }
    return NULL;
}

/* In a forked child: none of the parent's workers exist, nor any call in progress on another
 * thread.  The mutex may have been held by a worker at the fork: made anew. */
static void pool_after_fork_in_child(void) {
    pthread_mutex_t fresh_mutex = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t fresh_cond = PTHREAD_COND_INITIALIZER;
    pool_mutex = fresh_mutex;
    pool_wake = fresh_cond;
    pool_workers = 0;
    pool_sleepers = 0;
    pool_owner = 0;
    pool_done = 0;
    pool_job.blocks = 0; /* a job left by a parent thread has no blocks left here */
    pool_ticket = ((pool_ticket >> POOL_INDEX_BITS) + 1) << POOL_INDEX_BITS;
}

static void pool_register_fork_handler(void) { pthread_atfork(NULL, NULL, pool_after_fork_in_child); }

/* Up to `wanted` workers (fewer if the system refuses threads); called by the owner only.
 * Workers block every signal, so that signals reach the threads of the program itself. */
static int pool_grow(int wanted) {
    if (pool_workers >= wanted) return wanted;
    pthread_once(&pool_once, pool_register_fork_handler);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        while (pool_workers < wanted) {
            pthread_t thread;
            if (pthread_create(&thread, &attr, pool_worker, (void *)(intptr_t)pool_workers) != 0) break;
            ++pool_workers;
        }
        pthread_attr_destroy(&attr);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return pool_workers < wanted ? pool_workers : wanted;
}

/* run(context, b) for every b in 0 .. blocks - 1 on the calling thread and up to threads - 1
 * workers (threads 0 or 1: the calling thread alone); returns when all are done. */
static void pool_run(pool_block_fn run, void *context, int64_t blocks, int threads) {
    int64_t helpers = threads - 1;
    if (helpers > blocks - 1) helpers = blocks - 1;
    if (helpers > POOL_MAX_WORKERS) helpers = POOL_MAX_WORKERS;
    int expected = 0;
    if (helpers < 1 || !__atomic_compare_exchange_n(&pool_owner, &expected, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
        for (int64_t b = 0; b < blocks; ++b) run(context, b); /* alone, or the pool is busy */
        return;
    }
    const int team = pool_grow((int)helpers);
    for (int64_t base = 0; base < blocks; base += POOL_CHUNK) {
        const int64_t chunk = blocks - base < POOL_CHUNK ? blocks - base : POOL_CHUNK;
        __atomic_store_n(&pool_job.run, run, __ATOMIC_RELAXED);
        __atomic_store_n(&pool_job.context, context, __ATOMIC_RELAXED);
        __atomic_store_n(&pool_job.blocks, chunk, __ATOMIC_RELAXED);
        __atomic_store_n(&pool_job.base, base, __ATOMIC_RELAXED);
        __atomic_store_n(&pool_job.helpers, team, __ATOMIC_RELAXED);
        __atomic_store_n(&pool_done, 0, __ATOMIC_RELAXED);
        const uint64_t generation = (__atomic_load_n(&pool_ticket, __ATOMIC_RELAXED) >> POOL_INDEX_BITS) + 1;
        __atomic_store_n(&pool_ticket, generation << POOL_INDEX_BITS, __ATOMIC_SEQ_CST); /* publishes */
        if (__atomic_load_n(&pool_sleepers, __ATOMIC_SEQ_CST) > 0) {
            pthread_mutex_lock(&pool_mutex);
            pthread_cond_broadcast(&pool_wake);
            pthread_mutex_unlock(&pool_mutex);
        }
        int owner_excluded;
        pool_work(__atomic_load_n(&pool_ticket, __ATOMIC_ACQUIRE), -1, &owner_excluded);
        /* Every block is claimed; wait for those still running on workers. */
        for (int spins = 0; __atomic_load_n(&pool_done, __ATOMIC_ACQUIRE) < chunk; ++spins)
            if (spins < 1000) pool_pause();
            else sched_yield();
    }
    __atomic_store_n(&pool_owner, 0, __ATOMIC_RELEASE);
}

#endif
