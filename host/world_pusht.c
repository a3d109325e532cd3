// world_pusht.c: Push-T on Chipmunk2D (world_pusht.h).
#include "world_pusht.h"

#include <chipmunk/chipmunk.h>
#include <math.h>

#include "common.h"
#include "raster.h"
#include "rng.h"

const PushtState PUSHT_GOAL = {0, 0, 256, 256, 3.14159265358979323846 / 4};

enum { T_SCALE = 30, T_LENGTH = 4 };
static const double AGENT_RADIUS = 15, K_P = 100, K_V = 20;

struct PushtSim {
    cpSpace *space;
    cpBody *agent, *block;
    cpShape *shapes[8];  // 4 walls, the pusher, the T's two boxes: freed with the space
    int n_shapes;
};

static cpShape *keep(PushtSim *sim, cpShape *shape) {
    if (!shape) die_internal("world_pusht.c: Chipmunk could not make a shape");
    JEPA_ASSERT(sim->n_shapes < 8);
    cpSpaceAddShape(sim->space, shape);
    return sim->shapes[sim->n_shapes++] = shape;
}

// The T's two boxes in body coordinates (the reference's vertices): the bar, then the stem.
static void tee_vertices(cpVect bar[4], cpVect stem[4]) {
    const double s = T_SCALE, h = T_LENGTH * T_SCALE / 2.0;
    bar[0] = cpv(-h, s), bar[1] = cpv(h, s), bar[2] = cpv(h, 0), bar[3] = cpv(-h, 0);
    stem[0] = cpv(-s / 2, s), stem[1] = cpv(-s / 2, T_LENGTH * s), stem[2] = cpv(s / 2, T_LENGTH * s),
    stem[3] = cpv(s / 2, s);
}

static void add_wall(PushtSim *sim, cpVect a, cpVect b) {
    keep(sim, cpSegmentShapeNew(cpSpaceGetStaticBody(sim->space), a, b, 2));
}

static cpShape *add_poly(PushtSim *sim, cpBody *body, const cpVect v[4]) {
    cpShape *shape = keep(sim, cpPolyShapeNew(body, 4, v, cpTransformIdentity, 0));
    cpShapeSetFriction(shape, 1);
    return shape;
}

static cpBody *add_tee(PushtSim *sim) {
    cpVect bar[4], stem[4];
    tee_vertices(bar, stem);
    const double mass = 1;
    const double moment = cpMomentForPoly(mass, 4, bar, cpvzero, 0) + cpMomentForPoly(mass, 4, stem, cpvzero, 0);
    cpBody *body = cpSpaceAddBody(sim->space, cpBodyNew(mass, moment));
    add_poly(sim, body, bar);
    add_poly(sim, body, stem);
    // The reference puts the centre of gravity halfway between the two boxes' centroids.
    cpBodySetCenterOfGravity(body, cpvmult(cpvadd(cpCentroidForPoly(4, bar), cpCentroidForPoly(4, stem)), 0.5));
    return body;
}

static PushtSim *pusht_build(const PushtState *s) {
    PushtSim *sim = xcalloc(1, sizeof *sim);
    sim->space = cpSpaceNew();
    if (!sim->space) die_internal("world_pusht.c: cpSpaceNew failed");
    cpSpaceSetGravity(sim->space, cpvzero);
    cpSpaceSetDamping(sim->space, 0);
    add_wall(sim, cpv(5, 506), cpv(5, 5));
    add_wall(sim, cpv(5, 5), cpv(506, 5));
    add_wall(sim, cpv(506, 5), cpv(506, 506));
    add_wall(sim, cpv(5, 506), cpv(506, 506));
    sim->agent = cpSpaceAddBody(sim->space, cpBodyNewKinematic());
    cpShapeSetFriction(keep(sim, cpCircleShapeNew(sim->agent, AGENT_RADIUS, cpvzero)), 1);
    sim->block = add_tee(sim);
    cpBodySetPosition(sim->agent, cpv(s->agent_x, s->agent_y));
    cpBodySetAngle(sim->block, s->block_angle);  // angle first, then position (the reference's non-legacy order)
    cpBodySetPosition(sim->block, cpv(s->block_x, s->block_y));
    return sim;
}

PushtSim *pusht_create(const PushtState *s) {
    PushtSim *sim = pusht_build(s);
    cpSpaceStep(sim->space, 1.0 / PUSHT_SIM_HZ);
    return sim;
}

PushtSim *pusht_restore(const PushtState *s, const double v[2]) {
    PushtSim *sim = pusht_build(s);
    cpBodySetVelocity(sim->agent, cpv(v[0], v[1]));
    return sim;
}

void pusht_get_agent_velocity(const PushtSim *sim, double v[2]) {
    const cpVect u = cpBodyGetVelocity(sim->agent);
    v[0] = u.x, v[1] = u.y;
}

void pusht_free(PushtSim *sim) {
    if (!sim) return;
    // cpSpaceFree frees neither shapes nor bodies: remove and free them first.
    for (int k = 0; k < sim->n_shapes; k++) {
        cpSpaceRemoveShape(sim->space, sim->shapes[k]);
        cpShapeFree(sim->shapes[k]);
    }
    cpBody *bodies[2] = {sim->agent, sim->block};
    for (int k = 0; k < 2; k++) {
        cpSpaceRemoveBody(sim->space, bodies[k]);
        cpBodyFree(bodies[k]);
    }
    cpSpaceFree(sim->space);
    free(sim);
}

void pusht_get_state(const PushtSim *sim, PushtState *s) {
    const cpVect a = cpBodyGetPosition(sim->agent), b = cpBodyGetPosition(sim->block);
    *s = (PushtState){a.x, a.y, b.x, b.y, cpBodyGetAngle(sim->block)};
}

// The PD law's new velocity for a pusher at p moving at v towards target (clipped to the table), one physics step.
static cpVect pd_velocity(cpVect p, cpVect v, const double target_in[2]) {
    const cpVect target = cpv(fmin(fmax(target_in[0], 0), PUSHT_TABLE), fmin(fmax(target_in[1], 0), PUSHT_TABLE));
    const cpVect acc = cpvsub(cpvmult(cpvsub(target, p), K_P), cpvmult(v, K_V));
    return cpvadd(v, cpvmult(acc, 1.0 / PUSHT_SIM_HZ));
}

void pusht_step(PushtSim *sim, const double target[2]) {
    for (int k = 0; k < PUSHT_SIM_HZ / (int)PUSHT_CONTROL_HZ; k++) {
        const cpVect v = pd_velocity(cpBodyGetPosition(sim->agent), cpBodyGetVelocity(sim->agent), target);
        cpBodySetVelocity(sim->agent, v);
        cpSpaceStep(sim->space, 1.0 / PUSHT_SIM_HZ);
    }
}

void pusht_agent_step(double p[2], double v[2], const double target[2]) {
    cpVect pos = cpv(p[0], p[1]), vel = cpv(v[0], v[1]);
    for (int k = 0; k < PUSHT_SIM_HZ / (int)PUSHT_CONTROL_HZ; k++) {
        vel = pd_velocity(pos, vel, target);
        pos = cpvadd(pos, cpvmult(vel, 1.0 / PUSHT_SIM_HZ));  // Chipmunk's kinematic integration
    }
    p[0] = pos.x, p[1] = pos.y, v[0] = vel.x, v[1] = vel.y;
}

// The T's boxes for a pose, in table units times k (1: the table; PUSHT_IMAGE / PUSHT_TABLE: pixels): xy[2][8].
static void tee_corners(double x, double y, double angle, double k, double xy[2][8]) {
    cpVect box[2][4];
    tee_vertices(box[0], box[1]);
    const double c = cos(angle), s = sin(angle);
    for (int b = 0; b < 2; b++)
        for (int v = 0; v < 4; v++) {
            xy[b][2 * v] = k * (x + c * box[b][v].x - s * box[b][v].y);
            xy[b][2 * v + 1] = k * (y + s * box[b][v].x + c * box[b][v].y);
        }
}

static void tee_pixels(double x, double y, double angle, double xy[2][8]) {
    tee_corners(x, y, angle, PUSHT_IMAGE / PUSHT_TABLE, xy);
}

void pusht_render(const PushtState *s, uint8_t *rgb) {
    static const uint8_t WHITE[3] = {255, 255, 255}, GOAL[3] = {144, 238, 144}, BLOCK[3] = {119, 136, 153},
                         AGENT[3] = {65, 105, 225}, WALL[3] = {211, 211, 211};
    Image im = {PUSHT_IMAGE, PUSHT_IMAGE, rgb};
    const double k = PUSHT_IMAGE / PUSHT_TABLE;
    double xy[2][8];
    raster_clear(&im, WHITE);
    tee_pixels(PUSHT_GOAL.block_x, PUSHT_GOAL.block_y, PUSHT_GOAL.block_angle, xy);
    for (int b = 0; b < 2; b++) raster_polygon(&im, xy[b], 4, GOAL);
    raster_rect(&im, 3 * k, 3 * k, 7 * k, 508 * k, WALL);
    raster_rect(&im, 504 * k, 3 * k, 508 * k, 508 * k, WALL);
    raster_rect(&im, 3 * k, 3 * k, 508 * k, 7 * k, WALL);
    raster_rect(&im, 3 * k, 504 * k, 508 * k, 508 * k, WALL);
    raster_disc(&im, k * s->agent_x, k * s->agent_y, k * AGENT_RADIUS, AGENT);
    tee_pixels(s->block_x, s->block_y, s->block_angle, xy);
    for (int b = 0; b < 2; b++) raster_polygon(&im, xy[b], 4, BLOCK);
}

// The reference's initial distribution.
static void draw_start(Rng *r, PushtState *start) {
    start->agent_x = rng_uniform_range(r, 50, 450);
    start->agent_y = rng_uniform_range(r, 50, 450);
    start->block_x = rng_uniform_range(r, 100, 400);
    start->block_y = rng_uniform_range(r, 100, 400);
    start->block_angle = rng_uniform_range(r, -M_PI, M_PI);
}

void pusht_episode(uint64_t seed, int64_t episode, PushtState *start) {
    Rng r = rng_stream(seed, RNG_SYNTH, PUSHT_STREAM_START, (uint64_t)episode);
    draw_start(&r, start);
}

void pusht_plan_episode(uint64_t seed, int64_t episode, PushtState *start) {
    Rng r = rng_stream(seed, RNG_SYNTH, PUSHT_STREAM_PLAN_START, (uint64_t)episode);
    do draw_start(&r, start);
    while (pusht_success(start, &PUSHT_GOAL));
}

void pusht_goal_error(const PushtState *s, const PushtState *goal, double *dist, double *angle) {
    *dist = hypot(s->block_x - goal->block_x, s->block_y - goal->block_y);
    const double d = fmod(fabs(s->block_angle - goal->block_angle), 2 * M_PI);
    *angle = d > M_PI ? 2 * M_PI - d : d;
}

int pusht_success(const PushtState *s, const PushtState *goal) {
    double dist, angle;
    pusht_goal_error(s, goal, &dist, &angle);
    return dist <= PUSHT_SUCCESS_DIST && angle <= PUSHT_SUCCESS_ANGLE;
}

// The policy's target from the state, drawing its noise from r.
static void policy_target(PushtPolicy policy, Rng *r, const PushtState *s, double target[2]) {
    if (policy == PUSHT_POLICY_RANDOM) {
        target[0] = s->agent_x + rng_uniform_range(r, -60, 60);
        target[1] = s->agent_y + rng_uniform_range(r, -60, 60);
        return;
    }
    // Behind the block as seen from the goal, so that moving towards the block pushes it towards the goal.
    const double dx = PUSHT_GOAL.block_x - s->block_x, dy = PUSHT_GOAL.block_y - s->block_y;
    const double n = fmax(hypot(dx, dy), 1e-9);
    const double bx = s->block_x - 60 * dx / n, by = s->block_y - 60 * dy / n;
    const double near = hypot(s->agent_x - bx, s->agent_y - by) < 25;
    const double gx = near ? s->block_x : bx, gy = near ? s->block_y : by;
    // At most 60 units from the pusher per step, plus noise of 20 units.
    const double ex = gx - s->agent_x, ey = gy - s->agent_y, len = fmax(hypot(ex, ey) / 60, 1);
    target[0] = s->agent_x + ex / len + 20 * rng_normal(r);
    target[1] = s->agent_y + ey / len + 20 * rng_normal(r);
}

void pusht_policy(PushtPolicy policy, uint64_t seed, int64_t episode, int t, const PushtState *s, double target[2]) {
    Rng r = rng_stream(seed, RNG_SYNTH, PUSHT_STREAM_POLICY + 16 * (uint64_t)t, (uint64_t)episode);
    policy_target(policy, &r, s, target);
}

// n steps of the noisy expert on sim, its noise from r; actions (optional) receives the targets [n, 2].
static void run_expert(PushtSim *sim, Rng *r, int n, double *actions) {
    for (int t = 0; t < n; t++) {
        PushtState s;
        double a[2];
        pusht_get_state(sim, &s);
        policy_target(PUSHT_POLICY_NOISY_EXPERT, r, &s, a);
        if (actions) actions[2 * t] = a[0], actions[2 * t + 1] = a[1];
        pusht_step(sim, a);
    }
}

// Whether the whole T lies on the table: a block pressed by the (infinitely heavy) kinematic pusher can be forced
// through a wall, and such a state is no task.
static int tee_on_table(const PushtState *s) {
    double xy[2][8];
    tee_corners(s->block_x, s->block_y, s->block_angle, 1, xy);
    for (int k = 0; k < 16; k++)
        if (xy[k / 8][k % 8] < 0 || xy[k / 8][k % 8] > PUSHT_TABLE) return 0;
    return 1;
}

enum { PUSHT_TRAJ_MAX_DRAWS = 1000 };  // a goal horizon that (almost) never moves the block is bad input, not a hang

void pusht_traj_episode(uint64_t seed, int64_t episode, int goal_steps, PushtTrajEpisode *out, double *actions) {
    Rng r = rng_stream(seed, RNG_SYNTH, PUSHT_STREAM_TRAJ, (uint64_t)episode);  // every attempt's draws, in order
    for (int attempt = 0;; attempt++) {
        if (attempt == PUSHT_TRAJ_MAX_DRAWS)
            die_input("pusht: no trajectory episode in %d draws whose block leaves the goal's success region in %d "
                      "steps (plan.goal_steps): expected more steps", PUSHT_TRAJ_MAX_DRAWS, goal_steps);
        PushtState s;
        draw_start(&r, &s);
        const int offset = (int)rng_randint(&r, 0, PUSHT_TRAJ_MAX_OFFSET + 1);
        PushtSim *sim = pusht_create(&s);
        run_expert(sim, &r, offset, NULL);
        pusht_get_state(sim, &out->start);
        pusht_get_agent_velocity(sim, out->velocity);
        pusht_free(sim);
        // The goal: the expert continued from a restored copy, exactly as a planning episode starts.
        sim = pusht_restore(&out->start, out->velocity);
        run_expert(sim, &r, goal_steps, actions);
        pusht_get_state(sim, &out->goal);
        pusht_free(sim);
        if (!pusht_success(&out->start, &out->goal) && tee_on_table(&out->start) && tee_on_table(&out->goal)) return;
    }
}

void pusht_clip(PushtPolicy policy, uint64_t seed, int64_t episode, int frames, uint8_t *rgb, float *states,
                float *actions) {
    PushtState s;
    pusht_episode(seed, episode, &s);
    PushtSim *sim = pusht_create(&s);
    const size_t frame_bytes = (size_t)PUSHT_IMAGE * PUSHT_IMAGE * 3;
    for (int t = 0; t < frames; t++) {
        pusht_get_state(sim, &s);
        double a[2];
        pusht_policy(policy, seed, episode, t, &s, a);
        if (rgb) pusht_render(&s, rgb + (size_t)t * frame_bytes);
        if (states) {
            const double v[5] = {s.agent_x, s.agent_y, s.block_x, s.block_y, s.block_angle};
            for (int k = 0; k < 5; k++) states[5 * t + k] = (float)v[k];
        }
        if (actions) actions[2 * t] = (float)a[0], actions[2 * t + 1] = (float)a[1];
        pusht_step(sim, a);
    }
    pusht_free(sim);
}
