"""Breakeven τ (SPEC §6) in the core: the arithmetic, the times a dataset records, and the
surrogate timing on a real onnxruntime session."""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
from support.datasets import standin_moduli, standin_strain
from support.models import make_model_dir

from microstrain.breakeven import breakeven, format_tau, measure_surrogate, timing_inputs
from microstrain.conventions import ATTR_RUNS, E_SHAPE
from microstrain.dataset import summarize, write_dataset
from microstrain.errors import MicrostrainError
from microstrain.hardware import cpu_description


# --- arithmetic -------------------------------------------------------------------------------
def test_tau_uses_the_minus_sign():
    # 150 s up front, each evaluation saves 0.5 - 0.001 s
    assert breakeven(100.0, 50.0, 0.5, 0.001) == 150.0 / 0.499
    assert breakeven(10.0, 0.0, 2.0, 1.0) == 10.0  # the slide's '+' would give 3.33
    assert breakeven(0.0, 0.0, 1.0, 0.5) == 0.0


@pytest.mark.parametrize("t_surrogate", [0.5, 0.7])
def test_tau_is_never_when_the_surrogate_is_not_faster(t_surrogate):
    assert breakeven(100.0, 50.0, 0.5, t_surrogate) is None
    assert format_tau(None) == "never"


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_tau_rejects_impossible_times(bad):
    with pytest.raises(MicrostrainError, match="T_data must be a finite time"):
        breakeven(bad, 1.0, 1.0, 0.1)


def test_format_tau_rounds_up_to_whole_evaluations():
    assert format_tau(300.2) == "301"
    assert format_tau(12000.0) == "12,000"


# --- the times a dataset records ---------------------------------------------------------------
def _dataset(path: Path, seconds: list[float], wall: float | None = None) -> Path:
    e = standin_moduli(len(seconds))
    write_dataset(path, e, standin_strain(e), solve_seconds=np.asarray(seconds), wall_seconds=wall)
    if wall is not None:
        with h5py.File(path, "r+") as f:
            f.attrs[ATTR_RUNS] = json.dumps([{"ranks": 2, "samples": len(seconds)}])
    return path


def test_T_data_is_the_total_wall_time_and_T_simulation_the_median(tmp_path):
    s = summarize(_dataset(tmp_path / "d.h5", [0.1, 0.2, 0.3, 0.4, 10.0], wall=7.5))
    assert s.t_data == 7.5 and "wall_seconds" in s.t_data_source
    assert s.t_simulation == 0.3  # median: the slow outlier does not count
    assert s.t_simulation_mean == pytest.approx(11.0 / 5, rel=1e-15)
    assert s.n_samples == 5 and s.hardware == "not recorded in the dataset (2 MPI rank(s))"


def test_T_data_falls_back_to_the_sum_of_solve_times(tmp_path):
    s = summarize(_dataset(tmp_path / "d.h5", [0.1, 0.2, 0.3]))
    assert s.t_data == pytest.approx(0.6, rel=1e-15) and "sum of solve_seconds" in s.t_data_source


def test_a_dataset_without_solve_times_has_no_times(tmp_path):
    e = standin_moduli(2)
    path = write_dataset(tmp_path / "d.h5", e, standin_strain(e))  # solve_seconds NaN
    summary = summarize(path)
    assert summary.n_samples == 2
    assert summary.t_data is None and summary.t_simulation is None
    assert summary.t_data_source == "none: the file records no solve_seconds"


# --- the surrogate time ------------------------------------------------------------------------
def test_timing_inputs_repeat_the_given_samples_or_draw_masks():
    e = standin_moduli(3)
    inputs = timing_inputs(7, e)
    assert inputs.shape == (7, *E_SHAPE) and inputs.dtype == np.float32
    np.testing.assert_array_equal(inputs[3:6], e)
    drawn = timing_inputs(4)
    assert set(np.unique(drawn)) <= {3000.0, 85000.0}


def test_measure_surrogate_keeps_the_fastest_thread_count(tmp_path):
    model = make_model_dir(tmp_path / "m")
    timing = measure_surrogate(model, timing_inputs(8), threads=(1, 2), batch_size=8, budget_s=0.1)
    assert set(timing.by_threads) == {"1", "2"} and timing.batch_size == 8
    assert timing.t_batch1 == min(r["batch1"] for r in timing.by_threads.values())
    assert timing.t_batched == min(r["batched"] for r in timing.by_threads.values())
    assert timing.t_batch1 == timing.by_threads[str(timing.threads_batch1)]["batch1"]
    assert timing.hardware == cpu_description()
