// rope.cu: V-JEPA 2's 3D rotary position embedding on bf16 qkv, in place; CPU reference kernels/rope_cpu.c (which
// states the formula and why the backward is the transpose). One block per token (grid-stride): the block computes
// the token's 3S cosines and sines once in shared memory (in double, rounded to fp32, as the CPU's fp32 path), then
// its threads rotate the (q|k, head, pair) items, reading and writing each neighbour pair as one bf16x2.
#include "cuda_common.cuh"
#include "rope_cpu.h"

#define ROPE_THREADS 128
#define ROPE_MAX_ROT 384  // 3S for head dims up to 256 (S = 2*((hd/3)/2) <= 84)

static __global__ void rope_qk_kernel(bf16 *__restrict__ qkv, const int32_t *__restrict__ pos, long tokens, int N,
                                      int H, int hd, int S, int grid_h, int grid_w, int transpose) {
    __shared__ float cs[ROPE_MAX_ROT], sn[ROPE_MAX_ROT];
    const int K = S / 2, rot = 3 * S, pairs = rot / 2, items = 2 * H * pairs;
    for (long t = blockIdx.x; t < tokens; t += gridDim.x) {
        const int32_t id = pos ? pos[t] : (int32_t)(t % N);
        if (id < 0) {
            if (threadIdx.x == 0) printf("internal error: cuda_rope_qk: negative position %d at token %ld\n", id, t);
            __trap();
        }
        int coord[3];
        rope_coords(id, grid_h, grid_w, coord);
        __syncthreads();  // the previous token's readers are done with cs, sn
        for (int j = threadIdx.x; j < rot; j += blockDim.x) {
            const int a = j / S, k = (j % S) % K;  // tiled: dim j of a segment uses frequency j mod K
            double sd, cd;
            sincos((double)coord[a] * pow(10000.0, -(double)k / K), &sd, &cd);
            cs[j] = (float)cd;
            sn[j] = (float)sd;
        }
        __syncthreads();
        bf16 *tok = qkv + (size_t)t * 3 * H * hd;  // [3,H,hd]: q then k rotate
        for (int it = threadIdx.x; it < items; it += blockDim.x) {
            const int v = it / pairs, e = 2 * (it % pairs);  // v: q/k head 0..2H-1; e: even dim of the pair
            __nv_bfloat162 *p = reinterpret_cast<__nv_bfloat162 *>(tok + (size_t)v * hd + e);
            const float2 x = __bfloat1622float2(*p);
            float2 y;
            if (!transpose) {
                y.x = x.x * cs[e] - x.y * sn[e];
                y.y = x.y * cs[e + 1] + x.x * sn[e + 1];
            } else {
                y.x = x.x * cs[e] + x.y * sn[e + 1];
                y.y = x.y * cs[e + 1] - x.x * sn[e];
            }
            *p = __float22bfloat162_rn(y);
        }
    }
}

extern "C" void cuda_rope_qk(cuda_stream s, bf16_bits *qkv, const int32_t *pos, int B, int N, int H, int hd,
                             int grid_h, int grid_w, int transpose) {
    const int S = rope_axis_dims(hd);
    if (B <= 0 || N <= 0 || H <= 0 || S == 0) return;
    if (3 * S > ROPE_MAX_ROT || hd % 2 || grid_h <= 0 || grid_w <= 0) {  // odd hd: pairs not 4-byte aligned
        fprintf(stderr, "internal error: %s:%d: cuda_rope_qk: head dim %d (even, at most %d rotated dims) or grid "
                "%dx%d\n", __FILE__, __LINE__, hd, ROPE_MAX_ROT, grid_h, grid_w);
        exit(1);
    }
    const long tokens = (long)B * N;
    const unsigned grid = tokens < CUDA_GRID_CAP * 4 ? (unsigned)tokens : CUDA_GRID_CAP * 4;
    rope_qk_kernel<<<grid, ROPE_THREADS, 0, s>>>(BF16(qkv), pos, tokens, N, H, hd, S, grid_h, grid_w, transpose);
    CUDA_CHECK_LAUNCH();
}
