"""Training throughput of every registry network on this machine (CPU unless --device cuda).

For each architecture: samples/s of one training step (forward + backward + Adam step, batch 32)
on a pre-loaded batch; the time of one Lightning epoch over 1,000 in-memory samples; and the
data-path gap: the same steps fed by :class:`training.data.StrainDataModule`'s loader instead of
one pre-loaded tensor (goal: < 10%). Prints a Markdown table. Timings on a shared machine are
noisy: compare rows of one run, not runs of different days.

    python benchmarks/bench_training.py                  # all registry entries
    python benchmarks/bench_training.py --arch course-cnn res-unet --threads 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import pytorch_lightning as pl
import torch
from torch.nn import functional as F

from microstrain.conventions import (
    ATTR_COMPLETE,
    ATTR_DISCRETIZATION,
    ATTR_LOAD_CASE,
    DS_E,
    DS_STRAIN,
    FIBER,
    MATRIX,
)
from training.architectures import REGISTRY, parameter_count
from training.data import StrainDataModule
from training.module import StrainRegressor, hardware_description


def synthetic_file(path: Path, n: int) -> Path:
    """Schema-shaped random data: throughput does not depend on the values."""
    rng = np.random.default_rng(0)
    e = np.where(rng.random((n, 1, 32, 32)) < 0.35, FIBER.youngs_modulus, MATRIX.youngs_modulus)
    with h5py.File(path, "w") as f:
        f.create_dataset(DS_E, data=e.astype(np.float32))
        f.create_dataset(DS_STRAIN, data=rng.normal(0.1, 0.05, (n, 3, 32, 32)).astype(np.float32))
        f.attrs[ATTR_LOAD_CASE] = json.dumps({"applied_strain": 0.1})
        f.attrs[ATTR_DISCRETIZATION] = json.dumps({"mode": "synthetic", "k": 0})
        f.attrs[ATTR_COMPLETE] = True
    return path


def _steps(model: StrainRegressor, opt: torch.optim.Optimizer, batches, device) -> list[float]:
    times = []
    for e, s in batches:
        t0 = time.perf_counter()
        e, s = e.to(device, non_blocking=True), s.to(device, non_blocking=True)
        y = model.net(model.normalizer.encode_input(e))
        loss = F.mse_loss(y, model.normalizer.encode_output(s))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times


def bench(arch: str, data: Path, batch: int, steps: int, device: torch.device) -> dict:
    dm = StrainDataModule(str(data), batch_size=batch, val_fraction=0.0, test_fraction=0.0)
    dm.setup("fit")
    dm.train_set.to(device)  # what setup() does when a Trainer on a GPU runs it
    model = StrainRegressor(arch).to(device)
    model.normalizer.load_state_dict(dm.normalizer.state_dict())
    opt = torch.optim.Adam(model.net.parameters(), lr=1e-4)
    e0, s0 = dm.train_set.__getitems__(list(range(batch)))
    _steps(model, opt, [(e0, s0)] * 3, device)  # warm-up (allocator, kernels)
    preloaded = statistics.median(_steps(model, opt, [(e0, s0)] * steps, device))
    loader = (b for _ in range(steps) for b in dm.train_dataloader())  # epochs back to back
    fed = []
    t_prev = time.perf_counter()
    for _ in range(steps):  # time from the end of one step to the end of the next: includes loading
        batch_e, batch_s = next(loader)
        _steps(model, opt, [(batch_e, batch_s)], device)
        now = time.perf_counter()
        fed.append(now - t_prev)
        t_prev = now
    loaded = statistics.median(fed)
    t0 = time.perf_counter()
    n_fetched = 0
    for _ in range(5):  # the loader alone: a less noisy view of the same cost
        for batch_e, _s in dm.train_dataloader():
            n_fetched += 1
            batch_e.sum().item()  # make sure the batch really exists (GPU: synchronizes)
    fetch = (time.perf_counter() - t0) / n_fetched
    return {
        "arch": arch,
        "parameters": parameter_count(model.net),
        "samples_per_s": batch / preloaded,
        "step_ms": 1e3 * preloaded,
        "step_with_loader_ms": 1e3 * loaded,
        "gap": loaded / preloaded - 1.0,
        "fetch_ms": 1e3 * fetch,
    }


def epoch_seconds(arch: str, data: Path, batch: int, accelerator: str) -> float:
    """Wall time of one Lightning training epoch (no validation) over the whole file."""
    dm = StrainDataModule(str(data), batch_size=batch, val_fraction=0.0, test_fraction=0.0)
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator=accelerator,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    model = StrainRegressor(arch)
    start = time.perf_counter()
    trainer.fit(model, dm)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="*", default=sorted(REGISTRY))
    parser.add_argument("--data", type=Path, help="SPEC §4 file (default: 1,000 synthetic)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-epoch", action="store_true", help="skip the 1,000-sample epoch")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or synthetic_file(Path(tmp) / "bench.h5", 1000)
        rows = []
        for arch in args.arch:
            row = bench(arch, data, args.batch, args.steps, device)
            accelerator = "gpu" if device.type == "cuda" else "cpu"
            row["epoch_s"] = (
                float("nan")
                if args.no_epoch
                else epoch_seconds(arch, data, args.batch, accelerator)
            )
            rows.append(row)
            print(f"{arch}: {row['samples_per_s']:.0f} samples/s", flush=True)
    print(f"\n{hardware_description(device)}, batch {args.batch}, torch {torch.__version__}\n")
    print(
        "| architecture | parameters | samples/s (train step) | step ms | step ms with loader "
        "| data-path gap | loader alone ms/batch | epoch of 1,000 (s) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['arch']} | {r['parameters']:,} | {r['samples_per_s']:.0f} | {r['step_ms']:.1f} "
            f"| {r['step_with_loader_ms']:.1f} | {100 * r['gap']:+.1f}% | {r['fetch_ms']:.2f} "
            f"| {r['epoch_s']:.1f} |"
        )


if __name__ == "__main__":
    main()
