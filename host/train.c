// train.c: the training loop (DESIGN recipe) and the dry run.
#include "train.h"

#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "backend_cuda.h"
#include "checkpoint.h"
#include "common.h"
#include "consensus.h"
#include "data.h"
#include "dist.h"
#include "eval_monitor.h"
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
        if (strcmp(cfg->optimization.optimizer, "sgd") == 0)
            die_input("optimization.optimizer: sgd runs on the CPU only for now\n---> HINT: meta.device=cpu");
        const int gpu = dist_local_rank() % gpus;  // the launcher's local rank picks the GPU
        Backend *be = backend_cuda_create(gpu, cfg->meta.deterministic);
        backend_cuda_describe(gpu, device, n);
        if (strcmp(cfg->model.attention, "cudnn") == 0) {  // the device line names the attention that runs
            char what[768];
            backend_cuda_use_cudnn_attention(be, what, sizeof what);
            const size_t used = strlen(device);
            snprintf(device + used, n - used, " | attention: cuDNN fused (%s), ours where it does not apply", what);
        }
        return be;
    }
    if (why[0]) printf("meta.device auto: %s; running on the CPU\n", why);
    if (strcmp(cfg->model.attention, "cudnn") == 0)
        die_input("model.attention: cudnn needs the GPU, but meta.device auto found none (%s)\n---> HINT: set "
                  "model.attention=native, or run where a GPU is", why);
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

static double gib(double bytes) { return bytes / (1024.0 * 1024.0 * 1024.0); }

// The most the backend's own allocations held at once so far (Backend.memory); 0 when it does not count.
static size_t backend_peak_bytes(Backend *be) {
    size_t now = 0, peak = 0;
    if (be->memory) be->memory(be, &now, &peak);
    return peak;
}

// One run-log line on memory. On the GPU the CUDA context and the cuBLASLt/cuDNN workspaces come on top (nvidia-smi).
static void log_memory(RunFolder *rf, const Trainer *tr, const char *when) {
    const Model *m = tr->model;
    run_log(rf, "memory %s: peak %.2f GiB held by the %s backend's allocations (activation arena %.2f GiB, "
                "model.checkpoint_every %d)\n", when, gib((double)backend_peak_bytes(m->be)), m->be->name,
            gib((double)m->arena.capacity), config_checkpoint_every(tr->cfg));
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
    json_object_object_add(o, "skipped", json_object_new_boolean(r->skipped));
    json_object_object_add(o, "skips_in_a_row", json_object_new_int(r->skips_in_a_row));
    json_object_object_add(o, "loss_z", isfinite(r->loss_z) ? json_object_new_double(r->loss_z) : NULL);
    json_object_object_add(o, "exchange_bytes", json_object_new_double(r->exchange_bytes));
    json_object_object_add(o, "sim_exchange_s", json_object_new_double(r->sim_exchange_s));
    json_object_object_add(o, "loss_sites", isfinite(r->loss_sites) ? json_object_new_double(r->loss_sites) : NULL);
    json_object_object_add(o, "mem_peak_gib", json_object_new_double(gib(r->mem_peak_bytes)));
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

// ---------------------------------------------------------------- numerical faults

// JEPA_INJECT_FAULT=WHAT@S1,S2,...[=VALUE] (tests; docs/training.md): at the listed 1-based steps, VALUE (NaN by
// default, inf, or a number) replaces every value of the step's first clip (WHAT = clips: it spreads through the
// step, as corrupt data would), element 0 of the gradient of the tensor named WHAT after the backward and before
// the optimizer, or (WHAT = param:NAME) element 0 of that parameter before the step's forward (a loss spike).
typedef struct {
    char what[96];
    long steps[32];
    int nsteps;
    double value;
} FaultInjection;
static FaultInjection injection;

// kind: "clips", "gradient" or "param"
static const char *injection_kind(void) {
    return !strcmp(injection.what, "clips") ? "clips" : !strncmp(injection.what, "param:", 6) ? "param" : "gradient";
}
static const char *injection_tensor(void) {
    return !strncmp(injection.what, "param:", 6) ? injection.what + 6 : injection.what;
}

#define INJECT_ENV "JEPA_INJECT_FAULT"
static void parse_injection(const Model *m) {
    memset(&injection, 0, sizeof injection);
    const char *spec = getenv(INJECT_ENV);
    if (!spec || !*spec) return;
    const char *at = strchr(spec, '@');
    if (!at || at == spec || (size_t)(at - spec) >= sizeof injection.what)
        die_input(INJECT_ENV "='%s': expected WHAT@STEP[,STEP...][=nan|inf], WHAT = clips or a tensor name", spec);
    memcpy(injection.what, spec, (size_t)(at - spec));
    injection.value = NAN;
    for (const char *p = at + 1;;) {
        char *end;
        const long step = strtol(p, &end, 10);
        if (end == p || step < 1 || injection.nsteps == 32)
            die_input(INJECT_ENV "='%s': expected up to 32 steps >= 1 after '@'", spec);
        injection.steps[injection.nsteps++] = step;
        p = end;
        if (*p == ',') { p++; continue; }
        if (*p == '=') {
            injection.value = strtod(p + 1, &end);
            if (end == p + 1 || *end) die_input(INJECT_ENV "='%s': expected =VALUE (nan, inf or a number) at the end, "
                                                "not '%s'", spec, p);
        } else if (*p) {
            die_input(INJECT_ENV "='%s': expected ',' or '=VALUE' after step %ld, not '%s'", spec, step, p);
        }
        break;
    }
    if (strcmp(injection.what, "clips") != 0 && table_find(&m->table, injection_tensor()) < 0)
        die_input(INJECT_ENV ": no tensor '%s' (expected clips, a tensor name such as %s, or param:NAME)",
                  injection_tensor(), m->table.tensors[0].name);
}

static int injection_due(const char *kind, long step1) {
    if (!injection.nsteps || strcmp(kind, injection_kind()) != 0) return 0;
    for (int i = 0; i < injection.nsteps; i++)
        if (injection.steps[i] == step1) return 1;
    return 0;
}

// Element 0 of the named tensor's gradient (kind "gradient") or master parameter and working copy ("param").
static void inject_tensor(Model *m, const char *kind, long step1) {
    if (!injection_due(kind, step1)) return;
    Backend *be = m->be;
    const TensorSpec *t = &m->table.tensors[table_find(&m->table, injection_tensor())];
    void *master = (char *)(strcmp(kind, "param") ? m->grads : m->params) + t->offset * be->msize;
    be->upload_f64(be, master, be->msize, &injection.value, 1);
    if (!strcmp(kind, "param")) be->cast_params(be, (char *)m->work + t->offset * be->esize, master, 1);
}

// Across steps: the consecutive skips and the window of recent finite losses for the spike z-score.
typedef struct {
    int in_a_row;
    double *window;  // [logging.spike_window] ring of the latest finite losses
    int count, next;
} NumericsWatch;

static double spike_z_score(const NumericsWatch *w, int size, double loss) {
    const int need = size < 10 ? size : 10;  // a z-score over fewer losses than this says little
    if (w->count < need) return NAN;
    double mean = 0, var = 0;
    for (int i = 0; i < w->count; i++) mean += w->window[i] / w->count;
    for (int i = 0; i < w->count; i++) var += (w->window[i] - mean) * (w->window[i] - mean) / w->count;
    return var > 0 ? (loss - mean) / sqrt(var) : NAN;
}

// After a step: a fault is reported with what was not finite, and ends the run when optimization.on_nonfinite and
// max_skips say so (returns JEPA_EXIT_NONFINITE); a finite loss goes into the spike window. Fills r's fault fields.
static int watch_numerics(RunFolder *rf, Trainer *tr, StepRecord *r, NumericsWatch *w) {
    const Config *cfg = tr->cfg;
    r->loss_z = NAN;
    if (r->stats.nonfinite) {
        r->skipped = 1;
        r->skips_in_a_row = ++w->in_a_row;
        char what[700];
        const int params_bad = model_describe_nonfinite(tr->model, what, sizeof what);
        run_log(rf, "numerical fault at step %ld: %s; the update was not applied (%d in a row)\n", r->step, what,
                w->in_a_row);
        if (params_bad) {
            run_log(rf, "error: the parameters themselves are non-finite; stopping at step %ld\n", r->step);
            return JEPA_EXIT_NONFINITE;
        }
        if (strcmp(cfg->optimization.on_nonfinite, "stop") == 0) {
            run_log(rf, "error: stopping at step %ld (optimization.on_nonfinite: stop); checkpoints and metrics are "
                        "kept\n---> HINT: optimization.on_nonfinite=skip drops such updates and goes on\n", r->step);
            return JEPA_EXIT_NONFINITE;
        }
        if (w->in_a_row > cfg->optimization.max_skips) {
            run_log(rf, "error: %d steps in a row were non-finite (optimization.max_skips %d); stopping at step %ld\n"
                        "---> HINT: lower optimization.lr, or resume from an earlier checkpoint\n", w->in_a_row,
                    cfg->optimization.max_skips, r->step);
            return JEPA_EXIT_NONFINITE;
        }
        return JEPA_EXIT_OK;
    }
    w->in_a_row = 0;
    const int size = cfg->logging.spike_window;
    r->loss_z = spike_z_score(w, size, r->stats.loss_mean);
    if (r->loss_z > cfg->logging.spike_z)
        run_log(rf, "loss spike at step %ld: %.5f is %.1f standard deviations above the mean of the previous %d "
                    "steps\n", r->step, r->stats.loss_mean, r->loss_z, w->count);
    w->window[w->next] = r->stats.loss_mean;
    w->next = (w->next + 1) % size;
    if (w->count < size) w->count++;
    return JEPA_EXIT_OK;
}

// ---------------------------------------------------------------- the read log (docs/consensus.md)

// RUN/reads_rank<R>.jsonl: a header {"rank", "world", "site", "stores": [the paths this rank opened]}, then one
// line per staged batch {"first": position, "samples": [[store, clip, [frames], "FNV-1a 64 hex"], ...]}: the hash
// of each sample's stored bytes (loader.h SampleRead), so a test can recompute it from the site's own file.
// Written with data.site_paths only, where it shows that a rank read nothing but its own site's store (the hashes
// cost a pass over every byte read). Collective (rank 0's run folder path goes to every rank; site_data is the same
// on every rank).
static void open_read_log(Trainer *tr, const RunFolder *rf) {
    if (!tr->site_data) return;
    int path[1024] = {0};  // [1024] rank 0's run folder as ints, the others zero: the sum broadcasts it
    for (int i = 0; dist_rank() == 0 && i < 1023 && rf->path[i]; i++) path[i] = (unsigned char)rf->path[i];
    if (dist_active()) dist_allreduce_host(path, 1024, DIST_INT, DIST_SUM, "the run folder for the read logs");
    data_hash_reads(tr->data);
    char file[1200];
    int n = 0;
    for (int i = 0; path[i] && n < 1023; i++) n += snprintf(file + n, sizeof file - (size_t)n, "%c", (char)path[i]);
    snprintf(file + n, sizeof file - (size_t)n, "/reads_rank%d.jsonl", dist_rank());
    tr->reads_log = fopen(file, "a");  // a resumed run appends
    if (!tr->reads_log) die_input("%s: cannot write the read log: %s", file, strerror(errno));
    const int sites = tr->cfg->dist.sites;
    json_object *o = json_object_new_object(), *a = json_object_new_array();
    json_object_object_add(o, "rank", json_object_new_int(dist_rank()));
    json_object_object_add(o, "world", json_object_new_int(dist_world()));
    json_object_object_add(o, "site", json_object_new_int(dist_rank() / (dist_world() / sites)));
    json_object_array_add(a, json_object_new_string(data_store_path(tr->data, 0)));  // the site's one store
    json_object_object_add(o, "stores", a);
    fprintf(tr->reads_log, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                                   JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(o);
}

static void log_reads(Trainer *tr, int64_t first, int B) {
    const SampleRead *reads = data_batch_reads(tr->data);  // [B]
    if (!reads) return;
    FILE *f = tr->reads_log;
    fprintf(f, "{\"first\":%lld,\"samples\":[", (long long)first);
    for (int b = 0; b < B; b++) {
        const SamplePlan *p = &reads[b].plan;
        fprintf(f, "%s[%d,%lld,[", b ? "," : "", p->store, (long long)p->clip);
        for (int i = 0; i < tr->cfg->data.num_frames; i++) fprintf(f, "%s%d", i ? "," : "", p->frame[i]);
        fprintf(f, "],\"%016llx\"]", (unsigned long long)reads[b].fnv1a);
    }
    fputs("]}\n", f);
    if (fflush(f) != 0 || ferror(f)) die_input("the read log: write failed: %s", strerror(errno));
}

void trainer_stage_clips(Trainer *tr, int64_t first, double *data_s) {
    const int B = tr->cfg->data.batch_size;
    const int slot = tr->staged_first < 0 ? 0 : tr->staged_slot ^ 1;
    const double t0 = now_seconds();
    float *clips = model_input_host(tr->model, slot, B);  // [B,T,H,W,3]
    data_get_clips(tr->data, first, B, clips);
    if (tr->reads_log) log_reads(tr, first, B);
    const int64_t per_step = (int64_t)B * tr->cfg->optimization.accum_steps * dist_world();  // the world's step
    if (first % per_step == 0 && injection_due("clips", (long)(first / per_step) + 1))
        for (size_t i = 0; i < model_clip_elems(&tr->model->dims, 1); i++) clips[i] = (float)injection.value;
    model_stage_clips(tr->model, slot, B);
    tr->staged_first = first;
    tr->staged_slot = slot;
    *data_s += now_seconds() - t0;
}

// The data positions this rank reads: it is reader `rank` of `readers` data-parallel readers of the step that starts
// at `cursor` (data.site_paths: a site's ranks read its own store at site-local positions, the site's cursor being
// its share, cursor / sites, of the world's samples; allreduce too: the pooled-data baseline).
typedef struct {
    int rank, readers;
    int64_t cursor;
} DataReader;

static DataReader data_reader(const Trainer *tr) {
    const int world = dist_world(), sites = tr->cfg->dist.sites;
    if (!tr->site_data) return (DataReader){dist_rank(), world, tr->data_cursor};
    return (DataReader){dist_rank() % (world / sites), world / sites, tr->data_cursor / sites};
}

void train_step(Trainer *tr, long step, int last_step, StepRecord *r) {
    const Config *cfg = tr->cfg;
    Model *m = tr->model;
    const int B = cfg->data.batch_size, accum = cfg->optimization.accum_steps, G = cfg->num_masks;
    // Rank r runs micro-batches r*accum .. r*accum+accum-1 of the step's world*accum (DESIGN: N ranks see what one
    // rank with N*accum micro-batches sees); each gradient is scaled by 1/(accum*world), the all-reduce sums them.
    // Consensus: the all-reduce runs within a site, so the scale is 1/(accum*site ranks); the data stay the world's
    // shards (each site reads its own disjoint part of every step's samples).
    const int world = dist_world(), averaged = tr->consensus ? dist_site_ranks() : world;
    const DataReader reader = data_reader(tr);  // data.site_paths: the site's ranks at site-local positions
    const int rank = reader.rank, readers = reader.readers;
    const int64_t cursor = reader.cursor;
    const double t0 = now_seconds();
    memset(r, 0, sizeof(*r));
    r->total = train_total_steps(cfg);
    r->sched = schedule_at(cfg, step);
    model_zero_step(m);
    inject_tensor(m, "param", step + 1);
    for (int micro = 0; micro < accum; micro++) {
        const int64_t first_sample = cursor + ((int64_t)rank * accum + micro) * B;
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
        if (tr->dist) dist_grads_begin_micro(tr->dist, micro == accum - 1);
        model_micro_step(m, &mb, 1.0 / ((double)accum * averaged), 1);
        for (int g = 0; g < G; g++) mask_batch_free(&tr->masks[g]);
        // the next micro-batch, or this rank's first of the next step (the cursor moves by world * accum * B)
        const int64_t next = first_sample + B + (micro == accum - 1 ? (int64_t)(readers - 1) * accum * B : 0);
        if (!tr->reuse_staged && !(last_step && micro == accum - 1)) trainer_stage_clips(tr, next, &r->data_s);
    }
    if (tr->dist) dist_grads_finish(tr->dist);
    tr->data_cursor += (int64_t)world * accum * B;
    inject_tensor(m, "gradient", step + 1);
    optim_update(m, cfg, &r->sched, step + 1);
    if (tr->consensus) consensus_after_update(tr->consensus, step + 1, last_step, &r->exchange_bytes);
    else if (tr->dist) r->exchange_bytes = (double)m->table.total * (strcmp(cfg->dist.reduce_dtype, "bfloat16") ? 4 : 2);
    r->sim_exchange_s = consensus_link_seconds(cfg, r->exchange_bytes);
    optim_ema(m, &r->sched);  // the target follows this site's own weights (after an exchange: the new ones)
    if (tr->dist) dist_sync("the step's gradient all-reduce (NCCL)");  // under the watchdog; a no-op on the CPU
    model_read_stats(m, &r->stats);  // the step's one host synchronisation
    r->mem_peak_bytes = (double)backend_peak_bytes(m->be);
    // consensus: one scalar all-reduce a step (metrics.jsonl logs every step), so a plot shows every site's loss
    r->loss_sites = tr->consensus ? consensus_mean_over_sites(r->stats.loss_mean) : r->stats.loss_mean;
    r->step = step + 1;
    r->epoch = (int)(step / cfg->optimization.ipe);
    r->step_s = now_seconds() - t0;
    r->clips_per_s = (double)B * accum * world / r->step_s;  // the world's clips
}

// Checkpoint after step r->step when one is due: every logging.checkpoint_every steps, at the end, or when `force`
// (a request or a preemption, agreed by every rank). Rank 0 writes it (the checkpoint is the same for any world
// size); the others wait for it. path receives the folder; returns whether one was written.
static int checkpoint_if_due(RunFolder *rf, const Trainer *tr, const StepRecord *r, long total, int force,
                             char *path, size_t path_size) {
    const int every = tr->cfg->logging.checkpoint_every;
    if (!force && r->step != total && (every == 0 || r->step % every != 0)) return 0;
    const double t0 = now_seconds();
    const TrainPosition pos = {r->step, tr->data_cursor};
    size_t bytes = 0;
    void *state = tr->consensus ? consensus_state(tr->consensus, &bytes) : NULL;  // collective; rank 0 gets it
    const CheckpointBlob blob = {"consensus.bin", state, bytes};
    if (dist_rank() == 0)
        checkpoint_save_with(rf->path, tr->model, tr->cfg, &pos, &r->sched, &blob, state ? 1 : 0, path, path_size);
    else snprintf(path, path_size, "(written by rank 0)");
    free(state);
    dist_barrier("the wait for rank 0's checkpoint");
    run_log(rf, "checkpoint %s (%.1f s)\n", path, now_seconds() - t0);
    return 1;
}

// After a preemption signal: the step in flight has finished; a checkpoint of it is written (unless this step's
// was just written), one line says what happened. Returns JEPA_EXIT_PREEMPTED.
static int stop_preempted(RunFolder *rf, const Trainer *tr, const StepRecord *r, long total, int sig, int saved,
                          char *path, size_t path_size) {
    if (!saved) checkpoint_if_due(rf, tr, r, total, 1, path, path_size);
    char buf[32];
    run_log(rf, "preempted: %s at step %ld; checkpoint %s written %.2f s after the signal; exit code %d: resume "
                "with the same command (meta.resume=auto)\n", preempt_signal_name(sig, buf, sizeof buf), r->step,
            path, preempt_seconds_since_signal(), JEPA_EXIT_PREEMPTED);
    return JEPA_EXIT_PREEMPTED;
}

// ---------------------------------------------------------------- data parallel (host/dist.h)

// Every rank starts from rank 0's position and weights (rank 0 alone opens the run folder and reads the checkpoint).
static TrainPosition share_start(Model *m, TrainPosition from) {
    if (!dist_active()) return from;
    double pos[2] = {(double)from.step, (double)from.data_cursor};  // exact below 2^53; the others hold zeros
    dist_allreduce_host(pos, 2, DIST_DOUBLE, DIST_MAX, "the exchange of the start position");
    Backend *be = m->be;
    const DistType t = dist_type_of_size(be->msize);
    const size_t total = m->table.total, enc = table_module_numel(&m->table, MODULE_ENCODER);
    void *bufs[] = {m->params, m->adam_m, m->adam_v};
    for (int i = 0; i < 3; i++) dist_broadcast(bufs[i], total, t, 0, "the broadcast of rank 0's weights");
    dist_broadcast(m->target, enc, t, 0, "the broadcast of rank 0's weights");
    be->cast_params(be, m->work, m->params, total);
    be->cast_params(be, m->target_work, m->target, enc);
    dist_sync("the broadcast of rank 0's weights");
    return (TrainPosition){(long)pos[0], (int64_t)pos[1]};
}

// The global batch (data.batch_size x accum_steps x ranks) stays what the checkpoint trained with (its data cursor /
// its step): on another world size accum_steps is adjusted, or the run refused with the arithmetic.
static void keep_global_batch(Config *cfg, TrainPosition from, RunFolder *rf) {
    const int world = dist_world(), B = cfg->data.batch_size, accum = cfg->optimization.accum_steps;
    if (from.step <= 0 || from.data_cursor % from.step != 0) return;
    const int64_t was = from.data_cursor / from.step, per_accum = (int64_t)B * world;
    if (was == per_accum * accum) return;
    if (was % per_accum != 0)
        die_input("resume: the checkpoint trained with a global batch of %lld clips per step; data.batch_size %d x "
                  "%d rank%s = %lld does not divide it, so no optimization.accum_steps keeps it\n---> HINT: use a "
                  "data.batch_size and a rank count whose product divides %lld", (long long)was, B, world,
                  world == 1 ? "" : "s", (long long)per_accum, (long long)was);
    cfg->optimization.accum_steps = (int)(was / per_accum);
    run_log(rf, "resume: keeping the checkpoint's global batch of %lld clips: optimization.accum_steps %d -> %d "
                "(data.batch_size %d x %d x %d rank%s)\n", (long long)was, accum, cfg->optimization.accum_steps, B,
            cfg->optimization.accum_steps, world, world == 1 ? "" : "s");
}

// Consensus: the checkpoint resumed (rank 0's newest verified one, as resume_open_run chose) carries the global
// copy, the outer momentum and the other sites' weights (consensus.bin). Collective.
static void resume_consensus(Consensus *c, const RunFolder *rf, long step) {
    void *blob = NULL;
    size_t bytes = 0;
    char where[1300] = "the checkpoint";
    if (dist_rank() == 0) {
        char notes[2048] = "";
        char *dir = checkpoint_newest_verified(rf->path, notes, sizeof notes);
        ErrorText err = {""};
        if (dir) snprintf(where, sizeof where, "%s", dir);
        char expect[40];
        snprintf(expect, sizeof expect, "step_%06ld", step);
        if (dir && strstr(dir, expect)) blob = checkpoint_read_blob(dir, "consensus.bin", &bytes, &err);
        if (!blob && err.text[0]) fprintf(stderr, "consensus: %s\n", err.text);
        free(dir);
    }
    consensus_restore(c, blob, bytes, where);
    free(blob);
}

// data.site_paths (consensus): this rank's site opens only its own store; otherwise data.datasets as usual.
static DataSource *open_site_data(const Config *cfg, int *site_data) {
    *site_data = cfg->data.site_paths.count > 0;
    if (!*site_data) return data_open(cfg);
    const int world = dist_world(), sites = cfg->dist.sites;
    dist_check_sites(sites);
    Config site = *cfg;
    site.data.datasets.count = 1;
    snprintf(site.data.datasets.item[0], sizeof site.data.datasets.item[0], "%s",
             cfg->data.site_paths.item[dist_rank() / (world / sites)]);
    site.data.datasets_weights.count = 0;
    return data_open(&site);
}

// A preemption signal or checkpoint request on any rank stops or checkpoints every rank: one MAX a step.
static void agree_on_stop(int *sig, int *request) {
    int flags[2] = {preempt_signal(), checkpoint_take_request()};
    dist_allreduce_host(flags, 2, DIST_INT, DIST_MAX, "the agreement on preemption");
    *sig = flags[0], *request = flags[1];
}

int train_run(const Config *cfg_in, const char *command) {
    preempt_install();
    dist_init(cfg_in->dist.timeout_s);
    Config run_cfg = *cfg_in;  // optimization.accum_steps may change on resume (keep_global_batch)
    const Config *cfg = &run_cfg;
    if (dist_rank() != 0 && !freopen("/dev/null", "w", stdout))  // rank 0 speaks for the world; errors: stderr
        die_internal("%s:%d: freopen /dev/null failed", __FILE__, __LINE__);
    char device[512];
    Backend *be = train_backend(cfg, device, sizeof device);
    dist_attach(be);
    dist_print_layout(stdout, device);
    RunFolder rf = {0};
    Trainer tr = {.cfg = cfg, .staged_first = -1};
    tr.model = model_create(cfg, be);
    parse_injection(tr.model);
    NumericsWatch watch = {.window = xcalloc((size_t)cfg->logging.spike_window, sizeof(double))};
    tr.data = open_site_data(cfg, &tr.site_data);  // before the run folder: a bad store must not leave an empty run
    TrainPosition from = {0, 0};
    if (dist_rank() == 0) from = resume_open_run(&rf, tr.model, cfg, device, command);
    from = share_start(tr.model, from);
    keep_global_batch(&run_cfg, from, &rf);
    open_read_log(&tr, &rf);  // collective
    tr.consensus = consensus_create(tr.model, cfg);  // before the buckets: splits the world into sites
    if (tr.consensus)
        run_log(&rf, "consensus: %d sites of %d rank%s, %s exchange every %d steps (%s)\n", cfg->dist.sites,
                dist_site_ranks(), dist_site_ranks() == 1 ? "" : "s", cfg->dist.consensus, cfg->dist.local_steps,
                cfg->dist.exchange_dtype);
    if (tr.consensus && from.step > 0) resume_consensus(tr.consensus, &rf, from.step);
    if (dist_active())
        tr.dist = dist_grads_create(tr.model, cfg->dist.bucket_mb, strcmp(cfg->dist.reduce_dtype, "bfloat16") == 0);
    tr.data_cursor = from.data_cursor;
    const DataReader reader = data_reader(&tr);  // its runs of accum x B positions, so the read-ahead follows them
    const int64_t run = (int64_t)cfg->optimization.accum_steps * cfg->data.batch_size;
    data_set_read_pattern(tr.data, reader.cursor + reader.rank * run, run, reader.readers * run);
    config_print_table(cfg, stdout);
    if (rf.log) config_print_table(cfg, rf.log);  // other ranks than 0 have no run folder
    const long total = train_total_steps(cfg);
    run_log(&rf, "device: %s\n", device);
    run_log(&rf, "run folder %s | device %s | %zu parameters | %ld steps of %d clips (global batch: %d per rank x "
                 "%d micro-batches x %d rank%s)\n", rf.path, be->name, tr.model->table.total, total,
            cfg->data.batch_size * cfg->optimization.accum_steps * dist_world(), cfg->data.batch_size,
            cfg->optimization.accum_steps, dist_world(), dist_world() == 1 ? "" : "s");
    Monitor mon = {0};
    if (rf.metrics) monitor_open(&mon, rf.path, cfg, &tr.model->dims);
    const double start = now_seconds();
    int rc = JEPA_EXIT_OK;
    StepRecord r = {0};
    if (from.step >= total)
        run_log(&rf, "nothing to train: the run is at step %ld of %ld\n---> HINT: raise optimization.max_steps or "
                     "optimization.epochs to continue it, or set meta.resume=never for a new run\n", from.step, total);
    for (long step = from.step; step < total; step++) {
        dist_set_step(step + 1);
        train_step(&tr, step, step == total - 1, &r);
        rc = watch_numerics(&rf, &tr, &r, &watch);
        if (rf.metrics) write_metrics(rf.metrics, &r, cfg->num_masks);
        if (rf.metrics) monitor_step(&mon, &tr, &r, rf.metrics);  // TensorBoard scalars, eval.every probe
        if (rc != JEPA_EXIT_OK) break;
        if (r.step % cfg->logging.log_every == 0 || r.step == total || r.step == 1)
            print_progress(&rf, &r, now_seconds() - start, r.step - from.step);
        if (r.step == from.step + 1) log_memory(&rf, &tr, "after the first step");
        char ckpt[1200];
        int sig, requested;
        agree_on_stop(&sig, &requested);
        const int saved = checkpoint_if_due(&rf, &tr, &r, total, requested, ckpt, sizeof ckpt);
        if (sig) {
            rc = stop_preempted(&rf, &tr, &r, total, sig, saved, ckpt, sizeof ckpt);
            break;
        }
    }
    if (rc == JEPA_EXIT_OK && from.step < total)
        run_log(&rf, "done: %ld steps in %.1f s, final loss %.5f, target std %.3f; run folder %s\n", r.step,
                now_seconds() - start, r.stats.loss_mean, r.stats.target_std, rf.path);
    if (r.step > from.step) log_memory(&rf, &tr, "at the end");
    const long restarts = data_read_restarts(tr.data);
    if (restarts > 0)  // the first batch, plus one per resume-like jump; one per step would mean the pattern is off
        run_log(&rf, "data: the read-ahead started %ld time%s\n", restarts, restarts == 1 ? "" : "s");
    free(watch.window);
    monitor_close(&mon);
    dist_grads_free(tr.dist);
    consensus_free(tr.consensus);
    data_close(tr.data);
    if (tr.reads_log && fclose(tr.reads_log) != 0) fprintf(stderr, "warning: the read log: %s\n", strerror(errno));
    model_free(tr.model);
    backend_destroy(be);
    run_folder_close(&rf);
    dist_finalize();
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

// The CUDA backend's buffers (bf16 activations and working weights; fp32 statistics, master weights, gradients,
// moments; its fp32 staging copy of each input slot), whatever meta.device is: what one GPU needs for this config.
static const BackendSizes CUDA_SIZES = {{2, 4}, 4, 4};

// model_plan_memory per category on the CUDA backend, and its total on the CPU (fp32, no staging).
static void print_memory_plan(const Config *cfg, const ModelDims *d, const TensorTable *t, const int *typical_ctx,
                              const int *typical_tgt) {
    const int B = cfg->data.batch_size;
    const MemoryPlan p = model_plan_memory(d, t, CUDA_SIZES, B);
    const double typical = (double)model_plan_arena(d, CUDA_SIZES.z, B, typical_ctx, typical_tgt);
    printf("memory plan on the CUDA backend (batch %d per micro-batch, model.checkpoint_every %d):\n", B,
           config_checkpoint_every(cfg));
    const struct {
        const char *what;
        size_t bytes;
    } rows[] = {
        {"master weights (fp32)", p.master},
        {"working weights (bf16)", p.working},
        {"gradients (fp32)", p.grads},
        {"AdamW moments (fp32)", p.moments},
        {"target encoder (fp32 + bf16 working copy)", p.target + p.target_working},
        {"position tables and statistics", p.positions + p.stats},
        {"activation arena (the largest masks)", p.arena},
        {"input clips (bf16 double buffer + fp32 staging)", p.inputs},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        printf("  %-50s %8.2f GiB\n", rows[i].what, gib((double)rows[i].bytes));
    printf("  %-50s %8.2f GiB (the activations at these mask lengths: %.2f GiB)\n", "total", gib((double)p.total),
           gib(typical));
    printf("  not planned: the CUDA context, cuBLASLt/cuDNN workspaces, attention scratch (on a GPU: the run log's "
           "peak and nvidia-smi)\n");
    const MemoryPlan cpu = model_plan_memory(d, t, (BackendSizes){{4, 4}, 4, 0}, B);
    printf("memory plan on the CPU backend (float32): %.2f GiB (%zu bytes)\n", gib((double)cpu.total), cpu.total);
}

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
    int typical_ctx[CONFIG_MAX_MASKS], typical_tgt[CONFIG_MAX_MASKS];
    for (int g = 0; g < cfg->num_masks; g++) {
        typical_ctx[g] = (int)lround(mean_ctx[g]);
        typical_tgt[g] = (int)lround(mean_tgt[g]);
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
    print_memory_plan(cfg, &d, &t, typical_ctx, typical_tgt);
    table_free(&t);
    return JEPA_EXIT_OK;
}
