// plan.c: CEM, model-predictive control in tworooms, and `jepa plan` (plan.h, docs/world-models.md).
#include "plan.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "model_ac.h"
#include "raster.h"
#include "rng.h"
#include "train.h"
#include "world_pusht.h"
#include "world_tworooms.h"

enum { ENERGY_MAP_ZOOM = 4 };  // pixels of the map per arena pixel
// The rng_stream step of --fidelity's draws: far above any episode step, so never an MPC plan's draws.
static const uint64_t PLAN_FIDELITY_STEP = 1u << 30;

// ---------------------------------------------------------------------------------------------------- CEM

typedef struct {
    double energy;
    int index;
} Scored;

static int by_energy(const void *a, const void *b) {
    const Scored *x = a, *y = b;
    if (x->energy != y->energy) return x->energy < y->energy ? -1 : 1;
    return x->index - y->index;  // ties in sample order: the result never depends on qsort's order
}

// Draws S sequences around mean with std, clipped to the bounds: out [S, H, A].
static void cem_draw(const CemConfig *c, Rng *r, const double *mean, const double *std, double *out) {
    const int H = c->horizon, A = c->action_dim;
    for (int s = 0; s < c->samples; s++)
        for (int k = 0; k < H * A; k++) {
            const int a = k % A;
            const double v = mean[k] + std[k] * rng_normal(r);
            out[(size_t)s * H * A + k] = fmin(fmax(v, c->lo[a]), c->hi[a]);
        }
}

// Mean and std of the elites, the std floored at min_std of the half range.
static void cem_refit(const CemConfig *c, const double *samples, const Scored *order, double *mean, double *std) {
    const int H = c->horizon, A = c->action_dim, E = c->elites;
    for (int k = 0; k < H * A; k++) {
        double m = 0, v = 0;
        for (int e = 0; e < E; e++) m += samples[(size_t)order[e].index * H * A + k];
        m /= E;
        for (int e = 0; e < E; e++) {
            const double d = samples[(size_t)order[e].index * H * A + k] - m;
            v += d * d;
        }
        const int a = k % A;
        mean[k] = m;
        std[k] = fmax(sqrt(v / E), c->min_std * 0.5 * (c->hi[a] - c->lo[a]));
    }
}

double cem_plan(const CemConfig *c, CemEnergy energy, void *ctx, uint64_t seed, uint64_t step, uint64_t index,
                double *mean) {
    const int H = c->horizon, A = c->action_dim, S = c->samples;
    JEPA_ASSERT(A <= PLAN_MAX_ACTION && H <= PLAN_MAX_HORIZON && c->elites <= S);
    double std[PLAN_MAX_HORIZON * PLAN_MAX_ACTION];
    for (int k = 0; k < H * A; k++) std[k] = c->init_std * 0.5 * (c->hi[k % A] - c->lo[k % A]);
    double *samples = xmalloc((size_t)S * H * A * sizeof(double)), *energies = xmalloc((size_t)S * sizeof(double));
    Scored *order = xmalloc((size_t)S * sizeof(Scored));
    Rng r = rng_stream(seed, RNG_PLAN, step, index);
    double best = INFINITY;
    for (int it = 0; it < c->iterations; it++) {
        cem_draw(c, &r, mean, std, samples);
        memcpy(samples, mean, (size_t)H * A * sizeof(double));  // sample 0: the current mean itself (never worse)
        energy(ctx, samples, S, energies);
        for (int s = 0; s < S; s++) order[s] = (Scored){energies[s], s};
        qsort(order, (size_t)S, sizeof(Scored), by_energy);
        best = order[0].energy;
        cem_refit(c, samples, order, mean, std);
    }
    free(samples);
    free(energies);
    free(order);
    return best;
}

// ---------------------------------------------------------------------------------------------------- MPC

// A running episode of either world: the true state (and, for pusht, its simulation), the goal, the frames' side.
typedef struct {
    PlanWorld world;
    int side, horizon, repeat;  // frames' side; planned actions per sequence; control steps per action
    TwoRoomsState tr, tr_goal;
    PushtSim *sim;
    PushtState pt, pt_goal;
    double pt_velocity[2];  // the pusher's, so that planners restart the simulation where it is
    AcModel *model;         // true dyn+latent: its encoder and plan_goal
} Episode;

// The pusht goal image: the block at the goal pose, the pusher parked in the corner farthest from the goal T (inside
// the agent's start range, so that the encoder has seen pushers there).
static const double PUSHT_PARK[2] = {60, 452};

static void episode_begin(Episode *ep, const MpcConfig *c, int64_t episode) {
    ep->world = c->world;
    ep->horizon = c->cem.horizon;
    ep->repeat = c->repeat > 1 ? c->repeat : 1;  // 0 (a zeroed MpcConfig) means once, as 1 does
    if (ep->world == PLAN_WORLD_TWOROOMS) {
        ep->side = TWOROOMS.size;
        tworooms_episode(c->seed, episode, &ep->tr, &ep->tr_goal);
        return;
    }
    ep->side = PUSHT_IMAGE;
    if (c->pusht_traj) {  // DINO-WM's protocol: the goal is where the expert took the episode's start (its pusher too)
        PushtTrajEpisode te;
        pusht_traj_episode(c->seed, episode, c->goal_steps, &te, NULL);
        ep->pt = te.start, ep->pt_goal = te.goal;
        ep->pt_velocity[0] = te.velocity[0], ep->pt_velocity[1] = te.velocity[1];
        ep->sim = pusht_restore(&te.start, te.velocity);
        return;
    }
    pusht_plan_episode(c->seed, episode, &ep->pt);
    ep->sim = pusht_create(&ep->pt);
    pusht_get_state(ep->sim, &ep->pt);
    ep->pt_velocity[0] = ep->pt_velocity[1] = 0;
    ep->pt_goal = PUSHT_GOAL;
    ep->pt_goal.agent_x = PUSHT_PARK[0], ep->pt_goal.agent_y = PUSHT_PARK[1];
}

static int episode_success(const Episode *ep) {
    if (ep->world == PLAN_WORLD_TWOROOMS) return tworooms_success(&ep->tr, &ep->tr_goal);
    return pusht_success(&ep->pt, &ep->pt_goal);
}

// tworooms: the agent to the goal, pixels; pusht: the block's position error, table units.
static double episode_distance(const Episode *ep) {
    if (ep->world == PLAN_WORLD_TWOROOMS) return hypot(ep->tr.x - ep->tr_goal.x, ep->tr.y - ep->tr_goal.y);
    double dist, angle;
    pusht_goal_error(&ep->pt, &ep->pt_goal, &dist, &angle);
    return dist;
}

static void episode_render(const Episode *ep, int goal, uint8_t *rgb) {
    if (ep->world == PLAN_WORLD_TWOROOMS) tworooms_render(goal ? &ep->tr_goal : &ep->tr, rgb);
    else pusht_render(goal ? &ep->pt_goal : &ep->pt, rgb);
}

static void episode_step(Episode *ep, const double *a) {
    if (ep->world == PLAN_WORLD_TWOROOMS) return tworooms_step(&ep->tr, a);
    pusht_step(ep->sim, a);
    pusht_get_state(ep->sim, &ep->pt);
    pusht_get_agent_velocity(ep->sim, ep->pt_velocity);
}

// The action that keeps things as they are: tworooms no move; pusht the pusher's own position as its target. It
// starts the first plan's mean and fills the tail of a shifted one.
static void episode_hold(const Episode *ep, double a[2]) {
    if (ep->world == PLAN_WORLD_TWOROOMS) a[0] = a[1] = 0;
    else a[0] = ep->pt.agent_x, a[1] = ep->pt.agent_y;
}

// The pusht energy of true dynamics: the block's pose error in units of the success thresholds, plus a small pull
// of the pusher towards the block (0.05 per 20 units) so that samples that do not touch the block are not all equal.
static double pusht_energy(const PushtState *s, const PushtState *goal) {
    double dist, angle;
    pusht_goal_error(s, goal, &dist, &angle);
    const double reach = hypot(s->agent_x - s->block_x, s->agent_y - s->block_y);
    return dist / PUSHT_SUCCESS_DIST + angle / PUSHT_SUCCESS_ANGLE + 0.05 * reach / PUSHT_SUCCESS_DIST;
}

// One action sequence actions[H, 2] stepped with the world's own dynamics from the episode's state: returns the
// final state's energy (tworooms: distance to the goal; pusht: pusht_energy); rgb (optional) receives its frame.
static double true_rollout(const Episode *ep, const double *actions, uint8_t *rgb) {
    const int H = ep->horizon;
    if (ep->world == PLAN_WORLD_TWOROOMS) {
        TwoRoomsState x = ep->tr;
        for (int h = 0; h < H * ep->repeat; h++) tworooms_step(&x, actions + (size_t)(h / ep->repeat) * 2);
        if (rgb) tworooms_render(&x, rgb);
        return hypot(x.x - ep->tr_goal.x, x.y - ep->tr_goal.y);
    }
    PushtSim *sim = pusht_restore(&ep->pt, ep->pt_velocity);
    for (int h = 0; h < H * ep->repeat; h++) pusht_step(sim, actions + (size_t)(h / ep->repeat) * 2);
    PushtState x;
    pusht_get_state(sim, &x);
    pusht_free(sim);
    if (rgb) pusht_render(&x, rgb);
    return pusht_energy(&x, &ep->pt_goal);
}

static void true_energy(void *ctx, const double *actions, int S, double *energies) {
    const Episode *ep = ctx;
    for (int s = 0; s < S; s++) energies[s] = true_rollout(ep, actions + (size_t)s * ep->horizon * 2, NULL);
}

// The world's own step, energy = the encoder's L1 between the final state's frame and the goal frame.
static void true_latent_energy(void *ctx, const double *actions, int S, double *energies) {
    const Episode *ep = ctx;
    const size_t fb = (size_t)ep->side * ep->side * 3, nd = (size_t)ep->model->dims.tokens * ep->model->dims.feat_dim;
    uint8_t *rgb = xmalloc((size_t)S * fb);
    float *z = xmalloc((size_t)S * nd * sizeof(float));
    for (int s = 0; s < S; s++) true_rollout(ep, actions + (size_t)s * ep->horizon * 2, rgb + (size_t)s * fb);
    ac_encode(ep->model, rgb, S, z);
    for (int s = 0; s < S; s++) energies[s] = ac_goal_distance(ep->model, z + (size_t)s * nd);
    free(rgb);
    free(z);
}

// The predictor's energy: each planned action held for ep->repeat steps (ac_plan_begin was given H x repeat).
static void model_energy(void *ctx, const double *actions, int S, double *energies) {
    const Episode *ep = ctx;
    if (ep->repeat == 1) {
        ac_plan_energy(ep->model, actions, S, energies);
        return;
    }
    const int H = ep->horizon, k = ep->repeat;
    double *held = xmalloc((size_t)S * H * k * 2 * sizeof(double));  // [S, H * k, 2]
    for (size_t s = 0; s < (size_t)S; s++)
        for (int h = 0; h < H * k; h++)
            for (int a = 0; a < 2; a++) held[(s * H * k + h) * 2 + a] = actions[(s * H + h / k) * 2 + a];
    ac_plan_energy(ep->model, held, S, energies);
    free(held);
}

// Shifts the plan by n actions, filling the tail with `hold`: the next plan's starting mean.
static void shift_plan(double *mean, int H, int A, int n, const double *hold) {
    for (int k = 0; k < H * A; k++) mean[k] = k + n * A < H * A ? mean[k + n * A] : hold[k % A];
}

// Sets the model up to plan from the episode's state: encodes its frame (into now_rgb) and the goal frame.
static void episode_model_begin(Episode *ep, const MpcConfig *c, AcModel *model, const uint8_t *goal_rgb,
                                uint8_t *now_rgb) {
    episode_render(ep, 0, now_rgb);
    const double state[2] = {ep->world == PLAN_WORLD_TWOROOMS ? ep->tr.x : ep->pt.agent_x,
                             ep->world == PLAN_WORLD_TWOROOMS ? ep->tr.y : ep->pt.agent_y};
    ac_plan_begin(model, now_rgb, state, goal_rgb, c->cem.horizon * ep->repeat);
    for (int k = 0; k < 2; k++) model->plan_velocity[k] = ep->world == PLAN_WORLD_PUSHT ? ep->pt_velocity[k] : 0;
    ep->model = model;
}

// One plan from the episode's state into mean[H, A] (warm start in, plan out).
static void episode_plan(Episode *ep, const MpcConfig *c, PlannerKind kind, AcModel *model, int t, int64_t episode,
                         const uint8_t *goal_rgb, uint8_t *now_rgb, double *mean) {
    if (kind == PLANNER_TRUE_DYNAMICS) {
        cem_plan(&c->cem, true_energy, ep, c->seed, (uint64_t)t, (uint64_t)episode, mean);
        return;
    }
    episode_model_begin(ep, c, model, goal_rgb, now_rgb);
    if (kind == PLANNER_TRUE_LATENT)
        cem_plan(&c->cem, true_latent_energy, ep, c->seed, (uint64_t)t, (uint64_t)episode, mean);
    else cem_plan(&c->cem, model_energy, ep, c->seed, (uint64_t)t, (uint64_t)episode, mean);
}

EpisodeResult mpc_episode(const MpcConfig *c, PlannerKind kind, AcModel *model, int64_t episode, uint8_t *frames,
                          int *n_frames) {
    Episode ep = {0};
    episode_begin(&ep, c, episode);
    const size_t frame_bytes = (size_t)ep.side * ep.side * 3;
    const int H = c->cem.horizon, A = 2;
    uint8_t *goal_rgb = xmalloc(frame_bytes), *now_rgb = xmalloc(frame_bytes);
    episode_render(&ep, 1, goal_rgb);
    EpisodeResult res = {0};
    double mean[PLAN_MAX_HORIZON * 2], plan[PLAN_MAX_HORIZON * 2], hold[2];
    episode_hold(&ep, hold);
    for (int k = 0; k < H * A; k++) mean[k] = hold[k % A];
    int t = 0, shown = 0;
    if (frames) episode_render(&ep, 0, frames), shown = 1;
    while (t < c->step_limit && !episode_success(&ep)) {
        const int n_exec = c->execute;
        const double t0 = now_seconds();
        if (kind == PLANNER_RANDOM) {
            Rng r = rng_stream(c->seed, RNG_PLAN, (uint64_t)t, (uint64_t)episode);
            for (int k = 0; k < n_exec * A; k++) plan[k] = rng_uniform_range(&r, c->cem.lo[k % A], c->cem.hi[k % A]);
        } else {
            episode_plan(&ep, c, kind, model, t, episode, goal_rgb, now_rgb, mean);
            memcpy(plan, mean, (size_t)H * A * sizeof(double));
            // the tail: tworooms no move; pusht the plan's last target (the pusher stays where the plan left it)
            shift_plan(mean, H, A, n_exec, ep.world == PLAN_WORLD_TWOROOMS ? hold : plan + (size_t)(H - 1) * A);
            res.plans++;
        }
        res.plan_seconds += now_seconds() - t0;
        for (int k = 0; k < n_exec * ep.repeat && t < c->step_limit && !episode_success(&ep); k++, t++) {
            episode_step(&ep, plan + (k / ep.repeat) * A);  // each planned action held for ep.repeat steps
            if (frames) episode_render(&ep, 0, frames + (size_t)shown++ * frame_bytes);
        }
    }
    res.success = episode_success(&ep);
    res.steps = t;
    res.final_distance = episode_distance(&ep);
    if (n_frames) *n_frames = shown;
    pusht_free(ep.sim);
    free(goal_rgb);
    free(now_rgb);
    return res;
}

void plan_config_from(const Config *cfg, MpcConfig *out) {
    memset(out, 0, sizeof *out);
    CemConfig *c = &out->cem;
    out->world = strcmp(cfg->plan.world, "pusht") ? PLAN_WORLD_TWOROOMS : PLAN_WORLD_PUSHT;
    c->samples = cfg->plan.samples;
    c->elites = cfg->plan.elites;
    c->iterations = cfg->plan.iterations;
    c->horizon = cfg->plan.horizon;
    c->action_dim = 2;
    for (int a = 0; a < 2; a++) {  // tworooms: a displacement; pusht: the pusher's target point on the table
        c->lo[a] = out->world == PLAN_WORLD_PUSHT ? 0 : -TWOROOMS.action_bound;
        c->hi[a] = out->world == PLAN_WORLD_PUSHT ? PUSHT_TABLE : TWOROOMS.action_bound;
    }
    c->init_std = cfg->plan.init_std;
    c->min_std = cfg->plan.min_std;
    if (c->elites > c->samples)
        die_input("plan.elites (%d) must be at most plan.samples (%d)", c->elites, c->samples);
    out->execute = cfg->plan.execute < c->horizon ? cfg->plan.execute : c->horizon;
    out->repeat = cfg->plan.action_repeat;
    out->pusht_traj = out->world == PLAN_WORLD_PUSHT && !strcmp(cfg->plan.pusht_start, "trajectory");
    out->goal_steps = cfg->plan.goal_steps;
    out->step_limit = cfg->plan.step_limit             ? cfg->plan.step_limit
                      : out->world == PLAN_WORLD_PUSHT ? (out->pusht_traj ? PUSHT_TRAJ_STEP_LIMIT : PUSHT_STEP_LIMIT)
                                                       : TWOROOMS.step_limit;
    out->seed = (uint64_t)cfg->meta.seed;
}

// ---------------------------------------------------------------------------------------------------- energy map

// Ranks of v[m] from 0, ties sharing their mean rank.
static void average_ranks(const double *v, int m, Scored *order, double *rank) {
    for (int k = 0; k < m; k++) order[k] = (Scored){v[k], k};
    qsort(order, (size_t)m, sizeof(Scored), by_energy);
    for (int lo = 0, hi; lo < m; lo = hi) {
        for (hi = lo + 1; hi < m && order[hi].energy == order[lo].energy;) hi++;
        for (int k = lo; k < hi; k++) rank[order[k].index] = 0.5 * (lo + hi - 1);
    }
}

double plan_rank_correlation(const double *x, const double *y, int m) {
    double *rx = xmalloc((size_t)m * sizeof(double)), *ry = xmalloc((size_t)m * sizeof(double));
    Scored *order = xmalloc((size_t)m * sizeof(Scored));
    average_ranks(x, m, order, rx);
    average_ranks(y, m, order, ry);
    double mx = 0, my = 0, sxy = 0, sxx = 0, syy = 0;
    for (int k = 0; k < m; k++) mx += rx[k] / m, my += ry[k] / m;
    for (int k = 0; k < m; k++) {
        sxy += (rx[k] - mx) * (ry[k] - my);
        sxx += (rx[k] - mx) * (rx[k] - mx);
        syy += (ry[k] - my) * (ry[k] - my);
    }
    free(rx), free(ry), free(order);
    return sxx > 0 && syy > 0 ? sxy / sqrt(sxx * syy) : 0;
}

// A ramp from dark blue (0) to yellow (1).
static void ramp(double v, uint8_t *rgb) {
    v = v < 0 ? 0 : v > 1 ? 1 : v;
    rgb[0] = (uint8_t)(255 * v), rgb[1] = (uint8_t)(40 + 200 * v), rgb[2] = (uint8_t)(140 * (1 - v));
}

// Paints panel p of the map: value[cell] normalised over the free cells, walls grey, start and goal marked.
static void map_panel(uint8_t *img, int p, const double *value, const double *range, const TwoRoomsState *start,
                      const TwoRoomsState *goal) {
    const int n = TWOROOMS.size, z = ENERGY_MAP_ZOOM, W = 2 * n * z + z;
    for (int i = 0; i < n * z; i++)
        for (int j = 0; j < n * z; j++) {
            const int cell = (i / z) * n + j / z;
            uint8_t *px = img + ((size_t)i * W + p * (n * z + z) + j) * 3;
            if (value[cell] == HUGE_VAL) px[0] = px[1] = px[2] = 90;
            else ramp((value[cell] - range[0]) / (range[1] - range[0]), px);
            const double x = (j + 0.5) / z, y = (i + 0.5) / z;
            if (hypot(x - goal->x, y - goal->y) < 1.5) px[0] = px[1] = px[2] = 255;
            if (hypot(x - start->x, y - start->y) < 1.5) px[0] = 255, px[1] = px[2] = 0;
        }
}

// The encoder's energy to the goal set by ac_plan_begin with the agent at each of cells[m] (pixel indices of the
// arena, row-major): energy[m], encoding `batch` frames at a time.
static void energies_at(AcModel *model, const int *cells, int m, int batch, double *energy) {
    const int n = TWOROOMS.size;
    const size_t fb = (size_t)n * n * 3, nd = (size_t)model->dims.tokens * model->dims.feat_dim;
    uint8_t *rgb = xmalloc((size_t)batch * fb);
    float *z = xmalloc((size_t)batch * nd * sizeof(float));
    for (int first = 0; first < m; first += batch) {
        const int B = m - first < batch ? m - first : batch;
        for (int b = 0; b < B; b++) {
            const TwoRoomsState s = {cells[first + b] % n + 0.5, cells[first + b] / n + 0.5};
            tworooms_render(&s, rgb + (size_t)b * fb);
        }
        ac_encode(model, rgb, B, z);
        for (int b = 0; b < B; b++) energy[first + b] = ac_goal_distance(model, z + (size_t)b * nd);
    }
    free(rgb);
    free(z);
}

// Paints the map: the energy (left) and the geodesic distance (right) over the free cells, each normalised.
static void write_map(const char *path, const int *cells, int m, const double *energy, const double *geo,
                      const TwoRoomsState *start, const TwoRoomsState *goal) {
    const int n = TWOROOMS.size, N = n * n, z = ENERGY_MAP_ZOOM, W = 2 * n * z + z;
    double *grid = xmalloc((size_t)2 * N * sizeof(double)), range[2][2] = {{HUGE_VAL, -HUGE_VAL}, {0, -HUGE_VAL}};
    for (int k = 0; k < 2 * N; k++) grid[k] = HUGE_VAL;
    for (int i = 0; i < m; i++) {
        grid[cells[i]] = energy[i], grid[N + cells[i]] = geo[i];
        range[0][0] = fmin(range[0][0], energy[i]), range[0][1] = fmax(range[0][1], energy[i]);
        range[1][1] = fmax(range[1][1], geo[i]);
    }
    uint8_t *img = xcalloc((size_t)n * z * W * 3, 1);
    for (int p = 0; p < 2; p++) map_panel(img, p, grid + (size_t)p * N, range[p], start, goal);
    raster_write_png(path, img, n * z, W);
    free(grid);
    free(img);
}

// `--energy-map FILE.png`: the frozen encoder's L1 energy to episode e's goal frame with the agent at every free
// pixel centre, beside the geodesic (through the door) distance; prints how well the energy orders the arena.
static void energy_map(AcModel *model, const MpcConfig *mc, int e, const char *path) {
    const int n = TWOROOMS.size, N = n * n;
    TwoRoomsState start, goal;
    tworooms_episode(mc->seed, e, &start, &goal);
    uint8_t *goal_rgb = xmalloc((size_t)N * 3), *start_rgb = xmalloc((size_t)N * 3);
    tworooms_render(&goal, goal_rgb);
    tworooms_render(&start, start_rgb);
    const double st[2] = {start.x, start.y};
    ac_plan_begin(model, start_rgb, st, goal_rgb, mc->cem.horizon);
    double *geo_grid = xmalloc((size_t)N * sizeof(double));
    tworooms_geodesic(&goal, geo_grid);
    int *cells = xmalloc((size_t)N * sizeof(int)), m = 0;
    for (int k = 0; k < N; k++)
        if (tworooms_free(k % n + 0.5, k / n + 0.5)) cells[m++] = k;
    double *at = xmalloc((size_t)3 * m * sizeof(double));  // [3, m]: energy, geodesic, straight-line distance
    double *energy = at, *geo = at + m, *straight = at + 2 * m;
    energies_at(model, cells, m, mc->cem.samples, energy);
    int best = -1, below = 0, goal_room = 0;  // the start room's lowest point; the goal room's cells below it
    for (int i = 0; i < m; i++) {
        const double x = cells[i] % n + 0.5, y = cells[i] / n + 0.5;
        geo[i] = geo_grid[cells[i]], straight[i] = hypot(x - goal.x, y - goal.y);
        if (tworooms_room(x) == tworooms_room(start.x) && (best < 0 || energy[i] < energy[best])) best = i;
    }
    for (int i = 0; i < m; i++)
        if (tworooms_room(cells[i] % n + 0.5) == tworooms_room(goal.x)) goal_room++, below += energy[i] < energy[best];
    printf("energy map, episode %d: start (%.1f, %.1f), goal (%.1f, %.1f), %d free positions\n", e, start.x, start.y,
           goal.x, goal.y, m);
    printf("  rank correlation of the energy with the geodesic distance %.3f, with the straight-line distance %.3f\n",
           plan_rank_correlation(energy, geo, m), plan_rank_correlation(energy, straight, m));
    printf("  the start room's lowest energy %.4f at (%.1f, %.1f), %.1f px from the goal through the door; "
           "%.1f%% of the goal's room is lower\n",
           energy[best], cells[best] % n + 0.5, cells[best] / n + 0.5, geo[best], 100.0 * below / goal_room);
    write_map(path, cells, m, energy, geo, &start, &goal);
    printf("  map: %s (left the energy, right the geodesic distance; dark low; goal white, start red)\n", path);
    free(goal_rgb), free(start_rgb), free(geo_grid), free(cells), free(at);
}

// `--fidelity`: how well the predictor ranks plans. From episode e's start, plan.samples action sequences uniform in
// the bounds, scored by the model's energy and by the world's own dynamics with the encoder's energy (true
// dyn+latent); returns their rank correlation. CEM keeps only the ranking, so this is the predictor's part of it.
static double plan_fidelity(AcModel *model, const MpcConfig *c, int64_t e) {
    Episode ep = {0};
    episode_begin(&ep, c, e);
    const size_t fb = (size_t)ep.side * ep.side * 3;
    const int S = c->cem.samples, HA = c->cem.horizon * c->cem.action_dim;
    uint8_t *goal_rgb = xmalloc(fb), *now_rgb = xmalloc(fb);
    episode_render(&ep, 1, goal_rgb);
    episode_model_begin(&ep, c, model, goal_rgb, now_rgb);
    double *actions = xmalloc((size_t)S * HA * sizeof(double));  // [S, H, A]
    double *e_model = xmalloc((size_t)S * sizeof(double)), *e_true = xmalloc((size_t)S * sizeof(double));
    Rng r = rng_stream(c->seed, RNG_PLAN, PLAN_FIDELITY_STEP, (uint64_t)e);
    for (int k = 0; k < S * HA; k++) actions[k] = rng_uniform_range(&r, c->cem.lo[k % 2], c->cem.hi[k % 2]);
    model_energy(&ep, actions, S, e_model);
    true_latent_energy(&ep, actions, S, e_true);
    const double rho = plan_rank_correlation(e_model, e_true, S);
    free(goal_rgb), free(now_rgb), free(actions), free(e_model), free(e_true);
    pusht_free(ep.sim);
    return rho;
}

// ---------------------------------------------------------------------------------------------------- jepa plan

static const char *PLAN_HELP =
    "usage: jepa plan CONFIG --checkpoint RUN [options] [key=value ...]\n"
    "\n"
    "Model-predictive control in plan.world (tworooms or pusht) with the action-conditioned predictor of RUN\n"
    "(RUN/predictor.safetensors, written by `jepa train` with model.kind ac) on the frozen encoder of\n"
    "ac.encoder_checkpoint: each step, CEM over plan.horizon actions (plan.samples, plan.elites, plan.iterations)\n"
    "with the L1 energy between the predicted last embedding and the goal image's, then plan.execute actions.\n"
    "Reports success over plan.episodes seeded episodes (meta.seed), mean steps and planning time per action,\n"
    "beside uniform random actions, CEM with the true dynamics (an upper bound) and CEM with the true dynamics\n"
    "scored by the encoder's energy. docs/world-models.md.\n"
    "\n"
    "options:\n"
    "  --checkpoint RUN    the ac run folder (or its predictor.safetensors)\n"
    "  --episodes N        override plan.episodes\n"
    "  --select I,J,...    only these episode indices (a diagnostic: look at chosen episodes)\n"
    "  --strip FILE.png    a picture of the model's first 4 episodes: frames along each row, the goal last\n"
    "  --no-model          only the baselines (random, true dynamics): no checkpoint needed\n"
    "  --per-episode       one line per episode: start, goal, outcome, steps, final distance\n"
    "  --with-latent       also 'true dyn+latent' (slow: encodes every sample's final frame)\n"
    "  --energy-map F.png  tworooms: the encoder's energy to the goal of the first episode (--select) with the agent\n"
    "                      at every free position, beside the distance through the door; no planning\n"
    "  --fidelity          no planning: per episode, the rank correlation of the model's energy with the true\n"
    "                      dynamics' (encoder energy) over plan.samples random action sequences from its start\n"
    "  --only NAME         one planner: 'random actions', 'true dynamics', 'true dyn+latent' (the world's own\n"
    "                      dynamics scored by the encoder's L1 energy: the encoder's part) or model\n"
    "  --help              this text\n";

typedef struct {
    int episodes, successes, steps_success;
    double steps, plan_seconds, final_distance;
    int actions_planned;
} Tally;

static void tally_add(Tally *t, const EpisodeResult *r, int execute) {
    t->episodes++;
    t->successes += r->success;
    t->steps += r->steps;
    t->final_distance += r->final_distance;
    t->plan_seconds += r->plan_seconds;
    t->actions_planned += r->plans * execute;
}

static void tally_print(const char *name, const Tally *t, const char *unit) {
    printf("%-16s success %3d/%d = %5.1f%% | mean steps %5.1f | mean final distance %5.1f %s | plan %.3f s per action\n",
           name, t->successes, t->episodes, 100.0 * t->successes / t->episodes, t->steps / t->episodes,
           t->final_distance / t->episodes, unit, t->actions_planned ? t->plan_seconds / t->actions_planned : 0.0);
}

enum { STRIP_ROWS = 4, STRIP_COLS = 9 };

// Row e: STRIP_COLS - 1 frames (side s) evenly spaced over the episode, then the goal.
static void strip_row(uint8_t *strip, int s, int row, const uint8_t *frames, int n_frames, const uint8_t *goal) {
    const int W = STRIP_COLS * (s + 2);
    const size_t fb = (size_t)s * s * 3;
    for (int c = 0; c < STRIP_COLS; c++) {
        const uint8_t *src = c == STRIP_COLS - 1 ? goal
                                                 : frames + (size_t)((int64_t)c * (n_frames - 1) / (STRIP_COLS - 2)) * fb;
        for (int i = 0; i < s; i++)
            memcpy(strip + (((size_t)row * (s + 2) + i) * W + (size_t)c * (s + 2)) * 3, src + (size_t)i * s * 3,
                   (size_t)s * 3);
    }
}

// One line per episode (--per-episode): where it started, the outcome.
static void print_episode(const MpcConfig *mc, const char *name, int e, const EpisodeResult *r) {
    Episode ep = {0};
    episode_begin(&ep, mc, e);
    if (ep.world == PLAN_WORLD_PUSHT)
        printf("  %-14s episode %3d: agent (%3.0f, %3.0f) block (%3.0f, %3.0f, %5.2f) goal (%3.0f, %3.0f, %5.2f)", name,
               e, ep.pt.agent_x, ep.pt.agent_y, ep.pt.block_x, ep.pt.block_y, ep.pt.block_angle, ep.pt_goal.block_x,
               ep.pt_goal.block_y, ep.pt_goal.block_angle);
    else
        printf("  %-14s episode %3d: start (%4.1f, %4.1f) goal (%4.1f, %4.1f)", name, e, ep.tr.x, ep.tr.y,
               ep.tr_goal.x, ep.tr_goal.y);
    printf(" %s in %3d steps, final distance %5.1f\n", r->success ? "success" : "FAILED ", r->steps, r->final_distance);
    fflush(stdout);
    pusht_free(ep.sim);
}

typedef struct {
    const char *config, *checkpoint, *strip, *energy_map;
    int fidelity;  // --fidelity: the predictor's ranking against true dyn+latent, no planning
    const char *only;  // run one planner: random, true, latent, model
    int episodes, no_model, with_latent, per_episode, n_overrides;
    int *picked, n_picked;  // [n_picked] --select's episode indices; NULL: 0..episodes-1
    char **overrides;
} PlanOptions;

// The i-th episode to run: i, or the i-th entry of --select.
static int episode_index(const PlanOptions *o, int i) { return o->picked ? o->picked[i] : i; }

// --fidelity over the run's episodes: one line each with --per-episode, then the mean and the least.
static void print_fidelity(AcModel *model, const MpcConfig *mc, const PlanOptions *o, int episodes) {
    double sum = 0, least = 1;
    const double t0 = now_seconds();
    for (int i = 0; i < episodes; i++) {
        const int e = episode_index(o, i);
        const double rho = plan_fidelity(model, mc, e);
        if (o->per_episode) printf("  fidelity episode %4d: rank correlation %.3f\n", e, rho);
        sum += rho, least = fmin(least, rho);
    }
    printf("fidelity: the model's energy against the true dynamics' (encoder energy), %d random sequences per start: "
           "rank correlation mean %.3f, least %.3f over %d episodes (%.1f s)\n",
           mc->cem.samples, sum / episodes, least, episodes, now_seconds() - t0);
}

// --select I,J,...: non-negative integers separated by commas.
static void parse_select(const char *text, PlanOptions *o) {
    o->picked = xcalloc(strlen(text) / 2 + 1, sizeof(int));  // at most one index per two characters
    for (const char *p = text;; p++) {
        char *end;
        const long e = strtol(p, &end, 10);
        if (end == p || *p == '-' || *p == '+' || e > 1000000000 || (*end && *end != ','))
            die_input("plan: --select '%s': expected episode indices like 2,8,13", text);
        o->picked[o->n_picked++] = (int)e;
        if (!*end) return;
        p = end;
    }
}

static void parse_plan(int argc, char **argv, PlanOptions *o) {
    memset(o, 0, sizeof *o);
    o->overrides = xcalloc((size_t)argc + 1, sizeof(char *));
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const int has_value = i + 1 < argc;
        if (!strcmp(a, "--checkpoint") && has_value) o->checkpoint = argv[++i];
        else if (!strcmp(a, "--strip") && has_value) o->strip = argv[++i];
        else if (!strcmp(a, "--energy-map") && has_value) o->energy_map = argv[++i];
        else if (!strcmp(a, "--only") && has_value) o->only = argv[++i];
        else if (!strcmp(a, "--select") && has_value) parse_select(argv[++i], o);
        else if (!strcmp(a, "--episodes") && has_value) {
            char *end;
            o->episodes = (int)strtol(argv[++i], &end, 10);
            if (*end || o->episodes < 1) die_input("plan: --episodes '%s': expected a positive integer", argv[i]);
        } else if (!strcmp(a, "--no-model")) o->no_model = 1;
        else if (!strcmp(a, "--with-latent")) o->with_latent = 1;
        else if (!strcmp(a, "--per-episode")) o->per_episode = 1;
        else if (!strcmp(a, "--fidelity")) o->fidelity = 1;
        else if (!strncmp(a, "--", 2)) die_input("plan: unknown option or missing value '%s' (see jepa plan --help)", a);
        else if (strchr(a, '=')) o->overrides[o->n_overrides++] = argv[i];
        else if (!o->config) o->config = a;
        else die_input("plan: a second config '%s' after '%s'; overrides look like key=value", a, o->config);
    }
    if (o->picked) o->episodes = o->n_picked;  // --select decides, whatever --episodes said
    if (!o->config) die_input("plan: no config given ---> HINT: jepa plan configs/ac_tworooms.yaml --checkpoint RUN");
    if (!o->checkpoint && !o->no_model) die_input("plan: --checkpoint RUN is required (or --no-model)");
}

static AcModel *load_planner(const Config *cfg, const char *checkpoint, Backend *be, const MpcConfig *mc) {
    AcModel *m = ac_create(cfg, be, mc->cem.samples, cfg->ac.frames - 1, 1);
    char path[4200];
    const size_t n = strlen(checkpoint);
    if (n > 12 && !strcmp(checkpoint + n - 12, ".safetensors")) snprintf(path, sizeof path, "%s", checkpoint);
    else snprintf(path, sizeof path, "%s/predictor.safetensors", checkpoint);
    ac_load(m, path);
    return m;
}

int plan_command(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return fputs(PLAN_HELP, stdout), JEPA_EXIT_OK;
    PlanOptions o;
    parse_plan(argc, argv, &o);
    Config cfg;
    config_load(&cfg, o.config, o.n_overrides, o.overrides);
    config_validate(&cfg);
    if (o.episodes) cfg.plan.episodes = o.episodes;
    MpcConfig mc;
    plan_config_from(&cfg, &mc);
    if (o.fidelity && o.no_model) die_input("plan: --fidelity needs --checkpoint (it measures the predictor)");
    if (o.energy_map && (mc.world != PLAN_WORLD_TWOROOMS || o.no_model))
        die_input("plan: --energy-map %s: needs plan.world tworooms and --checkpoint (the encoder's energy)", o.energy_map);
    // The predictor and its frozen encoder on meta.device's backend, chosen as `jepa train` chooses it.
    char device[512];
    Backend *be = o.no_model ? NULL : train_backend(&cfg, device, sizeof device);
    if (be) printf("device: %s\n", device);
    AcModel *model = o.no_model ? NULL : load_planner(&cfg, o.checkpoint, be, &mc);
    const int pusht = mc.world == PLAN_WORLD_PUSHT, E = cfg.plan.episodes, s = pusht ? PUSHT_IMAGE : TWOROOMS.size;
    uint8_t *frames = xmalloc((size_t)(mc.step_limit + 1) * s * s * 3), *goal = xmalloc((size_t)s * s * 3);
    const int strip_w = STRIP_COLS * (s + 2), strip_h = STRIP_ROWS * (s + 2);
    uint8_t *strip = xcalloc((size_t)strip_w * strip_h * 3, 1);
    if (pusht)
        // %.0d prints nothing for 0: the goal's steps only in the trajectory protocol
        printf("pusht: %d episodes (seed %d, %s%.0d%s), step limit %d, success within %g units and %.4f rad of the goal "
               "pose", E, cfg.meta.seed, mc.pusht_traj ? "start on an expert trajectory, goal its state " : "uniform starts",
               mc.pusht_traj ? mc.goal_steps : 0, mc.pusht_traj ? " steps later" : "", mc.step_limit, PUSHT_SUCCESS_DIST,
               PUSHT_SUCCESS_ANGLE);
    else
        printf("tworooms: %d episodes (seed %d), step limit %d, success radius %g px", E, cfg.meta.seed, mc.step_limit,
               TWOROOMS.success_radius);
    printf(" | CEM %d samples, %d elites, %d iterations, horizon %d, execute %d, action repeat %d, energy %s\n",
           mc.cem.samples, mc.cem.elites, mc.cem.iterations, mc.cem.horizon, mc.execute, mc.repeat, cfg.plan.energy);
    if (o.energy_map) energy_map(model, &mc, episode_index(&o, 0), o.energy_map);
    const PlannerKind kinds[4] = {PLANNER_RANDOM, PLANNER_TRUE_DYNAMICS, PLANNER_TRUE_LATENT, PLANNER_MODEL};
    const char *names[4] = {"random actions", "true dynamics", "true dyn+latent", "ac model"};
    if (o.fidelity) print_fidelity(model, &mc, &o, E);
    for (int k = 0; k < 4 && !o.energy_map && !o.fidelity; k++) {
        if ((o.no_model && k >= 2) || (o.only && strcmp(o.only, names[k]) && !(k == 3 && !strcmp(o.only, "model"))) ||
            (k == 2 && !o.with_latent && !o.only))
            continue;
        Tally t = {0};
        const double t0 = now_seconds();
        for (int i = 0; i < E; i++) {
            const int e = episode_index(&o, i);
            int n_frames = 0;
            const int record = kinds[k] == PLANNER_MODEL && o.strip && i < STRIP_ROWS;
            const EpisodeResult r = mpc_episode(&mc, kinds[k], model, e, record ? frames : NULL, &n_frames);
            tally_add(&t, &r, mc.execute);
            if (o.per_episode) print_episode(&mc, names[k], e, &r);
            if (record) {
                Episode ep = {0};
                episode_begin(&ep, &mc, e);
                episode_render(&ep, 1, goal);
                pusht_free(ep.sim);
                strip_row(strip, s, i, frames, n_frames, goal);
            }
        }
        tally_print(names[k], &t, pusht ? "units" : "px");
        printf("%-16s (%.1f s wall)\n", "", now_seconds() - t0);
        fflush(stdout);
    }
    if (o.strip && model) {
        raster_write_png(o.strip, strip, strip_h, strip_w);
        printf("strip: %s (rows: the first %d episodes run; frames left to right, the goal last)\n", o.strip,
               E < STRIP_ROWS ? E : STRIP_ROWS);
    }
    free(frames);
    free(goal);
    free(strip);
    free(o.overrides);
    free(o.picked);
    ac_free(model);
    if (be) backend_destroy(be);
    return JEPA_EXIT_OK;
}
