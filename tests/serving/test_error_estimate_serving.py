"""The error estimate of a symmetrized model in `predict` and REST /predict: reported per sample,
a warning where it is high, and nothing new for a model without it."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import httpx
import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper
from support.cli import invoke
from support.models import make_model_dir, reference_strain

from microstrain.conventions import (
    CARD_FILE,
    FIBER,
    MATRIX,
    MODEL_FILE,
    ONNX_ERROR_ESTIMATE,
    ONNX_INPUT,
)
from microstrain.files import sha256_of
from microstrain.surrogate import ERROR_ESTIMATE_WARNING, SurrogateModel
from serving.local_server import running_server
from serving.validation import error_estimate_warnings

SCALE = 2e-6  # estimate = SCALE · mean E: 0.006 for pure matrix, 0.17 for pure fiber


def _estimate(youngs_modulus: np.ndarray) -> np.ndarray:
    return SCALE * youngs_modulus.reshape(len(youngs_modulus), -1).astype(np.float64).mean(axis=1)


@pytest.fixture(scope="module")
def estimating_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture model plus an ``error_estimate`` output ``SCALE · mean E`` ``[batch]``: a
    stand-in with a known value (the real one is tested in tests/training)."""
    directory = make_model_dir(tmp_path_factory.mktemp("models") / "estimating")
    path = directory / MODEL_FILE
    model = onnx.load(str(path))
    graph = model.graph
    graph.initializer.append(numpy_helper.from_array(np.array(SCALE, np.float32), "est_scale"))
    graph.node.extend(
        [
            helper.make_node("Mul", [ONNX_INPUT, "est_scale"], ["est_scaled"]),
            helper.make_node(
                "ReduceMean", ["est_scaled"], [ONNX_ERROR_ESTIMATE], axes=[1, 2, 3], keepdims=0
            ),
        ]
    )
    graph.output.append(
        helper.make_tensor_value_info(ONNX_ERROR_ESTIMATE, onnx.TensorProto.FLOAT, ["batch"])
    )
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    card = json.loads((directory / CARD_FILE).read_text())
    card["onnx"]["sha256"] = sha256_of(path)
    (directory / CARD_FILE).write_text(json.dumps(card))
    return directory


def _moduli() -> np.ndarray:
    """Sample 0 nearly all matrix (estimate 0.01), sample 1 mostly fiber (estimate 0.15)."""
    rng = np.random.default_rng(0)
    masks = np.stack([rng.random((32, 32)) < 0.05, rng.random((32, 32)) < 0.9])
    return np.where(masks, FIBER.youngs_modulus, MATRIX.youngs_modulus).astype(np.float32)


def test_warning_names_the_high_samples_only():
    assert error_estimate_warnings(np.array([0.01, ERROR_ESTIMATE_WARNING])) == []
    (line,) = error_estimate_warnings(np.array([0.01, 0.2, np.nan], np.float32))
    assert "2 of 3 samples" in line and "#1, #2" in line and "#0" not in line


def test_surrogate_returns_the_estimate_beside_the_same_strain(estimating_model, model_dir):
    e = _moduli()[:, None]  # [2, 1, 32, 32]
    model = SurrogateModel.load(estimating_model)
    strain, estimate = model.predict_with_estimate(e, 0.2, batch_size=1)
    np.testing.assert_array_equal(strain, model.predict(e, 0.2))
    np.testing.assert_allclose(strain, 2 * reference_strain(e), rtol=1e-5, atol=1e-6)
    assert estimate is not None and estimate.shape == (2,)
    np.testing.assert_allclose(estimate, _estimate(e), rtol=1e-5)  # independent of ū
    assert SurrogateModel.load(model_dir).predict_with_estimate(e)[1] is None


def test_predict_writes_the_estimate_and_warns(estimating_model, model_dir, tmp_path):
    np.save(tmp_path / "E.npy", _moduli())
    out = tmp_path / "out.h5"
    result = invoke("predict", str(estimating_model), str(tmp_path / "E.npy"), "-o", str(out))
    assert result.exit_code == 0, result.stderr
    with h5py.File(out) as f:
        np.testing.assert_allclose(f["error_estimate"][()], _estimate(_moduli()), rtol=1e-5)
    assert "error estimate" in result.stdout and "max 15." in result.stdout
    warning = [line for line in result.stderr.splitlines() if "error estimate above" in line]
    assert len(warning) == 1 and "1 of 2 samples (#1;" in warning[0]
    plain = invoke("predict", str(model_dir), str(tmp_path / "E.npy"), "-o", str(tmp_path / "p.h5"))
    assert plain.exit_code == 0 and "error estimate" not in plain.stdout + plain.stderr
    with h5py.File(tmp_path / "p.h5") as f:
        assert "error_estimate" not in f


@pytest.mark.slow
def test_rest_answers_the_estimate_per_sample(estimating_model, service_env, tmp_path):
    """`microstrain serve --model` on the estimating model, as a user starts it."""
    with running_server([estimating_model], service_env, tmp_path / "serve.log") as server:
        body = {"E": _moduli().tolist()}
        answer = httpx.post(f"{server.url}/predict", json=body, timeout=60).json()
    np.testing.assert_allclose(answer["error_estimate"], _estimate(_moduli()), rtol=1e-5)
    assert sum("error estimate above" in w and "#1;" in w for w in answer["warnings"]) == 1


def test_rest_has_no_estimate_for_a_model_without_it(client):
    response = client.post("/predict", json={"E": _moduli().tolist()})
    assert response.status_code == 200 and "error_estimate" not in response.json()
