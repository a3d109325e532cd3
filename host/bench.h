// bench.h: `jepa bench` (docs in `jepa bench --help`). bench.c: the dispatch and what every target shares: the
// timer, timing, input fills, the GEMM ceiling, peer figures, tables and JSON. bench_kernels.c: the kernel targets
// (attention, layernorm, ema, adamw, gemm; GPU only). bench_step.c: `bench step`. bench_data.c (tools.h): `bench data`.
//
// Method (METHOD.md): device work is timed with CUDA events on the backend's compute stream after a warm-up; each
// sample times several back-to-back runs, the figure is the median over samples; inputs rotate through enough sets
// that together they exceed the L2 cache several times; fractions are of ceilings measured in the same process.
#pragma once
#include <json-c/json.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "backend.h"

// `jepa bench TARGET ...` (argv[0] = TARGET, not "data"); returns the exit code.
int bench_command(int argc, char **argv);
// `jepa bench step CONFIG ...` (the arguments after "step").
int bench_step_command(int argc, char **argv);
// `jepa bench TARGET [options]` for the kernel targets (bench_kernels.c; argv after TARGET); exits 2 without a GPU.
int bench_kernels_command(const char *target, int argc, char **argv);
extern const char *const BENCH_KERNEL_OPTIONS;  // their options, for --help

// ---- timer: marks split the timeline of a backend's queue into intervals, each counted toward the tag of the mark
// that opens it. CUDA: events on the compute stream (queue order; a gap where the device waited for the host counts
// toward the open tag); CPU: the host clock (CPU ops run synchronously).
typedef struct BenchClock BenchClock;
BenchClock *bench_clock_create(Backend *be);
void bench_clock_mark(BenchClock *c, int tag);
// Waits for the marked work, adds each closed interval to seconds[tag] (tags >= ntags are dropped) and returns
// their sum; the last mark stays open and starts the next interval.
double bench_clock_collect(BenchClock *c, double *seconds, int ntags);
void bench_clock_free(BenchClock *c);

// ---- timing of one operation: run(ctx, set) queues one run on input set `set`.
typedef void (*BenchRunFn)(void *ctx, int set);
typedef struct {
    double ms;        // median over samples of the time per run
    double p10, p90;  // spread of the samples (ms per run)
    int samples, reps, sets;
} BenchTiming;
// Warm-up (every set once, at least 3 runs), then samples of `reps` consecutive runs (reps sized so a sample lasts
// ~2 ms), cycling through the sets, until budget_s has passed (at least 7 samples, at most 200).
BenchTiming bench_time(BenchClock *c, BenchRunFn run, void *ctx, int sets, double budget_s);
double bench_median(const double *v, int n);  // n >= 1
// Input sets whose bytes together exceed rotate_bytes (at least 1, at most 64).
int bench_sets_for(size_t set_bytes, size_t rotate_bytes);

// ---- inputs: n elements of elem_size bytes (a backend's esize, ssize or msize) at dst, drawn as
// mean + scale * z (z standard normal; |z| when positive) from a fixed pool, rotated by seed. Never zeros.
void bench_fill(Backend *be, void *dst, size_t elem_size, size_t n, double mean, double scale, int positive,
                uint64_t seed);

// ---- ceilings: out[n,n] = a[n,n] @ w[n,n]^T through be->matmul_fwd (cuBLASLt's bf16 GEMM on CUDA), TFLOP/s.
double bench_gemm_ceiling(BenchClock *c, Backend *be, int n, double budget_s);

// ---- peer figures (bench/peer-figures.json by default; json-c object, NULL with why[] when not readable).
json_object *bench_peer_load(const char *path, char *why, size_t n);
// A number from an object, NaN when absent or null.
double bench_json_number(json_object *o, const char *key);
// A finite number, or JSON null.
json_object *bench_json_double(double v);
// target, device, date (UTC), commit and the command line ("jepa bench TARGET" and argv) into o.
void bench_json_provenance(json_object *o, const char *device, int argc, char **argv, const char *target);
// Writes o to path (pretty); dies naming the file when it cannot.
void bench_json_write(json_object *o, const char *path);

// ---- tables printed as Markdown (they paste into bench/RESULTS.md)
typedef struct {
    int cols, cells, cap;
    char **cell;  // row-major; row 0 is the header
} BenchTable;
void bench_table_init(BenchTable *t, int cols, const char *const *header);
void bench_table_add(BenchTable *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void bench_table_print(BenchTable *t, FILE *out);  // prints and frees
// "%.*f" of v, or "-" when v is NaN.
const char *bench_num(char *buf, size_t n, int decimals, double v);
