// test_world_tworooms.c: the two-rooms world (dynamics, walls, door, rendering, determinism) and the rasteriser.
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "common.h"
#include "raster.h"
#include "test.h"
#include "world_balls.h"
#include "world_tworooms.h"

#define SEED 77
#define FRAME_BYTES ((size_t)64 * 64 * 3)

static void test_raster_areas(void) {
    uint8_t *rgb = xcalloc(64 * 64 * 3, 1);
    Image im = {64, 64, rgb};
    static const uint8_t BLACK[3] = {0, 0, 0}, WHITE[3] = {255, 255, 255};
    // Covered area = sum of (channel value / 255); sub-sampling at 4x4 per pixel errs by at most about the perimeter
    // times half a sub-sample (1/8 px) per unit length, so tolerances below are perimeter / 8 plus rounding.
    raster_clear(&im, BLACK);
    raster_disc(&im, 20.3, 30.7, 9.5, WHITE);
    double area = 0;
    for (int p = 0; p < 64 * 64; p++) area += rgb[3 * p] / 255.0;
    const double disc = M_PI * 9.5 * 9.5;
    TEST_CHECK("raster_disc_area", fabs(area - disc) < 2 * M_PI * 9.5 / 8, "area %.2f, expected %.2f", area, disc);
    raster_clear(&im, BLACK);
    raster_rect(&im, 3.25, 4.5, 10.75, 20, WHITE);
    area = 0;
    for (int p = 0; p < 64 * 64; p++) area += rgb[3 * p] / 255.0;
    TEST_CHECK("raster_rect_area_exact", fabs(area - 7.5 * 15.5) < 0.05, "area %.3f, expected %.3f", area, 7.5 * 15.5);
    raster_clear(&im, BLACK);
    const double tri[6] = {5, 5, 50, 12, 20, 60};  // area by the shoelace formula (doubles)
    const double tri_area = 0.5 * fabs((tri[2] - tri[0]) * (tri[5] - tri[1]) - (tri[4] - tri[0]) * (tri[3] - tri[1]));
    raster_polygon(&im, tri, 3, WHITE);
    area = 0;
    for (int p = 0; p < 64 * 64; p++) area += rgb[3 * p] / 255.0;
    TEST_CHECK("raster_polygon_area", fabs(area - tri_area) < 150.0 / 8 + 2, "area %.2f, expected %.2f", area,
               tri_area);
    free(rgb);
}

static int same_colour(const uint8_t *px, const uint8_t c[3]) { return px[0] == c[0] && px[1] == c[1] && px[2] == c[2]; }

static void test_render(void) {
    uint8_t *rgb = xmalloc(FRAME_BYTES);
    const TwoRoomsState s = {10.5, 50.5};
    tworooms_render(&s, rgb);
    uint8_t agent[3];
    balls_palette(6, 0, agent);
    const uint8_t *at = rgb + 3 * (50 * 64 + 10), *shadow = rgb + 3 * (5 * 64 + 40), *wall = rgb + 3 * (5 * 64 + 32),
                  *door = rgb + 3 * (32 * 64 + 32), *cross = rgb + 3 * (50 * 64 + 22), *row_shadow = rgb + 3 * (50 * 64 + 50);
    TEST_CHECK("tworooms_render_agent", same_colour(at, agent), "agent pixel %d,%d,%d", at[0], at[1], at[2]);
    // Across the wall, off the door's line of sight: the wall's shadow (plain floor); the doorway: lit, not wall.
    TEST_CHECK("tworooms_render_shadow", same_colour(shadow, BALLS_BACKGROUND) && door[0] < 150 &&
               door[0] > BALLS_BACKGROUND[0], "floor pixels %d (behind the wall) and %d (door)", shadow[0], door[0]);
    // The lamp: along row 20 (off the crosshair) the floor darkens with the distance to the agent, and is still lit
    // at the far corner of the agent's room (the lamp reaches 96 px).
    int monotone = 1;
    for (int j = 14; j < 29; j++) monotone &= rgb[3 * (20 * 64 + j)] <= rgb[3 * (20 * 64 + j - 1)];
    TEST_CHECK("tworooms_render_lamp_fades", monotone && rgb[3 * (20 * 64 + 13)] > rgb[3 * (20 * 64 + 28)] &&
               rgb[3 * (1 * 64 + 27)] > BALLS_BACKGROUND[0], "row 20 does not darken away from the agent, or the "
               "corner (1, 27) is dark (%d)", rgb[3 * (1 * 64 + 27)]);
    // The crosshair through the agent: between the background and the agent's colour, far from the agent; the row
    // line stops at the wall (the agent's row, y 50.5, does not pass through the door, y 22-42).
    TEST_CHECK("tworooms_render_crosshair", cross[0] > BALLS_BACKGROUND[0] + 20 && cross[0] < agent[0] - 20 &&
               same_colour(row_shadow, BALLS_BACKGROUND), "crosshair pixels %d (beside the agent) and %d (across "
               "the wall; background %d, agent %d)", cross[0], row_shadow[0], BALLS_BACKGROUND[0], agent[0]);
    TEST_CHECK("tworooms_render_wall", wall[0] > 150 && !same_colour(wall, BALLS_BACKGROUND), "wall pixel %d", wall[0]);
    // The agent moves by one pixel in x: the picture changes far away in its own room (the lamp's slope reaches
    // everywhere), but not in the other room's lower part, which the wall hides from it.
    uint8_t *moved = xmalloc(FRAME_BYTES);
    const TwoRoomsState s2 = {11.5, 50.5};
    tworooms_render(&s2, moved);
    int far_changed = 0, hidden_changed = 0;
    for (int i = 0; i < 64; i++)
        for (int j = 0; j < 64; j++)
            if (memcmp(rgb + 3 * (i * 64 + j), moved + 3 * (i * 64 + j), 3)) {
                far_changed += j < 30 && hypot(j + 0.5 - 11, i + 0.5 - 50.5) > 40;
                hidden_changed += j >= 34 && i >= 50;
            }
    TEST_CHECK("tworooms_render_slope_and_shadow", far_changed > 0 && hidden_changed == 0,
               "%d pixels changed far away in the agent's room, %d behind the wall", far_changed, hidden_changed);
    // At the door's height the row line and the light go through the door into the other room.
    const TwoRoomsState at_door = {10.5, 32.5};
    tworooms_render(&at_door, rgb);
    const uint8_t *through = rgb + 3 * (32 * 64 + 50);
    TEST_CHECK("tworooms_render_through_door", through[0] > BALLS_BACKGROUND[0] + 20, "pixel %d", through[0]);
    free(rgb);
    free(moved);
}

// The shortest path through the door: the straight line within a room, the way round the wall across it.
static void test_geodesic(void) {
    double *dist = xmalloc((size_t)64 * 64 * sizeof(double));
    const TwoRoomsState goal = {10.5, 50.5};
    tworooms_geodesic(&goal, dist);
    const double same_room = dist[20 * 64 + 20], across = dist[50 * 64 + 50], wall = dist[50 * 64 + 32];
    // Within the room, 8-connected moves overestimate a straight line by at most 1 / cos(22.5 deg) - 1 (8.2%).
    const double straight = hypot(20 - 10, 30);
    TEST_CHECK("tworooms_geodesic_same_room", same_room >= straight - 1e-9 && same_room <= 1.083 * straight,
               "%.2f for a straight line of %.2f", same_room, straight);
    // Across the wall: round the door's lower corners as the centre sees them ((27, 39) and (37, 39): the wall
    // and the door's edge widened by the agent's radius), and no way through the wall itself (HUGE_VAL).
    const double round = hypot(27 - 10.5, 50.5 - 39) + 10 + hypot(50.5 - 37, 50.5 - 39);
    TEST_CHECK("tworooms_geodesic_round_the_wall", across >= round - 1 && across <= 1.083 * round && wall == HUGE_VAL,
               "%.2f (round the wall %.2f), in the wall %g", across, round, wall);
    free(dist);
}

// Random walks: the agent stays free, moves at most the bound, and changes room only through the door.
static void test_walls_and_door(void) {
    int bad_free = 0, bad_bound = 0, bad_cross = 0, crossings = 0;
    float states[2 * 64], actions[2 * 64];
    for (int e = 0; e < 300; e++) {
        tworooms_clip(TWOROOMS_POLICY_RANDOM, SEED, e, 64, NULL, states, actions);
        for (int t = 0; t < 64; t++) {
            bad_free += !tworooms_free(states[2 * t], states[2 * t + 1]);
            if (t == 0) continue;
            const double dx = states[2 * t] - states[2 * t - 2], dy = states[2 * t + 1] - states[2 * t - 1];
            bad_bound += fabs(dx) > TWOROOMS.action_bound + 1e-4 || fabs(dy) > TWOROOMS.action_bound + 1e-4;
            const int from = tworooms_room(states[2 * t - 2]), to = tworooms_room(states[2 * t]);
            if (from != to) {
                crossings++;
                // both ends of a step that crosses the wall band lie within the door's y span
                const double lo = TWOROOMS.door_y0 + TWOROOMS.agent_radius, hi = TWOROOMS.door_y1 - TWOROOMS.agent_radius;
                if (from != -1 && to != -1 && (states[2 * t + 1] < lo - 6 || states[2 * t + 1] > hi + 6)) bad_cross++;
            }
        }
    }
    TEST_CHECK("tworooms_agent_stays_free", bad_free == 0, "%d states inside a wall", bad_free);
    TEST_CHECK("tworooms_action_bound", bad_bound == 0, "%d steps beyond the bound", bad_bound);
    TEST_CHECK("tworooms_crosses_only_at_door", crossings > 0 && bad_cross == 0, "%d crossings, %d outside the door",
               crossings, bad_cross);
    // Straight into the wall far from the door: blocked; along it: slides.
    TwoRoomsState s = {24, 8};
    tworooms_step(&s, (double[]){6, 0});
    TEST_CHECK("tworooms_wall_blocks", s.x <= TWOROOMS.wall_x0 - TWOROOMS.agent_radius + 1e-9 && s.x > 26.5,
               "x %.3f", s.x);
    tworooms_step(&s, (double[]){6, 6});
    TEST_CHECK("tworooms_wall_slides", fabs(s.y - 14) < 1e-9, "y %.3f, expected 14", s.y);
}

static void test_determinism_and_episodes(void) {
    uint8_t *a = xmalloc(16 * FRAME_BYTES), *b = xmalloc(16 * FRAME_BYTES);
    float sa[32], sb[32], aa[32], ab[32];
    tworooms_clip(TWOROOMS_POLICY_NOISY_EXPERT, SEED, 5, 16, a, sa, aa);
    tworooms_clip(TWOROOMS_POLICY_NOISY_EXPERT, SEED, 5, 16, b, sb, ab);
    TEST_CHECK("tworooms_clip_deterministic",
               !memcmp(a, b, 16 * FRAME_BYTES) && !memcmp(sa, sb, sizeof sa) && !memcmp(aa, ab, sizeof aa),
               "two draws of one episode differ");
    tworooms_clip(TWOROOMS_POLICY_NOISY_EXPERT, SEED, 6, 16, b, sb, ab);
    TEST_CHECK("tworooms_clips_differ", memcmp(a, b, 16 * FRAME_BYTES) != 0, "episodes 5 and 6 are the same");
    // The frames are the renders of the states.
    uint8_t *one = xmalloc(FRAME_BYTES);
    int mismatch = 0;
    for (int t = 0; t < 16; t++) {
        tworooms_render(&(TwoRoomsState){sa[2 * t], sa[2 * t + 1]}, one);
        mismatch += memcmp(one, a + t * FRAME_BYTES, FRAME_BYTES) != 0;  // float states: may differ by rounding
    }
    TEST_CHECK("tworooms_frames_show_states", mismatch <= 2, "%d of 16 frames differ from their state's render",
               mismatch);
    int opposite = 0, expert = 0;
    for (int e = 0; e < 100; e++) {
        TwoRoomsState s, g;
        tworooms_episode(SEED, e, &s, &g);
        opposite += tworooms_room(s.x) + tworooms_room(g.x) == 1 && tworooms_free(s.x, g.y) >= 0;
        // The expert without noise is an upper bound: it must solve every episode within the step limit.
        for (int t = 0; t < TWOROOMS.step_limit && !tworooms_success(&s, &g); t++) {
            double act[2];
            tworooms_policy(TWOROOMS_POLICY_NOISY_EXPERT, SEED, e, t, &s, &g, act);
            tworooms_step(&s, act);
        }
        expert += tworooms_success(&s, &g);
    }
    TEST_CHECK("tworooms_episodes_opposite_rooms", opposite == 100, "%d of 100", opposite);
    TEST_CHECK("tworooms_noisy_expert_solves", expert >= 90, "noisy expert solved %d of 100", expert);
    free(a);
    free(b);
    free(one);
}

int main(void) {
    test_raster_areas();
    test_render();
    test_geodesic();
    test_walls_and_door();
    test_determinism_and_episodes();
    TEST_EXIT();
}
