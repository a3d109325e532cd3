// test_cuda_fusion.c: issue 9's fused CUDA kernels (opt-in until this test has passed on a GPU):
//   - cuda_adamw_ema (kernels/optim.cu, JEPA_FUSE_EMA=1): bitwise equal to cuda_adamw then cuda_ema on the GPU, and
//     within 1e-6 (relative norm) of the cpu-f32 adamw then ema; working copies poisoned first (0xFF: NaN in bf16)
//     and then exactly bf16(new param), bf16(new target); ranges at aligned and unaligned element offsets (the float4
//     path after a scalar head, and the all-scalar path when the arrays' alignments disagree), nothing written
//     outside them; a set fault flag changes nothing;
//   - cuda_add_layernorm_fwd (kernels/layernorm.cu, JEPA_FUSE_LN=1): bitwise equal to cuda_add then
//     cuda_layernorm_fwd; sum bitwise equal to the host's bf16(x + y); out within 1e-2 and mean, rstd within 1e-5 of
//     the cpu-f32 LayerNorm of that sum; at every vector shape (C = 8 .. 2048, 1 to 8 chunks per lane), affine or
//     not; outputs poisoned first; the calls it must decline (C % 8, alignment, overlap) return 0 and write nothing;
//   - a tiny model's training step (micro-step and optim_step) on a CUDA backend with JEPA_FUSE_EMA=1 JEPA_FUSE_LN=1
//     bitwise equal to one without (losses, gradients, parameters, moments, target and both working copies).
// Tolerances: 1e-6 for fp32 elementwise results against the CPU (the kernels follow optim_cpu.c's roundings, so the
// difference should be 0; 1e-6 allows an ulp here and there, a wrong term is >= 1e-4); 1e-2 for a bf16 output (one
// rounding, 2^-8 unit roundoff, ~2.3e-3 RMS relative, plus fp32 summation order); 1e-5 for fp32 row statistics over
// at most 2048 values summed in another order (~1e-7 relative each). Without a usable GPU every group prints SKIP.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "backend_cuda.h"
#include "common.h"
#include "rng.h"
#include "test.h"

static const char *const GROUPS[] = {"cuda adamw_ema vs adamw then ema", "cuda add_layernorm_fwd vs add then layernorm",
                                     "cuda fused training step (JEPA_FUSE_EMA=1 JEPA_FUSE_LN=1) vs default"};
#define N_GROUPS 3

#ifndef JEPA_CUDA

int main(void) {
    for (int g = 0; g < N_GROUPS; g++) TEST_SKIP(GROUPS[g], "built without CUDA (nvcc was not found at build time)");
    TEST_EXIT();
}

#else

#include "cuda_ops.h"
#include "model.h"
#include "model_check.h"
#include "optim.h"
#include "tiny_model.h"

#define TOL_F32_EW 1e-6
#define TOL_BF16 1e-2
#define TOL_STAT 1e-5
#define PAD 8  // elements around every range: they must stay untouched

static Rng rng;
static Backend *cpu, *gpu;

// ---------------------------------------------------------------- buffers

static float *rand_f32(size_t n, double mean, double scale, int positive) {
    float *h = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        const double z = scale * rng_normal(&rng);
        h[i] = (float)(mean + (positive ? fabs(z) : z));
    }
    return h;
}

// n values rounded to bf16, as floats (both sides hold the same numbers)
static float *rand_bf16_exact(size_t n, double mean, double scale) {
    float *h = rand_f32(n, mean, scale, 0);
    for (size_t i = 0; i < n; i++) h[i] = (float)bf16_to_double(bf16_from_double(h[i]));
    return h;
}

// a device buffer of `bytes` holding host bytes h (NULL: poison, every byte 0xFF)
static void *dev_put(const void *h, size_t bytes) {
    void *d = backend_alloc(gpu, "a test buffer", bytes);
    if (h) {
        gpu->upload(gpu, d, h, bytes);
    } else {
        unsigned char *ff = xmalloc(bytes);
        memset(ff, 0xFF, bytes);
        gpu->upload(gpu, d, ff, bytes);
        free(ff);
    }
    return d;
}

static void *dev_get_be(Backend *be, const void *d, size_t bytes) {
    void *h = xmalloc(bytes);
    be->download(be, h, d, bytes);
    return h;
}
static void *dev_get(const void *d, size_t bytes) { return dev_get_be(gpu, d, bytes); }

// floats as bf16 bits on the device (n elements)
static void *dev_bf16(const float *h, size_t n) {
    uint16_t *b = xmalloc(n * sizeof(uint16_t));
    for (size_t i = 0; i < n; i++) b[i] = bf16_from_double(h[i]);
    void *d = dev_put(b, n * sizeof(uint16_t));
    free(b);
    return d;
}

static size_t differ(const void *a, const void *b, size_t n, size_t elem) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += memcmp((const char *)a + i * elem, (const char *)b + i * elem, elem) != 0;
    return k;
}

static double rel_err_f32(const float *got, const float *want, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        const double d = (double)got[i] - want[i];
        num += isfinite(d) ? d * d : INFINITY;
        den += (double)want[i] * want[i];
    }
    return sqrt(num) / fmax(sqrt(den), 1e-300);
}

static double rel_err_bf16(const uint16_t *got, const float *want, size_t n) {
    float *g = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) g[i] = (float)bf16_to_double(got[i]);
    const double e = rel_err_f32(g, want, n);
    free(g);
    return e;
}

// ---------------------------------------------------------------- adamw_ema

#define LR 1e-3f
#define B1 0.9f
#define B2 0.999f
#define EPS 1e-8f
#define WD 0.05f
#define STEP 7  // bias corrections far from 1
#define MOM 0.998f

enum { P, G, M, V, T, NF };  // the fp32 arrays: param, grad, m, v, target

// n elements at fp32 offset of (in buffers of n + PAD) and bf16 offset ow; skip: the fault flag set.
static void test_adamw_ema(size_t n, size_t of, size_t ow, int skip) {
    const size_t N = n + PAD;
    float *h[NF];
    const double mean[NF] = {0, 0, 0, 0, 0}, scale[NF] = {0.5, 1e-2, 1e-3, 1e-4, 0.5};
    for (int k = 0; k < NF; k++) h[k] = rand_f32(N, mean[k], scale[k], k == V);
    // the CPU reference: adamw then ema on the range
    float *ref[NF];
    for (int k = 0; k < NF; k++) ref[k] = xmalloc(N * sizeof(float)), memcpy(ref[k], h[k], N * sizeof(float));
    if (!skip) {
        cpu->adamw(cpu, ref[P] + of, NULL, ref[G] + of, ref[M] + of, ref[V] + of, n, LR, B1, B2, EPS, WD, STEP, NULL);
        cpu->ema(cpu, ref[T] + of, NULL, ref[P] + of, n, MOM, NULL);
    }
    // fused and unfused on the GPU
    void *f[NF], *u[NF];
    for (int k = 0; k < NF; k++) f[k] = dev_put(h[k], N * 4), u[k] = dev_put(h[k], N * 4);
    void *fw = dev_put(NULL, N * 2), *ftw = dev_put(NULL, N * 2), *uw = dev_put(NULL, N * 2), *utw = dev_put(NULL, N * 2);
    const float one = 1.0f;
    float *flag = skip ? dev_put(&one, 4) : NULL;
    struct CUstream_st *s = backend_cuda_stream(gpu);
#define F(k) ((float *)f[k] + of)
#define U(k) ((float *)u[k] + of)
    cuda_adamw_ema(s, F(P), (uint16_t *)fw + ow, F(G), F(M), F(V), F(T), (uint16_t *)ftw + ow, n, LR, B1, B2, EPS, WD,
                   STEP, MOM, flag);
    cuda_adamw(s, U(P), (uint16_t *)uw + ow, U(G), U(M), U(V), n, LR, B1, B2, EPS, WD, STEP, flag);
    cuda_ema(s, U(T), (uint16_t *)utw + ow, U(P), n, MOM, flag);
#undef F
#undef U
    float *gf[NF], *gu[NF];
    for (int k = 0; k < NF; k++) gf[k] = dev_get(f[k], N * 4), gu[k] = dev_get(u[k], N * 4);
    uint16_t *w = dev_get(fw, N * 2), *tw = dev_get(ftw, N * 2), *wu = dev_get(uw, N * 2), *twu = dev_get(utw, N * 2);
    size_t vs_unfused = 0, outside = 0, work_bad = 0;
    double err = 0;
    for (int k = 0; k < NF; k++) {
        vs_unfused += differ(gf[k], gu[k], N, 4);
        err = fmax(err, rel_err_f32(gf[k] + of, ref[k] + of, n));
        outside += differ(gf[k], h[k], of, 4) + differ(gf[k] + of + n, h[k] + of + n, PAD - of, 4);
    }
    vs_unfused += differ(w, wu, N, 2) + differ(tw, twu, N, 2);
    for (size_t i = 0; i < N; i++) {
        const int in = i >= ow && i < ow + n && !skip;
        const size_t j = i - ow + of;  // the fp32 element that working element i copies
        work_bad += w[i] != (in ? bf16_from_double(gf[P][j]) : 0xFFFF);
        work_bad += tw[i] != (in ? bf16_from_double(gf[T][j]) : 0xFFFF);
    }
    char name[320];
    snprintf(name, sizeof name,
             "cuda_adamw_ema n=%zu offsets fp32 +%zu bf16 +%zu%s: %zu elements differ from cuda_adamw + cuda_ema, "
             "rel err %.1e vs the CPU (tol %.0e), %zu working elements != bf16(new) (or written outside), %zu fp32 "
             "written outside",
             n, of, ow, skip ? " fault flag set (nothing changes)" : "", vs_unfused, err, TOL_F32_EW, work_bad,
             outside);
    TEST_CHECK(name, vs_unfused == 0 && err <= TOL_F32_EW && work_bad == 0 && outside == 0, "see the counts");
    for (int k = 0; k < NF; k++) {
        free(h[k]), free(ref[k]), free(gf[k]), free(gu[k]);
        gpu->release(gpu, f[k]), gpu->release(gpu, u[k]);
    }
    free(w), free(tw), free(wu), free(twu);
    gpu->release(gpu, fw), gpu->release(gpu, ftw), gpu->release(gpu, uw), gpu->release(gpu, utw);
    if (flag) gpu->release(gpu, flag);
}

// ---------------------------------------------------------------- add + LayerNorm

// affine: 0 none, 1 w and bias, 2 w only
static void test_add_layernorm(int R, int C, int affine) {
    const size_t n = (size_t)R * C;
    float *x = rand_bf16_exact(n, 0, 1), *y = rand_bf16_exact(n, 0.5, 2);
    float *w = affine ? rand_bf16_exact(C, 1, 0.2) : NULL, *b = affine == 1 ? rand_bf16_exact(C, 0, 0.2) : NULL;
    // the reference: sum = bf16(x + y) in fp32 then rounded once (cuda_add's rounding), the cpu-f32 LayerNorm of it
    float *sum = xmalloc(n * sizeof(float)), *out = xmalloc(n * sizeof(float));
    float *mean = xmalloc(R * sizeof(float)), *rstd = xmalloc(R * sizeof(float));
    uint16_t *sum_bits = xmalloc(n * sizeof(uint16_t));
    for (size_t i = 0; i < n; i++) {
        sum_bits[i] = bf16_from_double((double)(x[i] + y[i]));
        sum[i] = (float)bf16_to_double(sum_bits[i]);
    }
    cpu->layernorm_fwd(cpu, out, mean, rstd, sum, w, b, R, C, 1e-6);
    void *dx = dev_bf16(x, n), *dy = dev_bf16(y, n), *dw = w ? dev_bf16(w, C) : NULL, *db = b ? dev_bf16(b, C) : NULL;
    void *fs = dev_put(NULL, n * 2), *fo = dev_put(NULL, n * 2), *fm = dev_put(NULL, R * 4), *fr = dev_put(NULL, R * 4);
    void *us = dev_put(NULL, n * 2), *uo = dev_put(NULL, n * 2), *um = dev_put(NULL, R * 4), *ur = dev_put(NULL, R * 4);
    struct CUstream_st *s = backend_cuda_stream(gpu);
    const int took = cuda_add_layernorm_fwd(s, fs, fo, fm, fr, dx, dy, dw, db, R, C, 1e-6f);
    cuda_add(s, us, dx, dy, n);
    cuda_layernorm_fwd(s, uo, um, ur, us, dw, db, R, C, 1e-6f);
    uint16_t *gs = dev_get(fs, n * 2), *go = dev_get(fo, n * 2), *gus = dev_get(us, n * 2), *guo = dev_get(uo, n * 2);
    float *gm = dev_get(fm, R * 4), *gr = dev_get(fr, R * 4), *gum = dev_get(um, R * 4), *gur = dev_get(ur, R * 4);
    const size_t vs_unfused = differ(gs, gus, n, 2) + differ(go, guo, n, 2) + differ(gm, gum, R, 4) +
                              differ(gr, gur, R, 4);
    const size_t sum_bad = differ(gs, sum_bits, n, 2);
    const double e_out = rel_err_bf16(go, out, n), e_mean = rel_err_f32(gm, mean, R), e_rstd = rel_err_f32(gr, rstd, R);
    char name[320];
    snprintf(name, sizeof name,
             "cuda_add_layernorm_fwd R=%d C=%d %s: taken %d; %zu elements differ from cuda_add + cuda_layernorm_fwd; "
             "%zu sum != bf16(x + y); out rel err %.1e (tol %.0e), mean %.1e rstd %.1e (tol %.0e) vs the CPU",
             R, C, affine == 0 ? "non-affine" : affine == 1 ? "affine" : "w without bias", took, vs_unfused, sum_bad,
             e_out, TOL_BF16, e_mean, e_rstd, TOL_STAT);
    TEST_CHECK(name,
               took == 1 && vs_unfused == 0 && sum_bad == 0 && e_out <= TOL_BF16 && e_mean <= TOL_STAT &&
                   e_rstd <= TOL_STAT,
               "see the figures");
    free(x), free(y), free(w), free(b), free(sum), free(out), free(mean), free(rstd), free(sum_bits);
    free(gs), free(go), free(gus), free(guo), free(gm), free(gr), free(gum), free(gur);
    void *bufs[] = {dx, dy, dw, db, fs, fo, fm, fr, us, uo, um, ur};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) gpu->release(gpu, bufs[i]);
}

// The calls the kernel must decline (return 0, nothing queued): the caller then composes the two ops.
static void test_add_layernorm_declines(void) {
    const int R = 64, C = 1024;
    const size_t n = (size_t)R * C;
    void *x = dev_put(NULL, n * 2 + 16), *y = dev_put(NULL, n * 2), *sum = dev_put(NULL, n * 2 + 16);
    void *out = dev_put(NULL, n * 2);
    uint16_t *before = dev_get(sum, n * 2 + 16), *x_before = dev_get(x, n * 2 + 16);
    struct CUstream_st *s = backend_cuda_stream(gpu);
    const int odd_c = cuda_add_layernorm_fwd(s, sum, out, NULL, NULL, x, y, NULL, NULL, 16, 36, 1e-6f);
    const int unaligned = cuda_add_layernorm_fwd(s, (uint16_t *)sum + 4, out, NULL, NULL, x, y, NULL, NULL, R, C, 1e-6f);
    const int overlap = cuda_add_layernorm_fwd(s, (uint16_t *)x + 8, out, NULL, NULL, x, y, NULL, NULL, R, C, 1e-6f);
    uint16_t *after = dev_get(sum, n * 2 + 16), *x_after = dev_get(x, n * 2 + 16);
    TEST_CHECK("cuda_add_layernorm_fwd declines C=36, an unaligned sum and a sum overlapping x (returns 0, writes "
               "nothing)",
               odd_c == 0 && unaligned == 0 && overlap == 0 && differ(before, after, n + 8, 2) == 0 &&
                   differ(x_before, x_after, n + 8, 2) == 0,
               "returned %d %d %d", odd_c, unaligned, overlap);
    free(before), free(after), free(x_before), free(x_after);
    gpu->release(gpu, x), gpu->release(gpu, y), gpu->release(gpu, sum), gpu->release(gpu, out);
}

// ---------------------------------------------------------------- a training step, fused vs default

typedef struct {
    double loss;
    size_t total, enc;  // parameters, encoder parameters
    unsigned char *grads, *params, *adam_m, *adam_v, *target, *work, *target_work;
} StepResult;

// One micro-step and one optimizer step of the tiny model (predictor 16 wide: 8-wide heads, which the CUDA attention
// takes) on a fresh CUDA backend with the given environment, everything downloaded raw.
static StepResult step_with(int fused) {
    if (fused) setenv("JEPA_FUSE_EMA", "1", 1), setenv("JEPA_FUSE_LN", "1", 1);
    else unsetenv("JEPA_FUSE_EMA"), unsetenv("JEPA_FUSE_LN");
    Backend *be = backend_cuda_create(0, 1);
    unsetenv("JEPA_FUSE_EMA"), unsetenv("JEPA_FUSE_LN");
    Config cfg;
    tiny_config(&cfg, 2);
    cfg.model.pred_embed_dim = 16;
    Model *m = model_create(&cfg, be);
    DataSource *ds = data_open(&cfg);
    Batch batch;
    batch_make(&cfg, m, ds, 3, 0, 2, &batch);
    model_zero_step(m);
    model_micro_step(m, &batch.mb, 1.0, 1);
    StepResult r;
    const size_t total = r.total = m->table.total, enc = r.enc = table_module_numel(&m->table, MODULE_ENCODER);
    r.grads = dev_get_be(be, m->grads, total * 4);
    const Schedule sched = schedule_at(&cfg, 0);
    optim_step(m, &cfg, &sched, 1);
    StepStats st;
    model_read_stats(m, &st);
    r.loss = st.loss_mean;
    r.params = dev_get_be(be, m->params, total * 4), r.adam_m = dev_get_be(be, m->adam_m, total * 4);
    r.adam_v = dev_get_be(be, m->adam_v, total * 4), r.target = dev_get_be(be, m->target, enc * 4);
    r.work = dev_get_be(be, m->work, total * 2), r.target_work = dev_get_be(be, m->target_work, enc * 2);
    batch_free(&cfg, &batch);
    data_close(ds);
    model_free(m);
    backend_destroy(be);
    return r;
}

static void test_training_step(void) {
    StepResult a = step_with(1), b = step_with(0);
    const size_t total = a.total, enc = a.enc;
    TEST_CHECK("cuda fused step: loss bitwise equal to the default build's", a.loss == b.loss, "%.9g vs %.9g", a.loss,
               b.loss);
    const char *what[7] = {"gradients", "params", "adam_m", "adam_v", "target", "working weights", "working target"};
    unsigned char *x[7] = {a.grads, a.params, a.adam_m, a.adam_v, a.target, a.work, a.target_work};
    unsigned char *y[7] = {b.grads, b.params, b.adam_m, b.adam_v, b.target, b.work, b.target_work};
    const size_t bytes[7] = {total * 4, total * 4, total * 4, total * 4, enc * 4, total * 2, enc * 2};
    for (int k = 0; k < 7; k++) {
        char name[160];
        snprintf(name, sizeof name, "cuda fused step: %s bitwise equal to the default build's", what[k]);
        const size_t bad = differ(x[k], y[k], bytes[k], 1);
        TEST_CHECK(name, bad == 0, "%zu of %zu bytes differ", bad, bytes[k]);
        free(x[k]), free(y[k]);
    }
}

int main(void) {
    char why[256];
    if (cuda_device_count(why, sizeof why) == 0) {
        for (int g = 0; g < N_GROUPS; g++) TEST_SKIP(GROUPS[g], why);
        TEST_EXIT();
    }
    rng = rng_stream(13, RNG_TEST, 5, 0);
    cpu = backend_cpu_create(0, 0);
    unsetenv("JEPA_FUSE_EMA"), unsetenv("JEPA_FUSE_LN");
    gpu = backend_cuda_create(0, 1);
    TEST_CHECK("default CUDA backend: no adamw_ema (optim.c runs adamw then ema)", gpu->adamw_ema == NULL,
               "adamw_ema set without JEPA_FUSE_EMA=1");
    // offsets (fp32, bf16): aligned; a scalar head of 1 then float4 groups; alignments that disagree (all scalar)
    const size_t offsets[][2] = {{0, 0}, {3, 3}, {1, 2}, {0, 1}};
    for (int k = 0; k < 4; k++) test_adamw_ema(5, offsets[k][0], offsets[k][1], 0);
    for (int k = 0; k < 4; k++) test_adamw_ema((1u << 20) + 3, offsets[k][0], offsets[k][1], 0);
    test_adamw_ema(4099, 0, 0, 1);
    // every vector shape: L = 16 lanes for C <= 384 (1..3 chunks per lane), 32 lanes above (2..8); ViT-L's 1024,
    // the predictor's 384, ViT-g's 1408; odd row counts (a partial row group, rows past R in the prefetch)
    const int shapes[][2] = {{50, 8},      {129, 16},  {77, 256},   {1000, 384}, {37, 512},  {300, 640},
                             {4096, 1024}, {37, 1024}, {100, 1280}, {333, 1408}, {65, 1792}, {64, 2048}};
    for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) test_add_layernorm(shapes[k][0], shapes[k][1], 1);
    test_add_layernorm(257, 1024, 0);
    test_add_layernorm(257, 384, 2);
    test_add_layernorm_declines();
    backend_destroy(gpu);
    test_training_step();
    backend_destroy(cpu);
    TEST_EXIT();
}

#endif
