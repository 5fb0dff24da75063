"""Strain networks by name: ``REGISTRY[name](**kwargs) -> nn.Module``.

Every entry maps normalized modulus ``[N, 1, 32, 32]`` to normalized strain ``[N, 3, 32, 32]``
(see :mod:`training.normalization`); the networks know nothing of Lightning. One family per
module; add an entry here with its builder and defaults.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from training.architectures.course import course_cnn, course_unet, course_unet_cnn
from training.architectures.fully_connected import build_fc_strain
from training.architectures.graph import build_gnn_strain
from training.architectures.recurrent import build_rnn_strain
from training.architectures.resunet import res_unet

REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "course-cnn": course_cnn,
    "course-unet": course_unet,
    "course-unet-cnn": course_unet_cnn,
    "res-unet": res_unet,
    # the lecture's other architectures, as baselines (training/baselines/strain.py)
    "fc-strain": build_fc_strain,
    "gnn-strain": build_gnn_strain,
    "rnn-strain": build_rnn_strain,
}


def build(name: str, **kwargs: object) -> nn.Module:
    """Build the registry network ``name`` with keyword overrides of its defaults."""
    try:
        builder = REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise ValueError(f"unknown architecture {name!r}; known: {known}") from None
    return builder(**kwargs)


def parameter_count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
