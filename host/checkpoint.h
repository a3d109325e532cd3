// checkpoint.h: checkpoints (docs/checkpoints.md). A folder per step, RUN/checkpoints/step_000123/, holding
// model.safetensors (encoder, predictor, target encoder: master weights under the tensor table's names),
// optimizer.safetensors (AdamW moments), state.json (step, data cursor, counters, config hash, version),
// config.yaml (the resolved config) and manifest.json (each file's size and xxh3_64), written last. Nothing in it
// depends on the number of ranks. Written under a temporary name, fsynced, renamed; read back only after the
// manifest verifies, and only into a model of the same shapes.
#pragma once
#include <stdint.h>

#include "config.h"
#include "fileio.h"
#include "model.h"
#include "optim.h"

#define CHECKPOINT_FORMAT_VERSION 1

// Where training stands between two steps; everything else (schedules, masks, data) is a function of it.
typedef struct {
    long step;            // optimizer steps done
    int64_t data_cursor;  // next global sample index
} TrainPosition;

// Saves the model at pos into RUN/checkpoints/step_<pos->step>, then keeps the newest logging.keep good checkpoints.
// last: the schedule values of the step just done (recorded). path receives the folder. Exits 2 on a write error.
void checkpoint_save(const char *run_dir, const Model *m, const Config *cfg, const TrainPosition *pos,
                     const Schedule *last, char *path, size_t path_size);

// Extra files a checkpoint carries (the consensus state, docs/consensus.md): written before the manifest and listed
// in it, so they are installed with the rest or not at all.
typedef struct {
    const char *name;
    const void *data;
    size_t bytes;
} CheckpointBlob;
void checkpoint_save_with(const char *run_dir, const Model *m, const Config *cfg, const TrainPosition *pos,
                          const Schedule *last, const CheckpointBlob *blobs, int nblobs, char *path,
                          size_t path_size);
// An extra file of a checkpoint, after its manifest size and hash check: malloc'd bytes (*bytes), or NULL with why.
void *checkpoint_read_blob(const char *dir, const char *name, size_t *bytes, ErrorText *err);

// Checkpoint folders of a run (RUN/checkpoints/step_N), newest first; returns the count (free with
// checkpoint_list_free). Leftovers of an interrupted write (step_N.tmp) are not listed.
int checkpoint_list(const char *run_dir, char ***dirs);
void checkpoint_list_free(char **dirs, int count);

// The newest checkpoint of run_dir that verifies (free it), or NULL; each one that does not is a line in notes.
char *checkpoint_newest_verified(const char *run_dir, char *notes, size_t notes_size);
// Puts back step_N.old as step_N where a kill interrupted a replacement and it verifies; returns how many.
int checkpoint_recover_replaced(const char *run_dir, char *notes, size_t notes_size);
// Everything short of loading: manifest sizes and hashes, state.json, both safetensors headers. 0, or -1 with why.
int checkpoint_verify(const char *dir, ErrorText *err);
// Whether dir holds this model: the model-shaping config keys (checkpoint_model_keys) and every tensor's name, dtype
// and shape. 0, or -1 with the differences listed in err.
int checkpoint_match(const char *dir, const Model *m, const Config *cfg, ErrorText *err);
// Loads parameters, target and moments of a verified, matching checkpoint; pos receives its position.
void checkpoint_load(const char *dir, Model *m, TrainPosition *pos);
// Only the weights (parameters and target encoder) of a checkpoint that verifies, into a model whose tensors have
// the same names and shapes; the config may differ otherwise (clip length, crop: neither RoPE nor the sincos tables
// are parameters). Moments untouched. meta.init_from. 0, or -1 with the reason (differences listed) in err.
int checkpoint_load_weights(const char *dir, Model *m, ErrorText *err);
// The config keys that shape the model (their hash is state.json's config_hash); NULL-terminated.
extern const char *const checkpoint_model_keys[];

// "On request": a flag the training loop checks after each step. checkpoint_request is async-signal-safe.
void checkpoint_request(void);
int checkpoint_take_request(void);  // returns the flag and clears it
