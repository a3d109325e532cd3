// rng.h: counter-based randomness (Philox4x32-10). Every draw is a pure function of
// (seed, purpose, step, index) plus a draw counter, so results never depend on ranks, threads or workers (DESIGN).
#pragma once
#include <stdint.h>

// What a stream is for; part of the key, so streams of different purposes never overlap.
typedef enum {
    RNG_INIT = 1,        // parameter init: step = tensor index in the table, index = 0
    RNG_MASK_SIZE = 2,   // block size per mask generator: step = global step, index = generator
    RNG_MASK_POS = 3,    // block positions: step = global step, index = global sample index; purpose + 16*(generator+1)
    RNG_SYNTH = 4,       // synthetic worlds: step = 0, index = global sample index
    RNG_AUG = 5,         // frame offset, crop, flip: step = 0, index = global sample index (position)
    RNG_DATA_ORDER = 6,  // epoch order (Feistel rounds): step = epoch, index = round << 32 | half-word
    RNG_TEST = 7,        // tests
    RNG_DATA_MIX = 8,    // weighted store mixture: step = 0, index = global sample index (position)
    RNG_PLAN = 9,        // planning (CEM samples, random-action baseline): step = episode step, index = episode
} RngPurpose;

typedef struct {
    uint32_t key[2];
    uint32_t counter[4];  // counter[0] counts blocks of 4 draws within the stream
    uint32_t block[4];
    int used;             // draws already taken from block (4 = empty)
} Rng;

Rng rng_stream(uint64_t seed, uint32_t purpose, uint64_t step, uint64_t index);
uint32_t rng_u32(Rng *r);
double rng_uniform(Rng *r);                 // [0, 1), 53 bits
double rng_uniform_range(Rng *r, double lo, double hi);
double rng_normal(Rng *r);                  // standard normal (Box-Muller)
int64_t rng_randint(Rng *r, int64_t lo, int64_t hi);  // uniform in [lo, hi); hi > lo
void philox4x32(const uint32_t key[2], const uint32_t counter[4], uint32_t out[4]);
