#!/usr/bin/env bash
# Reproduce models/default: generate the refined k=4 dataset, train the best candidate (checkpoints
# and its run record run.json), export it with its card (metrics, times and τ from the record and
# a fresh T_surrogate) and run the breakeven report. `make model` runs this; knobs via environment:
#   N (samples, 8000), SEED (2026), RANKS (MPI ranks, 2), EPOCHS (60), CONFIG (configs/res-unet.yaml),
#   DATA (data/default_k4_n$N.h5), OUT (models/default), EXTRA (more `microstrain train` options,
#   e.g. "--config configs/gpu.yaml" on a GPU machine)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
N=${N:-8000}
SEED=${SEED:-2026}
RANKS=${RANKS:-2}
EPOCHS=${EPOCHS:-60}
CONFIG=${CONFIG:-configs/res-unet.yaml}
DATA=${DATA:-data/default_k4_n${N}.h5}
OUT=${OUT:-models/default}
EXTRA=${EXTRA:-}
mkdir -p "$(dirname "$DATA")" runs

echo "== 1/4 generate $N refined k=4 samples -> $DATA ($RANKS MPI ranks; resumes if interrupted)"
OMP_NUM_THREADS=1 "$BIN/mpiexec" -n "$RANKS" "$BIN/microstrain" generate -n "$N" -o "$DATA" \
  --seed "$SEED" --no-progress

echo "== 2/4 train $CONFIG for $EPOCHS epochs (checkpoints + run.json in runs/default/version_<i>/)"
log=runs/default-train.log
# shellcheck disable=SC2086
"$BIN/microstrain" train --config "$CONFIG" $EXTRA --data.path "$DATA" --name default \
  --trainer.max_epochs "$EPOCHS" --trainer.enable_progress_bar false 2>&1 | tee "$log"
ckpt=$(sed -n 's/^best checkpoint: //p' "$log" | tail -n 1)
[ -f "$ckpt" ] || { echo "error: no best checkpoint reported in $log" >&2; exit 1; }

echo "== 3/4 export $ckpt -> $OUT (reads the checkpoint and its run.json; measures T_surrogate, τ)"
"$BIN/microstrain" export "$ckpt" -o "$OUT" --name default --force

echo "== 4/4 breakeven report"
"$BIN/microstrain" tau "$OUT"
echo "done: $OUT (model.onnx, card.json, tau.md, tau.png)"
