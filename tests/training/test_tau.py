"""Breakeven τ (SPEC §6): arithmetic, times from a dataset file, and the report on a real graph."""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from microstrain.conventions import (
    CARD_FILE,
    DS_E,
    DS_SOLVE_SECONDS,
    FIBER,
    MATRIX,
    MODEL_FILE,
    ONNX_INPUT,
    ONNX_OUTPUT,
)
from microstrain.errors import MicrostrainError
from microstrain.files import sha256_of
from training.tau import (
    TAU_JSON,
    TAU_MD,
    TAU_PNG,
    breakeven,
    dataset_timing,
    format_tau,
    run_tau,
)


# --- arithmetic -------------------------------------------------------------------------------
def test_tau_uses_the_minus_sign():
    # 150 s up front, each evaluation saves 0.5 - 0.001 s
    assert breakeven(100.0, 50.0, 0.5, 0.001) == pytest.approx(150.0 / 0.499)
    assert breakeven(10.0, 0.0, 2.0, 1.0) == pytest.approx(10.0)  # the slide's '+' would give 3.33
    assert breakeven(0.0, 0.0, 1.0, 0.5) == 0.0


@pytest.mark.parametrize("t_surrogate", [0.5, 0.7])
def test_tau_is_never_when_the_surrogate_is_not_faster(t_surrogate):
    assert breakeven(100.0, 50.0, 0.5, t_surrogate) is None
    assert format_tau(None) == "never"


def test_tau_rejects_impossible_times():
    for bad in (-1.0, math.nan, math.inf):
        with pytest.raises(MicrostrainError):
            breakeven(bad, 1.0, 1.0, 0.1)


def test_format_tau_rounds_up_to_whole_evaluations():
    assert format_tau(300.2) == "301"
    assert format_tau(12000.0) == "12,000"


# --- times from the dataset -------------------------------------------------------------------
def _dataset(path: Path, seconds: list[float], wall: float | None = None, n_e: int = 4) -> Path:
    rng = np.random.default_rng(1)
    e = np.where(rng.random((n_e, 1, 32, 32)) < 0.3, FIBER.youngs_modulus, MATRIX.youngs_modulus)
    with h5py.File(path, "w") as f:
        f.create_dataset(DS_E, data=e.astype(np.float32))
        f.create_dataset(DS_SOLVE_SECONDS, data=np.asarray(seconds, dtype=np.float64))
        if wall is not None:
            f.attrs["wall_seconds"] = wall
            f.attrs["runs"] = json.dumps([{"ranks": 2, "samples": len(seconds)}])
    return path


def test_dataset_timing_prefers_the_total_wall_time(tmp_path):
    t = dataset_timing(_dataset(tmp_path / "d.h5", [0.1, 0.2, 0.3, 0.4, 10.0], wall=7.5))
    assert t.t_data == 7.5 and "wall_seconds" in t.t_data_source
    assert t.t_simulation == pytest.approx(0.3)  # median: the slow outlier does not count
    assert t.n_samples == 5 and "2 MPI rank" in t.hardware


def test_dataset_timing_falls_back_to_the_sum_of_solve_times(tmp_path):
    t = dataset_timing(_dataset(tmp_path / "d.h5", [0.1, 0.2, 0.3]))
    assert t.t_data == pytest.approx(0.6) and "sum of solve_seconds" in t.t_data_source


def test_dataset_without_solve_times_is_a_clear_error(tmp_path):
    path = tmp_path / "d.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset(DS_E, data=np.zeros((1, 1, 32, 32), np.float32))
    with pytest.raises(MicrostrainError, match="solve_seconds"):
        dataset_timing(path)


# --- the report on a real onnxruntime session ------------------------------------------------
def _model_dir(directory: Path, **card_fields) -> Path:
    """A tiny graph following the model contract (one 3x3 conv) and a card."""
    directory.mkdir()
    w = np.random.default_rng(0).normal(0, 1e-6, (3, 1, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", [ONNX_INPUT, "w"], [ONNX_OUTPUT], pads=[1] * 4)],
        "tau-test",
        [helper.make_tensor_value_info(ONNX_INPUT, TensorProto.FLOAT, ["batch", 1, 32, 32])],
        [helper.make_tensor_value_info(ONNX_OUTPUT, TensorProto.FLOAT, ["batch", 3, 32, 32])],
        initializer=[numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.save(model, directory / MODEL_FILE)
    card = {
        "name": directory.name,
        "training": {"train_seconds": 40.0, "hardware": "CPU: test"},
        "training_data": {"file": "train.h5"},
        "metrics": {"test": {"overall": 0.031, "eps_xx": 0.02, "fiber": 0.05}},
        "onnx": {"file": MODEL_FILE, "sha256": sha256_of(directory / MODEL_FILE)},
        **card_fields,
    }
    (directory / CARD_FILE).write_text(json.dumps(card))
    return directory


def test_report_files_and_card_agree_with_the_formula(tmp_path):
    model = _model_dir(tmp_path / "m")
    data = _dataset(tmp_path / "train.h5", [0.5, 0.6, 0.7], wall=60.0)
    report, files = run_tau(model, dataset=data, threads=(1,), batch_size=8, budget_s=0.2)

    assert report.T_data == 60.0 and report.T_train == 40.0 and report.T_simulation == 0.6
    assert 0 < report.T_surrogate < 0.6
    assert report.tau == pytest.approx(100.0 / (0.6 - report.T_surrogate))
    assert report.tau_batched == pytest.approx(100.0 / (0.6 - report.T_surrogate_batched))

    saved = json.loads(files["json"].read_text())
    assert saved["tau"] == pytest.approx(report.tau)
    card = json.loads((model / CARD_FILE).read_text())
    for key in ("T_data", "T_train", "T_simulation", "T_surrogate", "T_surrogate_batched"):
        assert card[key] == pytest.approx(getattr(report, key))
    assert card["tau"] == pytest.approx(report.tau)
    assert set(card["timing_hardware"]) >= {"T_data", "T_train", "T_simulation", "T_surrogate"}
    assert card["onnx"]["sha256"] == sha256_of(model / MODEL_FILE)  # still valid
    assert (model / TAU_PNG).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (model / TAU_MD).read_text()
    assert "3.10%" in text  # the held-out error stands next to the speed-up
    assert format_tau(report.tau) in text
    assert not list(model.glob(".*"))  # no temporary files left behind


def test_report_says_never_when_the_simulation_is_faster(tmp_path):
    model = _model_dir(tmp_path / "m")
    data = _dataset(tmp_path / "train.h5", [1e-9, 1e-9])
    report, _ = run_tau(model, dataset=data, threads=(1,), batch_size=4, budget_s=0.1)
    assert report.tau is None and report.tau_batched is None
    assert json.loads((model / CARD_FILE).read_text())["tau"] is None
    assert "never" in (model / TAU_MD).read_text()
    assert json.loads((model / TAU_JSON).read_text())["tau"] is None


def test_without_dataset_the_cards_earlier_times_are_reused(tmp_path):
    model = _model_dir(tmp_path / "m", T_data=30.0, T_simulation=2.0)
    report, _ = run_tau(model, threads=(1,), batch_size=4, budget_s=0.1)
    assert report.T_data == 30.0 and report.T_simulation == 2.0
    assert "earlier" in report.sources["T_data"]


def test_without_dataset_or_earlier_times_the_error_asks_for_one(tmp_path):
    model = _model_dir(tmp_path / "m")
    with pytest.raises(MicrostrainError, match="--dataset"):
        run_tau(model, threads=(1,), batch_size=4, budget_s=0.1)
