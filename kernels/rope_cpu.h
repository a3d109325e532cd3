// rope_cpu.h: V-JEPA 2's 3D rotary position embedding on the CPU (kernels/rope_cpu.c), declared for float (_f32)
// and double (_f64) through cpu_generic.h like cpu_ops.h, plus the type-free helpers the CUDA launcher and the tests
// share. Semantics are those of Backend.rope_qk in host/backend.h.
#ifndef ROPE_CPU_TYPE_FREE
#define ROPE_CPU_TYPE_FREE
#include <stdint.h>
#ifdef __CUDACC__
#define ROPE_HOST_DEVICE __host__ __device__
#else
#define ROPE_HOST_DEVICE
#endif

// Rotated width per axis (time, height, width): 2*((hd/3)/2), as the official RoPEAttention (20 of 64, 26 of 80,
// 10 of 32); the last hd - 3*seg dimensions of each head pass through unrotated.
ROPE_HOST_DEVICE static inline int rope_axis_dims(int hd) { return 2 * ((hd / 3) / 2); }

// Grid coordinates (t, h, w) of a raster token index id = (t*grid_h + h)*grid_w + w.
ROPE_HOST_DEVICE static inline void rope_coords(int32_t id, int grid_h, int grid_w, int coord[3]) {
    const int per_frame = grid_h * grid_w;
    coord[0] = id / per_frame;
    coord[1] = (id % per_frame) / grid_w;
    coord[2] = id % grid_w;
}
#endif

#ifdef CPU_GENERIC_BODY
// In place on the q and k parts of qkv [B,N,3,H,hd]; v is untouched. pos [B,N] int32 raster grid indices, or NULL
// (token n of every sample has index n). transpose 0: the forward map; 1: its transpose (the backward).
void FN(rope_qk)(real *qkv, const int32_t *pos, int B, int N, int H, int hd, int grid_h, int grid_w, int transpose);
#elif !defined(JEPA_ROPE_CPU_H) && !defined(__CUDACC__)
#define JEPA_ROPE_CPU_H
#define CPU_GENERIC_SELF "rope_cpu.h"
#include "cpu_generic.h"
#endif
