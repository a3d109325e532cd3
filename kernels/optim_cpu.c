#ifndef CPU_GENERIC_BODY
// optim_cpu.c: flat-buffer optimizer ops on master parameters: gradient norm, clipping scale, AdamW, EMA and the
// working-copy cast. Elementwise ops are trivially deterministic; sum_squares adds fixed blocks in block order.
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
void FN(adamw)(real *param, const real *grad, real *m, real *v, size_t n, double lr, double beta1, double beta2,
               double eps, double weight_decay, long step) {
    JEPA_ASSERT(step >= 1);
    const real decay = (real)(1.0 - lr * weight_decay);
    const real step_size = (real)(lr / (1.0 - pow(beta1, (double)step)));
    const real bc2_sqrt = (real)sqrt(1.0 - pow(beta2, (double)step));
    const real one_minus_b1 = (real)(1.0 - beta1), b2 = (real)beta2, one_minus_b2 = (real)(1.0 - beta2);
    const real e = (real)eps;
#pragma omp parallel for schedule(static) if (n >= OPT_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) {
        const real g = grad[i];
        const real mi = m[i] + one_minus_b1 * (g - m[i]);
        const real vi = b2 * v[i] + one_minus_b2 * g * g;
        const real denom = R_SQRT(vi) / bc2_sqrt + e;
        m[i] = mi;
        v[i] = vi;
        param[i] = param[i] * decay - step_size * (mi / denom);
    }
}

void FN(ema)(real *target, const real *source, size_t n, double momentum) {
    const real mom = (real)momentum, rest = (real)(1.0 - momentum);
#pragma omp parallel for schedule(static) if (n >= OPT_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) target[i] = mom * target[i] + rest * source[i];
}

// On the CPU the working parameters are the master ones (same type): usually the same buffer.
void FN(cast_params)(real *working, const real *master, size_t n) {
    if (working != master) memcpy(working, master, n * sizeof(real));
}

#endif
