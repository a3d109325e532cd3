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
#include "world_tworooms.h"

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

typedef struct {
    TwoRoomsState state, goal;
    int horizon;
} TrueDynamics;

// Distance from the final state of each sequence, stepped with the world's own dynamics, to the goal.
static void true_energy(void *ctx, const double *actions, int S, double *energies) {
    const TrueDynamics *t = ctx;
    for (int s = 0; s < S; s++) {
        TwoRoomsState x = t->state;
        for (int h = 0; h < t->horizon; h++) tworooms_step(&x, actions + ((size_t)s * t->horizon + h) * 2);
        energies[s] = hypot(x.x - t->goal.x, x.y - t->goal.y);
    }
}

typedef struct {
    TrueDynamics td;
    AcModel *model;  // its encoder and plan_goal (set by ac_plan_begin)
} TrueLatent;

static void true_latent_energy(void *ctx, const double *actions, int S, double *energies) {
    const TrueLatent *t = ctx;
    const int H = t->td.horizon, side = TWOROOMS.size;
    const size_t fb = (size_t)side * side * 3, nd = (size_t)t->model->dims.tokens * t->model->dims.feat_dim;
    uint8_t *rgb = xmalloc((size_t)S * fb);
    float *z = xmalloc((size_t)S * nd * sizeof(float));
    for (int s = 0; s < S; s++) {
        TwoRoomsState x = t->td.state;
        for (int h = 0; h < H; h++) tworooms_step(&x, actions + ((size_t)s * H + h) * 2);
        tworooms_render(&x, rgb + (size_t)s * fb);
    }
    ac_encode(t->model, rgb, S, z);
    for (int s = 0; s < S; s++) {
        double e = 0;
        for (size_t k = 0; k < nd; k++) e += fabs(z[(size_t)s * nd + k] - t->model->plan_goal[k]);
        energies[s] = e / nd;
    }
    free(rgb);
    free(z);
}

static void model_energy(void *ctx, const double *actions, int S, double *energies) {
    ac_plan_energy((AcModel *)ctx, actions, S, energies);
}

// Shifts the plan by n actions, filling the tail with zeros (no move): the next plan's starting mean.
static void shift_plan(double *mean, int H, int A, int n) {
    for (int k = 0; k < H * A; k++) mean[k] = k + n * A < H * A ? mean[k + n * A] : 0.0;
}

EpisodeResult mpc_tworooms_episode(const MpcConfig *c, PlannerKind kind, AcModel *model, int64_t episode,
                                   uint8_t *frames, int *n_frames) {
    const size_t frame_bytes = (size_t)TWOROOMS.size * TWOROOMS.size * 3;
    const int H = c->cem.horizon, A = 2;
    TwoRoomsState s, goal;
    tworooms_episode(c->seed, episode, &s, &goal);
    uint8_t *goal_rgb = xmalloc(frame_bytes), *now_rgb = xmalloc(frame_bytes);
    tworooms_render(&goal, goal_rgb);
    EpisodeResult res = {0};
    double mean[PLAN_MAX_HORIZON * 2] = {0}, plan[PLAN_MAX_HORIZON * 2];
    int t = 0, shown = 0;
    if (frames) tworooms_render(&s, frames), shown = 1;
    while (t < c->step_limit && !tworooms_success(&s, &goal)) {
        int n_exec = c->execute;
        const double t0 = now_seconds();
        if (kind == PLANNER_RANDOM) {
            Rng r = rng_stream(c->seed, RNG_PLAN, (uint64_t)t, (uint64_t)episode);
            for (int k = 0; k < n_exec * A; k++) plan[k] = rng_uniform_range(&r, c->cem.lo[k % A], c->cem.hi[k % A]);
        } else {
            if (kind == PLANNER_TRUE_DYNAMICS) {
                TrueDynamics td = {s, goal, H};
                cem_plan(&c->cem, true_energy, &td, c->seed, (uint64_t)t, (uint64_t)episode, mean);
            } else {
                tworooms_render(&s, now_rgb);
                const double state[2] = {s.x, s.y};
                ac_plan_begin(model, now_rgb, state, goal_rgb, H);
                TrueLatent tl = {{s, goal, H}, model};
                if (kind == PLANNER_TRUE_LATENT)
                    cem_plan(&c->cem, true_latent_energy, &tl, c->seed, (uint64_t)t, (uint64_t)episode, mean);
                else cem_plan(&c->cem, model_energy, model, c->seed, (uint64_t)t, (uint64_t)episode, mean);
            }
            memcpy(plan, mean, (size_t)H * A * sizeof(double));
            shift_plan(mean, H, A, n_exec);
            res.plans++;
        }
        res.plan_seconds += now_seconds() - t0;
        for (int k = 0; k < n_exec && t < c->step_limit && !tworooms_success(&s, &goal); k++, t++) {
            tworooms_step(&s, plan + k * A);
            if (frames) tworooms_render(&s, frames + (size_t)shown++ * frame_bytes);
        }
    }
    res.success = tworooms_success(&s, &goal);
    res.steps = t;
    res.final_distance = hypot(s.x - goal.x, s.y - goal.y);
    if (n_frames) *n_frames = shown;
    free(goal_rgb);
    free(now_rgb);
    return res;
}

void plan_config_from(const Config *cfg, MpcConfig *out) {
    memset(out, 0, sizeof *out);
    CemConfig *c = &out->cem;
    c->samples = cfg->plan.samples;
    c->elites = cfg->plan.elites;
    c->iterations = cfg->plan.iterations;
    c->horizon = cfg->plan.horizon;
    c->action_dim = 2;
    for (int a = 0; a < 2; a++) c->lo[a] = -TWOROOMS.action_bound, c->hi[a] = TWOROOMS.action_bound;
    c->init_std = cfg->plan.init_std;
    c->min_std = cfg->plan.min_std;
    if (c->elites > c->samples)
        die_input("plan.elites (%d) must be at most plan.samples (%d)", c->elites, c->samples);
    out->execute = cfg->plan.execute < c->horizon ? cfg->plan.execute : c->horizon;
    out->step_limit = cfg->plan.step_limit ? cfg->plan.step_limit : TWOROOMS.step_limit;
    out->seed = (uint64_t)cfg->meta.seed;
}

// ---------------------------------------------------------------------------------------------------- jepa plan

static const char *PLAN_HELP =
    "usage: jepa plan CONFIG --checkpoint RUN [options] [key=value ...]\n"
    "\n"
    "Model-predictive control in plan.world (tworooms) with the action-conditioned predictor of RUN\n"
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
    "  --strip FILE.png    a picture of the first 4 episodes: frames along each row, the goal last\n"
    "  --no-model          only the baselines (random, true dynamics): no checkpoint needed\n"
    "  --with-latent       also 'true dyn+latent' (slow: encodes every sample's final frame)\n"
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

static void tally_print(const char *name, const Tally *t) {
    printf("%-16s success %3d/%d = %5.1f%% | mean steps %5.1f | mean final distance %5.1f px | plan %.3f s per action\n",
           name, t->successes, t->episodes, 100.0 * t->successes / t->episodes, t->steps / t->episodes,
           t->final_distance / t->episodes, t->actions_planned ? t->plan_seconds / t->actions_planned : 0.0);
}

enum { STRIP_ROWS = 4, STRIP_COLS = 9 };

// Row e: STRIP_COLS - 1 frames evenly spaced over the episode, then the goal.
static void strip_row(uint8_t *strip, int row, const uint8_t *frames, int n_frames, const uint8_t *goal) {
    const int s = TWOROOMS.size, W = STRIP_COLS * (s + 2);
    const size_t fb = (size_t)s * s * 3;
    for (int c = 0; c < STRIP_COLS; c++) {
        const uint8_t *src = c == STRIP_COLS - 1 ? goal
                                                 : frames + (size_t)((int64_t)c * (n_frames - 1) / (STRIP_COLS - 2)) * fb;
        for (int i = 0; i < s; i++)
            memcpy(strip + (((size_t)row * (s + 2) + i) * W + (size_t)c * (s + 2)) * 3, src + (size_t)i * s * 3,
                   (size_t)s * 3);
    }
}

typedef struct {
    const char *config, *checkpoint, *strip;
    const char *only;  // run one planner: random, true, latent, model
    int episodes, no_model, with_latent, n_overrides;
    char **overrides;
} PlanOptions;

static void parse_plan(int argc, char **argv, PlanOptions *o) {
    memset(o, 0, sizeof *o);
    o->overrides = xcalloc((size_t)argc + 1, sizeof(char *));
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const int has_value = i + 1 < argc;
        if (!strcmp(a, "--checkpoint") && has_value) o->checkpoint = argv[++i];
        else if (!strcmp(a, "--strip") && has_value) o->strip = argv[++i];
        else if (!strcmp(a, "--only") && has_value) o->only = argv[++i];
        else if (!strcmp(a, "--episodes") && has_value) {
            char *end;
            o->episodes = (int)strtol(argv[++i], &end, 10);
            if (*end || o->episodes < 1) die_input("plan: --episodes '%s': expected a positive integer", argv[i]);
        } else if (!strcmp(a, "--no-model")) o->no_model = 1;
        else if (!strcmp(a, "--with-latent")) o->with_latent = 1;
        else if (!strncmp(a, "--", 2)) die_input("plan: unknown option or missing value '%s' (see jepa plan --help)", a);
        else if (strchr(a, '=')) o->overrides[o->n_overrides++] = argv[i];
        else if (!o->config) o->config = a;
        else die_input("plan: a second config '%s' after '%s'; overrides look like key=value", a, o->config);
    }
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
    if (strcmp(cfg.plan.world, "tworooms"))
        die_input("plan.world: jepa plan runs tworooms only so far, got '%s' (pusht: world, data and training are done, "
                  "its MPC loop is not)", cfg.plan.world);
    if (o.episodes) cfg.plan.episodes = o.episodes;
    MpcConfig mc;
    plan_config_from(&cfg, &mc);
    Backend *be = backend_cpu_create(0, cfg.meta.threads);
    AcModel *model = o.no_model ? NULL : load_planner(&cfg, o.checkpoint, be, &mc);
    const int E = cfg.plan.episodes, s = TWOROOMS.size;
    uint8_t *frames = xmalloc((size_t)(mc.step_limit + 1) * s * s * 3), *goal = xmalloc((size_t)s * s * 3);
    const int strip_w = STRIP_COLS * (s + 2), strip_h = STRIP_ROWS * (s + 2);
    uint8_t *strip = xcalloc((size_t)strip_w * strip_h * 3, 1);
    printf("tworooms: %d episodes (seed %d), step limit %d, success radius %g px | CEM %d samples, %d elites, %d "
           "iterations, horizon %d, execute %d\n", E, cfg.meta.seed, mc.step_limit, TWOROOMS.success_radius,
           mc.cem.samples, mc.cem.elites, mc.cem.iterations, mc.cem.horizon, mc.execute);
    const PlannerKind kinds[4] = {PLANNER_RANDOM, PLANNER_TRUE_DYNAMICS, PLANNER_TRUE_LATENT, PLANNER_MODEL};
    const char *names[4] = {"random actions", "true dynamics", "true dyn+latent", "ac model"};
    for (int k = 0; k < 4; k++) {
        if ((o.no_model && k >= 2) || (o.only && strcmp(o.only, names[k]) && !(k == 3 && !strcmp(o.only, "model"))) ||
            (k == 2 && !o.with_latent && !o.only))
            continue;
        Tally t = {0};
        const double t0 = now_seconds();
        for (int e = 0; e < E; e++) {
            int n_frames = 0;
            const int record = kinds[k] == PLANNER_MODEL && o.strip && e < STRIP_ROWS;
            const EpisodeResult r = mpc_tworooms_episode(&mc, kinds[k], model, e, record ? frames : NULL, &n_frames);
            tally_add(&t, &r, mc.execute);
            if (record) {
                TwoRoomsState st, g;
                tworooms_episode(mc.seed, e, &st, &g);
                tworooms_render(&g, goal);
                strip_row(strip, e, frames, n_frames, goal);
            }
        }
        tally_print(names[k], &t);
        printf("%-16s (%.1f s wall)\n", "", now_seconds() - t0);
        fflush(stdout);
    }
    if (o.strip && model) {
        raster_write_png(o.strip, strip, strip_h, strip_w);
        printf("strip: %s (rows: episodes 0-%d; frames left to right, the goal last)\n", o.strip, STRIP_ROWS - 1);
    }
    free(frames);
    free(goal);
    free(strip);
    free(o.overrides);
    ac_free(model);
    backend_destroy(be);
    return JEPA_EXIT_OK;
}
