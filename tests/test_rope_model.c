// test_rope_model.c: model.pos_embed: rope3d (V-JEPA 2) in the whole model on the CPU:
//   - a whole training step's gradients (both generators: context encoder on gathered tokens, predictor on
//     [context, targets] positions, the shared mask token, patch embedding) against central differences in double;
//   - no additive position table exists, and positions reach the blocks: the same clip with the tokens' positions
//     changed (a different grid width) changes the loss, while sincos's tables are gone;
//   - recomputed blocks (checkpoint_activations) give bitwise the same gradients;
//   - the V-JEPA 2 giant's table: 1,012,173,952 encoder parameters as the official vit_giant_xformers.
#include <math.h>
#include <string.h>

#include "backend.h"
#include "common.h"
#include "config.h"
#include "data.h"
#include "masks.h"
#include "model.h"
#include "rng.h"
#include "model_check.h"
#include "test.h"
#include "tiny_model.h"

// The tiny model with heads of 12 (rotated 4 + 4 + 4 of 12, two frequencies per axis) in encoder and predictor.
static void rope_config(Config *cfg, int batch) {
    tiny_config(cfg, batch);
    strcpy(cfg->model.pos_embed, "rope3d");
    cfg->model.embed_dim = 24;
    cfg->model.num_heads = 2;
    cfg->model.pred_embed_dim = 12;
    cfg->model.pred_num_heads = 1;
}


static void test_rope_step_gradients(void) {
    Config cfg;
    rope_config(&cfg, 2);
    cfg.model.shared_mask_token = 1;
    Backend *be = backend_cpu_create(1, 1);
    Model *m = model_create(&cfg, be);
    TEST_CHECK("rope model: no additive position tables", m->pos_enc == NULL && m->pos_pred == NULL && m->dims.rope,
               "tables %p %p, rope %d", m->pos_enc, m->pos_pred, m->dims.rope);
    double *p = download_all(m, m->params);
    Rng r = rng_stream(11, RNG_TEST, 0, 0);
    for (size_t i = 0; i < m->table.total; i++) p[i] += 0.05 * rng_normal(&r);  // mask tokens off zero too
    be->upload_f64(be, m->params, 8, p, m->table.total);
    DataSource *ds = data_open(&cfg);
    Batch b;
    batch_make(&cfg, m, ds, 3, 0, 2, &b);
    model_zero_step(m);
    model_micro_step(m, &b.mb, 1.0, 1);
    double *grad = download_all(m, m->grads);
    // V-JEPA 2's shared mask token: both generators' targets train mask_tokens.0; mask_tokens.1 gets nothing
    const TensorSpec *t0 = &m->table.tensors[m->dims.mask_token0], *t1 = &m->table.tensors[m->dims.mask_token0 + 1];
    double n0 = 0, n1 = 0;
    for (size_t i = 0; i < t0->numel; i++) n0 += grad[t0->offset + i] * grad[t0->offset + i];
    for (size_t i = 0; i < t1->numel; i++) n1 += grad[t1->offset + i] * grad[t1->offset + i];
    TEST_CHECK("rope model: shared mask token (all generators train mask_tokens.0)", n0 > 0 && n1 == 0,
               "|grad|^2 token 0 %.3g, token 1 %.3g", n0, n1);
    size_t checked;
    double gnorm;
    const double err = model_fd_error(m, &b, p, &r, 1e-5, &checked, &gnorm);
    // As tests/test_model.c: h = 1e-5 in double gives ~1e-10 truncation and ~1e-11 rounding; a missing or wrong
    // RoPE backward (inverse instead of transpose, wrong positions) is O(1e-2) on the qkv weights.
    TEST_CHECK("rope model: whole-step gradient vs finite differences (f64)", err < 1e-6,
               "relative norm error %.3e over %zu parameters", err, checked);
    printf("     (rope whole step: %zu parameters from %d tensors, relative error %.2e)\n", checked, m->table.count,
           err);
    TEST_CHECK("rope model: gradients are not trivially zero", gnorm > 1e-12, "norm^2 %.3e", gnorm);
    free(grad), free(p);
    batch_free(&cfg, &b);
    data_close(ds);
    model_free(m);
    backend_destroy(be);
}

// Positions matter: the same tokens read on a 4x4 grid vs with their indices remapped (grid_w changed in the dims
// the blocks see) give different losses; with RoPE off both are the same model without rotation.
static void test_rope_positions_matter(void) {
    double loss[2];
    for (int variant = 0; variant < 2; variant++) {
        Config cfg;
        rope_config(&cfg, 2);
        Backend *be = backend_cpu_create(1, 1);
        Model *m = model_create(&cfg, be);
        if (variant) {  // same tokens, other grid coordinates: a 2x8 raster instead of 4x4
            m->dims.enc.grid_h = m->dims.pred.grid_h = 2;
            m->dims.enc.grid_w = m->dims.pred.grid_w = 8;
        }
        DataSource *ds = data_open(&cfg);
        Batch b;
        batch_make(&cfg, m, ds, 1, 0, 2, &b);
        loss[variant] = loss_at(m, &b);
        batch_free(&cfg, &b);
        data_close(ds);
        model_free(m);
        backend_destroy(be);
    }
    TEST_CHECK("rope model: token positions reach the attention", fabs(loss[0] - loss[1]) > 1e-9 * fabs(loss[0]),
               "losses %.17g and %.17g", loss[0], loss[1]);
}

static void test_rope_recompute(void) {
    double *grads[2];
    size_t total = 0;
    for (int mode = 0; mode < 2; mode++) {
        Config cfg;
        rope_config(&cfg, 2);
        cfg.model.checkpoint_activations = mode;
        grads[mode] = fresh_step_gradients(&cfg, 1, &total);
    }
    TEST_CHECK("rope model: recomputed blocks give bitwise the same gradients",
               memcmp(grads[0], grads[1], total * sizeof(double)) == 0, "gradients differ");
    free(grads[0]), free(grads[1]);
}

// vit_giant_xformers: patch embed 3*2*16*16*1408 + 1408, 40 blocks of (4*1408 + 4*1408^2 + 4*1408 + 2*1408*6144
// + 6144 + 1408), final norm 2*1408 = 1,012,173,952 (the official model's sum of numel, computed from its
// definition: embed_dim 1408, depth 40, mlp_ratio 48/11 -> int(6144.0) hidden).
static void test_giant_table(void) {
    Config cfg;
    config_defaults(&cfg);
    strcpy(cfg.model.model_name, "vit_giant_xformers");
    cfg.model.pred_num_heads = 12;
    cfg.data.crop_size = 256;
    ModelDims d;
    TensorTable t;
    model_dims_from_config(&cfg, &d);
    model_build_table(&d, &t);
    const size_t enc = table_module_numel(&t, MODULE_ENCODER);
    TEST_CHECK("rope model: vit_giant_xformers encoder parameters", enc == 1012173952 && d.enc.heads == 22 &&
               d.enc.head_dim == 64 && d.enc.mlp_hidden == 6144 && d.pred.mlp_hidden == 1536,
               "%zu parameters, %d heads of %d, MLP %d, predictor MLP %d", enc, d.enc.heads, d.enc.head_dim,
               d.enc.mlp_hidden, d.pred.mlp_hidden);
    table_free(&t);
    // V-JEPA 2 keeps the official _rescale_blocks: attn.proj, mlp.fc2 of block l (1-based) at 0.02/sqrt(2l)
    cfg.model.depth_scaled_init = 1;
    model_dims_from_config(&cfg, &d);
    model_build_table(&d, &t);
    const double p2 = t.tensors[table_find(&t, "encoder.blocks.1.attn.proj.weight")].init_std;
    const double f40 = t.tensors[table_find(&t, "encoder.blocks.39.mlp.fc2.weight")].init_std;
    const double pf1 = t.tensors[table_find(&t, "predictor.predictor_blocks.0.mlp.fc2.weight")].init_std;
    const double q = t.tensors[table_find(&t, "encoder.blocks.1.attn.qkv.weight")].init_std;
    TEST_CHECK("rope model: depth-scaled init (official _rescale_blocks)",
               fabs(p2 - 0.01) < 1e-15 && fabs(f40 - 0.02 / sqrt(80.0)) < 1e-15 &&
                   fabs(pf1 - 0.02 / sqrt(2.0)) < 1e-15 && q == 0.02,
               "proj(2) %.17g, fc2(40) %.17g, predictor fc2(1) %.17g, qkv %.17g", p2, f40, pf1, q);
    table_free(&t);
}

int main(void) {
    test_giant_table();
    test_rope_step_gradients();
    test_rope_positions_matter();
    test_rope_recompute();
    TEST_EXIT();
}
