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

from microstrain.conventions import STRAIN_CHANNELS


def prediction_figure(youngs_modulus: np.ndarray, truth: np.ndarray, prediction: np.ndarray) -> Any:
    """Matplotlib figure: rows = samples; columns = E, then truth/prediction/error per channel.

    ``youngs_modulus`` ``[n, 1, 32, 32]`` MPa; ``truth``, ``prediction`` ``[n, 3, 32, 32]``.
    Truth and prediction share one colour scale per sample and channel.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    n = youngs_modulus.shape[0]
    cols = 1 + 3 * len(STRAIN_CHANNELS)
    fig, axes = plt.subplots(n, cols, figsize=(1.6 * cols, 1.7 * n), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(youngs_modulus[i, 0], cmap="Greys")
        axes[i, 0].set_title("E" if i == 0 else "", fontsize=7)
        for c, name in enumerate(STRAIN_CHANNELS):
            lo = min(truth[i, c].min(), prediction[i, c].min())
            hi = max(truth[i, c].max(), prediction[i, c].max())
            err = prediction[i, c] - truth[i, c]
            bound = max(float(np.abs(err).max()), 1e-12)
            panels = [
                (truth[i, c], "viridis", lo, hi, f"{name} true"),
                (prediction[i, c], "viridis", lo, hi, f"{name} pred"),
                (err, "RdBu_r", -bound, bound, f"{name} err"),
            ]
            for k, (img, cmap, vmin, vmax, title) in enumerate(panels):
                ax = axes[i, 1 + 3 * c + k]
                ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax)
                ax.set_title(title if i == 0 else "", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


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
        youngs_modulus, strain = val_set.__getitems__(idx)
        with torch.no_grad():
            pred = pl_module.predict_strain(youngs_modulus.to(pl_module.device))  # type: ignore[operator]
        fig = prediction_figure(
            youngs_modulus.float().cpu().numpy(),
            strain.float().cpu().numpy(),
            pred.float().cpu().numpy(),
        )
        experiment.add_figure("val/prediction_vs_truth", fig, global_step=trainer.global_step)
