// runfolder.h: a run's folder: resolved config, provenance, log (a copy of the console) and JSONL metrics.
#pragma once
#include <stdio.h>

#include "config.h"

typedef struct {
    char path[1024];
    FILE *log;      // train.log
    FILE *metrics;  // metrics.jsonl
} RunFolder;

// Creates logging.folder/logging.write_tag (or write_tag-2, -3... when taken: an earlier run is never overwritten).
void run_folder_open(RunFolder *rf, const Config *cfg, const char *device, const char *command);
// The run's latest folder: the last of write_tag, write_tag-2, ... that exists (the next run_folder_open takes the one
// after it). Returns 0 when write_tag does not exist.
int run_folder_latest(const Config *cfg, char *path, size_t n);
// Continues in an existing folder (a resumed run): config.yaml and provenance.json rewritten for this invocation,
// train.log appended, metrics.jsonl cut to the records of steps <= through_step and then appended.
void run_folder_reopen(RunFolder *rf, const char *path, const Config *cfg, const char *device, const char *command,
                       long through_step);
void run_folder_close(RunFolder *rf);
// printf to stdout and train.log
void run_log(RunFolder *rf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
