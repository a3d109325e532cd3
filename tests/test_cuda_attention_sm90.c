// test_cuda_attention_sm90.c: the opt-in Hopper forward (kernels/attention_sm90.cu, JEPA_ATTN_SM90=1) against the
// CPU reference (attention_cpu.c through a cpu-f32 Backend) on fresh random bf16 inputs, head dim 64, non-causal:
//   - B2 H4 at N 100 (one partial key tile, one partial query CTA), 257 (a 1-key tail tile), 1568 (13 tiles, tail of
//     32), and N 257 with q x4 (peaky rows: the online rescaling across tiles matters); every (b,h) checked;
//   - out and lse poisoned (0xFF = NaN) before each run, so an unwritten element fails;
//   - the sm_90a kernel must actually have run (its launch counter moved), and an ineligible call (frame-causal,
//     or hd 32) with the variable set must take the existing path and still be right.
// SKIP with the reason without a CUDA build, without a device, or on a device that is not compute capability 9.0.
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

long cuda_attention_sm90_launches(void);  // kernels/attention_sm90.cu

// Tolerances as tests/test_cuda_attention.c (the same bf16 rounding of P before P V and of out: ~2e-3 expected;
// a wrong tile, swizzle or mask moves out by 1e-1 or more). lse: fp32 on both sides, ~1e-6 expected.
#define TOL_OUT 1e-2
#define TOL_LSE 2e-5
#define TOL_LSE_ABS 1e-4
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
    if (c->qscale != 1.0)
        for (int b = 0; b < B; b++)
            for (int n = 0; n < N; n++)
                for (int h = 0; h < H; h++)
                    for (int d = 0; d < hd; d++) {
                        const size_t i = qkv_index(&z, b, n, 0, h, d);
                        qkv[i] = bf16_from_f32(f32_from_bf16(qkv[i]) * (float)c->qscale);
                    }
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
            for (int n = 0; n < N; n++)
                for (int s = 0; s < 3; s++)
                    for (int d = 0; d < hd; d++)
                        h_qkv[((size_t)n * 3 + s) * hd + d] = f32_from_bf16(qkv[qkv_index(&z, b, n, s, h, d)]);
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

int main(void) {
    int count = 0;
    const cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        char reason[256];
        snprintf(reason, sizeof reason, "no CUDA device (%s)",
                 err != cudaSuccess ? cudaGetErrorString(err) : "cudaGetDeviceCount found 0 devices");
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
        {2, 257, 4, 64, 16, 1.0, 0},  // frame-causal: not this kernel's
        {2, 257, 4, 32, 0, 1.0, 0},   // hd 32: not this kernel's
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i]);
    unsetenv("JEPA_ATTN_SM90");
    backend_destroy(cpu);
    TEST_EXIT();
}
#endif
