// test_world_pusht.c: Push-T on Chipmunk2D: determinism, the PD-controlled pusher, pushing moves the block and
// nothing else does (space damping 0), the walls hold, rendering, the success test, and the planning episodes.
#include <math.h>
#include <string.h>

#include "common.h"
#include "test.h"
#include "world_pusht.h"

#define FRAME_BYTES ((size_t)PUSHT_IMAGE * PUSHT_IMAGE * 3)

static void run(PushtSim *sim, double x, double y, int steps) {
    for (int t = 0; t < steps; t++) pusht_step(sim, (double[]){x, y});
}

static void test_determinism(void) {
    uint8_t *a = xmalloc(12 * FRAME_BYTES), *b = xmalloc(12 * FRAME_BYTES);
    float sa[60], sb[60], aa[24], ab[24];
    pusht_clip(PUSHT_POLICY_NOISY_EXPERT, 9, 3, 12, a, sa, aa);
    pusht_clip(PUSHT_POLICY_NOISY_EXPERT, 9, 3, 12, b, sb, ab);
    TEST_CHECK("pusht_clip_deterministic", !memcmp(a, b, 12 * FRAME_BYTES) && !memcmp(sa, sb, sizeof sa) &&
               !memcmp(aa, ab, sizeof aa), "two draws of one episode differ");
    pusht_clip(PUSHT_POLICY_NOISY_EXPERT, 9, 4, 12, b, sb, ab);
    TEST_CHECK("pusht_clips_differ", memcmp(sa, sb, sizeof sa) != 0, "episodes 3 and 4 are the same");
    free(a);
    free(b);
}

static void test_dynamics(void) {
    // The block far away: the pusher reaches its target (PD, critically damped-ish: k_p 100, k_v 20) and the block
    // does not move at all.
    const PushtState s0 = {100, 100, 350, 250, 0.3};  // the T (stem down to +120) clear of the walls
    PushtSim *sim = pusht_create(&s0);
    run(sim, 150, 120, 20);
    PushtState s;
    pusht_get_state(sim, &s);
    TEST_CHECK("pusht_pd_reaches_target", hypot(s.agent_x - 150, s.agent_y - 120) < 1.0, "pusher at %.2f, %.2f",
               s.agent_x, s.agent_y);
    TEST_CHECK("pusht_block_still_untouched", s.block_x == 350 && s.block_y == 250 && s.block_angle == 0.3,
               "block moved to %.4f, %.4f, %.4f", s.block_x, s.block_y, s.block_angle);
    pusht_free(sim);
    // Push the T along its bar (block at 256, 256, angle 0: the bar spans y in [256, 286] in body coordinates):
    // the block moves the way it is pushed, and stops when the pusher stops (damping 0).
    const PushtState s1 = {100, 271, 256, 256, 0};
    sim = pusht_create(&s1);
    run(sim, 250, 271, 30);
    PushtState after;
    pusht_get_state(sim, &after);
    TEST_CHECK("pusht_push_moves_block", after.block_x > 280, "block x %.1f after a push to the right", after.block_x);
    run(sim, after.agent_x - 40, after.agent_y, 5);  // back off
    PushtState rest1, rest2;
    pusht_get_state(sim, &rest1);
    run(sim, rest1.agent_x, rest1.agent_y, 5);
    pusht_get_state(sim, &rest2);
    TEST_CHECK("pusht_block_stops", fabs(rest2.block_x - rest1.block_x) < 1e-6, "block drifted by %.3g",
               rest2.block_x - rest1.block_x);
    // Aim far beyond the right wall: the target is clipped to the table and the pusher stays inside the walls.
    run(sim, 2000, 271, 40);
    pusht_get_state(sim, &after);
    TEST_CHECK("pusht_walls_hold", after.agent_x < 512 && after.block_x < 512, "pusher %.1f, block %.1f",
               after.agent_x, after.block_x);
    pusht_free(sim);
}

static void test_render_and_success(void) {
    uint8_t *rgb = xmalloc(FRAME_BYTES);
    const PushtState s = {100, 400, 256, 256, M_PI / 4};  // the block on the goal: the goal is hidden under it
    pusht_render(&s, rgb);
    const double k = PUSHT_IMAGE / PUSHT_TABLE;
    const uint8_t *agent = rgb + 3 * ((int)(400 * k) * PUSHT_IMAGE + (int)(100 * k));
    TEST_CHECK("pusht_render_agent", agent[0] == 65 && agent[1] == 105 && agent[2] == 225, "agent pixel %d,%d,%d",
               agent[0], agent[1], agent[2]);
    int green = 0;
    for (size_t p = 0; p < FRAME_BYTES / 3; p++) green += rgb[3 * p] == 144 && rgb[3 * p + 1] == 238;
    TEST_CHECK("pusht_goal_covered", green == 0, "%d goal pixels show with the block on the goal", green);
    const PushtState off = {100, 400, 150, 150, 0};
    pusht_render(&off, rgb);
    green = 0;
    for (size_t p = 0; p < FRAME_BYTES / 3; p++) green += rgb[3 * p] == 144 && rgb[3 * p + 1] == 238;
    // The T covers 120x30 + 30x90 = 6300 units^2 = about 221 pixels at 96/512; most of the goal shows.
    TEST_CHECK("pusht_goal_visible", green > 150, "%d goal pixels", green);
    PushtState near = PUSHT_GOAL, far = PUSHT_GOAL, turned = PUSHT_GOAL;
    near.block_x += 15, far.block_x += 25, turned.block_angle += M_PI / 10 + 2 * M_PI;
    TEST_CHECK("pusht_success_test", pusht_success(&near, &PUSHT_GOAL) && !pusht_success(&far, &PUSHT_GOAL) &&
               pusht_success(&turned, &PUSHT_GOAL), "success radius 20 and angle pi/9 (wrapped) not applied");
    free(rgb);
}

// What the planners rely on: the pusher's PD law alone is exactly where the simulation takes the (kinematic) pusher;
// a restored copy of a running episode steps like the episode; planning episodes never start solved.
static void test_planning_support(void) {
    PushtState s = {100, 100, 300, 300, 0.5};
    PushtSim *sim = pusht_create(&s);
    pusht_get_state(sim, &s);
    double p[2] = {s.agent_x, s.agent_y}, v[2] = {0, 0}, worst = 0;
    const double targets[4][2] = {{200, 150}, {320, 280}, {-50, 600}, {250, 250}};  // one off the table (clipped)
    for (int k = 0; k < 12; k++) {  // the third and fourth targets push through the block: contacts do not matter
        pusht_step(sim, targets[k % 4]);
        pusht_agent_step(p, v, targets[k % 4]);
        pusht_get_state(sim, &s);
        worst = fmax(worst, hypot(p[0] - s.agent_x, p[1] - s.agent_y));
    }
    // The same operations in the same order in double precision: equal up to rounding (1e-9 units of 512).
    TEST_CHECK("pusht_agent_step_matches_sim", worst < 1e-9, "pusher off by %.3g units", worst);
    // A copy restored from (state, pusher velocity) mid-push, both stepped with the same targets.
    double vel[2];
    pusht_get_agent_velocity(sim, vel);
    PushtSim *copy = pusht_restore(&s, vel);
    PushtState a, b;
    for (int k = 0; k < 5; k++) {
        const double t[2] = {260 + 10 * k, 260};
        pusht_step(sim, t);
        pusht_step(copy, t);
    }
    pusht_get_state(sim, &a);
    pusht_get_state(copy, &b);
    // Chipmunk warm-starts contacts from cached impulses the copy lacks: a small difference is expected, 1 unit and
    // 0.02 rad are far below the success thresholds (20 units, pi/9) the planner works to.
    const double dpos = hypot(a.block_x - b.block_x, a.block_y - b.block_y), dang = fabs(a.block_angle - b.block_angle);
    TEST_CHECK("pusht_restore_steps_like_episode", dpos < 1 && dang < 0.02 && a.agent_x == b.agent_x,
               "block off by %.3g units, %.3g rad; pusher %.6g vs %.6g", dpos, dang, a.agent_x, b.agent_x);
    pusht_free(sim);
    pusht_free(copy);
    int solved = 0, differ = 0;
    for (int e = 0; e < 500; e++) {
        PushtState st, again;
        pusht_plan_episode(0, e, &st);
        pusht_plan_episode(0, e, &again);
        solved += pusht_success(&st, &PUSHT_GOAL);
        differ += memcmp(&st, &again, sizeof st) != 0;
    }
    TEST_CHECK("pusht_plan_episodes_start_unsolved", solved == 0 && differ == 0, "%d of 500 start solved, %d differ",
               solved, differ);
}

// The trajectory protocol (pusht_traj_episode): a pure function of (seed, episode); its goal is where the expert's
// own targets take the start, exactly (the same Chipmunk operations in the same order); no start is already solved.
static void test_trajectory_protocol(void) {
    enum { K = 25, N = 100 };
    int solved = 0, differ = 0, replay_off = 0, same_as_next = 0, seed_same = 0;
    double worst = 0;
    for (int e = 0; e < N; e++) {
        PushtTrajEpisode a, b, c, other_seed;
        double actions[2 * K];
        pusht_traj_episode(3, e, K, &a, actions);
        pusht_traj_episode(3, e, K, &b, NULL);
        pusht_traj_episode(3, e + 1, K, &c, NULL);
        pusht_traj_episode(4, e, K, &other_seed, NULL);
        differ += memcmp(&a, &b, sizeof a) != 0;
        same_as_next += !memcmp(&a.start, &c.start, sizeof a.start);
        seed_same += !memcmp(&a.start, &other_seed.start, sizeof a.start);
        solved += pusht_success(&a.start, &a.goal);
        PushtSim *sim = pusht_restore(&a.start, a.velocity);
        for (int t = 0; t < K; t++) pusht_step(sim, actions + 2 * t);
        PushtState end;
        pusht_get_state(sim, &end);
        pusht_free(sim);
        replay_off += memcmp(&end, &a.goal, sizeof end) != 0;
        double dist, angle;
        pusht_goal_error(&end, &a.goal, &dist, &angle);
        worst = fmax(worst, dist + angle);
    }
    TEST_CHECK("pusht_traj_deterministic", differ == 0 && same_as_next == 0 && seed_same == 0,
               "%d of %d differ between calls; %d equal the next episode's, %d the other seed's", differ, N,
               same_as_next, seed_same);
    TEST_CHECK("pusht_traj_goal_reachable", replay_off == 0, "%d of %d replays miss the goal (worst %.3g)", replay_off,
               N, worst);
    TEST_CHECK("pusht_traj_starts_unsolved", solved == 0, "%d of %d starts already succeed", solved, N);
}

int main(void) {
    test_trajectory_protocol();
    test_planning_support();
    test_determinism();
    test_dynamics();
    test_render_and_success();
    TEST_EXIT();
}
