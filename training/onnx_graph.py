"""The ONNX graph of a trained network: writing it, checking its contract, and the parity gate.

The graph is ``normalizer ∘ net ∘ denormalizer`` in eval form: input ``E`` float32
``[batch, 1, 32, 32]`` raw MPa, output ``strain`` float32 ``[batch, 3, 32, 32]`` raw strain for
ū = 0.1, dynamic batch axis (SPEC §5). A symmetrized model (``symmetrize``) has a second output
``error_estimate`` float32 ``[batch]``, the mirror's disagreement (training/physics.py); the
``strain`` output is computed by the same nodes with or without it. Parity runs the written
file exactly as every later stage does, through :class:`microstrain.surrogate.SurrogateModel`,
against PyTorch.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from microstrain.conventions import (
    E_SHAPE,
    GRID,
    N_STRAIN,
    ONNX_ERROR_ESTIMATE,
    ONNX_INPUT,
    ONNX_OUTPUT,
)
from microstrain.errors import MicrostrainError
from microstrain.fields import mask_to_youngs_modulus
from microstrain.surrogate import SurrogateModel


class ParityError(MicrostrainError):
    """onnxruntime does not reproduce PyTorch closely enough; the export is refused."""


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's chatter (torchvision op registration, progress lines)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        logger.setLevel(level)


def strip_debug_metadata(path: Path) -> None:
    """Drop the exporter's per-node debug metadata (FX names, Python stack traces with the paths of
    the machine that exported): a model file says what it computes, not where it was made."""
    import onnx

    model = onnx.load(str(path))
    for graph in (model.graph, *(f for f in model.functions)):
        for node in graph.node:
            del node.metadata_props[:]
    onnx.save(model, str(path))


class _WithEstimate(nn.Module):
    """A :class:`~training.normalization.PhysicalModel` answering (strain, error estimate)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, youngs_modulus: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.forward_with_estimate(youngs_modulus)  # type: ignore[operator,no-any-return]


def has_error_estimate(module: nn.Module) -> bool:
    """Whether ``module``'s graph gets the ``error_estimate`` output (a symmetrized model)."""
    return bool(getattr(module, "has_error_estimate", False))


# Opset 20 has Gelu as one operator (onnxruntime >= 1.17 runs it fused); at 18 it is five
# (Div, Erf, Add, Mul, Mul) per activation: 298 -> 238 nodes for the default res-unet and ~12 %
# less time per sample on the 2-core CPU (docs/training.md). Opset 21's GroupNormalization was
# slower than the decomposed InstanceNormalization there, so 20 it is.
DEFAULT_OPSET = 20


def export_onnx(
    module: nn.Module, path: Path, opset: int = DEFAULT_OPSET, error_estimate: bool = True
) -> str:
    """Write ``module`` (raw E ``[N, 1, 32, 32]`` -> raw strain ``[N, 3, 32, 32]``) to ``path``.

    With ``error_estimate`` and a symmetrized module (:func:`has_error_estimate`) the graph has
    the second output ``error_estimate`` ``[N]``. The torch.export-based exporter
    (``dynamo=True``, the default since torch 2.9) is used; it folds eval-mode BatchNorm into
    the convolutions. Should it fail on some architecture, the TorchScript exporter is tried.
    Returns the name of the exporter that worked.
    """
    module = module.eval()
    output_names = [ONNX_OUTPUT]
    if error_estimate and has_error_estimate(module):
        module = _WithEstimate(module).eval()
        output_names.append(ONNX_ERROR_ESTIMATE)
    example = torch.full((2, 1, GRID, GRID), 3000.0)  # [2, 1, 32, 32]; batch > 1 keeps it symbolic
    errors: list[str] = []
    with _quiet_exporter(), torch.no_grad():
        try:
            program = torch.onnx.export(
                module,
                (example,),
                input_names=[ONNX_INPUT],
                output_names=output_names,
                opset_version=opset,
                dynamo=True,
                verbose=False,
                dynamic_shapes=({0: torch.export.Dim("batch")},),
            )
            assert program is not None
            program.save(str(path), external_data=False)
            strip_debug_metadata(path)
            return "torch.onnx.export(dynamo=True)"
        except Exception as exc:  # the fallback below is tried for any exporter failure
            errors.append(f"dynamo: {type(exc).__name__}: {exc}".splitlines()[0])
        try:
            torch.onnx.export(
                module,
                (example,),
                str(path),
                input_names=[ONNX_INPUT],
                output_names=output_names,
                opset_version=opset,
                dynamo=False,
                dynamic_axes={name: {0: "batch"} for name in (ONNX_INPUT, *output_names)},
            )
            return "torch.onnx.export(dynamo=False)"
        except Exception as exc:
            errors.append(f"torchscript: {type(exc).__name__}: {exc}".splitlines()[0])
    raise MicrostrainError("ONNX export failed: " + "; ".join(errors))


def check_graph(path: Path) -> int:
    """``onnx.checker`` full check plus the model contract; returns the default-domain opset."""
    import onnx

    model = onnx.load(str(path))
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise MicrostrainError(f"exported graph fails onnx.checker: {exc}") from None
    inputs = [i.name for i in model.graph.input]
    outputs = [o.name for o in model.graph.output]
    if inputs != [ONNX_INPUT] or outputs not in ([ONNX_OUTPUT], [ONNX_OUTPUT, ONNX_ERROR_ESTIMATE]):
        raise MicrostrainError(f"exported graph has inputs {inputs} and outputs {outputs}")
    expected = [
        (model.graph.input[0], [1, GRID, GRID]),
        (model.graph.output[0], [N_STRAIN, GRID, GRID]),
    ]
    if len(outputs) == 2:
        expected.append((model.graph.output[1], []))  # error_estimate [batch]
    for value, tail in expected:
        dims = value.type.tensor_type.shape.dim
        if (
            len(dims) != 1 + len(tail)
            or dims[0].dim_value != 0
            or [d.dim_value for d in dims[1:]] != tail
        ):
            raise MicrostrainError(f"'{value.name}' of the exported graph has shape {dims}")
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def parity_inputs(n: int, seed: int = 0) -> np.ndarray:
    """``n`` random two-phase microstructures E ``[n, 1, 32, 32]`` MPa, fiber fractions 0.1–0.6.

    Parity compares two implementations of one function, so it needs valid inputs, not the
    training data: random masks of varied fiber fraction exercise every phase combination.
    """
    rng = np.random.default_rng(seed)
    fraction = rng.uniform(0.1, 0.6, size=(n, 1, 1, 1))
    return mask_to_youngs_modulus(rng.random((n, *E_SHAPE)) < fraction)


def parity_errors(
    module: nn.Module,
    onnx_path: Path,
    batch_sizes: tuple[int, ...],
    seed: int = 0,
    error_estimate: bool = True,
) -> dict[int, float]:
    """max |ort − torch| / max |torch| on :func:`parity_inputs`, for each batch size ``b``.

    ``onnx_path``: the written graph, run by :class:`SurrogateModel` (it has no card yet). The
    worse of the two outputs counts where the graph has the ``error_estimate``; the estimate,
    itself a relative error, is compared absolutely (relative to its scale only above 1). A
    graph that lacks it although it was asked for (``error_estimate``) and the module has it, or
    the reverse, is refused.
    """
    module = module.eval()
    surrogate = SurrogateModel.from_onnx(onnx_path)
    if surrogate.has_error_estimate != (error_estimate and has_error_estimate(module)):
        raise ParityError(
            f"the graph {'has' if surrogate.has_error_estimate else 'lacks'} the "
            f"'{ONNX_ERROR_ESTIMATE}' output, the PyTorch model does not agree"
        )
    errors: dict[int, float] = {}
    for b in batch_sizes:
        e = parity_inputs(b, seed + b)  # [b, 1, 32, 32]
        pairs = []
        with torch.no_grad():
            if surrogate.has_error_estimate:
                strain, estimate = module.forward_with_estimate(torch.from_numpy(e))  # type: ignore[operator]
                got_strain, got_estimate = surrogate.predict_with_estimate(e)
                assert got_estimate is not None
                pairs.append((got_estimate, estimate.numpy()))  # [b]
            else:
                strain, got_strain = module(torch.from_numpy(e)), surrogate.predict(e)
        pairs.insert(0, (got_strain, strain.numpy()))  # [b, 3, 32, 32]
        worst = 0.0
        for got, reference in pairs:
            if got.shape != reference.shape:
                raise ParityError(f"onnxruntime returned shape {got.shape} for batch {b}")
            scale = float(np.abs(reference).max())
            if reference.ndim == 1:  # the estimate is a relative error itself: absolute, ≥ 1
                scale = max(scale, 1.0)
            error = float(np.abs(got - reference).max() / scale) if scale > 0 else float("inf")
            worst = max(worst, error)
        errors[b] = worst
    return errors


def check_parity(
    module: nn.Module,
    onnx_path: Path,
    batch_sizes: tuple[int, ...],
    tolerance: float,
    error_estimate: bool = True,
) -> dict[int, float]:
    """:func:`parity_errors`, refused (:class:`ParityError`) above ``tolerance`` at any size."""
    parity = parity_errors(module, onnx_path, batch_sizes, error_estimate=error_estimate)
    worst = max(parity.values())
    if not worst <= tolerance:
        raise ParityError(
            f"export refused: onnxruntime differs from PyTorch by {worst:.3g} "
            f"(max abs error / output scale) > tolerance {tolerance:g} "
            f"(by batch size: {', '.join(f'{b}: {e:.2g}' for b, e in parity.items())})"
        )
    return parity
