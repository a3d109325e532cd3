// resume.h: where a run starts (meta.resume, docs/checkpoints.md): a new run folder, or the newest checkpoint that
// verifies in the run's latest folder, continued in that folder.
#pragma once
#include "checkpoint.h"
#include "runfolder.h"

// Opens rf and loads m as meta.resume says; returns the position training continues from ({0, 0} when fresh).
// Exits 2 when meta.resume=must finds nothing, or when the checkpoint does not match the config (differences listed).
TrainPosition resume_open_run(RunFolder *rf, Model *m, const Config *cfg, const char *device, const char *command);
