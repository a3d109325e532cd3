// raster.h: a small software rasteriser for the built-in worlds (tworooms, pusht, and any later one).
// Images are rgb (H, W, 3) uint8, row-major; pixel (i, j) has its centre at (j + 0.5, i + 0.5) in pixel units, x to
// the right, y down (the balls world's convention). Shapes are blended over what is there with their coverage of
// each pixel, estimated on a fixed sub-pixel grid (RASTER_SS x RASTER_SS samples), so edges are anti-aliased and the
// result is a pure function of the arguments (no state, no randomness).
#pragma once
#include <stdint.h>

#define RASTER_SS 4  // sub-samples per pixel side for coverage

typedef struct {
    int height, width;
    uint8_t *rgb;  // (height, width, 3)
} Image;

// Fills the whole image with one colour.
void raster_clear(Image *im, const uint8_t colour[3]);
// Axis-aligned rectangle [x0, x1) x [y0, y1) in pixel units (fractional edges are anti-aliased).
void raster_rect(Image *im, double x0, double y0, double x1, double y1, const uint8_t colour[3]);
// Disc of radius r centred at (cx, cy).
void raster_disc(Image *im, double cx, double cy, double r, const uint8_t colour[3]);
// Simple polygon (n >= 3 vertices xy[2n], either winding, convex or not: even-odd rule).
void raster_polygon(Image *im, const double *xy, int n, const uint8_t colour[3]);
// Fraction of the pixel (i, j) covered by the shape, for tests: 0 outside, 1 inside.
double raster_disc_coverage(double cx, double cy, double r, int i, int j);
// Writes rgb (height, width, 3) as an 8-bit RGB PNG (zlib-compressed, no filtering). Dies naming path on failure.
void raster_write_png(const char *path, const uint8_t *rgb, int height, int width);
// A light centred at (cx, cy): every pixel is blended towards colour by strength * max(0, 1 - d / radius), d the
// distance of its centre (smooth, so no sub-sampling); with lit (optional), only the pixels whose centre (x, y)
// lit(ctx, x, y) says the light reaches (shadows).
void raster_glow(Image *im, double cx, double cy, double radius, double strength, const uint8_t colour[3],
                 int (*lit)(void *ctx, double x, double y), void *ctx);
