/* Bit-packing of inputs (convention: bnnmlir/bits.py). Channel c is bit c % 8 of byte c / 8;
 * a negative value is bit 1, everything else (including -0.0) bit 0; unused bits are 0. */
#include "bnnmlir_runtime.h"

int64_t bnnmlir_packed_bytes(int64_t channels) {
    if (channels < 0)
        return -1;
    return channels / 8 + (channels % 8 != 0);
}

/* 0 if `rows` x `channels` values and their packed bytes can be indexed with int64_t. */
static int check_pack_size(int64_t rows, int64_t channels) {
    int64_t product;
    if (rows < 0 || channels < 0)
        return -1;
    return __builtin_mul_overflow(rows, channels, &product) ? -1 : 0;
}

#define BNNMLIR_DEFINE_PACK(NAME, TYPE, ZERO)                                                   \
    int NAME(const TYPE *src, uint8_t *dst, int64_t rows, int64_t channels) {                  \
        if (check_pack_size(rows, channels) != 0)                                              \
            return -1;                                                                         \
        int64_t words = bnnmlir_packed_bytes(channels);                                        \
        for (int64_t r = 0; r < rows; ++r) {                                                   \
            const TYPE *row = src + r * channels;                                              \
            uint8_t *out = dst + r * words;                                                    \
            for (int64_t w = 0; w < words; ++w) {                                              \
                int64_t first = w * 8;                                                         \
                int64_t count = channels - first < 8 ? channels - first : 8;                   \
                unsigned byte = 0;                                                             \
                for (int64_t b = 0; b < count; ++b)                                            \
                    byte |= (unsigned)(row[first + b] < ZERO) << b;                            \
                out[w] = (uint8_t)byte;                                                        \
            }                                                                                  \
        }                                                                                      \
        return 0;                                                                              \
    }

BNNMLIR_DEFINE_PACK(bnnmlir_pack_f32, float, 0.0f)
BNNMLIR_DEFINE_PACK(bnnmlir_pack_i8, int8_t, 0)
BNNMLIR_DEFINE_PACK(bnnmlir_pack_i32, int32_t, 0)
