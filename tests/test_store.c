// test_store.c: the HDF5 clip store and its loader (docs/data.md). Stores written by the library read back exactly
// (raw and deflate, side data, attributes); the loader's batches equal a single-threaded reference for any thread
// count, queue restart and rank split; the epoch order is a bijection reshuffled per epoch; W ranks' shards are
// disjoint, complete over an epoch and the same samples as 1 rank; crop, flip and frame statistics match their
// configured distributions; the resize matches an independent bilinear reference; and every bad file named by the
// data issue exits 2 with one line naming file, dataset and what was expected.
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "config.h"
#include "data.h"
#include "loader.h"
#include "store.h"
#include "test.h"
#include "child.h"

static char temp_dir[64];

static const char *temp_path(const char *name) {
    static char paths[64][128];
    static int next = 0;
    char *p = paths[next++ % 64];
    snprintf(p, 128, "%s/%s", temp_dir, name);
    return p;
}

// Pixel value of clip i, frame t, row y, column x, channel c: every clip, frame and pixel distinct enough.
static uint8_t pattern(int64_t i, int t, int y, int x, int c) {
    return (uint8_t)((i * 37 + t * 11 + y * 3 + x * 5 + c * 50) & 255);
}

static void fill_clip(int64_t i, int T, int H, int W, uint8_t *rgb) {
    for (int t = 0; t < T; t++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                for (int c = 0; c < 3; c++) rgb[(((size_t)t * H + y) * W + x) * 3 + c] = pattern(i, t, y, x, c);
}

// A store of N pattern clips with /states (T, 2: i, t), /actions (T, 1: -t), /labels (i % 3), /video_id (i / 2).
static void write_pattern_store(const char *path, int64_t N, int T, int H, int W, int deflate) {
    static const char names[2][STORE_STATE_NAME] = {"clip", "frame"};
    const StoreLayout layout = {.frames = T, .height = H, .width = W, .deflate_level = deflate, .state_dim = 2,
                                .state_names = names, .action_dim = 1, .has_labels = 1, .fps = 12.5,
                                .source = "test pattern", .created_by = "test_store"};
    StoreWriter *w = store_writer_create(path, &layout, 1);
    uint8_t *rgb = xmalloc((size_t)T * H * W * 3), *chunk = xmalloc(store_chunk_bound(&layout));
    float *states = xmalloc(sizeof(float) * 2 * T), *actions = xmalloc(sizeof(float) * T);
    for (int64_t i = 0; i < N; i++) {
        fill_clip(i, T, H, W, rgb);
        for (int t = 0; t < T; t++) states[2 * t] = (float)i, states[2 * t + 1] = (float)t, actions[t] = (float)-t;
        store_writer_append(w, chunk, store_encode_clip(&layout, rgb, chunk), states, actions, (int32_t)(i % 3),
                            (int32_t)(i / 2));
    }
    store_writer_close(w);
    free(rgb);
    free(chunk);
    free(states);
    free(actions);
}

// ---------------------------------------------------------------------------------------------------- round trip

static void test_round_trip(void) {
    const int N = 6, T = 8, H = 12, W = 10;
    const size_t clip_bytes = (size_t)T * H * W * 3, frame_bytes = (size_t)H * W * 3;
    uint8_t *want = xmalloc(clip_bytes);
    for (int deflate = 0; deflate <= 6; deflate += 6) {
        const char *path = temp_path(deflate ? "rt_deflate.h5" : "rt_raw.h5");
        write_pattern_store(path, N, T, H, W, deflate);
        Store *s = store_open(path, T, "test");
        StoreReader r;
        store_reader_init(&r);
        int pixels_ok = 1, ranges_ok = 1;
        for (int i = 0; i < N; i++) {
            fill_clip(i, T, H, W, want);
            pixels_ok &= !memcmp(store_read_frames(s, &r, i, 0, T), want, clip_bytes);
            ranges_ok &= !memcmp(store_read_frames(s, &r, i, 3, 6), want + 3 * frame_bytes, 3 * frame_bytes);
        }
        char name[128];
        snprintf(name, sizeof name, "store: %s clips read back exactly (whole and frames 3..5)", deflate ? "deflate" : "raw");
        TEST_CHECK(name, pixels_ok && ranges_ok && s->deflate == (deflate > 0) && s->shape.clips == N,
                   "pixels %d ranges %d deflate %d N %lld", pixels_ok, ranges_ok, s->deflate, (long long)s->shape.clips);
        float states[2 * 8 * 2], actions[8 * 2];
        int32_t labels[6], videos[6];
        store_read_side_floats(s->file, "states", 4, 2, states);
        store_read_side_floats(s->file, "actions", 4, 2, actions);
        store_read_side_ints(s->file, "labels", 0, N, labels);
        store_read_side_ints(s->file, "video_id", 0, N, videos);
        const StoreExtras *x = &s->extras;
        snprintf(name, sizeof name, "store: %s side data and attributes read back", deflate ? "deflate" : "raw");
        TEST_CHECK(name,
                   x->state_dim == 2 && x->action_dim == 1 && x->has_labels && x->has_video_id &&
                       !strcmp(x->state_names[1], "frame") && states[0] == 4 && states[2 * T + 1] == 0 &&
                       states[2 * T + 3] == 1 && actions[T + 5] == -5 && labels[5] == 2 && videos[5] == 2 &&
                       x->has_fps && x->fps == 12.5 && !strcmp(x->source, "test pattern") &&
                       !strcmp(x->created_by, "test_store"),
                   "dims %d %d names %s states %g %g actions %g labels %d videos %d fps %g source '%s'", x->state_dim,
                   x->action_dim, x->state_names[1], states[0], states[2 * T + 3], actions[T + 5], labels[5], videos[5],
                   x->fps, x->source);
        store_reader_free(&r);
        store_close(s);
    }
    free(want);
}

// ---------------------------------------------------------------------------------------------------- plan

static SampleSpace space_of(const int64_t *clips, int stores, int T, int H, int W) {
    SampleSpace space = {.stores = stores, .seed = 99, .num_frames = 4, .sampling_rate = 2, .crop = 16,
                         .scale = {0.3, 1.0}, .ratio = {0.75, 1.35}, .flip = 1};
    for (int d = 0; d < stores; d++) {
        space.shape[d] = (StoreShape){clips[d], T, H, W};
        space.epoch_clips += clips[d];
    }
    return space;
}

static void test_epoch_permutation(void) {
    static const uint64_t sizes[] = {1, 2, 3, 5, 16, 17, 100, 1000, 4097};
    int bijective = 1, reshuffled = 1;
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        const uint64_t n = sizes[k];
        char *seen = xcalloc(n, 1);
        int same_as_epoch0 = 0;
        for (uint64_t i = 0; i < n; i++) {
            const uint64_t p = epoch_permute(7, 0, n, i);
            if (p >= n || seen[p]++) bijective = 0;
            same_as_epoch0 += p == epoch_permute(7, 1, n, i);
        }
        if (n >= 100 && same_as_epoch0 > (int)(n / 10)) reshuffled = 0;
        free(seen);
    }
    TEST_CHECK("plan: each epoch's order is a permutation of [0, N) (9 sizes from 1 to 4097)", bijective, "not a bijection");
    TEST_CHECK("plan: epochs 0 and 1 order the clips differently", reshuffled, "epoch 1 repeats epoch 0");
    uint64_t identity = 0;
    for (uint64_t i = 0; i < 1000; i++) identity += epoch_permute(7, 0, 1000, i) == i;
    TEST_CHECK("plan: the order is shuffled (few fixed points)", identity < 20, "%llu of 1000 fixed points",
               (unsigned long long)identity);
}

// W ranks x accum micro-batches x B: positions disjoint and contiguous per step, every clip once per epoch, and
// 1 rank with W * accum micro-batches gets the same positions.
static void test_shards(void) {
    const int64_t clips[3] = {5, 7, 11};
    const SampleSpace space = space_of(clips, 3, 8, 16, 16);
    const int64_t E = space.epoch_clips;
    const int B = 2, accum = 2;
    for (int world = 1; world <= 4; world++) {
        const int64_t per_step = (int64_t)world * accum * B, steps = (2 * E + per_step - 1) / per_step + 1;
        const int64_t total = steps * per_step;
        int *hits = xcalloc((size_t)total, sizeof(int));
        int same_as_one_rank = 1;
        for (int64_t step = 0; step < steps; step++)
            for (int rank = 0; rank < world; rank++)
                for (int m = 0; m < accum; m++) {
                    const int64_t first = sample_first_position(step, m, accum, rank, world, B);
                    const int64_t one = sample_first_position(step, rank * accum + m, world * accum, 0, 1, B);
                    same_as_one_rank &= first == one;
                    for (int b = 0; b < B; b++)
                        if (first + b < total) hits[first + b]++;
                }
        int disjoint_complete = 1;
        for (int64_t p = 0; p < total; p++) disjoint_complete &= hits[p] == 1;
        int each_clip_once = 1;
        for (int64_t epoch = 0; epoch < 2; epoch++) {
            int seen[3][11] = {{0}};
            for (int64_t p = epoch * E; p < (epoch + 1) * E; p++) {
                SamplePlan plan;
                sample_plan(&space, p, &plan);
                seen[plan.store][plan.clip]++;
            }
            for (int d = 0; d < 3; d++)
                for (int64_t c = 0; c < clips[d]; c++) each_clip_once &= seen[d][c] == 1;
        }
        char name[160];
        snprintf(name, sizeof name, "shards: %d rank%s: positions disjoint and complete, every clip once per epoch, "
                 "= 1 rank with %d micro-batches", world, world > 1 ? "s" : "", world * accum);
        TEST_CHECK(name, disjoint_complete && each_clip_once && same_as_one_rank, "disjoint+complete %d, clips once %d, "
                   "same as one rank %d", disjoint_complete, each_clip_once, same_as_one_rank);
        free(hits);
    }
}

static void test_weighted_mixture(void) {
    const int64_t clips[2] = {10, 4};
    SampleSpace space = space_of(clips, 2, 8, 16, 16);
    space.weighted = 1;
    space.weight[0] = 0.75;
    space.weight[1] = 0.25;
    const int n = 20000;
    int from_first = 0, visits[2][10] = {{0}};
    for (int p = 0; p < n; p++) {
        SamplePlan plan;
        sample_plan(&space, p, &plan);
        from_first += plan.store == 0;
        visits[plan.store][plan.clip]++;
    }
    const double share = (double)from_first / n, bound = 4 * sqrt(0.75 * 0.25 / n);
    int all_visited = 1;
    for (int c = 0; c < 10; c++) all_visited &= visits[0][c] > 0 && (c >= 4 || visits[1][c] > 0);
    TEST_CHECK("mixture: weights [3, 1] give store 0 a 0.75 share (4-sigma binomial bound), every clip drawn",
               fabs(share - 0.75) < bound && all_visited, "share %.4f (bound %.4f), all visited %d", share, bound,
               all_visited);
}

// Crop statistics against the configured distributions. With scale [0.2, 0.5] on a square frame no try is
// rejected, so area ~ U(0.2, 0.5) and log aspect ~ U(log 0.75, log 1.35) exactly (up to pixel rounding).
// V-JEPA's [0.3, 1.0] rejects crops wider or taller than the frame; the expected means under that rejection
// are integrated numerically here.
static void crop_moments(const SampleSpace *space, int n, double *area, double *log_aspect, double *below_mid,
                         double *flips, int *inside) {
    const StoreShape *sh = &space->shape[0];
    *area = *log_aspect = *below_mid = *flips = 0;
    *inside = 1;
    const double mid = 0.5 * (space->scale[0] + space->scale[1]);
    for (int p = 0; p < n; p++) {
        SamplePlan plan;
        sample_plan(space, p, &plan);
        const double a = (double)plan.crop_h * plan.crop_w / ((double)sh->height * sh->width);
        *area += a / n;
        *log_aspect += log((double)plan.crop_w / plan.crop_h) / n;
        *below_mid += (a < mid) / (double)n;
        *flips += plan.flip / (double)n;
        *inside &= plan.crop_y >= 0 && plan.crop_x >= 0 && plan.crop_y + plan.crop_h <= sh->height &&
                   plan.crop_x + plan.crop_w <= sh->width && plan.crop_h > 0 && plan.crop_w > 0;
    }
}

static void accepted_means(const double scale[2], const double ratio[2], double *area, double *log_aspect) {
    const int grid = 1000;
    double mass = 0, sa = 0, sl = 0;
    for (int i = 0; i < grid; i++)
        for (int j = 0; j < grid; j++) {
            const double s = scale[0] + (scale[1] - scale[0]) * (i + 0.5) / grid;
            const double lr = log(ratio[0]) + (log(ratio[1]) - log(ratio[0])) * (j + 0.5) / grid;
            if (s * exp(lr) > 1 || s / exp(lr) > 1) continue;
            mass += 1, sa += s, sl += lr;
        }
    *area = sa / mass;
    *log_aspect = sl / mass;
}

static void test_crop_and_flip_statistics(void) {
    const int64_t clips[1] = {50};
    SampleSpace space = space_of(clips, 1, 8, 256, 256);
    const int n = 20000;
    double area, log_aspect, below_mid, flips;
    int inside;
    space.scale[0] = 0.2, space.scale[1] = 0.5;
    crop_moments(&space, n, &area, &log_aspect, &below_mid, &flips, &inside);
    const double want_log = 0.5 * (log(0.75) + log(1.35));
    TEST_CHECK("crop: scale [0.2, 0.5]: mean area fraction 0.35 +- 0.005, half below 0.35 +- 0.02",
               fabs(area - 0.35) < 0.005 && fabs(below_mid - 0.5) < 0.02, "mean %.4f, below %.4f", area, below_mid);
    TEST_CHECK("crop: aspect log-uniform in [0.75, 1.35]: mean log(w/h) within 0.01",
               fabs(log_aspect - want_log) < 0.01, "mean %.4f, want %.4f", log_aspect, want_log);
    const double bound = 4 * sqrt(0.25 / n);
    TEST_CHECK("flip: rate 0.5 within the 4-sigma binomial bound", fabs(flips - 0.5) < bound, "rate %.4f (bound %.4f)",
               flips, bound);
    space.scale[0] = 0.3, space.scale[1] = 1.0;
    crop_moments(&space, n, &area, &log_aspect, &below_mid, &flips, &inside);
    double want_area, want_aspect;
    accepted_means(space.scale, space.ratio, &want_area, &want_aspect);
    TEST_CHECK("crop: V-JEPA's scale [0.3, 1.0]: mean area and log aspect match the accepted region within 0.01",
               fabs(area - want_area) < 0.01 && fabs(log_aspect - want_aspect) < 0.01 && inside,
               "area %.4f want %.4f, log aspect %.4f want %.4f, inside %d", area, want_area, log_aspect, want_aspect,
               inside);
    SampleSpace no_flip = space;
    no_flip.flip = 0;
    int never = 1, same_crops = 1;
    for (int p = 0; p < 500; p++) {
        SamplePlan a, b;
        sample_plan(&space, p, &a);
        sample_plan(&no_flip, p, &b);
        never &= !b.flip;
        same_crops &= a.crop_x == b.crop_x && a.crop_y == b.crop_y && a.crop_w == b.crop_w && a.first_frame == b.first_frame;
    }
    TEST_CHECK("flip: off never flips and leaves every other draw unchanged", never && same_crops, "never %d same %d",
               never, same_crops);
    int flips_match = 1;
    for (int p = 0; p < 500; p++) {
        SamplePlan a;
        sample_plan(&space, p, &a);
        flips_match &= a.flip == data_flip_drawn(space.seed, p);
    }
    TEST_CHECK("flip: the same draw as the synthetic source (data_flip_drawn)", flips_match, "differs");
}

static void test_frame_sampling(void) {
    const int64_t clips[1] = {10};
    SampleSpace space = space_of(clips, 1, 80, 16, 16);
    space.num_frames = 16, space.sampling_rate = 4;
    static const int vjepa[16] = {0, 4, 8, 12, 17, 21, 25, 29, 34, 38, 42, 46, 51, 55, 59, 63};
    int starts[17] = {0}, indices_ok = 1;
    const int n = 4000;
    for (int p = 0; p < n; p++) {
        SamplePlan plan;
        sample_plan(&space, p, &plan);
        if (plan.first_frame < 0 || plan.first_frame > 16) indices_ok = 0;
        else starts[plan.first_frame]++;
        for (int i = 0; i < 16; i++) indices_ok &= plan.frame[i] == plan.first_frame + vjepa[i];
    }
    int uniform = 1;
    for (int s = 0; s <= 16; s++) uniform &= fabs(starts[s] - n / 17.0) < 5 * sqrt(n / 17.0);
    TEST_CHECK("frames: 16 at step 4 are V-JEPA's linspace over a 64-frame window (0, 4, 8, 12, 17, ..., 63)",
               indices_ok, "indices differ");
    TEST_CHECK("frames: the window start is uniform over [0, T - 64] (T = 80; 5 sigma per value)", uniform,
               "start 0: %d, 16: %d of %d", starts[0], starts[16], n);
}

// ---------------------------------------------------------------------------------------------------- render

// An independent bilinear resize (double precision, align_corners = false) of one channel.
static double reference_pixel(const uint8_t *frame, int W, const SamplePlan *plan, int S, int yo, int xo, int c) {
    const double sy = fmax(0, (yo + 0.5) * plan->crop_h / S - 0.5);
    const int xs_out = plan->flip ? S - 1 - xo : xo;
    const double sx = fmax(0, (xs_out + 0.5) * plan->crop_w / S - 0.5);
    const int y0 = (int)sy, x0 = (int)sx;
    const int y1 = y0 + 1 < plan->crop_h ? y0 + 1 : y0, x1 = x0 + 1 < plan->crop_w ? x0 + 1 : x0;
    const double fy = sy - y0, fx = sx - x0;
#define PX(y, x) (double)frame[((size_t)(plan->crop_y + (y)) * W + plan->crop_x + (x)) * 3 + c]
    const double v = (1 - fy) * ((1 - fx) * PX(y0, x0) + fx * PX(y0, x1)) + fy * ((1 - fx) * PX(y1, x0) + fx * PX(y1, x1));
#undef PX
    return (v / 255.0 - DATA_MEAN[c]) / DATA_STD[c];
}

static void test_render(void) {
    const int T = 4, H = 40, W = 56, S = 24;
    uint8_t *frames = xmalloc((size_t)T * H * W * 3);
    fill_clip(3, T, H, W, frames);
    const int64_t clips[1] = {1};
    SampleSpace space = space_of(clips, 1, T, H, W);
    space.num_frames = 2, space.sampling_rate = 2, space.crop = S;
    float *out = xmalloc(sizeof(float) * 2 * S * S * 3);
    double worst = 0;
    for (int p = 0; p < 40; p++) {
        SamplePlan plan;
        sample_plan(&space, p, &plan);
        sample_render(&space, &plan, frames + (size_t)plan.frame[0] * H * W * 3, H, W, out);
        for (int i = 0; i < 2; i++)
            for (int yo = 0; yo < S; yo++)
                for (int xo = 0; xo < S; xo++)
                    for (int c = 0; c < 3; c++) {
                        const uint8_t *frame = frames + (size_t)plan.frame[i] * H * W * 3;
                        const double want = reference_pixel(frame, W, &plan, S, yo, xo, c);
                        worst = fmax(worst, fabs(out[(((size_t)i * S + yo) * S + xo) * 3 + c] - want));
                    }
    }
    TEST_CHECK("render: 40 random crops, flipped or not, match an independent bilinear resize within 2e-5",
               worst < 2e-5, "worst difference %.3g", worst);
    // A crop the size of the output is the identity: pixels come out normalised, mirrored when flipped.
    SamplePlan identity = {.frame = {0, 2}, .crop_y = 5, .crop_x = 7, .crop_h = S, .crop_w = S, .flip = 1};
    sample_render(&space, &identity, frames, H, W, out);
    float normalised[3];
    int exact = 1;
    for (int yo = 0; yo < S; yo++)
        for (int xo = 0; xo < S; xo++) {
            const uint8_t *px = frames + ((size_t)(5 + yo) * W + 7 + (S - 1 - xo)) * 3;
            data_normalise(px, 1, normalised);
            for (int c = 0; c < 3; c++) exact &= fabsf(out[((size_t)yo * S + xo) * 3 + c] - normalised[c]) < 1e-5f;
        }
    TEST_CHECK("render: a crop of the output's size gives the mirrored pixels, normalised as data_normalise", exact,
               "differs");
    free(out);
    free(frames);
}

// ---------------------------------------------------------------------------------------------------- loader

static LoaderSpec spec_for(const char **paths, int stores, int threads) {
    LoaderSpec spec = {.stores = stores, .seed = 5, .num_frames = 4, .sampling_rate = 2, .crop = 16,
                       .scale = {0.3, 1.0}, .ratio = {0.75, 1.35}, .flip = 1, .batch = 3, .threads = threads,
                       .queue_depth = 3};
    for (int d = 0; d < stores; d++) spec.path[d] = paths[d];
    return spec;
}

// Samples [first, first + count) one by one on this thread: the reference for the loader.
static float *reference_samples(const LoaderSpec *spec, int64_t first, int count) {
    const size_t floats = (size_t)spec->num_frames * spec->crop * spec->crop * 3;
    float *out = xmalloc(floats * count * sizeof(float));
    Store *stores[2];
    StoreShape shapes[2];
    for (int d = 0; d < spec->stores; d++) stores[d] = store_open(spec->path[d], 1, NULL), shapes[d] = stores[d]->shape;
    SampleSpace space;
    sample_space_init(&space, spec, shapes);
    StoreReader r;
    store_reader_init(&r);
    for (int k = 0; k < count; k++) {
        SamplePlan plan;
        sample_plan(&space, first + k, &plan);
        const Store *s = stores[plan.store];
        const uint8_t *frames = store_read_frames(s, &r, plan.clip, plan.frame[0], plan.frame[spec->num_frames - 1] + 1);
        sample_render(&space, &plan, frames, s->shape.height, s->shape.width, out + (size_t)k * floats);
    }
    store_reader_free(&r);
    for (int d = 0; d < spec->stores; d++) store_close(stores[d]);
    return out;
}

static int batches_match(Loader *l, const float *reference, int64_t first, int B, int batches, size_t floats) {
    int ok = 1;
    for (int k = 0; k < batches; k++) {
        const float *got = loader_batch(l, first + (int64_t)k * B, B);
        ok &= !memcmp(got, reference + (size_t)k * B * floats, (size_t)B * floats * sizeof(float));
    }
    return ok;
}

static void test_loader(void) {
    const char *raw = temp_path("ld_raw.h5"), *deflated = temp_path("ld_deflate.h5"), *small = temp_path("ld_small.h5");
    write_pattern_store(raw, 9, 12, 20, 24, 0);
    write_pattern_store(deflated, 9, 12, 20, 24, 1);
    write_pattern_store(small, 4, 8, 32, 16, 1);
    const char *two[2] = {deflated, small};
    const LoaderSpec spec = spec_for(two, 2, 3);
    const size_t floats = (size_t)spec.num_frames * spec.crop * spec.crop * 3;
    const int B = 3, batches = 12;  // 36 positions: 2.8 epochs of 13 clips
    float *reference = reference_samples(&spec, 0, B * batches);
    Loader *l = loader_open(&spec);
    TEST_CHECK("loader: 12 batches from 2 stores with 3 threads equal the one-thread reference", batches_match(l, reference, 0, B, batches, floats),
               "batches differ");
    TEST_CHECK("loader: a jump back (resume) restarts the read-ahead and gives the same batches",
               batches_match(l, reference + (size_t)4 * B * floats, 4 * B, B, 3, floats), "batches differ");
    const float *odd = loader_batch(l, 5, 2);
    TEST_CHECK("loader: an unaligned batch of another size is served", !memcmp(odd, reference + 5 * floats, 2 * floats * sizeof(float)),
               "batch differs");
    loader_close(l);
    LoaderSpec one_thread = spec;
    one_thread.threads = 1;
    one_thread.queue_depth = 2;
    l = loader_open(&one_thread);
    TEST_CHECK("loader: 1 thread and queue depth 2 give the same batches", batches_match(l, reference, 0, B, batches, floats),
               "batches differ");
    loader_close(l);
    // Rank split: 2 ranks x 1 micro-batch of 3 per step against the same positions in one loader.
    int ranks_match = 1;
    for (int rank = 0; rank < 2; rank++) {
        LoaderSpec rank_spec = spec;
        rank_spec.threads = 1 + rank;
        Loader *lr = loader_open(&rank_spec);
        for (int64_t step = 0; step < 6; step++) {
            const int64_t first = sample_first_position(step, 0, 1, rank, 2, B);
            ranks_match &= !memcmp(loader_batch(lr, first, B), reference + (size_t)first * floats, B * floats * sizeof(float));
        }
        loader_close(lr);
    }
    TEST_CHECK("loader: 2 ranks' batches are 1 rank's samples at the same positions", ranks_match, "differ");
    // With the ranks' pattern (2 ranks x 2 micro-batches) the read-ahead follows the rank across steps: one restart
    // (the first batch) instead of one per step, and the same samples.
    long restarts[2][2];  // [pattern set?][rank]
    int pattern_match = 1;
    for (int patterned = 0; patterned < 2; patterned++)
        for (int rank = 0; rank < 2; rank++) {
            Loader *lr = loader_open(&spec);
            if (patterned) loader_set_pattern(lr, (int64_t)rank * 2 * B, 2 * B, 4 * B);
            for (int64_t step = 0; step < 3; step++)
                for (int micro = 0; micro < 2; micro++) {
                    const int64_t first = sample_first_position(step, micro, 2, rank, 2, B);
                    pattern_match &= !memcmp(loader_batch(lr, first, B), reference + (size_t)first * floats,
                                             B * floats * sizeof(float));
                }
            restarts[patterned][rank] = loader_restarts(lr);
            loader_close(lr);
        }
    TEST_CHECK("loader: with the ranks' pattern, 2 ranks x 2 micro-batches get the same samples", pattern_match, "differ");
    TEST_CHECK("loader: with the ranks' pattern the read-ahead is never dropped (1 restart per rank, else 3)",
               restarts[1][0] == 1 && restarts[1][1] == 1 && restarts[0][0] == 3 && restarts[0][1] == 3,
               "restarts with pattern %ld %ld, without %ld %ld", restarts[1][0], restarts[1][1], restarts[0][0],
               restarts[0][1]);
    free(reference);
    // The same clips stored raw and deflated give bitwise the same batches.
    const char *raw_one[1] = {raw}, *deflate_one[1] = {deflated};
    const LoaderSpec raw_spec = spec_for(raw_one, 1, 2), deflate_spec = spec_for(deflate_one, 1, 2);
    Loader *a = loader_open(&raw_spec), *b = loader_open(&deflate_spec);
    int same = 1;
    for (int k = 0; k < 6; k++) same &= !memcmp(loader_batch(a, k * B, B), loader_batch(b, k * B, B), B * floats * sizeof(float));
    TEST_CHECK("loader: raw and deflate stores of the same clips give the same batches", same, "differ");
    loader_close(a);
    loader_close(b);
}

// The trainer's path: data_open with data.datasets set.
static void test_data_source(void) {
    Config cfg;
    char override[256];
    snprintf(override, sizeof override, "data.datasets=[%s, %s]", temp_path("ld_deflate.h5"), temp_path("ld_small.h5"));
    char *overrides[] = {override, "data.num_frames=4", "data.sampling_rate=2", "data.crop_size=16",
                         "data.patch_size=8", "data.batch_size=3", "meta.seed=5", "data.read_threads=2"};
    config_load(&cfg, NULL, 8, overrides);
    config_validate(&cfg);
    DataSource *ds = data_open(&cfg);
    const size_t floats = data_clip_floats(ds);
    float *got = xmalloc(3 * floats * sizeof(float));
    const char *two[2] = {temp_path("ld_deflate.h5"), temp_path("ld_small.h5")};
    const LoaderSpec spec = spec_for(two, 2, 1);
    float *want = reference_samples(&spec, 6, 3);
    data_get_clips(ds, 6, 3, got);
    TEST_CHECK("data source: data.datasets makes data_get_clips read the stores (same clips as the loader)",
               floats == (size_t)4 * 16 * 16 * 3 && !memcmp(got, want, 3 * floats * sizeof(float)), "floats %zu", floats);
    data_close(ds);
    free(got);
    free(want);
    // The config keys: list types round-trip through the resolved YAML.
    char *weights[] = {override, "data.datasets_weights=[2, 0.5]"};
    config_load(&cfg, NULL, 2, weights);
    FILE *f = fopen(temp_path("resolved.yaml"), "w");
    config_write_yaml(&cfg, f);
    fclose(f);
    Config back;
    config_load(&back, temp_path("resolved.yaml"), 0, NULL);
    TEST_CHECK("config: data.datasets and data.datasets_weights round-trip through the resolved YAML",
               !memcmp(&back.data.datasets, &cfg.data.datasets, sizeof cfg.data.datasets) &&
                   back.data.datasets_weights.count == 2 && back.data.datasets_weights.item[1] == 0.5 &&
                   back.data.datasets.count == 2,
               "datasets %d weights %d", back.data.datasets.count, back.data.datasets_weights.count);
}

// ---------------------------------------------------------------------------------------------------- bad files

enum { T8 = 8, H8 = 8, W8 = 8 };

// A file with /clips of the given type, dims, chunk dims (NULL = contiguous) and filters; the first `written`
// clips hold data.
static void write_odd_file(const char *path, hid_t type, int rank, const hsize_t *dims, const hsize_t *chunk,
                           int shuffle, int written) {
    const hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const hid_t space = H5Screate_simple(rank, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (chunk) H5Pset_chunk(dcpl, rank, chunk);
    if (shuffle) H5Pset_shuffle(dcpl), H5Pset_deflate(dcpl, 1);
    const hid_t dset = H5Dcreate2(file, "clips", type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    size_t clip = 1;
    for (int i = 1; i < rank; i++) clip *= dims[i];
    uint8_t *zeros = xcalloc(clip * 4, 1);
    for (int i = 0; i < written; i++) {
        const hsize_t start[5] = {(hsize_t)i, 0, 0, 0, 0};
        hsize_t count[5];
        memcpy(count, dims, sizeof(hsize_t) * rank);
        count[0] = 1;
        const hid_t fs = H5Dget_space(dset), ms = H5Screate_simple(rank, count, NULL);
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
        H5Dwrite(dset, type, ms, fs, H5P_DEFAULT, zeros);
        H5Sclose(fs), H5Sclose(ms);
    }
    free(zeros);
    H5Dclose(dset), H5Pclose(dcpl), H5Sclose(space), H5Fclose(file);
}

typedef struct {
    const char *path;
    int window;
} OpenArgs;

static void open_store_child(const void *arg) {
    const OpenArgs *a = arg;
    store_close(store_open(a->path, a->window, "data.num_frames 16 x data.sampling_rate 4"));
}

static void read_every_clip_child(const void *arg) {
    const OpenArgs *a = arg;
    const LoaderSpec spec = {.stores = 1, .path = {a->path}, .seed = 1, .num_frames = T8, .sampling_rate = 1,
                             .crop = 8, .scale = {1, 1}, .ratio = {1, 1}, .batch = 6, .threads = 2, .queue_depth = 2};
    Loader *l = loader_open(&spec);
    loader_batch(l, 0, 6);
    loader_close(l);
}

static void expect_open_error(const char *name, const char *path, int window, const char *const *expect) {
    const OpenArgs args = {path, window};
    expect_error(name, open_store_child, &args, expect);
}

static void damage_chunk(const char *path, int64_t clip) {
    Store *s = store_open(path, 1, NULL);
    const StoreChunk c = s->chunk[clip];
    store_close(s);
    const int fd = open(path, O_WRONLY);
    uint8_t junk[16];
    memset(junk, 0xA5, sizeof junk);
    if (pwrite(fd, junk, sizeof junk, (off_t)(c.offset + c.bytes / 2)) != (ssize_t)sizeof junk) perror("pwrite");
    close(fd);
}

static void test_bad_files(void) {
    const hsize_t good[5] = {3, T8, H8, W8, 3}, one_clip[5] = {1, T8, H8, W8, 3};
    const char *p;
    expect_open_error("bad file: missing file", temp_path("nope.h5"), 1,
                      (const char *[]){"nope.h5", "cannot open store", "No such file", NULL});
    p = temp_path("text.h5");
    FILE *f = fopen(p, "w");
    fputs("not hdf5\n", f);
    fclose(f);
    expect_open_error("bad file: not HDF5", p, 1, (const char *[]){"text.h5", "not an HDF5 file", "jepa data", NULL});
    p = temp_path("noclips.h5");
    H5Fclose(H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
    expect_open_error("bad file: no /clips", p, 1, (const char *[]){"noclips.h5", "no dataset /clips", "uint8 [N,T,H,W,3]", NULL});
    p = temp_path("float.h5");
    write_odd_file(p, H5T_NATIVE_FLOAT, 5, good, one_clip, 0, 3);
    expect_open_error("bad file: /clips float32", p, 1, (const char *[]){"float.h5", "/clips: dtype float32", "expected uint8", NULL});
    p = temp_path("int16.h5");
    write_odd_file(p, H5T_STD_I16LE, 5, good, one_clip, 0, 3);
    expect_open_error("bad file: /clips int16", p, 1, (const char *[]){"/clips: dtype int16", "expected uint8", NULL});
    p = temp_path("rank4.h5");
    const hsize_t rank4[4] = {3, T8, H8, W8 * 3}, rank4_chunk[4] = {1, T8, H8, W8 * 3};
    write_odd_file(p, H5T_NATIVE_UINT8, 4, rank4, rank4_chunk, 0, 3);
    expect_open_error("bad file: /clips of rank 4", p, 1, (const char *[]){"rank4.h5", "/clips: shape [3,8,8,24] has rank 4", "[N,T,H,W,3]", NULL});
    p = temp_path("rgba.h5");
    const hsize_t rgba[5] = {3, T8, H8, W8, 4}, rgba_chunk[5] = {1, T8, H8, W8, 4};
    write_odd_file(p, H5T_NATIVE_UINT8, 5, rgba, rgba_chunk, 0, 3);
    expect_open_error("bad file: 4 channels", p, 1, (const char *[]){"/clips: shape [3,8,8,8,4] has 4 channels", NULL});
    p = temp_path("empty.h5");
    const hsize_t empty[5] = {0, T8, H8, W8, 3};
    write_odd_file(p, H5T_NATIVE_UINT8, 5, empty, one_clip, 0, 0);
    expect_open_error("bad file: N = 0", p, 1, (const char *[]){"empty.h5", "/clips", "N = 0 clips", "at least one", NULL});
    p = temp_path("short.h5");
    write_pattern_store(p, 2, 16, 8, 8, 1);
    expect_open_error("bad file: T too short for the sampling", p, 64,
                      (const char *[]){"short.h5", "T = 16 frames", "data.num_frames 16 x data.sampling_rate 4 = 64",
                                       "jepa data convert --frames 64", NULL});
    p = temp_path("contiguous.h5");
    write_odd_file(p, H5T_NATIVE_UINT8, 5, good, NULL, 0, 3);
    expect_open_error("bad file: contiguous /clips", p, 1,
                      (const char *[]){"contiguous.h5", "/clips: stored contiguous", "one chunk per clip [1,8,8,8,3]",
                                       "jepa data convert --from-h5", NULL});
    p = temp_path("two_per_chunk.h5");
    const hsize_t two[5] = {2, T8, H8, W8, 3};
    write_odd_file(p, H5T_NATIVE_UINT8, 5, good, two, 0, 3);
    expect_open_error("bad file: two clips per chunk", p, 1,
                      (const char *[]){"/clips: chunks of [2,8,8,8,3]", "one chunk per clip", "--from-h5", NULL});
    p = temp_path("shuffle.h5");
    write_odd_file(p, H5T_NATIVE_UINT8, 5, good, one_clip, 1, 3);
    expect_open_error("bad file: shuffle filter", p, 1, (const char *[]){"/clips: filter", "shuffle", "deflate", "--from-h5", NULL});
    p = temp_path("unwritten.h5");
    write_odd_file(p, H5T_NATIVE_UINT8, 5, good, one_clip, 0, 2);
    expect_open_error("bad file: a clip never written", p, 1, (const char *[]){"unwritten.h5", "/clips: clip 2 has no stored chunk", NULL});
    p = temp_path("truncated.h5");
    write_pattern_store(p, 6, T8, H8, W8, 0);
    if (truncate(p, 4096)) perror("truncate");
    expect_open_error("bad file: truncated", p, 1, (const char *[]){"truncated.h5", "truncated", NULL});
    p = temp_path("damaged.h5");
    write_pattern_store(p, 6, T8, 32, 32, 6);
    damage_chunk(p, 3);
    const OpenArgs damaged = {p, 1};
    expect_error("bad file: damaged deflate chunk, found by a reader thread", read_every_clip_child, &damaged,
                 (const char *[]){"damaged.h5", "/clips: clip 3", "damaged deflate chunk", NULL});
    p = temp_path("bad_states.h5");
    write_pattern_store(p, 3, T8, H8, W8, 0);
    const hid_t file = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Ldelete(file, "labels", H5P_DEFAULT);
    const hsize_t labels_dims[1] = {3};
    const hid_t space = H5Screate_simple(1, labels_dims, NULL);
    H5Dclose(H5Dcreate2(file, "labels", H5T_IEEE_F32LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    H5Sclose(space), H5Fclose(file);
    expect_open_error("bad file: /labels float32", p, 1, (const char *[]){"/labels: dtype float32", "expected int32 [N=3]", NULL});
}

int main(void) {
    snprintf(temp_dir, sizeof temp_dir, "/tmp/test_store.XXXXXX");
    if (!mkdtemp(temp_dir)) return perror("mkdtemp"), 1;
    test_round_trip();
    test_epoch_permutation();
    test_shards();
    test_weighted_mixture();
    test_crop_and_flip_statistics();
    test_frame_sampling();
    test_render();
    test_loader();
    test_data_source();
    test_bad_files();
    char command[128];
    snprintf(command, sizeof command, "rm -rf '%s'", temp_dir);
    if (system(command)) printf("note: could not remove %s\n", temp_dir);
    TEST_EXIT();
}
