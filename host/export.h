// export.h: `jepa export`: a checkpoint's weights under the official V-JEPA modules' own state_dict names and
// layouts (VisionTransformer for the encoder or target encoder, VisionTransformerPredictor for the predictor), with
// the fixed sincos position tables they hold as parameters, so that load_state_dict(..., strict=True) takes them.
#pragma once
#include "model.h"

typedef enum { EXPORT_TARGET = 0, EXPORT_ENCODER = 1, EXPORT_PREDICTOR = 2 } ExportWhat;

typedef struct {
    char name[128];    // the official state_dict key, e.g. "blocks.0.attn.qkv.weight", "pos_embed"
    int ndim;
    int64_t shape[5];
    char source[160];  // its tensor in model.safetensors; "" for a position table computed here
    int pos_width;     // position tables: their width (encoder or predictor)
} ExportTensor;

// 0 and *what for "target", "encoder" or "predictor"; -1 otherwise.
int export_what_parse(const char *text, ExportWhat *what);
// The official module's state_dict for `what`, in its order (the position table first, none with rope3d); returns the count (out holds table.count + 1).
int export_layout(const TensorTable *t, const ModelDims *d, ExportWhat what, ExportTensor *out);
// The layout for a config: d and t receive its dims and tensor table (free t), *count the entries (free the result).
ExportTensor *export_layout_for(const Config *cfg, ExportWhat what, ModelDims *d, TensorTable *t, int *count);
// ckpt is a checkpoint folder (with manifest.json) or a run folder (its newest checkpoint that verifies). Writes
// out_path atomically. Exits 2 with one line naming the file on anything unreadable or unexpected.
void export_checkpoint(const char *ckpt, const char *out_path, ExportWhat what);
