// world_balls.h: the bouncing-balls world, the synthetic video source. Three separate pieces so later worlds,
// actions and physics violations can reuse or replace any one of them:
//   state   (BallsState, balls_init)        where every ball is and how it moves,
//   physics (balls_step, balls_substep)     elastic ball-ball and wall collisions, energy conserving,
//   render  (balls_render)                  anti-aliased discs of palette colours on a dark background.
// Coordinates are pixels: x to the right in [0, width), y down in [0, height); pixel (i, j) has its centre at
// (j + 0.5, i + 0.5). Velocities are pixels per physics frame (dt = 1). Every random draw comes from
// rng_stream(seed, RNG_SYNTH, 0, sample_index), so a clip is a pure function of (seed, sample index).
#pragma once
#include <stdint.h>

#define BALLS_MAX 64           // state arrays are fixed so a state copies by value
#define BALLS_MAX_SUBSTEPS 256 // cap on physics substeps per frame (see balls_set_substeps)

typedef struct {
    int num_balls;
    double radius[2];  // pixels [lo, hi], drawn uniformly
    double speed[2];   // pixels per physics frame [lo, hi], drawn uniformly, direction uniform
    int colours;       // palette size: evenly spaced saturated hues
    int height, width; // box in pixels
} BallsWorldConfig;

typedef struct {
    int n;                 // balls in use
    double x[BALLS_MAX], y[BALLS_MAX];    // centres, pixels
    double vx[BALLS_MAX], vy[BALLS_MAX];  // pixels per physics frame
    double r[BALLS_MAX];                  // radius, pixels; mass is r^2 (equal density discs)
    int colour[BALLS_MAX];                // palette index in [0, colours)
    int substeps;          // physics substeps per frame (dt = 1); set by balls_set_substeps
} BallsState;

// Background colour (dark grey) shared by the renderer and tests.
extern const uint8_t BALLS_BACKGROUND[3];

// Palette colour idx of a palette of `colours` (hue idx/colours, full saturation and value).
void balls_palette(int colours, int idx, uint8_t rgb[3]);

// Dies with a hint when the world cannot be built (too many balls, balls wider than the box, bad ranges).
void balls_check_config(const BallsWorldConfig *cfg);

// Initial state of sample_index: radii, speeds, directions, colours (distinct while num_balls <= colours), then
// non-overlapping positions by rejection; if any ball finds no place in a bounded number of tries, every ball is
// placed in its own grid cell (radius shrunk to fit the cell if it must), which always succeeds.
void balls_init(const BallsWorldConfig *cfg, uint64_t seed, int64_t sample_index, BallsState *s);

// Substeps per frame from an energy bound on any ball's speed, so that no ball moves more than a quarter of the
// smallest radius per substep (no tunnelling). Energy is conserved, so the count holds for the whole clip; call
// again after changing velocities or radii by hand.
void balls_set_substeps(BallsState *s);

// Physics for dt frames in ceil(dt * substeps) equal substeps.
void balls_step(const BallsWorldConfig *cfg, BallsState *s, double dt);
// One substep of length h: move, collide touching pairs, bounce off walls, then position-only passes that
// separate pairs still overlapping (a ball pinned against a wall) without touching velocities.
void balls_substep(const BallsWorldConfig *cfg, BallsState *s, double h);

// Total kinetic energy sum(r^2 |v|^2) / 2 and momentum sum(r^2 v) (mass = r^2).
double balls_kinetic_energy(const BallsState *s);
void balls_momentum(const BallsState *s, double p[2]);

// Draws the state into rgb (H, W, 3), uint8, row-major.
void balls_render(const BallsWorldConfig *cfg, const BallsState *s, uint8_t *rgb);

// A clip: frame t shows the state after t * frame_step physics frames.
// rgb: (frames, H, W, 3); states: (frames, num_balls * 4) as x, y, vx, vy per ball, or NULL.
void balls_clip(const BallsWorldConfig *cfg, uint64_t seed, int64_t sample_index, int frames, int frame_step,
                uint8_t *rgb, float *states);
