// train.h: the training loop and the dry run.
#pragma once
#include "config.h"

// Trains to completion; returns the process exit code. command is the command line, for provenance.
int train_run(const Config *cfg, const char *command);
// Parameters per module, FLOPs per step by the DESIGN rule, activation and optimizer memory; nothing allocated.
int train_dry_run(const Config *cfg);
