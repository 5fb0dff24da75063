"""The dynamics experiment: its JSON and report on a tiny run; the 10× energy target over seeds."""

from __future__ import annotations

import json
import statistics
from dataclasses import replace
from pathlib import Path

import pytest

from training.baselines.dynamics import (
    PRIMARY_INTEGRATOR,
    DynamicsConfig,
    DynamicsRun,
    run_dynamics,
)
from training.baselines.dynamics_report import write_dynamics_report
from training.baselines.report import write_json

SCHEMES = ["implicit_midpoint", "leapfrog", "symplectic_euler", "forward_euler"]
# seconds, not physics: a small network, a few optimiser steps, 50 integration steps, and levels
# loose enough that some model lands on them (so the drift-vs-fit entries are exercised)
TINY = DynamicsConfig(
    n_train=20,
    t_train=0.3,
    t_end=0.5,
    hidden=(16, 16),
    epochs=20,
    lm_iterations=10,
    fit_tolerance=1e-4,
    drift_levels=(1e-2,),
)


def test_json_and_report_contract_on_a_tiny_run(tmp_path: Path) -> None:
    """What `microstrain baselines dynamics` writes (the JSON of --json and dynamics/*.md, *.png),
    from the same run and report functions, on settings that take seconds."""
    run = run_dynamics(TINY, log=lambda _: None)
    write_dynamics_report(run, tmp_path)
    write_json(tmp_path / "dynamics.json", run.results)

    data = json.loads((tmp_path / "dynamics.json").read_text())
    assert data["primary"] == PRIMARY_INTEGRATOR == "implicit_midpoint"
    assert data["config"]["t_end"] == TINY.t_end and data["config"]["hidden"] == [16, 16]
    assert set(data["models"]) == {"mlp", "hnn", "lnn"}
    for entry in [*data["models"].values(), data["reference"]]:
        assert list(entry["integrators"]) == SCHEMES
        # the headline numbers are the primary (implicit midpoint) integrator's
        for key in ("energy_drift", "trajectory_error", "trajectory_error_extrapolation"):
            assert entry[key] == entry["integrators"][PRIMARY_INTEGRATOR][key]
    for name, entry in data["models"].items():
        assert {"parameters", "train_seconds", "training_mse", "reached_fit_tolerance"} <= set(
            entry
        )
        assert set(entry["drift_by_training_mse"]) <= {"1e-02", "1e-04"}
        assert entry["reached_fit_tolerance"] == ("1e-04" in entry["drift_by_training_mse"]), name
        # the reported fit is the headline model's: at the tolerance, or where training ended
        # for a model that did not reach it (not at the last level it passed on the way)
        assert entry["training_mse"] == pytest.approx(run.histories[name][-1], rel=1e-9), name
    assert not all(entry["reached_fit_tolerance"] for entry in data["models"].values())
    assert any(entry["drift_by_training_mse"] for entry in data["models"].values())

    report = (tmp_path / "dynamics.md").read_text()
    assert "<!-- headline -->" in report and "exact field (reference)" in report
    for figure in ["history", "drift_vs_fit", *SCHEMES]:
        png = tmp_path / f"dynamics_{figure}.png"
        assert f"]({png.name})" in report
        assert png.stat().st_size > 10_000


# seed 3 is the one on which the standard network happens to drift little: in the set on purpose
SEEDS = (0, 2, 3)


@pytest.fixture(scope="module")
def quick_seed0() -> DynamicsRun:
    """``--quick``, seed 0, with the watched training-MSE levels; leapfrog beside the midpoint rule
    (the other two schemes only cost time here)."""
    return run_dynamics(
        DynamicsConfig.quick(), log=lambda _: None, schemes=(PRIMARY_INTEGRATOR, "leapfrog")
    )


@pytest.mark.slow  # three quick trainings (~15 s each on a quiet core, 3× that on a busy one)
def test_hnn_and_lnn_hold_energy_10x_better_than_standard_network(
    quick_seed0: DynamicsRun,
) -> None:
    """The acceptance target over seeds: ``--quick``, implicit midpoint rule, median factor ≥ 10×.

    All three networks are trained to the same training MSE, so the factor measures structure,
    not how far each optimiser got. Factors measured per seed 0–4: HNN 14.5 / 18 / 19 / 1.4 / 31,
    LNN 52 / 42 / 33 / 3.1 / 15. On seed 3 the standard network's drift happens to stay small at
    this fit (docs/baselines.md), so one seed alone would be a coin toss; the median over seeds
    0, 2 and 3 (HNN 14.5 / 19 / 1.4, LNN 52 / 33 / 3.1) is not. Seeds other than 0 watch no other
    levels (the optimiser's path, and so the headline, is the same).
    """
    runs = [quick_seed0] + [
        run_dynamics(
            replace(DynamicsConfig.quick(), seed=seed, drift_levels=()),
            log=lambda _: None,
            schemes=(PRIMARY_INTEGRATOR,),
        )
        for seed in SEEDS[1:]
    ]
    factors: dict[str, list[float]] = {"hnn": [], "lnn": []}
    for run in runs:
        models = run.results["models"]
        for name, entry in models.items():
            assert entry["reached_fit_tolerance"], (run.config.seed, name)
            assert entry["training_mse"] == pytest.approx(run.config.fit_tolerance, rel=1e-6)
        for name, per_seed in factors.items():
            per_seed.append(models["mlp"]["energy_drift"] / models[name]["energy_drift"])
    for name, per_seed in factors.items():
        assert statistics.median(per_seed) >= 10, (name, per_seed)


@pytest.mark.slow  # shares the seed-0 run above
def test_hnn_needs_the_midpoint_rule_and_drift_falls_with_fit(quick_seed0: DynamicsRun) -> None:
    """Both held on each of seeds 0–4 (leapfrog/midpoint for the HNN 37–123×; the sweep fell at
    every step for both networks); seed 0 is checked here."""
    models = quick_seed0.results["models"]
    # leapfrog is symplectic only for separable H; on the learned, non-separable H it makes the
    # HNN gain energy every period, which the midpoint rule (symplectic for any H) does not
    hnn = models["hnn"]["integrators"]
    assert hnn[PRIMARY_INTEGRATOR]["energy_drift"] * 5 < hnn["leapfrog"]["energy_drift"]
    # the structured networks' drift falls as their fit improves (the report's sweep)
    for name in ("hnn", "lnn"):
        by_mse = models[name]["drift_by_training_mse"]
        assert by_mse["1e-08"] < by_mse["1e-07"] < by_mse["1e-06"], (name, by_mse)
