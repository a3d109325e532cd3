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
void run_folder_close(RunFolder *rf);
// printf to stdout and train.log
void run_log(RunFolder *rf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
