// test_world.c: the bouncing-balls world (physics, rendering, clips) and the synthetic data source.
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "common.h"
#include "data.h"
#include "test.h"
#include "world_balls.h"

#define SEED 1234

// The data source's world at 64 px with 4 balls.
static BallsWorldConfig world64(int balls) {
    return (BallsWorldConfig){.num_balls = balls, .radius = {64 / 12.0, 64 / 6.0}, .speed = {2.0, 64 / 12.0},
                              .colours = 6, .height = 64, .width = 64};
}

static Config data_config(int crop, int frames, int rate, int balls, int flip) {
    Config cfg;
    memset(&cfg, 0, sizeof cfg);
    strcpy(cfg.data.source, "synthetic");
    cfg.data.crop_size = crop;
    cfg.data.num_frames = frames;
    cfg.data.sampling_rate = rate;
    cfg.data.synth_balls = balls;
    cfg.data.num_clips = 1;
    cfg.data_aug.random_horizontal_flip = flip;
    cfg.meta.seed = SEED;
    return cfg;
}

static float *get_clips(const Config *cfg, int64_t first, int B) {
    DataSource *ds = data_open(cfg);
    float *clips = xmalloc(data_clip_floats(ds) * B * sizeof(float));
    data_get_clips(ds, first, B, clips);
    data_close(ds);
    return clips;
}

// ---------------------------------------------------------------------------------------------------------------
// Geometry helpers

// Largest overlap of any pair, as a fraction of the smaller radius (0 when none overlap).
static double max_overlap(const BallsState *s) {
    double worst = 0;
    for (int i = 0; i < s->n; i++)
        for (int j = i + 1; j < s->n; j++) {
            const double d = hypot(s->x[i] - s->x[j], s->y[i] - s->y[j]);
            worst = fmax(worst, (s->r[i] + s->r[j] - d) / fmin(s->r[i], s->r[j]));
        }
    return worst;
}

// Largest distance by which any ball pokes out of the box, pixels (<= 0 when all are inside).
static double max_outside(const BallsWorldConfig *cfg, const BallsState *s) {
    double worst = -INFINITY;
    for (int i = 0; i < s->n; i++) {
        worst = fmax(worst, s->r[i] - s->x[i]);
        worst = fmax(worst, s->x[i] + s->r[i] - cfg->width);
        worst = fmax(worst, s->r[i] - s->y[i]);
        worst = fmax(worst, s->y[i] + s->r[i] - cfg->height);
    }
    return worst;
}

// ---------------------------------------------------------------------------------------------------------------
// Physics

// 200 frames of 8 samples: energy, box and overlap after every frame.
static void test_long_run(void) {
    const BallsWorldConfig cfg = world64(4);
    double drift = 0, outside = -INFINITY, overlap = 0;
    for (int sample = 0; sample < 8; sample++) {
        BallsState s;
        balls_init(&cfg, SEED, sample, &s);
        const double e0 = balls_kinetic_energy(&s);
        for (int t = 0; t < 200; t++) {
            balls_step(&cfg, &s, 1.0);
            drift = fmax(drift, fabs(balls_kinetic_energy(&s) - e0) / e0);
            outside = fmax(outside, max_outside(&cfg, &s));
            overlap = fmax(overlap, max_overlap(&s));
        }
    }
    printf("  energy drift %.3g, max outside %.3g px, max overlap %.3g r_min\n", drift, outside, overlap);
    TEST_CHECK("world_energy_conserved_200_frames", drift < 1e-12, "relative drift %.3g >= 1e-12", drift);
    TEST_CHECK("world_balls_inside_box", outside <= 1e-9, "a ball is %.3g px outside", outside);
    TEST_CHECK("world_no_overlap_after_steps", overlap < 0.01, "overlap %.3g of the smaller radius >= 0.01",
               overlap);
}

static BallsState two_balls(double x0, double y0, double vx0, double vy0, double r0, double x1, double y1,
                            double vx1, double vy1, double r1) {
    BallsState s;
    memset(&s, 0, sizeof s);
    s.n = 2;
    s.x[0] = x0, s.y[0] = y0, s.vx[0] = vx0, s.vy[0] = vy0, s.r[0] = r0;
    s.x[1] = x1, s.y[1] = y1, s.vx[1] = vx1, s.vy[1] = vy1, s.r[1] = r1;
    balls_set_substeps(&s);
    return s;
}

// Head-on: masses 16 and 64 (r 4 and 8) at +1 and -0.5 px/frame. 1-D elastic collision:
// v0' = ((m0 - m1) v0 + 2 m1 v1) / (m0 + m1) = -1.4,  v1' = ((m1 - m0) v1 + 2 m0 v0) / (m0 + m1) = 0.1.
static void test_head_on(void) {
    const BallsWorldConfig cfg = {.num_balls = 2, .radius = {4, 8}, .speed = {0, 1}, .colours = 6,
                                  .height = 64, .width = 128};
    BallsState s = two_balls(40, 32, 1.0, 0, 4, 64, 32, -0.5, 0, 8);  // gap 12 px closes at 1.5 px/frame
    double p0[2], p1[2];
    balls_momentum(&s, p0);
    for (int t = 0; t < 14; t++) balls_step(&cfg, &s, 1.0);  // contact at frame 8, walls far away
    balls_momentum(&s, p1);
    const double err = fmax(fabs(s.vx[0] + 1.4), fabs(s.vx[1] - 0.1));
    const double dy = fmax(fmax(fabs(s.vy[0]), fabs(s.vy[1])), fabs(s.y[0] - 32) + fabs(s.y[1] - 32));
    printf("  head-on: v0' %.15g (want -1.4), v1' %.15g (want 0.1), momentum %.15g -> %.15g\n", s.vx[0], s.vx[1],
           p0[0], p1[0]);
    TEST_CHECK("world_head_on_closed_form", err < 1e-12 && dy == 0, "velocity error %.3g, off-axis %.3g", err, dy);
    TEST_CHECK("world_head_on_momentum", fabs(p1[0] - p0[0]) < 1e-12 && p1[1] == 0, "momentum %.17g -> %.17g",
               p0[0], p1[0]);
}

// Oblique contact of unequal balls in a large box: momentum (both components) and energy are conserved.
static void test_oblique(void) {
    const BallsWorldConfig cfg = {.num_balls = 2, .radius = {3, 6}, .speed = {0, 2}, .colours = 6,
                                  .height = 200, .width = 200};
    BallsState s = two_balls(80, 100, 1.5, 0.2, 3, 110, 104, -0.7, -0.1, 6);
    double p0[2], p1[2];
    balls_momentum(&s, p0);
    const double e0 = balls_kinetic_energy(&s);
    for (int t = 0; t < 20; t++) balls_step(&cfg, &s, 1.0);
    balls_momentum(&s, p1);
    const double dp = hypot(p1[0] - p0[0], p1[1] - p0[1]) / hypot(p0[0], p0[1]);
    const double de = fabs(balls_kinetic_energy(&s) - e0) / e0;
    const int collided = fabs(s.vy[0] - 0.2) > 1e-3;
    TEST_CHECK("world_oblique_momentum_energy", collided && dp < 1e-13 && de < 1e-13,
               "collided %d, momentum error %.3g, energy error %.3g", collided, dp, de);
}

// Too many balls for rejection: the grid fallback still gives a valid, stable state.
static void test_crowded(void) {
    const BallsWorldConfig cfg = world64(30);
    BallsState s;
    balls_init(&cfg, SEED, 3, &s);
    const double overlap0 = max_overlap(&s), outside0 = max_outside(&cfg, &s);
    const double e0 = balls_kinetic_energy(&s);
    double overlap = 0;
    for (int t = 0; t < 50; t++) {
        balls_step(&cfg, &s, 1.0);
        overlap = fmax(overlap, max_overlap(&s));
    }
    const double drift = fabs(balls_kinetic_energy(&s) - e0) / e0;
    printf("  crowded (30 balls): init overlap %.3g, 50-frame overlap %.3g r_min, energy drift %.3g\n", overlap0,
           overlap, drift);
    TEST_CHECK("world_crowded_init_valid", overlap0 <= 0 && outside0 <= 0, "overlap %.3g, outside %.3g",
               overlap0, outside0);
    TEST_CHECK("world_crowded_stable", drift < 1e-12 && overlap < 0.05, "drift %.3g, overlap %.3g", drift, overlap);
}

static void test_init_ranges(void) {
    const BallsWorldConfig cfg = world64(4);
    int ok = 1;
    for (int sample = 0; sample < 100 && ok; sample++) {
        BallsState s;
        balls_init(&cfg, SEED, sample, &s);
        for (int i = 0; i < s.n; i++) {
            const double v = hypot(s.vx[i], s.vy[i]);
            ok &= s.r[i] >= cfg.radius[0] && s.r[i] <= cfg.radius[1];
            ok &= v >= cfg.speed[0] - 1e-12 && v <= cfg.speed[1] + 1e-12;
            for (int j = 0; j < i; j++) ok &= s.colour[i] != s.colour[j];
        }
        ok &= max_overlap(&s) <= 0 && max_outside(&cfg, &s) <= 0;
    }
    TEST_CHECK("world_init_in_ranges_distinct_colours", ok, "a sample broke a range, overlapped or shared a colour");
}

// ---------------------------------------------------------------------------------------------------------------
// Rendering and clips

static void test_render(void) {
    const BallsWorldConfig cfg = world64(4);
    BallsState s;
    balls_init(&cfg, SEED, 7, &s);
    uint8_t *rgb = xmalloc(64 * 64 * 3);
    balls_render(&cfg, &s, rgb);
    int centres_ok = 1;
    for (int b = 0; b < s.n; b++) {
        uint8_t want[3];
        balls_palette(cfg.colours, s.colour[b], want);
        centres_ok &= memcmp(rgb + ((int)s.y[b] * 64 + (int)s.x[b]) * 3, want, 3) == 0;
    }
    int far_ok = 1, edge = 0;
    for (int i = 0; i < 64; i++)
        for (int j = 0; j < 64; j++) {
            double gap = INFINITY;  // distance from the pixel centre to the nearest rim
            for (int b = 0; b < s.n; b++) gap = fmin(gap, hypot(j + 0.5 - s.x[b], i + 0.5 - s.y[b]) - s.r[b]);
            const uint8_t *p = rgb + (i * 64 + j) * 3;
            if (gap > 0.5) far_ok &= memcmp(p, BALLS_BACKGROUND, 3) == 0;
            if (fabs(gap) < 0.3) edge += memcmp(p, BALLS_BACKGROUND, 3) != 0;
        }
    TEST_CHECK("world_render_ball_colour_at_centre", centres_ok, "a centre pixel is not its ball's colour");
    TEST_CHECK("world_render_background_far_from_balls", far_ok, "a pixel away from every ball is not background");
    TEST_CHECK("world_render_antialiased_edges", edge > 0, "no blended pixels on the rims");
    free(rgb);
}

// balls_clip against stepping and rendering by hand; frame_step 2 against every other frame of frame_step 1.
static void test_clip_states(void) {
    const BallsWorldConfig cfg = world64(3);
    enum { T = 6, K = 3 };
    const size_t frame = 64 * 64 * 3;
    uint8_t *rgb = xmalloc(T * frame), *rgb2 = xmalloc(T * frame), *ref = xmalloc(frame);
    float states[T * K * 4], states2[T * K * 4];
    balls_clip(&cfg, SEED, 5, T, 1, rgb, states);
    BallsState s;
    balls_init(&cfg, SEED, 5, &s);
    int states_ok = 1, frames_ok = 1;
    for (int t = 0; t < T; t++) {
        for (int b = 0; b < K; b++) {
            const float *st = states + (t * K + b) * 4;
            states_ok &= st[0] == (float)s.x[b] && st[1] == (float)s.y[b] && st[2] == (float)s.vx[b] &&
                         st[3] == (float)s.vy[b];
        }
        balls_render(&cfg, &s, ref);
        frames_ok &= memcmp(ref, rgb + t * frame, frame) == 0;
        balls_step(&cfg, &s, 1.0);
    }
    TEST_CHECK("world_clip_states_match_positions", states_ok, "states differ from stepped positions");
    TEST_CHECK("world_clip_frames_match_render", frames_ok, "clip frames differ from rendered states");
    balls_clip(&cfg, SEED, 5, T / 2, 2, rgb2, states2);
    int step_ok = 1;
    for (int t = 0; t < T / 2; t++) {
        step_ok &= memcmp(rgb2 + t * frame, rgb + 2 * t * frame, frame) == 0;
        step_ok &= memcmp(states2 + t * K * 4, states + 2 * t * K * 4, K * 4 * sizeof(float)) == 0;
    }
    TEST_CHECK("world_clip_frame_step", step_ok, "frame_step 2 is not every other frame of frame_step 1");
    free(rgb), free(rgb2), free(ref);
}

// ---------------------------------------------------------------------------------------------------------------
// Data source

static void test_data_determinism(void) {
    const Config cfg = data_config(64, 8, 2, 3, 1);
    const size_t n = 64 * 64 * 3 * 8;
    float *a = get_clips(&cfg, 10, 4), *b = get_clips(&cfg, 10, 4), *c = get_clips(&cfg, 11, 1);
    TEST_CHECK("data_same_index_bitwise_same", memcmp(a, b, 4 * n * sizeof(float)) == 0, "two calls differ");
    TEST_CHECK("data_clip_independent_of_batch_position", memcmp(a + n, c, n * sizeof(float)) == 0,
               "sample 11 differs between batches");
    TEST_CHECK("data_different_indices_differ", memcmp(a, a + n, n * sizeof(float)) != 0, "samples 10, 11 equal");
    Config other_seed = cfg;
    other_seed.meta.seed = SEED + 1;
    float *d = get_clips(&other_seed, 10, 1);
    TEST_CHECK("data_different_seeds_differ", memcmp(a, d, n * sizeof(float)) != 0, "seeds give equal clips");
    free(a), free(b), free(c), free(d);
}

static void test_data_threads(void) {
    const Config cfg = data_config(64, 4, 1, 4, 1);
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    float *one = get_clips(&cfg, 0, 6);
    omp_set_num_threads(2);
    float *two = get_clips(&cfg, 0, 6);
    omp_set_num_threads(saved);
    TEST_CHECK("data_independent_of_thread_count", memcmp(one, two, 6 * 64 * 64 * 3 * 4 * sizeof(float)) == 0,
               "1 and 2 threads differ");
    free(one), free(two);
}

// The synthetic clip is the normalised balls clip; a background pixel normalises to (bg / 255 - mean) / std.
static void test_data_normalisation(void) {
    const Config cfg = data_config(64, 3, 2, 3, 0);
    const size_t pixels = 64 * 64 * 3;
    float *clip = get_clips(&cfg, 4, 1), *ref = xmalloc(pixels * 3 * sizeof(float));
    uint8_t *rgb = xmalloc(pixels * 3);
    const BallsWorldConfig world = {3, {64 / 12.0, 64 / 6.0}, {2.0, 64 / 12.0}, 6, 64, 64};
    balls_clip(&world, SEED, 4, 3, 2, rgb, NULL);
    data_normalise(rgb, pixels, ref);
    TEST_CHECK("data_clip_is_normalised_world_clip", memcmp(clip, ref, pixels * 3 * sizeof(float)) == 0,
               "data clip differs from the normalised balls clip");
    size_t bg = 0;
    while (bg < pixels && memcmp(rgb + 3 * bg, BALLS_BACKGROUND, 3) != 0) bg++;
    double err = bg < pixels ? 0 : INFINITY;
    for (int c = 0; c < 3 && bg < pixels; c++) {
        const double want = (BALLS_BACKGROUND[c] / 255.0 - DATA_MEAN[c]) / DATA_STD[c];
        err = fmax(err, fabs(clip[3 * bg + c] - want));
    }
    const double mean_want[3] = {0.485, 0.456, 0.406}, std_want[3] = {0.229, 0.224, 0.225};
    int constants_ok = 1;
    for (int c = 0; c < 3; c++) constants_ok &= DATA_MEAN[c] == mean_want[c] && DATA_STD[c] == std_want[c];
    TEST_CHECK("data_normalised_background_pixel", err < 1e-6 && constants_ok,
               "error %.3g at background pixel %zu (ImageNet constants %s)", err, bg, constants_ok ? "ok" : "wrong");
    free(clip), free(ref), free(rgb);
}

static void test_data_flip(void) {
    int flipped = -1, kept = -1, count = 0;
    for (int i = 0; i < 1000; i++) {
        const int f = data_flip_drawn(SEED, i);
        count += f;
        if (f && flipped < 0) flipped = i;
        if (!f && kept < 0) kept = i;
    }
    TEST_CHECK("data_flip_rate_half", count > 440 && count < 560, "%d of 1000 flipped", count);
    const Config on = data_config(64, 3, 1, 3, 1), off = data_config(64, 3, 1, 3, 0);
    const int T = 3, W = 64;
    const size_t n = (size_t)T * 64 * W * 3;
    float *fl = get_clips(&on, flipped, 1), *pl = get_clips(&off, flipped, 1);
    float *kf = get_clips(&on, kept, 1), *kp = get_clips(&off, kept, 1);
    int mirror = 1;
    for (size_t row = 0; row < (size_t)T * 64; row++)
        for (int j = 0; j < W; j++)
            mirror &= memcmp(fl + (row * W + j) * 3, pl + (row * W + (W - 1 - j)) * 3, 3 * sizeof(float)) == 0;
    TEST_CHECK("data_flip_exact_mirror", mirror && memcmp(fl, pl, n * sizeof(float)) != 0,
               "flipped clip of sample %d is not the mirror of the unflipped one", flipped);
    TEST_CHECK("data_flip_not_drawn_unchanged", memcmp(kf, kp, n * sizeof(float)) == 0,
               "sample %d changed without a flip", kept);
    free(fl), free(pl), free(kf), free(kp);
}

int main(void) {
    const double t0 = now_seconds();
    test_long_run();
    test_head_on();
    test_oblique();
    test_crowded();
    test_init_ranges();
    test_render();
    test_clip_states();
    test_data_determinism();
    test_data_threads();
    test_data_normalisation();
    test_data_flip();
    printf("  test_world took %.2f s\n", now_seconds() - t0);
    TEST_EXIT();
}
