"""Building blocks every network here shares: activations by name, the plain MLP, parameter count.

The strain networks of this package and the baselines' own networks (the sine MLP, the dynamics
networks of :mod:`training.baselines.dynamics_networks`) take their activation by name from
:data:`ACTIVATIONS` and count their parameters with :func:`parameter_count`, so a name means the
same module everywhere and a reported parameter count is always the same sum.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "softplus": nn.Softplus,
    "silu": nn.SiLU,
}


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

    ``[B, in_features] → [B, out_features]``. PyTorch's default initialisation (uniform with
    bounds ±1/√fan_in) is kept: it is the "uniform distribution with special bounds" of the
    lecture's sine example.
    """
    widths = [in_features, *hidden]
    layers: list[nn.Module] = []
    for w_in, w_out in itertools.pairwise(widths):
        layers += [nn.Linear(w_in, w_out), activation(act)]
    layers.append(nn.Linear(widths[-1], out_features))
    return nn.Sequential(*layers)


def parameter_count(net: nn.Module) -> int:
    """Number of trainable scalars (weights and biases)."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
