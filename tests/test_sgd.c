// test_sgd.c: optimization.optimizer sgd (host/optim.c): p -= lr * (g + wd * p) with wd on the decaying tensors only,
// and no change when a gradient is not finite (the fault flag), against the formula in double on the CPU backend.
#include <string.h>

#include "common.h"
#include "config.h"
#include "model.h"
#include "optim.h"
#include "rng.h"
#include "test.h"

int main(void) {
    Config cfg;
    config_load(&cfg, "configs/tiny.yaml", 0, NULL);
    cfg.meta.threads = 1;
    snprintf(cfg.optimization.optimizer, sizeof cfg.optimization.optimizer, "sgd");
    Backend *be = backend_cpu_create(0, 1);
    Model *m = model_create(&cfg, be);
    const size_t n = m->table.total;
    double *p = xmalloc(n * sizeof(double)), *g = xmalloc(n * sizeof(double));  // [n] params, gradients
    double *want = xmalloc(n * sizeof(double)), *got = xmalloc(n * sizeof(double));
    Rng r = rng_stream(7, RNG_TEST, 0, 0);
    for (size_t i = 0; i < n; i++) p[i] = rng_normal(&r), g[i] = rng_normal(&r);
    be->upload_f64(be, m->params, be->msize, p, n);
    be->upload_f64(be, m->grads, be->msize, g, n);
    be->download_f64(be, p, m->params, be->msize, n);  // the fp32 values the step starts from
    be->download_f64(be, g, m->grads, be->msize, n);
    const Schedule s = {.lr = 0.1, .weight_decay = 0.05, .ema_momentum = 1, .clip = 0};
    int decaying = 0, plain = 0;
    for (int k = 0; k < m->table.count; k++) {
        const TensorSpec *t = &m->table.tensors[k];
        *(t->decay ? &decaying : &plain) += 1;
        for (size_t i = t->offset; i < t->offset + t->numel; i++)
            want[i] = p[i] - s.lr * (g[i] + (t->decay ? s.weight_decay : 0) * p[i]);
    }
    optim_update(m, &cfg, &s, 1);
    be->download_f64(be, got, m->params, be->msize, n);
    // fp32 parameters: each element is rounded once when stored (6e-8 relative)
    const double err = rel_norm_error(got, want, n);
    TEST_CHECK("sgd step = p - lr * (g + wd * p) with wd on decaying tensors only", err < 1e-6 && decaying && plain,
               "relative error %.2e (%d decaying, %d plain tensors)", err, decaying, plain);
    // A NaN gradient sets the fault flag: the update is dropped.
    const double nan = NAN;
    be->upload_f64(be, m->grads, be->msize, &nan, 1);
    be->download_f64(be, want, m->params, be->msize, n);
    optim_update(m, &cfg, &s, 2);
    be->download_f64(be, got, m->params, be->msize, n);
    TEST_CHECK("sgd drops the update when a gradient is not finite", memcmp(got, want, n * sizeof(double)) == 0,
               "the parameters changed");
    free(p), free(g), free(want), free(got);
    model_free(m);
    backend_destroy(be);
    TEST_EXIT();
}
