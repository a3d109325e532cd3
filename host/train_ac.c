// train_ac.c: `jepa train` with model.kind ac (model_ac.h): the stores' frames are encoded once by the frozen
// encoder, then the predictor trains on random windows of ac.frames frames with AdamW (warmup, cosine), teacher
// forcing plus ac.rollout_steps passes fed its own predictions. Writes RUN/predictor.safetensors, RUN/config.yaml
// and RUN/metrics.jsonl. The backend is meta.device's (train_backend, as `jepa train` of the main model); the frozen
// encoder runs on it too.
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "model_ac.h"
#include "optim.h"
#include "rng.h"
#include "store.h"
#include "train.h"

// Every clip of the stores, encoded: feats [clips, T, n*D], actions [clips, T, A], states [clips, T, S].
typedef struct {
    int64_t clips;
    int frames;
    float *feats, *actions, *states;
} AcData;

static void load_store(AcModel *m, const char *path, AcData *d) {
    const AcDims *dm = &m->dims;
    Store *s = store_open(path, m->cfg.ac.frames, "ac.frames");
    const int side = m->encoder->dims.crop;
    if (s->shape.height != side || s->shape.width != side)
        die_input("%s: frames are %dx%d; data.crop_size is %d (the encoder's)", path, s->shape.height, s->shape.width,
                  side);
    if (s->extras.action_dim != dm->action_dim || s->extras.state_dim < dm->state_dim)
        die_input("%s: /actions has %d columns and /states %d; plan.world %s needs %d and %d ---> HINT: jepa data "
                  "synth --world %s", path, s->extras.action_dim, s->extras.state_dim, m->cfg.plan.world,
                  dm->action_dim, dm->state_dim, m->cfg.plan.world);
    if (d->clips && s->shape.frames != d->frames)
        die_input("%s: %d frames per clip; the first store has %d", path, s->shape.frames, d->frames);
    const int T = d->frames = s->shape.frames;
    const int64_t N = s->shape.clips, first = d->clips;
    const size_t nd = (size_t)dm->tokens * dm->feat_dim, S = (size_t)s->extras.state_dim;
    d->feats = xrealloc(d->feats, (size_t)(first + N) * T * nd * sizeof(float));
    d->actions = xrealloc(d->actions, (size_t)(first + N) * T * dm->action_dim * sizeof(float));
    d->states = xrealloc(d->states, (size_t)(first + N) * T * dm->state_dim * sizeof(float) + 1);
    store_read_side_floats(s->file, "actions", 0, N, d->actions + (size_t)first * T * dm->action_dim);
    float *states = xmalloc((size_t)N * T * S * sizeof(float));
    store_read_side_floats(s->file, "states", 0, N, states);
    for (int64_t i = 0; i < N * T; i++)
        for (int k = 0; k < dm->state_dim; k++) d->states[(size_t)(first * T + i) * dm->state_dim + k] = states[i * S + k];
    free(states);
    StoreReader reader;
    store_reader_init(&reader);
    const double t0 = now_seconds();
    for (int64_t i = 0; i < N; i++) {
        const uint8_t *rgb = store_read_frames(s, &reader, i, 0, T);
        ac_encode(m, rgb, T, d->feats + (size_t)(first + i) * T * nd);
    }
    store_reader_free(&reader);
    printf("%s: %lld clips of %d frames encoded in %.1f s\n", path, (long long)N, T, now_seconds() - t0);
    d->clips += N;
    store_close(s);
}

// Learning rate at step: linear warmup from start_lr, then cosine to final_lr (optimization.*, in steps).
static double lr_at(const Config *c, long step, long total) {
    const long warm = (long)c->optimization.warmup * c->optimization.ipe;
    if (step < warm) return c->optimization.start_lr + (c->optimization.lr - c->optimization.start_lr) * step / warm;
    const double p = total > warm ? (double)(step - warm) / (total - warm) : 1.0;
    return c->optimization.final_lr + 0.5 * (c->optimization.lr - c->optimization.final_lr) * (1 + cos(M_PI * p));
}

// One window per sample: (clip, start) from rng_stream(seed, RNG_AUG, step, b); inputs are frames start..+Tc-2,
// targets start+1..+Tc-1.
static void draw_batch(const AcModel *m, const AcData *d, long step, int B, AcBatch *b) {
    const AcDims *dm = &m->dims;
    const int Tc = m->cfg.ac.frames, T = Tc - 1, A = dm->action_dim, S = dm->state_dim;
    const size_t nd = (size_t)dm->tokens * dm->feat_dim;
    for (int i = 0; i < B; i++) {
        Rng r = rng_stream((uint64_t)m->cfg.meta.seed, RNG_AUG, (uint64_t)step, (uint64_t)i);
        const int64_t clip = rng_randint(&r, 0, d->clips);
        const int start = (int)rng_randint(&r, 0, d->frames - Tc + 1);
        const size_t f0 = (size_t)clip * d->frames + start;
        memcpy(b->in + (size_t)i * T * nd, d->feats + f0 * nd, (size_t)T * nd * sizeof(float));
        memcpy(b->tgt + (size_t)i * T * nd, d->feats + (f0 + 1) * nd, (size_t)T * nd * sizeof(float));
        memcpy(b->act + (size_t)i * T * A, d->actions + f0 * A, (size_t)T * A * sizeof(float));
        if (S) memcpy(b->st + (size_t)i * T * S, d->states + f0 * S, (size_t)T * S * sizeof(float));
    }
}

void ac_adamw(AcModel *m, double lr, long step) {
    const Schedule s = {.lr = lr, .weight_decay = m->cfg.optimization.weight_decay};
    optim_adamw_groups(&m->pm, &m->cfg, &s, step, NULL);
}

// Teacher forcing, then each rollout pass fed the previous pass's predictions (frame 0 stays the real one).
void ac_train_grads(AcModel *m, AcBatch *b, int B, double *loss_tf, double *loss_roll) {
    const AcDims *dm = &m->dims;
    const int T = m->cfg.ac.frames - 1, k = m->cfg.ac.rollout_steps;
    const size_t nd = (size_t)dm->tokens * dm->feat_dim;
    m->be->zero(m->be, m->pm.grads, m->pm.table.total * m->be->msize);
    const double w_tf = k ? 0.5 : 1.0;
    *loss_tf = ac_forward(m, B, T, b->in, b->act, b->st, b->tgt, b->pred, 1, w_tf);
    *loss_roll = 0;
    for (int r = 0; r < k && T > 1; r++) {
        for (int i = 0; i < B; i++)  // shift: input frame t >= 1 is the prediction made at frame t - 1
            memcpy(b->in + ((size_t)i * T + 1) * nd, b->pred + (size_t)i * T * nd, (size_t)(T - 1) * nd * sizeof(float));
        *loss_roll += ac_forward(m, B, T, b->in, b->act, b->st, b->tgt, b->pred, 1, 0.5 / k) / k;
    }
}

static void make_dir(const char *path) {
    if (mkdir(path, 0755) != 0 && errno != EEXIST) die_input("%s: cannot create the folder: %s", path, strerror(errno));
}

int ac_train(const Config *cfg, const char *command) {
    if (cfg->data.datasets.count == 0)
        die_input("data.datasets: model.kind ac trains from stores with /actions ---> HINT: jepa data synth --world %s",
                  cfg->plan.world);
    setvbuf(stdout, NULL, _IOLBF, 0);  // progress lines reach a log file as they happen
    char device[512];
    Backend *be = train_backend(cfg, device, sizeof device);
    printf("device: %s\n", device);
    const int B = cfg->data.batch_size, T = cfg->ac.frames - 1;
    AcModel *m = ac_create(cfg, be, B, T, 1);
    AcData data = {0};
    for (int i = 0; i < cfg->data.datasets.count; i++) load_store(m, cfg->data.datasets.item[i], &data);
    char run[CONFIG_STR + 80], path[CONFIG_STR + 160];
    make_dir(cfg->logging.folder);
    snprintf(run, sizeof run, "%s/%s", cfg->logging.folder, cfg->logging.write_tag);
    make_dir(run);
    snprintf(path, sizeof path, "%s/config.yaml", run);
    FILE *f = fopen(path, "w");
    if (!f) die_input("%s: cannot write: %s", path, strerror(errno));
    config_write_yaml(cfg, f);
    fclose(f);
    snprintf(path, sizeof path, "%s/metrics.jsonl", run);
    FILE *metrics = fopen(path, "w");
    if (!metrics) die_input("%s: cannot write: %s", path, strerror(errno));
    const size_t nd = (size_t)m->dims.tokens * m->dims.feat_dim, bt = (size_t)B * T;
    AcBatch b = {xmalloc(bt * nd * sizeof(float)), xmalloc(bt * nd * sizeof(float)),
               xmalloc(bt * m->dims.action_dim * sizeof(float)), xmalloc(bt * m->dims.state_dim * sizeof(float) + 1),
               xmalloc(bt * nd * sizeof(float))};
    const long total = cfg->optimization.max_steps ? cfg->optimization.max_steps
                                                   : (long)cfg->optimization.epochs * cfg->optimization.ipe;
    printf("ac predictor: %zu parameters | %lld clips | %ld steps of %d windows of %d frames | %s\n",
           m->pm.table.total, (long long)data.clips, total, B, cfg->ac.frames, command);
    const double t0 = now_seconds();
    double tf = 0, roll = 0;
    for (long step = 0; step < total; step++) {
        draw_batch(m, &data, step, B, &b);
        ac_train_grads(m, &b, B, &tf, &roll);
        const double lr = lr_at(cfg, step, total);
        ac_adamw(m, lr, step + 1);
        fprintf(metrics, "{\"step\": %ld, \"loss_teacher_forcing\": %.6f, \"loss_rollout\": %.6f, \"lr\": %.4g}\n",
                step + 1, tf, roll, lr);
        if ((step + 1) % cfg->logging.log_every == 0 || step + 1 == total)
            printf("step %6ld/%ld | loss tf %.5f rollout %.5f | lr %.3e | %.1f s\n", step + 1, total, tf, roll, lr,
                   now_seconds() - t0);
    }
    fclose(metrics);
    snprintf(path, sizeof path, "%s/predictor.safetensors", run);
    ac_save(m, path);
    printf("done: %ld steps in %.1f s; %s\n", total, now_seconds() - t0, path);
    free(b.in), free(b.tgt), free(b.act), free(b.st), free(b.pred);
    free(data.feats), free(data.actions), free(data.states);
    ac_free(m);
    backend_destroy(be);
    return JEPA_EXIT_OK;
}
