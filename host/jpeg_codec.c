// jpeg_codec.c: see jpeg_codec.h.
#include "jpeg_codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <turbojpeg.h>
#if __has_include(<jconfig.h>)
#include <jconfig.h>  // LIBJPEG_TURBO_VERSION
#endif

#include "common.h"

struct JpegCodec {
    tjhandle compress, decompress;  // created on first use: a reader never needs a compressor
};

JpegCodec *jpeg_codec_create(void) { return xcalloc(1, sizeof(JpegCodec)); }

void jpeg_codec_free(JpegCodec *c) {
    if (!c) return;
    if (c->compress) tjDestroy(c->compress);
    if (c->decompress) tjDestroy(c->decompress);
    free(c);
}

size_t jpeg_frame_bound(int height, int width) {
    const unsigned long bound = tjBufSize(width, height, TJSAMP_420);
    if (bound == (unsigned long)-1) die_internal("tjBufSize(%d, %d): %s", width, height, tjGetErrorStr2(NULL));
    return (size_t)bound;
}

size_t jpeg_encode_frame(JpegCodec *c, const uint8_t *rgb, int height, int width, int quality, uint8_t *out) {
    if (!c->compress && !(c->compress = tjInitCompress())) die_internal("tjInitCompress: %s", tjGetErrorStr2(NULL));
    unsigned char *dst = out;
    unsigned long bytes = jpeg_frame_bound(height, width);
    // NOREALLOC: out is jpeg_frame_bound bytes, so the library never replaces our buffer.
    if (tjCompress2(c->compress, rgb, width, 0, height, TJPF_RGB, &dst, &bytes, TJSAMP_420, quality,
                    TJFLAG_NOREALLOC | TJFLAG_ACCURATEDCT) != 0)
        die_internal("%s:%d: tjCompress2 (%dx%d, quality %d): %s", __FILE__, __LINE__, width, height, quality,
                     tjGetErrorStr2(c->compress));
    return (size_t)bytes;
}

int jpeg_decode_frame(JpegCodec *c, const uint8_t *data, size_t bytes, int height, int width, uint8_t *rgb,
                      char *why, size_t why_size) {
    if (!c->decompress && !(c->decompress = tjInitDecompress()))
        die_internal("tjInitDecompress: %s", tjGetErrorStr2(NULL));
    int w = 0, h = 0, subsamp = 0, colorspace = 0;
    if (tjDecompressHeader3(c->decompress, data, (unsigned long)bytes, &w, &h, &subsamp, &colorspace) != 0) {
        snprintf(why, why_size, "%s", tjGetErrorStr2(c->decompress));
        return -1;
    }
    if (w != width || h != height) {
        snprintf(why, why_size, "a %dx%d image where the store says %dx%d", w, h, width, height);
        return -1;
    }
    if (tjDecompress2(c->decompress, data, (unsigned long)bytes, rgb, width, 0, height, TJPF_RGB,
                      TJFLAG_ACCURATEDCT | TJFLAG_STOPONWARNING) != 0) {
        snprintf(why, why_size, "%s", tjGetErrorStr2(c->decompress));
        return -1;
    }
    return 0;
}

const char *jpeg_library_version(void) {
#ifdef LIBJPEG_TURBO_VERSION
#define JEPA_STR2(x) #x
#define JEPA_STR(x) JEPA_STR2(x)
    return "libjpeg-turbo " JEPA_STR(LIBJPEG_TURBO_VERSION);
#else
    return "libjpeg-turbo (TurboJPEG API)";
#endif
}
