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
    int checkpoint_activations;
    StackDims enc, pred;
    int patch_w, patch_b;                // table indices
    int pred_embed_w, pred_embed_b, pred_proj_w, pred_proj_b, mask_token0;
} ModelDims;

// Element sizes the arena plan is made for (a backend's, or the config's dtype for --dry-run on another machine).
typedef struct {
    size_t esize, ssize;
} ElemSizes;

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
    void *pos_enc;      // fixed sincos [tokens, enc.width], esize
    void *pos_pred;     // fixed sincos [tokens, pred.width], esize
    void *stats;        // the step's statistics, ssize: [num_masks] losses, target std, gradient sum of squares
                        // per module (STAT_* below); read once per step, the only host sync of a step
    Arena arena;        // activations
    void *clips[2];     // input double buffer [max_batch,T,H,W,3], esize: micro-batch k+1 lands while k computes
    int max_batch;      // the batch the arena was planned for
    BlockGradsHook on_block_grads;  // called after each block's backward (overlapped all-reduce); may be NULL
    void *hook_ctx;
    PhaseHook on_phase;  // called as each phase of a step begins (ModelPhase); NULL (the default): no calls
    void *phase_ctx;
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
enum { STAT_TARGET_STD = 0, STAT_SUMSQ_ENCODER = 1, STAT_SUMSQ_PREDICTOR = 2, STAT_EXTRA = 3 };

typedef struct {
    double loss[CONFIG_MAX_MASKS];  // per generator, averaged over micro-batches
    double loss_mean;               // averaged over generators (what V-JEPA logs)
    double target_std;  // mean per-dimension std of the normalised target features across tokens (collapse signal)
    double grad_norm[MODULE_COUNT];  // before clipping
} StepStats;

void model_dims_from_config(const Config *cfg, ModelDims *dims);  // exits 2 on an impossible model
void model_build_table(const ModelDims *dims, TensorTable *table);
// Arena bytes one micro-batch of B clips needs with the given token counts (one per generator).
size_t model_plan_arena(const ModelDims *dims, ElemSizes sizes, int B, const int *n_ctx, const int *n_tgt);

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
// Fixed 3D sincos table [grid_t*grid_h*grid_w, dim] as V-JEPA builds it (uniform_power: equal axis widths).
void sincos_3d_table(int dim, int grid_t, int grid_h, int grid_w, int uniform_power, double *table);
