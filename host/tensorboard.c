// tensorboard.c: see tensorboard.h. The protobuf wire format needs only three field kinds here: varint (step),
// 64/32-bit fixed (wall_time double, simple_value float) and length-delimited (strings, nested messages).
#include "tensorboard.h"

#include <errno.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "common.h"

uint32_t tb_crc32c(const uint8_t *data, size_t n) {
    static uint32_t table[256];
    static int ready;
    if (!ready) {  // reflected Castagnoli polynomial
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
            table[i] = c;
        }
        ready = 1;
    }
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFu;
}

uint32_t tb_masked_crc(const uint8_t *data, size_t n) {
    const uint32_t crc = tb_crc32c(data, n);
    return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

// ------------------------------------------------------------------------------------------------ protobuf

typedef struct {
    uint8_t buf[1024];
    size_t n;
} PbBuf;

static void pb_byte(PbBuf *b, uint8_t v) {
    JEPA_ASSERT(b->n < sizeof b->buf);
    b->buf[b->n++] = v;
}

static void pb_varint(PbBuf *b, uint64_t v) {
    while (v >= 0x80) pb_byte(b, (uint8_t)(v | 0x80)), v >>= 7;
    pb_byte(b, (uint8_t)v);
}

static void pb_fixed(PbBuf *b, const void *v, int bytes) {  // little-endian hosts (x86-64, aarch64)
    for (int i = 0; i < bytes; i++) pb_byte(b, ((const uint8_t *)v)[i]);
}

static void pb_bytes(PbBuf *b, int field, const void *data, size_t n) {
    pb_varint(b, (uint64_t)field << 3 | 2);
    pb_varint(b, n);
    JEPA_ASSERT(b->n + n <= sizeof b->buf);
    memcpy(b->buf + b->n, data, n);
    b->n += n;
}

// Event { double wall_time = 1; int64 step = 2; oneof { string file_version = 3; Summary summary = 5; } }
static void event_head(PbBuf *e, double wall_time, long step) {
    pb_varint(e, 1 << 3 | 1);
    pb_fixed(e, &wall_time, 8);
    pb_varint(e, 2 << 3 | 0);
    pb_varint(e, (uint64_t)(int64_t)step);
}

static void write_record(TbWriter *w, const PbBuf *e) {
    const uint64_t len = e->n;
    const uint32_t len_crc = tb_masked_crc((const uint8_t *)&len, 8), data_crc = tb_masked_crc(e->buf, e->n);
    if (fwrite(&len, 8, 1, w->f) != 1 || fwrite(&len_crc, 4, 1, w->f) != 1 || fwrite(e->buf, 1, e->n, w->f) != e->n ||
        fwrite(&data_crc, 4, 1, w->f) != 1) {
        fprintf(stderr, "warning: %s: cannot write TensorBoard events (%s); no more are written\n", w->path,
                strerror(errno));
        fclose(w->f);
        w->f = NULL;
    }
}

static double wall_now(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return tv.tv_sec + tv.tv_usec * 1e-6;
}

// ------------------------------------------------------------------------------------------------ writer

int tb_open(TbWriter *w, const char *dir) {
    char host[256] = "localhost";
    gethostname(host, sizeof host - 1);
    const double now = wall_now();
    snprintf(w->path, sizeof w->path, "%s/events.out.tfevents.%ld.%s", dir, (long)now, host);
    w->f = fopen(w->path, "ab");
    if (!w->f) {
        fprintf(stderr, "warning: cannot create %s (%s): no TensorBoard events for this run\n", w->path,
                strerror(errno));
        return -1;
    }
    PbBuf e = {.n = 0};
    event_head(&e, now, 0);
    pb_bytes(&e, 3, "brain.Event:2", 13);
    write_record(w, &e);
    return 0;
}

void tb_scalar(TbWriter *w, const char *tag, long step, double value, double wall_time) {
    if (!w->f) return;
    // Summary { repeated Value value = 1; }  Value { string tag = 1; float simple_value = 2; }
    PbBuf v = {.n = 0}, s = {.n = 0}, e = {.n = 0};
    const size_t tag_len = strlen(tag);
    pb_bytes(&v, 1, tag, tag_len < 512 ? tag_len : 512);
    const float f = (float)value;
    pb_varint(&v, 2 << 3 | 5);
    pb_fixed(&v, &f, 4);
    pb_bytes(&s, 1, v.buf, v.n);
    event_head(&e, wall_time > 0 ? wall_time : wall_now(), step);
    pb_bytes(&e, 5, s.buf, s.n);
    write_record(w, &e);
}

void tb_flush(TbWriter *w) {
    if (w->f) fflush(w->f);
}

void tb_close(TbWriter *w) {
    if (w->f) fclose(w->f);
    w->f = NULL;
}
