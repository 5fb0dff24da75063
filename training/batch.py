"""What the datasets hand to training: a batch of samples, the split, the mirror augmentation.

A batch is ``(E, strain, fiber)``: E ``[B, 1, 32, 32]`` MPa, strain ``[B, 3, 32, 32]`` for
ū = 0.1 and the boolean fiber mask ``[B, 1, 32, 32]`` the metrics need, computed with the core's
rule (:func:`microstrain.fields.fiber_mask`). Both the in-memory and the streamed datasets
(:mod:`training.data`, :mod:`training.lazy_data`) make them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from training.physics import mirror_x


class StrainBatch(NamedTuple):
    """E ``[B, 1, 32, 32]`` MPa, strain ``[B, 3, 32, 32]`` fiber ``[B, 1, 32, 32]`` bool."""

    youngs_modulus: torch.Tensor
    strain: torch.Tensor
    fiber: torch.Tensor


@dataclass(frozen=True)
class Split:
    """Sorted sample indices of the file: train, validation and test (int64 arrays)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def random_mirror(batch: StrainBatch) -> StrainBatch:
    """Each sample of ``batch`` x-mirrored (:func:`training.physics.mirror_x`, its fiber mask
    with it) with probability 1/2, drawn from torch's global generator on the batch's device."""
    e, s, f = batch
    flip = torch.rand(e.shape[0], device=e.device).view(-1, 1, 1, 1) < 0.5  # [B, 1, 1, 1]
    e_m, s_m = mirror_x(e, s)
    return StrainBatch(
        torch.where(flip, e_m, e), torch.where(flip, s_m, s), torch.where(flip, f.flip(-1), f)
    )
