// store.h: the HDF5 clip store (docs/data.md). Writing (jepa data synth/convert), opening with every check a
// reader needs, and reading clips by raw chunk: libhdf5 is called only while opening (to validate and to list
// where each clip's chunk lies in the file); reader threads then pread and inflate chunks themselves, because
// libhdf5 serialises every call behind one global lock.
//
// Layout: /clips uint8 [N,T,H,W,3], one chunk per clip, deflate optional; optional /actions float32 [N,T,A],
// /states float32 [N,T,S] (attribute names: S strings), /labels int32 [N], /video_id int32 [N]; file attributes
// fps (float64), source and created_by (strings).
// JPEG stores (jepa data convert --codec jpeg) hold, instead of /clips, /frames uint8 [bytes] (every frame's JPEG,
// one after another; attributes codec "jpeg", quality, height, width) and /frame_offsets int64 [N, T+1] (clip i's
// frame t is /frames[off[i][t] : off[i][t+1]]); both chunked without filters, so readers pread raw chunks too.
#pragma once
#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>
#include <zlib.h>

// A libhdf5 call that returns a negative value (herr_t, hid_t, htri_t) on failure: prints HDF5's error stack and
// dies naming the call, file and line.
#define H5_CHECK(call) store_h5_check((int64_t)(call), #call, __FILE__, __LINE__)
int64_t store_h5_check(int64_t rc, const char *call, const char *file, int line);

// "hdf5 1.10.8, zlib 1.2.13": the libraries stores are read with (for --version and provenance.json).
void store_library_versions(char *buf, size_t n);

#define STORE_STATE_NAME 32  // bytes per /states column name, with the terminator

// How /clips' frames are stored: raw uint8 (deflate optional) or JPEG frames in /frames + /frame_offsets.
typedef enum { STORE_CODEC_RAW = 0, STORE_CODEC_JPEG = 1 } StoreCodec;
#define STORE_JPEG_CHUNK_BYTES ((size_t)1 << 20)  // /frames chunk: 1 MiB, a few frames per pread at 256 px

typedef struct {
    int64_t clips;              // N
    int frames, height, width;  // T, H, W
} StoreShape;

// ---------------------------------------------------------------------------------------------------- writing

typedef struct {
    int frames, height, width;       // T, H, W of every clip
    int deflate_level;               // 0 = raw chunks, 1..9 = deflate (zlib) at that level
    int state_dim;                   // S columns of /states; 0 = no /states
    const char (*state_names)[STORE_STATE_NAME];  // S names, or NULL
    int action_dim;                  // A columns of /actions; 0 = no /actions
    int has_labels;                  // write /labels
    double fps;                      // frames per second of the clips (attribute fps)
    const char *source;              // what the clips are (attribute source)
    const char *created_by;          // the command that wrote them (attribute created_by)
    StoreCodec codec;                // STORE_CODEC_JPEG: frames as JPEG (deflate_level unused)
    int jpeg_quality;                // 1..100 when codec is JPEG
    size_t jpeg_chunk_bytes;         // /frames chunk size; 0 = STORE_JPEG_CHUNK_BYTES (tests use small ones)
} StoreLayout;

typedef struct StoreWriter StoreWriter;

// Creates path (refusing to replace an existing file unless overwrite); the store is written to path.part and
// renamed to path by store_writer_close, so an interrupted run never leaves a store that looks complete.
StoreWriter *store_writer_create(const char *path, const StoreLayout *layout, int overwrite);
// Largest chunk store_encode_clip can produce for this layout, bytes.
size_t store_chunk_bound(const StoreLayout *layout);
// Encodes one clip rgb (T, H, W, 3) as its stored chunk into out (store_chunk_bound bytes); returns its size.
// Touches no shared state: call it from any thread. For JPEG the "chunk" is T uint32 frame sizes followed by the
// T JPEG frames; store_writer_append splits it into /frames and /frame_offsets.
size_t store_encode_clip(const StoreLayout *layout, const uint8_t *rgb, uint8_t *out);
// Appends one encoded clip and its side data: states (T, S) or NULL, actions (T, A) or NULL.
void store_writer_append(StoreWriter *w, const uint8_t *chunk, size_t chunk_bytes, const float *states,
                         const float *actions, int32_t label, int32_t video_id);
// Writes the side datasets and attributes, closes and renames; returns the number of clips written.
int64_t store_writer_close(StoreWriter *w);

// ---------------------------------------------------------------------------------------------------- reading

typedef struct {
    uint64_t offset;   // byte offset of the chunk in the file
    uint32_t bytes;    // stored size
    uint8_t deflated;  // 1 when the chunk is deflate data
} StoreChunk;

// What a store holds besides /clips (validated against N and T when opened).
typedef struct {
    int state_dim, action_dim;    // S of /states, A of /actions; 0 = absent
    int has_labels, has_video_id;
    char (*state_names)[STORE_STATE_NAME];  // [state_dim]; "" when the names attribute is missing
    int has_fps;
    double fps;
    char source[512], created_by[512];      // "" when missing
} StoreExtras;

typedef struct {
    char path[4096];
    hid_t file;             // used by the opening thread only (store_read_side)
    StoreShape shape;
    size_t clip_bytes;      // T * H * W * 3
    int deflate;            // the /clips filter pipeline is deflate
    StoreChunk *chunk;      // [N], where each clip lies (raw and deflate stores)
    uint64_t stored_bytes;  // sum of chunk sizes (JPEG: bytes of /frames)
    StoreCodec codec;
    int jpeg_quality;       // JPEG stores: attribute quality (0 when absent)
    size_t frames_chunk;    // JPEG: bytes per /frames chunk
    uint64_t *frames_addr;  // JPEG: [ceil(stored_bytes / frames_chunk)] file offset of each /frames chunk
    int64_t offsets_rows;   // JPEG: rows per /frame_offsets chunk
    uint64_t *offsets_addr; // JPEG: [ceil(N / offsets_rows)] file offset of each /frame_offsets chunk
    int fd;                 // shared by reader threads (pread only)
    StoreExtras extras;
} Store;

// Opens and validates path for windows of window_frames frames (1 = any T). Every problem is one line naming
// file, dataset and what was expected (exit 2); window_why says which keys asked for the window.
Store *store_open(const char *path, int window_frames, const char *window_why);
void store_close(Store *s);

// Side data of clips [first, first + count) through libhdf5: /states or /actions as (count, T, dim) floats,
// /labels or /video_id as count ints. The dataset must exist (see StoreExtras).
void store_read_side_floats(hid_t file, const char *dataset, int64_t first, int64_t count, float *out);
void store_read_side_ints(hid_t file, const char *dataset, int64_t first, int64_t count, int32_t *out);

struct JpegCodec;

// One reader thread's buffers: the stored chunk and the inflated frames; for JPEG stores the clip's offsets
// row, the listed frames' JPEG bytes and where each lies in them.
typedef struct {
    uint8_t *stored;
    size_t stored_cap;
    uint8_t *frames;
    size_t frames_cap;
    z_stream zs;
    int zs_ready;
    int64_t *row;            // (T + 1) offsets of the last clip fetched
    int row_cap;
    int *list;               // frames listed by the last fetch, and their JPEG bytes in stored:
    size_t *at, *len;        //   frame list[i] is stored[at[i] : at[i] + len[i]]
    int list_count, list_cap;
    struct JpegCodec *jpeg;  // created on the first JPEG decode
} StoreReader;

void store_reader_init(StoreReader *r);
// Called once by each reader thread: a chunk it cannot read then ends the process with one error line at once.
void store_mark_reader_thread(void);
void store_reader_free(StoreReader *r);
// The two halves of store_read_frames, separate for the benchmark's breakdown:
// fetches the bytes that hold frames [first_frame, end_frame) of clip (the whole chunk when it is deflated) ...
void store_fetch(const Store *s, StoreReader *r, int64_t clip, int first_frame, int end_frame);
// ... and returns those frames, (end - first, H, W, 3), inflating only as far as end_frame.
const uint8_t *store_decode(const Store *s, StoreReader *r, int64_t clip, int first_frame, int end_frame);
// Frames [first_frame, end_frame) of clip, (end - first, H, W, 3), valid until the reader's next call.
const uint8_t *store_read_frames(const Store *s, StoreReader *r, int64_t clip, int first_frame, int end_frame);
// The same for a sample's frames frame[0..count) (non-decreasing): returns the window (frame[count-1] - frame[0]
// + 1, H, W, 3) in which slot frame[i] - frame[0] holds frame[i]. JPEG stores read and decode only the listed
// frames (other slots hold stale bytes); raw and deflate stores read the whole window as store_read_frames.
void store_fetch_list(const Store *s, StoreReader *r, int64_t clip, const int *frame, int count);
const uint8_t *store_decode_list(const Store *s, StoreReader *r, int64_t clip, const int *frame, int count);
const uint8_t *store_read_list(const Store *s, StoreReader *r, int64_t clip, const int *frame, int count);
// JPEG stores, after store_fetch_list: the JPEG bytes of listed frame i (the GPU decoder's input).
const uint8_t *store_jpeg_frame(const StoreReader *r, int i, size_t *bytes);
// JPEG stores: reads every row of /frame_offsets and dies with one line at the first that is not T + 1
// increasing offsets within /frames (jepa data info; the loader checks each row it reads).
void store_check_offsets(const Store *s);
// "raw", "deflate" or "jpeg q90": how a store's frames are held.
void store_codec_text(const Store *s, char *buf, size_t n);

// ---------------------------------------------------------------------------------------------------- copying

// Any HDF5 file whose /clips is uint8 [N,T,H,W,3], whatever its layout and filters, read through libhdf5
// (H5Dread): the source of `jepa data convert --from-h5`, which rewrites it as a store.
typedef struct {
    char path[4096];
    hid_t file, clips;
    StoreShape shape;
    StoreExtras extras;
} StoreAnyFile;

void store_any_open(StoreAnyFile *f, const char *path);
void store_any_read_clip(const StoreAnyFile *f, int64_t clip, uint8_t *rgb);
void store_any_close(StoreAnyFile *f);
