// test_rope.c: the 3D RoPE op (Backend.rope_qk, kernels/rope_cpu.c) on the CPU backend:
//   - forward against a direct transcription of the official formula (per axis segment: angles p*omega tiled over
//     the segment, out = x*cos + rot(x)*sin with rot pairing neighbours), on head dims 64, 80, 32 and 24 and a
//     non-square grid, so a swapped height/width, an interleaved layout or a wrong split all fail;
//   - one value worked out by hand that tells the tiled layout from the interleaved one;
//   - v and the unrotated tail of each head untouched, bitwise; pos NULL = positions 0..N-1;
//   - gathered tokens with their grid indices as positions give the gathered rows of the full-clip result;
//   - backward (transpose 1) against central finite differences in double, and the adjoint identity
//     <A x, y> = <x, A^T y> on a larger case; fp32 against fp64; threads do not change the result.
#include <math.h>
#include <string.h>

#include "backend.h"
#include "common.h"
#include "rng.h"
#include "test.h"

#define TEST_SEED 515
// Double-precision transcription vs kernel: both compute the same products of O(1) numbers, differing only in
// the order of a few roundings: ~1e-16; 1e-13 leaves room and is far below any formula error (O(1e-2) or more).
#define REF_TOL 1e-13
// Central differences, step 1e-5, on a quadratic loss: truncation is zero for a quadratic (third derivative 0) and
// roundoff ~1e-16/1e-5 = 1e-11 relative; a wrong transpose (e.g. the inverse rotation) is off by O(1e-2).
#define FD_STEP 1e-5
#define FD_TOL 1e-7
// fp32 vs fp64: one rounding of cos/sin (6e-8) and of two products and a sum per element: < 1e-6 relative.
#define F32_TOL 1e-6

static Backend *be64, *be32;
static uint64_t draws = 0;

static double *rand_normal(size_t n) {
    Rng r = rng_stream(TEST_SEED, RNG_TEST, 0, draws++);
    double *x = xmalloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) x[i] = rng_normal(&r);
    return x;
}

static int32_t *rand_positions(size_t n, int limit) {
    Rng r = rng_stream(TEST_SEED, RNG_TEST, 0, draws++);
    int32_t *p = xmalloc(n * sizeof(int32_t));
    for (size_t i = 0; i < n; i++) p[i] = (int32_t)rng_randint(&r, 0, limit);
    return p;
}

// Run rope_qk on a host copy of x through backend b (fp32 or fp64), result back in out (doubles).
static void run_rope(Backend *b, const double *x, double *out, const int32_t *pos, int B, int N, int H, int hd,
                     int gh, int gw, int transpose) {
    const size_t n = (size_t)B * N * 3 * H * hd;
    void *d = b->alloc(b, n * b->esize);
    b->upload_f64(b, d, b->esize, x, n);
    b->rope_qk(b, d, pos, B, N, H, hd, gh, gw, transpose);
    b->download_f64(b, out, d, b->esize, n);
    b->release(b, d);
}

// ---- the official formula, transcribed: per axis segment of S dims, K = S/2 frequencies repeated twice.
static void ref_segment(const double *x, double *out, int S, double p) {
    const int K = S / 2;
    double emb_sin[1024], emb_cos[1024], y[1024];
    for (int k = 0; k < K; k++) {
        const double omega = 1.0 / pow(10000.0, (double)k / K);
        emb_sin[k] = emb_sin[k + K] = sin(p * omega);  // .repeat(..., 2): tiled
        emb_cos[k] = emb_cos[k + K] = cos(p * omega);
    }
    for (int i = 0; i < K; i++) y[2 * i] = -x[2 * i + 1], y[2 * i + 1] = x[2 * i];  // stack((-y2, y1)).flatten
    for (int j = 0; j < S; j++) out[j] = x[j] * emb_cos[j] + y[j] * emb_sin[j];
}

static void ref_rope(const double *x, double *out, const int32_t *pos, int B, int N, int H, int hd, int gh, int gw) {
    const size_t n = (size_t)B * N * 3 * H * hd;
    memcpy(out, x, n * sizeof(double));
    const int S = 2 * ((hd / 3) / 2);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < N; t++) {
            const int id = pos ? pos[b * N + t] : t;
            const double coord[3] = {id / (gh * gw), (id % (gh * gw)) / gw, id % gw};
            for (int qk = 0; qk < 2; qk++)
                for (int h = 0; h < H; h++) {
                    const size_t base = ((((size_t)b * N + t) * 3 + qk) * H + h) * hd;
                    for (int a = 0; a < 3; a++) ref_segment(x + base + a * S, out + base + a * S, S, coord[a]);
                }
        }
}

static void test_forward_formula(int hd) {
    const int B = 2, N = 9, H = 3, gt = 4, gh = 3, gw = 5;  // non-square grid: h and w cannot be swapped unnoticed
    const size_t n = (size_t)B * N * 3 * H * hd;
    double *x = rand_normal(n), *got = xmalloc(n * sizeof(double)), *want = xmalloc(n * sizeof(double));
    int32_t *pos = rand_positions((size_t)B * N, gt * gh * gw);
    run_rope(be64, x, got, pos, B, N, H, hd, gh, gw, 0);
    ref_rope(x, want, pos, B, N, H, hd, gh, gw);
    char name[96];
    snprintf(name, sizeof name, "rope forward = official formula (hd %d)", hd);
    const double err = rel_norm_error(got, want, n);
    TEST_CHECK(name, err < REF_TOL, "relative error %.3g (bound %g)", err, REF_TOL);
    // v and each head's unrotated tail [3S, hd) untouched, bitwise
    const int S = 2 * ((hd / 3) / 2);
    int changed = 0;
    for (size_t i = 0; i < n; i++) {
        const size_t d = i % hd, part = (i / ((size_t)H * hd)) % 3;
        if ((part == 2 || d >= (size_t)(3 * S)) && got[i] != x[i]) changed++;
    }
    snprintf(name, sizeof name, "rope leaves v and dims >= %d of %d alone", 3 * S, hd);
    TEST_CHECK(name, changed == 0, "%d elements changed", changed);
    free(x), free(got), free(want), free(pos);
}

// hd 12: S = 4, K = 2, omega = (1, 0.01). A token at t = 1 (h = w = 0) with q = e_0 (the first time dim):
// tiled, dim 1 uses omega_(1 mod 2) = 0.01: out_0 = cos(1), out_1 = sin(0.01). Interleaved would give sin(1).
static void test_hand_value(void) {
    const int hd = 12, H = 1, gh = 2, gw = 2;
    double x[3 * 12] = {0}, out[3 * 12];
    x[0] = 1;
    const int32_t pos[1] = {4};  // t = 1, h = 0, w = 0 on a 2x2 grid
    run_rope(be64, x, out, pos, 1, 1, H, hd, gh, gw, 0);
    const int ok = fabs(out[0] - cos(1.0)) < 1e-15 && fabs(out[1] - sin(0.01)) < 1e-15 && out[2] == 0 && out[3] == 0;
    TEST_CHECK("rope tiled frequencies (hand value)", ok, "out[0..3] = %.6f %.6f %.6f %.6f, want %.6f %.6f 0 0",
               out[0], out[1], out[2], out[3], cos(1.0), sin(0.01));
    // the width axis: pos 1 = (t 0, h 0, w 1) rotates dims [2S, 3S) = [8, 12) only
    double y[3 * 12] = {0}, outy[3 * 12];
    y[8] = 1;
    const int32_t pos_w[1] = {1};
    run_rope(be64, y, outy, pos_w, 1, 1, H, hd, gh, gw, 0);
    TEST_CHECK("rope width axis on dims [2S,3S)", fabs(outy[8] - cos(1.0)) < 1e-15 && fabs(outy[9] - sin(0.01)) < 1e-15,
               "out[8], out[9] = %.6f %.6f", outy[8], outy[9]);
}

static void test_null_pos_and_gather(void) {
    const int B = 2, gt = 2, gh = 3, gw = 4, N = gt * gh * gw, H = 2, hd = 64, n_keep = 7;
    const size_t row = 3 * (size_t)H * hd, n = (size_t)B * N * row;
    double *x = rand_normal(n), *full = xmalloc(n * sizeof(double)), *full_idx = xmalloc(n * sizeof(double));
    int32_t *arange = xmalloc((size_t)B * N * sizeof(int32_t));
    for (int i = 0; i < B * N; i++) arange[i] = i % N;
    run_rope(be64, x, full, NULL, B, N, H, hd, gh, gw, 0);
    run_rope(be64, x, full_idx, arange, B, N, H, hd, gh, gw, 0);
    TEST_CHECK("rope pos NULL = positions 0..N-1", memcmp(full, full_idx, n * sizeof(double)) == 0, "results differ");
    // gathered tokens with their grid indices as positions = the gathered rows of the full result
    int32_t *keep = rand_positions((size_t)B * n_keep, N);
    const size_t kept = (size_t)B * n_keep * row;
    double *xg = xmalloc(kept * sizeof(double)), *got = xmalloc(kept * sizeof(double));
    for (int b = 0; b < B; b++)
        for (int i = 0; i < n_keep; i++)
            memcpy(xg + ((size_t)b * n_keep + i) * row, x + ((size_t)b * N + keep[b * n_keep + i]) * row,
                   row * sizeof(double));
    run_rope(be64, xg, got, keep, B, n_keep, H, hd, gh, gw, 0);
    int bad = 0;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < n_keep; i++)
            bad += memcmp(got + ((size_t)b * n_keep + i) * row, full + ((size_t)b * N + keep[b * n_keep + i]) * row,
                          row * sizeof(double)) != 0;
    TEST_CHECK("rope gathered tokens keep their grid positions", bad == 0, "%d of %d rows differ", bad, B * n_keep);
    free(x), free(full), free(full_idx), free(arange), free(keep), free(xg), free(got);
}

// L(x) = 1/2 sum w * rope(x)^2: dL/dx = rope^T(w * rope(x)). All elements, central differences.
static void test_backward_fd(int hd) {
    const int B = 1, N = 5, H = 2, gh = 2, gw = 3;
    const size_t n = (size_t)B * N * 3 * H * hd;
    double *x = rand_normal(n), *w = rand_normal(n), *y = xmalloc(n * sizeof(double));
    double *grad = xmalloc(n * sizeof(double)), *xp = xmalloc(n * sizeof(double));
    int32_t *pos = rand_positions((size_t)B * N, 3 * gh * gw);
    run_rope(be64, x, y, pos, B, N, H, hd, gh, gw, 0);
    for (size_t i = 0; i < n; i++) y[i] *= w[i];
    run_rope(be64, y, grad, pos, B, N, H, hd, gh, gw, 1);
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double L[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            memcpy(xp, x, n * sizeof(double));
            xp[i] += sgn ? -FD_STEP : FD_STEP;
            run_rope(be64, xp, y, pos, B, N, H, hd, gh, gw, 0);
            L[sgn] = 0;
            for (size_t j = 0; j < n; j++) L[sgn] += 0.5 * w[j] * y[j] * y[j];
        }
        const double fd = (L[0] - L[1]) / (2 * FD_STEP);
        const double err = fabs(fd - grad[i]) / fmax(1.0, fabs(fd));
        if (err > worst) worst = err;
    }
    char name[96];
    snprintf(name, sizeof name, "rope backward = finite differences (hd %d, %zu elements)", hd, n);
    TEST_CHECK(name, worst < FD_TOL, "worst error %.3g (bound %g)", worst, FD_TOL);
    free(x), free(w), free(y), free(grad), free(xp), free(pos);
}

static double dot(const double *a, const double *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

// <A x, y> = <x, A^T y> on a V-JEPA 2-like head layout (16 heads of 64) with positions up to a 32x24x24 grid.
static void test_adjoint_and_f32(void) {
    const int B = 2, N = 300, H = 16, hd = 64, gh = 24, gw = 24;
    const size_t n = (size_t)B * N * 3 * H * hd;
    double *x = rand_normal(n), *y = rand_normal(n);
    double *Ax = xmalloc(n * sizeof(double)), *Aty = xmalloc(n * sizeof(double));
    int32_t *pos = rand_positions((size_t)B * N, 32 * gh * gw);
    run_rope(be64, x, Ax, pos, B, N, H, hd, gh, gw, 0);
    run_rope(be64, y, Aty, pos, B, N, H, hd, gh, gw, 1);
    const double l = dot(Ax, y, n), r = dot(x, Aty, n), err = fabs(l - r) / fabs(l);
    TEST_CHECK("rope transpose is the adjoint", err < 1e-12, "<Ax,y> %.15g vs <x,A^T y> %.15g", l, r);
    double *f32 = xmalloc(n * sizeof(double));
    for (int tr = 0; tr < 2; tr++) {
        run_rope(be32, tr ? y : x, f32, pos, B, N, H, hd, gh, gw, tr);
        const double e = rel_norm_error(f32, tr ? Aty : Ax, n);
        TEST_CHECK(tr ? "rope backward fp32 vs fp64" : "rope forward fp32 vs fp64", e < F32_TOL, "relative error %.3g",
                   e);
    }
    // one thread vs several: per-token work, no reductions, so bitwise equal
    Backend *one = backend_cpu_create(0, 1);
    double *f32_one = xmalloc(n * sizeof(double));
    run_rope(be32, x, f32, pos, B, N, H, hd, gh, gw, 0);
    run_rope(one, x, f32_one, pos, B, N, H, hd, gh, gw, 0);
    TEST_CHECK("rope threads do not change the result", memcmp(f32, f32_one, n * sizeof(double)) == 0, "differs");
    backend_destroy(one);
    free(x), free(y), free(Ax), free(Aty), free(pos), free(f32), free(f32_one);
}

int main(void) {
    be64 = backend_cpu_create(1, 2);
    be32 = backend_cpu_create(0, 2);
    const int hds[] = {64, 80, 32, 24};
    for (int i = 0; i < 4; i++) test_forward_formula(hds[i]);
    test_hand_value();
    test_null_pos_and_gather();
    test_backward_fd(64);
    test_backward_fd(32);
    test_adjoint_and_f32();
    backend_destroy(be64);
    backend_destroy(be32);
    TEST_EXIT();
}
