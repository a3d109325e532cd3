// world_tworooms.c: the two-rooms world (world_tworooms.h), drawn with raster.c in the balls world's colours.
#include "world_tworooms.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#include "common.h"
#include "raster.h"
#include "rng.h"
#include "world_balls.h"

// The task, fixed before training (docs/world-models.md "tworooms").
const TwoRoomsSpec TWOROOMS = {.size = 64, .wall_x0 = 30, .wall_x1 = 34, .door_y0 = 22, .door_y1 = 42,
                               .agent_radius = 3, .action_bound = 6, .success_radius = 4, .step_limit = 60};

static const uint8_t WALL_COLOUR[3] = {200, 200, 200};

int tworooms_free(double x, double y) {
    const TwoRoomsSpec *w = &TWOROOMS;
    const double r = w->agent_radius;
    if (x < r || y < r || x > w->size - r || y > w->size - r) return 0;
    const int beside_wall = x > w->wall_x0 - r && x < w->wall_x1 + r;
    const int in_door = y > w->door_y0 + r && y < w->door_y1 - r;
    return !beside_wall || in_door;
}

int tworooms_room(double x) {
    if (x <= TWOROOMS.wall_x0 - TWOROOMS.agent_radius) return 0;
    if (x >= TWOROOMS.wall_x1 + TWOROOMS.agent_radius) return 1;
    return -1;
}

static double clip(double v, double bound) { return v < -bound ? -bound : v > bound ? bound : v; }

void tworooms_step(TwoRoomsState *s, const double a[2]) {
    const double dx = clip(a[0], TWOROOMS.action_bound), dy = clip(a[1], TWOROOMS.action_bound);
    const int n = (int)ceil(fmax(fabs(dx), fabs(dy)) / 0.25);
    for (int k = 0; k < n; k++) {
        const double x = s->x + dx / n, y = s->y + dy / n;
        if (tworooms_free(x, y)) s->x = x, s->y = y;
        else if (tworooms_free(x, s->y)) s->x = x;
        else if (tworooms_free(s->x, y)) s->y = y;
    }
}

// Whether the agent's light reaches (x, y): the segment from the agent crosses each side of the wall it crosses
// inside the door's span (the wall casts a shadow; light reaches the other room only through the door).
static int lamp_reaches(void *agent, double x, double y) {
    const TwoRoomsState *a = agent;
    const double sides[2] = {TWOROOMS.wall_x0, TWOROOMS.wall_x1};
    for (int k = 0; k < 2; k++) {
        const double xb = sides[k];
        if ((a->x - xb) * (x - xb) >= 0) continue;  // not across this side
        const double yb = a->y + (xb - a->x) / (x - a->x) * (y - a->y);
        if (yb < TWOROOMS.door_y0 || yb > TWOROOMS.door_y1) return 0;
    }
    return 1;
}

void tworooms_render(const TwoRoomsState *s, uint8_t *rgb) {
    const TwoRoomsSpec *w = &TWOROOMS;
    Image im = {w->size, w->size, rgb};
    uint8_t agent[3];
    balls_palette(6, 0, agent);
    raster_clear(&im, BALLS_BACKGROUND);
    // The agent's lamp: the floor lit around it, fading to nothing at 96 px (beyond the arena's diagonal), its light
    // stopped by the wall (lamp_reaches). Every patch then changes smoothly with the agent's position, and seen from
    // the other room the light comes only through the door, so the encoder's L1 energy has a slope everywhere and
    // leads round the wall rather than into it (docs/world-models.md "The picture").
    raster_glow(&im, s->x, s->y, 96, 0.5, agent, lamp_reaches, (void *)s);
    // The agent's crosshair: a dim line across the arena through its centre in x and in y, under the walls; the row
    // line stops at the wall unless it runs through the door. With it whole rows and columns of patches move with
    // the agent (docs/world-models.md "The picture").
    uint8_t dim[3];
    for (int c = 0; c < 3; c++) dim[c] = (uint8_t)(BALLS_BACKGROUND[c] + 0.45 * (agent[c] - BALLS_BACKGROUND[c]));
    const int through_door = s->y >= w->door_y0 && s->y <= w->door_y1, left = s->x < w->wall_x0;
    raster_rect(&im, through_door || left ? 0 : w->wall_x1, s->y - 0.75, through_door || !left ? w->size : w->wall_x0,
                s->y + 0.75, dim);
    raster_rect(&im, s->x - 0.75, 0, s->x + 0.75, w->size, dim);
    raster_rect(&im, w->wall_x0, 0, w->wall_x1, w->door_y0, WALL_COLOUR);
    raster_rect(&im, w->wall_x0, w->door_y1, w->wall_x1, w->size, WALL_COLOUR);
    raster_disc(&im, s->x, s->y, w->agent_radius, agent);
}

// Uniform over a room's free area (room 0 left, 1 right, -1 anywhere free), by rejection.
static TwoRoomsState draw_in_room(Rng *rng, int room) {
    const TwoRoomsSpec *w = &TWOROOMS;
    const double r = w->agent_radius;
    const double lo = room == 1 ? w->wall_x1 + r : r, hi = room == 0 ? w->wall_x0 - r : w->size - r;
    for (;;) {
        const TwoRoomsState s = {rng_uniform_range(rng, lo, hi), rng_uniform_range(rng, r, w->size - r)};
        if (tworooms_free(s.x, s.y)) return s;
    }
}

void tworooms_episode(uint64_t seed, int64_t episode, TwoRoomsState *start, TwoRoomsState *goal) {
    Rng rs = rng_stream(seed, RNG_SYNTH, TWOROOMS_STREAM_START, (uint64_t)episode);
    const int room = (int)(rng_u32(&rs) & 1);
    *start = draw_in_room(&rs, room);
    Rng rg = rng_stream(seed, RNG_SYNTH, TWOROOMS_STREAM_GOAL, (uint64_t)episode);
    *goal = draw_in_room(&rg, 1 - room);
}

int tworooms_success(const TwoRoomsState *s, const TwoRoomsState *goal) {
    return hypot(s->x - goal->x, s->y - goal->y) <= TWOROOMS.success_radius;
}

// The expert's next waypoint: the door's centre while in the other room, else the goal.
static void expert_target(const TwoRoomsState *s, const TwoRoomsState *goal, double t[2]) {
    const int here = tworooms_room(s->x), there = tworooms_room(goal->x);
    const double door_x = 0.5 * (TWOROOMS.wall_x0 + TWOROOMS.wall_x1), door_y = 0.5 * (TWOROOMS.door_y0 + TWOROOMS.door_y1);
    if (here != there && here != -1) t[0] = door_x, t[1] = door_y;
    else if (here == -1 && fabs(s->y - door_y) > 0.5 * (TWOROOMS.door_y1 - TWOROOMS.door_y0) - TWOROOMS.agent_radius - 1)
        t[0] = s->x, t[1] = door_y;  // straighten up inside the doorway before leaving it
    else t[0] = goal->x, t[1] = goal->y;
}

void tworooms_policy(TwoRoomsPolicy policy, uint64_t seed, int64_t episode, int t, const TwoRoomsState *s,
                     const TwoRoomsState *goal, double a[2]) {
    const double A = TWOROOMS.action_bound;
    // Two draws per step at a fixed place in the episode's policy stream: step t uses draws 2t and 2t+1.
    Rng r = rng_stream(seed, RNG_SYNTH, TWOROOMS_STREAM_POLICY + 16 * (uint64_t)t, (uint64_t)episode);
    if (policy == TWOROOMS_POLICY_RANDOM) {
        a[0] = rng_uniform_range(&r, -A, A);
        a[1] = rng_uniform_range(&r, -A, A);
        return;
    }
    double target[2];
    expert_target(s, goal, target);
    a[0] = clip(clip(target[0] - s->x, A) + 0.5 * A * rng_normal(&r), A);
    a[1] = clip(clip(target[1] - s->y, A) + 0.5 * A * rng_normal(&r), A);
}

void tworooms_clip(TwoRoomsPolicy policy, uint64_t seed, int64_t episode, int frames, uint8_t *rgb, float *states,
                   float *actions) {
    TwoRoomsState s, goal;
    tworooms_episode(seed, episode, &s, &goal);
    if (policy == TWOROOMS_POLICY_RANDOM) {
        Rng r = rng_stream(seed, RNG_SYNTH, TWOROOMS_STREAM_DATA_START, (uint64_t)episode);
        s = draw_in_room(&r, -1);  // anywhere free, the doorway included, so random data crosses the door too
    }
    const size_t frame_bytes = (size_t)TWOROOMS.size * TWOROOMS.size * 3;
    for (int t = 0; t < frames; t++) {
        double a[2];
        tworooms_policy(policy, seed, episode, t, &s, &goal, a);
        if (rgb) tworooms_render(&s, rgb + (size_t)t * frame_bytes);
        if (states) states[2 * t] = (float)s.x, states[2 * t + 1] = (float)s.y;
        if (actions) actions[2 * t] = (float)a[0], actions[2 * t + 1] = (float)a[1];
        tworooms_step(&s, a);
    }
}

// Dijkstra by plain selection: 4096 cells, fast enough for a diagnostic.
void tworooms_geodesic(const TwoRoomsState *goal, double *dist) {
    const int n = TWOROOMS.size, N = n * n;
    char *done = xcalloc((size_t)N, 1);
    for (int k = 0; k < N; k++) dist[k] = HUGE_VAL;
    const int gi = (int)goal->y, gj = (int)goal->x;
    dist[gi * n + gj] = hypot(gj + 0.5 - goal->x, gi + 0.5 - goal->y);
    for (;;) {
        int best = -1;
        for (int k = 0; k < N; k++)
            if (!done[k] && dist[k] < HUGE_VAL && (best < 0 || dist[k] < dist[best])) best = k;
        if (best < 0) break;
        done[best] = 1;
        const int i = best / n, j = best % n;
        for (int di = -1; di <= 1; di++)
            for (int dj = -1; dj <= 1; dj++) {
                const int a = i + di, b = j + dj;
                if ((!di && !dj) || a < 0 || b < 0 || a >= n || b >= n || !tworooms_free(b + 0.5, a + 0.5)) continue;
                const double d = dist[best] + hypot(di, dj);
                if (d < dist[a * n + b]) dist[a * n + b] = d;
            }
    }
    free(done);
}
