// world_balls.c: see world_balls.h.
#include "world_balls.h"

#include <math.h>
#include <string.h>

#include "common.h"
#include "rng.h"

#define PLACE_TRIES 200      // rejection tries per ball before the grid fallback
#define MAX_COLOURS 256
#define RELAX_PASSES 2      // position-only contact passes per substep

const uint8_t BALLS_BACKGROUND[3] = {24, 24, 24};

// ---------------------------------------------------------------------------------------------------------------
// Config and palette

void balls_check_config(const BallsWorldConfig *cfg) {
    if (cfg->num_balls < 1 || cfg->num_balls > BALLS_MAX)
        die_input("balls world: %d balls, expected 1..%d ---> HINT: lower data.synth_balls", cfg->num_balls,
                  BALLS_MAX);
    if (cfg->colours < 1 || cfg->colours > MAX_COLOURS)
        die_input("balls world: %d colours, expected 1..%d", cfg->colours, MAX_COLOURS);
    if (!(cfg->radius[0] > 0 && cfg->radius[0] <= cfg->radius[1]))
        die_input("balls world: radius range [%g, %g] must be positive and ordered", cfg->radius[0],
                  cfg->radius[1]);
    if (!(cfg->speed[0] >= 0 && cfg->speed[0] <= cfg->speed[1]))
        die_input("balls world: speed range [%g, %g] must be non-negative and ordered", cfg->speed[0],
                  cfg->speed[1]);
    const int side = cfg->height < cfg->width ? cfg->height : cfg->width;
    if (2 * cfg->radius[1] >= side)
        die_input("balls world: ball diameter %g does not fit a %dx%d box ---> HINT: raise data.crop_size",
                  2 * cfg->radius[1], cfg->height, cfg->width);
}

// Evenly spaced hues at full saturation and value: maximally distinct, bright against the dark background.
void balls_palette(int colours, int idx, uint8_t rgb[3]) {
    const double h6 = 6.0 * (double)idx / (double)colours;
    const int sector = (int)h6 % 6;
    const double f = h6 - floor(h6), q = 1.0 - f;
    const double table[6][3] = {{1, f, 0}, {q, 1, 0}, {0, 1, f}, {0, q, 1}, {f, 0, 1}, {1, 0, q}};
    for (int c = 0; c < 3; c++) rgb[c] = (uint8_t)(255.0 * table[sector][c] + 0.5);
}

// ---------------------------------------------------------------------------------------------------------------
// Initial state

static void draw_motion(const BallsWorldConfig *cfg, Rng *rng, BallsState *s) {
    for (int i = 0; i < s->n; i++) {
        s->r[i] = rng_uniform_range(rng, cfg->radius[0], cfg->radius[1]);
        const double speed = rng_uniform_range(rng, cfg->speed[0], cfg->speed[1]);
        const double angle = rng_uniform_range(rng, 0.0, 2.0 * M_PI);
        s->vx[i] = speed * cos(angle);
        s->vy[i] = speed * sin(angle);
    }
}

// A partial shuffle of the palette, so balls have distinct colours while there are enough of them.
static void draw_colours(const BallsWorldConfig *cfg, Rng *rng, BallsState *s) {
    int perm[MAX_COLOURS];
    for (int c = 0; c < cfg->colours; c++) perm[c] = c;
    const int shuffled = s->n < cfg->colours ? s->n : cfg->colours;
    for (int c = 0; c < shuffled; c++) {
        const int pick = (int)rng_randint(rng, c, cfg->colours);
        const int tmp = perm[c];
        perm[c] = perm[pick];
        perm[pick] = tmp;
    }
    for (int i = 0; i < s->n; i++) s->colour[i] = perm[i % cfg->colours];
}

static int overlaps_earlier(const BallsState *s, int i) {
    for (int j = 0; j < i; j++) {
        const double dx = s->x[i] - s->x[j], dy = s->y[i] - s->y[j], rr = s->r[i] + s->r[j];
        if (dx * dx + dy * dy < rr * rr) return 1;
    }
    return 0;
}

// Returns 0 when some ball found no free place.
static int place_by_rejection(const BallsWorldConfig *cfg, Rng *rng, BallsState *s) {
    for (int i = 0; i < s->n; i++) {
        int placed = 0;
        for (int t = 0; t < PLACE_TRIES && !placed; t++) {
            s->x[i] = rng_uniform_range(rng, s->r[i], cfg->width - s->r[i]);
            s->y[i] = rng_uniform_range(rng, s->r[i], cfg->height - s->r[i]);
            placed = !overlaps_earlier(s, i);
        }
        if (!placed) return 0;
    }
    return 1;
}

// One ball per cell of the grid with the largest square cells; the ball is jittered within its cell, and shrunk
// only when the cell is narrower than it. Cells are disjoint, so this always succeeds.
static void place_on_grid(const BallsWorldConfig *cfg, Rng *rng, BallsState *s) {
    int cols = 1;
    double best = 0;
    for (int c = 1; c <= s->n; c++) {
        const int rows = (s->n + c - 1) / c;
        const double cell = fmin((double)cfg->width / c, (double)cfg->height / rows);
        if (cell > best) best = cell, cols = c;
    }
    const int rows = (s->n + cols - 1) / cols;
    const double cw = (double)cfg->width / cols, ch = (double)cfg->height / rows;
    for (int i = 0; i < s->n; i++) {
        s->r[i] = fmin(s->r[i], 0.49 * fmin(cw, ch));
        const double sx = 0.5 * cw - s->r[i], sy = 0.5 * ch - s->r[i];
        s->x[i] = (i % cols + 0.5) * cw + rng_uniform_range(rng, -sx, sx);
        s->y[i] = (i / cols + 0.5) * ch + rng_uniform_range(rng, -sy, sy);
    }
}

// Fixed-count draws (motion, colours) come before positions, whose draw count varies with rejections.
void balls_init(const BallsWorldConfig *cfg, uint64_t seed, int64_t sample_index, BallsState *s) {
    balls_check_config(cfg);
    memset(s, 0, sizeof *s);
    s->n = cfg->num_balls;
    Rng rng = rng_stream(seed, RNG_SYNTH, 0, (uint64_t)sample_index);
    draw_motion(cfg, &rng, s);
    draw_colours(cfg, &rng, s);
    if (!place_by_rejection(cfg, &rng, s)) place_on_grid(cfg, &rng, s);
    balls_set_substeps(s);
}

// ---------------------------------------------------------------------------------------------------------------
// Physics

// Any one ball carries at most all the kinetic energy: |v_i| <= sqrt(sum m v^2 / m_min).
void balls_set_substeps(BallsState *s) {
    double m_v2 = 0, r_min = INFINITY;
    for (int i = 0; i < s->n; i++) {
        m_v2 += s->r[i] * s->r[i] * (s->vx[i] * s->vx[i] + s->vy[i] * s->vy[i]);
        r_min = fmin(r_min, s->r[i]);
    }
    const double v_bound = sqrt(m_v2) / r_min;
    const double steps = ceil(v_bound / (0.25 * r_min));
    s->substeps = steps < 1 ? 1 : steps > BALLS_MAX_SUBSTEPS ? BALLS_MAX_SUBSTEPS : (int)steps;
}

static void move_balls(BallsState *s, double h) {
    for (int i = 0; i < s->n; i++) {
        s->x[i] += s->vx[i] * h;
        s->y[i] += s->vy[i] * h;
    }
}

// Moves an overlapping pair apart along the normal, split by mass so the centre of mass stays. Returns the
// overlap removed (0 when they do not touch) and the unit normal from i to j.
static double separate_pair(BallsState *s, int i, int j, double *nx, double *ny) {
    const double dx = s->x[j] - s->x[i], dy = s->y[j] - s->y[i], rr = s->r[i] + s->r[j];
    const double d2 = dx * dx + dy * dy;
    if (d2 >= rr * rr) return 0;
    const double d = sqrt(d2);
    *nx = d > 0 ? dx / d : 1.0;  // coincident centres: any fixed normal
    *ny = d > 0 ? dy / d : 0.0;
    const double mi = s->r[i] * s->r[i], mj = s->r[j] * s->r[j], m = mi + mj;
    const double overlap = rr - d;
    s->x[i] -= *nx * overlap * mj / m;
    s->y[i] -= *ny * overlap * mj / m;
    s->x[j] += *nx * overlap * mi / m;
    s->y[j] += *ny * overlap * mi / m;
    return overlap;
}

// A touching pair that approaches exchanges momentum along the normal by the elastic formula, which conserves
// momentum and kinetic energy exactly (up to rounding).
static void collide_pair(BallsState *s, int i, int j) {
    double nx, ny;
    if (separate_pair(s, i, j, &nx, &ny) == 0) return;
    const double v_rel = (s->vx[j] - s->vx[i]) * nx + (s->vy[j] - s->vy[i]) * ny;
    if (v_rel >= 0) return;  // already separating
    const double mi = s->r[i] * s->r[i], mj = s->r[j] * s->r[j], m = mi + mj;
    const double ki = 2.0 * mj / m * v_rel, kj = 2.0 * mi / m * v_rel;
    s->vx[i] += ki * nx;
    s->vy[i] += ki * ny;
    s->vx[j] -= kj * nx;
    s->vy[j] -= kj * ny;
}

static void collide_balls(BallsState *s) {
    if (s->rules & BALLS_GHOSTS) return;
    for (int i = 0; i < s->n; i++)
        for (int j = i + 1; j < s->n; j++) collide_pair(s, i, j);
}

// Mirror the part of the move past the wall and point the velocity inward; the clamp only guards against a
// contact push deeper than the box allows.
static void bounce_axis(double *p, double *v, double r, double size) {
    if (*p < r) {
        *p = fmin(2.0 * r - *p, size - r);
        *v = fabs(*v);
    } else if (*p > size - r) {
        *p = fmax(2.0 * (size - r) - *p, r);
        *v = -fabs(*v);
    }
}

static void bounce_walls(const BallsWorldConfig *cfg, BallsState *s) {
    if (s->rules & BALLS_NO_WALLS) return;
    for (int i = 0; i < s->n; i++) {
        bounce_axis(&s->x[i], &s->vx[i], s->r[i], cfg->width);
        bounce_axis(&s->y[i], &s->vy[i], s->r[i], cfg->height);
    }
}

// Positions only: a contact push into a wall is not a bounce.
static void clamp_into_box(const BallsWorldConfig *cfg, BallsState *s) {
    if (s->rules & BALLS_NO_WALLS) return;
    for (int i = 0; i < s->n; i++) {
        s->x[i] = fmin(fmax(s->x[i], s->r[i]), cfg->width - s->r[i]);
        s->y[i] = fmin(fmax(s->y[i], s->r[i]), cfg->height - s->r[i]);
    }
}

// A ball pinned between a wall and another ball, or in a cluster, keeps some overlap after one pass; a few
// position-only passes (velocities untouched, so energy stays exact) shrink it geometrically.
static void relax_positions(const BallsWorldConfig *cfg, BallsState *s) {
    for (int pass = 0; pass < RELAX_PASSES; pass++) {
        for (int i = 0; i < s->n && !(s->rules & BALLS_GHOSTS); i++)
            for (int j = i + 1; j < s->n; j++) {
                double nx, ny;
                separate_pair(s, i, j, &nx, &ny);
            }
        clamp_into_box(cfg, s);
    }
}

// Walls last, so every ball ends a substep inside the box.
void balls_substep(const BallsWorldConfig *cfg, BallsState *s, double h) {
    move_balls(s, h);
    collide_balls(s);
    bounce_walls(cfg, s);
    relax_positions(cfg, s);
}

void balls_step(const BallsWorldConfig *cfg, BallsState *s, double dt) {
    JEPA_ASSERT(s->substeps >= 1);
    int n = (int)ceil(dt * s->substeps);
    if (n < 1) n = 1;
    const double h = dt / n;
    for (int k = 0; k < n; k++) balls_substep(cfg, s, h);
}

double balls_kinetic_energy(const BallsState *s) {
    double e = 0;
    for (int i = 0; i < s->n; i++) e += 0.5 * s->r[i] * s->r[i] * (s->vx[i] * s->vx[i] + s->vy[i] * s->vy[i]);
    return e;
}

void balls_momentum(const BallsState *s, double p[2]) {
    p[0] = p[1] = 0;
    for (int i = 0; i < s->n; i++) {
        p[0] += s->r[i] * s->r[i] * s->vx[i];
        p[1] += s->r[i] * s->r[i] * s->vy[i];
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Rendering

// Coverage from the distance of the pixel centre to the rim: 1 inside r - 0.5, 0 outside r + 0.5, linear
// between (a one-pixel anti-aliased edge), blended over what is already drawn.
static void draw_disc(const BallsWorldConfig *cfg, double x, double y, double r, const uint8_t colour[3],
                      uint8_t *rgb) {
    const int j0 = (int)fmax(0, floor(x - r - 1)), j1 = (int)fmin(cfg->width - 1, ceil(x + r + 1));
    const int i0 = (int)fmax(0, floor(y - r - 1)), i1 = (int)fmin(cfg->height - 1, ceil(y + r + 1));
    for (int i = i0; i <= i1; i++) {
        for (int j = j0; j <= j1; j++) {
            const double dx = j + 0.5 - x, dy = i + 0.5 - y;
            const double a = fmin(1.0, r + 0.5 - sqrt(dx * dx + dy * dy));
            if (a <= 0) continue;
            uint8_t *p = rgb + ((size_t)i * cfg->width + j) * 3;
            for (int c = 0; c < 3; c++) p[c] = (uint8_t)(p[c] + a * (colour[c] - p[c]) + 0.5);
        }
    }
}

void balls_render(const BallsWorldConfig *cfg, const BallsState *s, uint8_t *rgb) {
    const size_t pixels = (size_t)cfg->height * cfg->width;
    for (size_t p = 0; p < pixels; p++) memcpy(rgb + 3 * p, BALLS_BACKGROUND, 3);
    for (int i = 0; i < s->n; i++) {
        uint8_t colour[3];
        balls_palette(cfg->colours, s->colour[i], colour);
        draw_disc(cfg, s->x[i], s->y[i], s->r[i], colour, rgb);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Clips

static void write_state(const BallsState *s, float *out) {
    for (int i = 0; i < s->n; i++) {
        out[4 * i + 0] = (float)s->x[i];
        out[4 * i + 1] = (float)s->y[i];
        out[4 * i + 2] = (float)s->vx[i];
        out[4 * i + 3] = (float)s->vy[i];
    }
}

void balls_clip(const BallsWorldConfig *cfg, uint64_t seed, int64_t sample_index, int frames, int frame_step,
                uint8_t *rgb, float *states) {
    JEPA_ASSERT(frames >= 1 && frame_step >= 1);
    BallsState s;
    balls_init(cfg, seed, sample_index, &s);
    const size_t frame_bytes = (size_t)cfg->height * cfg->width * 3;
    for (int t = 0; t < frames; t++) {
        if (states) write_state(&s, states + (size_t)t * s.n * 4);
        balls_render(cfg, &s, rgb + (size_t)t * frame_bytes);
        if (t + 1 < frames)
            for (int k = 0; k < frame_step; k++) balls_step(cfg, &s, 1.0);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Impossible twins

const char *const BALLS_VIOLATION_NAMES[BALLS_VIOLATION_COUNT] = {"teleport", "vanish", "pass_ball", "pass_wall",
                                                                  "colour"};

// Ball i to a free place at least a third of the box away; the mirrored place when none is found.
static void teleport_ball(const BallsWorldConfig *cfg, Rng *rng, BallsState *s, int i) {
    const double x0 = s->x[i], y0 = s->y[i], far = (cfg->width < cfg->height ? cfg->width : cfg->height) / 3.0;
    for (int t = 0; t < PLACE_TRIES; t++) {
        s->x[i] = rng_uniform_range(rng, s->r[i], cfg->width - s->r[i]);
        s->y[i] = rng_uniform_range(rng, s->r[i], cfg->height - s->r[i]);
        int free_place = hypot(s->x[i] - x0, s->y[i] - y0) >= far;
        for (int j = 0; j < s->n && free_place; j++)
            if (j != i && hypot(s->x[i] - s->x[j], s->y[i] - s->y[j]) < s->r[i] + s->r[j]) free_place = 0;
        if (free_place) return;
    }
    s->x[i] = cfg->width - x0;
    s->y[i] = cfg->height - y0;
}

// A palette colour no other ball wears (any other colour when the palette is used up).
static void recolour_ball(const BallsWorldConfig *cfg, Rng *rng, BallsState *s, int i) {
    if (cfg->colours < 2) return;
    for (int t = 0; t < PLACE_TRIES; t++) {
        const int c = (int)rng_randint(rng, 0, cfg->colours);
        int used = c == s->colour[i];
        for (int j = 0; j < s->n && !used && t < PLACE_TRIES / 2; j++) used = j != i && s->colour[j] == c;
        if (!used) {
            s->colour[i] = c;
            return;
        }
    }
    s->colour[i] = (s->colour[i] + 1) % cfg->colours;
}

static void break_law(const BallsWorldConfig *cfg, Rng *rng, BallsState *s, BallsViolation v) {
    const int i = (int)rng_randint(rng, 0, s->n);
    switch (v) {
    case BALLS_TELEPORT: teleport_ball(cfg, rng, s, i); break;
    case BALLS_VANISH:  // the last ball takes its slot
        s->x[i] = s->x[s->n - 1], s->y[i] = s->y[s->n - 1], s->vx[i] = s->vx[s->n - 1], s->vy[i] = s->vy[s->n - 1];
        s->r[i] = s->r[s->n - 1], s->colour[i] = s->colour[s->n - 1];
        s->n--;
        break;
    case BALLS_PASS_BALL: s->rules |= BALLS_GHOSTS; break;
    case BALLS_PASS_WALL: s->rules |= BALLS_NO_WALLS; break;
    case BALLS_COLOUR: recolour_ball(cfg, rng, s, i); break;
    default: JEPA_ASSERT(0);
    }
}

int balls_twin_clips(const BallsWorldConfig *cfg, uint64_t seed, int64_t sample_index, int frames, int frame_step,
                     BallsViolation v, int violation_frame, uint64_t draw, uint8_t *possible, uint8_t *impossible) {
    JEPA_ASSERT(frames >= 1 && frame_step >= 1 && v >= 0 && v < BALLS_VIOLATION_COUNT);
    BallsState lawful, twin;
    balls_init(cfg, seed, sample_index, &lawful);
    twin = lawful;
    Rng rng = rng_stream(seed, RNG_SYNTH, 1 + draw, (uint64_t)sample_index);
    const size_t frame_bytes = (size_t)cfg->height * cfg->width * 3;
    int first_diff = -1;
    for (int t = 0; t < frames; t++) {
        if (t == violation_frame) break_law(cfg, &rng, &twin, v);
        balls_render(cfg, &lawful, possible + (size_t)t * frame_bytes);
        balls_render(cfg, &twin, impossible + (size_t)t * frame_bytes);
        if (first_diff < 0 && memcmp(possible + (size_t)t * frame_bytes, impossible + (size_t)t * frame_bytes,
                                     frame_bytes) != 0)
            first_diff = t;
        if (t + 1 < frames)
            for (int k = 0; k < frame_step; k++) balls_step(cfg, &lawful, 1.0), balls_step(cfg, &twin, 1.0);
    }
    return first_diff;
}
