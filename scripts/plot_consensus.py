#!/usr/bin/env python3
"""plot_consensus.py: figures and table of scripts/consensus_experiment.sh (docs/consensus.md).

    python scripts/plot_consensus.py OUT --runs allreduce outer_h1 ... [--out-dir docs/img] [--table T.md] [--json T.json]

Reads OUT/runs/RUN/metrics.jsonl (loss_sites: the mean loss over sites; exchange_bytes and sim_exchange_s: what one
site sent and its time over the link model) and OUT/probe/RUN_siteS_POOL.json (jepa eval probe). Simulated
wall-clock = steps x the compute time of one step + the sum of sim_exchange_s. The compute time of a step is the
median step_s over every run (the same model and batch on every site: the runs differ only in the exchange, and the
2 shared cores make one run's own timing noisy); the exchange itself is not in it, it is in sim_exchange_s.
"""
import argparse
import json
import os
import sys

import numpy as np


def metrics(path):
    rows = [json.loads(l) for l in open(path)]
    return [r for r in rows if "loss_sites" in r and r.get("kind") is None]


def smooth(y, k):
    y = np.asarray(y, dtype=float)
    if len(y) < k:
        return y
    c = np.cumsum(np.insert(y, 0, 0.0))
    out = np.empty_like(y)
    out[k - 1:] = (c[k:] - c[:-k]) / k
    out[:k - 1] = c[1:k] / np.arange(1, k)  # the mean so far before a full window
    return out


def probe(out, run, site, pool):
    p = os.path.join(out, "probe", f"{run}_site{site}_{pool}.json")
    if not os.path.exists(p):
        return None
    return json.load(open(p))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--runs", nargs="+", required=True)
    ap.add_argument("--out-dir", default="docs/img")
    ap.add_argument("--table")
    ap.add_argument("--json")
    ap.add_argument("--smooth", type=int, default=25, help="moving-average window of the plotted loss, steps")
    ap.add_argument("--sites", type=int, default=4)
    a = ap.parse_args()
    runs = {r: metrics(os.path.join(a.out, "runs", r, "metrics.jsonl")) for r in a.runs}
    for r, rows in runs.items():
        if not rows:
            sys.exit(f"plot_consensus: {a.out}/runs/{r}/metrics.jsonl has no steps with loss_sites")
    step_s = float(np.median(np.concatenate([[x["step_s"] for x in rows] for rows in runs.values()])))

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(a.out_dir, exist_ok=True)
    fig, ax = plt.subplots(1, 2, figsize=(12, 4.5))
    summary = {"compute_step_s": step_s, "runs": {}}
    base_bytes = None
    for r, rows in runs.items():
        steps = np.array([x["step"] for x in rows])
        loss = smooth([x["loss_sites"] if x["loss_sites"] is not None else np.nan for x in rows], a.smooth)
        sent = np.cumsum([x["exchange_bytes"] for x in rows])
        wall = steps * step_s + np.cumsum([x["sim_exchange_s"] for x in rows])
        # allreduce on top in black; runs named without _avg (DiLoCo's outer settings) dashed
        style = dict(color="black", lw=2.5, zorder=5) if r == "allreduce" else dict(ls="-" if "avg" in r else "--")
        ax[0].plot(wall, loss, label=r, **style)
        sending = sent > 0  # before a run's first exchange nothing was sent: no point on a log axis
        ax[1].plot(sent[sending], loss[sending], label=r, marker="o" if sending.sum() < 50 else None, ms=4, **style)
        if r == "allreduce":
            base_bytes = sent[-1]
        tail = [x["loss_sites"] for x in rows[-50:] if x["loss_sites"] is not None]
        summary["runs"][r] = {"steps": int(steps[-1]), "bytes_per_site": float(sent[-1]),
                              "sim_wall_s": float(wall[-1]), "final_loss_sites": float(np.mean(tail)),
                              "exchanges": int(sum(1 for x in rows if x["exchange_bytes"] > 0))}
    ax[0].set_xlabel(f"simulated wall-clock, s (compute {step_s:.3f} s/step + link model)")
    ax[1].set_xlabel("bytes sent per site (cumulative)")
    ax[1].set_xscale("log")
    for x in ax:
        x.set_ylabel(f"loss, mean over sites ({a.smooth}-step moving average)")
        x.grid(alpha=0.3)
        x.legend()
    fig.suptitle("consensus vs allreduce: 4 sites with different balls data")
    fig.tight_layout()
    fig.savefig(os.path.join(a.out_dir, "consensus_loss.png"), dpi=110)

    # Probes: R^2 per site, run and pooling; the random-init encoder from the allreduce run's probes.
    pools = ("attentive", "mean")
    rows_md = []
    head = "| model | bytes/site | x fewer | final loss | sim wall s |"
    for s in range(a.sites):
        head += f" s{s} pos att/mean | s{s} vel att/mean |"
    head += " gap att pos/vel | gap mean pos/vel |"
    rows_md.append(head)
    rows_md.append("|" + "---|" * (head.count("|") - 1))
    names = list(runs) + ["random_init"]
    for r in names:
        res = {}
        for s in range(a.sites):
            for pool in pools:
                src = "allreduce" if r == "random_init" else r
                d = probe(a.out, src, s, pool)
                key = "random_init" if r == "random_init" else "trained"
                if d and key in d:
                    res[(s, pool)] = (d[key]["position_r2"], d[key]["velocity_r2"])
        if r in summary["runs"]:
            sm = summary["runs"][r]
            line = (f"| {r} | {sm['bytes_per_site']:.3g} | "
                    f"{base_bytes / sm['bytes_per_site']:.0f} | {sm['final_loss_sites']:.4f} | {sm['sim_wall_s']:.0f} |")
        else:
            sm = summary["runs"].setdefault(r, {})
            line = f"| {r} | - | - | - | - |"
        sm["probe"] = {f"site{s}_{pool}": {"position_r2": v[0], "velocity_r2": v[1]} for (s, pool), v in res.items()}
        for s in range(a.sites):
            for k in (0, 1):
                cells = [res.get((s, pool)) for pool in pools]
                line += " " + "/".join("-" if c is None or c[k] is None else f"{c[k]:.3f}" for c in cells) + " |"
        # the largest drop below allreduce over the sites (positive: worse than allreduce), per pooling and kind
        sm["max_gap_vs_allreduce"] = {}
        for pool in pools:
            gaps = [[], []]
            for (s, pl), v in res.items():
                ref = summary["runs"]["allreduce"].get("probe", {}).get(f"site{s}_{pl}")
                if r != "allreduce" and pl == pool and ref:
                    gaps[0].append(ref["position_r2"] - v[0])
                    gaps[1].append(ref["velocity_r2"] - v[1])
            sm["max_gap_vs_allreduce"][pool] = [max(g) if g else None for g in gaps]
            line += (" " + "/".join(f"{max(g):+.3f}" for g in gaps) + " |") if gaps[0] else " - |"
        rows_md.append(line)
    table = "\n".join(rows_md) + "\n"
    print(table)
    if a.table:
        open(a.table, "w").write(table)
    if a.json:
        json.dump(summary, open(a.json, "w"), indent=1)

    # Probe figure: position and velocity R^2 per site for every model, attentive (top) and mean-pooled (bottom).
    fig, ax = plt.subplots(2, 2, figsize=(13, 7.5))
    width = 0.8 / len(names)
    for row, pool in enumerate(pools):
        for i, r in enumerate(names):
            pr = summary["runs"][r].get("probe", {})
            for k, what in enumerate(("position_r2", "velocity_r2")):
                ys = [pr.get(f"site{s}_{pool}", {}).get(what, np.nan) for s in range(a.sites)]
                ax[row][k].bar(np.arange(a.sites) + i * width, [np.nan if y is None else y for y in ys], width,
                               label=r)
        for k, what in enumerate(("position R^2", "velocity R^2")):
            x = ax[row][k]
            x.set_xticks(np.arange(a.sites) + 0.4 - width / 2)
            x.set_xticklabels([f"site {s} held-out" for s in range(a.sites)])
            x.set_ylabel(f"{what} ({pool} probe)")
            x.set_ylim(-0.2 if pool == "mean" else 0, 1)
            x.grid(alpha=0.3, axis="y")
    ax[0][1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(a.out_dir, "consensus_probe.png"), dpi=110)


if __name__ == "__main__":
    main()
