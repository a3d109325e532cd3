// dist.h: data parallelism across processes (docs/distributed.md). Three launchers, one binary: the world is read
// from the environment in this order of precedence: Open MPI (OMPI_COMM_WORLD_RANK/SIZE/LOCAL_RANK), Slurm's srun
// (SLURM_PROCID, SLURM_STEP_NUM_TASKS, SLURM_LOCALID), torchrun-style (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
// MASTER_PORT). Collectives run over MPI for the CPU backend and over NCCL for CUDA memory (its unique id travels by
// MPI when MPI is up, else by a TCP rendezvous on MASTER_ADDR:MASTER_PORT, rank 0 listening). Every wait runs under
// a watchdog (dist.timeout_s): a rank that never joins makes the others exit naming it and the operation.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "backend.h"
#include "model.h"

typedef enum { DIST_LAUNCH_NONE = 0, DIST_LAUNCH_MPI, DIST_LAUNCH_SLURM, DIST_LAUNCH_ENV } DistLauncher;

typedef struct {
    DistLauncher launcher;
    int rank, world, local_rank;
    char master_addr[256];  // torchrun-style and Slurm without MPI: the TCP rendezvous (NCCL only)
    int master_port;        // MASTER_PORT, default 29500
} DistLaunch;

// The launch the environment describes (getenv only; nothing starts). Exits 2 naming the variable when a value is
// not a number or a rank is outside the world.
void dist_detect(DistLaunch *out);
const char *dist_launcher_name(DistLauncher l);  // "mpirun", "srun", "RANK/WORLD_SIZE", "none"

typedef enum { DIST_SUM = 0, DIST_MAX = 1 } DistOp;
typedef enum { DIST_FLOAT = 0, DIST_DOUBLE = 1, DIST_INT = 2, DIST_BYTE = 3 } DistType;
DistType dist_type_of_size(size_t elem_size);  // 4 -> DIST_FLOAT, 8 -> DIST_DOUBLE (backend msize/ssize)

// Starts the process group the environment describes (MPI_Init under mpirun, or srun with PMI, when built with
// MPI). Without a launcher: one rank, dist_active() 0, every collective a no-op. timeout_s: dist.timeout_s.
void dist_init(double timeout_s);
void dist_finalize(void);
int dist_active(void);  // started by a launcher: collectives run (at world size 1 too)
int dist_rank(void);
int dist_world(void);
int dist_local_rank(void);  // picks the GPU
// Collectives take memory of this backend from here on: NCCL on a CUDA backend, MPI on the CPU. Collective.
void dist_attach(Backend *be);
// Rank 0 writes the world layout (rank, host, pid, local rank, device, transport) to out. Collective.
void dist_print_layout(FILE *out, const char *device);
// Rank 0's bytes to every rank over TCP: rank 0 listens on MASTER_PORT, the others connect to MASTER_ADDR:MASTER_PORT
// (retrying), all under the watchdog. NCCL's unique id travels this way when MPI is not up.
void dist_tcp_broadcast(void *buf, size_t bytes, const char *what);
// The current step, named in watchdog messages.
void dist_set_step(long step);

// Collectives over backend memory; every rank calls them in the same order. `what` names the operation in errors.
// On the CPU they return complete; with NCCL they are queued in order with the compute stream (dist_sync waits).
void dist_allreduce(void *buf, size_t n, DistType t, DistOp op, const char *what);
void dist_reduce_scatter(const void *send, void *recv, size_t n_per_rank, DistType t, const char *what);  // sum
void dist_allgather(const void *send, void *recv, size_t n_per_rank, DistType t, const char *what);
void dist_broadcast(void *buf, size_t n, DistType t, int root, const char *what);
// Host memory (flags, layout): complete on return on every transport.
void dist_allreduce_host(void *buf, size_t n, DistType t, DistOp op, const char *what);
void dist_barrier(const char *what);
// A host all-reduce in place that runs while the caller computes (consensus: dist.overlap_exchange): start it, then
// wait for it under the watchdog; buf must stay untouched in between. Every rank starts and waits in the same order
// relative to its other collectives. Over MPI; without collectives (one process) buf is already the result, and
// other transports complete it at the start. NULL: nothing in flight.
typedef struct DistPending DistPending;
DistPending *dist_allreduce_host_start(void *buf, size_t n, DistType t, DistOp op, const char *what);
void dist_allreduce_host_wait(DistPending *p, const char *what);  // frees p; NULL: no-op
// The sum over sites (dist_split_sites) of a value the ranks of each site hold alike: only the sites' first ranks
// exchange it (a communicator across site leaders: one copy per site on the wire), and the wait broadcasts the
// result within each site. Without sites: the world's sum.
DistPending *dist_sites_sum_start(void *buf, size_t n, DistType t, const char *what);
// Waits, under the watchdog, for everything queued on the backend so far (the NCCL path; a no-op on the CPU).
void dist_sync(const char *what);

// ---- gradient averaging in buckets (reverse layer order, launched from Model.on_block_grads)
typedef struct DistGrads DistGrads;
// Buckets of about bucket_mb MiB over m->grads; bf16: reduce in bfloat16 (half the bytes; fp32 otherwise).
// Sets m->on_block_grads. The gradients must be scaled by 1/(accum * world) (the sum over ranks is the mean).
DistGrads *dist_grads_create(Model *m, double bucket_mb, int bf16);
// Before each micro-batch: only the last one's backward launches buckets (gradients are final only then).
void dist_grads_begin_micro(DistGrads *g, int last_micro);
// After the last micro-batch: launches the buckets left (tensors outside blocks), sums the step statistics
// (losses, target std) and finishes every bucket (CPU) or queues the compute stream behind them (NCCL).
void dist_grads_finish(DistGrads *g);
int dist_grads_buckets(const DistGrads *g);
// Bucket k's range in elements of the flat gradient buffer, in launch order (tests).
void dist_grads_bucket(const DistGrads *g, int k, size_t *begin, size_t *end);
void dist_grads_free(DistGrads *g);

// Consensus (docs/consensus.md): the world splits into `sites` equal contiguous groups of ranks; from here on the
// gradient buckets and step statistics are all-reduced within this rank's site only. Exits 2 when sites do not
// divide the world or the transport is not MPI. Collective.
void dist_split_sites(int sites);
void dist_check_sites(int sites);  // only the exit 2 when sites do not divide the world
int dist_site_ranks(void);  // ranks of this rank's site (the world before dist_split_sites)

// bf16 round-to-nearest-even sum of two bf16 values as float (the bfloat16 reduction), for the CPU path and tests.
uint16_t dist_bf16_from_float(float x);
float dist_bf16_to_float(uint16_t h);
