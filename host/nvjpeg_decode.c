// nvjpeg_decode.c: see nvjpeg_decode.h. Compiled empty but for nvjpeg_available without JEPA_HAVE_NVJPEG.
#include "nvjpeg_decode.h"

#include <stdio.h>

#include "common.h"

#ifndef JEPA_HAVE_NVJPEG

int nvjpeg_available(char *why, size_t why_size) {
    snprintf(why, why_size, "built without nvJPEG (nvjpeg.h or libnvjpeg not found at build time; decode: cpu turbojpeg)");
    return 0;
}

#else

#include <nvjpeg.h>
#include <stdlib.h>

#include "augment.h"
#include "cuda_check.h"

#define NVJPEG_CHECK(call)                                                                                    \
    do {                                                                                                      \
        const nvjpegStatus_t s_ = (call);                                                                     \
        if (s_ != NVJPEG_STATUS_SUCCESS) die_internal("%s:%d: %s: nvJPEG status %d", __FILE__, __LINE__, #call, (int)s_); \
    } while (0)

struct NvjpegDecoder {
    nvjpegHandle_t handle;
    nvjpegJpegState_t state;
    int hardware;            // the hardware JPEG engines decode
    int height, width;
    int batch;               // the batch size the state is initialised for (nvjpegDecodeBatched decodes exactly it)
    nvjpegImage_t *dest;     // [batch]
    uint8_t *frames;         // device (capacity, height, width, 3)
    AugmentCrop *crops, *host_crops;  // device and host [crop_capacity]
    int capacity, crop_capacity;
};

int nvjpeg_available(char *why, size_t why_size) {
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        snprintf(why, why_size, "no CUDA device (%s)", err != cudaSuccess ? cudaGetErrorString(err) : "0 devices");
        return 0;
    }
    return 1;
}

// A handle and state on backend, or 0 (the hardware backend is refused on GPUs without JPEG engines).
static int start_backend(NvjpegDecoder *d, nvjpegBackend_t backend) {
    if (nvjpegCreateEx(backend, NULL, NULL, NVJPEG_FLAGS_DEFAULT, &d->handle) != NVJPEG_STATUS_SUCCESS) return 0;
    if (nvjpegJpegStateCreate(d->handle, &d->state) != NVJPEG_STATUS_SUCCESS) {
        nvjpegDestroy(d->handle);
        return 0;
    }
    return 1;
}

static void stop_backend(NvjpegDecoder *d) {
    if (d->state) NVJPEG_CHECK(nvjpegJpegStateDestroy(d->state));
    if (d->handle) NVJPEG_CHECK(nvjpegDestroy(d->handle));
    d->state = NULL;
    d->handle = NULL;
    d->batch = 0;
}

NvjpegDecoder *nvjpeg_decoder_create(int height, int width) {
    NvjpegDecoder *d = xcalloc(1, sizeof *d);
    d->height = height;
    d->width = width;
    d->hardware = start_backend(d, NVJPEG_BACKEND_HARDWARE);
    if (!d->hardware && !start_backend(d, NVJPEG_BACKEND_DEFAULT))
        die_internal("%s:%d: nvJPEG: neither the hardware nor the default backend starts", __FILE__, __LINE__);
    return d;
}

const char *nvjpeg_decoder_backend(const NvjpegDecoder *d) { return d->hardware ? "nvjpeg hardware" : "nvjpeg cuda"; }

static nvjpegStatus_t decode_on(NvjpegDecoder *d, const uint8_t *const *data, const size_t *bytes, int count,
                                uint8_t *device_rgb, void *stream) {
    if (d->batch != count) {
        const nvjpegStatus_t s = nvjpegDecodeBatchedInitialize(d->handle, d->state, count, 1, NVJPEG_OUTPUT_RGBI);
        if (s != NVJPEG_STATUS_SUCCESS) return s;
        d->batch = count;
        free(d->dest);
        d->dest = xcalloc((size_t)count, sizeof *d->dest);
    }
    const size_t frame = (size_t)d->height * d->width * 3;
    for (int i = 0; i < count; i++) {
        d->dest[i].channel[0] = device_rgb + (size_t)i * frame;  // interleaved RGB: one plane
        d->dest[i].pitch[0] = (size_t)d->width * 3;
    }
    return nvjpegDecodeBatched(d->handle, d->state, (const unsigned char *const *)data, bytes, d->dest,
                               (cudaStream_t)stream);
}

void nvjpeg_decode_batch(NvjpegDecoder *d, const uint8_t *const *data, const size_t *bytes, int count,
                         uint8_t *device_rgb, void *stream) {
    nvjpegStatus_t s = decode_on(d, data, bytes, count, device_rgb, stream);
    if (s != NVJPEG_STATUS_SUCCESS && d->hardware) {  // an image the engines do not take: the CUDA decoder does
        fprintf(stderr, "note: nvJPEG hardware decode failed (status %d); using the CUDA decoder\n", (int)s);
        stop_backend(d);
        d->hardware = 0;
        if (!start_backend(d, NVJPEG_BACKEND_DEFAULT)) die_internal("%s:%d: nvJPEG default backend", __FILE__, __LINE__);
        s = decode_on(d, data, bytes, count, device_rgb, stream);
    }
    NVJPEG_CHECK(s);
}

static void reserve_device(NvjpegDecoder *d, int frames, int samples) {
    if (frames > d->capacity) {
        if (d->frames) CUDA_CHECK(cudaFree(d->frames));
        CUDA_CHECK(cudaMalloc((void **)&d->frames, (size_t)frames * d->height * d->width * 3));
        d->capacity = frames;
    }
    if (samples > d->crop_capacity) {
        if (d->crops) CUDA_CHECK(cudaFree(d->crops));
        CUDA_CHECK(cudaMalloc((void **)&d->crops, (size_t)samples * sizeof(AugmentCrop)));
        free(d->host_crops);
        d->host_crops = xmalloc((size_t)samples * sizeof(AugmentCrop));
        d->crop_capacity = samples;
    }
}

void nvjpeg_render_batch(NvjpegDecoder *d, const SampleSpace *space, const SamplePlan *plans, int B,
                         const uint8_t *const *jpeg, const size_t *bytes, float *device_out, void *stream) {
    const int F = space->num_frames;
    reserve_device(d, B * F, B);
    nvjpeg_decode_batch(d, jpeg, bytes, B * F, d->frames, stream);
    for (int b = 0; b < B; b++)
        d->host_crops[b] = (AugmentCrop){plans[b].crop_y, plans[b].crop_x, plans[b].crop_h, plans[b].crop_w, plans[b].flip};
    // Synchronous copy: host_crops is reused by the next call (a handful of bytes, once per batch).
    CUDA_CHECK(cudaMemcpyAsync(d->crops, d->host_crops, (size_t)B * sizeof(AugmentCrop), cudaMemcpyHostToDevice,
                               (cudaStream_t)stream));
    CUDA_CHECK(cudaStreamSynchronize((cudaStream_t)stream));
    float gain[3], bias[3];
    sample_norm_coefficients(gain, bias);
    cuda_augment_render(stream, device_out, d->frames, d->crops, B, F, d->height, d->width, space->crop, gain, bias);
}

void nvjpeg_decoder_free(NvjpegDecoder *d) {
    if (!d) return;
    stop_backend(d);
    if (d->frames) CUDA_CHECK(cudaFree(d->frames));
    if (d->crops) CUDA_CHECK(cudaFree(d->crops));
    free(d->host_crops);
    free(d->dest);
    free(d);
}

#endif
