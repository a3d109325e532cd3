// data.h: the trainer's data source. A clip is a pure function of (meta.seed, global sample index), so any rank,
// thread or worker count, and any resume point, sees the same clips (DESIGN: randomness).
// Sources: HDF5 clip stores (data.datasets; loader.h reads them ahead in its own threads, docs/data.md), or when
// data.datasets is empty data.source: "synthetic" (bouncing balls rendered in memory). data_get_clips is
// synchronous from the caller's side either way; for stores the global sample index is a position in the
// epoch's order (docs/data.md).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "loader.h"

typedef struct DataSource DataSource;

// Opens the stores of data.datasets, or the source named by data.source when there are none; dies with a hint
// on an unusable store or data keys.
DataSource *data_open(const Config *cfg);
// Clips of global samples [first_sample, first_sample + B) into clips (B, T, H, W, 3) float: RGB in [0, 1],
// normalised per channel with the ImageNet mean and std, mirrored left-right with probability 0.5 when
// data_aug.random_horizontal_flip (one draw per clip from rng_stream(seed, RNG_AUG, 0, sample_index)).
void data_get_clips(DataSource *ds, int64_t first_sample, int B, float *clips);
// The sample positions this rank reads (loader_set_pattern), so a store's read-ahead follows them across steps;
// a no-op for the synthetic source.
void data_set_read_pattern(DataSource *ds, int64_t phase, int64_t run, int64_t period);
// Times the store read-ahead was (re)started (loader_restarts); 0 for the synthetic source.
long data_read_restarts(const DataSource *ds);
void data_close(DataSource *ds);
// The reads of the batch data_get_clips filled last (HDF5 stores: plan and byte hash of each sample, loader.h),
// once data_hash_reads was called before the first batch; NULL otherwise and for the synthetic source.
// data_store_path: the path data.datasets entry d was opened as.
void data_hash_reads(DataSource *ds);
const SampleRead *data_batch_reads(const DataSource *ds);
const char *data_store_path(const DataSource *ds, int d);
// Floats in one clip: T * H * W * 3.
size_t data_clip_floats(const DataSource *ds);

// Pieces every source shares (the HDF5 source will reuse them).
extern const double DATA_MEAN[3], DATA_STD[3];  // ImageNet, on RGB in [0, 1]
// Whether sample_index is flipped (when flips are on): a pure function of (seed, sample_index).
int data_flip_drawn(uint64_t seed, int64_t sample_index);
// pixels RGB uint8 -> normalised float, same layout (pixels, 3).
void data_normalise(const uint8_t *rgb, size_t pixels, float *out);
// Mirrors each row of frames (T, H, W, 3) in place.
void data_hflip(float *frames, int T, int H, int W);
