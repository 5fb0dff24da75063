#!/usr/bin/env bash
# Reproduce models/default: generate the refined k=4 training data (broad circles, the mixture
# preset of circles and ellipses, clustered or not, and densely packed touching fibers of three
# shapes), the held-out files and the evaluation families; train configs/default.yaml on the
# three training files, then continue from its best checkpoint with configs/default-finetune.yaml,
# from that run's with configs/default-finetune2.yaml and from that one's with
# configs/default-finetune3.yaml (checkpoints and run.json), export it with its card (metrics,
# times and τ from the record, a fresh T_surrogate, the SPEC §9 measures on every held-out file
# and family) and run the breakeven report. `make model` runs this; knobs via environment:
#   N_CIRCLES (16000), N_MIXTURE (9664), N_DENSE (6000; 0: no dense file), N_FAMILY (128 per
#   family), N_HELDOUT (256), RANKS (2), EPOCHS (the config's), CONFIG (configs/default.yaml),
#   DATA (data), OUT (models/default), NAME (default: the run and card name),
#   EXTRA (more `microstrain train` options, e.g. "--config configs/gpu.yaml" on a GPU machine),
#   FINETUNE ("configs/default-finetune.yaml configs/default-finetune2.yaml
#   configs/default-finetune3.yaml": configs separated by spaces, each layered on CONFIG for one
#   more run that starts from the previous run's best checkpoint; the first run is
#   runs/NAME-start, the middle ones runs/NAME-stage2, -stage3, ..., the last runs/NAME; empty:
#   one run)
#   models/accurate (the same network with GroupNorm and GELU, four stages): NAME=accurate
#   OUT=models/accurate EXTRA="--model.arch_kwargs.norm group --model.arch_kwargs.activation gelu"
#   FINETUNE="configs/accurate-finetune.yaml configs/accurate-finetune2.yaml
#   configs/accurate-finetune3.yaml"
#   models/periodic (SPEC §11, `make model MODEL=periodic`): MODEL=periodic runs its own steps
#   below (periodic k=4 plane-strain training files of the same three distributions, the
#   periodic families and a 64 x 64 file, configs/periodic.yaml, then each config of FINETUNE
#   from the previous run's best checkpoint; a config with data.split_prefix also trains on the
#   added files of DATA/periodic/more, six more files of the three distributions with new seeds,
#   named to sort after the first three, and one that names more2 on DATA/periodic/more2 too,
#   three files that sort after those); knobs: P_CIRCLES (1200), P_MIXTURE (1000),
#   P_DENSE (600), P_FAMILY (48), P_GRID64 (24), RANKS (1), DATA, OUT (models/periodic), NAME
#   (periodic), FINETUNE ("configs/periodic-finetune.yaml configs/periodic-finetune2.yaml
#   configs/periodic-finetune3.yaml configs/periodic-finetune4.yaml")
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
MODEL=${MODEL:-default}
if [ "$MODEL" = periodic ]; then
  P_CIRCLES=${P_CIRCLES:-1200}
  P_MIXTURE=${P_MIXTURE:-1000}
  P_DENSE=${P_DENSE:-600}
  P_FAMILY=${P_FAMILY:-48}
  P_GRID64=${P_GRID64:-24}
  RANKS=${RANKS:-1}
  P_DATA=${DATA:-data}/periodic
  OUT=${OUT:-models/periodic}
  NAME=${NAME:-periodic}
  FINETUNE=${FINETUNE-configs/periodic-finetune.yaml configs/periodic-finetune2.yaml configs/periodic-finetune3.yaml configs/periodic-finetune4.yaml}
  mkdir -p "$P_DATA/train" "$P_DATA/more" "$P_DATA/more2" "$P_DATA/families" "$P_DATA/grid64" runs
  pgen() {
    OMP_NUM_THREADS=1 "$BIN/mpiexec" -n "$RANKS" "$BIN/microstrain" generate --no-progress \
      --boundary periodic --plane strain "$@"
  }
  echo "== 1/5 generate the periodic training files (k = 4, plane strain, periodic geometry)"
  pgen -n "$P_CIRCLES" --seed 21 --fiber-fraction-min 0.05 --fiber-fraction-max 0.6 \
    --radius-min 0.03 --radius-max 0.15 -o "$P_DATA/train/train_circles.h5"
  pgen -n "$P_MIXTURE" --seed 22 --preset mixture -o "$P_DATA/train/train_mixture.h5"
  pgen -n "$P_DENSE" --seed 24 --fiber-fraction-min 0.45 --fiber-fraction-max 0.6 \
    --radius-min 0.03 --radius-max 0.1 --min-gap 0 --max-attempts 500 \
    --shapes circle,ellipse,polygon -o "$P_DATA/train/train_dense.h5"
  # the cells added for configs/periodic-finetune3.yaml (data.split_prefix 2800: the first
  # three files keep their split); their names sort after the first three's
  pcircles() {
    pgen --fiber-fraction-min 0.05 --fiber-fraction-max 0.6 --radius-min 0.03 --radius-max 0.15 "$@"
  }
  pdense() {
    pgen --fiber-fraction-min 0.45 --fiber-fraction-max 0.6 --radius-min 0.03 --radius-max 0.1 \
      --min-gap 0 --max-attempts 500 --shapes circle,ellipse,polygon "$@"
  }
  pcircles -n 1200 --seed 61 -o "$P_DATA/more/train_s61_circles.h5"
  pgen -n 1000 --seed 62 --preset mixture -o "$P_DATA/more/train_s62_mixture.h5"
  pdense -n 600 --seed 64 -o "$P_DATA/more/train_s64_dense.h5"
  pcircles -n 2400 --seed 71 -o "$P_DATA/more/train_s71_circles.h5"
  pgen -n 2000 --seed 72 --preset mixture -o "$P_DATA/more/train_s72_mixture.h5"
  pdense -n 1200 --seed 74 -o "$P_DATA/more/train_s74_dense.h5"
  # and those of configs/periodic-finetune4.yaml (split_prefix [2800, 11200])
  pcircles -n 4800 --seed 81 -o "$P_DATA/more2/train_s81_circles.h5"
  pgen -n 4000 --seed 82 --preset mixture -o "$P_DATA/more2/train_s82_mixture.h5"
  pdense -n 2400 --seed 84 -o "$P_DATA/more2/train_s84_dense.h5"
  echo "== 2/5 generate the periodic evaluation families and the 64 x 64 cells"
  pgen -n "$P_FAMILY" --family all -o "$P_DATA/families/"
  pgen -n "$P_GRID64" --seed 41 --grid 64 --preset mixture -o "$P_DATA/grid64/mixture64.h5"
  # the same distribution at 32 x 32: the 64 x 64 errors are compared with these
  pgen -n "$P_GRID64" --seed 41 --preset mixture -o "$P_DATA/grid64/mixture32.h5"
  echo "== 3/5 train configs/periodic.yaml (runs/$NAME-start/)${FINETUNE:+, then $FINETUNE}"
  ptrain() {  # run name, more options; the best checkpoint's path on stdout
    local run=$1 log=runs/$1-train.log
    shift
    "$BIN/microstrain" train --config configs/periodic.yaml --data.path "$P_DATA/train" \
      --name "$run" "$@" --trainer.enable_progress_bar false 2>&1 | tee "$log" >&2
    local ckpt
    ckpt=$(sed -n 's/^best checkpoint: //p' "$log" | tail -n 1)
    [ -f "$ckpt" ] || { echo "error: no best checkpoint reported in $log" >&2; exit 1; }
    echo "$ckpt"
  }
  ckpt=$(ptrain "$NAME-start")
  read -r -a pstages <<< "$FINETUNE"
  for i in "${!pstages[@]}"; do  # the middle runs NAME-stage2, ...; the last NAME
    run=$NAME
    [ "$i" -lt $((${#pstages[@]} - 1)) ] && run=$NAME-stage$((i + 2))
    more=()
    grep -q '^ *split_prefix:' "${pstages[$i]}" && more=(--data.path "[$P_DATA/train, $P_DATA/more]")
    grep -q '^ *path:.*more2' "${pstages[$i]}" &&
      more=(--data.path "[$P_DATA/train, $P_DATA/more, $P_DATA/more2]")
    ckpt=$(ptrain "$run" --config "${pstages[$i]}" --model.init_from "$ckpt" "${more[@]}")
  done
  echo "== 4/5 export $ckpt -> $OUT (§11 measures on each family, the 64 x 64 cells and their"
  echo "   32 x 32 twins)"
  judge=()
  for f in "$P_DATA"/families/*.h5 "$P_DATA"/grid64/*.h5; do judge+=(--judge-on "$f"); done
  "$BIN/microstrain" export "$ckpt" -o "$OUT" --name "$NAME" --force "${judge[@]}"
  echo "== 5/5 breakeven report"
  "$BIN/microstrain" tau "$OUT"
  echo "done: $OUT (model.onnx, card.json, weights.pt, tau.md, tau.png)"
  exit 0
fi
N_CIRCLES=${N_CIRCLES:-16000}
N_MIXTURE=${N_MIXTURE:-9664}
N_DENSE=${N_DENSE:-6000}
N_FAMILY=${N_FAMILY:-128}
N_HELDOUT=${N_HELDOUT:-256}
RANKS=${RANKS:-2}
EPOCHS=${EPOCHS:-}
CONFIG=${CONFIG:-configs/default.yaml}
DATA=${DATA:-data}
OUT=${OUT:-models/default}
NAME=${NAME:-default}
EXTRA=${EXTRA:-}
FINETUNE=${FINETUNE-configs/default-finetune.yaml configs/default-finetune2.yaml configs/default-finetune3.yaml}
mkdir -p "$DATA/train" "$DATA/families" runs
generate() { OMP_NUM_THREADS=1 "$BIN/mpiexec" -n "$RANKS" "$BIN/microstrain" generate --no-progress "$@"; }

echo "== 1/5 generate the training files ($RANKS MPI ranks; each resumes if interrupted)"
generate -n "$N_CIRCLES" --seed 11 --fiber-fraction-min 0.05 --fiber-fraction-max 0.6 \
  --radius-min 0.03 --radius-max 0.15 -o "$DATA/train/train_circles.h5"
generate -n "$N_MIXTURE" --seed 12 --preset mixture -o "$DATA/train/train_mixture.h5"
# touching fibers (no gap), the family the two files above cover worst (docs/training.md 11, 16)
if [ "$N_DENSE" -gt 0 ]; then
  generate -n "$N_DENSE" --seed 14 --fiber-fraction-min 0.45 --fiber-fraction-max 0.6 \
    --radius-min 0.03 --radius-max 0.1 --min-gap 0 --max-attempts 500 \
    --shapes circle,ellipse,polygon -o "$DATA/train/train_dense.h5"
fi

echo "== 2/5 generate the held-out files and the evaluation families"
generate -n "$N_HELDOUT" --seed 900000 -o "$DATA/heldout_circles.h5"
generate -n "$N_HELDOUT" --seed 13 --preset mixture -o "$DATA/heldout_mixture.h5"
generate -n "$N_FAMILY" --family all -o "$DATA/families/"

epochs=()
[ -n "$EPOCHS" ] && epochs=(--trainer.max_epochs "$EPOCHS")
train() {  # run name, then more `microstrain train` options; the log on stderr and in
  # runs/<run>-train.log, the best checkpoint's path on stdout
  local run=$1 log=runs/$1-train.log
  shift
  # shellcheck disable=SC2086
  "$BIN/microstrain" train --config "$CONFIG" $EXTRA --data.path "$DATA/train" --name "$run" \
    "$@" --trainer.enable_progress_bar false 2>&1 | tee "$log" >&2
  local ckpt
  ckpt=$(sed -n 's/^best checkpoint: //p' "$log" | tail -n 1)
  [ -f "$ckpt" ] || { echo "error: no best checkpoint reported in $log" >&2; exit 1; }
  echo "$ckpt"
}
if [ -n "$FINETUNE" ]; then
  read -r -a stages <<< "$FINETUNE"
  echo "== 3/5 train $CONFIG ${EPOCHS:+for $EPOCHS epochs }(runs/$NAME-start/), then continue from"
  echo "   the best checkpoint with each of: ${stages[*]} (the last run: runs/$NAME/;"
  echo "   logs in runs/<run>-train.log)"
  ckpt=$(train "$NAME-start" "${epochs[@]}")
  for i in "${!stages[@]}"; do
    run=$NAME
    [ "$i" -lt $((${#stages[@]} - 1)) ] && run=$NAME-stage$((i + 2))
    ckpt=$(train "$run" --config "${stages[$i]}" --model.init_from "$ckpt")
  done
else
  echo "== 3/5 train $CONFIG ${EPOCHS:+for $EPOCHS epochs }(runs/$NAME/; log in runs/$NAME-train.log)"
  ckpt=$(train "$NAME" "${epochs[@]}")
fi

echo "== 4/5 export $ckpt -> $OUT (checkpoint + run.json; T_surrogate, τ; §9 on held-out files;"
echo "   the error estimate: the mirror's disagreement of the halves, each trained by itself)"
judge=()
for f in "$DATA"/heldout_*.h5 "$DATA"/families/*.h5; do judge+=(--judge-on "$f"); done
"$BIN/microstrain" export "$ckpt" -o "$OUT" --name "$NAME" --force "${judge[@]}"

echo "== 5/5 breakeven report"
"$BIN/microstrain" tau "$OUT"
echo "done: $OUT (model.onnx, card.json, tau.md, tau.png)"
