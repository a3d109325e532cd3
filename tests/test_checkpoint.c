// test_checkpoint.c: safetensors written and read back, the reader's refusals (truncation, headers lying about
// offsets, holes, overlaps, wrong sizes), checkpoints of a model saved and loaded bit for bit, verification and
// matching failures with their messages, keep-K rotation, and the export layout against the official V-JEPA
// modules' state_dict keys (tests/data/official_keys_*.json, recorded with scripts/official_keys.py).
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend.h"
#include "checkpoint.h"
#include "common.h"
#include "config.h"
#include "export.h"
#include "model.h"
#include "rng.h"
#include "safetensors.h"
#include "test.h"

static char tmp_dir[] = "/tmp/jepa_test_checkpoint_XXXXXX";

static void tmp_path(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", tmp_dir, name); }

// ------------------------------------------------------------------------------------------------ safetensors

// Three tensors of distinct shapes and dtypes, values from their index.
static float a_values[6] = {1, 2, 3, 4, 5, 6};
static double b_values[3] = {-1.5, 0.25, 1e300};
static float c_value[1] = {42};

static int write_sample(const char *path, uint64_t *bytes) {
    StTensor t[3];
    st_tensor_set(&t[0], "a.weight", "F32", 2, (int64_t[]){2, 3}, a_values);
    st_tensor_set(&t[1], "b", "F64", 1, (int64_t[]){3}, b_values);
    st_tensor_set(&t[2], "scalar", "F32", 0, NULL, c_value);
    const StMeta meta[] = {{"format", "test"}};
    uint64_t hash;
    *bytes = st_write(path, t, 3, meta, 1, &hash);
    return 3;
}

static void test_safetensors_round_trip(void) {
    char path[512];
    tmp_path(path, sizeof(path), "sample.safetensors");
    uint64_t bytes;
    write_sample(path, &bytes);
    FILE *f = fopen(path, "rb");
    unsigned char head[9] = {0};
    const size_t got = fread(head, 1, 9, f);
    fclose(f);
    uint64_t header_len = 0;
    for (int i = 0; i < 8; i++) header_len |= (uint64_t)head[i] << (8 * i);
    TEST_CHECK("safetensors: header padded to 8 bytes and starts with '{'",
               got == 9 && (8 + header_len) % 8 == 0 && head[8] == '{', "header length %llu, first byte '%c'",
               (unsigned long long)header_len, head[8]);
    TEST_CHECK("safetensors: file size = 8 + header + data", bytes == 8 + header_len + sizeof(a_values) +
                                                                         sizeof(b_values) + sizeof(c_value),
               "%llu bytes", (unsigned long long)bytes);
    StFile st;
    ErrorText err;
    const int rc = st_open(path, &st, &err);
    TEST_CHECK("safetensors: reads back what it wrote", rc == 0 && st.count == 3, "%s", rc ? err.text : "count");
    if (rc != 0) return;
    const StTensor *a = st_find(&st, "a.weight"), *b = st_find(&st, "b"), *c = st_find(&st, "scalar");
    float a_back[6] = {0}, c_back[1] = {0};
    double b_back[3] = {0};
    const int ok = a && b && c && st_read(&st, a, a_back, &err) == 0 && st_read(&st, b, b_back, &err) == 0 &&
                   st_read(&st, c, c_back, &err) == 0;
    TEST_CHECK("safetensors: names, dtypes, shapes and bytes survive",
               ok && a->ndim == 2 && a->shape[0] == 2 && a->shape[1] == 3 && !strcmp(b->dtype, "F64") &&
                   c->ndim == 0 && !memcmp(a_back, a_values, sizeof(a_values)) &&
                   !memcmp(b_back, b_values, sizeof(b_values)) && c_back[0] == 42,
               "tensor mismatch");
    st_close(&st);
}

// Writes header text (length-prefixed, padded) and data_bytes zero bytes to path.
static void write_raw(const char *path, const char *header, size_t data_bytes) {
    FILE *f = fopen(path, "wb");
    const size_t len = strlen(header), padded = (len + 7) / 8 * 8;
    unsigned char le[8];
    for (int i = 0; i < 8; i++) le[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    fwrite(le, 1, 8, f);
    fwrite(header, 1, len, f);
    for (size_t i = len; i < padded; i++) fputc(' ', f);
    for (size_t i = 0; i < data_bytes; i++) fputc(0, f);
    fclose(f);
}

// st_open must refuse the file, with a message containing `expect`.
static void expect_refusal(const char *name, const char *path, const char *expect) {
    StFile st;
    ErrorText err = {{0}};
    const int rc = st_open(path, &st, &err);
    if (rc == 0) st_close(&st);
    TEST_CHECK(name, rc != 0 && strstr(err.text, expect) && strstr(err.text, path),
               "rc %d, message '%s' (expected it to name the file and say '%s')", rc, err.text, expect);
}

static void test_safetensors_refusals(void) {
    char path[512], good[512];
    tmp_path(good, sizeof(good), "sample.safetensors");
    tmp_path(path, sizeof(path), "bad.safetensors");
    struct stat st;
    stat(good, &st);
    // Truncated at several points: inside the length, inside the header, inside the data.
    const off_t cuts[] = {4, 20, st.st_size - 1};
    const char *expect[] = {"too short", "header length", "truncated"};
    for (int i = 0; i < 3; i++) {
        char cmd[1200], name[96];
        snprintf(cmd, sizeof(cmd), "head -c %lld %s > %s", (long long)cuts[i], good, path);
        if (system(cmd) != 0) TEST_FAIL("safetensors: truncate", "%s failed", cmd);
        snprintf(name, sizeof(name), "safetensors: truncated to %lld bytes is refused", (long long)cuts[i]);
        expect_refusal(name, path, expect[i]);
    }
#define ENTRY(name, dtype, shape, begin, end) \
    "\"" name "\":{\"dtype\":\"" dtype "\",\"shape\":[" shape "],\"data_offsets\":[" #begin "," #end "]}"
    static const struct {
        const char *test, *header;
        size_t data_bytes;
        const char *expect;
    } lies[] = {
        {"a hole between tensors", "{" ENTRY("a", "F32", "2", 0, 8) "," ENTRY("b", "F32", "2", 12, 20) "}", 20, "a hole"},
        {"overlapping tensors", "{" ENTRY("a", "F32", "2", 0, 8) "," ENTRY("b", "F32", "2", 4, 12) "}", 12, "overlapping"},
        {"offsets past the end of the file", "{" ENTRY("a", "F32", "2", 0, 8) "}", 4, "truncated"},
        {"bytes after the last tensor", "{" ENTRY("a", "F32", "2", 0, 8) "}", 12, "trailing bytes"},
        {"offsets that disagree with dtype x shape", "{" ENTRY("a", "F32", "3", 0, 8) "}", 8, "need 12"},
        {"an unknown dtype", "{" ENTRY("a", "Q7", "2", 0, 8) "}", 8, "unknown dtype"},
        {"reversed offsets", "{" ENTRY("a", "F32", "2", 8, 0) "}", 8, "data_offsets"},
        {"a header that is not an object", "[1, 2, 3]", 0, "not a JSON object"},
    };
#undef ENTRY
    for (size_t i = 0; i < sizeof(lies) / sizeof(lies[0]); i++) {
        char name[160];
        snprintf(name, sizeof(name), "safetensors: %s is refused", lies[i].test);
        write_raw(path, lies[i].header, lies[i].data_bytes);
        expect_refusal(name, path, lies[i].expect);
    }
    FILE *f = fopen(path, "wb");
    const unsigned char huge[8] = {0, 0, 0, 0, 0, 0, 0, 1};
    fwrite(huge, 1, 8, f);
    fputs("{}", f);
    fclose(f);
    expect_refusal("safetensors: a header length beyond the file is refused", path, "header length");
}

// ------------------------------------------------------------------------------------------------ checkpoints

static void tiny_model_config(Config *cfg) {
    config_load(cfg, "configs/tiny.yaml", 0, NULL);
    cfg->meta.threads = 2;
    cfg->logging.keep = 2;
}

// Random values in every state buffer, so that a load that misses one is seen.
static void scramble(Model *m, uint64_t seed) {
    Backend *be = m->be;
    const size_t total = m->table.total, enc = table_module_numel(&m->table, MODULE_ENCODER);
    double *v = xmalloc(total * sizeof(double));
    void *buffers[] = {m->params, m->adam_m, m->adam_v, m->target};
    for (int k = 0; k < 4; k++) {
        Rng r = rng_stream(seed, RNG_TEST, (uint64_t)k, 0);
        for (size_t i = 0; i < total; i++) v[i] = rng_normal(&r) * (k == 2 ? 1e-3 : 1.0);
        be->upload_f64(be, buffers[k], be->msize, v, k == 3 ? enc : total);
    }
    free(v);
}

static int buffers_equal(const Model *a, const Model *b) {
    const size_t total = a->table.total, enc = table_module_numel(&a->table, MODULE_ENCODER);
    const size_t bytes = total * a->be->msize;
    char *x = xmalloc(bytes), *y = xmalloc(bytes);
    const void *pa[] = {a->params, a->adam_m, a->adam_v, a->target}, *pb[] = {b->params, b->adam_m, b->adam_v, b->target};
    int equal = 1;
    for (int k = 0; k < 4; k++) {
        const size_t n = (k == 3 ? enc : total) * a->be->msize;
        a->be->download(a->be, x, pa[k], n);
        b->be->download(b->be, y, pb[k], n);
        equal &= memcmp(x, y, n) == 0;
    }
    free(x);
    free(y);
    return equal;
}

static void corrupt_byte(const char *path, long offset) {
    FILE *f = fopen(path, "r+b");
    fseek(f, offset, SEEK_SET);
    const int c = fgetc(f);
    fseek(f, offset, SEEK_SET);
    fputc(c ^ 0x5a, f);
    fclose(f);
}

static void test_checkpoint_round_trip(void) {
    Config cfg;
    tiny_model_config(&cfg);
    Backend *be = backend_cpu_create(0, 2);
    Model *a = model_create(&cfg, be), *b = model_create(&cfg, be);
    scramble(a, 1);
    scramble(b, 2);
    char run[512], path[1200];
    tmp_path(run, sizeof(run), "run");
    mkdir(run, 0755);
    const TrainPosition at = {7, 7 * 8};
    const Schedule last = {1e-3, 0.04, 0.996, 0};
    checkpoint_save(run, a, &cfg, &at, &last, path, sizeof(path));
    ErrorText err;
    const int verified = checkpoint_verify(path, &err);
    TEST_CHECK("checkpoint: a saved checkpoint verifies", verified == 0, "%s", err.text);
    TEST_CHECK("checkpoint: folder named step_000007", strstr(path, "/checkpoints/step_000007") != NULL, "%s", path);
    const int matches = checkpoint_match(path, b, &cfg, &err);
    TEST_CHECK("checkpoint: matches a model of the same config", matches == 0, "%s", err.text);
    TrainPosition back = {0, 0};
    checkpoint_load(path, b, &back);
    TEST_CHECK("checkpoint: parameters, target and both moments load bit for bit", buffers_equal(a, b),
               "buffers differ");
    TEST_CHECK("checkpoint: step and data cursor load back", back.step == 7 && back.data_cursor == 56,
               "step %ld cursor %lld", back.step, (long long)back.data_cursor);

    // A different model: refused, the differing key and tensors listed.
    Config deeper = cfg;
    deeper.model.depth = 5;
    Model *c = model_create(&deeper, be);
    const int refused = checkpoint_match(path, c, &deeper, &err);
    TEST_CHECK("checkpoint: a deeper model is refused naming model.depth and the missing tensor",
               refused != 0 && strstr(err.text, "model.depth: 4 in the checkpoint, 5 in the config") &&
                   strstr(err.text, "encoder.blocks.4.norm1.weight [96]: not in the checkpoint"),
               "%s", err.text);
    model_free(c);

    // One flipped byte in the middle of the data: the manifest's hash catches it.
    char file[1300];
    snprintf(file, sizeof(file), "%s/optimizer.safetensors", path);
    struct stat st;
    stat(file, &st);
    corrupt_byte(file, (long)st.st_size / 2);
    const int corrupt = checkpoint_verify(path, &err);
    TEST_CHECK("checkpoint: a flipped byte fails verification naming the file and xxh3_64",
               corrupt != 0 && strstr(err.text, "optimizer.safetensors") && strstr(err.text, "xxh3_64"), "%s",
               err.text);
    corrupt_byte(file, (long)st.st_size / 2);  // restored
    snprintf(file, sizeof(file), "%s/manifest.json", path);
    FILE *f = fopen(file, "w");
    fputs("{\"format\": \"jepa.c checkpoint manifest\", \"files\": ", f);  // cut short
    fclose(f);
    const int bad_manifest = checkpoint_verify(path, &err);
    TEST_CHECK("checkpoint: a corrupt manifest fails verification", bad_manifest != 0 && strstr(err.text, "manifest.json"),
               "%s", err.text);
    model_free(a);
    model_free(b);
    backend_destroy(be);
}

static void test_rotation(void) {
    Config cfg;
    tiny_model_config(&cfg);
    Backend *be = backend_cpu_create(0, 2);
    Model *m = model_create(&cfg, be);
    char run[512], path[1200];
    tmp_path(run, sizeof(run), "rotate");
    mkdir(run, 0755);
    const Schedule last = {0};
    for (long step = 1; step <= 4; step++) {
        const TrainPosition at = {step, step * 8};
        checkpoint_save(run, m, &cfg, &at, &last, path, sizeof(path));
    }
    char **dirs;
    int count = checkpoint_list(run, &dirs);
    TEST_CHECK("rotation: logging.keep=2 keeps the newest two (4, 3)",
               count == 2 && strstr(dirs[0], "step_000004") && strstr(dirs[1], "step_000003"), "%d left, newest %s",
               count, count ? dirs[0] : "-");
    // Step 4 made incomplete (a truncated file): it does not count as good, so step 3 stays as the second good one.
    char file[1300];
    snprintf(file, sizeof(file), "%s/model.safetensors", dirs[0]);
    if (truncate(file, 100) != 0) TEST_FAIL("rotation: truncate", "%s", file);
    checkpoint_list_free(dirs, count);
    TrainPosition at = {5, 40};
    checkpoint_save(run, m, &cfg, &at, &last, path, sizeof(path));
    count = checkpoint_list(run, &dirs);
    TEST_CHECK("rotation: an incomplete checkpoint does not count toward keep (5, 4 kept, 3 too)",
               count == 3 && strstr(dirs[2], "step_000003"), "%d left", count);
    checkpoint_list_free(dirs, count);
    char leftover[1000];
    snprintf(leftover, sizeof(leftover), "%s/checkpoints/step_000002.tmp", run);  // an interrupted write
    mkdir(leftover, 0755);
    snprintf(file, sizeof(file), "%s/model.safetensors", leftover);
    fclose(fopen(file, "w"));
    cfg.logging.keep = 1;
    at = (TrainPosition){6, 48};
    checkpoint_save(run, m, &cfg, &at, &last, path, sizeof(path));
    count = checkpoint_list(run, &dirs);
    TEST_CHECK("rotation: keep=1 deletes the older ones once the new one is written",
               count == 1 && strstr(dirs[0], "step_000006"), "%d left", count);
    struct stat st;
    TEST_CHECK("rotation: the leftover of an interrupted write is removed", stat(leftover, &st) != 0, "%s", leftover);
    checkpoint_list_free(dirs, count);
    model_free(m);
    backend_destroy(be);
}

// ------------------------------------------------------------------------------------------------ export layout

// The official keys file's "encoder" or "predictor" list must equal the export layout, names, shapes and order.
static void compare_layout(const char *test, const char *keys_path, const char *part, const ExportTensor *layout,
                           int count) {
    json_object *root = json_object_from_file(keys_path), *list;
    if (!root || !json_object_object_get_ex(root, part, &list)) {
        TEST_FAIL(test, "cannot read %s[%s]", keys_path, part);
        return;
    }
    const int n = (int)json_object_array_length(list);
    int mismatch = n == count ? -1 : (n < count ? n : count);
    for (int i = 0; i < n && i < count && mismatch < 0; i++) {
        json_object *row = json_object_array_get_idx(list, (size_t)i), *shape = json_object_array_get_idx(row, 1);
        int same = !strcmp(json_object_get_string(json_object_array_get_idx(row, 0)), layout[i].name) &&
                   (int)json_object_array_length(shape) == layout[i].ndim;
        for (int d = 0; same && d < layout[i].ndim; d++)
            same = json_object_get_int64(json_object_array_get_idx(shape, (size_t)d)) == layout[i].shape[d];
        if (!same) mismatch = i;
    }
    TEST_CHECK(test, mismatch < 0, "%d official keys, %d exported; first difference at %d (%s)", n, count, mismatch,
               mismatch >= 0 && mismatch < count ? layout[mismatch].name : "-");
    json_object_put(root);
}

static void test_export_layout(const char *config, const char *keys_path, const char *label) {
    Config cfg;
    config_load(&cfg, config, 0, NULL);
    char name[160];
    for (int what = EXPORT_TARGET; what <= EXPORT_PREDICTOR; what++) {
        ModelDims d;
        TensorTable t;
        int count;
        ExportTensor *layout = export_layout_for(&cfg, (ExportWhat)what, &d, &t, &count);
        snprintf(name, sizeof(name), "export: %s %s keys and shapes equal the official state_dict", label,
                 what == EXPORT_PREDICTOR ? "predictor" : what == EXPORT_ENCODER ? "encoder" : "target encoder");
        compare_layout(name, keys_path, what == EXPORT_PREDICTOR ? "predictor" : "encoder", layout, count);
        free(layout);
        table_free(&t);
    }
}

int main(void) {
    if (!mkdtemp(tmp_dir)) {
        TEST_FAIL("checkpoint: mkdtemp", "%s", tmp_dir);
        TEST_EXIT();
    }
    test_safetensors_round_trip();
    test_safetensors_refusals();
    test_checkpoint_round_trip();
    test_rotation();
    test_export_layout("configs/vitl16.yaml", "tests/data/official_keys_vitl16.json", "ViT-L/16");
    test_export_layout("configs/tiny.yaml", "tests/data/official_keys_tiny.json", "tiny");
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp_dir);
    if (system(cmd) != 0) printf("note: could not remove %s\n", tmp_dir);
    TEST_EXIT();
}
