"""The LightningCLI behind ``microstrain train``: configs, overrides, logging, resume.

Every option of :class:`~training.module.StrainRegressor` (``--model.*``),
:class:`~training.data.StrainDataModule` (``--data.*``), the Trainer (``--trainer.*``), the best
checkpoint callback (``--checkpoint.*``) and the TensorBoard images (``--images.*``) can come from
YAML files (``--config configs/x.yaml``, several allowed, later wins) and be overridden on the
command line. Outputs go to ``<runs_dir>/<name>/version_<i>/``: ``config.yaml`` (the resolved
config), TensorBoard events, ``checkpoints/`` and, when the run is over, the run record
``run.json`` (:mod:`training.run_record`). After fitting, the best checkpoint is evaluated on the
test split; its validation and test metrics go into the run record (checkpoints are never
rewritten), and its path is printed.

Several processes (``--trainer.devices N --trainer.strategy ddp``, or ``--trainer.num_nodes``
under ``torchrun``/SLURM; docs/scaling.md) train one model: each sees its own part of every epoch
(:mod:`training.sampling`), metrics are reduced over all of them, and only global rank 0 writes
checkpoints, the run record and what is printed at the end. Testing the best checkpoint runs on
every rank (its metrics are collectives).

``--overfit_one true`` is the lecture's model-selection check: one training sample, batch 1, no
regularization, until the loss is tiny; it prints the final relative error on that sample.
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from jsonargparse import Namespace
from pytorch_lightning.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint
from pytorch_lightning.cli import LightningArgumentParser, LightningCLI

from microstrain.dataset import open_union
from microstrain.errors import MicrostrainError
from microstrain.hardware import free_core_threads, usable_cores
from training.data import StrainDataModule
from training.ddp_guard import (
    DEFAULT_DDP_TIMEOUT_S,
    StopOnSignal,
    collective_error,
    end_started_ranks,
    set_collective_timeout,
)
from training.measures import measures_of
from training.module import MONITOR, StrainRegressor
from training.run_record import RunRecorder
from training.visualize import PredictionImages

TRAIN_LOSS = "train/loss"
THREADS_ENV_VAR = "MICROSTRAIN_TORCH_THREADS"
# Normalized MSE at which overfit-one stops: the relative error is then ~1% of the field.
OVERFIT_LOSS = 1e-4


class StrainCLI(LightningCLI):
    """LightningCLI with the run layout, checkpointing and overfit-one of this project."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--name", type=str | None, default=None, help="run name (default: arch)"
        )
        parser.add_argument("--runs_dir", type=str, default="runs", help="root of run outputs")
        parser.add_argument("--ckpt_path", type=str | None, default=None, help="resume from here")
        parser.add_argument(
            "--overfit_one", type=bool, default=False, help="learn one sample by heart"
        )
        parser.add_argument(
            "--test", type=bool, default=True, help="evaluate the best checkpoint on the test split"
        )
        parser.add_argument(
            "--ddp_timeout_s",
            type=float,
            default=DEFAULT_DDP_TIMEOUT_S,
            help="several processes: a collective that waits longer for the others ends the run",
        )
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": MONITOR,
                "checkpoint.mode": "min",
                "checkpoint.save_last": True,
                "checkpoint.filename": "best-{epoch:03d}",
                "checkpoint.auto_insert_metric_name": False,
            }
        )
        parser.add_lightning_class_args(PredictionImages, "images")

    def before_instantiate_classes(self) -> None:
        cfg = self.config
        # the data are checked before Lightning starts the other processes and the logger makes
        # a run directory: a missing or odd file is one error line, printed once
        open_union(
            cfg.data.path, allow_incomplete=cfg.data.allow_incomplete, boundary=cfg.data.boundary
        )
        name = cfg.name or cfg.model.arch
        if cfg.trainer.default_root_dir is None:
            # where Lightning puts checkpoints when there is no logger (fast_dev_run): the run dir,
            # never the current directory
            cfg.trainer.default_root_dir = str(Path(cfg.runs_dir) / name)
        if cfg.trainer.logger in (None, True):
            cfg.trainer.logger = Namespace(
                class_path="pytorch_lightning.loggers.TensorBoardLogger",
                init_args=Namespace(
                    save_dir=cfg.runs_dir, name=name, log_graph=True, default_hp_metric=False
                ),
            )
        if cfg.overfit_one:
            cfg.data.train_limit = 1
            cfg.data.batch_size = 1
            cfg.data.augment_mirror = False
            cfg.model.weight_decay = 0.0
            cfg.model.schedule = "constant"
            cfg.trainer.limit_val_batches = 0
            cfg.trainer.log_every_n_steps = 1
            cfg.checkpoint.monitor = TRAIN_LOSS
            cfg.images.n_samples = 0
            cfg.test = False

    def after_instantiate_classes(self) -> None:
        set_collective_timeout(self.trainer.strategy, float(self.config.ddp_timeout_s))
        set_torch_threads(max(1, int(self.trainer.num_devices)))
        callbacks: list[Any] = self.trainer.callbacks  # type: ignore[attr-defined]
        if self.trainer.loggers:  # it refuses a Trainer without logger (--trainer.logger false)
            callbacks.append(LearningRateMonitor(logging_interval="epoch"))
        callbacks.append(RunRecorder(test=bool(self.config.test)))
        if self.config.overfit_one:
            callbacks.append(
                EarlyStopping(
                    monitor=TRAIN_LOSS,
                    stopping_threshold=OVERFIT_LOSS,
                    patience=10**9,
                    check_on_train_epoch_end=True,
                )
            )


def torch_threads(processes: int) -> int:
    """Torch threads of each training process on this machine.

    ``MICROSTRAIN_TORCH_THREADS=N`` fixes them; else ``OMP_NUM_THREADS`` if set (by the user, or
    by the process that started this rank: every rank of a machine gets the same number); else
    ``auto``: as many as the other processes leave cores for, at most this process's share of
    the cores (:func:`microstrain.hardware.free_core_threads`, the rule serving's small requests
    follow). On a busy machine a second thread waits for a core and slows every step.
    """
    raw = os.environ.get(THREADS_ENV_VAR, "auto").strip().lower() or "auto"
    share = max(1, usable_cores() // processes)
    if raw != "auto":
        try:
            value = int(raw)
        except ValueError:
            raise MicrostrainError(
                f"{THREADS_ENV_VAR}={raw!r} is neither 'auto' nor a whole number"
            ) from None
        if value < 1:
            raise MicrostrainError(f"{THREADS_ENV_VAR} must be at least 1; got {value}")
        return value
    if os.environ.get("OMP_NUM_THREADS", "").strip().isdigit():
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    return free_core_threads(share)


def set_torch_threads(processes: int) -> None:
    """Set :func:`torch_threads` for this process and the ranks it starts (OMP_NUM_THREADS,
    which Lightning's DDP also respects instead of its cores / processes)."""
    threads = torch_threads(processes)
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)


def _fmt(metrics: dict[str, float]) -> str:
    keys = (
        "strain_relative_l2",
        "stress_relative_l2",
        "energy_norm_error",
        "E_x_error_mean",
        "strain_relative_l2_matrix",
        "strain_relative_l2_fiber",
    )
    return ", ".join(f"{k} {metrics[k]:.4f}" for k in keys if k in metrics)


def main(argv: list[str]) -> StrainCLI:
    """Parse ``argv`` like ``microstrain train`` and run the fit (+ test of the best checkpoint)."""
    # argv comes from the typer command, which already consumed sys.argv on purpose.
    warnings.filterwarnings("ignore", message=".*args parameter is intended to run from within")
    # every epoch value is logged already reduced over the ranks (StrainRegressor._log_reduced):
    # Lightning's advice to reduce it again with sync_dist is what made the ranks hang
    warnings.filterwarnings("ignore", message=".*sync_dist=True.* when logging on epoch level")
    cli = StrainCLI(
        StrainRegressor,
        StrainDataModule,
        args=argv,
        run=False,
        auto_configure_optimizers=False,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={"max_epochs": 100, "accelerator": "auto", "log_every_n_steps": 10},
        seed_everything_default=0,
        parser_kwargs={"prog": "microstrain train", "description": __doc__},
    )
    with StopOnSignal():
        try:
            _fit_and_test(cli)
        except BaseException as exc:
            # the ranks Lightning's launcher started would wait for this one until their own
            # timeout (Lightning ends them on Ctrl-C only)
            end_started_ranks(cli.trainer.strategy)
            if not isinstance(exc, RuntimeError):  # torch's distributed errors are these
                raise
            error = collective_error(exc, float(cli.config.ddp_timeout_s), cli.trainer.global_rank)
            if error is None:
                raise
            raise error from None
    return cli


def _fit_and_test(cli: StrainCLI) -> None:
    """Fit, test the best checkpoint, print the summary (rank 0)."""
    cfg, trainer, model, datamodule = cli.config, cli.trainer, cli.model, cli.datamodule
    trainer.fit(model, datamodule, ckpt_path=cfg.ckpt_path)
    train_seconds = model.train_seconds  # the whole fit; testing restores an earlier checkpoint
    callback = trainer.checkpoint_callback
    # rank 0 saved it; every rank must test the same file (and a rank that saw other numbers
    # would pick another)
    best = trainer.strategy.broadcast(getattr(callback, "best_model_path", "") or "", src=0)
    if cfg.overfit_one and trainer.is_global_zero:
        assert datamodule.train_set is not None
        youngs_modulus, strain, fiber = datamodule.train_set.batch([0])
        model.eval()
        with torch.no_grad():
            pred = model.predict_strain(youngs_modulus.to(model.device)).cpu()
        err = measures_of(pred, strain.cpu(), fiber.cpu(), model.physics.plane)
        loss = float(trainer.callback_metrics.get(TRAIN_LOSS, float("nan")))
        print(
            f"overfit-one: {trainer.current_epoch} epochs, final loss {loss:.3g} (normalized MSE); "
            f"SPEC §9 errors on the sample: {_fmt(err)}"
        )
    elif cfg.test and best:
        # every rank tests (DDP collectives); the best checkpoint's weights and its own
        # validation metrics are restored from the file, which stays as it is
        trainer.test(model, datamodule, ckpt_path=best, verbose=False)
        if trainer.is_global_zero:
            print(f"validation (best checkpoint): {_fmt(model.val_results)}")
            print(f"test (best checkpoint): {_fmt(model.test_results)}")
    if trainer.is_global_zero:
        print(f"train time {train_seconds:.1f} s on {model.hardware}")
        callbacks: list[Any] = trainer.callbacks  # type: ignore[attr-defined]
        recorder = next(c for c in callbacks if isinstance(c, RunRecorder))
        if recorder.written is not None:
            print(f"run record: {recorder.written}")
        print(f"best checkpoint: {best}", file=sys.stdout)


def load_datamodule(ckpt_path: str, **overrides: Any) -> StrainDataModule:
    """The datamodule (same file, same split) a checkpoint was trained with; ``overrides`` win."""
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    saved = ckpt.get("datamodule_hyper_parameters", {})
    # "_instantiator" and the like are Lightning's bookkeeping, not arguments
    hparams = {k: v for k, v in saved.items() if not str(k).startswith("_")}
    hparams.update(overrides)
    return StrainDataModule(**hparams)
