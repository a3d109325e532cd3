// backend_cuda.c: the CUDA Backend (backend.h) wired onto the launchers of kernels/cuda_ops.h, its memory, streams
// and device queries. C11 over the CUDA runtime API; no kernels here. Without JEPA_CUDA (a build without nvcc) only
// the device query (0 devices, and why) and the host bf16 conversions remain.
//
// Streams and events
// - `compute` (non-blocking): every op, zero, copy, upload and download, in the order the model queues them.
// - `copy` (non-blocking): the host-to-device half of upload_f64 (clips every micro-batch, initial values). The host
//   converts the doubles into one of two pinned staging slots (used in turn, each with an event marking its last
//   copy done, grown on demand up to STAGING_MAX_BYTES; larger uploads go in slot-sized chunks); the copy stream
//   first waits for `compute_mark`, recorded on compute at the call (the ops queued before may still read or write
//   the destination), and compute then waits for `copy_done`. So the host converts micro-batch k+1 while the GPU
//   still runs micro-batch k, blocking only when the slot it needs holds an upload not yet copied (two uploads
//   back), and the ops after the upload see its data. The DMA itself waits for the compute queued before it: a copy
//   that overlaps the compute of the same buffer's previous contents needs a second device buffer (the model's clips
//   buffer is single).
// - Downloads run on compute and synchronise it (backend.h: download synchronises).
#include "backend_cuda.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

// ---------------------------------------------------------------- host bf16 (every build)

// Round to odd into float first (truncate, set the last bit when inexact), then to nearest even into bf16: float has
// 16 more fraction bits than bf16, so this equals one correct rounding of the double.
uint16_t bf16_from_double(double x) {
    if (isnan(x)) return (uint16_t)(signbit(x) ? 0xFFC0u : 0x7FC0u);
    float f = (float)x;
    if (fabs((double)f) > fabs(x)) f = nextafterf(f, 0.0f);
    uint32_t u;
    memcpy(&u, &f, sizeof(u));
    if ((double)f != x) u |= 1u;
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

double bf16_to_double(uint16_t h) {
    const uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof(f));
    return f;
}

#ifndef JEPA_CUDA

static const char NO_CUDA[] = "this jepa was built without CUDA (nvcc or kernels/*.cu missing at build time)";

int cuda_device_count(char *why, size_t n) {
    snprintf(why, n, "%s", NO_CUDA);
    return 0;
}
void backend_cuda_describe(int device, char *buf, size_t n) { snprintf(buf, n, "none: %s", NO_CUDA); }
Backend *backend_cuda_create(int device, int deterministic) { die_input("meta.device: cuda, but %s", NO_CUDA); }
void cuda_build_info(char *buf, size_t n) { snprintf(buf, n, "none (built without CUDA)"); }
struct CUstream_st *backend_cuda_stream(Backend *b) { die_internal("backend_cuda_stream: %s", NO_CUDA); }
void backend_cuda_use_cudnn_attention(Backend *b, char *what, size_t n) {
    die_input("model.attention: cudnn, but %s\n---> HINT: set model.attention=native", NO_CUDA);
}
void backend_cuda_memory(Backend *b, size_t *current, size_t *peak) { *current = *peak = 0; }

#else

#include <cublasLt.h>
#include <cuda_runtime_api.h>
#ifdef JEPA_HAVE_CUDNN
#include <cudnn.h>
#endif
#ifdef JEPA_HAVE_NCCL
#include <nccl.h>
#endif

#include "cuda_check.h"
#include "cuda_ops.h"
#include "cudnn_attention.h"

#define STAGING_MAX_BYTES ((size_t)128 << 20)  // per upload slot: a ViT-L batch of 24 clips (116 MB bf16) fits one
#define DOWNLOAD_BYTES ((size_t)8 << 20)       // pinned download buffer; downloads go in chunks of it
#define RING_HALF ((size_t)16 << 20)           // half of the pinned ring for small uploads

typedef struct {
    int B, N, H, hd, frame_tokens;
    int cudnn;  // 1: cuDNN runs it; 0: our kernels
} AttnShape;

typedef struct {
    int device;
    char gpu[256];               // "NVIDIA H100 80GB HBM3"
    cudaStream_t compute, copy;
    unsigned char *up[2];        // pinned upload slots [up_bytes[i]], used in turn
    size_t up_bytes[2];
    cudaEvent_t up_free[2];      // recorded on `copy` after each slot's last copy
    int up_next;                 // the slot the next chunk goes to
    unsigned char *down;         // pinned download buffer [DOWNLOAD_BYTES]
    cudaEvent_t compute_mark;    // copy waits on it: earlier ops are done with the destination
    cudaEvent_t copy_done;       // compute waits on it: the upload has landed
    void *attn_ws;               // attention backward scratch, grown to the largest shape seen
    size_t attn_ws_bytes;
    // model.attention: cudnn (backend_cuda_use_cudnn_attention): cuDNN's fused attention where it applies
    int attn_cudnn, attn_told_align;
    AttnShape *attn_shapes;      // per-shape decisions [n_attn_shapes]
    size_t n_attn_shapes, cap_attn_shapes;
    void *attn_dqkv;             // [B,N,3,H,hd] bf16: cuDNN's dqkv (=) when it must be added (+=), grown
    size_t attn_dqkv_bytes;
    unsigned long long queued;   // work queued so far (stream() counts it); the last cu_zero: its region and count
    void *zeroed;
    size_t zeroed_bytes;
    unsigned long long zeroed_at;
    // input double buffer (backend.h): per slot, pinned host floats, a device fp32 landing buffer converted to bf16
    // on the copy stream, and three events: the host buffer is free, the data is ready, the last reader is done.
    float *in_host[2];           // [in_elems[slot]] pinned
    float *in_dev[2];            // [in_elems[slot]] device fp32
    size_t in_elems[2];
    cudaEvent_t in_copied[2], in_ready[2], in_consumed[2];
    // small uploads (mask indices every micro-batch): a copy from pageable memory would make the host wait for the
    // stream, so they go through a pinned ring of two halves; a half is rewritten only after its copies are done
    // (an event recorded when the ring left it, long past by then).
    unsigned char *ring;         // pinned [2 * RING_HALF]
    size_t ring_at;              // next free byte
    int ring_half;               // the half being filled (ring_at may sit at its very end after an exact fit)
    cudaEvent_t ring_left[2];    // recorded on compute when the ring moves out of a half
    AllocLedger ledger;          // every live device_alloc, for backend_cuda_memory
    int gelu_told_unfused;       // JEPA_FUSE_GELU=1: a shape the epilogue could not take was reported
    int ln_told_unfused;         // JEPA_FUSE_LN=1: a call the fused kernel could not take was reported
} CudaImpl;

static CudaImpl *impl(Backend *b) { return (CudaImpl *)b->impl; }
// Every op takes its stream here, so `queued` counts them: cu_attention_bwd knows whether its dqkv was the last thing
// zeroed (cuDNN's backward may then write it instead of adding to it).
static cudaStream_t stream(Backend *b) {
    impl(b)->queued++;
    return impl(b)->compute;
}

static double gib(size_t bytes) { return (double)bytes / (1024.0 * 1024.0 * 1024.0); }

// ---------------------------------------------------------------- devices

int cuda_device_count(char *why, size_t n) {
    int count = 0;
    const cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        snprintf(why, n, "cudaGetDeviceCount failed: %s (%s)", cudaGetErrorString(e),
                 e == cudaErrorInsufficientDriver ? "no NVIDIA driver, or one older than this CUDA runtime"
                                                  : cudaGetErrorName(e));
        cudaGetLastError();  // clear it: the CPU backend runs next
        return 0;
    }
    if (count == 0) {
        const char *visible = getenv("CUDA_VISIBLE_DEVICES");
        snprintf(why, n, "no GPU visible (CUDA_VISIBLE_DEVICES=%s)", visible ? visible : "unset");
    }
    return count;
}

static void version_triple(char *buf, size_t n, long v, long major_unit) {  // 91400 -> "9.14.0" (unit 10000)
    snprintf(buf, n, "%ld.%ld.%ld", v / major_unit, (v % major_unit) / 100, v % 100);
}

void backend_cuda_describe(int device, char *buf, size_t n) {
    struct cudaDeviceProp p;
    CUDA_CHECK(cudaGetDeviceProperties(&p, device));
    int runtime = 0, driver = 0;
    CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
    CUDA_CHECK(cudaDriverGetVersion(&driver));
    char lt[32], dnn[64], nccl[64];
    version_triple(lt, sizeof lt, (long)cublasLtGetVersion(), 10000);
#ifdef JEPA_HAVE_CUDNN
    version_triple(dnn, sizeof dnn, (long)cudnnGetVersion(), 10000);
#else
    snprintf(dnn, sizeof dnn, "not built in");
#endif
#ifdef JEPA_HAVE_NCCL
    int nv = 0;
    if (ncclGetVersion(&nv) == ncclSuccess) version_triple(nccl, sizeof nccl, nv, 10000);
    else snprintf(nccl, sizeof nccl, "unknown (ncclGetVersion failed)");
#else
    snprintf(nccl, sizeof nccl, "not built in");
#endif
    snprintf(buf, n,
             "%s (GPU %d, compute capability %d.%d%s, %.1f GiB, %d SMs) | CUDA runtime %d.%d, driver %d.%d | "
             "cuBLASLt %s | cuDNN %s | NCCL %s",
             p.name, device, p.major, p.minor, p.major < 8 ? " UNSUPPORTED: needs 8.0" : "", gib(p.totalGlobalMem),
             p.multiProcessorCount, runtime / 1000, (runtime % 1000) / 10, driver / 1000, (driver % 1000) / 10, lt,
             dnn, nccl);
}

void cuda_build_info(char *buf, size_t n) {
    char dnn[32] = "none", nccl[32] = "none";
#ifdef JEPA_HAVE_CUDNN
    snprintf(dnn, sizeof dnn, "%d.%d.%d", CUDNN_MAJOR, CUDNN_MINOR, CUDNN_PATCHLEVEL);
#endif
#ifdef JEPA_HAVE_NCCL
    snprintf(nccl, sizeof nccl, "%d.%d.%d", NCCL_MAJOR, NCCL_MINOR, NCCL_PATCH);
#endif
    snprintf(buf, n, "CUDA %d.%d, cuBLASLt %d.%d.%d, cuDNN %s, NCCL %s", CUDART_VERSION / 1000,
             (CUDART_VERSION % 1000) / 10, CUBLAS_VER_MAJOR, CUBLAS_VER_MINOR, CUBLAS_VER_PATCH, dnn, nccl);
}

// ---------------------------------------------------------------- memory

// cudaMalloc, or exit 2 saying what did not fit, how much is free and which knobs lower it.
static void *device_alloc(Backend *b, const char *what, size_t bytes) {
    void *p = NULL;
    const cudaError_t e = cudaMalloc(&p, bytes ? bytes : 256);
    if (e == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        die_input("out of GPU memory: %s needs %.2f GiB (%zu bytes); GPU %d (%s) has %.2f GiB free of %.2f GiB\n"
                  "---> HINT: lower data.batch_size or set model.checkpoint_every: 1 (= model.checkpoint_activations: "
                  "true), or a smaller model; `jepa train CONFIG --dry-run` prints the memory plan",
                  what ? what : "a buffer", gib(bytes), bytes, impl(b)->device, impl(b)->gpu, gib(free_b),
                  gib(total_b));
    }
    CUDA_CHECK(e);
    CUDA_CHECK(cudaMemsetAsync(p, 0, bytes ? bytes : 256, stream(b)));
    alloc_ledger_add(&impl(b)->ledger, p, bytes);
    return p;
}

static void device_free(Backend *b, void *p) {
    alloc_ledger_remove(&impl(b)->ledger, p);
    CUDA_CHECK(cudaFree(p));
}

struct CUstream_st *backend_cuda_stream(Backend *b) { return stream(b); }
void backend_cuda_memory(Backend *b, size_t *current, size_t *peak) {
    *current = impl(b)->ledger.now;
    *peak = impl(b)->ledger.peak;
}

static void *cu_alloc(Backend *b, size_t bytes) { return device_alloc(b, b->alloc_what, bytes); }
static void cu_release(Backend *b, void *p) { device_free(b, p); }
static void cu_zero(Backend *b, void *p, size_t bytes) {
    CudaImpl *c = impl(b);
    CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, stream(b)));
    c->zeroed = p, c->zeroed_bytes = bytes, c->zeroed_at = c->queued;
}
static void cu_copy(Backend *b, void *dst, const void *src, size_t bytes) {
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream(b)));
}
// Pageable source: cudaMemcpyAsync has copied it out by the time it returns, so the caller may reuse it at once.
// Through the pinned ring (see CudaImpl), so the host never waits; larger uploads (start-up only) copy directly.
static void cu_upload(Backend *b, void *dst, const void *host_src, size_t bytes) {
    CudaImpl *c = impl(b);
    c->queued++;
    const size_t need = (bytes + 255) & ~(size_t)255;
    if (need > RING_HALF) {
        CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, c->compute));
        CUDA_CHECK(cudaStreamSynchronize(c->compute));
        return;
    }
    // The half comes from ring_half, not from ring_at / RING_HALF: an upload that exactly fills a half leaves ring_at
    // on the next half's first byte (or past the ring), and the next upload must still take the switch below, with
    // its wait for that half's copies (a crash at ViT-tiny step 9419 on an H100 before this was so).
    const int half = c->ring_half;
    if (c->ring_at + need > (size_t)(half + 1) * RING_HALF) {  // move to the other half once its copies are done
        const int next = half ^ 1;
        CUDA_CHECK(cudaEventRecord(c->ring_left[half], c->compute));
        CUDA_CHECK(cudaEventSynchronize(c->ring_left[next]));
        c->ring_half = next;
        c->ring_at = (size_t)next * RING_HALF;
    }
    memcpy(c->ring + c->ring_at, host_src, bytes);
    CUDA_CHECK(cudaMemcpyAsync(dst, c->ring + c->ring_at, bytes, cudaMemcpyHostToDevice, c->compute));
    c->ring_at += need;
}
static void cu_download(Backend *b, void *host_dst, const void *src, size_t bytes) {
    CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, stream(b)));
    CUDA_CHECK(cudaStreamSynchronize(stream(b)));
}
static void cu_synchronize(Backend *b) {
    CUDA_CHECK(cudaStreamSynchronize(impl(b)->copy));
    CUDA_CHECK(cudaStreamSynchronize(stream(b)));
}

static void check_elem_size(const char *fn, size_t elem_size) {
    if (elem_size != 2 && elem_size != 4)
        die_internal("CUDA backend: %s with element size %zu (expected 2 for bf16 or 4 for fp32)", fn, elem_size);
}

// Host doubles -> bf16 or fp32 on the device, through the pinned slots and the copy stream (see the top).
static void cu_upload_f64(Backend *b, void *dst, size_t elem_size, const double *host_src, size_t n) {
    check_elem_size("upload_f64", elem_size);
    CudaImpl *c = impl(b);
    c->queued++;
    CUDA_CHECK(cudaEventRecord(c->compute_mark, c->compute));
    CUDA_CHECK(cudaStreamWaitEvent(c->copy, c->compute_mark, 0));
    const size_t chunk = STAGING_MAX_BYTES / elem_size;
    for (size_t at = 0; at < n; at += chunk) {
        const size_t count = n - at < chunk ? n - at : chunk, bytes = count * elem_size;
        const int slot = c->up_next;
        c->up_next ^= 1;
        CUDA_CHECK(cudaEventSynchronize(c->up_free[slot]));  // its previous copy has left the slot
        if (c->up_bytes[slot] < bytes) {
            if (c->up[slot]) CUDA_CHECK(cudaFreeHost(c->up[slot]));
            CUDA_CHECK(cudaMallocHost((void **)&c->up[slot], bytes));
            c->up_bytes[slot] = bytes;
        }
        if (elem_size == 2) {
            uint16_t *h = (uint16_t *)c->up[slot];
            for (size_t i = 0; i < count; i++) h[i] = bf16_from_double(host_src[at + i]);
        } else {
            float *h = (float *)c->up[slot];
            for (size_t i = 0; i < count; i++) h[i] = (float)host_src[at + i];
        }
        CUDA_CHECK(cudaMemcpyAsync((char *)dst + at * elem_size, c->up[slot], bytes, cudaMemcpyHostToDevice,
                                   c->copy));
        CUDA_CHECK(cudaEventRecord(c->up_free[slot], c->copy));
    }
    CUDA_CHECK(cudaEventRecord(c->copy_done, c->copy));
    CUDA_CHECK(cudaStreamWaitEvent(c->compute, c->copy_done, 0));
}

static void cu_download_f64(Backend *b, double *host_dst, const void *src, size_t elem_size, size_t n) {
    check_elem_size("download_f64", elem_size);
    CudaImpl *c = impl(b);
    const size_t chunk = DOWNLOAD_BYTES / elem_size;
    for (size_t at = 0; at < n; at += chunk) {
        const size_t count = n - at < chunk ? n - at : chunk;
        CUDA_CHECK(cudaMemcpyAsync(c->down, (const char *)src + at * elem_size, count * elem_size,
                                   cudaMemcpyDeviceToHost, c->compute));
        CUDA_CHECK(cudaStreamSynchronize(c->compute));
        if (elem_size == 2) {
            const uint16_t *h = (const uint16_t *)c->down;
            for (size_t i = 0; i < count; i++) host_dst[at + i] = bf16_to_double(h[i]);
        } else {
            const float *h = (const float *)c->down;
            for (size_t i = 0; i < count; i++) host_dst[at + i] = h[i];
        }
    }
}

// ---------------------------------------------------------------- ops: backend.h's signatures onto cuda_ops.h's

static void cu_matmul_fwd(Backend *b, void *out, const void *inp, const void *w, const void *bias, int M, int N,
                          int K) {
    cuda_matmul_fwd(stream(b), out, inp, w, bias, M, N, K);
}
static void cu_matmul_bwd(Backend *b, void *dinp, void *dw, void *dbias, const void *dout, const void *inp,
                          const void *w, int M, int N, int K) {
    cuda_matmul_bwd(stream(b), dinp, dw, dbias, dout, inp, w, M, N, K);
}

// ---- JEPA_FUSE_GELU=1 (opt-in, read at backend creation): the MLP's GELU in cuBLASLt's epilogues, which compute the
// tanh-approximate GELU, not V-JEPA's exact erf one (kernels/matmul.cu). Off (default): backend.h's compositions.
// A shape the epilogue cannot take runs the composition (said once).
// An opt-in switch of the environment: unset, empty or 0 off, 1 on, anything else an input error.
static int fuse_requested(const char *var) {
    const char *v = getenv(var);
    if (!v || !*v || strcmp(v, "0") == 0) return 0;
    if (strcmp(v, "1") != 0) die_input("environment: %s=%s: expected 0 or 1", var, v);
    return 1;
}
static void gelu_unfused(Backend *b, const char *which, int M, int N, int K) {
    if (impl(b)->gelu_told_unfused) return;
    impl(b)->gelu_told_unfused = 1;
    printf("matmul: JEPA_FUSE_GELU: %s M=%d N=%d K=%d runs unfused (aux alignment, ld or no cuBLASLt algorithm)\n",
           which, M, N, K);
}
static void cu_matmul_fwd_gelu_fused(Backend *b, void *out, void *pre, const void *inp, const void *w,
                                     const void *bias, int M, int N, int K) {
    if (cuda_matmul_fwd_gelu(stream(b), out, pre, inp, w, bias, M, N, K)) return;
    gelu_unfused(b, "forward", M, N, K);
    backend_matmul_fwd_gelu(b, out, pre, inp, w, bias, M, N, K);
}
static void cu_matmul_bwd_dgelu_fused(Backend *b, void *d_pre, void *dw, void *dbias, void *scratch, const void *dout,
                                      const void *inp, const void *w, const void *pre, int M, int N, int K) {
    if (cuda_matmul_bwd_dgelu(stream(b), d_pre, dw, dbias, dout, inp, w, pre, M, N, K)) return;
    gelu_unfused(b, "backward", M, N, K);
    backend_matmul_bwd_dgelu(b, d_pre, dw, dbias, scratch, dout, inp, w, pre, M, N, K);
}
static void cu_layernorm_fwd(Backend *b, void *out, void *mean, void *rstd, const void *inp, const void *w,
                             const void *bias, int R, int C, double eps) {
    cuda_layernorm_fwd(stream(b), out, mean, rstd, inp, w, bias, R, C, (float)eps);
}
// ---- JEPA_FUSE_LN=1 (opt-in until a GPU has verified it): the block's residual add and the LayerNorm after it in one
// kernel (kernels/layernorm.cu); a call it cannot take runs backend.h's composition (said once). Off: the composition.
static void cu_add_layernorm_fwd_fused(Backend *b, void *sum, void *out, void *mean, void *rstd, const void *x,
                                       const void *y, const void *w, const void *bias, int R, int C, double eps) {
    if (cuda_add_layernorm_fwd(stream(b), sum, out, mean, rstd, x, y, w, bias, R, C, (float)eps)) return;
    if (!impl(b)->ln_told_unfused) {
        impl(b)->ln_told_unfused = 1;
        printf("layernorm: JEPA_FUSE_LN: R=%d C=%d runs unfused (C, alignment or overlapping buffers)\n", R, C);
    }
    backend_add_layernorm_fwd(b, sum, out, mean, rstd, x, y, w, bias, R, C, eps);
}
static void cu_layernorm_bwd(Backend *b, void *dinp, void *dw, void *dbias, const void *dout, const void *inp,
                             const void *w, const void *mean, const void *rstd, int R, int C) {
    cuda_layernorm_bwd(stream(b), dinp, dw, dbias, dout, inp, w, mean, rstd, R, C);
}
// ---- attention: our kernels, or cuDNN's (model.attention: cudnn) for the calls it supports

static int g_cudnn_backends = 0;  // live backends with model.attention: cudnn (an eval probe may make a second)

// Does cuDNN run attention of this shape? Decided at the shape's first call (cuDNN builds its forward and backward
// plans then) and remembered; a shape left to our kernels is printed once with the reason, so the log says which
// kernels ran. Frame-causal attention (the action-conditioned predictor) always runs ours: the cuDNN graphs here
// have no such mask. A failure that is not "unsupported" exits: it is a broken cuDNN, not a shape to route around.
static int attn_uses_cudnn(CudaImpl *c, int B, int N, int H, int hd, int frame_tokens) {
    if (!c->attn_cudnn || B <= 0 || N <= 0) return 0;  // nothing to compute: ours returns at once
    const AttnShape key = {B, N, H, hd, frame_tokens, 0};
    for (size_t i = 0; i < c->n_attn_shapes; i++) {
        const AttnShape *e = &c->attn_shapes[i];
        if (e->B == B && e->N == N && e->H == H && e->hd == hd && e->frame_tokens == frame_tokens) return e->cudnn;
    }
    char why[2048] = "";
    int use = 0;
    if (frame_tokens > 0) {
        snprintf(why, sizeof why, "frame-causal mask (%d tokens a frame), which the cuDNN graphs here do not have",
                 frame_tokens);
    } else {
        const int rc = cudnn_attention_prepare(B, N, H, hd, why, sizeof why);
        if (rc < 0)
            die_internal("model.attention: cudnn: building cuDNN's plans for B%d N%d H%d hd%d failed: %s\n---> HINT: "
                         "set model.attention=native", B, N, H, hd, why);
        use = rc == 1;
    }
    int cudnn_before = 0;
    for (size_t i = 0; i < c->n_attn_shapes; i++) cudnn_before += c->attn_shapes[i].cudnn;
    if (!use) printf("attention: B%d N%d H%d hd%d runs our kernels, not cuDNN: %s\n", B, N, H, hd, why);
    else if (!cudnn_before) printf("attention: B%d N%d H%d hd%d runs cuDNN (%s); later shapes build their own plans\n",
                                   B, N, H, hd, why);
    fflush(stdout);
    if (c->n_attn_shapes == c->cap_attn_shapes) {
        c->cap_attn_shapes = c->cap_attn_shapes ? 2 * c->cap_attn_shapes : 32;
        c->attn_shapes = xrealloc(c->attn_shapes, c->cap_attn_shapes * sizeof(*c->attn_shapes));
    }
    c->attn_shapes[c->n_attn_shapes] = key;
    c->attn_shapes[c->n_attn_shapes++].cudnn = use;
    return use;
}

// cuDNN needs every pointer 16-byte aligned; our arena's are, but a call that is not gets our kernels (correct either
// way), said once.
static int attn_aligned(CudaImpl *c, const void *const *ptrs, int n) {
    for (int i = 0; i < n; i++)
        if (ptrs[i] && (uintptr_t)ptrs[i] % 16 != 0) {
            if (!c->attn_told_align)
                printf("attention: a buffer at %p is not 16-byte aligned: our kernels run that call\n", ptrs[i]);
            c->attn_told_align = 1;
            return 0;
        }
    return 1;
}

static void cu_attention_fwd(Backend *b, void *out, void *lse, const void *qkv, int B, int N, int H, int hd,
                             int frame_tokens) {
    CudaImpl *c = impl(b);
    const void *const ptrs[] = {out, lse, qkv};
    if (attn_uses_cudnn(c, B, N, H, hd, frame_tokens) && attn_aligned(c, ptrs, 3)) {
        cudnn_attention_fwd(stream(b), out, lse, qkv, B, N, H, hd);
        return;
    }
    cuda_attention_fwd(stream(b), out, lse, qkv, B, N, H, hd, frame_tokens);
}

// A scratch buffer grown to `need` (whole MiB) if smaller: token counts vary per step, so it follows the largest shape
// seen. Growing waits for the queued work that may still use the old buffer (a few times early in a run). 1: grown.
static int grow_scratch(Backend *b, void **p, size_t *bytes, size_t need, const char *what) {
    if (need <= *bytes) return 0;
    if (*p) {
        CUDA_CHECK(cudaStreamSynchronize(impl(b)->compute));
        device_free(b, *p);
    }
    *bytes = (need + ((size_t)1 << 20) - 1) & ~(((size_t)1 << 20) - 1);
    *p = device_alloc(b, what, *bytes);
    return 1;
}

// cuDNN WRITES dqkv [B,N,3,H,hd]; backend.h says ADD. When dqkv is exactly what was zeroed last, with nothing queued
// since (the model's pattern), writing is adding to zero; otherwise cuDNN writes a scratch buffer (grown to the
// largest shape seen) that is then added.
static void cudnn_bwd_accumulating(Backend *b, void *dqkv, const void *dout, const void *qkv, const void *out,
                                   const void *lse, int B, int N, int H, int hd) {
    CudaImpl *c = impl(b);
    const size_t n = (size_t)B * N * 3 * H * hd, bytes = n * sizeof(bf16_bits);
    if (c->zeroed == dqkv && c->zeroed_bytes >= bytes && c->zeroed_at == c->queued) {
        cudnn_attention_bwd(stream(b), dqkv, dout, qkv, out, lse, B, N, H, hd);
        return;
    }
    grow_scratch(b, &c->attn_dqkv, &c->attn_dqkv_bytes, bytes, "the cuDNN attention backward's dqkv scratch");
    cudnn_attention_bwd(stream(b), c->attn_dqkv, dout, qkv, out, lse, B, N, H, hd);
    cuda_accumulate(stream(b), dqkv, c->attn_dqkv, n);
}

// Our backward's workspace is a grow_scratch buffer too.
static void cu_attention_bwd(Backend *b, void *dqkv, const void *dout, const void *qkv, const void *out,
                             const void *lse, int B, int N, int H, int hd, int frame_tokens) {
    CudaImpl *c = impl(b);
    const void *const ptrs[] = {dqkv, dout, qkv, out, lse};
    if (attn_uses_cudnn(c, B, N, H, hd, frame_tokens) && attn_aligned(c, ptrs, 5)) {
        cudnn_bwd_accumulating(b, dqkv, dout, qkv, out, lse, B, N, H, hd);
        return;
    }
    if (grow_scratch(b, &c->attn_ws, &c->attn_ws_bytes, cuda_attention_bwd_workspace(B, N, H, hd),
                     "the attention backward workspace"))
        cuda_attention_set_workspace(c->attn_ws, c->attn_ws_bytes);
    cuda_attention_bwd(stream(b), dqkv, dout, qkv, out, lse, B, N, H, hd, frame_tokens);
}

void backend_cuda_use_cudnn_attention(Backend *b, char *what, size_t n) {
    char why[768];
    if (!cudnn_attention_available(why, sizeof why))
        die_input("model.attention: cudnn, but %s\n---> HINT: set model.attention=native", why);
    impl(b)->attn_cudnn = 1;
    g_cudnn_backends++;
    snprintf(what, n, "%s", why);
}

// The summary at the end: how many shapes ran where, and whether the plan table kept up (evictions mean rebuilds).
// The plans are process-wide (cudnn_attention.c): the last backend using them frees them.
static void attn_summary(CudaImpl *c) {
    if (!c->attn_cudnn) return;
    long built = 0, evicted = 0;
    cudnn_attention_stats(&built, &evicted);
    size_t on_cudnn = 0;
    for (size_t i = 0; i < c->n_attn_shapes; i++) on_cudnn += (size_t)c->attn_shapes[i].cudnn;
    printf("attention: %zu shapes ran cuDNN, %zu ours; cuDNN plans built %ld, evicted %ld\n", on_cudnn,
           c->n_attn_shapes - on_cudnn, built, evicted);
    fflush(stdout);
    if (--g_cudnn_backends == 0) cudnn_attention_release();
}

static void cu_rope_qk(Backend *b, void *qkv, const int32_t *pos, int B, int N, int H, int hd, int grid_h, int grid_w,
                       int transpose) {
    cuda_rope_qk(stream(b), qkv, pos, B, N, H, hd, grid_h, grid_w, transpose);
}
static void cu_gelu_fwd(Backend *b, void *out, const void *inp, size_t n) { cuda_gelu_fwd(stream(b), out, inp, n); }
static void cu_gelu_bwd(Backend *b, void *dinp, const void *inp, const void *dout, size_t n) {
    cuda_gelu_bwd(stream(b), dinp, inp, dout, n);
}
static void cu_add(Backend *b, void *out, const void *x, const void *y, size_t n) { cuda_add(stream(b), out, x, y, n); }
static void cu_accumulate(Backend *b, void *y, const void *x, size_t n) { cuda_accumulate(stream(b), y, x, n); }
static void cu_scale(Backend *b, void *x, double factor, size_t n) { cuda_scale(stream(b), x, (float)factor, n); }
static void cu_gather_tokens(Backend *b, void *out, const void *inp, const int32_t *idx, int B, int n, int Nsrc,
                             int C) {
    cuda_gather_tokens(stream(b), out, inp, idx, B, n, Nsrc, C);
}
static void cu_scatter_add_tokens(Backend *b, void *dinp, const void *dout, const int32_t *idx, int B, int n,
                                  int Nsrc, int C) {
    cuda_scatter_add_tokens(stream(b), dinp, dout, idx, B, n, Nsrc, C);
}
static void cu_copy_tokens(Backend *b, void *dst, int dst_tokens, int dst_start, const void *src, int src_tokens,
                           int src_start, int count, int B, int C, int accumulate) {
    cuda_copy_tokens(stream(b), dst, dst_tokens, dst_start, src, src_tokens, src_start, count, B, C, accumulate);
}
static void cu_add_rows(Backend *b, void *x, const void *table, const int32_t *idx, int B, int n, int C) {
    cuda_add_rows(stream(b), x, table, idx, B, n, C);
}
static void cu_broadcast_row(Backend *b, void *out, const void *row, int R, int C) {
    cuda_broadcast_row(stream(b), out, row, R, C);
}
static void cu_sum_rows(Backend *b, void *drow, const void *dout, int R, int C) {
    cuda_sum_rows(stream(b), drow, dout, R, C);
}
static void cu_patchify(Backend *b, void *patches, const void *clips, int B, int T, int H, int W, int tt, int p) {
    cuda_patchify(stream(b), patches, clips, B, T, H, W, tt, p);
}
static void cu_l1_loss(Backend *b, void *loss_out, void *dpred, const void *pred, const void *target, size_t n,
                       double loss_scale, double grad_scale) {
    cuda_l1_loss(stream(b), loss_out, dpred, pred, target, n, (float)loss_scale, (float)grad_scale);
}
static void cu_mean_column_std(Backend *b, void *out, const void *x, int R, int C, double scale) {
    cuda_mean_column_std(stream(b), out, x, R, C, (float)scale);
}
static void cu_sum_squares(Backend *b, void *out, const void *x, size_t n) { cuda_sum_squares(stream(b), out, x, n); }
static void cu_clip_by_norm(Backend *b, void *x, size_t n, const void *sumsq, double max_norm) {
    cuda_clip_by_norm(stream(b), x, n, sumsq, (float)max_norm);
}
static void cu_nonfinite_flag(Backend *b, void *flag, const void *x, int n) { cuda_nonfinite_flag(stream(b), flag, x, n); }
static void cu_adamw(Backend *b, void *param, void *working, const void *grad, void *m, void *v, size_t n, double lr,
                     double beta1, double beta2, double eps, double weight_decay, long step, const void *skip) {
    cuda_adamw(stream(b), param, working == param ? NULL : working, grad, m, v, n, (float)lr, (float)beta1,
               (float)beta2, (float)eps, (float)weight_decay, step, skip);
}
static void cu_ema(Backend *b, void *target, void *working, const void *source, size_t n, double momentum,
                   const void *skip) {
    cuda_ema(stream(b), target, working == target ? NULL : working, source, n, (float)momentum, skip);
}
// JEPA_FUSE_EMA=1 (opt-in until a GPU has verified it): the target's EMA in AdamW's pass (optim.c folds it when the
// backend has adamw_ema).
static void cu_adamw_ema(Backend *b, void *param, void *working, const void *grad, void *m, void *v, size_t n,
                         double lr, double beta1, double beta2, double eps, double weight_decay, long step,
                         void *target, void *target_working, double momentum, const void *skip) {
    cuda_adamw_ema(stream(b), param, working, grad, m, v, target, target_working, n, (float)lr, (float)beta1,
                   (float)beta2, (float)eps, (float)weight_decay, step, (float)momentum, skip);
}
static void cu_cast_params(Backend *b, void *working, const void *master, size_t n) {
    cuda_cast_params(stream(b), working, master, n);
}

// ---------------------------------------------------------------- input double buffer

// Host buffer of `slot`, once its previous copy has left it. Growth allocates (a synchronisation, first steps only).
static float *cu_input_host(Backend *b, int slot, size_t n) {
    CudaImpl *c = impl(b);
    CUDA_CHECK(cudaEventSynchronize(c->in_copied[slot]));
    if (c->in_elems[slot] < n) {
        CUDA_CHECK(cudaStreamSynchronize(c->copy));  // the device buffer may still be read by a conversion
        if (c->in_host[slot]) CUDA_CHECK(cudaFreeHost(c->in_host[slot]));
        if (c->in_dev[slot]) device_free(b, c->in_dev[slot]);
        CUDA_CHECK(cudaMallocHost((void **)&c->in_host[slot], n * sizeof(float)));
        b->alloc_what = "the input double buffer (data.batch_size clips in fp32)";
        c->in_dev[slot] = cu_alloc(b, n * sizeof(float));
        b->alloc_what = NULL;
        c->in_elems[slot] = n;
    }
    return c->in_host[slot];
}

// Copy on the copy stream after the last reader of dst (and of this slot's landing buffer) is done; fp32 -> bf16 on
// the same stream, so the compute stream only waits for `in_ready`.
static void cu_upload_input(Backend *b, int slot, void *dst, size_t n) {
    CudaImpl *c = impl(b);
    JEPA_ASSERT(n <= c->in_elems[slot]);
    c->queued++;
    CUDA_CHECK(cudaStreamWaitEvent(c->copy, c->in_consumed[slot], 0));
    CUDA_CHECK(cudaMemcpyAsync(c->in_dev[slot], c->in_host[slot], n * sizeof(float), cudaMemcpyHostToDevice, c->copy));
    CUDA_CHECK(cudaEventRecord(c->in_copied[slot], c->copy));
    cuda_f32_to_bf16(c->copy, dst, c->in_dev[slot], n);
    CUDA_CHECK(cudaEventRecord(c->in_ready[slot], c->copy));
}

static void cu_wait_input(Backend *b, int slot) {
    CUDA_CHECK(cudaStreamWaitEvent(impl(b)->compute, impl(b)->in_ready[slot], 0));
}

static void cu_input_consumed(Backend *b, int slot) {
    CUDA_CHECK(cudaEventRecord(impl(b)->in_consumed[slot], impl(b)->compute));
}

// ---------------------------------------------------------------- lifetime

static void cu_destroy(Backend *b) {
    CudaImpl *c = impl(b);
    CUDA_CHECK(cudaStreamSynchronize(c->copy));
    CUDA_CHECK(cudaStreamSynchronize(c->compute));
    if (c->attn_ws) {
        cuda_attention_set_workspace(NULL, 0);
        device_free(b, c->attn_ws);
    }
    attn_summary(c);
    if (c->attn_dqkv) device_free(b, c->attn_dqkv);
    free(c->attn_shapes);
    for (int i = 0; i < 2; i++) {
        if (c->up[i]) CUDA_CHECK(cudaFreeHost(c->up[i]));
        CUDA_CHECK(cudaEventDestroy(c->up_free[i]));
        if (c->in_host[i]) CUDA_CHECK(cudaFreeHost(c->in_host[i]));
        if (c->in_dev[i]) device_free(b, c->in_dev[i]);
        CUDA_CHECK(cudaEventDestroy(c->in_copied[i]));
        CUDA_CHECK(cudaEventDestroy(c->in_ready[i]));
        CUDA_CHECK(cudaEventDestroy(c->in_consumed[i]));
    }
    CUDA_CHECK(cudaFreeHost(c->down));
    CUDA_CHECK(cudaFreeHost(c->ring));
    for (int i = 0; i < 2; i++) CUDA_CHECK(cudaEventDestroy(c->ring_left[i]));
    CUDA_CHECK(cudaEventDestroy(c->compute_mark));
    CUDA_CHECK(cudaEventDestroy(c->copy_done));
    CUDA_CHECK(cudaStreamDestroy(c->copy));
    CUDA_CHECK(cudaStreamDestroy(c->compute));
    free(c->ledger.live);
    free(c);
    b->impl = NULL;
}

Backend *backend_cuda_create(int device, int deterministic) {
    char why[256];
    const int count = cuda_device_count(why, sizeof why);
    if (count == 0) die_input("meta.device: cuda, but %s\n---> HINT: set meta.device=cpu (or auto)", why);
    if (device < 0 || device >= count)
        die_input("meta.device: cuda: GPU %d does not exist (%d visible)", device, count);
    CUDA_CHECK(cudaSetDevice(device));
    struct cudaDeviceProp p;
    CUDA_CHECK(cudaGetDeviceProperties(&p, device));
    if (p.major < 8)
        die_input("meta.device: GPU %d (%s) has compute capability %d.%d; the CUDA backend needs 8.0 or newer "
                  "(A100, H100 and later)\n---> HINT: set meta.device=cpu",
                  device, p.name, p.major, p.minor);
    CudaImpl *c = xcalloc(1, sizeof(CudaImpl));
    c->device = device;
    snprintf(c->gpu, sizeof c->gpu, "%s", p.name);
    CUDA_CHECK(cudaStreamCreateWithFlags(&c->compute, cudaStreamNonBlocking));
    CUDA_CHECK(cudaStreamCreateWithFlags(&c->copy, cudaStreamNonBlocking));
    for (int i = 0; i < 2; i++) {
        CUDA_CHECK(cudaEventCreateWithFlags(&c->up_free[i], cudaEventDisableTiming));
        CUDA_CHECK(cudaEventCreateWithFlags(&c->in_copied[i], cudaEventDisableTiming));
        CUDA_CHECK(cudaEventCreateWithFlags(&c->in_ready[i], cudaEventDisableTiming));
        CUDA_CHECK(cudaEventCreateWithFlags(&c->in_consumed[i], cudaEventDisableTiming));
    }
    CUDA_CHECK(cudaMallocHost((void **)&c->down, DOWNLOAD_BYTES));
    CUDA_CHECK(cudaMallocHost((void **)&c->ring, 2 * RING_HALF));
    for (int i = 0; i < 2; i++) CUDA_CHECK(cudaEventCreateWithFlags(&c->ring_left[i], cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&c->compute_mark, cudaEventDisableTiming));
    CUDA_CHECK(cudaEventCreateWithFlags(&c->copy_done, cudaEventDisableTiming));
    cuda_matmul_init(deterministic);

    Backend *b = xcalloc(1, sizeof(Backend));
    b->name = "cuda";
    b->act_dtype = DT_BF16;
    b->esize = 2;
    b->ssize = b->msize = 4;
    b->impl = c;
    b->destroy = cu_destroy;
    b->alloc = cu_alloc;
    b->memory = backend_cuda_memory;
    b->release = cu_release;
    b->zero = cu_zero;
    b->copy = cu_copy;
    b->upload = cu_upload;
    b->download = cu_download;
    b->upload_f64 = cu_upload_f64;
    b->download_f64 = cu_download_f64;
    b->synchronize = cu_synchronize;
    b->input_host = cu_input_host;
    b->upload_input = cu_upload_input;
    b->wait_input = cu_wait_input;
    b->input_consumed = cu_input_consumed;
    b->matmul_fwd = cu_matmul_fwd;
    b->matmul_bwd = cu_matmul_bwd;
    const int fuse_gelu = fuse_requested("JEPA_FUSE_GELU");
    if (fuse_gelu) printf("matmul: JEPA_FUSE_GELU=1: the MLP's GELU runs in cuBLASLt epilogues (tanh approximation)\n");
    b->matmul_fwd_gelu = fuse_gelu ? cu_matmul_fwd_gelu_fused : backend_matmul_fwd_gelu;
    b->matmul_bwd_dgelu = fuse_gelu ? cu_matmul_bwd_dgelu_fused : backend_matmul_bwd_dgelu;
    b->layernorm_fwd = cu_layernorm_fwd;
    b->layernorm_bwd = cu_layernorm_bwd;
    const int fuse_ln = fuse_requested("JEPA_FUSE_LN"), fuse_ema = fuse_requested("JEPA_FUSE_EMA");
    if (fuse_ln) printf("layernorm: JEPA_FUSE_LN=1: the residual add and the LayerNorm after it in one kernel\n");
    if (fuse_ema) printf("optimizer: JEPA_FUSE_EMA=1: the target's EMA in AdamW's pass\n");
    b->add_layernorm_fwd = fuse_ln ? cu_add_layernorm_fwd_fused : backend_add_layernorm_fwd;
    b->adamw_ema = fuse_ema ? cu_adamw_ema : NULL;
    b->attention_fwd = cu_attention_fwd;
    b->attention_bwd = cu_attention_bwd;
    b->rope_qk = cu_rope_qk;
    b->gelu_fwd = cu_gelu_fwd;
    b->gelu_bwd = cu_gelu_bwd;
    b->add = cu_add;
    b->accumulate = cu_accumulate;
    b->scale = cu_scale;
    b->gather_tokens = cu_gather_tokens;
    b->scatter_add_tokens = cu_scatter_add_tokens;
    b->copy_tokens = cu_copy_tokens;
    b->add_rows = cu_add_rows;
    b->broadcast_row = cu_broadcast_row;
    b->sum_rows = cu_sum_rows;
    b->patchify = cu_patchify;
    b->l1_loss = cu_l1_loss;
    b->mean_column_std = cu_mean_column_std;
    b->sum_squares = cu_sum_squares;
    b->clip_by_norm = cu_clip_by_norm;
    b->nonfinite_flag = cu_nonfinite_flag;
    b->adamw = cu_adamw;
    b->ema = cu_ema;
    b->cast_params = cu_cast_params;
    return b;
}

#endif
