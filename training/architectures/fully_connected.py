"""Fully connected strain baseline (``fc-strain``): an MLP on the flattened modulus image.

``FullyConnectedStrain`` flattens the 32×32 modulus image into one vector, so every output pixel
may depend on every input pixel but nothing about neighbourhoods is built in: it is the baseline
that shows what the convolutions buy. The plain ``mlp`` stack itself is in
:mod:`training.architectures.layers`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from microstrain.conventions import GRID, N_STRAIN
from training.architectures.layers import activation


@dataclass(frozen=True)
class FullyConnectedStrainConfig:
    hidden: tuple[int, ...] = (256, 256)  # widths of the hidden layers
    act: str = "gelu"
    dropout: float = 0.0


class FullyConnectedStrain(nn.Module):
    """MLP on the flattened image: [N, 1, 32, 32] → [N, 3, 32, 32].

    Input and output are in whatever (normalised) units the training module feeds; the network
    itself is unit-free.
    """

    def __init__(self, config: FullyConnectedStrainConfig | None = None) -> None:
        super().__init__()
        self.config = config or FullyConnectedStrainConfig()
        c = self.config
        widths = [GRID * GRID, *c.hidden]
        layers: list[nn.Module] = []
        for w_in, w_out in itertools.pairwise(widths):
            layers += [nn.Linear(w_in, w_out), activation(c.act)]
            if c.dropout > 0:
                layers.append(nn.Dropout(c.dropout))
        layers.append(nn.Linear(widths[-1], N_STRAIN * GRID * GRID))
        self.net = nn.Sequential(*layers)

    def forward(self, youngs_modulus: torch.Tensor) -> torch.Tensor:
        n = youngs_modulus.shape[0]
        flat = youngs_modulus.reshape(n, GRID * GRID)  # [N, 1024]
        return self.net(flat).reshape(n, N_STRAIN, GRID, GRID)  # [N, 3, 32, 32]


def build_fc_strain(
    hidden: Sequence[int] = (256, 256), act: str = "gelu", dropout: float = 0.0
) -> FullyConnectedStrain:
    """Registry builder for ``fc-strain``."""
    return FullyConnectedStrain(FullyConnectedStrainConfig(tuple(hidden), act, dropout))
