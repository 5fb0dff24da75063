"""Training throughput on this machine (CPU unless --device cuda): steps, data paths, DDP.

Sections (``--sections``, any of):

- ``step``: for each architecture, samples/s of one training step (forward + backward + Adam,
  batch 32) on a pre-loaded batch; the time of one Lightning epoch over 1,000 in-memory samples;
  and the data-path gap: the same steps fed by :class:`training.data.StrainDataModule`'s loader
  instead of one pre-loaded tensor (goal: < 10%).
- ``reading``: the in-memory against the streamed (lazy, chunked HDF5) data path on one file:
  the loaders alone (samples/s over an epoch) and the training steps of ``--reading-arch`` fed by
  each (goal for the streamed path: >= 70% of the in-memory throughput).
- ``ddp``: one Lightning fit on the CPU with one process against two DDP processes (gloo): the
  steady-state time per epoch (median of the epochs after the first) and its overhead.

Prints Markdown tables. Timings on a shared machine are noisy: compare rows of one run, not runs
of different days; the two paths of a comparison run alternately, best of ``--repeats``.

    python benchmarks/bench_training.py                        # step, all registry entries
    python benchmarks/bench_training.py --sections reading ddp --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.nn import functional as F

from microstrain.conventions import FIBER, MATRIX
from microstrain.dataset import read_info, write_dataset
from microstrain.hardware import compute_description, cpu_description
from training.architectures import REGISTRY, parameter_count
from training.data import StrainDataModule
from training.module import StrainRegressor
from training.normalization import fit_normalizer


def synthetic_file(path: Path, n: int) -> Path:
    """A SPEC §4 file of ``n`` random schema-shaped samples (throughput does not depend on the
    values), written by the core's writer so the one reader accepts it."""
    rng = np.random.default_rng(0)
    e = np.where(rng.random((n, 1, 32, 32)) < 0.35, FIBER.youngs_modulus, MATRIX.youngs_modulus)
    strain = rng.normal(0.1, 0.05, (n, 3, 32, 32))
    return write_dataset(path, e, strain, generator={"kind": "synthetic benchmark data"})


def _steps(model: StrainRegressor, opt: torch.optim.Optimizer, batches, device) -> list[float]:
    times = []
    for e, s, _fiber in batches:
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


def _hardware(device: torch.device) -> str:
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return compute_description(gpu, torch.get_num_threads())


def _datamodule(data: Path, batch: int, **kw: Any) -> StrainDataModule:
    dm = StrainDataModule(str(data), batch_size=batch, val_fraction=0.0, test_fraction=0.0, **kw)
    dm.setup("fit")
    return dm


def _model(arch: str, dm: StrainDataModule, device: torch.device) -> StrainRegressor:
    model = StrainRegressor(arch).to(device)
    model.normalizer.load_state_dict(fit_normalizer(dm.training_pieces()).state_dict())
    return model


def bench(arch: str, data: Path, batch: int, steps: int, device: torch.device) -> dict:
    dm = _datamodule(data, batch)
    assert dm.train_set is not None
    dm.train_set.to(device)  # what setup() does when a Trainer on a GPU runs it
    model = _model(arch, dm, device)
    opt = torch.optim.Adam(model.net.parameters(), lr=1e-4)
    first = dm.train_set.batch(list(range(batch)))
    _steps(model, opt, [first] * 3, device)  # warm-up (allocator, kernels)
    preloaded = statistics.median(_steps(model, opt, [first] * steps, device))
    loader = (b for _ in range(steps) for b in dm.train_dataloader())  # epochs back to back
    fed = []
    t_prev = time.perf_counter()
    for _ in range(steps):  # time from the end of one step to the end of the next: includes loading
        _steps(model, opt, [next(loader)], device)
        now = time.perf_counter()
        fed.append(now - t_prev)
        t_prev = now
    loaded = statistics.median(fed)
    t0 = time.perf_counter()
    n_fetched = 0
    for _ in range(5):  # the loader alone: a less noisy view of the same cost
        for batch_e, _s, _f in dm.train_dataloader():
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


def step_section(args: argparse.Namespace, data: Path, device: torch.device) -> None:
    rows = []
    for arch in args.arch:
        row = bench(arch, data, args.batch, args.steps, device)
        accelerator = "gpu" if device.type == "cuda" else "cpu"
        row["epoch_s"] = (
            float("nan") if args.no_epoch else epoch_seconds(arch, data, args.batch, accelerator)
        )
        rows.append(row)
        print(f"{arch}: {row['samples_per_s']:.0f} samples/s", flush=True)
    print(f"\n{_hardware(device)}, batch {args.batch}, torch {torch.__version__}\n")
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


# --- in memory against streamed from disk ----------------------------------------------------


def _epoch_rate(dm: StrainDataModule) -> float:
    """Samples/s of one epoch of the training loader alone."""
    t0 = time.perf_counter()
    n = sum(b.strain.shape[0] for b in dm.train_dataloader())
    return n / (time.perf_counter() - t0)


def _training_rate(dm: StrainDataModule, arch: str, steps: int) -> float:
    """Samples/s of ``steps`` training steps fed by the datamodule's loader (loading included)."""
    model = _model(arch, dm, torch.device("cpu"))
    opt = torch.optim.Adam(model.net.parameters(), lr=1e-4)
    batches = (b for _ in range(10**6) for b in dm.train_dataloader())
    _steps(model, opt, [next(batches) for _ in range(2)], torch.device("cpu"))  # warm-up
    t0 = time.perf_counter()
    n = 0
    for _ in range(steps):
        batch = next(batches)
        _steps(model, opt, [batch], torch.device("cpu"))
        n += batch.strain.shape[0]
    return n / (time.perf_counter() - t0)


def reading_section(args: argparse.Namespace, data: Path) -> None:
    paths = {"in memory": {"lazy": False}, "streamed": {"lazy": True}}
    t0 = time.perf_counter()
    dms = {name: _datamodule(data, args.batch, **kw) for name, kw in paths.items()}
    setup = time.perf_counter() - t0
    loader: dict[str, float] = {name: 0.0 for name in paths}
    training: dict[str, float] = {name: 0.0 for name in paths}
    for _ in range(args.repeats):  # alternately: the machine's load hits both alike
        for name, dm in dms.items():
            loader[name] = max(loader[name], _epoch_rate(dm))
            training[name] = max(training[name], _training_rate(dm, args.reading_arch, args.steps))
    n = len(dms["in memory"].train_set or [])
    size = data.stat().st_size / 2**20
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"\n{_hardware(torch.device('cpu'))}, load average {load}; {n:,} samples "
        f"({size:.0f} MiB on disk, "
        f"gzip level 1, chunks of 64), batch {args.batch}, best of {args.repeats}; setup of "
        f"both {setup:.1f} s\n"
    )
    print(f"| data path | loader alone (samples/s) | training {args.reading_arch} (samples/s) |")
    print("|---|---:|---:|")
    for name in paths:
        print(f"| {name} | {loader[name]:,.0f} | {training[name]:,.0f} |")
    ratio = training["streamed"] / training["in memory"]
    print(
        f"| streamed / in memory | {loader['streamed'] / loader['in memory']:.0%} | {ratio:.0%} |"
    )


# --- DDP on the CPU --------------------------------------------------------------------------


class _EpochTimes(pl.Callback):
    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._start = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.seconds.append(time.perf_counter() - self._start)


def ddp_child(args: argparse.Namespace) -> None:
    """One fit with ``--devices`` CPU processes; rank 0 prints its epoch times as JSON.

    Lightning starts rank 1 by running this same command line again."""
    pl.seed_everything(0, verbose=False)
    dm = StrainDataModule(
        str(args.data), batch_size=args.batch, val_fraction=0.0, test_fraction=0.0
    )
    timer = _EpochTimes()
    trainer = pl.Trainer(
        max_epochs=args.epochs,
        accelerator="cpu",
        devices=args.devices,
        strategy="ddp" if args.devices > 1 else "auto",
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(StrainRegressor(args.arch[0]), dm)
    if trainer.is_global_zero:
        threads = torch.get_num_threads()
        print("EPOCHS " + json.dumps({"seconds": timer.seconds, "threads": threads}), flush=True)


def ddp_section(args: argparse.Namespace, data: Path) -> None:
    configurations = [(1, 1), (1, 2), (2, 1)]  # (processes, torch threads per process)
    results: dict[tuple[int, int], dict[str, Any]] = {}
    n = read_info(data).n
    for processes, threads in configurations:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        command = [sys.executable, __file__, "--ddp-child", "--data", str(data)]
        command += ["--devices", str(processes), "--arch", args.reading_arch]
        command += ["--batch", str(args.batch), "--epochs", str(args.epochs)]
        t0 = time.perf_counter()
        out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t0
        line = next(x for x in out.stdout.splitlines() if x.startswith("EPOCHS "))
        found = json.loads(line.removeprefix("EPOCHS "))
        steady = statistics.median(found["seconds"][1:] or found["seconds"])
        results[processes, threads] = {"epoch_s": steady, "wall_s": wall, **found}
        print(f"done: {processes} process(es) x {threads} thread(s)", file=sys.stderr, flush=True)
    base = results[1, 1]["epoch_s"]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"\n{cpu_description()}, load average {load}; {args.reading_arch}, {n:,} samples, "
        f"batch {args.batch} per process, {args.epochs} epochs; epoch time = median of epochs "
        "2.., on rank 0\n"
    )
    print(
        "| processes × torch threads | epoch s | samples/s | speed-up vs 1 × 1 | efficiency "
        "| wall of the run s (start-up incl.) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for (processes, threads), r in results.items():
        speedup = base / r["epoch_s"]
        print(
            f"| {processes} × {threads} | {r['epoch_s']:.2f} | {n / r['epoch_s']:,.0f} "
            f"| {speedup:.2f}× | {speedup / (processes * threads):.0%} | {r['wall_s']:.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sections", nargs="+", default=["step"], choices=["step", "reading", "ddp"]
    )
    parser.add_argument("--arch", nargs="*", default=sorted(REGISTRY))
    parser.add_argument("--data", type=Path, help="SPEC §4 file (default: synthetic)")
    parser.add_argument("--n", type=int, default=0, help="synthetic samples (default per section)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-epoch", action="store_true", help="skip the 1,000-sample epoch")
    parser.add_argument("--reading-arch", default="course-cnn")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=3, help="ddp: epochs per fit")
    parser.add_argument("--ddp-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--devices", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.ddp_child:
        ddp_child(args)
        return
    device = torch.device(args.device)
    defaults = {"step": 1000, "reading": 8192, "ddp": 2048}
    with tempfile.TemporaryDirectory() as tmp:
        for section in args.sections:
            n = args.n or defaults[section]
            data = args.data or synthetic_file(Path(tmp) / f"{section}.h5", n)
            if section == "step":
                step_section(args, data, device)
            elif section == "reading":
                reading_section(args, data)
            else:
                ddp_section(args, data)


if __name__ == "__main__":
    main()
