// test_model.c: the model and recipe: tensor table, position embedding, schedules, a whole training step against
// finite differences in double precision, accumulation equal to a larger batch, recomputation exact, determinism.
#include <math.h>
#include <string.h>

#include "backend.h"
#include "common.h"
#include "config.h"
#include "data.h"
#include "flops.h"
#include "masks.h"
#include "model.h"
#include "optim.h"
#include "rng.h"
#include "model_check.h"
#include "test.h"
#include "tiny_model.h"

// Batch, batch_make, download_all, loss_at, set_param, model_fd_error: tests/model_check.h

// Gradients of the whole step (both generators, predictor, encoder, patch embedding, mask tokens) against central
// differences, over a sample of parameters from every tensor.
static void test_step_gradients(void) {
    Config cfg;
    tiny_config(&cfg, 2);
    Backend *be = backend_cpu_create(1, 1);
    Model *m = model_create(&cfg, be);
    // Mask tokens start at zero and the loss is insensitive to nothing else being special; perturb them off zero
    // (and every weight a little) so no gradient is trivially zero.
    double *p = download_all(m, m->params);
    Rng r = rng_stream(1, RNG_TEST, 0, 0);
    for (size_t i = 0; i < m->table.total; i++) p[i] += 0.05 * rng_normal(&r);
    be->upload_f64(be, m->params, 8, p, m->table.total);
    DataSource *ds = data_open(&cfg);
    Batch b;
    batch_make(&cfg, m, ds, 3, 0, 2, &b);
    model_zero_step(m);
    model_micro_step(m, &b.mb, 1.0, 1);
    // Every tensor: up to 6 entries each.
    size_t checked;
    double gnorm;
    const double err = model_fd_error(m, &b, p, &r, 1e-5, &checked, &gnorm);
    // Central differences at h=1e-5 in double: truncation ~h^2 * f''' ~ 1e-10 relative, rounding ~1e-16/h ~ 1e-11;
    // an L1 kink crossed by a perturbation would show as an outlier far above 1e-6.
    TEST_CHECK("model: whole-step gradient vs finite differences (f64)", err < 1e-6,
               "relative norm error %.3e over %zu parameters", err, checked);
    printf("     (whole step: %zu parameters from %d tensors, relative error %.2e)\n", checked, m->table.count, err);
    TEST_CHECK("model: gradients are not trivially zero", gnorm > 1e-12, "norm^2 %.3e", gnorm);
    free(p);
    batch_free(&cfg, &b);
    data_close(ds);
    model_free(m);
    backend_destroy(be);
}

// Two micro-batches of 2 with gradient scale 1/2 equal one batch of 4.
static void test_accumulation(void) {
    Config cfg;
    tiny_config(&cfg, 4);
    Backend *be = backend_cpu_create(1, 0);
    Model *m = model_create(&cfg, be);
    DataSource *ds = data_open(&cfg);
    Batch whole, half[2];
    batch_make(&cfg, m, ds, 5, 0, 4, &whole);
    model_zero_step(m);
    model_micro_step(m, &whole.mb, 1.0, 1);
    double *g_whole = download_all(m, m->grads);
    const double loss_whole = mean_loss(m);
    model_zero_step(m);
    for (int k = 0; k < 2; k++) {
        batch_make(&cfg, m, ds, 5, 2 * k, 2, &half[k]);
        model_micro_step(m, &half[k].mb, 0.5, 1);
    }
    double *g_acc = download_all(m, m->grads);
    const double loss_acc = mean_loss(m);
    const double err = rel_norm_error(g_acc, g_whole, m->table.total);
    TEST_CHECK("model: 2 accumulated micro-batches == 1 batch of 4 (gradients)", err < 1e-12, "relative error %.3e",
               err);
    TEST_CHECK("model: 2 accumulated micro-batches == 1 batch of 4 (loss)", fabs(loss_acc - loss_whole) < 1e-12,
               "%.17g vs %.17g", loss_acc, loss_whole);
    free(g_whole), free(g_acc);
    batch_free(&cfg, &whole), batch_free(&cfg, &half[0]), batch_free(&cfg, &half[1]);
    data_close(ds);
    model_free(m);
    backend_destroy(be);
}

// Gradients with checkpoint_activations are bitwise those without (same ops, same order).
static void test_recompute(void) {
    double *grads[2];
    size_t total;
    for (int mode = 0; mode < 2; mode++) {
        Config cfg;
        tiny_config(&cfg, 2);
        cfg.model.checkpoint_activations = mode;
        grads[mode] = fresh_step_gradients(&cfg, 1, &total);
    }
    Config cfg;
    tiny_config(&cfg, 2);
    ModelDims d;
    TensorTable t;
    model_dims_from_config(&cfg, &d);
    model_build_table(&d, &t);
    TEST_CHECK("model: recomputed blocks give bitwise the same gradients",
               memcmp(grads[0], grads[1], t.total * sizeof(double)) == 0, "gradients differ");
    table_free(&t);
    free(grads[0]), free(grads[1]);
}

// ViT-L/16: 303,885,312 encoder parameters (patch embedding 1,573,888 + 24 blocks of 12,596,224 + norm 2,048).
static void test_table(void) {
    Config cfg;
    config_defaults(&cfg);
    ModelDims d;
    TensorTable t;
    model_dims_from_config(&cfg, &d);
    model_build_table(&d, &t);
    const size_t enc = table_module_numel(&t, MODULE_ENCODER);
    TEST_CHECK("table: ViT-L/16 encoder parameters", enc == 303885312, "%zu", enc);
    const int qkv = table_find(&t, "encoder.blocks.23.attn.qkv.weight");
    TEST_CHECK("table: official names and shapes", qkv >= 0 && t.tensors[qkv].shape[0] == 3072 &&
                   t.tensors[qkv].shape[1] == 1024, "encoder.blocks.23.attn.qkv.weight missing or misshapen");
    const int mt = table_find(&t, "predictor.mask_tokens.1");
    const int bias = table_find(&t, "predictor.predictor_blocks.0.attn.qkv.bias");
    const int ln = table_find(&t, "encoder.norm.weight");
    TEST_CHECK("table: decay groups (weights decay; biases, 1-D do not; 3-D mask tokens do)",
               t.tensors[qkv].decay && mt >= 0 && t.tensors[mt].decay && !t.tensors[bias].decay &&
                   !t.tensors[ln].decay, "decay flags wrong");
    TEST_CHECK("table: predictor follows the encoder contiguously",
               t.module_begin[MODULE_PREDICTOR] == t.module_end[MODULE_ENCODER] &&
                   t.module_end[MODULE_PREDICTOR] == t.total, "module ranges wrong");
    table_free(&t);
}

// V-JEPA's table for D=1024 (uniform power): three 342-wide axis parts (t, h, w), truncated to 1024.
static void test_sincos(void) {
    const int D = 1024, T = 8, H = 14, W = 14;
    double *table = xmalloc((size_t)T * H * W * D * sizeof(double));
    sincos_3d_table(D, T, H, W, 1, table);
    const int t = 5, h = 3, w = 11, token = (t * H + h) * W + w;
    const double *row = table + (size_t)token * D;
    double worst = 0;
    // time part: columns [0,342): sin then cos of t * 10000^(-i/171)
    for (int i = 0; i < 171; i++) {
        const double omega = pow(10000.0, -i / 171.0);
        worst = fmax(worst, fabs(row[i] - sin(t * omega)));
        worst = fmax(worst, fabs(row[171 + i] - cos(t * omega)));
        worst = fmax(worst, fabs(row[342 + i] - sin(h * omega)));
        if (684 + i < D) worst = fmax(worst, fabs(row[684 + i] - sin(w * omega)));
    }
    // the width part's cosines start at 684 + 171 = 855 and are truncated at 1024
    worst = fmax(worst, fabs(row[1023] - cos(w * pow(10000.0, -(1023 - 855) / 171.0))));
    TEST_CHECK("position embedding: 3D sincos layout (uniform power, truncated)", worst < 1e-12, "max error %.3e",
               worst);
    free(table);
}

static void test_schedules(void) {
    Config cfg;
    config_defaults(&cfg);  // vitl16: ipe 300, warmup 40, epochs 300, ipe_scale 1.25
    const double warm = 40 * 300.0, T = 1.25 * 300 * 300;
    Schedule s0 = schedule_at(&cfg, 0);
    TEST_CHECK("schedule: first LR is one warmup step above start_lr",
               fabs(s0.lr - (2e-4 + (6.25e-4 - 2e-4) / warm)) < 1e-15, "%.17g", s0.lr);
    Schedule sw = schedule_at(&cfg, (long)warm - 1);  // scheduler value warm: cosine at progress 0
    TEST_CHECK("schedule: LR peaks at the end of warmup", fabs(sw.lr - 6.25e-4) < 1e-15, "%.17g", sw.lr);
    const long mid = (long)(warm + (T - warm) / 2) - 1;
    Schedule sm = schedule_at(&cfg, mid);
    const double expect_mid = 1e-6 + (6.25e-4 - 1e-6) * 0.5;
    TEST_CHECK("schedule: cosine LR at half the decay", fabs(sm.lr - expect_mid) < 1e-12, "%.17g vs %.17g", sm.lr,
               expect_mid);
    Schedule se = schedule_at(&cfg, 300L * 300 - 1);  // last trained step: ipe_scale keeps LR above final
    const double prog = (300.0 * 300 - warm) / (T - warm);
    const double expect_end = 1e-6 + (6.25e-4 - 1e-6) * 0.5 * (1 + cos(M_PI * prog));
    TEST_CHECK("schedule: ipe_scale stretch at the last step", fabs(se.lr - expect_end) < 1e-15, "%.17g vs %.17g",
               se.lr, expect_end);
    const double wd_mid = 0.4 + (0.04 - 0.4) * 0.5 * (1 + cos(M_PI * (mid + 1) / T));
    TEST_CHECK("schedule: cosine weight decay", fabs(sm.weight_decay - wd_mid) < 1e-15, "%.17g", sm.weight_decay);
    TEST_CHECK("schedule: EMA momentum linear from 0.998", fabs(s0.ema_momentum - 0.998) < 1e-15 &&
                   fabs(se.ema_momentum - (0.998 + (300.0 * 300 - 1) * 0.002 / T)) < 1e-15,
               "%.17g %.17g", s0.ema_momentum, se.ema_momentum);
    const Schedule c40 = schedule_at(&cfg, 40L * 300 + 299), c41 = schedule_at(&cfg, 41L * 300);
    TEST_CHECK("schedule: clipping only after the warmup epochs (epoch > warmup)", !c40.clip && c41.clip,
               "epoch 40 clip %d, epoch 41 clip %d", c40.clip, c41.clip);
}

// One optimizer step on a model: AdamW moves parameters, the target follows by EMA, frozen copy otherwise.
static void test_optimizer_step(void) {
    Config cfg;
    tiny_config(&cfg, 2);
    Backend *be = backend_cpu_create(1, 1);
    Model *m = model_create(&cfg, be);
    DataSource *ds = data_open(&cfg);
    Batch b;
    batch_make(&cfg, m, ds, 0, 0, 2, &b);
    double *p0 = download_all(m, m->params);
    model_zero_step(m);
    model_micro_step(m, &b.mb, 1.0, 1);
    double *g = download_all(m, m->grads);
    Schedule s = schedule_at(&cfg, 0);
    optim_step(m, &cfg, &s, 1);
    StepStats os;
    model_read_stats(m, &os);
    double *p1 = download_all(m, m->params);
    const size_t enc = table_module_numel(&m->table, MODULE_ENCODER);
    double *tgt = xmalloc(enc * sizeof(double));
    be->download_f64(be, tgt, m->target, 8, enc);
    // First AdamW step: p1 = p0 (1 - lr wd) - lr * sign-like g / (|g| + eps') ; check one decayed weight exactly.
    const int qkv = table_find(&m->table, "encoder.blocks.0.attn.qkv.weight");
    const size_t i = m->table.tensors[qkv].offset + 3;
    const double mh = g[i], vh = g[i] * g[i];
    const double expect = p0[i] * (1 - s.lr * s.weight_decay) - s.lr * mh / (sqrt(vh) + 1e-8);
    TEST_CHECK("optimizer: first AdamW step matches the formula", fabs(p1[i] - expect) < 1e-15, "%.17g vs %.17g",
               p1[i], expect);
    const double expect_t = s.ema_momentum * p0[i] + (1 - s.ema_momentum) * p1[i];
    TEST_CHECK("optimizer: target = EMA of the encoder after the step", fabs(tgt[i] - expect_t) < 1e-15,
               "%.17g vs %.17g", tgt[i], expect_t);
    double gn = 0;
    for (size_t k = 0; k < enc; k++) gn += g[k] * g[k];
    TEST_CHECK("optimizer: encoder gradient norm reported", fabs(os.grad_norm[MODULE_ENCODER] - sqrt(gn)) < 1e-12,
               "%.17g vs %.17g", os.grad_norm[MODULE_ENCODER], sqrt(gn));
    free(p0), free(p1), free(g), free(tgt);
    batch_free(&cfg, &b);
    data_close(ds);
    model_free(m);
    backend_destroy(be);
}

// FLOPs of the official ViT-L/16 step (batch 24, the official generator's mean lengths at batch 24), counted here
// per token and layer (24 C^2 GEMM FLOPs: qkv 6, proj 2, MLP 16) independently of flops.c's per-GEMM sums.
static void test_flops(void) {
    Config cfg;
    config_defaults(&cfg);
    ModelDims d;
    TensorTable t;
    model_dims_from_config(&cfg, &d);
    model_build_table(&d, &t);
    const int ctx[2] = {362, 106}, tgt[2] = {753, 1104};
    const StepFlops f = flops_micro_batch(&d, 24, ctx, tgt);
    const double B = 24, N = 1568, C = 1024, P = 384, L = 24, Lp = 12, hd = 64, hdp = 24, H = 16;
    const double patch = 2 * B * N * 1536 * C;
    double want = patch + B * N * 24 * C * C * L + L * 4 * B * H * N * N * hd;  // target forward
    want += 2 * patch;                                                           // patch embedding fwd + weight grad
    for (int g = 0; g < 2; g++) {
        const double nc = ctx[g], nt = tgt[g], np = nc + nt;
        want += 3 * B * nc * 24 * C * C * L + 3.5 * L * 4 * B * H * nc * nc * hd;            // context encoder
        want += 3 * (B * np * 24 * P * P * Lp + 2 * B * nc * C * P + 2 * B * nt * P * C);  // predictor GEMMs
        want += 3.5 * Lp * 4 * B * H * np * np * hdp;                                       // predictor attention
    }
    TEST_CHECK("flops: ViT-L/16 step by the DESIGN rule", fabs(f.total - want) / want < 1e-12,
               "%.6e vs %.6e", f.total, want);
    printf("     (ViT-L/16, batch 24, official mean mask lengths: %.2f TFLOP per step)\n", f.total / 1e12);
    table_free(&t);
}

int main(void) {
    test_flops();
    test_table();
    test_sincos();
    test_schedules();
    test_step_gradients();
    test_accumulation();
    test_recompute();
    test_optimizer_step();
    TEST_EXIT();
}
