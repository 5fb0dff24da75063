"""The surrogate's weights in files: checkpoints, ``weights.pt``, and starting a run from them.

Three sources hold the weights of a :class:`~training.model.Surrogate` (``net.*``: the network;
``normalizer.*``: its units):

- a Lightning checkpoint of ``microstrain train`` (``.ckpt``): the weights under
  ``surrogate.``, the hyperparameters that rebuild it, the optimizer, the run's extras;
- ``weights.pt`` in a model directory: the weights and the configuration that rebuilds them, no
  optimizer (``torch.load(weights_only=True)`` reads it); its sha256 is in the card
  (``weights_sha256``). What ``--model.init_from models/NAME`` starts from;
- ``model.onnx`` itself (:func:`surrogate_from_onnx`): the graph's initializers carry the same
  names, so a model exported before ``weights.pt`` existed gets one from its graph.

:func:`initial_weights` is the weight surgery of ``init_from``: which weights of a source a new
run takes.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from microstrain.conventions import CARD_FILE, DEFAULT_PLANE, MODEL_FILE
from microstrain.errors import MicrostrainError
from microstrain.files import atomic_output, sha256_of

CHECKPOINT_KEY = "microstrain"  # the run's extras in a checkpoint (training.module)
WEIGHTS_FILE = "weights.pt"
WEIGHTS_FORMAT = "microstrain-weights/1"
_PREFIX = "surrogate."  # the LightningModule holds the surrogate under this name


# the options of the uniaxial physics that the LightningModule takes as hyperparameters
UNIAXIAL_OPTIONS = ("output_space", "mean_strain", "symmetrize", "symmetrize_training", "plane")


@dataclass
class SurrogateConfig:
    """What builds a :class:`Surrogate` before its weights are loaded (JSON-able)."""

    arch: str
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    physics: str = "uniaxial"
    physics_options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_hparams(cls, hparams: dict[str, Any]) -> SurrogateConfig:
        """The configuration of a LightningModule's hyperparameters (a checkpoint's)."""
        kind = hparams.get("physics") or "uniaxial"
        if kind == "uniaxial":
            options = {k: hparams[k] for k in UNIAXIAL_OPTIONS if k in hparams}
            options["plane"] = options.get("plane") or DEFAULT_PLANE
        else:
            options = dict(hparams.get("physics_options") or {})
        arch_kwargs = dict(hparams.get("arch_kwargs") or {})
        return cls(hparams.get("arch", "course-cnn"), arch_kwargs, kind, options)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_checkpoint(checkpoint: str | os.PathLike[str]) -> dict[str, Any]:
    """The dict of a Lightning checkpoint of ``microstrain train``; one error line otherwise."""
    path = Path(checkpoint)
    if not path.is_file():
        raise MicrostrainError(f"checkpoint not found: {path}")
    try:
        # our own Lightning checkpoints hold plain Python containers beside the tensors
        raw = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises pickle/zip/runtime errors for foreign files
        raise MicrostrainError(f"cannot read {path} as a checkpoint: {exc}") from None
    if not isinstance(raw, dict) or "state_dict" not in raw:
        raise MicrostrainError(f"{path} is not a Lightning checkpoint of `microstrain train`")
    return raw


def surrogate_state(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """The ``net.*``/``normalizer.*`` entries of a LightningModule's ``state_dict`` (held under
    ``surrogate.``, or at the top in checkpoints written before the surrogate had its home)."""
    out = {}
    for key, value in state_dict.items():
        name = key.removeprefix(_PREFIX)
        if name.startswith(("net.", "normalizer.")):
            out[name] = value
    return out


def read_card(directory: Path) -> dict[str, Any]:
    """A model directory's ``card.json``; :class:`MicrostrainError` in one line if unreadable."""
    try:
        card = json.loads((directory / CARD_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise MicrostrainError(f"cannot read {directory / CARD_FILE}: {exc}") from None
    return card if isinstance(card, dict) else {}


def _weights_file(path: Path) -> Path:
    """``path`` itself, or a model directory's ``weights.pt`` checked against its card."""
    if not path.is_dir():
        return path
    file = path / WEIGHTS_FILE
    if not file.is_file():
        raise MicrostrainError(f"{path} holds no {WEIGHTS_FILE} (export it again to add one)")
    expected = read_card(path).get("weights_sha256")
    if expected is not None and sha256_of(file) != expected:
        raise MicrostrainError(f"{file} does not match the sha256 in {path / CARD_FILE}")
    return file


def read_weights(path: str | os.PathLike[str]) -> tuple[SurrogateConfig, dict[str, Tensor]]:
    """(configuration, ``net.*``/``normalizer.*`` weights) of a checkpoint, a ``weights.pt`` or
    a model directory holding one."""
    file = _weights_file(Path(path))
    if file.suffix != ".ckpt" and not file.is_file():
        raise MicrostrainError(f"weights not found: {file}")
    if file.suffix == ".ckpt":
        raw = load_checkpoint(file)
        config = SurrogateConfig.from_hparams(dict(raw.get("hyper_parameters") or {}))
        return config, surrogate_state(raw["state_dict"])
    try:
        raw = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors of a foreign or truncated file
        raise MicrostrainError(f"cannot read {file} as {WEIGHTS_FILE}: {exc}") from None
    if not isinstance(raw, dict) or raw.get("format") != WEIGHTS_FORMAT:
        raise MicrostrainError(f"{file} is not a {WEIGHTS_FILE} of `microstrain export`")
    return SurrogateConfig(**raw["config"]), dict(raw["state_dict"])


def save_weights(
    state_dict: dict[str, Tensor], config: SurrogateConfig, path: str | os.PathLike[str]
) -> Path:
    """Write ``weights.pt``: a surrogate's ``state_dict`` (weights and units) and the
    ``config`` that rebuilds it, atomically."""
    payload = {
        "format": WEIGHTS_FORMAT,
        "config": config.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in state_dict.items()},
    }
    target = Path(path)
    with atomic_output(target) as tmp:
        torch.save(payload, tmp)
    return target


def initial_weights(
    net: nn.Module, normalizer: nn.Module, output_quantity: str, source: str | os.PathLike[str]
) -> tuple[dict[str, Tensor], dict[str, Tensor], float]:
    """The network and normalizer states of ``source`` (a checkpoint or a model directory) for
    ``net`` and ``normalizer``, and its training wall time (the start's cost, part of this run's
    T_train and τ).

    The network's by name: every parameter of ``net`` must be there with its shape, and the
    source may hold no other parameter. Buffers it lacks keep ``net``'s own values, so the
    weights of a GroupNorm network start a BatchNorm one (same affine shapes) whose running
    statistics start fresh. The normalizer is the source's whole: its weights were learned in
    its units, whatever data this run trains on.
    """
    path = Path(source)
    try:
        config, state = read_weights(path)
    except MicrostrainError as exc:
        raise MicrostrainError(f"init_from: {exc}") from None
    if path.is_dir():
        card = read_card(path)
        seconds = float(card.get("T_train") or card.get("training", {}).get("train_seconds") or 0)
    else:
        seconds = float(load_checkpoint(path).get(CHECKPOINT_KEY, {}).get("train_seconds", 0.0))
    quantity = config.physics_options.get("output_space", "strain")
    if config.physics == "uniaxial" and quantity != output_quantity:
        raise MicrostrainError(
            f"init_from: {path} predicts {quantity}, this model {output_quantity}"
        )
    source_net = {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}
    units = {
        k.removeprefix("normalizer."): v for k, v in state.items() if k.startswith("normalizer.")
    }
    params = {name: p.shape for name, p in net.named_parameters()}
    own = {**{name: b.shape for name, b in net.named_buffers()}, **params}
    own_units = {name: b.shape for name, b in normalizer.state_dict().items()}
    missing = sorted(set(params) - set(source_net)) + sorted(set(own_units) - set(units))
    extra = sorted(set(source_net) - set(own))
    shapes = sorted(k for k, v in source_net.items() if k in own and v.shape != own[k])
    shapes += sorted(k for k, v in units.items() if k in own_units and v.shape != own_units[k])
    for what, keys in (("lacks", missing), ("has more", extra), ("has other shapes of", shapes)):
        if keys:
            more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
            raise MicrostrainError(
                f"init_from: {path} {what} weights of this model: {', '.join(keys[:3])}{more}"
            )
    return source_net, {k: units[k] for k in own_units}, seconds


# --- weights from an exported graph ----------------------------------------------------------
def identity_batch_norm(module: nn.BatchNorm2d) -> None:
    """Make an eval-mode BatchNorm the identity map, exactly: weight 1, bias 0, mean 0 and a
    variance whose float32 sum with ``eps`` is 1, so folding it into the convolution before it
    (as the exporter does) multiplies by exactly 1 and adds exactly 0."""
    eps = np.float32(module.eps)
    variance = np.float32(1.0) - eps
    while np.float32(variance + eps) != np.float32(1.0):
        variance = np.nextafter(variance, np.float32(2.0), dtype=np.float32)
    with torch.no_grad():
        module.weight.fill_(1.0)
        module.bias.fill_(0.0)
        assert module.running_mean is not None and module.running_var is not None
        module.running_mean.fill_(0.0)
        module.running_var.fill_(float(variance))


GROUP_NORM_KEY = "group_norm.{index}.{what}"  # the i-th GroupNorm of the forward pass


def _group_norm_affines(graph: Any) -> dict[str, np.ndarray]:
    """The exporter writes a GroupNorm as Reshape -> InstanceNormalization -> Reshape -> Mul
    (its weight) -> Add (its bias), with the affine parameters as unnamed initializers: by
    the node order (the forward order), ``group_norm.<i>.weight`` / ``.bias`` ``[C]``."""
    from onnx import numpy_helper

    initializers = {i.name: i for i in graph.graph.initializer}
    users: dict[str, list[Any]] = {}
    for node in graph.graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)

    def next_node(node: Any, op: str) -> Any:
        found = users.get(node.output[0], [])
        if len(found) != 1 or found[0].op_type != op:
            raise MicrostrainError("a normalization of the graph is not the exporter's GroupNorm")
        return found[0]

    out: dict[str, np.ndarray] = {}
    norms = [n for n in graph.graph.node if n.op_type == "InstanceNormalization"]
    for index, node in enumerate(norms):
        mul = next_node(next_node(node, "Reshape"), "Mul")
        add = next_node(mul, "Add")
        for what, op in (("weight", mul), ("bias", add)):
            (name,) = [i for i in op.input if i in initializers]
            out[GROUP_NORM_KEY.format(index=index, what=what)] = numpy_helper.to_array(
                initializers[name]
            ).reshape(-1)
    return out


def _batch_norm_inputs(graph: Any) -> dict[str, np.ndarray]:
    """Scale, bias, mean and variance of each BatchNormalization node under its module's names,
    whatever the initializers are called (the exporter shares one initializer among equal
    constants, e.g. the zero biases of an untrained network)."""
    from onnx import numpy_helper

    initializers = {i.name: i for i in graph.graph.initializer}
    parts = ("weight", "bias", "running_mean", "running_var")
    out: dict[str, np.ndarray] = {}
    for node in graph.graph.node:
        if node.op_type != "BatchNormalization":
            continue
        names = [n.removeprefix("model.").removeprefix("surrogate.") for n in node.input[1:5]]
        owners = [n.rsplit(".", 1)[0] for n, p in zip(names, parts, strict=True) if n.endswith(p)]
        if not owners:
            continue  # no input carries its module's name: left to the name lookup
        # a shared initializer keeps another module's name: the module most inputs name
        module = max(set(owners), key=owners.count)
        for name, part in zip(node.input[1:5], parts, strict=True):
            if name in initializers:
                out[f"{module}.{part}"] = numpy_helper.to_array(initializers[name])
    return out


def onnx_weights(
    model_dir: str | os.PathLike[str],
) -> tuple[SurrogateConfig, dict[str, np.ndarray], set[str]]:
    """From ``model_dir``'s card and ``model.onnx``: the configuration, the graph's weights by
    state_dict name, and the BatchNorms (module paths) folded into the convolution before them.

    The exporter names each initializer after its module path (``model.net.stem.weight``), so
    they map onto the state_dict by name. A folded BatchNorm left no initializer: the
    convolution holds the folded weights, and the BatchNorm is to be the identity
    (:func:`identity_batch_norm`), which the next export folds again without changing a bit.
    """
    import onnx
    from onnx import numpy_helper

    directory = Path(model_dir)
    hparams = dict(read_card(directory).get("training", {}).get("config", {}).get("model", {}))
    if not hparams:
        raise MicrostrainError(f"{directory / CARD_FILE} records no model configuration")
    graph = onnx.load(str(directory / MODEL_FILE))
    found: dict[str, np.ndarray] = {}
    for init in graph.graph.initializer:
        name = init.name.removeprefix("model.").removeprefix("surrogate.")
        if name.startswith(("net.", "normalizer.")):
            found[name] = numpy_helper.to_array(init)
    found.update(_group_norm_affines(graph))
    found.update(_batch_norm_inputs(graph))
    batch_norms = {n.rsplit(".", 1)[0] for n in found if n.endswith(".running_var")}
    folded = set()
    for name in found:
        if name.endswith(".weight") and found[name].ndim == 4:  # a convolution
            module, index = name.removesuffix(".weight").rsplit(".", 1)
            after = f"{module}.{int(index) + 1}" if index.isdigit() else None
            if after is not None and after not in batch_norms and f"{after}.weight" not in found:
                folded.add(after)
    return SurrogateConfig.from_hparams(hparams), found, folded
