// train.h: the training loop and the dry run; the step itself for `jepa bench step`.
#pragma once
#include <stdint.h>
#include <stdio.h>

#include "backend.h"
#include "config.h"
#include "data.h"
#include "masks.h"
#include "model.h"
#include "optim.h"

// Trains to completion; returns the process exit code. command is the command line, for provenance.
int train_run(const Config *cfg, const char *command);
// Parameters per module, FLOPs per step by the DESIGN rule, activation and optimizer memory; nothing allocated.
int train_dry_run(const Config *cfg);

// The backend meta.device names (auto: cuda when a GPU is present, else cpu); device[n] receives its description
// (the start-up banner and provenance). Exits 2 when the device or dtype cannot be had.
Backend *train_backend(const Config *cfg, char *device, size_t n);

// One step's measurements, for the progress line and metrics.jsonl.
typedef struct {
    long step, total;
    int epoch;
    Schedule sched;
    StepStats stats;
    double tokens_ctx[CONFIG_MAX_MASKS], tokens_tgt[CONFIG_MAX_MASKS];  // mean over micro-batches
    double flops;  // by the DESIGN rule (flops.h), summed over the micro-batches at their own mask lengths
    double step_s, data_s, clips_per_s;
    int skipped;         // a NaN/Inf loss or gradient: the update was dropped (StepStats.nonfinite)
    int skips_in_a_row;  // consecutive skipped steps up to this one (0 after an applied update)
    double loss_z;       // the loss's z-score against the previous logging.spike_window finite losses; NAN: too few
    double exchange_bytes;  // bytes one rank (allreduce: gradients) or site (consensus: parameters) sent this step
    double sim_exchange_s;  // exchange_bytes through the link model (dist.link_gbps, dist.link_latency_ms)
    double loss_sites;      // the whole system's loss: consensus, the mean over sites of each site's; else `loss`
    double mem_peak_bytes;  // the most this rank's backend allocations held at once so far (Backend.memory)
} StepRecord;

// Everything one rank needs for a step: the model, the data and the host buffers.
typedef struct {
    const Config *cfg;
    Model *model;
    DataSource *data;
    MaskBatch masks[CONFIG_MAX_MASKS];
    int64_t data_cursor;   // next global sample index (a checkpoint saves it)
    int64_t staged_first;  // first sample of the clips staged in staged_slot, -1 when none
    int staged_slot;       // input slot holding them
    int reuse_staged;      // benchmarks: every micro-batch reuses the clips in staged_slot; no data is read
    struct DistGrads *dist;  // gradient all-reduce across ranks (dist.h); NULL: one process
    struct Consensus *consensus;  // dist.sync consensus: parameter exchange between sites; NULL: allreduce
    int site_data;         // data.site_paths: this rank's site reads its own store at site-local positions
    FILE *reads_log;       // RUN/reads_rank<R>.jsonl: what every staged batch read (stores only); NULL: none
} Trainer;

// Reads the clips of samples [first, first + B) into the free input slot and starts their copy to the device, so
// they travel while the GPU computes the micro-batch before them; adds the host seconds to *data_s.
void trainer_stage_clips(Trainer *tr, int64_t first, double *data_s);
// One optimizer step (0-based `step`; last_step: read nothing ahead). The host reads the next micro-batch while the
// device computes the current one; the only synchronisation is model_read_stats at the end.
void train_step(Trainer *tr, long step, int last_step, StepRecord *r);
