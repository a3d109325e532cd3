// test_cuda_ac.c: the action-conditioned predictor (model_ac.c, model.kind ac) on the CUDA backend against the
// cpu-f32 backend, both from the same bf16-exact parameters and inputs (and the GPU's bf16 position rows), so that
// the GPU's bf16 activations are the only difference left:
//   working weights: bf16 of the fp32 master after ac_set_params and after every AdamW step (the refresh);
//   one forward: loss and predictions; one backward: gradients, bitwise reproducible on the GPU;
//   training steps (ac_train_grads + ac_adamw, what `jepa train` runs): per-step losses, parameters at the end;
//   plan energies (ac_plan_energy, what `jepa plan` ranks): finite and equal to the CPU's;
//   the predictor file both ways (ac_save on one backend, ac_load on the other): master weights bitwise equal.
// Without a usable GPU every group prints one SKIP line with the reason. JEPA_TEST_AC_CPU_PAIR=1 runs the same
// checks with a second cpu-f32 backend in the GPU's place (the harness itself, on a machine without a GPU).
//
// Tolerances (relative norm errors ||cuda - cpu|| / ||cpu||; tests/test_cuda_backend.c has the same reasoning):
//   loss, predictions, plan energies: smooth functions of activations rounded to bf16 (2^-9 relative) a few dozen
//     times along the way: 1e-2.
//   gradients: with the output bias moved +-5 off every target, so that no L1 sign can flip under bf16 noise: 3e-2
//     over the whole predictor, 1e-1 per tensor (small tensors such as LayerNorm biases sum cancelling terms).
//   training steps: AdamW moves each parameter by about lr per step, the opposite way on the two backends only where
//     a gradient is within bf16 noise of zero, where the loss hardly depends on it: losses within 2e-2 of each
//     other at every step, parameters within 2.5 lr per step.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "backend_cuda.h"
#include "common.h"
#include "config.h"
#include "model_ac.h"
#include "rng.h"
#include "test.h"

enum { CPU = 0, GPU = 1, NB = 4, STEPS = 5 };
static Backend *side[2];
static const double LR = 1e-3;

static void tiny_config(Config *cfg) {
    config_defaults(cfg);
    strcpy(cfg->model.model_name, "vit_custom");
    cfg->model.embed_dim = 16, cfg->model.depth = 1, cfg->model.num_heads = 2;  // D = 16 features per token
    cfg->data.crop_size = 32, cfg->data.patch_size = 16, cfg->data.tubelet_size = 2;  // n = 4 tokens per frame
    // head dim 16: the CUDA attention kernels take multiples of 8
    cfg->ac.pred_embed_dim = 32, cfg->ac.pred_depth = 2, cfg->ac.pred_num_heads = 2;
    cfg->ac.frames = 4, cfg->ac.rollout_steps = 2, cfg->ac.state_token = 1;  // windows of T = 3 steps, state token
    strcpy(cfg->plan.world, "tworooms");
    cfg->meta.seed = 3;
}

static double bf16_round(double x) { return bf16_to_double(bf16_from_double(x)); }

// n values uniform in [lo, hi), rounded to bf16 so that both backends see the same numbers.
static void fill(Rng *r, float *x, size_t n, double lo, double hi) {
    for (size_t i = 0; i < n; i++) x[i] = (float)bf16_round(rng_uniform_range(r, lo, hi));
}

// Both models' sizes: per window T steps of n tokens of D features, A action and S state components.
typedef struct {
    int T, n, D, A, S;
    size_t feats, acts, states;  // floats in one batch: B*T*n*D, B*T*A, B*T*S
} Sizes;

static Sizes sizes_of(const AcModel *m) {
    const AcDims *d = &m->dims;
    Sizes z = {m->cfg.ac.frames - 1, d->tokens, d->feat_dim, d->action_dim, d->state_dim, 0, 0, 0};
    z.feats = (size_t)NB * z.T * z.n * z.D, z.acts = (size_t)NB * z.T * z.A, z.states = (size_t)NB * z.T * z.S;
    return z;
}

// A batch of random windows (features ~ the encoder's normalised ones, tworooms actions and states in world units).
static AcBatch batch_new(const Sizes *z, uint64_t seed) {
    AcBatch b = {xmalloc(z->feats * sizeof(float)), xmalloc(z->feats * sizeof(float)),
                 xmalloc(z->acts * sizeof(float)), xmalloc(z->states * sizeof(float)), xmalloc(z->feats * sizeof(float))};
    Rng r = rng_stream(seed, RNG_TEST, 0, 0);
    fill(&r, b.in, z->feats, -2, 2);
    fill(&r, b.tgt, z->feats, -2, 2);
    fill(&r, b.act, z->acts, -6, 6);
    fill(&r, b.st, z->states, 3, 61);
    return b;
}

static void batch_free(AcBatch *b) { free(b->in), free(b->tgt), free(b->act), free(b->st), free(b->pred); }

// The model's buffer of n elements of elem bytes, as doubles (free them).
static double *get(const AcModel *m, const void *buf, size_t elem, size_t n) {
    double *h = xmalloc(n * sizeof(double));
    m->be->download_f64(m->be, h, buf, elem, n);
    return h;
}
static double *master(const AcModel *m) { return get(m, m->pm.params, m->be->msize, m->pm.table.total); }

// How many working weights differ from the master weights rounded to the working type (bf16 on CUDA).
static size_t stale_working(const AcModel *m) {
    const size_t total = m->pm.table.total;
    double *p = master(m), *w = get(m, m->pm.work, m->be->esize, total);
    size_t wrong = 0;
    for (size_t i = 0; i < total; i++) wrong += w[i] != (m->be->esize == 2 ? bf16_round(p[i]) : p[i]);
    free(p), free(w);
    return wrong;
}

// Both models from the table's init perturbed off it (no gradient trivially zero), rounded to bf16; bias_offset:
// the output projection's bias at +-5 (predictions far from every target in [-2, 2]). The GPU's bf16 position rows
// go to the CPU too.
static void same_start(AcModel *m[2], int bias_offset) {
    const size_t total = m[CPU]->pm.table.total;
    double *p = xmalloc(total * sizeof(double));
    table_init_values(&m[CPU]->pm.table, (uint64_t)m[CPU]->cfg.meta.seed, p);
    Rng r = rng_stream(17, RNG_TEST, 0, 0);
    for (size_t i = 0; i < total; i++) p[i] = bf16_round(p[i] + 0.05 * rng_normal(&r));
    if (bias_offset) {
        const TensorSpec *b = &m[CPU]->pm.table.tensors[m[CPU]->dims.proj_w + 1];
        for (size_t j = 0; j < b->numel; j++) p[b->offset + j] = j % 2 ? -5.0 : 5.0;
    }
    for (int s = 0; s < 2; s++) ac_set_params(m[s], p);
    free(p);
    const size_t rows = (size_t)m[GPU]->max_frames * m[GPU]->dims.frame_tokens * m[GPU]->dims.width;
    double *pos = get(m[GPU], m[GPU]->pos, side[GPU]->esize, rows);
    side[CPU]->upload_f64(side[CPU], m[CPU]->pos, side[CPU]->esize, pos, rows);
    free(pos);
}

static double rel_error_f(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]), den += (double)b[i] * b[i];
    return sqrt(num) / fmax(sqrt(den), 1e-300);
}

static void test_forward_backward(AcModel *m[2], const Sizes *z) {
    AcBatch b = batch_new(z, 1);
    float *pred[2] = {xmalloc(z->feats * sizeof(float)), xmalloc(z->feats * sizeof(float))};
    double loss[2];
    same_start(m, 0);
    TEST_CHECK("cuda ac: working weights = bf16 of the master after ac_set_params", stale_working(m[GPU]) == 0,
               "%zu of %zu differ", stale_working(m[GPU]), m[GPU]->pm.table.total);
    for (int s = 0; s < 2; s++) loss[s] = ac_forward(m[s], NB, z->T, b.in, b.act, b.st, b.tgt, pred[s], 0, 0);
    TEST_CHECK("cuda ac: forward loss, cuda vs cpu (relative error < 1e-2)",
               fabs(loss[GPU] - loss[CPU]) < 1e-2 * fabs(loss[CPU]), "cuda %.6f cpu %.6f", loss[GPU], loss[CPU]);
    const double perr = rel_error_f(pred[GPU], pred[CPU], z->feats);
    TEST_CHECK("cuda ac: predictions, cuda vs cpu (relative error < 1e-2)", perr < 1e-2, "relative error %.3e", perr);
    printf("     (loss cuda %.6f cpu %.6f; predictions relative error %.2e)\n", loss[GPU], loss[CPU], perr);
    // gradients with fixed L1 signs
    same_start(m, 1);
    const size_t total = m[CPU]->pm.table.total;
    for (int s = 0; s < 2; s++) {
        side[s]->zero(side[s], m[s]->pm.grads, total * side[s]->msize);
        ac_forward(m[s], NB, z->T, b.in, b.act, b.st, b.tgt, NULL, 1, 1.0);
    }
    double *gc = get(m[CPU], m[CPU]->pm.grads, side[CPU]->msize, total);
    double *gg = get(m[GPU], m[GPU]->pm.grads, side[GPU]->msize, total);
    const TensorTable *t = &m[CPU]->pm.table;
    int worst = 0;
    double worst_err = 0;
    for (int i = 0; i < t->count; i++) {
        const double e = rel_norm_error(gg + t->tensors[i].offset, gc + t->tensors[i].offset, t->tensors[i].numel);
        if (!(e <= worst_err)) worst_err = e, worst = i;
    }
    const double gerr = rel_norm_error(gg, gc, total);
    TEST_CHECK("cuda ac: predictor gradients, cuda vs cpu (relative error < 3e-2)", gerr < 3e-2, "relative error %.3e",
               gerr);
    TEST_CHECK("cuda ac: every tensor's gradient, cuda vs cpu (relative error < 1e-1)", worst_err < 1e-1,
               "worst %s: relative error %.3e", t->tensors[worst].name, worst_err);
    printf("     (gradients relative error %.2e; worst tensor %s %.2e)\n", gerr, t->tensors[worst].name, worst_err);
    // the same backward again: the same bits (meta.deterministic)
    side[GPU]->zero(side[GPU], m[GPU]->pm.grads, total * side[GPU]->msize);
    ac_forward(m[GPU], NB, z->T, b.in, b.act, b.st, b.tgt, NULL, 1, 1.0);
    double *gg2 = get(m[GPU], m[GPU]->pm.grads, side[GPU]->msize, total);
    TEST_CHECK("cuda ac: the same backward twice gives bitwise equal gradients", !memcmp(gg, gg2, total * sizeof(double)),
               "gradients differ");
    free(gc), free(gg), free(gg2), free(pred[0]), free(pred[1]);
    batch_free(&b);
}

// STEPS optimizer steps of `jepa train`'s loop, on the same batch each step (so that the loss must fall), on both.
static void test_training_steps(AcModel *m[2], const Sizes *z) {
    same_start(m, 0);
    double tf[2][STEPS], roll[2][STEPS];
    size_t stale = 0;
    for (int s = 0; s < 2; s++)
        for (int k = 0; k < STEPS; k++) {
            AcBatch b = batch_new(z, 100);  // the same windows each step (the rollout overwrites b.in)
            ac_train_grads(m[s], &b, NB, &tf[s][k], &roll[s][k]);
            ac_adamw(m[s], LR, k + 1);
            if (s == GPU) stale += stale_working(m[s]);
            batch_free(&b);
        }
    double worst = 0;
    int at = 0;
    for (int k = 0; k < STEPS; k++) {
        const double e = fmax(fabs(tf[GPU][k] - tf[CPU][k]) / tf[CPU][k], fabs(roll[GPU][k] - roll[CPU][k]) / roll[CPU][k]);
        if (!(e <= worst)) worst = e, at = k;
    }
    char label[160];
    snprintf(label, sizeof label, "cuda ac: %d training steps, teacher-forcing and rollout losses, cuda vs cpu "
             "(relative error < 2e-2)", STEPS);
    TEST_CHECK(label, worst < 2e-2, "step %d: teacher forcing cuda %.6f cpu %.6f, rollout cuda %.6f cpu %.6f", at + 1,
               tf[GPU][at], tf[CPU][at], roll[GPU][at], roll[CPU][at]);
    printf("     (step 1: tf cuda %.6f cpu %.6f, rollout cuda %.6f cpu %.6f; step %d: tf cuda %.6f cpu %.6f; worst "
           "relative error %.2e)\n", tf[GPU][0], tf[CPU][0], roll[GPU][0], roll[CPU][0], STEPS, tf[GPU][STEPS - 1],
           tf[CPU][STEPS - 1], worst);
    const int fell = tf[GPU][STEPS - 1] < tf[GPU][0] && tf[CPU][STEPS - 1] < tf[CPU][0];
    TEST_CHECK("cuda ac: the loss falls over the steps on both backends", fell, "cuda %.6f -> %.6f, cpu %.6f -> %.6f",
               tf[GPU][0], tf[GPU][STEPS - 1], tf[CPU][0], tf[CPU][STEPS - 1]);
    TEST_CHECK("cuda ac: working weights = bf16 of the master after every AdamW step", stale == 0,
               "%zu stale values over the steps", stale);
    const size_t total = m[CPU]->pm.table.total;
    double *pc = master(m[CPU]), *pg = master(m[GPU]), dmax = 0;
    size_t i_max = 0;
    for (size_t i = 0; i < total; i++)
        if (fabs(pg[i] - pc[i]) > dmax) dmax = fabs(pg[i] - pc[i]), i_max = i;
    TEST_CHECK("cuda ac: parameters after the steps, cuda vs cpu (within 2.5 lr per step)",
               dmax <= 2.5 * LR * STEPS + 1e-6, "parameter %zu: cuda %.9g cpu %.9g", i_max, pg[i_max], pc[i_max]);
    free(pc), free(pg);
}

// Plan energies of S random action sequences from the same current and goal features, in two max_batch chunks.
static void test_plan_energy(AcModel *m[2], const Sizes *z) {
    enum { S = 2 * NB, H = 3 };
    Rng r = rng_stream(23, RNG_TEST, 0, 0);
    const size_t nd = (size_t)z->n * z->D;
    float *now = xmalloc(nd * sizeof(float)), *goal = xmalloc(nd * sizeof(float));
    fill(&r, now, nd, -2, 2);
    fill(&r, goal, nd, -2, 2);
    double actions[S * H * 2], energy[2][S];
    for (int k = 0; k < S * H * 2; k++) actions[k] = bf16_round(rng_uniform_range(&r, -6, 6));
    for (int s = 0; s < 2; s++) {
        memcpy(m[s]->plan_now, now, nd * sizeof(float));
        memcpy(m[s]->plan_goal, goal, nd * sizeof(float));
        m[s]->plan_state[0] = 20, m[s]->plan_state[1] = 40;
        m[s]->plan_horizon = H;
        ac_plan_energy(m[s], actions, S, energy[s]);
    }
    int finite = 1;
    for (int k = 0; k < S; k++) finite &= isfinite(energy[GPU][k]);
    const double err = rel_norm_error(energy[GPU], energy[CPU], S);
    TEST_CHECK("cuda ac: plan energies finite and equal to the cpu's (relative error < 1e-2)", finite && err < 1e-2,
               "relative error %.3e; first energy cuda %.6f cpu %.6f", err, energy[GPU][0], energy[CPU][0]);
    printf("     (energies relative error %.2e; first cuda %.6f cpu %.6f)\n", err, energy[GPU][0], energy[CPU][0]);
    free(now), free(goal);
}

// The predictor file written on one backend and read on the other: the same fp32 master weights, bf16 working ones.
static void test_checkpoint_both_ways(AcModel *m[2], const Config *cfg) {
    char path[64];
    snprintf(path, sizeof path, "/tmp/test_cuda_ac_%d.safetensors", (int)getpid());
    const size_t total = m[CPU]->pm.table.total;
    for (int from = 0; from < 2; from++) {
        const int to = 1 - from;
        AcModel *fresh = ac_create(cfg, side[to], NB, cfg->ac.frames - 1, 0);
        ac_save(m[from], path);
        ac_load(fresh, path);
        double *a = master(m[from]), *b = master(fresh);
        const int same = !memcmp(a, b, total * sizeof(double));
        char label[160];
        snprintf(label, sizeof label, "cuda ac: a predictor saved on %s loads on %s with the same master weights and "
                 "fresh working ones", side[from]->name, side[to]->name);
        TEST_CHECK(label, same && stale_working(fresh) == 0, "master %s, %zu stale working values",
                   same ? "equal" : "differs", stale_working(fresh));
        free(a), free(b);
        ac_free(fresh);
    }
    unlink(path);
}

int main(void) {
    char why[256] = "";
    const int cpu_pair = getenv("JEPA_TEST_AC_CPU_PAIR") != NULL;
    if (!cpu_pair && cuda_device_count(why, sizeof why) == 0) {
        const char *groups[] = {"cuda ac: forward and backward vs cpu", "cuda ac: training steps vs cpu",
                                "cuda ac: plan energies vs cpu", "cuda ac: predictor file across backends"};
        for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++) TEST_SKIP(groups[i], why);
        TEST_EXIT();
    }
    const double t0 = now_seconds();
    side[CPU] = backend_cpu_create(0, 2);
    side[GPU] = cpu_pair ? backend_cpu_create(0, 1) : backend_cuda_create(0, 1);
    Config cfg;
    tiny_config(&cfg);
    AcModel *m[2];
    for (int s = 0; s < 2; s++) m[s] = ac_create(&cfg, side[s], NB, cfg.ac.frames - 1, 0);
    const Sizes z = sizes_of(m[CPU]);
    test_forward_backward(m, &z);
    test_training_steps(m, &z);
    test_plan_energy(m, &z);
    test_checkpoint_both_ways(m, &cfg);
    for (int s = 0; s < 2; s++) ac_free(m[s]), backend_destroy(side[s]);
    printf("test_cuda_ac: %.1f s\n", now_seconds() - t0);
    TEST_EXIT();
}
