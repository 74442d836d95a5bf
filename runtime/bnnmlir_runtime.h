/* bnnmlir runtime: the C support library that compiled bnnmlir models link against.
 *
 * - a parallel-for over a persistent pthread pool (used by outlined scf.parallel loops);
 * - 64-byte aligned, zeroed allocation for arenas and I/O buffers;
 * - a buffer descriptor for the generated C headers;
 * - bit-packing of inputs by the convention of bnnmlir/bits.py: channel c of a row is bit c % 8
 *   (least significant first) of byte c / 8; x < 0 is bit 1 (-1), x >= 0 is bit 0 (+1, so -0.0 is
 *   bit 0); the unused high bits of the last byte are 0;
 * - a monotonic clock for profiling builds.
 */
#ifndef BNNMLIR_RUNTIME_H
#define BNNMLIR_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- parallel loops --------------------------------------------------------------------- */

/* Body of a parallel loop: runs the iterations [begin, end). */
typedef void (*bnnmlir_task_fn)(void *ctx, int64_t begin, int64_t end);

/* Runs fn over [0, n) and returns when every index is done, each exactly once. With k threads,
 * [0, n) has min(n, k) contiguous home chunks, one per thread (the caller's first), each cut into
 * up to 4 contiguous pieces, one call of fn each: a thread runs its own chunk's pieces, then the
 * pieces of the others that nobody has claimed yet (so a descheduled thread delays the loop by
 * one piece at most). With one thread (the default) fn(ctx, 0, n) runs inline on the caller's
 * thread. Any thread may call it: calls from different threads share one worker pool and run
 * one after the other (each call waits for the pool to be free). A nested call from inside fn
 * of a loop that runs on several threads runs inline. */
void bnnmlir_parallel_for(bnnmlir_task_fn fn, void *ctx, int64_t n);

/* Number of threads parallel loops use, counting the caller; k < 1 is taken as 1. This is the
 * process-wide count; it takes effect at the next parallel loop (never inside a running one).
 * The worker threads are created by the first parallel loop that needs them, resized by a later
 * loop that needs another count, and joined at exit. */
void bnnmlir_set_num_threads(int k);

/* Thread count of the parallel loops started by the calling thread only, overriding the
 * process-wide count (k >= 1); k < 1 removes the override. Lets threads that run models with
 * different counts at the same time each get their own. */
void bnnmlir_set_local_num_threads(int k);

/* The count parallel loops started by the calling thread use: its override, else the
 * process-wide count. */
int bnnmlir_get_num_threads(void);

/* ---- memory ----------------------------------------------------------------------------- */

#define BNNMLIR_ALIGNMENT 64

/* 64-byte aligned, zero-filled block of at least `bytes` bytes (a non-null block for 0);
 * NULL for a negative size or when memory is exhausted. Free it with bnnmlir_arena_free. */
void *bnnmlir_arena_alloc(int64_t bytes);
void bnnmlir_arena_free(void *ptr);

#define BNNMLIR_MAX_RANK 8

/* A dense row-major buffer: `rank` extents in `shape`, elements of `elem_size` bytes. */
typedef struct bnnmlir_buffer {
    void *data;
    int32_t rank;
    int32_t elem_size;
    int64_t shape[BNNMLIR_MAX_RANK];
} bnnmlir_buffer;

/* Fills *buf and returns 0; returns -1 and leaves *buf untouched when the rank is outside
 * [0, BNNMLIR_MAX_RANK], elem_size < 1, a dimension is negative, or the element count or the
 * size in bytes does not fit in int64_t (or size_t). */
int bnnmlir_buffer_init(bnnmlir_buffer *buf, void *data, int32_t rank, const int64_t *shape,
                        int32_t elem_size);
/* Element count and size in bytes of a descriptor; -1 for one that bnnmlir_buffer_init would
 * refuse (a descriptor filled in by hand). */
int64_t bnnmlir_buffer_num_elements(const bnnmlir_buffer *buf);
int64_t bnnmlir_buffer_size_bytes(const bnnmlir_buffer *buf);

/* ---- bit packing ------------------------------------------------------------------------ */

/* Number of bytes that hold `channels` packed channels: ceil(channels / 8); -1 for
 * channels < 0. */
int64_t bnnmlir_packed_bytes(int64_t channels);

/* Packs `rows` rows of `channels` values (row-major) into rows x ceil(channels / 8) bytes and
 * returns 0; returns -1 without writing anything when rows or channels is negative or
 * rows x channels does not fit in int64_t. */
int bnnmlir_pack_f32(const float *src, uint8_t *dst, int64_t rows, int64_t channels);
int bnnmlir_pack_i8(const int8_t *src, uint8_t *dst, int64_t rows, int64_t channels);
int bnnmlir_pack_i32(const int32_t *src, uint8_t *dst, int64_t rows, int64_t channels);

/* ---- profiling ------------------------------------------------------------------------- */

/* CLOCK_MONOTONIC in nanoseconds (0 if the clock cannot be read); profiling builds of a model
 * (compiled.profile(), the bnn-profile-layers pass) call it before and after each layer. */
int64_t bnnmlir_clock_ns(void);

#ifdef __cplusplus
}
#endif

#endif /* BNNMLIR_RUNTIME_H */
