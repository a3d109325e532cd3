// cuda_ops.h: launchers of the CUDA kernels, callable from C (host/backend_cuda.c wraps them into the Backend
// interface of host/backend.h). One .cu file per op family pairs with its CPU reference kernels/*_cpu.c:
//   matmul.cu <-> matmul_cpu.c, layernorm.cu <-> layernorm_cpu.c, attention.cu <-> attention_cpu.c,
//   elementwise.cu <-> elementwise_cpu.c, loss.cu <-> loss_cpu.c, optim.cu <-> optim_cpu.c.
//
// Types (the CUDA backend of backend.h): activations and working weights bf16 (esize 2); statistics fp32 (ssize 4);
// master weights, parameter gradients (dw, dbias, LayerNorm dw/dbias, sum_rows), moments and the EMA target fp32
// (msize 4). Pointers are device memory; `bf16` below is __nv_bfloat16 (uint16_t storage seen from C).
// Every launcher enqueues on `stream`, checks the launch (cudaGetLastError, file and line) and never synchronises.
// Gradient outputs accumulate (+=), as on the CPU. Reductions are deterministic: fixed partial sums finished in
// fixed order, no atomics on floating-point values.
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct CUstream_st *cuda_stream;  // = cudaStream_t
typedef uint16_t bf16_bits;               // storage of one __nv_bfloat16

// ---- layernorm.cu
void cuda_layernorm_fwd(cuda_stream s, bf16_bits *out /* [R,C] */, float *mean /* [R] or NULL */,
                        float *rstd /* [R] or NULL */, const bf16_bits *inp /* [R,C] */,
                        const bf16_bits *w /* [C] or NULL */, const bf16_bits *bias /* [C] or NULL */, int R, int C,
                        float eps);
void cuda_layernorm_bwd(cuda_stream s, bf16_bits *dinp /* [R,C] += */, float *dw /* [C] += or NULL */,
                        float *dbias /* [C] += or NULL */, const bf16_bits *dout /* [R,C] */,
                        const bf16_bits *inp /* [R,C] */, const bf16_bits *w /* [C] or NULL */,
                        const float *mean /* [R] */, const float *rstd /* [R] */, int R, int C);

// The residual add and the LayerNorm that reads it in one kernel: sum = bf16(x + y) (as cuda_add), then
// cuda_layernorm_fwd of sum, bit for bit the two launches. Returns 0 when it cannot take the call (C not a multiple
// of 8 or above 2048, a pointer not 16-byte aligned, sum overlapping x or y; nothing queued: the caller runs the
// two ops), 1 when queued. Opt-in JEPA_FUSE_LN=1 until verified on a GPU.
int cuda_add_layernorm_fwd(cuda_stream s, bf16_bits *sum /* [R,C] */, bf16_bits *out /* [R,C] */,
                           float *mean /* [R] or NULL */, float *rstd /* [R] or NULL */, const bf16_bits *x /* [R,C] */,
                           const bf16_bits *y /* [R,C] */, const bf16_bits *w /* [C] or NULL */,
                           const bf16_bits *bias /* [C] or NULL */, int R, int C, float eps);

// ---- attention.cu: qkv [B,N,3,H,hd], out [B,N,H,hd], lse [B,H,N] fp32; hd a multiple of 8 up to 128;
// frame_tokens > 0: frame-causal. The backward is deterministic (no floating-point atomics).
void cuda_attention_fwd(cuda_stream s, bf16_bits *out, float *lse /* or NULL */, const bf16_bits *qkv, int B, int N,
                        int H, int hd, int frame_tokens);
void cuda_attention_bwd(cuda_stream s, bf16_bits *dqkv /* += */, const bf16_bits *dout, const bf16_bits *qkv,
                        const bf16_bits *out, const float *lse, int B, int N, int H, int hd, int frame_tokens);
// Scratch the backward needs (fp32 accumulators, D = rowsum(dout*out)), in bytes; the backend provides it.
size_t cuda_attention_bwd_workspace(int B, int N, int H, int hd);
void cuda_attention_set_workspace(void *workspace, size_t bytes);

// ---- rope.cu: V-JEPA 2's 3D RoPE in place on q and k of qkv [B,N,3,H,hd] (Backend.rope_qk; reference
// kernels/rope_cpu.c). pos [B,N] raster grid indices or NULL (token n at n); transpose 1: the backward.
void cuda_rope_qk(cuda_stream s, bf16_bits *qkv, const int32_t *pos, int B, int N, int H, int hd, int grid_h,
                  int grid_w, int transpose);

// ---- elementwise.cu (n elements, bf16 unless noted)
void cuda_gelu_fwd(cuda_stream s, bf16_bits *out, const bf16_bits *inp, size_t n);
void cuda_gelu_bwd(cuda_stream s, bf16_bits *dinp /* += */, const bf16_bits *inp, const bf16_bits *dout, size_t n);
void cuda_add(cuda_stream s, bf16_bits *out, const bf16_bits *x, const bf16_bits *y, size_t n);  // out may alias
void cuda_accumulate(cuda_stream s, bf16_bits *y, const bf16_bits *x, size_t n);                 // y += x
void cuda_scale(cuda_stream s, bf16_bits *x, float factor, size_t n);
void cuda_gather_tokens(cuda_stream s, bf16_bits *out /* [B,n,C] */, const bf16_bits *inp /* [B,Nsrc,C] */,
                        const int32_t *idx /* [B,n] */, int B, int n, int Nsrc, int C);
// Deterministic even with repeated indices (each (b, column) sums its rows in order).
void cuda_scatter_add_tokens(cuda_stream s, bf16_bits *dinp /* [B,Nsrc,C] += */, const bf16_bits *dout /* [B,n,C] */,
                             const int32_t *idx, int B, int n, int Nsrc, int C);
void cuda_copy_tokens(cuda_stream s, bf16_bits *dst, int dst_tokens, int dst_start, const bf16_bits *src,
                      int src_tokens, int src_start, int count, int B, int C, int accumulate);
void cuda_add_rows(cuda_stream s, bf16_bits *x /* [B,n,C] += */, const bf16_bits *table /* [Ntable,C] */,
                   const int32_t *idx /* [B,n] or NULL */, int B, int n, int C);
void cuda_broadcast_row(cuda_stream s, bf16_bits *out /* [R,C] */, const bf16_bits *row /* [C] */, int R, int C);
void cuda_sum_rows(cuda_stream s, float *drow /* [C] += (fp32 parameter gradient) */, const bf16_bits *dout /* [R,C] */,
                   int R, int C);
void cuda_patchify(cuda_stream s, bf16_bits *patches /* [B,N,3*tt*p*p] */, const bf16_bits *clips /* [B,T,H,W,3] */,
                   int B, int T, int H, int W, int tt, int p);
// float host-side clips converted on the device: out[n] = bf16(in[n])
void cuda_f32_to_bf16(cuda_stream s, bf16_bits *out, const float *in, size_t n);
void cuda_bf16_to_f32(cuda_stream s, float *out, const bf16_bits *in, size_t n);

// ---- loss.cu
void cuda_l1_loss(cuda_stream s, float *loss_out /* [1] += or NULL */, bf16_bits *dpred /* [n] += or NULL */,
                  const bf16_bits *pred, const bf16_bits *target, size_t n, float loss_scale, float grad_scale);
void cuda_mean_column_std(cuda_stream s, float *out /* [1] += scale * value */, const bf16_bits *x /* [R,C] */, int R,
                          int C, float scale);

// ---- optim.cu (fp32 flat buffers)
void cuda_sum_squares(cuda_stream s, float *out /* [1] = */, const float *x, size_t n);
void cuda_clip_by_norm(cuda_stream s, float *x, size_t n, const float *sumsq /* [1] */, float max_norm);
// flag[0] = 1 when any of x[0..n) is NaN or infinite, else 0
void cuda_nonfinite_flag(cuda_stream s, float *flag /* [1] */, const float *x /* [n] */, int n);
// skip: [1] read on the device, non-zero: the launch changes nothing; NULL: never skip
void cuda_adamw(cuda_stream s, float *param, bf16_bits *working /* or NULL */, const float *grad, float *m, float *v,
                size_t n, float lr, float beta1, float beta2, float eps, float weight_decay, long step,
                const float *skip /* [1] or NULL */);
void cuda_ema(cuda_stream s, float *target, bf16_bits *working /* or NULL */, const float *source, size_t n,
              float momentum, const float *skip /* [1] or NULL */);
// cuda_adamw, then cuda_ema of the new parameters into target (target_working its bf16 copy), in one pass:
// the same results bit for bit (backend.h adamw_ema; opt-in JEPA_FUSE_EMA=1 until verified on a GPU)
void cuda_adamw_ema(cuda_stream s, float *param, bf16_bits *working /* or NULL */, const float *grad, float *m,
                    float *v, float *target, bf16_bits *target_working /* or NULL */, size_t n, float lr, float beta1,
                    float beta2, float eps, float weight_decay, long step, float momentum,
                    const float *skip /* [1] or NULL */);
void cuda_cast_params(cuda_stream s, bf16_bits *working, const float *master, size_t n);

// ---- matmul.cu (cuBLASLt, bf16 in, fp32 accumulate; fixed algorithms when deterministic)
void cuda_matmul_init(int deterministic);  // handles and workspace; once per process
void cuda_matmul_fwd(cuda_stream s, bf16_bits *out /* [M,N] */, const bf16_bits *inp /* [M,K] */,
                     const bf16_bits *w /* [N,K] */, const bf16_bits *bias /* [N] or NULL */, int M, int N, int K);
void cuda_matmul_bwd(cuda_stream s, bf16_bits *dinp /* [M,K] += or NULL */, float *dw /* [N,K] += or NULL */,
                     float *dbias /* [N] += or NULL */, const bf16_bits *dout /* [M,N] */, const bf16_bits *inp,
                     const bf16_bits *w, int M, int N, int K);
// cuBLASLt's GELU epilogues (tanh-approximate GELU: opt-in, see matmul.cu). Return 0 when the shape, pointers or
// cuBLASLt cannot take them (nothing queued: the caller runs the unfused ops), 1 when queued.
// pre = inp @ w^T + bias, out = gelu_tanh(pre)
int cuda_matmul_fwd_gelu(cuda_stream s, bf16_bits *out /* [M,N] */, bf16_bits *pre /* [M,N] */,
                         const bf16_bits *inp /* [M,K] */, const bf16_bits *w /* [N,K] */,
                         const bf16_bits *bias /* [N] or NULL */, int M, int N, int K);
// d_pre = gelu_tanh'(pre) * (dout @ w) WRITTEN; dw += dout^T @ inp, dbias += column sums of dout (either NULL)
int cuda_matmul_bwd_dgelu(cuda_stream s, bf16_bits *d_pre /* [M,K] = */, float *dw /* [N,K] += or NULL */,
                          float *dbias /* [N] += or NULL */, const bf16_bits *dout /* [M,N] */,
                          const bf16_bits *inp /* [M,K] */, const bf16_bits *w /* [N,K] */,
                          const bf16_bits *pre /* [M,K] */, int M, int N, int K);

#ifdef __cplusplus
}
#endif
