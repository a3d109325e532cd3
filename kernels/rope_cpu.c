#ifndef CPU_GENERIC_BODY
// rope_cpu.c: V-JEPA 2's 3D rotary position embedding, applied to q and k of the fused qkv after the projection.
//
// Per head, dims [0,S) rotate by the token's time index, [S,2S) by its row, [2S,3S) by its column (S =
// rope_axis_dims(hd)); the rest pass through. Within one axis segment of S dims, with K = S/2,
//     omega_k = 10000^(-k/K),  angle_j = p * omega_(j mod K)           (j < S: the sin/cos are tiled, not interleaved)
//     out_2i   = x_2i   cos(angle_2i)   - x_2i+1 sin(angle_2i)
//     out_2i+1 = x_2i+1 cos(angle_2i+1) + x_2i   sin(angle_2i+1)      (the rotation pairs neighbours)
// which is what the official code computes (its comment calls the tiling a bug, kept for the released weights).
// The two angles of a pair differ, so the map is not orthogonal: the backward is its transpose, not its inverse:
//     g_2i   <- g_2i cos(angle_2i) + g_2i+1 sin(angle_2i+1)
//     g_2i+1 <- g_2i+1 cos(angle_2i+1) - g_2i sin(angle_2i)
// Angles and their sin/cos are computed in double once per token and shared by the 2H heads of q and k.
#include <math.h>

#include "common.h"
#include "rope_cpu.h"

// Below this many tokens a parallel region costs more than the loop.
#define ROPE_PARALLEL_MIN 64
#define ROPE_MAX_HEAD_DIM 1024

// cos and sin of the 3S rotated dims of a token at grid coordinates coord.
static void rope_angles(const int coord[3], int S, double *c, double *s) {
    const int K = S / 2;
    for (int a = 0; a < 3; a++)
        for (int j = 0; j < S; j++) {
            const double angle = coord[a] * pow(10000.0, -(double)(j % K) / K);
            c[a * S + j] = cos(angle);
            s[a * S + j] = sin(angle);
        }
}

#define CPU_GENERIC_SELF "rope_cpu.c"
#include "cpu_generic.h"
#else

// One head's q or k vector x [hd]: the 3S rotated dims, forward or transposed.
static void FN(rope_vector)(real *x, const real *c, const real *s, int S, int transpose) {
    for (int e = 0; e < 3 * S; e += 2) {
        const real x0 = x[e], x1 = x[e + 1];
        if (!transpose) {
            x[e] = x0 * c[e] - x1 * s[e];
            x[e + 1] = x1 * c[e + 1] + x0 * s[e + 1];
        } else {
            x[e] = x0 * c[e] + x1 * s[e + 1];
            x[e + 1] = x1 * c[e + 1] - x0 * s[e];
        }
    }
}

void FN(rope_qk)(real *qkv, const int32_t *pos, int B, int N, int H, int hd, int grid_h, int grid_w, int transpose) {
    const int S = rope_axis_dims(hd);
    if (S == 0) return;
    if (hd > ROPE_MAX_HEAD_DIM) die_internal("rope_qk: head dim %d above %d", hd, ROPE_MAX_HEAD_DIM);
    if (grid_h <= 0 || grid_w <= 0) die_internal("rope_qk: grid %dx%d", grid_h, grid_w);
#pragma omp parallel for schedule(static) if ((long)B * N >= ROPE_PARALLEL_MIN)
    for (long t = 0; t < (long)B * N; t++) {
        const int32_t id = pos ? pos[t] : (int32_t)(t % N);
        if (id < 0) die_internal("rope_qk: negative position %d at token %ld", id, t);
        int coord[3];
        rope_coords(id, grid_h, grid_w, coord);
        double cd[ROPE_MAX_HEAD_DIM], sd[ROPE_MAX_HEAD_DIM];
        rope_angles(coord, S, cd, sd);
        real c[ROPE_MAX_HEAD_DIM], s[ROPE_MAX_HEAD_DIM];  // rounded once to the working type, as the official code
        for (int j = 0; j < 3 * S; j++) c[j] = (real)cd[j], s[j] = (real)sd[j];
        real *tok = qkv + (size_t)t * 3 * H * hd;  // [3,H,hd]: q then k
        for (int v = 0; v < 2 * H; v++) FN(rope_vector)(tok + (size_t)v * hd, c, s, S, transpose);
    }
}

#endif
