"""Accuracy metrics in physical units (strain for ū = 0.1), given the fiber mask of each sample.

Relative L2 error, the figure of merit of this project::

    rel_L2 = sqrt( Σ (pred − true)² ) / sqrt( Σ true² )

where the sums run over all samples and all pixels of the selected entries (NOT a mean of
per-sample ratios):

- ``overall``: all three channels;
- ``eps_xx``, ``eps_yy``, ``gamma_xy``: that channel only;
- ``fiber``, ``matrix``: the pixels of that phase, all three channels.

Also ``mse``: mean squared error over all entries (strain², physical units).

The phases come as a boolean fiber mask ``[N, 1, 32, 32]`` that the datamodule computes once with
the core's rule (:func:`microstrain.fields.fiber_mask`); nothing here looks at values to guess
what a tensor is, and nothing reads a value back to the host, so a GPU step never waits.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric

from microstrain.conventions import STRAIN_CHANNELS

METRIC_NAMES = ("overall", *STRAIN_CHANNELS, "fiber", "matrix")


def squared_sums(
    pred: torch.Tensor, target: torch.Tensor, fiber: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Σ error² and Σ true² for each entry of :data:`METRIC_NAMES` -> two float64 ``[6]``.

    ``pred``, ``target``: strain ``[N, 3, 32, 32]``; ``fiber``: bool ``[N, 1, 32, 32]``.
    """
    if fiber.dtype != torch.bool:
        raise TypeError(f"fiber must be a bool mask [N, 1, 32, 32], got {fiber.dtype}")
    err2 = (pred.double() - target.double()).square()  # [N, 3, 32, 32]
    true2 = target.double().square()
    zero = err2.new_zeros(())
    # where() instead of boolean indexing: indexing needs the count of True on the host (a sync)
    num = [
        err2.sum(),
        *err2.sum(dim=(0, 2, 3)),
        torch.where(fiber, err2, zero).sum(),
        torch.where(fiber, zero, err2).sum(),
    ]
    den = [
        true2.sum(),
        *true2.sum(dim=(0, 2, 3)),
        torch.where(fiber, true2, zero).sum(),
        torch.where(fiber, zero, true2).sum(),
    ]
    return torch.stack(num), torch.stack(den)


def relative_l2(pred: torch.Tensor, target: torch.Tensor, fiber: torch.Tensor) -> dict[str, float]:
    """Relative L2 errors (see module docstring) of raw strain ``[N, 3, 32, 32]``.

    ``fiber``: bool fiber mask ``[N, 1, 32, 32]``. A phase absent from the batch gives ``nan``
    for that phase.
    """
    num, den = squared_sums(pred, target, fiber)
    ratio = (num / den).sqrt()
    return {name: float(v) for name, v in zip(METRIC_NAMES, ratio, strict=True)}


class RelativeL2(Metric):
    """Epoch-level :func:`relative_l2` plus MSE, accumulated over batches (and DDP ranks).

    ``compute()`` returns ``{"rel_l2/overall": ..., "rel_l2/eps_xx": ..., ..., "mse": ...}``.
    """

    full_state_update = False
    num: torch.Tensor
    den: torch.Tensor
    count: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        n = len(METRIC_NAMES)
        self.add_state("num", torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("den", torch.zeros(n, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(  # type: ignore[override]
        self, pred: torch.Tensor, target: torch.Tensor, fiber: torch.Tensor
    ) -> None:
        num, den = squared_sums(pred, target, fiber)
        self.num += num
        self.den += den
        self.count += target.numel()

    def compute(self) -> dict[str, torch.Tensor]:  # type: ignore[override]
        ratio = (self.num / self.den).sqrt()
        out = {f"rel_l2/{name}": ratio[i].float() for i, name in enumerate(METRIC_NAMES)}
        out["mse"] = (self.num[0] / self.count).float()
        return out
