// eval_monitor.c: see eval_monitor.h.
#include "eval_monitor.h"

#include <math.h>
#include <string.h>

#include "common.h"

enum { MONITOR_PROBE_EPOCHS = 50 };  // a cheap probe: a quarter of jepa eval probe's default epochs

void monitor_open(Monitor *mon, const char *run_dir, const Config *cfg, const ModelDims *dims) {
    memset(mon, 0, sizeof *mon);
    tb_open(&mon->tb, run_dir);
    if (cfg->eval.every <= 0 || !strcmp(cfg->eval.data, "none")) return;
    eval_clips_open(&mon->clips, cfg->eval.data, cfg);
    if (mon->clips.store->extras.state_dim == 0)
        die_input("eval.data: %s has no /states to probe\n---> HINT: jepa data synth --world balls writes them",
                  cfg->eval.data);
    mon->probe_every = cfg->eval.every;
    mon->n_clips = (int)(mon->clips.store->shape.clips < cfg->eval.clips ? mon->clips.store->shape.clips
                                                                          : cfg->eval.clips);
    if (mon->n_clips < 4) die_input("eval.data: %s has %d clips; the periodic probe needs at least 4", cfg->eval.data,
                                    mon->n_clips);
    mon->states = eval_probe_targets(&mon->clips, dims, mon->n_clips);
    const size_t samples = (size_t)mon->n_clips * dims->grid_t;
    mon->train = xmalloc(samples * sizeof(int));
    mon->test = xmalloc(samples * sizeof(int));
    eval_split_by_clip(mon->n_clips, dims->grid_t, 0.25, (uint64_t)cfg->meta.seed, mon->train, &mon->n_train,
                       mon->test, &mon->n_test);
}

static void step_scalars(Monitor *mon, const StepRecord *r, int num_masks) {
    TbWriter *tb = &mon->tb;
    const long s = r->step;
    tb_scalar(tb, "loss", s, r->stats.loss_mean, 0);
    for (int g = 0; g < num_masks; g++) {
        char tag[32];
        snprintf(tag, sizeof tag, "loss_per_mask/%d", g);
        tb_scalar(tb, tag, s, r->stats.loss[g], 0);
    }
    tb_scalar(tb, "lr", s, r->sched.lr, 0);
    tb_scalar(tb, "weight_decay", s, r->sched.weight_decay, 0);
    tb_scalar(tb, "ema_momentum", s, r->sched.ema_momentum, 0);
    tb_scalar(tb, "grad_norm/encoder", s, r->stats.grad_norm[MODULE_ENCODER], 0);
    tb_scalar(tb, "grad_norm/predictor", s, r->stats.grad_norm[MODULE_PREDICTOR], 0);
    tb_scalar(tb, "target_std", s, r->stats.target_std, 0);
    tb_scalar(tb, "clips_per_s", s, r->clips_per_s, 0);
    tb_scalar(tb, "step_s", s, r->step_s, 0);
    tb_scalar(tb, "data_wait_s", s, r->data_s, 0);
    if (r->step_s > 0) tb_scalar(tb, "tflops_per_s", s, r->flops / r->step_s * 1e-12, 0);
    tb_scalar(tb, "mem_peak_gib", s, r->mem_peak_bytes / (1024.0 * 1024.0 * 1024.0), 0);
}

// Features of the held-out store through the training model's target encoder, in training-sized batches. The
// probe's clips go through input slot 0, so the clips the trainer staged ahead are read again (staged_first = -1):
// the same clips, so the losses of a run do not depend on eval.every.
static void run_probe(Monitor *mon, Trainer *tr, const StepRecord *r, FILE *metrics) {
    Model *m = tr->model;
    const ModelDims *d = &m->dims;
    const int B = tr->cfg->data.batch_size;
    const double t0 = now_seconds();
    double *X = xmalloc((size_t)mon->n_clips * d->tokens * d->enc.width * sizeof(double));  // [clips, N, D]
    float *clips = xmalloc(model_clip_elems(d, B) * sizeof(float));                         // [B, T, H, W, 3]
    for (int k = 0; k < mon->n_clips; k += B) {
        const int n = mon->n_clips - k < B ? mon->n_clips - k : B;
        eval_clips_read(&mon->clips, k, n, clips);
        model_encode(m, clips, n, 1, X + (size_t)k * d->tokens * d->enc.width);
    }
    tr->staged_first = -1;
    ProbeOptions o = probe_default_options();
    o.epochs = MONITOR_PROBE_EPOCHS;
    o.seed = (uint64_t)tr->cfg->meta.seed;
    ProbeResult res;
    eval_probe_fit(&o, X, (size_t)mon->n_clips * d->grid_t, mon->states, d->grid_h * d->grid_w, d->enc.width,
                   mon->clips.store, mon->train, mon->n_train, mon->test, mon->n_test, &res);
    const double seconds = now_seconds() - t0;
    tb_scalar(&mon->tb, "probe/position_r2", r->step, res.position, 0);
    tb_scalar(&mon->tb, "probe/velocity_r2", r->step, res.velocity, 0);
    tb_scalar(&mon->tb, "probe/seconds", r->step, seconds, 0);
    if (metrics) {
        fprintf(metrics, "{\"step\":%ld,\"kind\":\"eval\",\"probe_position_r2\":", r->step);
        fprintf(metrics, isfinite(res.position) ? "%.6g" : "null", res.position);
        fputs(",\"probe_velocity_r2\":", metrics);
        fprintf(metrics, isfinite(res.velocity) ? "%.6g" : "null", res.velocity);
        fprintf(metrics, ",\"probe_s\":%.3f}\n", seconds);
        fflush(metrics);
    }
    printf("probe at step %ld: position R^2 %.3f, velocity R^2 %.3f (%.1f s)\n", r->step, res.position, res.velocity,
           seconds);
    probe_result_free(&res);
    free(X), free(clips);
}

void monitor_step(Monitor *mon, Trainer *tr, const StepRecord *r, FILE *metrics) {
    step_scalars(mon, r, tr->cfg->num_masks);
    if (mon->probe_every > 0 && r->step % mon->probe_every == 0) run_probe(mon, tr, r, metrics);
    tb_flush(&mon->tb);
}

void monitor_close(Monitor *mon) {
    tb_close(&mon->tb);
    if (mon->probe_every > 0) eval_clips_close(&mon->clips);
    free(mon->states), free(mon->train), free(mon->test);
    memset(mon, 0, sizeof *mon);
}
