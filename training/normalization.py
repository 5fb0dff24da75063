"""Normalization of network inputs and outputs, kept apart from the networks.

Fitted on the training split only (never on validation or test data), stored as buffers so it
travels in the checkpoint's ``state_dict`` and is baked into the exported ONNX graph.

- input: the modulus ``E`` (MPa) is standardized with one mean and one standard deviation over all
  training pixels (E takes only the two phase values, so this is an affine map of the fiber mask);
- output: each strain channel is standardized with its own mean and standard deviation over all
  training samples and pixels (eps_xx ~ 0.1 and gamma_xy ~ 0 live on different scales).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from microstrain.conventions import N_STRAIN, STRAIN_CHANNELS

# A floor for standard deviations so a constant training field (e.g. one homogeneous sample)
# cannot produce a division by zero.
_MIN_STD = 1e-12


class Normalizer(nn.Module):
    """Affine encoders/decoders; identity until :meth:`fit` or a ``state_dict`` sets them.

    Buffers: ``input_mean``, ``input_std`` (scalars, MPa); ``output_mean``, ``output_std``
    (``[1, 3, 1, 1]``, strain for the dataset's ū rescaled to ū = 0.1).
    """

    input_mean: torch.Tensor
    input_std: torch.Tensor
    output_mean: torch.Tensor
    output_std: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("input_mean", torch.zeros(()))
        self.register_buffer("input_std", torch.ones(()))
        self.register_buffer("output_mean", torch.zeros(1, N_STRAIN, 1, 1))
        self.register_buffer("output_std", torch.ones(1, N_STRAIN, 1, 1))

    @classmethod
    def fit(cls, youngs_modulus: torch.Tensor, strain: torch.Tensor) -> Normalizer:
        """Constants from training data: E ``[N, 1, 32, 32]`` MPa, strain ``[N, 3, 32, 32]``."""
        norm = cls()
        e = youngs_modulus.double()
        s = strain.double()
        norm.input_mean.fill_(e.mean().item())
        norm.input_std.fill_(max(e.std(unbiased=False).item(), _MIN_STD))
        dims = (0, 2, 3)
        norm.output_mean.copy_(s.mean(dim=dims, keepdim=True).float())
        norm.output_std.copy_(s.std(dim=dims, unbiased=False, keepdim=True).clamp_min(_MIN_STD))
        return norm

    def encode_input(self, youngs_modulus: torch.Tensor) -> torch.Tensor:
        """Raw E (MPa) ``[N, 1, 32, 32]`` -> network input ``[N, 1, 32, 32]``."""
        return (youngs_modulus - self.input_mean) / self.input_std

    def encode_output(self, strain: torch.Tensor) -> torch.Tensor:
        """Raw strain ``[N, 3, 32, 32]`` -> normalized units (what the loss compares)."""
        return (strain - self.output_mean) / self.output_std

    def decode_output(self, y: torch.Tensor) -> torch.Tensor:
        """Network output ``[N, 3, 32, 32]`` normalized -> raw strain for ū = 0.1."""
        return y * self.output_std + self.output_mean

    def to_dict(self) -> dict[str, Any]:
        """JSON-able constants (for the model card)."""
        return {
            "input": {
                "quantity": "youngs_modulus_MPa",
                "mean": float(self.input_mean),
                "std": float(self.input_std),
            },
            "output": {
                name: {
                    "mean": float(self.output_mean[0, i, 0, 0]),
                    "std": float(self.output_std[0, i, 0, 0]),
                }
                for i, name in enumerate(STRAIN_CHANNELS)
            },
            "formula": "x = (E - mean) / std; strain = y * std + mean (per channel)",
        }


class PhysicalModel(nn.Module):
    """``normalizer ∘ net ∘ denormalizer``: raw E (MPa) ``[N, 1, 32, 32]`` -> raw strain.

    Output ``[N, 3, 32, 32]`` for ū = 0.1.

    What gets exported to ONNX; contains no data-dependent control flow.
    """

    def __init__(self, net: nn.Module, normalizer: Normalizer) -> None:
        super().__init__()
        self.net = net
        self.normalizer = normalizer

    def forward(self, youngs_modulus: torch.Tensor) -> torch.Tensor:
        return self.normalizer.decode_output(self.net(self.normalizer.encode_input(youngs_modulus)))
