// eval_monitor.h: what a training run shows people besides train.log and metrics.jsonl: TensorBoard scalars in the
// run folder (events.out.tfevents.*) every step, and the periodic probe (eval.every, eval.data, eval.clips) logged
// as a record {"step", "kind": "eval", "probe_position_r2", "probe_velocity_r2", "probe_s"} in metrics.jsonl and
// as TensorBoard scalars. Only the rank that writes the run folder monitors.
#pragma once
#include <stdio.h>

#include "eval.h"
#include "tensorboard.h"
#include "train.h"

typedef struct {
    TbWriter tb;
    int probe_every;    // 0: no periodic probe
    EvalClips clips;    // eval.data
    int n_clips;
    double *states;     // [n_clips * time steps, S] probe targets
    int *train, *test;  // sample indices of the split
    int n_train, n_test;
} Monitor;

void monitor_open(Monitor *mon, const char *run_dir, const Config *cfg, const ModelDims *dims);
// After each step: its scalars; every eval.every steps the probe, whose record goes to metrics (may be NULL).
void monitor_step(Monitor *mon, Trainer *tr, const StepRecord *r, FILE *metrics);
void monitor_close(Monitor *mon);
