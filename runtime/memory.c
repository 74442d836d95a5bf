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

int bnnmlir_buffer_init(bnnmlir_buffer *buf, void *data, int32_t rank, const int64_t *shape,
                        int32_t elem_size) {
    if (buf == NULL || rank < 0 || rank > BNNMLIR_MAX_RANK || elem_size <= 0)
        return -1;
    buf->data = data;
    buf->rank = rank;
    buf->elem_size = elem_size;
    for (int32_t i = 0; i < BNNMLIR_MAX_RANK; ++i) {
        if (i < rank && shape[i] < 0)
            return -1;
        buf->shape[i] = i < rank ? shape[i] : 1;
    }
    return 0;
}

int64_t bnnmlir_buffer_num_elements(const bnnmlir_buffer *buf) {
    int64_t count = 1;
    for (int32_t i = 0; i < buf->rank; ++i)
        count *= buf->shape[i];
    return count;
}

int64_t bnnmlir_buffer_size_bytes(const bnnmlir_buffer *buf) {
    return bnnmlir_buffer_num_elements(buf) * buf->elem_size;
}
