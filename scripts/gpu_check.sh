#!/usr/bin/env bash
# Train a candidate for a fixed number of steps on an accelerator and print samples/s.
#
#   scripts/gpu_check.sh [ARCH] [STEPS] [DATA.h5]
#   env: BATCH (64), DEVICES (1; >1 uses Lightning's DDP), PRECISION (bf16-mixed on a GPU),
#        LAZY (false; true streams the data from disk instead of holding it on the device)
#
# Needs only this repository and `pip install -e .[train]` (no dolfinx): without DATA it trains on
# 4,096 synthetic schema-shaped samples (throughput does not depend on the values). Two figures:
#   1. the bare training step (forward + backward + Adam) on data already on the device;
#   2. `microstrain train` itself (Lightning, device-resident datamodule, precision, DDP),
#      samples/s = steps x batch x devices / fit wall time (includes start-up of the fit).
set -euo pipefail
cd "$(dirname "$0")/.."
ARCH=${1:-res-unet}
STEPS=${2:-300}
DATA=${3:-}
BATCH=${BATCH:-64}
DEVICES=${DEVICES:-1}
LAZY=${LAZY:-false}
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=.venv/bin/python
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    DEVICE=cuda; ACCEL=gpu; PRECISION=${PRECISION:-bf16-mixed}
    "$PY" -c 'import torch; print("GPU:", torch.cuda.get_device_name(0), "| torch", torch.__version__)'
else
    DEVICE=cpu; ACCEL=cpu; PRECISION=${PRECISION:-32-true}; DEVICES=1
    echo "no CUDA device: running the same check on the CPU"
fi

if [ -z "$DATA" ]; then
    DATA=$work/synthetic.h5
    PYTHONPATH=benchmarks "$PY" -c "from pathlib import Path; from bench_training import synthetic_file; synthetic_file(Path('$DATA'), 4096)"
fi

echo "== 1. bare training step, batch $BATCH, fp32"
"$PY" benchmarks/bench_training.py --arch "$ARCH" --device "$DEVICE" --batch "$BATCH" --steps 30 --no-epoch

echo "== 2. microstrain train: $STEPS steps, batch $BATCH x $DEVICES device(s), precision $PRECISION, lazy $LAZY"
STRATEGY=auto
[ "$DEVICES" -gt 1 ] && STRATEGY=ddp
"$PY" -m microstrain_cli train --model.arch "$ARCH" --data.path "$DATA" \
    --data.val_fraction 0.02 --data.test_fraction 0.0 --data.batch_size "$BATCH" --data.lazy "$LAZY" \
    --trainer.accelerator "$ACCEL" --trainer.devices "$DEVICES" --trainer.strategy "$STRATEGY" \
    --trainer.precision "$PRECISION" --trainer.max_steps "$STEPS" --trainer.max_epochs -1 \
    --trainer.limit_val_batches 0 --trainer.enable_progress_bar false \
    --checkpoint.monitor train/loss --images.n_samples 0 --test false \
    --runs_dir "$work/runs" --name gpu_check | tee "$work/train.log"
secs=$(sed -n 's/^train time \([0-9.]*\) s.*/\1/p' "$work/train.log" | tail -1)
"$PY" -c "s=$secs; n=$STEPS*$BATCH*$DEVICES; print(f'microstrain train: {n} samples in {s:.1f} s = {n/s:.0f} samples/s')"
