// cuda_common.cuh: the few helpers every kernels/*.cu file shares. Keep it small; op-specific code stays in its file.
//   CUDA_CHECK(call)       runtime call checked: prints the call, file, line and CUDA's error, exits 1
//   CUDA_CHECK_LAUNCH()    after every <<<>>>: cudaGetLastError, naming the launcher, file and line
//   bf16                   = __nv_bfloat16; BF16(p) / CBF16(p) view cuda_ops.h's bf16_bits pointers as bf16
//   cuda_grid_1d(n, t)     blocks for a grid-stride loop over n elements (capped, a function of n only)
//   cuda_warp_sum_f / _d   warp sum by xor shuffles, cuda_block_sum_d: block sum in a fixed tree (deterministic)
//   CudaScratch            a grow-only device workspace, one per user (see cuda_scratch)
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "cuda_ops.h"

// Exit code 1 = internal error, as die_internal in host/common.h (not includable here: no extern "C" guards).
#define CUDA_CHECK(call)                                                                                  \
    do {                                                                                                  \
        cudaError_t cuda_check_err_ = (call);                                                             \
        if (cuda_check_err_ != cudaSuccess) {                                                             \
            fflush(stdout);                                                                               \
            fprintf(stderr, "internal error: %s:%d: %s failed: %s (%s)\n", __FILE__, __LINE__, #call,     \
                    cudaGetErrorString(cuda_check_err_), cudaGetErrorName(cuda_check_err_));              \
            exit(1);                                                                                      \
        }                                                                                                 \
    } while (0)

// A failed launch (bad configuration) or an earlier asynchronous fault surfacing here. Never synchronises.
#define CUDA_CHECK_LAUNCH()                                                                               \
    do {                                                                                                  \
        cudaError_t cuda_check_err_ = cudaGetLastError();                                                 \
        if (cuda_check_err_ != cudaSuccess) {                                                             \
            fflush(stdout);                                                                               \
            fprintf(stderr, "internal error: %s:%d: kernel launch in %s failed: %s (%s)\n", __FILE__,     \
                    __LINE__, __func__, cudaGetErrorString(cuda_check_err_), cudaGetErrorName(cuda_check_err_)); \
            exit(1);                                                                                      \
        }                                                                                                 \
    } while (0)

typedef __nv_bfloat16 bf16;
#define BF16(p) ((bf16 *)(p))
#define CBF16(p) ((const bf16 *)(p))

// Grid-stride loops: at most CUDA_GRID_CAP blocks (about 4 waves of 256-thread blocks on an H100), so a thread
// walks n / (cap * threads) elements when n is large (n up to ~3e8, indices in size_t). At least one block.
#define CUDA_GRID_CAP 4096
static inline unsigned cuda_grid_1d(size_t n, int threads) {
    const size_t blocks = (n + (size_t)threads - 1) / (size_t)threads;
    return blocks == 0 ? 1u : blocks > CUDA_GRID_CAP ? (unsigned)CUDA_GRID_CAP : (unsigned)blocks;
}

// Sums over the 32 lanes of a full warp; every lane gets the same value (the xor tree is fixed: deterministic).
static __device__ __forceinline__ float cuda_warp_sum_f(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
static __device__ __forceinline__ double cuda_warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Sum of v over the block (blockDim.x a multiple of 32, at most 1024), valid in thread 0. Every thread of the block
// must call it; it synchronises the block twice, so it may be called again right after.
static __device__ __forceinline__ double cuda_block_sum_d(double v) {
    __shared__ double warp_sums[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = cuda_warp_sum_d(v);
    __syncthreads();  // a previous call may still be reading warp_sums
    if (lane == 0) warp_sums[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < warps ? warp_sums[lane] : 0.0;
        v = cuda_warp_sum_d(v);
    }
    return v;
}

// A device workspace that grows on demand (partial sums of the deterministic reductions). Growth is a cudaFree plus
// cudaMalloc, both of which synchronise the device: it happens on the first calls only (the activation shapes of a
// run are bounded), never in a steady-state step. Not thread-safe, one device: the users queue on one stream from
// one host thread, as the backend does.
typedef struct {
    void *ptr;
    size_t bytes;
    int device;
} CudaScratch;

static inline void *cuda_scratch(CudaScratch *s, size_t bytes, const char *who) {
    int device = 0;
    CUDA_CHECK(cudaGetDevice(&device));
    if (s->ptr && device != s->device) {
        fflush(stdout);
        fprintf(stderr, "internal error: %s: workspace allocated on device %d, now called on device %d\n", who,
                s->device, device);
        exit(1);
    }
    if (bytes > s->bytes) {
        if (s->ptr) CUDA_CHECK(cudaFree(s->ptr));
        s->ptr = NULL;
        CUDA_CHECK(cudaMalloc(&s->ptr, bytes));
        s->bytes = bytes;
        s->device = device;
    }
    return s->ptr;
}
