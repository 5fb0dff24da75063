"""Normalization of network inputs and outputs, kept apart from the networks.

Fitted on the training split only (never on validation or test data), by
:func:`fit_normalizer` when :meth:`training.model.Surrogate.fit_normalizer` asks, stored as
buffers so it travels in the checkpoint's ``state_dict`` and is baked into the exported ONNX
graph.

- input: the modulus ``E`` (MPa) is standardized with one mean and one standard deviation over all
  training pixels (E takes only the two phase values, so this is an affine map of the fiber mask);
- output: each channel of what the network predicts is standardized with its own mean and
  standard deviation over all training samples and pixels (eps_xx ~ 0.1 and gamma_xy ~ 0 live on
  different scales). That is strain by default; a network predicting stress
  (:mod:`training.physics`, ``output_space="stress"``) is given the training stresses'
  statistics: the physics says what its output stands for.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from microstrain.conventions import N_STRAIN, STRAIN_CHANNELS, STRESS_CHANNELS

# A floor for standard deviations so a constant training field (e.g. one homogeneous sample)
# cannot produce a division by zero.
_MIN_STD = 1e-12


# what the network outputs -> (channel names, unit in the card)
OUTPUT_QUANTITIES = {"strain": (STRAIN_CHANNELS, "strain"), "stress": (STRESS_CHANNELS, "MPa")}


def fit_normalizer(
    pieces: Iterable[tuple[torch.Tensor, torch.Tensor | None]],
    output: str = "strain",
    channels: int = N_STRAIN,
) -> Normalizer:
    """A normalizer fitted on training samples given chunk by chunk: E ``[n, 1, 32, 32]`` MPa and
    what the network's de-normalized output stands for ``[n, channels, 32, 32]`` (None: the
    output is left unstandardized). One streamed pass of :func:`channel_statistics`."""
    norm = Normalizer(output, channels)
    standardized = True

    def joined() -> Iterable[torch.Tensor]:
        nonlocal standardized
        for youngs_modulus, target in pieces:
            standardized = target is not None
            if target is None:
                yield youngs_modulus
            else:
                yield torch.cat([youngs_modulus.double(), target.double()], dim=1)

    mean, std = channel_statistics(joined())  # float64 [1, 1 (+ channels), 1, 1]
    norm.input_mean.fill_(float(mean[0, 0]))
    norm.input_std.fill_(float(std[0, 0]))
    if standardized:
        norm.set_output_statistics(mean[:, 1:], std[:, 1:])
    return norm


def channel_statistics(chunks: Iterable[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation (float64 ``[1, C, 1, 1]``) over all samples and
    pixels of ``[n, C, 32, 32]`` chunks, in one pass: each chunk's mean and sum of squared
    deviations are merged in float64 (Chan et al.), so the chunks can be streamed and the whole
    split never exists as one float64 tensor. The deviation is floored at ``_MIN_STD``.
    """
    dims = (0, 2, 3)
    count, mean, squares = 0, torch.zeros(()), torch.zeros(())
    for chunk in chunks:
        c = chunk.detach().double().cpu()
        n = c.shape[0] * c.shape[2] * c.shape[3]
        if n == 0:
            continue
        m = c.mean(dim=dims, keepdim=True)
        delta = m - mean
        squares = squares + (c - m).square().sum(dim=dims, keepdim=True)
        squares = squares + delta.square() * (count * n / (count + n))
        mean = mean + delta * (n / (count + n))
        count += n
    if count == 0:
        raise ValueError("channel_statistics of no samples")
    return mean, (squares / count).sqrt().clamp_min(_MIN_STD)


class Normalizer(nn.Module):
    """Affine encoders/decoders; identity until :meth:`fit` or a ``state_dict`` sets them.

    Buffers: ``input_mean``, ``input_std`` (scalars, MPa); ``output_mean``, ``output_std``
    (``[1, 3, 1, 1]``, strain for the dataset's ū rescaled to ū = 0.1, or with
    ``output="stress"`` the stress of that strain in MPa).
    """

    input_mean: torch.Tensor
    input_std: torch.Tensor
    output_mean: torch.Tensor
    output_std: torch.Tensor

    def __init__(self, output: str = "strain", channels: int = N_STRAIN) -> None:
        super().__init__()
        self.output = output  # what the network's output channels are (not a buffer)
        self.register_buffer("input_mean", torch.zeros(()))
        self.register_buffer("input_std", torch.ones(()))
        self.register_buffer("output_mean", torch.zeros(1, channels, 1, 1))
        self.register_buffer("output_std", torch.ones(1, channels, 1, 1))

    def set_output_statistics(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Output constants ``[1, 3, 1, 1]`` (e.g. :func:`channel_statistics` of stresses)."""
        self.output_mean.copy_(mean.to(self.output_mean))
        self.output_std.copy_(std.to(self.output_std))

    def encode_input(self, youngs_modulus: torch.Tensor) -> torch.Tensor:
        """Raw E (MPa) ``[N, 1, 32, 32]`` -> network input ``[N, 1, 32, 32]``."""
        return (youngs_modulus - self.input_mean) / self.input_std

    def encode_output(self, strain: torch.Tensor) -> torch.Tensor:
        """Raw strain (or stress) ``[N, 3, 32, 32]`` -> normalized units (what MSE compares)."""
        return (strain - self.output_mean) / self.output_std

    def decode_output(self, y: torch.Tensor) -> torch.Tensor:
        """Network output ``[N, 3, 32, 32]`` normalized -> raw strain (or stress) for ū = 0.1."""
        return y * self.output_std + self.output_mean

    def to_dict(self) -> dict[str, Any]:
        """JSON-able constants (for the model card); ``output`` keyed by the output's channels."""
        channels, unit = OUTPUT_QUANTITIES.get(
            self.output, (tuple(str(i) for i in range(self.output_mean.shape[1])), "")
        )
        constants: dict[str, Any] = {
            "input": {
                "quantity": "youngs_modulus_MPa",
                "mean": float(self.input_mean),
                "std": float(self.input_std),
            }
        }
        if self.output != "strain":
            constants["output_quantity"] = f"{self.output} ({unit}) for the model's applied strain"
        constants["output"] = {
            name: {
                "mean": float(self.output_mean[0, i, 0, 0]),
                "std": float(self.output_std[0, i, 0, 0]),
            }
            for i, name in enumerate(channels)
        }
        constants["formula"] = (
            "x = (E - mean) / std; strain = y * std + mean (per channel)"
            if self.output == "strain"
            else f"x = (E - mean) / std; {self.output} = y * std + mean (per channel); "
            "strain = C(E, nu, plane)^-1 stress per pixel (training/physics.py)"
        )
        return constants
