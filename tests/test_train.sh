#!/usr/bin/env bash
# `make run`'s job: configs/tiny.yaml trained to completion on the CPU. The loss must fall and the target features
# must not collapse.
set -u
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
out=$(build/jepa train configs/tiny.yaml logging.folder=$tmp logging.write_tag=tiny 2>&1); rc=$?
if [ "$rc" -ne 0 ]; then echo "FAIL train: tiny run exited $rc: $(tail -3 <<< "$out")"; exit 1; fi
echo "PASS train: configs/tiny.yaml trains to completion"
tail -1 <<< "$out" | sed 's/^/     /'
# Measured (seed 0): first ten steps 0.78, last fifty 0.11; target std stays above 0.25.
python3 tests/check_train_metrics.py "$tmp/tiny/metrics.jsonl" train 500
