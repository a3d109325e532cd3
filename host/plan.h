// plan.h: planning with a world model (docs/world-models.md). The cross-entropy method (CEM) over action sequences,
// model-predictive control (MPC) in a built-in world, and `jepa plan`.
//   CEM: a Gaussian per action component and step; each iteration draws `samples` sequences, clips them to the
//   bounds, scores them with an energy, and refits mean and std to the `elites` lowest; the plan is the final mean.
//   MPC: plan, execute the first `execute` actions, observe, plan again (warm-started from the shifted mean).
// Every draw is rng_stream(seed, RNG_PLAN, episode step, episode): a pure function of (seed, episode, step).
#pragma once
#include <stdint.h>

#include "config.h"

#define PLAN_MAX_ACTION 4
#define PLAN_MAX_HORIZON 64

typedef struct {
    int samples, elites, iterations, horizon;  // CEM sizes; horizon in actions
    int action_dim;
    double lo[PLAN_MAX_ACTION], hi[PLAN_MAX_ACTION];  // action bounds per component
    double init_std;  // first iteration's std, as a fraction of each component's half range
    double min_std;   // floor on the std, same unit (keeps late iterations exploring)
} CemConfig;

// energies[S] of S action sequences actions[S, horizon, action_dim]; lower is better.
typedef void (*CemEnergy)(void *ctx, const double *actions, int S, double *energies);

// Refines mean[horizon, action_dim] (in: the starting mean; out: the plan). Draws from stream (seed, step, index).
// Returns the energy of the best sample of the last iteration.
double cem_plan(const CemConfig *c, CemEnergy energy, void *ctx, uint64_t seed, uint64_t step, uint64_t index,
                double *mean);

// How a tworooms episode picks its actions.
typedef enum {
    PLANNER_RANDOM = 0,     // uniform in the bounds (the baseline)
    PLANNER_TRUE_DYNAMICS,  // CEM with the world's own step and the final state's distance to the goal (an upper bound)
    PLANNER_MODEL,          // CEM with the action-conditioned predictor and the L1 latent energy (model_ac.h)
    PLANNER_TRUE_LATENT,    // CEM with the world's own step, energy = L1 between the encoder's embeddings of the final
                            // state's frame and the goal frame: how well the frozen encoder's space supports planning
} PlannerKind;

typedef struct AcModel AcModel;

typedef enum { PLAN_WORLD_TWOROOMS = 0, PLAN_WORLD_PUSHT = 1 } PlanWorld;

typedef struct {
    PlanWorld world;  // plan.world
    CemConfig cem;
    int execute;      // actions executed per plan
    int repeat;       // control steps each planned action is held (plan.action_repeat; 0 or 1: once)
    int step_limit;   // control steps per episode
    int pusht_traj;   // plan.pusht_start trajectory: start and goal on a noisy-expert trajectory (pusht_traj_episode)
    int goal_steps;   // its goal: the state this many control steps after the start
    uint64_t seed;
} MpcConfig;

typedef struct {
    int success, steps;     // success within step_limit; actions taken (step_limit when it failed)
    double final_distance;  // at the end: tworooms agent to goal, pixels; pusht the block's position error, units
    double plan_seconds;    // wall time spent planning, total
    int plans;              // CEM calls
} EpisodeResult;

// One episode of MpcConfig.world and .seed. tworooms: start and goal from tworooms_episode(seed, episode), success
// within the success radius. pusht: start from pusht_plan_episode(seed, episode), goal PUSHT_GOAL (its image: the
// block at the goal pose, the pusher parked in a far corner), or with .pusht_traj start and goal (its image the full
// goal state, pusher included) from pusht_traj_episode; success by pusht_success (the block only). frames (optional, step_limit + 1
// frames of side x side x 3, side 64 or 96) receives what the agent saw; *n_frames how many.
EpisodeResult mpc_episode(const MpcConfig *c, PlannerKind kind, AcModel *model, int64_t episode,
                                   uint8_t *frames, int *n_frames);

// The CEM and MPC settings of a config's plan.* keys (action bounds and step limit from plan.world).
void plan_config_from(const Config *cfg, MpcConfig *out);
// Spearman's rank correlation of x[m] and y[m] (ties share their mean rank); 0 when either is constant.
double plan_rank_correlation(const double *x, const double *y, int m);

// `jepa plan CONFIG --checkpoint DIR [--episodes N] [--strip FILE.png] [key=value ...]`: returns the exit code.
int plan_command(int argc, char **argv);
