// world_pusht.h: the Push-T world. A circular pusher (radius 15, kinematic, PD-controlled towards a target point)
// and a T-shaped block (mass 1, two 120x30 / 30x90 boxes) on a 512x512 table walled at 5 and 506, simulated with
// Chipmunk2D at 100 Hz, controlled at 10 Hz, without gravity and with space damping 0 (a free body stops at once:
// the block moves only while pushed), as the reference Push-T task (diffusion policy's pusht_env, gym-pusht) sets
// it up. Rendered by raster.c at 96x96 with the goal pose drawn under the block. State (agent x, y, block x, y,
// angle); action: the pusher's target point in table units [0, 512]^2. Success: the block within 20 units and pi/9
// of the goal pose (256, 256, pi/4), as in DINO-WM's Push-T evaluations. Deterministic: a fresh Chipmunk space per
// episode, stepped with fixed dt; random draws from rng_stream(seed, RNG_SYNTH, PUSHT_STREAM_*, episode).
#pragma once
#include <stdint.h>

#define PUSHT_TABLE 512.0     // table side, units
#define PUSHT_IMAGE 96        // rendered side, pixels
#define PUSHT_SIM_HZ 100
#define PUSHT_CONTROL_HZ 10.0
#define PUSHT_SUCCESS_DIST 20.0
#define PUSHT_SUCCESS_ANGLE (3.14159265358979323846 / 9)
#define PUSHT_STEP_LIMIT 200  // actions per planning episode (the reference's 300 at 10 Hz is 30 s; DINO-WM plans shorter)

typedef struct {
    double agent_x, agent_y, block_x, block_y, block_angle;
} PushtState;

typedef struct PushtSim PushtSim;  // a Chipmunk space with the pusher, the block and the walls

typedef enum { PUSHT_POLICY_RANDOM = 0, PUSHT_POLICY_NOISY_EXPERT = 1 } PushtPolicy;
// Stream steps per purpose; the policy's draws of step t use PUSHT_STREAM_POLICY + 16 t (never another purpose's).
enum { PUSHT_STREAM_START = 0, PUSHT_STREAM_POLICY = 1, PUSHT_STREAM_PLAN_START = 2, PUSHT_STREAM_TRAJ = 3 };

extern const PushtState PUSHT_GOAL;

// A fresh simulation at state s (pusher at rest), after one settling step as the reference's set_state does.
PushtSim *pusht_create(const PushtState *s);
void pusht_free(PushtSim *sim);
void pusht_get_state(const PushtSim *sim, PushtState *s);
// The pusher's velocity (units/s): with the state, all a planner needs to restart the simulation where it is (the
// block keeps no velocity between physics steps: space damping 0).
void pusht_get_agent_velocity(const PushtSim *sim, double v[2]);
// A fresh simulation at state s with the pusher moving at v, without the settling step: a planner's copy of a
// running episode (pusht_step on it matches the episode's own step up to Chipmunk's cached contact impulses).
PushtSim *pusht_restore(const PushtState *s, const double v[2]);
// The pusher's PD law alone over one control step: the kinematic pusher ignores contacts, so this is exactly where
// pusht_step takes it. p, v (2 each) in/out.
void pusht_agent_step(double p[2], double v[2], const double target[2]);
// One control step (1/10 s): 10 physics steps of 1/100 s, each setting the pusher's velocity by the PD law
// v += (100 (target - p) - 20 v) dt. target is clipped to the table.
void pusht_step(PushtSim *sim, const double target[2]);
// Draws table, goal T, block and pusher into rgb (96, 96, 3).
void pusht_render(const PushtState *s, uint8_t *rgb);
// The reference's initial distribution: agent uniform in [50, 450]^2, block in [100, 400]^2, angle in [-pi, pi].
void pusht_episode(uint64_t seed, int64_t episode, PushtState *start);
// A planning episode's start: the same distribution from its own stream, redrawn while it is already a success.
void pusht_plan_episode(uint64_t seed, int64_t episode, PushtState *start);
// The trajectory protocol (DINO-WM's Push-T evaluation, docs/world-models.md): a start on a noisy-expert trajectory
// and the goal the full state goal_steps control steps later on it.
#define PUSHT_TRAJ_MAX_OFFSET 100  // the start: the expert's state after a uniform 0..100 steps from a uniform start
#define PUSHT_TRAJ_STEP_LIMIT 100  // control steps per episode: 4 x DINO-WM's 25-step MPC chunk (docs/world-models.md)
typedef struct {
    PushtState start, goal;
    double velocity[2];  // the pusher's at the start: the episode begins with pusht_restore(&start, velocity)
} PushtTrajEpisode;
// Episode e of the trajectory protocol, from its own stream rng_stream(seed, RNG_SYNTH, PUSHT_STREAM_TRAJ, e): a
// uniform start, the noisy expert for a uniform offset of 0..PUSHT_TRAJ_MAX_OFFSET steps (the start), then
// goal_steps more on pusht_restore(start, velocity) (the goal). Redrawn while the block barely moved (the start
// already succeeds against the goal: block within 20 units and pi/9) or the start's or goal's T reaches off the
// 512 x 512 table (forced through a wall). actions (optional) [goal_steps, 2]
// receives the expert's targets from the start: replaying them on pusht_restore(start, velocity) reaches the goal.
void pusht_traj_episode(uint64_t seed, int64_t episode, int goal_steps, PushtTrajEpisode *out, double *actions);
// Block position and angle errors to goal (angle wrapped to [0, pi]).
void pusht_goal_error(const PushtState *s, const PushtState *goal, double *dist, double *angle);
int pusht_success(const PushtState *s, const PushtState *goal);
// The policy's target point at step t: random, the pusher's position plus a uniform offset of up to 60 units per
// axis; noisy-expert, a point behind the block on the line from the goal through the block, plus Gaussian noise.
void pusht_policy(PushtPolicy policy, uint64_t seed, int64_t episode, int t, const PushtState *s, double target[2]);
// A data clip of `frames` frames (see tworooms_clip): rgb (T, 96, 96, 3), states (T, 5), actions (T, 2).
void pusht_clip(PushtPolicy policy, uint64_t seed, int64_t episode, int frames, uint8_t *rgb, float *states,
                float *actions);
