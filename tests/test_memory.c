// test_memory.c: activation checkpointing every k blocks (model.checkpoint_every) and the memory plan: gradients
// bitwise those of no checkpointing for k = 0..3 (f32 and f64 CPU backends), the activation arena shrinking as more
// blocks are recomputed by exactly the blocks dropped, the arena planned for any split of the clip into context and
// targets, and the CPU backend's count of its allocations equal to the plan.
#include <string.h>

#include "backend.h"
#include "common.h"
#include "config.h"
#include "model.h"
#include "model_check.h"
#include "test.h"
#include "tiny_model.h"

// Depths 5 and 4, so that k = 2 and 3 recompute the last block in one stack (a shared scratch) and not in the other
// (the recomputed block borrows the storage of the saved block after it).
static void deep_tiny_config(Config *cfg, int every) {
    tiny_config(cfg, 2);
    cfg->model.depth = 5;
    cfg->model.pred_depth = 4;
    cfg->model.checkpoint_every = every;
}

// Recomputing a block runs the same ops on the same inputs, so the gradients are bitwise equal, not merely close.
static void test_gradients_bitwise(void) {
    const char *names[2] = {"f32", "f64"};
    for (int dp = 0; dp < 2; dp++) {
        Config cfg;
        deep_tiny_config(&cfg, 0);
        size_t total;
        double *ref = cpu_step_gradients(&cfg, dp, 1, 1, &total);
        double norm = 0;
        for (size_t i = 0; i < total; i++) norm += ref[i] * ref[i];
        char name[96];
        snprintf(name, sizeof name, "memory: gradients are not trivially zero (%s)", names[dp]);
        TEST_CHECK(name, norm > 1e-12, "norm^2 %.3e", norm);
        for (int k = 1; k <= 3; k++) {
            deep_tiny_config(&cfg, k);
            size_t n;
            double *g = cpu_step_gradients(&cfg, dp, 1, 1, &n);
            size_t first = 0;
            while (first < total && memcmp(&g[first], &ref[first], sizeof(double)) == 0) first++;
            snprintf(name, sizeof name, "memory: checkpoint_every %d gradients bitwise those without (%s)", k, names[dp]);
            TEST_CHECK(name, n == total && first == total, "first difference at %zu: %.17g vs %.17g", first,
                       first < total ? g[first] : 0.0, first < total ? ref[first] : 0.0);
            free(g);
        }
        free(ref);
    }
}

static size_t aligned(size_t bytes) { return (bytes + 255) & ~(size_t)255; }  // arena_take's alignment

// Bytes of one block's saved activations at B x n tokens (BlockActs in model.h: ln1, its mean and rstd, qkv, att,
// lse, x_mid, ln2, its mean and rstd, fc1, gelu), each carved with the arena's alignment.
static size_t block_bytes(const StackDims *s, ElemSizes z, size_t B, size_t n) {
    const size_t R = B * n, C = s->width, Hd = s->mlp_hidden;
    return 2 * aligned(R * C * z.esize) + 4 * aligned(R * z.ssize) + aligned(R * 3 * C * z.esize) +
           2 * aligned(R * C * z.esize) + aligned(B * s->heads * n * z.ssize) + 2 * aligned(R * Hd * z.esize);
}

// Blocks of storage k saves over k = 0: the recomputed blocks, less one shared scratch when the last block is one.
static size_t blocks_dropped(int depth, int k) {
    if (k == 0) return 0;
    const size_t recomputed = (size_t)(depth - 1) / k + 1;  // l = 0, k, 2k, ... < depth
    return recomputed - ((depth - 1) % k == 0);
}

// ViT-L/16 at batch 24 in bf16 and the deep tiny model in f32: the plan falls strictly from k = 0 through 3, 2, 1,
// by exactly the blocks dropped from both stacks at the largest context (the whole clip) and predictor length.
static void test_arena_shrinks(void) {
    const char *names[2] = {"ViT-L/16 bf16", "tiny f32"};
    for (int which = 0; which < 2; which++) {
        Config cfg;
        if (which == 0) config_defaults(&cfg), cfg.data.batch_size = 24;
        else deep_tiny_config(&cfg, 0);
        const ElemSizes z = which == 0 ? (ElemSizes){2, 4} : (ElemSizes){4, 4};
        size_t plan[4];
        int exact = 1;
        ModelDims d;
        for (int k = 0; k < 4; k++) {
            cfg.model.checkpoint_every = k;
            model_dims_from_config(&cfg, &d);
            plan[k] = model_plan_arena_max(&d, z, cfg.data.batch_size);
            const size_t B = cfg.data.batch_size, N = d.tokens;
            const size_t saving = blocks_dropped(d.enc.depth, k) * block_bytes(&d.enc, z, B, N) +
                                  blocks_dropped(d.pred.depth, k) * block_bytes(&d.pred, z, B, N);
            if (plan[0] - plan[k] != saving) exact = 0;
        }
        char name[128];
        snprintf(name, sizeof name, "memory: arena plan falls as checkpointing grows, k 0 > 3 > 2 > 1 (%s)",
                 names[which]);
        TEST_CHECK(name, plan[0] > plan[3] && plan[3] > plan[2] && plan[2] > plan[1], "%zu %zu %zu %zu bytes",
                   plan[0], plan[3], plan[2], plan[1]);
        snprintf(name, sizeof name, "memory: the saving is exactly the recomputed blocks' activations (%s)",
                 names[which]);
        TEST_CHECK(name, exact, "plans %zu %zu %zu %zu bytes", plan[0], plan[1], plan[2], plan[3]);
        if (which == 0)
            printf("     (ViT-L/16 batch 24 arena: k=0 %.2f GiB, k=3 %.2f, k=2 %.2f, k=1 %.2f)\n",
                   plan[0] / 1073741824.0, plan[3] / 1073741824.0, plan[2] / 1073741824.0, plan[1] / 1073741824.0);
    }
}

// The arena holds any masks: every split with n_ctx + n_tgt <= tokens (the lists partition the clip) fits, and the
// plan is no larger than the largest split needs (so it is that split's), and below the old every-list-as-long-as-
// the-clip plan.
static void test_arena_covers_masks(void) {
    Config cfg;
    deep_tiny_config(&cfg, 2);
    ModelDims d;
    model_dims_from_config(&cfg, &d);
    const ElemSizes z = {4, 4};
    const int B = 2, N = d.tokens;
    const size_t max = model_plan_arena_max(&d, z, B);
    size_t largest = 0;
    int fits = 1;
    for (int nc = 0; nc <= N; nc++)
        for (int nt = 0; nc + nt <= N; nt += 3) {
            const int ctx[2] = {nc, nc}, tgt[2] = {nt, N - nc};
            const size_t need = model_plan_arena(&d, z, B, ctx, tgt);
            if (need > max) fits = 0;
            if (need > largest) largest = need;
        }
    TEST_CHECK("memory: arena plan holds every split of the clip into context and targets", fits && largest == max,
               "plan %zu bytes, largest split needs %zu", max, largest);
    const int all[2] = {N, N};
    const size_t old = model_plan_arena(&d, z, B, all, all);
    TEST_CHECK("memory: arena plan below every list as long as the clip", max < old, "%zu vs %zu bytes", max, old);
}

// The CPU backend counts what its allocations hold: now and peak through alloc and release, and a model's peak
// equal to the memory plan of the CPU's sizes (model_create allocates the plan's sizes and nothing else).
static void test_backend_counts(void) {
    Backend *be = backend_cpu_create(0, 1);
    size_t now = 1, peak = 1;
    be->memory(be, &now, &peak);
    TEST_CHECK("memory: a new CPU backend holds nothing", now == 0 && peak == 0, "now %zu, peak %zu", now, peak);
    void *a = backend_alloc(be, "a", 1000), *b = backend_alloc(be, "b", 3000);
    be->release(be, a);
    void *c = backend_alloc(be, "c", 500);
    be->memory(be, &now, &peak);
    TEST_CHECK("memory: CPU backend counts alloc and release (now 3500, peak 4000)", now == 3500 && peak == 4000,
               "now %zu, peak %zu", now, peak);
    be->release(be, b), be->release(be, c);
    backend_destroy(be);

    for (int k = 0; k <= 1; k++) {
        Config cfg;
        deep_tiny_config(&cfg, k);
        be = backend_cpu_create(0, 1);
        Model *m = model_create(&cfg, be);
        const MemoryPlan plan = model_plan_memory(&m->dims, &m->table, (BackendSizes){{4, 4}, 4, 0}, 2);
        be->memory(be, &now, &peak);
        char name[96];
        snprintf(name, sizeof name, "memory: CPU model's allocations equal the plan (checkpoint_every %d)", k);
        TEST_CHECK(name, peak == plan.total && now == plan.total && plan.arena == m->arena.capacity,
                   "peak %zu, now %zu, plan %zu bytes (arena %zu vs %zu)", peak, now, plan.total, plan.arena,
                   m->arena.capacity);
        model_free(m);
        be->memory(be, &now, &peak);
        snprintf(name, sizeof name, "memory: model_free releases everything it allocated (checkpoint_every %d)", k);
        TEST_CHECK(name, now == 0, "%zu bytes still counted", now);
        backend_destroy(be);
    }
}

// The plan on the CUDA backend's sizes: fp32 masters, gradients, moments and target; bf16 working copies and
// activations; the input slots in bf16 plus the backend's fp32 staging copies.
static void test_cuda_plan(void) {
    Config cfg;
    config_defaults(&cfg);
    ModelDims d;
    TensorTable t;
    model_dims_from_config(&cfg, &d);
    model_build_table(&d, &t);
    const size_t P = t.total, E = table_module_numel(&t, MODULE_ENCODER), B = 24;
    const MemoryPlan p = model_plan_memory(&d, &t, (BackendSizes){{2, 4}, 4, 4}, (int)B);
    const size_t clip = B * 16 * 224 * 224 * 3;
    TEST_CHECK("memory: CUDA plan of ViT-L/16 (fp32 states, bf16 copies, input slots)",
               p.master == 4 * P && p.working == 2 * P && p.grads == 4 * P && p.moments == 8 * P &&
                   p.target == 4 * E && p.target_working == 2 * E && p.inputs == 2 * clip * 6 &&
                   p.arena == model_plan_arena_max(&d, (ElemSizes){2, 4}, (int)B),
               "master %zu working %zu moments %zu inputs %zu for %zu parameters", p.master, p.working, p.moments,
               p.inputs, P);
    table_free(&t);
}

int main(void) {
    test_gradients_bitwise();
    test_arena_shrinks();
    test_arena_covers_masks();
    test_backend_counts();
    test_cuda_plan();
    TEST_EXIT();
}
