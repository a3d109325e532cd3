// runfolder.c: see runfolder.h.
#include "runfolder.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

#include "common.h"
#include "provenance.h"

static void make_dirs(const char *path) {
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) die_input("logging.folder: cannot create %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) die_input("logging.folder: cannot create %s: %s", buf, strerror(errno));
}

static FILE *open_in(const RunFolder *rf, const char *name, const char *mode) {
    char file[1100];
    snprintf(file, sizeof(file), "%s/%s", rf->path, name);
    FILE *f = fopen(file, mode);
    if (!f) die_input("cannot write %s: %s", file, strerror(errno));
    return f;
}

// config.yaml (the resolved config) and provenance.json of this invocation.
static void write_run_files(const RunFolder *rf, const Config *cfg, const char *device, const char *command) {
    FILE *f = open_in(rf, "config.yaml", "w");
    config_write_yaml(cfg, f);
    fclose(f);
    f = open_in(rf, "provenance.json", "w");
    provenance_write(f, device, command);
    fclose(f);
}

void run_folder_open(RunFolder *rf, const Config *cfg, const char *device, const char *command) {
    make_dirs(cfg->logging.folder);
    for (int k = 1;; k++) {
        if (k == 1) snprintf(rf->path, sizeof(rf->path), "%s/%s", cfg->logging.folder, cfg->logging.write_tag);
        else snprintf(rf->path, sizeof(rf->path), "%s/%s-%d", cfg->logging.folder, cfg->logging.write_tag, k);
        if (mkdir(rf->path, 0755) == 0) break;
        if (errno != EEXIST) die_input("logging.folder: cannot create %s: %s", rf->path, strerror(errno));
    }
    write_run_files(rf, cfg, device, command);
    rf->log = open_in(rf, "train.log", "w");
    rf->metrics = open_in(rf, "metrics.jsonl", "w");
}

int run_folder_latest(const Config *cfg, char *path, size_t n) {
    struct stat st;
    char candidate[1024];
    int found = 0;
    for (int k = 1;; k++) {
        if (k == 1) snprintf(candidate, sizeof(candidate), "%s/%s", cfg->logging.folder, cfg->logging.write_tag);
        else snprintf(candidate, sizeof(candidate), "%s/%s-%d", cfg->logging.folder, cfg->logging.write_tag, k);
        if (stat(candidate, &st) != 0 || !S_ISDIR(st.st_mode)) return found;
        snprintf(path, n, "%s", candidate);
        found = 1;
    }
}

// metrics.jsonl without the records of steps after through_step (a resumed run writes them again).
static void cut_metrics(const RunFolder *rf, long through_step) {
    char path[1100], tmp[1200];
    snprintf(path, sizeof(path), "%s/metrics.jsonl", rf->path);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *in = fopen(path, "r");
    if (!in) return;  // none yet
    FILE *out = fopen(tmp, "w");
    if (!out) die_input("cannot write %s: %s", tmp, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, in) > 0) {
        const char *at = strstr(line, "\"step\":");
        if (at && strtol(at + 7, NULL, 10) <= through_step) fputs(line, out);
    }
    free(line);
    fclose(in);
    if (fclose(out) != 0 || rename(tmp, path) != 0) die_input("cannot write %s: %s", path, strerror(errno));
}

void run_folder_reopen(RunFolder *rf, const char *path, const Config *cfg, const char *device, const char *command,
                       long through_step) {
    snprintf(rf->path, sizeof(rf->path), "%s", path);
    write_run_files(rf, cfg, device, command);
    cut_metrics(rf, through_step);
    rf->log = open_in(rf, "train.log", "a");
    rf->metrics = open_in(rf, "metrics.jsonl", "a");
}

void run_folder_close(RunFolder *rf) {
    if (rf->log) fclose(rf->log);
    if (rf->metrics) fclose(rf->metrics);
    rf->log = rf->metrics = NULL;
}

void run_log(RunFolder *rf, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
    if (!rf->log) return;
    va_start(ap, fmt);
    vfprintf(rf->log, fmt, ap);
    va_end(ap);
    fflush(rf->log);
}
