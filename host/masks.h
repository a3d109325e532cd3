// masks.h: V-JEPA multi-block 3D masks (context = complement of the union of num_blocks target blocks).
// Follows the official MaskCollator (src/masks/multiblock3d.py); the randomness comes from counter-based streams,
// so every draw is a pure function of (seed, step, generator, global sample index). See docs/masks.md.
#pragma once
#include <stdint.h>

#include "config.h"

typedef struct { int T, H, W; } TokenGrid;      // token grid: time, height, width; token = (t*H + y)*W + x
typedef struct { int t, h, w; } MaskBlockSize;  // one block, in tokens

typedef struct {
    int B, n_ctx, n_tgt;  // micro-batch size; list lengths after the cut to the micro-batch minimum
    int32_t *ctx;         // (B, n_ctx) context token indices, each row ascending
    int32_t *tgt;         // (B, n_tgt) target token indices, each row ascending
} MaskBatch;

TokenGrid mask_token_grid(int num_frames, int tubelet_size, int crop_size, int patch_size);

// The block size of generator `gen` at global step `step`: shared by every sample, micro-batch and rank of the step.
MaskBlockSize mask_block_size(const MaskGenConfig *mg, int gen, TokenGrid grid, uint64_t seed, long step);

// One sample's lists before the cut. ctx and tgt need room for T*H*W entries each; lengths go to *n_ctx, *n_tgt.
// A pure function of (mg, gen, grid, seed, step, sample); the two lists partition all tokens.
void mask_sample_uncut(const MaskGenConfig *mg, int gen, TokenGrid grid, uint64_t seed, long step, int64_t sample,
                       int32_t *ctx, int *n_ctx, int32_t *tgt, int *n_tgt);

// Masks of generator `gen` (whose config is mg) for the micro-batch of global samples [first_sample,
// first_sample + B) at global step `step`: each sample's uncut lists, then every list cut to the micro-batch
// minimum (contexts and targets separately, keeping the first, i.e. earliest, tokens), then the context capped at
// mg->max_keep when set. Allocates out's lists; free them with mask_batch_free.
void mask_generate(const MaskGenConfig *mg, int gen, TokenGrid grid, uint64_t seed, long step, int64_t first_sample,
                   int B, MaskBatch *out);
void mask_batch_free(MaskBatch *m);
