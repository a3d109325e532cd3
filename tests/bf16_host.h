// bf16_host.h: bf16 on the host for the GPU tests (round to nearest even, as the kernels' __float2bfloat16_rn).
#pragma once
#include <stdint.h>
#include <string.h>

static inline uint16_t bf16_from_f32(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);  // NaN stays a (quiet) NaN
    u += 0x7fffu + ((u >> 16) & 1u);  // ties to even; overflow carries into the exponent (-> Inf), as IEEE
    return (uint16_t)(u >> 16);
}

static inline float f32_from_bf16(uint16_t h) {
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline int bf16_is_nan(uint16_t h) { return (h & 0x7fffu) > 0x7f80u; }
