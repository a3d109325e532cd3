// test_cuda_attention_sm90.c: the opt-in Hopper forward and backward (kernels/attention_sm90.cu, JEPA_ATTN_SM90=1)
// against the CPU reference (attention_cpu.c through a cpu-f32 Backend) on fresh random bf16 inputs, for every head
// dim with an instantiation (24, 32, 64, 80, 88, 128) and the frame-causal mask. Forward:
//   - hd 64: B2 H4 at N 100 (one partial key tile, one partial query CTA), 257 (a 1-key tail tile), 1568 (13
//     tiles, tail of 32), N 257 with q x4 (peaky rows: the online rescaling across tiles matters) and N 1; every
//     other head dim at N 100 and 257 (hd 24 and 88: the zero-filled padding columns of their last swizzle atom);
//   - frame-causal: frames of 16 (many per tile), 100 (crossing tile edges), 256 at N 1024 (whole key tiles in the
//     future of a query CTA: skipped, not computed) at hd 64, 128, 32 and 24;
//   - out and lse poisoned (0xFF = NaN) before each run, so an unwritten element fails; every (b,h) checked;
//   - the sm_90a kernel must actually have run (its launch counter moved) and no pipeline wait may have given up
//     (cuda_attention_sm90_hang_flag); an ineligible call (hd 48) with the variable set takes the existing path
//     and is still right.
// Backward (through cuda_attention_bwd, which runs attention.cu's D pre-pass, then the sm_90a kernels):
//   - hd 64: B2 H3 at N 100 (a tail key tile whose second 64-key half is partly past N, one partial query tile),
//     64 (the second half wholly past N), 257, and B1 H2 N1568; every other head dim at N 257; frame-causal with
//     frames of 16, 100 and 256 (query tiles before a key tile's first frame skipped; dQ summed over the key tiles
//     that saw each row); every (b,h); the inputs out and lse are the CPU forward's (out rounded to bf16), so a
//     forward error does not show up here;
//   - dqkv prefilled with known random values (per slot at the reference gradient's rms) and the increment of each
//     of dq, dk, dv compared; the workspace (dQ partials) poisoned with NaN first, so a partial row the kernel
//     does not write (and the reduction reads) fails; run twice from the same prefill: bitwise identical;
//   - both dQ schemes: per-key-tile partials (default) and JEPA_ATTN_SM90_DQ=ordered (N 257, 1568, frame-causal);
//   - the sm_90a backward must have run (its launch counter), and must not where it does not apply: hd 48, and a
//     workspace sized with the variable unset (too small for the partials): the mma.sync path then runs.
// Host only (no device needed): the workspace sizes, and the mask's tile plan against the pairs it leaves (brute
// force, check_tile_plan). SKIP with the reason without a CUDA build, without a device, or on a device that is not
// compute capability 9.0.
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "attention_check.h"
#include "backend.h"
#include "common.h"
#include "rng.h"
#include "test.h"

#define GROUP "cuda attention sm90 (JEPA_ATTN_SM90=1)"

#ifndef JEPA_CUDA
int main(void) {
    TEST_SKIP(GROUP, "built without CUDA (JEPA_CUDA off)");
    TEST_EXIT();
}
#else
#include <cuda_runtime_api.h>

#include "cuda_ops.h"
#include "cuda_test.h"

long cuda_attention_sm90_launches(void);      // kernels/attention_sm90.cu
long cuda_attention_sm90_bwd_launches(void);  // kernels/attention_sm90.cu
int cuda_attention_sm90_hang_flag(void);      // kernels/attention_sm90.cu
void cuda_attention_sm90_tile_plan(int N, int F, int *fwd_tiles, int *bwd_first, int *dq_tiles);

// Tolerances as tests/test_cuda_attention.c (the same bf16 rounding of P before P V and of out: ~2e-3 expected;
// a wrong tile, swizzle or mask moves out by 1e-1 or more). lse: fp32 on both sides, ~1e-6 expected.
#define TOL_OUT 1e-2
#define TOL_LSE 2e-5
#define TOL_LSE_ABS 1e-4
// dq, dk, dv: as tests/test_cuda_attention.c (P and dS rounded to bf16 before their products, bf16(prefill + grad)
// stored: ~2.5e-3 expected, 1e-2 is 4x; a missing key tile, a wrong swizzle or an overwrite instead of += gives
// 1e-1 or more). The dQ partials are summed in fp32 over key tiles, as the mma.sync kernel sums in registers.
#define TOL_GRAD 1e-2
#define TEST_SEED 9090

static uint64_t draw_index = 0;
static Backend *cpu;

typedef struct {
    int B, N, H, hd, ft;
    double qscale;
    int expect_sm90;  // the sm_90a kernel must run (1) or must not (0)
} Case;

static void run_case(const Case *c) {
    const int B = c->B, N = c->N, H = c->H, hd = c->hd, ft = c->ft;
    const Sizes z = {(size_t)B * N * 3 * H * hd, (size_t)B * N * H * hd, (size_t)B * H * N, B, N, H, hd};
    char tag[160], name[256];
    snprintf(tag, sizeof tag, "%s B%d N%d H%d hd%d ft%d%s", GROUP, B, N, H, hd, ft, c->qscale != 1.0 ? " sharp" : "");
    uint16_t *qkv = rand_bf16_stream(TEST_SEED, &draw_index, z.n_qkv, 1.0);  // [B,N,3,H,hd]
    scale_q(qkv, &z, c->qscale);
    void *d_qkv, *d_out;
    float *d_lse;
    CU(cudaMalloc(&d_qkv, z.n_qkv * 2));
    CU(cudaMalloc(&d_out, z.n_o * 2));
    CU(cudaMalloc((void **)&d_lse, z.n_l * sizeof(float)));
    CU(cudaMemcpy(d_qkv, qkv, z.n_qkv * 2, cudaMemcpyHostToDevice));
    CU(cudaMemset(d_out, 0xFF, z.n_o * 2));
    CU(cudaMemset(d_lse, 0xFF, z.n_l * sizeof(float)));
    const long before = cuda_attention_sm90_launches();
    cuda_attention_fwd((cuda_stream)0, d_out, d_lse, d_qkv, B, N, H, hd, ft);
    CU(cudaGetLastError());
    CU(cudaDeviceSynchronize());
    const long ran = cuda_attention_sm90_launches() - before;
    snprintf(name, sizeof name, "%s %s the sm_90a kernel", tag, c->expect_sm90 ? "runs" : "does not run");
    TEST_CHECK(name, ran == c->expect_sm90, "%ld sm_90a launches, expected %d", ran, c->expect_sm90);
    snprintf(name, sizeof name, "%s no pipeline wait gave up", tag);
    TEST_CHECK(name, cuda_attention_sm90_hang_flag() == 0, "an mbarrier or turn wait timed out (~20 s)");
    uint16_t *out_g = xmalloc(z.n_o * 2);    // [B,N,H,hd]
    float *lse_g = xmalloc(z.n_l * sizeof(float));  // [B,H,N]
    CU(cudaMemcpy(out_g, d_out, z.n_o * 2, cudaMemcpyDeviceToHost));
    CU(cudaMemcpy(lse_g, d_lse, z.n_l * sizeof(float), cudaMemcpyDeviceToHost));

    // CPU reference per (b,h): a B = H = 1 slice
    const size_t sq = (size_t)N * 3 * hd, so = (size_t)N * hd;
    float *h_qkv = xmalloc(sq * sizeof(float)), *ref_o = xmalloc(so * sizeof(float));
    float *ref_l = xmalloc((size_t)N * sizeof(float));
    void *c_qkv = cpu->alloc(cpu, sq * 4), *c_o = cpu->alloc(cpu, so * 4), *c_l = cpu->alloc(cpu, (size_t)N * 4);
    Cmp co = {0}, cl = {0};
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            gather_head(h_qkv, qkv, &z, b, h);
            cpu->upload(cpu, c_qkv, h_qkv, sq * 4);
            cpu->attention_fwd(cpu, c_o, c_l, c_qkv, 1, N, 1, hd, ft);
            cpu->download(cpu, ref_o, c_o, so * 4);
            cpu->download(cpu, ref_l, c_l, (size_t)N * 4);
            for (int n = 0; n < N; n++) {
                for (int d = 0; d < hd; d++)
                    cmp_add(&co, f32_from_bf16(out_g[o_index(&z, b, n, h, d)]), ref_o[(size_t)n * hd + d], b, n, h, d);
                cmp_add(&cl, lse_g[l_index(&z, b, h, n)], ref_l[n], b, n, h, -1);
            }
        }
    // NaN (the poison) counts in cmp_add: an unwritten element fails both checks
    snprintf(name, sizeof name, "%s out", tag);
    cmp_report(name, &co, TOL_OUT, 0, 0, "");
    snprintf(name, sizeof name, "%s lse (max abs %.1e, abs tol %.0e)", tag, cl.max_abs, TOL_LSE_ABS);
    cmp_report(name, &cl, TOL_LSE, TOL_LSE_ABS, 0, "");
    cpu->release(cpu, c_qkv);
    cpu->release(cpu, c_o);
    cpu->release(cpu, c_l);
    free(h_qkv);
    free(ref_o);
    free(ref_l);
    free(out_g);
    free(lse_g);
    free(qkv);
    CU(cudaFree(d_qkv));
    CU(cudaFree(d_out));
    CU(cudaFree(d_lse));
}

// ---------------------------------------------------------------- backward
typedef struct {
    int B, N, H, hd, ft;
    int small_ws;     // size the workspace with JEPA_ATTN_SM90 unset (D only): the sm_90a path must decline
    int expect_sm90;  // the sm_90a backward must run (1) or must not (0)
    int ordered;      // JEPA_ATTN_SM90_DQ=ordered: dQ summed in key-tile order into one buffer (else partials)
} BwdCase;

// The CPU forward (out rounded to bf16: what the GPU reads) and backward of every (b,h), as B = H = 1 slices.
static void bwd_reference(const Sizes *z, int ft, const uint16_t *qkv, const uint16_t *dout, uint16_t *out_b,
                          float *lse_b, float *ref_g /* [B*H][N][3][hd] */) {
    const int N = z->N, hd = z->hd;
    const size_t sq = (size_t)N * 3 * hd, so = (size_t)N * hd;
    float *h_qkv = xmalloc(sq * 4), *h_o = xmalloc(so * 4), *h_do = xmalloc(so * 4), *h_l = xmalloc((size_t)N * 4);
    void *c_qkv = cpu->alloc(cpu, sq * 4), *c_o = cpu->alloc(cpu, so * 4), *c_l = cpu->alloc(cpu, (size_t)N * 4);
    void *c_do = cpu->alloc(cpu, so * 4), *c_g = cpu->alloc(cpu, sq * 4);
    for (int b = 0; b < z->B; b++)
        for (int h = 0; h < z->H; h++) {
            gather_head(h_qkv, qkv, z, b, h);
            cpu->upload(cpu, c_qkv, h_qkv, sq * 4);
            cpu->attention_fwd(cpu, c_o, c_l, c_qkv, 1, N, 1, hd, ft);
            cpu->download(cpu, h_o, c_o, so * 4);
            cpu->download(cpu, h_l, c_l, (size_t)N * 4);
            for (int n = 0; n < N; n++) {
                for (int d = 0; d < hd; d++) {
                    const uint16_t ob = bf16_from_f32(h_o[(size_t)n * hd + d]);
                    out_b[o_index(z, b, n, h, d)] = ob;
                    h_o[(size_t)n * hd + d] = f32_from_bf16(ob);
                    h_do[(size_t)n * hd + d] = f32_from_bf16(dout[o_index(z, b, n, h, d)]);
                }
                lse_b[l_index(z, b, h, n)] = h_l[n];
            }
            cpu->upload(cpu, c_o, h_o, so * 4);
            cpu->upload(cpu, c_do, h_do, so * 4);
            cpu->zero(cpu, c_g, sq * 4);
            cpu->attention_bwd(cpu, c_g, c_do, c_qkv, c_o, c_l, 1, N, 1, hd, ft);
            cpu->download(cpu, ref_g + ((size_t)b * z->H + h) * sq, c_g, sq * 4);
        }
    cpu->release(cpu, c_qkv);
    cpu->release(cpu, c_o);
    cpu->release(cpu, c_l);
    cpu->release(cpu, c_do);
    cpu->release(cpu, c_g);
    free(h_qkv);
    free(h_o);
    free(h_do);
    free(h_l);
}

static void run_bwd_case(const BwdCase *c) {
    const int B = c->B, N = c->N, H = c->H, hd = c->hd, ft = c->ft;
    const Sizes z = {(size_t)B * N * 3 * H * hd, (size_t)B * N * H * hd, (size_t)B * H * N, B, N, H, hd};
    char tag[160], name[256];
    snprintf(tag, sizeof tag, "%s bwd B%d N%d H%d hd%d ft%d%s%s", GROUP, B, N, H, hd, ft,
             c->small_ws ? " (workspace without the partials)" : "", c->ordered ? " dQ ordered" : "");
    uint16_t *qkv = rand_bf16_stream(TEST_SEED, &draw_index, z.n_qkv, 1.0);  // [B,N,3,H,hd]
    uint16_t *dout = rand_bf16_stream(TEST_SEED, &draw_index, z.n_o, 1.0);  // [B,N,H,hd]
    uint16_t *out_b = xmalloc(z.n_o * 2);                                     // [B,N,H,hd]
    float *lse_b = xmalloc(z.n_l * 4);                                        // [B,H,N]
    const size_t sq = (size_t)N * 3 * hd;
    float *ref_g = xmalloc((size_t)B * H * sq * 4);  // [B*H][N][3][hd]
    bwd_reference(&z, ft, qkv, dout, out_b, lse_b, ref_g);

    // prefill: per slot, random values at the reference gradient's rms (floored at a tenth of the largest slot's:
    // dq, dk vanish where a row sees one key only)
    double rms[3] = {0, 0, 0};
    for (size_t k = 0; k < (size_t)B * H * N; k++)
        for (int s = 0; s < 3; s++)
            for (int d = 0; d < hd; d++) rms[s] += (double)ref_g[(k * 3 + s) * hd + d] * ref_g[(k * 3 + s) * hd + d];
    for (int s = 0; s < 3; s++) rms[s] = sqrt(rms[s] / ((double)B * H * N * hd));
    const double top = fmax(rms[0], fmax(rms[1], rms[2]));
    uint16_t *pre = rand_bf16_stream(TEST_SEED, &draw_index, z.n_qkv, 1.0);  // [B,N,3,H,hd]
    for (size_t i = 0; i < z.n_qkv; i++) {
        const int s = (int)(i / ((size_t)H * hd) % 3);
        pre[i] = bf16_from_f32(f32_from_bf16(pre[i]) * (float)fmax(rms[s], 0.1 * top));
    }

    if (c->ordered) setenv("JEPA_ATTN_SM90_DQ", "ordered", 1);
    else unsetenv("JEPA_ATTN_SM90_DQ");
    if (c->small_ws) unsetenv("JEPA_ATTN_SM90");
    const size_t ws_bytes = cuda_attention_bwd_workspace(B, N, H, hd);
    setenv("JEPA_ATTN_SM90", "1", 1);
    void *d_qkv, *d_out, *d_dout, *d_dqkv, *d_ws;
    float *d_lse;
    CU(cudaMalloc(&d_qkv, z.n_qkv * 2));
    CU(cudaMalloc(&d_out, z.n_o * 2));
    CU(cudaMalloc(&d_dout, z.n_o * 2));
    CU(cudaMalloc(&d_dqkv, z.n_qkv * 2));
    CU(cudaMalloc((void **)&d_lse, z.n_l * 4));
    CU(cudaMalloc(&d_ws, ws_bytes));
    cuda_attention_set_workspace(d_ws, ws_bytes);
    CU(cudaMemcpy(d_qkv, qkv, z.n_qkv * 2, cudaMemcpyHostToDevice));
    CU(cudaMemcpy(d_out, out_b, z.n_o * 2, cudaMemcpyHostToDevice));
    CU(cudaMemcpy(d_dout, dout, z.n_o * 2, cudaMemcpyHostToDevice));
    CU(cudaMemcpy(d_lse, lse_b, z.n_l * 4, cudaMemcpyHostToDevice));
    uint16_t *g[2] = {xmalloc(z.n_qkv * 2), xmalloc(z.n_qkv * 2)};
    const long before = cuda_attention_sm90_bwd_launches();
    for (int rep = 0; rep < 2; rep++) {
        CU(cudaMemcpy(d_dqkv, pre, z.n_qkv * 2, cudaMemcpyHostToDevice));
        CU(cudaMemset(d_ws, 0xFF, ws_bytes));  // NaN: an unwritten dQ partial poisons dq
        cuda_attention_bwd((cuda_stream)0, d_dqkv, d_dout, d_qkv, d_out, d_lse, B, N, H, hd, ft);
        CU(cudaGetLastError());
        CU(cudaDeviceSynchronize());
        CU(cudaMemcpy(g[rep], d_dqkv, z.n_qkv * 2, cudaMemcpyDeviceToHost));
    }
    const long ran = cuda_attention_sm90_bwd_launches() - before;
    snprintf(name, sizeof name, "%s %s the sm_90a backward", tag, c->expect_sm90 ? "runs" : "does not run");
    TEST_CHECK(name, ran == 2 * c->expect_sm90, "%ld sm_90a backward launches in 2 runs, expected %d", ran,
               2 * c->expect_sm90);
    snprintf(name, sizeof name, "%s no pipeline wait gave up", tag);
    TEST_CHECK(name, cuda_attention_sm90_hang_flag() == 0, "an mbarrier or turn wait timed out (~20 s)");

    static const char *slot_name[3] = {"dq", "dk", "dv"};
    Cmp cg[3];
    memset(cg, 0, sizeof cg);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int n = 0; n < N; n++)
                for (int s = 0; s < 3; s++)
                    for (int d = 0; d < hd; d++) {
                        const size_t i = qkv_index(&z, b, n, s, h, d);
                        const double got = (double)f32_from_bf16(g[0][i]) - (double)f32_from_bf16(pre[i]);
                        cmp_add(&cg[s], got, ref_g[(((size_t)b * H + h) * N + n) * 3 * hd + (size_t)s * hd + d], b,
                                n, h, d);
                    }
    const double floor = 0.1 * sqrt(fmax(cg[0].den, fmax(cg[1].den, cg[2].den)));
    for (int s = 0; s < 3; s++) {
        snprintf(name, sizeof name, "%s %s +=", tag, slot_name[s]);
        cmp_report(name, &cg[s], TOL_GRAD, 0, floor, "");
    }
    size_t diff = 0, first = 0;
    for (size_t i = 0; i < z.n_qkv; i++)
        if (g[0][i] != g[1][i] && diff++ == 0) first = i;
    snprintf(name, sizeof name, "%s bitwise identical on a second run", tag);
    TEST_CHECK(name, diff == 0, "%zu elements differ, first at flat index %zu: 0x%04x vs 0x%04x", diff, first,
               g[0][first], g[1][first]);

    cuda_attention_set_workspace(NULL, 0);
    unsetenv("JEPA_ATTN_SM90_DQ");
    free(qkv);
    free(dout);
    free(out_b);
    free(lse_b);
    free(ref_g);
    free(pre);
    free(g[0]);
    free(g[1]);
    CU(cudaFree(d_qkv));
    CU(cudaFree(d_out));
    CU(cudaFree(d_dout));
    CU(cudaFree(d_dqkv));
    CU(cudaFree(d_lse));
    CU(cudaFree(d_ws));
}

// cuda_attention_bwd_workspace is host arithmetic (no device needed): unchanged with the variable unset or where
// the sm_90a backward does not apply; with it, D plus the dQ partials or (ordered) the sum and the turns.
static void check_workspace_contract(void) {
    const char *name = GROUP " bwd workspace contract (host only)";
    unsetenv("JEPA_ATTN_SM90_DQ");
    unsetenv("JEPA_ATTN_SM90");
    const size_t d_only = cuda_attention_bwd_workspace(24, 1568, 16, 64);  // D [B,H,N] fp32, 256-rounded
    const size_t d_want = ((size_t)24 * 16 * 1568 * 4 + 255) / 256 * 256;
    setenv("JEPA_ATTN_SM90", "1", 1);
    const size_t part = cuda_attention_bwd_workspace(24, 1568, 16, 64);
    const size_t hd48 = cuda_attention_bwd_workspace(24, 1568, 16, 48);  // no instantiation: D only
    const size_t hd24 = cuda_attention_bwd_workspace(24, 1568, 16, 24);
    const size_t big = cuda_attention_bwd_workspace(24, 6272, 16, 64);  // partials 30 GB: over the cap
    const size_t part_want = d_want + (size_t)13 * 24 * 16 * 1568 * 64 * 4;  // 13 key tiles of 128
    const size_t hd24_want = d_want + (size_t)13 * 24 * 16 * 1568 * 24 * 4;  // partial rows of hd, not padded
    setenv("JEPA_ATTN_SM90_DQ", "ordered", 1);
    const size_t ord = cuda_attention_bwd_workspace(24, 1568, 16, 64);
    const size_t ord_want = d_want + (size_t)24 * 16 * 1568 * 64 * 4 + ((size_t)24 * 16 * 25 * 4 + 255) / 256 * 256;
    unsetenv("JEPA_ATTN_SM90_DQ");
    unsetenv("JEPA_ATTN_SM90");
    TEST_CHECK(name, d_only == d_want && part == part_want && hd48 == d_want && hd24 == hd24_want && ord == ord_want,
               "B24 N1568 H16: unset %zu (want %zu), set %zu (want %zu), hd 48 %zu (want %zu), hd 24 %zu (want "
               "%zu), N6272 %zu; ordered %zu (want %zu)",
               d_only, d_want, part, part_want, hd48, d_want, hd24, hd24_want, big, ord, ord_want);
    char big_name[256];
    snprintf(big_name, sizeof big_name, "%s: N6272 partials over the 3 GiB cap ask for nothing more", name);
    const size_t big_d = ((size_t)24 * 16 * 6272 * 4 + 255) / 256 * 256;
    TEST_CHECK(big_name, big == big_d, "%zu bytes, want D only (%zu)", big, big_d);
}

// Whether query i sees key j under the frame-causal mask of frames of F tokens (F 0: no mask): attention.cu's rule.
static int sees(int i, int j, int F) { return F <= 0 || j / F <= i / F; }

// The mask's tile plan (host arithmetic, no device) against the pairs it leaves, brute force: a forward CTA of 128
// query rows runs exactly the key tiles up to the last one holding a key some row sees (so every visible key is
// computed and no tile after it); a backward CTA of 128 keys starts at the first 64-row query tile holding a query
// that sees one of its keys; the dQ reduce sums for row i exactly the key tiles that visited its query tile, and
// those include every key tile holding a key row i sees (else its dq would miss terms).
static void check_tile_plan(void) {
    static const int Ns[] = {1, 64, 100, 129, 257, 300, 1024, 2048};
    static const int Fs[] = {0, 1, 7, 16, 64, 100, 128, 256, 300, 5000};
    int bad = 0;
    char detail[256] = "";
    for (size_t a = 0; a < sizeof Ns / sizeof Ns[0]; a++)
        for (size_t c = 0; c < sizeof Fs / sizeof Fs[0]; c++) {
            const int N = Ns[a], F = Fs[c], nt = (N + 127) / 128;
            int *fwd = xmalloc(nt * sizeof(int)), *first = xmalloc(nt * sizeof(int)), *dq = xmalloc(N * sizeof(int));
            cuda_attention_sm90_tile_plan(N, F, fwd, first, dq);
            for (int t = 0; t < nt; t++) {
                int last_key = -1, first_q = -1;  // the last key a row of forward CTA t sees; the first query
                for (int i = 128 * t; i < N && i < 128 * (t + 1); i++)  // that sees a key of backward CTA t
                    for (int j = 0; j < N; j++)
                        if (sees(i, j, F) && j > last_key) last_key = j;
                for (int i = 0; i < N && first_q < 0; i++)
                    for (int j = 128 * t; j < N && j < 128 * (t + 1); j++)
                        if (sees(i, j, F)) {
                            first_q = i;
                            break;
                        }
                if (fwd[t] != last_key / 128 + 1 || first[t] != first_q / 64) {
                    if (!bad++)
                        snprintf(detail, sizeof detail, "N %d F %d tile %d: forward key tiles %d (want %d), backward "
                                 "first query tile %d (want %d)", N, F, t, fwd[t], last_key / 128 + 1, first[t],
                                 first_q / 64);
                }
            }
            for (int i = 0; i < N; i++) {
                int visited = 0, needed = 0;  // key tiles visiting i's query tile; the last holding a key i sees
                for (int t = 0; t < nt; t++) {
                    if (first[t] <= i / 64) visited = visited == t ? t + 1 : -1000;  // must be a prefix 0..k
                    for (int j = 128 * t; j < N && j < 128 * (t + 1); j++)
                        if (sees(i, j, F)) needed = t + 1;
                }
                if (dq[i] != visited || dq[i] < needed) {
                    if (!bad++)
                        snprintf(detail, sizeof detail, "N %d F %d row %d: dQ sums %d key tiles, visited %d (-1000 "
                                 "or less: not a prefix), needs %d", N, F, i, dq[i], visited, needed);
                }
            }
            free(fwd);
            free(first);
            free(dq);
        }
    TEST_CHECK(GROUP " frame-causal tile plan (host only, 80 N x F pairs)", bad == 0, "%d mismatches; first: %s",
               bad, detail);
}

int main(void) {
    check_workspace_contract();
    check_tile_plan();
    char reason[256];
    if (cuda_test_no_device(reason, sizeof reason)) {
        TEST_SKIP(GROUP, reason);
        return 0;
    }
    struct cudaDeviceProp prop;
    CU(cudaGetDeviceProperties(&prop, 0));
    printf("INFO device 0: %s, compute capability %d.%d\n", prop.name, prop.major, prop.minor);
    if (prop.major != 9 || prop.minor != 0) {
        char reason[256];
        snprintf(reason, sizeof reason, "device 0 is compute capability %d.%d; the sm_90a kernel runs on 9.0 only",
                 prop.major, prop.minor);
        TEST_SKIP(GROUP, reason);
        return 0;
    }
    cpu = backend_cpu_create(0, 0);
    setenv("JEPA_ATTN_SM90", "1", 1);
    unsetenv("JEPA_ATTN_SCALAR");
    // {B, N, H, hd, ft, qscale, expect_sm90}
    static const Case cases[] = {
        {2, 100, 4, 64, 0, 1.0, 1}, {2, 257, 4, 64, 0, 1.0, 1}, {2, 1568, 4, 64, 0, 1.0, 1},
        {2, 257, 4, 64, 0, 4.0, 1}, {1, 1, 2, 64, 0, 1.0, 1},
        // every other head dim: a partial CTA (N 100) and a 1-key tail tile (N 257)
        {2, 100, 3, 24, 0, 1.0, 1}, {2, 257, 3, 24, 0, 1.0, 1}, {2, 100, 3, 32, 0, 1.0, 1},
        {2, 257, 3, 32, 0, 1.0, 1}, {2, 100, 3, 80, 0, 1.0, 1}, {2, 257, 3, 80, 0, 1.0, 1},
        {2, 100, 3, 88, 0, 1.0, 1}, {2, 257, 3, 88, 0, 1.0, 1}, {2, 100, 3, 128, 0, 1.0, 1},
        {2, 257, 3, 128, 0, 1.0, 1},
        // frame-causal: frames of 16, 100 (across tile edges), 256 (whole future key tiles skipped)
        {2, 257, 3, 64, 16, 1.0, 1}, {2, 300, 3, 64, 100, 4.0, 1}, {1, 1024, 2, 64, 256, 1.0, 1},
        {2, 300, 3, 128, 100, 1.0, 1}, {1, 1024, 2, 128, 256, 1.0, 1}, {2, 257, 3, 32, 16, 1.0, 1},
        {2, 300, 3, 24, 100, 1.0, 1}, {2, 300, 3, 88, 100, 1.0, 1},
        {2, 257, 4, 48, 0, 1.0, 0},  // hd 48: no instantiation, the mma.sync path
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i]);
    // {B, N, H, hd, ft, small_ws, expect_sm90, ordered}
    static const BwdCase bwd_cases[] = {
        {2, 100, 3, 64, 0, 0, 1, 0}, {2, 64, 3, 64, 0, 0, 1, 0}, {2, 257, 3, 64, 0, 0, 1, 0},
        {1, 1568, 2, 64, 0, 0, 1, 0}, {2, 257, 3, 64, 0, 0, 1, 1}, {1, 1568, 2, 64, 0, 0, 1, 1},
        {2, 257, 3, 24, 0, 0, 1, 0}, {2, 257, 3, 32, 0, 0, 1, 0}, {2, 257, 3, 80, 0, 0, 1, 0},
        {2, 257, 3, 88, 0, 0, 1, 0}, {2, 257, 3, 128, 0, 0, 1, 0}, {2, 100, 3, 128, 0, 0, 1, 1},
        // frame-causal, both dQ schemes
        {2, 257, 3, 64, 16, 0, 1, 0}, {2, 300, 3, 64, 100, 0, 1, 0}, {1, 1024, 2, 64, 256, 0, 1, 0},
        {1, 1024, 2, 64, 256, 0, 1, 1}, {2, 300, 3, 128, 100, 0, 1, 0}, {2, 300, 3, 128, 100, 0, 1, 1},
        {2, 257, 3, 24, 16, 0, 1, 0}, {2, 300, 3, 88, 100, 0, 1, 0},
        {2, 257, 3, 48, 0, 0, 0, 0},  // hd 48: no instantiation
        {2, 257, 3, 64, 0, 1, 0, 0},  // workspace sized without the partials
    };
    for (size_t i = 0; i < sizeof bwd_cases / sizeof bwd_cases[0]; i++) run_bwd_case(&bwd_cases[i]);
    unsetenv("JEPA_ATTN_SM90");
    backend_destroy(cpu);
    TEST_EXIT();
}
#endif
