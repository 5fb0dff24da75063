"""Fully connected networks: the lecture's MLP family and a strain-field baseline on flat images.

``mlp`` builds the plain stack ``Linear → σ → … → Linear`` used by the sine experiment, the
capacity examples and the dynamics networks. ``FullyConnectedStrain`` flattens the 32×32 modulus
image into one vector, so every output pixel may depend on every input pixel but nothing about
neighbourhoods is built in: it is the baseline that shows what the convolutions buy.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from microstrain.conventions import GRID, N_STRAIN

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "softplus": nn.Softplus,
    "silu": nn.SiLU,
}

# The lecture's capacity slide (2 inputs, 1 output): (hidden layers, neurons per layer).
CAPACITY_EXAMPLES: tuple[tuple[int, int], ...] = (
    (2, 300),
    (5, 150),
    (2, 100),
    (5, 100),
    (10, 100),
    (5, 800),
)


def activation(name: str) -> nn.Module:
    """A fresh activation module by name (``tanh``, ``relu``, ``gelu``, ``softplus``, ``silu``)."""
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(
            f"unknown activation {name!r}; choose from {sorted(ACTIVATIONS)}"
        ) from None


def mlp(
    in_features: int,
    out_features: int,
    hidden: Sequence[int],
    act: str = "tanh",
) -> nn.Sequential:
    """``Linear(in, h1) → σ → … → Linear(h_last, out)``; no activation on the output.

    PyTorch's default initialisation (uniform with bounds ±1/√fan_in) is kept: it is the
    "uniform distribution with special bounds" of the lecture's sine example.
    """
    widths = [in_features, *hidden]
    layers: list[nn.Module] = []
    for w_in, w_out in itertools.pairwise(widths):
        layers += [nn.Linear(w_in, w_out), activation(act)]
    layers.append(nn.Linear(widths[-1], out_features))
    return nn.Sequential(*layers)


def count_parameters(module: nn.Module) -> int:
    """Number of trainable scalars (weights and biases)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def capacity_table(
    examples: Sequence[tuple[int, int]] = CAPACITY_EXAMPLES, in_features: int = 2
) -> list[dict[str, int]]:
    """Parameter counts of the capacity examples, computed by building each network."""
    rows = []
    for layers, width in examples:
        net = mlp(in_features, 1, [width] * layers)
        rows.append({"layers": layers, "neurons": width, "parameters": count_parameters(net)})
    return rows


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
