#ifndef CPU_GENERIC_BODY
// layernorm_cpu.c: LayerNorm over the last dimension, affine or not, as torch.nn.LayerNorm (biased variance).
#include <math.h>

#include "common.h"
#include "cpu_ops.h"

// Columns per task of the weight/bias gradient: each task sums its columns over all rows in row order, so the
// result is the serial one whatever the thread count, and a task reads contiguous 64-element row pieces.
#define LN_COL_BLOCK 64

#define CPU_GENERIC_SELF "layernorm_cpu.c"
#include "cpu_generic.h"
#else

void FN(layernorm_fwd)(real *out, real *mean, real *rstd, const real *inp, const real *w, const real *bias, int R,
                       int C, double eps) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < R; r++) {
        const real *x = inp + (size_t)r * C;  // [C]
        real *y = out + (size_t)r * C;        // [C]
        real m = 0, var = 0;
        for (int c = 0; c < C; c++) m += x[c];
        m /= (real)C;
        for (int c = 0; c < C; c++) var += (x[c] - m) * (x[c] - m);  // two passes: no cancellation
        var /= (real)C;
        const real s = 1 / R_SQRT(var + (real)eps);
        for (int c = 0; c < C; c++) {
            const real xhat = (x[c] - m) * s;
            y[c] = w ? xhat * w[c] + (bias ? bias[c] : 0) : xhat;
        }
        if (mean) mean[r] = m;
        if (rstd) rstd[r] = s;
    }
}

// dinp += rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dout * w, row by row.
static void FN(layernorm_bwd_input)(real *dinp, const real *dout, const real *inp, const real *w, const real *mean,
                                    const real *rstd, int R, int C) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < R; r++) {
        const real *x = inp + (size_t)r * C, *dy = dout + (size_t)r * C;  // [C]
        real *dx = dinp + (size_t)r * C;                                   // [C]
        const real m = mean[r], s = rstd[r];
        real g_mean = 0, gx_mean = 0;
        for (int c = 0; c < C; c++) {
            const real g = w ? dy[c] * w[c] : dy[c];
            g_mean += g;
            gx_mean += g * (x[c] - m) * s;
        }
        g_mean /= (real)C;
        gx_mean /= (real)C;
        for (int c = 0; c < C; c++) {
            const real g = w ? dy[c] * w[c] : dy[c];
            dx[c] += s * (g - g_mean - (x[c] - m) * s * gx_mean);
        }
    }
}

// dw += sum_r dout * xhat, dbias += sum_r dout: parallel over column blocks, rows summed in order, in double
// because R (all tokens of the micro-batch) can be tens of thousands.
static void FN(layernorm_bwd_params)(real *dw, real *dbias, const real *dout, const real *inp, const real *mean,
                                     const real *rstd, int R, int C) {
    const int blocks = (C + LN_COL_BLOCK - 1) / LN_COL_BLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < blocks; blk++) {
        const int c0 = blk * LN_COL_BLOCK, width = C - c0 < LN_COL_BLOCK ? C - c0 : LN_COL_BLOCK;
        double acc_w[LN_COL_BLOCK] = {0}, acc_b[LN_COL_BLOCK] = {0};
        for (int r = 0; r < R; r++) {
            const real *x = inp + (size_t)r * C + c0, *dy = dout + (size_t)r * C + c0;  // [width]
            const real m = mean[r], s = rstd[r];
            for (int c = 0; c < width; c++) {
                acc_w[c] += (double)(dy[c] * ((x[c] - m) * s));
                acc_b[c] += (double)dy[c];
            }
        }
        for (int c = 0; c < width; c++) {
            if (dw) dw[c0 + c] += (real)acc_w[c];
            if (dbias) dbias[c0 + c] += (real)acc_b[c];
        }
    }
}

void FN(layernorm_bwd)(real *dinp, real *dw, real *dbias, const real *dout, const real *inp, const real *w,
                       const real *mean, const real *rstd, int R, int C) {
    if (R <= 0 || C <= 0) return;
    if (dinp) FN(layernorm_bwd_input)(dinp, dout, inp, w, mean, rstd, R, C);
    if (dw || dbias) FN(layernorm_bwd_params)(dw, dbias, dout, inp, mean, rstd, R, C);
}

#endif
