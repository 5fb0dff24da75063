"""The one generic LightningModule: any registry network, trained to predict strain.

Loss (``loss``): ``"mse"`` (default) is the MSE in the network's normalized output units;
``"energy"`` the squared energy-norm error, ``"stress"`` the squared relative stress error,
``"strain"`` the squared relative strain error (each per sample, then averaged;
:mod:`training.measures`), ``"energy+stress"`` and ``"energy+stress+strain"`` their sums. The
physics options ``output_space``, ``mean_strain`` and ``symmetrize`` (:mod:`training.physics`) wrap
the network in training and in the exported graph alike; ``plane`` is the dataset's unless given.
With every option at its default the computation is the bare network's plain MSE on normalized
strain, bit for bit: the options add nothing to it or to the exported graph.

Optimizer: Adam or AdamW with weight decay (the lecture's L2 regularization). Learning-rate
schedule per epoch: ``"power"`` is the lecture's ``lr · (β·epoch + 1)^α`` (α < 0 decays),
``"cosine"`` anneals to ``lr · cosine_floor``, ``"constant"`` keeps ``lr``.

Metrics are the SPEC §9 error measures in physical units (strain for ū = 0.1), each per sample
then averaged or maximized: on validation and test ``val/strain_relative_l2`` (the default
checkpoint monitor), per channel and phase, ``val/energy_norm_error``, ``val/E_x_error_mean``, ...
(:func:`training.measures.logged_measures`); in training ``train/strain_relative_l2`` and the loss.
Any of these names can be the checkpoint monitor, and "best" (the checkpoint's validation
metrics kept as ``best_val_metrics``) means best by the configured monitor and its mode.

Checkpoints carry the normalizer (buffers in the ``state_dict``), the hyperparameters (``arch``,
``arch_kwargs``, optimizer, schedule) and, under ``checkpoint["microstrain"]``, what a resumed run
continues from: the accumulated training wall time, its hardware, the best validation metrics so far
and the validation metrics of the checkpoint's own weights. What the run used and achieved (data,
split, test metrics) is written once into its run record (:mod:`training.run_record`).
"""

from __future__ import annotations

import time
from typing import Any, Literal

import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn import functional as F
from torchmetrics import MeanMetric

from microstrain.conventions import DEFAULT_PLANE, ONNX_C_EFF, ONNX_OUTPUT
from microstrain.errors import MicrostrainError
from microstrain.hardware import compute_description
from training.architectures import parameter_count
from training.batch import StrainBatch
from training.measures import (
    ErrorMeasures,
    energy_norm_loss,
    logged_measures,
    strain_loss,
    strain_relative_l2,
    stress,
    stress_loss,
)
from training.model import Surrogate, eval_copy
from training.normalization import Normalizer
from training.periodic_physics import (
    PERIODIC_PLANE,
    c_eff_relative_error,
    mean_stress_stiffness,
    per_case,
)
from training.physics import OUTPUT_SPACES, Physics
from training.weights import CHECKPOINT_KEY, UNIAXIAL_OPTIONS, SurrogateConfig, initial_weights

MONITOR = "val/strain_relative_l2"  # the default checkpoint monitor (mode min)
LOSSES = ("mse", "energy", "stress", "energy+stress", "strain", "energy+stress+strain")


def _data_plane(datamodule: Any) -> str | None:
    """The plane of the datamodule's dataset, None when it says none. Read from the opened
    files (``union``) or the dataset summary already computed (never computed here: it hashes
    every file)."""
    union = getattr(datamodule, "union", None)
    if union is not None and getattr(union, "infos", None):
        return str(union.infos[0].plane)  # the union refuses files of different planes
    summary = vars(datamodule).get("dataset") if datamodule is not None else None
    load_case = (summary or {}).get("load_case") or {}
    plane = load_case.get("plane")
    return None if plane is None else str(plane)


class StrainRegressor(pl.LightningModule):
    """Train ``REGISTRY[arch](**arch_kwargs)`` to map modulus to strain.

    Args:
        arch: registry name of the network.
        arch_kwargs: overrides of the builder's defaults.
        optimizer: ``"adam"`` or ``"adamw"``.
        lr: initial learning rate.
        weight_decay: L2 regularization (Adam: added to the gradient; AdamW: decoupled).
        schedule: ``"constant"``, ``"power"`` (lecture) or ``"cosine"``.
        schedule_beta, schedule_alpha: the lecture's ``lr·(β·epoch + 1)^α``.
        cosine_floor: final learning rate of the cosine schedule as a fraction of ``lr``.
        loss: ``"mse"``, ``"energy"``, ``"stress"``, ``"strain"``, ``"energy+stress"`` or
            ``"energy+stress+strain"`` (module docstring).
        output_space: ``"strain"`` or ``"stress"``: what the network predicts (normalized).
        mean_strain: make the domain mean of ε_xx exactly ū (SPEC §1).
        symmetrize: make the model exactly x-mirror equivariant (SPEC §1).
        symmetrize_training: with ``symmetrize``, also symmetrize in training (default); False:
            only in eval mode and export, the halves trained one by one (use ``augment_mirror``),
            which keeps the mirror's disagreement an error estimate (:mod:`training.physics`).
        plane: ``"stress"`` or ``"strain"`` for the physics, losses and measures; None: the
            dataset's (plane stress when it says none), recorded in the hyperparameters at setup.
        init_from: a checkpoint of ``microstrain train`` whose network weights and normalizer
            this run starts from (a longer schedule, new data, or a norm swap:
            :func:`initial_weights`); None: random weights, the normalizer of the training split.
    """

    def __init__(
        self,
        arch: str = "course-cnn",
        arch_kwargs: dict[str, Any] | None = None,
        optimizer: Literal["adam", "adamw"] = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        schedule: Literal["constant", "power", "cosine"] = "constant",
        schedule_beta: float = 0.1,
        schedule_alpha: float = -0.5,
        cosine_floor: float = 0.01,
        loss: Literal[
            "mse", "energy", "stress", "energy+stress", "strain", "energy+stress+strain"
        ] = "mse",
        output_space: Literal["strain", "stress"] = "strain",
        mean_strain: bool = False,
        symmetrize: bool = False,
        plane: Literal["stress", "strain"] | None = None,
        symmetrize_training: bool = True,
        init_from: str | None = None,
        physics: Literal["uniaxial", "periodic"] = "uniaxial",
        physics_options: dict[str, Any] | None = None,
        c_eff_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if loss not in LOSSES:
            raise MicrostrainError(f"loss must be one of {', '.join(LOSSES)}; got {loss!r}")
        if output_space not in OUTPUT_SPACES:
            raise MicrostrainError(f"output_space must be strain or stress; got {output_space!r}")
        if physics == "periodic":  # SPEC §11: the periodic physics' own options
            options = {"plane": plane or PERIODIC_PLANE, **(physics_options or {})}
        elif physics == "uniaxial":
            options = {k: v for k, v in self.hparams.items() if k in UNIAXIAL_OPTIONS}
            options["plane"] = plane or DEFAULT_PLANE
        else:
            raise MicrostrainError(f"physics must be uniaxial or periodic; got {physics!r}")
        # the product: normalizer ∘ net ∘ physics; its state_dict is this module's (surrogate.*)
        self.surrogate = Surrogate.from_config(
            SurrogateConfig(arch, dict(arch_kwargs or {}), physics, options)
        )
        self.val_c_eff = MeanMetric()  # periodic: ‖Ĉ − C‖_F / ‖C‖_F per sample
        self.test_c_eff = MeanMetric()
        self.train_strain_error = MeanMetric()  # SPEC §9 strain_relative_l2, per sample
        self.val_measures = ErrorMeasures(options["plane"])
        self.test_measures = ErrorMeasures(options["plane"])
        # epoch means of the loss, weighted by batch size; reduced over DDP ranks by
        # torchmetrics in the epoch-end hooks (see _log_reduced)
        self.train_loss = MeanMetric()
        self.val_loss = MeanMetric()
        self.example_input_array = torch.zeros(1, 1, 32, 32)  # for the TensorBoard model graph
        self.best_val_metrics: dict[str, float] = {}
        self._best_monitored: float | None = None  # the monitor's value of best_val_metrics
        self.val_results: dict[str, float] = {}  # the latest validation epoch: these weights
        self.test_results: dict[str, float] = {}
        self.hardware = ""
        self._seconds_before = 0.0  # training wall time of earlier runs (resume, init_from)
        self.init_seconds = 0.0  # of them, the training wall time of the init_from checkpoint
        self._fit_started: float | None = None

    # --- the surrogate ---------------------------------------------------------------------
    @property
    def net(self) -> nn.Module:
        return self.surrogate.net

    @property
    def normalizer(self) -> Normalizer:
        return self.surrogate.normalizer

    @property
    def physics(self) -> Physics:
        return self.surrogate.physics  # type: ignore[return-value]

    def _physics(self, plane: str) -> Physics:
        """The physics options of the hyperparameters, for ``plane``."""
        hp: Any = self.hparams
        return Physics(
            hp.output_space,
            hp.mean_strain,
            hp.symmetrize,
            plane,
            symmetrize_training=hp.symmetrize_training,
        )

    def forward(self, youngs_modulus: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Raw E (MPa) ``[N, 1, 32, 32]`` -> the surrogate's outputs in the graph's order
        (``strain`` ``[N, 3, 32, 32]`` for ū = 0.1, then the error estimate where the model
        gives one): a tuple, as the exported graph and a traced module (TensorBoard) answer."""
        outputs = self.surrogate(youngs_modulus)
        return tuple(outputs[name] for name in self.surrogate.output_names)

    def predict_strain(self, youngs_modulus: torch.Tensor) -> torch.Tensor:
        """Raw E (MPa) ``[N, 1, 32, 32]`` -> raw strain ``[N, 3, 32, 32]`` for ū = 0.1."""
        return self.surrogate.strain(youngs_modulus)

    def physical_model(self) -> Surrogate:
        """Eval-mode float32 CPU copy of the surrogate: what is exported to ONNX. A copy, so
        switching it to eval mode leaves this module's training state alone."""
        return eval_copy(self.surrogate)

    @property
    def parameter_count(self) -> int:
        return parameter_count(self.net)

    # --- fitting ---------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer else None
        self._use_plane(datamodule)
        hp: Any = self.hparams
        if stage == "fit" and hp.init_from:
            # the start's weights and units (their statistics need not be taken again); a
            # resume restores its own afterwards (Lightning restores after setup)
            weights, units, seconds = initial_weights(
                self.net, self.normalizer, self.physics.output_quantity, hp.init_from
            )
            self.net.load_state_dict(weights, strict=False)
            self.normalizer.load_state_dict(units)
            self.init_seconds = self._seconds_before = seconds  # T_train counts the start's
        elif stage == "fit" and datamodule is not None and hasattr(datamodule, "training_pieces"):
            # fitted on the training split; a resumed checkpoint restores the same constants
            # afterwards (same file, same split)
            self.surrogate.fit_normalizer(datamodule.training_pieces())

    def _use_plane(self, datamodule: Any) -> None:
        """Take the plane from the dataset unless given; refuse a contradiction; record it."""
        hp: Any = self.hparams
        data_plane = _data_plane(datamodule)
        if hp.plane is not None and data_plane is not None and data_plane != hp.plane:
            raise MicrostrainError(
                f"the model is set for plane {hp.plane} but the data are plane {data_plane}"
            )
        plane = hp.plane or data_plane or DEFAULT_PLANE
        if self.is_periodic and plane != PERIODIC_PLANE:
            raise MicrostrainError(
                f"the periodic model is plane {PERIODIC_PLANE} (a ply's cross-section); the data "
                f"are plane {plane}: generate them with --plane {PERIODIC_PLANE}"
            )
        hp.plane = plane  # saved with the checkpoint: a restored model builds the same physics
        if plane != self.physics.plane:
            self.surrogate.physics = self._physics(plane)
        self.val_measures.plane = self.test_measures.plane = plane

    @property
    def is_periodic(self) -> bool:
        return bool(self.physics.kind == "periodic")

    @property
    def field_measures(self) -> tuple[str, ...]:
        """The measures of the predicted fields this model is judged by (C_eff apart)."""
        return tuple(k for k in logged_measures(self.is_periodic) if k != "C_eff_error_mean")

    def per_case(self, batch: StrainBatch) -> StrainBatch:
        """What the field metrics compare: the batch itself, or a periodic batch's unit cases
        as ``3 B`` single-case samples (:func:`training.periodic_physics.per_case`)."""
        if not self.is_periodic:
            return batch
        fields, fiber = per_case(batch.strain, batch.fiber)
        return StrainBatch(batch.youngs_modulus.repeat_interleave(3, dim=0), fields, fiber)

    def _step(self, batch: StrainBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, raw predicted strain ``[B, 3, 32, 32]``; periodic: ``[3 B, 3, n, n]``, the
        cases of :meth:`per_case`) of one batch."""
        youngs_modulus, strain, fiber = batch  # [B, 1, 32, 32] MPa, [B, 3, 32, 32], bool mask
        if self.is_periodic:
            return self._periodic_step(batch)
        pred = self.surrogate.strain(youngs_modulus)
        return self._loss(pred, strain, fiber), pred

    def _periodic_step(self, batch: StrainBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """The configured field loss over the three cases plus ``c_eff_weight`` times the mean
        squared relative C_eff error; the reference C_eff is the mean stress of the dataset's
        fields (exactly the FE's: each pixel is one material)."""
        hp: Any = self.hparams
        outputs = self.surrogate._outputs(batch.youngs_modulus, False)
        target = self.per_case(batch)
        pred, _ = per_case(outputs[ONNX_OUTPUT], batch.fiber)  # [3 B, 3, n, n]
        loss = self._loss(pred, target.strain, target.fiber)
        reference = mean_stress_stiffness(
            batch.youngs_modulus, batch.strain, self.physics.plane, self.physics.applied_strain
        )
        error = c_eff_relative_error(outputs[ONNX_C_EFF], reference)  # [B]
        self._c_eff_errors = error.detach()
        return loss + hp.c_eff_weight * (error * error).mean(), pred

    def _loss(self, pred: torch.Tensor, strain: torch.Tensor, fiber: torch.Tensor) -> torch.Tensor:
        """The configured loss of raw strains ``[B, 3, 32, 32]`` given the bool fiber mask."""
        hp: Any = self.hparams
        plane = self.physics.plane
        if hp.loss == "mse":  # in the network's output space, normalized

            def output(field: torch.Tensor) -> torch.Tensor:
                if self.physics.output_space == "stress":
                    return stress(fiber, field, plane)
                return field

            encode = self.normalizer.encode_output
            return F.mse_loss(encode(output(pred)), encode(output(strain)))
        terms, parts = [], set(hp.loss.split("+"))
        if "energy" in parts:
            terms.append(energy_norm_loss(fiber, pred, strain, plane))
        if "stress" in parts:
            terms.append(stress_loss(fiber, pred, strain, plane))
        if "strain" in parts:
            terms.append(strain_loss(pred, strain))
        return torch.stack(terms).sum()

    def training_step(self, batch: StrainBatch, batch_idx: int) -> Any:
        loss, pred = self._step(batch)
        self.train_loss.update(loss.detach(), weight=batch.strain.shape[0])
        target = self.per_case(batch)
        self.train_strain_error.update(strain_relative_l2(pred.detach(), target.strain))
        return loss

    def on_train_epoch_end(self) -> None:
        values = {"train/loss": self.train_loss.compute()}
        values["train/strain_relative_l2"] = self.train_strain_error.compute()
        self.train_loss.reset()
        self.train_strain_error.reset()
        self._log_reduced(values, prog_bar=("train/loss",))

    def _log_reduced(self, values: dict[str, torch.Tensor], prog_bar: tuple[str, ...] = ()) -> None:
        """Log epoch values that torchmetrics has already reduced over the DDP ranks.

        Every reduction of an epoch happens in this module's epoch-end hooks, which every rank
        runs in the same order; what is logged is a finished number that Lightning never reduces
        again. A ``sync_dist`` log (or a logged Metric object) would instead be reduced lazily
        by whoever reads it first: the progress bar on rank 0 alone (before this module's hook),
        the logger connector on the other ranks (after it), so the ranks' collectives would
        come in different orders and the run would hang at the end of the first epoch.
        """
        for name, value in values.items():
            self.log(name, value, prog_bar=name in prog_bar, sync_dist=False)

    def validation_step(self, batch: StrainBatch, batch_idx: int) -> None:
        loss, pred = self._step(batch)
        self.val_loss.update(loss, weight=batch.strain.shape[0])
        target = self.per_case(batch)
        self.val_measures.update(pred, target.strain, target.fiber)
        if self.is_periodic:
            self.val_c_eff.update(self._c_eff_errors)

    def on_validation_epoch_end(self) -> None:
        # the same collectives in the same order on every rank (_log_reduced)
        values = {"val/loss": self.val_loss.compute()}
        measures = self.val_measures.compute()
        values.update({f"val/{k}": measures[k] for k in self.field_measures})
        if self.is_periodic:  # the same on every rank: its collective is in the same order
            values["val/C_eff_error_mean"] = self.val_c_eff.compute()
            self.val_c_eff.reset()
        self.val_loss.reset()
        self.val_measures.reset()
        self._log_reduced(values, prog_bar=(MONITOR,))
        if self.trainer.sanity_checking:
            return
        # one host read per epoch (not per step): the metrics kept with the checkpoint
        self.val_results = {
            k.removeprefix("val/"): float(v) for k, v in values.items() if k != "val/loss"
        }
        self.val_results["epoch"] = self.current_epoch
        monitor, mode = self._monitor()
        if monitor in values:  # the checkpoint's metrics: these weights, if they are the best
            value, best = float(values[monitor]), self._best_monitored
            if best is None or (value < best if mode == "min" else value > best):
                self.best_val_metrics = dict(self.val_results)
                self._best_monitored = value

    def _monitor(self) -> tuple[str, str]:
        """(name, mode) of the metric the checkpoint callback keeps the best by: "best" means
        best by it; the default monitor without a monitoring callback."""
        callback = getattr(self.trainer, "checkpoint_callback", None)
        monitor = getattr(callback, "monitor", None)
        if monitor:
            return str(monitor), str(getattr(callback, "mode", "min"))
        return MONITOR, "min"

    def test_step(self, batch: StrainBatch, batch_idx: int) -> None:
        _, pred = self._step(batch)
        target = self.per_case(batch)
        self.test_measures.update(pred, target.strain, target.fiber)
        if self.is_periodic:
            self.test_c_eff.update(self._c_eff_errors)

    def on_test_epoch_end(self) -> None:
        measures = self.test_measures.compute()
        values = {k: measures[k] for k in self.field_measures}
        if self.is_periodic:
            values["C_eff_error_mean"] = self.test_c_eff.compute()
            self.test_c_eff.reset()
        self.test_measures.reset()
        self._log_reduced({f"test/{k}": v for k, v in values.items()})
        self.test_results = {k: float(v) for k, v in values.items()}

    def configure_optimizers(self) -> Any:
        hp: Any = self.hparams
        opt_cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[hp.optimizer]
        opt = opt_cls(self.net.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        if hp.schedule == "constant":
            return opt
        if hp.schedule == "power":
            beta, alpha = hp.schedule_beta, hp.schedule_alpha
            sched: Any = torch.optim.lr_scheduler.LambdaLR(
                opt, lambda epoch: (beta * epoch + 1.0) ** alpha
            )
        elif hp.schedule == "cosine":
            t_max = max(int(self.trainer.max_epochs or 1), 1)
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(
                opt, T_max=t_max, eta_min=hp.lr * hp.cosine_floor
            )
        else:
            raise ValueError(f"unknown schedule {hp.schedule!r}")
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}

    # --- wall time and checkpoint extras ---------------------------------------------------
    def on_fit_start(self) -> None:
        self._fit_started = time.perf_counter()
        device = self.device
        gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
        self.hardware = compute_description(gpu, torch.get_num_threads())

    def on_fit_end(self) -> None:
        self._seconds_before = self.train_seconds
        self._fit_started = None

    @property
    def train_seconds(self) -> float:
        """Wall time spent fitting, accumulated across resumed runs."""
        running = time.perf_counter() - self._fit_started if self._fit_started else 0.0
        return self._seconds_before + running

    def extras(self) -> dict[str, Any]:
        """What a resumed run continues from (``checkpoint["microstrain"]``)."""
        return {
            "train_seconds": self.train_seconds,
            "init_seconds": self.init_seconds,
            "hardware": self.hardware,
            "best_val_metrics": self.best_val_metrics,
            "best_monitored": self._best_monitored,
            "val_metrics": self.val_results,
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = self.extras()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("state_dict", {})
        for key in [k for k in state if k.startswith(("net.", "normalizer."))]:
            state[f"surrogate.{key}"] = state.pop(key)  # before the surrogate's home
        extras = checkpoint.get(CHECKPOINT_KEY, {})
        self._seconds_before = float(extras.get("train_seconds", 0.0))
        self.init_seconds = float(extras.get("init_seconds", 0.0))
        self.hardware = extras.get("hardware", "")
        self.best_val_metrics = dict(extras.get("best_val_metrics", {}))
        monitored = extras.get("best_monitored")
        self._best_monitored = None if monitored is None else float(monitored)
        self.val_results = dict(extras.get("val_metrics", {}))
