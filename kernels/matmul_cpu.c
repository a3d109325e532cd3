#ifndef CPU_GENERIC_BODY
// matmul_cpu.c: Linear layers (weights [out, in] as in PyTorch) through OpenBLAS GEMM.
#include <cblas.h>
#include <string.h>

#include "common.h"
#include "cpu_ops.h"

#define CPU_GENERIC_SELF "matmul_cpu.c"
#include "cpu_generic.h"
#else

void FN(matmul_fwd)(real *out, const real *inp, const real *w, const real *bias, int M, int N, int K) {
    if (M <= 0 || N <= 0) return;  // no tokens this step
    JEPA_ASSERT(K > 0);
    real beta = 0;  // beta = 0 overwrites out, whatever it held (NaN included)
    if (bias) {
        // out starts as the bias and the GEMM adds onto it
#pragma omp parallel for schedule(static)
        for (int r = 0; r < M; r++) memcpy(out + (size_t)r * N, bias, (size_t)N * sizeof(real));
        beta = 1;
    }
    CBLAS_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, inp, K, w, K, beta, out, N);
}

void FN(matmul_bwd)(real *dinp, real *dw, real *dbias, const real *dout, const real *inp, const real *w, int M, int N,
                    int K) {
    if (M <= 0 || N <= 0 || K <= 0) return;
    if (dinp) CBLAS_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, N, 1, dout, N, w, K, 1, dinp, K);
    if (dw) CBLAS_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, N, K, M, 1, dout, N, inp, K, 1, dw, K);
    if (dbias) FN(sum_rows)(dbias, dout, M, N);
}

#endif
