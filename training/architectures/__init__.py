"""Strain networks by name: ``REGISTRY[name](**kwargs) -> nn.Module``.

Every entry maps normalized modulus ``[N, 1, 32, 32]`` to normalized strain ``[N, 3, 32, 32]``
(see :mod:`training.normalization`); the networks know nothing of Lightning. One family per
module: the lecture's candidates (``course.py``), the residual U-Net (``resunet.py``) and the
chapter's other architectures applied to the same strain task (``fully_connected.py``,
``graph.py``, ``recurrent.py``); ``layers.py`` holds the blocks they share. Networks for other
tasks (the sine MLP, the state → rate dynamics networks) live with their experiments in
:mod:`training.baselines`. Add an entry here with its builder and defaults.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from training.architectures.course import course_cnn, course_unet, course_unet_cnn
from training.architectures.layers import parameter_count
from training.architectures.resunet import res_unet

__all__ = ["REGISTRY", "build", "parameter_count"]


# The lecture baselines are built lazily: the graph network pulls in torch_geometric (slow to
# import, and not needed to train or export the CNN candidates), so each entry is a small
# function that imports its module only when called.
def _fc_strain(**kwargs: Any) -> nn.Module:
    from training.architectures.fully_connected import build_fc_strain

    return build_fc_strain(**kwargs)


def _gnn_strain(**kwargs: Any) -> nn.Module:
    from training.architectures.graph import build_gnn_strain

    return build_gnn_strain(**kwargs)


def _rnn_strain(**kwargs: Any) -> nn.Module:
    from training.architectures.recurrent import build_rnn_strain

    return build_rnn_strain(**kwargs)


REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "course-cnn": course_cnn,
    "course-unet": course_unet,
    "course-unet-cnn": course_unet_cnn,
    "res-unet": res_unet,
    # the chapter's other architectures on the strain task (training/baselines/strain.py)
    "fc-strain": _fc_strain,
    "gnn-strain": _gnn_strain,
    "rnn-strain": _rnn_strain,
}


def build(name: str, **kwargs: object) -> nn.Module:
    """Build the registry network ``name`` with keyword overrides of its defaults."""
    try:
        builder = REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise ValueError(f"unknown architecture {name!r}; known: {known}") from None
    return builder(**kwargs)
