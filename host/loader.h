// loader.h: clips from HDF5 stores for the trainer (docs/data.md). Three layers:
//   plan    (SampleSpace, sample_plan)    which store, clip, frames, crop and flip a sample position gets: a pure
//                                          function of (seed, position), the same for any thread or rank count;
//   render  (sample_render)               those frames cropped, resized (bilinear), flipped and normalised;
//   loader  (Loader)                      reader threads that plan, read (pread + inflate, no libhdf5) and render
//                                          samples into a bounded ring of batch buffers ahead of the trainer.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "store.h"

// ---------------------------------------------------------------------------------------------------- plan

typedef struct {
    int stores;
    StoreShape shape[CONFIG_MAX_DATASETS];  // N, T, H, W of each store
    double weight[CONFIG_MAX_DATASETS];     // mixture weights, normalised to sum 1; unused when !weighted
    int weighted;                           // data.datasets_weights given: stores drawn by weight, with replacement
    int64_t epoch_clips;                    // sum of N: positions per epoch
    uint64_t seed;
    int num_frames, sampling_rate;          // frames per sample, step between them
    int crop;                               // output side, pixels
    double scale[2], ratio[2];              // random resized crop: area fraction, aspect (w/h) ranges
    int flip;                               // random horizontal flip with probability 0.5
} SampleSpace;

#define SAMPLE_MAX_FRAMES 256

typedef struct {
    int store;                  // index into data.datasets
    int64_t clip;               // clip within the store
    int first_frame;            // start of the window of num_frames * sampling_rate frames
    int frame[SAMPLE_MAX_FRAMES];  // num_frames frame indices in the clip (V-JEPA's linspace over the window)
    int crop_y, crop_x, crop_h, crop_w;  // crop in stored pixels
    int flip;
} SamplePlan;

// Frames the sampling needs in each clip: num_frames * sampling_rate (V-JEPA's window).
int sample_window(const SampleSpace *space);
// Epoch e's order: index -> clip of [0, size), a bijection for each (seed, epoch) (4-round Feistel network on
// the next even power of two with cycle walking; rounds keyed by Philox RNG_DATA_ORDER streams).
uint64_t epoch_permute(uint64_t seed, uint64_t epoch, uint64_t size, uint64_t index);
// What the sample at global position gets (docs/data.md, "From position to pixels").
void sample_plan(const SampleSpace *space, int64_t position, SamplePlan *plan);
// First position of micro-batch `micro` of rank `rank` of `world` at `step`, with accum micro-batches of batch
// samples per rank: ((step * world + rank) * accum + micro) * batch. A step covers world * accum * batch
// consecutive positions, so W ranks' union is what 1 rank with W * accum micro-batches would see.
int64_t sample_first_position(int64_t step, int micro, int accum, int rank, int world, int batch);

// ---------------------------------------------------------------------------------------------------- render

// The sample of plan into out (F, crop, crop, 3) float, from frames: the clip's frames plan->frame[0] to
// plan->frame[F-1] (all of them, consecutive, (count, height, width, 3) uint8). The crop is resized bilinearly
// (align_corners = false, as torch.nn.functional.interpolate), mirrored when plan->flip, and normalised per
// channel to (v / 255 - mean) / std (ImageNet).
void sample_render(const SampleSpace *space, const SamplePlan *plan, const uint8_t *frames, int height, int width,
                   float *out);
// The normalisation as out = v * gain[c] + bias[c] on v in [0, 255]: gain = 1 / (255 std), bias = -mean / std
// (ImageNet), rounded to float once; shared with the GPU augmentation (kernels/augment.h).
void sample_norm_coefficients(float gain[3], float bias[3]);

// ---------------------------------------------------------------------------------------------------- loader

// Batch buffers come from this allocator; the CUDA backend replaces it with cudaHostAlloc/cudaFreeHost so that
// ready batches are pinned and copy to the device asynchronously. Set it before loader_open.
typedef struct {
    void *(*alloc)(size_t bytes);
    void (*release)(void *p);
} LoaderHostAllocator;
void loader_set_host_allocator(LoaderHostAllocator allocator);

typedef struct {
    int stores;
    const char *path[CONFIG_MAX_DATASETS];
    const double *weights;      // stores values, or NULL = every clip once per epoch
    uint64_t seed;
    int num_frames, sampling_rate, crop;
    double scale[2], ratio[2];
    int flip;
    int batch;                  // samples per batch (the buffers are sized for it; larger requests re-allocate)
    int threads;                // reader threads, 0 = all cores
    int queue_depth;            // batch buffers, >= 2
} LoaderSpec;

typedef struct Loader Loader;

// The sample space of spec over stores of these shapes (weights normalised to sum 1).
void sample_space_init(SampleSpace *space, const LoaderSpec *spec, const StoreShape *shapes);

// The spec of cfg: data.datasets, weights, frames, crop and flip keys, data.read_threads, data.queue_depth.
void loader_spec_from_config(const Config *cfg, LoaderSpec *spec);
// Opens and validates every store (dies naming the file on any problem) and starts the reader threads.
Loader *loader_open(const LoaderSpec *spec);
// The batch of positions [first, first + batch): (batch, F, crop, crop, 3) floats, valid until the next call.
// Consecutive calls (first advancing by batch) are read ahead; any other first restarts the read-ahead there.
const float *loader_batch(Loader *l, int64_t first, int batch);
// The positions this reader takes, so the read-ahead follows them across step boundaries: runs of `run` consecutive
// positions, one run every `period`, the first at `phase` (rank r of N ranks, accum micro-batches of B: phase r*accum*B,
// run accum*B, period N*accum*B). Without it (or run == period) the read-ahead takes every position in order.
void loader_set_pattern(Loader *l, int64_t phase, int64_t run, int64_t period);
// How often the read-ahead was dropped because a batch was not the one it had scheduled (the first batch counts).
long loader_restarts(const Loader *l);
// What each sample of the batch loader_batch returned last read (valid as long as that batch): its plan and the
// 64-bit FNV-1a hash of its num_frames listed frames' stored bytes (uint8 H x W x 3 each, in order) — the per-rank
// read log of the trainer (RUN/reads_rank<R>.jsonl, docs/consensus.md). NULL before the first batch, and unless
// loader_hash_reads was called before it (the hash costs a pass over every byte read).
typedef struct {
    SamplePlan plan;
    uint64_t fnv1a;
} SampleRead;
void loader_hash_reads(Loader *l);
const SampleRead *loader_batch_reads(const Loader *l);
const char *loader_store_path(const Loader *l, int store);  // the path it opened for data.datasets entry `store`
const SampleSpace *loader_space(const Loader *l);
int loader_threads(const Loader *l);
void loader_close(Loader *l);
