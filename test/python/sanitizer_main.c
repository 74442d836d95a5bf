/* Driver of a saved model (model.h + model.o) for the sanitizer test (test_sanitizers.py).
 *
 * usage: prog THREADS CALLS inputs.bin outputs.bin
 *
 * inputs.bin holds CALLS inputs of BNNMLIR_INPUT0_BYTES back to back. The entry point (ENTRY,
 * defined on the command line) runs once per input on the main thread with THREADS threads in
 * its parallel loops, reusing one arena; the outputs are written to outputs.bin in order. Then
 * two threads run every call again at the same time, each with its own arena and its own thread
 * count, and must reproduce the main thread's outputs byte for byte. Exit status 0 on success. */
#define _POSIX_C_SOURCE 200809L

#include "model.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if BNNMLIR_NUM_INPUTS != 1 || BNNMLIR_NUM_OUTPUTS != 1
#error "this driver takes a model with one input and one output"
#endif

typedef struct calls {
    const unsigned char *inputs;
    unsigned char *outputs;
    long count;
    int threads;
} calls;

static void *run_calls(void *raw) {
    calls *job = raw;
    void *arena = bnnmlir_arena_alloc(BNNMLIR_ARENA_BYTES);
    if (arena == NULL)
        return job;
    bnnmlir_set_local_num_threads(job->threads);
    for (long i = 0; i < job->count; ++i)
        ENTRY((const void *)(job->inputs + i * BNNMLIR_INPUT0_BYTES),
              (void *)(job->outputs + i * BNNMLIR_OUTPUT0_BYTES), arena);
    bnnmlir_arena_free(arena);
    return NULL;
}

static unsigned char *read_file(const char *path, size_t bytes) {
    unsigned char *data = malloc(bytes);
    FILE *file = fopen(path, "rb");
    if (data == NULL || file == NULL || fread(data, 1, bytes, file) != bytes) {
        fprintf(stderr, "cannot read %zu bytes from %s\n", bytes, path);
        exit(2);
    }
    fclose(file);
    return data;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s THREADS CALLS inputs.bin outputs.bin\n", argv[0]);
        return 1;
    }
    int threads = atoi(argv[1]);
    long count = atol(argv[2]);
    if (threads < 1 || count < 1)
        return 1;
    size_t out_bytes = (size_t)count * BNNMLIR_OUTPUT0_BYTES;
    unsigned char *inputs = read_file(argv[3], (size_t)count * BNNMLIR_INPUT0_BYTES);
    unsigned char *outputs = malloc(out_bytes);
    unsigned char *again[2] = {malloc(out_bytes), malloc(out_bytes)};
    if (outputs == NULL || again[0] == NULL || again[1] == NULL)
        return 4;

    calls first = {inputs, outputs, count, threads};
    if (run_calls(&first) != NULL)
        return 4;

    pthread_t workers[2];
    calls jobs[2] = {{inputs, again[0], count, threads}, {inputs, again[1], count, threads + 1}};
    for (int t = 0; t < 2; ++t)
        if (pthread_create(&workers[t], NULL, run_calls, &jobs[t]) != 0)
            return 5;
    for (int t = 0; t < 2; ++t) {
        void *failed;
        pthread_join(workers[t], &failed);
        if (failed != NULL || memcmp(again[t], outputs, out_bytes) != 0) {
            fprintf(stderr, "concurrent run %d differs from the first run\n", t);
            return 6;
        }
    }

    FILE *file = fopen(argv[4], "wb");
    if (file == NULL || fwrite(outputs, 1, out_bytes, file) != out_bytes || fclose(file) != 0)
        return 3;
    free(again[0]);
    free(again[1]);
    free(outputs);
    free(inputs);
    return 0;
}
