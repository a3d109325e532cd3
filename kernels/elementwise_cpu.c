#ifndef CPU_GENERIC_BODY
// elementwise_cpu.c: GELU, adds and scales, token movement (gather, scatter-add, copy, row tables, broadcast,
// column sums) and video patchify. Every output element is written by one task, and the sums (scatter-add with
// repeated indices, sum_rows) run in index order, so results never depend on the thread count.
#include <math.h>
#include <string.h>

#include "common.h"
#include "cpu_ops.h"

// Below this many elements a parallel region costs more than the loop.
#define EW_PARALLEL_MIN 32768
// Columns per task for column sums: contiguous row pieces, rows summed in order.
#define EW_COL_BLOCK 64

static void check_token_indices(const int32_t *idx, size_t n, int limit, const char *op) {
    for (size_t i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= limit) die_internal("%s: index %d at %zu outside [0, %d)", op, idx[i], i, limit);
}

#define CPU_GENERIC_SELF "elementwise_cpu.c"
#include "cpu_generic.h"
#else

// ---- GELU, exact: x * Phi(x)
void FN(gelu_fwd)(real *out, const real *inp, size_t n) {
    const real inv_sqrt2 = (real)0.70710678118654752440;
#pragma omp parallel for schedule(static) if (n >= EW_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) out[i] = (real)0.5 * inp[i] * (1 + R_ERF(inp[i] * inv_sqrt2));
}

// d/dx x*Phi(x) = Phi(x) + x * phi(x)
void FN(gelu_bwd)(real *dinp, const real *inp, const real *dout, size_t n) {
    const real inv_sqrt2 = (real)0.70710678118654752440, inv_sqrt_2pi = (real)0.39894228040143267794;
#pragma omp parallel for schedule(static) if (n >= EW_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) {
        const real x = inp[i];
        const real cdf = (real)0.5 * (1 + R_ERF(x * inv_sqrt2));
        const real pdf = inv_sqrt_2pi * R_EXP((real)-0.5 * x * x);
        dinp[i] += dout[i] * (cdf + x * pdf);
    }
}

// ---- adds and scales
void FN(add)(real *out, const real *x, const real *y, size_t n) {
#pragma omp parallel for schedule(static) if (n >= EW_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) out[i] = x[i] + y[i];
}

void FN(accumulate)(real *y, const real *x, size_t n) {
#pragma omp parallel for schedule(static) if (n >= EW_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

void FN(scale)(real *x, double factor, size_t n) {
    const real f = (real)factor;
#pragma omp parallel for schedule(static) if (n >= EW_PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) x[i] *= f;
}

// ---- token movement
void FN(gather_tokens)(real *out, const real *inp, const int32_t *idx, int B, int n, int Nsrc, int C) {
    check_token_indices(idx, (size_t)B * n, Nsrc, "gather_tokens");
#pragma omp parallel for schedule(static)
    for (long t = 0; t < (long)B * n; t++) {
        const long b = t / n;
        memcpy(out + (size_t)t * C, inp + ((size_t)b * Nsrc + idx[t]) * C, (size_t)C * sizeof(real));
    }
}

// Parallel over (sample, column block); each task walks i in order, so repeated indices add up deterministically.
void FN(scatter_add_tokens)(real *dinp, const real *dout, const int32_t *idx, int B, int n, int Nsrc, int C) {
    check_token_indices(idx, (size_t)B * n, Nsrc, "scatter_add_tokens");
    const int blocks = (C + EW_COL_BLOCK - 1) / EW_COL_BLOCK;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++) {
        for (int blk = 0; blk < blocks; blk++) {
            const int c0 = blk * EW_COL_BLOCK, c1 = C - c0 < EW_COL_BLOCK ? C : c0 + EW_COL_BLOCK;
            for (int i = 0; i < n; i++) {
                const size_t t = (size_t)b * n + i;
                real *dst = dinp + ((size_t)b * Nsrc + idx[t]) * C;  // [C]
                const real *src = dout + t * C;                       // [C]
                for (int c = c0; c < c1; c++) dst[c] += src[c];
            }
        }
    }
}

void FN(copy_tokens)(real *dst, int dst_tokens, int dst_start, const real *src, int src_tokens, int src_start,
                     int count, int B, int C, int accumulate) {
    JEPA_ASSERT(count >= 0 && dst_start >= 0 && src_start >= 0);
    JEPA_ASSERT(dst_start + count <= dst_tokens && src_start + count <= src_tokens);
#pragma omp parallel for schedule(static)
    for (long t = 0; t < (long)B * count; t++) {
        const long b = t / count, i = t % count;
        real *d = dst + ((size_t)b * dst_tokens + dst_start + i) * C;        // [C]
        const real *s = src + ((size_t)b * src_tokens + src_start + i) * C;  // [C]
        if (accumulate) {
            for (int c = 0; c < C; c++) d[c] += s[c];
        } else {
            memcpy(d, s, (size_t)C * sizeof(real));
        }
    }
}

void FN(add_rows)(real *x, const real *table, const int32_t *idx, int B, int n, int C) {
    if (idx) check_token_indices(idx, (size_t)B * n, INT32_MAX, "add_rows");  // the table's length is not passed
#pragma omp parallel for schedule(static)
    for (long t = 0; t < (long)B * n; t++) {
        const long row = idx ? idx[t] : t % n;
        real *y = x + (size_t)t * C;                   // [C]
        const real *e = table + (size_t)row * C;       // [C]
        for (int c = 0; c < C; c++) y[c] += e[c];
    }
}

void FN(broadcast_row)(real *out, const real *row, int R, int C) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < R; r++) memcpy(out + (size_t)r * C, row, (size_t)C * sizeof(real));
}

// Column blocks in parallel, rows summed in order in double (R can be every token of a micro-batch).
void FN(sum_rows)(real *drow, const real *dout, int R, int C) {
    const int blocks = (C + EW_COL_BLOCK - 1) / EW_COL_BLOCK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < blocks; blk++) {
        const int c0 = blk * EW_COL_BLOCK, width = C - c0 < EW_COL_BLOCK ? C - c0 : EW_COL_BLOCK;
        double acc[EW_COL_BLOCK] = {0};
        for (int r = 0; r < R; r++) {
            const real *row = dout + (size_t)r * C + c0;  // [width]
            for (int c = 0; c < width; c++) acc[c] += (double)row[c];
        }
        for (int c = 0; c < width; c++) drow[c0 + c] += (real)acc[c];
    }
}

// ---- patchify: one task per token; the (c, kt, kh, kw) order matches a Conv3d weight [D,3,tt,p,p] flattened,
// so the patch embedding is a matmul against that weight viewed as [D, 3*tt*p*p].
void FN(patchify)(real *patches, const real *clips, int B, int T, int H, int W, int tt, int p) {
    JEPA_ASSERT(tt > 0 && p > 0 && T % tt == 0 && H % p == 0 && W % p == 0);
    const int nt = T / tt, nh = H / p, nw = W / p, ntok = nt * nh * nw;
    const size_t plen = (size_t)3 * tt * p * p;
#pragma omp parallel for schedule(static)
    for (long t = 0; t < (long)B * ntok; t++) {
        const int b = (int)(t / ntok), tok = (int)(t % ntok);
        const int it = tok / (nh * nw), ih = tok / nw % nh, iw = tok % nw;
        real *dst = patches + (size_t)t * plen;  // [3*tt*p*p]
        for (int c = 0; c < 3; c++)
            for (int kt = 0; kt < tt; kt++)
                for (int kh = 0; kh < p; kh++)
                    for (int kw = 0; kw < p; kw++) {
                        const size_t frame = (size_t)b * T + (size_t)it * tt + kt;
                        const size_t pixel = (frame * H + (size_t)ih * p + kh) * W + (size_t)iw * p + kw;
                        *dst++ = clips[pixel * 3 + c];
                    }
    }
}

#endif
