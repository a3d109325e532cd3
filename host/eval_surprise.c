// eval_surprise.c: intuitive physics as violation of expectation (Garrido et al., 2025): a model that understands
// its world is more surprised by an impossible clip than by its lawful twin. `jepa eval surprise`.
#include <errno.h>
#include <math.h>
#include <string.h>

#include "common.h"
#include "data.h"
#include "eval.h"
#include "rng.h"

// ------------------------------------------------------------------------------------------------ metrics

double eval_pairwise_accuracy(const double *possible, const double *impossible, int n) {
    double wins = 0;
    for (int i = 0; i < n; i++) wins += impossible[i] > possible[i] ? 1.0 : impossible[i] == possible[i] ? 0.5 : 0.0;
    return n ? wins / n : NAN;
}

// O(n^2) Mann-Whitney: n is a few hundred pairs at most.
double eval_auroc(const double *possible, const double *impossible, int n) {
    double wins = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            wins += impossible[i] > possible[j] ? 1.0 : impossible[i] == possible[j] ? 0.5 : 0.0;
    return n ? wins / ((double)n * n) : NAN;
}

// ------------------------------------------------------------------------------------------------ pairs

int surprise_windows(const SurpriseSpec *sp) { return (sp->clip_frames - sp->frames) / sp->tubelet + 1; }

// Windows of one clip [L, H, W, 3] (normalised) into out [windows, T, H, W, 3].
static void cut_windows(const SurpriseSpec *sp, const float *clip, float *out) {
    const size_t frame = (size_t)sp->world.height * sp->world.width * 3;
    for (int w = 0; w < surprise_windows(sp); w++)
        memcpy(out + (size_t)w * sp->frames * frame, clip + (size_t)w * sp->tubelet * frame,
               (size_t)sp->frames * frame * sizeof(float));
}

// The twins of pair p of violation v: the first of 16 candidate starts whose twins differ where a window's targets
// can see it (from the context's end on); the last candidate otherwise. Returns the violation frame.
static int draw_pair(const SurpriseSpec *sp, BallsViolation v, int p, uint8_t *pos, uint8_t *imp, int *visible) {
    const int L = sp->clip_frames, lo = sp->context_frames ? sp->context_frames : sp->frames / 2;
    const int hi = L - 2 > lo ? L - 2 : lo;
    int vf = lo;
    for (int k = 0; k < 16; k++) {
        const int64_t sample = ((int64_t)v * 1000000 + p) * 16 + k;
        Rng r = rng_stream(sp->seed, RNG_EVAL, 1000 + (uint64_t)v, (uint64_t)sample);
        vf = (int)rng_randint(&r, lo, hi + 1);
        *visible = balls_twin_clips(&sp->world, sp->seed, sample, L, 1, v, vf, 0, pos, imp);
        if (*visible >= lo) break;
    }
    return vf;
}

static void alloc_scores(SurpriseScores *s, int pairs, int windows) {
    s->pairs = pairs;
    s->windows = windows;
    s->possible = xcalloc((size_t)pairs, sizeof(double));
    s->impossible = xcalloc((size_t)pairs, sizeof(double));
    s->curve_pos = xcalloc((size_t)pairs * windows, sizeof(double));
    s->curve_imp = xcalloc((size_t)pairs * windows, sizeof(double));
    s->violation_frame = xcalloc((size_t)pairs, sizeof(int));
    s->first_visible = xcalloc((size_t)pairs, sizeof(int));
}

void surprise_scores_free(SurpriseScores *s) {
    free(s->possible), free(s->impossible), free(s->curve_pos), free(s->curve_imp);
    free(s->violation_frame), free(s->first_visible);
}

// The largest window score, or with rise the largest increase from one window to the next (what a sudden event
// adds, apart from how hard the clip is to predict throughout).
static double clip_score(const double *v, int n, int rise) {
    double m = -INFINITY;
    for (int i = rise ? 1 : 0; i < n; i++) m = fmax(m, rise ? v[i] - v[i - 1] : v[i]);
    return n == 1 && rise ? 0.0 : m;
}

void surprise_run(const SurpriseSpec *sp, WindowScorer scorer, void *ctx, SurpriseScores *out) {
    JEPA_ASSERT(sp->clip_frames >= sp->frames && sp->tubelet >= 1 && sp->pairs >= 1);
    const int W = surprise_windows(sp), L = sp->clip_frames;
    const size_t px = (size_t)sp->world.height * sp->world.width, clip_px = (size_t)L * px;
    uint8_t *rgb = xmalloc(2 * clip_px * 3);                       // [2, L, H, W, 3] lawful, twin
    float *clip = xmalloc(clip_px * 3 * sizeof(float));             // [L, H, W, 3]
    float *windows = xmalloc(2 * (size_t)W * sp->frames * px * 3 * sizeof(float));  // [2W, T, H, W, 3]
    double *scores = xmalloc(2 * (size_t)W * sizeof(double));
    for (int v = 0; v < BALLS_VIOLATION_COUNT; v++) {
        SurpriseScores *s = &out[v];
        alloc_scores(s, sp->pairs, W);
        for (int p = 0; p < sp->pairs; p++) {
            s->violation_frame[p] = draw_pair(sp, (BallsViolation)v, p, rgb, rgb + clip_px * 3, &s->first_visible[p]);
            for (int twin = 0; twin < 2; twin++) {
                data_normalise(rgb + twin * clip_px * 3, clip_px, clip);
                cut_windows(sp, clip, windows + (size_t)twin * W * sp->frames * px * 3);
            }
            scorer(ctx, windows, 2 * W, scores);
            memcpy(s->curve_pos + (size_t)p * W, scores, (size_t)W * sizeof(double));
            memcpy(s->curve_imp + (size_t)p * W, scores + W, (size_t)W * sizeof(double));
            s->possible[p] = clip_score(scores, W, sp->rise);
            s->impossible[p] = clip_score(scores + W, W, sp->rise);
        }
    }
    free(rgb), free(clip), free(windows), free(scores);
}

void pixel_window_scores(void *ctx, const float *clips, int B, double *scores) {
    const PixelScorer *ps = ctx;
    const size_t frame = (size_t)ps->size * ps->size * 3;
    for (int b = 0; b < B; b++) {
        const float *c = clips + (size_t)b * ps->frames * frame, *last = c + (size_t)(ps->context_frames - 1) * frame;
        double sum = 0;
        for (int t = ps->context_frames; t < ps->frames; t++)
            for (size_t i = 0; i < frame; i++) sum += fabs((double)c[(size_t)t * frame + i] - last[i]);
        scores[b] = sum / ((double)(ps->frames - ps->context_frames) * frame);
    }
}

// ------------------------------------------------------------------------------------------------ the model's score

// The predictor of generator gen, given the first context_steps time steps of a window as context and the rest as
// targets; a window's score is the mean L1 between its predictions and the target encoder's features there.
typedef struct {
    EvalModel *em;
    int gen, context_steps;
    double *pred, *target;  // [B, nt, D]
    int32_t *ctx, *tgt;     // [B, nc], [B, nt]
} ModelScorer;

static void model_window_scores(void *ctx, const float *clips, int B, double *scores) {
    ModelScorer *ms = ctx;
    const ModelDims *d = &ms->em->model->dims;
    const int tps = d->grid_h * d->grid_w, nc = ms->context_steps * tps, nt = d->tokens - nc, D = d->enc.width;
    for (int b = 0; b < B; b++) {
        for (int i = 0; i < nc; i++) ms->ctx[(size_t)b * nc + i] = i;
        for (int i = 0; i < nt; i++) ms->tgt[(size_t)b * nt + i] = nc + i;
    }
    const MaskBatch mk = {.B = B, .n_ctx = nc, .n_tgt = nt, .ctx = ms->ctx, .tgt = ms->tgt};
    model_predict(ms->em->model, clips, ms->gen, &mk, ms->pred, ms->target);
    const size_t per = (size_t)nt * D;
    for (int b = 0; b < B; b++) {
        double sum = 0;
        for (size_t i = 0; i < per; i++) sum += fabs(ms->pred[b * per + i] - ms->target[b * per + i]);
        scores[b] = sum / per;
    }
}

// ------------------------------------------------------------------------------------------------ motion check

static int compare_doubles(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void eval_motion_errors(const double *pred, const double *future, const double *last, int B, int nt, int tps, int D,
                        double moving_fraction, MotionErrors *out) {
    const size_t n = (size_t)B * nt;
    double *err_pred = xmalloc(n * sizeof(double)), *err_keep = xmalloc(n * sizeof(double));
    *out = (MotionErrors){.tokens = (long)n};
    for (int b = 0; b < B; b++)
        for (int i = 0; i < nt; i++) {
            const size_t k = (size_t)b * nt + i;
            const double *p = pred + k * D, *f = future + k * D, *l = last + ((size_t)b * tps + i % tps) * D;
            double ep = 0, ek = 0;
            for (int c = 0; c < D; c++) ep += fabs(p[c] - f[c]), ek += fabs(l[c] - f[c]);
            err_pred[k] = ep / D, err_keep[k] = ek / D;
            out->predictor += err_pred[k] / n, out->persistence += err_keep[k] / n;
        }
    // The moving tokens: persistence's error at or above its (1 - moving_fraction) quantile.
    double *sorted = xmalloc(n * sizeof(double));
    memcpy(sorted, err_keep, n * sizeof(double));
    qsort(sorted, n, sizeof(double), compare_doubles);
    const size_t cut = (size_t)((1.0 - moving_fraction) * (double)n);
    const double threshold = sorted[cut < n ? cut : n - 1];
    for (size_t k = 0; k < n; k++)
        if (err_keep[k] >= threshold) out->moving++, out->predictor_moving += err_pred[k], out->persistence_moving += err_keep[k];
    out->predictor_moving /= (double)out->moving, out->persistence_moving /= (double)out->moving;
    free(err_pred), free(err_keep), free(sorted);
}

// Non-affine LayerNorm of each token (eps 1e-5): the target features model_predict compares against.
static void normalise_rows(double *x, size_t rows, int D) {
    for (size_t r = 0; r < rows; r++) {
        double *v = x + r * D, mean = 0, var = 0;
        for (int c = 0; c < D; c++) mean += v[c] / D;
        for (int c = 0; c < D; c++) var += (v[c] - mean) * (v[c] - mean) / D;
        const double rstd = 1.0 / sqrt(var + 1e-5);
        for (int c = 0; c < D; c++) v[c] = (v[c] - mean) * rstd;
    }
}

// eval_motion_errors over `pairs` fresh lawful clips of one window each (the world's own sample stream, past the
// pairs' samples), with the generator's predictor given the first context_steps time steps.
static void motion_check(const SurpriseSpec *sp, EvalModel *em, int gen, int context_steps, int batch,
                         MotionErrors *out) {
    const ModelDims *d = &em->model->dims;
    const int tps = d->grid_h * d->grid_w, nc = context_steps * tps, nt = d->tokens - nc, D = d->enc.width;
    const int N = sp->pairs, T = sp->frames;
    const size_t px = (size_t)sp->world.height * sp->world.width * 3;
    uint8_t *rgb = xmalloc(T * px);
    float *clips = xmalloc((size_t)batch * T * px * sizeof(float));                     // [batch, T, H, W, 3]
    double *pred = xmalloc((size_t)N * nt * D * sizeof(double));                         // [N, nt, D]
    double *future = xmalloc((size_t)N * nt * D * sizeof(double));                       // [N, nt, D]
    double *last = xmalloc((size_t)N * tps * D * sizeof(double));                        // [N, tps, D]
    double *all = xmalloc((size_t)batch * d->tokens * D * sizeof(double));               // [batch, tokens, D]
    int32_t *ctx = xmalloc((size_t)batch * nc * sizeof(int32_t)), *tgt = xmalloc((size_t)batch * nt * sizeof(int32_t));
    for (int b = 0; b < batch; b++) {
        for (int i = 0; i < nc; i++) ctx[(size_t)b * nc + i] = i;
        for (int i = 0; i < nt; i++) tgt[(size_t)b * nt + i] = nc + i;
    }
    for (int first = 0; first < N; first += batch) {
        const int B = N - first < batch ? N - first : batch;
        for (int b = 0; b < B; b++) {
            balls_clip(&sp->world, sp->seed, (int64_t)1 << 40 | (first + b), T, 1, rgb, NULL);
            data_normalise(rgb, (size_t)T * sp->world.height * sp->world.width, clips + (size_t)b * T * px);
        }
        const MaskBatch mk = {.B = B, .n_ctx = nc, .n_tgt = nt, .ctx = ctx, .tgt = tgt};
        model_predict(em->model, clips, gen, &mk, pred + (size_t)first * nt * D, future + (size_t)first * nt * D);
        model_encode(em->model, clips, B, 1, all);
        normalise_rows(all, (size_t)B * d->tokens, D);
        for (int b = 0; b < B; b++)
            memcpy(last + ((size_t)first + b) * tps * D, all + ((size_t)b * d->tokens + nc - tps) * D,
                   (size_t)tps * D * sizeof(double));
    }
    eval_motion_errors(pred, future, last, N, nt, tps, D, 0.1, out);
    free(rgb), free(clips), free(pred), free(future), free(last), free(all), free(ctx), free(tgt);
}

static void print_motion(const char *who, const MotionErrors *m) {
    printf("  motion, %-11s predictor L1 %.4f vs features-persist %.4f (%.2fx); on the 10%% most-changed tokens "
           "%.4f vs %.4f (%.2fx)\n", who, m->predictor, m->persistence, m->predictor / m->persistence,
           m->predictor_moving, m->persistence_moving, m->predictor_moving / m->persistence_moving);
}

static void write_motion(FILE *f, const char *name, const MotionErrors *m) {
    fprintf(f, "\"%s\": {\"predictor\": %.6g, \"persistence\": %.6g, \"predictor_moving\": %.6g, "
               "\"persistence_moving\": %.6g, \"tokens\": %ld, \"moving\": %ld}",
            name, m->predictor, m->persistence, m->predictor_moving, m->persistence_moving, m->tokens, m->moving);
}

// ------------------------------------------------------------------------------------------------ jepa eval surprise

static const char *SURPRISE_HELP =
    "usage: jepa eval surprise --checkpoint DIR [options] [key=value ...]\n"
    "\n"
    "Draws matched pairs of balls-world clips (the world the checkpoint's synthetic source renders): a lawful clip\n"
    "and its impossible twin, identical until a drawn frame where one law breaks: teleport, vanish, pass_ball\n"
    "(balls pass through each other), pass_wall (balls leave through the walls), colour (a ball changes colour).\n"
    "Windows of data.num_frames frames slide over each clip one tubelet at a time; in each, the predictor sees the\n"
    "first half as context and predicts the second half, and the window's surprise is the mean L1 between its\n"
    "predictions and the target encoder's features. A clip's surprise is its largest window's. Reports, per\n"
    "violation, pairwise accuracy (the twin more surprising than its lawful clip) and AUROC, beside the same model\n"
    "at random init and a pixel baseline (frames persist: mean |frame - last context frame|). Also checks whether\n"
    "the predictor models motion at all: on fresh lawful windows, its L1 beside \"features persist\" (the last\n"
    "context step's target features copied forward), over all future tokens and the 10% that changed most.\n"
    "\n"
    "options:\n"
    "  --checkpoint DIR   a checkpoint folder or a run folder (its newest checkpoint that verifies)\n"
    "  --pairs N          pairs per violation (default 32)\n"
    "  --clip-frames L    frames per clip (default 2 x data.num_frames)\n"
    "  --balls K          balls (default data.synth_balls, at least 2)\n"
    "  --generator G      whose mask token the predictor uses (default: the last mask generator)\n"
    "  --context-steps K  time steps of each window given as context, the rest predicted (default: half)\n"
    "  --score S          a clip's surprise: max (default, its largest window's) or rise (the largest increase\n"
    "                     from one window to the next)\n"
    "  --seed S           clips and violations (default 0)\n"
    "  --no-baseline      skip the random-init model\n"
    "  -o FILE            the JSON result (default: eval_surprise.json); scripts/plot_run.py FILE draws it\n"
    "  key=value          overrides of the checkpoint's config (meta.device=cpu, meta.threads=1)\n";

typedef struct {
    const char *ckpt, *out;
    int pairs, clip_frames, balls, gen, seed, baseline, n_overrides, context_steps, rise;
    char **overrides;
} SurpriseArgs;

static int arg_int(const char *opt, const char *text, int lo, int hi) {
    char *end;
    errno = 0;
    const long v = strtol(text, &end, 10);
    if (!text[0] || *end || errno || v < lo || v > hi)
        die_input("eval surprise: %s '%s': expected an integer in [%d, %d]", opt, text, lo, hi);
    return (int)v;
}

static void parse_surprise(int argc, char **argv, SurpriseArgs *a) {
    *a = (SurpriseArgs){.out = "eval_surprise.json", .pairs = 32, .gen = -1, .baseline = 1};
    a->overrides = xcalloc((size_t)argc + 1, sizeof(char *));
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--no-baseline")) { a->baseline = 0; continue; }
        if (strchr(o, '=') && o[0] != '-') { a->overrides[a->n_overrides++] = argv[i]; continue; }
        if (o[0] != '-') die_input("eval surprise: unexpected argument '%s' (see jepa eval surprise --help)", o);
        if (i + 1 >= argc) die_input("eval surprise: %s needs a value (see jepa eval surprise --help)", o);
        const char *v = argv[++i];
        if (!strcmp(o, "--checkpoint")) a->ckpt = v;
        else if (!strcmp(o, "-o")) a->out = v;
        else if (!strcmp(o, "--pairs")) a->pairs = arg_int(o, v, 1, 100000);
        else if (!strcmp(o, "--clip-frames")) a->clip_frames = arg_int(o, v, 1, 4096);
        else if (!strcmp(o, "--balls")) a->balls = arg_int(o, v, 2, BALLS_MAX);
        else if (!strcmp(o, "--generator")) a->gen = arg_int(o, v, 0, CONFIG_MAX_MASKS - 1);
        else if (!strcmp(o, "--context-steps")) a->context_steps = arg_int(o, v, 1, 4096);
        else if (!strcmp(o, "--score")) {
            if (strcmp(v, "max") && strcmp(v, "rise")) die_input("eval surprise: --score '%s': expected max or rise", v);
            a->rise = !strcmp(v, "rise");
        }
        else if (!strcmp(o, "--seed")) a->seed = arg_int(o, v, 0, 2147483647);
        else die_input("eval surprise: unknown option '%s' (see jepa eval surprise --help)", o);
    }
    if (!a->ckpt) die_input("eval surprise: --checkpoint DIR is required (see jepa eval surprise --help)");
}

// The world data.c's synthetic source renders at this crop (sizes and speeds scale with it).
static void spec_from_config(const SurpriseArgs *a, const Config *cfg, SurpriseSpec *sp) {
    const int crop = cfg->data.crop_size, T = cfg->data.num_frames;
    if (cfg->data.sampling_rate != 1)
        die_input("eval surprise: data.sampling_rate %d: the pairs are drawn at frame step 1 only",
                  cfg->data.sampling_rate);
    const int balls = a->balls ? a->balls : cfg->data.synth_balls < 2 ? 2 : cfg->data.synth_balls;
    sp->world = (BallsWorldConfig){.num_balls = balls, .radius = {crop / 12.0, crop / 6.0},
                                   .speed = {crop / 32.0, crop / 12.0}, .colours = 6, .height = crop, .width = crop};
    balls_check_config(&sp->world);
    sp->pairs = a->pairs;
    sp->frames = T;
    sp->tubelet = cfg->data.tubelet_size;
    sp->clip_frames = a->clip_frames ? a->clip_frames : 2 * T;
    sp->seed = (uint64_t)a->seed;
    sp->rise = a->rise;
    if (sp->clip_frames < T + 2)
        die_input("eval surprise: --clip-frames %d: expected at least data.num_frames + 2 = %d", sp->clip_frames, T + 2);
}

static void model_scores(const SurpriseSpec *sp, EvalModel *em, int gen, int context_steps, SurpriseScores *out) {
    const ModelDims *d = &em->model->dims;
    const int B = 2 * surprise_windows(sp);
    ModelScorer ms = {.em = em, .gen = gen, .context_steps = context_steps};
    const size_t n = (size_t)B * d->tokens;
    ms.pred = xmalloc(n * d->enc.width * sizeof(double));
    ms.target = xmalloc(n * d->enc.width * sizeof(double));
    ms.ctx = xmalloc(n * sizeof(int32_t));
    ms.tgt = xmalloc(n * sizeof(int32_t));
    surprise_run(sp, model_window_scores, &ms, out);
    free(ms.pred), free(ms.target), free(ms.ctx), free(ms.tgt);
}

static void json_doubles(FILE *f, const double *v, int n) {
    fputc('[', f);
    for (int i = 0; i < n; i++) fprintf(f, "%s%.6g", i ? ", " : "", v[i]);
    fputc(']', f);
}

// Per violation and scorer: accuracy, AUROC, and the window curves of the first 4 pairs.
static void write_scores(FILE *f, const char *name, const SurpriseScores *s) {
    fprintf(f, "\"%s\": {\"pairwise_accuracy\": %.4f, \"auroc\": %.4f, \"curves\": [", name,
            eval_pairwise_accuracy(s->possible, s->impossible, s->pairs), eval_auroc(s->possible, s->impossible, s->pairs));
    const int shown = s->pairs < 4 ? s->pairs : 4;
    for (int p = 0; p < shown; p++) {
        fprintf(f, "%s{\"violation_frame\": %d, \"first_visible\": %d, \"possible\": ", p ? ", " : "",
                s->violation_frame[p], s->first_visible[p]);
        json_doubles(f, s->curve_pos + (size_t)p * s->windows, s->windows);
        fputs(", \"impossible\": ", f);
        json_doubles(f, s->curve_imp + (size_t)p * s->windows, s->windows);
        fputc('}', f);
    }
    fputs("]}", f);
}

int eval_surprise_command(int argc, char **argv) {
    if (eval_wants_help(argc, argv)) return fputs(SURPRISE_HELP, stdout), JEPA_EXIT_OK;
    SurpriseArgs a;
    parse_surprise(argc, argv, &a);
    // Both twins' windows go through the model in one pass.
    EvalModel em;
    Config probe_cfg;
    {
        EvalModel tmp;  // the window count depends on the config: open once small to read it
        eval_model_open(&tmp, a.ckpt, 1, 1, a.n_overrides, a.overrides);
        probe_cfg = tmp.cfg;
        eval_model_close(&tmp);
    }
    SurpriseSpec sp;
    spec_from_config(&a, &probe_cfg, &sp);
    sp.context_frames = (a.context_steps ? a.context_steps : probe_cfg.data.num_frames / probe_cfg.data.tubelet_size / 2) *
                        sp.tubelet;
    const int B = 2 * surprise_windows(&sp);
    eval_model_open(&em, a.ckpt, B, 0, a.n_overrides, a.overrides);
    const int gen = a.gen >= 0 ? a.gen : em.model->dims.num_masks - 1, grid_t = em.model->dims.grid_t;
    const int context_steps = a.context_steps ? a.context_steps : grid_t / 2;
    if (context_steps < 1 || context_steps >= grid_t)
        die_input("eval surprise: --context-steps %d: a window has %d time steps; expected 1 to %d", context_steps,
                  grid_t, grid_t - 1);
    if (gen >= em.model->dims.num_masks)
        die_input("eval surprise: --generator %d: the model has %d mask generators", gen, em.model->dims.num_masks);
    printf("eval surprise: %s (step %ld): %d pairs x %d violations, %d-frame clips, %d windows of %d frames, "
           "generator %d\n", em.dir, em.step, sp.pairs, BALLS_VIOLATION_COUNT, sp.clip_frames, B / 2, sp.frames, gen);
    SurpriseScores trained[BALLS_VIOLATION_COUNT], random[BALLS_VIOLATION_COUNT], pixel[BALLS_VIOLATION_COUNT];
    const double t0 = now_seconds();
    model_scores(&sp, &em, gen, context_steps, trained);
    const double t_model = now_seconds() - t0;
    MotionErrors motion_trained, motion_random;
    motion_check(&sp, &em, gen, context_steps, B, &motion_trained);
    if (a.baseline) {
        EvalModel rnd;
        eval_model_open(&rnd, a.ckpt, B, 1, a.n_overrides, a.overrides);
        model_scores(&sp, &rnd, gen, context_steps, random);
        motion_check(&sp, &rnd, gen, context_steps, B, &motion_random);
        eval_model_close(&rnd);
    }
    PixelScorer ps = {.frames = sp.frames, .size = sp.world.height, .context_frames = context_steps * sp.tubelet};
    surprise_run(&sp, pixel_window_scores, &ps, pixel);
    FILE *f = fopen(a.out, "w");
    if (!f) die_input("eval surprise: cannot write %s: %s", a.out, strerror(errno));
    fputs("{\"kind\": \"surprise\", \"checkpoint\": ", f);
    eval_json_string(f, em.dir);
    fprintf(f, ", \"step\": %ld, \"pairs\": %d, \"clip_frames\": %d, \"window_frames\": %d, \"window_step\": %d, "
               "\"context_frames\": %d, \"balls\": %d, \"generator\": %d, \"seed\": %d, \"score\": \"%s\", \"seconds\": %.1f,\n"
               "\"violations\": {",
            em.step, sp.pairs, sp.clip_frames, sp.frames, sp.tubelet, ps.context_frames, sp.world.num_balls, gen,
            a.seed, sp.rise ? "rise" : "max", t_model);
    printf("  %-10s %-21s %-21s %-21s\n", "violation", "trained acc / AUROC", "random-init acc / AUROC",
           "pixels acc / AUROC");
    for (int v = 0; v < BALLS_VIOLATION_COUNT; v++) {
        fprintf(f, "%s\n  \"%s\": {", v ? "," : "", BALLS_VIOLATION_NAMES[v]);
        write_scores(f, "trained", &trained[v]);
        if (a.baseline) fputs(",\n    ", f), write_scores(f, "random_init", &random[v]);
        fputs(",\n    ", f);
        write_scores(f, "pixels", &pixel[v]);
        fputc('}', f);
        const SurpriseScores *r = a.baseline ? &random[v] : &trained[v];
        printf("  %-10s %5.3f / %5.3f         %5.3f / %5.3f         %5.3f / %5.3f\n", BALLS_VIOLATION_NAMES[v],
               eval_pairwise_accuracy(trained[v].possible, trained[v].impossible, sp.pairs),
               eval_auroc(trained[v].possible, trained[v].impossible, sp.pairs),
               a.baseline ? eval_pairwise_accuracy(r->possible, r->impossible, sp.pairs) : NAN,
               a.baseline ? eval_auroc(r->possible, r->impossible, sp.pairs) : NAN,
               eval_pairwise_accuracy(pixel[v].possible, pixel[v].impossible, sp.pairs),
               eval_auroc(pixel[v].possible, pixel[v].impossible, sp.pairs));
    }
    // Every violation has the same number of pairs, so the mean of the accuracies is the accuracy over all pairs.
    double overall[3] = {0, 0, 0};
    for (int v = 0; v < BALLS_VIOLATION_COUNT; v++) {
        overall[0] += eval_pairwise_accuracy(trained[v].possible, trained[v].impossible, sp.pairs) / BALLS_VIOLATION_COUNT;
        if (a.baseline)
            overall[1] += eval_pairwise_accuracy(random[v].possible, random[v].impossible, sp.pairs) / BALLS_VIOLATION_COUNT;
        overall[2] += eval_pairwise_accuracy(pixel[v].possible, pixel[v].impossible, sp.pairs) / BALLS_VIOLATION_COUNT;
    }
    fprintf(f, "},\n\"overall_pairwise_accuracy\": {\"trained\": %.4f, ", overall[0]);
    if (a.baseline) fprintf(f, "\"random_init\": %.4f, ", overall[1]);
    fprintf(f, "\"pixels\": %.4f},\n\"motion\": {", overall[2]);
    write_motion(f, "trained", &motion_trained);
    if (a.baseline) fputs(", ", f), write_motion(f, "random_init", &motion_random);
    fputs("}}\n", f);
    printf("  %-10s %5.3f                 %5.3f                 %5.3f\n", "all", overall[0],
           a.baseline ? overall[1] : NAN, overall[2]);
    print_motion("trained:", &motion_trained);
    if (a.baseline) print_motion("random init:", &motion_random);
    if (fclose(f) != 0) die_input("eval surprise: cannot write %s: %s", a.out, strerror(errno));
    printf("wrote %s (%.1f s for the trained model)\n", a.out, t_model);
    for (int v = 0; v < BALLS_VIOLATION_COUNT; v++) {
        surprise_scores_free(&trained[v]);
        surprise_scores_free(&pixel[v]);
        if (a.baseline) surprise_scores_free(&random[v]);
    }
    eval_model_close(&em);
    free(a.overrides);
    return JEPA_EXIT_OK;
}
