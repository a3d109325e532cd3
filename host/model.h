// model.h: V-JEPA v1 (encoder, predictor, target encoder, L1 loss) written once against the backend op interface.
#pragma once
#include <stdint.h>

#include "arena.h"
#include "backend.h"
#include "config.h"
#include "masks.h"
#include "tensors.h"

#define TENSORS_PER_BLOCK 12  // norm1 w,b; qkv w,b; proj w,b; norm2 w,b; fc1 w,b; fc2 w,b

typedef struct {
    int width, depth, heads, head_dim, mlp_hidden;
    double ln_eps;
    int rope;                // 3D RoPE on q and k in every block (model.pos_embed: rope3d), over the token grid
    int frame_tokens;        // 0: full attention; > 0: frame-causal over frames of this many tokens (AC predictor)
    int grid_h, grid_w;      // tokens per row and rows per frame of that grid (positions are raster indices)
    int checkpoint_every;    // STACK_SAVE: blocks l with l % k == 0 recompute their forward in the backward; 0: none
    int first_block_tensor;  // table index of blocks.0.norm1.weight
    int norm_tensor;         // table index of the final norm's weight (bias follows)
    ModuleId module;
} StackDims;

typedef struct {
    int frames, crop, tubelet, patch;
    int grid_t, grid_h, grid_w, tokens;  // token grid, tokens = grid_t * grid_h * grid_w
    int patch_dim;                       // 3 * tubelet * patch * patch
    int num_masks;                       // mask generators
    int num_mask_tokens;                 // V-JEPA v1: one per generator
    int rope;                            // model.pos_embed: rope3d (V-JEPA 2): no additive sincos tables
    int shared_mask_token;               // every generator uses mask_tokens.0 (V-JEPA 2 with one clip length)
    int depth_scaled_init;               // attn.proj, mlp.fc2 of block l drawn with std 0.02/sqrt(2l) (V-JEPA 2)
    StackDims enc, pred;
    int patch_w, patch_b;                // table indices
    int pred_embed_w, pred_embed_b, pred_proj_w, pred_proj_b, mask_token0;
} ModelDims;

// Element sizes the arena plan is made for (a backend's, or the config's dtype for --dry-run on another machine).
typedef struct {
    size_t esize, ssize;
} ElemSizes;

// Saved activations of one transformer block, R = B*n rows.
typedef struct {
    void *ln1, *ln1_mean, *ln1_rstd;  // [R,C], [R], [R]
    void *qkv;                        // [B,n,3,H,hd]
    void *att, *lse;                  // [B,n,C], [B,H,n]
    void *x_mid;                      // [R,C] residual stream after attention
    void *ln2, *ln2_mean, *ln2_rstd;  // [R,C], [R], [R]
    void *fc1, *gelu;                 // [R,hidden] pre- and post-GELU
} BlockActs;

// NO_GRAD: a forward only (the target encoder), two residual buffers in turn and one block's scratch. SAVE: what the
// backward needs: every block's input, and every block's activations except those of the blocks recomputed
// (dims->checkpoint_every), which share one scratch (or the storage of the saved block after them).
typedef enum { STACK_NO_GRAD, STACK_SAVE } StackMode;

// Activations of a block stack run on [B, n] tokens.
typedef struct {
    const StackDims *dims;
    StackMode mode;
    int B, n;
    const int32_t *pos;             // [B,n] grid index of each token, for RoPE; NULL: token i is at i
    void **x;                       // residual stream [B,n,C]: depth+1 entries (2, ping-pong, for NO_GRAD)
    BlockActs *blk;                 // depth entries when STACK_SAVE (recomputed blocks share storage), else 1
    void *out, *out_mean, *out_rstd;  // final norm [B,n,C], [R], [R]
    // backward scratch
    void *d_stream;                 // [B,n,C] gradient of the residual stream
    void *d_ln, *d_att;             // [R,C]
    void *d_qkv;                    // [R,3C]
    void *d_hidden, *d_fc1;         // [R,hidden]
} StackActs;

typedef struct Model Model;
typedef void (*BlockGradsHook)(void *ctx, ModuleId module, int block);

// Phases of a training step, for profiling (`jepa bench step`). model_mark_phase(m, p) calls m->on_phase(ctx, p) on
// the host as phase p begins, in queue order: work queued from there until the next mark belongs to p (a GPU timer
// records an event on the compute stream there). Per generator, its forward phases then its backward phases.
typedef enum {
    PHASE_LOOP = 0,       // the caller's own work between model calls: data reads, masks, the step's sync
    PHASE_INPUT,          // the micro-batch's clips reaching the device
    PHASE_TARGET_FWD,     // patchify, target encoder, target normalisation and std
    PHASE_CONTEXT_FWD,    // patch embedding; per generator: mask upload, context encoder
    PHASE_PREDICTOR_FWD,  // per generator: predictor embedding, blocks, projection, loss
    PHASE_PREDICTOR_BWD,  // per generator: back through the projection, predictor blocks and embedding
    PHASE_CONTEXT_BWD,    // per generator: context encoder backward; the patch embedding's weight gradient
    PHASE_OPTIMIZER,      // zeroing gradients; norms, clipping, AdamW, EMA, working copies
    PHASE_COUNT
} ModelPhase;
typedef void (*PhaseHook)(void *ctx, int phase);

struct Model {
    Backend *be;
    ModelDims dims;
    TensorTable table;
    void *params;       // master parameters [table.total], msize
    void *work;         // working copy [table.total], esize (aliases params when esize == msize)
    void *grads;        // parameter gradients [table.total], msize
    void *adam_m, *adam_v;  // AdamW moments [table.total], msize
    void *target;       // target encoder master [encoder numel], msize, same offsets as the encoder
    void *target_work;  // its working copy, esize (aliases target when esize == msize)
    void *pos_enc;      // fixed sincos [tokens, enc.width], esize; NULL with rope3d
    void *pos_pred;     // fixed sincos [tokens, pred.width], esize; NULL with rope3d
    void *stats;        // the step's statistics, ssize: [num_masks] losses, target std, gradient sum of squares
                        // per module (STAT_* below); read once per step, the only host sync of a step
    Arena arena;        // activations
    void *clips[2];     // input double buffer [max_batch,T,H,W,3], esize: micro-batch k+1 lands while k computes
    int max_batch;      // the batch the arena was planned for
    BlockGradsHook on_block_grads;  // called after each block's backward (overlapped all-reduce); may be NULL
    void *hook_ctx;
    PhaseHook on_phase;  // called as each phase of a step begins (ModelPhase); NULL (the default): no calls
    void *phase_ctx;
    int ema_folded;      // optim_update did this step's EMA in its AdamW pass, so optim_ema has nothing to do
};

// One micro-batch: its clips and, per generator, host masks.
typedef struct {
    int B;
    const float *clips;      // [B, frames, crop, crop, 3] normalised, copied in through `slot` at once; or NULL: the
                             // clips already staged in `slot` (model_input_host + model_stage_clips)
    const MaskBatch *masks;  // [num_masks]
    int slot;                // input slot, 0 or 1
} MicroBatch;

// Offsets into Model.stats after the per-generator losses.
// STAT_NONFINITE: 1 when a loss, the target std or a gradient sum of squares is NaN/Inf (the update was dropped).
enum { STAT_TARGET_STD = 0, STAT_SUMSQ_ENCODER = 1, STAT_SUMSQ_PREDICTOR = 2, STAT_NONFINITE = 3, STAT_EXTRA = 4 };

typedef struct {
    double loss[CONFIG_MAX_MASKS];  // per generator, averaged over micro-batches
    double loss_mean;               // averaged over generators (what V-JEPA logs)
    double target_std;  // mean per-dimension std of the normalised target features across tokens (collapse signal)
    double grad_norm[MODULE_COUNT];  // before clipping
    int nonfinite;                   // a loss or gradient was NaN/Inf: the optimizer step changed nothing
} StepStats;

void model_dims_from_config(const Config *cfg, ModelDims *dims);  // exits 2 on an impossible model
void model_build_table(const ModelDims *dims, TensorTable *table);
// Arena bytes one micro-batch of B clips needs with the given token counts (one per generator).
size_t model_plan_arena(const ModelDims *dims, ElemSizes sizes, int B, const int *n_ctx, const int *n_tgt);
// The arena for any masks of B clips: the largest over every split of the clip's tokens into a context and targets
// (a generator's lists partition them before the cut, masks.h, so n_ctx + n_tgt <= tokens).
size_t model_plan_arena_max(const ModelDims *dims, ElemSizes sizes, int B);

// What a backend keeps its buffers in, for the memory plan.
typedef struct {
    ElemSizes z;     // activations and working weights; statistics
    size_t msize;    // master parameters, gradients, optimizer state
    size_t staging;  // bytes per clip element of the backend's own device copy of each input slot (CUDA: fp32, 4)
} BackendSizes;

// Bytes of the backend allocations model_create makes (and the backend's input staging), per category, for
// data.batch_size B. The CUDA backend's cuBLASLt/cuDNN workspaces, attention scratch and CUDA context are not in it.
typedef struct {
    size_t master, working, grads, moments, target, target_working;  // [params] sized; working: 0 when aliased
    size_t positions, stats;  // sincos tables (none with rope3d); the step statistics
    size_t arena;             // activations, model_plan_arena_max
    size_t inputs;            // the clip double buffer, and the backend's staging copies
    size_t total;
} MemoryPlan;
MemoryPlan model_plan_memory(const ModelDims *dims, const TensorTable *table, BackendSizes sizes, int B);

Model *model_create(const Config *cfg, Backend *be);
void model_free(Model *m);
// Host buffer [B,T,H,W,3] for the clips of input slot `slot` (waits until its previous copy has left it).
float *model_input_host(Model *m, int slot, int B);
// Starts the copy of slot's host clips to the device (overlapping the compute queued before, not reading it).
void model_stage_clips(Model *m, int slot, int B);
size_t model_clip_elems(const ModelDims *d, int B);

// Zero gradients and statistics (start of an optimizer step).
void model_zero_step(Model *m);
// Forward (and backward when `backward`) of one micro-batch. Gradients accumulate into m->grads scaled by
// grad_scale (1/accum_steps); each generator's loss and the target std accumulate into m->stats scaled likewise.
void model_micro_step(Model *m, const MicroBatch *mb, double grad_scale, int backward);
// Calls m->on_phase when set (ModelPhase).
void model_mark_phase(Model *m, ModelPhase phase);
// Pointer to statistic `which` (STAT_*) in m->stats.
void *model_stat_slot(Model *m, int which);
// Downloads the step's statistics (synchronises).
void model_read_stats(Model *m, StepStats *out);
// After a step with StepStats.nonfinite: what was not finite, for the one-line report ("loss of mask 0 = nan;
// gradient of encoder.blocks.3.attn.qkv.weight (first of 12 tensors)"). Slow (downloads the gradients tensor by
// tensor); only called at a fault. Returns whether any parameter itself is non-finite (then skipping cannot help).
int model_describe_nonfinite(Model *m, char *out, size_t n);
// Frozen forward passes for evaluation (jepa eval, jepa embed); no gradients, statistics untouched. clips: host
// [B,T,H,W,3] normalised, B <= the batch the model was created for.
// The encoder's output after its final norm, [B,N,D], of the target encoder (use_target) or the context encoder.
void model_encode(Model *m, const float *clips, int B, int use_target, double *out);
// Generator gen's predictor given mk's context and target lists: pred [B,nt,D] the predictions at the targets,
// target [B,nt,D] the target encoder's normalised features there (what the training loss compares).
void model_predict(Model *m, const float *clips, int gen, const MaskBatch *mk, double *pred, double *target);
// A block stack on its own (the V-JEPA encoders and predictor; the AC predictor, model_ac.c, with a Model that holds
// only its be, table, work and grads). Activations carved from a (measuring when a->base is NULL); st->x[0] is the
// input, st->out the final-normed output; stack_backward leaves the input's gradient in st->d_stream and
// accumulates parameter gradients into m->grads.
void stack_acts_take(Arena *a, const StackDims *s, ElemSizes z, StackMode mode, int B, int n, StackActs *st,
                     BlockActs *blk_storage, void **x_storage);
void stack_forward(Model *m, void *weights, StackActs *st);
void stack_backward(Model *m, StackActs *st, const void *d_out);
// Table building blocks: a stack's sizes (exits 2 naming `what` when impossible); a Linear's weight [out,in] and
// bias (returns the weight's index); a stack's blocks then its final norm under the official names.
void stack_dims_set(StackDims *s, int width, int depth, int heads, double mlp_ratio, ModuleId module, const char *what);
int add_linear(TensorTable *t, ModuleId m, const char *prefix, int64_t out, int64_t in);
void add_stack(TensorTable *t, StackDims *s, const char *blocks_prefix, const char *norm_name);
// Fixed 3D sincos table [grid_t*grid_h*grid_w, dim] as V-JEPA builds it (uniform_power: equal axis widths).
void sincos_3d_table(int dim, int grid_t, int grid_h, int grid_w, int uniform_power, double *table);
