// checkpoint.c: see checkpoint.h.
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <xxhash.h>

#include "common.h"
#include "provenance.h"
#include "safetensors.h"

// The files of a checkpoint folder; the manifest lists them all and is written last.
static const char *const CHECKPOINT_FILES[] = {"model.safetensors", "optimizer.safetensors", "state.json",
                                               "config.yaml"};
enum { N_CHECKPOINT_FILES = sizeof(CHECKPOINT_FILES) / sizeof(CHECKPOINT_FILES[0]) };
enum { MAX_STATE_BYTES = 1 << 20, MAX_DIFFS_LISTED = 8 };

const char *const checkpoint_model_keys[] = {
    "data.num_frames", "data.tubelet_size", "data.crop_size",   "data.patch_size",     "model.model_name",
    "model.embed_dim", "model.depth",       "model.num_heads",  "model.mlp_ratio",     "model.pred_depth",
    "model.pred_embed_dim", "model.pred_num_heads", "model.uniform_power", "model.use_mask_tokens",
    "model.pos_embed",  // the same tensors either way, but a sincos model is not a RoPE one
    "mask (number of generators)",  // one mask token per generator
    NULL,
};

static volatile sig_atomic_t checkpoint_requested = 0;

void checkpoint_request(void) { checkpoint_requested = 1; }

int checkpoint_take_request(void) {
    const int was = checkpoint_requested;
    checkpoint_requested = 0;
    return was;
}

static void path_join(char *out, size_t n, const char *dir, const char *name) {
    if ((size_t)snprintf(out, n, "%s/%s", dir, name) >= n) die_input("path too long: %s/%s", dir, name);
}

// ------------------------------------------------------------------------------------------------ model keys

typedef struct {
    json_object *values;  // key -> value text
    XXH3_state_t *hash;
} ModelKeys;

static int is_model_key(const char *key) {
    for (int i = 0; checkpoint_model_keys[i]; i++)
        if (strcmp(checkpoint_model_keys[i], key) == 0) return 1;
    return 0;
}

static void add_model_key(ModelKeys *k, const char *key, const char *value) {
    json_object_object_add(k->values, key, json_object_new_string(value));
    char line[512];
    const int len = snprintf(line, sizeof(line), "%s=%s\n", key, value);
    if (XXH3_64bits_update(k->hash, line, (size_t)len) != XXH_OK) die_internal("XXH3_64bits_update failed");
}

static void visit_model_key(const char *key, const char *value, void *ctx) {
    if (is_model_key(key)) add_model_key(ctx, key, value);
}

// The model-shaping keys of cfg (key -> value text, in schema order) and their hash, "xxh3_64:<16 hex>".
static json_object *model_keys_of(const Config *cfg, char *hash_text, size_t n) {
    ModelKeys k = {json_object_new_object(), XXH3_createState()};
    if (!k.hash || XXH3_64bits_reset(k.hash) != XXH_OK) die_internal("XXH3_createState failed");
    config_for_each_value(cfg, visit_model_key, &k);
    char count[16];
    snprintf(count, sizeof(count), "%d", cfg->num_masks);
    add_model_key(&k, "mask (number of generators)", count);
    snprintf(hash_text, n, "xxh3_64:%016llx", (unsigned long long)XXH3_64bits_digest(k.hash));
    XXH3_freeState(k.hash);
    return k.values;
}

// ------------------------------------------------------------------------------------------------ tensor lists

typedef enum { FILE_MODEL = 0, FILE_OPTIMIZER = 1 } CheckpointFile;

// The tensors of one checkpoint file in order, with data in the host copies a and b of the flat buffers:
// model: the table's tensors from a (parameters), then the encoder's again from b (target) as "target_encoder.*";
// optimizer: "exp_avg.*" from a, then "exp_avg_sq.*" from b. Returns the count; out holds 2 * table.count.
static int file_tensors(const Model *m, CheckpointFile which, const void *a, const void *b, StTensor *out) {
    const TensorTable *t = &m->table;
    const size_t esize = m->be->msize;
    const char *dtype = st_float_dtype(esize);
    int count = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < t->count; i++) {
            const TensorSpec *s = &t->tensors[i];
            if (which == FILE_MODEL && pass == 1 && s->module != MODULE_ENCODER) continue;
            char name[160];
            if (which == FILE_MODEL) snprintf(name, sizeof(name), "%s%s", pass ? "target_" : "", s->name);
            else snprintf(name, sizeof(name), "%s.%s", pass ? "exp_avg_sq" : "exp_avg", s->name);
            const char *base = pass ? (const char *)b : (const char *)a;
            st_tensor_set(&out[count++], name, dtype, s->ndim, s->shape, base ? base + s->offset * esize : NULL);
        }
    return count;
}

// ------------------------------------------------------------------------------------------------ writing

static void *download_buffer(const Model *m, const void *buffer, size_t numel) {
    void *host = xmalloc(numel * m->be->msize);
    m->be->download(m->be, host, buffer, numel * m->be->msize);
    return host;
}

static void hash_text(char *out, size_t n, uint64_t hash) { snprintf(out, n, "%016llx", (unsigned long long)hash); }

// Fault injection for tests/test_kill_resume.sh: JEPA_CKPT_KILL_AT=n raises SIGKILL just after the nth checkpoint
// file this process writes (the manifest counts), so the kill lands mid-checkpoint. Inert without the variable.
static void maybe_kill_after_file(void) {
    static long written = 0;
    const char *at = getenv("JEPA_CKPT_KILL_AT");
    if (at && ++written == atol(at)) raise(SIGKILL);
}

static void add_file(json_object *files, const char *name, uint64_t bytes, uint64_t hash) {
    char hex[32];
    hash_text(hex, sizeof(hex), hash);
    json_object *f = json_object_new_object();
    json_object_object_add(f, "bytes", json_object_new_int64((int64_t)bytes));
    json_object_object_add(f, "xxh3_64", json_object_new_string(hex));
    json_object_object_add(files, name, f);
}

// One of the two safetensors files, from host copies of two flat buffers.
static void write_tensor_file(const char *dir, const Model *m, CheckpointFile which, const void *a, const void *b,
                              long step, json_object *files) {
    StTensor *tensors = xcalloc(2 * (size_t)m->table.count, sizeof(StTensor));
    const int count = file_tensors(m, which, a, b, tensors);
    char step_text[32], path[1200];
    snprintf(step_text, sizeof(step_text), "%ld", step);
    const StMeta meta[] = {{"format", "jepa.c checkpoint"}, {"step", step_text}};
    const char *name = CHECKPOINT_FILES[which];
    path_join(path, sizeof(path), dir, name);
    uint64_t hash;
    const uint64_t bytes = st_write(path, tensors, count, meta, 2, &hash);
    maybe_kill_after_file();
    add_file(files, name, bytes, hash);
    free(tensors);
}

static void write_model_files(const char *dir, const Model *m, long step, json_object *files) {
    const size_t total = m->table.total, enc = table_module_numel(&m->table, MODULE_ENCODER);
    void *a = download_buffer(m, m->params, total), *b = download_buffer(m, m->target, enc);
    write_tensor_file(dir, m, FILE_MODEL, a, b, step, files);
    free(a);
    free(b);
    a = download_buffer(m, m->adam_m, total);
    b = download_buffer(m, m->adam_v, total);
    write_tensor_file(dir, m, FILE_OPTIMIZER, a, b, step, files);
    free(a);
    free(b);
}

static void write_json(const char *dir, const char *name, json_object *o, json_object *files) {
    char path[1200];
    path_join(path, sizeof(path), dir, name);
    const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
    uint64_t hash;
    const uint64_t bytes = synced_write_file(path, text, strlen(text), &hash);
    maybe_kill_after_file();
    if (files) add_file(files, name, bytes, hash);
}

static void write_config(const char *dir, const Config *cfg, json_object *files) {
    char *text = NULL, path[1200];
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (!mem) die_internal("%s:%d: open_memstream failed", __FILE__, __LINE__);
    config_write_yaml(cfg, mem);
    fclose(mem);
    path_join(path, sizeof(path), dir, "config.yaml");
    uint64_t hash;
    const uint64_t bytes = synced_write_file(path, text, len, &hash);
    maybe_kill_after_file();
    add_file(files, "config.yaml", bytes, hash);
    free(text);
}

static json_object *state_json(const Model *m, const Config *cfg, const TrainPosition *pos, const Schedule *last) {
    json_object *s = json_object_new_object();
    json_object_object_add(s, "format", json_object_new_string("jepa.c checkpoint"));
    json_object_object_add(s, "format_version", json_object_new_int(CHECKPOINT_FORMAT_VERSION));
    json_object_object_add(s, "step", json_object_new_int64(pos->step));
    json_object_object_add(s, "epoch", json_object_new_int64(pos->step / cfg->optimization.ipe));
    json_object_object_add(s, "data_cursor", json_object_new_int64(pos->data_cursor));
    json_object *counters = json_object_new_object();  // what every random draw is keyed by (DESIGN)
    json_object_object_add(counters, "seed", json_object_new_int64(cfg->meta.seed));
    json_object_object_add(counters, "next_step", json_object_new_int64(pos->step));
    json_object_object_add(counters, "next_sample", json_object_new_int64(pos->data_cursor));
    json_object_object_add(s, "counters", counters);
    json_object *sched = json_object_new_object();  // positions; the values are those of the last step done
    json_object_object_add(sched, "iteration", json_object_new_int64(pos->step));
    json_object_object_add(sched, "adamw_step", json_object_new_int64(pos->step));
    json_object_object_add(sched, "total_steps", json_object_new_int64(schedule_total_steps(cfg)));
    json_object_object_add(sched, "lr", json_object_new_double(last->lr));
    json_object_object_add(sched, "weight_decay", json_object_new_double(last->weight_decay));
    json_object_object_add(sched, "ema_momentum", json_object_new_double(last->ema_momentum));
    json_object_object_add(sched, "clip", json_object_new_boolean(last->clip));
    json_object_object_add(s, "schedule", sched);
    char hash[64];
    json_object *keys = model_keys_of(cfg, hash, sizeof(hash));
    json_object_object_add(s, "config_hash", json_object_new_string(hash));
    json_object_object_add(s, "model_config", keys);
    json_object_object_add(s, "dtype", json_object_new_string(st_float_dtype(m->be->msize)));
    json_object_object_add(s, "parameters", json_object_new_int64((int64_t)m->table.total));
    json_object_object_add(s, "jepa_version", json_object_new_string(JEPA_VERSION));
    json_object_object_add(s, "commit", json_object_new_string(build_commit()));
    char when[64];
    const time_t now = time(NULL);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    json_object_object_add(s, "saved_utc", json_object_new_string(when));
    return s;
}

static void make_dir(const char *path) {
    if (mkdir(path, 0755) != 0 && errno != EEXIST) die_input("cannot create %s: %s", path, strerror(errno));
}

static int dir_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void remove_or_die(const char *path) {
    ErrorText err;
    if (remove_flat_dir(path, &err) != 0) die_input("%s", err.text);
}

// Renames tmp to final, replacing a folder of the same step (kept until the new one is in place).
static void install_dir(const char *tmp, const char *final, const char *parent) {
    char old[1200];
    snprintf(old, sizeof(old), "%s.old", final);
    const int replacing = dir_exists(final);
    if (replacing) {
        if (dir_exists(old)) remove_or_die(old);
        if (rename(final, old) != 0) die_input("cannot rename %s: %s", final, strerror(errno));
    }
    if (rename(tmp, final) != 0) die_input("cannot rename %s to %s: %s", tmp, final, strerror(errno));
    fsync_dir(parent);
    if (replacing) remove_or_die(old);
}

static void rotate(const char *run_dir, int keep);

void checkpoint_save(const char *run_dir, const Model *m, const Config *cfg, const TrainPosition *pos,
                     const Schedule *last, char *path, size_t path_size) {
    checkpoint_save_with(run_dir, m, cfg, pos, last, NULL, 0, path, path_size);
}

void checkpoint_save_with(const char *run_dir, const Model *m, const Config *cfg, const TrainPosition *pos,
                          const Schedule *last, const CheckpointBlob *blobs, int nblobs, char *path,
                          size_t path_size) {
    char parent[1100], tmp[1200];
    path_join(parent, sizeof(parent), run_dir, "checkpoints");
    if (!dir_exists(parent)) {
        make_dir(parent);
        fsync_dir(run_dir);
    }
    snprintf(path, path_size, "%s/step_%06ld", parent, pos->step);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (dir_exists(tmp)) remove_or_die(tmp);  // an interrupted write of the same step
    make_dir(tmp);
    json_object *files = json_object_new_object();
    write_model_files(tmp, m, pos->step, files);
    json_object *state = state_json(m, cfg, pos, last);
    write_json(tmp, "state.json", state, files);
    json_object_put(state);
    write_config(tmp, cfg, files);
    for (int i = 0; i < nblobs; i++) {
        char file[1200];
        path_join(file, sizeof(file), tmp, blobs[i].name);
        uint64_t hash;
        const uint64_t bytes = synced_write_file(file, blobs[i].data, blobs[i].bytes, &hash);
        add_file(files, blobs[i].name, bytes, hash);
    }
    json_object *manifest = json_object_new_object();
    json_object_object_add(manifest, "format", json_object_new_string("jepa.c checkpoint manifest"));
    json_object_object_add(manifest, "format_version", json_object_new_int(CHECKPOINT_FORMAT_VERSION));
    json_object_object_add(manifest, "step", json_object_new_int64(pos->step));
    json_object_object_add(manifest, "hash", json_object_new_string("xxh3_64"));
    json_object_object_add(manifest, "files", files);
    write_json(tmp, "manifest.json", manifest, NULL);
    json_object_put(manifest);
    fsync_dir(tmp);
    install_dir(tmp, path, parent);
    rotate(run_dir, cfg->logging.keep);
}

// ------------------------------------------------------------------------------------------------ listing

// step_<digits> exactly; -1 otherwise (step_N.tmp, step_N.old, other names).
static long step_of_name(const char *name) {
    if (strncmp(name, "step_", 5) != 0 || !name[5]) return -1;
    for (const char *p = name + 5; *p; p++)
        if (*p < '0' || *p > '9') return -1;
    return strtol(name + 5, NULL, 10);
}

typedef struct {
    long step;
    char *path;
} StepDir;

static int newest_first(const void *a, const void *b) {
    const StepDir *x = a, *y = b;
    return x->step > y->step ? -1 : x->step < y->step;
}

int checkpoint_list(const char *run_dir, char ***dirs) {
    char parent[1100];
    path_join(parent, sizeof(parent), run_dir, "checkpoints");
    *dirs = NULL;
    DIR *d = opendir(parent);
    if (!d) return 0;
    StepDir *found = NULL;
    int count = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        const long step = step_of_name(e->d_name);
        if (step < 0) continue;
        char path[1400];
        path_join(path, sizeof(path), parent, e->d_name);
        if (!dir_exists(path)) continue;
        found = xrealloc(found, (size_t)(count + 1) * sizeof(StepDir));
        found[count++] = (StepDir){step, xstrdup(path)};
    }
    closedir(d);
    qsort(found, (size_t)count, sizeof(StepDir), newest_first);
    *dirs = xcalloc((size_t)count + 1, sizeof(char *));
    for (int i = 0; i < count; i++) (*dirs)[i] = found[i].path;
    free(found);
    return count;
}

void checkpoint_list_free(char **dirs, int count) {
    for (int i = 0; i < count; i++) free(dirs[i]);
    free(dirs);
}

// ------------------------------------------------------------------------------------------------ verifying

static json_object *read_json(const char *path, ErrorText *err) {
    char *text = file_read_text(path, MAX_STATE_BYTES, err);
    if (!text) return NULL;
    json_object *o = json_tokener_parse(text);
    free(text);
    if (!o || !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        error_set(err, "%s: not a JSON object", path);
        return NULL;
    }
    return o;
}

static int get_int(json_object *o, const char *key, int64_t *out) {
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int)) return 0;
    *out = json_object_get_int64(v);
    return 1;
}

static const char *get_string(json_object *o, const char *key) {
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string)) return NULL;
    return json_object_get_string(v);
}

// One manifest entry against the file on disk: its size always, its hash when full.
static int check_listed_file(const char *dir, json_object *files, const char *name, int full, ErrorText *err) {
    char path[1200];
    path_join(path, sizeof(path), dir, name);
    json_object *entry;
    int64_t bytes;
    const char *want = NULL;
    if (!json_object_object_get_ex(files, name, &entry) || !get_int(entry, "bytes", &bytes) ||
        !(want = get_string(entry, "xxh3_64")))
        return error_set(err, "%s/manifest.json: expected an entry for %s with bytes and xxh3_64", dir, name);
    struct stat st;
    if (stat(path, &st) != 0) return error_set(err, "%s: missing (%s)", path, strerror(errno));
    if ((int64_t)st.st_size != bytes)
        return error_set(err, "%s: %lld bytes, the manifest says %lld (truncated or rewritten)", path,
                         (long long)st.st_size, (long long)bytes);
    if (!full) return 0;
    uint64_t hash, size;
    if (file_xxh3(path, &hash, &size, err) != 0) return -1;
    char got[32];
    hash_text(got, sizeof(got), hash);
    if (strcmp(got, want) != 0)
        return error_set(err, "%s: xxh3_64 %s, the manifest says %s (the file changed after it was written)", path,
                         got, want);
    return 0;
}

// The manifest and the files it lists; full = hashes too (else sizes only).
static int check_manifest(const char *dir, int full, ErrorText *err) {
    char path[1200];
    path_join(path, sizeof(path), dir, "manifest.json");
    json_object *manifest = read_json(path, err), *files;
    if (!manifest) return -1;
    int rc = 0;
    const char *format = get_string(manifest, "format");
    int64_t version = 0;
    if (!format || strcmp(format, "jepa.c checkpoint manifest") != 0 || !get_int(manifest, "format_version", &version) ||
        !json_object_object_get_ex(manifest, "files", &files) || !json_object_is_type(files, json_type_object))
        rc = error_set(err, "%s: expected a jepa.c checkpoint manifest with format_version and files", path);
    else if (version != CHECKPOINT_FORMAT_VERSION)
        rc = error_set(err, "%s: format_version %lld, this build reads %d", path, (long long)version,
                       CHECKPOINT_FORMAT_VERSION);
    for (int i = 0; rc == 0 && i < N_CHECKPOINT_FILES; i++)
        rc = check_listed_file(dir, files, CHECKPOINT_FILES[i], full, err);
    json_object_put(manifest);
    return rc;
}

// state.json: format, version and a step that agrees with the folder's name.
static int check_state(const char *dir, ErrorText *err) {
    char path[1200];
    path_join(path, sizeof(path), dir, "state.json");
    json_object *state = read_json(path, err);
    if (!state) return -1;
    int64_t step, cursor, version;
    const char *slash = strrchr(dir, '/');
    const long named = step_of_name(slash ? slash + 1 : dir);
    int rc = 0;
    if (!get_int(state, "format_version", &version) || !get_int(state, "step", &step) ||
        !get_int(state, "data_cursor", &cursor) || !get_string(state, "config_hash"))
        rc = error_set(err, "%s: expected format_version, step, data_cursor and config_hash", path);
    else if (version != CHECKPOINT_FORMAT_VERSION)
        rc = error_set(err, "%s: format_version %lld, this build reads %d", path, (long long)version,
                       CHECKPOINT_FORMAT_VERSION);
    else if (named >= 0 && step != named)
        rc = error_set(err, "%s: step %lld, the folder is named for step %ld", path, (long long)step, named);
    json_object_put(state);
    return rc;
}

void *checkpoint_read_blob(const char *dir, const char *name, size_t *bytes, ErrorText *err) {
    char path[1200];
    path_join(path, sizeof(path), dir, "manifest.json");
    json_object *manifest = read_json(path, err), *files;
    if (!manifest) return NULL;
    int rc = json_object_object_get_ex(manifest, "files", &files) ? check_listed_file(dir, files, name, 1, err)
                                                                    : error_set(err, "%s: no files", path);
    json_object_put(manifest);
    if (rc != 0) return NULL;
    path_join(path, sizeof(path), dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        error_set(err, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        error_set(err, "%s: fstat: %s", path, strerror(errno));
        fclose(f);
        return NULL;
    }
    *bytes = (size_t)st.st_size;
    void *data = xmalloc(*bytes ? *bytes : 1);
    const size_t got = fread(data, 1, *bytes, f);
    fclose(f);
    if (got != *bytes) {
        free(data);
        error_set(err, "%s: short read (%zu of %zu bytes)", path, got, *bytes);
        return NULL;
    }
    return data;
}

int checkpoint_verify(const char *dir, ErrorText *err) {
    if (check_manifest(dir, 1, err) != 0 || check_state(dir, err) != 0) return -1;
    for (int which = FILE_MODEL; which <= FILE_OPTIMIZER; which++) {
        char path[1200];
        path_join(path, sizeof(path), dir, CHECKPOINT_FILES[which]);
        StFile f;
        if (st_open(path, &f, err) != 0) return -1;
        st_close(&f);
    }
    return 0;
}

static void append_note(char *notes, size_t n, const char *dir, const char *why) {
    const size_t used = strlen(notes);
    snprintf(notes + used, n - used, "checkpoint %s does not verify, skipped: %s\n", dir, why);
}

// A kill inside install_dir between its two renames leaves a replaced checkpoint as step_N.old with no step_N: the
// old folder is complete, so it is put back (only when it verifies; a kill mid-removal leaves a partial .old, which
// stays a leftover). Rotation's own renames-before-delete can bring back a checkpoint it meant to drop; the next
// save drops it again. Returns the number recovered; each is named in notes.
int checkpoint_recover_replaced(const char *run_dir, char *notes, size_t n) {
    char parent[1100];
    path_join(parent, sizeof(parent), run_dir, "checkpoints");
    DIR *d = opendir(parent);
    if (!d) return 0;
    int recovered = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        const size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".old") != 0) continue;
        char base[300], old[1400], final[1400];
        snprintf(base, sizeof(base), "%.*s", (int)(len - 4), e->d_name);
        if (step_of_name(base) < 0) continue;
        path_join(old, sizeof(old), parent, e->d_name);
        path_join(final, sizeof(final), parent, base);
        ErrorText err;
        if (dir_exists(final) || checkpoint_verify(old, &err) != 0 || rename(old, final) != 0) continue;
        fsync_dir(parent);
        const size_t used = strlen(notes);
        snprintf(notes + used, n - used, "checkpoint %s recovered from %s (a replacement was interrupted)\n", final,
                 e->d_name);
        recovered++;
    }
    closedir(d);
    return recovered;
}

char *checkpoint_newest_verified(const char *run_dir, char *notes, size_t n) {
    char **dirs, *chosen = NULL;
    const int count = checkpoint_list(run_dir, &dirs);
    for (int i = 0; i < count && !chosen; i++) {
        ErrorText err;
        if (checkpoint_verify(dirs[i], &err) == 0) chosen = xstrdup(dirs[i]);
        else append_note(notes, n, dirs[i], err.text);
    }
    checkpoint_list_free(dirs, count);
    return chosen;
}

// ------------------------------------------------------------------------------------------------ rotating

// Folders of interrupted writes and replacements (step_N.tmp, step_N.old): this process is the run's only writer and
// has just finished its own.
static void remove_leftovers(const char *run_dir) {
    char parent[1100];
    path_join(parent, sizeof(parent), run_dir, "checkpoints");
    DIR *d = opendir(parent);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        const char *dot = strrchr(e->d_name, '.');
        if (strncmp(e->d_name, "step_", 5) != 0 || !dot || (strcmp(dot, ".tmp") != 0 && strcmp(dot, ".old") != 0))
            continue;
        char path[1400];
        ErrorText err;
        path_join(path, sizeof(path), parent, e->d_name);
        if (remove_flat_dir(path, &err) != 0) fprintf(stderr, "warning: %s\n", err.text);
    }
    closedir(d);
}

// Keeps the newest `keep` checkpoints that are complete (manifest and sizes agree; hashing every old checkpoint at
// every save would cost a full read) and deletes the older ones. The one just written counts first, so a good
// checkpoint is only ever deleted when `keep` newer good ones exist.
static void rotate(const char *run_dir, int keep) {
    remove_leftovers(run_dir);
    char **dirs;
    const int count = checkpoint_list(run_dir, &dirs);
    int good = 0;
    for (int i = 0; i < count; i++) {
        ErrorText err;
        if (good < keep) {
            good += check_manifest(dirs[i], 0, &err) == 0;
            continue;
        }
        // renamed aside first: a kill mid-removal leaves step_N.old (a leftover), never a half-deleted step_N
        char old[1300];
        snprintf(old, sizeof(old), "%s.old", dirs[i]);
        const char *doomed = rename(dirs[i], old) == 0 ? old : dirs[i];
        if (remove_flat_dir(doomed, &err) != 0) fprintf(stderr, "warning: %s\n", err.text);
    }
    checkpoint_list_free(dirs, count);
}

// ------------------------------------------------------------------------------------------------ matching

typedef struct {
    char text[sizeof(((ErrorText *)0)->text)];
    int listed, more;
} DiffList;

static void diff_add(DiffList *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void diff_add(DiffList *d, const char *fmt, ...) {
    if (d->listed == MAX_DIFFS_LISTED) {
        d->more++;
        return;
    }
    const size_t used = strlen(d->text);
    if (used) snprintf(d->text + used, sizeof(d->text) - used, "; ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->text + strlen(d->text), sizeof(d->text) - strlen(d->text), fmt, ap);
    va_end(ap);
    d->listed++;
}

static void shape_text(const int64_t *shape, int ndim, char *out, size_t n) {
    size_t used = (size_t)snprintf(out, n, "[");
    for (int i = 0; i < ndim && used < n; i++) used += (size_t)snprintf(out + used, n - used, "%s%lld", i ? "," : "", (long long)shape[i]);
    if (used < n) snprintf(out + used, n - used, "]");
}

static void diff_model_keys(const char *dir, const Config *cfg, DiffList *d) {
    char path[1200], hash[64];
    path_join(path, sizeof(path), dir, "state.json");
    ErrorText err;
    json_object *state = read_json(path, &err), *saved;
    json_object *now = model_keys_of(cfg, hash, sizeof(hash));
    const char *saved_hash = state ? get_string(state, "config_hash") : NULL;
    // A key that joined the model keys after the checkpoint was written (model.pos_embed) has its default there.
    Config defaults;
    config_defaults(&defaults);
    char default_hash[64];
    json_object *fallback = model_keys_of(&defaults, default_hash, sizeof(default_hash));
    if (state && saved_hash && strcmp(saved_hash, hash) != 0 && json_object_object_get_ex(state, "model_config", &saved)) {
        json_object_object_foreach(now, key, value) {
            json_object *old;
            const char *was = json_object_object_get_ex(saved, key, &old)      ? json_object_get_string(old)
                              : json_object_object_get_ex(fallback, key, &old) ? json_object_get_string(old)
                                                                                : "(absent)";
            if (strcmp(was, json_object_get_string(value)) != 0)
                diff_add(d, "%s: %s in the checkpoint, %s in the config", key, was, json_object_get_string(value));
        }
    }
    json_object_put(fallback);
    json_object_put(now);
    json_object_put(state);
}

static void diff_tensors(const Model *m, CheckpointFile which, const StFile *f, DiffList *d) {
    StTensor *want = xcalloc(2 * (size_t)m->table.count, sizeof(StTensor));
    const int count = file_tensors(m, which, NULL, NULL, want);
    char a[96], b[96];
    for (int i = 0; i < count; i++) {
        const StTensor *have = st_find(f, want[i].name);
        shape_text(want[i].shape, want[i].ndim, a, sizeof(a));
        if (!have) {
            diff_add(d, "%s %s: not in the checkpoint", want[i].name, a);
            continue;
        }
        shape_text(have->shape, have->ndim, b, sizeof(b));
        if (strcmp(a, b) != 0 || strcmp(have->dtype, want[i].dtype) != 0)
            diff_add(d, "%s: %s %s in the checkpoint, %s %s in the model", want[i].name, have->dtype, b, want[i].dtype, a);
    }
    for (int i = 0; i < f->count; i++) {
        int known = 0;
        for (int j = 0; j < count && !known; j++) known = strcmp(f->tensors[i].name, want[j].name) == 0;
        if (known) continue;
        shape_text(f->tensors[i].shape, f->tensors[i].ndim, a, sizeof(a));
        diff_add(d, "%s %s: in the checkpoint, not in the model", f->tensors[i].name, a);
    }
    free(want);
}

int checkpoint_match(const char *dir, const Model *m, const Config *cfg, ErrorText *err) {
    DiffList d = {{0}, 0, 0};
    diff_model_keys(dir, cfg, &d);
    for (int which = FILE_MODEL; which <= FILE_OPTIMIZER; which++) {
        char path[1200];
        path_join(path, sizeof(path), dir, CHECKPOINT_FILES[which]);
        StFile f;
        if (st_open(path, &f, err) != 0) return -1;
        diff_tensors(m, which, &f, &d);
        st_close(&f);
    }
    if (d.listed == 0) return 0;
    if (d.more) error_set(err, "%s does not match the config: %s; and %d more", dir, d.text, d.more);
    else error_set(err, "%s does not match the config: %s", dir, d.text);
    return -1;
}

// ------------------------------------------------------------------------------------------------ loading

static void read_tensor_file(const char *dir, Model *m, CheckpointFile which, void *a, void *b) {
    char path[1200];
    path_join(path, sizeof(path), dir, CHECKPOINT_FILES[which]);
    StTensor *want = xcalloc(2 * (size_t)m->table.count, sizeof(StTensor));
    const int count = file_tensors(m, which, a, b, want);
    StFile f;
    ErrorText err;
    if (st_open(path, &f, &err) != 0) die_input("%s", err.text);
    for (int i = 0; i < count; i++) {
        const StTensor *have = st_find(&f, want[i].name);
        if (!have || have->end - have->begin != st_numel(&want[i]) * m->be->msize)
            die_input("%s: tensor %s is missing or of another size", path, want[i].name);
        if (st_read(&f, have, (void *)want[i].data, &err) != 0) die_input("%s", err.text);
    }
    st_close(&f);
    free(want);
}

static void load_pair(const char *dir, Model *m, CheckpointFile which, void *dst_a, void *dst_b, size_t numel_b) {
    const size_t total = m->table.total, msize = m->be->msize;
    void *a = xmalloc(total * msize), *b = xmalloc(numel_b * msize);
    read_tensor_file(dir, m, which, a, b);
    m->be->upload(m->be, dst_a, a, total * msize);
    m->be->upload(m->be, dst_b, b, numel_b * msize);
    free(a);
    free(b);
}

int checkpoint_load_weights(const char *dir, Model *m, ErrorText *err) {
    if (checkpoint_verify(dir, err) != 0) return -1;
    char path[1200];
    path_join(path, sizeof(path), dir, CHECKPOINT_FILES[FILE_MODEL]);
    StFile f;
    if (st_open(path, &f, err) != 0) return -1;
    DiffList d = {{0}, 0, 0};
    diff_tensors(m, FILE_MODEL, &f, &d);
    st_close(&f);
    if (d.listed)
        return error_set(err, "%s does not hold this model's weights: %s%s", dir, d.text, d.more ? "; and more" : "");
    const size_t total = m->table.total, enc = table_module_numel(&m->table, MODULE_ENCODER);
    load_pair(dir, m, FILE_MODEL, m->params, m->target, enc);
    m->be->cast_params(m->be, m->work, m->params, total);
    m->be->cast_params(m->be, m->target_work, m->target, enc);
    return 0;
}

void checkpoint_load(const char *dir, Model *m, TrainPosition *pos) {
    const size_t total = m->table.total, enc = table_module_numel(&m->table, MODULE_ENCODER);
    load_pair(dir, m, FILE_MODEL, m->params, m->target, enc);
    load_pair(dir, m, FILE_OPTIMIZER, m->adam_m, m->adam_v, total);
    m->be->cast_params(m->be, m->work, m->params, total);
    m->be->cast_params(m->be, m->target_work, m->target, enc);
    char path[1200];
    path_join(path, sizeof(path), dir, "state.json");
    ErrorText err;
    json_object *state = read_json(path, &err);
    int64_t step, cursor;
    if (!state || !get_int(state, "step", &step) || !get_int(state, "data_cursor", &cursor))
        die_input("%s", state ? "state.json: expected step and data_cursor" : err.text);
    pos->step = (long)step;
    pos->data_cursor = cursor;
    json_object_put(state);
}
