#!/usr/bin/env python3
# The criteria a training run of configs/tiny.yaml meets (tests/test_train.sh on the CPU, tests/test_gpu_train.sh on
# the GPU): one record per step with every field, the loss falls to under half its start, the target features do
# not collapse, every loss is finite. Usage: check_train_metrics.py METRICS.jsonl LABEL STEPS; PASS/FAIL lines.
import json, math, sys

path, label, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = [json.loads(line) for line in open(path)]
def check(name, ok, detail):
    print(("PASS " if ok else "FAIL ") + label + ": " + name + ("" if ok else ": " + detail))
check("one metrics record per step", len(rows) == steps, f"{len(rows)} records, {steps} expected")
if not rows:
    sys.exit(0)
first = sum(r["loss"] for r in rows[:10]) / len(rows[:10])
last = sum(r["loss"] for r in rows[-50:]) / len(rows[-50:])
check("loss falls to under half its start", last < 0.5 * first, f"first ten {first:.4f}, last fifty {last:.4f}")
# Collapse signal: the per-dimension std across tokens of the normalised target features. A collapsed encoder maps
# every token to the same vector, driving it to 0. It starts near 0.53 and healthy tiny runs stay above 0.25
# (measured, seed 0); 0.15 is well below that and well above collapse.
low = min(r["target_std"] for r in rows)
check("target features do not collapse (min target std > 0.15)", low > 0.15, f"min {low:.4f}")
bad = [r["step"] for r in rows if not math.isfinite(r["loss"])]
check("every loss is finite", not bad, f"steps {bad[:5]}")
keys = {"loss", "loss_per_mask", "lr", "wd", "ema_momentum", "grad_norm_encoder", "grad_norm_predictor",
        "tokens_context", "tokens_target", "target_std", "clips_per_s", "data_wait_s", "mem_peak_gib"}
check("metrics records carry every field", keys <= set(rows[0]), f"missing {keys - set(rows[0])}")
# The backend's allocations: the model's buffers at least (positive), the same figure on every step once the
# arena and the input buffers exist (nothing in a step allocates on the CPU; on the GPU only scratch grows).
peaks = [r.get("mem_peak_gib", 0) for r in rows]
check("peak memory logged, positive and never falling", peaks[0] > 0 and all(b >= a for a, b in zip(peaks, peaks[1:])),
      f"first {peaks[0]}, min {min(peaks)}")
check("two loss values per record (one per mask generator)", len(rows[0]["loss_per_mask"]) == 2,
      str(rows[0]["loss_per_mask"]))
print(f"     (loss first ten {first:.4f}, last fifty {last:.4f}; min target std {low:.4f}; "
      f"{sum(r['clips_per_s'] for r in rows[-50:]) / len(rows[-50:]):.0f} clips/s)")
