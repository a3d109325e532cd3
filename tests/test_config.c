// test_config.c: the typed configuration. Defaults are the official V-JEPA ViT-L/16 recipe; the shipped configs
// load; both float spellings and every override form parse; write_yaml reads back to the same struct; the doc and
// the table list every key; and each kind of user mistake exits 2 with one line naming the key and where it was.
// Run from the repository root (configs/ is found relative to it).
#include "config.h"
#include "test.h"

#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml.h>

static char temp_dir[64];

static void temp_path(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", temp_dir, name); }

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
}

// ------------------------------------------------------------------------------------------------ child runs

typedef struct {
    int exit_code;     // exit status, or 128 + signal
    char stderr_text[2048];
} ChildResult;

// Runs config_load (and config_validate when asked) in a fork()ed child, its stderr captured through a pipe.
static ChildResult load_in_child(const char *path, int n_overrides, char **overrides, bool validate) {
    ChildResult result = {0};
    int fds[2];
    fflush(stdout);  // a child's exit() must not print the parent's buffered PASS lines again
    fflush(stderr);
    if (pipe(fds)) {
        perror("pipe");
        exit(1);
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        Config cfg;
        config_load(&cfg, path, n_overrides, overrides);
        if (validate) config_validate(&cfg);
        _exit(0);
    }
    close(fds[1]);
    size_t used = 0;
    ssize_t got;
    while ((got = read(fds[0], result.stderr_text + used, sizeof result.stderr_text - 1 - used)) > 0) used += (size_t)got;
    result.stderr_text[used] = 0;
    close(fds[0]);
    int status;
    waitpid(pid, &status, 0);
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return result;
}

// ------------------------------------------------------------------------------------------------ error cases

typedef struct {
    const char *name;
    const char *yaml;           // file contents; NULL = no file, "<missing>" = a path that does not exist
    const char *overrides[3];   // NULL-terminated
    bool validate;
    const char *expect[4];      // substrings of the message; "{file}" stands for the temp file's path
} ErrorCase;

static const ErrorCase error_cases[] = {
    {"unknown key suggests the nearest", "optimization:\n  lrr: 0.1\n", {NULL}, false,
     {"{file}:2:", "'optimization.lrr'", "did you mean optimization.lr?"}},
    {"unknown section suggests the nearest", "optimisation:\n  lr: 0.1\n", {NULL}, false,
     {"{file}:1:", "unknown section 'optimisation'", "did you mean optimization?"}},
    {"key under the wrong section", "data:\n  lr: 0.1\n", {NULL}, false,
     {"{file}:2:", "'data.lr'", "did you mean optimization.lr?"}},
    {"wrong type for a float", "optimization:\n  lr: abc\n", {NULL}, false,
     {"{file}:2:", "optimization.lr: expected a number >= 0", "'abc'"}},
    {"batch_size 0 out of range", "data:\n  batch_size: 0\n", {NULL}, false,
     {"{file}:2:", "data.batch_size: expected an integer >= 1", "'0'"}},
    {"negative lr", "optimization:\n  lr: -1.0e-3\n", {NULL}, false,
     {"{file}:2:", "optimization.lr", ">= 0"}},
    {"ema start above 1", "optimization:\n  ema: [1.5, 1.0]\n", {NULL}, false,
     {"{file}:2:", "optimization.ema[0]", "in [0, 1]", "'1.5'"}},
    {"ema list of one", "optimization:\n  ema:\n    - 0.9\n", {NULL}, false,
     {"{file}:3:", "optimization.ema: expected a list of 2", "got a list of 1"}},
    {"int key given 2.5", "data:\n  batch_size: 2.5\n", {NULL}, false,
     {"{file}:2:", "data.batch_size: expected an integer", "'2.5'"}},
    {"null where not nullable", "optimization:\n  lr: ~\n", {NULL}, false,
     {"{file}:2:", "optimization.lr", "got null"}},
    {"bad enum value", "meta:\n  dtype: float16\n", {NULL}, false,
     {"{file}:2:", "meta.dtype: expected one of float32|bfloat16", "'float16'"}},
    {"bool that is not true/false", "model:\n  uniform_power: yes\n", {NULL}, false,
     {"{file}:2:", "model.uniform_power: expected true or false", "'yes'"}},
    {"empty file", "", {NULL}, false, {"{file}: the file is empty", "expected a mapping of sections"}},
    {"comments only", "# nothing here\n", {NULL}, false, {"{file}: the file is empty"}},
    {"empty mask list", "data:\n  batch_size: 8\nmask: []\n", {NULL}, false,
     {"{file}:3:", "mask: expected 1 to 8 mask generators", "got a list of 0"}},
    {"nine mask generators",
     "mask: [{num_blocks: 1, spatial_scale: [0.1, 0.1]}, {num_blocks: 1, spatial_scale: [0.1, 0.1]},\n"
     "  {num_blocks: 1, spatial_scale: [0.1, 0.1]}, {num_blocks: 1, spatial_scale: [0.1, 0.1]},\n"
     "  {num_blocks: 1, spatial_scale: [0.1, 0.1]}, {num_blocks: 1, spatial_scale: [0.1, 0.1]},\n"
     "  {num_blocks: 1, spatial_scale: [0.1, 0.1]}, {num_blocks: 1, spatial_scale: [0.1, 0.1]},\n"
     "  {num_blocks: 1, spatial_scale: [0.1, 0.1]}]\n",
     {NULL}, false, {"{file}:1:", "mask: expected 1 to 8", "a list of 9"}},
    {"mask generator without spatial_scale", "mask:\n  - num_blocks: 3\n", {NULL}, false,
     {"{file}:2:", "mask.0.spatial_scale: missing"}},
    {"mask key typo", "mask:\n  - num_blocks: 3\n    spatial_scale: [0.1, 0.2]\n  - num_block: 2\n", {NULL}, false,
     {"{file}:4:", "'mask.1.num_block'", "did you mean mask.1.num_blocks?"}},
    {"spatial_scale lo > hi", "mask:\n  - num_blocks: 3\n    spatial_scale: [0.5, 0.2]\n", {NULL}, false,
     {"{file}:3:", "mask.0.spatial_scale", "lo <= hi"}},
    {"duplicate key", "data:\n  batch_size: 8\n  crop_size: 64\n  batch_size: 9\n", {NULL}, false,
     {"{file}:4:", "duplicate key 'data.batch_size'", "first at line 2"}},
    {"duplicate section", "data:\n  batch_size: 8\nmeta:\n  seed: 1\ndata:\n  crop_size: 64\n", {NULL}, false,
     {"{file}:5:", "duplicate key 'data'"}},
    {"YAML syntax error with line", "data:\n  batch_size: 8\n crop_size: 4\n", {NULL}, false,
     {"{file}:3:", "YAML syntax error"}},
    {"section that is not a mapping", "data: 5\n", {NULL}, false, {"{file}:1:", "data: expected a mapping"}},
    {"second YAML document", "data: {}\n---\ndata: {}\n", {NULL}, false, {"{file}:3:", "second YAML document"}},
    {"string too long", "logging:\n  write_tag: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n", {NULL},
     false, {"{file}:2:", "logging.write_tag: expected a string of 1 to 63 characters"}},
    {"missing file", "<missing>", {NULL}, false, {"{file}: cannot open config file"}},
    {"official key nodes rejected", "app: vjepa\nnodes: 16\n", {NULL}, false,
     {"{file}:2:", "nodes: not supported", "mpirun -np"}},
    {"data.datasets not a list", "data:\n  datasets: /data/k700.h5\n", {NULL}, false,
     {"{file}:2:", "data.datasets: expected a list of 0 to 16 paths", "'/data/k700.h5'"}},
    {"data.datasets_weights not positive", NULL, {"data.datasets=[a.h5, b.h5]", "data.datasets_weights=[1, 0]", NULL},
     false, {"command line:", "data.datasets_weights[1]: expected a number > 0", "'0'"}},
    {"validate one weight per store", NULL, {"data.datasets=[a.h5, b.h5]", "data.datasets_weights=[1.0]", NULL}, true,
     {"data.datasets_weights has 1 values", "data.datasets lists 2 stores"}},
    {"old flip key", NULL, {"data_aug.horizontal_flip=true", NULL}, false,
     {"command line:", "data_aug.horizontal_flip: not supported", "use data_aug.random_horizontal_flip"}},
    {"official key dataset_type rejected", "data:\n  dataset_type: VideoDataset\n", {NULL}, false,
     {"{file}:2:", "data.dataset_type: not supported", "data.datasets"}},
    {"official key num_workers rejected", "data:\n  num_workers: 12\n", {NULL}, false,
     {"{file}:2:", "data.num_workers: not supported"}},
    {"official key load_checkpoint rejected", "meta:\n  load_checkpoint: false\n", {NULL}, false,
     {"{file}:2:", "meta.load_checkpoint", "meta.resume"}},
    {"official app other than vjepa", "app: ijepa\n", {NULL}, false, {"{file}:1:", "app: expected vjepa", "'ijepa'"}},
    {"decode_one_clip false", "data:\n  decode_one_clip: false\n", {NULL}, false,
     {"{file}:2:", "data.decode_one_clip: expected true"}},
    {"override mask index out of range", NULL, {"mask.5.num_blocks=3", NULL}, false,
     {"command line:", "mask.5.num_blocks", "out of range", "2 mask generators"}},
    {"override without =", NULL, {"optimization.lr", NULL}, false, {"command line:", "'optimization.lr'", "key=value"}},
    {"override typo", "data:\n  batch_size: 8\n", {"optimization.lrr=1e-3", NULL}, false,
     {"command line:", "'optimization.lrr'", "did you mean optimization.lr?"}},
    {"override bad bool", NULL, {"model.uniform_power=maybe", NULL}, false,
     {"command line:", "model.uniform_power: expected true or false", "'maybe'"}},
    {"override unclosed list", NULL, {"optimization.ema=[0.996, 1.0", NULL}, false,
     {"command line:", "optimization.ema", "as YAML"}},
    {"override inf", NULL, {"optimization.lr=inf", NULL}, false, {"command line:", "optimization.lr", "'inf'"}},
    {"override max_keep 0", NULL, {"mask.0.max_keep=0", NULL}, false,
     {"command line:", "mask.0.max_keep: expected an integer >= 1, or null"}},
    {"validate crop_size % patch_size", "data:\n  crop_size: 100\n", {NULL}, true,
     {"data.crop_size (100)", "data.patch_size (16)"}},
    {"validate num_frames % tubelet_size", NULL, {"data.num_frames=15", NULL}, true,
     {"data.num_frames (15)", "data.tubelet_size (2)"}},
    {"validate warmup <= epochs", NULL, {"optimization.warmup=400", NULL}, true,
     {"optimization.warmup", "optimization.epochs"}},
    {"validate loss_exp", "loss:\n  loss_exp: 2.0\n", {NULL}, true, {"loss.loss_exp", "only L1 (loss_exp: 1) is supported"}},
    {"validate reg_coeff", NULL, {"loss.reg_coeff=0.1", NULL}, true, {"loss.reg_coeff", "only 0"}},
    {"validate reprob", NULL, {"data_aug.reprob=0.25", NULL}, true, {"data_aug.reprob", "only 0"}},
    {"validate num_clips", NULL, {"data.num_clips=2", NULL}, true, {"data.num_clips", "only 1"}},
    {"validate vit_custom sizes", NULL, {"model.model_name=vit_custom", NULL}, true,
     {"model.embed_dim", "model.num_heads", "vit_custom"}},
    {"validate embed_dim % num_heads", NULL,
     {"model.model_name=vit_custom", "model.embed_dim=100", "model.depth=2"}, true,
     {"model.num_heads"}},
};

static void replace_file_marker(const char *pattern, const char *path, char *out, size_t n) {
    const char *marker = strstr(pattern, "{file}");
    if (marker)
        snprintf(out, n, "%.*s%s%s", (int)(marker - pattern), pattern, path, marker + strlen("{file}"));
    else
        snprintf(out, n, "%s", pattern);
}

static void check_error_case(const ErrorCase *c, int index) {
    char path[256], name[160], expected[512];
    snprintf(name, sizeof name, "error: %s", c->name);
    char file_name[32];
    snprintf(file_name, sizeof file_name, "case_%02d.yaml", index);
    temp_path(path, sizeof path, file_name);
    if (c->yaml && strcmp(c->yaml, "<missing>")) write_text(path, c->yaml);
    int n_overrides = 0;
    while (n_overrides < 3 && c->overrides[n_overrides]) n_overrides++;
    ChildResult r = load_in_child(c->yaml ? path : NULL, n_overrides, (char **)c->overrides, c->validate);
    const char *text = r.stderr_text;
    const char *newline = strchr(text, '\n');
    if (r.exit_code != 2) {
        TEST_FAIL(name, "exit %d, want 2; stderr: %s", r.exit_code, text);
        return;
    }
    if (strncmp(text, "error: ", 7) || !newline || newline[1]) {
        TEST_FAIL(name, "want one line starting 'error: ', got: %s", text);
        return;
    }
    for (int e = 0; e < 4 && c->expect[e]; e++) {
        replace_file_marker(c->expect[e], path, expected, sizeof expected);
        if (!strstr(text, expected)) {
            TEST_FAIL(name, "message lacks \"%s\": %.*s", expected, (int)(newline - text), text);
            return;
        }
    }
    TEST_PASS(name);
}

// ------------------------------------------------------------------------------------------------ values

static bool load_ok(const char *name, const char *path, int n, char **overrides) {
    ChildResult r = load_in_child(path, n, overrides, true);
    if (r.exit_code == 0) return true;
    TEST_FAIL(name, "loading %s exited %d: %s", path ? path : "(defaults)", r.exit_code, r.stderr_text);
    return false;
}

static void test_defaults_are_official_vitl16(void) {
    Config c;
    config_defaults(&c);
    const char *name = "defaults are the official V-JEPA vitl16 recipe";
    TEST_CHECK(name,
               c.data.batch_size == 24 && c.data.num_frames == 16 && c.data.tubelet_size == 2 &&
                   c.data.sampling_rate == 4 && c.data.crop_size == 224 && c.data.patch_size == 16 &&
                   !strcmp(c.model.model_name, "vit_large") && c.model.pred_depth == 12 &&
                   c.model.pred_embed_dim == 384 && c.optimization.ipe == 300 && c.optimization.ipe_scale == 1.25 &&
                   c.optimization.epochs == 300 && c.optimization.warmup == 40 && c.optimization.lr == 6.25e-4 &&
                   c.optimization.start_lr == 2e-4 && c.optimization.final_lr == 1e-6 &&
                   c.optimization.weight_decay == 0.04 && c.optimization.final_weight_decay == 0.4 &&
                   c.optimization.clip_grad == 10.0 && c.optimization.ema[0] == 0.998 && c.optimization.ema[1] == 1.0 &&
                   c.optimization.betas[0] == 0.9 && c.optimization.betas[1] == 0.999 && c.optimization.eps == 1e-8 &&
                   c.meta.seed == 234 && !strcmp(c.meta.dtype, "bfloat16") &&
                   c.data_aug.random_resize_aspect_ratio[1] == 1.35 && c.data_aug.random_resize_scale[0] == 0.3,
               "a default differs: batch %d lr %g ema [%g, %g] model %s", c.data.batch_size, c.optimization.lr,
               c.optimization.ema[0], c.optimization.ema[1], c.model.model_name);
    TEST_CHECK("default masks are V-JEPA's 8 x 0.15 and 2 x 0.7",
               c.num_masks == 2 && c.mask[0].num_blocks == 8 && c.mask[0].spatial_scale[0] == 0.15 &&
                   c.mask[0].spatial_scale[1] == 0.15 && c.mask[1].num_blocks == 2 && c.mask[1].spatial_scale[0] == 0.7 &&
                   c.mask[1].aspect_ratio[0] == 0.75 && c.mask[1].aspect_ratio[1] == 1.5 &&
                   c.mask[0].temporal_scale[0] == 1.0 && c.mask[1].max_temporal_keep == 1.0 && c.mask[0].max_keep == 0,
               "num_masks %d, mask0 %d x %g, mask1 %d x %g", c.num_masks, c.mask[0].num_blocks, c.mask[0].spatial_scale[0],
               c.mask[1].num_blocks, c.mask[1].spatial_scale[0]);
    TEST_CHECK("defaults pass config_validate", load_in_child(NULL, 0, NULL, true).exit_code == 0, "defaults rejected");
}

static void test_shipped_configs(void) {
    Config defaults, vitl, vith, tiny;
    char *device_auto[] = {"meta.device=auto"};
    config_defaults(&defaults);
    if (load_ok("configs/vitl16.yaml loads", "configs/vitl16.yaml", 0, NULL)) {
        config_load(&vitl, "configs/vitl16.yaml", 1, device_auto);
        TEST_CHECK("configs/vitl16.yaml is the default recipe (device aside)", !memcmp(&vitl, &defaults, sizeof vitl),
                   "vitl16.yaml with meta.device=auto differs from config_defaults");
        config_load(&vitl, "configs/vitl16.yaml", 0, NULL);
        TEST_CHECK("configs/vitl16.yaml runs on cuda in bfloat16",
                   !strcmp(vitl.meta.device, "cuda") && !strcmp(vitl.meta.dtype, "bfloat16") && vitl.data.batch_size == 24,
                   "device %s dtype %s batch %d", vitl.meta.device, vitl.meta.dtype, vitl.data.batch_size);
    }
    if (load_ok("configs/vith16.yaml loads", "configs/vith16.yaml", 0, NULL)) {
        config_load(&vith, "configs/vith16.yaml", 0, NULL);
        TEST_CHECK("configs/vith16.yaml is vit_huge", !strcmp(vith.model.model_name, "vit_huge"), "model %s",
                   vith.model.model_name);
        char *as_large[] = {"model.model_name=vit_large"};
        config_load(&vith, "configs/vith16.yaml", 1, as_large);
        config_load(&vitl, "configs/vitl16.yaml", 0, NULL);
        TEST_CHECK("configs/vith16.yaml differs from vitl16 only in the model", !memcmp(&vith, &vitl, sizeof vith),
                   "other keys differ");
    }
    if (load_ok("configs/tiny.yaml loads", "configs/tiny.yaml", 0, NULL)) {
        config_load(&tiny, "configs/tiny.yaml", 0, NULL);
        TEST_CHECK("configs/tiny.yaml values",
                   !strcmp(tiny.model.model_name, "vit_custom") && tiny.model.embed_dim == 96 && tiny.model.depth == 4 &&
                       tiny.data.crop_size == 48 && tiny.data.patch_size == 8 && tiny.data.num_frames == 8 &&
                       tiny.num_masks == 2 && !strcmp(tiny.meta.dtype, "float32") && !strcmp(tiny.meta.device, "cpu") &&
                       tiny.optimization.lr == 1e-3 && tiny.optimization.ema[0] == 0.996,
                   "model %s embed %d crop %d dtype %s", tiny.model.model_name, tiny.model.embed_dim, tiny.data.crop_size,
                   tiny.meta.dtype);
    }
}

static void test_number_spellings(void) {
    char path[256];
    Config a, b;
    temp_path(path, sizeof path, "short_exponent.yaml");
    write_text(path, "optimization:\n  final_lr: 1e-6\n  start_lr: 2E-4\n  clip_grad: 10\ndata:\n  batch_size: 24\n");
    config_load(&a, path, 0, NULL);
    temp_path(path, sizeof path, "long_exponent.yaml");
    write_text(path, "optimization:\n  final_lr: 1.0e-06\n  start_lr: 0.0002\n  clip_grad: 10.0\ndata:\n  batch_size: +24\n");
    config_load(&b, path, 0, NULL);
    TEST_CHECK("1e-6 and 1.0e-06 both read as floats", a.optimization.final_lr == 1e-6 && b.optimization.final_lr == 1e-6,
               "got %g and %g", a.optimization.final_lr, b.optimization.final_lr);
    TEST_CHECK("2E-4 and 0.0002, 10 and 10.0 read alike",
               a.optimization.start_lr == b.optimization.start_lr && a.optimization.clip_grad == 10.0 &&
                   b.optimization.clip_grad == 10.0 && a.data.batch_size == 24 && b.data.batch_size == 24,
               "start_lr %g vs %g", a.optimization.start_lr, b.optimization.start_lr);
}

static void test_overrides(void) {
    Config c;
    char *overrides[] = {"optimization.lr=1e-3",        "mask.0.num_blocks=4",      "optimization.ema=[0.996,1.0]",
                         "model.uniform_power=false",   "logging.write_tag=sweep_1", "mask.1.max_keep=100",
                         "optimization.lr=2.5e-3",      "data.pin_mem=false"};
    config_load(&c, "configs/tiny.yaml", 8, overrides);
    TEST_CHECK("override float, later wins", c.optimization.lr == 2.5e-3, "lr %g", c.optimization.lr);
    TEST_CHECK("override mask.0.num_blocks", c.mask[0].num_blocks == 4 && c.mask[1].num_blocks == 2, "blocks %d %d",
               c.mask[0].num_blocks, c.mask[1].num_blocks);
    TEST_CHECK("override list value", c.optimization.ema[0] == 0.996 && c.optimization.ema[1] == 1.0, "ema [%g, %g]",
               c.optimization.ema[0], c.optimization.ema[1]);
    TEST_CHECK("override bool", c.model.uniform_power == 0, "uniform_power %d", c.model.uniform_power);
    TEST_CHECK("override string and nullable int", !strcmp(c.logging.write_tag, "sweep_1") && c.mask[1].max_keep == 100,
               "write_tag %s max_keep %d", c.logging.write_tag, c.mask[1].max_keep);
    TEST_CHECK("override keeps the file's other keys", c.model.embed_dim == 96 && c.data.crop_size == 48,
               "embed %d crop %d", c.model.embed_dim, c.data.crop_size);
    char *preset_depth[] = {"model.depth=2"};
    TEST_CHECK("a named model takes an explicit depth", load_in_child(NULL, 1, preset_depth, true).exit_code == 0,
               "model.depth=2 on vit_large rejected");
    char *null_again[] = {"mask.1.max_keep=100", "mask.1.max_keep=null"};
    config_load(&c, NULL, 2, null_again);
    TEST_CHECK("override null for a nullable int", c.mask[1].max_keep == 0, "max_keep %d", c.mask[1].max_keep);
    char *new_list[] = {"mask=[{num_blocks: 1, spatial_scale: [0.2, 0.3]}]"};
    config_load(&c, NULL, 1, new_list);
    TEST_CHECK("override of the whole mask list", c.num_masks == 1 && c.mask[0].num_blocks == 1 &&
                   c.mask[0].spatial_scale[1] == 0.3 && c.mask[0].aspect_ratio[1] == 1.5 && c.mask[1].num_blocks == 0,
               "num_masks %d", c.num_masks);
}

static void test_mask_list_and_accepted_official_keys(void) {
    char path[256];
    Config c, defaults;
    temp_path(path, sizeof path, "three_masks.yaml");
    write_text(path, "mask:\n  - {num_blocks: 4, spatial_scale: [0.1, 0.2]}\n  - {num_blocks: 2, spatial_scale: [0.5, 0.5],"
                     " max_keep: 50}\n  - num_blocks: 1\n    spatial_scale: [0.9, 0.9]\n    temporal_scale: [0.5, 1.0]\n");
    config_load(&c, path, 0, NULL);
    TEST_CHECK("a mask list of three, unset keys at their defaults",
               c.num_masks == 3 && c.mask[0].num_blocks == 4 && c.mask[1].max_keep == 50 && c.mask[0].max_keep == 0 &&
                   c.mask[2].temporal_scale[0] == 0.5 && c.mask[0].aspect_ratio[0] == 0.75 &&
                   c.mask[2].max_temporal_keep == 1.0,
               "num_masks %d", c.num_masks);
    temp_path(path, sizeof path, "official_keys.yaml");
    write_text(path, "app: vjepa\ndata:\n  decode_one_clip: true\n  pin_mem: true\n  filter_short_videos: false\n"
                     "  clip_duration: null\nmeta:\n  use_sdpa: false\n");
    if (load_ok("accepted official keys load", path, 0, NULL)) {
        config_load(&c, path, 0, NULL);
        config_defaults(&defaults);
        TEST_CHECK("accepted official keys change nothing", !memcmp(&c, &defaults, sizeof c), "config differs");
    }
}

static void round_trip(const char *name, const Config *original) {
    char path[256];
    Config reread;
    temp_path(path, sizeof path, "round_trip.yaml");
    FILE *f = fopen(path, "w");
    config_write_yaml(original, f);
    fclose(f);
    ChildResult r = load_in_child(path, 0, NULL, false);
    if (r.exit_code) {
        TEST_FAIL(name, "written YAML does not load: %s", r.stderr_text);
        return;
    }
    config_load(&reread, path, 0, NULL);
    TEST_CHECK(name, !memcmp(&reread, original, sizeof reread), "re-read config differs from the written one");
}

static void test_write_yaml_round_trip(void) {
    Config c;
    config_defaults(&c);
    round_trip("write_yaml round trip: defaults", &c);
    config_load(&c, "configs/tiny.yaml", 0, NULL);
    round_trip("write_yaml round trip: tiny.yaml", &c);
    char *odd[] = {"optimization.lr=0.30000000000000004",
                   "optimization.final_lr=1.2345678901234567e-300",
                   "optimization.start_lr=123456.789",
                   "logging.write_tag=\"quo\\\"te \\\\ tab\\t: # x\"",
                   "logging.folder='/tmp/run s/#1: x'",
                   "mask=[{num_blocks: 3, spatial_scale: [0.1, 0.3], max_keep: 77}, {num_blocks: 1, spatial_scale: [1, 1]},"
                   " {num_blocks: 2, spatial_scale: [0.3333333333333333, 0.5]}]",
                   "optimization.betas=[0.1, 0.7]"};
    config_load(&c, "configs/tiny.yaml", 7, odd);
    TEST_CHECK("odd strings were read", !strcmp(c.logging.write_tag, "quo\"te \\ tab\t: # x") &&
                   !strcmp(c.logging.folder, "/tmp/run s/#1: x"),
               "write_tag [%s] folder [%s]", c.logging.write_tag, c.logging.folder);
    round_trip("write_yaml round trip: odd floats, strings, three masks", &c);
}

// ------------------------------------------------------------------------------------------------ doc and table

static char *capture(void (*print)(const Config *, FILE *), const Config *cfg, void (*print_doc)(FILE *)) {
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (print) print(cfg, f);
    else print_doc(f);
    fclose(f);
    return text;
}

// Dotted keys of a written config, read back with libyaml: independent of the schema table in config.c.
// Mask items give "mask.N.<key>" (mask_as_n) or "mask.<item>.<key>".
static int keys_of_yaml(const char *text, char keys[][96], int max_keys, bool mask_as_n) {
    yaml_parser_t parser;
    yaml_document_t doc;
    int count = 0;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, strlen(text));
    if (!yaml_parser_load(&parser, &doc)) return -1;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    for (yaml_node_pair_t *s = root->data.mapping.pairs.start; s < root->data.mapping.pairs.top; s++) {
        const char *section = (const char *)yaml_document_get_node(&doc, s->key)->data.scalar.value;
        yaml_node_t *value = yaml_document_get_node(&doc, s->value);
        if (value->type == YAML_MAPPING_NODE) {
            for (yaml_node_pair_t *k = value->data.mapping.pairs.start; k < value->data.mapping.pairs.top; k++)
                if (count < max_keys)
                    snprintf(keys[count++], 96, "%s.%s", section,
                             (const char *)yaml_document_get_node(&doc, k->key)->data.scalar.value);
            continue;
        }
        for (yaml_node_item_t *item = value->data.sequence.items.start; item < value->data.sequence.items.top; item++) {
            yaml_node_t *gen = yaml_document_get_node(&doc, *item);
            int index = (int)(item - value->data.sequence.items.start);
            for (yaml_node_pair_t *k = gen->data.mapping.pairs.start; k < gen->data.mapping.pairs.top; k++) {
                char prefix[32];
                snprintf(prefix, sizeof prefix, mask_as_n ? "%s.N" : "%s.%d", section, index);
                if (count < max_keys)
                    snprintf(keys[count++], 96, "%s.%s", prefix,
                             (const char *)yaml_document_get_node(&doc, k->key)->data.scalar.value);
            }
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return count;
}

// Whole-word occurrence: "optimization.lr" must not be found inside "optimization.lr_x".
static bool has_key(const char *text, const char *key) {
    size_t len = strlen(key);
    for (const char *p = strstr(text, key); p; p = strstr(p + 1, key)) {
        bool starts = p == text || p[-1] == ' ' || p[-1] == '\n' || p[-1] == '|';
        bool ends = p[len] == ' ' || p[len] == '\n';
        if (starts && ends) return true;
    }
    return false;
}

static void test_doc_and_table(void) {
    static char keys[256][96];
    Config c;
    config_defaults(&c);
    char *yaml = capture(config_write_yaml, &c, NULL);
    char *doc = capture(NULL, NULL, config_print_doc);
    char *table = capture(config_print_table, &c, NULL);
    int n = keys_of_yaml(yaml, keys, 256, true);
    const char *missing = NULL;
    for (int k = 0; k < n && !missing; k++)
        if (!has_key(doc, keys[k])) missing = keys[k];
    TEST_CHECK("doc lists every key", n >= 60 && !missing, "%d keys; missing %s", n, missing ? missing : "-");
    n = keys_of_yaml(yaml, keys, 256, false);
    missing = NULL;
    for (int k = 0; k < n && !missing; k++)
        if (!has_key(table, keys[k])) missing = keys[k];
    TEST_CHECK("table lists every key", n >= 60 && !missing, "%d keys; missing %s", n, missing ? missing : "-");
    bool boxed = table[0] == '+' && strstr(table, "| optimization.lr ") && strstr(table, "| 0.000625 ");
    for (const char *line = table; *line && boxed; line = strchr(line, '\n') + 1)
        boxed = (*line == '+' || *line == '|') && strchr(line, '\n')[-1] == (*line == '+' ? '+' : '|');
    TEST_CHECK("table is boxed", boxed, "table:\n%s", table);
    TEST_CHECK("doc shows types, defaults and ranges",
               strstr(doc, "optimization.lr") && strstr(doc, "6.25e-4") && strstr(doc, "float32|bfloat16") &&
                   strstr(doc, "data.datasets") && strstr(doc, "(required)"),
               "doc:\n%s", doc);
    free(yaml);
    free(doc);
    free(table);
}

int main(void) {
    snprintf(temp_dir, sizeof temp_dir, "/tmp/test_config.XXXXXX");
    if (!mkdtemp(temp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_defaults_are_official_vitl16();
    test_shipped_configs();
    test_number_spellings();
    test_overrides();
    test_mask_list_and_accepted_official_keys();
    test_write_yaml_round_trip();
    test_doc_and_table();
    int n_cases = (int)(sizeof error_cases / sizeof error_cases[0]);
    for (int i = 0; i < n_cases; i++) check_error_case(&error_cases[i], i);

    char command[128];
    snprintf(command, sizeof command, "rm -rf '%s'", temp_dir);
    if (system(command)) printf("note: could not remove %s\n", temp_dir);
    TEST_EXIT();
}
