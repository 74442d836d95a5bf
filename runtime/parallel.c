/* bnnmlir_parallel_for over a persistent pthread pool.
 *
 * With k threads the caller runs chunk 0 and k - 1 worker threads run chunks 1..k-1 of the
 * current job; [0, n) is split into min(n, k) contiguous chunks whose sizes differ by at most 1.
 *
 * Protocol:
 * - `submit_lock` is held by the submitting thread for the whole job (posting, running chunk 0,
 *   waiting for the workers), so jobs from different threads run one after the other and never
 *   overwrite each other's descriptor. Starting, resizing and stopping the pool also happen
 *   under it, so the pool never changes while a job runs.
 * - The job descriptor and `generation` are written under `pool.lock`; a worker waits on
 *   `job_posted` until the generation differs from the last one it saw (a predicate loop: a
 *   spurious wakeup waits again, and a job posted before the worker waits is not missed).
 * - Each worker taking part decrements `pending` under `pool.lock`; the submitter waits on
 *   `job_finished` until `pending` is 0 (again a predicate loop).
 * - Thread counts are atomics: setting one never blocks and never touches a running job; the
 *   next job resizes the pool under `submit_lock` when it needs to.
 * - Spinning before sleeping: a network calls this once per layer, tens of microseconds apart,
 *   and waking a sleeping thread takes about as long. So a worker first polls `generation`
 *   (an atomic, stored under `pool.lock`) for up to SPIN_NS after its last job, and the
 *   submitter polls `pending` for up to SPIN_NS after its own chunk, before waiting on the
 *   condition variables as above; the predicates are checked again under the lock, so the
 *   polling only decides when to take it. */
#define _POSIX_C_SOURCE 200809L

#include "bnnmlir_runtime.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

/* How long a worker (or the submitter) polls before sleeping on a condition variable. */
#define SPIN_NS 100000

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
 * pass; the clock is read every 64 polls. */
static void spin_on(const _Atomic uint64_t *value, uint64_t target, int equal) {
    int64_t deadline = now_ns() + SPIN_NS;
    for (unsigned i = 1;; ++i) {
        if ((atomic_load_explicit(value, memory_order_acquire) == target) == equal)
            return;
        cpu_relax();
        if (i % 64 == 0 && now_ns() > deadline)
            return;
    }
}

typedef struct worker_pool {
    pthread_mutex_t lock;
    pthread_cond_t job_posted;
    pthread_cond_t job_finished;
    pthread_t *threads;
    int num_workers;
    int stopping;
    _Atomic uint64_t generation; /* stored under lock; polled without it */
    bnnmlir_task_fn fn;
    void *ctx;
    int64_t n;
    int chunks;
    _Atomic uint64_t pending; /* likewise */
} worker_pool;

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

static void run_chunk(bnnmlir_task_fn fn, void *ctx, int64_t n, int chunks, int index) {
    int64_t base = n / chunks;
    int64_t extra = n % chunks;
    int64_t begin = index * base + (index < extra ? index : extra);
    int64_t end = begin + base + (index < extra ? 1 : 0);
    if (begin < end)
        fn(ctx, begin, end);
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
        bnnmlir_task_fn fn = pool.fn;
        void *ctx = pool.ctx;
        int64_t n = pool.n;
        int chunks = pool.chunks;
        pthread_mutex_unlock(&pool.lock);
        run_chunk(fn, ctx, n, chunks, index);
        pthread_mutex_lock(&pool.lock);
        if (--pool.pending == 0)
            pthread_cond_signal(&pool.job_finished);
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
    pool.threads = NULL;
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
    pool.threads = NULL;
    pool.num_workers = 0;
    pool.stopping = 0;
    pool.pending = 0;
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
    if (pool.threads == NULL)
        return;
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
    pool.fn = fn;
    pool.ctx = ctx;
    pool.n = n;
    pool.chunks = chunks;
    pool.pending = chunks - 1;
    pool.generation++;
    pthread_cond_broadcast(&pool.job_posted);
    pthread_mutex_unlock(&pool.lock);

    run_chunk(fn, ctx, n, chunks, 0);

    spin_on(&pool.pending, 0, 1);
    pthread_mutex_lock(&pool.lock);
    while (pool.pending != 0)
        pthread_cond_wait(&pool.job_finished, &pool.lock);
    pthread_mutex_unlock(&pool.lock);
    inside_parallel_for = 0;
    pthread_mutex_unlock(&submit_lock);
}
