// test_ac.c: the action-conditioned predictor (model_ac.c) in double precision: gradients against central finite
// differences, frame causality (a frame's prediction never depends on later frames), and that actions matter.
#include <math.h>
#include <string.h>

#include "child.h"
#include "common.h"
#include "config.h"
#include "model_ac.h"
#include "rng.h"
#include "test.h"

enum { B = 2, T = 3 };

static void tiny_config(Config *cfg) {
    config_defaults(cfg);
    strcpy(cfg->model.model_name, "vit_custom");
    cfg->model.embed_dim = 8, cfg->model.depth = 1, cfg->model.num_heads = 2;
    cfg->data.crop_size = 32, cfg->data.patch_size = 16, cfg->data.tubelet_size = 2;
    cfg->ac.pred_embed_dim = 8, cfg->ac.pred_depth = 2, cfg->ac.pred_num_heads = 2;
    strcpy(cfg->plan.world, "tworooms");
    cfg->meta.seed = 5;
}

static void fill(Rng *r, float *x, size_t n, double lo, double hi) {
    for (size_t i = 0; i < n; i++) x[i] = (float)rng_uniform_range(r, lo, hi);
}

typedef struct {
    float feats[B * T * 4 * 8], target[B * T * 4 * 8], actions[B * T * 2], states[B * T * 2];
} Inputs;

static void draw_inputs(Inputs *in) {
    Rng r = rng_stream(11, RNG_TEST, 0, 0);
    fill(&r, in->feats, sizeof in->feats / sizeof(float), -2, 2);
    fill(&r, in->target, sizeof in->target / sizeof(float), -2, 2);
    fill(&r, in->actions, sizeof in->actions / sizeof(float), -6, 6);
    fill(&r, in->states, sizeof in->states / sizeof(float), 3, 61);
}

// The tiny predictor on the fp64 CPU backend (no encoder) and its random inputs.
static AcModel *tiny_model(Backend **be, Inputs *in) {
    Config cfg;
    tiny_config(&cfg);
    *be = backend_cpu_create(1, 1);
    draw_inputs(in);
    return ac_create(&cfg, *be, B, T, 0);
}

static void test_gradients(void) {
    Backend *be;
    Inputs in;
    AcModel *m = tiny_model(&be, &in);
    const size_t total = m->pm.table.total;
    be->zero(be, m->pm.grads, total * be->msize);
    ac_forward(m, B, T, in.feats, in.actions, in.states, in.target, NULL, 1, 1.0);
    double *grads = xmalloc(total * sizeof(double)), *params = xmalloc(total * sizeof(double));
    be->download_f64(be, grads, m->pm.grads, be->msize, total);
    be->download_f64(be, params, m->pm.params, be->msize, total);
    // Central differences with h = 1e-6 in double: truncation O(h^2) and rounding O(1e-16 / h) are both far below
    // the 1e-6 relative tolerance, unless an L1 kink (pred == target) lies within h: with random targets it does not.
    const double h = 1e-6;
    double num[64], ana[64];
    int k = 0;
    for (int t = 0; t < m->pm.table.count && k < 64; t++) {
        const TensorSpec *s = &m->pm.table.tensors[t];
        for (size_t e = 0; e < s->numel && e < 2 && k < 64; e++, k++) {
            const size_t i = s->offset + (e * 7919) % s->numel;
            double loss[2];
            for (int side = 0; side < 2; side++) {
                const double saved = params[i];
                params[i] = saved + (side ? -h : h);
                ac_set_params(m, params);
                loss[side] = ac_forward(m, B, T, in.feats, in.actions, in.states, in.target, NULL, 0, 0);
                params[i] = saved;
            }
            num[k] = (loss[0] - loss[1]) / (2 * h);
            ana[k] = grads[i];
        }
    }
    ac_set_params(m, params);
    const double err = rel_norm_error(ana, num, (size_t)k);
    TEST_CHECK("ac_gradients_finite_differences", err < 1e-6 && k >= 40, "relative error %.3g over %d parameters",
               err, k);
    // Every tensor's gradient is non-zero somewhere (each one is wired in).
    int dead = 0;
    for (int t = 0; t < m->pm.table.count; t++) {
        const TensorSpec *s = &m->pm.table.tensors[t];
        double sum = 0;
        for (size_t e = 0; e < s->numel; e++) sum += fabs(grads[s->offset + e]);
        dead += sum == 0;
    }
    TEST_CHECK("ac_every_tensor_gets_gradient", dead == 0, "%d tensors with zero gradient", dead);
    free(grads);
    free(params);
    ac_free(m);
    backend_destroy(be);
}

static void test_causality_and_actions(void) {
    Backend *be;
    Inputs in;
    AcModel *m = tiny_model(&be, &in);
    const size_t per_frame = 4 * 8, n = (size_t)B * T * per_frame;
    float *p0 = xmalloc(n * sizeof(float)), *p1 = xmalloc(n * sizeof(float));
    ac_forward(m, B, T, in.feats, in.actions, in.states, NULL, p0, 0, 0);
    // Change the last frame of each sequence (features, action, state): frames 0 and 1 must not move.
    for (int b = 0; b < B; b++) {
        for (size_t k = 0; k < per_frame; k++) in.feats[((size_t)b * T + T - 1) * per_frame + k] += 1.0f;
        in.actions[(b * T + T - 1) * 2] += 3.0f;
        in.states[(b * T + T - 1) * 2] += 5.0f;
    }
    ac_forward(m, B, T, in.feats, in.actions, in.states, NULL, p1, 0, 0);
    double earlier = 0, last = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (size_t k = 0; k < per_frame; k++) {
                const size_t i = ((size_t)b * T + t) * per_frame + k;
                if (t < T - 1) earlier = fmax(earlier, fabs(p0[i] - p1[i]));
                else last = fmax(last, fabs(p0[i] - p1[i]));
            }
    TEST_CHECK("ac_frame_causal", earlier == 0 && last > 1e-3, "earlier frames moved by %.3g, the last by %.3g",
               earlier, last);
    // The action of frame 0 alone changes the prediction at frame 0.
    ac_forward(m, B, T, in.feats, in.actions, in.states, NULL, p0, 0, 0);
    in.actions[0] += 2.0f;
    ac_forward(m, B, T, in.feats, in.actions, in.states, NULL, p1, 0, 0);
    double moved = 0;
    for (size_t k = 0; k < per_frame; k++) moved = fmax(moved, fabs(p0[k] - p1[k]));
    // At init the action reaches the patch tokens through three matrices of std 0.02 (embedding, attention value,
    // projection), so the change is small (~1e-6); the computation is deterministic, so any change shows the path.
    TEST_CHECK("ac_action_conditions", moved > 1e-9, "frame 0's prediction moved by %.3g", moved);
    free(p0);
    free(p1);
    ac_free(m);
    backend_destroy(be);
}

// plan.energy: 'mean' and 'min' score the frames 1..H that 'last' scores one at a time (the rollout is causal, so
// frame j of a horizon-H rollout is the last frame of the horizon-j rollout over the same first j actions).
static void test_plan_energy_modes(void) {
    Backend *be;
    Inputs in;
    AcModel *m = tiny_model(&be, &in);
    const size_t nd = 4 * 8;
    for (size_t k = 0; k < nd; k++) m->plan_now[k] = in.feats[k], m->plan_goal[k] = in.target[k];
    m->plan_state[0] = 20, m->plan_state[1] = 40;
    enum { S = 2, H = 3 };
    double actions[S * H * 2], prefix[S * H * 2], per_frame[H][S], got[3][S];
    for (int k = 0; k < S * H * 2; k++) actions[k] = in.actions[k % (B * T * 2)];
    for (int j = 1; j <= H; j++) {
        for (int s = 0; s < S; s++) memcpy(prefix + s * j * 2, actions + s * H * 2, (size_t)j * 2 * sizeof(double));
        m->plan_horizon = j;
        ac_plan_energy(m, prefix, S, per_frame[j - 1]);
    }
    const char *modes[3] = {"last", "mean", "min"};
    m->plan_horizon = H;
    for (int k = 0; k < 3; k++) strcpy(m->cfg.plan.energy, modes[k]), ac_plan_energy(m, actions, S, got[k]);
    double worst = 0;
    for (int s = 0; s < S; s++) {
        const double mean = (per_frame[0][s] + per_frame[1][s] + per_frame[2][s]) / 3;
        const double least = fmin(per_frame[0][s], fmin(per_frame[1][s], per_frame[2][s]));
        worst = fmax(worst, fabs(got[0][s] - per_frame[2][s]) + fabs(got[1][s] - mean) + fabs(got[2][s] - least));
    }
    // The same float computations in the same order (one batch either way): equal up to the summation order of the
    // mean, i.e. rounding of a few 1e-16.
    TEST_CHECK("ac_plan_energy_modes", worst < 1e-12 && per_frame[0][0] != per_frame[2][0],
               "modes off their per-frame values by %.3g", worst);
    ac_free(m);
    backend_destroy(be);
}

// A predictor whose weights hold a NaN: ac_plan_energy stops with exit 4 naming it, instead of CEM ranking NaNs.
static void plan_with_nan_weight(const void *arg) {
    (void)arg;
    Backend *be;
    Inputs in;
    AcModel *m = tiny_model(&be, &in);
    const size_t total = m->pm.table.total;
    double *p = xmalloc(total * sizeof(double));
    be->download_f64(be, p, m->pm.params, be->msize, total);
    p[m->pm.table.tensors[m->dims.proj_w].offset] = NAN;
    ac_set_params(m, p);
    m->plan_horizon = 2;
    double actions[2 * 2] = {1, 0, 0, 1}, energy[1];
    ac_plan_energy(m, actions, 1, energy);
}

static void test_plan_energy_nonfinite(void) {
    const ChildResult r = run_in_child(plan_with_nan_weight, NULL);
    TEST_CHECK("ac_plan_energy_nonfinite_exit_4", r.exit_code == JEPA_EXIT_NONFINITE && strstr(r.stderr_text, "not finite"),
               "exit %d, stderr '%s'", r.exit_code, r.stderr_text);
}

int main(void) {
    test_plan_energy_nonfinite();
    test_plan_energy_modes();
    test_gradients();
    test_causality_and_actions();
    TEST_EXIT();
}
