// config.h: the typed configuration. Sections and key names follow the official V-JEPA pretrain YAML
// (data, data_aug, mask, model, optimization, loss, meta, logging). config.c holds the schema (type, default,
// range, one-line doc per key) that parses YAML and key=value overrides into this struct.
#pragma once
#include <stddef.h>
#include <stdio.h>

#define CONFIG_MAX_MASKS 8
#define CONFIG_STR 256
#define CONFIG_MAX_DATASETS 16

// YAML lists of up to CONFIG_MAX_DATASETS items (data.datasets, data.datasets_weights); count 0 = empty list.
typedef struct {
    int count;
    char item[CONFIG_MAX_DATASETS][CONFIG_STR];
} ConfigPathList;
typedef struct {
    int count;
    double item[CONFIG_MAX_DATASETS];
} ConfigFloatList;

typedef struct {
    int num_blocks;             // blocks per sample; target = their union
    double spatial_scale[2];    // fraction of the H*W grid per block [lo, hi]
    double temporal_scale[2];   // fraction of the time grid per block [lo, hi]
    double aspect_ratio[2];     // block aspect ratio range
    double max_temporal_keep;   // fraction of time steps a block may cover
    int max_keep;               // cap on context tokens, 0 = none (YAML null)
} MaskGenConfig;

typedef struct {
    struct {
        char source[32];        // in-memory world used when datasets is empty: "synthetic" (bouncing balls)
        ConfigPathList datasets;           // HDF5 clip stores (docs/data.md); empty = data.source
        ConfigFloatList datasets_weights;  // mixture weight per store; empty = every clip once per epoch
        ConfigPathList site_paths;         // dist.sync consensus: site s reads only site_paths[s]; empty = datasets
        int read_threads;       // loader threads, 0 = all cores
        int queue_depth;        // batch buffers: the one the trainer holds plus those prefetched
        int batch_size;         // clips per micro-batch per rank
        int num_frames;         // frames per clip
        int tubelet_size;       // frames per token
        int sampling_rate;      // frame step in the source video
        int crop_size;          // pixels, square
        int patch_size;         // pixels per token side
        int num_clips;          // clips per video sample (1 supported)
        int synth_balls;        // balls in the synthetic world
    } data;
    struct {
        double random_resize_aspect_ratio[2];
        double random_resize_scale[2];
        int random_horizontal_flip;  // flip probability 0.5 when true
        int auto_augment, motion_shift;  // accepted as in the official YAML; only false supported
        double reprob;                   // random erasing probability; only 0 supported
    } data_aug;
    MaskGenConfig mask[CONFIG_MAX_MASKS];
    int num_masks;
    struct {
        char model_name[32];    // vit_tiny | vit_small | vit_base | vit_large | vit_huge | vit_custom
        int embed_dim, depth, num_heads;  // vit_custom only (0 = from model_name)
        double mlp_ratio;
        int pred_depth, pred_embed_dim;
        int pred_num_heads;     // 0 = encoder heads (V-JEPA v1)
        int uniform_power;      // sincos axis split (V-JEPA: true)
        char pos_embed[16];     // sincos (V-JEPA v1: added once) | rope3d (V-JEPA 2: 3D RoPE on q, k in every block)
        int shared_mask_token;  // every generator uses mask_tokens.0 (V-JEPA 2) instead of its own (V-JEPA v1)
        int depth_scaled_init;  // attn.proj and mlp.fc2 of block l initialised with std 0.02/sqrt(2l) (V-JEPA 2)
        int use_mask_tokens, zero_init_mask_tokens;
        int checkpoint_activations;  // recompute each block's forward in the backward (checkpoint_every 1)
        int checkpoint_every;        // recompute the blocks l with l % k == 0; 0: off (config_checkpoint_every)
        char attention[8];      // native (kernels/attention*.cu) | cudnn (cuDNN's fused attention, CUDA only)
    } model;
    struct {
        int ipe;                // iterations per epoch
        double ipe_scale;       // schedule stretch
        double clip_grad;       // per-module gradient norm clip, after warmup epochs; 0 = off
        double weight_decay, final_weight_decay;
        int epochs, warmup;     // warmup in epochs
        double start_lr, lr, final_lr;
        char lr_schedule[16];   // cosine | constant | wsd | linear, after the warmup (optim.c)
        int decay_epochs;       // wsd: epochs of linear decay at the end of the schedule
        double ema[2];          // EMA momentum start, end
        double betas[2];
        double eps;
        int accum_steps;        // micro-batches per optimizer step
        int max_steps;          // stop after this many steps (0 = epochs * ipe); schedules unchanged
        char on_nonfinite[8];   // skip | stop: a step whose loss or gradients are NaN/Inf drops its update, or ends
        int max_skips;          // skip: stop when more than this many steps in a row were skipped
        char optimizer[8];      // adamw | sgd (plain, CPU only)
    } optimization;
    struct {
        double loss_exp;        // only 1 (L1) supported
        double reg_coeff;       // only 0 supported
    } loss;
    struct {
        int seed;
        char dtype[16];         // float32 | bfloat16
        char device[16];        // auto | cpu | cuda (auto: cuda when a GPU is present)
        int deterministic;
        int threads;            // CPU threads, 0 = all cores
        char resume[8];         // auto | never | must: start from the run folder's newest checkpoint (docs/checkpoints.md)
        char init_from[CONFIG_STR];  // weights of a fresh run from a checkpoint or run folder ("none": no); resume.c
    } meta;
    struct {
        char folder[CONFIG_STR];     // run folders go under it
        char write_tag[64];          // run folder name
        int log_every;               // progress line every N steps
        int checkpoint_every;        // checkpoint every N steps (0 = only at the end)
        int keep;                    // checkpoints kept in the run folder (>= 1)
        int spike_window;            // loss spike z-score over the previous N finite losses
        double spike_z;              // a loss this many standard deviations above that window's mean is logged
    } logging;
    struct {                         // data parallelism (docs/distributed.md); the world comes from the launcher
        double timeout_s;            // a collective not done in this time ends every rank, naming the silent one
        int zero;                    // 0: replicated optimizer; 1: ZeRO-1 (not implemented yet)
        char reduce_dtype[16];       // float32 | bfloat16: the gradient all-reduce's element type
        double bucket_mb;            // gradient bucket size, MiB (launched in reverse layer order)
        char sync[16];               // allreduce | consensus (docs/consensus.md)
        int sites, local_steps;      // consensus: sites (contiguous equal rank groups), inner steps per exchange
        char consensus[16];          // outer (DiLoCo) | elastic (EASGD)
        double outer_lr, outer_momentum, rho;
        char exchange_dtype[16];     // float32 | bfloat16
        double link_gbps, link_latency_ms;  // link model: bytes -> simulated seconds
        int overlap_exchange;        // consensus: the exchange completes one inner step late (one-step stale)
    } dist;
    struct {                         // world models that plan (model.kind: ac; docs/world-models.md)
        char kind[8];                // vjepa: V-JEPA pretraining | ac: action-conditioned predictor on a frozen encoder
        char encoder_checkpoint[CONFIG_STR];  // ac: the checkpoint folder of the pretrained encoder (model.* keys)
        int pred_depth, pred_embed_dim, pred_num_heads;  // ac predictor size
        int frames;                  // ac: frames per training clip (frame-causal context)
        int rollout_steps;           // ac: k of the k-step rollout loss (0 = teacher forcing only)
        int state_token;             // ac: a proprioceptive state token per frame
    } ac;
    struct {                         // planning: CEM + MPC in a built-in world (jepa plan)
        char world[16];              // tworooms | pusht
        char energy[8];              // last | mean | min: the model's energy over the predicted frames
        int samples, elites, iterations, horizon, execute, episodes, step_limit;
        int action_repeat;  // control steps each planned action is held (frame skip)
        char pusht_start[16];        // uniform | trajectory: how pusht episodes draw start and goal
        int goal_steps;              // trajectory: goal = the state this many control steps after the start
        double init_std, min_std;    // CEM std, fractions of each action component's half range
    } plan;
    struct {                         // the periodic probe in training (docs/world-models.md); off unless both set
        int every;                   // probe every N steps (0 = never)
        char data[CONFIG_STR];       // HDF5 store with /states, frames data.crop_size square (none = unset)
        int clips;                   // its first clips used (a quarter held out)
    } eval;
} Config;

// Defaults for every key (the schema's defaults). Masks default to V-JEPA's two generators.
void config_defaults(Config *cfg);
// Parses path into cfg (defaults first), then applies overrides "a.b=value" in order.
// Any error: one line naming file:line or "command line", the key, what was expected, the nearest valid key; exit 2.
void config_load(Config *cfg, const char *path, int n_overrides, char **overrides);
// Cross-key checks (divisibility, ranges that involve several keys); exits 2 naming the keys.
void config_validate(const Config *cfg);
// Activation checkpointing as one number: model.checkpoint_every, or 1 for model.checkpoint_activations: true.
int config_checkpoint_every(const Config *cfg);
// The resolved config as YAML that config_load reads back to the same struct.
void config_write_yaml(const Config *cfg, FILE *out);
// Boxed two-column table of every key and value (printed at start of a run).
void config_print_table(const Config *cfg, FILE *out);
// Schema documentation: key, type, default, range, doc (jepa config --doc).
void config_print_doc(FILE *out);
// Every key with its value as YAML text (strings quoted), in schema order, mask keys per generator (mask.0.num_blocks).
typedef void (*ConfigValueVisitor)(const char *key, const char *value, void *ctx);
void config_for_each_value(const Config *cfg, ConfigValueVisitor visit, void *ctx);
