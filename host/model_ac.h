// model_ac.h: the action-conditioned predictor (model.kind: ac; docs/world-models.md), after V-JEPA 2-AC.
// A frozen V-JEPA encoder (the target encoder of a jepa.c checkpoint, ac.encoder_checkpoint) encodes each frame on
// its own (the frame repeated tubelet_size times) into n patch features, normalised by a non-affine LayerNorm:
// z_t [n, D]. The predictor, a transformer of width P over T frames of F = 1 + state_token + n tokens each,
//   frame t: [ a_t @ Wa + ba,  s_t @ Ws + bs,  z_t @ Wz + bz ] + sincos position (t, h, w)     [F, P]
// with frame-causal attention (tokens of frame t see frames <= t), predicts z_{t+1} at frame t's patch tokens:
//   zhat_{t+1} = LN(out) @ Wproj + b                                                            [n, D]
// Loss: teacher-forced L1 over the clip plus, for ac.rollout_steps passes, the L1 of the same predictor fed its own
// previous predictions (inputs detached: no gradient flows through the fed-back predictions).
// Actions and states enter scaled to about [-1, 1] by the world's bounds (ac_world_scaling).
#pragma once
#include <stdint.h>

#include "arena.h"
#include "backend.h"
#include "config.h"
#include "model.h"

#define AC_MAX_DEPTH 64
#define AC_MAX_DIM 8  // action and state components

typedef struct {
    int tokens, feat_dim;          // n patch tokens per frame, D encoder width
    int grid_h, grid_w;            // the patch grid (n = grid_h * grid_w)
    int width;                     // P
    int action_dim, state_dim;     // A, S (S = 0: no state token)
    int extra;                     // tokens before the patches in a frame: 1 + (S > 0)
    int frame_tokens;              // F = extra + n
    StackDims pred;
    int action_w, state_w, embed_w, proj_w;  // table indices of the Linear weights (each bias follows)
} AcDims;

typedef struct {
    double action_offset[AC_MAX_DIM], action_scale[AC_MAX_DIM];  // input = (value - offset) / scale
    double state_offset[AC_MAX_DIM], state_scale[AC_MAX_DIM];
    double state_lo[AC_MAX_DIM], state_hi[AC_MAX_DIM];  // planning's state estimate is clipped to these
    int pusher_pd;  // pusht: the action is a target point; planning moves the state by the pusher's PD law
} AcScaling;

typedef struct AcModel AcModel;
struct AcModel {
    Backend *be;
    Config cfg;
    AcDims dims;
    AcScaling scaling;
    Model pm;               // the predictor: be, table, params (= work), grads, AdamW moments
    Model *encoder;         // the frozen V-JEPA model, or NULL (tests)
    int encode_batch;       // frames per encoder call
    void *pos;              // [max_frames * F, P] position rows per frame token
    void *stat;             // [1] loss (stat type)
    Arena arena;
    int max_batch, max_frames;
    BlockActs blk[AC_MAX_DEPTH];
    void *x[AC_MAX_DEPTH + 1];
    // planning: the current frame, its state and the goal, set by ac_plan_begin
    float *plan_now, *plan_goal;  // [n*D]
    double plan_state[AC_MAX_DIM];
    double plan_velocity[AC_MAX_DIM];  // pusht: the pusher's velocity (scaling.pusher_pd); set after ac_plan_begin
    int plan_horizon;
};

// The world's action and state scaling and dimensions (plan.world): tworooms A = 2, S = 2.
void ac_world_scaling(const char *world, int *action_dim, int *state_dim, AcScaling *out);
// Builds the predictor (and, when load_encoder, the frozen encoder from ac.encoder_checkpoint), for sequences of up
// to max_batch x max_frames frames.
AcModel *ac_create(const Config *cfg, Backend *be, int max_batch, int max_frames, int load_encoder);
void ac_free(AcModel *m);
// Frames rgb uint8 [count, H, W, 3] -> features [count, n, D].
void ac_encode(AcModel *m, const uint8_t *rgb, int count, float *feats);
// The predictor on B sequences of T frames: feats [B,T,n,D], actions [B,T,A] and states [B,T,S] in world units.
// pred (host, optional) receives [B,T,n,D]. With target [B,T,n,D]: returns the L1 loss, and when backward adds
// grad_scale times its gradient into pm.grads. Without a target: returns 0.
double ac_forward(AcModel *m, int B, int T, const float *feats, const float *actions, const float *states,
                  const float *target, float *pred, int backward, double grad_scale);
// Predictor weights as a safetensors file (table names, F32: the master weights, so a predictor trained on one
// backend loads on the other) and back; ac_load dies naming the file on a mismatch.
void ac_save(const AcModel *m, const char *path);
void ac_load(AcModel *m, const char *path);
// All predictor parameters from host values [pm.table.total]: the master weights, then the working copy (bf16 on
// CUDA) cast from them. Init, ac_load and tests go through it.
void ac_set_params(AcModel *m, const double *values);
// `jepa train` with model.kind ac: encodes data.datasets once, trains, writes RUN/predictor.safetensors. The backend
// is meta.device's (train_backend: auto takes the GPU when there is one), the frozen encoder on it as well.
int ac_train(const Config *cfg, const char *command);
// One batch of B training windows of T = ac.frames - 1 steps, host: in, tgt [B,T,n,D] the features of frames
// 0..T-1 and 1..T; act [B,T,A]; st [B,T,S]; pred [B,T,n,D] scratch.
typedef struct {
    float *in, *tgt, *act, *st, *pred;
} AcBatch;
// One step's gradients into pm.grads (zeroed first): teacher forcing (weight 1/2, or 1 without rollout) then
// ac.rollout_steps passes fed the previous pass's predictions (b->in is overwritten). Returns both losses.
void ac_train_grads(AcModel *m, AcBatch *b, int B, double *loss_tf, double *loss_roll);
// AdamW step `step` (1-based) at lr (optimization.* betas, eps, weight_decay; no decay on biases and 1-D tensors),
// the working weights refreshed in the same pass (optim_adamw_groups, the main model's update).
void ac_adamw(AcModel *m, double lr, long step);
// Planning: the current frame and state and the goal frame (rgb [H, W, 3]) for plans of `horizon` actions ...
void ac_plan_begin(AcModel *m, const uint8_t *now_rgb, const double *state, const uint8_t *goal_rgb, int horizon);
// ... then energies[S] of actions [S, horizon, A]: the mean |zhat_H - z_goal| after rolling the predictor out over
// a sliding window of ac.frames - 1 frames (plan.energy mean / min: the mean / least of that over zhat_1..zhat_H);
// the state token of a predicted frame is the previous state plus the action, clipped to the world (as V-JEPA 2-AC
// integrates end-effector deltas), or for pusht where the pusher's PD law takes it towards the target.
void ac_plan_energy(AcModel *m, const double *actions, int S, double *energies);
// The energy of one frame's features z [n, D]: the mean |z - goal| against ac_plan_begin's goal.
double ac_goal_distance(const AcModel *m, const float *z);
