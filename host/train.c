// train.c: the training loop (DESIGN recipe) and the dry run.
#include "train.h"

#include <json-c/json.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "backend_cuda.h"
#include "checkpoint.h"
#include "common.h"
#include "data.h"
#include "flops.h"
#include "masks.h"
#include "model.h"
#include "optim.h"
#include "preempt.h"
#include "resume.h"
#include "runfolder.h"

Backend *train_backend(const Config *cfg, char *device, size_t n) {
    char why[256] = "";
    const int gpus = strcmp(cfg->meta.device, "cpu") == 0 ? 0 : cuda_device_count(why, sizeof why);
    if (strcmp(cfg->meta.device, "cuda") == 0 && gpus == 0)
        die_input("meta.device: cuda, but %s\n---> HINT: set meta.device=cpu (or auto)", why);
    if (gpus > 0) {
        if (strcmp(cfg->meta.dtype, "bfloat16") != 0)
            die_input("meta.dtype: the cuda device computes in bfloat16, not '%s' (there are no fp32 GPU kernels)\n"
                      "---> HINT: set meta.dtype=bfloat16, or meta.device=cpu for float32", cfg->meta.dtype);
        Backend *be = backend_cuda_create(0, cfg->meta.deterministic);
        backend_cuda_describe(0, device, n);
        return be;
    }
    if (why[0]) printf("meta.device auto: %s; running on the CPU\n", why);
    if (strcmp(cfg->meta.dtype, "float32") != 0)
        die_input("meta.dtype: the CPU backend computes in float32, not '%s'%s\n---> HINT: set meta.dtype=float32",
                  cfg->meta.dtype, why[0] ? " (meta.device auto found no GPU)" : "");
    Backend *be = backend_cpu_create(0, cfg->meta.threads);
    snprintf(device, n, "%s (%d threads)", be->name,
             cfg->meta.threads > 0 ? cfg->meta.threads : (int)sysconf(_SC_NPROCESSORS_ONLN));
    return be;
}

static TokenGrid token_grid(const ModelDims *d) { return (TokenGrid){d->grid_t, d->grid_h, d->grid_w}; }

static json_object *double_array(const double *v, int n) {
    json_object *a = json_object_new_array();
    for (int i = 0; i < n; i++) json_object_array_add(a, json_object_new_double(v[i]));
    return a;
}

static void write_metrics(FILE *out, const StepRecord *r, int num_masks) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "step", json_object_new_int64(r->step));
    json_object_object_add(o, "epoch", json_object_new_int(r->epoch));
    json_object_object_add(o, "loss", json_object_new_double(r->stats.loss_mean));
    json_object_object_add(o, "loss_per_mask", double_array(r->stats.loss, num_masks));
    json_object_object_add(o, "lr", json_object_new_double(r->sched.lr));
    json_object_object_add(o, "wd", json_object_new_double(r->sched.weight_decay));
    json_object_object_add(o, "ema_momentum", json_object_new_double(r->sched.ema_momentum));
    json_object_object_add(o, "grad_norm_encoder", json_object_new_double(r->stats.grad_norm[MODULE_ENCODER]));
    json_object_object_add(o, "grad_norm_predictor", json_object_new_double(r->stats.grad_norm[MODULE_PREDICTOR]));
    json_object_object_add(o, "clip_active", json_object_new_boolean(r->sched.clip));
    json_object_object_add(o, "tokens_context", double_array(r->tokens_ctx, num_masks));
    json_object_object_add(o, "tokens_target", double_array(r->tokens_tgt, num_masks));
    json_object_object_add(o, "target_std", json_object_new_double(r->stats.target_std));
    json_object_object_add(o, "step_s", json_object_new_double(r->step_s));
    json_object_object_add(o, "data_wait_s", json_object_new_double(r->data_s));
    json_object_object_add(o, "clips_per_s", json_object_new_double(r->clips_per_s));
    fprintf(out, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    fflush(out);
    json_object_put(o);
}

static void format_duration(double s, char *buf, size_t n) {
    const long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
}

static void print_progress(RunFolder *rf, const StepRecord *r, double elapsed, long steps_done_here) {
    char eta[32];
    format_duration(elapsed / steps_done_here * (r->total - r->step), eta, sizeof(eta));
    run_log(rf, "step %6ld/%ld | epoch %3d | loss %.5f | lr %.3e | %.1f clips/s | data %4.1f%% | target std %.3f | ETA %s\n",
            r->step, r->total, r->epoch, r->stats.loss_mean, r->sched.lr, r->clips_per_s,
            100.0 * r->data_s / r->step_s, r->stats.target_std, eta);
}

void trainer_stage_clips(Trainer *tr, int64_t first, double *data_s) {
    const int B = tr->cfg->data.batch_size;
    const int slot = tr->staged_first < 0 ? 0 : tr->staged_slot ^ 1;
    const double t0 = now_seconds();
    data_get_clips(tr->data, first, B, model_input_host(tr->model, slot, B));
    model_stage_clips(tr->model, slot, B);
    tr->staged_first = first;
    tr->staged_slot = slot;
    *data_s += now_seconds() - t0;
}

void train_step(Trainer *tr, long step, int last_step, StepRecord *r) {
    const Config *cfg = tr->cfg;
    Model *m = tr->model;
    const int B = cfg->data.batch_size, accum = cfg->optimization.accum_steps, G = cfg->num_masks;
    const double t0 = now_seconds();
    memset(r, 0, sizeof(*r));
    r->total = train_total_steps(cfg);
    r->sched = schedule_at(cfg, step);
    model_zero_step(m);
    for (int micro = 0; micro < accum; micro++) {
        const int64_t first_sample = tr->data_cursor + (int64_t)micro * B;
        if (!tr->reuse_staged && tr->staged_first != first_sample)  // first step, resume
            trainer_stage_clips(tr, first_sample, &r->data_s);
        int n_ctx[CONFIG_MAX_MASKS], n_tgt[CONFIG_MAX_MASKS];
        for (int g = 0; g < G; g++) {
            mask_generate(&cfg->mask[g], g, token_grid(&m->dims), (uint64_t)cfg->meta.seed, step, first_sample, B,
                          &tr->masks[g]);
            n_ctx[g] = tr->masks[g].n_ctx;
            n_tgt[g] = tr->masks[g].n_tgt;
            r->tokens_ctx[g] += (double)n_ctx[g] / accum;
            r->tokens_tgt[g] += (double)n_tgt[g] / accum;
        }
        r->flops += flops_micro_batch(&m->dims, B, n_ctx, n_tgt).total;
        const MicroBatch mb = {B, NULL, tr->masks, tr->staged_slot};
        model_micro_step(m, &mb, 1.0 / accum, 1);
        for (int g = 0; g < G; g++) mask_batch_free(&tr->masks[g]);
        // the next micro-batch, or the next step's first (the cursor moves by accum * B)
        if (!tr->reuse_staged && !(last_step && micro == accum - 1))
            trainer_stage_clips(tr, first_sample + B, &r->data_s);
    }
    tr->data_cursor += (int64_t)accum * B;
    optim_step(m, cfg, &r->sched, step + 1);
    model_read_stats(m, &r->stats);  // the step's one host synchronisation
    r->step = step + 1;
    r->epoch = (int)(step / cfg->optimization.ipe);
    r->step_s = now_seconds() - t0;
    r->clips_per_s = B * accum / r->step_s;
}

// Checkpoint after step r->step when one is due: every logging.checkpoint_every steps, at the end, on request or
// when `force` (preemption). path receives the folder; returns whether one was written.
static int checkpoint_if_due(RunFolder *rf, const Trainer *tr, const StepRecord *r, long total, int force,
                             char *path, size_t path_size) {
    const int every = tr->cfg->logging.checkpoint_every;
    const int requested = checkpoint_take_request() || force;
    if (!requested && r->step != total && (every == 0 || r->step % every != 0)) return 0;
    const double t0 = now_seconds();
    const TrainPosition pos = {r->step, tr->data_cursor};
    checkpoint_save(rf->path, tr->model, tr->cfg, &pos, &r->sched, path, path_size);
    run_log(rf, "checkpoint %s (%.1f s)\n", path, now_seconds() - t0);
    return 1;
}

// After a preemption signal: the step in flight has finished; a checkpoint of it is written (unless this step's
// was just written), one line says what happened. Returns JEPA_EXIT_PREEMPTED.
static int stop_preempted(RunFolder *rf, const Trainer *tr, const StepRecord *r, long total, int saved, char *path,
                          size_t path_size) {
    const int sig = preempt_signal();
    if (!saved) checkpoint_if_due(rf, tr, r, total, 1, path, path_size);
    char buf[32];
    run_log(rf, "preempted: %s at step %ld; checkpoint %s written %.2f s after the signal; exit code %d: resume "
                "with the same command (meta.resume=auto)\n", preempt_signal_name(sig, buf, sizeof buf), r->step,
            path, preempt_seconds_since_signal(), JEPA_EXIT_PREEMPTED);
    return JEPA_EXIT_PREEMPTED;
}

int train_run(const Config *cfg, const char *command) {
    preempt_install();
    char device[512];
    Backend *be = train_backend(cfg, device, sizeof device);
    RunFolder rf = {0};
    Trainer tr = {.cfg = cfg, .staged_first = -1};
    tr.model = model_create(cfg, be);
    const TrainPosition from = resume_open_run(&rf, tr.model, cfg, device, command);
    tr.data_cursor = from.data_cursor;
    config_print_table(cfg, stdout);
    config_print_table(cfg, rf.log);
    tr.data = data_open(cfg);
    const long total = train_total_steps(cfg);
    run_log(&rf, "device: %s\n", device);
    run_log(&rf, "run folder %s | device %s | %zu parameters | %ld steps of %d clips\n", rf.path, be->name,
            tr.model->table.total, total, cfg->data.batch_size * cfg->optimization.accum_steps);
    const double start = now_seconds();
    int rc = JEPA_EXIT_OK;
    StepRecord r = {0};
    if (from.step >= total)
        run_log(&rf, "nothing to train: the run is at step %ld of %ld\n---> HINT: raise optimization.max_steps or "
                     "optimization.epochs to continue it, or set meta.resume=never for a new run\n", from.step, total);
    for (long step = from.step; step < total; step++) {
        train_step(&tr, step, step == total - 1, &r);
        write_metrics(rf.metrics, &r, cfg->num_masks);
        if (!isfinite(r.stats.loss_mean)) {
            run_log(&rf, "error: the loss is %f at step %ld; stopping (the run folder keeps the metrics)\n",
                    r.stats.loss_mean, r.step);
            rc = JEPA_EXIT_INTERNAL;
            break;
        }
        if (r.step % cfg->logging.log_every == 0 || r.step == total || r.step == 1)
            print_progress(&rf, &r, now_seconds() - start, r.step - from.step);
        char ckpt[1200];
        const int saved = checkpoint_if_due(&rf, &tr, &r, total, 0, ckpt, sizeof ckpt);
        if (preempt_signal()) {
            rc = stop_preempted(&rf, &tr, &r, total, saved, ckpt, sizeof ckpt);
            break;
        }
    }
    if (rc == JEPA_EXIT_OK && from.step < total)
        run_log(&rf, "done: %ld steps in %.1f s, final loss %.5f, target std %.3f; run folder %s\n", r.step,
                now_seconds() - start, r.stats.loss_mean, r.stats.target_std, rf.path);
    data_close(tr.data);
    model_free(tr.model);
    backend_destroy(be);
    run_folder_close(&rf);
    return rc;
}

// ---------------------------------------------------------------- dry run

static const char *human(double x, char *buf, size_t n) {
    const char *units[] = {"", "K", "M", "G", "T", "P"};
    int u = 0;
    while (fabs(x) >= 1000.0 && u < 5) x /= 1000.0, u++;
    snprintf(buf, n, "%.2f%s", x, units[u]);
    return buf;
}

static double gib(double bytes) { return bytes / (1024.0 * 1024.0 * 1024.0); }

int train_dry_run(const Config *cfg) {
    ModelDims d;
    TensorTable t;
    model_dims_from_config(cfg, &d);
    model_build_table(&d, &t);
    char a[32], b[32], c[32];
    const size_t enc = table_module_numel(&t, MODULE_ENCODER), pred = table_module_numel(&t, MODULE_PREDICTOR);
    printf("model %s: encoder %d wide x %d layers, %d heads of %d; predictor %d wide x %d layers, %d heads of %d\n",
           cfg->model.model_name, d.enc.width, d.enc.depth, d.enc.heads, d.enc.head_dim, d.pred.width, d.pred.depth,
           d.pred.heads, d.pred.head_dim);
    printf("parameters: encoder %s (%zu), predictor %s (%zu), target encoder %s (EMA copy, not trained)\n",
           human((double)enc, a, sizeof a), enc, human((double)pred, b, sizeof b), pred, human((double)enc, c, sizeof c));
    printf("tokens: %d frames x %d px -> %d x %d x %d = %d per clip\n", d.frames, d.crop, d.grid_t, d.grid_h,
           d.grid_w, d.tokens);
    // Mask lengths from our generator, averaged over steps: token counts vary per step.
    const int B = cfg->data.batch_size, steps = 20;
    double mean_ctx[CONFIG_MAX_MASKS] = {0}, mean_tgt[CONFIG_MAX_MASKS] = {0};
    int max_ctx[CONFIG_MAX_MASKS] = {0}, max_tgt[CONFIG_MAX_MASKS] = {0};
    for (int s = 0; s < steps; s++)
        for (int g = 0; g < cfg->num_masks; g++) {
            MaskBatch mk;
            mask_generate(&cfg->mask[g], g, (TokenGrid){d.grid_t, d.grid_h, d.grid_w}, (uint64_t)cfg->meta.seed, s,
                          (int64_t)s * B, B, &mk);
            mean_ctx[g] += (double)mk.n_ctx / steps;
            mean_tgt[g] += (double)mk.n_tgt / steps;
            if (mk.n_ctx > max_ctx[g]) max_ctx[g] = mk.n_ctx;
            if (mk.n_tgt > max_tgt[g]) max_tgt[g] = mk.n_tgt;
            mask_batch_free(&mk);
        }
    int typical_ctx[CONFIG_MAX_MASKS], typical_tgt[CONFIG_MAX_MASKS], all[CONFIG_MAX_MASKS];
    for (int g = 0; g < cfg->num_masks; g++) {
        typical_ctx[g] = (int)lround(mean_ctx[g]);
        typical_tgt[g] = (int)lround(mean_tgt[g]);
        all[g] = d.tokens;
        printf("mask %d (%d blocks x %.2f): context %.0f, target %.0f tokens per clip (mean of %d steps, batch %d)\n",
               g, cfg->mask[g].num_blocks, cfg->mask[g].spatial_scale[0], mean_ctx[g], mean_tgt[g], steps, B);
    }
    const StepFlops f = flops_micro_batch(&d, B, typical_ctx, typical_tgt);
    const double accum = cfg->optimization.accum_steps;
    printf("FLOPs per step (batch %d x %d micro-batches, per rank): %s\n", B, (int)accum,
           human(f.total * accum, a, sizeof a));
    char e[32], g[32];
    printf("  target forward %s | context forward %s backward %s | predictor forward %s backward %s | attention %.0f%%\n",
           human(f.target_fwd * accum, a, sizeof a), human(f.context_fwd * accum, b, sizeof b),
           human(f.context_bwd * accum, c, sizeof c), human(f.predictor_fwd * accum, e, sizeof e),
           human(f.predictor_bwd * accum, g, sizeof g), 100.0 * f.attention / f.total);
    const int bf16 = strcmp(cfg->meta.dtype, "bfloat16") == 0;
    const ElemSizes z = {bf16 ? 2 : 4, 4};
    // fp32 master, gradients, two moments and the target; a working copy of both in bf16.
    const double opt_bytes = 4.0 * (4.0 * (enc + pred) + enc) + (bf16 ? 2.0 * (2.0 * enc + pred) : 0.0);
    const double typical = (double)model_plan_arena(&d, z, B, typical_ctx, typical_tgt);
    const double planned = (double)model_plan_arena(&d, z, B, all, all);
    printf("memory (%s activations, fp32 master weights):\n", cfg->meta.dtype);
    printf("  parameters, gradients, AdamW moments, target%s: %.2f GiB\n", bf16 ? ", bf16 working copies" : "",
           gib(opt_bytes));
    printf("  activations: %.2f GiB at these mask lengths, %.2f GiB planned arena (every list as long as the clip)%s\n",
           gib(typical), gib(planned), cfg->model.checkpoint_activations ? ", blocks recomputed" : "");
    table_free(&t);
    return JEPA_EXIT_OK;
}
