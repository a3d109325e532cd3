#!/usr/bin/env python3
"""Plots of a jepa.c run or evaluation, as PNG (matplotlib; build/venv has it: bash scripts/python_env.sh).

  plot_run.py RUN_DIR [-o FILE.png]            loss (and per mask), learning rate, throughput, target std, and the
                                               periodic probe (eval.every) from RUN_DIR/metrics.jsonl
  plot_run.py eval_probe.json [-o FILE.png]    predicted vs true per state column, trained and random-init encoder
  plot_run.py eval_surprise.json [-o FILE.png] pairwise accuracy per violation (trained, random init, pixels) and
                                               window surprise over time of the first pairs
The PNG goes beside the input (RUN_DIR/run.png, eval_probe.png, ...) unless -o names it.
"""
import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_run(run_dir, out):
    steps, evals = [], []
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            (evals if r.get("kind") == "eval" else steps).append(r)
    if not steps:
        sys.exit(f"plot_run: {run_dir}/metrics.jsonl has no step records")
    x = [r["step"] for r in steps]
    panels = 5 if evals else 4
    fig, ax = plt.subplots(panels, 1, figsize=(8, 2.4 * panels), sharex=True)
    ax[0].plot(x, [r["loss"] for r in steps], label="loss", lw=1.2)
    for g in range(len(steps[0].get("loss_per_mask", []))):
        ax[0].plot(x, [r["loss_per_mask"][g] for r in steps], lw=0.6, alpha=0.7, label=f"mask {g}")
    ax[0].set_yscale("log")
    ax[0].set_ylabel("L1 loss")
    ax[0].legend(fontsize=7)
    ax[1].plot(x, [r["lr"] for r in steps])
    ax[1].set_ylabel("learning rate")
    ax[2].plot(x, [r["clips_per_s"] for r in steps], lw=0.6)
    ax[2].set_ylabel("clips / s")
    ax[3].plot(x, [r["target_std"] for r in steps])
    ax[3].set_ylabel("target std")
    if evals:
        ex = [r["step"] for r in evals]
        ax[4].plot(ex, [r["probe_position_r2"] for r in evals], "o-", label="position")
        ax[4].plot(ex, [r["probe_velocity_r2"] for r in evals], "o-", label="velocity")
        ax[4].set_ylabel("probe R^2")
        ax[4].legend(fontsize=7)
    ax[-1].set_xlabel("step")
    fig.suptitle(os.path.basename(os.path.normpath(run_dir)))
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def plot_probe(res, out):
    names = list(res["trained"]["r2"].keys())
    rows = [k for k in ("trained", "random_init") if k in res]
    cols = min(len(names), 8)
    fig, ax = plt.subplots(len(rows), cols, figsize=(2.6 * cols, 2.6 * len(rows)), squeeze=False)
    for i, key in enumerate(rows):
        pred, true = res[key]["predicted"], res[key]["true"]
        for j in range(cols):
            a = ax[i][j]
            t = [row[j] for row in true]
            a.scatter(t, [row[j] for row in pred], s=3, alpha=0.4)
            lo, hi = min(t), max(t)
            a.plot([lo, hi], [lo, hi], "k--", lw=0.7)
            a.set_title(f"{key}: {names[j]}  R^2 {res[key]['r2'][names[j]]:.2f}", fontsize=8)
            a.set_xlabel("true", fontsize=7)
            a.set_ylabel("predicted", fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def plot_surprise(res, out):
    viol = list(res["violations"].keys())
    scorers = [k for k in ("trained", "random_init", "pixels") if k in res["violations"][viol[0]]]
    fig, ax = plt.subplots(2, 1, figsize=(9, 7))
    width = 0.8 / len(scorers)
    for k, s in enumerate(scorers):
        ax[0].bar([i + k * width for i in range(len(viol))], [res["violations"][v][s]["pairwise_accuracy"] for v in viol],
                  width, label=s)
    ax[0].axhline(0.5, color="k", lw=0.7, ls="--")
    ax[0].set_xticks([i + 0.4 - width / 2 for i in range(len(viol))])
    ax[0].set_xticklabels(viol)
    ax[0].set_ylabel("pairwise accuracy")
    ax[0].set_ylim(0, 1.05)
    ax[0].legend(fontsize=7)
    # Window surprise (trained model) of the first pair of each violation, each curve divided by its lawful twin's
    # mean so the violations share one axis; the window's first target frame on x.
    ctx, step = res["context_frames"], res["window_step"]
    for v in viol:
        c = res["violations"][v]["trained"]["curves"][0]
        base = sum(c["possible"]) / len(c["possible"]) or 1.0
        x = [ctx + w * step for w in range(len(c["possible"]))]
        line, = ax[1].plot(x, [y / base for y in c["impossible"]], "o-", label=f"{v} (breaks at frame {c['violation_frame']})")
        ax[1].plot(x, [y / base for y in c["possible"]], ":", color=line.get_color())
    ax[1].set_xlabel("first predicted frame of the window")
    ax[1].set_ylabel("surprise / lawful mean")
    ax[1].set_title("solid: impossible twin, dotted: lawful clip (first pair of each violation)", fontsize=9)
    ax[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", help="a run folder, or a jepa eval probe|surprise JSON result")
    p.add_argument("-o", "--out", help="the PNG to write")
    a = p.parse_args()
    if os.path.isdir(a.path):
        out = a.out or os.path.join(a.path, "run.png")
        plot_run(a.path, out)
    else:
        with open(a.path) as f:
            res = json.load(f)
        out = a.out or os.path.splitext(a.path)[0] + ".png"
        kind = res.get("kind")
        if kind == "probe":
            plot_probe(res, out)
        elif kind == "surprise":
            plot_surprise(res, out)
        else:
            sys.exit(f"plot_run: {a.path}: not a run folder nor a jepa eval result (kind {kind!r})")
    print(out)


if __name__ == "__main__":
    main()
