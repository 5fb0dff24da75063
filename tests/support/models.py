"""Small exported-model directories built with the ``onnx`` helper API (no torch).

The graph follows the model contract of SPEC §5: input ``E`` float32 ``[batch, 1, 32, 32]`` raw
MPa, output ``strain`` float32 ``[batch, 3, 32, 32]``. It is a fixed 3×3 convolution of
``E · 1e-5`` plus a bias, so every output is known exactly (:func:`reference_strain`) and strains
come out near 1e-1..1e0 like real ones. ``extra_convs`` appends 16-channel ReLU convolutions that
cost time like a small U-Net, for load tests; they make the output no longer checkable by hand.

The periodic fixture (SPEC §11, :func:`make_periodic_model_dir`) takes ``E`` ``[batch, 1, n, n]``
for any n and returns the three unit cases ``strain`` ``[batch, 3, 3, n, n]`` (each case's mean
exactly ū e_j, as the real model's), ``C_eff`` ``[batch, 3, 3]`` (the phases' Voigt average:
symmetric positive definite) and ``error_estimate`` ``[batch]``, all known in closed form
(:func:`reference_periodic`).
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
    DEFAULT_APPLIED_STRAIN,
    FIBER,
    GRID,
    MATRIX,
    MODEL_FILE,
    N_CASES,
    N_STRAIN,
    ONNX_C_EFF,
    ONNX_ERROR_ESTIMATE,
    ONNX_INPUT,
    ONNX_OUTPUT,
    PERIODIC_CASES,
    PERIODIC_LOAD_CASE,
    STRAIN_CHANNELS,
)
from microstrain.fields import MODULI
from microstrain.files import sha256_of, timestamp
from microstrain.quantities import PlaneLaw

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
        "created": timestamp(),
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


# --- a periodic model (SPEC §11) -----------------------------------------------------------
PERIODIC_SIZES = (32, 64)
# fluctuation amplitude of component c in case j, per unit of (E - mean E) * E_SCALE  # [3, 3]
PERIODIC_AMPLITUDE = np.array(
    [[0.2, -0.05, 0.01], [-0.05, 0.2, -0.01], [0.02, 0.03, 0.15]], np.float32
)
ESTIMATE_PER_FIBER_FRACTION = 0.1  # the fixture's error estimate is this times the fraction


def stiffness_of_phase(index: int, plane: str = "strain") -> np.ndarray:
    """Voigt stiffness ``[3, 3]`` (MPa, engineering shear) of matrix (0) or fiber (1)."""
    law = PlaneLaw.of(plane)
    e = (MATRIX, FIBER)[index].youngs_modulus
    kappa, mu = law.kappa[index] * e, law.mu[index] * e
    return np.array([[kappa + mu, kappa - mu, 0], [kappa - mu, kappa + mu, 0], [0, 0, mu]])


def reference_periodic(youngs_modulus: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What the periodic fixture computes, in numpy, for E ``[N, 1, n, n]`` MPa: strain
    ``[N, 3, 3, n, n]`` (each case's mean exactly ū e_j), C_eff ``[N, 3, 3]`` (the Voigt
    average of the phases' stiffness: symmetric positive definite) and the estimate ``[N]``."""
    x = np.asarray(youngs_modulus, np.float64) * E_SCALE  # [N, 1, n, n]
    deviation = (x - x.mean(axis=(2, 3), keepdims=True))[:, :, None]  # [N, 1, 1, n, n]
    unit = DEFAULT_APPLIED_STRAIN * np.eye(N_CASES)[None, :, :, None, None]  # [1, 3, 3, 1, 1]
    strain = unit + PERIODIC_AMPLITUDE[None, :, :, None, None] * deviation
    fraction = (np.asarray(youngs_modulus, np.float64).mean(axis=(1, 2, 3)) - MODULI[0]) / (
        MODULI[1] - MODULI[0]
    )  # [N]
    c_matrix, c_fiber = stiffness_of_phase(0), stiffness_of_phase(1)
    c_eff = c_matrix + fraction[:, None, None] * (c_fiber - c_matrix)  # [N, 3, 3]
    estimate = ESTIMATE_PER_FIBER_FRACTION * fraction
    return strain.astype(np.float32), c_eff.astype(np.float32), estimate.astype(np.float32)


def build_periodic_model(path: Path) -> Path:
    """Write the periodic fixture graph (opset 17, dynamic batch and size axes) to ``path``:
    elementwise operations and means only, so it takes any n × n image."""
    c_matrix, c_fiber = stiffness_of_phase(0), stiffness_of_phase(1)
    inits = [
        numpy_helper.from_array(np.array(E_SCALE, np.float32), "e_scale"),
        numpy_helper.from_array(np.array([2], np.int64), "case_axis"),
        numpy_helper.from_array(PERIODIC_AMPLITUDE[None, :, :, None, None], "amplitude"),
        numpy_helper.from_array(
            (DEFAULT_APPLIED_STRAIN * np.eye(N_CASES, dtype=np.float32))[None, :, :, None, None],
            "unit_cases",
        ),
        numpy_helper.from_array(np.array(MODULI[0], np.float32), "e_matrix"),
        numpy_helper.from_array(np.array(1 / (MODULI[1] - MODULI[0]), np.float32), "per_e"),
        numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "c_shape"),
        numpy_helper.from_array(c_matrix.astype(np.float32), "c_matrix"),
        numpy_helper.from_array((c_fiber - c_matrix).astype(np.float32), "c_step"),
        numpy_helper.from_array(np.array(ESTIMATE_PER_FIBER_FRACTION, np.float32), "per_f"),
    ]
    nodes = [
        helper.make_node("Mul", [ONNX_INPUT, "e_scale"], ["x"]),
        helper.make_node("ReduceMean", ["x"], ["x_mean"], axes=[2, 3], keepdims=1),
        helper.make_node("Sub", ["x", "x_mean"], ["deviation"]),  # [b, 1, n, n]
        helper.make_node("Unsqueeze", ["deviation", "case_axis"], ["deviation5"]),
        helper.make_node("Mul", ["deviation5", "amplitude"], ["fluctuation"]),
        helper.make_node("Add", ["fluctuation", "unit_cases"], [ONNX_OUTPUT]),
        helper.make_node("ReduceMean", [ONNX_INPUT], ["e_mean"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Sub", ["e_mean", "e_matrix"], ["e_above"]),
        helper.make_node("Mul", ["e_above", "per_e"], ["fraction"]),  # [b]
        helper.make_node("Reshape", ["fraction", "c_shape"], ["fraction3"]),  # [b, 1, 1]
        helper.make_node("Mul", ["fraction3", "c_step"], ["c_added"]),
        helper.make_node("Add", ["c_added", "c_matrix"], [ONNX_C_EFF]),
        helper.make_node("Mul", ["fraction", "per_f"], [ONNX_ERROR_ESTIMATE]),
    ]
    graph = helper.make_graph(
        nodes,
        "microstrain-periodic-fixture",
        [helper.make_tensor_value_info(ONNX_INPUT, TensorProto.FLOAT, ["batch", 1, "n", "n"])],
        [
            helper.make_tensor_value_info(
                ONNX_OUTPUT, TensorProto.FLOAT, ["batch", N_CASES, N_STRAIN, "n", "n"]
            ),
            helper.make_tensor_value_info(ONNX_C_EFF, TensorProto.FLOAT, ["batch", 3, 3]),
            helper.make_tensor_value_info(ONNX_ERROR_ESTIMATE, TensorProto.FLOAT, ["batch"]),
        ],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def make_periodic_card(
    onnx_path: Path, name: str = "periodic-fixture", **overrides: Any
) -> dict[str, Any]:
    """The card of a periodic model (docs/model-card.md): the uniaxial fixture's, with the
    periodic load case in plane strain, the image sizes and both outputs."""
    card = make_card(onnx_path, name=name)
    card["training_data"]["load_case"] = {
        "name": PERIODIC_LOAD_CASE,
        "cases": list(PERIODIC_CASES),
        "applied_strain": DEFAULT_APPLIED_STRAIN,
        "plane": "strain",
    }
    card["architecture"]["name"] = "fixture-periodic"
    card["input_sizes"] = list(PERIODIC_SIZES)
    card["input"]["shape"] = ["batch", 1, "n", "n"]
    card["output"] = {
        "name": ONNX_OUTPUT,
        "shape": ["batch", N_CASES, N_STRAIN, "n", "n"],
        "cases": list(PERIODIC_CASES),
        "channels": list(STRAIN_CHANNELS),
        "applied_strain": DEFAULT_APPLIED_STRAIN,
    }
    card["output_C_eff"] = {"name": ONNX_C_EFF, "shape": ["batch", 3, 3], "units": "MPa"}
    card.update(overrides)
    return card


def make_periodic_model_dir(directory: Path, **overrides: Any) -> Path:
    """``directory/model.onnx`` + ``card.json`` of the periodic fixture; returns ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    onnx_path = build_periodic_model(directory / MODEL_FILE)
    card = make_periodic_card(onnx_path, name=directory.name, **overrides)
    (directory / CARD_FILE).write_text(json.dumps(card, indent=2))
    return directory
