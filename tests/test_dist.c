// test_dist.c: host/dist.c. Run alone: the launch detection (precedence of the three launchers), the gradient
// buckets (disjoint, covering, reverse layer order) and the bf16 rounding. Run under mpirun (tests/test_dist_mpi.sh):
// every collective against its formula on rank-dependent values, and the gradient buckets end to end.
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "dist.h"
#include "model.h"
#include "test.h"
#include "tiny_model.h"

static const char *launch_vars[] = {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
                                    "SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_LOCALID", "RANK", "WORLD_SIZE",
                                    "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"};
enum { N_VARS = sizeof launch_vars / sizeof launch_vars[0] };

static void test_detect(void) {
    char *saved[N_VARS];
    for (int i = 0; i < N_VARS; i++) {
        const char *v = getenv(launch_vars[i]);
        saved[i] = v ? strdup(v) : NULL;
        unsetenv(launch_vars[i]);
    }
    DistLaunch l;
    dist_detect(&l);
    TEST_CHECK("dist detect none", l.launcher == DIST_LAUNCH_NONE && l.world == 1 && l.rank == 0, "launcher %d",
               l.launcher);
    setenv("RANK", "3", 1), setenv("WORLD_SIZE", "8", 1), setenv("LOCAL_RANK", "1", 1);
    setenv("MASTER_ADDR", "node7", 1), setenv("MASTER_PORT", "4242", 1);
    dist_detect(&l);
    TEST_CHECK("dist detect torchrun-style", l.launcher == DIST_LAUNCH_ENV && l.rank == 3 && l.world == 8 &&
               l.local_rank == 1 && !strcmp(l.master_addr, "node7") && l.master_port == 4242,
               "launcher %d rank %d world %d local %d %s:%d", l.launcher, l.rank, l.world, l.local_rank,
               l.master_addr, l.master_port);
    setenv("SLURM_PROCID", "5", 1), setenv("SLURM_STEP_NUM_TASKS", "16", 1), setenv("SLURM_LOCALID", "2", 1);
    dist_detect(&l);
    TEST_CHECK("dist detect srun over torchrun", l.launcher == DIST_LAUNCH_SLURM && l.rank == 5 && l.world == 16 &&
               l.local_rank == 2, "launcher %d rank %d world %d", l.launcher, l.rank, l.world);
    setenv("OMPI_COMM_WORLD_RANK", "1", 1), setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
    setenv("OMPI_COMM_WORLD_LOCAL_RANK", "0", 1);
    dist_detect(&l);
    TEST_CHECK("dist detect mpirun over srun", l.launcher == DIST_LAUNCH_MPI && l.rank == 1 && l.world == 2 &&
               l.local_rank == 0, "launcher %d rank %d world %d", l.launcher, l.rank, l.world);
    for (int i = 0; i < N_VARS; i++) {
        if (saved[i]) setenv(launch_vars[i], saved[i], 1);
        else unsetenv(launch_vars[i]);
        free(saved[i]);
    }
}

// Buckets: disjoint, covering [0, total), block buckets first in reverse layer order (predictor, then encoder).
static void test_buckets(Model *m, double mb, const char *name) {
    DistGrads *g = dist_grads_create(m, mb, 0);
    const size_t total = m->table.total;
    char *seen = calloc(total, 1);
    int ok = 1;
    size_t prev_begin = total;
    int ascents = 0;  // predictor blocks down, encoder blocks down (below them in the table), then the rest
    for (int k = 0; k < dist_grads_buckets(g); k++) {
        size_t b, e;
        dist_grads_bucket(g, k, &b, &e);
        for (size_t i = b; i < e; i++) ok &= !seen[i]++;
        ok &= b < e;
        ascents += k > 0 && b > prev_begin;
        prev_begin = b;
    }
    size_t b0, e0;
    dist_grads_bucket(g, 0, &b0, &e0);
    const StackDims *p = &m->dims.pred;
    const size_t last_block = m->table.tensors[p->first_block_tensor + (p->depth - 1) * TENSORS_PER_BLOCK].offset;
    ok &= ascents == 1 && b0 <= last_block && last_block < e0;
    for (size_t i = 0; i < total; i++) ok &= seen[i] == 1;
    TEST_CHECK(name, ok, "%d buckets do not tile the %zu gradients once, in reverse order", dist_grads_buckets(g),
               total);
    free(seen);
    dist_grads_free(g);
}

static void test_bf16(void) {
    const float one_half_ulp = 1.0f + 1.0f / 256, three_half = 1.0f + 3.0f / 256;
    int ok = dist_bf16_from_float(1.0f) == 0x3f80 && dist_bf16_from_float(one_half_ulp) == 0x3f80 &&
             dist_bf16_from_float(three_half) == 0x3f82 && dist_bf16_from_float(-2.0f) == 0xc000 &&
             dist_bf16_to_float(0x3f82) == 1.0f + 2.0f / 128;
    const uint16_t nan = dist_bf16_from_float(NAN);
    ok &= isnan(dist_bf16_to_float(nan));
    TEST_CHECK("dist bf16 round to nearest even", ok, "bf16 conversions");
}

// The TCP rendezvous (NCCL's unique id without MPI) between forked processes with torchrun-style variables; then
// a rank alone, whose rank 0 never comes: it must exit 1 within the timeout naming the operation.
static pid_t spawn_rank(int rank, int world, int port, double timeout, const char *err_path) {
    fflush(stdout);  // the child exits through paths that flush it: nothing of the parent's may be in the buffer
    const pid_t pid = fork();
    if (pid != 0) return pid;
    char v[32];
    snprintf(v, sizeof v, "%d", rank), setenv("RANK", v, 1);
    snprintf(v, sizeof v, "%d", world), setenv("WORLD_SIZE", v, 1);
    snprintf(v, sizeof v, "%d", port), setenv("MASTER_PORT", v, 1);
    setenv("MASTER_ADDR", "127.0.0.1", 1);
    unsetenv("OMPI_COMM_WORLD_RANK"), unsetenv("SLURM_PROCID");
    if (err_path && !freopen(err_path, "w", stderr)) _exit(3);
    dist_init(timeout);
    unsigned char buf[300];
    for (int i = 0; i < 300; i++) buf[i] = rank == 0 ? (unsigned char)(i * 7 + 1) : 0;
    dist_tcp_broadcast(buf, sizeof buf, "the test rendezvous");
    int ok = 1;
    for (int i = 0; i < 300; i++) ok &= buf[i] == (unsigned char)(i * 7 + 1);
    _exit(ok ? 0 : 1);
}

static void test_tcp_rendezvous(void) {
    const int port = 20000 + (int)(getpid() % 20000);
    pid_t pids[3];
    for (int r = 0; r < 3; r++) pids[r] = spawn_rank(r, 3, port, 20, NULL);
    int ok = 1;
    for (int r = 0; r < 3; r++) {
        int status;
        ok &= waitpid(pids[r], &status, 0) == pids[r] && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    }
    TEST_CHECK("dist TCP rendezvous: rank 0's bytes reach 3 ranks", ok, "a rank failed (port %d)", port);
    char err_path[] = "/tmp/jepa_test_dist_XXXXXX";
    const int fd = mkstemp(err_path);
    if (fd >= 0) close(fd);
    const double t0 = now_seconds();
    const pid_t lone = spawn_rank(1, 2, port + 1, 1.5, err_path);
    int status;
    waitpid(lone, &status, 0);
    const double took = now_seconds() - t0;
    char msg[1024] = "";
    FILE *f = fopen(err_path, "r");
    if (f) {
        if (!fgets(msg, sizeof msg, f)) msg[0] = 0;
        fclose(f);
    }
    unlink(err_path);
    // 1.5 s timeout; up to 0.2 s between connection attempts and process start-up on 2 busy cores
    TEST_CHECK("dist TCP rendezvous: a missing rank 0 -> exit 1 within dist.timeout_s naming the operation",
               WIFEXITED(status) && WEXITSTATUS(status) == 1 && took < 1.5 + 1.0 &&
               strstr(msg, "rank 1") && strstr(msg, "the test rendezvous did not complete"),
               "status %d after %.1f s: %s", status, took, msg);
}

// ---- under mpirun

static float value_of(int rank, size_t i) { return (float)(rank + 1) * 0.5f + (float)(i % 7); }

static void test_collectives(void) {
    const int R = dist_rank(), W = dist_world();
    enum { N = 1000 };
    float *x = malloc(N * sizeof(float)), *y = malloc((size_t)N * W * sizeof(float));
    for (size_t i = 0; i < N; i++) x[i] = value_of(R, i);
    dist_allreduce(x, N, DIST_FLOAT, DIST_SUM, "test all-reduce");
    int ok = 1;
    for (size_t i = 0; i < N; i++) {
        double want = 0;
        for (int r = 0; r < W; r++) want += value_of(r, i);
        ok &= fabs(x[i] - want) <= 1e-5 * want;  // a few fp32 additions of values < 20
    }
    TEST_CHECK("dist all-reduce sum", ok, "rank %d", R);
    int mx = R * 10;
    dist_allreduce_host(&mx, 1, DIST_INT, DIST_MAX, "test max");
    TEST_CHECK("dist all-reduce max", mx == (W - 1) * 10, "rank %d got %d", R, mx);
    // reduce-scatter: rank r gets the sum of chunk r
    for (size_t i = 0; i < (size_t)N * W; i++) y[i] = value_of(R, i);
    dist_reduce_scatter(y, x, N, DIST_FLOAT, "test reduce-scatter");
    ok = 1;
    for (size_t i = 0; i < N; i++) {
        double want = 0;
        for (int r = 0; r < W; r++) want += value_of(r, (size_t)R * N + i);
        ok &= fabs(x[i] - want) <= 1e-5 * want;
    }
    TEST_CHECK("dist reduce-scatter", ok, "rank %d", R);
    for (size_t i = 0; i < N; i++) x[i] = value_of(R, i);
    dist_allgather(x, y, N, DIST_FLOAT, "test all-gather");
    ok = 1;
    for (int r = 0; r < W; r++)
        for (size_t i = 0; i < N; i++) ok &= y[(size_t)r * N + i] == value_of(r, i);
    TEST_CHECK("dist all-gather", ok, "rank %d", R);
    for (size_t i = 0; i < N; i++) x[i] = value_of(R, i);
    dist_broadcast(x, N, DIST_FLOAT, W - 1, "test broadcast");
    ok = 1;
    for (size_t i = 0; i < N; i++) ok &= x[i] == value_of(W - 1, i);
    TEST_CHECK("dist broadcast", ok, "rank %d", R);
    dist_barrier("test barrier");
    TEST_PASS("dist barrier");
    free(x), free(y);
}

// The buckets end to end: gradients of rank-dependent values, the hook called as the backward would call it.
static void test_grad_sync(Model *m, int bf16) {
    const int R = dist_rank(), W = dist_world();
    const size_t total = m->table.total;
    DistGrads *g = dist_grads_create(m, 0.002, bf16);  // ~500-element buckets: several per stack
    float *grads = m->grads;  // the CPU backend's memory is the host's
    for (size_t i = 0; i < total; i++) grads[i] = value_of(R, i) / 8;
    dist_grads_begin_micro(g, 1);
    for (int gen = 0; gen < m->dims.num_masks; gen++) {
        for (int l = m->dims.pred.depth - 1; l >= 0; l--) m->on_block_grads(m->hook_ctx, MODULE_PREDICTOR, l);
        for (int l = m->dims.enc.depth - 1; l >= 0; l--) m->on_block_grads(m->hook_ctx, MODULE_ENCODER, l);
    }
    dist_grads_finish(g);
    double worst = 0;
    for (size_t i = 0; i < total; i++) {
        double want = 0;
        for (int r = 0; r < W; r++) want += value_of(r, i) / 8;
        worst = fmax(worst, fabs(grads[i] - want) / want);
    }
    // fp32: exact sums of a few short binary fractions; bf16: 8-bit mantissas, one rounding per partial sum
    const double tol = bf16 ? W * 1.0 / 128 : 1e-6;
    char name[64];
    snprintf(name, sizeof name, "dist gradient buckets %s (%d buckets)", bf16 ? "bf16" : "fp32",
             dist_grads_buckets(g));
    TEST_CHECK(name, worst <= tol, "rank %d: worst relative error %.3e > %.1e", R, worst, tol);
    dist_grads_free(g);
}

int main(void) {
    DistLaunch l;
    dist_detect(&l);
    Config cfg;
    tiny_config(&cfg, 2);
    Backend *be = backend_cpu_create(0, 1);
    if (l.launcher == DIST_LAUNCH_NONE) {
        test_detect();
        test_bf16();
        test_tcp_rendezvous();
        Model *m = model_create(&cfg, be);
        test_buckets(m, 0.002, "dist buckets small");
        test_buckets(m, 25, "dist buckets 25 MiB");
        model_free(m);
    } else {
        dist_init(20);
        dist_attach(be);
        if (dist_rank() != 0 && !freopen("/dev/null", "w", stdout)) return 1;  // rank 0 reports for all
        test_collectives();
        Model *m = model_create(&cfg, be);
        test_grad_sync(m, 0);
        test_grad_sync(m, 1);
        model_free(m);
        int failures = test_failures_;
        dist_allreduce_host(&failures, 1, DIST_INT, DIST_SUM, "test failure count");
        if (dist_rank() == 0)
            TEST_CHECK("dist every rank passed", failures == 0, "%d failures on other ranks", failures);
        dist_finalize();
    }
    backend_destroy(be);
    TEST_EXIT();
}
