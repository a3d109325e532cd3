// bench_data.c: `jepa bench data FILE...`: clips per second the loader delivers (read + decode (inflate or JPEG) +
// crop, resize, flip, normalise) for each reader thread count, a single-thread breakdown by stage, the cores one
// ViT-L GPU needs at 160 clips/s, and the headroom: clips/s over what one such GPU consumes.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "loader.h"
#include "nvjpeg_decode.h"
#include "store.h"
#include "tools.h"
#ifdef JEPA_HAVE_NVJPEG
#include "cuda_check.h"
#endif

#define VITL_CLIPS_PER_S 160.0  // one GPU training ViT-L/16 at 16x224 (the figure)
#define MAX_THREAD_COUNTS 32

static const char *BENCH_DATA_HELP =
    "usage: jepa bench data FILE... [options]\n"
    "\n"
    "For each store: clips/s of read + decode (inflate, or JPEG with libjpeg-turbo) + augment (random resized\n"
    "crop, flip, ImageNet normalisation) through the trainer's loader (reader threads and batch queue; nothing\n"
    "trains) for each reader thread count, with the headroom (clips/s / 160, what one ViT-L GPU consumes), the\n"
    "time per stage on one thread, the cores one ViT-L GPU needs, and the headroom a 16-core host would have.\n"
    "Files are read through the page cache: a store larger than memory measures the disk too.\n"
    "\n"
    "options:\n"
    "  --threads a,b,...   reader thread counts (default 1, 2, 4, ... and the number of cores)\n"
    "  --seconds S         time per thread count (default 3)\n"
    "  --frames F          data.num_frames (default 16, at most T)\n"
    "  --rate R            data.sampling_rate (default 4, lowered until F x R fits T)\n"
    "  --crop S            data.crop_size (default 224)\n"
    "  --batch B           clips per batch (default 24)\n";

typedef struct {
    const char *files[CONFIG_MAX_DATASETS];
    int n_files;
    int threads[MAX_THREAD_COUNTS], n_threads;
    double seconds;
    int frames, rate, crop, batch;
} BenchOptions;

static void parse_thread_list(ToolArgs *a, BenchOptions *o) {
    const char *text = tool_value(a, "--threads");
    char *copy = xstrdup(text), *save = NULL;
    o->n_threads = 0;
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *end;
        const long t = strtol(item, &end, 10);
        if (*end || t < 1 || t > 1024 || o->n_threads == MAX_THREAD_COUNTS)
            die_input("bench data: --threads '%s': expected up to %d thread counts 1..1024, comma-separated", text,
                      MAX_THREAD_COUNTS);
        o->threads[o->n_threads++] = (int)t;
    }
    if (!o->n_threads) die_input("bench data: --threads '%s': expected thread counts like 1,2,4", text);
    free(copy);
}

static void default_thread_list(BenchOptions *o) {
    const int cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    o->n_threads = 0;
    for (int t = 1; t < cores && o->n_threads < MAX_THREAD_COUNTS - 1; t *= 2) o->threads[o->n_threads++] = t;
    o->threads[o->n_threads++] = cores > 0 ? cores : 1;
}

static void parse_bench(int argc, char **argv, BenchOptions *o) {
    ToolArgs a = {argc, argv, 0, "bench data"};
    *o = (BenchOptions){.seconds = 3, .frames = 16, .rate = 4, .crop = 224, .batch = 24};
    int rate_given = 0;
    while (a.next < argc) {
        const char *arg = argv[a.next++];
        if (!strcmp(arg, "--threads")) parse_thread_list(&a, o);
        else if (!strcmp(arg, "--seconds")) o->seconds = tool_int(&a, arg, 1, 3600);
        else if (!strcmp(arg, "--frames")) o->frames = tool_int(&a, arg, 1, SAMPLE_MAX_FRAMES);
        else if (!strcmp(arg, "--rate")) o->rate = tool_int(&a, arg, 1, 1 << 16), rate_given = 1;
        else if (!strcmp(arg, "--crop")) o->crop = tool_int(&a, arg, 1, 16384);
        else if (!strcmp(arg, "--batch")) o->batch = tool_int(&a, arg, 1, 1 << 16);
        else if (arg[0] == '-' && arg[1]) die_input("bench data: unknown option '%s' (see jepa bench data --help)", arg);
        else if (o->n_files == CONFIG_MAX_DATASETS) die_input("bench data: more than %d files", CONFIG_MAX_DATASETS);
        else o->files[o->n_files++] = arg;
    }
    if (!o->n_files) die_input("bench data: no store given (see jepa bench data --help)");
    if (!o->n_threads) default_thread_list(o);
    if (rate_given) o->rate = -o->rate;  // negative: keep as given, do not lower to fit
}

// The frames and rate used for a store of T frames: F capped at T, the rate lowered until F x R fits T
// (unless --rate was given: then the loader's own error says what does not fit).
static void fit_sampling(const BenchOptions *o, int T, int *frames, int *rate) {
    *frames = o->frames < T ? o->frames : T;
    if (o->rate < 0) {
        *rate = -o->rate;
        return;
    }
    *rate = o->rate;
    while (*rate > 1 && *frames * *rate > T) (*rate)--;
}

static LoaderSpec bench_spec(const BenchOptions *o, const char *file, int frames, int rate, int threads) {
    LoaderSpec spec = {.stores = 1, .seed = 0, .num_frames = frames, .sampling_rate = rate, .crop = o->crop,
                       .scale = {0.3, 1.0}, .ratio = {0.75, 1.35}, .flip = 1, .batch = o->batch,
                       .threads = threads, .queue_depth = 3};
    spec.path[0] = file;
    return spec;
}

// CPU seconds this process has used (all threads), and this thread alone: unlike wall time, they do not grow
// when other processes share the cores.
static double process_cpu_seconds(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_utime.tv_sec + 1e-6 * u.ru_utime.tv_usec + (double)u.ru_stime.tv_sec + 1e-6 * u.ru_stime.tv_usec;
}

static double thread_cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    double clips_per_s;   // wall clock
    double cpu_per_clip;  // CPU seconds of all threads per clip
} LoaderRate;

// What the loader delivers with spec->threads reader threads, after one warm-up batch.
static LoaderRate measure_threads(const BenchOptions *o, const LoaderSpec *spec) {
    Loader *l = loader_open(spec);
    int64_t first = 0;
    loader_batch(l, first, o->batch);
    first += o->batch;
    const double t0 = now_seconds(), cpu0 = process_cpu_seconds();
    int64_t clips = 0;
    double elapsed = 0;
    while (elapsed < o->seconds) {
        loader_batch(l, first, o->batch);
        first += o->batch;
        clips += o->batch;
        elapsed = now_seconds() - t0;
    }
    const double cpu = process_cpu_seconds() - cpu0;
    loader_close(l);
    return (LoaderRate){(double)clips / elapsed, cpu / (double)clips};
}

typedef struct {
    double read, decode, augment;  // CPU seconds per clip
} StageTimes;

// One thread, stage by stage, over the same positions the loader would take; CPU time of this thread.
static StageTimes measure_stages(const LoaderSpec *spec, int clips) {
    Store *s = store_open(spec->path[0], spec->num_frames * spec->sampling_rate, "--frames x --rate");
    SampleSpace space;
    sample_space_init(&space, spec, &s->shape);
    StoreReader reader;
    store_reader_init(&reader);
    float *out = xmalloc((size_t)spec->num_frames * spec->crop * spec->crop * 3 * sizeof(float));
    StageTimes t = {0, 0, 0};
    for (int i = 0; i < clips; i++) {
        SamplePlan plan;
        sample_plan(&space, i, &plan);
        const double t0 = thread_cpu_seconds();
        store_fetch_list(s, &reader, plan.clip, plan.frame, spec->num_frames);
        const double t1 = thread_cpu_seconds();
        const uint8_t *frames = store_decode_list(s, &reader, plan.clip, plan.frame, spec->num_frames);
        const double t2 = thread_cpu_seconds();
        sample_render(&space, &plan, frames, s->shape.height, s->shape.width, out);
        const double t3 = thread_cpu_seconds();
        t.read += (t1 - t0) / clips;
        t.decode += (t2 - t1) / clips;
        t.augment += (t3 - t2) / clips;
    }
    free(out);
    store_reader_free(&reader);
    store_close(s);
    return t;
}

#ifdef JEPA_HAVE_NVJPEG
// One host thread plans the samples and gathers their JPEG bytes (pread, no decode); nvJPEG decodes them and
// kernels/augment.cu renders them on the GPU, a batch at a time. clips/s of that pipeline, not overlapped (a lower
// bound), and the host CPU time per clip, which is what the reader threads would still spend.
typedef struct {
    uint8_t **jpeg;
    size_t *bytes, *cap;
} JpegBatch;

static void gather_batch(const Store *s, StoreReader *r, const SampleSpace *space, int64_t first, int B,
                         SamplePlan *plans, JpegBatch *j) {
    const int F = space->num_frames;
    for (int b = 0; b < B; b++) {
        sample_plan(space, first + b, &plans[b]);
        store_fetch_list(s, r, plans[b].clip, plans[b].frame, F);
        for (int i = 0; i < F; i++) {
            const int k = b * F + i;
            const uint8_t *src = store_jpeg_frame(r, i, &j->bytes[k]);
            if (j->cap[k] < j->bytes[k]) {
                free(j->jpeg[k]);
                j->jpeg[k] = xmalloc(j->cap[k] = j->bytes[k]);
            }
            memcpy(j->jpeg[k], src, j->bytes[k]);
        }
    }
}

static void bench_nvjpeg(const BenchOptions *o, const LoaderSpec *spec) {
    char why[256];
    if (!nvjpeg_available(why, sizeof why)) {
        printf("  decode: nvjpeg: not measured: %s\n", why);
        return;
    }
    Store *s = store_open(spec->path[0], spec->num_frames * spec->sampling_rate, "--frames x --rate");
    SampleSpace space;
    sample_space_init(&space, spec, &s->shape);
    const int B = o->batch, F = spec->num_frames, n = B * F;
    JpegBatch j = {xcalloc((size_t)n, sizeof(uint8_t *)), xcalloc((size_t)n, sizeof(size_t)), xcalloc((size_t)n, sizeof(size_t))};
    SamplePlan *plans = xmalloc((size_t)B * sizeof *plans);
    StoreReader reader;
    store_reader_init(&reader);
    NvjpegDecoder *d = nvjpeg_decoder_create(s->shape.height, s->shape.width);
    float *out = NULL;  // device (B, F, crop, crop, 3)
    CUDA_CHECK(cudaMalloc((void **)&out, (size_t)n * spec->crop * spec->crop * 3 * sizeof(float)));
    cudaStream_t stream;
    CUDA_CHECK(cudaStreamCreate(&stream));
    double t0 = 0, cpu = 0;
    int64_t clips = 0;
    for (int64_t first = 0;; first += B) {
        if (first == B) t0 = now_seconds(), cpu = 0, clips = 0;  // after one warm-up batch
        const double c0 = thread_cpu_seconds();
        gather_batch(s, &reader, &space, first, B, plans, &j);
        nvjpeg_render_batch(d, &space, plans, B, (const uint8_t *const *)j.jpeg, j.bytes, out, stream);
        CUDA_CHECK(cudaStreamSynchronize(stream));
        cpu += thread_cpu_seconds() - c0;
        clips += B;
        if (first >= B && now_seconds() - t0 >= o->seconds) break;
    }
    const double rate = (double)clips / (now_seconds() - t0);
    printf("  decode: %s + GPU augment, 1 host thread: %.1f clips/s (headroom %.2fx), host CPU %.2f ms per clip\n",
           nvjpeg_decoder_backend(d), rate, rate / VITL_CLIPS_PER_S, 1e3 * cpu / (double)clips);
    CUDA_CHECK(cudaStreamDestroy(stream));
    CUDA_CHECK(cudaFree(out));
    nvjpeg_decoder_free(d);
    store_reader_free(&reader);
    store_close(s);
    for (int k = 0; k < n; k++) free(j.jpeg[k]);
    free(j.jpeg);
    free(j.bytes);
    free(j.cap);
    free(plans);
}
#endif

static void bench_file(const BenchOptions *o, const char *file) {
    Store *s = store_open(file, 1, NULL);
    const StoreShape shape = s->shape;
    const double ratio = (double)s->clip_bytes * shape.clips / (double)s->stored_bytes;
    char codec[32];
    store_codec_text(s, codec, sizeof codec);
    const int jpeg = s->codec == STORE_CODEC_JPEG;
    const char *decode = s->codec == STORE_CODEC_JPEG ? "decode: cpu turbojpeg" : s->deflate ? "inflate" : "decode";
    store_close(s);
    int frames, rate;
    fit_sampling(o, shape.frames, &frames, &rate);
    printf("%s: %lld clips of %dx%dx%d, %s (%.2fx); samples of %d frames at step %d, crop %d, batch %d\n", file,
           (long long)shape.clips, shape.frames, shape.height, shape.width, codec, ratio, frames, rate, o->crop,
           o->batch);
    LoaderSpec spec = bench_spec(o, file, frames, rate, 1);
    const StageTimes st = measure_stages(&spec, 32);
    printf("  one thread, CPU time per clip: read %.2f ms, %s %.2f ms, augment %.2f ms (total %.2f ms)\n",
           1e3 * st.read, decode, 1e3 * st.decode, 1e3 * st.augment, 1e3 * (st.read + st.decode + st.augment));
    printf("  %8s  %10s  %16s  %16s  %9s\n", "threads", "clips/s", "clips/s/thread", "CPU ms/clip", "headroom");
    LoaderRate first = {0, 0};
    for (int i = 0; i < o->n_threads; i++) {
        spec.threads = o->threads[i];
        const LoaderRate r = measure_threads(o, &spec);
        if (i == 0) first = r;
        printf("  %8d  %10.1f  %16.1f  %16.2f  %8.2fx\n", o->threads[i], r.clips_per_s, r.clips_per_s / o->threads[i],
               1e3 * r.cpu_per_clip, r.clips_per_s / VITL_CLIPS_PER_S);
        fflush(stdout);
    }
    const int vitl = o->crop == 224 && frames == 16;  // ViT-L's sample, whatever the stored size
    printf("  one ViT-L GPU at %.0f clips/s needs %.1f cores: %.0f x %.2f CPU ms per clip with %d reader thread%s "
           "(wall clock there: %.1f clips/s per thread)%s\n", VITL_CLIPS_PER_S,
           VITL_CLIPS_PER_S * first.cpu_per_clip, VITL_CLIPS_PER_S, 1e3 * first.cpu_per_clip, o->threads[0],
           o->threads[0] > 1 ? "s" : "", first.clips_per_s / o->threads[0],
           vitl ? "; 16 frames cropped to 224, as ViT-L trains" : "; not ViT-L's 16 x 224 sample: scale accordingly");
    // A projection, not a measurement: CPU time per clip scaled to 16 busy cores (no memory-bandwidth limit).
    printf("  headroom on a 16-core host (projected from CPU time per clip): %.1f clips/s = %.1fx one ViT-L GPU\n",
           16.0 / first.cpu_per_clip, 16.0 / first.cpu_per_clip / VITL_CLIPS_PER_S);
#ifdef JEPA_HAVE_NVJPEG
    if (jpeg) bench_nvjpeg(o, &spec);
#else
    if (jpeg) printf("  decode: nvjpeg: not measured: built without nvJPEG (nvjpeg.h or libnvjpeg not found at build time)\n");
#endif
}

int bench_data_command(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return fputs(BENCH_DATA_HELP, stdout), JEPA_EXIT_OK;
    BenchOptions o;
    parse_bench(argc, argv, &o);
    for (int f = 0; f < o.n_files; f++) bench_file(&o, o.files[f]);
    return JEPA_EXIT_OK;
}
