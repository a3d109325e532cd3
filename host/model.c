// model.c: V-JEPA v1 forward and backward over the backend op interface.
//
// One micro-batch, as the official MultiMaskWrapper runs it but with each generator's backward right after its
// forward (gradients add, so the result is the same and activations of one generator at a time are live):
//   patches = patchify(clips)                                       [B, N, patch_dim]
//   target:  h = LN_noaffine(target_encoder(patches), eps 1e-5)     [B, N, D]   (no gradient)
//   e = patches @ Wpatch^T + b + pos                                [B, N, D]   (once; its gradient sums over generators)
//   per generator g with context ids c [B,nc] and target ids t [B,nt]:
//     z = encoder_blocks(gather(e, c))                              [B, nc, D]
//     y = predictor_blocks(concat(z @ Wemb^T + b + ppos[c], mask_token[g] + ppos[t]))   [B, nc+nt, P]
//     loss_g = mean |y[:, nc:] @ Wproj^T + b - gather(h, t)|        [B, nt, D]
#include "model.h"

#include <math.h>
#include <string.h>

#include "common.h"

// ---------------------------------------------------------------- sizes and the tensor table

typedef struct {
    const char *name;
    int width, depth, heads;
    double mlp_ratio;  // the encoder's, fixed by the official definition; 0 = model.mlp_ratio
} VitPreset;

static const VitPreset VIT_PRESETS[] = {
    {"vit_tiny", 192, 12, 3, 0},   {"vit_small", 384, 12, 6, 0},  {"vit_base", 768, 12, 12, 0},
    {"vit_large", 1024, 24, 16, 0}, {"vit_huge", 1280, 32, 16, 0},
    {"vit_giant_xformers", 1408, 40, 22, 48.0 / 11.0},  // V-JEPA 2's giant: 22 heads of 64, MLP 6144
    {"vit_custom", 0, 0, 0, 0},
};

void stack_dims_set(StackDims *s, int width, int depth, int heads, double mlp_ratio, ModuleId module,
                           const char *what) {
    if (width <= 0 || depth <= 0 || heads <= 0)
        die_input("%s: width, depth and heads must be positive (got %d, %d, %d)", what, width, depth, heads);
    if (width % heads != 0) die_input("%s: width %d is not divisible by %d heads", what, width, heads);
    s->width = width;
    s->depth = depth;
    s->heads = heads;
    s->head_dim = width / heads;
    s->mlp_hidden = (int)(width * mlp_ratio);
    s->ln_eps = 1e-6;
    s->module = module;
}

void model_dims_from_config(const Config *cfg, ModelDims *d) {
    memset(d, 0, sizeof(*d));
    const VitPreset *preset = NULL;
    for (size_t i = 0; i < sizeof(VIT_PRESETS) / sizeof(VIT_PRESETS[0]); i++)
        if (strcmp(cfg->model.model_name, VIT_PRESETS[i].name) == 0) preset = &VIT_PRESETS[i];
    if (!preset) die_input("model.model_name: unknown model '%s'", cfg->model.model_name);
    // Explicit sizes override the preset (vit_custom has none).
    const int width = cfg->model.embed_dim ? cfg->model.embed_dim : preset->width;
    const int depth = cfg->model.depth ? cfg->model.depth : preset->depth;
    const int heads = cfg->model.num_heads ? cfg->model.num_heads : preset->heads;
    if (width == 0 || depth == 0 || heads == 0)
        die_input("model.model_name: vit_custom needs model.embed_dim, model.depth and model.num_heads");
    const double enc_mlp_ratio = preset->mlp_ratio ? preset->mlp_ratio : cfg->model.mlp_ratio;
    stack_dims_set(&d->enc, width, depth, heads, enc_mlp_ratio, MODULE_ENCODER, "model (encoder)");
    const int pred_heads = cfg->model.pred_num_heads ? cfg->model.pred_num_heads : heads;  // v1: encoder's heads
    stack_dims_set(&d->pred, cfg->model.pred_embed_dim, cfg->model.pred_depth, pred_heads, cfg->model.mlp_ratio,
                   MODULE_PREDICTOR, "model (predictor)");
    d->frames = cfg->data.num_frames;
    d->crop = cfg->data.crop_size;
    d->tubelet = cfg->data.tubelet_size;
    d->patch = cfg->data.patch_size;
    if (d->frames % d->tubelet) die_input("data.num_frames %d is not divisible by data.tubelet_size %d", d->frames, d->tubelet);
    if (d->crop % d->patch) die_input("data.crop_size %d is not divisible by data.patch_size %d", d->crop, d->patch);
    d->grid_t = d->frames / d->tubelet;
    d->grid_h = d->grid_w = d->crop / d->patch;
    d->tokens = d->grid_t * d->grid_h * d->grid_w;
    d->patch_dim = 3 * d->tubelet * d->patch * d->patch;
    d->num_masks = cfg->num_masks;
    d->num_mask_tokens = cfg->num_masks;
    d->rope = strcmp(cfg->model.pos_embed, "rope3d") == 0;
    d->shared_mask_token = cfg->model.shared_mask_token;
    d->depth_scaled_init = cfg->model.depth_scaled_init;
    StackDims *stacks[2] = {&d->enc, &d->pred};
    for (int i = 0; i < 2; i++) {
        stacks[i]->rope = d->rope;
        stacks[i]->grid_h = d->grid_h;
        stacks[i]->grid_w = d->grid_w;
        stacks[i]->checkpoint_every = config_checkpoint_every(cfg);
    }
}

int add_linear(TensorTable *t, ModuleId m, const char *prefix, int64_t out, int64_t in) {
    char name[96];
    snprintf(name, sizeof(name), "%s.weight", prefix);
    const int w = table_add(t, m, INIT_TRUNC_NORMAL, name, 2, (int64_t[]){out, in});
    snprintf(name, sizeof(name), "%s.bias", prefix);
    table_add(t, m, INIT_ZEROS, name, 1, (int64_t[]){out});
    return w;
}

static int add_layernorm(TensorTable *t, ModuleId m, const char *prefix, int64_t width) {
    char name[96];
    snprintf(name, sizeof(name), "%s.weight", prefix);
    const int w = table_add(t, m, INIT_ONES, name, 1, (int64_t[]){width});
    snprintf(name, sizeof(name), "%s.bias", prefix);
    table_add(t, m, INIT_ZEROS, name, 1, (int64_t[]){width});
    return w;
}

// Blocks in the order TENSORS_PER_BLOCK assumes, then the final norm.
void add_stack(TensorTable *t, StackDims *s, const char *blocks_prefix, const char *norm_name) {
    char p[96];
    const int C = s->width;
    for (int l = 0; l < s->depth; l++) {
        snprintf(p, sizeof(p), "%s.%d.norm1", blocks_prefix, l);
        const int first = add_layernorm(t, s->module, p, C);
        if (l == 0) s->first_block_tensor = first;
        snprintf(p, sizeof(p), "%s.%d.attn.qkv", blocks_prefix, l);
        add_linear(t, s->module, p, 3 * C, C);
        snprintf(p, sizeof(p), "%s.%d.attn.proj", blocks_prefix, l);
        add_linear(t, s->module, p, C, C);
        snprintf(p, sizeof(p), "%s.%d.norm2", blocks_prefix, l);
        add_layernorm(t, s->module, p, C);
        snprintf(p, sizeof(p), "%s.%d.mlp.fc1", blocks_prefix, l);
        add_linear(t, s->module, p, s->mlp_hidden, C);
        snprintf(p, sizeof(p), "%s.%d.mlp.fc2", blocks_prefix, l);
        add_linear(t, s->module, p, C, s->mlp_hidden);
        JEPA_ASSERT(t->count - first == TENSORS_PER_BLOCK);
    }
    s->norm_tensor = add_layernorm(t, s->module, norm_name, C);
}

// The official models' _rescale_blocks: attn.proj and mlp.fc2 weights of block l (1-based) divided by sqrt(2l) after
// their draw, i.e. drawn with that smaller std (V-JEPA 2 keeps it; V-JEPA v1's script re-initialises it away).
static void depth_scale_init(TensorTable *t, const StackDims *s) {
    enum { PROJ_W = 4, FC2_W = 10 };  // within a block's TENSORS_PER_BLOCK, in add_stack's order
    for (int l = 0; l < s->depth; l++) {
        TensorSpec *b = &t->tensors[s->first_block_tensor + l * TENSORS_PER_BLOCK];
        JEPA_ASSERT(strstr(b[PROJ_W].name, "attn.proj.weight") && strstr(b[FC2_W].name, "mlp.fc2.weight"));
        b[PROJ_W].init_std /= sqrt(2.0 * (l + 1));
        b[FC2_W].init_std /= sqrt(2.0 * (l + 1));
    }
}

void model_build_table(const ModelDims *dims_in, TensorTable *t) {
    ModelDims *d = (ModelDims *)dims_in;  // fills the table indices into dims
    memset(t, 0, sizeof(*t));
    const int64_t D = d->enc.width, P = d->pred.width;
    d->patch_w = table_add(t, MODULE_ENCODER, INIT_TRUNC_NORMAL, "encoder.patch_embed.proj.weight", 5,
                           (int64_t[]){D, 3, d->tubelet, d->patch, d->patch});
    d->patch_b = table_add(t, MODULE_ENCODER, INIT_ZEROS, "encoder.patch_embed.proj.bias", 1, (int64_t[]){D});
    add_stack(t, &d->enc, "encoder.blocks", "encoder.norm");
    d->pred_embed_w = add_linear(t, MODULE_PREDICTOR, "predictor.predictor_embed", P, D);
    d->pred_embed_b = d->pred_embed_w + 1;
    for (int g = 0; g < d->num_mask_tokens; g++) {
        char name[96];
        snprintf(name, sizeof(name), "predictor.mask_tokens.%d", g);
        const int idx = table_add(t, MODULE_PREDICTOR, INIT_ZEROS, name, 3, (int64_t[]){1, 1, P});
        if (g == 0) d->mask_token0 = idx;
    }
    add_stack(t, &d->pred, "predictor.predictor_blocks", "predictor.predictor_norm");
    if (d->depth_scaled_init) depth_scale_init(t, &d->enc), depth_scale_init(t, &d->pred);
    d->pred_proj_w = add_linear(t, MODULE_PREDICTOR, "predictor.predictor_proj", D, P);
    d->pred_proj_b = d->pred_proj_w + 1;
    table_finish(t);
    JEPA_ASSERT(t->module_begin[MODULE_ENCODER] == 0);  // the target buffer mirrors the encoder's offsets
}

// ---------------------------------------------------------------- position embedding

static void sincos_1d(int dim, double pos, double *out) {
    const int half = dim / 2;
    for (int i = 0; i < half; i++) {
        const double omega = 1.0 / pow(10000.0, (double)i / (dim / 2.0));
        out[i] = sin(pos * omega);
        out[half + i] = cos(pos * omega);
    }
}

void sincos_3d_table(int dim, int grid_t, int grid_h, int grid_w, int uniform_power, double *table) {
    int dt, dh, dw;
    if (uniform_power) dt = dh = dw = (int)ceil(dim / 6.0) * 2;
    else dh = dw = dim / 4, dt = dim / 2;
    double *row = xmalloc((size_t)(dt + dh + dw) * sizeof(double));
    for (int t = 0; t < grid_t; t++)
        for (int h = 0; h < grid_h; h++)
            for (int w = 0; w < grid_w; w++) {
                sincos_1d(dt, t, row);
                sincos_1d(dh, h, row + dt);
                sincos_1d(dw, w, row + dt + dh);
                const size_t token = ((size_t)t * grid_h + h) * grid_w + w;
                memcpy(table + token * dim, row, (size_t)dim * sizeof(double));  // truncated to dim
            }
    free(row);
}

// ---------------------------------------------------------------- activations

// BlockActs, StackMode and StackActs are in model.h (the AC predictor runs stacks too).

static void *take(Arena *a, size_t count, size_t elem) { return arena_take(a, count * elem); }

static void block_acts_take(Arena *a, const StackDims *s, ElemSizes z, int R, int B, int n, BlockActs *b) {
    const size_t C = s->width, Hd = s->mlp_hidden;
    b->ln1 = take(a, R * C, z.esize);
    b->ln1_mean = take(a, R, z.ssize);
    b->ln1_rstd = take(a, R, z.ssize);
    b->qkv = take(a, R * 3 * C, z.esize);
    b->att = take(a, R * C, z.esize);
    b->lse = take(a, (size_t)B * s->heads * n, z.ssize);
    b->x_mid = take(a, R * C, z.esize);
    b->ln2 = take(a, R * C, z.esize);
    b->ln2_mean = take(a, R, z.ssize);
    b->ln2_rstd = take(a, R, z.ssize);
    b->fc1 = take(a, R * Hd, z.esize);
    b->gelu = take(a, R * Hd, z.esize);
}

// Whether block l of a STACK_SAVE stack keeps only its input and recomputes its forward in the backward.
static int block_recomputed(const StackDims *s, int l) { return s->checkpoint_every && l % s->checkpoint_every == 0; }

// STACK_SAVE: the saved blocks' activations, and storage for the recomputed ones. A recomputed block l followed by a
// saved block writes into that block's storage: the backward has finished with block l+1 when it recomputes block
// l, and block l+1's forward overwrites block l's first forward, which nothing reads. The others share one scratch.
static void saved_blocks_take(Arena *a, const StackDims *s, ElemSizes z, int B, int n, BlockActs *blk) {
    const int R = B * n;
    int scratch = -1;  // the first block given the shared scratch
    for (int l = s->depth - 1; l >= 0; l--) {
        if (!block_recomputed(s, l)) {
            block_acts_take(a, s, z, R, B, n, &blk[l]);
        } else if (l + 1 < s->depth && !block_recomputed(s, l + 1)) {
            blk[l] = blk[l + 1];
        } else if (scratch < 0) {
            block_acts_take(a, s, z, R, B, n, &blk[l]);
            scratch = l;
        } else {
            blk[l] = blk[scratch];
        }
    }
}

void stack_acts_take(Arena *a, const StackDims *s, ElemSizes z, StackMode mode, int B, int n, StackActs *st,
                            BlockActs *blk_storage, void **x_storage) {
    const size_t R = (size_t)B * n, C = s->width;
    memset(st, 0, sizeof(*st));
    st->dims = s;
    st->mode = mode;
    st->B = B;
    st->n = n;
    st->x = x_storage;
    st->blk = blk_storage;
    const int n_stream = mode == STACK_NO_GRAD ? 2 : s->depth + 1;
    for (int i = 0; i < n_stream; i++) st->x[i] = take(a, R * C, z.esize);
    if (mode == STACK_NO_GRAD) block_acts_take(a, s, z, (int)R, B, n, &st->blk[0]);
    else saved_blocks_take(a, s, z, B, n, st->blk);
    st->out = take(a, R * C, z.esize);
    st->out_mean = take(a, R, z.ssize);
    st->out_rstd = take(a, R, z.ssize);
    if (mode == STACK_NO_GRAD) return;
    st->d_stream = take(a, R * C, z.esize);
    st->d_ln = take(a, R * C, z.esize);
    st->d_att = take(a, R * C, z.esize);
    st->d_qkv = take(a, R * 3 * C, z.esize);
    st->d_hidden = take(a, R * s->mlp_hidden, z.esize);
    st->d_fc1 = take(a, R * s->mlp_hidden, z.esize);
}

// Buffers that live for a whole micro-batch.
typedef struct {
    void *patches;       // [B,N,patch_dim]
    void *embedded;      // [B,N,D] patch embedding + position, context side
    void *d_embedded;    // [B,N,D]
    void *h;             // [B,N,D] normalised target features
    void *h_mean, *h_rstd;  // [B*N]
    StackActs target;
    BlockActs target_blk[1];
    void *target_x[2];
} MicroBuffers;

// Buffers of one generator's forward and backward.
typedef struct {
    int32_t *ctx_idx, *tgt_idx;  // [B,nc], [B,nt]
    int32_t *pred_idx;           // [B,nc+nt] grid index of each predictor token (context then targets), for RoPE
    StackActs enc, pred;
    BlockActs *enc_blk, *pred_blk;
    void **enc_x, **pred_x;
    void *pz;            // [B,nc,P] predictor embedding of the context
    void *ptok;          // [B,nt,P] mask tokens + position
    void *yt;            // [B,nt,P] predictor output at the targets
    void *pred_out;      // [B,nt,D]
    void *h_tgt;         // [B,nt,D]
    void *d_pred_out;    // [B,nt,D]
    void *d_yt;          // [B,nt,P]
    void *d_pz;          // [B,nc,P]
    void *d_z;           // [B,nc,D]
} GenBuffers;

static void micro_buffers_take(Arena *a, const ModelDims *d, ElemSizes z, int B, MicroBuffers *mb) {
    const size_t N = d->tokens, D = d->enc.width;
    mb->patches = take(a, (size_t)B * N * d->patch_dim, z.esize);
    mb->embedded = take(a, B * N * D, z.esize);
    mb->d_embedded = take(a, B * N * D, z.esize);
    mb->h = take(a, B * N * D, z.esize);
    mb->h_mean = take(a, B * N, z.ssize);
    mb->h_rstd = take(a, B * N, z.ssize);
    stack_acts_take(a, &d->enc, z, STACK_NO_GRAD, B, (int)N, &mb->target, mb->target_blk, mb->target_x);
}

// Host arrays of block-activation records; sized by the largest depth.
typedef struct {
    BlockActs enc_blk[256], pred_blk[256];
    void *enc_x[257], *pred_x[257];
} GenStorage;

static void gen_buffers_take(Arena *a, const ModelDims *d, ElemSizes z, int B, int nc, int nt, GenStorage *gs,
                             GenBuffers *g) {
    const size_t D = d->enc.width, P = d->pred.width;
    JEPA_ASSERT(d->enc.depth <= 256 && d->pred.depth <= 256);
    g->ctx_idx = take(a, (size_t)B * nc, sizeof(int32_t));
    g->tgt_idx = take(a, (size_t)B * nt, sizeof(int32_t));
    g->pred_idx = take(a, (size_t)B * (nc + nt), sizeof(int32_t));
    stack_acts_take(a, &d->enc, z, STACK_SAVE, B, nc, &g->enc, gs->enc_blk, gs->enc_x);
    stack_acts_take(a, &d->pred, z, STACK_SAVE, B, nc + nt, &g->pred, gs->pred_blk, gs->pred_x);
    g->enc.pos = g->ctx_idx;  // the context tokens keep their positions in the clip
    g->pred.pos = g->pred_idx;
    g->pz = take(a, (size_t)B * nc * P, z.esize);
    g->ptok = take(a, (size_t)B * nt * P, z.esize);
    g->yt = take(a, (size_t)B * nt * P, z.esize);
    g->pred_out = take(a, (size_t)B * nt * D, z.esize);
    g->h_tgt = take(a, (size_t)B * nt * D, z.esize);
    g->d_pred_out = take(a, (size_t)B * nt * D, z.esize);
    g->d_yt = take(a, (size_t)B * nt * P, z.esize);
    g->d_pz = take(a, (size_t)B * nc * P, z.esize);
    g->d_z = take(a, (size_t)B * nc * D, z.esize);
}

size_t model_plan_arena(const ModelDims *d, ElemSizes z, int B, const int *n_ctx, const int *n_tgt) {
    Arena a = {0};
    MicroBuffers mb;
    micro_buffers_take(&a, d, z, B, &mb);
    const size_t mark = arena_mark(&a);
    static GenStorage gs;
    for (int g = 0; g < d->num_masks; g++) {
        GenBuffers gb;
        gen_buffers_take(&a, d, z, B, n_ctx[g], n_tgt[g], &gs, &gb);
        arena_reset(&a, mark);
    }
    return a.peak;
}

// Every split (n_ctx, tokens - n_ctx): the bytes grow with each count, so no shorter lists need more. Alignment
// makes the size not quite linear in the split, hence all of them (a few thousand measuring passes, milliseconds).
size_t model_plan_arena_max(const ModelDims *d, ElemSizes z, int B) {
    Arena a = {0};
    MicroBuffers mb;
    micro_buffers_take(&a, d, z, B, &mb);
    const size_t mark = arena_mark(&a);
    static GenStorage gs;
    for (int nc = 0; nc <= d->tokens; nc++) {
        GenBuffers gb;
        gen_buffers_take(&a, d, z, B, nc, d->tokens - nc, &gs, &gb);
        arena_reset(&a, mark);
    }
    return a.peak;
}

MemoryPlan model_plan_memory(const ModelDims *d, const TensorTable *t, BackendSizes s, int B) {
    const size_t total = t->total, enc = table_module_numel(t, MODULE_ENCODER), clip = model_clip_elems(d, B);
    const int alias = s.z.esize == s.msize;  // working copies alias the masters (model_create)
    MemoryPlan p = {0};
    p.master = total * s.msize;
    p.working = alias ? 0 : total * s.z.esize;
    p.grads = total * s.msize;
    p.moments = 2 * total * s.msize;
    p.target = enc * s.msize;
    p.target_working = alias ? 0 : enc * s.z.esize;
    p.positions = d->rope ? 0 : (size_t)d->tokens * (d->enc.width + d->pred.width) * s.z.esize;
    p.stats = (size_t)(d->num_masks + STAT_EXTRA) * s.z.ssize;
    p.arena = model_plan_arena_max(d, s.z, B);
    p.inputs = 2 * clip * (s.z.esize + s.staging);
    p.total = p.master + p.working + p.grads + p.moments + p.target + p.target_working + p.positions + p.stats +
              p.arena + p.inputs;
    return p;
}

// ---------------------------------------------------------------- parameters

// Pointer to tensor `idx` in a flat buffer of `elem`-byte elements.
static void *tensor_at(const Model *m, void *base, int idx, size_t elem) {
    return (char *)base + m->table.tensors[idx].offset * elem;
}

// The 12 tensors of one block, in a flat buffer (working weights or gradients).
typedef struct {
    void *ln1_w, *ln1_b, *qkv_w, *qkv_b, *proj_w, *proj_b, *ln2_w, *ln2_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b;
} BlockTensors;

static BlockTensors block_tensors(const Model *m, void *base, size_t elem, const StackDims *s, int layer) {
    void *p[TENSORS_PER_BLOCK];
    const int first = s->first_block_tensor + layer * TENSORS_PER_BLOCK;
    for (int i = 0; i < TENSORS_PER_BLOCK; i++) p[i] = tensor_at(m, base, first + i, elem);
    return (BlockTensors){p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11]};
}

// ---------------------------------------------------------------- block and stack

// pos [B,n]: the tokens' grid indices for RoPE (NULL: 0..n-1); unused without it.
static void block_forward(Backend *be, const StackDims *s, const BlockTensors *w, BlockActs *a, const void *x_in,
                          void *x_out, int B, int n, const int32_t *pos) {
    const int R = B * n, C = s->width, Hd = s->mlp_hidden;
    be->layernorm_fwd(be, a->ln1, a->ln1_mean, a->ln1_rstd, x_in, w->ln1_w, w->ln1_b, R, C, s->ln_eps);
    be->matmul_fwd(be, a->qkv, a->ln1, w->qkv_w, w->qkv_b, R, 3 * C, C);
    // V-JEPA 2: q and k rotated in place; the attention (and its backward) sees the rotated qkv
    if (s->rope) be->rope_qk(be, a->qkv, pos, B, n, s->heads, s->head_dim, s->grid_h, s->grid_w, 0);
    be->attention_fwd(be, a->att, a->lse, a->qkv, B, n, s->heads, s->head_dim, s->frame_tokens);
    be->matmul_fwd(be, x_out, a->att, w->proj_w, w->proj_b, R, C, C);  // x_out holds the branch for a moment
    // x_mid = branch + x_in, ln2 = LN(x_mid): one kernel where the backend fuses them (JEPA_FUSE_LN=1 on CUDA)
    be->add_layernorm_fwd(be, a->x_mid, a->ln2, a->ln2_mean, a->ln2_rstd, x_out, x_in, w->ln2_w, w->ln2_b, R, C,
                          s->ln_eps);
    be->matmul_fwd_gelu(be, a->gelu, a->fc1, a->ln2, w->fc1_w, w->fc1_b, R, Hd, C);
    be->matmul_fwd(be, x_out, a->gelu, w->fc2_w, w->fc2_b, R, C, Hd);
    be->add(be, x_out, x_out, a->x_mid, (size_t)R * C);
}

// d [R,C]: in, the gradient of the block output; out, the gradient of its input (residuals make this in-place).
static void block_backward(Backend *be, const StackDims *s, const BlockTensors *w, const BlockTensors *g,
                           const BlockActs *a, const void *x_in, StackActs *st, void *d) {
    const int B = st->B, n = st->n, R = B * n, C = s->width, Hd = s->mlp_hidden;
    const size_t es = be->esize;
    // d_fc1 = gelu'(fc1) * (d @ fc2_w), through d_hidden unless the backend fuses it
    be->matmul_bwd_dgelu(be, st->d_fc1, g->fc2_w, g->fc2_b, st->d_hidden, d, a->gelu, w->fc2_w, a->fc1, R, C, Hd);
    be->zero(be, st->d_ln, (size_t)R * C * es);
    be->matmul_bwd(be, st->d_ln, g->fc1_w, g->fc1_b, st->d_fc1, a->ln2, w->fc1_w, R, Hd, C);
    be->layernorm_bwd(be, d, g->ln2_w, g->ln2_b, st->d_ln, a->x_mid, w->ln2_w, a->ln2_mean, a->ln2_rstd, R, C);
    be->zero(be, st->d_att, (size_t)R * C * es);
    be->matmul_bwd(be, st->d_att, g->proj_w, g->proj_b, d, a->att, w->proj_w, R, C, C);
    be->zero(be, st->d_qkv, (size_t)R * 3 * C * es);
    be->attention_bwd(be, st->d_qkv, st->d_att, a->qkv, a->att, a->lse, B, n, s->heads, s->head_dim, s->frame_tokens);
    if (s->rope)  // back through the rotation: the gradient w.r.t. the projection's output
        be->rope_qk(be, st->d_qkv, st->pos, B, n, s->heads, s->head_dim, s->grid_h, s->grid_w, 1);
    be->zero(be, st->d_ln, (size_t)R * C * es);
    be->matmul_bwd(be, st->d_ln, g->qkv_w, g->qkv_b, st->d_qkv, a->ln1, w->qkv_w, R, 3 * C, C);
    be->layernorm_bwd(be, d, g->ln1_w, g->ln1_b, st->d_ln, x_in, w->ln1_w, a->ln1_mean, a->ln1_rstd, R, C);
}

// st->x[0] holds the input; st->out receives the final-normed output.
void stack_forward(Model *m, void *weights, StackActs *st) {
    Backend *be = m->be;
    const StackDims *s = st->dims;
    const int R = st->B * st->n;
    int last = 0;
    for (int l = 0; l < s->depth; l++) {
        const BlockTensors w = block_tensors(m, weights, be->esize, s, l);
        BlockActs *a = &st->blk[st->mode == STACK_SAVE ? l : 0];
        const int in = st->mode == STACK_NO_GRAD ? l % 2 : l;
        const int out = st->mode == STACK_NO_GRAD ? (l + 1) % 2 : l + 1;
        block_forward(be, s, &w, a, st->x[in], st->x[out], st->B, st->n, st->pos);
        last = out;
    }
    void *norm_w = tensor_at(m, weights, s->norm_tensor, be->esize);
    void *norm_b = tensor_at(m, weights, s->norm_tensor + 1, be->esize);
    be->layernorm_fwd(be, st->out, st->out_mean, st->out_rstd, st->x[last], norm_w, norm_b, R, s->width, s->ln_eps);
}

// d_out [B,n,C]: gradient of st->out. Leaves the gradient of x[0] in st->d_stream.
void stack_backward(Model *m, StackActs *st, const void *d_out) {
    Backend *be = m->be;
    const StackDims *s = st->dims;
    const int R = st->B * st->n, C = s->width;
    be->zero(be, st->d_stream, (size_t)R * C * be->esize);
    be->layernorm_bwd(be, st->d_stream, tensor_at(m, m->grads, s->norm_tensor, be->msize),
                      tensor_at(m, m->grads, s->norm_tensor + 1, be->msize), d_out, st->x[s->depth],
                      tensor_at(m, m->work, s->norm_tensor, be->esize), st->out_mean, st->out_rstd, R, C);
    for (int l = s->depth - 1; l >= 0; l--) {
        const BlockTensors w = block_tensors(m, m->work, be->esize, s, l);
        const BlockTensors g = block_tensors(m, m->grads, be->msize, s, l);
        BlockActs *a = &st->blk[l];
        // Recompute writes x[l+1] again with the same values; nothing after this block needs it.
        if (block_recomputed(s, l))
            block_forward(be, s, &w, a, st->x[l], st->x[l + 1], st->B, st->n, st->pos);
        block_backward(be, s, &w, &g, a, st->x[l], st, st->d_stream);
        if (m->on_block_grads) m->on_block_grads(m->hook_ctx, s->module, l);
    }
}

// ---------------------------------------------------------------- the micro-batch

// Patch embedding + position for all N tokens with the given weights: out [B,N,D].
static void embed_patches(Model *m, void *weights, const MicroBuffers *mb, void *out, int B) {
    Backend *be = m->be;
    const ModelDims *d = &m->dims;
    be->matmul_fwd(be, out, mb->patches, tensor_at(m, weights, d->patch_w, be->esize),
                   tensor_at(m, weights, d->patch_b, be->esize), B * d->tokens, d->enc.width, d->patch_dim);
    if (m->pos_enc) be->add_rows(be, out, m->pos_enc, NULL, B, d->tokens, d->enc.width);  // none with RoPE
}

static void target_features(Model *m, MicroBuffers *mb, int B, double scale) {
    Backend *be = m->be;
    const ModelDims *d = &m->dims;
    const int N = d->tokens, D = d->enc.width;
    embed_patches(m, m->target_work, mb, mb->target.x[0], B);
    stack_forward(m, m->target_work, &mb->target);
    // V-JEPA normalises the targets with a second, non-affine LayerNorm (eps 1e-5).
    be->layernorm_fwd(be, mb->h, mb->h_mean, mb->h_rstd, mb->target.out, NULL, NULL, B * N, D, 1e-5);
    be->mean_column_std(be, model_stat_slot(m, STAT_TARGET_STD), mb->h, B * N, D, scale);
}

static void upload_masks(Backend *be, const MaskBatch *mk, GenBuffers *g) {
    be->upload(be, g->ctx_idx, mk->ctx, (size_t)mk->B * mk->n_ctx * sizeof(int32_t));
    be->upload(be, g->tgt_idx, mk->tgt, (size_t)mk->B * mk->n_tgt * sizeof(int32_t));
    // The predictor's tokens in their order there, [context, targets] per sample (RoPE positions). upload copies
    // the host memory before it returns, so the staging array may go at once.
    const int nc = mk->n_ctx, nt = mk->n_tgt, n = nc + nt;
    int32_t *both = xmalloc((size_t)mk->B * n * sizeof(int32_t));
    for (int b = 0; b < mk->B; b++) {
        memcpy(both + (size_t)b * n, mk->ctx + (size_t)b * nc, (size_t)nc * sizeof(int32_t));
        memcpy(both + (size_t)b * n + nc, mk->tgt + (size_t)b * nt, (size_t)nt * sizeof(int32_t));
    }
    be->upload(be, g->pred_idx, both, (size_t)mk->B * n * sizeof(int32_t));
    free(both);
}

static void generator_forward(Model *m, MicroBuffers *mb, GenBuffers *g, int gen, int B, int nc, int nt,
                              double loss_scale, double grad_scale) {
    Backend *be = m->be;
    const ModelDims *d = &m->dims;
    const int N = d->tokens, D = d->enc.width, P = d->pred.width;
    void *W = m->work;
    const size_t es = be->esize;
    // context encoder
    be->gather_tokens(be, g->enc.x[0], mb->embedded, g->ctx_idx, B, nc, N, D);
    stack_forward(m, W, &g->enc);
    model_mark_phase(m, PHASE_PREDICTOR_FWD);
    // predictor input: [embedded context + ppos(ctx), mask token + ppos(tgt)]
    be->matmul_fwd(be, g->pz, g->enc.out, tensor_at(m, W, d->pred_embed_w, es), tensor_at(m, W, d->pred_embed_b, es),
                   B * nc, P, D);
    if (m->pos_pred) be->add_rows(be, g->pz, m->pos_pred, g->ctx_idx, B, nc, P);
    const int token = d->mask_token0 + (d->shared_mask_token ? 0 : gen % d->num_mask_tokens);
    be->broadcast_row(be, g->ptok, tensor_at(m, W, token, es), B * nt, P);
    if (m->pos_pred) be->add_rows(be, g->ptok, m->pos_pred, g->tgt_idx, B, nt, P);
    be->copy_tokens(be, g->pred.x[0], nc + nt, 0, g->pz, nc, 0, nc, B, P, 0);
    be->copy_tokens(be, g->pred.x[0], nc + nt, nc, g->ptok, nt, 0, nt, B, P, 0);
    stack_forward(m, W, &g->pred);
    be->copy_tokens(be, g->yt, nt, 0, g->pred.out, nc + nt, nc, nt, B, P, 0);
    be->matmul_fwd(be, g->pred_out, g->yt, tensor_at(m, W, d->pred_proj_w, es), tensor_at(m, W, d->pred_proj_b, es),
                   B * nt, D, P);
    // loss against the normalised targets at the target positions
    be->gather_tokens(be, g->h_tgt, mb->h, g->tgt_idx, B, nt, N, D);
    be->zero(be, g->d_pred_out, (size_t)B * nt * D * es);
    void *slot = (char *)m->stats + (size_t)gen * be->ssize;
    be->l1_loss(be, slot, g->d_pred_out, g->pred_out, g->h_tgt, (size_t)B * nt * D, loss_scale, grad_scale);
}

static void generator_backward(Model *m, MicroBuffers *mb, GenBuffers *g, int gen, int B, int nc, int nt) {
    Backend *be = m->be;
    const ModelDims *d = &m->dims;
    const int N = d->tokens, D = d->enc.width, P = d->pred.width;
    void *W = m->work, *G = m->grads;
    const size_t es = be->esize, ms = be->msize;
    model_mark_phase(m, PHASE_PREDICTOR_BWD);
    be->zero(be, g->d_yt, (size_t)B * nt * P * es);
    be->matmul_bwd(be, g->d_yt, tensor_at(m, G, d->pred_proj_w, ms), tensor_at(m, G, d->pred_proj_b, ms),
                   g->d_pred_out, g->yt, tensor_at(m, W, d->pred_proj_w, es), B * nt, D, P);
    // The predictor's output gradient, zero at the context positions. It is built in the stack's d_ln scratch:
    // stack_backward reads it only for the final norm, before any block reuses d_ln.
    void *d_pred_full = g->pred.d_ln;  // [B, nc+nt, P]
    be->zero(be, d_pred_full, (size_t)B * (nc + nt) * P * es);
    be->copy_tokens(be, d_pred_full, nc + nt, nc, g->d_yt, nt, 0, nt, B, P, 1);
    stack_backward(m, &g->pred, d_pred_full);
    // mask token gradient: sum over all target rows
    const int token = d->mask_token0 + (d->shared_mask_token ? 0 : gen % d->num_mask_tokens);
    be->copy_tokens(be, g->d_yt, nt, 0, g->pred.d_stream, nc + nt, nc, nt, B, P, 0);
    be->sum_rows(be, tensor_at(m, G, token, ms), g->d_yt, B * nt, P);
    // predictor embedding
    be->copy_tokens(be, g->d_pz, nc, 0, g->pred.d_stream, nc + nt, 0, nc, B, P, 0);
    be->zero(be, g->d_z, (size_t)B * nc * D * es);
    be->matmul_bwd(be, g->d_z, tensor_at(m, G, d->pred_embed_w, ms), tensor_at(m, G, d->pred_embed_b, ms), g->d_pz,
                   g->enc.out, tensor_at(m, W, d->pred_embed_w, es), B * nc, P, D);
    model_mark_phase(m, PHASE_CONTEXT_BWD);
    stack_backward(m, &g->enc, g->d_z);
    be->scatter_add_tokens(be, mb->d_embedded, g->enc.d_stream, g->ctx_idx, B, nc, N, D);
}

void model_micro_step(Model *m, const MicroBatch *batch, double grad_scale, int backward) {
    Backend *be = m->be;
    const ModelDims *d = &m->dims;
    const int B = batch->B, N = d->tokens, D = d->enc.width;
    const ElemSizes z = {be->esize, be->ssize};
    JEPA_ASSERT(B <= m->max_batch);
    arena_reset(&m->arena, 0);
    MicroBuffers mb;
    micro_buffers_take(&m->arena, d, z, B, &mb);
    const int slot = batch->slot;
    model_mark_phase(m, PHASE_INPUT);
    if (batch->clips) {
        memcpy(model_input_host(m, slot, B), batch->clips, model_clip_elems(d, B) * sizeof(float));
        model_stage_clips(m, slot, B);
    }
    be->wait_input(be, slot);
    model_mark_phase(m, PHASE_TARGET_FWD);
    be->patchify(be, mb.patches, m->clips[slot], B, d->frames, d->crop, d->crop, d->tubelet, d->patch);
    be->input_consumed(be, slot);  // the slot may now take the micro-batch after next
    target_features(m, &mb, B, grad_scale);
    model_mark_phase(m, PHASE_CONTEXT_FWD);
    embed_patches(m, m->work, &mb, mb.embedded, B);
    be->zero(be, mb.d_embedded, (size_t)B * N * D * be->esize);
    const size_t mark = arena_mark(&m->arena);
    static GenStorage gs;
    // Each generator's loss is averaged over generators (V-JEPA) and over micro-batches (grad_scale).
    const double gen_grad_scale = grad_scale / d->num_masks;
    for (int gen = 0; gen < d->num_masks; gen++) {
        const MaskBatch *mk = &batch->masks[gen];
        JEPA_ASSERT(mk->B == B);
        JEPA_ASSERT(mk->n_ctx + mk->n_tgt <= N);  // the arena holds lists that partition the clip (masks.h)
        GenBuffers g;
        gen_buffers_take(&m->arena, d, z, B, mk->n_ctx, mk->n_tgt, &gs, &g);
        model_mark_phase(m, PHASE_CONTEXT_FWD);
        upload_masks(be, mk, &g);
        generator_forward(m, &mb, &g, gen, B, mk->n_ctx, mk->n_tgt, grad_scale, gen_grad_scale);
        if (backward) generator_backward(m, &mb, &g, gen, B, mk->n_ctx, mk->n_tgt);
        arena_reset(&m->arena, mark);
    }
    if (backward)  // the patch embedding's gradient, summed over generators
        be->matmul_bwd(be, NULL, tensor_at(m, m->grads, d->patch_w, be->msize),
                       tensor_at(m, m->grads, d->patch_b, be->msize), mb.d_embedded, mb.patches,
                       tensor_at(m, m->work, d->patch_w, be->esize), B * N, D, d->patch_dim);
    model_mark_phase(m, PHASE_LOOP);
}

// ---------------------------------------------------------------- evaluation (frozen forward passes)

// Copies B host clips in through slot 0 and patchifies them into mb->patches.
static void eval_patchify(Model *m, const float *clips, int B, MicroBuffers *mb) {
    Backend *be = m->be;
    const ModelDims *d = &m->dims;
    memcpy(model_input_host(m, 0, B), clips, model_clip_elems(d, B) * sizeof(float));
    model_stage_clips(m, 0, B);
    be->wait_input(be, 0);
    be->patchify(be, mb->patches, m->clips[0], B, d->frames, d->crop, d->crop, d->tubelet, d->patch);
    be->input_consumed(be, 0);
}

void model_encode(Model *m, const float *clips, int B, int use_target, double *out) {
    Backend *be = m->be;
    const ModelDims *d = &m->dims;
    JEPA_ASSERT(B <= m->max_batch);
    arena_reset(&m->arena, 0);
    MicroBuffers mb;
    micro_buffers_take(&m->arena, d, (ElemSizes){be->esize, be->ssize}, B, &mb);
    eval_patchify(m, clips, B, &mb);
    void *weights = use_target ? m->target_work : m->work;
    embed_patches(m, weights, &mb, mb.target.x[0], B);
    stack_forward(m, weights, &mb.target);
    be->download_f64(be, out, mb.target.out, be->esize, (size_t)B * d->tokens * d->enc.width);
}

void model_predict(Model *m, const float *clips, int gen, const MaskBatch *mk, double *pred, double *target) {
    Backend *be = m->be;
    const ModelDims *d = &m->dims;
    const int B = mk->B;
    const ElemSizes z = {be->esize, be->ssize};
    JEPA_ASSERT(B <= m->max_batch && gen >= 0 && gen < d->num_masks);
    JEPA_ASSERT(mk->n_ctx + mk->n_tgt <= d->tokens);  // what the arena was planned for (model_plan_arena_max)
    arena_reset(&m->arena, 0);
    MicroBuffers mb;
    micro_buffers_take(&m->arena, d, z, B, &mb);
    eval_patchify(m, clips, B, &mb);
    target_features(m, &mb, B, 0.0);  // scale 0: the statistics are left as they are
    embed_patches(m, m->work, &mb, mb.embedded, B);
    static GenStorage gs;
    GenBuffers g;
    gen_buffers_take(&m->arena, d, z, B, mk->n_ctx, mk->n_tgt, &gs, &g);
    upload_masks(be, mk, &g);
    generator_forward(m, &mb, &g, gen, B, mk->n_ctx, mk->n_tgt, 0.0, 0.0);
    const size_t n = (size_t)B * mk->n_tgt * d->enc.width;
    be->download_f64(be, pred, g.pred_out, be->esize, n);
    be->download_f64(be, target, g.h_tgt, be->esize, n);
}

// ---------------------------------------------------------------- input

size_t model_clip_elems(const ModelDims *d, int B) { return (size_t)B * d->frames * d->crop * d->crop * 3; }

float *model_input_host(Model *m, int slot, int B) {
    JEPA_ASSERT(slot == 0 || slot == 1);
    JEPA_ASSERT(B <= m->max_batch);
    return m->be->input_host(m->be, slot, model_clip_elems(&m->dims, B));
}

void model_stage_clips(Model *m, int slot, int B) {
    m->be->upload_input(m->be, slot, m->clips[slot], model_clip_elems(&m->dims, B));
}

// ---------------------------------------------------------------- lifetime

static void upload_table(Backend *be, void **dst, int N, int dim, int uniform_power, const ModelDims *d) {
    double *table = xmalloc((size_t)N * dim * sizeof(double));
    sincos_3d_table(dim, d->grid_t, d->grid_h, d->grid_w, uniform_power, table);
    *dst = backend_alloc(be, "a position table", (size_t)N * dim * be->esize);
    be->upload_f64(be, *dst, be->esize, table, (size_t)N * dim);
    free(table);
}

Model *model_create(const Config *cfg, Backend *be) {
    Model *m = xcalloc(1, sizeof(Model));
    m->be = be;
    model_dims_from_config(cfg, &m->dims);
    model_build_table(&m->dims, &m->table);
    const ModelDims *d = &m->dims;
    const size_t total = m->table.total, enc = table_module_numel(&m->table, MODULE_ENCODER);
    // Sizes from the memory plan, which the dry run prints (the arena: for the largest token counts of any masks).
    m->max_batch = cfg->data.batch_size;
    const BackendSizes sizes = {{be->esize, be->ssize}, be->msize, 0};
    const MemoryPlan plan = model_plan_memory(d, &m->table, sizes, m->max_batch);
    m->params = backend_alloc(be, "the master parameters", plan.master);
    m->grads = backend_alloc(be, "the parameter gradients", plan.grads);
    m->adam_m = backend_alloc(be, "the AdamW first moments", plan.moments / 2);
    m->adam_v = backend_alloc(be, "the AdamW second moments", plan.moments / 2);
    m->target = backend_alloc(be, "the target encoder", plan.target);
    m->work = plan.working ? backend_alloc(be, "the working parameters", plan.working) : m->params;
    m->target_work = plan.target_working ? backend_alloc(be, "the working target encoder", plan.target_working)
                                         : m->target;
    double *init = xmalloc(total * sizeof(double));
    table_init_values(&m->table, (uint64_t)cfg->meta.seed, init);
    be->upload_f64(be, m->params, be->msize, init, total);
    free(init);
    be->copy(be, m->target, m->params, enc * be->msize);  // the target starts as a copy of the encoder
    be->cast_params(be, m->work, m->params, total);
    be->cast_params(be, m->target_work, m->target, enc);
    if (!d->rope) {  // V-JEPA 2's RoPE has no additive table
        upload_table(be, &m->pos_enc, d->tokens, d->enc.width, cfg->model.uniform_power, d);
        upload_table(be, &m->pos_pred, d->tokens, d->pred.width, cfg->model.uniform_power, d);
    }
    m->stats = backend_alloc(be, "the step statistics", plan.stats);
    m->arena.capacity = plan.arena;
    m->arena.base = backend_alloc(be, "the activation arena (planned for data.batch_size clips)", m->arena.capacity);
    for (int s = 0; s < 2; s++)
        m->clips[s] = backend_alloc(be, "the input double buffer (data.batch_size clips)",
                                    model_clip_elems(d, m->max_batch) * be->esize);
    return m;
}

void model_free(Model *m) {
    if (!m) return;
    Backend *be = m->be;
    if (m->work != m->params) be->release(be, m->work);
    if (m->target_work != m->target) be->release(be, m->target_work);
    void *buffers[] = {m->params, m->grads, m->adam_m, m->adam_v, m->target,
                       m->pos_enc, m->pos_pred, m->stats, m->arena.base};
    for (size_t i = 0; i < sizeof(buffers) / sizeof(buffers[0]); i++) be->release(be, buffers[i]);
    for (int s = 0; s < 2; s++) be->release(be, m->clips[s]);
    table_free(&m->table);
    free(m);
}

void model_zero_step(Model *m) {
    Backend *be = m->be;
    model_mark_phase(m, PHASE_OPTIMIZER);
    be->zero(be, m->grads, m->table.total * be->msize);
    be->zero(be, m->stats, (size_t)(m->dims.num_masks + STAT_EXTRA) * be->ssize);
    model_mark_phase(m, PHASE_LOOP);
}

void model_mark_phase(Model *m, ModelPhase phase) {
    if (m->on_phase) m->on_phase(m->phase_ctx, (int)phase);
}

void *model_stat_slot(Model *m, int which) {
    return (char *)m->stats + (size_t)(m->dims.num_masks + which) * m->be->ssize;
}

void model_read_stats(Model *m, StepStats *out) {
    const int G = m->dims.num_masks;
    double v[CONFIG_MAX_MASKS + STAT_EXTRA];
    m->be->download_f64(m->be, v, m->stats, m->be->ssize, (size_t)(G + STAT_EXTRA));
    memset(out, 0, sizeof(*out));
    for (int g = 0; g < G; g++) {
        out->loss[g] = v[g];
        out->loss_mean += v[g] / G;
    }
    out->target_std = v[G + STAT_TARGET_STD];
    out->grad_norm[MODULE_ENCODER] = sqrt(v[G + STAT_SUMSQ_ENCODER]);
    out->grad_norm[MODULE_PREDICTOR] = sqrt(v[G + STAT_SUMSQ_PREDICTOR]);
    out->nonfinite = v[G + STAT_NONFINITE] != 0;
}

// Counts the non-finite elements of a table's tensors in one flat buffer (elements of elem_size); names the first.
static int count_nonfinite_tensors(Model *m, const void *flat, size_t elem_size, size_t numel_limit, char *first,
                                   size_t n) {
    const TensorTable *t = &m->table;
    int bad = 0;
    double *host = NULL;
    size_t cap = 0;
    for (int i = 0; i < t->count; i++) {
        const TensorSpec *ti = &t->tensors[i];
        if (ti->offset + ti->numel > numel_limit) continue;  // the target holds the encoder's tensors only
        if (ti->numel > cap) host = xrealloc(host, (cap = ti->numel) * sizeof(double));
        m->be->download_f64(m->be, host, (const char *)flat + ti->offset * elem_size, elem_size, ti->numel);
        size_t k = 0;
        while (k < ti->numel && isfinite(host[k])) k++;
        if (k < ti->numel && bad++ == 0) snprintf(first, n, "%s[%zu] = %g", ti->name, k, host[k]);
    }
    free(host);
    return bad;
}

int model_describe_nonfinite(Model *m, char *out, size_t n) {
    const int G = m->dims.num_masks;
    double v[CONFIG_MAX_MASKS + STAT_EXTRA];
    m->be->download_f64(m->be, v, m->stats, m->be->ssize, (size_t)(G + STAT_EXTRA));
    size_t len = 0;
    out[0] = 0;
    for (int g = 0; g < G; g++)
        if (!isfinite(v[g]) && len < n) len += snprintf(out + len, n - len, "loss of mask %d = %g; ", g, v[g]);
    if (!isfinite(v[G + STAT_TARGET_STD]) && len < n)
        len += snprintf(out + len, n - len, "target std = %g; ", v[G + STAT_TARGET_STD]);
    char first[160] = "";
    const int grads = count_nonfinite_tensors(m, m->grads, m->be->msize, m->table.total, first, sizeof first);
    if (grads && len < n)
        len += snprintf(out + len, n - len, "gradient %s (first of %d tensors in table order)", first, grads);
    else if (len < n) len += snprintf(out + len, n - len, "all gradients finite");
    const int params = count_nonfinite_tensors(m, m->params, m->be->msize, m->table.total, first, sizeof first);
    const int target = count_nonfinite_tensors(m, m->target, m->be->msize, table_module_numel(&m->table, MODULE_ENCODER),
                                               first, sizeof first);
    if ((params || target) && len < n)
        snprintf(out + len, n - len, "; PARAMETERS non-finite: %s (%d tensors, %d of the target)", first, params,
                 target);
    return params || target;
}
