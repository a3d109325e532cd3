// backend_cuda.h: the CUDA Backend (backend.h) over the launchers of kernels/cuda_ops.h, and the device queries the
// trainer makes before choosing a backend. Every function here exists in every build: without CUDA (no nvcc at
// build time) cuda_device_count() returns 0 with the reason, so callers need no #ifdef.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "backend.h"

// Usable CUDA devices; 0 when there are none, with the reason in why[n] (no GPU, no driver, built without CUDA).
int cuda_device_count(char *why, size_t n);
// One line naming GPU `device`: name, compute capability, memory, CUDA runtime and driver, cuBLASLt, cuDNN and NCCL
// versions (provenance and the start-up banner).
void backend_cuda_describe(int device, char *buf, size_t n);
// The CUDA backend on GPU `device`: bf16 activations and working weights (esize 2), fp32 statistics (ssize 4), fp32
// master weights, gradients and optimizer state (msize 4). deterministic: fixed GEMM algorithms, no in-place split-K.
// Exits 2 naming the GPU when its compute capability is below 8.0.
Backend *backend_cuda_create(int device, int deterministic);
// model.attention: cudnn. From now on attention runs cuDNN's fused kernels (host/cudnn_attention.h) for every call
// cuDNN supports, our kernels for the rest (frame-causal masks, head dims cuDNN rejects), decided per shape at its
// first call and printed once when ours run; what: the cuDNN version and device. Exits 2 when cuDNN is not built in or
// cannot start. Not bitwise reproducible (cuDNN's backward adds dQ with atomics).
void backend_cuda_use_cudnn_attention(Backend *b, char *what, size_t n);
// The CUDA libraries this binary was compiled against ("none" without CUDA), for jepa --version.
void cuda_build_info(char *buf, size_t n);
// The compute stream of a CUDA backend (a cudaStream_t), on which every op is queued: timers record events there.
struct CUstream_st *backend_cuda_stream(Backend *b);
// Device memory the backend holds now and the most it has held (its own cudaMalloc calls: parameters, optimizer
// state, arena, input buffers, attention workspace; not cuBLASLt's workspace or the CUDA context).
void backend_cuda_memory(Backend *b, size_t *current, size_t *peak);

// bf16 on the host: round to nearest even from double (one rounding, not two through float), and exact back.
uint16_t bf16_from_double(double x);
double bf16_to_double(uint16_t h);
