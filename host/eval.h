// eval.h: judging a trained world model without another code base (docs/world-models.md, "Probing and intuitive
// physics"):
//   jepa eval probe     frozen features -> attentive probe -> R^2 per ground-truth state variable (eval_probe.c)
//   jepa eval surprise  matched possible / impossible balls clips -> prediction error -> pairwise accuracy, AUROC
//                       (eval_surprise.c)
//   jepa embed          frozen features of a store's clips written to HDF5 (embed.c)
// Every result is a pure function of the checkpoint, the data and the seed.
#pragma once
#include <stdint.h>
#include <stdio.h>

#include "backend.h"
#include "config.h"
#include "model.h"
#include "store.h"
#include "world_balls.h"

#define RNG_EVAL 100  // rng purpose of the evaluations (probe init, order and split; violations): apart from rng.h's

// ------------------------------------------------------------------------------------------------ model

// A checkpoint's model, loaded for evaluation (or freshly initialised: the random-init baseline of the same size).
typedef struct {
    Config cfg;         // the checkpoint's config.yaml, data.batch_size set to the evaluation batch
    char dir[1024];     // the checkpoint folder
    char device[256];   // the backend's description
    Backend *be;
    Model *model;
    long step;          // the checkpoint's step (0 for a random init)
} EvalModel;

// ckpt: a checkpoint folder or a run folder (its newest checkpoint that verifies). batch: the most clips one
// forward pass takes. random_init: build the same model from meta.seed without loading the weights.
// overrides: key=value applied to the checkpoint's config (meta.device=cpu, ...). Exits 2 on bad input.
void eval_model_open(EvalModel *em, const char *ckpt, int batch, int random_init, int n_overrides, char **overrides);
void eval_model_close(EvalModel *em);

// ------------------------------------------------------------------------------------------------ clips

// Clips of a store read the way the model sees them: data.num_frames frames data.sampling_rate apart from frame 0,
// normalised; the store's frames must be data.crop_size square (no resizing here).
typedef struct {
    Store *store;
    StoreReader reader;
    int frames, step, size;  // model frames, frame step, crop
} EvalClips;

void eval_clips_open(EvalClips *c, const char *path, const Config *cfg);
// Clips [first, first + count) into out [count, T, H, W, 3].
void eval_clips_read(EvalClips *c, int64_t first, int count, float *out);
void eval_clips_close(EvalClips *c);

// Encoder features of clips [first, first + count) of c: out [count, N, D] (target encoder when use_target).
void eval_features(EvalModel *em, EvalClips *c, int64_t first, int64_t count, int use_target, double *out);

// ------------------------------------------------------------------------------------------------ probe

// Attentive probe (V-JEPA's evals pool frozen tokens with a cross-attention query, then a linear head): `heads`
// learned queries u_h [D] each pool the tokens with softmax(u_h . x_i / sqrt(D)); the pooled vectors, concatenated
// [heads*D], go through a linear head to the outputs. (The key and value projections of a cross-attention block
// fold into u_h and the head, since nothing nonlinear sits between them.) Targets are standardised on the training
// split; the loss is the mean squared error plus weight decay on the head, minimised by Adam over shuffled
// mini-batches.
typedef struct {
    int heads, epochs, batch;
    double lr, weight_decay;
    uint64_t seed;
    int mean_pool;  // queries fixed at 0: uniform attention, i.e. a linear probe on mean-pooled tokens
} ProbeOptions;

typedef struct {
    int heads, tokens, dim, outputs;
    double *u;       // [heads, dim] queries
    double *w, *b;   // [outputs, heads*dim], [outputs] head
    double *y_mean, *y_std;  // [outputs] target standardisation
} Probe;

ProbeOptions probe_default_options(void);
// X [n, tokens, dim], Y [n, outputs]; samples listed in idx [n_idx] are the training set.
void probe_train(Probe *p, const ProbeOptions *o, const double *X, const double *Y, int tokens, int dim, int outputs,
                 const int *idx, int n_idx);
// Y [n_idx, outputs] for the samples idx of X.
void probe_predict(const Probe *p, const double *X, const int *idx, int n_idx, double *Y);
void probe_free(Probe *p);
// Loss (standardised targets) of the samples idx and, when grads is not NULL, its gradient: grads has the layout
// of (u, w, b) concatenated. For the finite-difference test.
double probe_loss(const Probe *p, const double *X, const double *Y, const int *idx, int n_idx, double weight_decay,
                  double *grads);
size_t probe_param_count(const Probe *p);
// Pointer to parameter i in the (u, w, b) order probe_loss's gradient uses.
double *probe_param(Probe *p, size_t i);

// Standardises each of the dim channels of X [n, tokens, dim] in place with the mean and std over every token of
// the samples idx (the training set).
void eval_standardise_features(double *X, size_t n, int tokens, int dim, const int *idx, int n_idx);
// Probe targets of the first `clips` clips of c: per sample (clip, time step), the /states row of the first frame of
// the step's tubelet. Y [clips * grid_t, S].
double *eval_probe_targets(EvalClips *c, const ModelDims *d, int clips);
// Clips shuffled by the seed, the last round(holdout * clips) held out; samples (clip, time step) keep to their
// clip's side. train / test receive sample indices (clips * slots entries each at most).
void eval_split_by_clip(int clips, int slots, double holdout, uint64_t seed, int *train, int *n_train, int *test,
                        int *n_test);

typedef struct {
    double *r2;                 // [S] per state column, held out
    double position, velocity;  // mean R^2 of the *_x, *_y and of the *_vx, *_vy columns (NAN when none)
    double *pred;               // [n_test, S] held-out predictions
    double seconds;
} ProbeResult;
// Standardises X [n, tps, dim] (in place), trains the probe on Y's train samples and scores the test samples.
void eval_probe_fit(const ProbeOptions *o, double *X, size_t n, const double *Y, int tps, int dim, const Store *store,
                    const int *train, int n_train, const int *test, int n_test, ProbeResult *r);
void probe_result_free(ProbeResult *r);

// R^2 = 1 - SS_res / SS_tot of each column of pred against truth [n, k].
void eval_r2(const double *pred, const double *truth, int n, int k, double *r2);

// ------------------------------------------------------------------------------------------------ surprise

// Scores windows of clips: scores[b] for each of the B windows clips [B, T, H, W, 3] (higher = more surprising).
typedef void (*WindowScorer)(void *ctx, const float *clips, int B, double *scores);

// Pairwise accuracy (fraction of pairs whose impossible twin scores higher; ties count half) and AUROC (all
// impossible against all possible scores, the Mann-Whitney statistic, ties half) of n pairs.
double eval_pairwise_accuracy(const double *possible, const double *impossible, int n);
double eval_auroc(const double *possible, const double *impossible, int n);

// The matched pairs: per violation type, `pairs` lawful clips of clip_frames frames and their impossible twins (the
// balls world of `world`, whose sample and violation draws come from seed). Windows of `frames` frames start every
// `tubelet` frames; a clip's surprise is its largest window score (or rise, see `rise`).
typedef struct {
    BallsWorldConfig world;
    int pairs, clip_frames, frames, tubelet;
    int context_frames;  // of each window; violations are drawn from this frame on (0: frames / 2)
    int rise;            // a clip's surprise: 0 its largest window score; 1 the largest rise from one window to the next
    uint64_t seed;
} SurpriseSpec;

typedef struct {
    int pairs, windows;
    double *possible, *impossible;          // [pairs] clip surprise
    double *curve_pos, *curve_imp;          // [pairs, windows] window scores
    int *violation_frame, *first_visible;   // [pairs] where the law breaks; the first frame the twins differ (-1: never)
} SurpriseScores;

int surprise_windows(const SurpriseSpec *sp);
// Scores every pair of every violation type with scorer (called with the 2 * windows windows of one pair:
// the lawful clip's, then the twin's). out[BALLS_VIOLATION_COUNT]; free with surprise_scores_free.
void surprise_run(const SurpriseSpec *sp, WindowScorer scorer, void *ctx, SurpriseScores *out);
void surprise_scores_free(SurpriseScores *s);
// The pixel-space baseline: a window's score is the mean absolute difference between each of its last
// frames - (frames - context_frames) of them - and its last context frame (frames persist: no motion model).
typedef struct {
    int frames, size, context_frames;
} PixelScorer;
void pixel_window_scores(void *ctx, const float *clips, int B, double *scores);

// Does the predictor model motion at all? On lawful windows, the mean L1 of its predictions of the future tokens
// against the target encoder's features there, beside "features persist" (each future token predicted by the last
// context step's feature at the same spatial place), over all future tokens and over the `moving_fraction` of them
// that persistence gets most wrong (where something moved; the rest is mostly still background).
// pred, future [B, nt, D]; last [B, tps, D]; future token i sits at spatial place i % tps.
typedef struct {
    double predictor, persistence;                // mean L1 per channel, all future tokens
    double predictor_moving, persistence_moving;  // the same over the moving tokens
    long tokens, moving;
} MotionErrors;
void eval_motion_errors(const double *pred, const double *future, const double *last, int B, int nt, int tps, int D,
                        double moving_fraction, MotionErrors *out);

// ------------------------------------------------------------------------------------------------ commands

int eval_command(int argc, char **argv);   // jepa eval probe|surprise ...
int eval_surprise_command(int argc, char **argv);  // jepa eval surprise ... (eval_surprise.c)
int embed_command(int argc, char **argv);  // jepa embed ...

// Shared by the commands: the checkpoint resolution and a JSON string writer.
char *eval_resolve_checkpoint(const char *ckpt, const char *command);
void eval_json_string(FILE *f, const char *s);
int eval_wants_help(int argc, char **argv);  // --help or -h among the arguments
