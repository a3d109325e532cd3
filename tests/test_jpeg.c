// test_jpeg.c: the JPEG clip store (docs/data.md, "JPEG stores"). The TurboJPEG codec round-trips frames within a
// stated PSNR and honours the quality; a JPEG store written by the library reads back the codec's own decode
// bitwise (whole clips, frame lists, frames that cross /frames chunks, repeated frames) and libhdf5's own reads
// give the same bytes as the reader's preads; the loader's batches from
// a JPEG store are the same for 1, 2 and 3 reader threads and equal a one-thread reference; and a damaged offset
// table or JPEG frame ends `jepa data check` and the reader with one line, exit 2.
#include <hdf5.h>
#include <math.h>
#include <string.h>
#include <unistd.h>

#include "child.h"
#include "jpeg_frames.h"
#include "common.h"
#include "jpeg_codec.h"
#include "loader.h"
#include "store.h"
#include "test.h"
#include "tools.h"

static char temp_dir[64];

static const char *temp_path(const char *name) {
    static char paths[16][128];
    static int next = 0;
    char *p = paths[next++ % 16];
    snprintf(p, 128, "%s/%s", temp_dir, name);
    return p;
}

// ---------------------------------------------------------------------------------------------------- codec

// Bound: 30 dB at quality 90. This content is hard for JPEG (a 9-pixel texture and a saturated coloured edge
// that 4:2:0 chroma blurs): 33.0 dB measured with libjpeg-turbo 2.1.5; natural video gives ~38-45 dB. A decode
// that is wrong in any structural way (channel order, stride, shift, upsampling) is below 20 dB. Quality 30 must cost PSNR and bytes, or the quality is ignored.
static void test_codec(void) {
    const int H = 96, W = 128;
    const size_t n = (size_t)H * W * 3;
    uint8_t *rgb = xmalloc(n), *back = xmalloc(n), *enc = xmalloc(jpeg_frame_bound(H, W));
    fill_frame(3, 2, H, W, rgb);
    JpegCodec *c = jpeg_codec_create();
    char why[256] = "";
    double p[2];
    size_t bytes[2];
    const int quality[2] = {90, 30};
    int ok = 1;
    for (int k = 0; k < 2; k++) {
        bytes[k] = jpeg_encode_frame(c, rgb, H, W, quality[k], enc);
        ok &= jpeg_decode_frame(c, enc, bytes[k], H, W, back, why, sizeof why) == 0;
        p[k] = psnr(rgb, back, n);
    }
    printf("decode: cpu turbojpeg (%s); PSNR %.2f dB at quality 90, %.2f dB at 30\n", jpeg_library_version(), p[0],
           p[1]);
    TEST_CHECK("jpeg: 96x128 frame at quality 90 decodes within 30 dB PSNR", ok && p[0] >= 30.0,
               "decoded %d, PSNR %.2f dB (%s)", ok, p[0], why);
    TEST_CHECK("jpeg: quality 30 gives fewer bytes and lower PSNR than quality 90", bytes[1] < bytes[0] && p[1] < p[0],
               "q90 %zu bytes %.2f dB, q30 %zu bytes %.2f dB", bytes[0], p[0], bytes[1], p[1]);
    const size_t full = jpeg_encode_frame(c, rgb, H, W, 90, enc);
    const int truncated = jpeg_decode_frame(c, enc, full / 2, H, W, back, why, sizeof why);
    TEST_CHECK("jpeg: a truncated frame is an error with a reason", truncated != 0 && why[0], "got %d '%s'", truncated, why);
    const int wrong_size = jpeg_decode_frame(c, enc, full, H, W + 8, back, why, sizeof why);
    TEST_CHECK("jpeg: a frame of another size is an error naming both sizes", wrong_size != 0 && strstr(why, "128x96"),
               "got %d '%s'", wrong_size, why);
    jpeg_codec_free(c);
    free(rgb);
    free(back);
    free(enc);
}

// ---------------------------------------------------------------------------------------------------- store

enum { N = 7, T = 6, H = 40, W = 48, QUALITY = 85 };

// What the codec itself makes of frame t of clip i: the store must return exactly this.
static void codec_frame(int64_t i, int t, uint8_t *out, uint8_t *original) {
    uint8_t *enc = xmalloc(jpeg_frame_bound(H, W));
    fill_frame(i, t, H, W, original);
    JpegCodec *c = jpeg_codec_create();
    char why[256];
    const size_t bytes = jpeg_encode_frame(c, original, H, W, QUALITY, enc);
    if (jpeg_decode_frame(c, enc, bytes, H, W, out, why, sizeof why)) die_internal("decode: %s", why);
    jpeg_codec_free(c);
    free(enc);
}

// Any HDF5 reader sees the same frames: /frames and /frame_offsets read whole through libhdf5 (the last, partly
// filled /frames chunk included) against the reader's pread path, frame by frame.
static int hdf5_agrees(const Store *s, StoreReader *r) {
    const hid_t frames = H5Dopen2(s->file, "frames", H5P_DEFAULT), offsets = H5Dopen2(s->file, "frame_offsets", H5P_DEFAULT);
    uint8_t *all = xmalloc(s->stored_bytes);
    int64_t *off = xmalloc(sizeof(int64_t) * N * (T + 1));  // (N, T + 1)
    int ok = frames >= 0 && offsets >= 0 &&
             H5Dread(frames, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, all) >= 0 &&
             H5Dread(offsets, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, off) >= 0;
    for (int64_t i = 0; i < N && ok; i++) {
        store_fetch(s, r, i, 0, T);
        for (int t = 0; t < T; t++) {
            size_t bytes;
            const uint8_t *p = store_jpeg_frame(r, t, &bytes);
            const int64_t *row = off + i * (T + 1);
            ok &= bytes == (size_t)(row[t + 1] - row[t]) && !memcmp(p, all + row[t], bytes);
        }
    }
    ok &= off[N * (T + 1) - 1] == (int64_t)s->stored_bytes;
    H5Dclose(frames);
    H5Dclose(offsets);
    free(all);
    free(off);
    return ok;
}

static void test_store(void) {
    const char *path = temp_path("jpeg.h5");
    // 4 KiB chunks: a 40x48 frame is ~1-2 KB, so runs of frames cross chunk boundaries.
    write_jpeg_store(path, N, T, H, W, QUALITY, 4096);
    Store *s = store_open(path, T, "test");
    TEST_CHECK("jpeg store: opens with its codec, quality and shape", s->codec == STORE_CODEC_JPEG &&
               s->jpeg_quality == QUALITY && s->shape.clips == N && s->shape.frames == T && s->shape.height == H &&
               s->shape.width == W && s->frames_chunk == 4096 && s->stored_bytes > 4096 * 2,
               "codec %d q %d shape %lld %d %d %d chunk %zu bytes %llu", (int)s->codec, s->jpeg_quality,
               (long long)s->shape.clips, s->shape.frames, s->shape.height, s->shape.width, s->frames_chunk,
               (unsigned long long)s->stored_bytes);
    const size_t fb = (size_t)H * W * 3;
    uint8_t *want = xmalloc((size_t)T * fb), *original = xmalloc(fb);
    double worst = INFINITY;
    int whole = 1, lists = 1;
    StoreReader r;
    store_reader_init(&r);
    for (int64_t i = 0; i < N; i++) {
        for (int t = 0; t < T; t++) {
            codec_frame(i, t, want + (size_t)t * fb, original);
            worst = fmin(worst, psnr(want + (size_t)t * fb, original, fb));
        }
        whole &= !memcmp(store_read_frames(s, &r, i, 0, T), want, (size_t)T * fb);
        const int list[4] = {1, 3, 3, 5};  // a repeat and gaps: slot f - 1 holds frame f
        const uint8_t *got = store_read_list(s, &r, i, list, 4);
        for (int k = 0; k < 4; k++) lists &= !memcmp(got + (size_t)(list[k] - 1) * fb, want + (size_t)list[k] * fb, fb);
        size_t bytes = 0;
        lists &= store_jpeg_frame(&r, 2, &bytes) == store_jpeg_frame(&r, 1, &bytes) && bytes > 100;
    }
    TEST_CHECK("jpeg store: every clip reads back the codec's own decode, bitwise", whole, "differs");
    TEST_CHECK("jpeg store: libhdf5's H5Dread of /frames and /frame_offsets gives the bytes our preads read",
               hdf5_agrees(s, &r), "differs");
    TEST_CHECK("jpeg store: frame lists (gaps, a repeat) fill their window slots", lists, "differs");
    // 28 dB: these 40x48 frames are mostly edge and a 9-pixel texture, the worst case for 8x8 blocks and 4:2:0
    // chroma (30-31 dB measured at quality 85); a wrong frame or a misplaced byte range is far below 20 dB.
    printf("jpeg store: worst frame PSNR %.2f dB at quality %d\n", worst, QUALITY);
    TEST_CHECK("jpeg store: stored frames within 28 dB PSNR of the originals (quality 85)", worst >= 28.0,
               "worst %.2f dB", worst);
    int32_t labels[N];
    store_read_side_ints(s->file, "labels", 0, N, labels);
    TEST_CHECK("jpeg store: side data kept", labels[0] == 10 && labels[N - 1] == 10 + N - 1 && s->extras.has_video_id,
               "labels %d..%d", labels[0], labels[N - 1]);
    store_reader_free(&r);
    store_close(s);
    free(want);
    free(original);
}

// ---------------------------------------------------------------------------------------------------- loader

static LoaderSpec jpeg_spec(const char *path, int threads) {
    LoaderSpec spec = {.stores = 1, .seed = 11, .num_frames = 3, .sampling_rate = 2, .crop = 16, .scale = {0.3, 1.0},
                       .ratio = {0.75, 1.35}, .flip = 1, .batch = 4, .threads = threads, .queue_depth = 3};
    spec.path[0] = path;
    return spec;
}

static void test_loader(void) {
    const char *path = temp_path("jpeg.h5");
    const LoaderSpec one = jpeg_spec(path, 1);
    const size_t floats = (size_t)one.num_frames * one.crop * one.crop * 3;
    const int B = one.batch, batches = 5;
    // The reference: each position planned, read and rendered on this thread.
    float *reference = xmalloc((size_t)B * batches * floats * sizeof(float));
    Store *s = store_open(path, 1, NULL);
    SampleSpace space;
    sample_space_init(&space, &one, &s->shape);
    StoreReader r;
    store_reader_init(&r);
    for (int k = 0; k < B * batches; k++) {
        SamplePlan plan;
        sample_plan(&space, k, &plan);
        const uint8_t *frames = store_read_list(s, &r, plan.clip, plan.frame, one.num_frames);
        sample_render(&space, &plan, frames, H, W, reference + (size_t)k * floats);
    }
    store_reader_free(&r);
    store_close(s);
    for (int threads = 1; threads <= 3; threads++) {
        const LoaderSpec spec = jpeg_spec(path, threads);
        Loader *l = loader_open(&spec);
        int same = 1;
        for (int k = 0; k < batches; k++)
            same &= !memcmp(loader_batch(l, (int64_t)k * B, B), reference + (size_t)k * B * floats, B * floats * sizeof(float));
        loader_close(l);
        char name[128];
        snprintf(name, sizeof name, "jpeg loader: batches with %d reader thread%s equal the one-thread reference",
                 threads, threads > 1 ? "s" : "");
        TEST_CHECK(name, same, "batches differ");
    }
    free(reference);
}

// ---------------------------------------------------------------------------------------------------- damage

// Overwrites one int64 of /frame_offsets or a few bytes of /frames through libhdf5.
static void poke(const char *path, const char *dataset, hsize_t row, hsize_t col, int64_t value, int rank) {
    const hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    const hid_t d = H5Dopen2(f, dataset, H5P_DEFAULT);
    const hid_t space = H5Dget_space(d);
    const hsize_t start[2] = {row, col}, count[2] = {rank == 2 ? 1 : 64, 1};
    H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL);
    uint8_t zeros[64] = {0};
    const hid_t mem = H5Screate_simple(1, count, NULL);
    if (rank == 2) H5Dwrite(d, H5T_NATIVE_INT64, mem, space, H5P_DEFAULT, &value);
    else H5Dwrite(d, H5T_NATIVE_UINT8, mem, space, H5P_DEFAULT, zeros);
    H5Sclose(mem);
    H5Sclose(space);
    H5Dclose(d);
    H5Fclose(f);
}

static void run_check(const void *path) {
    char *argv[] = {"check", (char *)path};
    exit(data_command(2, argv));
}

// The reader thread's path: a loader batch that holds the damaged clip.
static void run_loader(const void *path) {
    const LoaderSpec spec = jpeg_spec(path, 2);
    Loader *l = loader_open(&spec);
    for (int k = 0; k < 4; k++) loader_batch(l, (int64_t)k * spec.batch, spec.batch);  // 16 positions: every clip
    loader_close(l);
}

static void test_damage(void) {
    const char *bad_offsets = temp_path("bad_offsets.h5"), *bad_frame = temp_path("bad_frame.h5");
    write_jpeg_store(bad_offsets, N, T, H, W, QUALITY, 4096);
    poke(bad_offsets, "frame_offsets", 4, 3, 5, 2);  // clip 4's frame 3 starts before its frame 2
    const char *offsets_msg[] = {"bad_offsets.h5: /frame_offsets: clip 4: offset 3 is 5", "increasing", NULL};
    expect_error("jpeg: jepa data check on a corrupt offset table: exit 2, one line naming clip and offset",
                 run_check, bad_offsets, offsets_msg);
    expect_error("jpeg: the loader's reader thread on a corrupt offset row: exit 2, one line", run_loader, bad_offsets,
                 offsets_msg);
    write_jpeg_store(bad_frame, N, T, H, W, QUALITY, 4096);
    poke(bad_frame, "frames", 0, 0, 0, 1);  // the first 64 bytes of clip 0's frame 0: its JPEG header gone
    const char *frame_msg[] = {"bad_frame.h5: /frames: clip 0 frame 0: damaged JPEG", "make the store again", NULL};
    expect_error("jpeg: jepa data check on a damaged JPEG frame: exit 2, one line", run_check, bad_frame, frame_msg);
}

int main(void) {
    snprintf(temp_dir, sizeof temp_dir, "/tmp/jepa_test_jpeg_XXXXXX");
    if (!mkdtemp(temp_dir)) die_internal("mkdtemp failed");
    test_codec();
    test_store();
    test_loader();
    test_damage();
    char command[128];
    snprintf(command, sizeof command, "rm -rf %s", temp_dir);
    if (system(command) != 0) printf("note: could not remove %s\n", temp_dir);
    TEST_EXIT();
}
