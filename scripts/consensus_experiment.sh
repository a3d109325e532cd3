#!/usr/bin/env bash
# consensus_experiment.sh: the measurement of docs/consensus.md (issue 14, item 4). 4 sites x 1 CPU rank (mpirun),
# each site with its own, deliberately different balls store; on the same compute budget (the same inner steps and
# batch per site) trains allreduce (the pooled-data baseline: every rank reads its site's store, gradients averaged
# over all) and consensus (outer, DiLoCo) with dist.local_steps in $LOCAL, probes every final model on every site's
# held-out store (and a random-init encoder), then plots and tabulates (scripts/plot_consensus.py).
#
#   bash scripts/consensus_experiment.sh            # OUT=/tmp/consensus_exp; ~35 min on 2 shared cores
#   OUTER_LR=1 OUTER_MOM=0 TAG=lr1 LOCAL="1 10" bash scripts/consensus_experiment.sh   # other outer settings
#
# Every stage skips what is already there (a rerun resumes); the binary is copied into OUT first so that a rebuild
# of build/jepa during the runs does not change them.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/consensus_exp}
STEPS=${STEPS:-600}                 # inner steps per site: 3 exchanges at local_steps 200
LOCAL=${LOCAL:-"1 10 50 200"}
OUTER_LR=${OUTER_LR:-0.7} OUTER_MOM=${OUTER_MOM:-0.9}  # DiLoCo's
TAG=${TAG:-}                        # suffix of the consensus runs' names (other outer settings)
PROBE_CLIPS=${PROBE_CLIPS:-256} PROBE_EPOCHS=${PROBE_EPOCHS:-200}
PY=${PY:-build/venv/bin/python}
[ -x "$PY" ] || PY=python3
mkdir -p "$OUT/data" "$OUT/probe"
[ -x "$OUT/jepa" ] || cp build/jepa "$OUT/jepa"
J="nice -n 5 $OUT/jepa"
MPI="nice -n 5 mpirun --allow-run-as-root --oversubscribe --bind-to none -np 4"
date -u +"start %FT%TZ commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)" | tee -a "$OUT/log.txt"
T0=$(date +%s)

# (a) Four sites whose videos differ: ball count, palette size, speed and radius ranges, seed. Held-out store per
# site: the site's palette, speeds and radii with one ball (positions are only probeable on a one-ball store:
# ball order is arbitrary with respect to appearance, docs/world-models.md "Probing").
SITE_ARGS=("--balls 1 --colours 2 --speed 0.5,1.5 --radius 4,5"
           "--balls 2 --colours 3 --speed 1,2 --radius 3,4"
           "--balls 3 --colours 6 --speed 1.5,2.5 --radius 2.5,3.5"
           "--balls 4 --colours 4 --speed 2,3.5 --radius 2,3")
paths=()
for s in 0 1 2 3; do
    a=${SITE_ARGS[$s]}
    [ -f "$OUT/data/site$s.h5" ] ||
        $J data synth --world balls --size 32 --frames 8 --clips 1024 --seed $((1000 + s)) $a -o "$OUT/data/site$s.h5" > /dev/null
    [ -f "$OUT/data/heldout$s.h5" ] ||
        $J data synth --world balls --size 32 --frames 8 --clips $PROBE_CLIPS --seed $((2000 + s)) \
            ${a/--balls [0-9]/--balls 1} -o "$OUT/data/heldout$s.h5" > /dev/null
    paths+=("$OUT/data/site$s.h5")
done
site_paths="data.site_paths=[$(IFS=,; echo "${paths[*]}")]"

# (b) configs/balls_small.yaml at batch 4 per site, STEPS steps (ipe 30 x 20 epochs: the warmup and cosine of the
# recipe over STEPS), one thread per rank; a slow link between sites (100 Mbit/s, 50 ms) for sim_exchange_s.
common=(meta.threads=1 data.batch_size=4 optimization.ipe=$((STEPS / 20)) optimization.epochs=20
        logging.folder="$OUT/runs" logging.log_every=50 logging.checkpoint_every=0 meta.resume=auto
        dist.sites=4 "$site_paths" data.read_threads=1 dist.link_gbps=0.1 dist.link_latency_ms=50)
train() {  # name, overrides
    local name=$1; shift
    if [ -d "$OUT/runs/$name/checkpoints" ] && grep -q '"step":'"$STEPS"',' "$OUT/runs/$name/metrics.jsonl" 2>/dev/null; then
        return
    fi
    local t=$(date +%s)
    $MPI "$OUT/jepa" train configs/balls_small.yaml "${common[@]}" logging.write_tag="$name" "$@" \
        > "$OUT/$name.out" 2>&1 || { echo "FAILED: $name (see $OUT/$name.out)"; tail -5 "$OUT/$name.out"; exit 1; }
    echo "$name: $(( $(date +%s) - t )) s" | tee -a "$OUT/log.txt"
}
train allreduce dist.sync=allreduce
runs=(allreduce)
for h in $LOCAL; do
    train "outer_h$h$TAG" dist.sync=consensus dist.consensus=outer dist.local_steps=$h dist.outer_lr=$OUTER_LR \
        dist.outer_momentum=$OUTER_MOM
    runs+=("outer_h$h$TAG")
done

# (c) Probes of every final model on every site's held-out store: attentive and mean pooling, the context encoder
# (at the last step, an exchange step, site 0's context encoder is the consensus model itself; its EMA target
# follows site 0's own weights, so it is not) and, once per store and pooling, a random-init encoder. Two at a time.
jobs=()
for r in "${runs[@]}"; do
    for s in 0 1 2 3; do
        for pool in attentive mean; do
            o="$OUT/probe/${r}_site${s}_$pool.json"
            [ -f "$o" ] && continue
            base=--no-baseline
            [ "$r" = allreduce ] && base=
            jobs+=("$J eval probe --checkpoint $OUT/runs/$r --data $OUT/data/heldout$s.h5 --clips $PROBE_CLIPS \
--epochs $PROBE_EPOCHS --encoder context --pool $pool $base meta.threads=1 -o $o > $o.log 2>&1")
        done
    done
done
if [ ${#jobs[@]} -gt 0 ]; then
    printf '%s\n' "${jobs[@]}" | xargs -P 2 -I{} bash -c '{}'
fi

# (d, e) Figures and table.
"$PY" scripts/plot_consensus.py "$OUT" --runs "${runs[@]}" --out-dir "${FIG_DIR:-docs/img}" \
    --table "$OUT/table.md" --json "$OUT/table.json"
echo "total $(( $(date +%s) - T0 )) s; $(date -u +%FT%TZ)" | tee -a "$OUT/log.txt"
