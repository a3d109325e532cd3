// jpeg_frames.h: what the JPEG store tests share (test_jpeg.c, test_cuda_jpeg.c): natural-ish test frames, PSNR,
// and a JPEG store of them written through the library.
#pragma once
#include <math.h>
#include <stdint.h>

#include "common.h"
#include "store.h"

// Smooth colour gradients, a moving disc with a hard edge and a fine texture. JPEG keeps such content well; a
// decode with swapped channels, a wrong stride or a shifted image does not.
static inline void fill_frame(int64_t clip, int t, int H, int W, uint8_t *rgb) {
    const double cx = W * (0.3 + 0.05 * t + 0.02 * (double)clip), cy = H * 0.5, radius = 0.2 * H;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            const int inside = (x - cx) * (x - cx) + (y - cy) * (y - cy) < radius * radius;
            const double texture = 12 * sin(0.7 * x + 0.3 * t) * cos(0.5 * y);
            const double v[3] = {200.0 * x / W + 20 + texture, 180.0 * y / H + 30 + (double)(clip % 5) * 8,
                                 inside ? 230 : 60 + 60 * sin(0.05 * (x + y))};
            for (int c = 0; c < 3; c++) rgb[((size_t)y * W + x) * 3 + c] = (uint8_t)fmax(0, fmin(255, v[c]));
        }
}

static inline double psnr(const uint8_t *a, const uint8_t *b, size_t n) {
    double se = 0;
    for (size_t i = 0; i < n; i++) se += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return se == 0 ? INFINITY : 10 * log10(255.0 * 255.0 / (se / (double)n));
}

// N clips of T fill_frame frames of H x W as JPEG at quality, /frames in chunks of chunk_bytes; /labels 10 + i.
static inline void write_jpeg_store(const char *path, int N, int T, int H, int W, int quality, size_t chunk_bytes) {
    const StoreLayout layout = {.frames = T, .height = H, .width = W, .has_labels = 1, .fps = 10,
                                .source = "test frames", .created_by = "jepa tests", .codec = STORE_CODEC_JPEG,
                                .jpeg_quality = quality, .jpeg_chunk_bytes = chunk_bytes};
    StoreWriter *w = store_writer_create(path, &layout, 1);
    uint8_t *rgb = xmalloc((size_t)T * H * W * 3), *chunk = xmalloc(store_chunk_bound(&layout));
    for (int64_t i = 0; i < N; i++) {
        for (int t = 0; t < T; t++) fill_frame(i, t, H, W, rgb + (size_t)t * H * W * 3);
        store_writer_append(w, chunk, store_encode_clip(&layout, rgb, chunk), NULL, NULL, (int32_t)(10 + i), (int32_t)i);
    }
    store_writer_close(w);
    free(rgb);
    free(chunk);
}
