"""The run record ``run.json``: what one training run used, measured and produced, written once.

``microstrain train`` writes checkpoints (Lightning) and, when the run is over, this record in the
run directory (``runs/<name>/version_<i>/run.json``, beside ``checkpoints/``). Nothing rewrites a
checkpoint or the record afterwards; ``export`` reads both and needs nothing else. Fields:

- ``dataset``: :func:`training.data.dataset_summary` of the training data (file or a
  description of several, sha256 of the one file, n_samples, T_data ``t_data`` and its source,
  T_simulation ``t_simulation``, hardware, load case, generator, discretization, and ``files``:
  every file with its sha256, n_samples, applied_strain and shard);
- ``reading``: ``"in memory"`` or ``"streamed"`` (what ``--data.lazy`` resolved to);
- ``split``: seed, fractions, ``train_limit``, sizes, the sorted ``val_indices`` and
  ``test_indices``, and the training split's fiber fractions (range, mean);
- ``T_train`` (s, fit wall time summed over resumed runs and the ``init_from`` checkpoint's, which
  ``T_train_init_from`` states) and ``T_train_hardware``;
- ``epochs`` and ``global_step`` completed by the run;
- ``checkpoints``: ``best`` and ``last`` with ``file`` (relative to the run directory), ``sha256``
  and, for ``best``, its Lightning ``epoch`` and ``global_step``;
- ``metrics``: the SPEC §9 measures (:func:`training.measures.logged_measures`) of the best
  checkpoint on ``val`` and, when the run tested it, ``test``, each with ``n_samples``;
- ``config`` (model, data and trainer settings), ``software``, ``schema_version``, ``created``.

The record is written by :class:`RunRecorder` on global rank 0 only (under DDP every rank runs the
callbacks; one file must result).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint

from microstrain.errors import MicrostrainError
from microstrain.files import sha256_of, timestamp, write_json
from training.measures import logged_measures

RUN_RECORD = "run.json"
RECORD_SCHEMA_VERSION = 1


def plain_json(value: Any) -> Any:
    """Plain JSON types (hparams may hold tuples, paths, numpy scalars)."""
    if isinstance(value, dict):  # "_instantiator" and the like are Lightning's bookkeeping
        return {str(k): plain_json(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, list | tuple):
        return [plain_json(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _metrics(values: dict[str, Any], n_samples: int) -> dict[str, Any]:
    """The SPEC §9 measures of a module's metric dict, plus the number of samples."""
    names = logged_measures(periodic="C_eff_error_mean" in values)
    out: dict[str, Any] = {k: float(values[k]) for k in names if k in values}
    out["n_samples"] = n_samples
    return out


def _checkpoint_entry(path: Path, run_dir: Path) -> dict[str, Any]:
    try:
        name = path.resolve().relative_to(run_dir.resolve()).as_posix()
    except ValueError:  # --checkpoint.dirpath outside the run directory
        name = str(path)
    return {"file": name, "sha256": sha256_of(path)}


class RunRecorder(pl.Callback):
    """Write ``run.json`` once: after the test of the best checkpoint, or at the end of ``fit``
    when no test follows (``test=False``). A run without a saved checkpoint writes no record."""

    def __init__(self, test: bool = True) -> None:
        self.test = test
        self.run_dir: Path | None = None
        self.record: dict[str, Any] | None = None  # the fit's part, completed by the test
        self.written: Path | None = None

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        log_dir = trainer.log_dir  # a collective under DDP: every rank asks
        callback = trainer.checkpoint_callback
        best = getattr(callback, "best_model_path", "") if callback is not None else ""
        if not trainer.is_global_zero or not best or log_dir is None:
            return
        assert isinstance(callback, ModelCheckpoint)
        self.run_dir = Path(log_dir)
        self.record = self._fit_record(trainer, pl_module, callback, self.run_dir)
        if not self.test:
            self._write()

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or self.record is None or not self.test:
            return
        datamodule: Any = trainer.datamodule  # type: ignore[attr-defined]
        results = getattr(pl_module, "test_results", {})
        self.record["metrics"]["test"] = _metrics(results, datamodule.summary["n_test"])
        self._write()

    def _write(self) -> None:
        assert self.record is not None and self.run_dir is not None
        self.record["created"] = timestamp()
        self.written = write_json(self.run_dir / RUN_RECORD, self.record)
        self.record = None  # once

    @staticmethod
    def _fit_record(
        trainer: pl.Trainer, module: Any, callback: ModelCheckpoint, run_dir: Path
    ) -> dict[str, Any]:
        datamodule: Any = trainer.datamodule  # type: ignore[attr-defined]
        split = datamodule.split
        best_path = Path(callback.best_model_path)
        best = _checkpoint_entry(best_path, run_dir)
        saved = torch.load(best_path, map_location="cpu", weights_only=False)
        best.update(epoch=saved.get("epoch"), global_step=saved.get("global_step"))
        checkpoints = {"best": best}
        if callback.last_model_path and Path(callback.last_model_path).is_file():
            checkpoints["last"] = _checkpoint_entry(Path(callback.last_model_path), run_dir)
        # the best checkpoint's own validation metrics: saved with its weights
        own_val = saved.get("microstrain", {}).get("val_metrics", {})
        metrics = {"val": _metrics(own_val, len(split.val))} if own_val else {}
        data_hp = plain_json(dict(datamodule.hparams))
        return {
            "schema_version": RECORD_SCHEMA_VERSION,
            "created": None,
            "dataset": plain_json(datamodule.dataset),
            "reading": "streamed" if datamodule.lazy_reading else "in memory",
            "split": {
                "seed": data_hp["split_seed"],
                "val_fraction": data_hp["val_fraction"],
                "test_fraction": data_hp["test_fraction"],
                "train_limit": data_hp["train_limit"],
                "prefix": data_hp.get("split_prefix"),
                **datamodule.summary,
                "val_indices": split.val.tolist(),
                "test_indices": split.test.tolist(),
            },
            "T_train": float(module.train_seconds),  # with the init_from checkpoint's
            "T_train_init_from": float(module.init_seconds),
            "T_train_hardware": str(module.hardware),
            "epochs": int(trainer.current_epoch),
            "global_step": int(trainer.global_step),
            "checkpoints": checkpoints,
            "metrics": metrics,
            "config": {
                "model": plain_json(dict(module.hparams)),
                "data": data_hp,
                "trainer": {
                    "max_epochs": trainer.max_epochs,
                    "precision": str(trainer.precision),
                    "accelerator": type(trainer.accelerator).__name__,
                    "world_size": trainer.world_size,
                    "strategy": type(trainer.strategy).__name__,
                },
            },
            "software": {"torch": torch.__version__, "pytorch_lightning": pl.__version__},
        }


# --- reading --------------------------------------------------------------------------------


def find_run_record(checkpoint: str | os.PathLike[str]) -> Path:
    """``run.json`` of a checkpoint: beside it, or in the run directory above ``checkpoints/``."""
    ckpt = Path(checkpoint)
    for directory in (ckpt.parent, ckpt.parent.parent):
        if (directory / RUN_RECORD).is_file():
            return directory / RUN_RECORD
    raise MicrostrainError(
        f"no run record {RUN_RECORD} beside {ckpt} or in its run directory: export needs the "
        "record `microstrain train` writes when the run ends (an interrupted run has none; "
        "resume it with --ckpt_path to finish it)"
    )


def read_run_record(checkpoint: str | os.PathLike[str]) -> dict[str, Any]:
    """The run record describing ``checkpoint``; refused unless it is the run's best checkpoint.

    The record's metrics were measured on the best checkpoint's weights; for any other file (the
    ``last`` checkpoint, a checkpoint of another run, a modified file) they would be wrong.
    """
    import json

    ckpt = Path(checkpoint)
    if not ckpt.is_file():
        raise MicrostrainError(f"checkpoint not found: {ckpt}")
    path = find_run_record(ckpt)
    try:
        record = json.loads(path.read_text())
        best = record["checkpoints"]["best"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise MicrostrainError(
            f"{path} is not a run record of `microstrain train`: {exc}"
        ) from None
    digest = sha256_of(ckpt)
    if digest != best.get("sha256"):
        roles = [k for k, v in record["checkpoints"].items() if v.get("sha256") == digest]
        what = f"its {roles[0]} checkpoint" if roles else "a checkpoint of that run"
        raise MicrostrainError(
            f"{ckpt.name} is {what}, not the best one ({best.get('file')}) whose metrics {path} "
            "records; export the best checkpoint"
        )
    return dict(record)
