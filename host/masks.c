// masks.c: see masks.h and docs/masks.md. Written from the official algorithm's description, not its code.
#include "masks.h"

#include <math.h>
#include <string.h>

#include "common.h"
#include "rng.h"

// Draws of block positions that may all cover the whole grid before we call the config hopeless. The official
// collator loops forever there; with any block smaller than the grid an empty context has probability < 1, and a
// config needing this many redraws is a mistake anyway.
enum { MASK_MAX_REDRAWS = 10000 };

TokenGrid mask_token_grid(int num_frames, int tubelet_size, int crop_size, int patch_size) {
    JEPA_ASSERT(tubelet_size > 0 && patch_size > 0);
    return (TokenGrid){num_frames / tubelet_size, crop_size / patch_size, crop_size / patch_size};
}

static int grid_tokens(TokenGrid g) { return g.T * g.H * g.W; }

static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }

// Positions stream: one per (generator, step, global sample); purpose offset by 16*(gen+1) so generators never share.
static Rng position_stream(uint64_t seed, int gen, long step, int64_t sample) {
    return rng_stream(seed, (uint32_t)(RNG_MASK_POS + 16 * (gen + 1)), (uint64_t)step, (uint64_t)sample);
}

MaskBlockSize mask_block_size(const MaskGenConfig *mg, int gen, TokenGrid grid, uint64_t seed, long step) {
    JEPA_ASSERT(step >= 0 && gen >= 0);
    Rng r = rng_stream(seed, RNG_MASK_SIZE, (uint64_t)step, (uint64_t)gen);
    // Three draws in the official order: temporal scale, spatial scale, aspect ratio.
    const double ts = rng_uniform_range(&r, mg->temporal_scale[0], mg->temporal_scale[1]);
    const double ss = rng_uniform_range(&r, mg->spatial_scale[0], mg->spatial_scale[1]);
    const double ar = rng_uniform_range(&r, mg->aspect_ratio[0], mg->aspect_ratio[1]);
    const int keep = (int)(grid.H * grid.W * ss);  // truncation, as int() in the official code
    MaskBlockSize b;
    b.t = imax(1, (int)(grid.T * ts));
    // nearbyint rounds half to even in the default mode, as Python's round() does.
    b.h = (int)nearbyint(sqrt(keep * ar));
    b.w = (int)nearbyint(sqrt(keep / ar));
    // Capped by the grid as officially; also kept >= 1, where the official code would give an empty target.
    b.t = imin(b.t, grid.T);
    b.h = imax(1, imin(b.h, grid.H));
    b.w = imax(1, imin(b.w, grid.W));
    return b;
}

// Frames a context may span: max(1, int(T * max_temporal_keep)), as officially.
static int context_frames(const MaskGenConfig *mg, TokenGrid grid) {
    return imax(1, imin(grid.T, (int)(grid.T * mg->max_temporal_keep)));
}

// Clears (marks as target) one block at a random position; draw order top, left, start as officially.
static void paint_block(Rng *r, TokenGrid g, MaskBlockSize b, uint8_t *keep) {
    const int top = (int)rng_randint(r, 0, g.H - b.h + 1);
    const int left = (int)rng_randint(r, 0, g.W - b.w + 1);
    const int start = (int)rng_randint(r, 0, g.T - b.t + 1);
    for (int t = start; t < start + b.t; t++)
        for (int y = top; y < top + b.h; y++) memset(keep + ((size_t)t * g.H + y) * g.W + left, 0, (size_t)b.w);
}

// One draw of the whole sample: keep[i] = 1 for context tokens. Frames past the context limit go to the target,
// which is what the official code does (it clears them in every block mask). Returns the context length.
static int draw_keep_mask(const MaskGenConfig *mg, Rng *r, TokenGrid g, MaskBlockSize b, uint8_t *keep) {
    const int n = grid_tokens(g), frame = g.H * g.W, tmax = context_frames(mg, g);
    memset(keep, 1, (size_t)n);
    for (int k = 0; k < mg->num_blocks; k++) paint_block(r, g, b, keep);
    memset(keep + (size_t)tmax * frame, 0, (size_t)(g.T - tmax) * frame);
    int n_ctx = 0;
    for (int i = 0; i < n; i++) n_ctx += keep[i];
    return n_ctx;
}

// The sample's uncut lists, ascending; keep is scratch of T*H*W bytes.
static void sample_lists(const MaskGenConfig *mg, int gen, TokenGrid g, MaskBlockSize b, uint64_t seed, long step,
                         int64_t sample, uint8_t *keep, int32_t *ctx, int *n_ctx, int32_t *tgt, int *n_tgt) {
    Rng r = position_stream(seed, gen, step, sample);
    int tries = 0;
    // Redraw while the context is empty; the stream continues, so the result stays a pure function of it.
    while (draw_keep_mask(mg, &r, g, b, keep) == 0)
        if (++tries >= MASK_MAX_REDRAWS)
            die_input("mask generator %d: %d blocks of %dx%dx%d tokens cover the whole %dx%dx%d grid in %d draws "
                      "in a row\n---> HINT: lower mask.spatial_scale, mask.temporal_scale or mask.num_blocks",
                      gen, mg->num_blocks, b.t, b.h, b.w, g.T, g.H, g.W, tries);
    int nc = 0, nt = 0;
    for (int i = 0; i < grid_tokens(g); i++) {
        if (keep[i]) ctx[nc++] = i;
        else tgt[nt++] = i;
    }
    *n_ctx = nc;
    *n_tgt = nt;
}

void mask_sample_uncut(const MaskGenConfig *mg, int gen, TokenGrid grid, uint64_t seed, long step, int64_t sample,
                       int32_t *ctx, int *n_ctx, int32_t *tgt, int *n_tgt) {
    const MaskBlockSize b = mask_block_size(mg, gen, grid, seed, step);
    uint8_t *keep = xmalloc((size_t)grid_tokens(grid));
    sample_lists(mg, gen, grid, b, seed, step, sample, keep, ctx, n_ctx, tgt, n_tgt);
    free(keep);
}

// Rows of length `stride` cut to their first n entries and packed to (B, n), in place (dest never passes source).
static void pack_rows(int32_t *rows, int B, int stride, int n) {
    for (int b = 1; b < B; b++) memmove(rows + (size_t)b * n, rows + (size_t)b * stride, (size_t)n * sizeof *rows);
}

void mask_generate(const MaskGenConfig *mg, int gen, TokenGrid grid, uint64_t seed, long step, int64_t first_sample,
                   int B, MaskBatch *out) {
    JEPA_ASSERT(B > 0 && grid.T > 0 && grid.H > 0 && grid.W > 0 && mg->num_blocks > 0);
    const int n = grid_tokens(grid);
    const MaskBlockSize b = mask_block_size(mg, gen, grid, seed, step);
    uint8_t *keep = xmalloc((size_t)n);
    int32_t *ctx = xmalloc((size_t)B * n * sizeof *ctx);  // (B, n) uncut rows, then packed to (B, n_ctx)
    int32_t *tgt = xmalloc((size_t)B * n * sizeof *tgt);
    int min_ctx = n, min_tgt = n;
    for (int s = 0; s < B; s++) {
        int nc, nt;
        sample_lists(mg, gen, grid, b, seed, step, first_sample + s, keep, ctx + (size_t)s * n, &nc,
                     tgt + (size_t)s * n, &nt);
        min_ctx = imin(min_ctx, nc);
        min_tgt = imin(min_tgt, nt);
    }
    free(keep);
    if (mg->max_keep > 0) min_ctx = imin(min_ctx, mg->max_keep);
    // The cut keeps each list's first tokens; lists are ascending in (t, y, x), so the latest frames go first.
    pack_rows(ctx, B, n, min_ctx);
    pack_rows(tgt, B, n, min_tgt);
    out->B = B;
    out->n_ctx = min_ctx;
    out->n_tgt = min_tgt;
    out->ctx = xrealloc(ctx, (size_t)B * min_ctx * sizeof *ctx);
    out->tgt = xrealloc(tgt, (size_t)B * min_tgt * sizeof *tgt);
}

void mask_batch_free(MaskBatch *m) {
    free(m->ctx);
    free(m->tgt);
    m->ctx = m->tgt = NULL;
    m->B = m->n_ctx = m->n_tgt = 0;
}
