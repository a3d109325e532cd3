// dist.c: see dist.h. Three parts: the launch (environment, MPI_Init, NCCL communicator), the collectives with
// their watchdog, and the gradient buckets.
#include "dist.h"

#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#ifdef JEPA_HAVE_MPI
#include <mpi.h>
#define MPI_CHECK(call)                                                                                       \
    do {                                                                                                      \
        const int e_ = (call);                                                                                \
        if (e_ != MPI_SUCCESS) die_internal("%s:%d: %s failed (MPI error %d)", __FILE__, __LINE__, #call, e_); \
    } while (0)
#endif

#if defined(JEPA_CUDA) && defined(JEPA_HAVE_NCCL)
#define DIST_NCCL 1
#include <nccl.h>

#include "backend_cuda.h"
#include "cuda_check.h"
#include "cuda_ops.h"
#define NCCL_CHECK(call)                                                                                      \
    do {                                                                                                      \
        const ncclResult_t e_ = (call);                                                                       \
        if (e_ != ncclSuccess) die_internal("%s:%d: %s: %s", __FILE__, __LINE__, #call, ncclGetErrorString(e_)); \
    } while (0)
// The communicator is non-blocking (so that the watchdog can abort it): a call may return ncclInProgress while NCCL
// connects; the call is then complete once ncclCommGetAsyncError stops saying so.
#define NCCL_ENQ(call, what)                                                                                  \
    do {                                                                                                      \
        const ncclResult_t q_ = (call);                                                                       \
        if (q_ == ncclInProgress) wait_nccl_ready(what);                                                      \
        else NCCL_CHECK(q_);                                                                                  \
    } while (0)

static void wait_nccl_ready(const char *what);
#endif

// ------------------------------------------------------------------------------------------------ the launch

static int env_int(const char *name, int *out) {
    const char *v = getenv(name);
    if (!v || !*v) return 0;
    char *end;
    errno = 0;
    const long x = strtol(v, &end, 10);
    if (errno || *end || x < 0 || x > 1000000)
        die_input("environment: %s='%s': expected a non-negative integer (set by the launcher)", name, v);
    *out = (int)x;
    return 1;
}

const char *dist_launcher_name(DistLauncher l) {
    static const char *names[] = {"none", "mpirun", "srun", "RANK/WORLD_SIZE"};
    return names[l];
}

void dist_detect(DistLaunch *out) {
    memset(out, 0, sizeof(*out));
    out->world = 1;
    out->master_port = 29500;
    int rank, world, local = 0;
    const char *rank_var = "", *world_var = "";
    if (env_int("OMPI_COMM_WORLD_RANK", &rank) && env_int("OMPI_COMM_WORLD_SIZE", &world)) {
        out->launcher = DIST_LAUNCH_MPI;
        env_int("OMPI_COMM_WORLD_LOCAL_RANK", &local);
        rank_var = "OMPI_COMM_WORLD_RANK", world_var = "OMPI_COMM_WORLD_SIZE";
    } else if (env_int("SLURM_PROCID", &rank) && env_int("SLURM_STEP_NUM_TASKS", &world)) {
        // SLURM_STEP_NUM_TASKS: srun's step; a batch script's own shell has SLURM_NTASKS but is one process
        out->launcher = DIST_LAUNCH_SLURM;
        env_int("SLURM_LOCALID", &local);
        rank_var = "SLURM_PROCID", world_var = "SLURM_STEP_NUM_TASKS";
    } else if (env_int("RANK", &rank) && env_int("WORLD_SIZE", &world)) {
        out->launcher = DIST_LAUNCH_ENV;
        if (!env_int("LOCAL_RANK", &local)) local = rank;
        rank_var = "RANK", world_var = "WORLD_SIZE";
    } else {
        return;
    }
    if (world < 1 || rank >= world)
        die_input("environment: %s=%d with %s=%d: expected 0 <= rank < world size", rank_var, rank, world_var, world);
    out->rank = rank, out->world = world, out->local_rank = local;
    const char *addr = getenv("MASTER_ADDR");
    snprintf(out->master_addr, sizeof(out->master_addr), "%s", addr && *addr ? addr : "127.0.0.1");
    int port;
    if (env_int("MASTER_PORT", &port)) {
        if (port < 1 || port > 65535) die_input("environment: MASTER_PORT=%d: expected a TCP port 1-65535", port);
        out->master_port = port;
    }
}

DistType dist_type_of_size(size_t elem_size) {
    JEPA_ASSERT(elem_size == 4 || elem_size == 8);
    return elem_size == 4 ? DIST_FLOAT : DIST_DOUBLE;
}

static size_t type_size(DistType t) {
    static const size_t sizes[] = {4, 8, sizeof(int), 1};
    return sizes[t];
}

// One rank as the layout and the watchdog messages name it.
typedef struct {
    char host[64];
    int pid, local_rank;
} PeerInfo;

enum { TRANSPORT_NONE = 0, TRANSPORT_MPI, TRANSPORT_NCCL };

static struct {
    DistLaunch launch;
    int active, mpi_up, transport;
    double timeout_s;
    long step;
    PeerInfo *peers;  // [world], after dist_attach
    char op[192];     // the operation waited on now, for the messages
    Backend *be;
#ifdef JEPA_HAVE_MPI
    MPI_Comm ctl;  // the watchdog's control messages (pings), apart from the collectives
    MPI_Comm grad;  // the gradient all-reduce: the world, or this rank's site (dist_split_sites)
    MPI_Comm leaders;  // the sites' first ranks (dist_split_sites); MPI_COMM_NULL on the others and before
#endif
    int site_ranks;  // ranks averaging gradients together (the world, or a site's)
#ifdef DIST_NCCL
    ncclComm_t nccl;
    cudaStream_t comm;        // the communication stream
    cudaEvent_t ev_compute, ev_comm, ev_sync;
    void *scratch;            // device staging for host collectives
    size_t scratch_bytes;
#endif
} D = {.launch = {.world = 1}, .transport = TRANSPORT_NONE, .timeout_s = 600, .site_ranks = 1};  // one process until dist_init

int dist_active(void) { return D.active; }
int dist_rank(void) { return D.launch.rank; }
int dist_world(void) { return D.launch.world; }
int dist_local_rank(void) { return D.launch.local_rank; }
void dist_set_step(long step) { D.step = step; }

void dist_init(double timeout_s) {
    if (D.active) return;
    dist_detect(&D.launch);
    D.timeout_s = timeout_s > 0 ? timeout_s : 600;
    if (D.launch.launcher == DIST_LAUNCH_NONE) return;
    D.active = 1;
    D.site_ranks = D.launch.world;
#ifdef JEPA_HAVE_MPI
    // MPI where the launcher gives it its wire-up: mpirun, or srun with a PMI plugin (srun --mpi=pmix).
    const int pmi = getenv("PMIX_RANK") || getenv("PMI_RANK") || getenv("PMI_FD");
    if (D.launch.launcher == DIST_LAUNCH_MPI || (D.launch.launcher == DIST_LAUNCH_SLURM && pmi)) {
        MPI_CHECK(MPI_Init(NULL, NULL));
        int r, w;
        MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &r));
        MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &w));
        if (r != D.launch.rank || w != D.launch.world)
            die_input("environment: the launcher says rank %d of %d, MPI says %d of %d", D.launch.rank,
                      D.launch.world, r, w);
        MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &D.ctl));
        D.grad = MPI_COMM_WORLD;
        D.mpi_up = 1;
    }
#endif
}

void dist_finalize(void) {
#ifdef DIST_NCCL
    if (D.transport == TRANSPORT_NCCL) {
        NCCL_ENQ(ncclCommFinalize(D.nccl), "the NCCL communicator's finalisation");  // flushes; non-blocking
        NCCL_CHECK(ncclCommDestroy(D.nccl));
        CUDA_CHECK(cudaStreamDestroy(D.comm));
        if (D.scratch) CUDA_CHECK(cudaFree(D.scratch));
        D.scratch = NULL;
    }
#endif
#ifdef JEPA_HAVE_MPI
    if (D.mpi_up) {
        MPI_Comm_free(&D.ctl);
        MPI_Finalize();
        D.mpi_up = 0;
    }
#endif
    free(D.peers);
    D.peers = NULL;
    D.transport = TRANSPORT_NONE;
    D.active = 0;
}

// ------------------------------------------------------------------------------------------------ the watchdog

enum { TAG_PING = 7101, TAG_PONG = 7102 };

static void peer_text(int r, char *buf, size_t n) {
    if (D.peers) snprintf(buf, n, "rank %d (host %s pid %d)", r, D.peers[r].host, D.peers[r].pid);
    else snprintf(buf, n, "rank %d", r);
}

#ifdef JEPA_HAVE_MPI
// Another rank's watchdog asks where this one is: answer with the operation it waits on.
static void answer_pings(void) {
    int flag = 1;
    while (flag) {
        MPI_Status st;
        MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, TAG_PING, D.ctl, &flag, &st));
        if (!flag) break;
        int dummy;
        MPI_CHECK(MPI_Recv(&dummy, 1, MPI_INT, st.MPI_SOURCE, TAG_PING, D.ctl, MPI_STATUS_IGNORE));
        MPI_Request req;
        MPI_CHECK(MPI_Isend(D.op, (int)strlen(D.op) + 1, MPI_CHAR, st.MPI_SOURCE, TAG_PONG, D.ctl, &req));
        MPI_CHECK(MPI_Request_free(&req));
    }
}

// After a timeout: ping every other rank and list, within `window` seconds, which answered and where they wait.
static void probe_peers(double window, char *out, size_t n) {
    const int world = D.launch.world, me = D.launch.rank;
    char(*answer)[192] = xcalloc((size_t)world, sizeof(*answer));
    int *answered = xcalloc((size_t)world, sizeof(int)), ping = 1;
    for (int r = 0; r < world; r++) {
        if (r == me) continue;
        MPI_Request req;
        MPI_CHECK(MPI_Isend(&ping, 1, MPI_INT, r, TAG_PING, D.ctl, &req));
        MPI_CHECK(MPI_Request_free(&req));
    }
    const double until = now_seconds() + window;
    int missing = world - 1;
    while (missing > 0 && now_seconds() < until) {
        answer_pings();
        int flag;
        MPI_Status st;
        MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, TAG_PONG, D.ctl, &flag, &st));
        if (!flag) {
            usleep(1000);
            continue;
        }
        const int src = st.MPI_SOURCE;
        MPI_CHECK(MPI_Recv(answer[src], 192, MPI_CHAR, src, TAG_PONG, D.ctl, MPI_STATUS_IGNORE));
        answer[src][191] = 0;
        if (!answered[src]) answered[src] = 1, missing--;
    }
    size_t used = 0;
    out[0] = 0;
    char who[128];
    for (int r = 0; r < world && used < n; r++)
        if (r != me && !answered[r]) {
            peer_text(r, who, sizeof who);
            used += (size_t)snprintf(out + used, n - used, "; %s did not answer (stopped, hung or busy outside a "
                                     "collective)", who);
        }
    for (int r = 0; r < world && used < n; r++)
        if (r != me && answered[r]) {
            peer_text(r, who, sizeof who);
            used += (size_t)snprintf(out + used, n - used, "; %s answered: waiting in %s", who,
                                     answer[r][0] ? answer[r] : "no collective");
        }
    free(answer);
    free(answered);
}
#endif

// The operation (waited on since `since`) did not finish in time: one line naming this rank, the operation and the
// peers that did not answer; the communicator is aborted and the process exits (1) without waiting for anyone.
_Noreturn static void watchdog_fire(double since) {
    char peers[4096] = "";
#ifdef JEPA_HAVE_MPI
    if (D.mpi_up) probe_peers(fmin(2.0, D.timeout_s / 4), peers, sizeof peers);
#endif
    if (!peers[0] && D.launch.world > 1)
        snprintf(peers, sizeof peers, "; without MPI the silent rank cannot be named: it is the one not printing this");
    char me[128];
    peer_text(D.launch.rank, me, sizeof me);
    char at[48] = "";
    if (D.step > 0) snprintf(at, sizeof at, " at step %ld", D.step);
    fprintf(stderr, "error: dist: %s: %s%s did not complete within dist.timeout_s=%g s (waited %.1f s)%s; exiting\n",
            me, D.op, at, D.timeout_s, now_seconds() - since, peers);
    fflush(stderr);
    fflush(stdout);
#ifdef DIST_NCCL
    if (D.transport == TRANSPORT_NCCL) ncclCommAbort(D.nccl);
#endif
    _exit(JEPA_EXIT_INTERNAL);  // no MPI_Finalize: it would wait for the silent rank
}

// The deadline leaves room for the probe of the peers, so that a rank exits within dist.timeout_s.
static double deadline_from_now(void) { return now_seconds() + D.timeout_s - fmin(2.0, D.timeout_s / 4); }

static void set_op(const char *what) { snprintf(D.op, sizeof D.op, "%s", what); }

#ifdef JEPA_HAVE_MPI
static void wait_mpi(MPI_Request *req, const char *what) {
    set_op(what);
    const double start = now_seconds(), deadline = deadline_from_now();
    unsigned spins = 0;
    for (;;) {
        int done;
        MPI_CHECK(MPI_Test(req, &done, MPI_STATUS_IGNORE));
        if (done) break;
        answer_pings();
        if (now_seconds() > deadline) watchdog_fire(start);
        if (++spins > 1000) usleep(100);  // a busy wait for short collectives, then yield the core
    }
    D.op[0] = 0;
}

static MPI_Datatype mpi_type(DistType t) {
    const MPI_Datatype types[] = {MPI_FLOAT, MPI_DOUBLE, MPI_INT, MPI_BYTE};
    return types[t];
}
#endif

#ifdef DIST_NCCL
static ncclDataType_t nccl_type(DistType t) {
    const ncclDataType_t types[] = {ncclFloat32, ncclFloat64, ncclInt32, ncclUint8};
    return types[t];
}

static void nccl_failed(const char *what, ncclResult_t r) {
    char me[128];
    peer_text(D.launch.rank, me, sizeof me);
    fprintf(stderr, "error: dist: %s: NCCL failed in %s at step %ld: %s; exiting\n", me, what, D.step,
            ncclGetErrorString(r));
    fflush(stderr);
    ncclCommAbort(D.nccl);
    _exit(JEPA_EXIT_INTERNAL);
}

static void wait_nccl_ready(const char *what) {
    set_op(what);
    const double start = now_seconds(), deadline = deadline_from_now();
    ncclResult_t r;
    for (;;) {
        NCCL_CHECK(ncclCommGetAsyncError(D.nccl, &r));
        if (r != ncclInProgress) break;
        if (now_seconds() > deadline) watchdog_fire(start);
        usleep(100);
    }
    if (r != ncclSuccess) nccl_failed(what, r);
    D.op[0] = 0;
}

// Polls `ev` under the watchdog, and NCCL's asynchronous errors (a failed peer connection, a remote abort).
static void wait_event(cudaEvent_t ev, const char *what) {
    set_op(what);
    const double start = now_seconds(), deadline = deadline_from_now();
    for (;;) {
        const cudaError_t e = cudaEventQuery(ev);
        if (e == cudaSuccess) break;
        if (e != cudaErrorNotReady) CUDA_CHECK(e);
        ncclResult_t async;
        NCCL_CHECK(ncclCommGetAsyncError(D.nccl, &async));
        if (async != ncclSuccess && async != ncclInProgress) nccl_failed(what, async);
#ifdef JEPA_HAVE_MPI
        if (D.mpi_up) answer_pings();
#endif
        if (now_seconds() > deadline) watchdog_fire(start);
        usleep(50);
    }
    D.op[0] = 0;
}

// The comm stream starts after the work queued on the compute stream so far.
static void comm_after_compute(void) {
    CUDA_CHECK(cudaEventRecord(D.ev_compute, backend_cuda_stream(D.be)));
    CUDA_CHECK(cudaStreamWaitEvent(D.comm, D.ev_compute, 0));
}
// The compute stream continues after the work queued on the comm stream so far.
static void compute_after_comm(void) {
    CUDA_CHECK(cudaEventRecord(D.ev_comm, D.comm));
    CUDA_CHECK(cudaStreamWaitEvent(backend_cuda_stream(D.be), D.ev_comm, 0));
}

static void nccl_start(Backend *be) {
    ncclUniqueId id;
    if (D.launch.rank == 0) NCCL_CHECK(ncclGetUniqueId(&id));
#ifdef JEPA_HAVE_MPI
    if (D.mpi_up) {
        MPI_Request req;
        MPI_CHECK(MPI_Ibcast(&id, sizeof id, MPI_BYTE, 0, MPI_COMM_WORLD, &req));
        wait_mpi(&req, "the broadcast of the NCCL unique id");
    } else
#endif
        dist_tcp_broadcast(&id, sizeof id, "the NCCL unique id's TCP rendezvous");
    D.be = be;
    CUDA_CHECK(cudaStreamCreateWithFlags(&D.comm, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreateWithFlags(&D.ev_compute, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&D.ev_comm, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&D.ev_sync, cudaEventDisableTiming));
    // Non-blocking init so that the watchdog can abort a communicator whose peers never come.
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;
    NCCL_ENQ(ncclCommInitRankConfig(&D.nccl, D.launch.world, id, D.launch.rank, &config),
             "the NCCL communicator set-up");
    D.transport = TRANSPORT_NCCL;
}

// Staging for host collectives over NCCL (no MPI): small buffers, grown on demand.
static void *nccl_scratch(size_t bytes) {
    if (bytes > D.scratch_bytes) {
        if (D.scratch) CUDA_CHECK(cudaFree(D.scratch));
        CUDA_CHECK(cudaMalloc(&D.scratch, bytes));
        D.scratch_bytes = bytes;
    }
    return D.scratch;
}
#endif

// ------------------------------------------------------------------------------------------------ TCP rendezvous

static int tcp_all(int fd, void *buf, size_t n, int sending) {
    char *p = buf;
    while (n > 0) {
        const ssize_t k = sending ? send(fd, p, n, MSG_NOSIGNAL) : recv(fd, p, n, 0);
        if (k <= 0) {
            if (k < 0 && errno == EINTR) continue;
            return -1;
        }
        p += k, n -= (size_t)k;
    }
    return 0;
}

void dist_tcp_broadcast(void *buf, size_t bytes, const char *what) {
    const DistLaunch *L = &D.launch;
    const double deadline = now_seconds() + D.timeout_s;
    set_op(what);
    if (L->rank == 0) {
        const int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        if (fd < 0) die_internal("%s:%d: socket: %s", __FILE__, __LINE__, strerror(errno));
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)L->master_port),
                                .sin_addr.s_addr = htonl(INADDR_ANY)};
        if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, L->world) != 0)
            die_input("dist: rank 0 cannot listen on port %d (MASTER_PORT): %s\n---> HINT: choose a free port",
                      L->master_port, strerror(errno));
        for (int served = 1; served < L->world; served++) {
            struct timeval tv = {(time_t)fmax(1.0, deadline - now_seconds()), 0};
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
            const int c = accept(fd, NULL, NULL);
            if (c < 0 && errno == EINTR && now_seconds() < deadline) {  // a signal (preemption): keep waiting
                served--;
                continue;
            }
            if (c < 0) watchdog_fire(deadline - D.timeout_s);
            if (tcp_all(c, buf, bytes, 1) != 0) die_internal("dist: rendezvous send: %s", strerror(errno));
            close(c);
        }
        close(fd);
    } else {
        char port[16];
        snprintf(port, sizeof port, "%d", L->master_port);
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
        const int g = getaddrinfo(L->master_addr, port, &hints, &res);
        if (g != 0) die_input("dist: MASTER_ADDR=%s: %s", L->master_addr, gai_strerror(g));
        for (;;) {  // rank 0 may not listen yet: retry until the timeout
            const int fd = socket(res->ai_family, SOCK_STREAM, 0);
            if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) == 0) {
                const int rc = tcp_all(fd, buf, bytes, 0);
                close(fd);
                if (rc == 0) break;
            } else if (fd >= 0) {
                close(fd);
            }
            if (now_seconds() > deadline) watchdog_fire(deadline - D.timeout_s);
            usleep(200000);
        }
        freeaddrinfo(res);
    }
    D.op[0] = 0;
}

// ------------------------------------------------------------------------------------------------ collectives

static int collectives_run(void) { return D.active && D.transport != TRANSPORT_NONE; }

typedef enum { COLL_ALLREDUCE, COLL_REDUCE_SCATTER, COLL_ALLGATHER, COLL_BROADCAST } Collective;

#ifdef DIST_NCCL
// Queued on the comm stream between the compute stream's work before and after it.
static void nccl_collective(Collective c, const void *send, void *recv, size_t n, DistType t, DistOp op, int root,
                            const char *what) {
    const ncclDataType_t nt = nccl_type(t);
    const ncclRedOp_t red = op == DIST_SUM ? ncclSum : ncclMax;
    comm_after_compute();
    switch (c) {
    case COLL_ALLREDUCE: NCCL_ENQ(ncclAllReduce(send, recv, n, nt, red, D.nccl, D.comm), what); break;
    case COLL_REDUCE_SCATTER: NCCL_ENQ(ncclReduceScatter(send, recv, n, nt, red, D.nccl, D.comm), what); break;
    case COLL_ALLGATHER: NCCL_ENQ(ncclAllGather(send, recv, n, nt, D.nccl, D.comm), what); break;
    case COLL_BROADCAST: NCCL_ENQ(ncclBroadcast(send, recv, n, nt, root, D.nccl, D.comm), what); break;
    }
    compute_after_comm();
}
#endif

#ifdef JEPA_HAVE_MPI
// Non-blocking, then waited on under the watchdog. send == recv: in place. n < 2^31 (callers chunk larger buffers).
static void mpi_collective(Collective c, const void *send, void *recv, size_t n, DistType t, DistOp op, int root,
                           const char *what) {
    const MPI_Datatype mt = mpi_type(t);
    const MPI_Op red = op == DIST_SUM ? MPI_SUM : MPI_MAX;
    const int count = (int)n;
    MPI_Request req;
    switch (c) {
    case COLL_ALLREDUCE:
        MPI_CHECK(MPI_Iallreduce(send == recv ? MPI_IN_PLACE : send, recv, count, mt, red, MPI_COMM_WORLD, &req));
        break;
    case COLL_REDUCE_SCATTER:
        MPI_CHECK(MPI_Ireduce_scatter_block(send, recv, count, mt, red, MPI_COMM_WORLD, &req));
        break;
    case COLL_ALLGATHER: MPI_CHECK(MPI_Iallgather(send, count, mt, recv, count, mt, MPI_COMM_WORLD, &req)); break;
    case COLL_BROADCAST: MPI_CHECK(MPI_Ibcast(recv, count, mt, root, MPI_COMM_WORLD, &req)); break;
    }
    wait_mpi(&req, what);
}
#endif

// n: elements (per rank for reduce-scatter and all-gather). Without collectives (one process): the identity.
static void collective(Collective c, const void *send, void *recv, size_t n, DistType t, DistOp op, int root,
                       const char *what) {
    if (!collectives_run()) {
        if (send != recv && c != COLL_BROADCAST) memmove(recv, send, n * type_size(t));
        return;
    }
    if (n == 0) return;
#ifdef DIST_NCCL
    if (D.transport == TRANSPORT_NCCL) {
        nccl_collective(c, send, recv, n, t, op, root, what);
        return;
    }
#endif
#ifdef JEPA_HAVE_MPI
    // MPI counts are int: large buffers (the parameters of a big model) go in pieces where the pieces are
    // independent (all-reduce, broadcast)
    const size_t chunk = (size_t)1 << 28, es = type_size(t);
    if (c == COLL_ALLREDUCE || c == COLL_BROADCAST) {
        for (size_t at = 0; at < n; at += chunk)
            mpi_collective(c, (const char *)send + at * es, (char *)recv + at * es, n - at < chunk ? n - at : chunk,
                           t, op, root, what);
        return;
    }
    JEPA_ASSERT(n < chunk);
    mpi_collective(c, send, recv, n, t, op, root, what);
#endif
}

void dist_allreduce(void *buf, size_t n, DistType t, DistOp op, const char *what) {
    collective(COLL_ALLREDUCE, buf, buf, n, t, op, 0, what);
}
void dist_reduce_scatter(const void *send, void *recv, size_t n_per_rank, DistType t, const char *what) {
    collective(COLL_REDUCE_SCATTER, send, recv, n_per_rank, t, DIST_SUM, 0, what);
}
void dist_allgather(const void *send, void *recv, size_t n_per_rank, DistType t, const char *what) {
    collective(COLL_ALLGATHER, send, recv, n_per_rank, t, DIST_SUM, 0, what);
}
void dist_broadcast(void *buf, size_t n, DistType t, int root, const char *what) {
    collective(COLL_BROADCAST, buf, buf, n, t, DIST_SUM, root, what);
}

// Host memory in and out (all-reduce: in == out, n elements; all-gather: n per rank), complete on return.
static void host_collective(Collective c, const void *in, void *out, size_t n, DistType t, DistOp op,
                            const char *what) {
    const size_t in_bytes = n * type_size(t), out_bytes = in_bytes * (c == COLL_ALLGATHER ? D.launch.world : 1);
    (void)out_bytes;  // used by the NCCL path only
    if (!D.active || D.launch.world == 1 || n == 0) {
        if (in != out) memcpy(out, in, in_bytes);
        return;
    }
#ifdef JEPA_HAVE_MPI
    if (D.mpi_up) {
        mpi_collective(c, in, out, n, t, op, 0, what);
        return;
    }
#endif
#ifdef DIST_NCCL
    if (D.transport == TRANSPORT_NCCL) {  // through a device buffer: [in | out]
        char *dev = nccl_scratch(in_bytes + out_bytes);
        CUDA_CHECK(cudaMemcpyAsync(dev, in, in_bytes, cudaMemcpyHostToDevice, D.comm));
        const ncclDataType_t nt = nccl_type(t);
        if (c == COLL_ALLGATHER) NCCL_ENQ(ncclAllGather(dev, dev + in_bytes, n, nt, D.nccl, D.comm), what);
        else NCCL_ENQ(ncclAllReduce(dev, dev + in_bytes, n, nt, op == DIST_SUM ? ncclSum : ncclMax, D.nccl, D.comm),
                      what);
        CUDA_CHECK(cudaMemcpyAsync(out, dev + in_bytes, out_bytes, cudaMemcpyDeviceToHost, D.comm));
        CUDA_CHECK(cudaEventRecord(D.ev_sync, D.comm));
        wait_event(D.ev_sync, what);
        return;
    }
#endif
    die_internal("dist: %s: no transport for %d ranks (built without MPI, and no NCCL device)", what, D.launch.world);
}

void dist_allreduce_host(void *buf, size_t n, DistType t, DistOp op, const char *what) {
    host_collective(COLL_ALLREDUCE, buf, buf, n, t, op, what);
}

struct DistPending {
#ifdef JEPA_HAVE_MPI
    MPI_Request req;
#endif
    int in_flight;
    void *buf;     // dist_sites_sum_start: the buffer its leader's result is broadcast into within the site
    size_t n;
    DistType t;
    int broadcast;
};

DistPending *dist_allreduce_host_start(void *buf, size_t n, DistType t, DistOp op, const char *what) {
    DistPending *p = xcalloc(1, sizeof *p);
#ifdef JEPA_HAVE_MPI
    if (D.active && D.launch.world > 1 && n > 0 && D.mpi_up) {
        MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, mpi_type(t), op == DIST_SUM ? MPI_SUM : MPI_MAX,
                                 MPI_COMM_WORLD, &p->req));
        p->in_flight = 1;
        return p;
    }
#endif
    host_collective(COLL_ALLREDUCE, buf, buf, n, t, op, what);  // one process, or not MPI: done now
    return p;
}

DistPending *dist_sites_sum_start(void *buf, size_t n, DistType t, const char *what) {
#ifdef JEPA_HAVE_MPI
    if (D.active && D.mpi_up && D.site_ranks < D.launch.world) {  // split into sites
        DistPending *p = xcalloc(1, sizeof *p);
        *p = (DistPending){.buf = buf, .n = n, .t = t, .broadcast = D.site_ranks > 1};
        if (D.leaders != MPI_COMM_NULL && n > 0) {
            MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, mpi_type(t), MPI_SUM, D.leaders, &p->req));
            p->in_flight = 1;
        }
        return p;
    }
#endif
    return dist_allreduce_host_start(buf, n, t, DIST_SUM, what);  // one site per rank, or one process
}

void dist_allreduce_host_wait(DistPending *p, const char *what) {
    if (!p) return;
#ifdef JEPA_HAVE_MPI
    if (p->in_flight) wait_mpi(&p->req, what);
    if (p->broadcast && p->n > 0) {  // the site's leader hands the sum to its site's other ranks
        MPI_Request req;
        MPI_CHECK(MPI_Ibcast(p->buf, (int)p->n, mpi_type(p->t), 0, D.grad, &req));
        wait_mpi(&req, what);
    }
#endif
    (void)what;
    free(p);
}

void dist_barrier(const char *what) {
    int one = 1;
    dist_allreduce_host(&one, 1, DIST_INT, DIST_SUM, what);
}

void dist_sync(const char *what) {
#ifdef DIST_NCCL
    if (D.transport == TRANSPORT_NCCL) {
        CUDA_CHECK(cudaEventRecord(D.ev_sync, backend_cuda_stream(D.be)));
        wait_event(D.ev_sync, what);
    }
#endif
    (void)what;
}

void dist_attach(Backend *be) {
    if (!D.active) return;
    const int cuda = strcmp(be->name, "cuda") == 0;
#ifdef DIST_NCCL
    if (cuda) nccl_start(be);
#endif
    if (cuda && D.transport != TRANSPORT_NCCL)
        die_input("dist: %d ranks on the cuda device need NCCL, and this binary was built without it\n---> HINT: "
                  "install NCCL (libnccl-dev) and rebuild, or run one process", D.launch.world);
    if (!cuda) {
        if (!D.mpi_up && D.launch.world > 1)
            die_input("dist: %d ranks on the CPU need MPI as their transport (launched by %s)\n---> HINT: launch "
                      "with mpirun -np %d (or srun --mpi=pmix), with a build that found mpicc",
                      D.launch.world, dist_launcher_name(D.launch.launcher), D.launch.world);
        D.transport = D.mpi_up ? TRANSPORT_MPI : TRANSPORT_NONE;
        D.be = be;
    }
    PeerInfo mine = {.pid = (int)getpid(), .local_rank = D.launch.local_rank};
    gethostname(mine.host, sizeof(mine.host) - 1);
    D.peers = xcalloc((size_t)D.launch.world, sizeof(PeerInfo));
    host_collective(COLL_ALLGATHER, &mine, D.peers, sizeof mine, DIST_BYTE, DIST_SUM,
                    "the exchange of the world layout");
}

void dist_print_layout(FILE *out, const char *device) {
    if (!D.active || D.launch.rank != 0 || !D.peers) return;
    const char *transport = D.transport == TRANSPORT_NCCL ? "NCCL" : D.transport == TRANSPORT_MPI ? "MPI" : "none";
    fprintf(out, "world: %d rank%s launched by %s, collectives over %s, watchdog dist.timeout_s=%g s\n",
            D.launch.world, D.launch.world == 1 ? "" : "s", dist_launcher_name(D.launch.launcher), transport,
            D.timeout_s);
    for (int r = 0; r < D.launch.world; r++)
        fprintf(out, "  rank %d: host %s pid %d local rank %d%s%s\n", r, D.peers[r].host, D.peers[r].pid,
                D.peers[r].local_rank, r == 0 ? " device " : "", r == 0 ? device : "");
}

// ------------------------------------------------------------------------------------------------ bfloat16

uint16_t dist_bf16_from_float(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x7fffffu)) return (uint16_t)((u >> 16) | 0x40);  // NaN stays NaN
    u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
    return (uint16_t)(u >> 16);
}

float dist_bf16_to_float(uint16_t h) {
    const uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, 4);
    return x;
}

#ifdef JEPA_HAVE_MPI
// MPI user op: inout[i] = bf16(in[i] + inout[i]), each partial sum rounded to bf16 as NCCL's bf16 sum does.
static void bf16_sum_op(void *in, void *inout, int *len, MPI_Datatype *type) {
    const uint16_t *a = in;
    uint16_t *b = inout;
    for (int i = 0; i < *len; i++) b[i] = dist_bf16_from_float(dist_bf16_to_float(a[i]) + dist_bf16_to_float(b[i]));
}
#endif

// ------------------------------------------------------------------------------------------------ gradient buckets

typedef struct {
    size_t begin, end;  // elements of the flat gradient buffer
    int need, ready;    // blocks whose final gradients it waits for; 0: launched at dist_grads_finish
    int launched;
#ifdef JEPA_HAVE_MPI
    MPI_Request req;
#endif
} Bucket;

struct DistGrads {
    Model *m;
    int bf16, last_micro, launched;
    Bucket *b;
    int count;
    int *block_bucket[MODULE_COUNT];  // [depth] bucket of each block
    int *block_seen[MODULE_COUNT];    // [depth] backward passes through the block in the last micro-batch
    uint16_t *staging;                // bf16 copy of the gradients [table.total] (CPU: host; NCCL: device)
    char what[160];
};

static void block_grads_ready(void *ctx, ModuleId module, int block);  // Model.on_block_grads

static void add_bucket(DistGrads *g, size_t begin, size_t end, int need) {
    g->b = xrealloc(g->b, (size_t)(g->count + 1) * sizeof(Bucket));
    g->b[g->count++] = (Bucket){.begin = begin, .end = end, .need = need};
}

static size_t block_begin(const Model *m, const StackDims *s, int l) {
    return m->table.tensors[s->first_block_tensor + l * TENSORS_PER_BLOCK].offset;
}
static size_t block_end(const Model *m, const StackDims *s, int l) {
    const TensorSpec *t = &m->table.tensors[s->first_block_tensor + (l + 1) * TENSORS_PER_BLOCK - 1];
    return t->offset + t->numel;
}

// Blocks of one stack from the last to the first, grouped into buckets of about `cap` elements: the order the
// backward finishes them in.
static void stack_buckets(DistGrads *g, const StackDims *s, size_t cap) {
    const Model *m = g->m;
    g->block_bucket[s->module] = xcalloc((size_t)s->depth, sizeof(int));
    g->block_seen[s->module] = xcalloc((size_t)s->depth, sizeof(int));
    int top = s->depth - 1;
    while (top >= 0) {
        int low = top;
        while (low > 0 && block_end(m, s, top) - block_begin(m, s, low - 1) <= cap) low--;
        for (int l = low; l <= top; l++) g->block_bucket[s->module][l] = g->count;
        add_bucket(g, block_begin(m, s, low), block_end(m, s, top), top - low + 1);
        top = low - 1;
    }
}

static int covered(const DistGrads *g, size_t at) {
    for (int k = 0; k < g->count; k++)
        if (g->b[k].need > 0 && at >= g->b[k].begin && at < g->b[k].end) return k;
    return -1;
}

DistGrads *dist_grads_create(Model *m, double bucket_mb, int bf16) {
    DistGrads *g = xcalloc(1, sizeof(DistGrads));
    g->m = m;
    g->bf16 = bf16;
    const size_t cap = (size_t)fmax(1.0, bucket_mb * 1048576.0 / (bf16 ? 2.0 : (double)m->be->msize));
    stack_buckets(g, &m->dims.pred, cap);
    stack_buckets(g, &m->dims.enc, cap);
    // What no block holds (embeddings, final norms, mask tokens, the predictor's projection): launched at the end,
    // from the end of the buffer back, in pieces of at most cap.
    const size_t total = m->table.total;
    size_t at = total;
    while (at > 0) {
        if (covered(g, at - 1) >= 0) {
            at = g->b[covered(g, at - 1)].begin;
            continue;
        }
        size_t begin = at;
        while (begin > 0 && covered(g, begin - 1) < 0 && at - begin < cap) begin--;
        add_bucket(g, begin, at, 0);
        at = begin;
    }
    if (bf16) {
#ifdef DIST_NCCL
        if (D.transport == TRANSPORT_NCCL) g->staging = backend_alloc(m->be, "the bf16 gradient staging", total * 2);
        else
#endif
            g->staging = xmalloc(total * sizeof(uint16_t));
    }
    m->on_block_grads = NULL;
    if (collectives_run()) {
        m->on_block_grads = block_grads_ready;
        m->hook_ctx = g;
    }
    return g;
}

int dist_grads_buckets(const DistGrads *g) { return g->count; }
void dist_grads_bucket(const DistGrads *g, int k, size_t *begin, size_t *end) {
    *begin = g->b[k].begin;
    *end = g->b[k].end;
}

void dist_grads_free(DistGrads *g) {
    if (!g) return;
    if (g->staging) {
#ifdef DIST_NCCL
        if (D.transport == TRANSPORT_NCCL) g->m->be->release(g->m->be, g->staging);
        else
#endif
            free(g->staging);
    }
    for (int mod = 0; mod < MODULE_COUNT; mod++) free(g->block_bucket[mod]), free(g->block_seen[mod]);
    free(g->b);
    free(g);
}

static void bucket_name(DistGrads *g, int k) {
    const Bucket *b = &g->b[k];
    snprintf(g->what, sizeof g->what, "the all-reduce of gradient bucket %d/%d (%.2f MB %s)", k + 1, g->count,
             (double)(b->end - b->begin) * (g->bf16 ? 2 : (double)g->m->be->msize) / 1e6, g->bf16 ? "bf16" : "fp32");
}

static void launch_bucket(DistGrads *g, int k) {
    Bucket *b = &g->b[k];
    JEPA_ASSERT(!b->launched);
    b->launched = 1;
    const size_t n = b->end - b->begin, ms = g->m->be->msize;
    char *grads = (char *)g->m->grads + b->begin * ms;
#ifdef DIST_NCCL
    if (D.transport == TRANSPORT_NCCL) {
        comm_after_compute();
        if (g->bf16) {
            uint16_t *st = g->staging + b->begin;
            cuda_f32_to_bf16(D.comm, st, (const float *)grads, n);
            NCCL_ENQ(ncclAllReduce(st, st, n, ncclBfloat16, ncclSum, D.nccl, D.comm), "a bf16 gradient bucket");
            cuda_bf16_to_f32(D.comm, (float *)grads, st, n);
        } else {
            NCCL_ENQ(ncclAllReduce(grads, grads, n, ncclFloat32, ncclSum, D.nccl, D.comm), "a gradient bucket");
        }
        return;
    }
#endif
#ifdef JEPA_HAVE_MPI
    if (g->bf16) {
        JEPA_ASSERT(ms == 4);
        uint16_t *st = g->staging + b->begin;
        const float *src = (const float *)grads;
        for (size_t i = 0; i < n; i++) st[i] = dist_bf16_from_float(src[i]);
        static MPI_Op op = MPI_OP_NULL;
        if (op == MPI_OP_NULL) MPI_CHECK(MPI_Op_create(bf16_sum_op, 1, &op));
        MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, st, (int)n, MPI_UINT16_T, op, D.grad, &b->req));
    } else {
        MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, grads, (int)n, mpi_type(dist_type_of_size(ms)), MPI_SUM, D.grad,
                                 &b->req));
    }
    // Open MPI progresses non-blocking collectives inside MPI calls: poke the ones in flight.
    for (int j = 0; j < g->count; j++)
        if (g->b[j].launched && g->b[j].req != MPI_REQUEST_NULL) {
            int done;
            MPI_CHECK(MPI_Test(&g->b[j].req, &done, MPI_STATUS_IGNORE));
            g->b[j].launched = done ? 2 : 1;
        }
#endif
}

static void block_grads_ready(void *ctx, ModuleId module, int block) {
    DistGrads *g = ctx;
    if (!g->last_micro) return;
    // Each mask generator runs both stacks' backward: a block is final after num_masks passes.
    if (++g->block_seen[module][block] < g->m->dims.num_masks) return;
    const int k = g->block_bucket[module][block];
    if (++g->b[k].ready == g->b[k].need) launch_bucket(g, k);
}

void dist_grads_begin_micro(DistGrads *g, int last_micro) {
    g->last_micro = last_micro && collectives_run();
    if (!g->last_micro) return;
    for (int k = 0; k < g->count; k++) g->b[k].ready = 0, g->b[k].launched = 0;
    for (int mod = 0; mod < MODULE_COUNT; mod++) {
        const StackDims *s = mod == MODULE_ENCODER ? &g->m->dims.enc : &g->m->dims.pred;
        memset(g->block_seen[mod], 0, (size_t)s->depth * sizeof(int));
    }
}

void dist_grads_finish(DistGrads *g) {
    if (!collectives_run()) return;
    JEPA_ASSERT(g->last_micro);
    for (int k = 0; k < g->count; k++)
        if (!g->b[k].launched) launch_bucket(g, k);
    Model *m = g->m;
    const size_t ms = m->be->msize;
#ifdef JEPA_HAVE_MPI
    if (D.transport == TRANSPORT_MPI)
        for (int k = 0; k < g->count; k++) {
            bucket_name(g, k);
            wait_mpi(&g->b[k].req, g->what);
            if (g->bf16) {
                float *dst = (float *)((char *)m->grads + g->b[k].begin * ms);
                for (size_t i = 0; i < g->b[k].end - g->b[k].begin; i++)
                    dst[i] = dist_bf16_to_float(g->staging[g->b[k].begin + i]);
            }
        }
#endif
#ifdef DIST_NCCL
    if (D.transport == TRANSPORT_NCCL) compute_after_comm();
#endif
    g->last_micro = 0;
    // The step's statistics (losses per generator, target std), scaled like the gradients: their sum is the mean.
    const size_t nstats = (size_t)m->dims.num_masks + STAT_EXTRA;
#ifdef JEPA_HAVE_MPI
    if (D.transport == TRANSPORT_MPI && D.site_ranks != D.launch.world) {  // a site's statistics (consensus)
        MPI_Request req;
        MPI_CHECK(MPI_Iallreduce(MPI_IN_PLACE, m->stats, (int)nstats, mpi_type(dist_type_of_size(m->be->ssize)),
                                 MPI_SUM, D.grad, &req));
        wait_mpi(&req, "the all-reduce of the site's step statistics");
        return;
    }
#endif
    dist_allreduce(m->stats, nstats, dist_type_of_size(m->be->ssize), DIST_SUM, "the all-reduce of the step statistics");
}

void dist_check_sites(int sites) {
    if (D.launch.world % sites != 0)
        die_input("dist.sites: %d sites do not divide the world of %d ranks\n---> HINT: launch a multiple of %d "
                  "ranks, or set dist.sites to a divisor of %d", sites, D.launch.world, sites, D.launch.world);
}

void dist_split_sites(int sites) {
    if (sites <= 1 || !D.active) return;
    dist_check_sites(sites);
    if (D.transport != TRANSPORT_MPI)
        die_input("dist.sync: consensus runs over MPI on the CPU only for now (this run's collectives are not MPI)"
                  "\n---> HINT: meta.device=cpu under mpirun");
#ifdef JEPA_HAVE_MPI
    D.site_ranks = D.launch.world / sites;
    MPI_CHECK(MPI_Comm_split(MPI_COMM_WORLD, D.launch.rank / D.site_ranks, D.launch.rank, &D.grad));
    // the exchange between sites: one rank per site (its first, rank 0 of D.grad) sends and receives
    const int leader = D.launch.rank % D.site_ranks == 0;
    MPI_CHECK(MPI_Comm_split(MPI_COMM_WORLD, leader ? 0 : MPI_UNDEFINED, D.launch.rank, &D.leaders));
#endif
}
int dist_site_ranks(void) { return D.site_ranks; }
