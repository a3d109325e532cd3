// cudnn_attention.h: cuDNN's fused attention (SDPA, the flash-attention engines of cuDNN 9) called from C through
// the backend graph API: the benchmark reference for kernels/attention.cu and, with model.attention: cudnn, the
// CUDA backend's attention where it applies (host/backend_cuda.c decides per call).
// Same layout and meaning as the cuda_attention_* launchers of cuda_ops.h, without frame-causal masks:
//   qkv [B,N,3,H,hd] bf16 (PyTorch's fused qkv Linear output), out [B,N,H,hd] bf16, lse [B,H,N] fp32 natural-log
//   log-sum-exp of the scaled scores, scale 1/sqrt(hd). hd must be a multiple of 8 (cuDNN's rule; the largest
//   supported is 128 or 256 depending on the GPU and cuDNN version) and every pointer 16-byte aligned.
// Differences from cuda_ops.h:
//   - cudnn_attention_bwd WRITES dqkv (=), it does not accumulate (+=) into it;
//   - cuDNN's default backward accumulates dQ with floating-point atomics: dq may differ in the last bit from run to
//     run (dk and dv do not);
//   - one device per process (the current device at the first call), one stream at a time (a single workspace is
//     shared by every call), one host thread.
// Graphs and execution plans are built on first use of a shape and cached (a table of 256 plans, least recently used
// out); building one can take a second (cuDNN compiles some engines at run time). One device workspace serves every
// plan, grown (with a device synchronisation) to the largest shape seen. A shape cuDNN cannot run makes
// cudnn_attention_fwd/bwd exit with cuDNN's status; ask cudnn_attention_prepare first to get it as a return value.
// Without JEPA_CUDA and JEPA_HAVE_CUDNN (the Makefile defines them when nvcc and cuDNN are found) every function
// reports "not built" (fwd/bwd exit).
#pragma once
#include <stddef.h>

#include "cuda_ops.h"

// 1 when built with cuDNN and a cuDNN handle can be made on a GPU (why: "cuDNN 9.14.0 (headers 9.14.0), device 0"),
// else 0 and the reason in why. why may be NULL.
int cudnn_attention_available(char *why, size_t n);

// Builds (or finds) the forward and backward plans of a shape. 1: ready (why: the engines chosen and their
// workspaces); 0: cuDNN does not support the shape on this GPU (why: the step and cuDNN's status); -1: an error
// (why: the step, the call, cuDNN's status and message). why may be NULL.
int cudnn_attention_prepare(int B, int N, int H, int hd, char *why, size_t n);

// out = softmax(q k^T / sqrt(hd)) v per (b,h); lse may be NULL (a scratch buffer takes the statistics).
void cudnn_attention_fwd(cuda_stream s, bf16_bits *out /* [B,N,H,hd] */, float *lse /* [B,H,N] or NULL */,
                         const bf16_bits *qkv /* [B,N,3,H,hd] */, int B, int N, int H, int hd);

// dqkv = the gradients of q, k, v, WRITTEN (not accumulated), from dout, the forward's inputs, out and lse.
void cudnn_attention_bwd(cuda_stream s, bf16_bits *dqkv /* [B,N,3,H,hd] = */, const bf16_bits *dout /* [B,N,H,hd] */,
                         const bf16_bits *qkv /* [B,N,3,H,hd] */, const bf16_bits *out /* [B,N,H,hd] */,
                         const float *lse /* [B,H,N] */, int B, int N, int H, int hd);

// Frees every plan, the workspace and the handle (synchronises the device); a later call starts afresh.
void cudnn_attention_release(void);

// Plans built and live plans evicted (the table was full) since the start or the last release: a run whose
// evictions keep growing rebuilds plans every step.
void cudnn_attention_stats(long *built, long *evicted);

// The plan table's choice of a slot for a new plan among n, given each slot's last use (0: free): the first free slot,
// else the least recently used. Pure C in every build, for tests. JEPA_CUDNN_PLANS=k (2..256) shrinks the table.
int cudnn_plan_victim(const unsigned long long *last_use, int n);
