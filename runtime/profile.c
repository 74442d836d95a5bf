/* The clock of profiling builds (`bnn-profile-layers`): monotonic nanoseconds. */
#define _POSIX_C_SOURCE 200809L

#include "bnnmlir_runtime.h"

#include <time.h>

int64_t bnnmlir_clock_ns(void) {
    struct timespec now;
    if (clock_gettime(CLOCK_MONOTONIC, &now) != 0)
        return 0;
    return (int64_t)now.tv_sec * INT64_C(1000000000) + (int64_t)now.tv_nsec;
}
