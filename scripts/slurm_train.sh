#!/usr/bin/env bash
# Example SLURM job: one model trained with DDP on every GPU of NODES machines.
#
#   sbatch scripts/slurm_train.sh DATA [CONFIG] [more `microstrain train` options]
#   sbatch --nodes 4 --ntasks-per-node 8 --gres gpu:8 scripts/slurm_train.sh data/run1 ...
#
# DATA is a dataset file or a directory of shards (`generate --shard i/K`, docs/scaling.md);
# CONFIG defaults to configs/res-unet.yaml, and configs/gpu.yaml is added after it. One SLURM task
# per GPU: `srun` starts every process and Lightning reads its rank from SLURM's variables (no
# launcher of its own), so --trainer.num_nodes and --trainer.devices must match the allocation:
# they are taken from it. The repository, its .venv and DATA must be on a filesystem every node
# sees; checkpoints and run.json are written by global rank 0 into runs/ there.
#
#SBATCH --job-name=microstrain-train
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gres=gpu:4
#SBATCH --cpus-per-task=8
#SBATCH --time=04:00:00
#SBATCH --output=%x-%j.out
set -euo pipefail
DATA=${1:?usage: sbatch scripts/slurm_train.sh DATA [CONFIG] [more train options]}
CONFIG=${2:-configs/res-unet.yaml}
shift $(($# >= 2 ? 2 : 1))
cd "${SLURM_SUBMIT_DIR:-.}"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=.venv/bin/python
NODES=${SLURM_JOB_NUM_NODES:-1}
DEVICES=${SLURM_NTASKS_PER_NODE:-1}
# each process reads the data through the page cache of its node; one torch thread pool per GPU
export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}

srun "$PY" -m microstrain_cli train --config "$CONFIG" --config configs/gpu.yaml \
    --data.path "$DATA" \
    --trainer.num_nodes "$NODES" --trainer.devices "$DEVICES" --trainer.strategy ddp \
    --trainer.enable_progress_bar false \
    "$@"
