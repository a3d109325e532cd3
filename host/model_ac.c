// model_ac.c: the action-conditioned predictor over the backend ops (model_ac.h; docs/world-models.md).
#include "model_ac.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "common.h"
#include "data.h"
#include "rng.h"
#include "safetensors.h"
#include "world_pusht.h"
#include "world_tworooms.h"

// ---------------------------------------------------------------------------------------------------- sizes

void ac_world_scaling(const char *world, int *action_dim, int *state_dim, AcScaling *s) {
    memset(s, 0, sizeof *s);
    if (!strcmp(world, "pusht")) {  // action: the pusher's target; state token: the pusher's position (proprioception)
        *action_dim = *state_dim = 2;
        for (int k = 0; k < 2; k++) {
            s->action_offset[k] = s->state_offset[k] = PUSHT_TABLE / 2;
            s->action_scale[k] = s->state_scale[k] = PUSHT_TABLE / 2;
            s->state_lo[k] = 0, s->state_hi[k] = PUSHT_TABLE;
        }
        s->pusher_pd = 1;
        return;
    }
    if (strcmp(world, "tworooms")) die_input("plan.world: '%s' is not a world (tworooms, pusht)", world);
    *action_dim = 2;
    *state_dim = 2;
    const double half = TWOROOMS.size / 2.0, r = TWOROOMS.agent_radius;
    for (int k = 0; k < 2; k++) {
        s->action_offset[k] = 0, s->action_scale[k] = TWOROOMS.action_bound;
        s->state_offset[k] = half, s->state_scale[k] = half;
        s->state_lo[k] = r, s->state_hi[k] = TWOROOMS.size - r;
    }
}

static void ac_dims(const Config *cfg, const ModelDims *enc, int A, int S, AcDims *d) {
    memset(d, 0, sizeof *d);
    d->grid_h = enc->grid_h;
    d->grid_w = enc->grid_w;
    d->tokens = enc->grid_h * enc->grid_w;
    d->feat_dim = enc->enc.width;
    d->width = cfg->ac.pred_embed_dim;
    d->action_dim = A;
    d->state_dim = cfg->ac.state_token ? S : 0;
    d->extra = 1 + (d->state_dim > 0);
    d->frame_tokens = d->extra + d->tokens;
    stack_dims_set(&d->pred, d->width, cfg->ac.pred_depth, cfg->ac.pred_num_heads, cfg->model.mlp_ratio,
                   MODULE_PREDICTOR, "ac predictor (ac.pred_*)");
    if (d->pred.depth > AC_MAX_DEPTH) die_input("ac.pred_depth %d: at most %d", d->pred.depth, AC_MAX_DEPTH);
    d->pred.frame_tokens = d->frame_tokens;
}

static void ac_build_table(AcDims *d, TensorTable *t) {
    memset(t, 0, sizeof *t);
    // An empty encoder module first: the table's modules must be contiguous and the encoder's starts at 0.
    d->action_w = add_linear(t, MODULE_PREDICTOR, "ac_predictor.action_encoder", d->width, d->action_dim);
    d->state_w = d->state_dim ? add_linear(t, MODULE_PREDICTOR, "ac_predictor.state_encoder", d->width, d->state_dim) : -1;
    d->embed_w = add_linear(t, MODULE_PREDICTOR, "ac_predictor.predictor_embed", d->width, d->feat_dim);
    add_stack(t, &d->pred, "ac_predictor.predictor_blocks", "ac_predictor.predictor_norm");
    d->proj_w = add_linear(t, MODULE_PREDICTOR, "ac_predictor.predictor_proj", d->feat_dim, d->width);
    table_finish(t);
}

// ---------------------------------------------------------------------------------------------------- buffers

typedef struct {
    void *z, *a, *s, *target;  // inputs [B*T*n, D], [B*T, A], [B*T, S]; target [B*T*n, D]
    void *tz, *ta, *ts;        // token embeddings [B*T*n, P], [B*T, P], [B*T, P]
    StackActs st;              // [B, T*F, P]
    void *y, *pred, *dpred;    // [B*T*n, P], [B*T*n, D], [B*T*n, D]
    void *dy, *dfull;          // [B*T*n, P], [B, T*F, P]
    void *dtok;                // [B*T*n, P] scratch for the embedding gradients
} AcBuffers;

static void *take(Arena *a, size_t count, size_t elem) { return arena_take(a, count * elem); }

static void ac_buffers_take(AcModel *m, int B, int T, int backward, AcBuffers *b) {
    const AcDims *d = &m->dims;
    const ElemSizes z = {m->be->esize, m->be->ssize};
    const size_t R = (size_t)B * T, Rn = R * d->tokens, P = d->width, D = d->feat_dim;
    Arena *a = &m->arena;
    b->z = take(a, Rn * D, z.esize);
    b->a = take(a, R * d->action_dim, z.esize);
    b->s = take(a, R * (d->state_dim ? d->state_dim : 1), z.esize);
    b->target = take(a, Rn * D, z.esize);
    b->tz = take(a, Rn * P, z.esize);
    b->ta = take(a, R * P, z.esize);
    b->ts = take(a, R * P, z.esize);
    stack_acts_take(a, &d->pred, z, backward ? STACK_SAVE : STACK_NO_GRAD, B, T * d->frame_tokens, &b->st, m->blk, m->x);
    b->y = take(a, Rn * P, z.esize);
    b->pred = take(a, Rn * D, z.esize);
    b->dpred = take(a, Rn * D, z.esize);
    if (!backward) return;
    b->dy = take(a, Rn * P, z.esize);
    b->dfull = take(a, R * d->frame_tokens * P, z.esize);
    b->dtok = take(a, Rn * P, z.esize);
}

// Position rows for every token of max_frames frames: frame t's action and state tokens take the sincos row of
// (t, 0, 0), its patch (h, w) the row of (t, h, w).
static void ac_upload_positions(AcModel *m) {
    const AcDims *d = &m->dims;
    const int T = m->max_frames, P = d->width, F = d->frame_tokens;
    double *grid = xmalloc((size_t)T * d->tokens * P * sizeof(double));
    double *rows = xmalloc((size_t)T * F * P * sizeof(double));
    sincos_3d_table(P, T, d->grid_h, d->grid_w, 1, grid);
    for (int t = 0; t < T; t++)
        for (int k = 0; k < F; k++) {
            const int patch = k < d->extra ? 0 : k - d->extra;
            memcpy(rows + ((size_t)t * F + k) * P, grid + ((size_t)t * d->tokens + patch) * P, (size_t)P * sizeof(double));
        }
    m->pos = backend_alloc(m->be, "the ac predictor's position rows", (size_t)T * F * P * m->be->esize);
    m->be->upload_f64(m->be, m->pos, m->be->esize, rows, (size_t)T * F * P);
    free(grid);
    free(rows);
}

// ---------------------------------------------------------------------------------------------------- lifetime

static Model *load_encoder(const Config *cfg, Backend *be, int batch) {
    if (!strcmp(cfg->ac.encoder_checkpoint, "none"))
        die_input("ac.encoder_checkpoint: model.kind ac needs the checkpoint folder of a pretrained encoder "
                  "---> HINT: train one with configs/tworooms_encoder.yaml, then ac.encoder_checkpoint=RUN/checkpoints/step_N");
    Config enc = *cfg;
    enc.data.num_frames = cfg->data.tubelet_size;  // one frame, repeated over a tubelet
    enc.data.batch_size = batch;
    Model *m = model_create(&enc, be);
    ErrorText err;
    if (checkpoint_load_weights(cfg->ac.encoder_checkpoint, m, &err) != 0)
        die_input("ac.encoder_checkpoint: %s ---> HINT: the model.* and data.patch_size/crop_size keys must be the "
                  "encoder's own", err.text);
    return m;
}

AcModel *ac_create(const Config *cfg, Backend *be, int max_batch, int max_frames, int with_encoder) {
    AcModel *m = xcalloc(1, sizeof *m);
    m->be = be;
    m->cfg = *cfg;
    m->max_batch = max_batch;
    m->max_frames = max_frames;
    ModelDims enc;
    Config one = *cfg;
    one.data.num_frames = cfg->data.tubelet_size;
    model_dims_from_config(&one, &enc);
    int A, S;
    ac_world_scaling(cfg->plan.world, &A, &S, &m->scaling);
    ac_dims(cfg, &enc, A, S, &m->dims);
    ac_build_table(&m->dims, &m->pm.table);
    const size_t total = m->pm.table.total;
    m->pm.be = be;
    m->pm.params = backend_alloc(be, "the ac predictor's parameters", total * be->msize);
    m->pm.grads = backend_alloc(be, "the ac predictor's gradients", total * be->msize);
    m->pm.adam_m = backend_alloc(be, "the ac predictor's AdamW moments", total * be->msize);
    m->pm.adam_v = backend_alloc(be, "the ac predictor's AdamW moments", total * be->msize);
    // bf16 working weights beside the fp32 master on CUDA, as model_create; the CPU computes on the master itself
    m->pm.work = be->esize == be->msize ? m->pm.params
                                        : backend_alloc(be, "the ac predictor's working weights", total * be->esize);
    double *init = xmalloc(total * sizeof(double));
    table_init_values(&m->pm.table, (uint64_t)cfg->meta.seed, init);
    ac_set_params(m, init);
    free(init);
    ac_upload_positions(m);
    m->stat = backend_alloc(be, "the ac loss", be->ssize);
    AcBuffers b;
    m->arena = (Arena){0};
    ac_buffers_take(m, max_batch, max_frames, 1, &b);
    m->arena.capacity = m->arena.peak;
    m->arena.base = backend_alloc(be, "the ac predictor's activations", m->arena.capacity);
    m->encode_batch = 64;
    if (with_encoder) m->encoder = load_encoder(cfg, be, m->encode_batch);
    const size_t nd = (size_t)m->dims.tokens * m->dims.feat_dim;
    m->plan_now = xcalloc(nd, sizeof(float));
    m->plan_goal = xcalloc(nd, sizeof(float));
    return m;
}

void ac_free(AcModel *m) {
    if (!m) return;
    Backend *be = m->be;
    if (m->pm.work != m->pm.params) be->release(be, m->pm.work);
    void *bufs[] = {m->pm.params, m->pm.grads, m->pm.adam_m, m->pm.adam_v, m->pos, m->stat, m->arena.base};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) be->release(be, bufs[i]);
    table_free(&m->pm.table);
    model_free(m->encoder);
    free(m->plan_now);
    free(m->plan_goal);
    free(m);
}

// ---------------------------------------------------------------------------------------------------- encoder

// Non-affine LayerNorm of each token's features (eps 1e-6), as V-JEPA 2-AC normalises the encoder's output.
static void normalise_tokens(const double *in, int rows, int D, float *out) {
    for (int r = 0; r < rows; r++) {
        const double *x = in + (size_t)r * D;
        double mean = 0, var = 0;
        for (int k = 0; k < D; k++) mean += x[k];
        mean /= D;
        for (int k = 0; k < D; k++) var += (x[k] - mean) * (x[k] - mean);
        const double rstd = 1.0 / sqrt(var / D + 1e-6);
        for (int k = 0; k < D; k++) out[(size_t)r * D + k] = (float)((x[k] - mean) * rstd);
    }
}

void ac_encode(AcModel *m, const uint8_t *rgb, int count, float *feats) {
    JEPA_ASSERT(m->encoder);
    const ModelDims *ed = &m->encoder->dims;
    const int tub = ed->tubelet, side = ed->crop, n = m->dims.tokens, D = m->dims.feat_dim;
    const size_t frame_px = (size_t)side * side, frame_floats = frame_px * 3;
    float *clips = xmalloc((size_t)m->encode_batch * tub * frame_floats * sizeof(float));
    double *out = xmalloc((size_t)m->encode_batch * n * D * sizeof(double));
    for (int first = 0; first < count; first += m->encode_batch) {
        const int B = count - first < m->encode_batch ? count - first : m->encode_batch;
        for (int b = 0; b < B; b++)
            for (int k = 0; k < tub; k++)
                data_normalise(rgb + (size_t)(first + b) * frame_floats, frame_px,
                               clips + ((size_t)b * tub + k) * frame_floats);
        model_encode(m->encoder, clips, B, 1, out);
        normalise_tokens(out, B * n, D, feats + (size_t)first * n * D);
    }
    free(clips);
    free(out);
}

// ---------------------------------------------------------------------------------------------------- predictor

// Tensor idx of the working weights (esize: bf16 on CUDA) and of the gradients (msize: fp32 on CUDA).
static void *weight(const AcModel *m, int idx) {
    return (char *)m->pm.work + m->pm.table.tensors[idx].offset * m->be->esize;
}
static void *grad(const AcModel *m, int idx) {
    return (char *)m->pm.grads + m->pm.table.tensors[idx].offset * m->be->msize;
}

void ac_set_params(AcModel *m, const double *values) {
    Backend *be = m->be;
    be->upload_f64(be, m->pm.params, be->msize, values, m->pm.table.total);
    be->cast_params(be, m->pm.work, m->pm.params, m->pm.table.total);
}

// Host floats -> backend elements, through doubles; scaled by (v - offset) / scale per column when given.
static void upload_rows(Backend *be, void *dst, const float *src, size_t rows, int cols, const double *offset,
                        const double *scale) {
    double *tmp = xmalloc(rows * cols * sizeof(double) + 1);
    for (size_t r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            const double v = src[r * cols + c];
            tmp[r * cols + c] = offset ? (v - offset[c]) / scale[c] : v;
        }
    be->upload_f64(be, dst, be->esize, tmp, rows * cols);
    free(tmp);
}

static void ac_embed_forward(AcModel *m, AcBuffers *b, int B, int T) {
    Backend *be = m->be;
    const AcDims *d = &m->dims;
    const int R = B * T, P = d->width, F = d->frame_tokens, n = d->tokens;
    be->matmul_fwd(be, b->tz, b->z, weight(m, d->embed_w), weight(m, d->embed_w + 1), R * n, P, d->feat_dim);
    be->matmul_fwd(be, b->ta, b->a, weight(m, d->action_w), weight(m, d->action_w + 1), R, P, d->action_dim);
    void *x0 = b->st.x[0];  // [B, T*F, P] = [B*T, F, P]
    be->copy_tokens(be, x0, F, 0, b->ta, 1, 0, 1, R, P, 0);
    if (d->state_dim) {
        be->matmul_fwd(be, b->ts, b->s, weight(m, d->state_w), weight(m, d->state_w + 1), R, P, d->state_dim);
        be->copy_tokens(be, x0, F, 1, b->ts, 1, 0, 1, R, P, 0);
    }
    be->copy_tokens(be, x0, F, d->extra, b->tz, n, 0, n, R, P, 0);
    be->add_rows(be, x0, m->pos, NULL, B, T * F, P);
}

static void ac_backward(AcModel *m, AcBuffers *b, int B, int T) {
    Backend *be = m->be;
    const AcDims *d = &m->dims;
    const int R = B * T, P = d->width, F = d->frame_tokens, n = d->tokens, D = d->feat_dim;
    const size_t es = be->esize;
    be->zero(be, b->dy, (size_t)R * n * P * es);
    be->matmul_bwd(be, b->dy, grad(m, d->proj_w), grad(m, d->proj_w + 1), b->dpred, b->y,
                   weight(m, d->proj_w), R * n, D, P);
    be->zero(be, b->dfull, (size_t)R * F * P * es);
    be->copy_tokens(be, b->dfull, F, d->extra, b->dy, n, 0, n, R, P, 1);
    stack_backward(&m->pm, &b->st, b->dfull);
    // the token embeddings: their gradient is the stream's at their slots
    be->copy_tokens(be, b->dtok, 1, 0, b->st.d_stream, F, 0, 1, R, P, 0);
    be->matmul_bwd(be, NULL, grad(m, d->action_w), grad(m, d->action_w + 1), b->dtok, b->a,
                   weight(m, d->action_w), R, P, d->action_dim);
    if (d->state_dim) {
        be->copy_tokens(be, b->dtok, 1, 0, b->st.d_stream, F, 1, 1, R, P, 0);
        be->matmul_bwd(be, NULL, grad(m, d->state_w), grad(m, d->state_w + 1), b->dtok, b->s,
                       weight(m, d->state_w), R, P, d->state_dim);
    }
    be->copy_tokens(be, b->dtok, n, 0, b->st.d_stream, F, d->extra, n, R, P, 0);
    be->matmul_bwd(be, NULL, grad(m, d->embed_w), grad(m, d->embed_w + 1), b->dtok, b->z,
                   weight(m, d->embed_w), R * n, P, D);
}

double ac_forward(AcModel *m, int B, int T, const float *feats, const float *actions, const float *states,
                  const float *target, float *pred, int backward, double grad_scale) {
    Backend *be = m->be;
    const AcDims *d = &m->dims;
    JEPA_ASSERT(B <= m->max_batch && T <= m->max_frames && (!backward || target));
    const int R = B * T, P = d->width, F = d->frame_tokens, n = d->tokens, D = d->feat_dim;
    arena_reset(&m->arena, 0);
    AcBuffers b;
    ac_buffers_take(m, B, T, backward, &b);
    upload_rows(be, b.z, feats, (size_t)R * n, D, NULL, NULL);
    upload_rows(be, b.a, actions, (size_t)R, d->action_dim, m->scaling.action_offset, m->scaling.action_scale);
    if (d->state_dim)
        upload_rows(be, b.s, states, (size_t)R, d->state_dim, m->scaling.state_offset, m->scaling.state_scale);
    ac_embed_forward(m, &b, B, T);
    stack_forward(&m->pm, m->pm.work, &b.st);
    be->copy_tokens(be, b.y, n, 0, b.st.out, F, d->extra, n, R, P, 0);
    be->matmul_fwd(be, b.pred, b.y, weight(m, d->proj_w), weight(m, d->proj_w + 1), R * n, D, P);
    double loss = 0;
    if (target) {
        upload_rows(be, b.target, target, (size_t)R * n, D, NULL, NULL);
        be->zero(be, m->stat, be->ssize);
        be->zero(be, b.dpred, (size_t)R * n * D * be->esize);
        be->l1_loss(be, m->stat, b.dpred, b.pred, b.target, (size_t)R * n * D, 1.0, grad_scale);
        be->download_f64(be, &loss, m->stat, be->ssize, 1);
    }
    if (pred) {
        double *tmp = xmalloc((size_t)R * n * D * sizeof(double));
        be->download_f64(be, tmp, b.pred, be->esize, (size_t)R * n * D);
        for (size_t i = 0; i < (size_t)R * n * D; i++) pred[i] = (float)tmp[i];
        free(tmp);
    }
    if (backward) ac_backward(m, &b, B, T);
    return loss;
}

// ---------------------------------------------------------------------------------------------------- files

void ac_save(const AcModel *m, const char *path) {
    const TensorTable *t = &m->pm.table;
    double *all = xmalloc(t->total * sizeof(double));
    m->be->download_f64(m->be, all, m->pm.params, m->be->msize, t->total);
    float *f = xmalloc(t->total * sizeof(float));
    for (size_t i = 0; i < t->total; i++) f[i] = (float)all[i];
    StTensor *st = xcalloc((size_t)t->count, sizeof(StTensor));
    for (int i = 0; i < t->count; i++)
        st_tensor_set(&st[i], t->tensors[i].name, "F32", t->tensors[i].ndim, t->tensors[i].shape,
                      f + t->tensors[i].offset);
    const StMeta meta[] = {{"format", "jepa.c ac predictor"}};
    uint64_t hash;
    st_write(path, st, t->count, meta, 1, &hash);
    free(all);
    free(f);
    free(st);
}

void ac_load(AcModel *m, const char *path) {
    const TensorTable *t = &m->pm.table;
    StFile f;
    ErrorText err;
    if (st_open(path, &f, &err) != 0) die_input("%s", err.text);
    // More tensors than this model has: trained with other ac.* keys (say ac.state_token true against false), whose
    // weights would otherwise be dropped without a word.
    if (f.count != t->count)
        die_input("%s: %d tensors, but these ac.* keys make a predictor of %d ---> HINT: the ac.* keys (ac.state_token, "
                  "ac.pred_depth, ...) must be the ones the predictor was trained with (its RUN/config.yaml)",
                  path, f.count, t->count);
    double *all = xmalloc(t->total * sizeof(double));
    float *buf = xmalloc(t->total * sizeof(float));
    for (int i = 0; i < t->count; i++) {
        const TensorSpec *s = &t->tensors[i];
        const StTensor *x = st_find(&f, s->name);
        if (!x || strcmp(x->dtype, "F32") || st_numel(x) != s->numel)
            die_input("%s: tensor %s missing or of another dtype or size (expected F32, %zu elements) ---> HINT: "
                      "the ac.* keys must be the ones the predictor was trained with", path, s->name, s->numel);
        if (st_read(&f, x, buf, &err) != 0) die_input("%s", err.text);
        for (size_t k = 0; k < s->numel; k++) all[s->offset + k] = buf[k];
    }
    st_close(&f);
    ac_set_params(m, all);
    free(all);
    free(buf);
}

// ---------------------------------------------------------------------------------------------------- planning

void ac_plan_begin(AcModel *m, const uint8_t *now_rgb, const double *state, const uint8_t *goal_rgb, int horizon) {
    ac_encode(m, now_rgb, 1, m->plan_now);
    ac_encode(m, goal_rgb, 1, m->plan_goal);
    for (int k = 0; k < m->dims.state_dim; k++) m->plan_state[k] = state[k];
    m->plan_horizon = horizon;
}

// The state token of frame j + 1 of sequence s: st [S, H+1, Sd], act [S, H, A], vel [S, 2] (pusht, in/out).
static void next_state(const AcModel *m, int s, int j, int H, float *st, const float *act, double *vel) {
    const AcDims *d = &m->dims;
    const int A = d->action_dim, Sd = d->state_dim ? d->state_dim : 1;
    const float *now = st + ((size_t)s * (H + 1) + j) * Sd, *a = act + ((size_t)s * H + j) * A;
    float *next = st + ((size_t)s * (H + 1) + j + 1) * Sd;
    if (m->scaling.pusher_pd) {  // the pusher's exact PD law towards the target point (world_pusht.h)
        double p[2] = {now[0], now[1]}, target[2] = {a[0], a[1]};
        pusht_agent_step(p, vel + 2 * s, target);
        for (int k = 0; k < 2; k++) next[k] = (float)fmin(fmax(p[k], m->scaling.state_lo[k]), m->scaling.state_hi[k]);
        return;
    }
    for (int k = 0; k < d->state_dim; k++)
        next[k] = (float)fmin(fmax((double)now[k] + a[k], m->scaling.state_lo[k]), m->scaling.state_hi[k]);
}

// Rolls S sequences out for H steps over a window of W frames: hist [S, H+1, n*D] features, st [S, H+1, S_dim]
// states, act [S, H, A] actions (floats), vel [S, 2] the pusher's velocity (pusht), all host.
static void rollout(AcModel *m, int S, int H, int W, float *hist, float *st, const float *act, double *vel) {
    const AcDims *d = &m->dims;
    const size_t nd = (size_t)d->tokens * d->feat_dim;
    const int A = d->action_dim, Sd = d->state_dim ? d->state_dim : 1;
    float *in = xmalloc((size_t)S * W * nd * sizeof(float)), *pred = xmalloc((size_t)S * W * nd * sizeof(float));
    float *ain = xmalloc((size_t)S * W * A * sizeof(float)), *sin_ = xmalloc((size_t)S * W * Sd * sizeof(float));
    for (int j = 0; j < H; j++) {
        const int first = j - W + 1 > 0 ? j - W + 1 : 0, T = j - first + 1;
        for (int s = 0; s < S; s++)
            for (int t = 0; t < T; t++) {
                memcpy(in + ((size_t)s * T + t) * nd, hist + ((size_t)s * (H + 1) + first + t) * nd, nd * sizeof(float));
                memcpy(ain + ((size_t)s * T + t) * A, act + ((size_t)s * H + first + t) * A, (size_t)A * sizeof(float));
                memcpy(sin_ + ((size_t)s * T + t) * Sd, st + ((size_t)s * (H + 1) + first + t) * Sd,
                       (size_t)Sd * sizeof(float));
            }
        ac_forward(m, S, T, in, ain, sin_, NULL, pred, 0, 0);
        for (int s = 0; s < S; s++) {
            memcpy(hist + ((size_t)s * (H + 1) + j + 1) * nd, pred + ((size_t)s * T + T - 1) * nd, nd * sizeof(float));
            if (d->state_dim) next_state(m, s, j, H, st, act, vel);
        }
    }
    free(in);
    free(pred);
    free(ain);
    free(sin_);
}

double ac_goal_distance(const AcModel *m, const float *z) {
    const size_t nd = (size_t)m->dims.tokens * m->dims.feat_dim;
    double e = 0;
    for (size_t k = 0; k < nd; k++) e += fabs(z[k] - m->plan_goal[k]);
    return e / nd;
}

void ac_plan_energy(AcModel *m, const double *actions, int S_all, double *energies) {
    const AcDims *d = &m->dims;
    const int H = m->plan_horizon, A = d->action_dim, Sd = d->state_dim ? d->state_dim : 1;
    const int W = m->cfg.ac.frames - 1 < m->max_frames ? m->cfg.ac.frames - 1 : m->max_frames;
    const size_t nd = (size_t)d->tokens * d->feat_dim;
    const int mode = !strcmp(m->cfg.plan.energy, "mean") ? 1 : !strcmp(m->cfg.plan.energy, "min") ? 2 : 0;
    for (int first = 0; first < S_all; first += m->max_batch) {
        const int S = S_all - first < m->max_batch ? S_all - first : m->max_batch;
        float *hist = xmalloc((size_t)S * (H + 1) * nd * sizeof(float));
        float *st = xcalloc((size_t)S * (H + 1) * Sd, sizeof(float)), *act = xmalloc((size_t)S * H * A * sizeof(float));
        double *vel = xmalloc((size_t)S * 2 * sizeof(double));  // [S, 2] the pusher's velocity (pusht)
        for (int s = 0; s < S; s++) {
            memcpy(hist + (size_t)s * (H + 1) * nd, m->plan_now, nd * sizeof(float));
            for (int k = 0; k < d->state_dim; k++) st[(size_t)s * (H + 1) * Sd + k] = (float)m->plan_state[k];
            for (int k = 0; k < H * A; k++) act[(size_t)s * H * A + k] = (float)actions[(size_t)(first + s) * H * A + k];
            vel[2 * s] = m->plan_velocity[0], vel[2 * s + 1] = m->plan_velocity[1];
        }
        rollout(m, S, H, W, hist, st, act, vel);
        for (int s = 0; s < S; s++) {
            double sum = 0, least = INFINITY, e = 0;
            for (int j = mode == 0 ? H : 1; j <= H; j++) {  // 'last' scores frame H alone
                e = ac_goal_distance(m, hist + ((size_t)s * (H + 1) + j) * nd);
                sum += e, least = fmin(least, e);
            }
            energies[first + s] = mode == 0 ? e : mode == 1 ? sum / H : least;
            if (!isfinite(energies[first + s])) {  // CEM would rank garbage without a word
                fprintf(stderr, "error: plan: the predicted energy of plan %d is %g: the predictor's weights or the "
                        "encoder's features are not finite (a diverged training run?)\n", first + s, energies[first + s]);
                exit(JEPA_EXIT_NONFINITE);
            }
        }
        free(hist);
        free(st);
        free(act);
        free(vel);
    }
}
