"""`microstrain evaluate` (SPEC §10): an exported model judged in the SPEC §9 measures on files.

Any SPEC §4 file will do, also one the model never saw: its test split, the project's evaluation
families (``microstrain generate --family``), or a user's own FE results. The model runs with
onnxruntime after its sha256 is checked; the measuring itself is :mod:`microstrain.scoring`
(shared with ``export``, which records the same measures in the card). This module adds the
report, its JSON and the table.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from microstrain.errors import MicrostrainError
from microstrain.files import timestamp, write_json
from microstrain.scoring import score_file
from microstrain.surrogate import SurrogateModel


def evaluate(
    model_dir: str | os.PathLike[str],
    files: list[str],
    allow_incomplete: bool = False,
    json_path: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Evaluate the model on every file (in order); write ``--json`` atomically if asked."""
    if not files:
        raise MicrostrainError("give at least one dataset file to evaluate on")
    model = SurrogateModel.load(model_dir)
    report: dict[str, Any] = {
        "model": {"name": model.name, "version": model.version, "sha256": model.sha256},
        "created": timestamp(),
        "files": {},
    }
    for file in files:
        report["files"][file] = score_file(model, file, allow_incomplete)
    if json_path is not None:
        write_json(json_path, report)
    return report


# --- the table a person reads ----------------------------------------------------------------

COLUMNS = (
    ("strain", "strain_relative_l2"),
    ("stress", "stress_relative_l2"),
    ("energy", "energy_norm_error"),
    ("E_x mean", "E_x_error_mean"),
    ("E_x max", "E_x_error_max"),
    ("ν_xy mean", "nu_xy_error_mean"),
    ("peak vM mean", "max_von_mises_error_mean"),
    ("peak vM max", "max_von_mises_error_max"),
)


# a periodic model (SPEC §11): the field measures are means over the three unit cases (each
# case's own are in the JSON under "cases"), then C_eff and the engineering constants
PERIODIC_COLUMNS = (
    ("strain", "strain_relative_l2"),
    ("stress", "stress_relative_l2"),
    ("energy", "energy_norm_error"),
    ("C_eff mean", "C_eff_error_mean"),
    ("C_eff max", "C_eff_error_max"),
    ("E_1 mean", "E_1_error_mean"),
    ("E_2 mean", "E_2_error_mean"),
    ("ν_12 mean", "nu_12_error_mean"),
    ("G_12 mean", "G_12_error_mean"),
)


def columns(report: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """The periodic columns when the files were judged in the SPEC §11 measures."""
    periodic = any("C_eff_error_mean" in m for m in report["files"].values())
    return PERIODIC_COLUMNS if periodic else COLUMNS


def percent(value: Any) -> str:
    return "–" if value is None else f"{100 * float(value):.2f} %"


# a model with an error estimate adds its Spearman ρ against the true energy-norm error
ESTIMATE_COLUMN = "estimate ρ"


def has_estimate(report: dict[str, Any]) -> bool:
    return any("error_estimate" in m for m in report["files"].values())


def table_headers(report: dict[str, Any]) -> list[str]:
    estimate = [ESTIMATE_COLUMN] if has_estimate(report) else []
    return ["file", "N", *(name for name, _ in columns(report)), *estimate]


def table_rows(report: dict[str, Any]) -> list[list[str]]:
    """One row per file: name, N, the §9 measures in percent, and the error estimate's ρ."""
    rows = []
    estimate = has_estimate(report)
    for file, measures in report["files"].items():
        cells = [percent(measures.get(key)) for _, key in columns(report)]
        if estimate:
            rho = measures.get("error_estimate", {}).get("spearman_energy_norm")
            cells.append("–" if rho is None else f"{rho:.2f}")
        rows.append([Path(file).name, str(measures["n"]), *cells])
    return rows
