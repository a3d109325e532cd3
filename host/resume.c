// resume.c: see resume.h.
#include "resume.h"

#include <string.h>
#include <unistd.h>

#include "common.h"

// The config's keys and values (as YAML text), for comparing two configs.
typedef struct {
    char (*key)[160];
    char (*value)[512];
    int count;
} KeyValues;

static void collect(const char *key, const char *value, void *ctx) {
    KeyValues *kv = ctx;
    kv->key = xrealloc(kv->key, (size_t)(kv->count + 1) * sizeof(*kv->key));
    kv->value = xrealloc(kv->value, (size_t)(kv->count + 1) * sizeof(*kv->value));
    snprintf(kv->key[kv->count], sizeof(*kv->key), "%s", key);
    snprintf(kv->value[kv->count], sizeof(*kv->value), "%s", value);
    kv->count++;
}

static const char *value_of(const KeyValues *kv, const char *key) {
    for (int i = 0; i < kv->count; i++)
        if (strcmp(kv->key[i], key) == 0) return kv->value[i];
    return "(absent)";
}

// A resumed run may change keys that do not shape the model (max_steps, logging, even the LR); say which.
static void log_changed_keys(RunFolder *rf, const char *dir, const Config *cfg) {
    char path[1200];
    snprintf(path, sizeof(path), "%s/config.yaml", dir);
    Config saved;
    config_load(&saved, path, 0, NULL);
    KeyValues now = {0}, then = {0};
    config_for_each_value(cfg, collect, &now);
    config_for_each_value(&saved, collect, &then);
    int changed = 0;
    for (int i = 0; i < now.count; i++) {
        const char *was = value_of(&then, now.key[i]);
        if (strcmp(was, now.value[i]) == 0) continue;
        run_log(rf, "%s %s: %s -> %s", changed++ ? "," : "config changed since the checkpoint:", now.key[i], was,
                now.value[i]);
    }
    if (changed) run_log(rf, "\n");
    free(now.key), free(now.value), free(then.key), free(then.value);
}

// meta.init_from: a checkpoint folder (holding model.safetensors), or a run folder whose newest checkpoint that
// verifies is taken. Only a run that starts fresh uses it; a run resuming its own checkpoint ignores it. Loaded
// before the run folder opens, so that a bad init_from leaves nothing behind; returns the folder (free it) or NULL.
static char *init_from(Model *m, const Config *cfg) {
    const char *from = cfg->meta.init_from;
    if (!strcmp(from, "none")) return NULL;
    char probe[1200], notes[8192] = "";
    snprintf(probe, sizeof(probe), "%s/model.safetensors", from);
    char *dir = NULL;
    if (access(probe, F_OK) == 0) {
        dir = xstrdup(from);
    } else {
        dir = checkpoint_newest_verified(from, notes, sizeof(notes));
        if (notes[0]) fputs(notes, stderr);
        if (!dir)
            die_input("meta.init_from: %s holds no checkpoint that verifies (expected a checkpoint folder with "
                      "model.safetensors, or a run folder with checkpoints/)", from);
    }
    // Same tensors either way, but weights trained with sincos positions mean nothing under RoPE and back.
    Config saved;
    snprintf(probe, sizeof(probe), "%s/config.yaml", dir);
    config_load(&saved, probe, 0, NULL);
    if (strcmp(saved.model.pos_embed, cfg->model.pos_embed) != 0)
        die_input("meta.init_from: %s was trained with model.pos_embed: %s, this run has %s", dir,
                  saved.model.pos_embed, cfg->model.pos_embed);
    ErrorText err;
    if (checkpoint_load_weights(dir, m, &err) != 0)
        die_input("meta.init_from: %s\n---> HINT: the model keys (model.*, the number of mask generators) must be "
                  "those of the run it comes from; data.num_frames and data.crop_size may differ", err.text);
    return dir;
}

// Opens a new run folder for a fresh run (weights from meta.init_from when set).
static void open_fresh(RunFolder *rf, Model *m, const Config *cfg, const char *device, const char *command) {
    char *from = init_from(m, cfg);
    run_folder_open(rf, cfg, device, command);
    if (from)
        run_log(rf, "meta.init_from: weights (encoder, predictor, target encoder) from %s; optimizer and schedules "
                    "start fresh\n", from);
    free(from);
}

static TrainPosition start_fresh(RunFolder *rf, Model *m, const Config *cfg, const char *device,
                                 const char *command, const char *why) {
    open_fresh(rf, m, cfg, device, command);
    run_log(rf, "meta.resume=%s: %s; starting fresh in %s\n", cfg->meta.resume, why, rf->path);
    return (TrainPosition){0, 0};
}

TrainPosition resume_open_run(RunFolder *rf, Model *m, const Config *cfg, const char *device, const char *command) {
    const int must = strcmp(cfg->meta.resume, "must") == 0;
    char latest[1024], why[1400], notes[8192] = "";
    if (strcmp(cfg->meta.resume, "never") == 0) {
        open_fresh(rf, m, cfg, device, command);
        return (TrainPosition){0, 0};
    }
    if (!run_folder_latest(cfg, latest, sizeof(latest))) {
        if (must)
            die_input("meta.resume=must: there is no run folder %s/%s to resume\n"
                      "---> HINT: check logging.folder and logging.write_tag, or set meta.resume=auto",
                      cfg->logging.folder, cfg->logging.write_tag);
        snprintf(why, sizeof(why), "no earlier run in %s/%s", cfg->logging.folder, cfg->logging.write_tag);
        return start_fresh(rf, m, cfg, device, command, why);
    }
    checkpoint_recover_replaced(latest, notes, sizeof(notes));
    char *chosen = checkpoint_newest_verified(latest, notes, sizeof(notes));
    if (notes[0]) fputs(notes, stderr);
    if (!chosen) {
        if (must)
            die_input("meta.resume=must: no checkpoint in %s/checkpoints verifies\n"
                      "---> HINT: the reasons are above; set meta.resume=auto to start fresh", latest);
        snprintf(why, sizeof(why), "no checkpoint in %s/checkpoints verifies", latest);
        TrainPosition pos = start_fresh(rf, m, cfg, device, command, why);
        if (rf->log) fputs(notes, rf->log);
        return pos;
    }
    ErrorText err;
    if (checkpoint_match(chosen, m, cfg, &err) != 0)
        die_input("refusing to resume: %s\n---> HINT: resume with the config it was trained with (%s/config.yaml), "
                  "or start a new run with meta.resume=never or another logging.write_tag", err.text, chosen);
    TrainPosition pos;
    checkpoint_load(chosen, m, &pos);
    run_folder_reopen(rf, latest, cfg, device, command, pos.step);
    if (rf->log) fputs(notes, rf->log);
    run_log(rf, "meta.resume=%s: resuming from %s (step %ld, next sample %lld)\n", cfg->meta.resume, chosen, pos.step,
            (long long)pos.data_cursor);
    log_changed_keys(rf, chosen, cfg);
    if (strcmp(cfg->meta.init_from, "none") != 0)
        run_log(rf, "meta.init_from (%s) not used: the run continues from its own checkpoint\n", cfg->meta.init_from);
    free(chosen);
    return pos;
}
