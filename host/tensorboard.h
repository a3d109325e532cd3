// tensorboard.h: TensorBoard event files (scalars), written without TensorFlow or libprotobuf: each record is
// TFRecord framing (uint64 length, masked CRC32C of the length, the bytes, masked CRC32C of the bytes) around an
// Event protocol buffer (wall_time, step, and a Summary of tag / simple_value pairs), encoded by hand.
// `tensorboard --logdir RUN` reads the run folder's events.out.tfevents.* file.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    FILE *f;
    char path[1200];
} TbWriter;

// Creates DIR/events.out.tfevents.<unix time>.<host> and writes the file_version event. Returns 0, or -1 (with a
// warning on stderr: monitoring never stops a run) when the file cannot be created.
int tb_open(TbWriter *w, const char *dir);
// One scalar at step; wall_time in seconds since the epoch (0: now). Ignored when the writer is not open.
void tb_scalar(TbWriter *w, const char *tag, long step, double value, double wall_time);
void tb_flush(TbWriter *w);
void tb_close(TbWriter *w);

// CRC-32C (Castagnoli), and TFRecord's mask of it: ((crc >> 15) | (crc << 17)) + 0xa282ead8.
uint32_t tb_crc32c(const uint8_t *data, size_t n);
uint32_t tb_masked_crc(const uint8_t *data, size_t n);
