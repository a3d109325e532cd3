// config.c: the configuration schema, one row per key, and everything driven by it: defaults, YAML and
// key=value parsing with type and range checks, YAML output, the start-of-run table and `jepa config --doc`.
// Keys from the official V-JEPA YAML that jepa.c does not use are in a second table (foreign_keys) that says
// whether each is accepted (and ignored) or rejected, and what to use instead.
#include "config.h"

#include "common.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

// ------------------------------------------------------------------------------------------------ schema

typedef enum { T_INT, T_FLOAT, T_BOOL, T_STRING, T_ENUM, T_FLOAT_PAIR, T_NULLABLE_INT, T_PATH_LIST, T_FLOAT_LIST } ValueType;

enum { LO_OPEN = 1, HI_OPEN = 2, ORDERED = 4 };  // range flags: exclusive bounds; pair needs a[0] <= a[1]

typedef struct {
    const char *key;           // dotted name; "mask.N.<leaf>" keys live in each MaskGenConfig
    ValueType type;
    size_t offset, size;       // in Config, or in MaskGenConfig for mask.N keys; size bounds strings
    const char *default_yaml;  // YAML text of the default, parsed like any value; NULL = required (mask keys)
    double lo, hi;             // numeric range (each element of a pair); INFINITY = unbounded
    unsigned flags;
    const char *allowed;       // enum values, "a|b|c"
    const char *doc;
} SchemaRow;

#define INF INFINITY
#define CFG(m) offsetof(Config, m), sizeof(((Config *)0)->m)
#define MSK(m) offsetof(MaskGenConfig, m), sizeof(((MaskGenConfig *)0)->m)
#define ROW_INT(key, field, def, lo, hi, doc) {key, T_INT, field, def, lo, hi, 0, NULL, doc}
#define ROW_NINT(key, field, def, lo, hi, doc) {key, T_NULLABLE_INT, field, def, lo, hi, 0, NULL, doc}
#define ROW_FLOAT(key, field, def, lo, hi, flags, doc) {key, T_FLOAT, field, def, lo, hi, flags, NULL, doc}
#define ROW_PAIR(key, field, def, lo, hi, flags, doc) {key, T_FLOAT_PAIR, field, def, lo, hi, flags, NULL, doc}
#define ROW_BOOL(key, field, def, doc) {key, T_BOOL, field, def, 0, 1, 0, NULL, doc}
#define ROW_ENUM(key, field, def, allowed, doc) {key, T_ENUM, field, def, 0, 0, 0, allowed, doc}
#define ROW_STR(key, field, def, doc) {key, T_STRING, field, def, 0, 0, 0, NULL, doc}
#define ROW_PATHS(key, field, def, doc) {key, T_PATH_LIST, field, def, 0, 0, 0, NULL, doc}
#define ROW_FLOATS(key, field, def, lo, hi, flags, doc) {key, T_FLOAT_LIST, field, def, lo, hi, flags, NULL, doc}

// Defaults are the official V-JEPA v1 ViT-L/16 pretraining recipe (configs/pretrain/vitl16.yaml and the
// defaults its train.py and multiblock3d.py apply), except the data source and meta.device (ours).
static const SchemaRow schema[] = {
    ROW_ENUM("data.source", CFG(data.source), "synthetic", "synthetic",
             "in-memory world used when data.datasets is empty: synthetic = bouncing balls"),
    ROW_PATHS("data.datasets", CFG(data.datasets), "[]",
              "HDF5 clip stores to train on (docs/data.md); [] = data.source"),
    ROW_FLOATS("data.datasets_weights", CFG(data.datasets_weights), "[]", 0, INF, LO_OPEN,
               "sampling weight per store, drawn with replacement; [] = every clip once per epoch"),
    ROW_PATHS("data.site_paths", CFG(data.site_paths), "[]",
              "one HDF5 store per site (dist.sites), site s reads only entry s; [] = the sites share "
              "data.datasets (each reads its part of every step)"),
    ROW_INT("data.read_threads", CFG(data.read_threads), "0", 0, INF, "store reader threads, 0 = all cores"),
    ROW_INT("data.queue_depth", CFG(data.queue_depth), "3", 2, INF,
            "batch buffers: the one the trainer holds plus those read ahead"),
    ROW_INT("data.batch_size", CFG(data.batch_size), "24", 1, INF, "clips per micro-batch per rank"),
    ROW_INT("data.num_frames", CFG(data.num_frames), "16", 1, INF, "frames per clip"),
    ROW_INT("data.tubelet_size", CFG(data.tubelet_size), "2", 1, INF, "frames per token"),
    ROW_INT("data.sampling_rate", CFG(data.sampling_rate), "4", 1, INF, "frame step in the source video"),
    ROW_INT("data.crop_size", CFG(data.crop_size), "224", 1, INF, "square crop side, pixels"),
    ROW_INT("data.patch_size", CFG(data.patch_size), "16", 1, INF, "token side, pixels"),
    ROW_INT("data.num_clips", CFG(data.num_clips), "1", 1, INF, "clips per video sample (only 1 supported)"),
    ROW_INT("data.synth_balls", CFG(data.synth_balls), "3", 1, INF, "balls in the synthetic world"),

    ROW_PAIR("data_aug.random_resize_aspect_ratio", CFG(data_aug.random_resize_aspect_ratio), "[0.75, 1.35]",
             0, INF, LO_OPEN | ORDERED, "aspect ratio range of the random resized crop"),
    ROW_PAIR("data_aug.random_resize_scale", CFG(data_aug.random_resize_scale), "[0.3, 1.0]", 0, 1,
             LO_OPEN | ORDERED, "area fraction range of the random resized crop"),
    ROW_BOOL("data_aug.random_horizontal_flip", CFG(data_aug.random_horizontal_flip), "true",
             "flip clips horizontally with probability 0.5"),
    ROW_BOOL("data_aug.auto_augment", CFG(data_aug.auto_augment), "false", "as in the official YAML; only false"),
    ROW_BOOL("data_aug.motion_shift", CFG(data_aug.motion_shift), "false", "as in the official YAML; only false"),
    ROW_FLOAT("data_aug.reprob", CFG(data_aug.reprob), "0.0", 0, 1, 0,
              "random erasing probability; only 0 supported"),

    ROW_INT("mask.N.num_blocks", MSK(num_blocks), NULL, 1, INF, "blocks per sample; the target is their union"),
    ROW_PAIR("mask.N.spatial_scale", MSK(spatial_scale), NULL, 0, 1, LO_OPEN | ORDERED,
             "fraction of the H*W token grid per block [lo, hi]"),
    ROW_PAIR("mask.N.temporal_scale", MSK(temporal_scale), "[1.0, 1.0]", 0, 1, LO_OPEN | ORDERED,
             "fraction of the time grid per block [lo, hi]"),
    ROW_PAIR("mask.N.aspect_ratio", MSK(aspect_ratio), "[0.75, 1.5]", 0, INF, LO_OPEN | ORDERED,
             "block aspect ratio range"),
    ROW_FLOAT("mask.N.max_temporal_keep", MSK(max_temporal_keep), "1.0", 0, 1, LO_OPEN,
              "fraction of time steps the context may span"),
    ROW_NINT("mask.N.max_keep", MSK(max_keep), "null", 1, INF, "cap on context tokens; null = no cap"),

    ROW_ENUM("model.model_name", CFG(model.model_name), "vit_large",
             "vit_tiny|vit_small|vit_base|vit_large|vit_huge|vit_giant_xformers|vit_custom",
             "encoder size preset (vit_giant_xformers: V-JEPA 2's 1408 wide, 40 blocks, 22 heads, MLP 6144); "
             "vit_custom takes embed_dim, depth, num_heads"),
    ROW_INT("model.embed_dim", CFG(model.embed_dim), "0", 0, INF,
            "encoder width; 0 = from model_name (set for vit_custom)"),
    ROW_INT("model.depth", CFG(model.depth), "0", 0, INF,
            "encoder blocks; 0 = from model_name (set for vit_custom)"),
    ROW_INT("model.num_heads", CFG(model.num_heads), "0", 0, INF,
            "encoder heads; 0 = from model_name (set for vit_custom)"),
    ROW_FLOAT("model.mlp_ratio", CFG(model.mlp_ratio), "4.0", 0, INF, LO_OPEN,
              "MLP hidden width / embed_dim (the predictor's; the encoder's too except vit_giant_xformers: 48/11)"),
    ROW_INT("model.pred_depth", CFG(model.pred_depth), "12", 1, INF, "predictor blocks"),
    ROW_INT("model.pred_embed_dim", CFG(model.pred_embed_dim), "384", 1, INF, "predictor width"),
    ROW_INT("model.pred_num_heads", CFG(model.pred_num_heads), "0", 0, INF,
            "predictor heads (0 = the encoder's, as V-JEPA v1)"),
    ROW_BOOL("model.uniform_power", CFG(model.uniform_power), "true",
             "sin-cos position axes split evenly (V-JEPA)"),
    ROW_ENUM("model.pos_embed", CFG(model.pos_embed), "sincos", "sincos|rope3d",
             "positions: sincos = fixed 3D sin-cos added to the tokens (V-JEPA); rope3d = 3D rotary embedding of q "
             "and k in every encoder and predictor block (V-JEPA 2, docs/vjepa2.md)"),
    ROW_BOOL("model.shared_mask_token", CFG(model.shared_mask_token), "false",
             "every mask generator uses mask_tokens.0 (V-JEPA 2 picks the token by clip length, one here); false: "
             "one token per generator (V-JEPA v1). The table keeps one per generator either way"),
    ROW_BOOL("model.depth_scaled_init", CFG(model.depth_scaled_init), "false",
             "attn.proj and mlp.fc2 weights of block l start with std 0.02/sqrt(2l), the official models' rescale "
             "that V-JEPA 2 keeps (V-JEPA v1's training script re-initialises it away)"),
    ROW_BOOL("model.use_mask_tokens", CFG(model.use_mask_tokens), "true",
             "learned mask token per generator in the predictor"),
    ROW_BOOL("model.zero_init_mask_tokens", CFG(model.zero_init_mask_tokens), "true",
             "mask tokens start at zero"),
    ROW_BOOL("model.checkpoint_activations", CFG(model.checkpoint_activations), "false",
             "recompute each block's forward in the backward (the same as model.checkpoint_every: 1)"),
    ROW_INT("model.checkpoint_every", CFG(model.checkpoint_every), "0", 0, INF,
            "activation checkpointing: the blocks whose index is a multiple of k keep only their input and recompute "
            "their forward in the backward (encoder and predictor); 1 = every block (least memory, one more forward "
            "of the stacks), 2 = every other block (half the saving, half the recompute), ...; 0 = none"),
    ROW_ENUM("model.attention", CFG(model.attention), "native", "native|cudnn",
             "attention kernels on the GPU: native = ours; cudnn = cuDNN's fused attention where it supports the call "
             "(else ours; the run log says which); needs meta.device cuda and meta.deterministic false"),
    ROW_ENUM("model.kind", CFG(ac.kind), "vjepa", "vjepa|ac",
             "vjepa: V-JEPA pretraining; ac: train an action-conditioned predictor on a frozen encoder (jepa plan)"),

    ROW_INT("optimization.ipe", CFG(optimization.ipe), "300", 1, INF, "iterations per epoch"),
    ROW_FLOAT("optimization.ipe_scale", CFG(optimization.ipe_scale), "1.25", 0, INF, LO_OPEN,
              "schedules run over epochs*ipe*ipe_scale steps"),
    ROW_FLOAT("optimization.clip_grad", CFG(optimization.clip_grad), "10.0", 0, INF, 0,
              "per-module gradient norm clip after warmup; 0 = off"),
    ROW_FLOAT("optimization.weight_decay", CFG(optimization.weight_decay), "0.04", 0, INF, 0,
              "weight decay at step 0 (cosine schedule)"),
    ROW_FLOAT("optimization.final_weight_decay", CFG(optimization.final_weight_decay), "0.4", 0, INF, 0,
              "weight decay at the end of the schedule"),
    ROW_INT("optimization.epochs", CFG(optimization.epochs), "300", 1, INF, "epochs of ipe steps"),
    ROW_INT("optimization.warmup", CFG(optimization.warmup), "40", 0, INF, "linear LR warmup, epochs"),
    ROW_FLOAT("optimization.start_lr", CFG(optimization.start_lr), "2.0e-4", 0, INF, 0, "LR at step 0"),
    ROW_FLOAT("optimization.lr", CFG(optimization.lr), "6.25e-4", 0, INF, 0, "peak LR, reached after warmup"),
    ROW_FLOAT("optimization.final_lr", CFG(optimization.final_lr), "1.0e-6", 0, INF, 0,
              "LR at the end of the cosine"),
    ROW_ENUM("optimization.lr_schedule", CFG(optimization.lr_schedule), "cosine", "cosine|constant|wsd|linear",
             "LR after the warmup: cosine to final_lr (V-JEPA; final_lr = lr is V-JEPA 2's constant); constant = lr; "
             "wsd = lr, then linear to final_lr over the last decay_epochs; linear = from lr toward final_lr over "
             "epochs*ipe*ipe_scale steps (V-JEPA 2's cooldown, which ends short of final_lr when ipe_scale > 1)"),
    ROW_INT("optimization.decay_epochs", CFG(optimization.decay_epochs), "0", 0, INF,
            "lr_schedule wsd: epochs of linear decay at the end of the schedule"),
    ROW_PAIR("optimization.ema", CFG(optimization.ema), "[0.998, 1.0]", 0, 1, 0,
             "target-encoder EMA momentum [start, end], linear"),
    ROW_PAIR("optimization.betas", CFG(optimization.betas), "[0.9, 0.999]", 0, 1, HI_OPEN, "AdamW betas"),
    ROW_FLOAT("optimization.eps", CFG(optimization.eps), "1.0e-8", 0, INF, LO_OPEN, "AdamW epsilon"),
    ROW_INT("optimization.accum_steps", CFG(optimization.accum_steps), "1", 1, INF,
            "micro-batches per optimizer step"),
    ROW_INT("optimization.max_steps", CFG(optimization.max_steps), "0", 0, INF,
            "stop after this many steps (0 = epochs*ipe); schedules unchanged"),
    ROW_ENUM("optimization.on_nonfinite", CFG(optimization.on_nonfinite), "skip", "skip|stop",
             "a step with a NaN/Inf loss or gradient: skip = drop its update (AdamW and EMA), stop = end the run "
             "(exit 4); either way the update is never applied"),
    ROW_ENUM("optimization.optimizer", CFG(optimization.optimizer), "adamw", "adamw|sgd",
             "adamw (the recipe); sgd: p -= lr * (g + wd * p), no momentum (CPU only; tests)"),
    ROW_INT("optimization.max_skips", CFG(optimization.max_skips), "5", 0, INF,
            "on_nonfinite skip: end the run (exit 4) when more than this many steps in a row were skipped"),

    ROW_FLOAT("loss.loss_exp", CFG(loss.loss_exp), "1.0", 0, INF, LO_OPEN, "loss |p - t|^loss_exp; only 1 (L1)"),
    ROW_FLOAT("loss.reg_coeff", CFG(loss.reg_coeff), "0.0", 0, INF, 0, "variance regulariser weight; only 0"),

    ROW_INT("meta.seed", CFG(meta.seed), "234", 0, INF, "seed of every random draw"),
    ROW_ENUM("meta.dtype", CFG(meta.dtype), "bfloat16", "float32|bfloat16",
             "compute dtype: the cuda device runs bfloat16, the cpu float32"),
    ROW_ENUM("meta.device", CFG(meta.device), "auto", "auto|cpu|cuda",
             "where the ops run: auto = cuda when a GPU is present, else cpu (jepa --devices lists them)"),
    ROW_BOOL("meta.deterministic", CFG(meta.deterministic), "true", "bitwise reproducible GPU runs"),
    ROW_INT("meta.threads", CFG(meta.threads), "0", 0, INF, "CPU threads, 0 = all cores"),
    ROW_ENUM("meta.resume", CFG(meta.resume), "auto", "auto|never|must",
             "auto: continue from the run folder's newest good checkpoint, else start fresh; never: a new run "
             "folder; must: fail without a checkpoint"),
    ROW_STR("meta.init_from", CFG(meta.init_from), "none",
            "a run starting fresh takes its weights (encoder, predictor, target; not the optimizer) from this "
            "checkpoint folder, or from the newest good checkpoint of this run folder; clip length and crop may "
            "differ (V-JEPA 2's cooldown, docs/vjepa2.md); none: random init"),

    ROW_STR("logging.folder", CFG(logging.folder), "runs", "run folders go under it"),
    ROW_STR("logging.write_tag", CFG(logging.write_tag), "jepa", "run folder name"),
    ROW_INT("logging.log_every", CFG(logging.log_every), "10", 1, INF, "progress line every N steps"),
    ROW_INT("logging.checkpoint_every", CFG(logging.checkpoint_every), "0", 0, INF,
            "checkpoint every N steps into RUN/checkpoints/ (0 = only at the end)"),
    ROW_INT("logging.keep", CFG(logging.keep), "2", 1, INF, "newest good checkpoints kept; older ones deleted"),
    ROW_INT("logging.spike_window", CFG(logging.spike_window), "100", 2, INF,
            "loss spike detection: z-score against the previous N finite losses (metrics loss_z)"),
    ROW_FLOAT("logging.spike_z", CFG(logging.spike_z), "6.0", 0, INF, LO_OPEN,
              "a loss this many standard deviations above the window's mean is logged as a spike"),

    ROW_FLOAT("dist.timeout_s", CFG(dist.timeout_s), "600", 0, INF, LO_OPEN,
              "seconds a collective may wait before every rank exits naming the rank that did not join"),
    ROW_INT("dist.zero", CFG(dist.zero), "0", 0, 0, "optimizer state sharding: 0 = replicated (ZeRO-1 not yet)"),
    ROW_ENUM("dist.reduce_dtype", CFG(dist.reduce_dtype), "float32", "float32|bfloat16",
             "element type of the gradient all-reduce (bfloat16: half the bytes, 8-bit mantissa sums)"),
    ROW_FLOAT("dist.bucket_mb", CFG(dist.bucket_mb), "25", 0, INF, LO_OPEN,
              "gradient all-reduce bucket, MiB, launched as the backward finishes each one"),
    // Consensus training across sites that keep their data (docs/consensus.md, host/consensus.c).
    ROW_ENUM("dist.sync", CFG(dist.sync), "allreduce", "allreduce|consensus",
             "allreduce: gradients averaged every step; consensus: sites train apart and exchange parameters every "
             "dist.local_steps steps"),
    ROW_INT("dist.sites", CFG(dist.sites), "1", 1, INF,
            "consensus: sites; the ranks split into equal contiguous groups, each data-parallel inside "
            "(allreduce with data.site_paths: each group reads its site's store)"),
    ROW_INT("dist.local_steps", CFG(dist.local_steps), "1", 1, INF, "consensus: inner steps between exchanges"),
    ROW_ENUM("dist.consensus", CFG(dist.consensus), "outer", "outer|elastic",
             "outer: the mean parameter change goes through an outer SGD with Nesterov momentum (DiLoCo); elastic: "
             "elastic averaging (EASGD) with strength dist.rho"),
    ROW_FLOAT("dist.outer_lr", CFG(dist.outer_lr), "0.7", 0, INF, LO_OPEN, "consensus outer: outer SGD LR"),
    ROW_FLOAT("dist.outer_momentum", CFG(dist.outer_momentum), "0.9", 0, 1, HI_OPEN,
              "consensus outer: Nesterov momentum of the outer SGD"),
    ROW_FLOAT("dist.rho", CFG(dist.rho), "0.1", 0, 1, LO_OPEN,
              "consensus elastic: pull of each site toward the consensus and of the consensus toward the sites"),
    ROW_ENUM("dist.exchange_dtype", CFG(dist.exchange_dtype), "float32", "float32|bfloat16",
             "consensus: element type of the parameter exchange (bfloat16: values rounded, half the bytes)"),
    ROW_FLOAT("dist.link_gbps", CFG(dist.link_gbps), "10", 0, INF, LO_OPEN,
              "link model: bandwidth between sites, Gbit/s (metrics sim_exchange_s)"),
    ROW_FLOAT("dist.link_latency_ms", CFG(dist.link_latency_ms), "1", 0, INF, 0,
              "link model: latency per exchange, ms (metrics sim_exchange_s)"),
    ROW_BOOL("dist.overlap_exchange", CFG(dist.overlap_exchange), "false",
             "consensus: the exchange's all-reduce overlaps the next inner step (one-step-stale consensus)"),

    // World models that plan (docs/world-models.md); model.kind (stored as ac.kind) is with the model keys.
    ROW_STR("ac.encoder_checkpoint", CFG(ac.encoder_checkpoint), "none",
            "model.kind ac: checkpoint folder of the encoder pretrained with the same model.* and data.* keys (none: unset)"),
    ROW_INT("ac.pred_depth", CFG(ac.pred_depth), "2", 1, INF, "action-conditioned predictor blocks"),
    ROW_INT("ac.pred_embed_dim", CFG(ac.pred_embed_dim), "64", 1, INF, "action-conditioned predictor width"),
    ROW_INT("ac.pred_num_heads", CFG(ac.pred_num_heads), "4", 1, INF, "action-conditioned predictor heads"),
    ROW_INT("ac.frames", CFG(ac.frames), "4", 2, 64,
            "frames per training clip: the predictor sees frames <= t (frame-causal) and predicts frame t+1"),
    ROW_INT("ac.rollout_steps", CFG(ac.rollout_steps), "2", 0, 63,
            "k of the k-step rollout L1 (V-JEPA 2-AC), fed its own predictions; 0 = teacher forcing only"),
    ROW_BOOL("ac.state_token", CFG(ac.state_token), "true", "a proprioceptive state token per frame"),
    ROW_ENUM("plan.world", CFG(plan.world), "tworooms", "tworooms|pusht",
             "the built-in world of model.kind ac (its action and state scaling) and of jepa plan"),
    ROW_INT("plan.samples", CFG(plan.samples), "200", 2, INF, "CEM action sequences per iteration"),
    ROW_INT("plan.elites", CFG(plan.elites), "20", 1, INF, "CEM elites refitted per iteration"),
    ROW_INT("plan.iterations", CFG(plan.iterations), "4", 1, INF, "CEM iterations per plan"),
    ROW_INT("plan.horizon", CFG(plan.horizon), "8", 1, 64, "actions per planned sequence"),
    ROW_INT("plan.execute", CFG(plan.execute), "1", 1, 64, "actions executed before planning again (MPC)"),
    ROW_INT("plan.action_repeat", CFG(plan.action_repeat), "1", 1, 64,
            "control steps each planned action is held (frame skip): a plan of H actions spans H x this steps"),
    ROW_INT("plan.episodes", CFG(plan.episodes), "100", 1, INF, "seeded episodes jepa plan evaluates"),
    ROW_INT("plan.step_limit", CFG(plan.step_limit), "0", 0, INF, "control steps per episode; 0 = the world's limit"),
    ROW_FLOAT("plan.init_std", CFG(plan.init_std), "1.0", 0, INF, LO_OPEN,
              "CEM's first std, a fraction of each action component's half range"),
    ROW_FLOAT("plan.min_std", CFG(plan.min_std), "0.05", 0, INF, 0, "floor on CEM's std, same unit"),
    ROW_ENUM("plan.energy", CFG(plan.energy), "last", "last|mean|min",
             "the model's L1 energy on the predicted frames: the last one's (V-JEPA 2-AC), their mean or their least"),
    ROW_ENUM("plan.pusht_start", CFG(plan.pusht_start), "uniform", "uniform|trajectory",
             "pusht episodes: uniform starts and the fixed goal T, or start and goal on a noisy-expert trajectory"),
    ROW_INT("plan.goal_steps", CFG(plan.goal_steps), "25", 1, 1000,
            "pusht_start trajectory: the goal is the state this many control steps after the start"),
    ROW_INT("eval.every", CFG(eval.every), "0", 0, INF,
            "every N steps, an attentive probe of the target encoder on eval.data, logged as probe_* (0 = never)"),
    ROW_STR("eval.data", CFG(eval.data), "none", "HDF5 store with /states for eval.every (none: no periodic probe)"),
    ROW_INT("eval.clips", CFG(eval.clips), "64", 4, INF, "first clips of eval.data used, a quarter held out"),
};
enum { N_ROWS = sizeof schema / sizeof schema[0] };

// V-JEPA's two generators: 8 small blocks and 2 large ones (the keys not given take the row defaults).
static const char default_mask_list[] =
    "[{num_blocks: 8, spatial_scale: [0.15, 0.15]}, {num_blocks: 2, spatial_scale: [0.7, 0.7]}]";

// Keys of the official V-JEPA YAML that jepa.c does not store. accepted = the values taken (and then ignored,
// '|'-separated, compared after null/bool normalisation); NULL = the key is rejected. why = what the user reads.
typedef struct {
    const char *key;
    const char *accepted;
    const char *why;
} ForeignKey;

static const ForeignKey foreign_keys[] = {
    {"app", "vjepa", "jepa.c trains V-JEPA only"},
    {"nodes", NULL, "the world size comes from the launcher (mpirun -np N or srun); remove the key"},
    {"tasks_per_node", NULL, "the world size comes from the launcher (mpirun -np N or srun); remove the key"},
    {"data.dataset_type", NULL,
     "jepa.c reads HDF5 clip stores listed in data.datasets (made by `jepa data convert`); remove the key"},
    {"data.decode_one_clip", "true", "jepa.c decodes one clip per sample"},
    {"data.pin_mem", "true|false", "ignored: jepa.c manages its own host buffers"},
    {"data_aug.horizontal_flip", NULL, "renamed: use data_aug.random_horizontal_flip (the official name)"},
    {"data.num_workers", NULL, "loader threads are jepa.c's own: use data.read_threads"},
    {"data.filter_short_videos", "false", "short-video filtering is not supported"},
    {"data.clip_duration", "null", "clips are sampled by data.sampling_rate, not by duration"},
    {"meta.load_checkpoint", NULL,
     "use meta.resume: auto|must (the run folder's newest checkpoint); scripts/convert_vjepa_checkpoint.py "
     "converts official .pth.tar files"},
    {"meta.read_checkpoint", NULL,
     "use meta.resume: auto|must (the run folder's newest checkpoint); scripts/convert_vjepa_checkpoint.py "
     "converts official .pth.tar files"},
    {"meta.backend", NULL, "renamed meta.device (auto|cpu|cuda)"},
    // V-JEPA 2's training YAML (facebookresearch/vjepa2 configs/train), docs/vjepa2.md
    {"model.use_rope", "false", "V-JEPA 2's use_rope: true is model.pos_embed: rope3d"},
    {"cpus_per_task", NULL, "the launcher's business (srun --cpus-per-task); remove the key"},
    {"mem_per_gpu", NULL, "the launcher's business (srun --mem-per-gpu); remove the key"},
    {"folder", NULL, "use logging.folder and logging.write_tag"},
    {"data.dataset_fpcs", NULL, "one clip length per run: use data.num_frames"},
    {"data.fps", NULL, "stores hold clips already cut: data.sampling_rate is the frame step within them"},
    {"data.persistent_workers", "true|false", "ignored: the loader threads live as long as the run"},
    {"meta.save_every_freq", NULL, "use logging.checkpoint_every (steps) and logging.keep"},
    {"optimization.is_anneal", "false",
     "the cooldown: optimization.lr_schedule: linear with meta.init_from: <the pretraining run>"},
    {"optimization.anneal_ckpt", NULL, "use meta.init_from: <checkpoint or run folder>"},
    {"optimization.resume_anneal", "true|false", "ignored: an interrupted run resumes by meta.resume"},
    {"meta.eval_freq", NULL, "pretraining runs no evaluation; remove the key"},
    {"meta.use_sdpa", "true|false", "ignored: jepa.c always uses its fused attention"},
};
enum { N_FOREIGN = sizeof foreign_keys / sizeof foreign_keys[0] };

static int is_mask_row(const SchemaRow *row) { return strncmp(row->key, "mask.N.", 7) == 0; }

static const char *leaf_of(const char *key) {
    const char *dot = strrchr(key, '.');
    return dot ? dot + 1 : key;
}

static size_t section_length(const char *key) {
    const char *dot = strchr(key, '.');
    return dot ? (size_t)(dot - key) : strlen(key);
}

static int is_section(const char *name) {
    for (int r = 0; r < N_ROWS; r++)
        if (section_length(schema[r].key) == strlen(name) && !strncmp(schema[r].key, name, strlen(name))) return 1;
    return 0;
}

static const SchemaRow *find_row(const char *key) {
    for (int r = 0; r < N_ROWS; r++)
        if (!strcmp(schema[r].key, key)) return &schema[r];
    return NULL;
}

static const ForeignKey *find_foreign(const char *key) {
    for (int f = 0; f < N_FOREIGN; f++)
        if (!strcmp(foreign_keys[f].key, key)) return &foreign_keys[f];
    return NULL;
}

static void *field_of(Config *cfg, const SchemaRow *row, int mask_index) {
    char *base = is_mask_row(row) ? (char *)&cfg->mask[mask_index] : (char *)cfg;
    return base + row->offset;
}

static const void *const_field_of(const Config *cfg, const SchemaRow *row, int mask_index) {
    return field_of((Config *)cfg, row, mask_index);
}

// ------------------------------------------------------------------------------------------------ describing

static const char *type_name(ValueType type) {
    switch (type) {
    case T_INT: return "int";
    case T_FLOAT: return "float";
    case T_BOOL: return "bool";
    case T_STRING: return "string";
    case T_ENUM: return "enum";
    case T_FLOAT_PAIR: return "[float, float]";
    case T_NULLABLE_INT: return "int|null";
    case T_PATH_LIST: return "[path, ...]";
    case T_FLOAT_LIST: return "[float, ...]";
    }
    return "?";
}

// "[0, 1)", ">= 1", "> 0": the numeric range of a row, empty when unbounded.
static void range_text(const SchemaRow *row, char *buf, size_t n) {
    const char *lo_bracket = (row->flags & LO_OPEN) ? "(" : "[";
    const char *hi_bracket = (row->flags & HI_OPEN) ? ")" : "]";
    if (isinf(row->hi))
        snprintf(buf, n, "%s %g", (row->flags & LO_OPEN) ? ">" : ">=", row->lo);
    else
        snprintf(buf, n, "in %s%g, %g%s", lo_bracket, row->lo, row->hi, hi_bracket);
}

// What a value of this row must look like, for error messages: "an integer >= 1", "one of cpu|cuda".
static void expected_text(const SchemaRow *row, char *buf, size_t n) {
    char range[64];
    range_text(row, range, sizeof range);
    switch (row->type) {
    case T_INT: snprintf(buf, n, "an integer %s", range); break;
    case T_NULLABLE_INT: snprintf(buf, n, "an integer %s, or null", range); break;
    case T_FLOAT: snprintf(buf, n, "a number %s", range); break;
    case T_BOOL: snprintf(buf, n, "true or false"); break;
    case T_ENUM: snprintf(buf, n, "one of %s", row->allowed); break;
    case T_STRING: snprintf(buf, n, "a string of 1 to %zu characters", row->size - 1); break;
    case T_FLOAT_PAIR:
        snprintf(buf, n, "a list of 2 numbers [a, b], each %s%s", range, (row->flags & ORDERED) ? ", a <= b" : "");
        break;
    case T_PATH_LIST:
        snprintf(buf, n, "a list of 0 to %d paths of 1 to %d characters", CONFIG_MAX_DATASETS, CONFIG_STR - 1);
        break;
    case T_FLOAT_LIST: snprintf(buf, n, "a list of 0 to %d numbers, each %s", CONFIG_MAX_DATASETS, range); break;
    }
}

// Range column of `jepa config --doc`.
static void allowed_text(const SchemaRow *row, char *buf, size_t n) {
    char range[64];
    range_text(row, range, sizeof range);
    switch (row->type) {
    case T_INT:
    case T_FLOAT: snprintf(buf, n, "%s", range); break;
    case T_NULLABLE_INT: snprintf(buf, n, "%s or null", range); break;
    case T_BOOL: snprintf(buf, n, "true|false"); break;
    case T_ENUM: snprintf(buf, n, "%s", row->allowed); break;
    case T_STRING: snprintf(buf, n, "1-%zu chars", row->size - 1); break;
    case T_FLOAT_PAIR: snprintf(buf, n, "each %s%s", range, (row->flags & ORDERED) ? ", a <= b" : ""); break;
    case T_PATH_LIST: snprintf(buf, n, "0-%d paths", CONFIG_MAX_DATASETS); break;
    case T_FLOAT_LIST: snprintf(buf, n, "0-%d, each %s", CONFIG_MAX_DATASETS, range); break;
    }
}

// ------------------------------------------------------------------------------------------------ errors

// Where values come from: a file (errors carry FILE:LINE), the command line, or the built-in defaults.
typedef struct {
    const char *name;
    int has_lines;
} Origin;

static _Noreturn void die_at(const Origin *at, const yaml_node_t *node, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void die_at(const Origin *at, const yaml_node_t *node, const char *fmt, ...) {
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    if (at->has_lines && node) die_input("%s:%zu: %s", at->name, node->start_mark.line + 1, message);
    die_input("%s: %s", at->name, message);
}

static int edit_distance(const char *a, const char *b) {
    enum { MAXLEN = 128 };
    size_t la = strlen(a), lb = strlen(b);
    if (la > MAXLEN || lb > MAXLEN) return INT_MAX / 2;
    int prev[MAXLEN + 1], cur[MAXLEN + 1];
    for (size_t j = 0; j <= lb; j++) prev[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int substitute = prev[j - 1] + (a[i - 1] != b[j - 1]);
            int drop = prev[j] + 1, insert = cur[j - 1] + 1;
            cur[j] = substitute < drop ? (substitute < insert ? substitute : insert) : (drop < insert ? drop : insert);
        }
        memcpy(prev, cur, sizeof(int) * (lb + 1));
    }
    return prev[lb];
}

// Closeness of a typed key to a valid one: whole-name distance, or leaf distance so that a key under the
// wrong section ("data.lr") still finds its home ("optimization.lr").
static int key_distance(const char *typed, const char *valid) {
    int whole = edit_distance(typed, valid), leaf = edit_distance(leaf_of(typed), leaf_of(valid));
    return whole < leaf ? whole : leaf;
}

// Nearest valid key (or section, for names without a dot) to typed; "" when nothing is close.
static void nearest_key(const char *typed, int mask_index, char *best, size_t n) {
    int best_score = INT_MAX;
    best[0] = 0;
    for (int r = 0; r < N_ROWS; r++) {
        char candidate[128];
        if (is_mask_row(&schema[r]))
            snprintf(candidate, sizeof candidate, "mask.%d.%s", mask_index, leaf_of(schema[r].key));
        else
            snprintf(candidate, sizeof candidate, "%s", schema[r].key);
        int score = key_distance(typed, candidate);
        if (!strchr(typed, '.')) {  // a section name: compare with this row's section too
            char section[64];
            snprintf(section, sizeof section, "%.*s", (int)section_length(candidate), candidate);
            int section_score = edit_distance(typed, section);
            if (section_score < score) {
                score = section_score;
                snprintf(candidate, sizeof candidate, "%s", section);
            }
        }
        if (score < best_score) {
            best_score = score;
            snprintf(best, n, "%s", candidate);
        }
    }
    int leaf_len = (int)strlen(leaf_of(typed));
    int threshold = leaf_len / 3 > 2 ? leaf_len / 3 : 2;
    if (best_score > threshold) best[0] = 0;
}

static _Noreturn void die_unknown_key(const Origin *at, const yaml_node_t *node, const char *key, int mask_index) {
    char suggestion[128], hint[192];
    nearest_key(key, mask_index, suggestion, sizeof suggestion);
    if (suggestion[0])
        snprintf(hint, sizeof hint, "did you mean %s?", suggestion);
    else
        snprintf(hint, sizeof hint, "`jepa config --doc` lists every key");
    die_at(at, node, "unknown %s '%s' (%s)", strchr(key, '.') ? "key" : "section", key, hint);
}

// ------------------------------------------------------------------------------------------------ scalars

static int is_null_node(const yaml_node_t *node) {
    if (!node || node->type != YAML_SCALAR_NODE || node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return 0;
    const char *text = (const char *)node->data.scalar.value;
    return !strcmp(text, "") || !strcmp(text, "~") || !strcmp(text, "null") || !strcmp(text, "Null") ||
           !strcmp(text, "NULL");
}

// How a node reads in "got ..." of an error message.
static void node_summary(const yaml_node_t *node, char *buf, size_t n) {
    if (!node)
        snprintf(buf, n, "nothing");
    else if (is_null_node(node))
        snprintf(buf, n, "null");
    else if (node->type == YAML_SEQUENCE_NODE)
        snprintf(buf, n, "a list of %d", (int)(node->data.sequence.items.top - node->data.sequence.items.start));
    else if (node->type == YAML_MAPPING_NODE)
        snprintf(buf, n, "a mapping");
    else
        snprintf(buf, n, "'%.200s'", (const char *)node->data.scalar.value);
}

static _Noreturn void die_expected(const Origin *at, const yaml_node_t *node, const char *key,
                                   const SchemaRow *row) {
    char expected[256], got[256];
    expected_text(row, expected, sizeof expected);
    node_summary(node, got, sizeof got);
    die_at(at, node, "%s: expected %s, got %s", key, expected, got);
}

static int in_range(const SchemaRow *row, double v) {
    if (isnan(v)) return 0;
    if ((row->flags & LO_OPEN) ? v <= row->lo : v < row->lo) return 0;
    if ((row->flags & HI_OPEN) ? v >= row->hi : v > row->hi) return 0;
    return 1;
}

// Numbers are read with strtod/strtoll over the whole text, so 1e-6 and 1.0e-06 are both floats (YAML 1.1
// resolvers take 1e-6 for a string). Hex, inf and nan are refused.
static int parse_double(const char *text, double *out) {
    if (!text[0] || strpbrk(text, "xXnNiI")) return 0;
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (*end || errno == ERANGE || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

static int parse_int(const char *text, int *out) {
    if (!text[0]) return 0;
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (*end || errno == ERANGE || v < INT_MIN || v > INT_MAX) return 0;
    *out = (int)v;
    return 1;
}

static int parse_bool(const char *text, int *out) {
    if (!strcmp(text, "true") || !strcmp(text, "True") || !strcmp(text, "TRUE")) return *out = 1, 1;
    if (!strcmp(text, "false") || !strcmp(text, "False") || !strcmp(text, "FALSE")) return *out = 0, 1;
    return 0;
}

static const char *scalar_text(const yaml_node_t *node) {
    if (!node || node->type != YAML_SCALAR_NODE || is_null_node(node)) return NULL;
    return (const char *)node->data.scalar.value;
}

static double read_number(const SchemaRow *row, const char *key, const yaml_node_t *node, const Origin *at) {
    const char *text = scalar_text(node);
    double v;
    if (!text || !parse_double(text, &v) || !in_range(row, v)) die_expected(at, node, key, row);
    return v;
}

static int read_int(const SchemaRow *row, const char *key, const yaml_node_t *node, const Origin *at) {
    const char *text = scalar_text(node);
    int v;
    if (!text || !parse_int(text, &v) || !in_range(row, v)) die_expected(at, node, key, row);
    return v;
}

static int read_bool(const SchemaRow *row, const char *key, const yaml_node_t *node, const Origin *at) {
    const char *text = scalar_text(node);
    int v;
    if (!text || !parse_bool(text, &v)) die_expected(at, node, key, row);
    return v;
}

static int in_bar_list(const char *word, const char *list) {
    size_t len = strlen(word);
    for (const char *p = list; p && *p;) {
        const char *bar = strchr(p, '|');
        size_t item = bar ? (size_t)(bar - p) : strlen(p);
        if (item == len && !strncmp(p, word, len)) return 1;
        p = bar ? bar + 1 : NULL;
    }
    return 0;
}

static void read_string(const SchemaRow *row, char *field, const char *key, const yaml_node_t *node,
                        const Origin *at) {
    const char *text = scalar_text(node);
    if (!text || !text[0] || strlen(text) >= row->size) die_expected(at, node, key, row);
    if (row->type == T_ENUM && !in_bar_list(text, row->allowed)) die_expected(at, node, key, row);
    memset(field, 0, row->size);  // whole array, so configs compare equal byte for byte
    memcpy(field, text, strlen(text));
}

// Item i of a list value, a number in the row's range; errors name it key[i].
static double read_list_number(const SchemaRow *row, const char *key, int i, const yaml_node_t *item,
                               const Origin *at) {
    const char *text = scalar_text(item);
    double v;
    if (!text || !parse_double(text, &v) || !in_range(row, v)) {
        char range[64], got[256];
        range_text(row, range, sizeof range);
        node_summary(item, got, sizeof got);
        die_at(at, item, "%s[%d]: expected a number %s, got %s", key, i, range, got);
    }
    return v;
}

static void read_pair(const SchemaRow *row, double *pair, const char *key, yaml_document_t *doc,
                      const yaml_node_t *node, const Origin *at) {
    if (!node || node->type != YAML_SEQUENCE_NODE ||
        node->data.sequence.items.top - node->data.sequence.items.start != 2)
        die_expected(at, node, key, row);
    for (int i = 0; i < 2; i++)
        pair[i] = read_list_number(row, key, i, yaml_document_get_node(doc, node->data.sequence.items.start[i]), at);
    if ((row->flags & ORDERED) && pair[0] > pair[1])
        die_at(at, node, "%s: expected [lo, hi] with lo <= hi, got [%g, %g]", key, pair[0], pair[1]);
}

// A YAML list of up to CONFIG_MAX_DATASETS scalars; each item is checked by read_item (key "key[i]").
static int list_items(const SchemaRow *row, const char *key, const yaml_node_t *node,
                      const Origin *at) {
    if (!node || node->type != YAML_SEQUENCE_NODE ||
        node->data.sequence.items.top - node->data.sequence.items.start > CONFIG_MAX_DATASETS)
        die_expected(at, node, key, row);
    return (int)(node->data.sequence.items.top - node->data.sequence.items.start);
}

static void read_path_list(const SchemaRow *row, ConfigPathList *list, const char *key, yaml_document_t *doc,
                           const yaml_node_t *node, const Origin *at) {
    const int count = list_items(row, key, node, at);
    memset(list, 0, sizeof *list);
    for (int i = 0; i < count; i++) {
        const yaml_node_t *item = yaml_document_get_node(doc, node->data.sequence.items.start[i]);
        const char *text = scalar_text(item);
        if (!text || !text[0] || strlen(text) >= CONFIG_STR) {
            char got[256];
            node_summary(item, got, sizeof got);
            die_at(at, item, "%s[%d]: expected a path of 1 to %d characters, got %s", key, i, CONFIG_STR - 1, got);
        }
        memcpy(list->item[i], text, strlen(text));
    }
    list->count = count;
}

static void read_float_list(const SchemaRow *row, ConfigFloatList *list, const char *key, yaml_document_t *doc,
                            const yaml_node_t *node, const Origin *at) {
    const int count = list_items(row, key, node, at);
    memset(list, 0, sizeof *list);
    for (int i = 0; i < count; i++)
        list->item[i] = read_list_number(row, key, i, yaml_document_get_node(doc, node->data.sequence.items.start[i]), at);
    list->count = count;
}

static void set_value(const SchemaRow *row, void *field, const char *key, yaml_document_t *doc,
                      const yaml_node_t *node, const Origin *at) {
    switch (row->type) {
    case T_INT: *(int *)field = read_int(row, key, node, at); break;
    case T_NULLABLE_INT: *(int *)field = is_null_node(node) ? 0 : read_int(row, key, node, at); break;
    case T_FLOAT: *(double *)field = read_number(row, key, node, at); break;
    case T_BOOL: *(int *)field = read_bool(row, key, node, at); break;
    case T_STRING:
    case T_ENUM: read_string(row, field, key, node, at); break;
    case T_FLOAT_PAIR: read_pair(row, field, key, doc, node, at); break;
    case T_PATH_LIST: read_path_list(row, field, key, doc, node, at); break;
    case T_FLOAT_LIST: read_float_list(row, field, key, doc, node, at); break;
    }
}

// ------------------------------------------------------------------------------------------------ applying

static void apply_key(Config *cfg, const char *key, yaml_document_t *doc, const yaml_node_t *value,
                      const yaml_node_t *key_node, const Origin *at);
static void apply_yaml_text(Config *cfg, const char *key, const char *text, const Origin *at);

static const char *mapping_key_text(yaml_document_t *doc, const yaml_node_pair_t *pair, const Origin *at) {
    const yaml_node_t *key = yaml_document_get_node(doc, pair->key);
    if (!key || key->type != YAML_SCALAR_NODE) die_at(at, key, "keys must be plain names");
    return (const char *)key->data.scalar.value;
}

static void check_duplicate_keys(yaml_document_t *doc, const yaml_node_t *map, const char *prefix,
                                 const Origin *at) {
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        const char *name = mapping_key_text(doc, p, at);
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
            if (strcmp(name, mapping_key_text(doc, q, at))) continue;
            const yaml_node_t *first = yaml_document_get_node(doc, q->key);
            die_at(at, yaml_document_get_node(doc, p->key), "duplicate key '%s%s' (first at line %zu)", prefix, name,
                   first->start_mark.line + 1);
        }
    }
}

static void apply_foreign(const ForeignKey *fk, const yaml_node_t *value, const yaml_node_t *key_node,
                          const Origin *at) {
    if (!fk->accepted) die_at(at, key_node, "%s: not supported: %s", fk->key, fk->why);
    int flag;
    const char *text = value && value->type == YAML_SCALAR_NODE ? (const char *)value->data.scalar.value : "";
    const char *canonical = is_null_node(value) ? "null" : parse_bool(text, &flag) ? (flag ? "true" : "false") : text;
    if (!value || value->type != YAML_SCALAR_NODE || !in_bar_list(canonical, fk->accepted)) {
        char got[256];
        node_summary(value, got, sizeof got);
        die_at(at, value ? value : key_node, "%s: expected %s (%s), got %s", fk->key, fk->accepted, fk->why, got);
    }
}

// Each generator's keys not given take their row default; num_blocks and spatial_scale must be given. The given
// keys are applied first so that a misspelt key is reported as such, not as a missing one.
static void apply_mask_item(Config *cfg, int index, yaml_document_t *doc, const yaml_node_t *item,
                            const Origin *at) {
    char prefix[32], key[160];
    snprintf(prefix, sizeof prefix, "mask.%d.", index);
    if (!item || item->type != YAML_MAPPING_NODE)
        die_at(at, item, "mask.%d: expected a mapping of num_blocks, spatial_scale, ...", index);
    check_duplicate_keys(doc, item, prefix, at);
    for (yaml_node_pair_t *p = item->data.mapping.pairs.start; p < item->data.mapping.pairs.top; p++) {
        snprintf(key, sizeof key, "%s%s", prefix, mapping_key_text(doc, p, at));
        apply_key(cfg, key, doc, yaml_document_get_node(doc, p->value), yaml_document_get_node(doc, p->key), at);
    }
    for (int r = 0; r < N_ROWS; r++) {
        const SchemaRow *row = &schema[r];
        if (!is_mask_row(row)) continue;
        int given = 0;
        for (yaml_node_pair_t *p = item->data.mapping.pairs.start; p < item->data.mapping.pairs.top; p++)
            given |= !strcmp(mapping_key_text(doc, p, at), leaf_of(row->key));
        if (given) continue;
        if (!row->default_yaml)
            die_at(at, item, "mask.%d.%s: missing (every mask generator sets it)", index, leaf_of(row->key));
        snprintf(key, sizeof key, "%s%s", prefix, leaf_of(row->key));
        apply_yaml_text(cfg, key, row->default_yaml, at);
    }
}

// A `mask:` list replaces all generators.
static void apply_mask_list(Config *cfg, yaml_document_t *doc, const yaml_node_t *list, const Origin *at) {
    char got[256];
    node_summary(list, got, sizeof got);
    if (!list || list->type != YAML_SEQUENCE_NODE)
        die_at(at, list, "mask: expected a list of mask generators (mappings of num_blocks, spatial_scale, ...), got %s",
               got);
    int count = (int)(list->data.sequence.items.top - list->data.sequence.items.start);
    if (count < 1 || count > CONFIG_MAX_MASKS)
        die_at(at, list, "mask: expected 1 to %d mask generators, got %s", CONFIG_MAX_MASKS, got);
    memset(cfg->mask, 0, sizeof cfg->mask);
    cfg->num_masks = count;
    for (int i = 0; i < count; i++)
        apply_mask_item(cfg, i, doc, yaml_document_get_node(doc, list->data.sequence.items.start[i]), at);
}

// "mask.<index>.<leaf>": a key of one existing generator.
static void apply_mask_key(Config *cfg, const char *key, yaml_document_t *doc, const yaml_node_t *value,
                           const yaml_node_t *key_node, const Origin *at) {
    const char *index_text = key + strlen("mask.");
    char *end;
    long index = strtol(index_text, &end, 10);
    if (end == index_text || *end != '.' || index_text[0] == '-' || index_text[0] == '+')
        die_at(at, key_node, "%s: expected mask.<index>.<key>, e.g. mask.0.num_blocks", key);
    if (index >= cfg->num_masks)
        die_at(at, key_node, "%s: mask index %ld out of range: there are %d mask generators (mask.0 to mask.%d)", key,
               index, cfg->num_masks, cfg->num_masks - 1);
    char generic[160];
    snprintf(generic, sizeof generic, "mask.N.%s", end + 1);
    const SchemaRow *row = find_row(generic);
    if (!row) die_unknown_key(at, key_node ? key_node : value, key, (int)index);
    set_value(row, field_of(cfg, row, (int)index), key, doc, value, at);
}

// One dotted key and its value node, from a file, an override or a default.
static void apply_key(Config *cfg, const char *key, yaml_document_t *doc, const yaml_node_t *value,
                      const yaml_node_t *key_node, const Origin *at) {
    if (!strcmp(key, "mask")) {
        apply_mask_list(cfg, doc, value, at);
        return;
    }
    if (!strncmp(key, "mask.", 5)) {
        apply_mask_key(cfg, key, doc, value, key_node, at);
        return;
    }
    const SchemaRow *row = find_row(key);
    if (row) {
        set_value(row, field_of(cfg, row, 0), key, doc, value, at);
        return;
    }
    const ForeignKey *foreign = find_foreign(key);
    if (foreign) {
        apply_foreign(foreign, value, key_node ? key_node : value, at);
        return;
    }
    die_unknown_key(at, key_node ? key_node : value, key, 0);
}

static void apply_section(Config *cfg, const char *section, yaml_document_t *doc, const yaml_node_t *map,
                          const Origin *at) {
    if (is_null_node(map)) return;  // "logging:" with nothing under it
    if (map->type != YAML_MAPPING_NODE) {
        char got[256];
        node_summary(map, got, sizeof got);
        die_at(at, map, "%s: expected a mapping of %s.* keys, got %s", section, section, got);
    }
    char prefix[64], key[192];
    snprintf(prefix, sizeof prefix, "%s.", section);
    check_duplicate_keys(doc, map, prefix, at);
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        snprintf(key, sizeof key, "%s%s", prefix, mapping_key_text(doc, p, at));
        apply_key(cfg, key, doc, yaml_document_get_node(doc, p->value), yaml_document_get_node(doc, p->key), at);
    }
}

static void apply_root(Config *cfg, yaml_document_t *doc, const Origin *at) {
    const yaml_node_t *root = yaml_document_get_root_node(doc);
    if (!root || is_null_node(root))  // an empty or truncated file must not train the defaults (ViT-L) unnoticed
        die_input("%s: the file is empty (or only comments); expected a mapping of sections (data:, model:, ...) "
                  "---> HINT: start from configs/tiny.yaml; `jepa config --doc` lists every key", at->name);
    if (root->type != YAML_MAPPING_NODE) die_at(at, root, "expected a mapping of sections (data:, model:, ...)");
    check_duplicate_keys(doc, root, "", at);
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
        const char *name = mapping_key_text(doc, p, at);
        const yaml_node_t *value = yaml_document_get_node(doc, p->value);
        if (strcmp(name, "mask") && is_section(name))
            apply_section(cfg, name, doc, value, at);
        else
            apply_key(cfg, name, doc, value, yaml_document_get_node(doc, p->key), at);
    }
}

// ------------------------------------------------------------------------------------------------ loading

static _Noreturn void die_yaml_syntax(const char *where, const yaml_parser_t *parser) {
    if (parser->context)
        die_input("%s:%zu: YAML syntax error: %s (%s at line %zu)", where, parser->problem_mark.line + 1,
                  parser->problem ? parser->problem : "?", parser->context, parser->context_mark.line + 1);
    die_input("%s:%zu: YAML syntax error: %s", where, parser->problem_mark.line + 1,
              parser->problem ? parser->problem : "?");
}

static void apply_file(Config *cfg, const char *path) {
    FILE *file = fopen(path, "rb");
    if (!file) die_input("%s: cannot open config file: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(file), &st) == 0 && S_ISDIR(st.st_mode))
        die_input("%s: is a directory, expected a YAML config file", path);
    yaml_parser_t parser;
    yaml_document_t doc, next;
    if (!yaml_parser_initialize(&parser)) die_internal("yaml_parser_initialize failed");
    yaml_parser_set_input_file(&parser, file);
    if (!yaml_parser_load(&parser, &doc)) die_yaml_syntax(path, &parser);
    if (!yaml_parser_load(&parser, &next)) die_yaml_syntax(path, &parser);
    const yaml_node_t *extra = yaml_document_get_root_node(&next);
    if (extra) die_input("%s:%zu: a second YAML document; a config is one document", path, extra->start_mark.line + 1);
    Origin at = {path, 1};
    apply_root(cfg, &doc, &at);
    yaml_document_delete(&next);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(file);
}

// The value text is parsed as YAML, so lists ("[0.996, 1.0]") and nulls read as in a file.
static void apply_yaml_text(Config *cfg, const char *key, const char *text, const Origin *at) {
    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) die_internal("yaml_parser_initialize failed");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, strlen(text));
    if (!yaml_parser_load(&parser, &doc))
        die_input("%s: %s: cannot read value '%s' as YAML: %s", at->name, key, text,
                  parser.problem ? parser.problem : "?");
    apply_key(cfg, key, &doc, yaml_document_get_root_node(&doc), NULL, at);
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
}

static void apply_override(Config *cfg, const char *text) {
    static const Origin command_line = {"command line", 0};
    const char *eq = strchr(text, '=');
    if (!eq || eq == text) die_input("command line: '%s' is not key=value (e.g. optimization.lr=1e-3)", text);
    char key[192];
    if ((size_t)(eq - text) >= sizeof key) die_input("command line: key too long in '%.60s...'", text);
    snprintf(key, sizeof key, "%.*s", (int)(eq - text), text);
    apply_yaml_text(cfg, key, eq + 1, &command_line);
}

void config_defaults(Config *cfg) {
    static const Origin builtin = {"built-in default", 0};
    memset(cfg, 0, sizeof *cfg);
    for (int r = 0; r < N_ROWS; r++)
        if (!is_mask_row(&schema[r])) apply_yaml_text(cfg, schema[r].key, schema[r].default_yaml, &builtin);
    apply_yaml_text(cfg, "mask", default_mask_list, &builtin);
}

void config_load(Config *cfg, const char *path, int n_overrides, char **overrides) {
    config_defaults(cfg);
    if (path) apply_file(cfg, path);
    for (int i = 0; i < n_overrides; i++) apply_override(cfg, overrides[i]);
}

// ------------------------------------------------------------------------------------------------ validation

// Every key against its row again, for configs changed in code after loading.
static void validate_each_key(const Config *cfg) {
    char expected[256];
    for (int r = 0; r < N_ROWS; r++) {
        const SchemaRow *row = &schema[r];
        int copies = is_mask_row(row) ? cfg->num_masks : 1;
        for (int m = 0; m < copies; m++) {
            const void *field = const_field_of(cfg, row, m);
            int ok = 1;
            switch (row->type) {
            case T_INT: ok = in_range(row, *(const int *)field); break;
            case T_NULLABLE_INT: ok = *(const int *)field == 0 || in_range(row, *(const int *)field); break;
            case T_FLOAT: ok = in_range(row, *(const double *)field); break;
            case T_BOOL: ok = *(const int *)field == 0 || *(const int *)field == 1; break;
            case T_STRING: ok = ((const char *)field)[0] && memchr(field, 0, row->size); break;
            case T_ENUM: ok = memchr(field, 0, row->size) && in_bar_list(field, row->allowed); break;
            case T_FLOAT_PAIR: {
                const double *pair = field;
                ok = in_range(row, pair[0]) && in_range(row, pair[1]) &&
                     (!(row->flags & ORDERED) || pair[0] <= pair[1]);
                break;
            }
            case T_PATH_LIST: {
                const ConfigPathList *list = field;
                ok = list->count >= 0 && list->count <= CONFIG_MAX_DATASETS;
                for (int i = 0; ok && i < list->count; i++) ok = list->item[i][0] && memchr(list->item[i], 0, CONFIG_STR);
                break;
            }
            case T_FLOAT_LIST: {
                const ConfigFloatList *list = field;
                ok = list->count >= 0 && list->count <= CONFIG_MAX_DATASETS;
                for (int i = 0; ok && i < list->count; i++) ok = in_range(row, list->item[i]);
                break;
            }
            }
            if (ok) continue;
            expected_text(row, expected, sizeof expected);
            die_input("config: %s: expected %s", row->key, expected);
        }
    }
}

static void require(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void require(int ok, const char *fmt, ...) {
    if (ok) return;
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    die_input("config: %s", message);
}

static void validate_model(const Config *cfg) {
    int custom = !strcmp(cfg->model.model_name, "vit_custom");
    int embed = cfg->model.embed_dim, depth = cfg->model.depth, heads = cfg->model.num_heads;
    if (custom)  // named sizes may take explicit overrides (model.c); vit_custom has nothing to fall back on
        require(embed > 0 && depth > 0 && heads > 0,
                "model.model_name: vit_custom needs model.embed_dim, model.depth and model.num_heads > 0 (got %d, %d, %d)",
                embed, depth, heads);
    if (heads > 0)
        require(embed % heads == 0, "model.embed_dim (%d) must be a multiple of model.num_heads (%d)", embed, heads);
    int pred_heads = cfg->model.pred_num_heads ? cfg->model.pred_num_heads : heads;  // heads of named sizes: model code
    if (pred_heads > 0)
        require(cfg->model.pred_embed_dim % pred_heads == 0,
                "model.pred_embed_dim (%d) must be a multiple of the predictor heads (%d, model.%s)",
                cfg->model.pred_embed_dim, pred_heads, cfg->model.pred_num_heads ? "pred_num_heads" : "num_heads");
}

void config_validate(const Config *cfg) {
    require(cfg->num_masks >= 1 && cfg->num_masks <= CONFIG_MAX_MASKS, "mask: expected 1 to %d mask generators, got %d",
            CONFIG_MAX_MASKS, cfg->num_masks);
    validate_each_key(cfg);
    require(cfg->data.crop_size % cfg->data.patch_size == 0,
            "data.crop_size (%d) must be a multiple of data.patch_size (%d)", cfg->data.crop_size, cfg->data.patch_size);
    require(cfg->data.num_frames % cfg->data.tubelet_size == 0,
            "data.num_frames (%d) must be a multiple of data.tubelet_size (%d)", cfg->data.num_frames,
            cfg->data.tubelet_size);
    require(cfg->data.num_clips == 1, "data.num_clips: only 1 is supported, got %d", cfg->data.num_clips);
    require(!cfg->data_aug.auto_augment, "data_aug.auto_augment: only false is supported");
    require(!cfg->data_aug.motion_shift, "data_aug.motion_shift: only false is supported");
    require(cfg->data_aug.reprob == 0, "data_aug.reprob: only 0 is supported (no random erasing), got %g",
            cfg->data_aug.reprob);
    validate_model(cfg);
    // cuDNN's attention runs only on the GPU, and its backward adds dQ with atomics (not bitwise reproducible)
    require(strcmp(cfg->model.attention, "cudnn") || strcmp(cfg->meta.device, "cpu"),
            "model.attention: cudnn needs the GPU, but meta.device is cpu\n---> HINT: set meta.device=cuda, or "
            "model.attention=native");
    require(strcmp(cfg->model.attention, "cudnn") || !cfg->meta.deterministic,
            "model.attention: cudnn is not bitwise reproducible (its backward adds dQ with atomics), but "
            "meta.deterministic is true\n---> HINT: set meta.deterministic=false, or model.attention=native");
    require(cfg->data.datasets_weights.count == 0 || cfg->data.datasets_weights.count == cfg->data.datasets.count,
            "data.datasets_weights has %d values but data.datasets lists %d stores (give one weight per store, or [])",
            cfg->data.datasets_weights.count, cfg->data.datasets.count);
    require(cfg->optimization.warmup <= cfg->optimization.epochs,
            "optimization.warmup (%d epochs) must not exceed optimization.epochs (%d)", cfg->optimization.warmup,
            cfg->optimization.epochs);
    require(strcmp(cfg->optimization.lr_schedule, "wsd") ||
                cfg->optimization.warmup + cfg->optimization.decay_epochs <= cfg->optimization.epochs,
            "optimization.decay_epochs (%d) + optimization.warmup (%d) must not exceed optimization.epochs (%d) "
            "with lr_schedule wsd", cfg->optimization.decay_epochs, cfg->optimization.warmup, cfg->optimization.epochs);
    require(cfg->data.site_paths.count == 0 || cfg->data.site_paths.count == cfg->dist.sites,
            "data.site_paths lists %d stores: expected one per site (dist.sites %d)", cfg->data.site_paths.count,
            cfg->dist.sites);
    // allreduce with data.site_paths: each site's ranks read its own store, the gradients are averaged over every
    // rank (the pooled-data baseline of docs/consensus.md); without per-site stores, sites mean nothing to allreduce
    require(cfg->dist.sites == 1 || strcmp(cfg->dist.sync, "consensus") == 0 || cfg->data.site_paths.count > 0,
            "dist.sites: %d sites need dist.sync: consensus or data.site_paths (allreduce averages over every rank)",
            cfg->dist.sites);
    require(!cfg->model.checkpoint_activations || cfg->model.checkpoint_every <= 1,
            "model.checkpoint_activations: true means model.checkpoint_every: 1, but model.checkpoint_every is %d\n"
            "---> HINT: set model.checkpoint_activations=false to recompute every %d-th block",
            cfg->model.checkpoint_every, cfg->model.checkpoint_every);
    require(cfg->loss.loss_exp == 1, "loss.loss_exp: only L1 (loss_exp: 1) is supported, got %g", cfg->loss.loss_exp);
    require(cfg->loss.reg_coeff == 0, "loss.reg_coeff: only 0 is supported (no variance regulariser), got %g",
            cfg->loss.reg_coeff);
}

int config_checkpoint_every(const Config *cfg) {
    return cfg->model.checkpoint_every ? cfg->model.checkpoint_every : cfg->model.checkpoint_activations;
}

// ------------------------------------------------------------------------------------------------ output

// Shortest text that reads back to the same double, with a '.' so that YAML 1.1 readers see a float.
static void format_double(double v, char *buf, size_t n) {
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(buf, n, "%.*g", digits, v);
        if (strtod(buf, NULL) == v) break;
    }
    if (strchr(buf, 'e') && fabs(v) >= 1e-4 && fabs(v) < 1e16) {  // %g chose an exponent that %f does not need
        for (int decimals = 0; decimals <= 20; decimals++) {
            snprintf(buf, n, "%.*f", decimals, v);
            if (strtod(buf, NULL) == v) break;
        }
    }
    if (strchr(buf, '.')) return;
    char *exponent = strchr(buf, 'e');
    char mantissa[40];
    snprintf(mantissa, sizeof mantissa, "%.*s.0%s", exponent ? (int)(exponent - buf) : (int)strlen(buf), buf,
             exponent ? exponent : "");
    snprintf(buf, n, "%s", mantissa);
}

// A double-quoted YAML string: quotes, backslashes and control characters escaped.
static void quote_yaml(const char *text, char *buf, size_t n) {
    size_t used = 0;
    buf[used++] = '"';
    for (const unsigned char *c = (const unsigned char *)text; *c && used + 6 < n; c++) {
        if (*c == '"' || *c == '\\')
            used += (size_t)snprintf(buf + used, n - used, "\\%c", *c);
        else if (*c < 0x20 || *c == 0x7f)
            used += (size_t)snprintf(buf + used, n - used, "\\x%02x", *c);
        else
            buf[used++] = (char)*c;
    }
    buf[used++] = '"';
    buf[used] = 0;
}

// "[a, b]": items joined; paths quoted for YAML.
static void format_list(const SchemaRow *row, const void *field, int for_yaml, char *buf, size_t n) {
    const int count = row->type == T_PATH_LIST ? ((const ConfigPathList *)field)->count
                                               : ((const ConfigFloatList *)field)->count;
    size_t used = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < count && used < n; i++) {
        char item[CONFIG_STR * 2 + 8];
        if (row->type == T_FLOAT_LIST)
            format_double(((const ConfigFloatList *)field)->item[i], item, sizeof item);
        else if (for_yaml)
            quote_yaml(((const ConfigPathList *)field)->item[i], item, sizeof item);
        else
            snprintf(item, sizeof item, "%s", ((const ConfigPathList *)field)->item[i]);
        used += (size_t)snprintf(buf + used, n - used, "%s%s", i ? ", " : "", item);
    }
    if (used < n) snprintf(buf + used, n - used, "]");
}

static void format_value(const SchemaRow *row, const void *field, int for_yaml, char *buf, size_t n) {
    char a[40], b[40];
    switch (row->type) {
    case T_INT: snprintf(buf, n, "%d", *(const int *)field); break;
    case T_NULLABLE_INT:
        if (*(const int *)field == 0)
            snprintf(buf, n, "null");
        else
            snprintf(buf, n, "%d", *(const int *)field);
        break;
    case T_FLOAT: format_double(*(const double *)field, buf, n); break;
    case T_BOOL: snprintf(buf, n, "%s", *(const int *)field ? "true" : "false"); break;
    case T_ENUM: snprintf(buf, n, "%s", (const char *)field); break;
    case T_STRING:
        if (for_yaml)
            quote_yaml(field, buf, n);
        else
            snprintf(buf, n, "%s", (const char *)field);
        break;
    case T_FLOAT_PAIR:
        format_double(((const double *)field)[0], a, sizeof a);
        format_double(((const double *)field)[1], b, sizeof b);
        snprintf(buf, n, "[%s, %s]", a, b);
        break;
    case T_PATH_LIST:
    case T_FLOAT_LIST: format_list(row, field, for_yaml, buf, n); break;
    }
}

// Every key of cfg in schema order, mask keys generator by generator, with its dotted name.
typedef void (*EntryVisitor)(const char *key, const SchemaRow *row, const void *field, int mask_index, void *ctx);

static void for_each_entry(const Config *cfg, EntryVisitor visit, void *ctx) {
    char key[160];
    for (int r = 0; r < N_ROWS; r++) {
        if (!is_mask_row(&schema[r])) {
            visit(schema[r].key, &schema[r], const_field_of(cfg, &schema[r], 0), -1, ctx);
            continue;
        }
        if (r > 0 && is_mask_row(&schema[r - 1])) continue;  // the whole list is visited at its first row
        for (int m = 0; m < cfg->num_masks; m++)
            for (int q = r; q < N_ROWS && is_mask_row(&schema[q]); q++) {
                snprintf(key, sizeof key, "mask.%d.%s", m, leaf_of(schema[q].key));
                visit(key, &schema[q], const_field_of(cfg, &schema[q], m), m, ctx);
            }
    }
}

typedef struct {
    FILE *out;
    char section[64];
    int mask_index;
} YamlWriter;

static void write_yaml_entry(const char *key, const SchemaRow *row, const void *field, int mask_index, void *ctx) {
    YamlWriter *w = ctx;
    char value[CONFIG_MAX_DATASETS * (CONFIG_STR + 8) + 64];  // the longest list of paths
    size_t len = section_length(key);
    if (strlen(w->section) != len || strncmp(w->section, key, len)) {
        snprintf(w->section, sizeof w->section, "%.*s", (int)len, key);
        fprintf(w->out, "%s:\n", w->section);
        w->mask_index = -1;
    }
    format_value(row, field, 1, value, sizeof value);
    if (mask_index < 0)
        fprintf(w->out, "  %s: %s\n", leaf_of(key), value);
    else
        fprintf(w->out, "%s%s: %s\n", mask_index != w->mask_index ? "  - " : "    ", leaf_of(key), value);
    w->mask_index = mask_index;
}

void config_write_yaml(const Config *cfg, FILE *out) {
    YamlWriter writer = {out, "", -1};
    fprintf(out, "# jepa.c resolved config; `jepa config --doc` describes every key\n");
    for_each_entry(cfg, write_yaml_entry, &writer);
}

typedef struct {
    ConfigValueVisitor visit;
    void *ctx;
} ValueVisit;

static void visit_value(const char *key, const SchemaRow *row, const void *field, int mask_index, void *ctx) {
    const ValueVisit *v = ctx;
    char value[16384];  // longer than any value (the longest is a list of paths)
    format_value(row, field, 1, value, sizeof value);
    v->visit(key, value, v->ctx);
}

void config_for_each_value(const Config *cfg, ConfigValueVisitor visit, void *ctx) {
    ValueVisit v = {visit, ctx};
    for_each_entry(cfg, visit_value, &v);
}

typedef struct {
    FILE *out;
    int key_width, value_width;
} TableWriter;

static void measure_table_entry(const char *key, const SchemaRow *row, const void *field, int mask_index, void *ctx) {
    TableWriter *t = ctx;
    char value[CONFIG_MAX_DATASETS * (CONFIG_STR + 8) + 64];  // the longest list of paths
    format_value(row, field, 0, value, sizeof value);
    if ((int)strlen(key) > t->key_width) t->key_width = (int)strlen(key);
    if ((int)strlen(value) > t->value_width) t->value_width = (int)strlen(value);
}

static void print_table_entry(const char *key, const SchemaRow *row, const void *field, int mask_index, void *ctx) {
    TableWriter *t = ctx;
    char value[CONFIG_MAX_DATASETS * (CONFIG_STR + 8) + 64];  // the longest list of paths
    format_value(row, field, 0, value, sizeof value);
    fprintf(t->out, "| %-*s | %-*s |\n", t->key_width, key, t->value_width, value);
}

static void print_table_rule(const TableWriter *t) {
    fputc('+', t->out);
    for (int i = 0; i < t->key_width + 2; i++) fputc('-', t->out);
    fputc('+', t->out);
    for (int i = 0; i < t->value_width + 2; i++) fputc('-', t->out);
    fputs("+\n", t->out);
}

void config_print_table(const Config *cfg, FILE *out) {
    TableWriter table = {out, (int)strlen("key"), (int)strlen("value")};
    for_each_entry(cfg, measure_table_entry, &table);
    print_table_rule(&table);
    fprintf(out, "| %-*s | %-*s |\n", table.key_width, "key", table.value_width, "value");
    print_table_rule(&table);
    for_each_entry(cfg, print_table_entry, &table);
    print_table_rule(&table);
}

void config_print_doc(FILE *out) {
    int key_width = 3, default_width = 7, allowed_width = 5;
    char allowed[256];
    for (int r = 0; r < N_ROWS; r++) {
        const SchemaRow *row = &schema[r];
        allowed_text(row, allowed, sizeof allowed);
        if ((int)strlen(row->key) > key_width) key_width = (int)strlen(row->key);
        int default_len = row->default_yaml ? (int)strlen(row->default_yaml) : 0;
        if (default_len > default_width) default_width = default_len;
        if ((int)strlen(allowed) > allowed_width) allowed_width = (int)strlen(allowed);
    }
    fprintf(out, "%-*s  %-14s  %-*s  %-*s  %s\n", key_width, "key", "type", default_width, "default", allowed_width,
            "range", "meaning");
    for (int r = 0; r < N_ROWS; r++) {
        const SchemaRow *row = &schema[r];
        allowed_text(row, allowed, sizeof allowed);
        fprintf(out, "%-*s  %-14s  %-*s  %-*s  %s\n", key_width, row->key, type_name(row->type), default_width,
                row->default_yaml ? row->default_yaml : "(required)", allowed_width, allowed, row->doc);
    }
    fprintf(out, "\nmask: a list of 1 to %d generators, mask.N = the N-th (from 0); default:\n  %s\n", CONFIG_MAX_MASKS,
            default_mask_list);
    fprintf(out, "\nKeys of the official V-JEPA YAML that jepa.c does not store:\n");
    for (int f = 0; f < N_FOREIGN; f++) {
        const ForeignKey *fk = &foreign_keys[f];
        if (fk->accepted)
            fprintf(out, "  %-26s accepted (%s): %s\n", fk->key, fk->accepted, fk->why);
        else
            fprintf(out, "  %-26s rejected: %s\n", fk->key, fk->why);
    }
}
