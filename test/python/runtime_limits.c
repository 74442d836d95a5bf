/* Size limits of the runtime's buffer descriptors and bit-packing: shapes whose element count or
 * byte size overflows int64_t / size_t, negative dimensions and counts are refused with -1 (and
 * nothing is written), never computed with a signed overflow. Built with
 * -fsanitize=undefined -fno-sanitize-recover=all by test_runtime.py, so an overflow anywhere
 * ends the run. Prints "<n> failures"; exit status 0 when n is 0. */
#include "bnnmlir_runtime.h"

#include <stdio.h>
#include <string.h>

static int failures;

#define EXPECT(cond)                                                                           \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            printf("FAILED line %d: %s\n", __LINE__, #cond);                                   \
            ++failures;                                                                        \
        }                                                                                      \
    } while (0)

/* bnnmlir_buffer_init refuses `shape`, and leaves the descriptor as it was. */
static void expect_refused(int32_t rank, const int64_t *shape, int32_t elem_size) {
    bnnmlir_buffer buf;
    memset(&buf, 0x5A, sizeof buf);
    bnnmlir_buffer before = buf;
    EXPECT(bnnmlir_buffer_init(&buf, NULL, rank, shape, elem_size) == -1);
    EXPECT(memcmp(&buf, &before, sizeof buf) == 0);
}

static void test_buffer_limits(void) {
    const int64_t big = INT64_MAX;
    const int64_t half = INT64_MAX / 2 + 1; /* 2**62 */
    bnnmlir_buffer buf;

    int64_t count_overflow[] = {half, 2};       /* 2**63 elements */
    int64_t count_overflow3[] = {1 << 22, 1 << 21, 1 << 21}; /* 2**64 */
    int64_t bytes_overflow[] = {half / 2, 4};   /* 2**62 elements of 4 bytes */
    int64_t negative[] = {3, -1, 5};
    int64_t negative_zero[] = {0, -2};           /* a zero does not hide a negative extent */
    expect_refused(2, count_overflow, 1);
    expect_refused(3, count_overflow3, 1);
    expect_refused(2, bytes_overflow, 4);
    expect_refused(2, (int64_t[]){big, 1}, 2);
    expect_refused(3, negative, 4);
    expect_refused(2, negative_zero, 4);
    expect_refused(9, negative, 4);
    expect_refused(-1, negative, 4);
    expect_refused(1, (int64_t[]){4}, 0);
    expect_refused(1, (int64_t[]){4}, -4);
    EXPECT(bnnmlir_buffer_init(NULL, NULL, 1, (int64_t[]){4}, 4) == -1);
    EXPECT(bnnmlir_buffer_init(&buf, NULL, 1, NULL, 4) == -1);

    /* The largest sizes that fit are accepted and computed exactly. */
    EXPECT(bnnmlir_buffer_init(&buf, NULL, 1, &big, 1) == 0);
    EXPECT(bnnmlir_buffer_num_elements(&buf) == big && bnnmlir_buffer_size_bytes(&buf) == big);
    int64_t largest4[] = {half / 4, 2, 2};     /* 2**62 elements of 1 byte */
    EXPECT(bnnmlir_buffer_init(&buf, NULL, 3, largest4, 1) == 0);
    EXPECT(bnnmlir_buffer_size_bytes(&buf) == half);
    /* A zero extent makes an empty buffer, whatever the other extents. */
    EXPECT(bnnmlir_buffer_init(&buf, NULL, 3, (int64_t[]){big, big, 0}, 4) == 0);
    EXPECT(bnnmlir_buffer_num_elements(&buf) == 0 && bnnmlir_buffer_size_bytes(&buf) == 0);
    EXPECT(bnnmlir_buffer_init(&buf, NULL, 2, (int64_t[]){0, big}, 8) == 0);
    EXPECT(bnnmlir_buffer_num_elements(&buf) == 0 && bnnmlir_buffer_size_bytes(&buf) == 0);
    EXPECT(bnnmlir_buffer_init(&buf, NULL, 0, NULL, 4) == 0);
    EXPECT(bnnmlir_buffer_num_elements(&buf) == 1 && bnnmlir_buffer_size_bytes(&buf) == 4);

    /* A descriptor edited by hand after init: the size functions refuse it too. */
    EXPECT(bnnmlir_buffer_init(&buf, NULL, 2, (int64_t[]){3, 4}, 4) == 0);
    buf.shape[0] = half;
    EXPECT(bnnmlir_buffer_num_elements(&buf) == -1 && bnnmlir_buffer_size_bytes(&buf) == -1);
    buf.shape[0] = half / 4;
    EXPECT(bnnmlir_buffer_num_elements(&buf) == -1 && bnnmlir_buffer_size_bytes(&buf) == -1);
    buf.shape[0] = -3;
    EXPECT(bnnmlir_buffer_num_elements(&buf) == -1);
    buf.shape[0] = 3;
    buf.rank = 40;
    EXPECT(bnnmlir_buffer_num_elements(&buf) == -1 && bnnmlir_buffer_size_bytes(&buf) == -1);
    EXPECT(bnnmlir_buffer_num_elements(NULL) == -1 && bnnmlir_buffer_size_bytes(NULL) == -1);
}

static void test_packing_limits(void) {
    EXPECT(bnnmlir_packed_bytes(0) == 0);
    EXPECT(bnnmlir_packed_bytes(9) == 2);
    EXPECT(bnnmlir_packed_bytes(INT64_MAX) == INT64_MAX / 8 + 1);
    EXPECT(bnnmlir_packed_bytes(INT64_MAX - 7) == INT64_MAX / 8);
    EXPECT(bnnmlir_packed_bytes(-1) == -1 && bnnmlir_packed_bytes(INT64_MIN) == -1);

    float src[4] = {-1.0f, 1.0f, -2.0f, 0.0f};
    uint8_t dst[2] = {0xA5, 0xA5};
    EXPECT(bnnmlir_pack_f32(src, dst, -1, 4) == -1);
    EXPECT(bnnmlir_pack_f32(src, dst, 1, -4) == -1);
    EXPECT(bnnmlir_pack_f32(src, dst, INT64_MAX / 2, 4) == -1);
    EXPECT(bnnmlir_pack_i8((const int8_t *)src, dst, 3, INT64_MAX / 2) == -1);
    EXPECT(bnnmlir_pack_i32((const int32_t *)src, dst, INT64_MAX, INT64_MAX) == -1);
    EXPECT(dst[0] == 0xA5 && dst[1] == 0xA5);
    EXPECT(bnnmlir_pack_f32(src, dst, 0, INT64_MAX) == 0); /* nothing to pack */
    EXPECT(bnnmlir_pack_f32(src, dst, 1, 4) == 0 && dst[0] == 0x5 && dst[1] == 0xA5);
}

int main(void) {
    test_buffer_limits();
    test_packing_limits();
    printf("%d failures\n", failures);
    return failures != 0;
}
