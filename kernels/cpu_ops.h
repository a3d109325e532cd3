// cpu_ops.h: the CPU kernels behind host/backend_cpu.c, each in a float (_f32) and a double (_f64) version.
// The declarations below are written once with `real` and FN(name) and expanded for both types by
// cpu_generic.h: FN(matmul_fwd) declares matmul_fwd_f32 (real = float) and matmul_fwd_f64 (real = double).
// Semantics are those of host/backend.h; gradient outputs accumulate (+=). All ops are OpenMP-parallel and bitwise
// deterministic: reductions run in a fixed order that depends on neither scheduling nor the thread count (only
// OpenBLAS GEMM results may depend on the thread count).
#ifdef CPU_GENERIC_BODY

// ---- matmul_cpu.c
void FN(matmul_fwd)(real *out,         // [M,N] = inp @ w^T + bias
                    const real *inp,   // [M,K]
                    const real *w,     // [N,K]
                    const real *bias,  // [N] or NULL
                    int M, int N, int K);
void FN(matmul_bwd)(real *dinp,        // [M,K] += dout @ w, or NULL
                    real *dw,          // [N,K] += dout^T @ inp, or NULL
                    real *dbias,       // [N] += column sums of dout, or NULL
                    const real *dout,  // [M,N]
                    const real *inp,   // [M,K] (read only when dw is set)
                    const real *w,     // [N,K] (read only when dinp is set)
                    int M, int N, int K);

// ---- layernorm_cpu.c (biased variance, rstd = 1/sqrt(var + eps); w and bias NULL = non-affine)
void FN(layernorm_fwd)(real *out,         // [R,C]
                       real *mean,        // [R] or NULL (forward-only callers)
                       real *rstd,        // [R] or NULL
                       const real *inp,   // [R,C]
                       const real *w,     // [C] or NULL
                       const real *bias,  // [C] or NULL
                       int R, int C, double eps);
void FN(layernorm_bwd)(real *dinp,        // [R,C] +=, or NULL
                       real *dw,          // [C] +=, or NULL
                       real *dbias,       // [C] +=, or NULL
                       const real *dout,  // [R,C]
                       const real *inp,   // [R,C]
                       const real *w,     // [C] or NULL (non-affine)
                       const real *mean,  // [R] from the forward
                       const real *rstd,  // [R] from the forward
                       int R, int C);

// ---- attention_cpu.c (softmax(q k^T / sqrt(hd)) v per head; frame_tokens > 0: j visible iff j/ft <= i/ft)
void FN(attention_fwd)(real *out,        // [B,N,H,hd]
                       real *lse,        // [B,H,N] log-sum-exp of the scaled scores, or NULL (forward only)
                       const real *qkv,  // [B,N,3,H,hd]
                       int B, int N, int H, int hd, int frame_tokens);
void FN(attention_bwd)(real *dqkv,       // [B,N,3,H,hd] +=
                       const real *dout, // [B,N,H,hd]
                       const real *qkv,  // [B,N,3,H,hd]
                       const real *out,  // [B,N,H,hd] from the forward
                       const real *lse,  // [B,H,N] from the forward
                       int B, int N, int H, int hd, int frame_tokens);

// ---- elementwise_cpu.c
void FN(gelu_fwd)(real *out,        // [n] exact erf GELU
                  const real *inp,  // [n]
                  size_t n);
void FN(gelu_bwd)(real *dinp,       // [n] +=
                  const real *inp,  // [n]
                  const real *dout, // [n]
                  size_t n);
void FN(add)(real *out,      // [n] = x + y (may alias x or y)
             const real *x,  // [n]
             const real *y,  // [n]
             size_t n);
void FN(accumulate)(real *y,        // [n] += x
                    const real *x,  // [n]
                    size_t n);
void FN(scale)(real *x,  // [n] *= factor
               double factor, size_t n);
void FN(gather_tokens)(real *out,           // [B,n,C] = inp[b, idx[b,i], :]
                       const real *inp,     // [B,Nsrc,C]
                       const int32_t *idx,  // [B,n] in [0, Nsrc)
                       int B, int n, int Nsrc, int C);
void FN(scatter_add_tokens)(real *dinp,          // [B,Nsrc,C] rows idx[b,i] += dout[b,i,:] (repeats add up)
                            const real *dout,    // [B,n,C]
                            const int32_t *idx,  // [B,n] in [0, Nsrc)
                            int B, int n, int Nsrc, int C);
void FN(copy_tokens)(real *dst,        // [B,dst_tokens,C] rows dst_start.. (=, or += when accumulate)
                     int dst_tokens, int dst_start,
                     const real *src,  // [B,src_tokens,C] rows src_start..; must not overlap dst
                     int src_tokens, int src_start, int count, int B, int C, int accumulate);
void FN(add_rows)(real *x,              // [B,n,C] += table rows
                  const real *table,    // [Ntable,C]
                  const int32_t *idx,   // [B,n] rows of table, or NULL for row i
                  int B, int n, int C);
void FN(broadcast_row)(real *out,        // [R,C] every row = row
                       const real *row,  // [C]
                       int R, int C);
void FN(sum_rows)(real *drow,        // [C] += sum over rows of dout
                  const real *dout,  // [R,C]
                  int R, int C);
void FN(patchify)(real *patches,      // [B, (T/tt)*(H/p)*(W/p), 3*tt*p*p], vectors ordered (c, kt, kh, kw)
                  const real *clips,  // [B,T,H,W,3]
                  int B, int T, int H, int W, int tt, int p);

// ---- loss_cpu.c
void FN(l1_loss)(real *loss_out,     // [1] += mean|pred - target| * loss_scale, or NULL
                 real *dpred,        // [n] += sign(pred - target) * grad_scale / n, or NULL
                 const real *pred,   // [n]
                 const real *target, // [n]
                 size_t n, double loss_scale, double grad_scale);
double FN(mean_column_std)(const real *x,  // [R,C]: population std of each column, averaged over columns
                           int R, int C);

// ---- optim_cpu.c (flat master buffers)
double FN(sum_squares)(const real *x,  // [n], summed in double
                       size_t n);
void FN(scale_master)(real *x,  // [n] *= factor
                      double factor, size_t n);
void FN(adamw)(real *param,       // [n]
               const real *grad,  // [n]
               real *m,           // [n] first moment
               real *v,           // [n] second moment
               size_t n, double lr, double beta1, double beta2, double eps, double weight_decay, long step);
void FN(ema)(real *target,        // [n] = momentum * target + (1 - momentum) * source
             const real *source,  // [n]
             size_t n, double momentum);
void FN(adamw_ema)(real *param,       // [n] as adamw
                   const real *grad,  // [n]
                   real *m, real *v,  // [n] moments
                   real *target,      // [n] = momentum * target + (1 - momentum) * the new param
                   size_t n, double lr, double beta1, double beta2, double eps, double weight_decay, long step,
                   double momentum);
void FN(cast_params)(real *working,       // [n] copy of master (nothing when it is master)
                     const real *master,  // [n]
                     size_t n);

#elif !defined(JEPA_CPU_OPS_H)
#define JEPA_CPU_OPS_H
#include <stddef.h>
#include <stdint.h>

#define CPU_GENERIC_SELF "cpu_ops.h"
#include "cpu_generic.h"
#endif
