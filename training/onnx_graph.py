"""The ONNX graph of a trained network: writing it, checking its contract, and the parity gate.

The graph is the :class:`~training.model.Surrogate` in eval form: input ``E`` float32
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
from typing import Any

import numpy as np
import torch

from microstrain.conventions import (
    GRID,
    N_CASES,
    N_STRAIN,
    ONNX_C_EFF,
    ONNX_ERROR_ESTIMATE,
    ONNX_INPUT,
    ONNX_OUTPUT,
)
from microstrain.errors import MicrostrainError
from microstrain.fields import mask_to_youngs_modulus
from microstrain.surrogate import SurrogateModel
from training.model import GraphOutputs, Surrogate


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
            # a periodic cell is n x n: both spatial axes share the one symbolic size, by design
            warnings.filterwarnings("ignore", message=r".*axis name: .* will not be used")
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


# Opset 20 has Gelu as one operator (onnxruntime >= 1.17 runs it fused); at 18 it is five
# (Div, Erf, Add, Mul, Mul) per activation: 298 -> 238 nodes for the default res-unet and ~12 %
# less time per sample on the 2-core CPU (docs/training.md). Opset 21's GroupNormalization was
# slower than the decomposed InstanceNormalization there, so 20 it is.
DEFAULT_OPSET = 20
# the export gate: max |onnxruntime − PyTorch| / max |PyTorch| of every output, at every size
PARITY_TOLERANCE = 1e-5


def export_onnx(surrogate: Surrogate, path: Path, opset: int = DEFAULT_OPSET) -> str:
    """Write ``surrogate`` (raw E ``[N, 1, 32, 32]`` -> its :attr:`~Surrogate.output_names`)
    to ``path``, traced in eval mode through :class:`~training.model.GraphOutputs`.

    The torch.export-based exporter (``dynamo=True``, the default since torch 2.9) is used; it
    folds eval-mode BatchNorm into the convolutions. Should it fail on some architecture, the
    TorchScript exporter is tried. Returns the name of the exporter that worked.
    """
    module = GraphOutputs(surrogate.eval()).eval()
    output_names = list(surrogate.output_names)
    example = torch.full((2, 1, GRID, GRID), 3000.0)  # [2, 1, 32, 32]; batch > 1 keeps it symbolic
    batch_axis: dict[int, Any] = {0: torch.export.Dim("batch")}
    axes = {0: "batch"}
    if getattr(surrogate.physics, "kind", None) == "periodic":
        # SPEC §11: any n x n cell; n = 16 k keeps the example's k = 2 off the sizes 0 and 1
        # that torch.export specializes, and the U-Net's three halvings whole
        side = 16 * torch.export.Dim("k", min=2, max=64)
        batch_axis.update({2: side, 3: side})
        axes.update({2: "n", 3: "n"})
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
                dynamic_shapes=(batch_axis,),
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
                dynamic_axes={ONNX_INPUT: axes, **{name: {0: "batch"} for name in output_names}},
            )
            return "torch.onnx.export(dynamo=False)"
        except Exception as exc:
            errors.append(f"torchscript: {type(exc).__name__}: {exc}".splitlines()[0])
    raise MicrostrainError("ONNX export failed: " + "; ".join(errors))


def check_graph(path: Path, output_names: tuple[str, ...] = (ONNX_OUTPUT,)) -> int:
    """``onnx.checker`` full check plus the model contract (input ``E``, the outputs
    ``output_names`` in order, a dynamic batch axis); returns the default-domain opset."""
    import onnx

    model = onnx.load(str(path))
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise MicrostrainError(f"exported graph fails onnx.checker: {exc}") from None
    inputs = [i.name for i in model.graph.input]
    outputs = [o.name for o in model.graph.output]
    if inputs != [ONNX_INPUT] or outputs != list(output_names):
        raise MicrostrainError(f"exported graph has inputs {inputs} and outputs {outputs}")
    # [batch, ...] with a symbolic batch; the uniaxial model's fixed sizes (a periodic
    # strain [batch, 3, 3, n, n] and C_eff are the periodic physics' to state)
    tails = {ONNX_INPUT: [1, GRID, GRID], ONNX_ERROR_ESTIMATE: []}
    if len(model.graph.output[0].type.tensor_type.shape.dim) == 4:
        tails[ONNX_OUTPUT] = [N_STRAIN, GRID, GRID]
    else:  # periodic: any n x n cell, symbolic sizes (dim_value 0)
        tails[ONNX_INPUT] = [1, 0, 0]
        tails[ONNX_OUTPUT] = [N_CASES, N_STRAIN, 0, 0]
        tails[ONNX_C_EFF] = [N_STRAIN, N_STRAIN]
    for value in (*model.graph.input, *model.graph.output):
        dims = value.type.tensor_type.shape.dim
        tail = tails.get(value.name)
        if (
            not dims
            or dims[0].dim_value != 0
            or (tail is not None and [d.dim_value for d in dims[1:]] != tail)
        ):
            raise MicrostrainError(f"'{value.name}' of the exported graph has shape {dims}")
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def parity_inputs(n: int, seed: int = 0, side: int = GRID) -> np.ndarray:
    """``n`` random two-phase microstructures E ``[n, 1, 32, 32]`` MPa, fiber fractions 0.1–0.6.

    Parity compares two implementations of one function, so it needs valid inputs, not the
    training data: random masks of varied fiber fraction exercise every phase combination.
    """
    rng = np.random.default_rng(seed)
    fraction = rng.uniform(0.1, 0.6, size=(n, 1, 1, 1))
    return mask_to_youngs_modulus(rng.random((n, 1, side, side)) < fraction)


def parity_errors(
    surrogate: Surrogate,
    onnx_path: Path,
    batch_sizes: tuple[int, ...],
    seed: int = 0,
    side: int = GRID,
) -> dict[int, float]:
    """max |ort − torch| / max |torch| on :func:`parity_inputs`, for each batch size ``b``.

    ``onnx_path``: the written graph, run by :class:`SurrogateModel`'s session (it has no card
    yet). Every output counts, the worst deciding; the estimate, itself a relative error, is
    compared absolutely (relative to its scale only above 1). A graph whose outputs are not
    the surrogate's is refused.
    """
    surrogate = surrogate.eval()
    session = SurrogateModel.from_onnx(onnx_path).session
    names = list(surrogate.output_names)
    graph_names = [o.name for o in session.get_outputs()]
    if graph_names != names:
        raise ParityError(f"the graph answers {graph_names}, the PyTorch model {names}")
    errors: dict[int, float] = {}
    for b in batch_sizes:
        e = parity_inputs(b, seed + b, side)  # [b, 1, side, side]
        with torch.no_grad():
            expected = surrogate(torch.from_numpy(e))
        got = session.run(names, {ONNX_INPUT: e})
        worst = 0.0
        for name, value in zip(names, got, strict=True):
            reference = expected[name].numpy()
            if value.shape != reference.shape:
                raise ParityError(f"onnxruntime returned {name} of shape {value.shape}, batch {b}")
            scale = float(np.abs(reference).max())
            if name == ONNX_ERROR_ESTIMATE:  # a relative error itself: absolute, ≥ 1
                scale = max(scale, 1.0)
            error = float(np.abs(value - reference).max() / scale) if scale > 0 else float("inf")
            worst = max(worst, error)
        errors[b] = worst
    return errors


def check_parity(
    surrogate: Surrogate,
    onnx_path: Path,
    batch_sizes: tuple[int, ...],
    tolerance: float = PARITY_TOLERANCE,
    side: int = GRID,
) -> dict[int, float]:
    """:func:`parity_errors`, refused (:class:`ParityError`) above ``tolerance`` at any size
    (``side``: the cells' size, n × n; a periodic model takes larger cells than 32 × 32)."""
    parity = parity_errors(surrogate, onnx_path, batch_sizes, side=side)
    worst = max(parity.values())
    if not worst <= tolerance:
        raise ParityError(
            f"export refused: onnxruntime differs from PyTorch by {worst:.3g} "
            f"(max abs error / output scale) > tolerance {tolerance:g} "
            f"(by batch size: {', '.join(f'{b}: {e:.2g}' for b, e in parity.items())})"
        )
    return parity
