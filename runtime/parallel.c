/* bnnmlir_parallel_for over a persistent pthread pool.
 *
 * With k threads, [0, n) is split into min(n, k) contiguous home chunks whose sizes differ by at
 * most 1: the caller's is chunk 0, worker i's chunk i. Each home chunk is cut into up to
 * SUBCHUNKS contiguous pieces, which the threads of the job claim: each thread claims the pieces
 * of its own chunk first, in order, then those still unclaimed in the other chunks. On an idle
 * machine every thread runs its own chunk (the same rows of each layer on the same core); when a
 * thread is descheduled (more runnable threads than cores), the others run its pieces instead of
 * waiting for it for a whole time slice.
 *
 * Protocol:
 * - `submit_lock` is held by the submitting thread for the whole job (posting, claiming, waiting
 *   for the last piece), so jobs from different threads run one after the other and never
 *   overwrite each other's descriptor. Starting, resizing and stopping the pool also happen
 *   under it, so the pool never changes while a job runs.
 * - The job descriptor, the claim counters and `generation` are written under `pool.lock`; a
 *   worker waits on `job_posted` until the generation differs from the last one it saw (a
 *   predicate loop: a spurious wakeup waits again, and a job posted before the worker waits is
 *   not missed), then reads the descriptor under the lock.
 * - Claim counter c of home chunk c holds (job tag << 32 | next piece); a piece is claimed by a
 *   compare-and-swap that checks the tag, so a worker that wakes after its job has ended (and
 *   another one was posted) claims nothing. A job ends when its last piece is done, so a
 *   successful claim always belongs to the running job.
 * - `done` counts the finished pieces of the job, each thread adding the pieces it ran when it
 *   finds none left to claim; the thread that brings it to the total signals `job_finished`
 *   under `pool.lock`, and the submitter waits for `done == total` (a predicate loop under the
 *   lock).
 * - Thread counts are atomics: setting one never blocks and never touches a running job; the
 *   next job resizes the pool under `submit_lock` when it needs to.
 * - Spinning before sleeping: a network calls this once per layer, tens of microseconds apart,
 *   and waking a sleeping thread takes about as long. So a worker first polls `generation`
 *   (an atomic, stored under `pool.lock`) for up to SPIN_NS after its last job, and the
 *   submitter polls `done` for up to SPIN_NS after its claims, before waiting on the
 *   condition variables as above; the predicates are checked again under the lock, so the
 *   polling only decides when to take it. */
#define _POSIX_C_SOURCE 200809L

#include "bnnmlir_runtime.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

/* How long a worker (or the submitter) polls before sleeping on a condition variable. */
#define SPIN_NS 100000

/* Pieces per home chunk (fewer for a chunk of fewer iterations): a thread that waits for a
 * descheduled one waits for at most one piece. */
#define SUBCHUNKS 4

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Polls `*value` until it equals `target` (`equal`) or differs from it (`!equal`), or SPIN_NS
 * pass; every 64 polls the clock is read and the core yielded (to a runnable thread of this
 * process that the polling would otherwise keep waiting). */
static void spin_on(const _Atomic uint64_t *value, uint64_t target, int equal) {
    int64_t deadline = now_ns() + SPIN_NS;
    for (unsigned i = 1;; ++i) {
        if ((atomic_load_explicit(value, memory_order_acquire) == target) == equal)
            return;
        cpu_relax();
        if (i % 64 == 0) {
            if (now_ns() > deadline)
                return;
            sched_yield();
        }
    }
}

/* A home chunk's claim counter, alone on its cache line: its owner claims its pieces without
 * moving the line between cores. */
typedef struct claim_counter {
    _Alignas(64) _Atomic uint64_t next;
} claim_counter;

typedef struct worker_pool {
    pthread_mutex_t lock;
    pthread_cond_t job_posted;
    pthread_cond_t job_finished;
    pthread_t *threads;
    claim_counter *claims; /* one per home chunk: num_workers + 1 */
    int num_workers;
    int stopping;
    _Atomic uint64_t generation; /* stored under lock; polled without it */
    bnnmlir_task_fn fn;
    void *ctx;
    int64_t n;
    int chunks;
    uint64_t total; /* pieces of the job */
    _Atomic uint64_t done; /* finished pieces of the job; polled without the lock */
} worker_pool;

/* What a thread taking part in a job reads from the descriptor (under the lock). */
typedef struct job_view {
    bnnmlir_task_fn fn;
    void *ctx;
    int64_t n;
    int chunks;
    uint64_t total;
    uint32_t tag;
} job_view;

static pthread_mutex_t submit_lock = PTHREAD_MUTEX_INITIALIZER;
static worker_pool pool = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .job_posted = PTHREAD_COND_INITIALIZER,
    .job_finished = PTHREAD_COND_INITIALIZER,
};
static atomic_int global_threads = 1;
/* Per-thread override of global_threads (0: none). */
static _Thread_local int local_threads;
static int exit_hook_registered; /* atexit and atfork handlers; guarded by submit_lock */
/* Set on pool threads and on a caller running its chunk: nested loops run inline. */
static _Thread_local int inside_parallel_for;

/* Home chunk `index` of [0, n) split into `chunks`: [*begin, *end). */
static void home_chunk(int64_t n, int chunks, int index, int64_t *begin, int64_t *end) {
    int64_t base = n / chunks;
    int64_t extra = n % chunks;
    *begin = index * base + (index < extra ? index : extra);
    *end = *begin + base + (index < extra ? 1 : 0);
}

static int64_t pieces_of(int64_t length) { return length < SUBCHUNKS ? length : SUBCHUNKS; }

/* Pieces of all home chunks of a job. */
static uint64_t total_pieces(int64_t n, int chunks) {
    uint64_t total = 0;
    for (int c = 0; c < chunks; ++c) {
        int64_t begin, end;
        home_chunk(n, chunks, c, &begin, &end);
        total += (uint64_t)pieces_of(end - begin);
    }
    return total;
}

/* Claims and runs the pieces of home chunk `c` of job `job` still unclaimed; returns how many
 * it ran when there is none left (or the job is no longer the pool's). */
static uint64_t run_pieces(const job_view *job, int c) {
    int64_t begin, end;
    home_chunk(job->n, job->chunks, c, &begin, &end);
    int64_t length = end - begin;
    uint64_t pieces = (uint64_t)pieces_of(length), ran = 0;
    _Atomic uint64_t *claim = &pool.claims[c].next;
    for (;;) {
        uint64_t seen = atomic_load_explicit(claim, memory_order_acquire);
        do {
            if ((uint32_t)(seen >> 32) != job->tag || (seen & 0xffffffffu) >= pieces)
                return ran;
        } while (!atomic_compare_exchange_weak_explicit(claim, &seen, seen + 1,
                                                        memory_order_acq_rel,
                                                        memory_order_acquire));
        int64_t k = (int64_t)(seen & 0xffffffffu);
        int64_t step = (int64_t)pieces;
        job->fn(job->ctx, begin + length * k / step, begin + length * (k + 1) / step);
        ++ran;
    }
}

/* Home chunk `own` first, then what is left of the others; then the pieces this thread ran are
 * added to `done` at once. A thread leaves only when no piece is left to claim, so `done`
 * reaches the total when the last thread still running a piece adds its own: that thread
 * signals the submitter. */
static void take_part(const job_view *job, int own) {
    uint64_t ran = 0;
    for (int i = 0; i < job->chunks; ++i)
        ran += run_pieces(job, (own + i) % job->chunks);
    if (ran != 0 && atomic_fetch_add_explicit(&pool.done, ran, memory_order_acq_rel) + ran ==
                        job->total) {
        pthread_mutex_lock(&pool.lock);
        pthread_cond_signal(&pool.job_finished);
        pthread_mutex_unlock(&pool.lock);
    }
}

typedef struct worker_arg {
    int index;
    uint64_t first_generation;
} worker_arg;

static void *worker_main(void *raw) {
    int index = ((worker_arg *)raw)->index;
    uint64_t seen = ((worker_arg *)raw)->first_generation;
    free(raw);
    inside_parallel_for = 1;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        if (!pool.stopping && pool.generation == seen) {
            pthread_mutex_unlock(&pool.lock);
            spin_on(&pool.generation, seen, 0);
            pthread_mutex_lock(&pool.lock);
        }
        while (!pool.stopping && pool.generation == seen)
            pthread_cond_wait(&pool.job_posted, &pool.lock);
        if (pool.stopping)
            break;
        seen = pool.generation;
        if (index >= pool.chunks)
            continue;
        job_view job = {pool.fn, pool.ctx, pool.n, pool.chunks, pool.total, (uint32_t)seen};
        pthread_mutex_unlock(&pool.lock);
        take_part(&job, index);
        pthread_mutex_lock(&pool.lock);
    }
    pthread_mutex_unlock(&pool.lock);
    return NULL;
}

/* Caller holds submit_lock (no job is running). */
static void stop_workers_locked(void) {
    if (pool.num_workers == 0)
        return;
    pthread_mutex_lock(&pool.lock);
    pool.stopping = 1;
    pthread_cond_broadcast(&pool.job_posted);
    pthread_mutex_unlock(&pool.lock);
    for (int i = 0; i < pool.num_workers; ++i)
        pthread_join(pool.threads[i], NULL);
    free(pool.threads);
    free(pool.claims);
    pool.threads = NULL;
    pool.claims = NULL;
    pool.num_workers = 0;
    pool.stopping = 0;
}

/* fork(): the prepare handler takes both locks, so no job or resize is in flight at the fork;
 * the child has none of the parent's workers and starts with an empty pool (created again by
 * its first parallel loop), fresh condition variables and both locks released. */
static void lock_pool_for_fork(void) {
    pthread_mutex_lock(&submit_lock);
    pthread_mutex_lock(&pool.lock);
}

static void unlock_pool_after_fork(void) {
    pthread_mutex_unlock(&pool.lock);
    pthread_mutex_unlock(&submit_lock);
}

static void reset_pool_in_child(void) {
    free(pool.threads);
    free(pool.claims);
    pool.threads = NULL;
    pool.claims = NULL;
    pool.num_workers = 0;
    pool.stopping = 0;
    pool.done = 0;
    pthread_cond_init(&pool.job_posted, NULL);
    pthread_cond_init(&pool.job_finished, NULL);
    inside_parallel_for = 0;
    unlock_pool_after_fork();
}

static void stop_workers_at_exit(void) {
    /* exit() while another thread is inside a job: leave the pool to the process teardown
     * rather than wait for that job. */
    if (inside_parallel_for || pthread_mutex_trylock(&submit_lock) != 0)
        return;
    stop_workers_locked();
    pthread_mutex_unlock(&submit_lock);
}

/* Caller holds submit_lock. Creates up to `count` workers; fewer if the system refuses. */
static void start_workers_locked(int count) {
    if (!exit_hook_registered) {
        atexit(stop_workers_at_exit);
        pthread_atfork(lock_pool_for_fork, unlock_pool_after_fork, reset_pool_in_child);
        exit_hook_registered = 1;
    }
    pool.threads = calloc((size_t)count, sizeof(pthread_t));
    pool.claims = aligned_alloc(_Alignof(claim_counter), ((size_t)count + 1) * sizeof(claim_counter));
    if (pool.threads == NULL || pool.claims == NULL) {
        free(pool.threads);
        free(pool.claims);
        pool.threads = NULL;
        pool.claims = NULL;
        return;
    }
    /* A worker may first run after the next job is posted: it starts from the generation
     * current at its creation, so it cannot miss that job. */
    pthread_mutex_lock(&pool.lock);
    for (int i = 0; i < count; ++i) {
        worker_arg *arg = malloc(sizeof *arg);
        if (arg == NULL)
            break;
        arg->index = i + 1;
        arg->first_generation = pool.generation;
        if (pthread_create(&pool.threads[i], NULL, worker_main, arg) != 0) {
            free(arg);
            break;
        }
        pool.num_workers = i + 1;
    }
    pthread_mutex_unlock(&pool.lock);
}

/* Caller holds submit_lock. A job with the process-wide count sizes the pool exactly; a job
 * with a per-thread count only grows it (idle extra workers skip the job). */
static void fit_pool_locked(int threads, int exact) {
    int wanted = threads - 1;
    if (pool.num_workers == wanted || (!exact && pool.num_workers > wanted))
        return;
    stop_workers_locked();
    start_workers_locked(wanted);
}

void bnnmlir_set_num_threads(int k) {
    atomic_store(&global_threads, k < 1 ? 1 : k);
}

void bnnmlir_set_local_num_threads(int k) { local_threads = k < 1 ? 0 : k; }

int bnnmlir_get_num_threads(void) {
    return local_threads != 0 ? local_threads : atomic_load(&global_threads);
}

void bnnmlir_parallel_for(bnnmlir_task_fn fn, void *ctx, int64_t n) {
    if (n <= 0)
        return;
    int threads = bnnmlir_get_num_threads();
    if (threads == 1 || n == 1 || inside_parallel_for) {
        fn(ctx, 0, n);
        return;
    }
    pthread_mutex_lock(&submit_lock);
    fit_pool_locked(threads, local_threads == 0);
    int available = pool.num_workers + 1;
    if (available < threads)
        threads = available;
    int chunks = n < threads ? (int)n : threads;
    if (chunks == 1) { /* no worker could be started */
        pthread_mutex_unlock(&submit_lock);
        fn(ctx, 0, n);
        return;
    }
    inside_parallel_for = 1;
    pthread_mutex_lock(&pool.lock);
    uint64_t generation = pool.generation + 1;
    job_view job = {fn, ctx, n, chunks, total_pieces(n, chunks), (uint32_t)generation};
    pool.fn = fn;
    pool.ctx = ctx;
    pool.n = n;
    pool.chunks = chunks;
    pool.total = job.total;
    atomic_store_explicit(&pool.done, 0, memory_order_relaxed);
    for (int c = 0; c < chunks; ++c)
        atomic_store_explicit(&pool.claims[c].next, (uint64_t)job.tag << 32,
                              memory_order_relaxed);
    pool.generation = generation;
    pthread_cond_broadcast(&pool.job_posted);
    pthread_mutex_unlock(&pool.lock);

    take_part(&job, 0);

    spin_on(&pool.done, job.total, 1);
    pthread_mutex_lock(&pool.lock);
    while (pool.done != job.total)
        pthread_cond_wait(&pool.job_finished, &pool.lock);
    pthread_mutex_unlock(&pool.lock);
    inside_parallel_for = 0;
    pthread_mutex_unlock(&submit_lock);
}
