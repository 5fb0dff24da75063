"""The lecture's learning curve: validation error vs training-set size m, with and without L2.

For each m the first m samples of the (fixed, seeded) training split train a fresh network; the
validation split is the same for every run, so the points are comparable. Each run takes
``max(epochs, ceil(min_steps / steps_per_epoch))`` epochs so that tiny m still get enough
gradient steps; the best validation error of the run is reported (the lecture's early stopping).
Outputs: ``learning_curve.md``, ``learning_curve.csv`` and ``learning_curve.png``.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from rich.console import Console
from rich.table import Table

from microstrain.errors import MicrostrainError
from microstrain.files import atomic_output
from training.data import StrainDataModule
from training.measures import measures_of
from training.module import StrainRegressor


@dataclass(frozen=True)
class LearningCurveConfig:
    data: str
    sizes: tuple[int, ...] = (4, 16, 64, 256)
    arch: str = "course-cnn"
    epochs: int = 100
    min_steps: int = 500
    weight_decay: float = 1e-3  # the "with regularization" runs; the others use 0
    lr: float = 1e-3
    batch_size: int = 16
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    split_seed: int = 0
    seed: int = 0


def train_one(config: LearningCurveConfig, m: int, weight_decay: float) -> dict[str, Any]:
    """Train on the first ``m`` training samples -> one row of the learning-curve table."""
    pl.seed_everything(config.seed, verbose=False)
    datamodule = StrainDataModule(
        config.data,
        batch_size=config.batch_size,
        val_fraction=config.val_fraction,
        test_fraction=config.test_fraction,
        split_seed=config.split_seed,
        train_limit=m,
    )
    datamodule.setup("fit")
    assert datamodule.train_set is not None
    m_used = len(datamodule.train_set)
    steps_per_epoch = math.ceil(m_used / min(config.batch_size, m_used))
    epochs = max(config.epochs, math.ceil(config.min_steps / steps_per_epoch))
    model = StrainRegressor(config.arch, optimizer="adam", lr=config.lr, weight_decay=weight_decay)
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="auto",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        check_val_every_n_epoch=max(epochs // 20, 1),
        num_sanity_val_steps=0,
    )
    start = time.perf_counter()
    trainer.fit(model, datamodule)
    seconds = time.perf_counter() - start
    e_train, s_train, fiber = datamodule.train_set.batch(list(range(m_used)))
    model.eval()
    with torch.no_grad():
        pred = model.predict_strain(e_train.to(model.device)).cpu()
    plane = model.physics.plane
    train_err = measures_of(pred, s_train.cpu(), fiber.cpu(), plane)["strain_relative_l2"]
    return {
        "m": m_used,
        "weight_decay": weight_decay,
        "epochs": epochs,
        "train_rel_l2": train_err,
        "val_rel_l2": model.best_val_metrics.get("strain_relative_l2", float("nan")),
        "best_epoch": model.best_val_metrics.get("epoch", -1),
        "seconds": seconds,
    }


def write_outputs(rows: list[dict[str, Any]], config: LearningCurveConfig, out: Path) -> None:
    """Markdown table, CSV and PNG plot (val and train error vs m, log-log)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    keys = list(rows[0])
    with atomic_output(out / "learning_curve.csv") as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        f"Learning curve of `{config.arch}` on `{Path(config.data).name}` "
        f"(SPEC §9 strain error: relative L2 over all channels per sample, then the mean; "
        "best validation epoch)",
        "",
        "| m | weight decay | epochs | train rel. L2 | val rel. L2 | time (s) |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['m']} | {r['weight_decay']:g} | {r['epochs']} | {r['train_rel_l2']:.4f} "
        f"| {r['val_rel_l2']:.4f} | {r['seconds']:.1f} |"
        for r in rows
    ]
    with atomic_output(out / "learning_curve.md") as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for wd, style in ((0.0, "o-"), (config.weight_decay, "s--")):
        sel = [r for r in rows if r["weight_decay"] == wd]
        label = "no regularization" if wd == 0 else f"weight decay {wd:g}"
        ms = [r["m"] for r in sel]
        ax.plot(ms, [r["val_rel_l2"] for r in sel], style, label=f"val, {label}")
        ax.plot(ms, [r["train_rel_l2"] for r in sel], style, alpha=0.4, label=f"train, {label}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training samples m")
    ax.set_ylabel("relative L2 error")
    ax.set_title(f"{config.arch}: learning curve")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_output(out / "learning_curve.png") as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def run_learning_curve(config: LearningCurveConfig, out: Path) -> list[dict[str, Any]]:
    """Train every (m, regularization) pair, print the table and write the outputs."""
    if config.weight_decay <= 0:
        raise MicrostrainError("--weight-decay must be positive (it defines the regularized runs)")
    console = Console()
    rows = []
    for m in config.sizes:
        for wd in (0.0, config.weight_decay):
            row = train_one(config, m, wd)
            rows.append(row)
            console.print(
                f"m={row['m']:>5} wd={wd:<8g} val {row['val_rel_l2']:.4f} "
                f"train {row['train_rel_l2']:.4f} ({row['seconds']:.0f} s)"
            )
    write_outputs(rows, config, out)
    table = Table(title=f"learning curve: {config.arch}")
    for col in ("m", "weight decay", "train rel. L2", "val rel. L2"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            str(r["m"]),
            f"{r['weight_decay']:g}",
            f"{r['train_rel_l2']:.4f}",
            f"{r['val_rel_l2']:.4f}",
        )
    console.print(table)
    console.print(f"wrote {out}/learning_curve.md, .csv, .png ({asdict(config)['arch']})")
    return rows
