#ifndef CPU_GENERIC_BODY
// attention_cpu.c: plain softmax attention per (batch, head), optionally frame-causal.
// Each (b,h) pair is processed in blocks of query rows: the block's scores against the keys it may see are
// materialised (ATTN_ROW_BLOCK x N), so memory stays O(N) per call whatever the token count. GEMMs go through
// OpenBLAS (strided views into the fused qkv tensor, no copies); the softmax runs OpenMP-parallel over rows.
// The backward recomputes the probabilities from q, k and the forward's log-sum-exp. Everything accumulates in
// a fixed order (serial over pairs and blocks), so results are bitwise reproducible.
#include <cblas.h>
#include <math.h>

#include "common.h"
#include "cpu_ops.h"

#define ATTN_ROW_BLOCK 256

// One past the last key that query i may see: all N, or up to the end of i's frame when frame-causal.
static int attn_kv_end(int i, int N, int frame_tokens) {
    if (frame_tokens <= 0) return N;
    const long end = ((long)i / frame_tokens + 1) * frame_tokens;
    return end < N ? (int)end : N;
}

#define CPU_GENERIC_SELF "attention_cpu.c"
#include "cpu_generic.h"
#else

// Strided views of one (b,h) pair: q/k/v rows are hd contiguous values, 3*H*hd apart; out rows H*hd apart.
typedef struct {
    const real *q, *k, *v;  // [N,hd] each, row stride ld_qkv
    size_t ld_qkv, ld_out;
} FN(AttnHead);

static FN(AttnHead) FN(attn_head)(const real *qkv, int b, int h, int N, int H, int hd) {
    FN(AttnHead) a;
    a.ld_qkv = (size_t)3 * H * hd;
    a.ld_out = (size_t)H * hd;
    a.q = qkv + (size_t)b * N * a.ld_qkv + (size_t)h * hd;
    a.k = a.q + (size_t)H * hd;
    a.v = a.q + (size_t)2 * H * hd;
    return a;
}

// scores[rows, ncols] = scale * q[i0 : i0+rows] @ k[0 : ncols]^T
static void FN(attn_scores)(real *scores, const FN(AttnHead) *a, int i0, int rows, int ncols, int hd, real scale) {
    CBLAS_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, rows, ncols, hd, scale, a->q + (size_t)i0 * a->ld_qkv,
               (int)a->ld_qkv, a->k, (int)a->ld_qkv, 0, scores, ncols);
}

// In place: scores -> probabilities over each row's visible keys, 0 beyond them; lse[r] = log-sum-exp.
static void FN(attn_softmax_rows)(real *P, real *lse, int i0, int rows, int ncols, int N, int frame_tokens) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        real *p = P + (size_t)r * ncols;  // [ncols]
        const int end = attn_kv_end(i0 + r, N, frame_tokens);
        real mx = p[0];
        for (int j = 1; j < end; j++) mx = p[j] > mx ? p[j] : mx;
        real sum = 0;
        for (int j = 0; j < end; j++) {
            p[j] = R_EXP(p[j] - mx);
            sum += p[j];
        }
        for (int j = 0; j < end; j++) p[j] /= sum;
        for (int j = end; j < ncols; j++) p[j] = 0;
        if (lse) lse[r] = mx + R_LOG(sum);
    }
}

void FN(attention_fwd)(real *out, real *lse, const real *qkv, int B, int N, int H, int hd, int frame_tokens) {
    if (B <= 0 || N <= 0) return;
    JEPA_ASSERT(H > 0 && hd > 0);
    const real scale = 1 / R_SQRT((real)hd);
    real *P = xmalloc((size_t)ATTN_ROW_BLOCK * N * sizeof(real));  // [rows, ncols] scores, then probabilities
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < H; h++) {
            const FN(AttnHead) a = FN(attn_head)(qkv, b, h, N, H, hd);
            real *o = out + (size_t)b * N * a.ld_out + (size_t)h * hd;  // [N,hd], row stride ld_out
            real *l = lse ? lse + ((size_t)b * H + h) * N : NULL;       // [N]
            for (int i0 = 0; i0 < N; i0 += ATTN_ROW_BLOCK) {
                const int rows = N - i0 < ATTN_ROW_BLOCK ? N - i0 : ATTN_ROW_BLOCK;
                const int ncols = attn_kv_end(i0 + rows - 1, N, frame_tokens);  // keys any row of the block sees
                FN(attn_scores)(P, &a, i0, rows, ncols, hd, scale);
                FN(attn_softmax_rows)(P, l ? l + i0 : NULL, i0, rows, ncols, N, frame_tokens);
                CBLAS_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hd, ncols, 1, P, ncols, a.v,
                           (int)a.ld_qkv, 0, o + (size_t)i0 * a.ld_out, (int)a.ld_out);
            }
        }
    }
    free(P);
}

// From scores and dP = dout @ v^T of a row block: P = exp(scores - lse) (0 where masked) in place, and
// dS = P * (dP - D) into dP, where D_i = dout_i . out_i is the softmax Jacobian's row term.
static void FN(attn_grad_scores)(real *P, real *dP, const real *lse, const real *o, const real *dO, size_t ld_out,
                                 int i0, int rows, int ncols, int N, int hd, int frame_tokens) {
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; r++) {
        real *p = P + (size_t)r * ncols, *dp = dP + (size_t)r * ncols;  // [ncols]
        const real *o_row = o + (size_t)(i0 + r) * ld_out, *do_row = dO + (size_t)(i0 + r) * ld_out;  // [hd]
        real D = 0;
        for (int d = 0; d < hd; d++) D += do_row[d] * o_row[d];
        const int end = attn_kv_end(i0 + r, N, frame_tokens);
        for (int j = 0; j < end; j++) {
            p[j] = R_EXP(p[j] - lse[i0 + r]);
            dp[j] = p[j] * (dp[j] - D);
        }
        for (int j = end; j < ncols; j++) p[j] = dp[j] = 0;
    }
}

void FN(attention_bwd)(real *dqkv, const real *dout, const real *qkv, const real *out, const real *lse, int B, int N,
                       int H, int hd, int frame_tokens) {
    if (B <= 0 || N <= 0) return;
    JEPA_ASSERT(H > 0 && hd > 0);
    const real scale = 1 / R_SQRT((real)hd);
    real *P = xmalloc((size_t)ATTN_ROW_BLOCK * N * sizeof(real));   // [rows, ncols]
    real *dP = xmalloc((size_t)ATTN_ROW_BLOCK * N * sizeof(real));  // [rows, ncols]
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < H; h++) {
            const FN(AttnHead) a = FN(attn_head)(qkv, b, h, N, H, hd);
            const int ld = (int)a.ld_qkv;
            real *dq = dqkv + (a.q - qkv), *dk = dqkv + (a.k - qkv), *dv = dqkv + (a.v - qkv);  // [N,hd] views
            const size_t o_off = (size_t)b * N * a.ld_out + (size_t)h * hd;
            const real *o = out + o_off, *dO = dout + o_off;  // [N,hd], row stride ld_out
            const real *l = lse + ((size_t)b * H + h) * N;    // [N]
            for (int i0 = 0; i0 < N; i0 += ATTN_ROW_BLOCK) {
                const int rows = N - i0 < ATTN_ROW_BLOCK ? N - i0 : ATTN_ROW_BLOCK;
                const int ncols = attn_kv_end(i0 + rows - 1, N, frame_tokens);
                const real *q_blk = a.q + (size_t)i0 * a.ld_qkv, *dO_blk = dO + (size_t)i0 * a.ld_out;
                FN(attn_scores)(P, &a, i0, rows, ncols, hd, scale);
                CBLAS_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, rows, ncols, hd, 1, dO_blk, (int)a.ld_out, a.v,
                           ld, 0, dP, ncols);
                FN(attn_grad_scores)(P, dP, l, o, dO, a.ld_out, i0, rows, ncols, N, hd, frame_tokens);
                // dq += scale dS k;  dk += scale dS^T q;  dv += P^T dout
                CBLAS_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hd, ncols, scale, dP, ncols, a.k, ld, 1,
                           dq + (size_t)i0 * a.ld_qkv, ld);
                CBLAS_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, ncols, hd, rows, scale, dP, ncols, q_blk, ld, 1,
                           dk, ld);
                CBLAS_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, ncols, hd, rows, 1, P, ncols, dO_blk,
                           (int)a.ld_out, 1, dv, ld);
            }
        }
    }
    free(P);
    free(dP);
}

#endif
