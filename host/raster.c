// raster.c: coverage by sub-sampling on a fixed grid, then a linear blend per pixel (see raster.h).
#include "raster.h"

#include <math.h>

#include "common.h"

void raster_clear(Image *im, const uint8_t colour[3]) {
    const size_t n = (size_t)im->height * im->width;
    for (size_t p = 0; p < n; p++)
        for (int c = 0; c < 3; c++) im->rgb[3 * p + c] = colour[c];
}

static void blend(Image *im, int i, int j, double cover, const uint8_t colour[3]) {
    if (cover <= 0) return;
    uint8_t *px = im->rgb + 3 * ((size_t)i * im->width + j);
    for (int c = 0; c < 3; c++) px[c] = (uint8_t)lround(px[c] + cover * (colour[c] - px[c]));
}

// The pixel rows and columns a bounding box [x0, x1] x [y0, y1] touches, clipped to the image.
typedef struct {
    int i0, i1, j0, j1;  // inclusive
} PixelBox;

static PixelBox pixel_box(const Image *im, double x0, double y0, double x1, double y1) {
    PixelBox b = {(int)floor(y0), (int)floor(y1), (int)floor(x0), (int)floor(x1)};
    if (b.i0 < 0) b.i0 = 0;
    if (b.j0 < 0) b.j0 = 0;
    if (b.i1 > im->height - 1) b.i1 = im->height - 1;
    if (b.j1 > im->width - 1) b.j1 = im->width - 1;
    return b;
}

// Sub-sample k of RASTER_SS along one pixel side, as an offset in (0, 1).
static double sub(int k) { return (k + 0.5) / RASTER_SS; }

void raster_rect(Image *im, double x0, double y0, double x1, double y1, const uint8_t colour[3]) {
    const PixelBox b = pixel_box(im, x0, y0, x1, y1);
    for (int i = b.i0; i <= b.i1; i++)
        for (int j = b.j0; j <= b.j1; j++) {
            // The rectangle's overlap with the pixel square, exactly.
            const double w = fmin(x1, j + 1.0) - fmax(x0, (double)j), h = fmin(y1, i + 1.0) - fmax(y0, (double)i);
            if (w > 0 && h > 0) blend(im, i, j, w * h, colour);
        }
}

double raster_disc_coverage(double cx, double cy, double r, int i, int j) {
    int inside = 0;
    for (int a = 0; a < RASTER_SS; a++)
        for (int c = 0; c < RASTER_SS; c++) {
            const double dx = j + sub(c) - cx, dy = i + sub(a) - cy;
            inside += dx * dx + dy * dy <= r * r;
        }
    return (double)inside / (RASTER_SS * RASTER_SS);
}

void raster_disc(Image *im, double cx, double cy, double r, const uint8_t colour[3]) {
    const PixelBox b = pixel_box(im, cx - r, cy - r, cx + r, cy + r);
    for (int i = b.i0; i <= b.i1; i++)
        for (int j = b.j0; j <= b.j1; j++) blend(im, i, j, raster_disc_coverage(cx, cy, r, i, j), colour);
}

void raster_glow(Image *im, double cx, double cy, double radius, double strength, const uint8_t colour[3],
                 int (*lit)(void *ctx, double x, double y), void *ctx) {
    const PixelBox b = pixel_box(im, cx - radius, cy - radius, cx + radius, cy + radius);
    for (int i = b.i0; i <= b.i1; i++)
        for (int j = b.j0; j <= b.j1; j++) {
            const double d = hypot(j + 0.5 - cx, i + 0.5 - cy);
            if (d < radius && (!lit || lit(ctx, j + 0.5, i + 0.5))) blend(im, i, j, strength * (1 - d / radius), colour);
        }
}

// Even-odd rule: a ray to +x from (x, y) crosses the boundary an odd number of times inside.
static int polygon_contains(const double *xy, int n, double x, double y) {
    int in = 0;
    for (int a = 0, b = n - 1; a < n; b = a++) {
        const double xa = xy[2 * a], ya = xy[2 * a + 1], xb = xy[2 * b], yb = xy[2 * b + 1];
        if ((ya > y) != (yb > y) && x < xa + (y - ya) * (xb - xa) / (yb - ya)) in = !in;
    }
    return in;
}

void raster_polygon(Image *im, const double *xy, int n, const uint8_t colour[3]) {
    JEPA_ASSERT(n >= 3);
    double x0 = xy[0], x1 = xy[0], y0 = xy[1], y1 = xy[1];
    for (int k = 1; k < n; k++) {
        x0 = fmin(x0, xy[2 * k]), x1 = fmax(x1, xy[2 * k]);
        y0 = fmin(y0, xy[2 * k + 1]), y1 = fmax(y1, xy[2 * k + 1]);
    }
    const PixelBox b = pixel_box(im, x0, y0, x1, y1);
    for (int i = b.i0; i <= b.i1; i++)
        for (int j = b.j0; j <= b.j1; j++) {
            int inside = 0;
            for (int a = 0; a < RASTER_SS; a++)
                for (int c = 0; c < RASTER_SS; c++) inside += polygon_contains(xy, n, j + sub(c), i + sub(a));
            blend(im, i, j, (double)inside / (RASTER_SS * RASTER_SS), colour);
        }
}

// ---------------------------------------------------------------------------------------------------- PNG

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static void put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

// One chunk: length, type, data, CRC of type and data.
static int png_chunk(FILE *f, const char *type, const uint8_t *data, uint32_t n) {
    uint8_t head[8], crc[4];
    put_u32(head, n);
    memcpy(head + 4, type, 4);
    uLong c = crc32(0L, head + 4, 4);
    if (n) c = crc32(c, data, n);
    put_u32(crc, (uint32_t)c);
    return fwrite(head, 1, 8, f) == 8 && (n == 0 || fwrite(data, 1, n, f) == n) && fwrite(crc, 1, 4, f) == 4;
}

void raster_write_png(const char *path, const uint8_t *rgb, int height, int width) {
    const size_t row = (size_t)width * 3 + 1, raw_n = row * height;
    uint8_t *raw = xmalloc(raw_n);
    for (int i = 0; i < height; i++) {
        raw[i * row] = 0;  // filter: none
        memcpy(raw + i * row + 1, rgb + (size_t)i * width * 3, (size_t)width * 3);
    }
    uLongf packed_n = compressBound(raw_n);
    uint8_t *packed = xmalloc(packed_n);
    if (compress2(packed, &packed_n, raw, raw_n, 6) != Z_OK) die_internal("%s: zlib compress2 failed", path);
    uint8_t ihdr[13];
    put_u32(ihdr, (uint32_t)width);
    put_u32(ihdr + 4, (uint32_t)height);
    ihdr[8] = 8, ihdr[9] = 2, ihdr[10] = 0, ihdr[11] = 0, ihdr[12] = 0;  // 8-bit RGB, deflate, no interlace
    FILE *f = fopen(path, "wb");
    if (!f) die_input("%s: cannot write: %s", path, strerror(errno));
    static const uint8_t SIGNATURE[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    const int ok = fwrite(SIGNATURE, 1, 8, f) == 8 && png_chunk(f, "IHDR", ihdr, 13) &&
                   png_chunk(f, "IDAT", packed, (uint32_t)packed_n) && png_chunk(f, "IEND", NULL, 0);
    if (fclose(f) != 0 || !ok) die_input("%s: write failed: %s", path, strerror(errno));
    free(raw);
    free(packed);
}
