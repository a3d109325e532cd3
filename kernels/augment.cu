// augment.cu: see augment.h. One thread per output pixel (its three channels); the bilinear taps are recomputed
// per pixel (a few float operations) rather than tabled, and every operation is an explicitly rounded intrinsic so
// that nvcc cannot contract it into an FMA the CPU reference does not do.
#include "augment.h"
#include "cuda_common.cuh"

// Source taps of output o along an axis of `in` crop pixels resized to `out`, as host/loader.c's taps_for.
__device__ static void tap(int o, int in, int out, int *lo, int *hi, float *frac) {
    const float scale = __fdiv_rn((float)in, (float)out);
    float src = __fsub_rn(__fmul_rn(__fadd_rn((float)o, 0.5f), scale), 0.5f);
    if (src < 0) src = 0;
    *lo = (int)src;
    *hi = *lo < in - 1 ? *lo + 1 : *lo;
    *frac = __fsub_rn(src, (float)*lo);
}

__device__ static float lerp_bytes(uint8_t a, uint8_t b, float f) {
    return __fadd_rn((float)a, __fmul_rn(f, (float)((int)b - (int)a)));
}

struct Norm {
    float gain[3], bias[3];
};

__global__ void augment_render_kernel(float *out, const uint8_t *frames, const AugmentCrop *crops, int F, int H,
                                      int W, int S, Norm norm, size_t pixels) {
    for (size_t p = blockIdx.x * (size_t)blockDim.x + threadIdx.x; p < pixels; p += (size_t)gridDim.x * blockDim.x) {
        const int xo = (int)(p % S), yo = (int)(p / S % S);
        const size_t frame = p / ((size_t)S * S);
        const AugmentCrop c = crops[frame / F];
        int y0, y1, x0, x1;
        float fy, fx;
        tap(yo, c.h, S, &y0, &y1, &fy);
        tap(c.flip ? S - 1 - xo : xo, c.w, S, &x0, &x1, &fx);
        const uint8_t *base = frames + frame * H * W * 3;
        const uint8_t *top = base + ((size_t)(c.y + y0) * W + c.x) * 3, *bottom = base + ((size_t)(c.y + y1) * W + c.x) * 3;
        float *o = out + p * 3;
        for (int ch = 0; ch < 3; ch++) {
            const float t = lerp_bytes(top[3 * x0 + ch], top[3 * x1 + ch], fx);
            const float u = lerp_bytes(bottom[3 * x0 + ch], bottom[3 * x1 + ch], fx);
            const float v = __fadd_rn(t, __fmul_rn(fy, __fsub_rn(u, t)));
            o[ch] = __fadd_rn(__fmul_rn(v, norm.gain[ch]), norm.bias[ch]);
        }
    }
}

extern "C" void cuda_augment_render(void *stream, float *out, const uint8_t *frames, const AugmentCrop *crops, int B,
                                    int F, int H, int W, int S, const float gain[3], const float bias[3]) {
    Norm norm;
    for (int c = 0; c < 3; c++) norm.gain[c] = gain[c], norm.bias[c] = bias[c];
    const size_t pixels = (size_t)B * F * S * S;
    const int threads = 256;
    augment_render_kernel<<<cuda_grid_1d(pixels, threads), threads, 0, (cudaStream_t)stream>>>(out, frames, crops, F, H,
                                                                                              W, S, norm, pixels);
    CUDA_CHECK_LAUNCH();
}
