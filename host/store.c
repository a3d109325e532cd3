// store.c: see store.h. User-facing problems (a file that is not a store, a store that does not fit the config,
// a damaged chunk) end in die_input with one line "FILE: /dataset: what was found; what was expected"; failures
// of libhdf5 on a file already validated are internal (H5_CHECK).
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.h"
#include "jpeg_codec.h"

#define CLIPS "clips"
#define REWRITE_HINT "---> HINT: rewrite it as a store: jepa data convert --from-h5 %s -o OUT.h5"

int64_t store_h5_check(int64_t rc, const char *call, const char *file, int line) {
    if (rc >= 0) return rc;
    H5Eprint2(H5E_DEFAULT, stderr);
    die_internal("%s:%d: %s failed (the libhdf5 error stack is above)", file, line, call);
}

void store_library_versions(char *buf, size_t n) {
    unsigned major = 0, minor = 0, release = 0;
    H5get_libversion(&major, &minor, &release);
    snprintf(buf, n, "hdf5 %u.%u.%u, zlib %s, %s", major, minor, release, zlibVersion(), jpeg_library_version());
}

// libhdf5 prints its error stack on every failed call by default; validation probes fail on purpose.
static void quiet_hdf5(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

static size_t frame_bytes(const StoreShape *shape) { return (size_t)shape->height * shape->width * 3; }

// ---------------------------------------------------------------------------------------------------- describing

// "uint8", "float32", "string": how a dataset's element type reads in a message.
static void type_text(hid_t type, char *buf, size_t n) {
    const H5T_class_t cls = H5Tget_class(type);
    const size_t bits = 8 * H5Tget_size(type);
    if (cls == H5T_INTEGER)
        snprintf(buf, n, "%sint%zu", H5Tget_sign(type) == H5T_SGN_NONE ? "u" : "", bits);
    else if (cls == H5T_FLOAT)
        snprintf(buf, n, "float%zu", bits);
    else if (cls == H5T_STRING)
        snprintf(buf, n, "string");
    else
        snprintf(buf, n, "a compound or other non-numeric type (HDF5 class %d)", (int)cls);
}

// "[100,16,64,64,3]"
static void dims_text(const hsize_t *dims, int rank, char *buf, size_t n) {
    size_t used = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < rank && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%llu", i ? "," : "", (unsigned long long)dims[i]);
    if (used < n) snprintf(buf + used, n - used, "]");
}

// ---------------------------------------------------------------------------------------------------- opening

static hid_t open_hdf5_file(const char *path) {
    quiet_hdf5();
    struct stat st;
    if (stat(path, &st) != 0) die_input("%s: cannot open store: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) die_input("%s: is a directory, expected an HDF5 clip store", path);
    if (access(path, R_OK) != 0) die_input("%s: cannot read store: %s", path, strerror(errno));
    if (H5Fis_hdf5(path) <= 0)
        die_input("%s: not an HDF5 file; expected a clip store written by `jepa data synth` or `jepa data convert`",
                  path);
    const hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) die_input("%s: libhdf5 cannot open it: a damaged or truncated file, or one still being written", path);
    return file;
}

static int has_dataset(hid_t file, const char *name) { return H5Lexists(file, name, H5P_DEFAULT) > 0; }

// A dataset of the given element class and rank; dims receives its shape. expected reads like "uint8 [N,T,H,W,3]".
static hid_t open_checked(const char *path, hid_t file, const char *name, H5T_class_t cls, int rank, hsize_t *dims,
                          const char *expected) {
    if (!has_dataset(file, name)) die_input("%s: no dataset /%s; expected %s (docs/data.md)", path, name, expected);
    const hid_t dset = H5Dopen2(file, name, H5P_DEFAULT);
    if (dset < 0) die_input("%s: /%s is not a dataset; expected %s", path, name, expected);
    const hid_t type = H5_CHECK(H5Dget_type(dset)), space = H5_CHECK(H5Dget_space(dset));
    char found[96];
    type_text(type, found, sizeof found);
    if (H5Tget_class(type) != cls) die_input("%s: /%s: dtype %s, expected %s", path, name, found, expected);
    const int got_rank = (int)H5_CHECK(H5Sget_simple_extent_ndims(space));
    hsize_t got[H5S_MAX_RANK];
    H5_CHECK(H5Sget_simple_extent_dims(space, got, NULL));
    if (got_rank != rank) {
        char shape[160];
        dims_text(got, got_rank, shape, sizeof shape);
        die_input("%s: /%s: shape %s has rank %d, expected %s", path, name, shape, got_rank, expected);
    }
    memcpy(dims, got, sizeof(hsize_t) * (size_t)rank);
    H5_CHECK(H5Sclose(space));
    H5_CHECK(H5Tclose(type));
    return dset;
}

// /clips: uint8 [N,T,H,W,3] with N >= 1.
static hid_t open_clips(const char *path, hid_t file, StoreShape *shape) {
    static const char expected[] = "uint8 [N,T,H,W,3] (one RGB clip per row)";
    hsize_t dims[5];
    const hid_t clips = open_checked(path, file, CLIPS, H5T_INTEGER, 5, dims, expected);
    const hid_t type = H5_CHECK(H5Dget_type(clips));
    char found[96], shape_text[160];
    type_text(type, found, sizeof found);
    if (H5Tget_size(type) != 1 || H5Tget_sign(type) != H5T_SGN_NONE)
        die_input("%s: /clips: dtype %s, expected %s", path, found, expected);
    H5_CHECK(H5Tclose(type));
    dims_text(dims, 5, shape_text, sizeof shape_text);
    if (dims[4] != 3) die_input("%s: /clips: shape %s has %llu channels, expected %s", path, shape_text,
                                (unsigned long long)dims[4], expected);
    if (dims[0] == 0) die_input("%s: /clips: shape %s holds N = 0 clips, expected at least one", path, shape_text);
    if (dims[1] == 0 || dims[2] == 0 || dims[3] == 0)
        die_input("%s: /clips: shape %s has an empty frame axis, expected T, H, W >= 1", path, shape_text);
    if (dims[1] * dims[2] * dims[3] * 3 >= ((hsize_t)1 << 32))
        die_input("%s: /clips: a clip of shape %s is 4 GiB or more; expected clips under 4 GiB (HDF5's chunk limit)",
                  path, shape_text);
    *shape = (StoreShape){(int64_t)dims[0], (int)dims[1], (int)dims[2], (int)dims[3]};
    return clips;
}

static void check_window(const char *path, const StoreShape *shape, int window, const char *why) {
    if (window <= shape->frames) return;
    die_input("%s: /clips: T = %d frames per clip, but %s = %d frames must fit in a clip ---> HINT: lower "
              "data.sampling_rate, or cut clips of >= %d frames (jepa data convert --frames %d)",
              path, shape->frames, why ? why : "the sampling window", window, window, window);
}

// One chunk per clip, and no filter but deflate; returns 1 when the chunks are deflated.
static int check_chunking(const char *path, hid_t clips, const StoreShape *shape) {
    const hid_t dcpl = H5_CHECK(H5Dget_create_plist(clips));
    const hsize_t want[5] = {1, (hsize_t)shape->frames, (hsize_t)shape->height, (hsize_t)shape->width, 3};
    char want_text[160], got_text[160];
    dims_text(want, 5, want_text, sizeof want_text);
    const H5D_layout_t layout = H5Pget_layout(dcpl);
    if (layout != H5D_CHUNKED)
        die_input("%s: /clips: stored %s, expected one chunk per clip %s " REWRITE_HINT, path,
                  layout == H5D_CONTIGUOUS ? "contiguous (not chunked)" : "compact (not chunked)", want_text, path);
    hsize_t got[5];
    H5_CHECK(H5Pget_chunk(dcpl, 5, got));
    dims_text(got, 5, got_text, sizeof got_text);
    if (memcmp(got, want, sizeof want))
        die_input("%s: /clips: chunks of %s, expected one chunk per clip %s " REWRITE_HINT, path, got_text,
                  want_text, path);
    const int filters = (int)H5_CHECK(H5Pget_nfilters(dcpl));
    int deflate = 0;
    for (int i = 0; i < filters; i++) {
        unsigned flags, config;
        size_t n_values = 0;
        char name[64] = "";
        const H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &n_values, NULL, sizeof name, name, &config);
        if (id != H5Z_FILTER_DEFLATE || filters > 1)
            die_input("%s: /clips: filter '%s' (HDF5 filter %d of %d), expected no filter or deflate alone " REWRITE_HINT,
                      path, name[0] ? name : "?", i + 1, filters, path);
        deflate = 1;
    }
    H5_CHECK(H5Pclose(dcpl));
    return deflate;
}

// The file's user block (chunk addresses count from its end) and its size in bytes.
static void file_extent(const Store *s, uint64_t *userblock, uint64_t *bytes) {
    const hid_t fcpl = H5_CHECK(H5Fget_create_plist(s->file));
    hsize_t block = 0;
    H5_CHECK(H5Pget_userblock(fcpl, &block));
    H5_CHECK(H5Pclose(fcpl));
    struct stat st;
    if (stat(s->path, &st) != 0) die_input("%s: cannot stat: %s", s->path, strerror(errno));
    *userblock = block;
    *bytes = (uint64_t)st.st_size;
}

// A chunk's address (HADDR_UNDEF when never written), stored size and filter mask, from libhdf5's chunk index.
static haddr_t chunk_info(hid_t dset, const hsize_t *coord, hsize_t *bytes, unsigned *mask) {
    haddr_t addr = HADDR_UNDEF;
    *bytes = 0;
    *mask = 0;
    H5_CHECK(H5Dget_chunk_info_by_coord(dset, coord, mask, &addr, bytes));
    return addr;
}

// Where each clip's chunk lies, from libhdf5's chunk index; checked against the file size so that a truncated
// file is reported here rather than by a reader thread.
static void index_chunks(Store *s, hid_t clips) {
    uint64_t userblock, file_bytes;
    file_extent(s, &userblock, &file_bytes);
    s->chunk = xcalloc((size_t)s->shape.clips, sizeof *s->chunk);
    for (int64_t i = 0; i < s->shape.clips; i++) {
        const hsize_t coord[5] = {(hsize_t)i, 0, 0, 0, 0};
        unsigned mask;
        hsize_t bytes;
        const haddr_t addr = chunk_info(clips, coord, &bytes, &mask);
        if (addr == HADDR_UNDEF)
            die_input("%s: /clips: clip %lld has no stored chunk (the file was not completely written); expected "
                      "every clip stored", s->path, (long long)i);
        StoreChunk *c = &s->chunk[i];
        *c = (StoreChunk){(uint64_t)(userblock + addr), (uint32_t)bytes, (uint8_t)(s->deflate && !(mask & 1))};
        if (!c->deflated && bytes != s->clip_bytes)
            die_input("%s: /clips: clip %lld: raw chunk of %llu bytes, expected %zu", s->path, (long long)i,
                      (unsigned long long)bytes, s->clip_bytes);
        if (c->offset + c->bytes > file_bytes)
            die_input("%s: /clips: clip %lld: chunk ends at byte %llu, past the end of the file (%lld bytes): the "
                      "file is truncated", s->path, (long long)i, (unsigned long long)(c->offset + c->bytes),
                      (long long)file_bytes);
        s->stored_bytes += c->bytes;
    }
}

// ---------------------------------------------------------------------------------------------------- extras

// A string attribute, variable or fixed length, into buf ("" when absent).
static void read_string_attr(hid_t object, const char *name, char *buf, size_t n) {
    buf[0] = 0;
    if (H5Aexists(object, name) <= 0) return;
    const hid_t attr = H5_CHECK(H5Aopen(object, name, H5P_DEFAULT));
    const hid_t type = H5_CHECK(H5Aget_type(attr));
    if (H5Tget_class(type) == H5T_STRING) {
        if (H5Tis_variable_str(type) > 0) {
            char *text = NULL;
            const hid_t mem = H5_CHECK(H5Tcopy(H5T_C_S1));
            H5_CHECK(H5Tset_size(mem, H5T_VARIABLE));
            H5_CHECK(H5Tset_cset(mem, H5Tget_cset(type)));
            H5_CHECK(H5Aread(attr, mem, &text));
            snprintf(buf, n, "%s", text ? text : "");
            H5free_memory(text);
            H5_CHECK(H5Tclose(mem));
        } else {
            const size_t size = H5Tget_size(type);
            char *text = xcalloc(size + 1, 1);
            H5_CHECK(H5Aread(attr, type, text));
            snprintf(buf, n, "%s", text);
            free(text);
        }
    }
    H5_CHECK(H5Tclose(type));
    H5_CHECK(H5Aclose(attr));
}

// /states' names attribute: S strings, variable or fixed length.
static void read_state_names(const char *path, hid_t states, int dim, char (*names)[STORE_STATE_NAME]) {
    if (H5Aexists(states, "names") <= 0) return;
    const hid_t attr = H5_CHECK(H5Aopen(states, "names", H5P_DEFAULT));
    const hid_t type = H5_CHECK(H5Aget_type(attr)), space = H5_CHECK(H5Aget_space(attr));
    const hssize_t count = H5Sget_simple_extent_npoints(space);
    if (H5Tget_class(type) != H5T_STRING || count != dim)
        die_input("%s: /states: attribute names holds %lld items, expected %d strings (one per state column)", path,
                  (long long)count, dim);
    if (H5Tis_variable_str(type) > 0) {
        char **text = xcalloc((size_t)dim, sizeof(char *));
        const hid_t mem = H5_CHECK(H5Tcopy(H5T_C_S1));
        H5_CHECK(H5Tset_size(mem, H5T_VARIABLE));
        H5_CHECK(H5Tset_cset(mem, H5Tget_cset(type)));
        H5_CHECK(H5Aread(attr, mem, text));
        for (int i = 0; i < dim; i++) snprintf(names[i], STORE_STATE_NAME, "%s", text[i] ? text[i] : "");
        H5_CHECK(H5Dvlen_reclaim(mem, space, H5P_DEFAULT, text));
        H5_CHECK(H5Tclose(mem));
        free(text);
    } else {
        const size_t size = H5Tget_size(type);
        char *text = xcalloc((size_t)dim * size + 1, 1);
        H5_CHECK(H5Aread(attr, type, text));
        for (int i = 0; i < dim; i++) snprintf(names[i], STORE_STATE_NAME, "%.*s", (int)size, text + i * size);
        free(text);
    }
    H5_CHECK(H5Sclose(space));
    H5_CHECK(H5Tclose(type));
    H5_CHECK(H5Aclose(attr));
}

// /states or /actions: float [N,T,dim]; returns dim, 0 when absent.
static int check_per_frame(const char *path, hid_t file, const char *name, const StoreShape *shape,
                           char (**names)[STORE_STATE_NAME]) {
    if (!has_dataset(file, name)) return 0;
    char expected[128];
    snprintf(expected, sizeof expected, "float32 [N=%lld, T=%d, %s]", (long long)shape->clips, shape->frames,
             names ? "S" : "A");
    hsize_t dims[3];
    const hid_t dset = open_checked(path, file, name, H5T_FLOAT, 3, dims, expected);
    if (dims[0] != (hsize_t)shape->clips || dims[1] != (hsize_t)shape->frames || dims[2] == 0) {
        char got[96];
        dims_text(dims, 3, got, sizeof got);
        die_input("%s: /%s: shape %s, expected %s", path, name, got, expected);
    }
    if (names) {
        *names = xcalloc(dims[2], STORE_STATE_NAME);
        read_state_names(path, dset, (int)dims[2], *names);
    }
    H5_CHECK(H5Dclose(dset));
    return (int)dims[2];
}

// /labels or /video_id: integers [N]; returns 1 when present.
static int check_per_clip(const char *path, hid_t file, const char *name, const StoreShape *shape) {
    if (!has_dataset(file, name)) return 0;
    char expected[96];
    snprintf(expected, sizeof expected, "int32 [N=%lld]", (long long)shape->clips);
    hsize_t dims[1];
    const hid_t dset = open_checked(path, file, name, H5T_INTEGER, 1, dims, expected);
    if (dims[0] != (hsize_t)shape->clips)
        die_input("%s: /%s: %llu values, expected %s", path, name, (unsigned long long)dims[0], expected);
    H5_CHECK(H5Dclose(dset));
    return 1;
}

static void read_extras(const char *path, hid_t file, const StoreShape *shape, StoreExtras *x) {
    memset(x, 0, sizeof *x);
    x->state_dim = check_per_frame(path, file, "states", shape, &x->state_names);
    x->action_dim = check_per_frame(path, file, "actions", shape, NULL);
    x->has_labels = check_per_clip(path, file, "labels", shape);
    x->has_video_id = check_per_clip(path, file, "video_id", shape);
    if (H5Aexists(file, "fps") > 0) {
        const hid_t attr = H5_CHECK(H5Aopen(file, "fps", H5P_DEFAULT));
        const hid_t type = H5_CHECK(H5Aget_type(attr));
        if (H5Tget_class(type) != H5T_FLOAT && H5Tget_class(type) != H5T_INTEGER)
            die_input("%s: attribute fps is not a number; expected frames per second as float64", path);
        H5_CHECK(H5Aread(attr, H5T_NATIVE_DOUBLE, &x->fps));
        x->has_fps = 1;
        H5_CHECK(H5Tclose(type));
        H5_CHECK(H5Aclose(attr));
    }
    read_string_attr(file, "source", x->source, sizeof x->source);
    read_string_attr(file, "created_by", x->created_by, sizeof x->created_by);
}

static void free_extras(StoreExtras *x) { free(x->state_names); }

// ---------------------------------------------------------------------------------------------------- JPEG stores

#define JPEG_FRAMES "frames"
#define JPEG_OFFSETS "frame_offsets"
#define CORRUPT_HINT "---> HINT: the file is corrupt; make the store again"

// An integer attribute of object, or die naming it.
static int read_int_attr(const char *path, hid_t object, const char *object_name, const char *name, int lo, int hi) {
    if (H5Aexists(object, name) <= 0)
        die_input("%s: /%s: no attribute %s; expected an integer in [%d, %d] (docs/data.md, JPEG stores)", path,
                  object_name, name, lo, hi);
    const hid_t attr = H5_CHECK(H5Aopen(object, name, H5P_DEFAULT));
    const hid_t type = H5_CHECK(H5Aget_type(attr));
    if (H5Tget_class(type) != H5T_INTEGER)
        die_input("%s: /%s: attribute %s is not an integer; expected an integer in [%d, %d]", path, object_name, name,
                  lo, hi);
    long long v = 0;
    H5_CHECK(H5Aread(attr, H5T_NATIVE_LLONG, &v));
    H5_CHECK(H5Tclose(type));
    H5_CHECK(H5Aclose(attr));
    if (v < lo || v > hi)
        die_input("%s: /%s: attribute %s = %lld, expected an integer in [%d, %d]", path, object_name, name, v, lo, hi);
    return (int)v;
}

// A dataset chunked along its first axis by chunk_rows (its other axes whole) with no filter, so that readers
// can pread its chunks as they are; returns chunk_rows.
static hsize_t check_raw_chunks(const char *path, hid_t dset, const char *name, int rank, const hsize_t *dims) {
    const hid_t dcpl = H5_CHECK(H5Dget_create_plist(dset));
    if (H5Pget_layout(dcpl) != H5D_CHUNKED)
        die_input("%s: /%s: not chunked, expected chunks without filters (written by jepa data convert --codec jpeg)",
                  path, name);
    hsize_t chunk[2] = {0, 0};
    H5_CHECK(H5Pget_chunk(dcpl, rank, chunk));
    if (H5_CHECK(H5Pget_nfilters(dcpl)) != 0)
        die_input("%s: /%s: has HDF5 filters, expected none (readers pread its chunks as they are; written by jepa "
                  "data convert --codec jpeg)", path, name);
    if (rank == 2 && chunk[1] != dims[1])
        die_input("%s: /%s: chunks of %llu columns, expected whole rows of %llu", path, name,
                  (unsigned long long)chunk[1], (unsigned long long)dims[1]);
    H5_CHECK(H5Pclose(dcpl));
    return chunk[0];
}

// File offsets of the chunks of a dataset chunked along its first axis (count chunks of chunk_bytes each), each
// checked to lie inside the file.
static uint64_t *index_row_chunks(const Store *s, hid_t dset, const char *name, hsize_t rows_per_chunk,
                                  int64_t count, uint64_t chunk_bytes, uint64_t file_bytes, uint64_t userblock) {
    uint64_t *addr = xcalloc((size_t)(count > 0 ? count : 1), sizeof *addr);
    for (int64_t k = 0; k < count; k++) {
        const hsize_t coord[2] = {(hsize_t)k * rows_per_chunk, 0};
        unsigned mask;
        hsize_t bytes;
        const haddr_t a = chunk_info(dset, coord, &bytes, &mask);
        if (a == HADDR_UNDEF)
            die_input("%s: /%s: chunk %lld is not stored (the file was not completely written); expected every "
                      "chunk", s->path, name, (long long)k);
        if (bytes != chunk_bytes)
            die_input("%s: /%s: chunk %lld holds %llu bytes, expected %llu (unfiltered)", s->path, name, (long long)k,
                      (unsigned long long)bytes, (unsigned long long)chunk_bytes);
        addr[k] = userblock + a;
        if (addr[k] + bytes > file_bytes)
            die_input("%s: /%s: chunk %lld ends at byte %llu, past the end of the file (%llu bytes): the file is "
                      "truncated", s->path, name, (long long)k, (unsigned long long)(addr[k] + bytes),
                      (unsigned long long)file_bytes);
    }
    return addr;
}

// /frames uint8 [bytes] with attributes codec, quality, height, width, and /frame_offsets int64 [N, T+1].
static void open_jpeg_store(Store *s) {
    const char *path = s->path;
    static const char off_expected[] = "int64 [N, T+1] (byte offsets of each clip's frames in /frames)";
    hsize_t odims[2], fdims[1];
    const hid_t offsets = open_checked(path, s->file, JPEG_OFFSETS, H5T_INTEGER, 2, odims, off_expected);
    const hid_t otype = H5_CHECK(H5Dget_type(offsets));
    if (H5Tget_size(otype) != 8 || H5Tget_sign(otype) != H5T_SGN_2 || H5Tget_order(otype) != H5T_ORDER_LE)
        die_input("%s: /%s: not little-endian int64, expected %s", path, JPEG_OFFSETS, off_expected);
    H5_CHECK(H5Tclose(otype));
    if (odims[0] == 0 || odims[1] < 2)
        die_input("%s: /%s: shape [%llu,%llu], expected %s with N >= 1 and T >= 1", path, JPEG_OFFSETS,
                  (unsigned long long)odims[0], (unsigned long long)odims[1], off_expected);
    const hid_t frames = open_checked(path, s->file, JPEG_FRAMES, H5T_INTEGER, 1, fdims, "uint8 [bytes] (JPEG frames)");
    const hid_t ftype = H5_CHECK(H5Dget_type(frames));
    if (H5Tget_size(ftype) != 1) die_input("%s: /%s: elements of %zu bytes, expected uint8", path, JPEG_FRAMES, H5Tget_size(ftype));
    H5_CHECK(H5Tclose(ftype));
    char codec[64];
    read_string_attr(frames, "codec", codec, sizeof codec);
    if (strcmp(codec, "jpeg"))
        die_input("%s: /%s: attribute codec '%s', expected \"jpeg\"", path, JPEG_FRAMES, codec);
    s->codec = STORE_CODEC_JPEG;
    s->jpeg_quality = read_int_attr(path, frames, JPEG_FRAMES, "quality", 1, 100);
    const int height = read_int_attr(path, frames, JPEG_FRAMES, "height", 1, 65535);
    const int width = read_int_attr(path, frames, JPEG_FRAMES, "width", 1, 65535);
    s->shape = (StoreShape){(int64_t)odims[0], (int)odims[1] - 1, height, width};
    s->clip_bytes = (size_t)s->shape.frames * frame_bytes(&s->shape);
    s->stored_bytes = fdims[0];
    s->frames_chunk = (size_t)check_raw_chunks(path, frames, JPEG_FRAMES, 1, fdims);
    s->offsets_rows = (int64_t)check_raw_chunks(path, offsets, JPEG_OFFSETS, 2, odims);
    uint64_t userblock, file_bytes;
    file_extent(s, &userblock, &file_bytes);
    const int64_t frame_chunks = (int64_t)((s->stored_bytes + s->frames_chunk - 1) / s->frames_chunk);
    const int64_t offset_chunks = (s->shape.clips + s->offsets_rows - 1) / s->offsets_rows;
    s->frames_addr = index_row_chunks(s, frames, JPEG_FRAMES, s->frames_chunk, frame_chunks, s->frames_chunk,
                                      file_bytes, userblock);
    s->offsets_addr = index_row_chunks(s, offsets, JPEG_OFFSETS, (hsize_t)s->offsets_rows, offset_chunks,
                                       (uint64_t)s->offsets_rows * odims[1] * 8, file_bytes, userblock);
    H5_CHECK(H5Dclose(frames));
    H5_CHECK(H5Dclose(offsets));
}

Store *store_open(const char *path, int window_frames, const char *window_why) {
    Store *s = xcalloc(1, sizeof *s);
    snprintf(s->path, sizeof s->path, "%s", path);
    s->file = open_hdf5_file(path);
    if (!has_dataset(s->file, CLIPS) && has_dataset(s->file, JPEG_OFFSETS)) {  // a JPEG store
        open_jpeg_store(s);
    } else {
        const hid_t clips = open_clips(path, s->file, &s->shape);
        s->clip_bytes = (size_t)s->shape.frames * frame_bytes(&s->shape);
        s->deflate = check_chunking(path, clips, &s->shape);
        index_chunks(s, clips);
        H5_CHECK(H5Dclose(clips));
    }
    check_window(path, &s->shape, window_frames, window_why);
    read_extras(path, s->file, &s->shape, &s->extras);
    s->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (s->fd < 0) die_input("%s: cannot open for reading: %s", path, strerror(errno));
    return s;
}

void store_close(Store *s) {
    if (!s) return;
    close(s->fd);
    H5_CHECK(H5Fclose(s->file));
    free_extras(&s->extras);
    free(s->chunk);
    free(s->frames_addr);
    free(s->offsets_addr);
    free(s);
}

static void read_side(hid_t file, const char *dataset, int64_t first, int64_t count, hid_t mem_type, void *out) {
    const hid_t dset = H5_CHECK(H5Dopen2(file, dataset, H5P_DEFAULT));
    const hid_t space = H5_CHECK(H5Dget_space(dset));
    const int rank = (int)H5_CHECK(H5Sget_simple_extent_ndims(space));
    hsize_t start[3] = {(hsize_t)first, 0, 0}, size[3];
    H5_CHECK(H5Sget_simple_extent_dims(space, size, NULL));
    size[0] = (hsize_t)count;
    H5_CHECK(H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, size, NULL));
    const hid_t mem = H5_CHECK(H5Screate_simple(rank, size, NULL));
    H5_CHECK(H5Dread(dset, mem_type, mem, space, H5P_DEFAULT, out));
    H5_CHECK(H5Sclose(mem));
    H5_CHECK(H5Sclose(space));
    H5_CHECK(H5Dclose(dset));
}

void store_read_side_floats(hid_t file, const char *dataset, int64_t first, int64_t count, float *out) {
    read_side(file, dataset, first, count, H5T_NATIVE_FLOAT, out);
}

void store_read_side_ints(hid_t file, const char *dataset, int64_t first, int64_t count, int32_t *out) {
    read_side(file, dataset, first, count, H5T_NATIVE_INT32, out);
}

// ---------------------------------------------------------------------------------------------------- reading

static _Thread_local int on_reader_thread;

void store_mark_reader_thread(void) { on_reader_thread = 1; }

// A chunk that cannot be read or inflated. On a reader thread the first such error prints its line and ends the
// process at once (_exit): exit() would run libhdf5's and stdio's teardown under the other threads' feet.
static _Noreturn void fail_read(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail_read(const char *fmt, ...) {
    char message[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    if (!on_reader_thread) die_input("%s", message);
    static pthread_mutex_t first_error = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&first_error);  // later errors wait here until the process is gone
    fflush(stdout);
    fprintf(stderr, "error: %s\n", message);
    fflush(stderr);
    _exit(JEPA_EXIT_BAD_INPUT);
}

void store_reader_init(StoreReader *r) { memset(r, 0, sizeof *r); }

void store_reader_free(StoreReader *r) {
    if (r->zs_ready) inflateEnd(&r->zs);
    free(r->stored);
    free(r->frames);
    free(r->row);
    free(r->list);
    free(r->at);
    free(r->len);
    jpeg_codec_free(r->jpeg);
    memset(r, 0, sizeof *r);
}

static void reserve(uint8_t **buf, size_t *cap, size_t bytes) {
    if (*cap >= bytes) return;
    free(*buf);
    *buf = xmalloc(bytes);
    *cap = bytes;
}

static void pread_all(const Store *s, const char *dataset, int64_t clip, uint8_t *out, size_t bytes, uint64_t offset) {
    size_t done = 0;
    while (done < bytes) {
        const ssize_t got = pread(s->fd, out + done, bytes - done, (off_t)(offset + done));
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0)
            fail_read("%s: /%s: clip %lld: cannot read its chunk (%zu bytes at byte %llu): %s", s->path, dataset,
                      (long long)clip, bytes, (unsigned long long)offset, got < 0 ? strerror(errno) : "end of file");
        done += (size_t)got;
    }
}

// ---- JPEG stores: the clip's offsets row, then the listed frames' bytes, each run of consecutive frames in one
// pread per /frames chunk it spans; decoding fills only the listed frames' slots of the window.

static void reserve_list(StoreReader *r, int count) {
    if (r->list_cap >= count) return;
    free(r->list);
    free(r->at);
    free(r->len);
    r->list = xmalloc(sizeof(int) * (size_t)count);
    r->at = xmalloc(sizeof(size_t) * (size_t)count);
    r->len = xmalloc(sizeof(size_t) * (size_t)count);
    r->list_cap = count;
}

// The first offset of row that breaks "T + 1 increasing offsets within /frames", or -1.
static int bad_offset(const Store *s, const int64_t *row) {
    if (row[0] < 0) return 0;
    for (int t = 0; t < s->shape.frames; t++)
        if (row[t + 1] <= row[t]) return t + 1;
    return (uint64_t)row[s->shape.frames] > s->stored_bytes ? s->shape.frames : -1;
}

static _Noreturn void die_offsets(const Store *s, int64_t clip, const int64_t *row, int t) {
    fail_read("%s: /" JPEG_OFFSETS ": clip %lld: offset %d is %lld (previous %lld); expected T+1 = %d increasing "
              "byte offsets within /" JPEG_FRAMES "' %llu bytes " CORRUPT_HINT, s->path, (long long)clip, t,
              (long long)row[t], t > 0 ? (long long)row[t - 1] : -1LL, s->shape.frames + 1,
              (unsigned long long)s->stored_bytes);
}

// Rows [first, first + count) of /frame_offsets (all in one chunk) into out, (count, T + 1).
static void read_offset_rows(const Store *s, int64_t first, int64_t count, int64_t *out) {
    const size_t row_bytes = (size_t)(s->shape.frames + 1) * sizeof(int64_t);
    const int64_t k = first / s->offsets_rows, within = first % s->offsets_rows;
    JEPA_ASSERT(within + count <= s->offsets_rows);
    pread_all(s, JPEG_OFFSETS, first, (uint8_t *)out, (size_t)count * row_bytes,
              s->offsets_addr[k] + (uint64_t)within * row_bytes);
}

static void read_offsets_row(const Store *s, StoreReader *r, int64_t clip) {
    if (r->row_cap < s->shape.frames + 1) {
        free(r->row);
        r->row_cap = s->shape.frames + 1;
        r->row = xmalloc(sizeof(int64_t) * (size_t)r->row_cap);
    }
    read_offset_rows(s, clip, 1, r->row);
    const int bad = bad_offset(s, r->row);
    if (bad >= 0) die_offsets(s, clip, r->row, bad);
}

void store_check_offsets(const Store *s) {
    JEPA_ASSERT(s->codec == STORE_CODEC_JPEG);
    const int64_t rows = s->offsets_rows;
    int64_t *buf = xmalloc(sizeof(int64_t) * (size_t)rows * (size_t)(s->shape.frames + 1));
    for (int64_t first = 0; first < s->shape.clips; first += rows) {
        const int64_t count = s->shape.clips - first < rows ? s->shape.clips - first : rows;
        read_offset_rows(s, first, count, buf);
        for (int64_t i = 0; i < count; i++) {
            const int64_t *row = buf + (size_t)i * (size_t)(s->shape.frames + 1);
            const int bad = bad_offset(s, row);
            if (bad >= 0) die_offsets(s, first + i, row, bad);
        }
    }
    free(buf);
}

// Bytes [begin, end) of /frames into out, one pread per chunk spanned.
static void read_frame_bytes(const Store *s, int64_t clip, uint64_t begin, uint64_t end, uint8_t *out) {
    while (begin < end) {
        const uint64_t k = begin / s->frames_chunk, within = begin % s->frames_chunk;
        const size_t n = (size_t)(s->frames_chunk - within < end - begin ? s->frames_chunk - within : end - begin);
        pread_all(s, JPEG_FRAMES, clip, out, n, s->frames_addr[k] + within);
        out += n;
        begin += n;
    }
}

static void fetch_jpeg(const Store *s, StoreReader *r, int64_t clip, const int *frame, int count) {
    read_offsets_row(s, r, clip);
    reserve_list(r, count);
    const int64_t *row = r->row;
    size_t used = 0;
    for (int i = 0; i < count; i++) {
        JEPA_ASSERT(0 <= frame[i] && frame[i] < s->shape.frames && (i == 0 || frame[i] >= frame[i - 1]));
        r->list[i] = frame[i];
        const int repeat = i > 0 && frame[i] == frame[i - 1];  // a repeated frame shares its bytes
        r->len[i] = (size_t)(row[frame[i] + 1] - row[frame[i]]);
        r->at[i] = repeat ? r->at[i - 1] : used;
        used += repeat ? 0 : r->len[i];
    }
    r->list_count = count;
    reserve(&r->stored, &r->stored_cap, used);
    for (int i = 0; i < count;) {  // runs of consecutive frames lie together in the file and in stored
        int j = i + 1;
        while (j < count && frame[j] <= frame[j - 1] + 1) j++;
        read_frame_bytes(s, clip, (uint64_t)row[frame[i]], (uint64_t)row[frame[j - 1] + 1], r->stored + r->at[i]);
        i = j;
    }
}

static const uint8_t *decode_jpeg(const Store *s, StoreReader *r, int64_t clip) {
    const size_t fb = frame_bytes(&s->shape);
    const int first = r->list[0], window = r->list[r->list_count - 1] - first + 1;
    reserve(&r->frames, &r->frames_cap, (size_t)window * fb);
    if (!r->jpeg) r->jpeg = jpeg_codec_create();
    char why[256];
    for (int i = 0; i < r->list_count; i++) {
        if (i > 0 && r->list[i] == r->list[i - 1]) continue;
        uint8_t *slot = r->frames + (size_t)(r->list[i] - first) * fb;
        if (jpeg_decode_frame(r->jpeg, r->stored + r->at[i], r->len[i], s->shape.height, s->shape.width, slot, why,
                              sizeof why) != 0)
            fail_read("%s: /" JPEG_FRAMES ": clip %lld frame %d: damaged JPEG (%s); expected a %dx%d JPEG "
                      CORRUPT_HINT, s->path, (long long)clip, r->list[i], why, s->shape.width, s->shape.height);
    }
    return r->frames;
}

const uint8_t *store_jpeg_frame(const StoreReader *r, int i, size_t *bytes) {
    JEPA_ASSERT(0 <= i && i < r->list_count);
    *bytes = r->len[i];
    return r->stored + r->at[i];
}

// [first_frame, end_frame) as a list, for the range API on JPEG stores.
static void fetch_jpeg_range(const Store *s, StoreReader *r, int64_t clip, int first_frame, int end_frame) {
    int *frames = xmalloc(sizeof(int) * (size_t)(end_frame - first_frame));
    for (int t = first_frame; t < end_frame; t++) frames[t - first_frame] = t;
    fetch_jpeg(s, r, clip, frames, end_frame - first_frame);
    free(frames);
}

void store_fetch(const Store *s, StoreReader *r, int64_t clip, int first_frame, int end_frame) {
    JEPA_ASSERT(clip >= 0 && clip < s->shape.clips && 0 <= first_frame && first_frame < end_frame &&
                end_frame <= s->shape.frames);
    if (s->codec == STORE_CODEC_JPEG) return fetch_jpeg_range(s, r, clip, first_frame, end_frame);
    const StoreChunk *c = &s->chunk[clip];
    if (c->deflated) {
        reserve(&r->stored, &r->stored_cap, c->bytes);
        pread_all(s, CLIPS, clip, r->stored, c->bytes, c->offset);
        return;
    }
    const size_t fb = frame_bytes(&s->shape);
    reserve(&r->frames, &r->frames_cap, (size_t)(end_frame - first_frame) * fb);
    pread_all(s, CLIPS, clip, r->frames, (size_t)(end_frame - first_frame) * fb, c->offset + (uint64_t)first_frame * fb);
}

static _Noreturn void die_damaged(const Store *s, int64_t clip, const char *what) {
    fail_read("%s: /clips: clip %lld: damaged deflate chunk (%s); expected %zu bytes of clip ---> HINT: the file is "
              "corrupt; make the store again", s->path, (long long)clip, what, s->clip_bytes);
}

// A clip read to its end must end its deflate stream there (checksum included) and hold nothing more.
static void check_stream_end(const Store *s, StoreReader *r, int64_t clip) {
    uint8_t spare[16];
    r->zs.next_out = spare;
    r->zs.avail_out = sizeof spare;
    const int rc = inflate(&r->zs, Z_FINISH);
    if (rc != Z_STREAM_END || r->zs.avail_out != sizeof spare)
        die_damaged(s, clip, rc == Z_STREAM_END ? "it inflates to more bytes" : r->zs.msg ? r->zs.msg : "no end");
}

const uint8_t *store_decode(const Store *s, StoreReader *r, int64_t clip, int first_frame, int end_frame) {
    if (s->codec == STORE_CODEC_JPEG) return decode_jpeg(s, r, clip);
    const StoreChunk *c = &s->chunk[clip];
    if (!c->deflated) return r->frames;
    const size_t fb = frame_bytes(&s->shape), want = (size_t)end_frame * fb;
    reserve(&r->frames, &r->frames_cap, s->clip_bytes);
    if (!r->zs_ready) {
        memset(&r->zs, 0, sizeof r->zs);
        if (inflateInit(&r->zs) != Z_OK) die_internal("inflateInit failed");
        r->zs_ready = 1;
    }
    CHECK_ZERO(inflateReset(&r->zs));
    r->zs.next_in = r->stored;
    r->zs.avail_in = c->bytes;
    r->zs.next_out = r->frames;
    r->zs.avail_out = (uInt)want;
    int rc = Z_OK;
    while (r->zs.avail_out > 0 && rc == Z_OK) rc = inflate(&r->zs, Z_NO_FLUSH);
    if (r->zs.avail_out > 0) die_damaged(s, clip, rc == Z_STREAM_END ? "it inflates to fewer bytes" : r->zs.msg ? r->zs.msg : "zlib error");
    if (end_frame == s->shape.frames) check_stream_end(s, r, clip);
    return r->frames + (size_t)first_frame * fb;
}

const uint8_t *store_read_frames(const Store *s, StoreReader *r, int64_t clip, int first_frame, int end_frame) {
    store_fetch(s, r, clip, first_frame, end_frame);
    return store_decode(s, r, clip, first_frame, end_frame);
}

void store_fetch_list(const Store *s, StoreReader *r, int64_t clip, const int *frame, int count) {
    JEPA_ASSERT(count >= 1 && clip >= 0 && clip < s->shape.clips);
    if (s->codec == STORE_CODEC_JPEG) fetch_jpeg(s, r, clip, frame, count);
    else store_fetch(s, r, clip, frame[0], frame[count - 1] + 1);
}

const uint8_t *store_decode_list(const Store *s, StoreReader *r, int64_t clip, const int *frame, int count) {
    return store_decode(s, r, clip, frame[0], frame[count - 1] + 1);
}

const uint8_t *store_read_list(const Store *s, StoreReader *r, int64_t clip, const int *frame, int count) {
    store_fetch_list(s, r, clip, frame, count);
    return store_decode_list(s, r, clip, frame, count);
}

void store_codec_text(const Store *s, char *buf, size_t n) {
    if (s->codec == STORE_CODEC_JPEG) snprintf(buf, n, "jpeg q%d", s->jpeg_quality);
    else snprintf(buf, n, "%s", s->deflate ? "deflate" : "raw");
}

// ---------------------------------------------------------------------------------------------------- writing

struct StoreWriter {
    StoreLayout layout;           // strings point into the fields below
    char path[4096], part_path[4200], source[1024], created_by[2048];
    char (*state_names)[STORE_STATE_NAME];
    hid_t file, clips;            // clips: /clips, or /frames for JPEG stores
    int64_t count, cap;
    float *states, *actions;      // (cap, T, S), (cap, T, A)
    int32_t *labels, *video_ids;  // (cap)
    int64_t *offsets;             // JPEG: (cap, T + 1) byte offsets in /frames
    uint8_t *pending;             // JPEG: the /frames chunk being filled (jpeg_chunk_bytes)
    size_t pending_bytes;
    uint64_t frames_bytes;        // JPEG: bytes appended to /frames
};

size_t store_chunk_bound(const StoreLayout *layout) {
    if (layout->codec == STORE_CODEC_JPEG)
        return (size_t)layout->frames * (sizeof(uint32_t) + jpeg_frame_bound(layout->height, layout->width));
    const size_t clip = (size_t)layout->frames * layout->height * layout->width * 3;
    return layout->deflate_level > 0 ? (size_t)compressBound((uLong)clip) : clip;
}

// T uint32 sizes, then the T JPEG frames (see store.h).
static size_t encode_jpeg_clip(const StoreLayout *l, const uint8_t *rgb, uint8_t *out) {
    JpegCodec *codec = jpeg_codec_create();
    const size_t fb = (size_t)l->height * l->width * 3;
    size_t used = (size_t)l->frames * sizeof(uint32_t);
    for (int t = 0; t < l->frames; t++) {
        const uint32_t bytes = (uint32_t)jpeg_encode_frame(codec, rgb + t * fb, l->height, l->width, l->jpeg_quality,
                                                           out + used);
        memcpy(out + t * sizeof(uint32_t), &bytes, sizeof bytes);
        used += bytes;
    }
    jpeg_codec_free(codec);
    return used;
}

size_t store_encode_clip(const StoreLayout *layout, const uint8_t *rgb, uint8_t *out) {
    if (layout->codec == STORE_CODEC_JPEG) return encode_jpeg_clip(layout, rgb, out);
    const size_t clip = (size_t)layout->frames * layout->height * layout->width * 3;
    if (layout->deflate_level == 0) {
        memcpy(out, rgb, clip);
        return clip;
    }
    uLongf bytes = compressBound((uLong)clip);
    CHECK_ZERO(compress2(out, &bytes, rgb, (uLong)clip, layout->deflate_level));
    return bytes;
}

static void check_layout(const char *path, const StoreLayout *l) {
    if (l->frames < 1 || l->height < 1 || l->width < 1)
        die_input("%s: clips of %d frames of %dx%d, expected T, H, W >= 1", path, l->frames, l->height, l->width);
    if ((uint64_t)l->frames * l->height * l->width * 3 >= ((uint64_t)1 << 32))
        die_input("%s: a clip of %d frames of %dx%d is 4 GiB or more, expected under 4 GiB (one HDF5 chunk)", path,
                  l->frames, l->height, l->width);
    if (l->deflate_level < 0 || l->deflate_level > 9)
        die_input("%s: deflate level %d, expected 0 (raw) to 9", path, l->deflate_level);
    if (l->codec == STORE_CODEC_JPEG && (l->jpeg_quality < 1 || l->jpeg_quality > 100))
        die_input("%s: JPEG quality %d, expected 1 to 100", path, l->jpeg_quality);
}

// /frames uint8 [0 .. unlimited], chunks of jpeg_chunk_bytes, no filter (readers pread them).
static hid_t create_frames_dataset(const StoreWriter *w) {
    const hsize_t dims[1] = {0}, max[1] = {H5S_UNLIMITED}, chunk[1] = {w->layout.jpeg_chunk_bytes};
    const hid_t space = H5_CHECK(H5Screate_simple(1, dims, max));
    const hid_t dcpl = H5_CHECK(H5Pcreate(H5P_DATASET_CREATE));
    H5_CHECK(H5Pset_chunk(dcpl, 1, chunk));
    const hid_t frames = H5_CHECK(H5Dcreate2(w->file, JPEG_FRAMES, H5T_STD_U8LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT));
    H5_CHECK(H5Pclose(dcpl));
    H5_CHECK(H5Sclose(space));
    return frames;
}

// The pending /frames chunk as chunk k (whole: an unfiltered chunk is stored at full size, the edge one too).
static void flush_frames_chunk(StoreWriter *w) {
    const size_t chunk = w->layout.jpeg_chunk_bytes;
    if (w->pending_bytes == 0) return;
    const uint64_t start = w->frames_bytes - w->pending_bytes;  // a multiple of chunk
    memset(w->pending + w->pending_bytes, 0, chunk - w->pending_bytes);
    const hsize_t dims[1] = {w->frames_bytes}, offset[1] = {start};
    H5_CHECK(H5Dset_extent(w->clips, dims));
    H5_CHECK(H5Dwrite_chunk(w->clips, H5P_DEFAULT, 0, offset, chunk, w->pending));
    w->pending_bytes = 0;
}

// Splits an encoded JPEG clip (T sizes, then the frames) into /frames bytes and an offsets row.
static void append_jpeg(StoreWriter *w, const uint8_t *encoded, size_t encoded_bytes) {
    const int T = w->layout.frames;
    const size_t chunk = w->layout.jpeg_chunk_bytes;
    int64_t *row = w->offsets + (size_t)w->count * (size_t)(T + 1);
    const uint8_t *data = encoded + (size_t)T * sizeof(uint32_t);
    size_t total = 0;
    for (int t = 0; t < T; t++) {
        uint32_t bytes;
        memcpy(&bytes, encoded + t * sizeof(uint32_t), sizeof bytes);
        row[t] = (int64_t)(w->frames_bytes + total);
        total += bytes;
    }
    row[T] = (int64_t)(w->frames_bytes + total);
    JEPA_ASSERT(total + (size_t)T * sizeof(uint32_t) == encoded_bytes);
    while (total > 0) {
        const size_t n = chunk - w->pending_bytes < total ? chunk - w->pending_bytes : total;
        memcpy(w->pending + w->pending_bytes, data, n);
        w->pending_bytes += n;
        w->frames_bytes += n;
        data += n;
        total -= n;
        if (w->pending_bytes == chunk) flush_frames_chunk(w);
    }
}

static void write_int_attr(hid_t object, const char *name, int value) {
    const hid_t space = H5_CHECK(H5Screate(H5S_SCALAR));
    const hid_t attr = H5_CHECK(H5Acreate2(object, name, H5T_STD_I32LE, space, H5P_DEFAULT, H5P_DEFAULT));
    H5_CHECK(H5Awrite(attr, H5T_NATIVE_INT, &value));
    H5_CHECK(H5Aclose(attr));
    H5_CHECK(H5Sclose(space));
}

static void write_strings_attr(hid_t object, const char *name, const char *const *text, int count);

// The last /frames chunk, the attributes naming the codec, and /frame_offsets [N, T+1] in chunks of ~64 KiB.
static void finish_jpeg(StoreWriter *w) {
    const StoreLayout *l = &w->layout;
    flush_frames_chunk(w);
    const char *codec = "jpeg";
    write_strings_attr(w->clips, "codec", &codec, 0);
    write_int_attr(w->clips, "quality", l->jpeg_quality);
    write_int_attr(w->clips, "height", l->height);
    write_int_attr(w->clips, "width", l->width);
    const hsize_t dims[2] = {(hsize_t)w->count, (hsize_t)l->frames + 1};
    hsize_t rows = (hsize_t)(65536 / (8 * (l->frames + 1)));
    rows = rows < 1 ? 1 : rows;
    const hsize_t chunk[2] = {rows, dims[1]};
    const hsize_t max[2] = {H5S_UNLIMITED, dims[1]};  // lets a chunk hold more rows than there are clips
    const hid_t space = H5_CHECK(H5Screate_simple(2, dims, max));
    const hid_t dcpl = H5_CHECK(H5Pcreate(H5P_DATASET_CREATE));
    H5_CHECK(H5Pset_chunk(dcpl, 2, chunk));
    H5_CHECK(H5Pset_fill_time(dcpl, H5D_FILL_TIME_ALLOC));  // every chunk stored, the edge one too
    const hid_t dset = H5_CHECK(H5Dcreate2(w->file, JPEG_OFFSETS, H5T_STD_I64LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT));
    if (w->count > 0) H5_CHECK(H5Dwrite(dset, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, w->offsets));
    H5_CHECK(H5Dclose(dset));
    H5_CHECK(H5Pclose(dcpl));
    H5_CHECK(H5Sclose(space));
}

static hid_t create_clips_dataset(const StoreWriter *w) {
    const StoreLayout *l = &w->layout;
    const hsize_t dims[5] = {0, (hsize_t)l->frames, (hsize_t)l->height, (hsize_t)l->width, 3};
    const hsize_t max[5] = {H5S_UNLIMITED, dims[1], dims[2], dims[3], 3};
    const hsize_t chunk[5] = {1, dims[1], dims[2], dims[3], 3};
    const hid_t space = H5_CHECK(H5Screate_simple(5, dims, max));
    const hid_t dcpl = H5_CHECK(H5Pcreate(H5P_DATASET_CREATE));
    H5_CHECK(H5Pset_chunk(dcpl, 5, chunk));
    if (l->deflate_level > 0) H5_CHECK(H5Pset_deflate(dcpl, (unsigned)l->deflate_level));
    const hid_t clips = H5_CHECK(H5Dcreate2(w->file, CLIPS, H5T_STD_U8LE, space, H5P_DEFAULT, dcpl, H5P_DEFAULT));
    H5_CHECK(H5Pclose(dcpl));
    H5_CHECK(H5Sclose(space));
    return clips;
}

StoreWriter *store_writer_create(const char *path, const StoreLayout *layout, int overwrite) {
    quiet_hdf5();
    check_layout(path, layout);
    if (!overwrite && access(path, F_OK) == 0)
        die_input("%s exists ---> HINT: choose another name, remove it, or pass --force to replace it", path);
    StoreWriter *w = xcalloc(1, sizeof *w);
    w->layout = *layout;
    snprintf(w->path, sizeof w->path, "%s", path);
    snprintf(w->part_path, sizeof w->part_path, "%s.part", path);
    snprintf(w->source, sizeof w->source, "%s", layout->source ? layout->source : "");
    snprintf(w->created_by, sizeof w->created_by, "%s", layout->created_by ? layout->created_by : "");
    if (layout->state_dim > 0) {
        w->state_names = xcalloc((size_t)layout->state_dim, STORE_STATE_NAME);
        if (layout->state_names) memcpy(w->state_names, layout->state_names, (size_t)layout->state_dim * STORE_STATE_NAME);
    }
    w->file = H5Fcreate(w->part_path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (w->file < 0) die_input("%s: cannot create (is the folder there and writable?)", w->part_path);
    if (layout->codec == STORE_CODEC_JPEG) {
        if (!w->layout.jpeg_chunk_bytes) w->layout.jpeg_chunk_bytes = STORE_JPEG_CHUNK_BYTES;
        w->pending = xmalloc(w->layout.jpeg_chunk_bytes);
        w->clips = create_frames_dataset(w);
    } else {
        w->clips = create_clips_dataset(w);
    }
    return w;
}

static void grow_side(StoreWriter *w) {
    if (w->count < w->cap) return;
    const StoreLayout *l = &w->layout;
    w->cap = w->cap ? 2 * w->cap : 64;
    if (l->state_dim) w->states = xrealloc(w->states, (size_t)w->cap * l->frames * l->state_dim * sizeof(float));
    if (l->action_dim) w->actions = xrealloc(w->actions, (size_t)w->cap * l->frames * l->action_dim * sizeof(float));
    w->labels = xrealloc(w->labels, (size_t)w->cap * sizeof(int32_t));
    if (l->codec == STORE_CODEC_JPEG)
        w->offsets = xrealloc(w->offsets, (size_t)w->cap * (size_t)(l->frames + 1) * sizeof(int64_t));
    w->video_ids = xrealloc(w->video_ids, (size_t)w->cap * sizeof(int32_t));
}

void store_writer_append(StoreWriter *w, const uint8_t *chunk, size_t chunk_bytes, const float *states,
                         const float *actions, int32_t label, int32_t video_id) {
    const StoreLayout *l = &w->layout;
    grow_side(w);
    if (l->codec == STORE_CODEC_JPEG) {
        append_jpeg(w, chunk, chunk_bytes);
    } else {
        const hsize_t dims[5] = {(hsize_t)w->count + 1, (hsize_t)l->frames, (hsize_t)l->height, (hsize_t)l->width, 3};
        const hsize_t offset[5] = {(hsize_t)w->count, 0, 0, 0, 0};
        H5_CHECK(H5Dset_extent(w->clips, dims));
        H5_CHECK(H5Dwrite_chunk(w->clips, H5P_DEFAULT, 0, offset, chunk_bytes, chunk));
    }
    const size_t per_state = (size_t)l->frames * l->state_dim, per_action = (size_t)l->frames * l->action_dim;
    if (per_state) memcpy(w->states + (size_t)w->count * per_state, states, per_state * sizeof(float));
    if (per_action) memcpy(w->actions + (size_t)w->count * per_action, actions, per_action * sizeof(float));
    w->labels[w->count] = label;
    w->video_ids[w->count] = video_id;
    w->count++;
}

static hid_t write_dataset(hid_t file, const char *name, hid_t file_type, hid_t mem_type, int rank,
                           const hsize_t *dims, const void *data) {
    const hid_t space = H5_CHECK(H5Screate_simple(rank, dims, NULL));
    const hid_t dset = H5_CHECK(H5Dcreate2(file, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    if (dims[0] > 0) H5_CHECK(H5Dwrite(dset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data));
    H5_CHECK(H5Sclose(space));
    return dset;
}

static hid_t utf8_string_type(void) {
    const hid_t type = H5_CHECK(H5Tcopy(H5T_C_S1));
    H5_CHECK(H5Tset_size(type, H5T_VARIABLE));
    H5_CHECK(H5Tset_cset(type, H5T_CSET_UTF8));
    return type;
}

// A variable-length UTF-8 string attribute: a scalar (count 0) or a list of count strings.
static void write_strings_attr(hid_t object, const char *name, const char *const *text, int count) {
    const hid_t type = utf8_string_type();
    const hsize_t n = (hsize_t)count;
    const hid_t space = H5_CHECK(count ? H5Screate_simple(1, &n, NULL) : H5Screate(H5S_SCALAR));
    const hid_t attr = H5_CHECK(H5Acreate2(object, name, type, space, H5P_DEFAULT, H5P_DEFAULT));
    H5_CHECK(H5Awrite(attr, type, text));
    H5_CHECK(H5Aclose(attr));
    H5_CHECK(H5Sclose(space));
    H5_CHECK(H5Tclose(type));
}

static void write_file_attrs(StoreWriter *w) {
    const hid_t space = H5_CHECK(H5Screate(H5S_SCALAR));
    const hid_t attr = H5_CHECK(H5Acreate2(w->file, "fps", H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT));
    H5_CHECK(H5Awrite(attr, H5T_NATIVE_DOUBLE, &w->layout.fps));
    H5_CHECK(H5Aclose(attr));
    H5_CHECK(H5Sclose(space));
    const char *source = w->source, *created_by = w->created_by;
    write_strings_attr(w->file, "source", &source, 0);
    write_strings_attr(w->file, "created_by", &created_by, 0);
}

static void write_side_datasets(StoreWriter *w) {
    const StoreLayout *l = &w->layout;
    const hsize_t n = (hsize_t)w->count;
    if (l->state_dim) {
        const hsize_t dims[3] = {n, (hsize_t)l->frames, (hsize_t)l->state_dim};
        const hid_t d = write_dataset(w->file, "states", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, dims, w->states);
        const char **names = xcalloc((size_t)l->state_dim, sizeof(char *));
        for (int i = 0; i < l->state_dim; i++) names[i] = w->state_names[i];
        write_strings_attr(d, "names", names, l->state_dim);
        free(names);
        H5_CHECK(H5Dclose(d));
    }
    if (l->action_dim) {
        const hsize_t dims[3] = {n, (hsize_t)l->frames, (hsize_t)l->action_dim};
        H5_CHECK(H5Dclose(write_dataset(w->file, "actions", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, dims, w->actions)));
    }
    if (l->has_labels)
        H5_CHECK(H5Dclose(write_dataset(w->file, "labels", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, &n, w->labels)));
    H5_CHECK(H5Dclose(write_dataset(w->file, "video_id", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, &n, w->video_ids)));
}

int64_t store_writer_close(StoreWriter *w) {
    if (w->layout.codec == STORE_CODEC_JPEG) finish_jpeg(w);
    write_side_datasets(w);
    write_file_attrs(w);
    H5_CHECK(H5Dclose(w->clips));
    H5_CHECK(H5Fclose(w->file));
    if (rename(w->part_path, w->path) != 0)
        die_input("%s: cannot rename %s to it: %s", w->path, w->part_path, strerror(errno));
    const int64_t count = w->count;
    free(w->states);
    free(w->actions);
    free(w->labels);
    free(w->video_ids);
    free(w->state_names);
    free(w->offsets);
    free(w->pending);
    free(w);
    return count;
}

// ---------------------------------------------------------------------------------------------------- copying

void store_any_open(StoreAnyFile *f, const char *path) {
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", path);
    f->file = open_hdf5_file(path);
    f->clips = open_clips(path, f->file, &f->shape);
    read_extras(path, f->file, &f->shape, &f->extras);
}

void store_any_read_clip(const StoreAnyFile *f, int64_t clip, uint8_t *rgb) {
    const hsize_t start[5] = {(hsize_t)clip, 0, 0, 0, 0};
    const hsize_t count[5] = {1, (hsize_t)f->shape.frames, (hsize_t)f->shape.height, (hsize_t)f->shape.width, 3};
    const hid_t space = H5_CHECK(H5Dget_space(f->clips));
    H5_CHECK(H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL));
    const hid_t mem = H5_CHECK(H5Screate_simple(5, count, NULL));
    if (H5Dread(f->clips, H5T_NATIVE_UINT8, mem, space, H5P_DEFAULT, rgb) < 0)
        die_input("%s: /clips: clip %lld cannot be read by libhdf5 (damaged file?)", f->path, (long long)clip);
    H5_CHECK(H5Sclose(mem));
    H5_CHECK(H5Sclose(space));
}

void store_any_close(StoreAnyFile *f) {
    H5_CHECK(H5Dclose(f->clips));
    H5_CHECK(H5Fclose(f->file));
    free_extras(&f->extras);
}
