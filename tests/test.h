// test.h: a minimal harness. Each check prints one line, PASS/FAIL/SKIP with its name; tests/run.sh counts them.
#pragma once
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static int test_failures_ = 0;

#define TEST_PASS(name) printf("PASS %s\n", name)
#define TEST_SKIP(name, reason) printf("SKIP %s: %s\n", name, reason)
#define TEST_FAIL(name, ...)                  \
    do {                                      \
        printf("FAIL %s: ", name);            \
        printf(__VA_ARGS__);                  \
        printf("  (%s:%d)\n", __FILE__, __LINE__); \
        test_failures_++;                     \
    } while (0)
// One named check: PASS when cond holds, else FAIL with the formatted detail.
#define TEST_CHECK(name, cond, ...)                      \
    do {                                                 \
        if (cond) TEST_PASS(name);                       \
        else TEST_FAIL(name, __VA_ARGS__);               \
    } while (0)
#define TEST_EXIT() return test_failures_ ? 1 : 0

// ||a - b|| / max(||b||, tiny) over n doubles
static inline double rel_norm_error(const double *a, const double *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += (a[i] - b[i]) * (a[i] - b[i]);
        den += b[i] * b[i];
    }
    return sqrt(num) / (sqrt(den) > 1e-300 ? sqrt(den) : 1e-300);
}
