// main.c: the `jepa` command: subcommands, --help on each, exit codes 0 ok, 1 internal error, 2 bad input.
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "config.h"
#include "provenance.h"
#include "train.h"

static const char *MAIN_HELP =
    "usage: jepa <command> [options]\n"
    "\n"
    "JEPA video world models (V-JEPA) trained in C.\n"
    "\n"
    "commands:\n"
    "  train CONFIG [key=value ...]   train from a YAML config (see `jepa train --help`)\n"
    "  config --doc                   every config key: type, default, range, meaning\n"
    "\n"
    "options:\n"
    "  --version                      version, commit, build flags and library versions\n"
    "  --help                         this text\n"
    "\n"
    "exit codes: 0 ok, 1 internal error, 2 bad input (config, arguments, files)\n";

static const char *TRAIN_HELP =
    "usage: jepa train CONFIG.yaml [section.key=value ...] [--dry-run]\n"
    "\n"
    "Trains V-JEPA from CONFIG.yaml. Overrides use the YAML key path, e.g.\n"
    "  optimization.lr=1e-3   mask.0.num_blocks=4   optimization.ema=[0.996,1.0]\n"
    "A run folder logging.folder/logging.write_tag (suffixed -2, -3... if taken) receives the resolved\n"
    "config.yaml, provenance.json, train.log and metrics.jsonl (one JSON record per step).\n"
    "\n"
    "options:\n"
    "  --dry-run   print parameters per module, FLOPs per step and the memory estimate, then exit\n"
    "  --help      this text\n";

static const char *CONFIG_HELP =
    "usage: jepa config --doc\n"
    "\n"
    "Prints every configuration key with its type, default, valid range and a one-line description.\n";

static int wants_help(int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return 1;
    return 0;
}

static void join_command(int argc, char **argv, char *out, size_t n) {
    out[0] = 0;
    for (int i = 0; i < argc; i++) {
        if (i) strncat(out, " ", n - strlen(out) - 1);
        strncat(out, argv[i], n - strlen(out) - 1);
    }
}

static int cmd_train(int argc, char **argv, int full_argc, char **full_argv) {
    if (wants_help(argc, argv)) {
        fputs(TRAIN_HELP, stdout);
        return JEPA_EXIT_OK;
    }
    const char *config_path = NULL;
    int dry_run = 0, n_overrides = 0;
    char **overrides = xcalloc((size_t)argc + 1, sizeof(char *));
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--dry-run") == 0) dry_run = 1;
        else if (strncmp(argv[i], "--", 2) == 0) die_input("train: unknown option '%s' (see jepa train --help)", argv[i]);
        else if (strchr(argv[i], '=')) overrides[n_overrides++] = argv[i];
        else if (!config_path) config_path = argv[i];
        else die_input("train: a second config '%s' after '%s'; overrides look like key=value", argv[i], config_path);
    }
    if (!config_path) die_input("train: no config given\n---> HINT: jepa train configs/tiny.yaml");
    Config cfg;
    config_load(&cfg, config_path, n_overrides, overrides);
    config_validate(&cfg);
    free(overrides);
    if (dry_run) return train_dry_run(&cfg);
    char command[4096];
    join_command(full_argc, full_argv, command, sizeof(command));
    return train_run(&cfg, command);
}

static int cmd_config(int argc, char **argv) {
    if (wants_help(argc, argv)) {
        fputs(CONFIG_HELP, stdout);
        return JEPA_EXIT_OK;
    }
    if (argc == 1 && strcmp(argv[0], "--doc") == 0) {
        config_print_doc(stdout);
        return JEPA_EXIT_OK;
    }
    die_input("config: expected --doc (see jepa config --help)");
}

// OpenMP threads that spin after each parallel region fight OpenBLAS's threads for the cores between ops (measured on
// 2 cores: the tiny config ran 2.4x slower). libgomp reads OMP_WAIT_POLICY once at start-up, so set it and start
// again, unless the user chose a policy.
static void prefer_passive_openmp(char **argv) {
    if (getenv("OMP_WAIT_POLICY")) return;
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv);  // returns only on failure: then run as we are
}

int main(int argc, char **argv) {
    prefer_passive_openmp(argv);
    if (argc < 2) {
        fputs(MAIN_HELP, stderr);
        return JEPA_EXIT_BAD_INPUT;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(MAIN_HELP, stdout);
        return JEPA_EXIT_OK;
    }
    if (strcmp(cmd, "--version") == 0) {
        print_version(stdout);
        return JEPA_EXIT_OK;
    }
    if (strcmp(cmd, "train") == 0) return cmd_train(argc - 2, argv + 2, argc, argv);
    if (strcmp(cmd, "config") == 0) return cmd_config(argc - 2, argv + 2);
    die_input("unknown command '%s' (commands: train, config; see jepa --help)", cmd);
}
