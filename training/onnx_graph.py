"""The ONNX graph of a trained network: writing it, checking its contract, and the parity gate.

The graph is ``normalizer ∘ net ∘ denormalizer`` in eval form: input ``E`` float32
``[batch, 1, 32, 32]`` raw MPa, output ``strain`` float32 ``[batch, 3, 32, 32]`` raw strain for
ū = 0.1, dynamic batch axis (SPEC §5). Parity runs the written file exactly as every later stage
does, through :class:`microstrain.surrogate.SurrogateModel`, against PyTorch.
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

from microstrain.conventions import E_SHAPE, GRID, N_STRAIN, ONNX_INPUT, ONNX_OUTPUT
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


def export_onnx(module: nn.Module, path: Path, opset: int = 18) -> str:
    """Write ``module`` (raw E ``[N, 1, 32, 32]`` -> raw strain ``[N, 3, 32, 32]``) to ``path``.

    The torch.export-based exporter (``dynamo=True``, the default since torch 2.9) is used; it
    folds eval-mode BatchNorm into the convolutions. Should it fail on some architecture, the
    TorchScript exporter is tried. Returns the name of the exporter that worked.
    """
    module = module.eval()
    example = torch.full((2, 1, GRID, GRID), 3000.0)  # [2, 1, 32, 32]; batch > 1 keeps it symbolic
    errors: list[str] = []
    with _quiet_exporter(), torch.no_grad():
        try:
            program = torch.onnx.export(
                module,
                (example,),
                input_names=[ONNX_INPUT],
                output_names=[ONNX_OUTPUT],
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
                output_names=[ONNX_OUTPUT],
                opset_version=opset,
                dynamo=False,
                dynamic_axes={ONNX_INPUT: {0: "batch"}, ONNX_OUTPUT: {0: "batch"}},
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
    if inputs != [ONNX_INPUT] or outputs != [ONNX_OUTPUT]:
        raise MicrostrainError(f"exported graph has inputs {inputs} and outputs {outputs}")
    for value, channels in ((model.graph.input[0], 1), (model.graph.output[0], N_STRAIN)):
        dims = value.type.tensor_type.shape.dim
        if dims[0].dim_value != 0 or [d.dim_value for d in dims[1:]] != [channels, GRID, GRID]:
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
    module: nn.Module, onnx_path: Path, batch_sizes: tuple[int, ...], seed: int = 0
) -> dict[int, float]:
    """max |ort − torch| / max |torch| on :func:`parity_inputs`, for each batch size ``b``.

    ``onnx_path``: the written graph, run by :class:`SurrogateModel` (it has no card yet).
    """
    module = module.eval()
    surrogate = SurrogateModel.from_onnx(onnx_path)
    errors: dict[int, float] = {}
    for b in batch_sizes:
        e = parity_inputs(b, seed + b)  # [b, 1, 32, 32]
        with torch.no_grad():
            reference = module(torch.from_numpy(e)).numpy()  # [b, 3, 32, 32]
        got = surrogate.predict(e)
        if got.shape != reference.shape:
            raise ParityError(f"onnxruntime returned shape {got.shape} for batch {b}")
        scale = float(np.abs(reference).max())
        errors[b] = float(np.abs(got - reference).max() / scale) if scale > 0 else float("inf")
    return errors


def check_parity(
    module: nn.Module, onnx_path: Path, batch_sizes: tuple[int, ...], tolerance: float
) -> dict[int, float]:
    """:func:`parity_errors`, refused (:class:`ParityError`) above ``tolerance`` at any size."""
    parity = parity_errors(module, onnx_path, batch_sizes)
    worst = max(parity.values())
    if not worst <= tolerance:
        raise ParityError(
            f"export refused: onnxruntime differs from PyTorch by {worst:.3g} "
            f"(max abs error / output scale) > tolerance {tolerance:g} "
            f"(by batch size: {', '.join(f'{b}: {e:.2g}' for b, e in parity.items())})"
        )
    return parity
