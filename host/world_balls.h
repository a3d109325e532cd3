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
    unsigned rules;        // BALLS_GHOSTS | BALLS_NO_WALLS: laws switched off (impossible twins); 0 = lawful
} BallsState;

// Laws an impossible twin may break (BallsState.rules).
enum { BALLS_GHOSTS = 1u, BALLS_NO_WALLS = 2u };  // balls pass through each other; through the walls

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

// ---------------------------------------------------------------------------------------------------------------
// Impossible twins (jepa eval surprise): the same start as the lawful clip; from violation_frame on, one law breaks.
typedef enum {
    BALLS_TELEPORT = 0,  // a ball jumps to a far free place, keeping its velocity
    BALLS_VANISH,        // a ball disappears
    BALLS_PASS_BALL,     // balls pass through each other instead of colliding
    BALLS_PASS_WALL,     // balls pass through the walls and leave the box
    BALLS_COLOUR,        // a ball changes colour
    BALLS_VIOLATION_COUNT
} BallsViolation;
extern const char *const BALLS_VIOLATION_NAMES[BALLS_VIOLATION_COUNT];  // "teleport", "vanish", ...

// Renders the lawful clip into possible and its impossible twin into impossible (frames, H, W, 3 each), frame t
// after t * frame_step physics frames. The violation's own draws (which ball, where) come from
// rng_stream(seed, RNG_SYNTH, 1 + draw, sample_index), apart from the start's. Returns the first frame at which the
// two clips differ, or -1 when they never do (a pass-through with no meeting, say: draw another sample).
int balls_twin_clips(const BallsWorldConfig *cfg, uint64_t seed, int64_t sample_index, int frames, int frame_step,
                     BallsViolation v, int violation_frame, uint64_t draw, uint8_t *possible, uint8_t *impossible);
