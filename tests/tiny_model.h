// tiny_model.h: the tiny V-JEPA config the model tests share (tests/test_model.c, tests/test_cuda_backend.c).
#pragma once
#include <string.h>

#include "config.h"

// A model small enough for finite differences over many parameters: 4x4x2 = 32 tokens, widths 16 and 8.
static inline void tiny_config(Config *cfg, int batch) {
    config_defaults(cfg);
    cfg->data.batch_size = batch;
    cfg->data.num_frames = 4;
    cfg->data.tubelet_size = 2;
    cfg->data.sampling_rate = 1;
    cfg->data.crop_size = 32;
    cfg->data.patch_size = 8;
    cfg->data.synth_balls = 2;
    strcpy(cfg->model.model_name, "vit_custom");
    cfg->model.embed_dim = 16;
    cfg->model.depth = 2;
    cfg->model.num_heads = 2;
    cfg->model.pred_embed_dim = 8;
    cfg->model.pred_depth = 2;
    cfg->model.pred_num_heads = 2;
    strcpy(cfg->meta.dtype, "float32");
    cfg->meta.seed = 7;
    // Two generators of one block each: every sample's lists have the same length, so no cut differs between
    // batch groupings (what the accumulation test needs).
    cfg->num_masks = 2;
    for (int g = 0; g < 2; g++) {
        MaskGenConfig *mg = &cfg->mask[g];
        mg->num_blocks = 1;
        mg->spatial_scale[0] = mg->spatial_scale[1] = g == 0 ? 0.25 : 0.5;
        mg->aspect_ratio[0] = 0.75, mg->aspect_ratio[1] = 1.5;
        mg->temporal_scale[0] = mg->temporal_scale[1] = 1.0;
        mg->max_temporal_keep = 1.0;
        mg->max_keep = 0;
    }
}
