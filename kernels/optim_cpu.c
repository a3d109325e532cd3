#ifndef CPU_GENERIC_BODY
// optim_cpu.c: flat-buffer optimizer ops on master parameters: gradient norm, clipping scale, AdamW, EMA, AdamW with
// the target's EMA in the same pass, and the working-copy cast. Elementwise ops are trivially deterministic;
// sum_squares adds fixed blocks in block order.
#include <math.h>
#include <string.h>

#include "common.h"
#include "cpu_ops.h"

#define OPT_BLOCK 65536           // elements per partial sum in sum_squares
#define OPT_PARALLEL_MIN 32768    // below this a parallel region costs more than the loop

#define CPU_GENERIC_SELF "optim_cpu.c"
#include "cpu_generic.h"
#else

double FN(sum_squares)(const real *x, size_t n) {
    const size_t blocks = (n + OPT_BLOCK - 1) / OPT_BLOCK;
    if (blocks == 0) return 0;
    double *partial = xmalloc(blocks * sizeof(double));  // [blocks]
#pragma omp parallel for schedule(static)
    for (size_t blk = 0; blk < blocks; blk++) {
        const size_t i1 = (blk + 1) * OPT_BLOCK < n ? (blk + 1) * OPT_BLOCK : n;
        double s = 0;
        for (size_t i = blk * OPT_BLOCK; i < i1; i++) s += (double)x[i] * (double)x[i];
        partial[blk] = s;
    }
    double total = 0;
    for (size_t blk = 0; blk < blocks; blk++) total += partial[blk];
    free(partial);
    return total;
}

void FN(scale_master)(real *x, double factor, size_t n) {
    const real f = (real)factor;
#pragma omp parallel for schedule(static) if (n >= OPT_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) x[i] *= f;
}

// torch.optim.AdamW (single-tensor path), step by step:
//   p *= 1 - lr*wd;  m.lerp_(g, 1-b1);  v = b2*v + (1-b2)*g*g;
//   denom = sqrt(v) / sqrt(1 - b2^t) + eps;  p -= lr / (1 - b1^t) * m / denom
// The constants, computed in double and rounded once, and one element's update: adamw and adamw_ema share them, so
// the fused pass gives the separate ops' results bit for bit.
typedef struct {
    real decay, step_size, bc2_sqrt, one_minus_b1, b2, one_minus_b2, eps;
} FN(AdamK);

static FN(AdamK) FN(adam_consts)(double lr, double beta1, double beta2, double eps, double weight_decay, long step) {
    JEPA_ASSERT(step >= 1);
    FN(AdamK) k;
    k.decay = (real)(1.0 - lr * weight_decay);
    k.step_size = (real)(lr / (1.0 - pow(beta1, (double)step)));
    k.bc2_sqrt = (real)sqrt(1.0 - pow(beta2, (double)step));
    k.one_minus_b1 = (real)(1.0 - beta1), k.b2 = (real)beta2, k.one_minus_b2 = (real)(1.0 - beta2);
    k.eps = (real)eps;
    return k;
}

// element i of param, m, v updated in place; returns the new parameter
static inline real FN(adamw_one)(real *param, const real *grad, real *m, real *v, size_t i, const FN(AdamK) *k) {
    const real g = grad[i];
    const real mi = m[i] + k->one_minus_b1 * (g - m[i]);
    const real vi = k->b2 * v[i] + k->one_minus_b2 * g * g;
    const real denom = R_SQRT(vi) / k->bc2_sqrt + k->eps;
    m[i] = mi;
    v[i] = vi;
    return param[i] = param[i] * k->decay - k->step_size * (mi / denom);
}

// target = momentum * target + (1 - momentum) * source, mom and rest rounded from double once
static inline real FN(ema_one)(real target, real source, real mom, real rest) { return mom * target + rest * source; }

void FN(adamw)(real *param, const real *grad, real *m, real *v, size_t n, double lr, double beta1, double beta2,
               double eps, double weight_decay, long step) {
    const FN(AdamK) k = FN(adam_consts)(lr, beta1, beta2, eps, weight_decay, step);
#pragma omp parallel for schedule(static) if (n >= OPT_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) FN(adamw_one)(param, grad, m, v, i, &k);
}

void FN(ema)(real *target, const real *source, size_t n, double momentum) {
    const real mom = (real)momentum, rest = (real)(1.0 - momentum);
#pragma omp parallel for schedule(static) if (n >= OPT_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) target[i] = FN(ema_one)(target[i], source[i], mom, rest);
}

// adamw, then ema with the new parameters as the source, element by element: one pass over the weights.
void FN(adamw_ema)(real *param, const real *grad, real *m, real *v, real *target, size_t n, double lr, double beta1,
                   double beta2, double eps, double weight_decay, long step, double momentum) {
    const FN(AdamK) k = FN(adam_consts)(lr, beta1, beta2, eps, weight_decay, step);
    const real mom = (real)momentum, rest = (real)(1.0 - momentum);
#pragma omp parallel for schedule(static) if (n >= OPT_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) {
        const real p = FN(adamw_one)(param, grad, m, v, i, &k);
        target[i] = FN(ema_one)(target[i], p, mom, rest);
    }
}

// On the CPU the working parameters are the master ones (same type): usually the same buffer.
void FN(cast_params)(real *working, const real *master, size_t n) {
    if (working != master) memcpy(working, master, n * sizeof(real));
}

#endif
