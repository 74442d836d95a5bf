/* Stress test of bnnmlir_parallel_for from several submitting threads at once.
 *
 * SUBMITTERS threads each run ROUNDS parallel loops: thread t uses its own thread count
 * (bnnmlir_set_local_num_threads) except thread 0, which follows the process-wide count that a
 * further thread keeps changing. Every loop must cover [0, n) exactly once, in the pieces of
 * min(n, k) home chunks for a thread-local count k (expected_calls), and nested loops must run
 * inline. Exit status 0 on success; alarm() ends a deadlocked run with SIGALRM. */
#define _POSIX_C_SOURCE 200809L

#include "bnnmlir_runtime.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SUBMITTERS 4
#define ROUNDS 300
#define MAX_N 97

typedef struct job {
    int counts[MAX_N];
    atomic_int chunks;
    atomic_int nested_ok;
} job;

static atomic_int failures;
static atomic_int submitters_done;

typedef struct nested {
    atomic_int chunks;
    atomic_int covered;
} nested;

static void nested_task(void *ctx, int64_t begin, int64_t end) {
    nested *counts = ctx;
    atomic_fetch_add(&counts->chunks, 1);
    atomic_fetch_add(&counts->covered, (int)(end - begin));
}

static void task(void *ctx, int64_t begin, int64_t end) {
    job *j = ctx;
    atomic_fetch_add(&j->chunks, 1);
    for (int64_t i = begin; i < end; ++i)
        j->counts[i] += 1;
    if (begin == 0) {
        nested counts = {0, 0};
        bnnmlir_parallel_for(nested_task, &counts, 5);
        if (atomic_load(&counts.chunks) == 1 && atomic_load(&counts.covered) == 5)
            atomic_fetch_add(&j->nested_ok, 1);
    }
}

/* Calls of a loop over n with k threads: each of the min(n, k) home chunks (sizes differing by
 * at most 1) in min(size, PIECES) pieces; one call with one chunk. */
#define PIECES 4 /* SUBCHUNKS of runtime/parallel.c */
static int expected_calls(int64_t n, int k) {
    int chunks = n < k ? (int)n : k;
    if (chunks <= 1)
        return 1;
    int calls = 0;
    for (int c = 0; c < chunks; ++c) {
        int64_t size = n / chunks + (c < n % chunks ? 1 : 0);
        calls += size < PIECES ? (int)size : PIECES;
    }
    return calls;
}

static void *submitter(void *raw) {
    int id = (int)(intptr_t)raw;
    int local = id == 0 ? 0 : 1 + id; /* 0: the process-wide count */
    bnnmlir_set_local_num_threads(local);
    job j;
    for (int round = 0; round < ROUNDS; ++round) {
        int64_t n = 1 + (round * 7 + id * 13) % MAX_N;
        memset(&j, 0, sizeof j);
        bnnmlir_parallel_for(task, &j, n);
        for (int64_t i = 0; i < n; ++i) {
            if (j.counts[i] != 1) {
                fprintf(stderr, "submitter %d round %d: index %lld covered %d times\n", id,
                        round, (long long)i, j.counts[i]);
                atomic_fetch_add(&failures, 1);
                break;
            }
        }
        int expected = local != 0 ? expected_calls(n, local) : 0;
        if (expected != 0 && atomic_load(&j.chunks) != expected) {
            fprintf(stderr, "submitter %d round %d: %d chunks, expected %d\n", id, round,
                    atomic_load(&j.chunks), expected);
            atomic_fetch_add(&failures, 1);
        }
        /* A loop split over several threads runs its nested loops inline. */
        if (atomic_load(&j.chunks) > 1 && atomic_load(&j.nested_ok) != 1) {
            fprintf(stderr, "submitter %d round %d: nested loop did not run inline\n", id, round);
            atomic_fetch_add(&failures, 1);
        }
        if (local != 0 && bnnmlir_get_num_threads() != local) {
            fprintf(stderr, "submitter %d: its thread count changed\n", id);
            atomic_fetch_add(&failures, 1);
        }
    }
    atomic_fetch_add(&submitters_done, 1);
    return NULL;
}

static void *resizer(void *unused) {
    (void)unused;
    int k = 1;
    while (atomic_load(&submitters_done) < SUBMITTERS) {
        k = k % 4 + 1;
        bnnmlir_set_num_threads(k);
        sched_yield();
    }
    return NULL;
}

int main(void) {
    alarm(120);
    pthread_t threads[SUBMITTERS + 1];
    for (int i = 0; i < SUBMITTERS; ++i)
        pthread_create(&threads[i], NULL, submitter, (void *)(intptr_t)i);
    pthread_create(&threads[SUBMITTERS], NULL, resizer, NULL);
    for (int i = 0; i <= SUBMITTERS; ++i)
        pthread_join(threads[i], NULL);
    int failed = atomic_load(&failures);
    printf("%d submitters x %d rounds: %d failures\n", SUBMITTERS, ROUNDS, failed);
    return failed == 0 ? 0 : 1;
}
