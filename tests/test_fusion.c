// test_fusion.c: the fused ops of issue 9 on the CPU backends (fp32 and fp64), bit for bit the separate ops:
//   - adamw_ema (the target's EMA folded into AdamW's pass) == adamw then ema, over several steps with and without
//     weight decay, at a length that takes the OpenMP path; the working copies when they are separate buffers;
//     nothing changes when the fault flag is set;
//   - optim.c's folded path (optim_step, and optim_update + optim_ema as train.c calls them) == the unfused path (a
//     backend without adamw_ema) on a tiny model over a few steps: parameters, moments and target, bitwise; under
//     dist.sync consensus nothing is folded;
//   - add_layernorm_fwd (the block's residual add and the LayerNorm after it) == add then layernorm_fwd.
// Bitwise, not a tolerance: the fused CPU loops apply the same per-element functions (kernels/optim_cpu.c), and the
// CPU backend uses the fused pass in every training run, so any difference would change every CPU run's numbers.
// The CUDA kernels are tests/test_cuda_fusion.c.
#include <string.h>

#include "backend.h"
#include "common.h"
#include "model.h"
#include "optim.h"
#include "rng.h"
#include "test.h"
#include "tiny_model.h"

static Rng rng;

// n values mean + scale * N(0, 1) (|.| when positive) in a new buffer of elements of elem bytes
static void *rand_buf(Backend *b, size_t n, size_t elem, double mean, double scale, int positive) {
    double *v = xmalloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) {
        const double z = scale * rng_normal(&rng);
        v[i] = mean + (positive ? fabs(z) : z);
    }
    void *p = backend_alloc(b, "a test buffer", n * elem);
    b->upload_f64(b, p, elem, v, n);
    free(v);
    return p;
}

static void *copy_of(Backend *b, const void *src, size_t bytes) {
    void *p = backend_alloc(b, "a test buffer", bytes);
    b->copy(b, p, src, bytes);
    return p;
}

// the index of the first differing element (of elem bytes), n when none
static size_t first_diff(const void *a, const void *b, size_t n, size_t elem) {
    size_t i = 0;
    while (i < n && memcmp((const char *)a + i * elem, (const char *)b + i * elem, elem) == 0) i++;
    return i;
}

static void same_bits(const char *name, const void *a, const void *b, size_t n, size_t elem) {
    const size_t i = first_diff(a, b, n, elem);
    TEST_CHECK(name, i == n, "element %zu of %zu differs", i, n);
}

// ---------------------------------------------------------------- the op

// Two ranges (decay, no decay) of one flat buffer, three steps, fused vs adamw then ema; then a faulted step.
static void test_adamw_ema_op(Backend *b) {
    const size_t n = 70001, split = 40003;  // above optim_cpu.c's OPT_PARALLEL_MIN; odd lengths and offsets
    const size_t e = b->msize;
    void *p = rand_buf(b, n, e, 0, 0.02, 0), *m = rand_buf(b, n, e, 0, 1e-4, 0), *v = rand_buf(b, n, e, 0, 1e-6, 1);
    void *t = rand_buf(b, n, e, 0, 0.02, 0);
    void *p2 = copy_of(b, p, n * e), *m2 = copy_of(b, m, n * e), *v2 = copy_of(b, v, n * e), *t2 = copy_of(b, t, n * e);
    const double lr[3] = {1e-4, 6.25e-4, 3e-4}, wd[3] = {0.04, 0.4, 0.1}, mom[3] = {0.998, 0.9985, 0.99925};
    char name[200];
    for (int step = 1; step <= 3; step++) {
        void *g = rand_buf(b, n, e, 0, 1e-3, 0);
        const size_t begin[2] = {0, split}, len[2] = {split, n - split};
        for (int r = 0; r < 2; r++) {  // range 0 decays, range 1 does not (biases, norms)
            const size_t at = begin[r] * e;
            const double w = r == 0 ? wd[step - 1] : 0.0;
#define AT(buf) ((char *)(buf) + at)
            b->adamw_ema(b, AT(p), NULL, AT(g), AT(m), AT(v), len[r], lr[step - 1], 0.9, 0.999, 1e-8, w, step, AT(t),
                         NULL, mom[step - 1], NULL);
            b->adamw(b, AT(p2), NULL, AT(g), AT(m2), AT(v2), len[r], lr[step - 1], 0.9, 0.999, 1e-8, w, step, NULL);
            b->ema(b, AT(t2), NULL, AT(p2), len[r], mom[step - 1], NULL);
#undef AT
        }
        b->release(b, g);
        const char *what[4] = {"param", "m", "v", "target"};
        void *got[4] = {p, m, v, t}, *want[4] = {p2, m2, v2, t2};
        for (int k = 0; k < 4; k++) {
            snprintf(name, sizeof name, "%s adamw_ema == adamw then ema, step %d (decay and no decay): %s", b->name,
                     step, what[k]);
            same_bits(name, got[k], want[k], n, e);
        }
    }
    // separate working copies (the CPU aliases them in training): each = its master after the pass
    void *g = rand_buf(b, n, e, 0, 1e-3, 0), *pw = rand_buf(b, n, e, 0, 1, 0), *tw = rand_buf(b, n, e, 0, 1, 0);
    b->adamw_ema(b, p, pw, g, m, v, n, 1e-4, 0.9, 0.999, 1e-8, 0.04, 4, t, tw, 0.999, NULL);
    snprintf(name, sizeof name, "%s adamw_ema: working = the new param, target_working = the new target", b->name);
    TEST_CHECK(name, first_diff(pw, p, n, e) == n && first_diff(tw, t, n, e) == n, "a working copy differs");
    // a faulted step (the flag set): nothing moves
    void *flag = backend_alloc(b, "a flag", b->ssize);
    const double one = 1;
    b->upload_f64(b, flag, b->ssize, &one, 1);
    void *p3 = copy_of(b, p, n * e), *m3 = copy_of(b, m, n * e), *v3 = copy_of(b, v, n * e), *t3 = copy_of(b, t, n * e);
    b->adamw_ema(b, p, NULL, g, m, v, n, 1e-4, 0.9, 0.999, 1e-8, 0.04, 5, t, NULL, 0.999, flag);
    snprintf(name, sizeof name, "%s adamw_ema with the fault flag set changes nothing", b->name);
    TEST_CHECK(name,
               first_diff(p, p3, n, e) == n && first_diff(m, m3, n, e) == n && first_diff(v, v3, n, e) == n &&
                   first_diff(t, t3, n, e) == n,
               "a buffer changed");
    void *bufs[] = {p, m, v, t, p2, m2, v2, t2, g, pw, tw, flag, p3, m3, v3, t3};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) b->release(b, bufs[i]);
}

// ---------------------------------------------------------------- optim.c's folded path on a model

static void model_state_equal(const char *how, Model *a, Model *b, int step) {
    const size_t n = a->table.total, enc = table_module_numel(&a->table, MODULE_ENCODER), e = a->be->msize;
    const char *what[4] = {"params", "adam_m", "adam_v", "target"};
    void *x[4] = {a->params, a->adam_m, a->adam_v, a->target}, *y[4] = {b->params, b->adam_m, b->adam_v, b->target};
    char name[240];
    for (int k = 0; k < 4; k++) {
        snprintf(name, sizeof name, "%s %s, step %d: %s bitwise equal to the unfused path", a->be->name, how, step,
                 what[k]);
        same_bits(name, x[k], y[k], k == 3 ? enc : n, e);
    }
}

// Gradients from N(0, 1e-3) drawn once for both models (the same bits).
static void set_grads(Model *a, Model *b) {
    const size_t n = a->table.total;
    double *g = xmalloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) g[i] = 1e-3 * rng_normal(&rng);
    a->be->upload_f64(a->be, a->grads, a->be->msize, g, n);
    b->be->upload_f64(b->be, b->grads, b->be->msize, g, n);
    free(g);
}

// split: optim_update then optim_ema (train.c's calls), else optim_step. consensus: dist.sync consensus.
static void test_optim_fold(int double_precision, int split, int consensus) {
    Config cfg;
    tiny_config(&cfg, 2);
    cfg.optimization.clip_grad = 1e-3;  // clipping too, from the first step after warmup
    cfg.optimization.warmup = 0;
    if (consensus) strcpy(cfg.dist.sync, "consensus");
    Backend *fb = backend_cpu_create(double_precision, 2), *ub = backend_cpu_create(double_precision, 2);
    ub->adamw_ema = NULL;  // the unfused path: adamw over every group, then one ema over the encoder
    Model *fused = model_create(&cfg, fb), *plain = model_create(&cfg, ub);
    const char *how = consensus ? "optim_update + optim_ema under consensus (not folded)"
                      : split  ? "optim_update + optim_ema folded"
                               : "optim_step folded";
    int folded_ok = 1;
    for (int step = 1; step <= 3; step++) {
        set_grads(fused, plain);
        const Schedule s = schedule_at(&cfg, (long)(step - 1) * cfg.optimization.ipe + 5);
        if (split) {
            optim_update(fused, &cfg, &s, step);
            folded_ok &= fused->ema_folded == !consensus;
            optim_ema(fused, &s);
            folded_ok &= fused->ema_folded == 0;
        } else {
            optim_step(fused, &cfg, &s, step);
        }
        optim_step(plain, &cfg, &s, step);
        model_state_equal(how, fused, plain, step);
    }
    if (split) {
        char name[200];
        snprintf(name, sizeof name, "%s %s: ema_folded set by optim_update iff folded, cleared by optim_ema", fb->name,
                 how);
        TEST_CHECK(name, folded_ok, "ema_folded had the wrong value");
    }
    model_free(fused), model_free(plain);
    backend_destroy(fb), backend_destroy(ub);
}

// ---------------------------------------------------------------- add + LayerNorm

static void test_add_layernorm(Backend *b, int R, int C, int affine) {
    const size_t n = (size_t)R * C, e = b->esize;
    void *x = rand_buf(b, n, e, 0, 1, 0), *y = rand_buf(b, n, e, 0.5, 2, 0);
    void *w = affine ? rand_buf(b, C, e, 1, 0.1, 0) : NULL, *bias = affine ? rand_buf(b, C, e, 0, 0.1, 0) : NULL;
    void *sum = rand_buf(b, n, e, 0, 1, 0), *out = rand_buf(b, n, e, 0, 1, 0);  // garbage: both are written
    void *mean = rand_buf(b, R, b->ssize, 0, 1, 0), *rstd = rand_buf(b, R, b->ssize, 0, 1, 0);
    void *sum2 = backend_alloc(b, "sum", n * e), *out2 = backend_alloc(b, "out", n * e);
    void *mean2 = backend_alloc(b, "mean", R * b->ssize), *rstd2 = backend_alloc(b, "rstd", R * b->ssize);
    b->add_layernorm_fwd(b, sum, out, mean, rstd, x, y, w, bias, R, C, 1e-6);
    b->add(b, sum2, x, y, n);
    b->layernorm_fwd(b, out2, mean2, rstd2, sum2, w, bias, R, C, 1e-6);
    char name[200];
    const char *what[4] = {"sum", "out", "mean", "rstd"};
    void *got[4] = {sum, out, mean, rstd}, *want[4] = {sum2, out2, mean2, rstd2};
    for (int k = 0; k < 4; k++) {
        snprintf(name, sizeof name, "%s add_layernorm_fwd R=%d C=%d %s == add then layernorm_fwd: %s", b->name, R, C,
                 affine ? "affine" : "non-affine", what[k]);
        same_bits(name, got[k], want[k], k < 2 ? n : (size_t)R, k < 2 ? e : b->ssize);
    }
    void *bufs[] = {x, y, w, bias, sum, out, mean, rstd, sum2, out2, mean2, rstd2};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) b->release(b, bufs[i]);
}

int main(void) {
    rng = rng_stream(11, RNG_TEST, 9, 0);
    for (int dp = 0; dp < 2; dp++) {
        Backend *b = backend_cpu_create(dp, 2);
        test_adamw_ema_op(b);
        test_add_layernorm(b, 37, 24, 1);
        test_add_layernorm(b, 64, 40, 0);
        backend_destroy(b);
        test_optim_fold(dp, 0, 0);
        test_optim_fold(dp, 1, 0);
        test_optim_fold(dp, 1, 1);
    }
    TEST_EXIT();
}
