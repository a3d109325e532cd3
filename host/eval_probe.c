// eval_probe.c: the evaluation model and clips (eval.h), the attentive probe and `jepa eval probe`.
#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "common.h"
#include "data.h"
#include "eval.h"
#include "rng.h"
#include "train.h"

// ------------------------------------------------------------------------------------------------ model

char *eval_resolve_checkpoint(const char *ckpt, const char *command) {
    char path[1200];
    struct stat st;
    snprintf(path, sizeof path, "%s/manifest.json", ckpt);
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) return xstrdup(ckpt);
    snprintf(path, sizeof path, "%s/checkpoints", ckpt);
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        die_input("%s: --checkpoint %s: expected a checkpoint folder (with manifest.json) or a run folder (with "
                  "checkpoints/)", command, ckpt);
    char notes[8192] = "";
    char *dir = checkpoint_newest_verified(ckpt, notes, sizeof notes);
    fputs(notes, stderr);
    if (!dir) die_input("%s: %s: no checkpoint in %s verifies", command, ckpt, path);
    return dir;
}

void eval_model_open(EvalModel *em, const char *ckpt, int batch, int random_init, int n_overrides, char **overrides) {
    memset(em, 0, sizeof *em);
    char *dir = eval_resolve_checkpoint(ckpt, "eval");
    snprintf(em->dir, sizeof em->dir, "%s", dir);
    free(dir);
    ErrorText err;
    if (checkpoint_verify(em->dir, &err) != 0) die_input("eval: %s", err.text);
    char path[1200];
    snprintf(path, sizeof path, "%s/config.yaml", em->dir);
    config_load(&em->cfg, path, n_overrides, overrides);
    em->cfg.data.batch_size = batch;  // the arena is planned for the evaluation batch
    config_validate(&em->cfg);
    em->be = train_backend(&em->cfg, em->device, sizeof em->device);
    em->model = model_create(&em->cfg, em->be);
    if (random_init) return;
    if (checkpoint_match(em->dir, em->model, &em->cfg, &err) != 0) die_input("eval: %s", err.text);
    TrainPosition pos;
    checkpoint_load(em->dir, em->model, &pos);
    em->step = pos.step;
}

void eval_model_close(EvalModel *em) {
    model_free(em->model);
    backend_destroy(em->be);
    em->model = NULL;
    em->be = NULL;
}

// ------------------------------------------------------------------------------------------------ clips

void eval_clips_open(EvalClips *c, const char *path, const Config *cfg) {
    memset(c, 0, sizeof *c);
    c->frames = cfg->data.num_frames;
    c->step = cfg->data.sampling_rate;
    c->size = cfg->data.crop_size;
    const int span = (c->frames - 1) * c->step + 1;
    c->store = store_open(path, span, "data.num_frames x data.sampling_rate of the checkpoint");
    const StoreShape *s = &c->store->shape;
    if (s->height != c->size || s->width != c->size)
        die_input("eval: %s: frames are %dx%d; the model takes %dx%d (data.crop_size)\n---> HINT: jepa data synth "
                  "--size %d", path, s->height, s->width, c->size, c->size, c->size);
    store_reader_init(&c->reader);
}

void eval_clips_read(EvalClips *c, int64_t first, int count, float *out) {
    const size_t frame_px = (size_t)c->size * c->size;
    const int span = (c->frames - 1) * c->step + 1;
    for (int k = 0; k < count; k++) {
        const uint8_t *rgb = store_read_frames(c->store, &c->reader, first + k, 0, span);
        float *clip = out + (size_t)k * c->frames * frame_px * 3;
        for (int t = 0; t < c->frames; t++)
            data_normalise(rgb + (size_t)t * c->step * frame_px * 3, frame_px, clip + (size_t)t * frame_px * 3);
    }
}

void eval_clips_close(EvalClips *c) {
    store_reader_free(&c->reader);
    store_close(c->store);
}

void eval_features(EvalModel *em, EvalClips *c, int64_t first, int64_t count, int use_target, double *out) {
    const ModelDims *d = &em->model->dims;
    const int batch = em->cfg.data.batch_size;
    float *clips = xmalloc(model_clip_elems(d, batch) * sizeof(float));  // [batch, T, H, W, 3]
    const size_t per_clip = (size_t)d->tokens * d->enc.width;
    for (int64_t k = 0; k < count; k += batch) {
        const int n = count - k < batch ? (int)(count - k) : batch;
        eval_clips_read(c, first + k, n, clips);
        model_encode(em->model, clips, n, use_target, out + (size_t)k * per_clip);
    }
    free(clips);
}

// ------------------------------------------------------------------------------------------------ probe

ProbeOptions probe_default_options(void) {
    // 200 epochs at 1e-2: on the balls world the held-out R^2 of either encoder still rose from 60 epochs at 3e-3
    // (trained: position 0.57 -> 0.89) and had levelled off here.
    return (ProbeOptions){.heads = 4, .epochs = 200, .batch = 64, .lr = 1e-2, .weight_decay = 1e-4, .seed = 0};
}

size_t probe_param_count(const Probe *p) {
    const size_t hd = (size_t)p->heads * p->dim;
    return hd + (size_t)p->outputs * hd + (size_t)p->outputs;
}

double *probe_param(Probe *p, size_t i) {
    const size_t hd = (size_t)p->heads * p->dim, nw = (size_t)p->outputs * hd;
    if (i < hd) return &p->u[i];
    if (i < hd + nw) return &p->w[i - hd];
    return &p->b[i - hd - nw];
}

// One sample x [tokens, dim]: attention a [heads, tokens], pooled z [heads*dim], outputs y [outputs].
static void probe_forward_one(const Probe *p, const double *x, double *a, double *z, double *y) {
    const int T = p->tokens, D = p->dim, H = p->heads;
    const double scale = 1.0 / sqrt((double)D);
    for (int h = 0; h < H; h++) {
        const double *u = p->u + (size_t)h * D;
        double *ah = a + (size_t)h * T, mx = -INFINITY, sum = 0;
        for (int i = 0; i < T; i++) {
            double s = 0;
            for (int c = 0; c < D; c++) s += u[c] * x[(size_t)i * D + c];
            ah[i] = s * scale;
            mx = fmax(mx, ah[i]);
        }
        for (int i = 0; i < T; i++) sum += ah[i] = exp(ah[i] - mx);
        double *zh = z + (size_t)h * D;
        memset(zh, 0, (size_t)D * sizeof(double));
        for (int i = 0; i < T; i++) {
            ah[i] /= sum;
            for (int c = 0; c < D; c++) zh[c] += ah[i] * x[(size_t)i * D + c];
        }
    }
    const int HD = H * D;
    for (int o = 0; o < p->outputs; o++) {
        double s = p->b[o];
        for (int j = 0; j < HD; j++) s += p->w[(size_t)o * HD + j] * z[j];
        y[o] = s;
    }
}

// Gradients of one sample given dy [outputs]; accumulates into gu [heads, dim], gw, gb. dz [heads*dim] is scratch.
static void probe_backward_one(const Probe *p, const double *x, const double *a, const double *z, const double *dy,
                               double *dz, double *gu, double *gw, double *gb) {
    const int T = p->tokens, D = p->dim, H = p->heads, HD = H * D;
    const double scale = 1.0 / sqrt((double)D);
    memset(dz, 0, (size_t)HD * sizeof(double));
    for (int o = 0; o < p->outputs; o++) {
        gb[o] += dy[o];
        for (int j = 0; j < HD; j++) {
            gw[(size_t)o * HD + j] += dy[o] * z[j];
            dz[j] += dy[o] * p->w[(size_t)o * HD + j];
        }
    }
    for (int h = 0; h < H; h++) {
        const double *ah = a + (size_t)h * T, *dzh = dz + (size_t)h * D;
        // z_h = sum_i a_i x_i: da_i = dz_h . x_i; softmax: ds_i = a_i (da_i - sum_j a_j da_j); s_i = u . x_i * scale
        double mean = 0;
        for (int i = 0; i < T; i++) {
            double da = 0;
            for (int c = 0; c < D; c++) da += dzh[c] * x[(size_t)i * D + c];
            mean += ah[i] * da;
        }
        for (int i = 0; i < T; i++) {
            double da = 0;
            for (int c = 0; c < D; c++) da += dzh[c] * x[(size_t)i * D + c];
            const double ds = ah[i] * (da - mean) * scale;
            for (int c = 0; c < D; c++) gu[(size_t)h * D + c] += ds * x[(size_t)i * D + c];
        }
    }
}

typedef struct {
    double *a, *z, *y, *dy, *dz;
} ProbeScratch;

static void scratch_alloc(const Probe *p, ProbeScratch *s) {
    s->a = xmalloc((size_t)p->heads * p->tokens * sizeof(double));
    s->z = xmalloc((size_t)p->heads * p->dim * sizeof(double));
    s->dz = xmalloc((size_t)p->heads * p->dim * sizeof(double));
    s->y = xmalloc((size_t)p->outputs * sizeof(double));
    s->dy = xmalloc((size_t)p->outputs * sizeof(double));
}

static void scratch_free(ProbeScratch *s) {
    free(s->a), free(s->z), free(s->dz), free(s->y), free(s->dy);
}

// Mean over samples of 0.5 * |y - t|^2 (t standardised) + 0.5 * wd * |w|^2; gradient into grads (u, w, b order).
double probe_loss(const Probe *p, const double *X, const double *Y, const int *idx, int n_idx, double weight_decay,
                  double *grads) {
    const size_t np = probe_param_count(p), hd = (size_t)p->heads * p->dim, nw = (size_t)p->outputs * hd;
    const size_t per = (size_t)p->tokens * p->dim;
    ProbeScratch s;
    scratch_alloc(p, &s);
    if (grads) memset(grads, 0, np * sizeof(double));
    double loss = 0;
    for (int k = 0; k < n_idx; k++) {
        const double *x = X + (size_t)idx[k] * per, *t = Y + (size_t)idx[k] * p->outputs;
        probe_forward_one(p, x, s.a, s.z, s.y);
        for (int o = 0; o < p->outputs; o++) {
            const double r = s.y[o] - (t[o] - p->y_mean[o]) / p->y_std[o];
            loss += 0.5 * r * r / n_idx;
            s.dy[o] = r / n_idx;
        }
        if (grads) probe_backward_one(p, x, s.a, s.z, s.dy, s.dz, grads, grads + hd, grads + hd + nw);
    }
    for (size_t j = 0; j < nw; j++) {
        loss += 0.5 * weight_decay * p->w[j] * p->w[j];
        if (grads) grads[hd + j] += weight_decay * p->w[j];
    }
    scratch_free(&s);
    return loss;
}

static void probe_init(Probe *p, const ProbeOptions *o, int tokens, int dim, int outputs) {
    p->heads = o->heads;
    p->tokens = tokens;
    p->dim = dim;
    p->outputs = outputs;
    const size_t hd = (size_t)o->heads * dim;
    p->u = xcalloc(hd, sizeof(double));
    p->w = xcalloc((size_t)outputs * hd, sizeof(double));
    p->b = xcalloc((size_t)outputs, sizeof(double));
    p->y_mean = xcalloc((size_t)outputs, sizeof(double));
    p->y_std = xcalloc((size_t)outputs, sizeof(double));
    // Small random queries so the heads start apart; a small head so the first steps are gentle.
    Rng r = rng_stream(o->seed, RNG_EVAL, 0, 0);
    for (size_t j = 0; j < hd; j++) p->u[j] = o->mean_pool ? 0.0 : 0.1 * rng_normal(&r);
    for (size_t j = 0; j < (size_t)outputs * hd; j++) p->w[j] = 0.01 * rng_normal(&r);
}

static void standardise_targets(Probe *p, const double *Y, const int *idx, int n_idx) {
    for (int o = 0; o < p->outputs; o++) {
        double sum = 0, sq = 0;
        for (int k = 0; k < n_idx; k++) sum += Y[(size_t)idx[k] * p->outputs + o];
        const double mean = sum / n_idx;
        for (int k = 0; k < n_idx; k++) {
            const double d = Y[(size_t)idx[k] * p->outputs + o] - mean;
            sq += d * d;
        }
        p->y_mean[o] = mean;
        p->y_std[o] = sq > 0 ? sqrt(sq / n_idx) : 1.0;  // a constant column: predicted as its mean
    }
}

// Fisher-Yates with the probe's stream for the epoch.
static void shuffle(int *v, int n, uint64_t seed, int epoch) {
    Rng r = rng_stream(seed, RNG_EVAL, (uint64_t)epoch + 1, 1);
    for (int i = n - 1; i > 0; i--) {
        const int j = (int)rng_randint(&r, 0, i + 1);
        const int t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

void probe_train(Probe *p, const ProbeOptions *o, const double *X, const double *Y, int tokens, int dim, int outputs,
                 const int *idx, int n_idx) {
    JEPA_ASSERT(n_idx > 0 && o->batch > 0 && o->heads > 0);
    probe_init(p, o, tokens, dim, outputs);
    standardise_targets(p, Y, idx, n_idx);
    const size_t np = probe_param_count(p);
    double *g = xmalloc(np * sizeof(double)), *m = xcalloc(np, sizeof(double)), *v = xcalloc(np, sizeof(double));
    int *order = xmalloc((size_t)n_idx * sizeof(int));
    memcpy(order, idx, (size_t)n_idx * sizeof(int));
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    long t = 0;
    const long total = (long)o->epochs * ((n_idx + o->batch - 1) / o->batch);
    for (int e = 0; e < o->epochs; e++) {
        shuffle(order, n_idx, o->seed, e);
        for (int k = 0; k < n_idx; k += o->batch) {
            const int n = n_idx - k < o->batch ? n_idx - k : o->batch;
            probe_loss(p, X, Y, order + k, n, o->weight_decay, g);
            t++;
            const double lr = o->lr * 0.5 * (1 + cos(M_PI * (double)t / (double)total));  // cosine to zero
            for (size_t j = o->mean_pool ? (size_t)p->heads * p->dim : 0; j < np; j++) {  // u first
                m[j] = b1 * m[j] + (1 - b1) * g[j];
                v[j] = b2 * v[j] + (1 - b2) * g[j] * g[j];
                const double mh = m[j] / (1 - pow(b1, (double)t)), vh = v[j] / (1 - pow(b2, (double)t));
                *probe_param(p, j) -= lr * mh / (sqrt(vh) + eps);
            }
        }
    }
    free(g), free(m), free(v), free(order);
}

void probe_predict(const Probe *p, const double *X, const int *idx, int n_idx, double *Y) {
    ProbeScratch s;
    scratch_alloc(p, &s);
    const size_t per = (size_t)p->tokens * p->dim;
    for (int k = 0; k < n_idx; k++) {
        probe_forward_one(p, X + (size_t)idx[k] * per, s.a, s.z, s.y);
        for (int o = 0; o < p->outputs; o++) Y[(size_t)k * p->outputs + o] = s.y[o] * p->y_std[o] + p->y_mean[o];
    }
    scratch_free(&s);
}

void probe_free(Probe *p) {
    free(p->u), free(p->w), free(p->b), free(p->y_mean), free(p->y_std);
    memset(p, 0, sizeof *p);
}

// A trained encoder's final LayerNorm may shrink most channels (weight decay on its gain), which the probe's
// softmax cannot undo within a few epochs; per-channel standardisation (the role of the LayerNorm in V-JEPA's
// pooler block) puts every encoder on the same footing. Statistics over every token of the training samples.
void eval_standardise_features(double *X, size_t n, int tokens, int dim, const int *idx, int n_idx) {
    double *mean = xcalloc((size_t)dim, sizeof(double)), *sq = xcalloc((size_t)dim, sizeof(double));
    const double count = (double)n_idx * tokens;
    for (int k = 0; k < n_idx; k++)
        for (int t = 0; t < tokens; t++)
            for (int c = 0; c < dim; c++) mean[c] += X[((size_t)idx[k] * tokens + t) * dim + c] / count;
    for (int k = 0; k < n_idx; k++)
        for (int t = 0; t < tokens; t++)
            for (int c = 0; c < dim; c++) {
                const double e = X[((size_t)idx[k] * tokens + t) * dim + c] - mean[c];
                sq[c] += e * e / count;
            }
    for (int c = 0; c < dim; c++) sq[c] = sq[c] > 1e-20 ? 1.0 / sqrt(sq[c]) : 1.0;
    for (size_t i = 0; i < n * tokens; i++)
        for (int c = 0; c < dim; c++) X[i * dim + c] = (X[i * dim + c] - mean[c]) * sq[c];
    free(mean), free(sq);
}

void eval_r2(const double *pred, const double *truth, int n, int k, double *r2) {
    for (int c = 0; c < k; c++) {
        double mean = 0, res = 0, tot = 0;
        for (int i = 0; i < n; i++) mean += truth[(size_t)i * k + c] / n;
        for (int i = 0; i < n; i++) {
            const double e = pred[(size_t)i * k + c] - truth[(size_t)i * k + c], d = truth[(size_t)i * k + c] - mean;
            res += e * e;
            tot += d * d;
        }
        r2[c] = tot > 0 ? 1.0 - res / tot : 0.0;
    }
}

// ------------------------------------------------------------------------------------------------ jepa eval probe

static const char *PROBE_HELP =
    "usage: jepa eval probe --checkpoint DIR --data FILE [options] [key=value ...]\n"
    "\n"
    "Freezes the encoder of a checkpoint, extracts its features of the store's clips and trains an attentive probe\n"
    "(learned queries pooling the tokens of each time step, then a linear head) to regress the ground-truth /states\n"
    "at that time step (the first frame of each tubelet). Clips are split into training and held-out sets; the same\n"
    "probe is trained on a random-init encoder of the same size. Reports R^2 per state column on the held-out clips,\n"
    "and per kind (position: *_x, *_y; velocity: *_vx, *_vy). Ball order in a multi-ball store is arbitrary with\n"
    "respect to appearance, so probe positions on a one-ball store (jepa data synth --balls 1).\n"
    "\n"
    "options:\n"
    "  --checkpoint DIR   a checkpoint folder or a run folder (its newest checkpoint that verifies)\n"
    "  --data FILE        an HDF5 store with /states, frames data.crop_size square (jepa data synth)\n"
    "  --clips N          clips used, from the first (default: all, at most 512)\n"
    "  --holdout F        fraction of clips held out (default 0.25)\n"
    "  --encoder E        target (default: the EMA encoder V-JEPA evaluates) or context\n"
    "  --heads H          probe queries (default 4)\n"
    "  --pool P           attentive (default) or mean: a linear probe on the mean of the time step's tokens\n"
    "  --epochs E         probe epochs (default 200)\n"
    "  --lr X             probe Adam learning rate, cosine to 0 (default 1e-2)\n"
    "  --seed S           split, probe init and order (default 0)\n"
    "  --batch B          clips per encoder forward pass (default 8)\n"
    "  --no-baseline      skip the random-init encoder\n"
    "  -o FILE            the JSON result (default: eval_probe.json); scripts/plot_run.py FILE draws it\n"
    "  key=value          overrides of the checkpoint's config (meta.device=cpu, meta.threads=1)\n";

typedef struct {
    const char *ckpt, *data, *out;
    int clips, heads, epochs, seed, batch, baseline, use_target, n_overrides, mean_pool;
    double holdout, lr;
    char **overrides;
} ProbeArgs;

static double arg_double(const char *cmd, const char *opt, const char *text, double lo, double hi) {
    char *end;
    errno = 0;
    const double v = strtod(text, &end);
    if (!text[0] || *end || errno || !(v >= lo && v <= hi))
        die_input("%s: %s '%s': expected a number in [%g, %g]", cmd, opt, text, lo, hi);
    return v;
}

static void parse_probe(int argc, char **argv, ProbeArgs *a) {
    *a = (ProbeArgs){.out = "eval_probe.json", .clips = 512, .heads = 4, .epochs = 200, .batch = 8, .baseline = 1,
                     .use_target = 1, .holdout = 0.25, .lr = 1e-2};
    a->overrides = xcalloc((size_t)argc + 1, sizeof(char *));
    const char *cmd = "eval probe";
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
        const int has = i + 1 < argc;
        if (!strcmp(o, "--no-baseline")) { a->baseline = 0; continue; }
        if (strchr(o, '=') && o[0] != '-') { a->overrides[a->n_overrides++] = argv[i]; continue; }
        if (o[0] != '-') die_input("%s: unexpected argument '%s' (see jepa eval probe --help)", cmd, o);
        if (!has) die_input("%s: %s needs a value (see jepa eval probe --help)", cmd, o);
        const char *v = argv[++i];
        if (!strcmp(o, "--checkpoint")) a->ckpt = v;
        else if (!strcmp(o, "--data")) a->data = v;
        else if (!strcmp(o, "-o")) a->out = v;
        else if (!strcmp(o, "--clips")) a->clips = (int)arg_double(cmd, o, v, 2, 1 << 20);
        else if (!strcmp(o, "--heads")) a->heads = (int)arg_double(cmd, o, v, 1, 64);
        else if (!strcmp(o, "--epochs")) a->epochs = (int)arg_double(cmd, o, v, 1, 100000);
        else if (!strcmp(o, "--seed")) a->seed = (int)arg_double(cmd, o, v, 0, 2147483647);
        else if (!strcmp(o, "--batch")) a->batch = (int)arg_double(cmd, o, v, 1, 4096);
        else if (!strcmp(o, "--holdout")) a->holdout = arg_double(cmd, o, v, 0.01, 0.99);
        else if (!strcmp(o, "--lr")) a->lr = arg_double(cmd, o, v, 1e-8, 10);
        else if (!strcmp(o, "--pool")) {
            if (strcmp(v, "attentive") && strcmp(v, "mean")) die_input("%s: --pool '%s': expected attentive or mean", cmd, v);
            a->mean_pool = !strcmp(v, "mean");
        } else if (!strcmp(o, "--encoder")) {
            if (strcmp(v, "target") && strcmp(v, "context"))
                die_input("%s: --encoder '%s': expected target or context", cmd, v);
            a->use_target = !strcmp(v, "target");
        } else die_input("%s: unknown option '%s' (see jepa eval probe --help)", cmd, o);
    }
    if (!a->ckpt || !a->data) die_input("%s: --checkpoint DIR and --data FILE are required (see jepa eval probe --help)", cmd);
}

// Per probe sample (clip, time step): the state at the first frame of the step's tubelet. Y [clips*slots, S].
double *eval_probe_targets(EvalClips *c, const ModelDims *d, int clips) {
    const int S = c->store->extras.state_dim, Ts = c->store->shape.frames, slots = d->grid_t;
    float *st = xmalloc((size_t)clips * Ts * S * sizeof(float));
    store_read_side_floats(c->store->file, "states", 0, clips, st);
    double *Y = xmalloc((size_t)clips * slots * S * sizeof(double));
    for (int k = 0; k < clips; k++)
        for (int t = 0; t < slots; t++) {
            const int frame = t * d->tubelet * c->step;
            for (int j = 0; j < S; j++)
                Y[((size_t)k * slots + t) * S + j] = st[((size_t)k * Ts + frame) * S + j];
        }
    free(st);
    return Y;
}

// Clips shuffled by the seed; the first (1 - holdout) train. Samples are (clip, time step) so a clip's steps stay
// on one side. train / test receive sample indices.
void eval_split_by_clip(int clips, int slots, double holdout, uint64_t seed, int *train, int *n_train, int *test,
                          int *n_test) {
    int *order = xmalloc((size_t)clips * sizeof(int));
    for (int k = 0; k < clips; k++) order[k] = k;
    shuffle(order, clips, seed, -1);
    int n_test_clips = (int)lround(holdout * clips);
    if (n_test_clips < 1) n_test_clips = 1;
    if (n_test_clips >= clips) n_test_clips = clips - 1;
    *n_train = *n_test = 0;
    for (int k = 0; k < clips; k++)
        for (int t = 0; t < slots; t++) {
            const int sample = order[k] * slots + t;
            if (k < clips - n_test_clips) train[(*n_train)++] = sample;
            else test[(*n_test)++] = sample;
        }
    free(order);
}

// "ball0_x" -> 'p' (position), "ball0_vx" -> 'v' (velocity), else 0.
static char state_kind(const char *name) {
    const char *u = strrchr(name, '_');
    if (!u) return 0;
    if (!strcmp(u, "_x") || !strcmp(u, "_y")) return 'p';
    if (!strcmp(u, "_vx") || !strcmp(u, "_vy")) return 'v';
    return 0;
}

void eval_probe_fit(const ProbeOptions *o, double *X, size_t n, const double *Y, int tps, int dim, const Store *store,
                    const int *train, int n_train, const int *test, int n_test, ProbeResult *r) {
    const int S = store->extras.state_dim;
    const double t0 = now_seconds();
    eval_standardise_features(X, n, tps, dim, train, n_train);
    Probe p;
    probe_train(&p, o, X, Y, tps, dim, S, train, n_train);
    r->pred = xmalloc((size_t)n_test * S * sizeof(double));
    probe_predict(&p, X, test, n_test, r->pred);
    double *truth = xmalloc((size_t)n_test * S * sizeof(double));
    for (int k = 0; k < n_test; k++) memcpy(truth + (size_t)k * S, Y + (size_t)test[k] * S, (size_t)S * sizeof(double));
    r->r2 = xmalloc((size_t)S * sizeof(double));
    eval_r2(r->pred, truth, n_test, S, r->r2);
    double sum[2] = {0, 0};
    int count[2] = {0, 0};
    for (int j = 0; j < S; j++) {
        const char kind = state_kind(store->extras.state_names[j]);
        if (kind) sum[kind == 'v'] += r->r2[j], count[kind == 'v']++;
    }
    r->position = count[0] ? sum[0] / count[0] : NAN;
    r->velocity = count[1] ? sum[1] / count[1] : NAN;
    r->seconds = now_seconds() - t0;
    probe_free(&p);
    free(truth);
}

void probe_result_free(ProbeResult *r) {
    free(r->r2), free(r->pred);
    r->r2 = r->pred = NULL;
}

static void run_probe(const ProbeArgs *a, EvalModel *em, EvalClips *c, int clips, const double *Y, const int *train,
                      int n_train, const int *test, int n_test, ProbeResult *r) {
    const ModelDims *d = &em->model->dims;
    const double t0 = now_seconds();
    double *X = xmalloc((size_t)clips * d->tokens * d->enc.width * sizeof(double));  // [clips*slots, tps, D]
    eval_features(em, c, 0, clips, a->use_target, X);
    ProbeOptions o = probe_default_options();
    o.heads = a->mean_pool ? 1 : a->heads, o.epochs = a->epochs, o.lr = a->lr, o.seed = (uint64_t)a->seed;
    o.mean_pool = a->mean_pool;
    eval_probe_fit(&o, X, (size_t)clips * d->grid_t, Y, d->grid_h * d->grid_w, d->enc.width, c->store, train, n_train,
                   test, n_test, r);
    r->seconds = now_seconds() - t0;
    free(X);
}

int eval_wants_help(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
    return 0;
}

void eval_json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20) fprintf(f, "\\u%04x", *s);
        else fputc(*s, f);
    }
    fputc('"', f);
}

static void json_number(FILE *f, double v) {
    if (isfinite(v)) fprintf(f, "%.6g", v);
    else fputs("null", f);
}

static void write_probe_result(FILE *f, const char *key, const ProbeResult *r, const EvalClips *c, int n_test,
                               const double *Y, const int *test) {
    const int S = c->store->extras.state_dim;
    fprintf(f, "  \"%s\": {\"position_r2\": ", key);
    json_number(f, r->position);
    fputs(", \"velocity_r2\": ", f);
    json_number(f, r->velocity);
    fprintf(f, ", \"seconds\": %.1f,\n    \"r2\": {", r->seconds);
    for (int j = 0; j < S; j++) {
        fputs(j ? ", " : "", f);
        eval_json_string(f, c->store->extras.state_names[j]);
        fputs(": ", f);
        json_number(f, r->r2[j]);
    }
    // Held-out predictions and truths (at most 2000 samples) for the predicted-vs-true plot.
    const int shown = n_test < 2000 ? n_test : 2000;
    fputs("},\n    \"predicted\": [", f);
    for (int k = 0; k < shown; k++) {
        fputs(k ? ", [" : "[", f);
        for (int j = 0; j < S; j++) fprintf(f, "%s%.4g", j ? ", " : "", r->pred[(size_t)k * S + j]);
        fputc(']', f);
    }
    fputs("],\n    \"true\": [", f);
    for (int k = 0; k < shown; k++) {
        fputs(k ? ", [" : "[", f);
        for (int j = 0; j < S; j++) fprintf(f, "%s%.4g", j ? ", " : "", Y[(size_t)test[k] * S + j]);
        fputc(']', f);
    }
    fputs("]}", f);
}

static int cmd_probe(int argc, char **argv) {
    if (eval_wants_help(argc, argv)) return fputs(PROBE_HELP, stdout), JEPA_EXIT_OK;
    ProbeArgs a;
    parse_probe(argc, argv, &a);
    EvalModel em;
    eval_model_open(&em, a.ckpt, a.batch, 0, a.n_overrides, a.overrides);
    EvalClips c;
    eval_clips_open(&c, a.data, &em.cfg);
    if (c.store->extras.state_dim == 0)
        die_input("eval probe: %s has no /states to probe\n---> HINT: jepa data synth --world balls writes them", a.data);
    const ModelDims *d = &em.model->dims;
    const int clips = (int)(c.store->shape.clips < a.clips ? c.store->shape.clips : a.clips);
    if (clips < 2) die_input("eval probe: %s: %d clip; the split needs at least 2", a.data, clips);
    const int slots = d->grid_t, S = c.store->extras.state_dim;
    double *Y = eval_probe_targets(&c, d, clips);
    int *train = xmalloc((size_t)clips * slots * sizeof(int)), *test = xmalloc((size_t)clips * slots * sizeof(int));
    int n_train, n_test;
    eval_split_by_clip(clips, slots, a.holdout, (uint64_t)a.seed, train, &n_train, test, &n_test);
    printf("eval probe: %s (step %ld) on %s: %d clips x %d time steps, %d state columns, %d held-out samples\n",
           em.dir, em.step, a.data, clips, slots, S, n_test);
    ProbeResult trained, random = {0};
    run_probe(&a, &em, &c, clips, Y, train, n_train, test, n_test, &trained);
    printf("  trained encoder:     position R^2 %.3f  velocity R^2 %.3f  (%.1f s)\n", trained.position,
           trained.velocity, trained.seconds);
    if (a.baseline) {
        EvalModel rnd;
        eval_model_open(&rnd, a.ckpt, a.batch, 1, a.n_overrides, a.overrides);
        run_probe(&a, &rnd, &c, clips, Y, train, n_train, test, n_test, &random);
        eval_model_close(&rnd);
        printf("  random-init encoder: position R^2 %.3f  velocity R^2 %.3f  (%.1f s)\n", random.position,
               random.velocity, random.seconds);
    }
    FILE *f = fopen(a.out, "w");
    if (!f) die_input("eval probe: cannot write %s: %s", a.out, strerror(errno));
    fputs("{\"kind\": \"probe\", \"checkpoint\": ", f);
    eval_json_string(f, em.dir);
    fprintf(f, ", \"step\": %ld, \"data\": ", em.step);
    eval_json_string(f, a.data);
    fprintf(f, ", \"clips\": %d, \"time_steps\": %d, \"held_out_samples\": %d, \"encoder\": \"%s\", \"heads\": %d, "
               "\"epochs\": %d, \"seed\": %d, \"pool\": \"%s\",\n",
            clips, slots, n_test, a.use_target ? "target" : "context", a.heads, a.epochs, a.seed,
            a.mean_pool ? "mean" : "attentive");
    write_probe_result(f, "trained", &trained, &c, n_test, Y, test);
    if (a.baseline) {
        fputs(",\n", f);
        write_probe_result(f, "random_init", &random, &c, n_test, Y, test);
    }
    fputs("\n}\n", f);
    if (fclose(f) != 0) die_input("eval probe: cannot write %s: %s", a.out, strerror(errno));
    printf("wrote %s\n", a.out);
    probe_result_free(&trained), probe_result_free(&random);
    free(Y), free(train), free(test), free(a.overrides);
    eval_clips_close(&c);
    eval_model_close(&em);
    return JEPA_EXIT_OK;
}

// ------------------------------------------------------------------------------------------------ jepa eval

static const char *EVAL_HELP =
    "usage: jepa eval <probe|surprise> [options]   (docs/world-models.md)\n"
    "\n"
    "  probe --checkpoint DIR --data FILE    attentive probe of frozen features on ground-truth /states (R^2)\n"
    "  surprise --checkpoint DIR             possible vs impossible balls clips: pairwise accuracy and AUROC\n"
    "\n"
    "`jepa eval <command> --help` lists each command's options.\n";

int eval_command(int argc, char **argv) {
    if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) {
        fputs(EVAL_HELP, argc < 1 ? stderr : stdout);
        return argc < 1 ? JEPA_EXIT_BAD_INPUT : JEPA_EXIT_OK;
    }
    if (!strcmp(argv[0], "probe")) return cmd_probe(argc - 1, argv + 1);
    if (!strcmp(argv[0], "surprise")) return eval_surprise_command(argc - 1, argv + 1);
    die_input("eval: unknown command '%s' (commands: probe, surprise; see jepa eval --help)", argv[0]);
}
