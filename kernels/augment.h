// augment.h: the loader's augmentation on the GPU (kernels/augment.cu), for frames decoded there by nvJPEG
// (host/nvjpeg_decode.h). The CPU reference is sample_render (host/loader.c): the same bilinear taps
// (align_corners = false, computed in float), the same mirror and the same per-channel gain and bias, with every
// float operation rounded alone (no fused multiply-add), so both give the same floats.
#pragma once
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int y, x, h, w;  // crop in stored pixels
    int flip;        // mirror left-right
} AugmentCrop;

// frames (B * F, H, W, 3) uint8, device: sample b's frame f at b * F + f. crops [B], device. out (B, F, S, S, 3)
// float, device: each crop resized to S x S, mirrored when flipped, then v * gain[c] + bias[c] per channel.
// Enqueued on stream (a cudaStream_t); never synchronises.
void cuda_augment_render(void *stream, float *out, const uint8_t *frames, const AugmentCrop *crops, int B, int F,
                         int H, int W, int S, const float gain[3], const float bias[3]);

#ifdef __cplusplus
}
#endif
