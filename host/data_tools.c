// data_tools.c: `jepa data synth | info | convert` (docs/data.md): make clip stores from a world generator or
// from videos (frames piped from ffmpeg), and validate and summarise them.
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "provenance.h"
#include "store.h"
#include "tools.h"
#include "world_balls.h"
#include "world_pusht.h"
#include "world_tworooms.h"

static const char *DATA_HELP =
    "usage: jepa data <command> [options]   (docs/data.md describes the store format)\n"
    "\n"
    "commands:\n"
    "  synth --world balls -o FILE [...]       draw a world's clips, with its ground truth in /states\n"
    "  info FILE                               validate a store and summarise it (also: check FILE)\n"
    "  convert VIDEO... -o FILE [...]          cut videos into clips (frames decoded by ffmpeg)\n"
    "  convert --from-h5 IN.h5 -o FILE         rewrite an HDF5 file holding /clips as a store (one chunk per clip)\n"
    "\n"
    "`jepa data <command> --help` lists each command's options.\n";

static const char *SYNTH_HELP =
    "usage: jepa data synth --world balls -o FILE [options]\n"
    "\n"
    "Writes N clips of a synthetic world: /clips uint8 [N,T,H,W,3] and the ground truth /states float32 [N,T,4K]\n"
    "(per ball x, y in pixels and vx, vy in pixels per physics frame; names in the attribute names). Clip i is\n"
    "the world's sample i for --seed, the same clip data.source: synthetic draws at that size.\n"
    "\n"
    "options:\n"
    "  --world balls      bouncing balls with elastic collisions\n"
    "  --world tworooms   an agent moving between two rooms through a door (64x64; docs/world-models.md):\n"
    "                     /states x, y; /actions dx, dy (actions[t] moves frame t to t+1)\n"
    "  --world pusht      a pusher and a T block (Chipmunk2D, 96x96): /states agent x, y, block x, y, angle;\n"
    "                     /actions the pusher's target x, y\n"
    "  --policy P         tworooms, pusht: random | noisy-expert (default random)\n"
    "  --episodes N       tworooms, pusht: the same as --clips (one clip per episode)\n"
    "  -o FILE            the store to write (refused if it exists, unless --force)\n"
    "  --clips N          clips (default 256)\n"
    "  --frames T         frames per clip (default 64)\n"
    "  --size HxW         frame size, or S for S x S (default 64)\n"
    "  --balls K          balls per clip (default 3)\n"
    "  --radius a,b       ball radius range, pixels (default side/12,side/6)\n"
    "  --speed a,b        speed range, pixels per physics frame (default side/32,side/12)\n"
    "  --colours n        palette size (default 6)\n"
    "  --frame-step k     physics frames per stored frame (default 1)\n"
    "  --seed S           seed (default 0)\n"
    "  --deflate L        0 = raw chunks, 1..9 = deflate level (default 1)\n"
    "  --force            replace FILE\n";

static const char *INFO_HELP =
    "usage: jepa data info FILE   (or: jepa data check FILE)\n"
    "\n"
    "Validates FILE as the loader does (every dataset's dtype and shape, one chunk per clip, the chunk index, the\n"
    "attributes; for a JPEG store every row of /frame_offsets), reads and inflates (or decodes) a few clips,\n"
    "checks values (pixels not constant, states finite), and prints a summary. Exit 0 when the store is usable,\n"
    "2 with a one-line reason when it is not. `jepa data check FILE` is the same command.\n";

static const char *CONVERT_HELP =
    "usage: jepa data convert VIDEO... -o FILE [options]\n"
    "       jepa data convert --from-h5 IN.h5 -o FILE [--codec raw|jpeg] [--quality Q] [--deflate L] [--force]\n"
    "\n"
    "Cuts each video into clips of T frames starting every K frames (a video shorter than T gives none); frames\n"
    "are decoded by ffmpeg, scaled to cover the size and centre-cropped. /video_id holds each clip's video index\n"
    "(argument order). --from-h5 rewrites any HDF5 file whose /clips is uint8 [N,T,H,W,3] (contiguous, other\n"
    "chunking, other filters) as a store with one chunk per clip, keeping its other datasets and attributes.\n"
    "\n"
    "options:\n"
    "  -o FILE            the store to write (refused if it exists, unless --force)\n"
    "  --size HxW         frame size, or S for S x S (default 256)\n"
    "  --frames T         frames per clip (default 64: V-JEPA's 16 frames at step 4)\n"
    "  --stride K         frames from one clip's start to the next (default T)\n"
    "  --fps F            resample every video to F frames per second first (default: keep each video's rate)\n"
    "  --deflate L        0 = raw chunks, 1..9 = deflate level (default 1; --codec raw only)\n"
    "  --codec C          raw: /clips uint8 (deflate optional); jpeg: each frame a JPEG in /frames, with\n"
    "                     /frame_offsets (about 10x smaller than deflate on real video; docs/data.md)\n"
    "  --quality Q        JPEG quality 1..100 (default 90; 4:2:0 chroma)\n"
    "  --force            replace FILE\n";

// ---------------------------------------------------------------------------------------------------- shared

const char *tool_value(ToolArgs *a, const char *option) {
    if (a->next >= a->argc) die_input("%s: %s needs a value (see jepa %s --help)", a->command, option, a->command);
    return a->argv[a->next++];
}

int tool_int(ToolArgs *a, const char *option, int lo, int hi) {
    const char *text = tool_value(a, option);
    char *end;
    errno = 0;
    const long v = strtol(text, &end, 10);
    if (!text[0] || *end || errno || v < lo || v > hi)
        die_input("%s: %s '%s': expected an integer in [%d, %d]", a->command, option, text, lo, hi);
    return (int)v;
}

void tool_range(ToolArgs *a, const char *option, double lo, double range[2]) {
    const char *text = tool_value(a, option);
    char tail;
    if (sscanf(text, "%lf,%lf%c", &range[0], &range[1], &tail) != 2 || !(range[0] >= lo) || !(range[0] <= range[1]) ||
        !isfinite(range[1]))
        die_input("%s: %s '%s': expected two numbers a,b with %g <= a <= b", a->command, option, text, lo);
}

void tool_size(ToolArgs *a, const char *option, int *height, int *width) {
    const char *text = tool_value(a, option);
    char tail;
    const int n = sscanf(text, "%dx%d%c", height, width, &tail);
    if (n == 1) *width = *height;
    if ((n != 1 && n != 2) || *height < 1 || *width < 1 || *height > 16384 || *width > 16384)
        die_input("%s: %s '%s': expected HxW or S (pixels, 1 to 16384)", a->command, option, text);
}

void tool_created_by(int argc, char **argv, const char *command, char *out, size_t n) {
    size_t used = (size_t)snprintf(out, n, "jepa.c %s (commit %s): jepa %s", JEPA_VERSION, build_commit(), command);
    for (int i = 0; i < argc && used < n; i++) used += (size_t)snprintf(out + used, n - used, " %s", argv[i]);
}

void tool_progress(const char *what, double done, double total) {
    if (!isatty(2)) return;
    enum { WIDTH = 30 };
    const double fraction = total > 0 ? fmin(1.0, done / total) : 1.0;
    char bar[WIDTH + 1];
    for (int i = 0; i < WIDTH; i++) bar[i] = i < (int)(fraction * WIDTH) ? '#' : '.';
    bar[WIDTH] = 0;
    fprintf(stderr, "\r[%s] %3.0f%% %s\033[K%s", bar, 100 * fraction, what, done >= total ? "\n" : "");
    fflush(stderr);
}

static int wants_help(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return 1;
    return 0;
}

static _Noreturn void die_unknown_option(const ToolArgs *a, const char *arg) {
    die_input("%s: unknown option '%s' (see jepa %s --help)", a->command, arg, a->command);
}

// ---------------------------------------------------------------------------------------------------- synth

typedef struct {
    const char *out, *world;
    int clips, frames, height, width, frame_step, deflate, force, seed;
    BallsWorldConfig balls;
    int radius_given, speed_given;
    int policy;  // TwoRoomsPolicy / PushtPolicy: 0 random, 1 noisy-expert
} SynthOptions;

// Worlds with actions: tworooms and pusht (fixed frame sizes, /states and /actions).
static int world_has_actions(const char *world) { return !strcmp(world, "tworooms") || !strcmp(world, "pusht"); }

static void parse_synth(int argc, char **argv, SynthOptions *o) {
    ToolArgs a = {argc, argv, 0, "data synth"};
    *o = (SynthOptions){.clips = 256, .frames = 64, .height = 64, .width = 64, .frame_step = 1, .deflate = 1};
    o->balls = (BallsWorldConfig){.num_balls = 3, .colours = 6};
    while (a.next < argc) {
        const char *arg = argv[a.next++];
        if (!strcmp(arg, "-o")) o->out = tool_value(&a, arg);
        else if (!strcmp(arg, "--world")) o->world = tool_value(&a, arg);
        else if (!strcmp(arg, "--clips")) o->clips = tool_int(&a, arg, 1, 1 << 30);
        else if (!strcmp(arg, "--frames")) o->frames = tool_int(&a, arg, 1, 1 << 16);
        else if (!strcmp(arg, "--size")) tool_size(&a, arg, &o->height, &o->width);
        else if (!strcmp(arg, "--balls")) o->balls.num_balls = tool_int(&a, arg, 1, BALLS_MAX);
        else if (!strcmp(arg, "--radius")) tool_range(&a, arg, 0, o->balls.radius), o->radius_given = 1;
        else if (!strcmp(arg, "--speed")) tool_range(&a, arg, 0, o->balls.speed), o->speed_given = 1;
        else if (!strcmp(arg, "--colours")) o->balls.colours = tool_int(&a, arg, 1, 256);
        else if (!strcmp(arg, "--frame-step")) o->frame_step = tool_int(&a, arg, 1, 1 << 16);
        else if (!strcmp(arg, "--seed")) o->seed = tool_int(&a, arg, 0, 2147483647);
        else if (!strcmp(arg, "--deflate")) o->deflate = tool_int(&a, arg, 0, 9);
        else if (!strcmp(arg, "--force")) o->force = 1;
        else if (!strcmp(arg, "--episodes")) o->clips = tool_int(&a, arg, 1, 1 << 30);
        else if (!strcmp(arg, "--policy")) {
            const char *p = tool_value(&a, arg);
            if (strcmp(p, "random") && strcmp(p, "noisy-expert"))
                die_input("data synth: --policy '%s': expected random or noisy-expert", p);
            o->policy = !strcmp(p, "noisy-expert");
        } else die_unknown_option(&a, arg);
    }
    if (!o->world) die_input("data synth: --world is required (worlds: balls, tworooms, pusht)");
    if (strcmp(o->world, "balls") && !world_has_actions(o->world))
        die_input("data synth: --world '%s' is not a world (worlds: balls, tworooms, pusht)", o->world);
    if (!o->out) die_input("data synth: -o FILE is required (the store to write)");
    if (!strcmp(o->world, "tworooms")) o->height = o->width = TWOROOMS.size;
    if (!strcmp(o->world, "pusht")) o->height = o->width = PUSHT_IMAGE;
    if (world_has_actions(o->world)) return;
    const int side = o->height < o->width ? o->height : o->width;
    if (!o->radius_given) o->balls.radius[0] = side / 12.0, o->balls.radius[1] = side / 6.0;
    if (!o->speed_given) o->balls.speed[0] = side / 32.0, o->balls.speed[1] = side / 12.0;
    if (!(o->balls.radius[0] > 0)) die_input("data synth: --radius must be above 0, got %g", o->balls.radius[0]);
    o->balls.height = o->height;
    o->balls.width = o->width;
    balls_check_config(&o->balls);
}

static void ball_state_names(int balls, char (*names)[STORE_STATE_NAME]) {
    static const char *const field[4] = {"x", "y", "vx", "vy"};
    for (int i = 0; i < balls; i++)
        for (int f = 0; f < 4; f++) snprintf(names[4 * i + f], STORE_STATE_NAME, "ball%d_%s", i, field[f]);
}

// Clips are drawn and encoded in parallel in groups, then appended in order.
static void synth_clips(const SynthOptions *o, const StoreLayout *layout, StoreWriter *w) {
    const size_t clip_bytes = (size_t)o->frames * o->height * o->width * 3, bound = store_chunk_bound(layout);
    const size_t state_floats = (size_t)o->frames * layout->state_dim;
    const size_t action_floats = (size_t)o->frames * layout->action_dim;
    int group = 2 * (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (group < 1) group = 1;
    uint8_t *chunks = xmalloc((size_t)group * bound), *rgb = xmalloc((size_t)group * clip_bytes);
    float *states = xmalloc((size_t)group * state_floats * sizeof(float));
    float *actions = xmalloc((size_t)group * (action_floats + 1) * sizeof(float));
    size_t *bytes = xmalloc((size_t)group * sizeof(size_t));
    char what[128];
    for (int first = 0; first < o->clips; first += group) {
        const int count = o->clips - first < group ? o->clips - first : group;
#pragma omp parallel for schedule(dynamic, 1)
        for (int k = 0; k < count; k++) {
            float *st = states + k * state_floats, *ac = actions + k * action_floats;
            if (!strcmp(o->world, "tworooms"))
                tworooms_clip((TwoRoomsPolicy)o->policy, (uint64_t)o->seed, first + k, o->frames, rgb + k * clip_bytes,
                              st, ac);
            else if (!strcmp(o->world, "pusht"))
                pusht_clip((PushtPolicy)o->policy, (uint64_t)o->seed, first + k, o->frames, rgb + k * clip_bytes, st, ac);
            else
                balls_clip(&o->balls, (uint64_t)o->seed, first + k, o->frames, o->frame_step, rgb + k * clip_bytes, st);
            bytes[k] = store_encode_clip(layout, rgb + k * clip_bytes, chunks + k * bound);
        }
        for (int k = 0; k < count; k++)
            store_writer_append(w, chunks + k * bound, bytes[k], states + k * state_floats,
                                layout->action_dim ? actions + k * action_floats : NULL, 0, first + k);
        snprintf(what, sizeof what, "%d/%d clips", first + count, o->clips);
        tool_progress(what, first + count, o->clips);
    }
    free(chunks);
    free(rgb);
    free(states);
    free(actions);
    free(bytes);
}

// tworooms and pusht: one episode of the policy per clip, with /states and /actions.
static int synth_action_world(const SynthOptions *o, int argc, char **argv) {
    static const char TWOROOMS_NAMES[2][STORE_STATE_NAME] = {"x", "y"};
    static const char PUSHT_NAMES[5][STORE_STATE_NAME] = {"agent_x", "agent_y", "block_x", "block_y", "block_angle"};
    const int tworooms = !strcmp(o->world, "tworooms");
    char source[512], created_by[2048];
    snprintf(source, sizeof source, "%s world (docs/world-models.md), policy %s, seed %d; clip i is episode i", o->world,
             o->policy ? "noisy-expert" : "random", o->seed);
    tool_created_by(argc, argv, "data synth", created_by, sizeof created_by);
    const StoreLayout layout = {.frames = o->frames, .height = o->height, .width = o->width,
                                .deflate_level = o->deflate, .state_dim = tworooms ? 2 : 5,
                                .state_names = tworooms ? TWOROOMS_NAMES : PUSHT_NAMES, .action_dim = 2,
                                .fps = tworooms ? 10.0 : PUSHT_CONTROL_HZ, .source = source, .created_by = created_by};
    const double t0 = now_seconds();
    StoreWriter *w = store_writer_create(o->out, &layout, o->force);
    synth_clips(o, &layout, w);
    const int64_t written = store_writer_close(w);
    printf("%s: %lld episodes of %d frames of %dx%d (%s) with actions in %.1f s\n", o->out, (long long)written,
           o->frames, o->height, o->width, o->world, now_seconds() - t0);
    return JEPA_EXIT_OK;
}

static int cmd_synth(int argc, char **argv) {
    if (wants_help(argc, argv)) return fputs(SYNTH_HELP, stdout), JEPA_EXIT_OK;
    SynthOptions o;
    parse_synth(argc, argv, &o);
    char source[512], created_by[2048];
    const BallsWorldConfig *b = &o.balls;
    if (world_has_actions(o.world)) return synth_action_world(&o, argc, argv);
    snprintf(source, sizeof source,
             "balls world: %d balls, radius [%g, %g] px, speed [%g, %g] px per physics frame, %d colours, frame "
             "step %d, seed %d; clip i is sample i",
             b->num_balls, b->radius[0], b->radius[1], b->speed[0], b->speed[1], b->colours, o.frame_step, o.seed);
    tool_created_by(argc, argv, "data synth", created_by, sizeof created_by);
    char (*names)[STORE_STATE_NAME] = xcalloc((size_t)4 * b->num_balls, STORE_STATE_NAME);
    ball_state_names(b->num_balls, names);
    const StoreLayout layout = {.frames = o.frames, .height = o.height, .width = o.width, .deflate_level = o.deflate,
                                .state_dim = 4 * b->num_balls, .state_names = (const char(*)[STORE_STATE_NAME])names,
                                .fps = 25.0, .source = source, .created_by = created_by};
    const double t0 = now_seconds();
    StoreWriter *w = store_writer_create(o.out, &layout, o.force);
    synth_clips(&o, &layout, w);
    const int64_t written = store_writer_close(w);
    free(names);
    printf("%s: %lld clips of %d frames of %dx%d (%s) in %.1f s\n", o.out, (long long)written, o.frames, o.height,
           o.width, o.deflate ? "deflate" : "raw", now_seconds() - t0);
    return JEPA_EXIT_OK;
}

// ---------------------------------------------------------------------------------------------------- info

typedef struct {
    double sum, sum_sq;
    int min, max;
    size_t count;
} PixelStats;

// Reads up to 8 clips spread over the store through the loader's own path (pread + inflate to the stream's end,
// which checks the deflate checksum) and warns about clips of one colour.
static void check_pixels(const Store *s, PixelStats *p) {
    StoreReader reader;
    store_reader_init(&reader);
    *p = (PixelStats){0, 0, 255, 0, 0};
    const int64_t n = s->shape.clips, samples = n < 8 ? n : 8;
    for (int64_t k = 0; k < samples; k++) {
        const int64_t clip = samples == 1 ? 0 : k * (n - 1) / (samples - 1);
        const uint8_t *rgb = store_read_frames(s, &reader, clip, 0, s->shape.frames);
        int lo = 255, hi = 0;
        for (size_t i = 0; i < s->clip_bytes; i++) {
            lo = rgb[i] < lo ? rgb[i] : lo;
            hi = rgb[i] > hi ? rgb[i] : hi;
            p->sum += rgb[i];
            p->sum_sq += (double)rgb[i] * rgb[i];
        }
        p->count += s->clip_bytes;
        p->min = lo < p->min ? lo : p->min;
        p->max = hi > p->max ? hi : p->max;
        if (lo == hi) printf("  warning    clip %lld is one value (%d) throughout: an empty or black video?\n", (long long)clip, lo);
    }
    store_reader_free(&reader);
}

// Every state value finite (read in groups of clips); returns the range.
static void check_states(const Store *s, double range[2]) {
    const int64_t group = 256;
    const size_t per_clip = (size_t)s->shape.frames * s->extras.state_dim;
    float *buf = xmalloc((size_t)group * per_clip * sizeof(float));
    range[0] = INFINITY, range[1] = -INFINITY;
    for (int64_t first = 0; first < s->shape.clips; first += group) {
        const int64_t count = s->shape.clips - first < group ? s->shape.clips - first : group;
        store_read_side_floats(s->file, "states", first, count, buf);
        for (size_t i = 0; i < (size_t)count * per_clip; i++) {
            if (!isfinite(buf[i]))
                die_input("%s: /states: clip %lld frame %d column %d is %g; expected finite values", s->path,
                          (long long)(first + (int64_t)(i / per_clip)), (int)(i % per_clip / s->extras.state_dim),
                          (int)(i % s->extras.state_dim), buf[i]);
            range[0] = fmin(range[0], buf[i]);
            range[1] = fmax(range[1], buf[i]);
        }
    }
    free(buf);
}

static int compare_int32(const void *a, const void *b) {
    const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

// Distinct values, minimum and maximum of /labels or /video_id.
static void summarise_ints(const Store *s, const char *dataset, int64_t *distinct, int32_t *lo, int32_t *hi) {
    int32_t *v = xmalloc((size_t)s->shape.clips * sizeof(int32_t));
    store_read_side_ints(s->file, dataset, 0, s->shape.clips, v);
    qsort(v, (size_t)s->shape.clips, sizeof(int32_t), compare_int32);
    *distinct = 0;
    for (int64_t i = 0; i < s->shape.clips; i++) *distinct += i == 0 || v[i] != v[i - 1];
    *lo = v[0];
    *hi = v[s->shape.clips - 1];
    free(v);
}

static void print_clips_summary(const Store *s) {
    const StoreShape *sh = &s->shape;
    const double raw = (double)s->clip_bytes * sh->clips, mib = 1024.0 * 1024.0;
    if (s->codec == STORE_CODEC_JPEG) {
        store_check_offsets(s);  // every row, before any clip is read
        printf("  clips      %lld clips of %d JPEG frames of %dx%d, quality %d: /frames uint8 [%llu] in chunks of %zu "
               "bytes, /frame_offsets int64 [%lld,%d] (every row checked)\n", (long long)sh->clips, sh->frames,
               sh->width, sh->height, s->jpeg_quality, (unsigned long long)s->stored_bytes, s->frames_chunk,
               (long long)sh->clips, sh->frames + 1);
    } else
        printf("  clips      /clips uint8 [%lld,%d,%d,%d,3], one chunk per clip [1,%d,%d,%d,3], %s\n", (long long)sh->clips,
               sh->frames, sh->height, sh->width, sh->frames, sh->height, sh->width, s->deflate ? "deflate" : "no compression");
    printf("  stored     %.1f MiB for %.1f MiB of pixels (%.2fx)\n", s->stored_bytes / mib, raw / mib,
           raw / (double)s->stored_bytes);
    printf("  sampling   T = %d frames: data.num_frames x data.sampling_rate <= %d (V-JEPA's 16 x 4 = 64 %s)\n",
           sh->frames, sh->frames, sh->frames >= 64 ? "fits" : "does not fit: lower data.sampling_rate");
}

static void print_extras_summary(const Store *s) {
    const StoreExtras *x = &s->extras;
    if (x->state_dim) {
        double range[2];
        check_states(s, range);
        printf("  states     /states float32 [%lld,%d,%d], finite, in [%g, %g]; names:", (long long)s->shape.clips,
               s->shape.frames, x->state_dim, range[0], range[1]);
        for (int i = 0; i < x->state_dim && i < 12; i++) printf(" %s", x->state_names[i][0] ? x->state_names[i] : "?");
        printf("%s\n", x->state_dim > 12 ? " ..." : "");
    } else
        printf("  states     none\n");
    if (x->action_dim) printf("  actions    /actions float32 [%lld,%d,%d]\n", (long long)s->shape.clips, s->shape.frames, x->action_dim);
    else printf("  actions    none\n");
    int64_t distinct;
    int32_t lo, hi;
    if (x->has_labels) {
        summarise_ints(s, "labels", &distinct, &lo, &hi);
        printf("  labels     /labels int32: %lld distinct in [%d, %d]\n", (long long)distinct, lo, hi);
        if (lo < 0) printf("  warning    negative labels (%d): unlabelled clips?\n", lo);
    } else
        printf("  labels     none\n");
    if (x->has_video_id) {
        summarise_ints(s, "video_id", &distinct, &lo, &hi);
        printf("  video_id   /video_id int32: %lld source videos (ids %d to %d)\n", (long long)distinct, lo, hi);
    } else
        printf("  video_id   none (each clip counts as its own video)\n");
    if (x->has_fps) printf("  fps        %g\n", x->fps);
    else printf("  warning    no fps attribute\n");
    printf("  source     %s\n", x->source[0] ? x->source : "(missing)");
    printf("  created_by %s\n", x->created_by[0] ? x->created_by : "(missing)");
}

static int cmd_info(int argc, char **argv) {
    if (wants_help(argc, argv)) return fputs(INFO_HELP, stdout), JEPA_EXIT_OK;
    if (argc != 1) die_input("data info: expected one FILE, got %d arguments (see jepa data info --help)", argc);
    Store *s = store_open(argv[0], 1, NULL);
    printf("%s: HDF5 clip store\n", s->path);
    print_clips_summary(s);
    print_extras_summary(s);
    PixelStats p;
    check_pixels(s, &p);
    const double mean = p.sum / (double)p.count, var = p.sum_sq / (double)p.count - mean * mean;
    printf("  pixels     %d clips read and %s: mean %.1f, std %.1f, range [%d, %d]\n",
           (int)(s->shape.clips < 8 ? s->shape.clips : 8), s->codec == STORE_CODEC_JPEG ? "decoded" : "inflated", mean, sqrt(var > 0 ? var : 0), p.min, p.max);
    printf("ok: %s is a valid store\n", s->path);
    store_close(s);
    return JEPA_EXIT_OK;
}

// ---------------------------------------------------------------------------------------------------- convert

typedef struct {
    const char *out, *from_h5;
    const char **videos;
    int n_videos;
    int height, width, frames, stride, deflate, force;
    double fps;  // 0 = keep each video's rate
    StoreCodec codec;
    int quality;  // JPEG quality
} ConvertOptions;

static void parse_convert(int argc, char **argv, ConvertOptions *o) {
    ToolArgs a = {argc, argv, 0, "data convert"};
    *o = (ConvertOptions){.height = 256, .width = 256, .frames = 64, .deflate = 1, .quality = 90};
    o->videos = xcalloc((size_t)argc + 1, sizeof(char *));
    while (a.next < argc) {
        const char *arg = argv[a.next++];
        if (!strcmp(arg, "-o")) o->out = tool_value(&a, arg);
        else if (!strcmp(arg, "--from-h5")) o->from_h5 = tool_value(&a, arg);
        else if (!strcmp(arg, "--size")) tool_size(&a, arg, &o->height, &o->width);
        else if (!strcmp(arg, "--frames")) o->frames = tool_int(&a, arg, 1, 1 << 16);
        else if (!strcmp(arg, "--stride")) o->stride = tool_int(&a, arg, 1, 1 << 24);
        else if (!strcmp(arg, "--fps")) o->fps = tool_int(&a, arg, 1, 1000);
        else if (!strcmp(arg, "--deflate")) o->deflate = tool_int(&a, arg, 0, 9);
        else if (!strcmp(arg, "--quality")) o->quality = tool_int(&a, arg, 1, 100);
        else if (!strcmp(arg, "--codec")) {
            const char *c = tool_value(&a, arg);
            if (strcmp(c, "raw") && strcmp(c, "jpeg")) die_input("data convert: --codec '%s': expected raw or jpeg", c);
            o->codec = strcmp(c, "jpeg") ? STORE_CODEC_RAW : STORE_CODEC_JPEG;
        } else if (!strcmp(arg, "--force")) o->force = 1;
        else if (arg[0] == '-' && arg[1]) die_unknown_option(&a, arg);
        else o->videos[o->n_videos++] = arg;
    }
    if (!o->out) die_input("data convert: -o FILE is required (the store to write)");
    if (o->from_h5 && o->n_videos) die_input("data convert: --from-h5 takes no videos (got '%s')", o->videos[0]);
    if (!o->from_h5 && !o->n_videos) die_input("data convert: no videos given (see jepa data convert --help)");
    if (!o->stride) o->stride = o->frames;
}

// Runs argv with its stdout on a pipe; returns the read end and the child's pid. Exit 127 = could not start.
static FILE *spawn_reader(char *const *args, pid_t *pid) {
    int fds[2];
    if (pipe(fds)) die_internal("pipe: %s", strerror(errno));
    fflush(stdout);
    fflush(stderr);
    *pid = fork();
    if (*pid < 0) die_internal("fork: %s", strerror(errno));
    if (*pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execvp(args[0], args);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "rb");
    if (!f) die_internal("fdopen: %s", strerror(errno));
    return f;
}

static int finish_child(FILE *f, pid_t pid) {
    fclose(f);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

typedef struct {
    double rate;    // frames per second, 0 when unknown
    double frames;  // estimated frame count, 0 when unknown
} VideoProbe;

// ffprobe's frame rate and frame count (or duration x rate) of the first video stream; zeros when unknown.
static VideoProbe probe_video(const char *path, double resample_fps) {
    char *args[] = {"ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                    "stream=avg_frame_rate,nb_frames:format=duration", "-of", "default=nw=1", (char *)path, NULL};
    pid_t pid;
    FILE *f = spawn_reader(args, &pid);
    VideoProbe p = {0, 0};
    double duration = 0, num, den;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "avg_frame_rate=%lf/%lf", &num, &den) == 2 && den > 0) p.rate = num / den;
        if (sscanf(line, "nb_frames=%lf", &num) == 1) p.frames = num;
        if (sscanf(line, "duration=%lf", &num) == 1) duration = num;
    }
    if (finish_child(f, pid) != 0) return (VideoProbe){0, 0};
    if (resample_fps > 0 && duration > 0) p.frames = duration * resample_fps;
    else if (p.frames <= 0 && duration > 0) p.frames = duration * p.rate;
    return p;
}

// Reads exactly bytes; returns 0 at a clean end of stream, dies on a partial frame.
static int read_frame(FILE *f, uint8_t *frame, size_t bytes, const char *video) {
    const size_t got = fread(frame, 1, bytes, f);
    if (got == bytes) return 1;
    if (got == 0 && feof(f)) return 0;
    die_input("data convert: %s: ffmpeg's output ended inside a frame (%zu of %zu bytes)", video, got, bytes);
}

typedef struct {
    const ConvertOptions *o;
    const StoreLayout *layout;
    StoreWriter *w;
    uint8_t *ring, *clip, *chunk;  // last T frames; one clip in order; its encoding
    int64_t clips;                 // written so far
    double frames_done, frames_total;
} ConvertState;

// Frame f has just entered the ring: emit the clip ending at f when a clip starts at f - T + 1.
static void maybe_emit_clip(ConvertState *c, int64_t f, int video) {
    const int T = c->o->frames;
    if (f < T - 1 || (f - (T - 1)) % c->o->stride) return;
    const size_t frame_bytes = (size_t)c->o->height * c->o->width * 3;
    for (int t = 0; t < T; t++)
        memcpy(c->clip + (size_t)t * frame_bytes, c->ring + (size_t)((f - T + 1 + t) % T) * frame_bytes, frame_bytes);
    const size_t bytes = store_encode_clip(c->layout, c->clip, c->chunk);
    store_writer_append(c->w, c->chunk, bytes, NULL, NULL, 0, video);
    c->clips++;
}

static void convert_video(ConvertState *c, int video) {
    const ConvertOptions *o = c->o;
    const char *path = o->videos[video];
    char filter[256], what[512];
    const int fps_len = o->fps > 0 ? snprintf(filter, sizeof filter, "fps=%g,", o->fps) : 0;
    snprintf(filter + fps_len, sizeof filter - (size_t)fps_len,
             "scale=%d:%d:force_original_aspect_ratio=increase,crop=%d:%d", o->width, o->height, o->width, o->height);
    // Every decoded frame once (passthrough: no frames duplicated or dropped to make a constant rate).
    char *args[] = {"ffmpeg", "-nostdin", "-v", "error", "-i", (char *)path, "-an", "-sn", "-vf", filter,
                    "-vsync", "passthrough", "-pix_fmt", "rgb24", "-f", "rawvideo", "pipe:1", NULL};
    pid_t pid;
    FILE *f = spawn_reader(args, &pid);
    const size_t frame_bytes = (size_t)o->height * o->width * 3;
    int64_t frames = 0;
    const int64_t clips_before = c->clips;
    while (read_frame(f, c->ring + (size_t)(frames % o->frames) * frame_bytes, frame_bytes, path)) {
        maybe_emit_clip(c, frames++, video);
        c->frames_done++;
        if (frames % 8 == 0) {
            snprintf(what, sizeof what, "video %d/%d %s | %lld clips", video + 1, o->n_videos, path, (long long)c->clips);
            tool_progress(what, c->frames_done, c->frames_total > c->frames_done ? c->frames_total : c->frames_done + 1);
        }
    }
    const int rc = finish_child(f, pid);
    if (rc == 127) die_input("data convert: cannot run ffmpeg ---> HINT: install it (apt-get install ffmpeg)");
    if (rc != 0) die_input("data convert: %s: ffmpeg failed (exit %d; its message is above)", path, rc);
    if (frames < o->frames)
        fprintf(stderr, "%swarning: %s: %lld frames, fewer than --frames %d: no clip\n", isatty(2) ? "\r\033[K" : "",
                path, (long long)frames, o->frames);
    if (!isatty(2))
        fprintf(stderr, "%s: %lld frames -> %lld clips\n", path, (long long)frames, (long long)(c->clips - clips_before));
}

// The fps attribute: --fps, else the first video's rate (with a warning when the videos differ).
static double probe_all(const ConvertOptions *o, double *frames_total) {
    double fps = o->fps;
    *frames_total = 0;
    for (int v = 0; v < o->n_videos; v++) {
        if (access(o->videos[v], R_OK) != 0)
            die_input("data convert: %s: cannot read video: %s", o->videos[v], strerror(errno));
        const VideoProbe p = probe_video(o->videos[v], o->fps);
        *frames_total += p.frames;
        if (fps == 0) fps = p.rate;
        else if (o->fps == 0 && p.rate > 0 && fabs(p.rate - fps) > 1e-3 * fps)
            fprintf(stderr, "warning: %s runs at %g fps, the first video at %g; attribute fps says %g (pass --fps to "
                    "resample every video to one rate)\n", o->videos[v], p.rate, fps, fps);
    }
    return fps;
}

static void convert_videos(const ConvertOptions *o, const char *created_by) {
    double frames_total;
    const double fps = probe_all(o, &frames_total);
    char source[1024];
    snprintf(source, sizeof source, "%d video(s) cut by jepa data convert into clips of %d frames every %d, %dx%d%s",
             o->n_videos, o->frames, o->stride, o->height, o->width, o->fps > 0 ? ", resampled" : "");
    const StoreLayout layout = {.frames = o->frames, .height = o->height, .width = o->width,
                                .deflate_level = o->deflate, .fps = fps, .source = source, .created_by = created_by,
                                .codec = o->codec, .jpeg_quality = o->quality};
    const size_t frame_bytes = (size_t)o->height * o->width * 3;
    ConvertState c = {o, &layout, store_writer_create(o->out, &layout, o->force), xmalloc(o->frames * frame_bytes),
                      xmalloc(o->frames * frame_bytes), xmalloc(store_chunk_bound(&layout)), 0, 0, frames_total};
    for (int v = 0; v < o->n_videos; v++) convert_video(&c, v);
    store_writer_close(c.w);
    if (c.clips == 0) {
        unlink(o->out);
        die_input("data convert: no video gave a clip of %d frames ---> HINT: lower --frames", o->frames);
    }
    tool_progress("done", 1, 1);
    printf("%s: %lld clips of %d frames of %dx%d from %d videos%s\n", o->out, (long long)c.clips, o->frames,
           o->height, o->width, o->n_videos, o->codec == STORE_CODEC_JPEG ? ", JPEG frames" : "");
    free(c.ring);
    free(c.clip);
    free(c.chunk);
}

static void convert_h5(const ConvertOptions *o, const char *created_by) {
    StoreAnyFile in;
    store_any_open(&in, o->from_h5);
    const StoreShape *sh = &in.shape;
    const StoreExtras *x = &in.extras;
    const StoreLayout layout = {.frames = sh->frames, .height = sh->height, .width = sh->width,
                                .deflate_level = o->deflate, .state_dim = x->state_dim,
                                .state_names = (const char(*)[STORE_STATE_NAME])x->state_names,
                                .action_dim = x->action_dim, .has_labels = x->has_labels, .fps = x->fps,
                                .source = x->source, .created_by = created_by, .codec = o->codec,
                                .jpeg_quality = o->quality};
    StoreWriter *w = store_writer_create(o->out, &layout, o->force);
    uint8_t *rgb = xmalloc((size_t)sh->frames * sh->height * sh->width * 3), *chunk = xmalloc(store_chunk_bound(&layout));
    float *states = xmalloc(sizeof(float) * ((size_t)sh->frames * x->state_dim + 1));
    float *actions = xmalloc(sizeof(float) * ((size_t)sh->frames * x->action_dim + 1));
    char what[64];
    for (int64_t i = 0; i < sh->clips; i++) {
        int32_t label = 0, video = (int32_t)i;
        store_any_read_clip(&in, i, rgb);
        if (x->state_dim) store_read_side_floats(in.file, "states", i, 1, states);
        if (x->action_dim) store_read_side_floats(in.file, "actions", i, 1, actions);
        if (x->has_labels) store_read_side_ints(in.file, "labels", i, 1, &label);
        if (x->has_video_id) store_read_side_ints(in.file, "video_id", i, 1, &video);
        store_writer_append(w, chunk, store_encode_clip(&layout, rgb, chunk), states, actions, label, video);
        snprintf(what, sizeof what, "%lld/%lld clips", (long long)i + 1, (long long)sh->clips);
        tool_progress(what, (double)i + 1, (double)sh->clips);
    }
    store_writer_close(w);
    printf("%s: %lld clips of %d frames of %dx%d rewritten from %s, %s\n", o->out, (long long)sh->clips,
           sh->frames, sh->height, sh->width, o->from_h5, o->codec == STORE_CODEC_JPEG ? "JPEG frames" : "one chunk per clip");
    store_any_close(&in);
    free(rgb);
    free(chunk);
    free(states);
    free(actions);
}

static int cmd_convert(int argc, char **argv) {
    if (wants_help(argc, argv)) return fputs(CONVERT_HELP, stdout), JEPA_EXIT_OK;
    ConvertOptions o;
    parse_convert(argc, argv, &o);
    char created_by[4096];
    tool_created_by(argc, argv, "data convert", created_by, sizeof created_by);
    if (o.from_h5) convert_h5(&o, created_by);
    else convert_videos(&o, created_by);
    free(o.videos);
    return JEPA_EXIT_OK;
}

// ---------------------------------------------------------------------------------------------------- dispatch

int data_command(int argc, char **argv) {
    if (argc < 1) return fputs(DATA_HELP, stderr), JEPA_EXIT_BAD_INPUT;
    if (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) return fputs(DATA_HELP, stdout), JEPA_EXIT_OK;
    if (!strcmp(argv[0], "synth")) return cmd_synth(argc - 1, argv + 1);
    if (!strcmp(argv[0], "info") || !strcmp(argv[0], "check")) return cmd_info(argc - 1, argv + 1);
    if (!strcmp(argv[0], "convert")) return cmd_convert(argc - 1, argv + 1);
    die_input("data: unknown command '%s' (commands: synth, info, convert; see jepa data --help)", argv[0]);
}
