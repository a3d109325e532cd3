// main.c: the `jepa` command: subcommands, --help on each, exit codes 0 ok, 1 internal error, 2 bad input.
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "config.h"
#include "eval.h"
#include "export.h"
#include "backend_cuda.h"
#include "bench.h"
#include "checkpoint.h"
#include "provenance.h"
#include "tools.h"
#include "train.h"
#include "model_ac.h"
#include "plan.h"

static const char *MAIN_HELP =
    "usage: jepa <command> [options]\n"
    "\n"
    "JEPA video world models (V-JEPA) trained in C.\n"
    "\n"
    "commands:\n"
    "  train CONFIG [key=value ...]   train from a YAML config (see `jepa train --help`)\n"
    "  config --doc                   every config key: type, default, range, meaning\n"
    "  data synth|info|convert ...    make and check HDF5 clip stores (see `jepa data --help`)\n"
    "  bench TARGET [options]         kernels, attention, layernorm, ema, adamw, gemm (GPU); step CONFIG; data FILE...\n"
    "                                 timed against measured ceilings and peer figures (see `jepa bench --help`)\n"
    "  export CKPT -o FILE            weights under the official V-JEPA names (see `jepa export --help`)\n"
    "  checkpoint verify DIR...       check each checkpoint folder's manifest, sizes, hashes and headers\n"
    "  plan CONFIG --checkpoint DIR   plan in a built-in world with an action-conditioned model (docs/world-models.md)\n"
    "  eval probe|surprise ...        probe frozen features; surprise at impossible events (see `jepa eval --help`)\n"
    "  embed --checkpoint DIR ...     frozen features of a store's clips to HDF5 (see `jepa embed --help`)\n"
    "\n"
    "options:\n"
    "  --version                      version, commit, build flags and library versions\n"
    "  --devices                      the GPUs this build can use (one line each), or why there are none\n"
    "  --help                         this text\n"
    "\n"
    "exit codes: 0 ok, 1 internal error, 2 bad input (config, arguments, files), 3 preempted (train)\n";

static const char *TRAIN_HELP =
    "usage: jepa train CONFIG.yaml [section.key=value ...] [--dry-run]\n"
    "\n"
    "Trains V-JEPA from CONFIG.yaml. Overrides use the YAML key path, e.g.\n"
    "  optimization.lr=1e-3   mask.0.num_blocks=4   optimization.ema=[0.996,1.0]\n"
    "A run folder logging.folder/logging.write_tag (suffixed -2, -3... if taken) receives the resolved\n"
    "config.yaml, provenance.json, train.log, metrics.jsonl (one JSON record per step) and checkpoints/.\n"
    "meta.resume=auto (the default) continues the run from its folder's newest checkpoint that verifies\n"
    "(a finished run has nothing left to do); never starts a new folder; must fails without a checkpoint.\n"
    "\n"
    "Preemption: SIGTERM, SIGUSR1 or SIGINT finishes the step in flight, writes a checkpoint and exits 3;\n"
    "run the same command again to resume. A second SIGINT stops at once (the checkpoint writer is atomic).\n"
    "\n"
    "exit codes: 0 done, 1 internal error (or a non-finite loss), 2 bad input, 3 preempted: checkpoint written,\n"
    "resume with the same command\n"
    "\n"
    "options:\n"
    "  --dry-run   print parameters per module, FLOPs per step and the memory estimate, then exit\n"
    "  --help      this text\n";

static const char *CONFIG_HELP =
    "usage: jepa config --doc\n"
    "       jepa config --resolve CONFIG.yaml [section.key=value ...]\n"
    "\n"
    "--doc prints every configuration key with its type, default, valid range and a one-line description.\n"
    "--resolve prints the resolved config (defaults, file, overrides) as a run folder's config.yaml holds it.\n";

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
    if (strcmp(cfg.ac.kind, "ac") == 0) return ac_train(&cfg, command);  // docs/world-models.md
    return train_run(&cfg, command);
}

static const char *EXPORT_HELP =
    "usage: jepa export CKPT -o FILE.safetensors [--what target|encoder|predictor]\n"
    "\n"
    "Writes one module of a checkpoint under the official V-JEPA state_dict names and layouts (VisionTransformer for\n"
    "target and encoder, VisionTransformerPredictor for predictor; Conv3d patch weight, fused qkv, the fixed sincos\n"
    "pos_embed / predictor_pos_embed included; none for V-JEPA 2's model.pos_embed: rope3d), so that in PyTorch\n"
    "  model.load_state_dict(safetensors.torch.load_file(FILE), strict=True)\n"
    "loads it into the official class built with the same sizes. CKPT is a checkpoint folder\n"
    "(RUN/checkpoints/step_000123) or a run folder (its newest checkpoint that verifies). docs/checkpoints.md.\n"
    "\n"
    "options:\n"
    "  -o FILE     the safetensors file to write (replaced atomically)\n"
    "  --what W    target (default: the EMA target encoder, what V-JEPA evaluates), encoder or predictor\n"
    "  --help      this text\n";

static int cmd_export(int argc, char **argv) {
    if (wants_help(argc, argv)) {
        fputs(EXPORT_HELP, stdout);
        return JEPA_EXIT_OK;
    }
    const char *ckpt = NULL, *out = NULL;
    ExportWhat what = EXPORT_TARGET;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "-o") == 0 || strcmp(argv[i], "--what") == 0) {
            if (i + 1 == argc) die_input("export: %s needs a value (see jepa export --help)", argv[i]);
            if (argv[i][1] == 'o') out = argv[++i];
            else if (export_what_parse(argv[++i], &what) != 0)
                die_input("export: --what: expected target, encoder or predictor, got '%s'", argv[i]);
        } else if (argv[i][0] == '-') {
            die_input("export: unknown option '%s' (see jepa export --help)", argv[i]);
        } else if (!ckpt) {
            ckpt = argv[i];
        } else {
            die_input("export: a second checkpoint '%s' after '%s'", argv[i], ckpt);
        }
    }
    if (!ckpt || !out) die_input("export: expected CKPT and -o FILE.safetensors (see jepa export --help)");
    export_checkpoint(ckpt, out, what);
    return JEPA_EXIT_OK;
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
    if (argc >= 2 && strcmp(argv[0], "--resolve") == 0) {
        Config cfg;
        config_load(&cfg, argv[1], argc - 2, argv + 2);
        config_validate(&cfg);
        config_write_yaml(&cfg, stdout);
        return JEPA_EXIT_OK;
    }
    die_input("config: expected --doc or --resolve CONFIG.yaml (see jepa config --help)");
}

// OpenMP threads that spin after each parallel region fight OpenBLAS's threads for the cores between ops (measured on
// 2 cores: the tiny config ran 2.4x slower). libgomp reads OMP_WAIT_POLICY once at start-up, so set it and start
// again, unless the user chose a policy.
static void prefer_passive_openmp(char **argv) {
    if (getenv("OMP_WAIT_POLICY")) return;
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv);  // returns only on failure: then run as we are
}

// `jepa checkpoint verify DIR...`: one line per folder, "DIR: ok" or why not; exit 0 when every one verifies, else 2.
static int cmd_checkpoint(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[0], "verify") != 0)
        die_input("checkpoint: expected `jepa checkpoint verify DIR...`");
    int bad = 0;
    for (int i = 1; i < argc; i++) {
        ErrorText err;
        if (checkpoint_verify(argv[i], &err) == 0) printf("%s: ok\n", argv[i]);
        else printf("%s: %s\n", argv[i], err.text), bad++;
    }
    return bad ? JEPA_EXIT_BAD_INPUT : JEPA_EXIT_OK;
}

// `jepa --devices`: "cuda:N <description>" per usable GPU, else "no GPU: <why>". Exit 0 either way (scripts grep).
static int print_devices(FILE *out) {
    char why[256], line[512];
    const int n = cuda_device_count(why, sizeof why);
    if (n == 0) fprintf(out, "no GPU: %s\n", why);
    for (int i = 0; i < n; i++) {
        backend_cuda_describe(i, line, sizeof line);
        fprintf(out, "cuda:%d %s\n", i, line);
    }
    return JEPA_EXIT_OK;
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
    if (strcmp(cmd, "--devices") == 0) return print_devices(stdout);
    if (strcmp(cmd, "--version") == 0) {
        print_version(stdout);
        return JEPA_EXIT_OK;
    }
    if (strcmp(cmd, "train") == 0) return cmd_train(argc - 2, argv + 2, argc, argv);
    if (strcmp(cmd, "config") == 0) return cmd_config(argc - 2, argv + 2);
    if (strcmp(cmd, "export") == 0) return cmd_export(argc - 2, argv + 2);
    if (strcmp(cmd, "data") == 0) return data_command(argc - 2, argv + 2);
    if (strcmp(cmd, "bench") == 0) return bench_command(argc - 2, argv + 2);
    if (strcmp(cmd, "checkpoint") == 0) return cmd_checkpoint(argc - 2, argv + 2);
    if (strcmp(cmd, "eval") == 0) return eval_command(argc - 2, argv + 2);
    if (strcmp(cmd, "plan") == 0) return plan_command(argc - 2, argv + 2);
    if (strcmp(cmd, "embed") == 0) return embed_command(argc - 2, argv + 2);
    die_input("unknown command '%s' (commands: train, config, export, data, bench, checkpoint, eval, embed; see jepa --help)", cmd);
}
