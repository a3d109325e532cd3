// test_masks.c: the multi-block 3D mask generator against the official collator's statistics
// (tests/data/mask_stats_official.json, from scripts/official_mask_stats.py), plus its structural invariants.
#include <json-c/json.h>
#include <string.h>

#include "common.h"
#include "masks.h"
#include "test.h"

#ifndef MASK_STATS_PATH
#define MASK_STATS_PATH "tests/data/mask_stats_official.json"
#endif

enum { SEED = 20240611 };

// V-JEPA vitl16's two generators; 16x224 clips, patch 16, tubelet 2.
static const MaskGenConfig SHORT_RANGE = {8, {0.15, 0.15}, {1.0, 1.0}, {0.75, 1.5}, 1.0, 0};
static const MaskGenConfig LONG_RANGE = {2, {0.7, 0.7}, {1.0, 1.0}, {0.75, 1.5}, 1.0, 0};
static const char *GEN_NAMES[2] = {"short_range", "long_range"};

static TokenGrid vitl_grid(void) { return mask_token_grid(16, 2, 224, 16); }
static const MaskGenConfig *vitl_gen(int g) { return g == 0 ? &SHORT_RANGE : &LONG_RANGE; }

// ---- statistics ---------------------------------------------------------------------------------------------

typedef struct { double mean, std, mean_se, std_se; } Stat;

// Same estimators as the script: std with n-1; the std's standard error from the 4th central moment (delta method).
static Stat summarize(const double *v, int n) {
    double mean = 0, m2 = 0, m4 = 0;
    for (int i = 0; i < n; i++) mean += v[i] / n;
    for (int i = 0; i < n; i++) {
        const double d = (v[i] - mean) * (v[i] - mean);
        m2 += d / n;
        m4 += d * d / n;
    }
    Stat s = {mean, sqrt(m2 * n / (n - 1)), 0, 0};
    s.mean_se = s.std / sqrt(n);
    s.std_se = s.std > 0 ? sqrt(fmax(m4 - m2 * m2, 0) / n) / (2 * s.std) : 0;
    return s;
}

static double json_num(json_object *o, const char *a, const char *b, const char *c) {
    json_object *x = NULL, *y = NULL, *z = NULL;
    if (!json_object_object_get_ex(o, a, &x) || !json_object_object_get_ex(x, b, &y) ||
        !json_object_object_get_ex(y, c, &z))
        die_input("%s: missing %s.%s.%s", MASK_STATS_PATH, a, b, c);
    return json_object_get_double(z);
}

static Stat official_stat(json_object *setting, int gen, const char *which) {
    const char *g = GEN_NAMES[gen];
    return (Stat){json_num(setting, g, which, "mean"), json_num(setting, g, which, "std"),
                  json_num(setting, g, which, "mean_se"), json_num(setting, g, which, "std_se")};
}

// Tolerance: ours and the official estimates are independent samples of the same distribution, so under a correct
// generator their difference is ~ N(0, se_ours^2 + se_official^2) (per-batch lengths are i.i.d. across steps: a
// fresh block size and fresh positions each step; se of the std from the 4th moment, as the script computes it).
// We allow Z_TOL = 4 combined standard errors: a correct generator fails one of the 32 checks with probability
// below 32 * 6.3e-5 = 0.2% for a given seed. With the sample counts here (official 40000/20000/10000/5000 batches,
// ours 40000/16000/6000/3000 for B = 1/8/24/64) that is a window of 2.6-5.4 tokens on the means and 1.1-4.1 on the
// stds, while real deviations are far larger: positions one short of the grid edge move the context means by
// 27-57 tokens, floor instead of round for the block height by 30-36 (both tried; every B fails).
#define Z_TOL 4.0

static void check_stat(const char *name, Stat ours, Stat off) {
    char buf[160];
    const double tol_mean = Z_TOL * sqrt(ours.mean_se * ours.mean_se + off.mean_se * off.mean_se);
    const double tol_std = Z_TOL * sqrt(ours.std_se * ours.std_se + off.std_se * off.std_se);
    snprintf(buf, sizeof buf, "%s mean", name);
    TEST_CHECK(buf, fabs(ours.mean - off.mean) <= tol_mean, "ours %.2f official %.2f tol %.2f", ours.mean, off.mean,
               tol_mean);
    snprintf(buf, sizeof buf, "%s std", name);
    TEST_CHECK(buf, fabs(ours.std - off.std) <= tol_std, "ours %.2f official %.2f tol %.2f", ours.std, off.std,
               tol_std);
    printf("     %-34s ours %7.2f +- %6.2f  official %7.2f +- %6.2f  (tol %.1f, %.1f)\n", name, ours.mean, ours.std,
           off.mean, off.std, tol_mean, tol_std);
}

// Our per-batch lengths over `nb` steps of batch size B (one rank: samples [step*B, step*B + B)).
static void our_lengths(int gen, int B, int nb, double *ctx_len, double *tgt_len) {
    for (int step = 0; step < nb; step++) {
        MaskBatch m;
        mask_generate(vitl_gen(gen), gen, vitl_grid(), SEED, step, (int64_t)step * B, B, &m);
        ctx_len[step] = m.n_ctx;
        tgt_len[step] = m.n_tgt;
        mask_batch_free(&m);
    }
}

// Batches per batch size: ~2e5 samples at most, enough for standard errors well below a token (< 2 s at -O2).
static int our_batches(int B) { return B == 1 ? 40000 : B == 8 ? 16000 : B == 24 ? 6000 : 3000; }

static void check_setting(json_object *setting) {
    json_object *bs = NULL;
    if (!json_object_object_get_ex(setting, "batch_size", &bs))
        die_input("%s: setting without batch_size", MASK_STATS_PATH);
    const int B = json_object_get_int(bs), nb = our_batches(B);
    double *ctx_len = xmalloc(sizeof(double) * nb), *tgt_len = xmalloc(sizeof(double) * nb);
    for (int gen = 0; gen < 2; gen++) {
        char name[96];
        our_lengths(gen, B, nb, ctx_len, tgt_len);
        snprintf(name, sizeof name, "stats B=%d %s context", B, GEN_NAMES[gen]);
        check_stat(name, summarize(ctx_len, nb), official_stat(setting, gen, "context"));
        snprintf(name, sizeof name, "stats B=%d %s target", B, GEN_NAMES[gen]);
        check_stat(name, summarize(tgt_len, nb), official_stat(setting, gen, "target"));
    }
    free(ctx_len);
    free(tgt_len);
}

static double json_index(json_object *o, const char *key, int i) {
    json_object *x = NULL;
    if (!json_object_object_get_ex(o, key, &x)) die_input("%s: missing %s", MASK_STATS_PATH, key);
    return i < 0 ? json_object_get_double(x) : json_object_get_double(json_object_array_get_idx(x, (size_t)i));
}

// The file measured the setting this test reproduces: same grid, same two generators.
static int official_setting_matches(json_object *root) {
    json_object *grid = NULL, *gens = NULL;
    if (!json_object_object_get_ex(root, "grid", &grid) || !json_object_object_get_ex(root, "generators", &gens) ||
        json_object_array_length(gens) != 2)
        return 0;
    const TokenGrid g = vitl_grid();
    int ok = json_index(grid, "T", -1) == g.T && json_index(grid, "H", -1) == g.H && json_index(grid, "W", -1) == g.W;
    for (int k = 0; k < 2; k++) {
        json_object *o = json_object_array_get_idx(gens, (size_t)k);
        const MaskGenConfig *mg = vitl_gen(k);
        ok &= json_index(o, "num_blocks", -1) == mg->num_blocks;
        for (int i = 0; i < 2; i++)
            ok &= json_index(o, "spatial_scale", i) == mg->spatial_scale[i] &&
                  json_index(o, "temporal_scale", i) == mg->temporal_scale[i] &&
                  json_index(o, "aspect_ratio", i) == mg->aspect_ratio[i];
    }
    return ok;
}

static void test_official_statistics(void) {
    json_object *root = json_object_from_file(MASK_STATS_PATH);
    json_object *settings = NULL;
    if (!root || !json_object_object_get_ex(root, "settings", &settings)) {
        TEST_FAIL("stats official file", "cannot read %s (run from the repository root)", MASK_STATS_PATH);
        return;
    }
    TEST_CHECK("stats official file measured our grid and generators", official_setting_matches(root),
               "grid or generator settings differ from vitl16's");
    TEST_CHECK("stats official file has 4 batch sizes", json_object_array_length(settings) == 4, "%zu settings",
               json_object_array_length(settings));
    for (size_t i = 0; i < json_object_array_length(settings); i++)
        check_setting(json_object_array_get_idx(settings, i));
    json_object_put(root);
}

// ---- structure ----------------------------------------------------------------------------------------------

static int ascending_in_range(const int32_t *v, int n, int N) {
    for (int i = 0; i < n; i++)
        if (v[i] < 0 || v[i] >= N || (i > 0 && v[i] <= v[i - 1])) return 0;
    return 1;
}

// Each row ascending and in range, each sample's context and target disjoint.
static int batch_well_formed(const MaskBatch *m, int N) {
    uint8_t *seen = xmalloc((size_t)N);
    int ok = 1;
    for (int b = 0; b < m->B && ok; b++) {
        const int32_t *c = m->ctx + (size_t)b * m->n_ctx, *t = m->tgt + (size_t)b * m->n_tgt;
        ok = ascending_in_range(c, m->n_ctx, N) && ascending_in_range(t, m->n_tgt, N);
        memset(seen, 0, (size_t)N);
        for (int i = 0; ok && i < m->n_ctx; i++) seen[c[i]] = 1;
        for (int i = 0; ok && i < m->n_tgt; i++) ok = !seen[t[i]];
    }
    free(seen);
    return ok;
}

// Uncut lists: ascending, in range, and a partition of all N tokens.
static int uncut_partition(const int32_t *c, int nc, const int32_t *t, int nt, int N) {
    if (nc + nt != N || nc == 0 || !ascending_in_range(c, nc, N) || !ascending_in_range(t, nt, N)) return 0;
    uint8_t *seen = xcalloc((size_t)N, 1);
    int ok = 1;
    for (int i = 0; i < nc; i++) seen[c[i]]++;
    for (int i = 0; i < nt; i++) seen[t[i]]++;
    for (int i = 0; i < N; i++) ok &= seen[i] == 1;
    free(seen);
    return ok;
}

static void test_structure(void) {
    const TokenGrid g = vitl_grid();
    const int N = g.T * g.H * g.W;
    int ok_batch = 1, ok_uncut = 1;
    int32_t *c = xmalloc(sizeof(int32_t) * N), *t = xmalloc(sizeof(int32_t) * N);
    for (int gen = 0; gen < 2; gen++)
        for (int step = 0; step < 50; step++) {
            MaskBatch m;
            mask_generate(vitl_gen(gen), gen, g, SEED, step, step * 24, 24, &m);
            ok_batch &= batch_well_formed(&m, N);
            mask_batch_free(&m);
            for (int s = 0; s < 24; s++) {
                int nc, nt;
                mask_sample_uncut(vitl_gen(gen), gen, g, SEED, step, step * 24 + s, c, &nc, t, &nt);
                ok_uncut &= uncut_partition(c, nc, t, nt, N);
            }
        }
    TEST_CHECK("structure batch rows ascending, in range, disjoint", ok_batch, "a malformed batch");
    TEST_CHECK("structure uncut lists partition all tokens", ok_uncut, "uncut lists are not a partition");
    free(c);
    free(t);
}

// ---- determinism --------------------------------------------------------------------------------------------

static int batches_equal(const MaskBatch *a, const MaskBatch *b) {
    return a->B == b->B && a->n_ctx == b->n_ctx && a->n_tgt == b->n_tgt &&
           !memcmp(a->ctx, b->ctx, sizeof(int32_t) * a->B * a->n_ctx) &&
           !memcmp(a->tgt, b->tgt, sizeof(int32_t) * a->B * a->n_tgt);
}

// Every row of m equals the first n entries of the uncut lists of samples [first, first + B), and the lengths are
// the minimum of the uncut lengths: the batch is the uncut lists, cut.
static int batch_is_cut_of_uncut(const MaskGenConfig *mg, int gen, TokenGrid g, long step, int64_t first,
                                 const MaskBatch *m) {
    const int N = g.T * g.H * g.W;
    int32_t *c = xmalloc(sizeof(int32_t) * N), *t = xmalloc(sizeof(int32_t) * N);
    int ok = 1, min_c = N, min_t = N;
    for (int b = 0; b < m->B; b++) {
        int nc, nt;
        mask_sample_uncut(mg, gen, g, SEED, step, first + b, c, &nc, t, &nt);
        min_c = nc < min_c ? nc : min_c;
        min_t = nt < min_t ? nt : min_t;
        ok &= nc >= m->n_ctx && nt >= m->n_tgt;
        ok &= ok && !memcmp(c, m->ctx + (size_t)b * m->n_ctx, sizeof(int32_t) * m->n_ctx);
        ok &= ok && !memcmp(t, m->tgt + (size_t)b * m->n_tgt, sizeof(int32_t) * m->n_tgt);
    }
    free(c);
    free(t);
    if (mg->max_keep > 0 && mg->max_keep < min_c) min_c = mg->max_keep;
    return ok && m->n_ctx == min_c && m->n_tgt == min_t;
}

static void test_determinism(void) {
    const TokenGrid g = vitl_grid();
    MaskBatch a, b, h1, h2;
    mask_generate(&SHORT_RANGE, 0, g, SEED, 7, 0, 8, &a);
    mask_generate(&SHORT_RANGE, 0, g, SEED, 7, 0, 8, &b);
    TEST_CHECK("determinism same call twice equal", batches_equal(&a, &b), "two identical calls differ");
    // Two ranks (or two micro-batches) of 4 vs one of 8: different cuts, same uncut per-sample lists.
    mask_generate(&SHORT_RANGE, 0, g, SEED, 7, 0, 4, &h1);
    mask_generate(&SHORT_RANGE, 0, g, SEED, 7, 4, 4, &h2);
    const int ok = batch_is_cut_of_uncut(&SHORT_RANGE, 0, g, 7, 0, &a) &&
                   batch_is_cut_of_uncut(&SHORT_RANGE, 0, g, 7, 0, &h1) &&
                   batch_is_cut_of_uncut(&SHORT_RANGE, 0, g, 7, 4, &h2);
    TEST_CHECK("determinism batches are the cut of per-sample uncut lists (B=8 vs 2x B=4)", ok,
               "a batch row is not a prefix of its sample's uncut list, or the cut is not the minimum");
    mask_batch_free(&b);
    // Different step, generator and sample must give different draws (streams are keyed by all three).
    mask_generate(&SHORT_RANGE, 0, g, SEED, 8, 0, 8, &b);
    int differ = !batches_equal(&a, &b);
    mask_batch_free(&b);
    mask_generate(&SHORT_RANGE, 1, g, SEED, 7, 0, 8, &b);
    differ &= !batches_equal(&a, &b);
    TEST_CHECK("determinism step and generator change the masks", differ, "same masks for another step/generator");
    int n1, n2, t1, t2;
    const int N = g.T * g.H * g.W;
    int32_t *c1 = xmalloc(sizeof(int32_t) * N), *c2 = xmalloc(sizeof(int32_t) * N), *tg = xmalloc(sizeof(int32_t) * N);
    mask_sample_uncut(&SHORT_RANGE, 0, g, SEED, 7, 0, c1, &n1, tg, &t1);
    mask_sample_uncut(&SHORT_RANGE, 0, g, SEED, 7, 1, c2, &n2, tg, &t2);
    TEST_CHECK("determinism samples of a step differ", n1 != n2 || memcmp(c1, c2, sizeof(int32_t) * n1),
               "samples 0 and 1 got the same mask");
    free(c1);
    free(c2);
    free(tg);
    mask_batch_free(&a);
    mask_batch_free(&b);
    mask_batch_free(&h1);
    mask_batch_free(&h2);
}

// ---- block size ---------------------------------------------------------------------------------------------

// The bounding box of a one-block target (extent in t, y, x); equals the block when it is a full box.
static MaskBlockSize box_of(const int32_t *t, int n, TokenGrid g) {
    int lo[3] = {g.T, g.H, g.W}, hi[3] = {-1, -1, -1};
    for (int i = 0; i < n; i++) {
        const int p[3] = {t[i] / (g.H * g.W), t[i] / g.W % g.H, t[i] % g.W};
        for (int k = 0; k < 3; k++) {
            lo[k] = p[k] < lo[k] ? p[k] : lo[k];
            hi[k] = p[k] > hi[k] ? p[k] : hi[k];
        }
    }
    MaskBlockSize b = {hi[0] - lo[0] + 1, hi[1] - lo[1] + 1, hi[2] - lo[2] + 1};
    return (b.t * b.h * b.w == n) ? b : (MaskBlockSize){0, 0, 0};  // not a full box
}

// One block per sample, wide scale and aspect ranges: every sample of a step, in any micro-batch, has a target box
// of the step's block size; and the size does change across steps.
static void test_block_size_shared(void) {
    const MaskGenConfig mg = {1, {0.1, 0.6}, {0.25, 1.0}, {0.5, 2.0}, 1.0, 0};
    const TokenGrid g = vitl_grid();
    const int N = g.T * g.H * g.W;
    int32_t *c = xmalloc(sizeof(int32_t) * N), *t = xmalloc(sizeof(int32_t) * N);
    int shared = 1, distinct = 0;
    MaskBlockSize first = mask_block_size(&mg, 0, g, SEED, 0);
    for (long step = 0; step < 20; step++) {
        const MaskBlockSize want = mask_block_size(&mg, 0, g, SEED, step);
        distinct += want.h != first.h || want.w != first.w || want.t != first.t;
        for (int64_t s = 0; s < 32; s++) {  // samples of several micro-batches / ranks of the step
            int nc, nt;
            mask_sample_uncut(&mg, 0, g, SEED, step, step * 1000 + s * 37, c, &nc, t, &nt);
            const MaskBlockSize got = box_of(t, nt, g);
            shared &= got.t == want.t && got.h == want.h && got.w == want.w;
        }
    }
    TEST_CHECK("block size shared by all samples of a step", shared, "a sample's block differs from the step's");
    TEST_CHECK("block size varies across steps", distinct > 0, "20 steps drew the same block size");
    free(c);
    free(t);
}

// ---- edge cases ---------------------------------------------------------------------------------------------

// Grid 1x4x4, four 3x3 blocks (keep = int(16*0.5625) = 9, aspect 1): they cover the grid exactly when the four
// blocks take the four distinct positions, probability 4!/4^4 = 9.4% per draw; without resampling ~190 of 2000
// contexts would be empty.
static void test_empty_context_resampled(void) {
    const MaskGenConfig mg = {4, {0.5625, 0.5625}, {1.0, 1.0}, {1.0, 1.0}, 1.0, 0};
    const TokenGrid g = {1, 4, 4};
    int ok = 1, saw_full_cover_risk = 0;
    for (long step = 0; step < 250; step++) {
        MaskBatch m;
        mask_generate(&mg, 0, g, SEED, step, step * 8, 8, &m);
        ok &= m.n_ctx >= 1 && batch_well_formed(&m, 16);
        saw_full_cover_risk |= m.n_ctx == 1;  // contexts this small show the blocks nearly cover the grid
        MaskBatch again;
        mask_generate(&mg, 0, g, SEED, step, step * 8, 8, &again);
        ok &= batches_equal(&m, &again);
        mask_batch_free(&m);
        mask_batch_free(&again);
    }
    TEST_CHECK("empty context resampled (2000 samples, all contexts non-empty, deterministic)",
               ok && saw_full_cover_risk, "ok=%d saw a 1-token context=%d", ok, saw_full_cover_risk);
}

static void test_max_keep(void) {
    const TokenGrid g = vitl_grid();
    MaskGenConfig capped = LONG_RANGE;
    capped.max_keep = 50;
    MaskBatch a, b;
    mask_generate(&LONG_RANGE, 1, g, SEED, 3, 0, 8, &a);
    mask_generate(&capped, 1, g, SEED, 3, 0, 8, &b);
    const int want = a.n_ctx < 50 ? a.n_ctx : 50;
    int ok = b.n_ctx == want && b.n_tgt == a.n_tgt && !memcmp(a.tgt, b.tgt, sizeof(int32_t) * a.B * a.n_tgt);
    for (int s = 0; ok && s < 8; s++)
        ok = !memcmp(a.ctx + (size_t)s * a.n_ctx, b.ctx + (size_t)s * b.n_ctx, sizeof(int32_t) * b.n_ctx);
    TEST_CHECK("max_keep caps the context to its first tokens, targets unchanged", ok,
               "n_ctx %d (uncapped %d, want %d)", b.n_ctx, a.n_ctx, want);
    mask_batch_free(&b);
    capped.max_keep = 100000;  // above every length: no effect
    mask_generate(&capped, 1, g, SEED, 3, 0, 8, &b);
    TEST_CHECK("max_keep above the batch minimum changes nothing", batches_equal(&a, &b), "masks changed");
    mask_batch_free(&a);
    mask_batch_free(&b);
}

// max_temporal_keep 0.5 on 8 time steps: contexts only in frames 0..3; frames 4..7 wholly in the target, which is
// where the official code puts them (it clears those frames in every block mask).
static void test_max_temporal_keep(void) {
    MaskGenConfig mg = SHORT_RANGE;
    mg.max_temporal_keep = 0.5;
    const TokenGrid g = vitl_grid();
    const int N = g.T * g.H * g.W, half = 4 * g.H * g.W;
    int32_t *c = xmalloc(sizeof(int32_t) * N), *t = xmalloc(sizeof(int32_t) * N);
    int ok = 1;
    for (int64_t s = 0; s < 64; s++) {
        int nc, nt;
        mask_sample_uncut(&mg, 0, g, SEED, 5, s, c, &nc, t, &nt);
        ok &= uncut_partition(c, nc, t, nt, N) && c[nc - 1] < half && t[nt - (N - half)] == half;
    }
    TEST_CHECK("max_temporal_keep limits context frames; later frames are targets", ok, "a context past frame 3");
    free(c);
    free(t);
}

int main(void) {
    const double t0 = now_seconds();
    test_structure();
    test_determinism();
    test_block_size_shared();
    test_empty_context_resampled();
    test_max_keep();
    test_max_temporal_keep();
    test_official_statistics();
    printf("     test_masks took %.1f s\n", now_seconds() - t0);
    TEST_EXIT();
}
