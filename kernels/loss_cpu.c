#ifndef CPU_GENERIC_BODY
// loss_cpu.c: the L1 prediction loss and the column-std collapse statistic.
// Sums run in double over fixed blocks whose partial results are added in block order, so the value does not
// depend on the thread count or on scheduling.
#include <math.h>

#include "common.h"
#include "cpu_ops.h"

#define LOSS_BLOCK 65536  // elements per partial sum
#define LOSS_COL_BLOCK 64 // columns per task in mean_column_std

#define CPU_GENERIC_SELF "loss_cpu.c"
#include "cpu_generic.h"
#else

// sum_i |pred_i - target_i| in double
static double FN(l1_sum)(const real *pred, const real *target, size_t n) {
    const size_t blocks = (n + LOSS_BLOCK - 1) / LOSS_BLOCK;
    double *partial = xmalloc(blocks * sizeof(double));  // [blocks]
#pragma omp parallel for schedule(static)
    for (size_t blk = 0; blk < blocks; blk++) {
        const size_t i1 = (blk + 1) * LOSS_BLOCK < n ? (blk + 1) * LOSS_BLOCK : n;
        double s = 0;
        for (size_t i = blk * LOSS_BLOCK; i < i1; i++) s += (double)R_FABS(pred[i] - target[i]);
        partial[blk] = s;
    }
    double total = 0;
    for (size_t blk = 0; blk < blocks; blk++) total += partial[blk];
    free(partial);
    return total;
}

void FN(l1_loss)(real *loss_out, real *dpred, const real *pred, const real *target, size_t n, double loss_scale,
                 double grad_scale) {
    if (n == 0) return;
    if (loss_out) loss_out[0] += (real)(FN(l1_sum)(pred, target, n) / (double)n * loss_scale);
    if (!dpred) return;
    const real g = (real)(grad_scale / (double)n);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        const real d = pred[i] - target[i];
        dpred[i] += d > 0 ? g : d < 0 ? -g : 0;  // sign(0) = 0, as torch.sign
    }
}

// Two passes per column (mean, then squared deviations) in double; population std (divide by R).
double FN(mean_column_std)(const real *x, int R, int C) {
    if (R <= 0 || C <= 0) return 0;
    const int blocks = (C + LOSS_COL_BLOCK - 1) / LOSS_COL_BLOCK;
    double *col_std = xmalloc((size_t)C * sizeof(double));  // [C]
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < blocks; blk++) {
        const int c0 = blk * LOSS_COL_BLOCK, width = C - c0 < LOSS_COL_BLOCK ? C - c0 : LOSS_COL_BLOCK;
        double mean[LOSS_COL_BLOCK] = {0}, var[LOSS_COL_BLOCK] = {0};
        for (int r = 0; r < R; r++)
            for (int c = 0; c < width; c++) mean[c] += (double)x[(size_t)r * C + c0 + c];
        for (int c = 0; c < width; c++) mean[c] /= R;
        for (int r = 0; r < R; r++)
            for (int c = 0; c < width; c++) {
                const double d = (double)x[(size_t)r * C + c0 + c] - mean[c];
                var[c] += d * d;
            }
        for (int c = 0; c < width; c++) col_std[c0 + c] = sqrt(var[c] / R);
    }
    double total = 0;
    for (int c = 0; c < C; c++) total += col_std[c];
    free(col_std);
    return total / C;
}

#endif
