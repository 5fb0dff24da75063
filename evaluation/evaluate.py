"""`microstrain evaluate` (SPEC §10): an exported model judged in the SPEC §9 measures on files.

Any SPEC §4 file will do, also one the model never saw: its test split, the project's evaluation
families (``microstrain generate --family``), or a user's own FE results. The model runs with
onnxruntime after its sha256 is checked; the file streams through in chunks, so its size is not
bounded by memory. A file of another load case or plane than the model's is refused (the physics
differs); another ū is rescaled, since the fields are linear in ū.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from microstrain.conventions import DEFAULT_APPLIED_STRAIN, DEFAULT_PLANE, LOAD_CASE
from microstrain.dataset import DatasetInfo, load_samples, now, read_info
from microstrain.errors import MicrostrainError
from microstrain.files import write_json
from microstrain.measures import ErrorAccumulator
from microstrain.surrogate import SurrogateModel

CHUNK = 512  # samples per onnxruntime call and per read


@dataclass(frozen=True)
class ModelLoadCase:
    """The load case a model was trained for (from its card)."""

    name: str
    plane: str

    @classmethod
    def of(cls, card: dict[str, Any]) -> ModelLoadCase:
        load_case = card.get("training_data", {}).get("load_case", {})
        return cls(
            str(load_case.get("name", LOAD_CASE)), str(load_case.get("plane", DEFAULT_PLANE))
        )


def check_compatible(info: DatasetInfo, model: ModelLoadCase, model_name: str) -> None:
    """Refuse a file whose load case or plane differs from the model's (one line, naming both)."""
    if info.load_case_name != model.name:
        raise MicrostrainError(
            f"{info.path} is load case '{info.load_case_name}' but model '{model_name}' was "
            f"trained for '{model.name}'"
        )
    if info.plane != model.plane:
        raise MicrostrainError(
            f"{info.path} is plane {info.plane} but model '{model_name}' was trained for plane "
            f"{model.plane}"
        )


def evaluate_file(
    model: SurrogateModel,
    path: str | os.PathLike[str],
    allow_incomplete: bool = False,
    chunk: int = CHUNK,
) -> dict[str, Any]:
    """The SPEC §10 measures of ``model`` on one file (strain rescaled to the model's ū)."""
    info = read_info(path)
    check_compatible(info, ModelLoadCase.of(model.card), model.name)
    if not info.complete and not allow_incomplete:
        raise MicrostrainError(
            f"{info.path} is marked incomplete (interrupted generation?); finish it with the same "
            "generate command, or pass --allow-incomplete"
        )
    accumulator = ErrorAccumulator(info.plane, DEFAULT_APPLIED_STRAIN)
    for start in range(0, info.n, chunk):
        indices = np.arange(start, min(start + chunk, info.n))
        samples = load_samples(path, allow_incomplete=allow_incomplete, indices=indices)
        predicted = model.predict(samples.youngs_modulus)  # [n, 3, 32, 32] for ū = 0.1
        accumulator.update(samples.youngs_modulus, predicted, samples.strain)
    if accumulator.n == 0:
        raise MicrostrainError(f"{info.path} holds no samples")
    result = accumulator.compute()
    result["applied_strain_of_file"] = info.applied_strain
    result["discretization"] = info.discretization
    return result


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
        "created": now(),
        "files": {},
    }
    for file in files:
        report["files"][file] = evaluate_file(model, file, allow_incomplete)
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


def percent(value: Any) -> str:
    return "–" if value is None else f"{100 * float(value):.2f} %"


def table_rows(report: dict[str, Any]) -> list[list[str]]:
    """One row per file: name, N, then the §9 measures in percent."""
    rows = []
    for file, measures in report["files"].items():
        cells = [percent(measures.get(key)) for _, key in COLUMNS]
        rows.append([Path(file).name, str(measures["n"]), *cells])
    return rows
