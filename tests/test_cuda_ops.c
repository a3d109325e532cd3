// test_cuda_ops.c: the CUDA kernels of layernorm.cu, elementwise.cu, loss.cu and optim.cu (launchers of
// kernels/cuda_ops.h) against the CPU reference (the cpu-f32 Backend of host/backend.h) on the same inputs:
// random values rounded to bf16 on the host, so both sides see identical numbers. For every op:
//   - forward outputs are poisoned with 0xFF bytes (NaN in bf16 and fp32) first, so an element the kernel never
//     writes fails the check; gradient outputs are pre-filled, so += is checked, not just =;
//   - small odd shapes (C < 32, C not a multiple of any block size, partial row chunks) and the real V-JEPA
//     shapes (37632 tokens x 1024 channels, a ViT-L/16 parameter count for the optimizer);
//   - determinism: reductions run twice, bitwise equal.
// bf16 outputs are judged two ways: the relative norm error against the fp32 reference (bounded by bf16's unit
// roundoff 2^-8: a gross error), and the fraction of elements that differ from the reference rounded to nearest
// even (near 0 when the fp32 values agree to ~1e-6: a subtle systematic error of 1e-4 moves several percent).
// Without a CUDA device (or built without nvcc) every group prints one SKIP line and the test exits 0.
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "backend.h"
#include "common.h"
#include "rng.h"
#include "bf16_host.h"
#include "test.h"

static const char *const GROUPS[] = {"layernorm", "elementwise", "tokens", "loss", "optim"};
#define N_GROUPS (int)(sizeof GROUPS / sizeof GROUPS[0])

#ifndef JEPA_CUDA

int main(void) {
    for (int g = 0; g < N_GROUPS; g++)
        printf("SKIP cuda %s: no CUDA device (built without CUDA: nvcc was not found at build time)\n", GROUPS[g]);
    return test_failures_;
}

#else

#include <cuda_runtime_api.h>

#include "cuda_ops.h"

#define SEED 4242
#define LN_EPS 1e-5f

// ---- tolerances (each check's name prints the measured value beside its bound)
// A bf16 result rounded once from an fp32 value is within bf16's unit roundoff u = 2^-8 = 3.9e-3 of it per element,
// so within u in relative norm; the GPU's and CPU's fp32 values differ by ~1e-6 more (summation order, erff/expf
// ulps). 4.5e-3 = u plus that slack; an indexing error or a wrong term is O(1e-1) or more.
#define BF16_TOL 4.5e-3
// Fraction of bf16 elements allowed to differ from the rounded fp32 reference: an fp32 difference d between GPU and
// CPU flips the rounding of ~d/ulp of the elements, d ~1e-6 against ulp ~4e-3: expected well under 0.1%. A subtle
// systematic error (variance over C-1, a wrong eps) of ~5e-4 relative flips ~10%. 1% separates the two.
#define BF16_FLIP_FRAC 0.01
// fp32 reductions (LayerNorm statistics, dw, dbias, column sums) in another order than the CPU's: fp32 partial sums
// over <= 1024 terms then double, ~1e-6 relative at worst on these data; 1e-5 leaves 10x.
#define F32_SUM_TOL 1e-5
// Scalars summed in double on both sides (L1 loss, column std, sum of squares) and stored as fp32: the fp32
// rounding of the result (6e-8) dominates; 1e-6 allows a few ulps.
#define SCALAR_TOL 1e-6
// fp32 elementwise optimizer outputs: the kernels repeat optim_cpu.c's fp32 operations in order (no fused
// multiply-adds), so they should agree bitwise; 1e-6 tolerates a few ulps should a compiler differ.
#define F32_EW_TOL 1e-6

static Backend *cpu;
// JEPA_TEST_SMALL=1 (under compute-sanitizer, ~100x slower): only the small shapes run.
static int small_only;
static uint64_t draws = 0;  // every random array gets its own stream: RNG_TEST, step = draw count, index = chunk

// ---------------------------------------------------------------- CUDA plumbing
#include "cuda_test.h"

// After each launcher: wait for it so that a fault is reported against the op that caused it.
static void synced(const char *op) {
    cudaError_t err = cudaDeviceSynchronize();
    if (err == cudaSuccess) err = cudaGetLastError();
    if (err != cudaSuccess) {
        printf("FAIL cuda %s: the kernel failed: %s: %s (the context is lost; stopping)  (%s:%d)\n", op,
               cudaGetErrorName(err), cudaGetErrorString(err), __FILE__, __LINE__);
        exit(1);
    }
}

static void *dev_alloc(size_t bytes) {
    void *p = NULL;
    CU(cudaMalloc(&p, bytes ? bytes : 1));
    return p;
}
static void dev_free(void *p) {
    if (p) CU(cudaFree(p));
}
// 0xFF bytes: NaN as bf16 (0xFFFF) and as fp32 (0xFFFFFFFF)
static void *dev_poisoned(size_t bytes) {
    void *p = dev_alloc(bytes);
    CU(cudaMemset(p, 0xFF, bytes ? bytes : 1));
    return p;
}

// ---------------------------------------------------------------- bf16 on the host (round to nearest even)
// (bf16_from_f32, f32_from_bf16: tests/bf16_host.h)
static float round_bf16(float f) { return f32_from_bf16(bf16_from_f32(f)); }

static float *falloc(size_t n) { return xmalloc((n ? n : 1) * sizeof(float)); }
static float *fcopy(const float *x, size_t n) {
    float *y = falloc(n);
    memcpy(y, x, n * sizeof(float));
    return y;
}

// Device bf16 copy of x (whose values are bf16-exact, so the conversion is exact).
static void *dev_bf16(const float *x, size_t n) {
    uint16_t *h = xmalloc((n ? n : 1) * sizeof(uint16_t));
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) h[i] = bf16_from_f32(x[i]);
    void *d = dev_alloc(n * sizeof(uint16_t));
    CU(cudaMemcpy(d, h, n * sizeof(uint16_t), cudaMemcpyHostToDevice));
    free(h);
    return d;
}
// Device bf16 buffer of shift + n elements: x at [shift, shift + n), zeros before.
static void *dev_bf16_at(const float *x, size_t n, size_t shift) {
    uint16_t *h = xmalloc((n + shift ? n + shift : 1) * sizeof(uint16_t));
    memset(h, 0, shift * sizeof(uint16_t));
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) h[shift + i] = bf16_from_f32(x[i]);
    void *d = dev_alloc((n + shift) * sizeof(uint16_t));
    CU(cudaMemcpy(d, h, (n + shift) * sizeof(uint16_t), cudaMemcpyHostToDevice));
    free(h);
    return d;
}
static void *dev_f32(const float *x, size_t n) {
    void *d = dev_alloc(n * sizeof(float));
    CU(cudaMemcpy(d, x, n * sizeof(float), cudaMemcpyHostToDevice));
    return d;
}
static void *dev_i32(const int32_t *x, size_t n) {
    void *d = dev_alloc(n * sizeof(int32_t));
    CU(cudaMemcpy(d, x, n * sizeof(int32_t), cudaMemcpyHostToDevice));
    return d;
}
static uint16_t *down_bits(const void *d, size_t n) {
    uint16_t *h = xmalloc((n ? n : 1) * sizeof(uint16_t));
    CU(cudaMemcpy(h, d, n * sizeof(uint16_t), cudaMemcpyDeviceToHost));
    return h;
}
static float *down_f32(const void *d, size_t n) {
    float *h = falloc(n);
    CU(cudaMemcpy(h, d, n * sizeof(float), cudaMemcpyDeviceToHost));
    return h;
}

// ---------------------------------------------------------------- random inputs
// Chunks of FILL_CHUNK values each from their own stream, filled in parallel: fast for 38M-element tensors and
// independent of the thread count.
#define FILL_CHUNK 65536
static float *rand_uniform(size_t n, double lo, double hi, int to_bf16) {
    float *x = falloc(n);
    const uint64_t id = draws++;
    const size_t chunks = (n + FILL_CHUNK - 1) / FILL_CHUNK;
#pragma omp parallel for schedule(static)
    for (size_t k = 0; k < chunks; k++) {
        Rng r = rng_stream(SEED, RNG_TEST, id, k);
        const size_t i1 = (k + 1) * FILL_CHUNK < n ? (k + 1) * FILL_CHUNK : n;
        for (size_t i = k * FILL_CHUNK; i < i1; i++) {
            const float v = (float)rng_uniform_range(&r, lo, hi);
            x[i] = to_bf16 ? round_bf16(v) : v;
        }
    }
    return x;
}
static float *rand_bf16(size_t n, double lo, double hi) { return rand_uniform(n, lo, hi, 1); }
static float *rand_f32(size_t n, double lo, double hi) { return rand_uniform(n, lo, hi, 0); }

static int32_t *rand_indices(size_t n, int limit) {
    Rng r = rng_stream(SEED, RNG_TEST, draws++, 0);
    int32_t *idx = xmalloc((n ? n : 1) * sizeof(int32_t));
    for (size_t i = 0; i < n; i++) idx[i] = (int32_t)rng_randint(&r, 0, limit);
    return idx;
}
// per sample, n distinct indices out of Nsrc (a shuffled prefix): idx [B,n]
static int32_t *rand_distinct_indices(int B, int n, int Nsrc) {
    Rng r = rng_stream(SEED, RNG_TEST, draws++, 0);
    int32_t *idx = xmalloc((size_t)B * n * sizeof(int32_t)), *perm = xmalloc((size_t)Nsrc * sizeof(int32_t));
    for (int b = 0; b < B; b++) {
        for (int j = 0; j < Nsrc; j++) perm[j] = j;
        for (int j = 0; j < n; j++) {
            const int k = (int)rng_randint(&r, j, Nsrc), t = perm[j];
            perm[j] = perm[k], perm[k] = t;
            idx[(size_t)b * n + j] = perm[j];
        }
    }
    free(perm);
    return idx;
}

// ---------------------------------------------------------------- checks
// Position of element i for messages: (row, col) when the tensor has cols columns.
static const char *where(size_t i, int cols, char *buf, size_t len) {
    if (cols > 0) snprintf(buf, len, "[%zu] (row %zu, col %zu)", i, i / (size_t)cols, i % (size_t)cols);
    else snprintf(buf, len, "[%zu]", i);
    return buf;
}

typedef struct {
    double rel;      // ||got - ref|| / ||ref|| (NaN when got has NaN)
    size_t worst;    // index of the largest |got - ref| (or of the first NaN)
    size_t nan;      // NaN elements in got
} Diff;

static Diff diff_of(const float *got, const float *ref, size_t n) {
    Diff d = {0, 0, 0};
    double num = 0, den = 0, worst = -1;
    for (size_t i = 0; i < n; i++) {
        const double e = (double)got[i] - (double)ref[i];
        if (isnan(got[i]) || isnan(ref[i])) {
            if (d.nan++ == 0) d.worst = i, worst = INFINITY;
            continue;
        }
        num += e * e;
        den += (double)ref[i] * ref[i];
        if (fabs(e) > worst) worst = fabs(e), d.worst = i;
    }
    d.rel = d.nan ? NAN : sqrt(num) / (sqrt(den) > 1e-300 ? sqrt(den) : 1e-300);
    return d;
}

// bf16 output (bits) against an fp32 reference: relative norm error <= tol and at most max_flip_frac of the
// elements different from the reference rounded to bf16 (0: bitwise equal to the rounded reference).
static void check_bf16(const char *name, const uint16_t *got_bits, const float *ref, size_t n, int cols, double tol,
                       double max_flip_frac) {
    float *got = falloc(n);
    size_t flips = 0, first_flip[3] = {0}, shown = 0;
    for (size_t i = 0; i < n; i++) {
        got[i] = f32_from_bf16(got_bits[i]);
        if (got_bits[i] != bf16_from_f32(ref[i])) {
            if (shown < 3) first_flip[shown++] = i;
            flips++;
        }
    }
    const Diff d = diff_of(got, ref, n);
    const size_t allowed = (size_t)(max_flip_frac * (double)n);
    char label[512], pos[96];
    snprintf(label, sizeof label,
             "cuda %s (rel err %.2e, tol %.1e; %zu of %zu differ from the rounded reference, allowed %zu)", name,
             d.rel, tol, flips, n, allowed);
    if (d.rel <= tol && flips <= allowed) {
        TEST_PASS(label);
    } else {
        char more[512] = "";
        size_t at = 0;
        for (size_t k = 0; k < shown && at < sizeof more; k++)
            at += (size_t)snprintf(more + at, sizeof more - at, " %s got %.8g (0x%04x) want %.8g (0x%04x);",
                                   where(first_flip[k], cols, pos, sizeof pos), got[first_flip[k]],
                                   got_bits[first_flip[k]], ref[first_flip[k]], bf16_from_f32(ref[first_flip[k]]));
        TEST_FAIL(label, "worst %s: got %.8g, want %.8g; %zu NaN in the output; first differences:%s",
                  where(d.worst, cols, pos, sizeof pos), got[d.worst], ref[d.worst], d.nan, more);
    }
    free(got);
}

// fp32 output against an fp32 reference: relative norm error <= tol (bitwise differences counted for information).
static void check_f32(const char *name, const float *got, const float *ref, size_t n, int cols, double tol) {
    const Diff d = diff_of(got, ref, n);
    size_t differ = 0;
    for (size_t i = 0; i < n; i++) differ += memcmp(&got[i], &ref[i], sizeof(float)) != 0;
    char label[512], pos[96];
    snprintf(label, sizeof label, "cuda %s (rel err %.2e, tol %.0e; %zu of %zu not bitwise equal)", name, d.rel, tol,
             differ, n);
    if (d.rel <= tol) {
        TEST_PASS(label);
    } else {
        TEST_FAIL(label, "worst %s: got %.9g, want %.9g (abs diff %.3g); %zu NaN in the output",
                  where(d.worst, cols, pos, sizeof pos), got[d.worst], ref[d.worst],
                  fabs((double)got[d.worst] - ref[d.worst]), d.nan);
    }
}

// One fp32 scalar: |got - want| <= tol * |want|.
static void check_scalar(const char *name, float got, double want, double tol) {
    const double rel = fabs((double)got - want) / (fabs(want) > 1e-300 ? fabs(want) : 1e-300);
    char label[512];
    snprintf(label, sizeof label, "cuda %s (rel err %.2e, tol %.0e)", name, rel, tol);
    TEST_CHECK(label, rel <= tol, "got %.9g, want %.9g", got, want);
}

// Two runs (or a result and its exact expectation) bitwise equal; elem bytes per element for the message.
static void check_bitwise(const char *name, const void *a, const void *b, size_t n, size_t elem) {
    size_t differ = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (memcmp((const char *)a + i * elem, (const char *)b + i * elem, elem) != 0) {
            if (differ++ == 0) first = i;
        }
    char label[512];
    snprintf(label, sizeof label, "cuda %s (%zu of %zu elements differ)", name, differ, n);
    if (differ == 0) {
        TEST_PASS(label);
    } else if (elem == 2) {
        const uint16_t x = ((const uint16_t *)a)[first], y = ((const uint16_t *)b)[first];
        TEST_FAIL(label, "first at [%zu]: 0x%04x (%.8g) vs 0x%04x (%.8g)", first, x, f32_from_bf16(x), y,
                  f32_from_bf16(y));
    } else {
        const float x = ((const float *)a)[first], y = ((const float *)b)[first];
        TEST_FAIL(label, "first at [%zu]: %.9g vs %.9g", first, x, y);
    }
}

// ================================================================ layernorm
// shift > 0: every bf16 tensor (inp, out, w, bias) starts `shift` elements into its allocation; shift % 8 != 0
// breaks their 16-byte alignment (the kernels' scalar fallback), shift = 8 keeps it (the vector path at an offset).
static void test_layernorm_fwd_at(int R, int C, int affine, int stats, int shift) {
    const size_t n = (size_t)R * C, sh = (size_t)shift;
    float *inp = rand_bf16(n, -1.5, 2.5);  // mean 0.5: the centring matters
    float *w = affine ? rand_bf16(C, 0.5, 1.5) : NULL, *bias = affine ? rand_bf16(C, -0.5, 0.5) : NULL;
    float *out_ref = falloc(n), *mean_ref = falloc(R), *rstd_ref = falloc(R);
    cpu->layernorm_fwd(cpu, out_ref, stats ? mean_ref : NULL, stats ? rstd_ref : NULL, inp, w, bias, R, C, LN_EPS);

    void *d_inp = dev_bf16_at(inp, n, sh), *d_w = affine ? dev_bf16_at(w, C, sh) : NULL;
    void *d_b = affine ? dev_bf16_at(bias, C, sh) : NULL;
    void *d_out = dev_poisoned((n + sh) * 2);
    void *d_mean = stats ? dev_poisoned((size_t)R * 4) : NULL, *d_rstd = stats ? dev_poisoned((size_t)R * 4) : NULL;
    cuda_layernorm_fwd(NULL, (uint16_t *)d_out + sh, d_mean, d_rstd, (uint16_t *)d_inp + sh,
                       affine ? (uint16_t *)d_w + sh : NULL, affine ? (uint16_t *)d_b + sh : NULL, R, C, LN_EPS);
    synced("layernorm_fwd");

    char name[160], at[48] = "";
    if (shift) snprintf(at, sizeof at, ", tensors at +%d elements", shift);
    const char *kind = affine ? "affine" : "non-affine";
    uint16_t *out_all = down_bits(d_out, n + sh), *out = out_all + sh;
    snprintf(name, sizeof name, "layernorm_fwd out R=%d C=%d %s%s%s", R, C, kind, stats ? "" : ", mean/rstd NULL", at);
    check_bf16(name, out, out_ref, n, C, BF16_TOL, BF16_FLIP_FRAC);
    if (shift) {
        size_t touched = 0;
        for (size_t i = 0; i < sh; i++) touched += out_all[i] != 0xFFFFu;
        snprintf(name, sizeof name, "cuda layernorm_fwd R=%d C=%d%s: nothing written before out", R, C, at);
        TEST_CHECK(name, touched == 0, "%zu of the %d elements before out were written", touched, shift);
    }
    if (stats) {
        float *mean = down_f32(d_mean, R), *rstd = down_f32(d_rstd, R);
        snprintf(name, sizeof name, "layernorm_fwd mean R=%d C=%d %s%s", R, C, kind, at);
        check_f32(name, mean, mean_ref, R, 0, F32_SUM_TOL);
        snprintf(name, sizeof name, "layernorm_fwd rstd R=%d C=%d %s%s", R, C, kind, at);
        check_f32(name, rstd, rstd_ref, R, 0, F32_SUM_TOL);
        free(mean), free(rstd);
    }
    free(out_all), free(inp), free(w), free(bias), free(out_ref), free(mean_ref), free(rstd_ref);
    dev_free(d_inp), dev_free(d_w), dev_free(d_b), dev_free(d_out), dev_free(d_mean), dev_free(d_rstd);
}
static void test_layernorm_fwd(int R, int C, int affine, int stats) { test_layernorm_fwd_at(R, C, affine, stats, 0); }

// affine: w given; else w NULL. want: which gradients are asked for (LN_DINP | LN_DW | LN_DB; the others NULL), the
// given ones pre-filled so that += is checked. mean/rstd from the CPU forward, used by both. shift: as for the forward
// (dinp, dout, inp, w at +shift elements).
#define LN_DINP 1
#define LN_DW 2
#define LN_DB 4
#define LN_ALL (LN_DINP | LN_DW | LN_DB)
static void test_layernorm_bwd_at(int R, int C, int affine, int want, int shift) {
    const size_t n = (size_t)R * C, sh = (size_t)shift;
    const int want_dinp = want & LN_DINP, want_dw = want & LN_DW, want_db = want & LN_DB;
    float *inp = rand_bf16(n, -1.5, 2.5), *dout = rand_bf16(n, -1, 1);
    float *w = affine ? rand_bf16(C, 0.5, 1.5) : NULL, *bias = affine ? rand_bf16(C, -0.5, 0.5) : NULL;
    float *dinp0 = rand_bf16(n, -0.5, 0.5), *dw0 = rand_f32(C, -1, 1), *db0 = rand_f32(C, -1, 1);
    float *out = falloc(n), *mean = falloc(R), *rstd = falloc(R);
    cpu->layernorm_fwd(cpu, out, mean, rstd, inp, w, bias, R, C, LN_EPS);
    float *dinp_ref = fcopy(dinp0, n), *dw_ref = fcopy(dw0, C), *db_ref = fcopy(db0, C);
    cpu->layernorm_bwd(cpu, want_dinp ? dinp_ref : NULL, want_dw ? dw_ref : NULL, want_db ? db_ref : NULL, dout, inp,
                       w, mean, rstd, R, C);

    void *d_inp = dev_bf16_at(inp, n, sh), *d_dout = dev_bf16_at(dout, n, sh);
    void *d_w = affine ? dev_bf16_at(w, C, sh) : NULL;
    void *d_mean = dev_f32(mean, R), *d_rstd = dev_f32(rstd, R);
    void *d_dinp = want_dinp ? dev_bf16_at(dinp0, n, sh) : NULL;
    void *d_dw = want_dw ? dev_f32(dw0, C) : NULL, *d_db = want_db ? dev_f32(db0, C) : NULL;
    cuda_layernorm_bwd(NULL, want_dinp ? (uint16_t *)d_dinp + sh : NULL, d_dw, d_db, (uint16_t *)d_dout + sh,
                       (uint16_t *)d_inp + sh, affine ? (uint16_t *)d_w + sh : NULL, d_mean, d_rstd, R, C);
    synced("layernorm_bwd");

    char name[200], at[80] = "";
    const char *kind = affine ? "affine" : "non-affine";
    if (want != (affine ? LN_ALL : LN_DINP))
        snprintf(at, sizeof at, ", only%s%s%s", want_dinp ? " dinp" : "", want_dw ? " dw" : "",
                 want_db ? " dbias" : "");
    if (shift) snprintf(at + strlen(at), sizeof at - strlen(at), ", tensors at +%d elements", shift);
    if (want_dinp) {
        uint16_t *dinp_all = down_bits(d_dinp, n + sh);
        snprintf(name, sizeof name, "layernorm_bwd dinp += R=%d C=%d %s%s", R, C, kind, at);
        check_bf16(name, dinp_all + sh, dinp_ref, n, C, BF16_TOL, BF16_FLIP_FRAC);
        free(dinp_all);
    }
    if (want_dw) {
        float *dw = down_f32(d_dw, C);
        snprintf(name, sizeof name, "layernorm_bwd dw += R=%d C=%d%s", R, C, at);
        check_f32(name, dw, dw_ref, C, 0, F32_SUM_TOL);
        free(dw);
    }
    if (want_db) {
        float *db = down_f32(d_db, C);
        snprintf(name, sizeof name, "layernorm_bwd dbias += R=%d C=%d%s", R, C, at);
        check_f32(name, db, db_ref, C, 0, F32_SUM_TOL);
        free(db);
    }
    free(inp), free(dout), free(w), free(bias), free(dinp0), free(dw0), free(db0), free(out), free(mean);
    free(rstd), free(dinp_ref), free(dw_ref), free(db_ref);
    dev_free(d_inp), dev_free(d_dout), dev_free(d_w), dev_free(d_mean), dev_free(d_rstd), dev_free(d_dinp);
    dev_free(d_dw), dev_free(d_db);
}
// affine: w given and dw, dbias accumulated; else w, dw, dbias NULL.
static void test_layernorm_bwd(int R, int C, int affine) {
    test_layernorm_bwd_at(R, C, affine, affine ? LN_ALL : LN_DINP, 0);
}

// The real shape twice on the GPU: forward and backward outputs bitwise equal.
static void test_layernorm_determinism(int R, int C) {
    const size_t n = (size_t)R * C;
    float *inp = rand_bf16(n, -1.5, 2.5), *dout = rand_bf16(n, -1, 1), *w = rand_bf16(C, 0.5, 1.5);
    float *bias = rand_bf16(C, -0.5, 0.5), *dinp0 = rand_bf16(n, -0.5, 0.5), *dw0 = rand_f32(C, -1, 1);
    void *d_inp = dev_bf16(inp, n), *d_dout = dev_bf16(dout, n), *d_w = dev_bf16(w, C), *d_b = dev_bf16(bias, C);
    uint16_t *out[2], *dinp[2];
    float *mean[2], *rstd[2], *dw[2], *db[2];
    for (int run = 0; run < 2; run++) {
        void *d_out = dev_poisoned(n * 2), *d_mean = dev_poisoned((size_t)R * 4), *d_rstd = dev_poisoned((size_t)R * 4);
        void *d_dinp = dev_bf16(dinp0, n), *d_dw = dev_f32(dw0, C), *d_db = dev_f32(dw0, C);
        cuda_layernorm_fwd(NULL, d_out, d_mean, d_rstd, d_inp, d_w, d_b, R, C, LN_EPS);
        cuda_layernorm_bwd(NULL, d_dinp, d_dw, d_db, d_dout, d_inp, d_w, d_mean, d_rstd, R, C);
        synced("layernorm_fwd + layernorm_bwd");
        out[run] = down_bits(d_out, n), mean[run] = down_f32(d_mean, R), rstd[run] = down_f32(d_rstd, R);
        dinp[run] = down_bits(d_dinp, n), dw[run] = down_f32(d_dw, C), db[run] = down_f32(d_db, C);
        dev_free(d_out), dev_free(d_mean), dev_free(d_rstd), dev_free(d_dinp), dev_free(d_dw), dev_free(d_db);
    }
    char name[160];
    snprintf(name, sizeof name, "cuda layernorm_fwd deterministic R=%d C=%d: out, mean, rstd of two runs", R, C);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += out[0][i] != out[1][i];
    bad += (size_t)(memcmp(mean[0], mean[1], (size_t)R * 4) != 0);
    bad += (size_t)(memcmp(rstd[0], rstd[1], (size_t)R * 4) != 0);
    TEST_CHECK(name, bad == 0, "%zu differences between two identical runs", bad);
    snprintf(name, sizeof name, "layernorm_bwd deterministic R=%d C=%d: dinp of two runs", R, C);
    check_bitwise(name, dinp[0], dinp[1], n, 2);
    snprintf(name, sizeof name, "layernorm_bwd deterministic R=%d C=%d: dw of two runs", R, C);
    check_bitwise(name, dw[0], dw[1], C, 4);
    snprintf(name, sizeof name, "layernorm_bwd deterministic R=%d C=%d: dbias of two runs", R, C);
    check_bitwise(name, db[0], db[1], C, 4);
    for (int run = 0; run < 2; run++) {
        free(out[run]), free(mean[run]), free(rstd[run]);
        free(dinp[run]), free(dw[run]), free(db[run]);
    }
    free(inp), free(dout), free(w), free(bias), free(dinp0), free(dw0);
    dev_free(d_inp), dev_free(d_dout), dev_free(d_w), dev_free(d_b);
}

static void group_layernorm(void) {
    // odd small shapes (C < 32: lanes idle; C not a multiple of 32), the predictor width, ViT-H, the real encoder
    test_layernorm_fwd(7, 37, 1, 1);
    test_layernorm_fwd(5, 100, 0, 1);
    test_layernorm_fwd(3, 33, 1, 0);
    test_layernorm_fwd(64, 5, 1, 1);
    test_layernorm_fwd(1001, 384, 1, 1);
    test_layernorm_fwd(257, 1280, 1, 1);
    // the vector path's row shapes (C a multiple of 8, <= 2048): one chunk per lane, partial chunk rows (C/8 not a
    // multiple of the lanes per row), an odd row count with two rows per warp, ViT-B, ViT-g, the widest; then past
    // the widest (fallback), and tensors off their 16-byte alignment (fallback) or at an aligned offset
    test_layernorm_fwd(9, 8, 1, 1);
    test_layernorm_fwd(33, 200, 1, 1);
    test_layernorm_fwd(17, 392, 0, 1);
    test_layernorm_fwd(31, 768, 1, 1);
    test_layernorm_fwd(13, 1408, 1, 1);
    test_layernorm_fwd(11, 2048, 1, 0);
    test_layernorm_fwd(5, 2056, 1, 1);
    test_layernorm_fwd_at(37, 1024, 1, 1, 1);
    test_layernorm_fwd_at(37, 1024, 1, 1, 8);
    test_layernorm_fwd(3001, 1024, 1, 1);  // more rows than one wave of the persistent grid's row groups holds
    if (!small_only) test_layernorm_fwd(37632, 1024, 1, 1);
    // backward: 300 rows = a full and a partial 256-row chunk of the fallback's dw/dbias partial sums
    test_layernorm_bwd(7, 37, 1);
    test_layernorm_bwd(5, 100, 0);
    test_layernorm_bwd(64, 5, 1);
    test_layernorm_bwd(300, 257, 1);
    // the vector path: as for the forward; 3001 rows split unevenly over the persistent grid's blocks
    test_layernorm_bwd(9, 8, 1);
    test_layernorm_bwd(33, 200, 1);
    test_layernorm_bwd(1001, 384, 1);
    test_layernorm_bwd(17, 392, 0);
    test_layernorm_bwd(31, 768, 1);
    test_layernorm_bwd(3001, 1024, 1);
    test_layernorm_bwd(257, 1280, 1);
    test_layernorm_bwd(13, 1408, 1);
    test_layernorm_bwd(11, 2048, 1);
    test_layernorm_bwd(5, 2056, 1);
    // some gradients only; tensors off alignment (fallback) or at an aligned offset
    test_layernorm_bwd_at(1001, 384, 1, LN_DW | LN_DB, 0);
    test_layernorm_bwd_at(300, 1024, 1, LN_DINP | LN_DW, 0);
    test_layernorm_bwd_at(300, 1024, 1, LN_DINP, 0);
    test_layernorm_bwd_at(300, 1024, 1, LN_DB, 1);
    test_layernorm_bwd_at(37, 1024, 1, LN_ALL, 1);
    test_layernorm_bwd_at(37, 1024, 1, LN_ALL, 8);
    if (!small_only) test_layernorm_bwd(37632, 1024, 1);
    if (!small_only) test_layernorm_bwd(37632, 384, 1);
    test_layernorm_determinism(3001, 1024);  // the finishing kernel's two-round partial loop (G > 512 on an H100)
    test_layernorm_determinism(1001, 384);   // fewer partials than the finishing kernel's 128 lanes
    if (!small_only) test_layernorm_determinism(37632, 1024);
    if (!small_only) test_layernorm_determinism(37632, 384);
}

// ================================================================ elementwise
// x in [-lim, lim]. Below x = -3 both sides compute Phi(x) = (1 + erf(x/sqrt2))/2 with cancellation, as torch
// does, so 1-2 ulp differences between CUDA's erff and glibc's become relative differences up to 1e-3 on outputs
// below 4e-3 in magnitude: invisible in the norm, but they flip roundings. So the flips are judged on [-3, 3] only
// (judge_flips), the wide range by the norm.
static void test_gelu(size_t n, double lim, int judge_flips) {
    float *x = rand_bf16(n, -lim, lim), *dout = rand_bf16(n, -1, 1), *dinp0 = rand_bf16(n, -0.5, 0.5);
    float *out_ref = falloc(n), *dinp_ref = fcopy(dinp0, n);
    cpu->gelu_fwd(cpu, out_ref, x, n);
    cpu->gelu_bwd(cpu, dinp_ref, x, dout, n);
    void *d_x = dev_bf16(x, n), *d_dout = dev_bf16(dout, n), *d_out = dev_poisoned(n * 2), *d_dinp = dev_bf16(dinp0, n);
    cuda_gelu_fwd(NULL, d_out, d_x, n);
    synced("gelu_fwd");
    cuda_gelu_bwd(NULL, d_dinp, d_x, d_dout, n);
    synced("gelu_bwd");
    uint16_t *out = down_bits(d_out, n), *dinp = down_bits(d_dinp, n);
    char name[160];
    const double flips = judge_flips ? BF16_FLIP_FRAC : 1;
    snprintf(name, sizeof name, "gelu_fwd n=%zu x in [-%g, %g]", n, lim, lim);
    check_bf16(name, out, out_ref, n, 0, BF16_TOL, flips);
    snprintf(name, sizeof name, "gelu_bwd dinp += n=%zu x in [-%g, %g]", n, lim, lim);
    check_bf16(name, dinp, dinp_ref, n, 0, BF16_TOL, flips);
    free(x), free(dout), free(dinp0), free(out_ref), free(dinp_ref), free(out), free(dinp);
    dev_free(d_x), dev_free(d_dout), dev_free(d_out), dev_free(d_dinp);
}

// add, add in place, accumulate and scale: one fp32 operation then rounding, on both sides the same IEEE operation,
// so the result must equal the rounded CPU result bitwise (tolerance 0 on the flips).
static void test_add_scale(size_t n) {
    float *x = rand_bf16(n, -2, 2), *y = rand_bf16(n, -2, 2);
    float *add_ref = falloc(n), *acc_ref = fcopy(y, n), *scale_ref = fcopy(x, n);
    const float factor = 0.3f;
    cpu->add(cpu, add_ref, x, y, n);
    cpu->accumulate(cpu, acc_ref, x, n);
    cpu->scale(cpu, scale_ref, factor, n);
    void *d_x = dev_bf16(x, n), *d_y = dev_bf16(y, n), *d_out = dev_poisoned(n * 2);
    char name[160];

    cuda_add(NULL, d_out, d_x, d_y, n);
    synced("add");
    uint16_t *got = down_bits(d_out, n);
    snprintf(name, sizeof name, "add n=%zu", n);
    check_bf16(name, got, add_ref, n, 0, BF16_TOL, 0);
    free(got);

    void *d_x2 = dev_bf16(x, n);  // out aliasing x
    cuda_add(NULL, d_x2, d_x2, d_y, n);
    synced("add (in place)");
    got = down_bits(d_x2, n);
    snprintf(name, sizeof name, "add out == x n=%zu", n);
    check_bf16(name, got, add_ref, n, 0, BF16_TOL, 0);
    free(got);

    void *d_acc = dev_bf16(y, n);
    cuda_accumulate(NULL, d_acc, d_x, n);
    synced("accumulate");
    got = down_bits(d_acc, n);
    snprintf(name, sizeof name, "accumulate y += x n=%zu", n);
    check_bf16(name, got, acc_ref, n, 0, BF16_TOL, 0);
    free(got);

    cuda_scale(NULL, d_x, factor, n);
    synced("scale");
    got = down_bits(d_x, n);
    snprintf(name, sizeof name, "scale x *= 0.3 n=%zu", n);
    check_bf16(name, got, scale_ref, n, 0, BF16_TOL, 0);
    free(got);

    free(x), free(y), free(add_ref), free(acc_ref), free(scale_ref);
    dev_free(d_x), dev_free(d_y), dev_free(d_out), dev_free(d_x2), dev_free(d_acc);
}

// f32 -> bf16 against the host's round-to-nearest-even on random bit patterns of every exponent and the edge cases
// (ties both ways, the overflow to Inf, subnormals, signed zeros, Inf, NaN); bf16 -> f32 on all 65536 patterns.
static void test_conversions(void) {
    static const uint32_t edge[] = {
        0x00000000u, 0x80000000u, 0x3f800000u, 0x3f808000u /* tie, even: down */, 0x3f818000u /* tie, odd: up */,
        0x3f808001u, 0x3f807fffu, 0x7f7fffffu /* rounds to Inf */, 0x7f7f7fffu, 0x7f800000u, 0xff800000u,
        0x00000001u, 0x00008000u /* subnormal tie to 0 */, 0x00018000u /* subnormal tie up */, 0x007fffffu,
        0x00800000u, 0x80008001u, 0xbf808000u, 0xc0490fdbu, 0x7fc00000u /* NaN */, 0xffffffffu, 0x7f800001u};
    const size_t n_edge = sizeof edge / sizeof edge[0], n = 1000003;
    float *in = falloc(n);
    memcpy(in, edge, sizeof edge);
    Rng r = rng_stream(SEED, RNG_TEST, draws++, 0);
    for (size_t i = n_edge; i < n; i++) {
        const uint32_t u = rng_u32(&r);
        memcpy(&in[i], &u, sizeof u);
    }
    void *d_in = dev_f32(in, n), *d_out = dev_poisoned(n * 2);
    cuda_f32_to_bf16(NULL, d_out, d_in, n);
    synced("f32_to_bf16");
    uint16_t *got = down_bits(d_out, n);
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++) {
        const uint16_t want = bf16_from_f32(in[i]);
        const int ok = isnan(in[i]) ? isnan(f32_from_bf16(got[i])) : got[i] == want;  // NaN: any NaN
        if (!ok && bad++ == 0) first = i;
    }
    char name[160];
    snprintf(name, sizeof name, "cuda f32_to_bf16 round to nearest even, %zu values incl. %zu edge cases (%zu wrong)",
             n, n_edge, bad);
    uint32_t fu;
    memcpy(&fu, &in[first], sizeof fu);
    TEST_CHECK(name, bad == 0, "first at [%zu]: f32 0x%08x (%.9g) -> 0x%04x, want 0x%04x", first, fu, in[first],
               got[first], bf16_from_f32(in[first]));
    free(in), free(got);
    dev_free(d_in), dev_free(d_out);

    uint16_t *all = xmalloc(65536 * sizeof(uint16_t));
    for (uint32_t i = 0; i < 65536; i++) all[i] = (uint16_t)i;
    void *d_bits = dev_alloc(65536 * 2), *d_f = dev_poisoned(65536 * 4);
    CU(cudaMemcpy(d_bits, all, 65536 * 2, cudaMemcpyHostToDevice));
    cuda_bf16_to_f32(NULL, d_f, d_bits, 65536);
    synced("bf16_to_f32");
    float *f = down_f32(d_f, 65536), *want = falloc(65536);
    for (uint32_t i = 0; i < 65536; i++) want[i] = f32_from_bf16((uint16_t)i);
    check_bitwise("bf16_to_f32 all 65536 bit patterns exact", f, want, 65536, 4);
    free(all), free(f), free(want);
    dev_free(d_bits), dev_free(d_f);
}

static void group_elementwise(void) {
    test_gelu(100003, 3, 1);
    test_gelu(4194305, 8, 0);  // 2^22 + 1: four grid-stride rounds of the capped grid, and a ragged end
    test_add_scale(100003);
    test_add_scale(4194305);
    test_conversions();
}

// ================================================================ tokens
// gather with repeated indices (poisoned output, exact), scatter-add with repeats (pre-filled; against the fp32 CPU
// and bitwise against a host emulation of the kernel's in-order bf16 adds), twice for determinism.
static void test_gather_scatter(int B, int n, int Nsrc, int C, int distinct) {
    const size_t nsrc = (size_t)B * Nsrc * C, nout = (size_t)B * n * C;
    int32_t *idx = distinct ? rand_distinct_indices(B, n, Nsrc) : rand_indices((size_t)B * n, Nsrc);
    float *inp = rand_bf16(nsrc, -2, 2), *dout = rand_bf16(nout, -1, 1), *dinp0 = rand_bf16(nsrc, -1, 1);
    float *gather_ref = falloc(nout), *scatter_ref = fcopy(dinp0, nsrc);
    cpu->gather_tokens(cpu, gather_ref, inp, idx, B, n, Nsrc, C);
    cpu->scatter_add_tokens(cpu, scatter_ref, dout, idx, B, n, Nsrc, C);
    // the kernel's arithmetic: for each (b, c), i in order, dst = bf16(dst + src)
    float *emul = fcopy(dinp0, nsrc);
    for (int b = 0; b < B; b++)
        for (int i = 0; i < n; i++) {
            float *dst = emul + ((size_t)b * Nsrc + idx[(size_t)b * n + i]) * C;
            const float *src = dout + ((size_t)b * n + i) * C;
            for (int c = 0; c < C; c++) dst[c] = round_bf16(dst[c] + src[c]);
        }

    void *d_idx = dev_i32(idx, (size_t)B * n), *d_inp = dev_bf16(inp, nsrc), *d_dout = dev_bf16(dout, nout);
    void *d_out = dev_poisoned(nout * 2);
    cuda_gather_tokens(NULL, d_out, d_inp, d_idx, B, n, Nsrc, C);
    synced("gather_tokens");
    char name[200], shape[96];
    snprintf(shape, sizeof shape, "B=%d n=%d Nsrc=%d C=%d, %s indices", B, n, Nsrc, C,
             distinct ? "distinct" : "repeated");
    uint16_t *got = down_bits(d_out, nout);
    snprintf(name, sizeof name, "gather_tokens %s", shape);
    check_bf16(name, got, gather_ref, nout, C, 0, 0);
    free(got);

    uint16_t *runs[2];
    for (int run = 0; run < 2; run++) {
        void *d_dinp = dev_bf16(dinp0, nsrc);
        cuda_scatter_add_tokens(NULL, d_dinp, d_dout, d_idx, B, n, Nsrc, C);
        synced("scatter_add_tokens");
        runs[run] = down_bits(d_dinp, nsrc);
        dev_free(d_dinp);
    }
    // distinct indices: one add per element, exact against the rounded reference. Repeats: each of the k adds into
    // a row rounds to bf16, so up to k*u (k <= ~5 here): 4x the one-rounding bound, and flips are expected.
    snprintf(name, sizeof name, "scatter_add_tokens += %s, vs CPU", shape);
    check_bf16(name, runs[0], scatter_ref, nsrc, C, distinct ? BF16_TOL : 4 * BF16_TOL, distinct ? 0 : 1);
    uint16_t *emul_bits = xmalloc(nsrc * sizeof(uint16_t));
    for (size_t i = 0; i < nsrc; i++) emul_bits[i] = bf16_from_f32(emul[i]);
    snprintf(name, sizeof name, "scatter_add_tokens %s, equal to in-order bf16 adds", shape);
    check_bitwise(name, runs[0], emul_bits, nsrc, 2);
    snprintf(name, sizeof name, "scatter_add_tokens deterministic %s: two runs", shape);
    check_bitwise(name, runs[0], runs[1], nsrc, 2);
    free(runs[0]), free(runs[1]), free(emul_bits), free(emul);
    free(idx), free(inp), free(dout), free(dinp0), free(gather_ref), free(scatter_ref);
    dev_free(d_idx), dev_free(d_inp), dev_free(d_dout), dev_free(d_out);
}

// rows [dst_start, dst_start+count) of a pre-filled destination: = (exact) and += (rounded once); the rows outside
// must keep their values (the CPU reference keeps them too).
static void test_copy_tokens(int B, int C, int dst_tokens, int dst_start, int src_tokens, int src_start, int count) {
    const size_t nd = (size_t)B * dst_tokens * C, ns = (size_t)B * src_tokens * C;
    float *dst0 = rand_bf16(nd, -1, 1), *src = rand_bf16(ns, -1, 1);
    void *d_src = dev_bf16(src, ns);
    char name[200];
    for (int accumulate = 0; accumulate < 2; accumulate++) {
        float *ref = fcopy(dst0, nd);
        cpu->copy_tokens(cpu, ref, dst_tokens, dst_start, src, src_tokens, src_start, count, B, C, accumulate);
        void *d_dst = dev_bf16(dst0, nd);
        cuda_copy_tokens(NULL, d_dst, dst_tokens, dst_start, d_src, src_tokens, src_start, count, B, C, accumulate);
        synced("copy_tokens");
        uint16_t *got = down_bits(d_dst, nd);
        snprintf(name, sizeof name, "copy_tokens %s B=%d C=%d dst %d+[%d,%d) src %d+[%d,%d)", accumulate ? "+=" : "=",
                 B, C, dst_tokens, dst_start, dst_start + count, src_tokens, src_start, src_start + count);
        check_bf16(name, got, ref, nd, C, BF16_TOL, 0);
        free(got), free(ref);
        dev_free(d_dst);
    }
    free(dst0), free(src);
    dev_free(d_src);
}

static void test_add_rows(int B, int n, int C, int Ntable, int with_idx) {
    const size_t nx = (size_t)B * n * C;
    int32_t *idx = with_idx ? rand_indices((size_t)B * n, Ntable) : NULL;
    const int rows = with_idx ? Ntable : n;
    float *x0 = rand_bf16(nx, -1, 1), *table = rand_bf16((size_t)rows * C, -1, 1), *ref = fcopy(x0, nx);
    cpu->add_rows(cpu, ref, table, idx, B, n, C);
    void *d_x = dev_bf16(x0, nx), *d_t = dev_bf16(table, (size_t)rows * C);
    void *d_idx = with_idx ? dev_i32(idx, (size_t)B * n) : NULL;
    cuda_add_rows(NULL, d_x, d_t, d_idx, B, n, C);
    synced("add_rows");
    uint16_t *got = down_bits(d_x, nx);
    char name[160];
    if (with_idx) snprintf(name, sizeof name, "add_rows += B=%d n=%d C=%d idx into %d rows", B, n, C, Ntable);
    else snprintf(name, sizeof name, "add_rows += B=%d n=%d C=%d idx NULL (row i)", B, n, C);
    check_bf16(name, got, ref, nx, C, BF16_TOL, 0);
    free(got), free(idx), free(x0), free(table), free(ref);
    dev_free(d_x), dev_free(d_t), dev_free(d_idx);
}

static void test_broadcast_row(int R, int C) {
    float *row = rand_bf16(C, -1, 1), *ref = falloc((size_t)R * C);
    cpu->broadcast_row(cpu, ref, row, R, C);
    void *d_row = dev_bf16(row, C), *d_out = dev_poisoned((size_t)R * C * 2);
    cuda_broadcast_row(NULL, d_out, d_row, R, C);
    synced("broadcast_row");
    uint16_t *got = down_bits(d_out, (size_t)R * C);
    char name[160];
    snprintf(name, sizeof name, "broadcast_row R=%d C=%d", R, C);
    check_bf16(name, got, ref, (size_t)R * C, C, 0, 0);
    free(row), free(ref), free(got);
    dev_free(d_row), dev_free(d_out);
}

static void test_sum_rows(int R, int C, int twice) {
    const size_t n = (size_t)R * C;
    float *dout = rand_bf16(n, -1, 1), *drow0 = rand_f32(C, -1, 1), *ref = fcopy(drow0, C);
    cpu->sum_rows(cpu, ref, dout, R, C);
    void *d_dout = dev_bf16(dout, n);
    float *runs[2] = {NULL, NULL};
    for (int run = 0; run < 1 + twice; run++) {
        void *d_drow = dev_f32(drow0, C);
        cuda_sum_rows(NULL, d_drow, d_dout, R, C);
        synced("sum_rows");
        runs[run] = down_f32(d_drow, C);
        dev_free(d_drow);
    }
    char name[160];
    snprintf(name, sizeof name, "sum_rows drow += R=%d C=%d", R, C);
    check_f32(name, runs[0], ref, C, 0, F32_SUM_TOL);
    if (twice) {
        snprintf(name, sizeof name, "sum_rows deterministic R=%d C=%d: two runs", R, C);
        check_bitwise(name, runs[0], runs[1], C, 4);
    }
    free(runs[0]), free(runs[1]), free(dout), free(drow0), free(ref);
    dev_free(d_dout);
}

// pure data movement: exact
static void test_patchify(int B, int T, int H, int W, int tt, int p) {
    const size_t n = (size_t)B * T * H * W * 3;
    float *clips = rand_bf16(n, 0, 1), *ref = falloc(n);
    cpu->patchify(cpu, ref, clips, B, T, H, W, tt, p);
    void *d_clips = dev_bf16(clips, n), *d_out = dev_poisoned(n * 2);
    cuda_patchify(NULL, d_out, d_clips, B, T, H, W, tt, p);
    synced("patchify");
    uint16_t *got = down_bits(d_out, n);
    char name[160];
    snprintf(name, sizeof name, "patchify clips [%d,%d,%d,%d,3] tubelet %d patch %d", B, T, H, W, tt, p);
    check_bf16(name, got, ref, n, 3 * tt * p * p, 0, 0);
    free(clips), free(ref), free(got);
    dev_free(d_clips), dev_free(d_out);
}

static void group_tokens(void) {
    test_gather_scatter(3, 40, 29, 67, 0);       // 40 draws from 29 rows: repeats guaranteed
    if (!small_only) test_gather_scatter(4, 1200, 1568, 1024, 1); // a V-JEPA context set: distinct indices, 1568 tokens, width 1024
    test_copy_tokens(3, 67, 20, 5, 13, 2, 9);
    if (!small_only) test_copy_tokens(24, 384, 1568, 400, 1168, 0, 1168);  // predictor layout: context then targets
    test_add_rows(3, 17, 67, 29, 1);
    test_add_rows(3, 17, 67, 0, 0);
    if (!small_only) test_add_rows(24, 1568, 1024, 0, 0);  // the encoder's position embedding
    test_broadcast_row(101, 67);
    if (!small_only) test_broadcast_row(24 * 400, 384);
    test_sum_rows(7, 5, 0);
    test_sum_rows(1000, 385, 1);  // 4 chunks, the last partial
    if (!small_only) test_sum_rows(37632, 384, 1);
    test_patchify(2, 4, 12, 8, 2, 4);
    if (!small_only) test_patchify(2, 16, 224, 224, 2, 16);
}

// ================================================================ loss
// Inputs with ~10% exact ties (pred == target, where the gradient's sign must be 0).
static void l1_inputs(size_t n, float **pred, float **target) {
    *pred = rand_bf16(n, -2, 2);
    *target = rand_bf16(n, -2, 2);
    Rng r = rng_stream(SEED, RNG_TEST, draws++, 0);
    for (size_t i = 0; i < n; i += 1 + (size_t)rng_randint(&r, 0, 19)) (*target)[i] = (*pred)[i];
}

// mode 0: loss and gradient, 1: loss only (dpred NULL), 2: gradient only (loss_out NULL)
static void test_l1(size_t n, int mode, int twice) {
    float *pred, *target;
    l1_inputs(n, &pred, &target);
    float *dpred0 = rand_bf16(n, -0.5, 0.5), loss0 = 0.75f, loss_ref = loss0;
    float *dpred_ref = fcopy(dpred0, n);
    const float loss_scale = 0.5f, grad_scale = 1.5f * (float)n;  // gradient steps of +-1.5 (visible in bf16)
    cpu->l1_loss(cpu, mode == 2 ? NULL : &loss_ref, mode == 1 ? NULL : dpred_ref, pred, target, n, loss_scale,
                 grad_scale);
    void *d_pred = dev_bf16(pred, n), *d_target = dev_bf16(target, n);
    static const char *const modes[] = {"loss and dpred", "loss only", "dpred only"};
    float loss_got[2];
    uint16_t *dpred_got[2] = {NULL, NULL};
    for (int run = 0; run < 1 + twice; run++) {
        void *d_loss = dev_f32(&loss0, 1), *d_dpred = dev_bf16(dpred0, n);
        cuda_l1_loss(NULL, mode == 2 ? NULL : d_loss, mode == 1 ? NULL : d_dpred, d_pred, d_target, n, loss_scale,
                     grad_scale);
        synced("l1_loss");
        CU(cudaMemcpy(&loss_got[run], d_loss, 4, cudaMemcpyDeviceToHost));
        dpred_got[run] = down_bits(d_dpred, n);
        dev_free(d_loss), dev_free(d_dpred);
    }
    char name[200];
    snprintf(name, sizeof name, "l1_loss loss_out += (%s) n=%zu", modes[mode], n);
    if (mode == 2) {
        snprintf(name, sizeof name, "cuda l1_loss loss_out NULL leaves the slot alone (dpred only) n=%zu", n);
        // the slot was not passed: it keeps its pre-fill
        TEST_CHECK(name, loss_got[0] == loss0, "slot changed to %.9g", loss_got[0]);
    } else {
        check_scalar(name, loss_got[0], loss_ref, SCALAR_TOL);
    }
    // the sign and g = grad_scale/n are the same fp32 values on both sides: equal to the rounded reference
    snprintf(name, sizeof name, "l1_loss dpred += sign*g, sign(0)=0 (%s) n=%zu", modes[mode], n);
    check_bf16(name, dpred_got[0], dpred_ref, n, 0, BF16_TOL, 0);
    if (twice) {
        snprintf(name, sizeof name, "l1_loss deterministic n=%zu: loss of two runs", n);
        check_bitwise(name, &loss_got[0], &loss_got[1], 1, 4);
        snprintf(name, sizeof name, "l1_loss deterministic n=%zu: dpred of two runs", n);
        check_bitwise(name, dpred_got[0], dpred_got[1], n, 2);
    }
    free(pred), free(target), free(dpred0), free(dpred_ref), free(dpred_got[0]), free(dpred_got[1]);
    dev_free(d_pred), dev_free(d_target);
}

static void test_mean_column_std(int R, int C, float scale, int twice) {
    const size_t n = (size_t)R * C;
    float *x = rand_bf16(n, -1, 3);
    for (int r = 0; r < R; r++) x[(size_t)r * C] = 1.25f;  // a collapsed column: std 0
    const float out0 = 0.25f;
    float ref = out0;
    cpu->mean_column_std(cpu, &ref, x, R, C, scale);
    void *d_x = dev_bf16(x, n);
    float got[2];
    for (int run = 0; run < 1 + twice; run++) {
        void *d_out = dev_f32(&out0, 1);
        cuda_mean_column_std(NULL, d_out, d_x, R, C, scale);
        synced("mean_column_std");
        CU(cudaMemcpy(&got[run], d_out, 4, cudaMemcpyDeviceToHost));
        dev_free(d_out);
    }
    char name[160];
    snprintf(name, sizeof name, "mean_column_std out += R=%d C=%d scale %g", R, C, scale);
    check_scalar(name, got[0], ref, SCALAR_TOL);
    if (twice) {
        snprintf(name, sizeof name, "mean_column_std deterministic R=%d C=%d: two runs", R, C);
        check_bitwise(name, &got[0], &got[1], 1, 4);
    }
    free(x);
    dev_free(d_x);
}

static void group_loss(void) {
    test_l1(12345, 0, 0);
    test_l1(12345, 1, 0);
    test_l1(12345, 2, 0);
    if (!small_only) test_l1((size_t)24 * 1176 * 1024, 0, 1);  // a batch of 24 x 1176 target tokens x 1024 channels
    test_mean_column_std(37, 13, 0.5f, 0);
    test_mean_column_std(300, 257, 1.0f, 0);
    if (!small_only) test_mean_column_std(37632, 1024, 1.0f, 1);
}

// ================================================================ optim
static void test_sum_squares(size_t n, int twice) {
    float *x = rand_f32(n, -1, 1);
    float ref_cpu = -1;
    cpu->sum_squares(cpu, &ref_cpu, x, n);
    void *d_x = dev_f32(x, n);
    float got[2];
    for (int run = 0; run < 1 + twice; run++) {
        void *d_out = dev_poisoned(4);  // out = (not +=): the poison must go
        cuda_sum_squares(NULL, d_out, d_x, n);
        synced("sum_squares");
        CU(cudaMemcpy(&got[run], d_out, 4, cudaMemcpyDeviceToHost));
        dev_free(d_out);
    }
    char name[160];
    snprintf(name, sizeof name, "sum_squares out = n=%zu", n);
    if (n == 0) {
        snprintf(name, sizeof name, "cuda sum_squares out = 0 for n=0");
        TEST_CHECK(name, got[0] == 0.0f, "got %.9g for an empty buffer, want 0", got[0]);
    } else {
        check_scalar(name, got[0], ref_cpu, SCALAR_TOL);
    }
    if (twice) {
        snprintf(name, sizeof name, "sum_squares deterministic n=%zu: two runs", n);
        check_bitwise(name, &got[0], &got[1], 1, 4);
    }
    free(x);
    dev_free(d_x);
}

// ratio = max_norm / norm: < 1 scales, >= 1 leaves x untouched. The norm comes from a device slot: first the CPU's
// sum of squares uploaded (the same fp32 value on both sides), then the GPU's own sum_squares chained on the device.
static void test_clip(size_t n, double ratio) {
    float *x = rand_f32(n, -1, 1), sumsq = 0;
    cpu->sum_squares(cpu, &sumsq, x, n);
    const float max_norm = (float)(ratio * sqrt((double)sumsq));
    float *ref = fcopy(x, n);
    cpu->clip_by_norm(cpu, ref, n, &sumsq, max_norm);
    char name[160];
    for (int chained = 0; chained < 2; chained++) {
        void *d_x = dev_f32(x, n), *d_sumsq = dev_f32(&sumsq, 1);
        if (chained) {
            CU(cudaMemset(d_sumsq, 0xFF, 4));
            cuda_sum_squares(NULL, d_sumsq, d_x, n);
        }
        cuda_clip_by_norm(NULL, d_x, n, d_sumsq, max_norm);
        synced("clip_by_norm");
        float *got = down_f32(d_x, n);
        snprintf(name, sizeof name, "clip_by_norm n=%zu max_norm = %.2f x norm, %s", n, ratio,
                 chained ? "norm from cuda_sum_squares on the device" : "norm from the CPU");
        if (ratio >= 1) {
            check_bitwise(name, got, x, n, 4);  // untouched
        } else {
            check_f32(name, got, ref, n, 0, F32_EW_TOL);
        }
        free(got);
        dev_free(d_x), dev_free(d_sumsq);
    }
    free(x), free(ref);
}

// Sampled elements of a device buffer: out[k] = d[at[k]] (elem bytes each).
static void *sample_device(const void *d, const size_t *at, size_t k, size_t elem) {
    char *h = xmalloc(k * elem);
    for (size_t j = 0; j < k; j++)
        CU(cudaMemcpy(h + j * elem, (const char *)d + at[j] * elem, elem, cudaMemcpyDeviceToHost));
    return h;
}

// Fill n elements of device buffer d with copies of the period host values h[period] (elem bytes each): one upload
// then doubling device-to-device copies.
static void fill_periodic(void *d, const void *h, size_t period, size_t n, size_t elem) {
    size_t have = period < n ? period : n;
    CU(cudaMemcpy(d, h, have * elem, cudaMemcpyHostToDevice));
    while (have < n) {
        const size_t k = have < n - have ? have : n - have;
        CU(cudaMemcpy((char *)d + have * elem, d, k * elem, cudaMemcpyDeviceToDevice));
        have += k;
    }
}

#define SAMPLES 4096
// Indices into [0, n) to sample: the first and last 16 and SAMPLES random ones.
static size_t *sample_indices(size_t n, size_t *count) {
    size_t *at = xmalloc((SAMPLES + 32) * sizeof(size_t)), k = 0;
    for (size_t i = 0; i < 16 && i < n; i++) at[k++] = i, at[k++] = n - 1 - i;
    Rng r = rng_stream(SEED, RNG_TEST, draws++, 0);
    for (int j = 0; j < SAMPLES; j++) at[k++] = (size_t)rng_randint(&r, 0, (int64_t)n);
    *count = k;
    return at;
}

// After an op on `big` elements filled with copies of a `period`-element input: every sampled element equals the
// period run's result at i mod period, bitwise (the kernels are elementwise).
static void check_sampled(const char *name, const void *d_big, const void *period_result, size_t period, size_t big,
                          size_t elem) {
    size_t k;
    size_t *at = sample_indices(big, &k);
    char *got = sample_device(d_big, at, k, elem), *want = xmalloc(k * elem);
    for (size_t j = 0; j < k; j++) memcpy(want + j * elem, (const char *)period_result + (at[j] % period) * elem, elem);
    size_t differ = 0, first = 0;
    for (size_t j = 0; j < k; j++)
        if (memcmp(got + j * elem, want + j * elem, elem) != 0 && differ++ == 0) first = j;
    char label[300];
    snprintf(label, sizeof label, "cuda %s (%zu of %zu sampled elements differ)", name, differ, k);
    TEST_CHECK(label, differ == 0, "first at [%zu] (= [%zu] of the period)", at[first], at[first] % period);
    free(at), free(got), free(want);
}

// Hyper-parameters exactly representable in fp32 (the launchers take float; the CPU takes double).
#define ADAM_LR 1e-3f
#define ADAM_B1 0.9f
#define ADAM_B2 0.999f
#define ADAM_EPS 1e-8f
#define ADAM_WD 0.05f
#define ADAM_STEP 7  // bias corrections far from 1: 1 - b1^7 = 0.52, sqrt(1 - b2^7) = 0.084
#define EMA_MOM 0.998f

// AdamW on n = period elements against the CPU (param, m, v, the update itself), the working copy = the new
// parameters rounded, then (big > 0) on `big` elements of periodic data, sampled; and without a working copy.
static void test_adamw(size_t n, size_t big) {
    float *p0 = rand_f32(n, -1, 1), *g = rand_f32(n, -1e-2, 1e-2), *m0 = rand_f32(n, -1e-3, 1e-3);
    float *v0 = rand_f32(n, 0, 1e-4);
    float *p_ref = fcopy(p0, n), *m_ref = fcopy(m0, n), *v_ref = fcopy(v0, n);
    cpu->adamw(cpu, p_ref, NULL, g, m_ref, v_ref, n, ADAM_LR, ADAM_B1, ADAM_B2, ADAM_EPS, ADAM_WD, ADAM_STEP, NULL);

    void *d_p = dev_f32(p0, n), *d_g = dev_f32(g, n), *d_m = dev_f32(m0, n), *d_v = dev_f32(v0, n);
    void *d_w = dev_poisoned(n * 2);
    cuda_adamw(NULL, d_p, d_w, d_g, d_m, d_v, n, ADAM_LR, ADAM_B1, ADAM_B2, ADAM_EPS, ADAM_WD, ADAM_STEP, NULL);
    synced("adamw");
    float *p = down_f32(d_p, n), *m = down_f32(d_m, n), *v = down_f32(d_v, n);
    uint16_t *w = down_bits(d_w, n);
    char name[200];
    snprintf(name, sizeof name, "adamw param n=%zu step %d", n, ADAM_STEP);
    check_f32(name, p, p_ref, n, 0, F32_EW_TOL);
    snprintf(name, sizeof name, "adamw m n=%zu", n);
    check_f32(name, m, m_ref, n, 0, F32_EW_TOL);
    snprintf(name, sizeof name, "adamw v n=%zu", n);
    check_f32(name, v, v_ref, n, 0, F32_EW_TOL);
    // The update p - p0 (~1e-3) carries the bias corrections and the decoupled decay (lr*wd*p = 5e-5*p, 5% of it);
    // an fp32 ulp of p is ~6e-5 of the update, so 1e-3 allows a few ulps and catches a wrong term.
    float *du = falloc(n), *du_ref = falloc(n);
    for (size_t i = 0; i < n; i++) du[i] = p[i] - p0[i], du_ref[i] = p_ref[i] - p0[i];
    snprintf(name, sizeof name, "adamw update p - p0 n=%zu", n);
    check_f32(name, du, du_ref, n, 0, 1e-3);
    snprintf(name, sizeof name, "adamw working = bf16(new param) in the same pass n=%zu", n);
    check_bf16(name, w, p, n, 0, BF16_TOL, 0);

    if (big) {  // a ViT-L/16 encoder + predictor's worth of parameters, grid-stride with size_t indices
        void *b_p = dev_alloc(big * 4), *b_g = dev_alloc(big * 4), *b_m = dev_alloc(big * 4), *b_v = dev_alloc(big * 4);
        void *b_w = dev_poisoned(big * 2);
        fill_periodic(b_p, p0, n, big, 4), fill_periodic(b_g, g, n, big, 4);
        fill_periodic(b_m, m0, n, big, 4), fill_periodic(b_v, v0, n, big, 4);
        cuda_adamw(NULL, b_p, b_w, b_g, b_m, b_v, big, ADAM_LR, ADAM_B1, ADAM_B2, ADAM_EPS, ADAM_WD, ADAM_STEP, NULL);
        synced("adamw (big)");
        snprintf(name, sizeof name, "adamw n=%zu param: sampled = the n=%zu run's", big, n);
        check_sampled(name, b_p, p, n, big, 4);
        snprintf(name, sizeof name, "adamw n=%zu m: sampled = the n=%zu run's", big, n);
        check_sampled(name, b_m, m, n, big, 4);
        snprintf(name, sizeof name, "adamw n=%zu v: sampled = the n=%zu run's", big, n);
        check_sampled(name, b_v, v, n, big, 4);
        snprintf(name, sizeof name, "adamw n=%zu working: sampled = the n=%zu run's", big, n);
        check_sampled(name, b_w, w, n, big, 2);
        dev_free(b_p), dev_free(b_g), dev_free(b_m), dev_free(b_v), dev_free(b_w);
    }

    if (!big) {  // working NULL: the same parameters, nothing else written
        void *s_p = dev_f32(p0, n), *s_m = dev_f32(m0, n), *s_v = dev_f32(v0, n);
        cuda_adamw(NULL, s_p, NULL, d_g, s_m, s_v, n, ADAM_LR, ADAM_B1, ADAM_B2, ADAM_EPS, ADAM_WD, ADAM_STEP, NULL);
        synced("adamw (no working copy)");
        float *ps = down_f32(s_p, n);
        snprintf(name, sizeof name, "adamw working NULL n=%zu: param as with a working copy", n);
        check_bitwise(name, ps, p, n, 4);
        free(ps);
        dev_free(s_p), dev_free(s_m), dev_free(s_v);
    }

    free(p0), free(g), free(m0), free(v0), free(p_ref), free(m_ref), free(v_ref), free(p), free(m), free(v), free(w);
    free(du), free(du_ref);
    dev_free(d_p), dev_free(d_g), dev_free(d_m), dev_free(d_v), dev_free(d_w);
}

static void test_ema(size_t n, size_t big) {
    float *t0 = rand_f32(n, -1, 1), *src = rand_f32(n, -1, 1), *ref = fcopy(t0, n);
    cpu->ema(cpu, ref, NULL, src, n, EMA_MOM, NULL);
    void *d_t = dev_f32(t0, n), *d_s = dev_f32(src, n), *d_w = dev_poisoned(n * 2);
    cuda_ema(NULL, d_t, d_w, d_s, n, EMA_MOM, NULL);
    synced("ema");
    float *t = down_f32(d_t, n);
    uint16_t *w = down_bits(d_w, n);
    char name[200];
    snprintf(name, sizeof name, "ema target n=%zu momentum %.3f", n, EMA_MOM);
    check_f32(name, t, ref, n, 0, F32_EW_TOL);
    // the change (1 - m) * (source - target) is ~2e-3 of target: an ulp of target is ~3e-5 of it
    float *du = falloc(n), *du_ref = falloc(n);
    for (size_t i = 0; i < n; i++) du[i] = t[i] - t0[i], du_ref[i] = ref[i] - t0[i];
    snprintf(name, sizeof name, "ema change target - target0 n=%zu", n);
    check_f32(name, du, du_ref, n, 0, 1e-3);
    snprintf(name, sizeof name, "ema working = bf16(new target) in the same pass n=%zu", n);
    check_bf16(name, w, t, n, 0, BF16_TOL, 0);
    if (big) {
        void *b_t = dev_alloc(big * 4), *b_s = dev_alloc(big * 4), *b_w = dev_poisoned(big * 2);
        fill_periodic(b_t, t0, n, big, 4), fill_periodic(b_s, src, n, big, 4);
        cuda_ema(NULL, b_t, b_w, b_s, big, EMA_MOM, NULL);
        synced("ema (big)");
        snprintf(name, sizeof name, "ema n=%zu target: sampled = the n=%zu run's", big, n);
        check_sampled(name, b_t, t, n, big, 4);
        snprintf(name, sizeof name, "ema n=%zu working: sampled = the n=%zu run's", big, n);
        check_sampled(name, b_w, w, n, big, 2);
        dev_free(b_t), dev_free(b_s), dev_free(b_w);
    }
    free(t0), free(src), free(ref), free(t), free(w), free(du), free(du_ref);
    dev_free(d_t), dev_free(d_s), dev_free(d_w);
}

// ---- flat ranges at arbitrary element offsets (the optimizer's module and group ranges start anywhere)
#define RANGE_PAD 8  // elements around a range: all must stay untouched
// A host buffer of n + RANGE_PAD floats: x at [off, off + n), the others from bg (n + RANGE_PAD values).
static float *padded_f32(const float *x, size_t n, size_t off, const float *bg) {
    float *h = fcopy(bg, n + RANGE_PAD);
    memcpy(h + off, x, n * sizeof(float));
    return h;
}
// Elements of got outside [off, off + n) that differ (bitwise) from want; got and want have n + RANGE_PAD elements.
static size_t outside_changed(const void *got, const void *want, size_t n, size_t off, size_t elem) {
    size_t bad = 0;
    for (size_t i = 0; i < n + RANGE_PAD; i++)
        if ((i < off || i >= off + n) && memcmp((const char *)got + i * elem, (const char *)want + i * elem, elem))
            bad++;
    return bad;
}
static size_t bitwise_differ(const void *a, const void *b, size_t n, size_t elem) {
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += memcmp((const char *)a + i * elem, (const char *)b + i * elem, elem) != 0;
    return bad;
}
static double rel_err_of(const float *got, const float *ref, size_t n) { return diff_of(got, ref, n).rel; }

// Element offsets of the arrays of one call: {the updated fp32 arrays, the read-only fp32 source, the bf16 copy}.
// Equal offsets: the vector path after a scalar head of (4 - off) % 4; unequal: the scalar path throughout.
static const int RANGE_OFFSETS[][3] = {{0, 0, 0}, {1, 1, 1}, {2, 2, 2}, {3, 3, 3}, {1, 2, 1}, {0, 0, 1}, {2, 2, 3}};
#define N_RANGE_OFFSETS (int)(sizeof RANGE_OFFSETS / sizeof RANGE_OFFSETS[0])

// AdamW on [off, off + n) of padded buffers: within F32_EW_TOL of the CPU, bitwise equal to the all-aligned run
// (the scalar and vector paths compute the same function), working = bf16(new param), nothing outside written.
static void test_adamw_offsets(size_t n) {
    const size_t N = n + RANGE_PAD;
    float *p0 = rand_f32(n, -1, 1), *g = rand_f32(n, -1e-2, 1e-2), *m0 = rand_f32(n, -1e-3, 1e-3);
    float *v0 = rand_f32(n, 0, 1e-4), *bg = rand_f32(N, -1, 1);
    float *p_ref = fcopy(p0, n), *m_ref = fcopy(m0, n), *v_ref = fcopy(v0, n);
    cpu->adamw(cpu, p_ref, NULL, g, m_ref, v_ref, n, ADAM_LR, ADAM_B1, ADAM_B2, ADAM_EPS, ADAM_WD, ADAM_STEP, NULL);
    float *first[3] = {NULL, NULL, NULL};
    uint16_t *poison = xmalloc(N * sizeof(uint16_t));
    memset(poison, 0xFF, N * sizeof(uint16_t));
    for (int c = 0; c < N_RANGE_OFFSETS; c++) {
        const size_t op = (size_t)RANGE_OFFSETS[c][0], og = (size_t)RANGE_OFFSETS[c][1];
        const size_t ow = (size_t)RANGE_OFFSETS[c][2];
        float *hp = padded_f32(p0, n, op, bg), *hm = padded_f32(m0, n, op, bg), *hv = padded_f32(v0, n, op, bg);
        float *hg = padded_f32(g, n, og, bg);
        void *d_p = dev_f32(hp, N), *d_m = dev_f32(hm, N), *d_v = dev_f32(hv, N), *d_g = dev_f32(hg, N);
        void *d_w = dev_poisoned(N * 2);
        cuda_adamw(NULL, (float *)d_p + op, (uint16_t *)d_w + ow, (float *)d_g + og, (float *)d_m + op,
                   (float *)d_v + op, n, ADAM_LR, ADAM_B1, ADAM_B2, ADAM_EPS, ADAM_WD, ADAM_STEP, NULL);
        synced("adamw (offset range)");
        float *p = down_f32(d_p, N), *m = down_f32(d_m, N), *v = down_f32(d_v, N);
        uint16_t *w = down_bits(d_w, N);
        double err = rel_err_of(p + op, p_ref, n);
        if (rel_err_of(m + op, m_ref, n) > err) err = rel_err_of(m + op, m_ref, n);
        if (rel_err_of(v + op, v_ref, n) > err) err = rel_err_of(v + op, v_ref, n);
        size_t vs_first = 0, work_bad = 0;
        if (c == 0) {
            first[0] = fcopy(p, n), first[1] = fcopy(m, n), first[2] = fcopy(v, n);
        } else {
            vs_first = bitwise_differ(p + op, first[0], n, 4) + bitwise_differ(m + op, first[1], n, 4) +
                       bitwise_differ(v + op, first[2], n, 4);
        }
        for (size_t i = 0; i < n; i++) work_bad += w[ow + i] != bf16_from_f32(p[op + i]);
        const size_t outside = outside_changed(p, hp, n, op, 4) + outside_changed(m, hm, n, op, 4) +
                               outside_changed(v, hv, n, op, 4) + outside_changed(w, poison, n, ow, 2);
        char name[300];
        snprintf(name, sizeof name,
                 "cuda adamw n=%zu at offsets param/m/v +%zu grad +%zu working +%zu (rel err %.2e vs the CPU, tol "
                 "%.0e; %zu differ from the aligned run; %zu working != bf16(param); %zu written outside)",
                 n, op, og, ow, err, F32_EW_TOL, vs_first, work_bad, outside);
        TEST_CHECK(name, err <= F32_EW_TOL && vs_first == 0 && work_bad == 0 && outside == 0,
                   "the range update differs or leaks outside its range");
        free(hp), free(hm), free(hv), free(hg), free(p), free(m), free(v), free(w);
        dev_free(d_p), dev_free(d_m), dev_free(d_v), dev_free(d_g), dev_free(d_w);
    }
    free(first[0]), free(first[1]), free(first[2]), free(poison);
    free(p0), free(g), free(m0), free(v0), free(bg), free(p_ref), free(m_ref), free(v_ref);
}

// EMA on [off, off + n), as test_adamw_offsets: {target, source, working} offsets.
static void test_ema_offsets(size_t n) {
    const size_t N = n + RANGE_PAD;
    float *t0 = rand_f32(n, -1, 1), *src = rand_f32(n, -1, 1), *bg = rand_f32(N, -1, 1), *ref = fcopy(t0, n);
    cpu->ema(cpu, ref, NULL, src, n, EMA_MOM, NULL);
    float *first = NULL;
    uint16_t *poison = xmalloc(N * sizeof(uint16_t));
    memset(poison, 0xFF, N * sizeof(uint16_t));
    for (int c = 0; c < N_RANGE_OFFSETS; c++) {
        const size_t ot = (size_t)RANGE_OFFSETS[c][0], os = (size_t)RANGE_OFFSETS[c][1];
        const size_t ow = (size_t)RANGE_OFFSETS[c][2];
        float *ht = padded_f32(t0, n, ot, bg), *hs = padded_f32(src, n, os, bg);
        void *d_t = dev_f32(ht, N), *d_s = dev_f32(hs, N), *d_w = dev_poisoned(N * 2);
        cuda_ema(NULL, (float *)d_t + ot, (uint16_t *)d_w + ow, (float *)d_s + os, n, EMA_MOM, NULL);
        synced("ema (offset range)");
        float *t = down_f32(d_t, N);
        uint16_t *w = down_bits(d_w, N);
        const double err = rel_err_of(t + ot, ref, n);
        size_t vs_first = 0, work_bad = 0;
        if (c == 0) first = fcopy(t, n);
        else vs_first = bitwise_differ(t + ot, first, n, 4);
        for (size_t i = 0; i < n; i++) work_bad += w[ow + i] != bf16_from_f32(t[ot + i]);
        const size_t outside = outside_changed(t, ht, n, ot, 4) + outside_changed(w, poison, n, ow, 2);
        char name[300];
        snprintf(name, sizeof name,
                 "cuda ema n=%zu at offsets target +%zu source +%zu working +%zu (rel err %.2e vs the CPU, tol %.0e; "
                 "%zu differ from the aligned run; %zu working != bf16(target); %zu written outside)",
                 n, ot, os, ow, err, F32_EW_TOL, vs_first, work_bad, outside);
        TEST_CHECK(name, err <= F32_EW_TOL && vs_first == 0 && work_bad == 0 && outside == 0,
                   "the range update differs or leaks outside its range");
        free(ht), free(hs), free(t), free(w);
        dev_free(d_t), dev_free(d_s), dev_free(d_w);
    }
    free(first), free(poison), free(t0), free(src), free(bg), free(ref);
}

// sum_squares, clip_by_norm and cast_params over [off, off + n) of padded buffers.
static void test_optim_misc_offsets(size_t n) {
    const size_t N = n + RANGE_PAD;
    float *x = rand_f32(n, -1, 1), *bg = rand_f32(N, -1, 1), sumsq = 0;
    cpu->sum_squares(cpu, &sumsq, x, n);
    const float max_norm = (float)(0.5 * sqrt((double)sumsq));
    float *clip_ref = fcopy(x, n);
    cpu->clip_by_norm(cpu, clip_ref, n, &sumsq, max_norm);
    uint16_t *poison = xmalloc(N * sizeof(uint16_t));
    memset(poison, 0xFF, N * sizeof(uint16_t));
    char name[300];
    for (size_t off = 0; off < 4; off++) {
        float *hx = padded_f32(x, n, off, bg);
        void *d_x = dev_f32(hx, N), *d_out = dev_poisoned(4);
        cuda_sum_squares(NULL, d_out, (float *)d_x + off, n);
        synced("sum_squares (offset range)");
        float got = 0;
        CU(cudaMemcpy(&got, d_out, 4, cudaMemcpyDeviceToHost));
        snprintf(name, sizeof name, "sum_squares out = n=%zu at offset +%zu", n, off);
        check_scalar(name, got, sumsq, SCALAR_TOL);

        void *d_sumsq = dev_f32(&sumsq, 1);
        cuda_clip_by_norm(NULL, (float *)d_x + off, n, d_sumsq, max_norm);
        synced("clip_by_norm (offset range)");
        float *cx = down_f32(d_x, N);
        const double err = rel_err_of(cx + off, clip_ref, n);
        const size_t outside = outside_changed(cx, hx, n, off, 4);
        snprintf(name, sizeof name,
                 "cuda clip_by_norm n=%zu at offset +%zu, max_norm = 0.50 x norm (rel err %.2e, tol %.0e; %zu written "
                 "outside)", n, off, err, F32_EW_TOL, outside);
        TEST_CHECK(name, err <= F32_EW_TOL && outside == 0, "the range update differs or leaks outside its range");

        const size_t ow = off == 1 ? 2 : off;  // off 1: working at another alignment, the scalar path
        void *d_w = dev_poisoned(N * 2);
        CU(cudaMemcpy(d_x, hx, N * 4, cudaMemcpyHostToDevice));
        cuda_cast_params(NULL, (uint16_t *)d_w + ow, (float *)d_x + off, n);
        synced("cast_params (offset range)");
        uint16_t *w = down_bits(d_w, N);
        size_t bad = 0;
        for (size_t i = 0; i < n; i++) bad += w[ow + i] != bf16_from_f32(x[i]);
        const size_t w_outside = outside_changed(w, poison, n, ow, 2);
        snprintf(name, sizeof name,
                 "cuda cast_params n=%zu master at +%zu working at +%zu (%zu != bf16(master); %zu written outside)", n,
                 off, ow, bad, w_outside);
        TEST_CHECK(name, bad == 0 && w_outside == 0, "the cast differs or leaks outside its range");
        free(hx), free(cx), free(w);
        dev_free(d_x), dev_free(d_out), dev_free(d_sumsq), dev_free(d_w);
    }
    free(x), free(bg), free(clip_ref), free(poison);
}

static void test_cast_params(size_t n) {
    float *x = rand_f32(n, -3, 3);
    x[0] = 1.00390625f;    // 1 + 2^-8: a tie, rounds down to even
    x[1] = 1.01171875f;    // 1 + 3*2^-8: a tie, rounds up to even
    x[2] = 3.4028235e38f;  // the largest float rounds to Inf
    void *d_x = dev_f32(x, n), *d_w = dev_poisoned(n * 2);
    cuda_cast_params(NULL, d_w, d_x, n);
    synced("cast_params");
    uint16_t *got = down_bits(d_w, n);
    char name[160];
    snprintf(name, sizeof name, "cast_params working = bf16(master) n=%zu", n);
    float *ref = fcopy(x, n);
    ref[2] = 1.0f;  // keep the norm finite: the Inf element is judged by the rounding check alone
    const int inf_ok = got[2] == 0x7f80;
    TEST_CHECK("cuda cast_params max float -> +Inf (round to nearest even)", inf_ok, "got 0x%04x", got[2]);
    got[2] = bf16_from_f32(1.0f);
    check_bf16(name, got, ref, n, 0, BF16_TOL, 0);
    free(x), free(got), free(ref);
    dev_free(d_x), dev_free(d_w);
}

static void group_optim(void) {
    test_sum_squares(0, 0);
    test_sum_squares(12345, 0);
    if (!small_only) test_sum_squares(10000019, 1);
    test_clip(100003, 0.5);
    test_clip(100003, 2.0);
    test_adamw(1001, 0);
    if (!small_only) test_adamw(10000019, 305000003);  // ~10M against the CPU; 305M (ViT-L/16 + predictor) sampled
    test_ema(1001, 0);
    if (!small_only) test_ema(10000019, 305000003);
    test_cast_params(100003);
    // ranges at every alignment: n = 1 (head only), 6 (head, at most one group, tail), 1001 (all three)
    test_adamw_offsets(1);
    test_adamw_offsets(6);
    test_adamw_offsets(1001);
    test_ema_offsets(1);
    test_ema_offsets(6);
    test_ema_offsets(1001);
    test_optim_misc_offsets(6);
    test_optim_misc_offsets(100003);
}

// ================================================================ main

// Usage: test_cuda_ops [group ...]: only the named groups (layernorm, elementwise, tokens, loss, optim); all by
// default, as tests/run.sh runs it.
static int wanted(int argc, char **argv, const char *group) {
    if (argc < 2) return 1;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], group) == 0) return 1;
    return 0;
}

int main(int argc, char **argv) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        char reason[256];
        if (err != cudaSuccess)
            snprintf(reason, sizeof reason, "cudaGetDeviceCount: %s", cudaGetErrorString(err));
        else
            snprintf(reason, sizeof reason, "cudaGetDeviceCount found 0 devices");
        for (int g = 0; g < N_GROUPS; g++) printf("SKIP cuda %s: no CUDA device (%s)\n", GROUPS[g], reason);
        return 0;
    }
    struct cudaDeviceProp prop;
    CU(cudaGetDeviceProperties(&prop, 0));
    printf("# device 0: %s, sm_%d%d, %.1f GiB\n", prop.name, prop.major, prop.minor,
           (double)prop.totalGlobalMem / (1 << 30));
    cpu = backend_cpu_create(0, 0);
    small_only = getenv("JEPA_TEST_SMALL") && strcmp(getenv("JEPA_TEST_SMALL"), "0") != 0;
    if (small_only) printf("# JEPA_TEST_SMALL: the V-JEPA-sized shapes are left out\n");
    const double t0 = now_seconds();
    void (*const run[N_GROUPS])(void) = {group_layernorm, group_elementwise, group_tokens, group_loss, group_optim};
    for (int g = 0; g < N_GROUPS; g++)
        if (wanted(argc, argv, GROUPS[g])) run[g]();
    printf("# cuda op tests: %.1f s\n", now_seconds() - t0);
    backend_destroy(cpu);
    TEST_EXIT();
}

#endif
