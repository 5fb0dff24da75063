"""TensorBoard pictures: predicted vs true strain on fixed validation samples.

The lecture tracks training progress by looking at outputs next to labels; this callback logs one
figure per validation epoch (every ``every_n_epochs``) with, for each of the first ``n_samples``
validation samples, the modulus and each strain channel as truth, prediction and error.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch


def prediction_figure(youngs_modulus: np.ndarray, truth: np.ndarray, prediction: np.ndarray) -> Any:
    """Matplotlib figure: rows = samples; columns = E, then truth/prediction/error per channel.

    ``youngs_modulus`` ``[n, 1, 32, 32]`` MPa; ``truth``, ``prediction`` ``[n, 3, 32, 32]``.
    Truth and prediction share one colour range per sample and channel (colour rules of
    :mod:`microstrain.plots`).
    """
    from microstrain import plots

    rows = [
        plots.comparison_panels(youngs_modulus[i, 0], truth[i], prediction[i])
        for i in range(youngs_modulus.shape[0])
    ]
    return plots.figure(rows, panel_size=(1.9, 1.7), axes_labels=False, font_size=7)


class PredictionImages(pl.Callback):
    """Log :func:`prediction_figure` of the first ``n_samples`` validation samples."""

    def __init__(self, n_samples: int = 4, every_n_epochs: int = 5) -> None:
        self.n_samples = n_samples
        self.every_n_epochs = max(every_n_epochs, 1)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.n_samples <= 0 or not trainer.is_global_zero:
            return
        epoch = trainer.current_epoch
        last = trainer.max_epochs is not None and epoch + 1 >= trainer.max_epochs
        if epoch % self.every_n_epochs and not last:
            return
        logger = trainer.logger
        experiment = getattr(logger, "experiment", None)
        if experiment is None or not hasattr(experiment, "add_figure"):
            return
        val_set = getattr(getattr(trainer, "datamodule", None), "val_set", None)
        if val_set is None or len(val_set) == 0:
            return
        idx = list(range(min(self.n_samples, len(val_set))))
        youngs_modulus, strain, _ = val_set.batch(idx)
        with torch.no_grad():
            pred = pl_module.predict_strain(youngs_modulus.to(pl_module.device))  # type: ignore[operator]
        if pred.ndim == 5:  # a periodic model's unit cases [N, 3, 3, n, n]: the xx case shown
            pred, strain = pred[:, 0], strain[:, 0]
        fig = prediction_figure(
            youngs_modulus.float().cpu().numpy(),
            strain.float().cpu().numpy(),
            pred.float().cpu().numpy(),
        )
        experiment.add_figure("val/prediction_vs_truth", fig, global_step=trainer.global_step)
