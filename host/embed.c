// embed.c: `jepa embed`: frozen encoder features of a store's clips, written to HDF5 for downstream use.
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "eval.h"

static const char *EMBED_HELP =
    "usage: jepa embed --checkpoint DIR --data FILE -o FEATURES.h5 [options] [key=value ...]\n"
    "\n"
    "Runs the frozen encoder of a checkpoint over the store's clips (data.num_frames frames data.sampling_rate\n"
    "apart from frame 0) and writes FEATURES.h5:\n"
    "  /features   float32 [N, D] (--pool mean: the mean over tokens) or [N, tokens, D] (--pool tokens)\n"
    "  /clip       int32 [N], the clip index in the store\n"
    "  /labels, /video_id   int32 [N], copied when the store has them\n"
    "  /grid       int32 [3], the token grid T', H', W' (tokens in (t, h, w) raster order)\n"
    "  attributes checkpoint, step, encoder, pool, data\n"
    "\n"
    "options:\n"
    "  --checkpoint DIR   a checkpoint folder or a run folder (its newest checkpoint that verifies)\n"
    "  --data FILE        an HDF5 store, frames data.crop_size square\n"
    "  -o FILE            the HDF5 file to write (refused if it exists, unless --force)\n"
    "  --pool P           mean (default) or tokens\n"
    "  --encoder E        target (default) or context\n"
    "  --clips N          the first N clips (default: all)\n"
    "  --batch B          clips per forward pass (default 8)\n"
    "  --force            replace FILE\n";

typedef struct {
    const char *ckpt, *data, *out;
    int pool_tokens, use_target, force, batch, n_overrides;
    long clips;
    char **overrides;
} EmbedArgs;

static void parse_embed(int argc, char **argv, EmbedArgs *a) {
    *a = (EmbedArgs){.use_target = 1, .batch = 8, .clips = -1};
    a->overrides = xcalloc((size_t)argc + 1, sizeof(char *));
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--force")) { a->force = 1; continue; }
        if (strchr(o, '=') && o[0] != '-') { a->overrides[a->n_overrides++] = argv[i]; continue; }
        if (o[0] != '-') die_input("embed: unexpected argument '%s' (see jepa embed --help)", o);
        if (i + 1 >= argc) die_input("embed: %s needs a value (see jepa embed --help)", o);
        const char *v = argv[++i];
        char *end;
        if (!strcmp(o, "--checkpoint")) a->ckpt = v;
        else if (!strcmp(o, "--data")) a->data = v;
        else if (!strcmp(o, "-o")) a->out = v;
        else if (!strcmp(o, "--pool")) {
            if (strcmp(v, "mean") && strcmp(v, "tokens")) die_input("embed: --pool '%s': expected mean or tokens", v);
            a->pool_tokens = !strcmp(v, "tokens");
        } else if (!strcmp(o, "--encoder")) {
            if (strcmp(v, "target") && strcmp(v, "context"))
                die_input("embed: --encoder '%s': expected target or context", v);
            a->use_target = !strcmp(v, "target");
        } else if (!strcmp(o, "--clips") || !strcmp(o, "--batch")) {
            errno = 0;
            const long n = strtol(v, &end, 10);
            if (!v[0] || *end || errno || n < 1 || n > (1L << 30))
                die_input("embed: %s '%s': expected a positive integer", o, v);
            if (o[2] == 'c') a->clips = n;
            else a->batch = (int)n;
        } else die_input("embed: unknown option '%s' (see jepa embed --help)", o);
    }
    if (!a->ckpt || !a->data || !a->out)
        die_input("embed: --checkpoint DIR, --data FILE and -o FILE are required (see jepa embed --help)");
    if (!a->force && access(a->out, F_OK) == 0) die_input("embed: %s exists ---> HINT: --force replaces it", a->out);
}

static void write_attr_string(hid_t obj, const char *name, const char *value) {
    const hid_t type = H5_CHECK(H5Tcopy(H5T_C_S1));
    H5_CHECK(H5Tset_size(type, strlen(value) + 1));
    const hid_t space = H5_CHECK(H5Screate(H5S_SCALAR));
    const hid_t attr = H5_CHECK(H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT));
    H5_CHECK(H5Awrite(attr, type, value));
    H5_CHECK(H5Aclose(attr));
    H5_CHECK(H5Sclose(space));
    H5_CHECK(H5Tclose(type));
}

static void write_dataset(hid_t file, const char *name, hid_t mem_type, hid_t file_type, int rank,
                          const hsize_t *dims, const void *data) {
    const hid_t space = H5_CHECK(H5Screate_simple(rank, dims, NULL));
    const hid_t ds = H5_CHECK(H5Dcreate2(file, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    H5_CHECK(H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data));
    H5_CHECK(H5Dclose(ds));
    H5_CHECK(H5Sclose(space));
}

// The store's /labels or /video_id, copied when present.
static void copy_side_ints(hid_t out, const Store *s, const char *name, int present, int64_t n) {
    if (!present) return;
    int32_t *v = xmalloc((size_t)n * sizeof(int32_t));
    store_read_side_ints(s->file, name, 0, n, v);
    const hsize_t dims[1] = {(hsize_t)n};
    write_dataset(out, name, H5T_NATIVE_INT32, H5T_STD_I32LE, 1, dims, v);
    free(v);
}

int embed_command(int argc, char **argv) {
    if (eval_wants_help(argc, argv)) return fputs(EMBED_HELP, stdout), JEPA_EXIT_OK;
    EmbedArgs a;
    parse_embed(argc, argv, &a);
    EvalModel em;
    eval_model_open(&em, a.ckpt, a.batch, 0, a.n_overrides, a.overrides);
    EvalClips c;
    eval_clips_open(&c, a.data, &em.cfg);
    const ModelDims *d = &em.model->dims;
    const int64_t n = a.clips > 0 && a.clips < c.store->shape.clips ? a.clips : c.store->shape.clips;
    const int N = d->tokens, D = d->enc.width;
    const double t0 = now_seconds();
    double *feat = xmalloc((size_t)a.batch * N * D * sizeof(double));  // [batch, N, D]
    const size_t per = a.pool_tokens ? (size_t)N * D : (size_t)D;
    float *out = xmalloc((size_t)n * per * sizeof(float));              // [n, N, D] or [n, D]
    int32_t *clip_ids = xmalloc((size_t)n * sizeof(int32_t));
    for (int64_t k = 0; k < n; k += a.batch) {
        const int b = n - k < a.batch ? (int)(n - k) : a.batch;
        eval_features(&em, &c, k, b, a.use_target, feat);
        for (int j = 0; j < b; j++) {
            float *o = out + (size_t)(k + j) * per;
            const double *x = feat + (size_t)j * N * D;
            clip_ids[k + j] = (int32_t)(k + j);
            if (a.pool_tokens) {
                for (size_t i = 0; i < per; i++) o[i] = (float)x[i];
                continue;
            }
            for (int ch = 0; ch < D; ch++) {
                double s = 0;
                for (int t = 0; t < N; t++) s += x[(size_t)t * D + ch];
                o[ch] = (float)(s / N);
            }
        }
    }
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.part", a.out);
    const hid_t f = H5_CHECK(H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT));
    const hsize_t dims[3] = {(hsize_t)n, a.pool_tokens ? (hsize_t)N : (hsize_t)D, (hsize_t)D};
    write_dataset(f, "features", H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, a.pool_tokens ? 3 : 2, dims, out);
    const hsize_t dn[1] = {(hsize_t)n}, d3[1] = {3};
    write_dataset(f, "clip", H5T_NATIVE_INT32, H5T_STD_I32LE, 1, dn, clip_ids);
    copy_side_ints(f, c.store, "labels", c.store->extras.has_labels, n);
    copy_side_ints(f, c.store, "video_id", c.store->extras.has_video_id, n);
    const int32_t grid[3] = {d->grid_t, d->grid_h, d->grid_w};
    write_dataset(f, "grid", H5T_NATIVE_INT32, H5T_STD_I32LE, 1, d3, grid);
    char step[32];
    snprintf(step, sizeof step, "%ld", em.step);
    write_attr_string(f, "checkpoint", em.dir);
    write_attr_string(f, "step", step);
    write_attr_string(f, "encoder", a.use_target ? "target" : "context");
    write_attr_string(f, "pool", a.pool_tokens ? "tokens" : "mean");
    write_attr_string(f, "data", a.data);
    H5_CHECK(H5Fclose(f));
    if (rename(tmp, a.out) != 0) die_input("embed: cannot rename %s to %s: %s", tmp, a.out, strerror(errno));
    printf("embed: %lld clips -> %s /features [%lld, %s%d] (%s encoder, %.1f s)\n", (long long)n, a.out,
           (long long)n, a.pool_tokens ? "tokens, " : "", D, a.use_target ? "target" : "context", now_seconds() - t0);
    free(feat), free(out), free(clip_ids), free(a.overrides);
    eval_clips_close(&c);
    eval_model_close(&em);
    return JEPA_EXIT_OK;
}
