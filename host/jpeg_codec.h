// jpeg_codec.h: JPEG frames for the compressed clip store (docs/data.md, "JPEG stores"), through libjpeg-turbo's
// TurboJPEG API (Debian's libturbojpeg0-dev). Encoding is 4:2:0 chroma subsampling, baseline, at a quality in
// [1, 100]; decoding is the library's accurate integer IDCT with its default (smooth) chroma upsampling, so every
// thread and run decodes the same bytes to the same pixels.
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct JpegCodec JpegCodec;  // one per thread: TurboJPEG handles are not shared between threads

JpegCodec *jpeg_codec_create(void);
void jpeg_codec_free(JpegCodec *c);

// Largest encoding of one height x width RGB frame, bytes.
size_t jpeg_frame_bound(int height, int width);
// rgb (height, width, 3) -> JPEG bytes into out (jpeg_frame_bound bytes); returns the size. Dies on a library
// failure (internal: the input was ours).
size_t jpeg_encode_frame(JpegCodec *c, const uint8_t *rgb, int height, int width, int quality, uint8_t *out);
// JPEG bytes -> rgb (height, width, 3). Returns 0, or -1 with why filled (the library's message, or the size
// found when it is not height x width) for damaged data; library warnings (a truncated stream) count as errors.
int jpeg_decode_frame(JpegCodec *c, const uint8_t *data, size_t bytes, int height, int width, uint8_t *rgb,
                      char *why, size_t why_size);
// "libjpeg-turbo 2.1.5" style text for banners and provenance (the build's header version).
const char *jpeg_library_version(void);
