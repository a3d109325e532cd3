// test_cuda_rope.c: the 3D RoPE kernel (kernels/rope.cu, cuda_rope_qk) against the CPU reference (kernels/rope_cpu.c
// through the cpu-f32 Backend) on the same bf16-exact inputs, forward and transpose, with grid-index positions and
// with pos NULL, at small odd shapes and at V-JEPA 2's: the giant encoder (22 heads of 64, 2048 tokens of a 8x16x16
// grid), ViT-H heads of 80 (26 of them rotate per axis), and the predictor (12 heads of 32) on gathered positions.
// Checks per case: relative norm error against fp32, the fraction of bf16 values that differ from the rounded fp32
// reference, and v plus each head's unrotated tail bitwise unchanged (a stray write shows there).
// Then one training step of a tiny rope3d model on both backends (loss, and gradients with the loss signs fixed), so
// the model's use of the op on the GPU (context positions, the predictor's [context, targets] positions, the
// transposed backward) is checked against the CPU.
// Without a CUDA device (or built without nvcc) it prints one SKIP line and exits 0.
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "backend.h"
#include "backend_cuda.h"
#include "bf16_host.h"
#include "common.h"
#include "config.h"
#include "data.h"
#include "masks.h"
#include "model.h"
#include "model_check.h"
#include "rng.h"
#include "test.h"
#include "tiny_model.h"

#ifndef JEPA_CUDA
int main(void) {
    printf("SKIP cuda rope: no CUDA device (built without CUDA: nvcc was not found at build time)\n");
    return 0;
}
#else

#include <cuda_runtime_api.h>

#include "cuda_ops.h"

#define SEED 1515
// The GPU and the CPU do the same fp32 operations on the same bf16 inputs with the same fp32 cos/sin (both rounded
// from double); they differ by FMA contraction (~1 fp32 ulp) before the one rounding to bf16. So the relative norm
// error is that rounding, at most bf16's unit roundoff u = 2^-8 = 3.9e-3; 4.5e-3 leaves slack. A wrong angle or
// layout is O(1e-1).
#define BF16_TOL 4.5e-3
// A ~1-ulp fp32 difference flips the bf16 rounding of ~1e-4 of the elements; a subtly wrong angle (fp32 pow instead
// of double, a frequency off by one) flips several percent. 1% separates the two.
#define BF16_FLIP_FRAC 0.01

#include "cuda_test.h"

static Backend *cpu;
static uint64_t draws = 0;

typedef struct {
    const char *name;
    int B, N, H, hd, gt, gh, gw;
    int gathered;  // 1: positions are random grid indices (context/predictor tokens); 0: pos NULL (all tokens)
} RopeCase;

static void run_case(const RopeCase *c, int transpose) {
    const size_t n = (size_t)c->B * c->N * 3 * c->H * c->hd;
    Rng r = rng_stream(SEED, RNG_TEST, 0, draws++);
    float *x = xmalloc(n * sizeof(float)), *ref = xmalloc(n * sizeof(float));
    uint16_t *h = xmalloc(n * sizeof(uint16_t)), *got = xmalloc(n * sizeof(uint16_t));
    for (size_t i = 0; i < n; i++) {
        h[i] = bf16_from_f32((float)rng_normal(&r));
        x[i] = f32_from_bf16(h[i]);
    }
    int32_t *pos = NULL, *dpos = NULL;
    if (c->gathered) {
        pos = xmalloc((size_t)c->B * c->N * sizeof(int32_t));
        for (int i = 0; i < c->B * c->N; i++) pos[i] = (int32_t)rng_randint(&r, 0, (int64_t)c->gt * c->gh * c->gw);
        CU(cudaMalloc((void **)&dpos, (size_t)c->B * c->N * sizeof(int32_t)));
        CU(cudaMemcpy(dpos, pos, (size_t)c->B * c->N * sizeof(int32_t), cudaMemcpyHostToDevice));
    }
    // CPU reference in fp32
    memcpy(ref, x, n * sizeof(float));
    cpu->rope_qk(cpu, ref, pos, c->B, c->N, c->H, c->hd, c->gh, c->gw, transpose);
    // GPU
    void *d = NULL;
    CU(cudaMalloc(&d, n * sizeof(uint16_t)));
    CU(cudaMemcpy(d, h, n * sizeof(uint16_t), cudaMemcpyHostToDevice));
    cuda_rope_qk(NULL, d, dpos, c->B, c->N, c->H, c->hd, c->gh, c->gw, transpose);
    CU(cudaDeviceSynchronize());
    CU(cudaGetLastError());
    CU(cudaMemcpy(got, d, n * sizeof(uint16_t), cudaMemcpyDeviceToHost));
    // compare
    const int S = 2 * ((c->hd / 3) / 2);
    double num = 0, den = 0;
    size_t flips = 0, rotated = 0, stray = 0;
    for (size_t i = 0; i < n; i++) {
        const size_t dim = i % c->hd, part = (i / ((size_t)c->H * c->hd)) % 3;
        if (part == 2 || dim >= (size_t)(3 * S)) {
            stray += got[i] != h[i];
            continue;
        }
        const double g = f32_from_bf16(got[i]), e = ref[i];
        num += (g - e) * (g - e);
        den += e * e;
        flips += got[i] != bf16_from_f32(ref[i]);
        rotated++;
    }
    const double err = sqrt(num / den), frac = (double)flips / (double)rotated;
    char name[160];
    snprintf(name, sizeof name, "cuda rope %s %s: rel err %.2e (< %g), flips %.2e (< %g)", c->name,
             transpose ? "backward" : "forward", err, BF16_TOL, frac, BF16_FLIP_FRAC);
    TEST_CHECK(name, err < BF16_TOL && frac < BF16_FLIP_FRAC, "out of bounds");
    snprintf(name, sizeof name, "cuda rope %s %s leaves v and the unrotated dims alone", c->name,
             transpose ? "backward" : "forward");
    TEST_CHECK(name, stray == 0, "%zu elements changed", stray);
    CU(cudaFree(d));
    if (dpos) CU(cudaFree(dpos));
    free(x), free(ref), free(h), free(got), free(pos);
}

// ---- one training step of a tiny RoPE model, cuda vs cpu (the bounds of tests/test_cuda_backend.c's training
// step: loss within 1e-2 relative, each module's gradients within 3e-2 with predictions moved +-5 off the targets so
// the L1 signs cannot flip on bf16 noise; models_same_start: tests/model_check.h).
static void test_rope_training_step(void) {
    Config cfg;
    tiny_config(&cfg, 2);
    strcpy(cfg.model.pos_embed, "rope3d");
    cfg.model.shared_mask_token = 1;
    cfg.model.embed_dim = 48, cfg.model.num_heads = 2;        // heads of 24: 8+8+8 rotated
    cfg.model.pred_embed_dim = 32, cfg.model.pred_num_heads = 2;  // heads of 16: 4+4+4 rotated, 4 not
    Backend *g = backend_cuda_create(0, 1);
    Model *mc = model_create(&cfg, cpu), *mg = model_create(&cfg, g);
    DataSource *ds = data_open(&cfg);
    Batch b;
    batch_make(&cfg, mc, ds, 3, 0, 2, &b);
    for (size_t i = 0, n = data_clip_floats(ds) * 2; i < n; i++) b.clips[i] = f32_from_bf16(bf16_from_f32(b.clips[i]));
    data_close(ds);
    Model *both[2] = {mc, mg};
    StepStats st[2];
    models_same_start(mc, mg, 0);
    for (int s = 0; s < 2; s++) {
        model_zero_step(both[s]);
        model_micro_step(both[s], &b.mb, 1.0, 0);
        model_read_stats(both[s], &st[s]);
    }
    TEST_CHECK("cuda rope model: loss, cuda vs cpu (relative error < 1e-2)",
               fabs(st[1].loss_mean - st[0].loss_mean) < 1e-2 * fabs(st[0].loss_mean), "cuda %.6f cpu %.6f",
               st[1].loss_mean, st[0].loss_mean);
    models_same_start(mc, mg, 1);
    for (int s = 0; s < 2; s++) {
        model_zero_step(both[s]);
        model_micro_step(both[s], &b.mb, 1.0, 1);
    }
    const size_t total = mc->table.total;
    double *gc = download_master(mc, mc->grads, total), *gg = download_master(mg, mg->grads, total);
    for (int mod = 0; mod < MODULE_COUNT; mod++) {
        const size_t at = mc->table.module_begin[mod], cnt = table_module_numel(&mc->table, (ModuleId)mod);
        const double e = rel_norm_error(gg + at, gc + at, cnt);
        char name[120];
        snprintf(name, sizeof name, "cuda rope model: %s gradients, cuda vs cpu: %.2e (< 3e-2)",
                 mod == MODULE_ENCODER ? "encoder" : "predictor", e);
        TEST_CHECK(name, e < 3e-2, "relative error %.3e", e);
    }
    free(gc), free(gg);
    batch_free(&cfg, &b);
    model_free(mc), model_free(mg);
    backend_destroy(g);
}

int main(void) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        printf("SKIP cuda rope: no CUDA device (%s)\n",
               err != cudaSuccess ? cudaGetErrorString(err) : "cudaGetDeviceCount found 0 devices");
        return 0;
    }
    cpu = backend_cpu_create(0, 0);
    const RopeCase cases[] = {
        {"small odd (hd 24, 3x2x5 grid)", 2, 7, 3, 24, 3, 2, 5, 1},
        {"small all tokens (hd 26)", 1, 30, 2, 26, 3, 2, 5, 0},
        {"vitg encoder (22x64, 8x16x16, all tokens)", 2, 2048, 22, 64, 8, 16, 16, 0},
        {"vitg context (22x64, gathered)", 3, 700, 22, 64, 8, 16, 16, 1},
        {"vith (16x80, gathered, 32x24x24 grid)", 2, 1000, 16, 80, 32, 24, 24, 1},
        {"predictor (12x32, gathered)", 4, 1500, 12, 32, 8, 16, 16, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int tr = 0; tr < 2; tr++) run_case(&cases[i], tr);
    test_rope_training_step();
    backend_destroy(cpu);
    TEST_EXIT();
}
#endif
