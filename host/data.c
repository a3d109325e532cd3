// data.c: see data.h. Each source fills DataSourceOps; the shared fields (seed, flips, clip shape) sit in
// DataSource itself so the post-processing (normalise, flip) is common to all sources.
#include "data.h"

#include <string.h>

#include "common.h"
#include "loader.h"
#include "rng.h"
#include "world_balls.h"

const double DATA_MEAN[3] = {0.485, 0.456, 0.406};
const double DATA_STD[3] = {0.229, 0.224, 0.225};

typedef struct {
    void (*get_clips)(DataSource *ds, int64_t first_sample, int B, float *clips);
    void (*close)(DataSource *ds);
} DataSourceOps;

struct DataSource {
    const DataSourceOps *ops;
    uint64_t seed;
    int flip;                  // data_aug.random_horizontal_flip
    int frames, height, width; // clip shape (T, H, W)
    int frame_step;            // data.sampling_rate
    BallsWorldConfig world;    // synthetic source
    Loader *loader;            // HDF5 stores (data.datasets)
};

// ---------------------------------------------------------------------------------------------------------------
// Shared post-processing

int data_flip_drawn(uint64_t seed, int64_t sample_index) {
    Rng rng = rng_stream(seed, RNG_AUG, 0, (uint64_t)sample_index);
    return rng_uniform(&rng) < 0.5;
}

// A table per channel: 768 divisions instead of one per pixel, and the same floats wherever they are computed.
void data_normalise(const uint8_t *rgb, size_t pixels, float *out) {
    float table[3][256];
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) table[c][v] = (float)((v / 255.0 - DATA_MEAN[c]) / DATA_STD[c]);
    for (size_t p = 0; p < pixels; p++)
        for (int c = 0; c < 3; c++) out[3 * p + c] = table[c][rgb[3 * p + c]];
}

void data_hflip(float *frames, int T, int H, int W) {
    for (size_t row = 0; row < (size_t)T * H; row++) {
        float *line = frames + row * W * 3;
        for (int a = 0, b = W - 1; a < b; a++, b--) {
            for (int c = 0; c < 3; c++) {
                const float tmp = line[3 * a + c];
                line[3 * a + c] = line[3 * b + c];
                line[3 * b + c] = tmp;
            }
        }
    }
}

size_t data_clip_floats(const DataSource *ds) { return (size_t)ds->frames * ds->height * ds->width * 3; }

// ---------------------------------------------------------------------------------------------------------------
// Synthetic source: bouncing balls. It renders at crop size directly; the random resized crop belongs to the
// HDF5 source, whose videos are larger than the crop.

static void synthetic_clip(const DataSource *ds, int64_t sample, uint8_t *rgb, float *out) {
    balls_clip(&ds->world, ds->seed, sample, ds->frames, ds->frame_step, rgb, NULL);
    data_normalise(rgb, (size_t)ds->frames * ds->height * ds->width, out);
    if (ds->flip && data_flip_drawn(ds->seed, sample)) data_hflip(out, ds->frames, ds->height, ds->width);
}

// Samples are independent and each writes only its own slice, so the result is the same for any thread count.
static void synthetic_get_clips(DataSource *ds, int64_t first_sample, int B, float *clips) {
    const size_t floats = data_clip_floats(ds);
#pragma omp parallel
    {
        uint8_t *rgb = xmalloc(floats);  // (T, H, W, 3) bytes, one per thread
#pragma omp for schedule(dynamic, 1)
        for (int b = 0; b < B; b++) synthetic_clip(ds, first_sample + b, rgb, clips + (size_t)b * floats);
        free(rgb);
    }
}

static void synthetic_close(DataSource *ds) { free(ds); }

static const DataSourceOps SYNTHETIC_OPS = {synthetic_get_clips, synthetic_close};

// Ball sizes and speeds scale with the crop, so the task looks the same at any resolution.
static DataSource *synthetic_open(const Config *cfg, DataSource *ds) {
    const int crop = cfg->data.crop_size;
    if (crop < 16) die_input("data.crop_size %d is too small for the synthetic source (>= 16)", crop);
    if (cfg->data.synth_balls < 1 || cfg->data.synth_balls > BALLS_MAX)
        die_input("data.synth_balls %d out of range 1..%d", cfg->data.synth_balls, BALLS_MAX);
    ds->ops = &SYNTHETIC_OPS;
    ds->world = (BallsWorldConfig){
        .num_balls = cfg->data.synth_balls,
        .radius = {crop / 12.0, crop / 6.0},
        .speed = {crop / 32.0, crop / 12.0},
        .colours = 6,
        .height = crop,
        .width = crop,
    };
    balls_check_config(&ds->world);
    return ds;
}

// ---------------------------------------------------------------------------------------------------------------
// HDF5 stores: the loader's reader threads fill batch buffers ahead of the trainer (loader.h, docs/data.md).

static void stores_get_clips(DataSource *ds, int64_t first_sample, int B, float *clips) {
    memcpy(clips, loader_batch(ds->loader, first_sample, B), (size_t)B * data_clip_floats(ds) * sizeof(float));
}

static void stores_close(DataSource *ds) {
    loader_close(ds->loader);
    free(ds);
}

static const DataSourceOps STORES_OPS = {stores_get_clips, stores_close};

static DataSource *stores_open(const Config *cfg, DataSource *ds) {
    LoaderSpec spec;
    loader_spec_from_config(cfg, &spec);
    ds->loader = loader_open(&spec);
    ds->ops = &STORES_OPS;
    return ds;
}

// ---------------------------------------------------------------------------------------------------------------
// Interface

DataSource *data_open(const Config *cfg) {
    if (cfg->data.num_frames < 1) die_input("data.num_frames %d must be >= 1", cfg->data.num_frames);
    if (cfg->data.sampling_rate < 1) die_input("data.sampling_rate %d must be >= 1", cfg->data.sampling_rate);
    DataSource *ds = xcalloc(1, sizeof *ds);
    ds->seed = (uint64_t)(int64_t)cfg->meta.seed;
    ds->flip = cfg->data_aug.random_horizontal_flip != 0;
    ds->frames = cfg->data.num_frames;
    ds->height = ds->width = cfg->data.crop_size;
    ds->frame_step = cfg->data.sampling_rate;
    if (cfg->data.datasets.count > 0) return stores_open(cfg, ds);
    if (strcmp(cfg->data.source, "synthetic") == 0) return synthetic_open(cfg, ds);
    die_input("data.source '%s' is not supported yet ---> HINT: set data.source: synthetic", cfg->data.source);
}

void data_get_clips(DataSource *ds, int64_t first_sample, int B, float *clips) {
    JEPA_ASSERT(B >= 0 && first_sample >= 0);
    ds->ops->get_clips(ds, first_sample, B, clips);
}

void data_set_read_pattern(DataSource *ds, int64_t phase, int64_t run, int64_t period) {
    if (ds->loader) loader_set_pattern(ds->loader, phase, run, period);
}

long data_read_restarts(const DataSource *ds) { return ds->loader ? loader_restarts(ds->loader) : 0; }

void data_close(DataSource *ds) {
    if (ds) ds->ops->close(ds);
}

void data_hash_reads(DataSource *ds) {
    if (ds->loader) loader_hash_reads(ds->loader);
}

const SampleRead *data_batch_reads(const DataSource *ds) { return ds->loader ? loader_batch_reads(ds->loader) : NULL; }

const char *data_store_path(const DataSource *ds, int d) { return loader_store_path(ds->loader, d); }
