// export.c: see export.h.
#include "export.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "common.h"
#include "safetensors.h"

static const char *const WHAT_NAMES[] = {"target", "encoder", "predictor"};

int export_what_parse(const char *text, ExportWhat *what) {
    for (int i = 0; i < 3; i++)
        if (strcmp(text, WHAT_NAMES[i]) == 0) return *what = (ExportWhat)i, 0;
    return -1;
}

static void set_position_table(ExportTensor *e, const char *name, int tokens, int width) {
    memset(e, 0, sizeof(*e));
    snprintf(e->name, sizeof(e->name), "%s", name);
    e->ndim = 3;
    e->shape[0] = 1, e->shape[1] = tokens, e->shape[2] = width;
    e->pos_width = width;
}

int export_layout(const TensorTable *t, const ModelDims *d, ExportWhat what, ExportTensor *out) {
    const ModuleId module = what == EXPORT_PREDICTOR ? MODULE_PREDICTOR : MODULE_ENCODER;
    const char *prefix = module == MODULE_PREDICTOR ? "predictor." : "encoder.";
    int count = 0;
    // A module's own parameters come before its submodules' in a state_dict: the position table first. V-JEPA 2's
    // RoPE modules hold none (pos_embed = None is no state_dict entry).
    if (!d->rope && module == MODULE_ENCODER) set_position_table(&out[count++], "pos_embed", d->tokens, d->enc.width);
    if (!d->rope && module == MODULE_PREDICTOR)
        set_position_table(&out[count++], "predictor_pos_embed", d->tokens, d->pred.width);
    for (int i = 0; i < t->count; i++) {
        const TensorSpec *s = &t->tensors[i];
        if (s->module != module) continue;
        ExportTensor *e = &out[count++];
        memset(e, 0, sizeof(*e));
        JEPA_ASSERT(strncmp(s->name, prefix, strlen(prefix)) == 0);
        snprintf(e->name, sizeof(e->name), "%s", s->name + strlen(prefix));
        snprintf(e->source, sizeof(e->source), "%s%s", what == EXPORT_TARGET ? "target_" : "", s->name);
        e->ndim = s->ndim;
        memcpy(e->shape, s->shape, sizeof(e->shape));
    }
    return count;
}

ExportTensor *export_layout_for(const Config *cfg, ExportWhat what, ModelDims *d, TensorTable *t, int *count) {
    model_dims_from_config(cfg, d);
    model_build_table(d, t);
    ExportTensor *layout = xcalloc((size_t)t->count + 1, sizeof(ExportTensor));
    *count = export_layout(t, d, what, layout);
    return layout;
}

static int is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

// The checkpoint folder ckpt names: itself, or a run folder's newest checkpoint that verifies (free it).
static char *resolve_checkpoint(const char *ckpt) {
    char path[1200];
    snprintf(path, sizeof(path), "%s/manifest.json", ckpt);
    if (is_file(path)) return xstrdup(ckpt);
    snprintf(path, sizeof(path), "%s/checkpoints", ckpt);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        die_input("export: %s: expected a checkpoint folder (with manifest.json) or a run folder (with checkpoints/)",
                  ckpt);
    char notes[8192] = "";
    char *dir = checkpoint_newest_verified(ckpt, notes, sizeof(notes));
    fputs(notes, stderr);
    if (!dir) die_input("export: %s: no checkpoint in %s verifies", ckpt, path);
    return dir;
}

// A fixed sincos table [1, tokens, width] in float, as model.c builds it (double, then rounded).
static float *position_table(const ModelDims *d, int width, int uniform_power) {
    const size_t n = (size_t)d->tokens * width;
    double *table = xmalloc(n * sizeof(double));
    sincos_3d_table(width, d->grid_t, d->grid_h, d->grid_w, uniform_power, table);
    float *out = xmalloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) out[i] = (float)table[i];
    free(table);
    return out;
}

// Each layout entry's data: read from the checkpoint or computed; tensors[i].data owns a malloc'd buffer.
static void fill_tensors(const StFile *f, const ModelDims *d, int uniform_power, const ExportTensor *layout, int count,
                         StTensor *tensors) {
    for (int i = 0; i < count; i++) {
        const ExportTensor *e = &layout[i];
        void *data;
        if (!e->source[0]) {
            data = position_table(d, e->pos_width, uniform_power);
        } else {
            const StTensor *have = st_find(f, e->source);
            StTensor want;
            st_tensor_set(&want, e->source, "F32", e->ndim, e->shape, NULL);
            if (!have || strcmp(have->dtype, "F32") != 0 || have->end - have->begin != st_numel(&want) * 4)
                die_input("export: %s: expected tensor %s in F32 with %llu elements", f->path, e->source,
                          (unsigned long long)st_numel(&want));
            data = xmalloc(have->end - have->begin);
            ErrorText err;
            if (st_read(f, have, data, &err) != 0) die_input("export: %s", err.text);
        }
        st_tensor_set(&tensors[i], e->name, "F32", e->ndim, e->shape, data);
    }
}

void export_checkpoint(const char *ckpt, const char *out_path, ExportWhat what) {
    char *dir = resolve_checkpoint(ckpt), path[1200];
    ErrorText err;
    if (checkpoint_verify(dir, &err) != 0) die_input("export: %s", err.text);
    Config cfg;
    snprintf(path, sizeof(path), "%s/config.yaml", dir);
    config_load(&cfg, path, 0, NULL);
    ModelDims d;
    TensorTable table;
    int count;
    ExportTensor *layout = export_layout_for(&cfg, what, &d, &table, &count);
    snprintf(path, sizeof(path), "%s/model.safetensors", dir);
    StFile f;
    if (st_open(path, &f, &err) != 0) die_input("export: %s", err.text);
    StTensor *tensors = xcalloc((size_t)count, sizeof(StTensor));
    fill_tensors(&f, &d, cfg.model.uniform_power, layout, count, tensors);
    st_close(&f);
    char tmp[1200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", out_path);
    const StMeta meta[] = {{"format", "pt"}, {"jepa.c", WHAT_NAMES[what]}, {"checkpoint", dir}};
    uint64_t hash;
    const uint64_t bytes = st_write(tmp, tensors, count, meta, 3, &hash);
    if (rename(tmp, out_path) != 0) die_input("export: cannot rename %s to %s: %s", tmp, out_path, strerror(errno));
    printf("exported %s of %s: %d tensors, %llu bytes -> %s\n", WHAT_NAMES[what], dir, count,
           (unsigned long long)bytes, out_path);
    for (int i = 0; i < count; i++) free((void *)tensors[i].data);
    free(tensors);
    free(layout);
    table_free(&table);
    free(dir);
}
