// bench_step.c: `jepa bench step CONFIG`: the trainer's own step (train_step, as `jepa train` runs it) timed twice:
// first on one batch staged on the device once and reused (no data read: the compute alone), then reading every
// batch through the configured data source (data.datasets: the HDF5 loader). Both runs take the same steps, so the
// same masks and FLOPs. Phases come from the model's phase marks (model.h ModelPhase) on a BenchClock: CUDA events
// on the compute stream, or the host clock on the CPU backend.
#include <math.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "backend_cuda.h"
#include "bench.h"
#include "common.h"
#include "config.h"
#include "data.h"
#include "kernel_profile.h"
#include "model.h"
#include "provenance.h"
#include "tools.h"
#include "train.h"

static const char *STEP_HELP =
    "usage: jepa bench step CONFIG.yaml [section.key=value ...] [options]\n"
    "\n"
    "Times the training step of CONFIG exactly as `jepa train` runs it (masks, forward, backward, AdamW, EMA, the\n"
    "step's one sync), twice over the same steps (so the same masks and FLOPs):\n"
    "  staged  one batch staged on the device once and reused: no data is read (the compute alone);\n"
    "  loader  every batch read through the configured data source (data.datasets: the HDF5 loader's threads;\n"
    "          without stores, data.source), as in training.\n"
    "Prints per run: step time (median wall clock), clips/s, FLOPs per step by the DESIGN rule at each step's mask\n"
    "lengths, TFLOP/s, MFU (over the measured GEMM ceiling), peak memory, host time in the data source, and the time\n"
    "per phase (target forward, context forward, predictor forward and backward, context backward, optimizer + EMA,\n"
    "input wait, host/data wait) from marks on the device queue (CUDA events; the host clock on the CPU backend).\n"
    "Nothing is written except --json; no run folder, no checkpoints.\n"
    "\n"
    "options:\n"
    "  --steps N         timed steps per run (default 20)\n"
    "  --warmup N        untimed steps before them (default 3)\n"
    "  --staged-only     skip the loader run\n"
    "  --no-kernels      skip the kernel-family profile (on CUDA with CUPTI: N more staged steps under CUPTI's\n"
    "                    activity records, time per kernel family: GEMM, attention, LayerNorm, ...; launch gaps)\n"
    "  --ceiling T       GEMM ceiling in TFLOP/s for MFU (default: measured, bf16 8192^3 on CUDA, 1024^3 on the CPU)\n"
    "  --json FILE       also write every figure as JSON (with device, date, commit, command and each step)\n"
    "  --peer FILE       peer figures (default bench/peer-figures.json)\n"
    "  --help            this text\n";

typedef struct {
    const char *config, *json, *peer;
    char **overrides;
    int n_overrides, steps, warmup, staged_only, no_kernels;
    double ceiling;
} StepOptions;

static void parse_step_options(int argc, char **argv, StepOptions *o) {
    ToolArgs a = {argc, argv, 0, "bench step"};
    *o = (StepOptions){.steps = 20, .warmup = 3, .overrides = xcalloc((size_t)argc + 1, sizeof(char *))};
    while (a.next < argc) {
        const char *arg = argv[a.next++];
        if (!strcmp(arg, "--steps")) o->steps = tool_int(&a, arg, 1, 100000);
        else if (!strcmp(arg, "--warmup")) o->warmup = tool_int(&a, arg, 0, 100000);
        else if (!strcmp(arg, "--staged-only")) o->staged_only = 1;
        else if (!strcmp(arg, "--no-kernels")) o->no_kernels = 1;
        else if (!strcmp(arg, "--json")) o->json = tool_value(&a, arg);
        else if (!strcmp(arg, "--peer")) o->peer = tool_value(&a, arg);
        else if (!strcmp(arg, "--ceiling")) {
            const char *v = tool_value(&a, arg);
            char *end;
            o->ceiling = strtod(v, &end);
            if (*end || !(o->ceiling > 0)) die_input("bench step: --ceiling '%s': expected TFLOP/s above 0", v);
        } else if (!strncmp(arg, "--", 2)) die_input("bench step: unknown option '%s' (see jepa bench step --help)", arg);
        else if (strchr(arg, '=')) o->overrides[o->n_overrides++] = argv[a.next - 1];
        else if (!o->config) o->config = arg;
        else die_input("bench step: a second config '%s' after '%s'; overrides look like key=value", arg, o->config);
    }
    if (!o->config) die_input("bench step: no config given\n---> HINT: jepa bench step configs/vitl16.yaml");
}

// Phases in the order printed; keys as in the JSON.
static const struct {
    ModelPhase phase;
    const char *key, *name;
} PHASES[PHASE_COUNT] = {
    {PHASE_TARGET_FWD, "target_fwd", "target forward (patchify, target encoder, normalisation)"},
    {PHASE_CONTEXT_FWD, "context_fwd", "context forward (patch embedding; context encoder per generator)"},
    {PHASE_PREDICTOR_FWD, "predictor_fwd", "predictor forward (per generator, with the loss)"},
    {PHASE_PREDICTOR_BWD, "predictor_bwd", "predictor backward"},
    {PHASE_CONTEXT_BWD, "context_bwd", "context backward (with the patch embedding's weight gradient)"},
    {PHASE_OPTIMIZER, "optimizer", "optimizer + EMA (zero gradients, norms, clipping, AdamW, EMA)"},
    {PHASE_INPUT, "input_wait", "input wait (the clips' copy to the device)"},
    {PHASE_LOOP, "host_wait", "host / data wait (device idle on the loop: data, masks, launches, sync)"},
};

typedef struct {
    const char *key;   // "staged", "loader"
    char data[700];    // what fed it
    int steps;
    double *step_s, *flops, *data_s;  // per timed step
    double phase_s[PHASE_COUNT];      // summed over the timed steps
    double clock_s;                   // the clock's total over the timed steps
    double loss_first, loss_last;
    size_t peak_bytes;
    json_object *per_step;
} RunResult;

static void on_phase(void *ctx, int phase) { bench_clock_mark(ctx, phase); }

static json_object *double_list(const double *v, int n) {
    json_object *a = json_object_new_array();
    for (int i = 0; i < n; i++) json_object_array_add(a, json_object_new_double(v[i]));
    return a;
}

static size_t peak_memory(Backend *be) {
    size_t now = 0, peak = 0;
    if (!strcmp(be->name, "cuda")) {
        backend_cuda_memory(be, &now, &peak);
        return peak;
    }
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (size_t)u.ru_maxrss * 1024;  // KiB on Linux
}

// warmup + steps train_steps from step 0; the timed ones recorded in res.
static void run_steps(Trainer *tr, BenchClock *clock, const StepOptions *o, RunResult *res) {
    const int total = o->warmup + o->steps, G = tr->cfg->num_masks;
    res->steps = o->steps;
    res->step_s = xcalloc((size_t)o->steps, sizeof(double));
    res->flops = xcalloc((size_t)o->steps, sizeof(double));
    res->data_s = xcalloc((size_t)o->steps, sizeof(double));
    res->per_step = json_object_new_array();
    bench_clock_mark(clock, PHASE_LOOP);  // start the timeline here: what came before is not this run's
    bench_clock_collect(clock, NULL, 0);
    for (int s = 0; s < total; s++) {
        StepRecord r;
        train_step(tr, s, s == total - 1, &r);
        double ph[PHASE_COUNT] = {0};
        const double clock_s = bench_clock_collect(clock, ph, PHASE_COUNT);
        if (!isfinite(r.stats.loss_mean))
            die_internal("bench step: the loss is %f at step %d (%s run)", r.stats.loss_mean, s + 1, res->key);
        if (s < o->warmup) continue;
        const int i = s - o->warmup;
        res->step_s[i] = r.step_s;
        res->flops[i] = r.flops;
        res->data_s[i] = r.data_s;
        res->clock_s += clock_s;
        for (int p = 0; p < PHASE_COUNT; p++) res->phase_s[p] += ph[p];
        if (i == 0) res->loss_first = r.stats.loss_mean;
        res->loss_last = r.stats.loss_mean;
        json_object *js = json_object_new_object();
        json_object_object_add(js, "step", json_object_new_int(s));
        json_object_object_add(js, "step_ms", json_object_new_double(1e3 * r.step_s));
        json_object_object_add(js, "clock_ms", json_object_new_double(1e3 * clock_s));
        json_object_object_add(js, "flops", json_object_new_double(r.flops));
        json_object_object_add(js, "tokens_context", double_list(r.tokens_ctx, G));
        json_object_object_add(js, "tokens_target", double_list(r.tokens_tgt, G));
        json_object_object_add(js, "data_host_ms", json_object_new_double(1e3 * r.data_s));
        json_object_object_add(js, "loss", json_object_new_double(r.stats.loss_mean));
        json_object *jp = json_object_new_object();
        for (int p = 0; p < PHASE_COUNT; p++)
            json_object_object_add(jp, PHASES[p].key, json_object_new_double(1e3 * ph[PHASES[p].phase]));
        json_object_object_add(js, "phases_ms", jp);
        json_object_array_add(res->per_step, js);
    }
    res->peak_bytes = peak_memory(tr->model->be);
}

static double mean_of(const double *v, int n) {
    double sum = 0;
    for (int i = 0; i < n; i++) sum += v[i];
    return sum / n;
}

typedef struct {
    double step_ms, clips_per_s, flops, tflops, mfu, data_ms;
} RunSummary;

static RunSummary summarise(const RunResult *r, int clips_per_step, double ceiling) {
    RunSummary s;
    s.step_ms = 1e3 * bench_median(r->step_s, r->steps);
    s.clips_per_s = clips_per_step / (1e-3 * s.step_ms);
    s.flops = mean_of(r->flops, r->steps);
    s.tflops = s.flops / (1e-3 * s.step_ms) / 1e12;
    s.mfu = s.tflops / ceiling;
    s.data_ms = 1e3 * mean_of(r->data_s, r->steps);
    return s;
}

static double gib(double bytes) { return bytes / (1024.0 * 1024.0 * 1024.0); }

static json_object *run_json(const RunResult *r, const RunSummary *s, int warmup, const char *memory_kind) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "data", json_object_new_string(r->data));
    json_object_object_add(o, "steps", json_object_new_int(r->steps));
    json_object_object_add(o, "warmup_steps", json_object_new_int(warmup));
    json_object_object_add(o, "step_ms_median", json_object_new_double(s->step_ms));
    json_object_object_add(o, "step_ms_mean", json_object_new_double(1e3 * mean_of(r->step_s, r->steps)));
    json_object_object_add(o, "clock_ms_mean", json_object_new_double(1e3 * r->clock_s / r->steps));
    json_object_object_add(o, "clips_per_s", json_object_new_double(s->clips_per_s));
    json_object_object_add(o, "flops_per_step", json_object_new_double(s->flops));
    json_object_object_add(o, "tflops", json_object_new_double(s->tflops));
    json_object_object_add(o, "mfu", json_object_new_double(s->mfu));
    json_object_object_add(o, "peak_memory_bytes", json_object_new_double((double)r->peak_bytes));
    json_object_object_add(o, "peak_memory_kind", json_object_new_string(memory_kind));
    json_object_object_add(o, "data_host_ms_per_step", json_object_new_double(s->data_ms));
    json_object *jp = json_object_new_object();
    for (int p = 0; p < PHASE_COUNT; p++)
        json_object_object_add(jp, PHASES[p].key, json_object_new_double(1e3 * r->phase_s[PHASES[p].phase] / r->steps));
    json_object_object_add(o, "phases_ms", jp);
    json_object_object_add(o, "loss_first", json_object_new_double(r->loss_first));
    json_object_object_add(o, "loss_last", json_object_new_double(r->loss_last));
    json_object_object_add(o, "per_step", json_object_get(r->per_step));
    return o;
}

static void describe_data(const Config *cfg, char *buf, size_t n) {
    if (cfg->data.datasets.count == 0) {
        snprintf(buf, n, "data.source %s (rendered on the host)", cfg->data.source);
        return;
    }
    const int threads = cfg->data.read_threads ? cfg->data.read_threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    int at = snprintf(buf, n, "HDF5 loader, %d reader threads, queue %d:", threads, cfg->data.queue_depth);
    for (int i = 0; i < cfg->data.datasets.count && at < (int)n; i++)
        at += snprintf(buf + at, n - (size_t)at, " %s", cfg->data.datasets.item[i]);
}

// The official step of the same model, batch, frames and crop (not compiled), or NULL.
static json_object *peer_step(json_object *peer, const Config *cfg) {
    json_object *list;
    if (!peer || !json_object_object_get_ex(peer, "train_step_official_vjepa", &list)) return NULL;
    for (size_t i = 0; i < json_object_array_length(list); i++) {
        json_object *e = json_object_array_get_idx(list, i), *model;
        if (json_object_object_get_ex(e, "model", &model) && !strcmp(json_object_get_string(model), cfg->model.model_name) &&
            bench_json_number(e, "batch") == cfg->data.batch_size &&
            bench_json_number(e, "frames") == cfg->data.num_frames &&
            bench_json_number(e, "crop") == cfg->data.crop_size && bench_json_number(e, "compiled") == 0)
            return e;
    }
    return NULL;
}

static void summary_row(BenchTable *t, const char *name, const char *data, int steps, const RunSummary *s,
                        double peak_bytes) {
    char a[32];
    bench_table_add(t, "%s", name);
    bench_table_add(t, "%s", data);
    if (steps) bench_table_add(t, "%d", steps);
    else bench_table_add(t, "-");
    bench_table_add(t, "%.1f", s->step_ms);
    bench_table_add(t, "%.1f", s->clips_per_s);
    bench_table_add(t, "%.4g", s->flops / 1e12);
    bench_table_add(t, "%.4g", s->tflops);
    bench_table_add(t, "%s", isfinite(s->mfu) ? (snprintf(a, sizeof a, "%.1f%%", 100 * s->mfu), a) : "-");
    bench_table_add(t, "%s", bench_num(a, sizeof a, 2, gib(peak_bytes)));
    bench_table_add(t, "%s", bench_num(a, sizeof a, 1, s->data_ms));
}

// o->steps more staged steps (from step `first`) under CUPTI: the device time per kernel family, per step.
static void profile_kernels(Trainer *tr, const StepOptions *o, long first, KernelProfile *kp, double *wall_s) {
    kernel_profile_start();
    const double t0 = now_seconds();
    for (int s = 0; s < o->steps; s++) {
        StepRecord r;
        train_step(tr, first + s, 0, &r);
    }
    kernel_profile_stop(kp);
    *wall_s = now_seconds() - t0;
}

static void print_kernel_families(const KernelProfile *kp, double wall_s, int steps) {
    const char *header[] = {"kernel family", "ms per step", "% of step", "launches per step"};
    BenchTable t;
    bench_table_init(&t, 4, header);
    double summed = 0;
    for (int f = 0; f < KF_COUNT; f++) {
        summed += kp->family_s[f];
        if (kp->family_n[f] == 0) continue;
        bench_table_add(&t, "%s", kernel_family_name((KernelFamily)f));
        bench_table_add(&t, "%.2f", 1e3 * kp->family_s[f] / steps);
        bench_table_add(&t, "%.1f%%", 100 * kp->family_s[f] / wall_s);
        bench_table_add(&t, "%.0f", (double)kp->family_n[f] / steps);
    }
    const struct {
        const char *name;
        double s;
    } rest[] = {{"overlap (work on two streams at once, counted twice above)", summed - kp->busy_s},
                {"device idle: launch gaps, host syncs, waits for the host", wall_s - kp->busy_s},
                {"step (wall clock, the profiled steps)", wall_s}};
    for (size_t i = 0; i < sizeof rest / sizeof rest[0]; i++) {
        bench_table_add(&t, "%s", rest[i].name);
        bench_table_add(&t, "%.2f", 1e3 * rest[i].s / steps);
        bench_table_add(&t, "%.1f%%", 100 * rest[i].s / wall_s);
        bench_table_add(&t, "-");
    }
    bench_table_print(&t, stdout);
    if (kp->other_s > 0) printf("largest unmatched kernel (\"other\"): %s, %.2f ms per step\n", kp->other_name,
                                1e3 * kp->other_s / steps);
    if (kp->n_top == 0) return;
    printf("\nKernels with the most device time (name as launched, C++ names mangled; first 72 characters):\n\n");
    const char *top_header[] = {"kernel", "family", "ms per step", "% of step", "launches per step"};
    BenchTable k;
    bench_table_init(&k, 5, top_header);
    for (int i = 0; i < kp->n_top; i++) {
        bench_table_add(&k, "%.72s", kp->top[i].name);
        bench_table_add(&k, "%s", kernel_family_name(kp->top[i].family));
        bench_table_add(&k, "%.2f", 1e3 * kp->top[i].s / steps);
        bench_table_add(&k, "%.1f%%", 100 * kp->top[i].s / wall_s);
        bench_table_add(&k, "%.0f", (double)kp->top[i].n / steps);
    }
    bench_table_print(&k, stdout);
    if (kp->dropped) printf("WARNING: CUPTI dropped %ld records: the figures above are incomplete\n", kp->dropped);
}

static json_object *kernel_families_json(const KernelProfile *kp, double wall_s, int steps) {
    json_object *o = json_object_new_object(), *fam = json_object_new_object();
    for (int f = 0; f < KF_COUNT; f++) {
        json_object *e = json_object_new_object();
        json_object_object_add(e, "ms_per_step", json_object_new_double(1e3 * kp->family_s[f] / steps));
        json_object_object_add(e, "launches_per_step", json_object_new_double((double)kp->family_n[f] / steps));
        json_object_object_add(fam, kernel_family_name((KernelFamily)f), e);
    }
    json_object_object_add(o, "families", fam);
    json_object *top = json_object_new_array();
    for (int i = 0; i < kp->n_top; i++) {
        json_object *e = json_object_new_object();
        json_object_object_add(e, "name", json_object_new_string(kp->top[i].name));
        json_object_object_add(e, "family", json_object_new_string(kernel_family_name(kp->top[i].family)));
        json_object_object_add(e, "ms_per_step", json_object_new_double(1e3 * kp->top[i].s / steps));
        json_object_object_add(e, "launches_per_step", json_object_new_double((double)kp->top[i].n / steps));
        json_object_array_add(top, e);
    }
    json_object_object_add(o, "top_kernels", top);
    json_object_object_add(o, "busy_ms_per_step", json_object_new_double(1e3 * kp->busy_s / steps));
    json_object_object_add(o, "wall_ms_per_step", json_object_new_double(1e3 * wall_s / steps));
    json_object_object_add(o, "idle_ms_per_step", json_object_new_double(1e3 * (wall_s - kp->busy_s) / steps));
    json_object_object_add(o, "steps", json_object_new_int(steps));
    json_object_object_add(o, "dropped_records", json_object_new_int64(kp->dropped));
    return o;
}

static void print_phases(const RunResult *runs, int n_runs) {
    const char *header[] = {"phase", "staged ms", "%", "loader ms", "%"};
    BenchTable t;
    bench_table_init(&t, 1 + 2 * n_runs, header);
    for (int p = 0; p <= PHASE_COUNT; p++) {
        bench_table_add(&t, "%s", p < PHASE_COUNT ? PHASES[p].name : "sum (the step on the device's timeline)");
        for (int r = 0; r < n_runs; r++) {
            const double total = runs[r].clock_s / runs[r].steps;
            const double ms = p < PHASE_COUNT ? runs[r].phase_s[PHASES[p].phase] / runs[r].steps : total;
            bench_table_add(&t, "%.2f", 1e3 * ms);
            bench_table_add(&t, "%.1f%%", 100 * ms / total);
        }
    }
    bench_table_print(&t, stdout);
}

int bench_step_command(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return fputs(STEP_HELP, stdout), JEPA_EXIT_OK;
    StepOptions o;
    parse_step_options(argc, argv, &o);
    Config cfg;
    config_load(&cfg, o.config, o.n_overrides, o.overrides);
    config_validate(&cfg);
    char device[512], why[1300];
    Backend *be = train_backend(&cfg, device, sizeof device);
    const int gpu = !strcmp(be->name, "cuda");
    BenchClock *clock = bench_clock_create(be);
    json_object *peer = bench_peer_load(o.peer, why, sizeof why);
    const int ceiling_n = gpu ? 8192 : 1024;
    char ceiling_how[160];
    if (o.ceiling > 0) snprintf(ceiling_how, sizeof ceiling_how, "given with --ceiling");
    else snprintf(ceiling_how, sizeof ceiling_how, "measured: %s %d^3 GEMM through the backend's matmul_fwd (%s)",
                  gpu ? "bf16" : "fp32", ceiling_n, gpu ? "cuBLASLt" : "OpenBLAS");
    const double ceiling = o.ceiling > 0 ? o.ceiling : bench_gemm_ceiling(clock, be, ceiling_n, 1.0);

    Model *m = model_create(&cfg, be);
    m->on_phase = on_phase;
    m->phase_ctx = clock;
    const ModelDims *d = &m->dims;
    const int B = cfg.data.batch_size, accum = cfg.optimization.accum_steps, clips_per_step = B * accum;
    printf("# jepa bench step %s\n\ndevice: %s\ncommit %s\n", o.config, device, build_commit());
    printf("model %s: encoder %d x %d (%d heads of %d), predictor %d x %d (%d heads of %d); %d frames at %d px: %d "
           "tokens; batch %d x %d micro-batch%s\n", cfg.model.model_name, d->enc.width, d->enc.depth, d->enc.heads,
           d->enc.head_dim, d->pred.width, d->pred.depth, d->pred.heads, d->pred.head_dim, d->frames, d->crop,
           d->tokens, B, accum, accum > 1 ? "es" : "");
    printf("GEMM ceiling %.1f TFLOP/s (%s); %d warm-up + %d timed steps per run\n", ceiling, ceiling_how, o.warmup,
           o.steps);
    if (!peer) printf("peer figures: %s (none printed)\n", why);
    fflush(stdout);

    RunResult runs[2] = {{.key = "staged"}, {.key = "loader"}};
    KernelProfile kp = {0};
    double kp_wall_s = 0;
    int have_kernels = 0;
    const int n_runs = o.staged_only ? 1 : 2;
    {  // staged: the first batch of the data source, staged once; no data is read after that
        DataSource *ds = data_open(&cfg);
        Trainer tr = {.cfg = &cfg, .model = m, .data = ds, .staged_first = -1};
        double read_s = 0;
        trainer_stage_clips(&tr, 0, &read_s);
        data_close(ds);
        tr.data = NULL;
        tr.reuse_staged = 1;
        snprintf(runs[0].data, sizeof runs[0].data, "one batch staged on the %s once, reused",
                 gpu ? "GPU" : "backend");
        run_steps(&tr, clock, &o, &runs[0]);
        if (!o.no_kernels && (have_kernels = kernel_profile_available(why, sizeof why)))
            profile_kernels(&tr, &o, o.warmup + o.steps, &kp, &kp_wall_s);
    }
    if (n_runs == 2) {
        DataSource *ds = data_open(&cfg);
        Trainer tr = {.cfg = &cfg, .model = m, .data = ds, .staged_first = -1};
        describe_data(&cfg, runs[1].data, sizeof runs[1].data);
        run_steps(&tr, clock, &o, &runs[1]);
        data_close(ds);
    }

    RunSummary sums[2];
    for (int r = 0; r < n_runs; r++) sums[r] = summarise(&runs[r], clips_per_step, ceiling);
    const char *memory_kind = gpu ? "device: the backend's allocations" : "host: max resident set";
    printf("\n## Step (step time: median wall clock of train_step, which ends with the step's one sync; FLOPs by the "
           "DESIGN rule at each step's mask lengths; MFU over the GEMM ceiling; peak memory: %s)\n\n", memory_kind);
    const char *header[] = {"run", "data", "steps", "step ms", "clips/s", "TFLOP per step", "TFLOP/s", "MFU",
                            "peak GiB", "host data ms/step"};
    BenchTable t;
    bench_table_init(&t, 10, header);
    for (int r = 0; r < n_runs; r++)
        summary_row(&t, runs[r].key, runs[r].data, runs[r].steps, &sums[r], (double)runs[r].peak_bytes);
    json_object *pstep = peer_step(peer, &cfg);
    json_object *pceil = NULL;
    if (peer) json_object_object_get_ex(peer, "ceilings", &pceil);
    if (pstep) {
        const double ms = bench_json_number(pstep, "step_ms"), tf = bench_json_number(pstep, "tflops");
        const RunSummary ps = {ms, bench_json_number(pstep, "clips_per_s"), tf * 1e12 * 1e-3 * ms, tf,
                               tf / bench_json_number(pceil, "bf16_gemm_tflops"), NAN};
        summary_row(&t, "official PyTorch V-JEPA (peer)", "its loader (same GPU model)", 0, &ps,
                    bench_json_number(pstep, "peak_mem_gib") * 1024.0 * 1024.0 * 1024.0);
    }
    bench_table_print(&t, stdout);
    if (!pstep) printf("(no peer step figure for %s, batch %d, %d frames at %d)\n", cfg.model.model_name, B,
                       cfg.data.num_frames, cfg.data.crop_size);
    double ratio = NAN;
    if (n_runs == 2) {
        ratio = sums[1].clips_per_s / sums[0].clips_per_s;
        printf("\nloader / staged clips/s: %.3f (%s the 5%% the issue allows)\n", ratio,
               ratio >= 0.95 ? "within" : "NOT within");
    }
    if (pstep)
        printf("ours / official clips/s: staged %.2fx%s\n", sums[0].clips_per_s / bench_json_number(pstep, "clips_per_s"),
               n_runs == 2 ? "" : " (no loader run)");
    if (pstep && n_runs == 2)
        printf("                         loader %.2fx\n", sums[1].clips_per_s / bench_json_number(pstep, "clips_per_s"));
    printf("\n## Time per phase (ms per step, mean over the timed steps; %s)\n\n",
           gpu ? "intervals between CUDA events the model records on the compute stream as each phase begins, so "
                 "time the GPU waited for the host counts toward the phase open then"
               : "host clock between the model's phase marks (CPU ops run synchronously)");
    print_phases(runs, n_runs);
    if (have_kernels) {
        printf("\n## Time per kernel family (staged: %d more steps under CUPTI's activity records, device time of "
               "every kernel and copy by name; ms per step)\n\n", o.steps);
        print_kernel_families(&kp, kp_wall_s, o.steps);
    } else if (!o.no_kernels) {
        printf("\n(no time per kernel family: %s)\n", why);
    }

    if (o.json) {
        json_object *j = json_object_new_object();
        bench_json_provenance(j, device, argc, argv, "step");
        json_object_object_add(j, "config", json_object_new_string(o.config));
        json_object *jm = json_object_new_object();
        json_object_object_add(jm, "model_name", json_object_new_string(cfg.model.model_name));
        const struct { const char *key; int value; } dims[] = {
            {"enc_width", d->enc.width}, {"enc_depth", d->enc.depth}, {"enc_heads", d->enc.heads},
            {"enc_mlp_hidden", d->enc.mlp_hidden}, {"pred_width", d->pred.width}, {"pred_depth", d->pred.depth},
            {"pred_heads", d->pred.heads}, {"pred_mlp_hidden", d->pred.mlp_hidden}, {"tokens", d->tokens},
            {"patch_dim", d->patch_dim}, {"num_masks", d->num_masks}, {"batch", B}, {"accum_steps", accum}};
        for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
            json_object_object_add(jm, dims[i].key, json_object_new_int(dims[i].value));
        json_object_object_add(j, "model", jm);
        json_object_object_add(j, "gemm_ceiling_tflops", json_object_new_double(ceiling));
        json_object_object_add(j, "gemm_ceiling_source", json_object_new_string(ceiling_how));
        json_object *jr = json_object_new_object();
        for (int r = 0; r < n_runs; r++)
            json_object_object_add(jr, runs[r].key, run_json(&runs[r], &sums[r], o.warmup, memory_kind));
        json_object_object_add(j, "runs", jr);
        json_object_object_add(j, "loader_over_staged_clips_per_s", bench_json_double(ratio));
        json_object_object_add(j, "kernel_families", have_kernels ? kernel_families_json(&kp, kp_wall_s, o.steps) : NULL);
        json_object_object_add(j, "peer", pstep ? json_object_get(pstep) : NULL);
        bench_json_write(j, o.json);
        json_object_put(j);
    }
    for (int r = 0; r < n_runs; r++) {
        free(runs[r].step_s);
        free(runs[r].flops);
        free(runs[r].data_s);
        json_object_put(runs[r].per_step);
    }
    if (peer) json_object_put(peer);
    free(o.overrides);
    model_free(m);
    bench_clock_free(clock);
    backend_destroy(be);
    return JEPA_EXIT_OK;
}
