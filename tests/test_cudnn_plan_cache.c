// test_cudnn_plan_cache.c: the slot choice of cuDNN attention's plan table (cudnn_plan_victim, pure C, no GPU): free
// slots first, then the least recently used; and a table driven by it over random shape sequences (as the masks'
// token counts make them) behaves as a reference LRU cache kept as a recency list: the same hits and misses, in the
// same order.
#include <string.h>

#include "cudnn_attention.h"
#include "rng.h"
#include "test.h"

enum { SLOTS = 8, KEYS = 13, ACCESSES = 20000 };

// Reference: keys ordered most recent first; a miss drops the last one when full.
typedef struct {
    int key[SLOTS], n;
} Recency;

static int recency_access(Recency *r, int key) {  // 1: hit
    int at = -1;
    for (int i = 0; i < r->n; i++)
        if (r->key[i] == key) at = i;
    const int hit = at >= 0;
    if (!hit) at = r->n < SLOTS ? r->n++ : SLOTS - 1;
    memmove(&r->key[1], &r->key[0], (size_t)at * sizeof(int));
    r->key[0] = key;
    return hit;
}

// The table as cudnn_attention.c keeps it: per slot a key and a last use (0: free), a clock.
typedef struct {
    int key[SLOTS];
    unsigned long long last_use[SLOTS], clock;
} Table;

static int table_access(Table *t, int key) {
    for (int i = 0; i < SLOTS; i++)
        if (t->last_use[i] && t->key[i] == key) {
            t->last_use[i] = ++t->clock;
            return 1;
        }
    const int v = cudnn_plan_victim(t->last_use, SLOTS);
    t->key[v] = key;
    t->last_use[v] = ++t->clock;
    return 0;
}

int main(void) {
    const unsigned long long some_free[4] = {5, 0, 3, 0}, full[4] = {5, 9, 3, 7}, one[1] = {4};
    TEST_CHECK("cudnn plan cache: the first free slot is taken", cudnn_plan_victim(some_free, 4) == 1, "got %d",
               cudnn_plan_victim(some_free, 4));
    TEST_CHECK("cudnn plan cache: a full table gives up its least recently used slot",
               cudnn_plan_victim(full, 4) == 2, "got %d", cudnn_plan_victim(full, 4));
    TEST_CHECK("cudnn plan cache: a table of one slot reuses it", cudnn_plan_victim(one, 1) == 0, "got %d",
               cudnn_plan_victim(one, 1));

    Rng rng = rng_stream(8, RNG_TEST, 2, 0);
    Recency ref = {{0}, 0};
    Table t;
    memset(&t, 0, sizeof t);
    int first_diff = -1, hits = 0;
    for (int i = 0; i < ACCESSES; i++) {
        // skewed: low keys (the target encoder's fixed shape, frequent context lengths) come back more often
        const double u = rng_uniform(&rng);
        const int key = (int)(u * u * KEYS);
        const int h_ref = recency_access(&ref, key), h = table_access(&t, key);
        hits += h;
        if (h != h_ref && first_diff < 0) first_diff = i;
    }
    TEST_CHECK("cudnn plan cache: hits and misses equal a reference LRU over 20000 random accesses", first_diff < 0,
               "first difference at access %d", first_diff);
    // both kinds happen, or the comparison above says little
    TEST_CHECK("cudnn plan cache: the random sequence both hits and misses", hits > 0 && hits < ACCESSES,
               "%d hits of %d", hits, ACCESSES);
    TEST_EXIT();
}
