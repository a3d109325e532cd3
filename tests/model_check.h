// model_check.h: what the whole-model tests share (tests/test_model.c, tests/test_rope_model.c, and the CPU-vs-CUDA
// training steps of tests/test_cuda_backend.c and tests/test_cuda_rope.c): a micro-batch of clips and masks, flat
// buffers downloaded to doubles, the loss of a forward pass, the whole-step finite-difference check, and two models
// given the same bf16-exact start.
#pragma once
#include <string.h>

#include "backend.h"
#include "backend_cuda.h"
#include "common.h"
#include "config.h"
#include "data.h"
#include "masks.h"
#include "model.h"
#include "rng.h"
#include "test.h"

// Clips and masks of global samples [first, first + B) at step `step`.
typedef struct {
    float *clips;
    MaskBatch masks[CONFIG_MAX_MASKS];
    MicroBatch mb;
} Batch;

static inline void batch_make(const Config *cfg, const Model *m, DataSource *ds, long step, int64_t first, int B,
                              Batch *b) {
    b->clips = xmalloc(data_clip_floats(ds) * B * sizeof(float));
    data_get_clips(ds, first, B, b->clips);
    const TokenGrid grid = {m->dims.grid_t, m->dims.grid_h, m->dims.grid_w};
    for (int g = 0; g < cfg->num_masks; g++)
        mask_generate(&cfg->mask[g], g, grid, (uint64_t)cfg->meta.seed, step, first, B, &b->masks[g]);
    b->mb = (MicroBatch){B, b->clips, b->masks, 0};
}

static inline void batch_free(const Config *cfg, Batch *b) {
    for (int g = 0; g < cfg->num_masks; g++) mask_batch_free(&b->masks[g]);
    free(b->clips);
}

// n master-type elements of buf as doubles (free them).
static inline double *download_master(Model *m, const void *buf, size_t n) {
    double *h = xmalloc(n * sizeof(double));
    m->be->download_f64(m->be, h, buf, m->be->msize, n);
    return h;
}
static inline double *download_all(Model *m, const void *buf) { return download_master(m, buf, m->table.total); }

static inline double mean_loss(Model *m) {
    StepStats s;
    model_read_stats(m, &s);
    return s.loss_mean;
}

static inline double loss_at(Model *m, const Batch *b) {
    model_zero_step(m);
    model_micro_step(m, &b->mb, 1.0, 0);
    return mean_loss(m);
}

// fp64 CPU models only: parameter i set in the master (= working) buffer.
static inline void set_param(Model *m, size_t i, double v) {
    m->be->upload_f64(m->be, (double *)m->params + i, 8, &v, 1);
}

// The gradients of one backward (samples 0-1 at `step`) of a fresh model of cfg on an fp32 CPU backend with all
// cores (free them); *total receives their count. cpu_step_gradients: on a CPU backend of the given precision
// (1: f64) and thread count.
static inline double *cpu_step_gradients(const Config *cfg, int double_precision, int threads, long step,
                                         size_t *total) {
    Backend *be = backend_cpu_create(double_precision, threads);
    Model *m = model_create(cfg, be);
    DataSource *ds = data_open(cfg);
    Batch b;
    batch_make(cfg, m, ds, step, 0, 2, &b);
    model_zero_step(m);
    model_micro_step(m, &b.mb, 1.0, 1);
    double *g = download_all(m, m->grads);
    *total = m->table.total;
    batch_free(cfg, &b);
    data_close(ds);
    model_free(m);
    backend_destroy(be);
    return g;
}
static inline double *fresh_step_gradients(const Config *cfg, long step, size_t *total) {
    return cpu_step_gradients(cfg, 0, 0, step, total);
}

// Whole-step gradients (m->grads after a backward of b at parameters p) against central differences at step h,
// over up to 6 random entries of every tensor. Returns the relative norm error; *checked the entries, *fd_norm2 the
// finite differences' squared norm (not trivially zero).
static inline double model_fd_error(Model *m, const Batch *b, const double *p, Rng *r, double h, size_t *checked,
                                    double *fd_norm2) {
    double *grad = download_all(m, m->grads);
    double *num = xmalloc(m->table.total * sizeof(double)), *ana = xmalloc(m->table.total * sizeof(double));
    size_t k = 0;
    for (int t = 0; t < m->table.count; t++) {
        const TensorSpec *s = &m->table.tensors[t];
        for (int j = 0; j < 6 && (size_t)j < s->numel; j++) {
            const size_t i = s->offset + (size_t)rng_randint(r, 0, (int64_t)s->numel);
            set_param(m, i, p[i] + h);
            const double up = loss_at(m, b);
            set_param(m, i, p[i] - h);
            const double down = loss_at(m, b);
            set_param(m, i, p[i]);
            num[k] = (up - down) / (2 * h);
            ana[k] = grad[i];
            k++;
        }
    }
    const double err = rel_norm_error(ana, num, k);
    *fd_norm2 = 0;
    for (size_t i = 0; i < k; i++) *fd_norm2 += num[i] * num[i];
    *checked = k;
    free(num), free(ana), free(grad);
    return err;
}

// Two models of one config on two backends (cpu, cuda) given the same bf16-exact parameters, perturbed off the init
// so that no gradient is trivially zero, target = encoder; loss_offset: the predictor's output bias at +-5 so that
// every prediction sits far from its target (L1 signs fixed under bf16 noise). With sincos positions the GPU's bf16
// tables go to the CPU too, so the only difference left is the GPU's bf16 activations.
static inline void models_same_start(Model *mc, Model *mg, int loss_offset) {
    const size_t total = mc->table.total, enc = table_module_numel(&mc->table, MODULE_ENCODER);
    double *p = download_master(mc, mc->params, total);
    Rng r = rng_stream(11, RNG_TEST, 0, 0);
    for (size_t i = 0; i < total; i++) p[i] = bf16_to_double(bf16_from_double(p[i] + 0.05 * rng_normal(&r)));
    if (loss_offset) {  // predictions +-5 away from every target (|target| < sqrt(16) after the LayerNorm)
        const TensorSpec *b = &mc->table.tensors[mc->dims.pred_proj_b];
        for (size_t j = 0; j < b->numel; j++) p[b->offset + j] = j % 2 ? -5.0 : 5.0;
    }
    Model *both[2] = {mc, mg};
    for (int s = 0; s < 2; s++) {
        Backend *be = both[s]->be;
        be->upload_f64(be, both[s]->params, be->msize, p, total);
        be->copy(be, both[s]->target, both[s]->params, enc * be->msize);
        be->cast_params(be, both[s]->work, both[s]->params, total);
        be->cast_params(be, both[s]->target_work, both[s]->target, enc);
    }
    free(p);
    if (!mc->pos_enc) return;  // rope3d: no tables
    const ModelDims *d = &mc->dims;  // the GPU's bf16 position tables, to the CPU
    void *cpu_tables[2] = {mc->pos_enc, mc->pos_pred}, *gpu_tables[2] = {mg->pos_enc, mg->pos_pred};
    const int widths[2] = {d->enc.width, d->pred.width};
    for (int t = 0; t < 2; t++) {
        const size_t n = (size_t)d->tokens * widths[t];
        double *v = xmalloc(n * sizeof(double));
        mg->be->download_f64(mg->be, v, gpu_tables[t], mg->be->esize, n);
        mc->be->upload_f64(mc->be, cpu_tables[t], mc->be->esize, v, n);
        free(v);
    }
}
