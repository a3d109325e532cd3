// attention_check.h: what the GPU attention tests share (ours in test_cuda_attention.c, cuDNN's in
// test_cuda_cudnn.c): random bf16 inputs, qkv/out/lse indexing, and a comparison that names the worst element.
#pragma once
#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include "bf16_host.h"
#include "common.h"
#include "rng.h"
#include "test.h"

// n bf16 values uniform in [-sqrt(3), sqrt(3)) * scale (unit variance before scaling); a fresh stream per call
// (RNG_TEST, step 1, index = *draw, incremented).
static inline uint16_t *rand_bf16_stream(uint64_t seed, uint64_t *draw, size_t n, double scale) {
    Rng r = rng_stream(seed, RNG_TEST, 1, (*draw)++);
    uint16_t *x = xmalloc(n * sizeof(uint16_t));
    const double a = sqrt(3.0) * scale;
    for (size_t i = 0; i < n; i++) x[i] = bf16_from_f32((float)rng_uniform_range(&r, -a, a));
    return x;
}

// ---- layouts: qkv [B,N,3,H,hd], out [B,N,H,hd], lse [B,H,N]
typedef struct {
    size_t n_qkv, n_o, n_l;  // element counts (filled where a test needs them)
    int B, N, H, hd;
} Sizes;

static inline size_t qkv_index(const Sizes *z, int b, int n, int s, int h, int d) {
    return ((((size_t)b * z->N + n) * 3 + s) * z->H + h) * z->hd + d;
}
static inline size_t o_index(const Sizes *z, int b, int n, int h, int d) {
    return (((size_t)b * z->N + n) * z->H + h) * z->hd + d;
}
static inline size_t l_index(const Sizes *z, int b, int h, int n) { return ((size_t)b * z->H + h) * z->N + n; }

// One (b, h) of qkv [B,N,3,H,hd] as the single-head [N,3,hd] floats the CPU reference takes (B = H = 1).
static inline void gather_head(float *dst, const uint16_t *qkv, const Sizes *z, int b, int h) {
    for (int n = 0; n < z->N; n++)
        for (int s = 0; s < 3; s++)
            for (int d = 0; d < z->hd; d++)
                dst[((size_t)n * 3 + s) * z->hd + d] = f32_from_bf16(qkv[qkv_index(z, b, n, s, h, d)]);
}

// Scales the Q slot of qkv [B,N,3,H,hd] by s (s > 1: sharper softmax rows); s == 1 leaves it as it is.
static inline void scale_q(uint16_t *qkv, const Sizes *z, double s) {
    if (s == 1.0) return;
    for (int b = 0; b < z->B; b++)
        for (int n = 0; n < z->N; n++)
            for (int h = 0; h < z->H; h++)
                for (int d = 0; d < z->hd; d++) {
                    const size_t i = qkv_index(z, b, n, 0, h, d);
                    qkv[i] = bf16_from_f32(f32_from_bf16(qkv[i]) * (float)s);
                }
}

// ---- comparison with the worst element
typedef struct {
    double num, den, max_abs;
    double dot;  // sum got * want (the best-fit ratio got/want is dot / den)
    long nan;
    int wb, wn, wh, wd;  // worst element
    double got, want;
} Cmp;

static inline void cmp_add(Cmp *c, double got, double want, int b, int n, int h, int d) {
    c->den += want * want;
    if (isnan(got)) {
        if (c->nan++ == 0 && c->max_abs != INFINITY) {  // report the first NaN as the worst element
            c->max_abs = INFINITY;
            c->wb = b, c->wn = n, c->wh = h, c->wd = d, c->got = got, c->want = want;
        }
        return;
    }
    c->dot += got * want;
    const double diff = fabs(got - want);
    c->num += diff * diff;
    if (diff > c->max_abs) {
        c->max_abs = diff;
        c->wb = b, c->wn = n, c->wh = h, c->wd = d, c->got = got, c->want = want;
    }
}

// One check line: PASS when ||got - want|| / max(||want||, den_floor) is under tol (and the max abs error under
// abs_tol when > 0) with no NaN; a failure names the worst element (and `extra`, when not empty).
static inline void cmp_report(const char *name, const Cmp *c, double tol, double abs_tol, double den_floor,
                              const char *extra) {
    const double err = sqrt(c->num) / fmax(fmax(sqrt(c->den), den_floor), 1e-300);
    char label[320];
    snprintf(label, sizeof label, "%s (rel err %.1e, tol %.0e)", name, err, tol);
    const int ok = c->nan == 0 && err < tol && !(abs_tol > 0 && c->max_abs >= abs_tol);
    TEST_CHECK(label, ok,
               "rel err %.3e (tol %.1e), max |diff| %.3e%s, %ld NaN (unwritten or non-finite); worst at b=%d n=%d "
               "h=%d d=%d: got %.7g want %.7g%s",
               err, tol, c->max_abs, abs_tol > 0 ? " (abs tol applies)" : "", c->nan, c->wb, c->wn, c->wh, c->wd,
               c->got, c->want, extra);
}

static inline double median(double *x, int n) {  // sorts x
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && x[j] < x[j - 1]; j--) {
            const double t = x[j];
            x[j] = x[j - 1];
            x[j - 1] = t;
        }
    return x[n / 2];
}
