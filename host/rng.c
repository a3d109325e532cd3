// rng.c: Philox4x32-10 (Salmon et al., SC'11), the generator cuRAND also offers, so the GPU can draw the same numbers.
#include "rng.h"

#include <math.h>

static void philox_round(uint32_t c[4], const uint32_t k[2]) {
    const uint64_t p0 = (uint64_t)0xD2511F53u * c[0];
    const uint64_t p1 = (uint64_t)0xCD9E8D57u * c[2];
    const uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    const uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    const uint32_t n0 = hi1 ^ c[1] ^ k[0], n2 = hi0 ^ c[3] ^ k[1];
    c[0] = n0;
    c[1] = lo1;
    c[2] = n2;
    c[3] = lo0;
}

void philox4x32(const uint32_t key[2], const uint32_t counter[4], uint32_t out[4]) {
    uint32_t c[4] = {counter[0], counter[1], counter[2], counter[3]};
    uint32_t k[2] = {key[0], key[1]};
    for (int round = 0; round < 10; round++) {
        philox_round(c, k);
        k[0] += 0x9E3779B9u;
        k[1] += 0xBB67AE85u;
    }
    for (int i = 0; i < 4; i++) out[i] = c[i];
}

Rng rng_stream(uint64_t seed, uint32_t purpose, uint64_t step, uint64_t index) {
    Rng r;
    r.key[0] = (uint32_t)seed;
    r.key[1] = (uint32_t)(seed >> 32) ^ (purpose * 0x85EBCA6Bu);
    r.counter[0] = 0;
    r.counter[1] = (uint32_t)index;
    r.counter[2] = (uint32_t)step;
    r.counter[3] = (uint32_t)(index >> 32) ^ ((uint32_t)(step >> 32) << 16) ^ (purpose << 24);
    r.used = 4;
    return r;
}

uint32_t rng_u32(Rng *r) {
    if (r->used == 4) {
        philox4x32(r->key, r->counter, r->block);
        r->counter[0]++;
        r->used = 0;
    }
    return r->block[r->used++];
}

double rng_uniform(Rng *r) {
    const uint64_t hi = rng_u32(r) >> 5, lo = rng_u32(r) >> 6;  // 27 + 26 bits
    return ((double)hi * 67108864.0 + (double)lo) * (1.0 / 9007199254740992.0);
}

double rng_uniform_range(Rng *r, double lo, double hi) { return lo + (hi - lo) * rng_uniform(r); }

double rng_normal(Rng *r) {
    double u1 = rng_uniform(r);
    const double u2 = rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

int64_t rng_randint(Rng *r, int64_t lo, int64_t hi) {
    const uint64_t span = (uint64_t)(hi - lo);
    const uint64_t draw = ((uint64_t)rng_u32(r) << 32) | rng_u32(r);
    return lo + (int64_t)(draw % span);  // bias < 2^-32 for spans used here
}
