// test_rope_recipe.c: the V-JEPA 2 recipe around RoPE:
//   - LR schedules against the official schedulers' formulas (app/vjepa/utils.py, src/utils/schedulers.py):
//     constant after warmup (= WarmupCosineSchedule with final_lr = lr), WSD, the linear cooldown whose run ends
//     short of final_lr; constant weight decay and EMA momentum;
//   - configs/vjepa2_*.yaml load with the published values;
//   - meta.init_from's weight loading across clip length and resolution (16 -> 64 frames analogue, 256 -> 384 px
//     analogue on a tiny model): parameters and target encoder carried over exactly, moments left at zero, a model
//     of other shapes refused with the differences named.
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "checkpoint.h"
#include "common.h"
#include "config.h"
#include "model.h"
#include "optim.h"
#include "rng.h"
#include "test.h"
#include "tiny_model.h"

// Schedules are closed-form doubles on both sides: equal to a few ulps.
#define SCHED_TOL 1e-15

static void test_schedules(void) {
    Config c;
    config_defaults(&c);
    c.optimization.ipe = 300, c.optimization.ipe_scale = 1.25, c.optimization.epochs = 800, c.optimization.warmup = 40;
    c.optimization.start_lr = 1e-4, c.optimization.lr = 5.25e-4, c.optimization.final_lr = 5.25e-4;
    c.optimization.weight_decay = c.optimization.final_weight_decay = 0.04;
    c.optimization.ema[0] = c.optimization.ema[1] = 0.99925;
    // V-JEPA 2 pretraining as the official file states it: cosine with final_lr = lr. And lr_schedule constant.
    strcpy(c.optimization.lr_schedule, "cosine");
    const Schedule w = schedule_at(&c, 5999), late = schedule_at(&c, 200000);
    const double want_w = 1e-4 + 6000.0 / 12000.0 * (5.25e-4 - 1e-4);  // the scheduler's step counts from 1
    TEST_CHECK("recipe: V-JEPA 2 warmup (iteration 5999)", fabs(w.lr - want_w) < SCHED_TOL, "%.17g vs %.17g", w.lr,
               want_w);
    strcpy(c.optimization.lr_schedule, "constant");
    const Schedule k = schedule_at(&c, 200000);
    TEST_CHECK("recipe: warmup-constant LR (cosine with final_lr = lr and constant agree)",
               late.lr == 5.25e-4 && k.lr == 5.25e-4, "%.17g, %.17g", late.lr, k.lr);
    TEST_CHECK("recipe: constant weight decay and EMA momentum",
               late.weight_decay == 0.04 && fabs(late.ema_momentum - 0.99925) < SCHED_TOL && w.weight_decay == 0.04,
               "wd %.17g, ema %.17g", late.weight_decay, late.ema_momentum);
    // WSD (official WSDSchedule): warmup 40 epochs, stable, linear over the last 100 epochs of T = 300,000 steps.
    strcpy(c.optimization.lr_schedule, "wsd");
    c.optimization.decay_epochs = 100, c.optimization.final_lr = 0;
    const double T = 1.25 * 800 * 300, decay = 100 * 300.0, stable_end = T - decay;
    const long probes[] = {100000, (long)stable_end - 2, (long)stable_end + 14999, (long)T - 1};
    int wsd_ok = 1;
    for (int i = 0; i < 4; i++) {
        const double s = probes[i] + 1.0;  // step counts from 1
        const double want = s < stable_end ? 5.25e-4 : 5.25e-4 + (s - stable_end) / decay * (0 - 5.25e-4);
        if (fabs(schedule_at(&c, probes[i]).lr - want) > SCHED_TOL) wsd_ok = 0;
    }
    TEST_CHECK("recipe: warmup-stable-decay LR (official WSDSchedule)", wsd_ok && schedule_at(&c, (long)T - 1).lr == 0,
               "last %.17g", schedule_at(&c, (long)T - 1).lr);
    // Cooldown (official LinearDecaySchedule, is_anneal): 40 epochs x 300, T = 15,000; the run's last iteration is
    // 11,999, whose LR is 5.25e-4 + 12000/15000 * (1e-6 - 5.25e-4) = 1.058e-4: short of final_lr.
    Config cd;
    config_defaults(&cd);
    cd.optimization.ipe = 300, cd.optimization.ipe_scale = 1.25;
    cd.optimization.epochs = 40, cd.optimization.warmup = 0;
    cd.optimization.lr = 5.25e-4, cd.optimization.final_lr = 1e-6;
    strcpy(cd.optimization.lr_schedule, "linear");
    const double first = schedule_at(&cd, 0).lr, last = schedule_at(&cd, train_total_steps(&cd) - 1).lr;
    const double want_first = 5.25e-4 + 1.0 / 15000 * (1e-6 - 5.25e-4), want_last = 5.25e-4 + 0.8 * (1e-6 - 5.25e-4);
    TEST_CHECK("recipe: linear cooldown from lr, ending short of final_lr (1.058e-4 at the last step)",
               fabs(first - want_first) < SCHED_TOL && fabs(last - want_last) < SCHED_TOL &&
                   train_total_steps(&cd) == 12000,
               "first %.17g (want %.17g), last %.17g (want %.17g), %ld steps", first, want_first, last, want_last,
               train_total_steps(&cd));
}

static void test_configs(void) {
    struct {
        const char *path, *model;
        int frames, crop, batch;
        const char *sched;
    } want[] = {
        {"configs/vjepa2_vitl16.yaml", "vit_large", 16, 256, 24, "constant"},
        {"configs/vjepa2_vitg16.yaml", "vit_giant_xformers", 16, 256, 24, "constant"},
        {"configs/vjepa2_vitl16_cooldown.yaml", "vit_large", 64, 256, 12, "linear"},
        {"configs/vjepa2_vitg16_cooldown.yaml", "vit_giant_xformers", 64, 384, 6, "linear"},
    };
    for (int i = 0; i < 4; i++) {
        Config c;
        config_load(&c, want[i].path, 0, NULL);
        config_validate(&c);
        const int cool = !strcmp(want[i].sched, "linear");
        const int ok = !strcmp(c.model.model_name, want[i].model) && !strcmp(c.model.pos_embed, "rope3d") &&
                       c.data.num_frames == want[i].frames && c.data.crop_size == want[i].crop &&
                       c.data.batch_size == want[i].batch && !strcmp(c.optimization.lr_schedule, want[i].sched) &&
                       c.optimization.lr == 5.25e-4 && c.optimization.weight_decay == 0.04 &&
                       c.optimization.final_weight_decay == 0.04 && c.optimization.ema[0] == 0.99925 &&
                       c.optimization.ema[1] == 0.99925 && c.optimization.clip_grad == 0 &&
                       c.model.pred_num_heads == 12 && c.model.pred_embed_dim == 384 && c.model.pred_depth == 12 &&
                       c.model.shared_mask_token && c.model.checkpoint_activations && c.model.depth_scaled_init &&
                       c.optimization.warmup == (cool ? 0 : 40) && (cool == !!strcmp(c.meta.init_from, "none"));
        char name[160];
        snprintf(name, sizeof name, "recipe: %s has the published values", want[i].path);
        TEST_CHECK(name, ok, "model %s, pos %s, %d frames, %d px, batch %d, %s", c.model.model_name, c.model.pos_embed,
                   c.data.num_frames, c.data.crop_size, c.data.batch_size, c.optimization.lr_schedule);
    }
}

static double *download_flat(Backend *be, const void *buf, size_t n) {
    double *h = xmalloc(n * sizeof(double));
    be->download_f64(be, h, buf, be->msize, n);
    return h;
}

// A tiny RoPE model pretrained at 4 frames of 32 px is checkpointed; a model of 8 frames at 48 px (the cooldown's
// longer clip and larger crop) takes its weights.
static void test_init_from_across_resolution(void) {
    char run[] = "/tmp/jepa_rope_initXXXXXX";
    if (!mkdtemp(run)) die_internal("mkdtemp failed");
    Backend *be = backend_cpu_create(0, 1);
    Config pre;
    tiny_config(&pre, 2);
    strcpy(pre.model.pos_embed, "rope3d");
    Model *m = model_create(&pre, be);
    const size_t total = m->table.total, enc = table_module_numel(&m->table, MODULE_ENCODER);
    // weights that are not the init of the other model: perturbed, and a target that differs from the encoder
    double *p = download_flat(be, m->params, total);
    Rng r = rng_stream(3, RNG_TEST, 0, 0);
    for (size_t i = 0; i < total; i++) p[i] += 0.1 * rng_normal(&r);
    be->upload_f64(be, m->params, be->msize, p, total);
    for (size_t i = 0; i < enc; i++) p[i] *= 0.5;
    be->upload_f64(be, m->target, be->msize, p, enc);
    be->upload_f64(be, m->adam_m, be->msize, p, enc);  // non-zero moments that must not travel
    const TrainPosition pos = {7, 14};
    const Schedule sched = schedule_at(&pre, 6);
    char path[1200];
    checkpoint_save(run, m, &pre, &pos, &sched, path, sizeof path);
    double *want_params = download_flat(be, m->params, total), *want_target = download_flat(be, m->target, enc);

    Config cool;
    tiny_config(&cool, 2);
    strcpy(cool.model.pos_embed, "rope3d");
    cool.data.num_frames = 8, cool.data.crop_size = 48;
    Model *c = model_create(&cool, be);
    ErrorText err;
    const int rc = checkpoint_load_weights(path, c, &err);
    double *got_params = download_flat(be, c->params, total), *got_target = download_flat(be, c->target, enc);
    double *moments = download_flat(be, c->adam_m, total);
    int moments_zero = 1;
    for (size_t i = 0; i < total; i++) moments_zero &= moments[i] == 0;
    TEST_CHECK("recipe: init_from across clip length and crop (4x32 -> 8x48) carries weights and target exactly",
               rc == 0 && c->dims.tokens != m->dims.tokens &&
                   !memcmp(got_params, want_params, total * sizeof(double)) &&
                   !memcmp(got_target, want_target, enc * sizeof(double)) && moments_zero,
               "rc %d (%s), tokens %d vs %d, moments zero %d", rc, rc ? err.text : "", c->dims.tokens, m->dims.tokens,
               moments_zero);
    // a model of another width is refused, naming a tensor
    Config other;
    tiny_config(&other, 2);
    strcpy(other.model.pos_embed, "rope3d");
    other.model.embed_dim = 24;
    Model *o = model_create(&other, be);
    const int rc2 = checkpoint_load_weights(path, o, &err);
    TEST_CHECK("recipe: init_from refuses a model of other shapes, naming the tensor",
               rc2 != 0 && strstr(err.text, "encoder.patch_embed.proj.weight"), "rc %d: %s", rc2, err.text);
    model_free(o), model_free(c), model_free(m);
    free(p), free(want_params), free(want_target), free(got_params), free(got_target), free(moments);
    backend_destroy(be);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", run);
    if (system(cmd) != 0) printf("     (could not remove %s)\n", run);
}

int main(int argc, char **argv) {
    // configs/ are found from the repository root (tests/run.sh runs from there)
    if (access("configs/vjepa2_vitg16.yaml", R_OK) != 0 && chdir("..") != 0) die_internal("chdir failed");
    test_schedules();
    test_configs();
    test_init_from_across_resolution();
    TEST_EXIT();
}
