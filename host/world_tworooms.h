// world_tworooms.h: the two-rooms world. A point agent (drawn as a small disc) in a square arena split by a vertical
// wall with one door; an action is a displacement (dx, dy), each component clipped to the action bound; the agent
// slides along walls it runs into. State (x, y) in pixels (the balls world's convention: x right, y down, pixel
// (i, j) centred at (j + 0.5, i + 0.5)). Every number of the task is in TwoRoomsSpec and docs/world-models.md, fixed
// before any training. Every random draw is rng_stream(seed, RNG_SYNTH, TWOROOMS_STREAM_*, episode): a pure function
// of (seed, episode, purpose).
#pragma once
#include <stdint.h>

typedef struct {
    int size;                    // arena and image side, pixels (64)
    double wall_x0, wall_x1;     // the wall's span in x (a full-height band)
    double door_y0, door_y1;     // the door's span in y (a gap in the wall)
    double agent_radius;         // pixels; the agent's centre keeps this far from walls
    double action_bound;         // |dx|, |dy| <= this per step, pixels
    double success_radius;       // success: the agent's centre within this of the goal's, pixels
    int step_limit;              // actions per planning episode
} TwoRoomsSpec;

extern const TwoRoomsSpec TWOROOMS;

typedef struct {
    double x, y;
} TwoRoomsState;

typedef enum { TWOROOMS_POLICY_RANDOM = 0, TWOROOMS_POLICY_NOISY_EXPERT = 1 } TwoRoomsPolicy;

// Stream steps (the `step` of rng_stream) per purpose, so draws for different purposes never overlap.
enum { TWOROOMS_STREAM_START = 0, TWOROOMS_STREAM_GOAL = 1, TWOROOMS_STREAM_POLICY = 2, TWOROOMS_STREAM_DATA_START = 3 };
// (the policy stream of step t is TWOROOMS_STREAM_POLICY + 16 t: never another purpose's step)

// Whether the agent's centre may be at (x, y): inside the arena by the radius, clear of the wall except in the door.
int tworooms_free(double x, double y);
// 0 left room (x below the wall), 1 right room, -1 in the doorway.
int tworooms_room(double x);
// One step: clips a to the bound, then moves in sub-steps of at most 0.25 px, sliding along walls (a sub-step that
// would enter a wall keeps whichever axis of it stays free).
void tworooms_step(TwoRoomsState *s, const double a[2]);
// Draws the arena, the agent's lamp (the floor lit around it, fading out at 48 px), its crosshair (dim lines through
// it across the arena), the wall and the agent into rgb (size, size, 3).
void tworooms_render(const TwoRoomsState *s, uint8_t *rgb);
// A planning episode: the start in a room chosen at random, the goal in the other one, both uniform over the room.
void tworooms_episode(uint64_t seed, int64_t episode, TwoRoomsState *start, TwoRoomsState *goal);
int tworooms_success(const TwoRoomsState *s, const TwoRoomsState *goal);
// The policy's action at step t of a data episode: random, uniform in the bound; noisy-expert, towards the door
// then the goal plus Gaussian noise of half the bound, clipped.
void tworooms_policy(TwoRoomsPolicy policy, uint64_t seed, int64_t episode, int t, const TwoRoomsState *s,
                     const TwoRoomsState *goal, double a[2]);
// A data clip of `frames` frames: frame 0 at a uniform free start (random) or an episode start (noisy-expert);
// actions[t] moves frame t to t + 1 (the last one is drawn but leads nowhere). rgb (T, size, size, 3),
// states (T, 2) and actions (T, 2), either may be NULL.
void tworooms_clip(TwoRoomsPolicy policy, uint64_t seed, int64_t episode, int frames, uint8_t *rgb, float *states,
                   float *actions);
// The length of the shortest path (8-connected moves between free pixel centres, so through the door) from goal to
// every pixel centre: dist [size * size] row-major, HUGE_VAL where the centre is not free (tworooms_free).
void tworooms_geodesic(const TwoRoomsState *goal, double *dist);
