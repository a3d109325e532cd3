// test_rope_predict.c: jepa.c's side of the V-JEPA 2 predictor comparison with the official code
// (scripts/vjepa2_parity.py writes the inputs, runs this, and compares; tests/test_rope_official.sh runs both).
//   test_rope_predict DIR
// reads DIR/run/checkpoints/step_000000 (converted from the official model), DIR/clips.f32 (float32 [B,T,H,W,3],
// normalised) and DIR/masks.i32 (int32 B, n_ctx, n_tgt, then ctx [B,n_ctx] and tgt [B,n_tgt]), runs the context
// encoder on the context tokens and the predictor at the targets (model_predict, generator 0), and writes
// DIR/pred.f64 (float64 [B,n_tgt,D]). Without DIR (as `make test` runs it) it prints SKIP: the comparison needs
// the official code (JEPA_VJEPA2_SRC).
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "eval.h"
#include "masks.h"
#include "model.h"
#include "test.h"

static void *read_all(const char *dir, const char *name, size_t *bytes) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) die_input("%s: cannot open", path);
    fseek(f, 0, SEEK_END);
    *bytes = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    void *data = xmalloc(*bytes ? *bytes : 1);
    if (fread(data, 1, *bytes, f) != *bytes) die_input("%s: short read", path);
    fclose(f);
    return data;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        TEST_SKIP("rope predictor vs official", "run by scripts/vjepa2_parity.py (tests/test_rope_official.sh)");
        TEST_EXIT();
    }
    const char *dir = argv[1];
    size_t mask_bytes, clip_bytes;
    int32_t *mk = read_all(dir, "masks.i32", &mask_bytes);
    MaskBatch masks = {mk[0], mk[1], mk[2], mk + 3, mk + 3 + (size_t)mk[0] * mk[1]};
    if (mask_bytes != (3 + (size_t)masks.B * (masks.n_ctx + masks.n_tgt)) * sizeof(int32_t))
        die_input("%s/masks.i32: %zu bytes do not hold B=%d, %d + %d indices", dir, mask_bytes, masks.B, masks.n_ctx,
                  masks.n_tgt);
    float *clips = read_all(dir, "clips.f32", &clip_bytes);
    char ckpt[1200];
    snprintf(ckpt, sizeof ckpt, "%s/run/checkpoints/step_000000", dir);
    char *overrides[] = {"meta.device=cpu", "meta.dtype=float32"};
    EvalModel em;
    eval_model_open(&em, ckpt, masks.B, 0, 2, overrides);
    const ModelDims *d = &em.model->dims;
    if (clip_bytes != model_clip_elems(d, masks.B) * sizeof(float))
        die_input("%s/clips.f32: %zu bytes, expected %d clips of the model's shape", dir, clip_bytes, masks.B);
    const size_t n = (size_t)masks.B * masks.n_tgt * d->enc.width;
    double *pred = xmalloc(n * sizeof(double)), *target = xmalloc(n * sizeof(double));
    model_predict(em.model, clips, 0, &masks, pred, target);
    char path[1200];
    snprintf(path, sizeof path, "%s/pred.f64", dir);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(pred, sizeof(double), n, f) != n || fclose(f) != 0) die_input("%s: cannot write", path);
    printf("wrote %s: [%d, %d, %d]\n", path, masks.B, masks.n_tgt, d->enc.width);
    free(pred), free(target), free(clips), free(mk);
    eval_model_close(&em);
    TEST_EXIT();
}
