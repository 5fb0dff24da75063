"""A model's SPEC §9 error measures on a dataset file: what ``evaluate`` reports and ``export``
records in the card.

The file streams through in chunks (its size is not bounded by memory) and is compared at the
models' ū = 0.1: another ū is rescaled, since the fields are linear in ū; a file of another load
case or plane than the model's is refused, because the physics differs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from microstrain.conventions import DEFAULT_APPLIED_STRAIN, DEFAULT_PLANE, LOAD_CASE, N_CASES
from microstrain.dataset import DatasetInfo, load_samples, read_info
from microstrain.errors import MicrostrainError
from microstrain.measures import (
    ErrorAccumulator,
    PeriodicErrorAccumulator,
    per_sample_measures,
    spearman,
)
from microstrain.surrogate import ERROR_ESTIMATE_WARNING, SurrogateModel

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


def score_file(
    model: SurrogateModel,
    path: str | os.PathLike[str],
    allow_incomplete: bool = False,
    chunk: int = CHUNK,
) -> dict[str, Any]:
    """The SPEC §10 measures of ``model`` on one file (strain rescaled to the model's ū)."""
    info = read_info(path)
    check_compatible(info, ModelLoadCase.of(model.card), model.name)
    if model.is_periodic:
        return score_periodic_file(model, info, allow_incomplete, chunk)
    if not info.complete and not allow_incomplete:
        raise MicrostrainError(
            f"{info.path} is marked incomplete (interrupted generation?); finish it with the same "
            "generate command, or pass --allow-incomplete"
        )
    accumulator = ErrorAccumulator(info.plane, DEFAULT_APPLIED_STRAIN)
    estimates: list[np.ndarray] = []
    errors: list[np.ndarray] = []
    for start in range(0, info.n, chunk):
        indices = np.arange(start, min(start + chunk, info.n))
        samples = load_samples(path, allow_incomplete=allow_incomplete, indices=indices)
        # [n, 3, 32, 32] for ū = 0.1, and the model's error estimate [n] where it has one
        predicted, estimate = model.predict_with_estimate(samples.youngs_modulus)
        per_sample = accumulator.update(samples.youngs_modulus, predicted, samples.strain)
        if estimate is not None:
            estimates.append(estimate)
            errors.append(per_sample["energy_norm_error"])
    if accumulator.n == 0:
        raise MicrostrainError(f"{info.path} holds no samples")
    result = accumulator.compute()
    result["applied_strain_of_file"] = info.applied_strain
    result["discretization"] = info.discretization
    if estimates:
        result["error_estimate"] = estimate_quality(
            np.concatenate(estimates), np.concatenate(errors)
        )
    return result


def score_periodic_file(
    model: SurrogateModel, info: DatasetInfo, allow_incomplete: bool = False, chunk: int = CHUNK
) -> dict[str, Any]:
    """The SPEC §11 measures of a periodic model on a periodic file: per load case the field
    measures, their mean, the C_eff and engineering-constant errors against the file's C_eff,
    and how the model's error estimate ranks the samples' energy-norm error (mean over the
    cases)."""
    if info.grid not in model.input_sizes:
        raise MicrostrainError(
            f"{info.path} holds {info.grid}x{info.grid} cells; model '{model.name}' takes "
            f"{', '.join(f'{n}x{n}' for n in model.input_sizes)}"
        )
    accumulator = PeriodicErrorAccumulator(
        info.plane, DEFAULT_APPLIED_STRAIN, fiber=info.fiber, matrix=info.matrix
    )
    estimates: list[np.ndarray] = []
    errors: list[np.ndarray] = []
    for start in range(0, info.n, chunk):
        indices = np.arange(start, min(start + chunk, info.n))
        samples = load_samples(
            info.path, allow_incomplete=allow_incomplete, indices=indices, boundary="periodic"
        )
        prediction = model.predict_periodic(samples.youngs_modulus)
        accumulator.update(
            samples.youngs_modulus,
            prediction.strain,
            samples.strain,
            prediction.c_eff.astype(np.float64),
            samples.c_eff,
        )
        if prediction.error_estimate is not None:
            e = samples.youngs_modulus
            per_case = [
                per_sample_measures(e, prediction.strain[:, j], samples.strain[:, j], info.plane)[
                    "energy_norm_error"
                ]
                for j in range(N_CASES)
            ]
            estimates.append(prediction.error_estimate)
            errors.append(np.mean(per_case, axis=0))
    if accumulator.n == 0:
        raise MicrostrainError(f"{info.path} holds no samples")
    result = accumulator.compute()
    result["applied_strain_of_file"] = info.applied_strain
    result["discretization"] = info.discretization
    result["grid"] = info.grid
    if estimates:
        result["error_estimate"] = estimate_quality(
            np.concatenate(estimates), np.concatenate(errors)
        )
    return result


def estimate_quality(estimate: np.ndarray, energy_error: np.ndarray) -> dict[str, float | None]:
    """How well a model's error estimate ``[N]`` tracks its true energy-norm error ``[N]``:
    Spearman's ρ (does it rank the samples right?), the medians and their ratio (is it
    calibrated?) and how many samples the service would flag (``ERROR_ESTIMATE_WARNING``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = float(np.nanmedian(estimate / energy_error))
    rho = spearman(estimate, energy_error)
    return {
        "spearman_energy_norm": rho if np.isfinite(rho) else None,  # None: too few samples
        "median_estimate": float(np.median(estimate)),
        "median_energy_norm_error": float(np.nanmedian(energy_error)),
        "median_estimate_over_error": ratio,
        "flagged": int((estimate > ERROR_ESTIMATE_WARNING).sum()),
    }
