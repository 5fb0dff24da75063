"""`microstrain evaluate` with a periodic model on a periodic file: the SPEC §11 table and JSON."""

from __future__ import annotations

import json
from pathlib import Path

from support.cli import invoke
from support.models import make_periodic_model_dir
from support.periodic import write_periodic_dataset


def test_the_periodic_measures_are_the_table_and_the_json(tmp_path: Path) -> None:
    model = make_periodic_model_dir(tmp_path / "periodic")
    data = write_periodic_dataset(tmp_path / "cells.h5", n=4, seed=3)
    out = tmp_path / "report.json"
    result = invoke("evaluate", model, data, "--json", out)
    assert result.exit_code == 0, result.output
    for header in ("C_eff mean", "E_1 mean", "G_12 mean", "estimate ρ"):
        assert header in result.stdout
    measures = json.loads(out.read_text())["files"][str(data)]
    assert measures["n"] == 4 and set(measures["cases"]) == {"xx", "yy", "xy"}
    assert 0 < measures["C_eff_error_mean"] <= measures["C_eff_error_max"]


def test_tau_repeats_that_the_estimate_understates_the_error(tmp_path: Path) -> None:
    """A periodic sample's T_simulation is all three cases (solve_seconds of a §11 file), a
    prediction's T_surrogate all three too; the calibration caveat of the card is repeated."""
    quality = {"median_estimate_over_error": 0.2, "measured_on": "the test split"}
    model = make_periodic_model_dir(tmp_path / "periodic", error_estimate=quality)
    result = invoke("tau", model)
    assert result.exit_code == 0, result.output
    assert "understates its true error" in result.stderr
