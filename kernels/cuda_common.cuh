// cuda_common.cuh: the few helpers every kernels/*.cu file shares. Keep it small; op-specific code stays in its file.
//   CUDA_CHECK(call)       runtime call checked: prints the call, file, line and CUDA's error, exits 1
//   CUDA_CHECK_LAUNCH()    after every <<<>>>: cudaGetLastError, naming the launcher, file and line
//   bf16                   = __nv_bfloat16; BF16(p) / CBF16(p) view cuda_ops.h's bf16_bits pointers as bf16
//   cuda_grid_1d(n, t)     blocks for a grid-stride loop over n elements (capped, a function of n only)
//   cuda_persistent_grid   blocks of a kernel resident at once on the whole device (SM count x blocks per SM)
//   cuda_bf16x2_bits / cuda_bf16_lo, _hi   pack two floats into two bf16 (round to nearest even), unpack exactly
//   cuda_warp_sum_f / _d   warp sum by xor shuffles, cuda_block_sum_d: block sum in a fixed tree (deterministic)
//   CudaScratch            a grow-only device workspace, one per user (see cuda_scratch)
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

// Blocks of `kernel` (a __global__ function) resident on one multiprocessor at `threads` threads per block and
// `smem` bytes of dynamic shared memory, times the multiprocessor count: the grid of a persistent kernel. Asked of
// the runtime once per (kernel, threads, smem, device), then cached; these are host-side queries (no
// synchronisation). Above 48 KB of dynamic shared memory it also raises the kernel's limit to `smem` first, as
// launching it needs; with any, it asks for the largest shared-memory carveout of L1 (a hint the occupancy query
// and the launches then share). Not thread-safe (one host thread queues the kernels, as for CudaScratch). A kernel
// that cannot run at that shape at all is an internal error.
#define CUDA_GRID_CACHE 64
static inline unsigned cuda_persistent_grid(const void *kernel, int threads, size_t smem) {
    static struct {
        const void *kernel;
        int threads, device;
        size_t smem;
        unsigned grid;
    } cache[CUDA_GRID_CACHE];
    static int used = 0;
    int device = 0;
    CUDA_CHECK(cudaGetDevice(&device));
    for (int i = 0; i < used; i++)
        if (cache[i].kernel == kernel && cache[i].threads == threads && cache[i].smem == smem &&
            cache[i].device == device)
            return cache[i].grid;
    if (smem > 48 * 1024)
        CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    if (smem > 0)  // as much of L1 as shared memory as the blocks need: the grid below must be resident at once
        CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                                        cudaSharedmemCarveoutMaxShared));
    int sms = 0, per_sm = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem));
    if (sms < 1 || per_sm < 1) {
        fflush(stdout);
        fprintf(stderr,
                "internal error: %s:%d: a kernel cannot run with %d threads and %zu bytes of shared memory (%d blocks "
                "per multiprocessor, %d multiprocessors)\n",
                __FILE__, __LINE__, threads, smem, per_sm, sms);
        exit(1);
    }
    const unsigned grid = (unsigned)sms * (unsigned)per_sm;
    if (used < CUDA_GRID_CACHE) {
        cache[used].kernel = kernel, cache[used].threads = threads, cache[used].smem = smem;
        cache[used].device = device, cache[used].grid = grid;
        used++;
    }
    return grid;
}

// Two floats as two bf16 in one 32-bit word (lo in the low half: the first element in memory), each rounded to
// nearest even as __float2bfloat16_rn; and back, exactly (a bf16 is the top half of its float).
static __device__ __forceinline__ uint32_t cuda_bf16x2_bits(float lo, float hi) {
    const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    uint32_t u;
    memcpy(&u, &h, sizeof u);
    return u;
}
static __device__ __forceinline__ float cuda_bf16_lo(uint32_t u) { return __uint_as_float(u << 16); }
static __device__ __forceinline__ float cuda_bf16_hi(uint32_t u) { return __uint_as_float(u & 0xffff0000u); }

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
