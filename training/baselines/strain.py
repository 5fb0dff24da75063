"""Experiment ``strain``: the lecture's other architectures against the CNN/U-Net candidates.

Every network is trained by the same generic :class:`training.module.StrainRegressor` on the same
:class:`training.data.StrainDataModule` split and normalization, with the same optimizer, epochs
and batch size, so only the architecture differs. Reported per network: parameters, train time,
validation (best epoch) and test SPEC §9 strain error per channel and overall, and inference
time per sample of the raw-MPa model at batch 1 and batched (CPU unless a GPU is used for training).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from microstrain.conventions import GRID, STRAIN_CHANNELS
from training.baselines.report import markdown_table, save_figure, write_report

# Registry names compared and their keyword overrides; the CNN candidates keep their defaults.
FULL: dict[str, dict[str, Any]] = {
    "fc-strain": {},
    # 4 blocks of width 32 instead of the registry's 6 × 64: the default graph network costs
    # ~160 ms per sample (forward + backward, one CPU thread), 3× the res-unet; this one ~60 ms
    "gnn-strain": {"blocks": 4, "hidden": 32},
    "rnn-strain": {},
    "course-cnn": {},
    "course-unet": {},
    "course-unet-cnn": {},
    "res-unet": {},
}
QUICK: dict[str, dict[str, Any]] = {
    "fc-strain": {"hidden": (64,)},
    "gnn-strain": {
        "node_features": 8,
        "edge_features": 4,
        "global_features": 4,
        "hidden": 16,
        "blocks": 2,
    },
    "rnn-strain": {"hidden": 16, "layers": 1},
    "course-cnn": {},
}


@dataclass(frozen=True)
class StrainBaselineConfig:
    architectures: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(FULL))
    epochs: int = 50
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0
    accelerator: str = "auto"
    # first N samples of the training split (None: all); val/test splits are never cut, so
    # the metrics stay comparable with full-data runs of the CNN candidates
    train_limit: int | None = None

    @classmethod
    def quick(cls) -> StrainBaselineConfig:
        return cls(architectures=dict(QUICK), epochs=2, batch_size=16, accelerator="cpu")

    def with_epochs(self, epochs: int | None) -> StrainBaselineConfig:
        return replace(self, epochs=epochs) if epochs else self

    def with_train_limit(self, train_limit: int | None) -> StrainBaselineConfig:
        return replace(self, train_limit=train_limit) if train_limit else self


def inference_seconds(model: torch.nn.Module, batch: int, repeats: int = 5) -> float:
    """Median wall time per sample of ``model`` on raw E [batch, 1, 32, 32] (CPU, no grad)."""
    x = torch.full((batch, 1, GRID, GRID), 3000.0)
    times = []
    with torch.no_grad():
        model(x)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - start) / batch)
    return sorted(times)[len(times) // 2]


def train_one(name: str, kwargs: dict[str, Any], data: Path, cfg: StrainBaselineConfig) -> dict:
    import pytorch_lightning as pl

    from training.data import StrainDataModule
    from training.module import MONITOR, StrainRegressor

    pl.seed_everything(cfg.seed, verbose=False)
    datamodule = StrainDataModule(
        str(data), batch_size=cfg.batch_size, split_seed=cfg.seed, train_limit=cfg.train_limit
    )
    module = StrainRegressor(arch=name, arch_kwargs=kwargs, lr=cfg.lr)
    history: list[float] = []

    class _History(pl.Callback):
        # on_train_epoch_end runs after this epoch's validation AND after the module has logged
        # it; a callback's on_validation_epoch_end runs before the module's, so it read the
        # previous epoch's value (the history lagged by one epoch and lost the last)
        def on_train_epoch_end(self, trainer: pl.Trainer, _: pl.LightningModule) -> None:
            value = trainer.callback_metrics.get(MONITOR)
            if value is not None:
                history.append(float(value))

    trainer = pl.Trainer(
        max_epochs=cfg.epochs,
        accelerator=cfg.accelerator,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[_History()],
    )
    trainer.fit(module, datamodule=datamodule)
    trainer.test(module, datamodule=datamodule, verbose=False)
    physical = module.physical_model()
    return {
        "parameters": module.parameter_count,
        "train_seconds": module.train_seconds,
        "val": dict(module.best_val_metrics),
        "test": dict(module.test_results),
        "inference_seconds_batch1": inference_seconds(physical, 1),
        "inference_seconds_batch64": inference_seconds(physical, 64),
        "val_history": history,
        "split": {k: datamodule.summary[k] for k in ("n_train", "n_val", "n_test")},
        "arch_kwargs": {k: list(v) if isinstance(v, tuple) else v for k, v in kwargs.items()},
    }


def run_strain(
    cfg: StrainBaselineConfig,
    data: Path,
    out_dir: Path | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    from microstrain.hardware import cpu_description

    results: dict[str, Any] = {
        "config": asdict(cfg),
        "data": data.name,
        "hardware": cpu_description(),
        "threads": torch.get_num_threads(),
        "models": {},
    }
    for name, kwargs in cfg.architectures.items():
        results["models"][name] = entry = train_one(name, kwargs, data, cfg)
        error = entry["test"].get("strain_relative_l2", float("nan"))
        log(f"strain: {name}: test strain error {error:.3f}")
    if out_dir is not None:
        _write_outputs(cfg, results, out_dir)
    return results


def _write_outputs(cfg: StrainBaselineConfig, results: dict[str, Any], out_dir: Path) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    out_dir.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, entry in results["models"].items():
        ax.semilogy(range(1, len(entry["val_history"]) + 1), entry["val_history"], label=name)
    ax.set(xlabel="epoch", ylabel="val strain error (SPEC §9)", title="learning histories")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    figures = {"history": save_figure(fig, out_dir / "strain_history.png")}

    def fmt(d: dict[str, float], key: str) -> str:
        return f"{d[key]:.3f}" if key in d else "–"

    header = [
        "network",
        "parameters",
        "train s",
        "val strain",
        "test strain",
        *[f"test {c}" for c in STRAIN_CHANNELS],
        "ms/sample (b=1)",
        "ms/sample (b=64)",
    ]
    rows = [
        [
            name,
            f"{e['parameters']:,}",
            f"{e['train_seconds']:.0f}",
            fmt(e["val"], "strain_relative_l2"),
            fmt(e["test"], "strain_relative_l2"),
            *[fmt(e["test"], f"strain_relative_l2_{c}") for c in STRAIN_CHANNELS],
            f"{1e3 * e['inference_seconds_batch1']:.2f}",
            f"{1e3 * e['inference_seconds_batch64']:.3f}",
        ]
        for name, e in results["models"].items()
    ]
    split = next(iter(results["models"].values()))["split"] if results["models"] else {}
    val_header = ["network", "val strain", *[f"val {c}" for c in STRAIN_CHANNELS], "best epoch"]
    val_rows = [
        [
            name,
            fmt(e["val"], "strain_relative_l2"),
            *[fmt(e["val"], f"strain_relative_l2_{c}") for c in STRAIN_CHANNELS],
            str(int(e["val"].get("epoch", -1)) + 1),
        ]
        for name, e in results["models"].items()
    ]
    body = [
        f"Dataset `{results['data']}` ({split.get('n_train', '?')} train / "
        f"{split.get('n_val', '?')} val / {split.get('n_test', '?')} test samples); "
        f"same split (seed {cfg.seed}) and normalization for all; "
        f"{cfg.epochs} epochs of Adam (lr {cfg.lr:g}), batch {cfg.batch_size}. Strain errors "
        "are SPEC §9's (per sample, then the mean); inference on CPU of the raw-MPa model "
        "(normalization included). "
        f"Hardware: {results.get('hardware', '?')}, {results.get('threads', '?')} torch "
        "thread(s); timings on a shared machine are indicative only.",
        markdown_table(header, rows),
        "Validation (best epoch, 1-based) per channel:",
        markdown_table(val_header, val_rows),
    ]
    write_report(out_dir / "strain.md", "Strain field: baselines vs CNN candidates", body, figures)
