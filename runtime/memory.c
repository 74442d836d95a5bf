/* Aligned zeroed allocation and buffer descriptors. */
#define _POSIX_C_SOURCE 200809L

#include "bnnmlir_runtime.h"

#include <stdlib.h>
#include <string.h>

void *bnnmlir_arena_alloc(int64_t bytes) {
    if (bytes < 0 || (uint64_t)bytes > (uint64_t)SIZE_MAX - BNNMLIR_ALIGNMENT)
        return NULL;
    /* aligned_alloc wants a size that is a multiple of the alignment. */
    size_t size = ((size_t)bytes + BNNMLIR_ALIGNMENT - 1) / BNNMLIR_ALIGNMENT * BNNMLIR_ALIGNMENT;
    if (size == 0)
        size = BNNMLIR_ALIGNMENT;
    void *ptr = aligned_alloc(BNNMLIR_ALIGNMENT, size);
    if (ptr != NULL)
        memset(ptr, 0, size);
    return ptr;
}

void bnnmlir_arena_free(void *ptr) { free(ptr); }

/* The element count of `shape[0..rank)` and its size in bytes; -1 when a dimension is negative
 * or either number does not fit in int64_t or size_t (a zero dimension makes both 0). */
static int shape_size(int32_t rank, const int64_t *shape, int32_t elem_size, int64_t *count,
                      int64_t *bytes) {
    int empty = 0;
    for (int32_t i = 0; i < rank; ++i) {
        if (shape[i] < 0)
            return -1;
        empty |= shape[i] == 0;
    }
    int64_t n = 1;
    for (int32_t i = 0; i < rank && !empty; ++i) {
        if (__builtin_mul_overflow(n, shape[i], &n))
            return -1;
    }
    if (empty)
        n = 0;
    int64_t b;
    if (__builtin_mul_overflow(n, (int64_t)elem_size, &b) || (uint64_t)b > (uint64_t)SIZE_MAX)
        return -1;
    *count = n;
    *bytes = b;
    return 0;
}

int bnnmlir_buffer_init(bnnmlir_buffer *buf, void *data, int32_t rank, const int64_t *shape,
                        int32_t elem_size) {
    if (buf == NULL || rank < 0 || rank > BNNMLIR_MAX_RANK || elem_size <= 0 ||
        (rank > 0 && shape == NULL))
        return -1;
    int64_t count, bytes;
    if (shape_size(rank, shape, elem_size, &count, &bytes) != 0)
        return -1;
    buf->data = data;
    buf->rank = rank;
    buf->elem_size = elem_size;
    for (int32_t i = 0; i < BNNMLIR_MAX_RANK; ++i)
        buf->shape[i] = i < rank ? shape[i] : 1;
    return 0;
}

/* Element count and byte size of a descriptor; -1 if it is out of range (one filled in by hand
 * rather than by bnnmlir_buffer_init may be). */
static int buffer_size(const bnnmlir_buffer *buf, int64_t *count, int64_t *bytes) {
    if (buf == NULL || buf->rank < 0 || buf->rank > BNNMLIR_MAX_RANK || buf->elem_size <= 0)
        return -1;
    return shape_size(buf->rank, buf->shape, buf->elem_size, count, bytes);
}

int64_t bnnmlir_buffer_num_elements(const bnnmlir_buffer *buf) {
    int64_t count, bytes;
    return buffer_size(buf, &count, &bytes) == 0 ? count : -1;
}

int64_t bnnmlir_buffer_size_bytes(const bnnmlir_buffer *buf) {
    int64_t count, bytes;
    return buffer_size(buf, &count, &bytes) == 0 ? bytes : -1;
}
