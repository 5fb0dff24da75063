"""Small exported-model directories built with the ``onnx`` helper API (no torch).

The graph follows the model contract of SPEC §5: input ``E`` float32 ``[batch, 1, 32, 32]`` raw
MPa, output ``strain`` float32 ``[batch, 3, 32, 32]``. It is a fixed 3×3 convolution of
``E · 1e-5`` plus a bias, so every output is known exactly (:func:`reference_strain`) and strains
come out near 1e-1..1e0 like real ones. ``extra_convs`` appends 16-channel ReLU convolutions that
cost time like a small U-Net, for load tests; they make the output no longer checkable by hand.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from microstrain.conventions import (
    CARD_FILE,
    GRID,
    MODEL_FILE,
    N_STRAIN,
    ONNX_INPUT,
    ONNX_OUTPUT,
    STRAIN_CHANNELS,
)
from microstrain.files import sha256_of

E_SCALE = 1e-5  # MPa -> O(1) before the convolution
# fixed 3x3 kernels, one per strain channel  # [3, 1, 3, 3]
KERNEL = np.stack(
    [
        np.array([[0, 1, 0], [1, 2, 1], [0, 1, 0]], np.float32) / 6.0,
        np.array([[1, 0, -1], [0, 1, 0], [-1, 0, 1]], np.float32) / 3.0,
        np.array([[0, 0, 0], [-1, 0, 1], [0, 0, 0]], np.float32),
    ]
)[:, None]
BIAS = np.array([0.1, -0.03, 0.0], np.float32)  # [3]
FIBER_FRACTION_RANGE = (0.2, 0.5)


def reference_strain(youngs_modulus: np.ndarray) -> np.ndarray:
    """What the fixture graph computes, in numpy: ``[N, 1, 32, 32]`` MPa -> ``[N, 3, 32, 32]``."""
    x = np.asarray(youngs_modulus, np.float64)[:, 0] * E_SCALE  # [N, 32, 32]
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1)))  # [N, 34, 34] zero padding like the Conv
    out = np.zeros((x.shape[0], N_STRAIN, GRID, GRID))
    for c in range(N_STRAIN):
        for di in range(3):
            for dj in range(3):
                out[:, c] += KERNEL[c, 0, di, dj] * padded[:, di : di + GRID, dj : dj + GRID]
        out[:, c] += BIAS[c]
    return out.astype(np.float32)


def build_model(path: Path, extra_convs: int = 0, width: int = 16) -> Path:
    """Write the fixture ONNX graph to ``path`` (opset 17, dynamic batch axis)."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(np.array(E_SCALE, np.float32), "e_scale"),
        numpy_helper.from_array(BIAS, "b0"),
    ]
    nodes = [helper.make_node("Mul", [ONNX_INPUT, "e_scale"], ["x"])]
    if extra_convs == 0:
        inits.append(numpy_helper.from_array(KERNEL, "w0"))
        nodes.append(helper.make_node("Conv", ["x", "w0", "b0"], [ONNX_OUTPUT], pads=[1] * 4))
    else:
        prev, channels = "x", 1
        for i in range(extra_convs):
            w = rng.normal(0, 0.3 / np.sqrt(9 * channels), (width, channels, 3, 3))
            inits.append(numpy_helper.from_array(w.astype(np.float32), f"wh{i}"))
            nodes.append(helper.make_node("Conv", [prev, f"wh{i}"], [f"c{i}"], pads=[1] * 4))
            nodes.append(helper.make_node("Relu", [f"c{i}"], [f"h{i}"]))
            prev, channels = f"h{i}", width
        w_out = rng.normal(0, 0.1, (N_STRAIN, channels, 3, 3)).astype(np.float32)
        inits.append(numpy_helper.from_array(w_out, "w_out"))
        nodes.append(helper.make_node("Conv", [prev, "w_out", "b0"], [ONNX_OUTPUT], pads=[1] * 4))
    graph = helper.make_graph(
        nodes,
        "microstrain-fixture",
        [helper.make_tensor_value_info(ONNX_INPUT, TensorProto.FLOAT, ["batch", 1, GRID, GRID])],
        [
            helper.make_tensor_value_info(
                ONNX_OUTPUT, TensorProto.FLOAT, ["batch", N_STRAIN, GRID, GRID]
            )
        ],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every onnxruntime we support
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def make_card(onnx_path: Path, name: str = "fixture", **overrides: Any) -> dict[str, Any]:
    """A card following docs/model-card.md with plausible times (seconds) and their τ."""
    card: dict[str, Any] = {
        "schema_version": 1,
        "name": name,
        "version": "test-1",
        "created": "2026-01-01T00:00:00Z",
        "architecture": {"name": "fixture-conv", "hyperparameters": {}, "parameters": 30},
        "training_data": {
            "file": "fixture.h5",
            "sha256": "0" * 64,
            "n_total": 10,
            "discretization": {"mode": "refined", "k": 4},
            "load_case": {"name": "uniaxial-x", "applied_strain": 0.1, "plane": "stress"},
            "fiber_fraction_range": list(FIBER_FRACTION_RANGE),
            "fiber_fraction_mean": 0.35,
        },
        "onnx": {"file": MODEL_FILE, "sha256": sha256_of(onnx_path), "opset": 17},
        "input": {"name": ONNX_INPUT, "shape": ["batch", 1, GRID, GRID], "units": "MPa"},
        "output": {
            "name": ONNX_OUTPUT,
            "shape": ["batch", N_STRAIN, GRID, GRID],
            "channels": list(STRAIN_CHANNELS),
            "applied_strain": 0.1,
        },
        "T_data": 100.0,
        "T_train": 50.0,
        "T_simulation": 0.5,
        "T_surrogate": 0.001,
        "T_surrogate_batched": 0.0002,
        "tau": 150.0 / (0.5 - 0.001),
        "tau_batched": 150.0 / (0.5 - 0.0002),
        "timing_hardware": {
            "T_data": "CPU: fixture (2 cores)",
            "T_train": "CPU: fixture (2 cores, 2 torch threads)",
            "T_simulation": "CPU: fixture (2 cores)",
            "T_surrogate": "CPU: fixture (2 cores)",
        },
    }
    card.update(overrides)
    return card


def make_model_dir(
    directory: Path, extra_convs: int = 0, card: dict[str, Any] | None = None, **overrides: Any
) -> Path:
    """``directory/model.onnx`` + ``directory/card.json``; returns ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    onnx_path = build_model(directory / MODEL_FILE, extra_convs=extra_convs)
    card = card if card is not None else make_card(onnx_path, name=directory.name, **overrides)
    (directory / CARD_FILE).write_text(json.dumps(card, indent=2))
    return directory
