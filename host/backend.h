// backend.h: the op interface the model is written against once (DESIGN "one model over two backends").
// The CPU backend (kernels/*_cpu.c, fp32 or fp64 through one generic source) and the CUDA backend implement it.
//
// Conventions
// - Every tensor argument is backend memory. Activations, working parameters and their gradients are in the
//   backend's activation type (esize bytes: float, double, bf16 on CUDA); per-row statistics (LayerNorm mean/rstd,
//   attention log-sum-exp) and scalar results in its stat type (ssize bytes: float or double); master parameters,
//   parameter gradients (dw, dbias, LayerNorm dw/dbias, sum_rows) and optimizer state in its master type
//   (msize bytes). On the CPU all three are the same type.
// - Index lists are int32 in backend memory.
// - Gradient outputs ACCUMULATE (+=): callers zero them first. This serves gradient accumulation, residual
//   branches and generators that share weights without extra ops.
// - Row-major; weights are (out_features, in_features) as in PyTorch's Linear.
// - Ops are queued in order; nothing synchronises except download() and the ops returning a host value.
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef enum { DT_F32 = 0, DT_F64 = 1, DT_BF16 = 2 } DType;

typedef struct Backend Backend;
struct Backend {
    const char *name;  // "cpu-f32", "cpu-f64", "cuda"
    DType act_dtype;
    size_t esize;  // activation / working parameter element size
    size_t ssize;  // statistics and scalar results
    size_t msize;  // master parameters, gradients, optimizer state
    void *impl;    // backend private state
    void (*destroy)(Backend *b);  // frees impl (backend_destroy calls it); NULL: nothing to free
    const char *alloc_what;       // what the next alloc is for, named by out-of-memory errors (see backend_alloc)

    // ---- memory
    void *(*alloc)(Backend *b, size_t bytes);  // zero-filled
    void (*release)(Backend *b, void *p);
    void (*zero)(Backend *b, void *p, size_t bytes);
    void (*copy)(Backend *b, void *dst, const void *src, size_t bytes);  // backend to backend
    void (*upload)(Backend *b, void *dst, const void *host_src, size_t bytes);
    void (*download)(Backend *b, void *host_dst, const void *src, size_t bytes);  // synchronises
    // Host double <-> backend elements of the given storage size (esize, ssize or msize), for init and logging.
    void (*upload_f64)(Backend *b, void *dst, size_t elem_size, const double *host_src, size_t n);
    void (*download_f64)(Backend *b, double *host_dst, const void *src, size_t elem_size, size_t n);
    void (*synchronize)(Backend *b);
    // Bytes of this backend's own allocations (alloc, and its internal buffers) live now and the most at once so far.
    void (*memory)(Backend *b, size_t *now, size_t *peak);

    // ---- input double buffer: clips for the next micro-batch travel while the current one computes.
    // Fill input_host(slot, n) (host floats; it first waits until that slot's previous copy has left it), then
    // upload_input(slot, dst, n) copies them to dst (n esize elements) on a copy stream once the ops that last read
    // dst are done (marked by input_consumed(slot)); ops queued after wait_input(slot) see the data. slot is 0 or 1.
    float *(*input_host)(Backend *b, int slot, size_t n);
    void (*upload_input)(Backend *b, int slot, void *dst, size_t n);
    void (*wait_input)(Backend *b, int slot);
    void (*input_consumed)(Backend *b, int slot);

    // ---- dense
    // out[M,N] = inp[M,K] @ w[N,K]^T + bias[N] (bias may be NULL)
    void (*matmul_fwd)(Backend *b, void *out, const void *inp, const void *w, const void *bias, int M, int N, int K);
    // dinp[M,K] += dout @ w; dw[N,K] += dout^T @ inp; dbias[N] += sum_rows(dout). Any output may be NULL.
    void (*matmul_bwd)(Backend *b, void *dinp, void *dw, void *dbias, const void *dout, const void *inp,
                       const void *w, int M, int N, int K);
    // The MLP's GELU around its GEMMs, fused where a backend can (backend_matmul_fwd_gelu / _bwd_dgelu below are
    // the plain compositions, which every backend uses by default: same results as the separate ops).
    // pre[M,N] = inp[M,K] @ w[N,K]^T + bias[N] (bias may be NULL); out[M,N] = gelu(pre), exact erf GELU.
    void (*matmul_fwd_gelu)(Backend *b, void *out, void *pre, const void *inp, const void *w, const void *bias, int M,
                            int N, int K);
    // The GEMM whose input was gelu(pre), backward through the GELU as well: d_pre[M,K] = gelu'(pre) * (dout @ w),
    // WRITTEN (=, not +=: an epilogue cannot add to it); dw[N,K] += dout^T @ inp; dbias[N] += sum_rows(dout) (dw,
    // dbias may be NULL). scratch [M,K]: the backend's to use (dout @ w when unfused), undefined afterwards.
    void (*matmul_bwd_dgelu)(Backend *b, void *d_pre, void *dw, void *dbias, void *scratch, const void *dout,
                             const void *inp, const void *w, const void *pre, int M, int N, int K);

    // ---- normalisation
    // out[R,C] = (inp - mean) * rstd * w + bias; w and bias both NULL for the non-affine form. mean, rstd: [R] stats,
    // either may be NULL for a forward with no backward.
    void (*layernorm_fwd)(Backend *b, void *out, void *mean, void *rstd, const void *inp, const void *w,
                          const void *bias, int R, int C, double eps);
    // dinp[R,C] +=, dw[C] +=, dbias[C] += (dw, dbias NULL when w is NULL).
    void (*layernorm_bwd)(Backend *b, void *dinp, void *dw, void *dbias, const void *dout, const void *inp,
                          const void *w, const void *mean, const void *rstd, int R, int C);
    // The residual add and the LayerNorm that reads it, fused where a backend can (backend_add_layernorm_fwd below
    // is the composition, the default): sum[R,C] = x + y (the residual stream the backward reads), then
    // layernorm_fwd(out, mean, rstd, sum, w, bias). sum must not overlap x, y or out.
    void (*add_layernorm_fwd)(Backend *b, void *sum, void *out, void *mean, void *rstd, const void *x, const void *y,
                              const void *w, const void *bias, int R, int C, double eps);

    // ---- attention, softmax(q k^T / sqrt(hd)) v per head
    // qkv[B,N,3,H,hd] (PyTorch's fused qkv Linear output), out[B,N,H,hd], lse[B,H,N] stats (kept for backward).
    // frame_tokens > 0: frame-causal, token i sees token j iff j/frame_tokens <= i/frame_tokens; 0: full attention.
    // lse may be NULL for a forward with no backward.
    void (*attention_fwd)(Backend *b, void *out, void *lse, const void *qkv, int B, int N, int H, int hd,
                          int frame_tokens);
    // dqkv[B,N,3,H,hd] +=
    void (*attention_bwd)(Backend *b, void *dqkv, const void *dout, const void *qkv, const void *out,
                          const void *lse, int B, int N, int H, int hd, int frame_tokens);
    // V-JEPA 2's 3D RoPE, in place on the q and k parts of qkv[B,N,3,H,hd] (v untouched). pos [B,N] int32 raster
    // grid indices (t*grid_h + h)*grid_w + w, so gathered tokens keep their true positions; NULL: token n is at n.
    // Each head's dims [0,S), [S,2S), [2S,3S) rotate by t, h, w (S = 2*((hd/3)/2)), the rest pass through
    // (kernels/rope_cpu.c has the formula). transpose 0: the forward; 1: the transposed map, which turns a gradient
    // w.r.t. the rotated q,k (dqkv from attention_bwd) into one w.r.t. the projection's output, in place.
    void (*rope_qk)(Backend *b, void *qkv, const int32_t *pos, int B, int N, int H, int hd, int grid_h, int grid_w,
                    int transpose);

    // ---- elementwise (n elements)
    void (*gelu_fwd)(Backend *b, void *out, const void *inp, size_t n);  // exact erf GELU
    void (*gelu_bwd)(Backend *b, void *dinp, const void *inp, const void *dout, size_t n);  // dinp +=
    void (*add)(Backend *b, void *out, const void *x, const void *y, size_t n);  // out = x + y (out may alias)
    void (*accumulate)(Backend *b, void *y, const void *x, size_t n);          // y += x
    void (*scale)(Backend *b, void *x, double factor, size_t n);               // x *= factor (esize elements)

    // ---- token movement. Token tensors are [B, tokens, C].
    // out[b,i,:] = inp[b, idx[b,i], :], idx [B,n] int32 into Nsrc tokens
    void (*gather_tokens)(Backend *b, void *out, const void *inp, const int32_t *idx, int B, int n, int Nsrc, int C);
    // dinp[b, idx[b,i], :] += dout[b,i,:]
    void (*scatter_add_tokens)(Backend *b, void *dinp, const void *dout, const int32_t *idx, int B, int n, int Nsrc,
                               int C);
    // dst[b, dst_start + i, :] (=, or += when accumulate) src[b, src_start + i, :] for i < count; no overlap
    void (*copy_tokens)(Backend *b, void *dst, int dst_tokens, int dst_start, const void *src, int src_tokens,
                        int src_start, int count, int B, int C, int accumulate);
    // x[b,i,:] += table[idx[b,i], :] (idx NULL: row i), table [Ntable, C] e.g. a position embedding
    void (*add_rows)(Backend *b, void *x, const void *table, const int32_t *idx, int B, int n, int C);
    // out[r,:] = row[:] for r < R (mask tokens)
    void (*broadcast_row)(Backend *b, void *out, const void *row, int R, int C);
    // drow[C] += sum_r dout[r,:]
    void (*sum_rows)(Backend *b, void *drow, const void *dout, int R, int C);
    // clips [B,T,H,W,3] -> patches [B, (T/tt)*(H/p)*(W/p), 3*tt*p*p], tokens (t,h,w) raster, patch vectors
    // ordered (c, kt, kh, kw) to match a Conv3d weight [D,3,tt,p,p] flattened.
    void (*patchify)(Backend *b, void *patches, const void *clips, int B, int T, int H, int W, int tt, int p);

    // ---- loss and statistics
    // loss_out[0] (stat) += mean_i |pred_i - target_i| * loss_scale over n elements;
    // dpred[n] += sign(pred - target) * grad_scale / n. Either output may be NULL.
    void (*l1_loss)(Backend *b, void *loss_out, void *dpred, const void *pred, const void *target, size_t n,
                    double loss_scale, double grad_scale);
    // out[0] (stat) += scale * the mean over columns of the standard deviation of each column across the R rows of
    // x[R,C] (the collapse signal)
    void (*mean_column_std)(Backend *b, void *out, const void *x, int R, int C, double scale);

    // ---- optimizer (master-type flat buffers). Norms stay on the device: no host round trip inside a step.
    void (*sum_squares)(Backend *b, void *out, const void *x, size_t n);  // out[0] (stat) = sum x^2
    // torch's clip_grad_norm_: x *= max_norm / (sqrt(sumsq[0]) + 1e-6) when that is below 1 (sumsq: a stat slot)
    void (*clip_by_norm)(Backend *b, void *x, size_t n, const void *sumsq, double max_norm);
    // flag[0] (stat) = 1 when any of x[0..n) (stats) is NaN or infinite, else 0: the step's numerical-fault check
    // over the losses and gradient sums of squares, so that one flag guards the update without a host round trip.
    void (*nonfinite_flag)(Backend *b, void *flag, const void *x, int n);
    // PyTorch AdamW: p -= lr*wd*p; m,v moments; p -= lr * mhat / (sqrt(vhat) + eps); step counts from 1.
    // working[n] (esize) receives the new parameters in the same pass (NULL or == param: none).
    // skip: a stat slot (nonfinite_flag's) read on the device; non-zero: nothing is changed. NULL: never skip.
    void (*adamw)(Backend *b, void *param, void *working, const void *grad, void *m, void *v, size_t n, double lr,
                  double beta1, double beta2, double eps, double weight_decay, long step, const void *skip);
    // target = momentum * target + (1 - momentum) * source; working (esize) likewise as adamw's, one launch; skip
    // as adamw's.
    void (*ema)(Backend *b, void *target, void *working, const void *source, size_t n, double momentum,
                const void *skip);
    // adamw, then ema of the new parameters into target (target = momentum * target + (1 - momentum) * param), in
    // one pass that reads the new weights once; the same results as the two ops. target and target_working [n] are
    // the slices that match param's (working, target_working as adamw's and ema's); skip guards both.
    // NULL: the backend has no such pass (the caller runs adamw, then one ema over the whole encoder).
    void (*adamw_ema)(Backend *b, void *param, void *working, const void *grad, void *m, void *v, size_t n, double lr,
                      double beta1, double beta2, double eps, double weight_decay, long step, void *target,
                      void *target_working, double momentum, const void *skip);
    // working copy (esize) from master (msize); a no-op alias on the CPU where both are the same buffer
    void (*cast_params)(Backend *b, void *working, const void *master, size_t n);
};

// The allocations a backend holds (pointer, bytes as asked), behind Backend.memory: a few dozen, released rarely.
typedef struct {
    struct {
        void *p;
        size_t bytes;
    } *live;                   // [n]
    size_t n, cap, now, peak;  // entries; bytes held now and the most at once
} AllocLedger;
void alloc_ledger_add(AllocLedger *l, void *p, size_t bytes);
void alloc_ledger_remove(AllocLedger *l, void *p);  // nothing for a pointer it does not hold (NULL)

// CPU backends: double_precision 0 = fp32 (training), 1 = fp64 (finite-difference tests). threads 0 = all cores.
Backend *backend_cpu_create(int double_precision, int threads);
void backend_destroy(Backend *b);

// The compositions behind matmul_fwd_gelu / matmul_bwd_dgelu (backend.h's definition of what they compute).
static inline void backend_matmul_fwd_gelu(Backend *b, void *out, void *pre, const void *inp, const void *w,
                                           const void *bias, int M, int N, int K) {
    b->matmul_fwd(b, pre, inp, w, bias, M, N, K);
    b->gelu_fwd(b, out, pre, (size_t)M * N);
}
static inline void backend_matmul_bwd_dgelu(Backend *b, void *d_pre, void *dw, void *dbias, void *scratch,
                                            const void *dout, const void *inp, const void *w, const void *pre, int M,
                                            int N, int K) {
    const size_t n = (size_t)M * K;  // d_pre, scratch, pre: [M,K]
    b->zero(b, scratch, n * b->esize);
    b->matmul_bwd(b, scratch, dw, dbias, dout, inp, w, M, N, K);
    b->zero(b, d_pre, n * b->esize);
    b->gelu_bwd(b, d_pre, pre, scratch, n);
}

// The composition behind add_layernorm_fwd (backend.h's definition of what it computes).
static inline void backend_add_layernorm_fwd(Backend *b, void *sum, void *out, void *mean, void *rstd, const void *x,
                                             const void *y, const void *w, const void *bias, int R, int C,
                                             double eps) {
    b->add(b, sum, x, y, (size_t)R * C);
    b->layernorm_fwd(b, out, mean, rstd, sum, w, bias, R, C, eps);
}

// alloc naming what the memory is for ("activation arena"), so that running out of it says what to lower.
static inline void *backend_alloc(Backend *b, const char *what, size_t bytes) {
    b->alloc_what = what;
    void *p = b->alloc(b, bytes);
    b->alloc_what = NULL;
    return p;
}
