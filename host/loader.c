// loader.c: see loader.h and docs/data.md.
#include "loader.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "data.h"
#include "rng.h"

#define CROP_TRIES 10  // random resized crop attempts before the centre-crop fallback (torchvision, V-JEPA)

// ---------------------------------------------------------------------------------------------------- plan

int sample_window(const SampleSpace *space) { return space->num_frames * space->sampling_rate; }

// One bijection of [0, 4^half): four Feistel rounds on two half-words, each round keyed by (seed, epoch, round).
static uint64_t feistel(uint64_t seed, uint64_t epoch, int half, uint64_t x) {
    const uint64_t mask = ((uint64_t)1 << half) - 1;
    uint64_t left = x >> half, right = x & mask;
    for (uint64_t round = 0; round < 4; round++) {
        Rng rng = rng_stream(seed, RNG_DATA_ORDER, epoch, round << 32 | right);
        const uint64_t next = left ^ (rng_u32(&rng) & mask);
        left = right;
        right = next;
    }
    return left << half | right;
}

// Cycle walking: applying the bijection until the value falls inside [0, size) is a bijection of [0, size); the
// domain is under 4 * size, so it takes under 4 applications on average.
uint64_t epoch_permute(uint64_t seed, uint64_t epoch, uint64_t size, uint64_t index) {
    JEPA_ASSERT(index < size);
    int half = 1;
    while (half < 32 && ((uint64_t)1 << (2 * half)) < size) half++;
    uint64_t x = index;
    do x = feistel(seed, epoch, half, x);
    while (x >= size);
    return x;
}

// Store and clip of a position: the epoch's permutation of all clips (stores concatenated in order), or with
// weights a store drawn by weight and a clip drawn uniformly from it.
static void pick_clip(const SampleSpace *space, int64_t position, SamplePlan *plan) {
    if (space->weighted) {
        Rng rng = rng_stream(space->seed, RNG_DATA_MIX, 0, (uint64_t)position);
        const double u = rng_uniform(&rng);
        double cumulative = 0;
        plan->store = space->stores - 1;
        for (int d = 0; d < space->stores - 1; d++)
            if (u < (cumulative += space->weight[d])) {
                plan->store = d;
                break;
            }
        plan->clip = rng_randint(&rng, 0, space->shape[plan->store].clips);
        return;
    }
    const uint64_t epoch = (uint64_t)position / (uint64_t)space->epoch_clips;
    const uint64_t within = (uint64_t)position % (uint64_t)space->epoch_clips;
    int64_t clip = (int64_t)epoch_permute(space->seed, epoch, (uint64_t)space->epoch_clips, within);
    int d = 0;
    while (clip >= space->shape[d].clips) clip -= space->shape[d++].clips;
    plan->store = d;
    plan->clip = clip;
}

// V-JEPA: indices = clip(linspace(start, start + window, F), start, start + window - 1), truncated to integers.
static void pick_frames(const SampleSpace *space, const StoreShape *shape, Rng *rng, SamplePlan *plan) {
    const int window = sample_window(space), F = space->num_frames;
    plan->first_frame = (int)rng_randint(rng, 0, shape->frames - window + 1);
    for (int i = 0; i < F; i++) {
        const int offset = F == 1 ? 0 : (int)((int64_t)i * window / (F - 1));
        plan->frame[i] = plan->first_frame + (offset < window - 1 ? offset : window - 1);
    }
}

// torchvision's RandomResizedCrop.get_params (V-JEPA's _get_param_spatial_crop): area fraction uniform in
// scale, aspect w/h log-uniform in ratio, rounded half to even as Python's round; ten tries, then a centre crop
// of the whole frame clamped to the ratio range.
static void pick_crop(const SampleSpace *space, int H, int W, Rng *rng, SamplePlan *plan) {
    const double area = (double)H * W, log_lo = log(space->ratio[0]), log_hi = log(space->ratio[1]);
    for (int t = 0; t < CROP_TRIES; t++) {
        const double target = area * rng_uniform_range(rng, space->scale[0], space->scale[1]);
        const double aspect = exp(rng_uniform_range(rng, log_lo, log_hi));
        const int w = (int)nearbyint(sqrt(target * aspect)), h = (int)nearbyint(sqrt(target / aspect));
        if (w > 0 && w <= W && h > 0 && h <= H) {
            plan->crop_h = h;
            plan->crop_w = w;
            plan->crop_y = (int)rng_randint(rng, 0, H - h + 1);
            plan->crop_x = (int)rng_randint(rng, 0, W - w + 1);
            return;
        }
    }
    const double in_ratio = (double)W / H;
    int w = W, h = H;
    if (in_ratio < space->ratio[0]) h = (int)nearbyint(W / space->ratio[0]);
    else if (in_ratio > space->ratio[1]) w = (int)nearbyint(H * space->ratio[1]);
    plan->crop_h = h;
    plan->crop_w = w;
    plan->crop_y = (H - h) / 2;
    plan->crop_x = (W - w) / 2;
}

// Draws from rng_stream(seed, RNG_AUG, 0, position) in this order: flip (the first uniform, as data_flip_drawn),
// window start, then the crop tries. The flip is drawn whether or not flips are on, so turning them off changes
// nothing else.
void sample_plan(const SampleSpace *space, int64_t position, SamplePlan *plan) {
    JEPA_ASSERT(position >= 0 && space->num_frames <= SAMPLE_MAX_FRAMES);
    memset(plan, 0, sizeof *plan);
    pick_clip(space, position, plan);
    const StoreShape *shape = &space->shape[plan->store];
    Rng rng = rng_stream(space->seed, RNG_AUG, 0, (uint64_t)position);
    plan->flip = (rng_uniform(&rng) < 0.5) && space->flip;
    pick_frames(space, shape, &rng, plan);
    pick_crop(space, shape->height, shape->width, &rng, plan);
}

int64_t sample_first_position(int64_t step, int micro, int accum, int rank, int world, int batch) {
    JEPA_ASSERT(step >= 0 && 0 <= micro && micro < accum && 0 <= rank && rank < world && batch >= 1);
    return ((step * world + rank) * accum + micro) * (int64_t)batch;
}

// ---------------------------------------------------------------------------------------------------- render

// Bilinear taps along one axis: output o reads source lo[o] and hi[o] (crop-relative) with weight frac[o] on hi.
typedef struct {
    int *lo, *hi;
    float *frac;
} Taps;

static Taps taps_for(int in, int out, int mirror) {
    Taps t = {xmalloc(sizeof(int) * (size_t)out), xmalloc(sizeof(int) * (size_t)out), xmalloc(sizeof(float) * (size_t)out)};
    const float scale = (float)in / (float)out;
    for (int o = 0; o < out; o++) {
        float src = ((float)o + 0.5f) * scale - 0.5f;
        if (src < 0) src = 0;
        const int lo = (int)src, slot = mirror ? out - 1 - o : o;
        t.lo[slot] = lo;
        t.hi[slot] = lo < in - 1 ? lo + 1 : lo;
        t.frac[slot] = src - (float)lo;
    }
    return t;
}

static void taps_free(Taps *t) {
    free(t->lo);
    free(t->hi);
    free(t->frac);
}

// Two crop rows resized horizontally, (S, 3) floats each: consecutive output rows mostly read the same two
// source rows, so each is resized once.
typedef struct {
    float *buf[2];
    int row[2];  // crop row held in each buffer, -1 = none
} RowCache;

// Crop row r resized horizontally (v = p[lo] + fx (p[hi] - p[lo]) per channel), keeping the buffer that holds
// row keep.
static const float *resized_row(RowCache *cache, const uint8_t *frame, int W, const SamplePlan *plan, const Taps *xs,
                                int S, int r, int keep) {
    for (int k = 0; k < 2; k++)
        if (cache->row[k] == r) return cache->buf[k];
    const int k = cache->row[0] == keep ? 1 : 0;
    const uint8_t *src = frame + ((size_t)(plan->crop_y + r) * W + plan->crop_x) * 3;
    float *out = cache->buf[k];
    for (int xo = 0; xo < S; xo++) {
        const uint8_t *a = src + 3 * xs->lo[xo], *b = src + 3 * xs->hi[xo];
        const float fx = xs->frac[xo];
        for (int c = 0; c < 3; c++) out[3 * xo + c] = a[c] + fx * (float)(b[c] - a[c]);
    }
    cache->row[k] = r;
    return out;
}

// One output frame (S, S, 3) from one stored frame (H, W, 3): rows resized horizontally, blended vertically and
// normalised by out = v * gain + bias (gain and bias given per output float of a row, (S, 3)).
static void render_frame(const uint8_t *frame, int W, const SamplePlan *plan, const Taps *ys, const Taps *xs, int S,
                         const float *gain, const float *bias, RowCache *cache, float *out) {
    cache->row[0] = cache->row[1] = -1;
    for (int yo = 0; yo < S; yo++) {
        const float *t = resized_row(cache, frame, W, plan, xs, S, ys->lo[yo], ys->hi[yo]);
        const float *u = resized_row(cache, frame, W, plan, xs, S, ys->hi[yo], ys->lo[yo]);
        const float fy = ys->frac[yo];
        float *row = out + (size_t)yo * S * 3;
        for (int i = 0; i < 3 * S; i++) row[i] = (t[i] + fy * (u[i] - t[i])) * gain[i] + bias[i];
    }
}

void sample_norm_coefficients(float gain[3], float bias[3]) {
    for (int c = 0; c < 3; c++) {
        gain[c] = (float)(1.0 / (255.0 * DATA_STD[c]));
        bias[c] = (float)(-DATA_MEAN[c] / DATA_STD[c]);
    }
}

void sample_render(const SampleSpace *space, const SamplePlan *plan, const uint8_t *frames, int height, int width,
                   float *out) {
    const int S = space->crop;
    float *gain = xmalloc(sizeof(float) * 3 * (size_t)S), *bias = xmalloc(sizeof(float) * 3 * (size_t)S);
    float channel_gain[3], channel_bias[3];
    sample_norm_coefficients(channel_gain, channel_bias);
    for (int i = 0; i < 3 * S; i++) {
        gain[i] = channel_gain[i % 3];
        bias[i] = channel_bias[i % 3];
    }
    RowCache cache = {{xmalloc(sizeof(float) * 3 * (size_t)S), xmalloc(sizeof(float) * 3 * (size_t)S)}, {-1, -1}};
    Taps ys = taps_for(plan->crop_h, S, 0), xs = taps_for(plan->crop_w, S, plan->flip);
    const size_t frame_bytes = (size_t)height * width * 3, out_floats = (size_t)S * S * 3;
    for (int i = 0; i < space->num_frames; i++) {
        const uint8_t *frame = frames + (size_t)(plan->frame[i] - plan->frame[0]) * frame_bytes;
        render_frame(frame, width, plan, &ys, &xs, S, gain, bias, &cache, out + (size_t)i * out_floats);
    }
    taps_free(&ys);
    taps_free(&xs);
    free(cache.buf[0]);
    free(cache.buf[1]);
    free(gain);
    free(bias);
}

// ---------------------------------------------------------------------------------------------------- buffers

static void *aligned_host_alloc(size_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) die_internal("out of host memory allocating %zu bytes", bytes);
    return p;
}

static LoaderHostAllocator host_allocator = {aligned_host_alloc, free};

void loader_set_host_allocator(LoaderHostAllocator allocator) { host_allocator = allocator; }

// ---------------------------------------------------------------------------------------------------- loader

typedef struct {
    float *clips;    // (capacity, F, crop, crop, 3)
    int64_t first;   // first position of the batch it holds
    int claimed;     // samples handed to reader threads
    int done;        // samples finished
    SampleRead *reads;  // (capacity) what each sample read: its plan and the hash of its bytes (the read log)
} BatchSlot;

struct Loader {
    SampleSpace space;
    Store *store[CONFIG_MAX_DATASETS];
    size_t sample_floats;    // F * crop * crop * 3
    int depth, capacity;     // batch buffers, samples each holds
    BatchSlot *slot;         // ring: slot[head] is the next batch the trainer gets (or holds)
    int head, scheduled;     // scheduled = slots holding a batch, from head on
    int held;                // the trainer holds slot[head]
    int batch;               // samples per batch now
    int64_t next_first;      // first position of the next batch to schedule
    int64_t phase, run, period;  // loader_set_pattern; period 0: every position in order
    int hash_reads;          // loader_hash_reads: each sample's bytes hashed for the read log
    long restarts;           // loader_restarts
    int in_flight;           // samples being read outside the lock
    int stopping;
    pthread_mutex_t lock;
    pthread_cond_t work_ready, sample_done;
    int threads;
    pthread_t *thread;
};

// 64-bit FNV-1a, continuing from h (start: FNV_OFFSET): simple enough to recompute in a test script.
#define FNV_OFFSET 0xcbf29ce484222325ULL
static uint64_t fnv1a64(const uint8_t *p, size_t n, uint64_t h) {
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

static void load_sample(const Loader *l, StoreReader *reader, int64_t position, float *out, SampleRead *read) {
    SamplePlan *plan = &read->plan;
    sample_plan(&l->space, position, plan);
    const Store *s = l->store[plan->store];
    const int F = l->space.num_frames;
    const uint8_t *frames = store_read_list(s, reader, plan->clip, plan->frame, F);  // JPEG: only the F frames decoded
    // the read log's hash: the F listed frames' bytes in order (the window holds frame[i] at frame[i] - frame[0]);
    // byte by byte, ~0.5 GB/s a thread: only when asked
    const size_t frame_bytes = (size_t)s->shape.height * s->shape.width * 3;
    read->fnv1a = FNV_OFFSET;
    for (int i = 0; i < F && l->hash_reads; i++)
        read->fnv1a = fnv1a64(frames + (size_t)(plan->frame[i] - plan->frame[0]) * frame_bytes, frame_bytes, read->fnv1a);
    sample_render(&l->space, plan, frames, s->shape.height, s->shape.width, out);
}

// The oldest scheduled batch with a sample not yet handed out, or NULL.
static BatchSlot *next_claim(Loader *l) {
    for (int i = 0; i < l->scheduled; i++) {
        BatchSlot *slot = &l->slot[(l->head + i) % l->depth];
        if (slot->claimed < l->batch) return slot;
    }
    return NULL;
}

static void *reader_main(void *arg) {
    Loader *l = arg;
    StoreReader reader;
    store_reader_init(&reader);
    store_mark_reader_thread();
    CHECK_ZERO(pthread_mutex_lock(&l->lock));
    for (;;) {
        BatchSlot *slot = NULL;
        while (!l->stopping && !(slot = next_claim(l))) CHECK_ZERO(pthread_cond_wait(&l->work_ready, &l->lock));
        if (l->stopping) break;
        const int j = slot->claimed++;
        const int64_t position = slot->first + j;
        float *out = slot->clips + (size_t)j * l->sample_floats;
        l->in_flight++;
        CHECK_ZERO(pthread_mutex_unlock(&l->lock));
        load_sample(l, &reader, position, out, slot->reads + j);
        CHECK_ZERO(pthread_mutex_lock(&l->lock));
        l->in_flight--;
        if (++slot->done == l->batch || l->in_flight == 0) CHECK_ZERO(pthread_cond_broadcast(&l->sample_done));
    }
    CHECK_ZERO(pthread_mutex_unlock(&l->lock));
    store_reader_free(&reader);
    return NULL;
}

// The first position of the batch after the one at first: the next in order, or past the other readers' positions
// when that leaves this reader's run.
static int64_t following_first(const Loader *l, int64_t first) {
    const int64_t next = first + l->batch;
    if (l->period <= l->run) return next;
    const int64_t offset = ((next - l->phase) % l->period + l->period) % l->period;
    return offset < l->run ? next : next + (l->period - offset);
}

// Fills every free slot with the next batches and wakes the readers. Called with the lock held.
static void schedule_batches(Loader *l) {
    while (l->scheduled < l->depth) {
        BatchSlot *slot = &l->slot[(l->head + l->scheduled) % l->depth];
        slot->first = l->next_first;
        slot->claimed = slot->done = 0;
        l->next_first = following_first(l, l->next_first);
        l->scheduled++;
    }
    CHECK_ZERO(pthread_cond_broadcast(&l->work_ready));
}

static void allocate_slots(Loader *l, int capacity) {
    for (int k = 0; k < l->depth && l->slot; k++) host_allocator.release(l->slot[k].clips), free(l->slot[k].reads);
    free(l->slot);
    l->slot = xcalloc((size_t)l->depth, sizeof *l->slot);
    for (int k = 0; k < l->depth; k++) {
        l->slot[k].clips = host_allocator.alloc((size_t)capacity * l->sample_floats * sizeof(float));
        l->slot[k].reads = xcalloc((size_t)capacity, sizeof(SampleRead));
    }
    l->capacity = capacity;
}

// Drops the read-ahead (waiting for samples being read) and schedules from first. Called with the lock held.
static void restart_at(Loader *l, int64_t first, int batch) {
    l->restarts++;
    l->scheduled = 0;
    while (l->in_flight > 0) CHECK_ZERO(pthread_cond_wait(&l->sample_done, &l->lock));
    if (batch > l->capacity) allocate_slots(l, batch);
    l->batch = batch;
    l->next_first = first;
    schedule_batches(l);
}

const float *loader_batch(Loader *l, int64_t first, int batch) {
    JEPA_ASSERT(first >= 0 && batch >= 1);
    CHECK_ZERO(pthread_mutex_lock(&l->lock));
    if (l->held) {  // the trainer is done with the batch it held: its slot reads ahead again
        l->held = 0;
        l->head = (l->head + 1) % l->depth;
        l->scheduled--;
        schedule_batches(l);
    }
    if (batch != l->batch || l->slot[l->head].first != first) restart_at(l, first, batch);
    BatchSlot *slot = &l->slot[l->head];
    while (slot->done < l->batch) CHECK_ZERO(pthread_cond_wait(&l->sample_done, &l->lock));
    l->held = 1;
    CHECK_ZERO(pthread_mutex_unlock(&l->lock));
    return slot->clips;
}

void loader_spec_from_config(const Config *cfg, LoaderSpec *spec) {
    memset(spec, 0, sizeof *spec);
    spec->stores = cfg->data.datasets.count;
    for (int d = 0; d < spec->stores; d++) spec->path[d] = cfg->data.datasets.item[d];
    spec->weights = cfg->data.datasets_weights.count ? cfg->data.datasets_weights.item : NULL;
    spec->seed = (uint64_t)(int64_t)cfg->meta.seed;
    spec->num_frames = cfg->data.num_frames;
    spec->sampling_rate = cfg->data.sampling_rate;
    spec->crop = cfg->data.crop_size;
    memcpy(spec->scale, cfg->data_aug.random_resize_scale, sizeof spec->scale);
    memcpy(spec->ratio, cfg->data_aug.random_resize_aspect_ratio, sizeof spec->ratio);
    spec->flip = cfg->data_aug.random_horizontal_flip;
    spec->batch = cfg->data.batch_size;
    spec->threads = cfg->data.read_threads;
    spec->queue_depth = cfg->data.queue_depth;
}

static void check_spec(const LoaderSpec *spec) {
    if (spec->stores < 1 || spec->stores > CONFIG_MAX_DATASETS)
        die_input("data.datasets: %d stores, expected 1 to %d", spec->stores, CONFIG_MAX_DATASETS);
    if (spec->num_frames < 1 || spec->num_frames > SAMPLE_MAX_FRAMES)
        die_input("data.num_frames %d, expected 1 to %d when reading stores", spec->num_frames, SAMPLE_MAX_FRAMES);
    if (spec->sampling_rate < 1) die_input("data.sampling_rate %d, expected >= 1", spec->sampling_rate);
    if (spec->crop < 1) die_input("data.crop_size %d, expected >= 1", spec->crop);
    if (spec->queue_depth < 2) die_input("data.queue_depth %d, expected >= 2", spec->queue_depth);
    if (!(spec->scale[0] > 0 && spec->scale[0] <= spec->scale[1] && spec->ratio[0] > 0 && spec->ratio[0] <= spec->ratio[1]))
        die_input("data_aug: crop ranges scale [%g, %g], ratio [%g, %g], expected 0 < lo <= hi", spec->scale[0],
                  spec->scale[1], spec->ratio[0], spec->ratio[1]);
}

void sample_space_init(SampleSpace *space, const LoaderSpec *spec, const StoreShape *shapes) {
    memset(space, 0, sizeof *space);
    double weight_sum = 0;
    for (int d = 0; d < spec->stores; d++) {
        space->shape[d] = shapes[d];
        space->epoch_clips += shapes[d].clips;
        if (spec->weights) weight_sum += spec->weights[d];
    }
    space->stores = spec->stores;
    space->weighted = spec->weights != NULL;
    for (int d = 0; d < spec->stores && spec->weights; d++) space->weight[d] = spec->weights[d] / weight_sum;
    space->seed = spec->seed;
    space->num_frames = spec->num_frames;
    space->sampling_rate = spec->sampling_rate;
    space->crop = spec->crop;
    memcpy(space->scale, spec->scale, sizeof space->scale);
    memcpy(space->ratio, spec->ratio, sizeof space->ratio);
    space->flip = spec->flip;
}

Loader *loader_open(const LoaderSpec *spec) {
    check_spec(spec);
    Loader *l = xcalloc(1, sizeof *l);
    char why[128];
    snprintf(why, sizeof why, "data.num_frames %d x data.sampling_rate %d", spec->num_frames, spec->sampling_rate);
    StoreShape shapes[CONFIG_MAX_DATASETS];
    for (int d = 0; d < spec->stores; d++) {
        l->store[d] = store_open(spec->path[d], spec->num_frames * spec->sampling_rate, why);
        shapes[d] = l->store[d]->shape;
    }
    sample_space_init(&l->space, spec, shapes);
    if (l->space.epoch_clips < spec->batch)  // every batch would hold the same clips more than once
        die_input("data.datasets: %lld clips in all (%s%s), fewer than data.batch_size %d\n"
                  "---> HINT: lower data.batch_size to at most %lld, or write more clips (jepa data synth --clips, "
                  "jepa data convert)", (long long)l->space.epoch_clips, spec->path[0], spec->stores > 1 ? ", ..." : "",
                  spec->batch, (long long)l->space.epoch_clips);
    l->sample_floats = (size_t)spec->num_frames * spec->crop * spec->crop * 3;
    l->depth = spec->queue_depth;
    allocate_slots(l, spec->batch > 0 ? spec->batch : 1);
    l->batch = 0;  // nothing scheduled until the first request
    CHECK_ZERO(pthread_mutex_init(&l->lock, NULL));
    CHECK_ZERO(pthread_cond_init(&l->work_ready, NULL));
    CHECK_ZERO(pthread_cond_init(&l->sample_done, NULL));
    l->threads = spec->threads > 0 ? spec->threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (l->threads < 1) l->threads = 1;
    l->thread = xcalloc((size_t)l->threads, sizeof *l->thread);
    for (int t = 0; t < l->threads; t++) CHECK_ZERO(pthread_create(&l->thread[t], NULL, reader_main, l));
    return l;
}

void loader_set_pattern(Loader *l, int64_t phase, int64_t run, int64_t period) {
    JEPA_ASSERT(run >= 1 && period >= run && phase >= 0);
    CHECK_ZERO(pthread_mutex_lock(&l->lock));
    l->phase = phase, l->run = run, l->period = period;
    CHECK_ZERO(pthread_mutex_unlock(&l->lock));  // batches already scheduled stay; a mismatch restarts as before
}

long loader_restarts(const Loader *l) { return l->restarts; }

void loader_hash_reads(Loader *l) {
    CHECK_ZERO(pthread_mutex_lock(&l->lock));
    JEPA_ASSERT(l->restarts == 0);  // before the first batch: every batch it returns is hashed
    l->hash_reads = 1;
    CHECK_ZERO(pthread_mutex_unlock(&l->lock));
}

const SampleRead *loader_batch_reads(const Loader *l) {
    return l->held && l->hash_reads ? l->slot[l->head].reads : NULL;
}

const char *loader_store_path(const Loader *l, int store) { return l->store[store]->path; }

const SampleSpace *loader_space(const Loader *l) { return &l->space; }

int loader_threads(const Loader *l) { return l->threads; }

void loader_close(Loader *l) {
    if (!l) return;
    CHECK_ZERO(pthread_mutex_lock(&l->lock));
    l->stopping = 1;
    CHECK_ZERO(pthread_cond_broadcast(&l->work_ready));
    CHECK_ZERO(pthread_mutex_unlock(&l->lock));
    for (int t = 0; t < l->threads; t++) CHECK_ZERO(pthread_join(l->thread[t], NULL));
    CHECK_ZERO(pthread_cond_destroy(&l->work_ready));
    CHECK_ZERO(pthread_cond_destroy(&l->sample_done));
    CHECK_ZERO(pthread_mutex_destroy(&l->lock));
    for (int k = 0; k < l->depth; k++) host_allocator.release(l->slot[k].clips), free(l->slot[k].reads);
    free(l->slot);
    free(l->thread);
    for (int d = 0; d < l->space.stores; d++) store_close(l->store[d]);
    free(l);
}
