// nvjpeg_decode.h: JPEG store samples decoded and augmented on the GPU: nvJPEG's batched decoder (the hardware
// JPEG engines where the GPU has them, A100/H100; its CUDA decoder elsewhere) writes RGB frames to device
// memory, and kernels/augment.cu crops, resizes, flips and normalises them there, as sample_render does on the
// CPU. Built only where the toolkit has nvJPEG (nvjpeg.h and libnvjpeg: the Makefile defines JEPA_HAVE_NVJPEG);
// elsewhere nvjpeg_available says why not and the CPU path (libjpeg-turbo in the loader threads) is used.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "loader.h"

typedef struct NvjpegDecoder NvjpegDecoder;

// 1 when this build has nvJPEG and a CUDA device is present; else 0 with the reason in why.
int nvjpeg_available(char *why, size_t why_size);

// A decoder for frames of height x width; dies (internal error) if nvJPEG cannot start on device 0.
NvjpegDecoder *nvjpeg_decoder_create(int height, int width);
// "nvjpeg hardware" or "nvjpeg cuda": which nvJPEG backend decodes.
const char *nvjpeg_decoder_backend(const NvjpegDecoder *d);
// count JPEG frames (host bytes data[i], bytes[i]) -> device rgb (count, height, width, 3) uint8, on stream.
// Returns after the decode is enqueued; a damaged frame is an internal error naming nvJPEG's status.
void nvjpeg_decode_batch(NvjpegDecoder *d, const uint8_t *const *data, const size_t *bytes, int count,
                         uint8_t *device_rgb, void *stream);
// B samples of plans: jpeg[b * F + f], bytes[...] are sample b's F listed frames (store_fetch_list then
// store_jpeg_frame). Decodes them and renders (B, F, crop, crop, 3) floats into device_out, on stream.
void nvjpeg_render_batch(NvjpegDecoder *d, const SampleSpace *space, const SamplePlan *plans, int B,
                         const uint8_t *const *jpeg, const size_t *bytes, float *device_out, void *stream);
void nvjpeg_decoder_free(NvjpegDecoder *d);
