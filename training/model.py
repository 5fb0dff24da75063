"""The shipped surrogate: normalizer ∘ network ∘ exact physics, one plain ``nn.Module``.

:class:`Surrogate` is the product. Training holds it (the LightningModule delegates ``forward``
to it), export traces it into ``model.onnx``, and tests target it; :mod:`microstrain.surrogate`
is its ONNX twin that every later stage runs. Its forward pass::

    x = physics.network_input(E)                          # raw MPa, the batch the network sees
    y = normalizer.decode_output(net(normalizer.encode_input(x)))
    outputs = physics(E, x, y, estimate)                  # {"strain": ...}: the graph's outputs

returns a dict whose keys are the ONNX graph's output names, in order.

**The physics slot.** A physics module (an ``nn.Module`` without parameters or buffers: nothing
of it enters the ``state_dict``; its options rebuild it) provides:

- ``kind``: its name in :data:`PHYSICS` (``"uniaxial"``: :class:`training.physics.Physics`;
  ``"periodic"``: SPEC §11);
- ``network_channels``: how many output channels the network must have (uniaxial 3, periodic 9),
  also the normalizer's number of output channels;
- ``output_quantity``: what the normalizer's output statistics describe (``"strain"``,
  ``"stress"``; a physics whose network output is not standardized says so with a
  :meth:`output_target` that returns None, and the output statistics stay 0 and 1);
- ``has_error_estimate`` (it can compute one) and ``estimate_by_default`` (export adds it unless
  told otherwise);
- ``output_names(error_estimate: bool) -> tuple[str, ...]``: the graph's outputs in order, the
  first always ``strain`` (uniaxial: ``strain`` [, ``error_estimate``]; periodic: ``strain``,
  ``C_eff`` [, ``error_estimate``]);
- ``network_input(E) -> Tensor``: raw E ``[N, 1, n, n]`` MPa -> the raw E batch the network sees
  (``[G·N, 1, n, n]``, e.g. the batch and its mirror images; ``E`` itself when none);
- ``forward(E, network_input, output, estimate) -> dict[str, Tensor]``: from raw E, that batch and
  the de-normalized float32 network output ``[G·N, network_channels, n, n]``, the outputs named
  by ``output_names(estimate)`` (the estimate only where the pass can give one, e.g. not in a
  training pass of unsymmetrized halves): ``strain`` ``[N, 3, n, n]`` uniaxial or
  ``[N, 3, 3, n, n]`` periodic, for ū = 0.1; ``C_eff`` ``[N, 3, 3]`` MPa; ``error_estimate``
  ``[N]``;
- ``output_target(E, strain) -> Tensor | None``: of training samples (E ``[n, 1, n, n]`` MPa,
  the dataset's strain), the raw quantity the de-normalized output stands for, whose per-channel
  statistics the normalizer takes (``[n, network_channels, n, n]``), or None;
- ``options() -> dict``: JSON keyword arguments that rebuild it (cards, ``weights.pt``).

A new kind of model is a new entry of :data:`PHYSICS` and a network of its channel count: the
normalizer, the constructor from a checkpoint, ``weights.pt``, export and parity come with it.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

from microstrain.conventions import ONNX_ERROR_ESTIMATE, ONNX_OUTPUT
from microstrain.errors import MicrostrainError
from training.architectures import build
from training.normalization import Normalizer, fit_normalizer
from training.periodic_physics import PeriodicPhysics
from training.physics import Physics
from training.weights import (
    GROUP_NORM_KEY,
    SurrogateConfig,
    identity_batch_norm,
    onnx_weights,
    read_weights,
)

# kind -> constructor taking the options of ``physics.options()``
PHYSICS: dict[str, Callable[..., nn.Module]] = {"uniaxial": Physics, "periodic": PeriodicPhysics}


def build_physics(kind: str, options: dict[str, Any]) -> Any:
    """The physics of ``kind`` (:data:`PHYSICS`) with ``options``; one error line otherwise."""
    if kind not in PHYSICS:
        raise MicrostrainError(f"unknown physics {kind!r}; known: {', '.join(PHYSICS)}")
    try:
        return PHYSICS[kind](**options)
    except (TypeError, ValueError) as exc:
        raise MicrostrainError(f"physics {kind!r} with options {options}: {exc}") from None


class Surrogate(nn.Module):
    """``physics ∘ denormalizer ∘ net ∘ normalizer``: raw E (MPa) in, the graph's outputs out.

    Args:
        net: the network (``[N, 1, n, n]`` normalized E -> ``[N, C, n, n]``, C =
            ``physics.network_channels``); it knows nothing of units or physics.
        normalizer: its input and output standardization (:mod:`training.normalization`).
        physics: the exact maps around it (the slot of the module docstring).
        error_estimate: whether :meth:`forward` returns the physics' error estimate; None: the
            physics' ``estimate_by_default``.

    The ``state_dict`` is ``net.*`` and ``normalizer.*``: the weights and the units.
    """

    physics: Any  # a physics module of the slot (module docstring)

    def __init__(
        self,
        net: nn.Module,
        normalizer: Normalizer,
        physics: nn.Module,
        error_estimate: bool | None = None,
    ) -> None:
        super().__init__()
        self.net = net
        self.normalizer = normalizer
        self.physics = physics
        wanted = physics.estimate_by_default if error_estimate is None else error_estimate
        self.error_estimate = bool(wanted and physics.has_error_estimate)

    @classmethod
    def from_config(cls, config: SurrogateConfig, error_estimate: bool | None = None) -> Surrogate:
        """A freshly initialized surrogate: the registry's network, an identity normalizer."""
        physics = build_physics(config.physics, config.physics_options)
        try:
            net = build(config.arch, **config.arch_kwargs)
        except (ValueError, TypeError) as exc:  # an unknown name, option or value: one line
            raise MicrostrainError(
                f"model {config.arch!r} with arch_kwargs {config.arch_kwargs}: {exc}"
            ) from None
        normalizer = Normalizer(physics.output_quantity, physics.network_channels)
        return cls(net, normalizer, physics, error_estimate)

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike[str], error_estimate: bool | None = None
    ) -> Surrogate:
        """The surrogate of a checkpoint of ``microstrain train`` (``.ckpt``), of a
        ``weights.pt`` or of a model directory holding one (:mod:`training.weights`), in eval
        mode on the CPU."""
        config, state = read_weights(path)
        surrogate = cls.from_config(config, error_estimate)
        try:
            surrogate.load_state_dict(state)
        except RuntimeError as exc:  # missing, unexpected or misshapen weights
            first = str(exc).splitlines()[0]
            raise MicrostrainError(f"{path}: weights do not fit {config.arch}: {first}") from None
        return surrogate.cpu().float().eval()

    @classmethod
    def from_onnx(cls, model_dir: str | os.PathLike[str]) -> tuple[Surrogate, SurrogateConfig]:
        """The surrogate whose export is ``model_dir``'s ``model.onnx``, rebuilt from the graph's
        initializers and the card's configuration (:func:`training.weights.onnx_weights`), in
        eval mode; and that configuration."""
        config, found, folded = onnx_weights(model_dir)
        surrogate = cls.from_config(config).eval()  # a forward pass below leaves BatchNorms be
        for name, module in surrogate.net.named_modules():
            if f"net.{name}" in folded and isinstance(module, nn.BatchNorm2d):
                identity_batch_norm(module)
        for index, name in enumerate(_group_norms_in_call_order(surrogate)):
            for what in ("weight", "bias"):
                found[f"{name}.{what}"] = found.pop(GROUP_NORM_KEY.format(index=index, what=what))
        state = surrogate.state_dict()
        missing = []
        for name, value in state.items():
            if name in found:
                state[name] = (
                    torch.from_numpy(found[name].copy()).to(value.dtype).reshape(value.shape)
                )
            elif name.rsplit(".", 1)[0] not in folded and not name.endswith("num_batches_tracked"):
                missing.append(name)
        if missing:
            raise MicrostrainError(f"{model_dir}: the graph lacks weights {', '.join(missing[:3])}")
        surrogate.load_state_dict(state)
        return surrogate.eval(), config

    @property
    def config(self) -> dict[str, Any]:
        """The physics' kind and options (the network's are the caller's to record)."""
        return {"physics": self.physics.kind, "physics_options": self.physics.options()}

    @property
    def output_names(self) -> tuple[str, ...]:
        """The keys of :meth:`forward`'s dict: the ONNX graph's output names, in order."""
        return tuple(self.physics.output_names(self.error_estimate))

    def _outputs(self, youngs_modulus: Tensor, estimate: bool) -> dict[str, Tensor]:
        x = self.physics.network_input(youngs_modulus)  # [G N, 1, n, n] MPa
        # float32 for the physics: the network may run in bf16 under mixed precision
        y = self.normalizer.decode_output(self.net(self.normalizer.encode_input(x)).float())
        return self.physics(youngs_modulus, x, y, estimate)  # type: ignore[no-any-return]

    def forward(self, youngs_modulus: Tensor) -> dict[str, Tensor]:
        """Raw E (MPa) ``[N, 1, n, n]`` -> ``{name: tensor}`` for :attr:`output_names`."""
        return self._outputs(youngs_modulus, self.error_estimate)

    def strain(self, youngs_modulus: Tensor) -> Tensor:
        """Only the strain for ū = 0.1 (no estimate computed): what training compares."""
        return self._outputs(youngs_modulus, False)[ONNX_OUTPUT]

    def forward_with_estimate(self, youngs_modulus: Tensor) -> tuple[Tensor, Tensor | None]:
        """(strain, error estimate ``[N]`` or None where the physics gives none)."""
        outputs = self._outputs(youngs_modulus, True)
        return outputs[ONNX_OUTPUT], outputs.get(ONNX_ERROR_ESTIMATE)

    def fit_normalizer(self, pieces: Iterable[tuple[Tensor, Tensor]]) -> None:
        """Fit the normalizer on training samples, the one place it is fitted: ``pieces`` are
        chunks (E ``[n, 1, n, n]`` MPa, strain as in the dataset) of the training split,
        unaugmented; the output statistics are those of ``physics.output_target``."""
        target = self.physics.output_target

        def chunks() -> Iterable[tuple[Tensor, Tensor | None]]:
            for youngs_modulus, strain in pieces:
                yield youngs_modulus, target(youngs_modulus, strain)

        fitted = fit_normalizer(chunks(), self.normalizer.output, self.physics.network_channels)
        self.normalizer.load_state_dict(fitted.state_dict())


def _group_norms_in_call_order(surrogate: Surrogate) -> list[str]:
    """State-dict paths (``net.…``) of the network's GroupNorms in the order a forward pass
    calls them: the order of their nodes in an exported graph."""
    order: list[str] = []
    names = {m: f"net.{n}" for n, m in surrogate.net.named_modules()}
    if not any(isinstance(m, nn.GroupNorm) for m in names):
        return order
    hooks = [
        m.register_forward_hook(lambda module, *_: order.append(names[module]))
        for m in surrogate.net.modules()
        if isinstance(m, nn.GroupNorm)
    ]
    try:
        with torch.no_grad():
            surrogate.net(torch.zeros(1, 1, 32, 32))
    finally:
        for hook in hooks:
            hook.remove()
    return order


class GraphOutputs(nn.Module):
    """A :class:`Surrogate` answering a tuple in :attr:`Surrogate.output_names` order: what
    the ONNX exporter traces (the names become the graph's output names)."""

    def __init__(self, surrogate: Surrogate) -> None:
        super().__init__()
        self.surrogate = surrogate

    def forward(self, youngs_modulus: Tensor) -> tuple[Tensor, ...]:
        outputs = self.surrogate(youngs_modulus)
        return tuple(outputs[name] for name in self.surrogate.output_names)


def eval_copy(surrogate: Surrogate) -> Surrogate:
    """An eval-mode float32 CPU copy (export's), leaving ``surrogate``'s training state alone."""
    return copy.deepcopy(surrogate).cpu().float().eval()
