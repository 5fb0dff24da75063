"""Answers of a periodic model (SPEC §11 REST): C_eff, the unit cases, or a macro load's fields.

A periodic model predicts, for E ``[N, 1, n, n]``, the three unit cases ``[N, 3, 3, n, n]``
(ū = 0.1) and ``C_eff`` ``[N, 3, 3]`` MPa. A request without a load gets both; with
``"macro_strain": [EXX, EYY, GXY]`` it gets that load's strain ``[N, 3, n, n]`` by superposition,
with ``"macro_stress": [SXX, SYY, TXY]`` (MPa) the macro strain C_eff⁻¹ Σ̄ first. Both carry the
engineering constants E_1, E_2, ν_12, G_12 of C_eff, their Reuss and Voigt values at the
sample's fiber fraction, and the error estimate. Every formula is the core's
(:mod:`microstrain.quantities`); here only the request's load is checked and the answer laid out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from microstrain.conventions import (
    DEFAULT_APPLIED_STRAIN,
    MAX_ABS_APPLIED_STRAIN,
    N_STRAIN,
    PERIODIC_CASES,
    STRAIN_CHANNELS,
    STRESS_CHANNELS,
)
from microstrain.domain import out_of_distribution
from microstrain.errors import InputError
from microstrain.fields import fiber_fraction
from microstrain.quantities import (
    constant_bounds,
    effective_stiffness,
    engineering_constants,
    macro_strain_fields,
    macro_strain_of_stress,
    periodic_quantities,
    quantities,
)
from serving.registry import ServedModel
from serving.validation import RequestError, error_estimate_warnings

LOAD_FIELDS = ("macro_strain", "macro_stress")


class LoadRequest(Protocol):
    """The fields of a /predict body this module reads."""

    applied_strain: float | None
    macro_strain: Any
    macro_stress: Any


@dataclass(frozen=True)
class Load:
    """A request's macro load: ``kind`` is ``macro_strain`` or ``macro_stress``."""

    kind: str
    values: (
        np.ndarray
    )  # float64 [3]: (eps_xx, eps_yy, gamma_xy) or (sigma_xx, sigma_yy, tau_xy) MPa


def parse_load(field: str, value: Any) -> np.ndarray:
    """Three finite numbers (xx, yy, xy) -> float64 ``[3]``; :class:`RequestError` otherwise."""
    if not isinstance(value, list) or len(value) != N_STRAIN:
        got = f"{len(value)} values" if isinstance(value, list) else type(value).__name__
        raise RequestError(f"'{field}' must be three numbers [xx, yy, xy]; got {got}")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
        raise RequestError(f"'{field}' must hold numbers only; got {value!r}")
    if not all(math.isfinite(v) for v in value):
        raise RequestError(f"'{field}' must be finite; got {value!r}")
    return np.asarray(value, np.float64)


def request_load(request: LoadRequest, model: str) -> Load | None:
    """The load a request to the periodic ``model`` asks for (None: the unit cases and C_eff)."""
    if request.applied_strain is not None:
        raise RequestError(
            f"model {model!r} is periodic: give 'macro_strain' [eps_xx, eps_yy, gamma_xy] or "
            "'macro_stress' [sigma_xx, sigma_yy, tau_xy] (MPa) instead of 'applied_strain'"
        )
    if request.macro_strain is not None and request.macro_stress is not None:
        raise RequestError("give either 'macro_strain' or 'macro_stress', not both")
    if request.macro_strain is not None:
        values = parse_load("macro_strain", request.macro_strain)
        check_small_strain(values, "'macro_strain'")
        return Load("macro_strain", values)
    if request.macro_stress is not None:
        return Load("macro_stress", parse_load("macro_stress", request.macro_stress))
    return None


def refuse_load(request: LoadRequest, model: str, periodic_models: list[str]) -> None:
    """A uniaxial model takes no macro load: one line naming the periodic models served."""
    given = [f for f in LOAD_FIELDS if getattr(request, f) is not None]
    if given:
        served = ", ".join(periodic_models) or "none is served here"
        raise RequestError(
            f"'{given[0]}' applies to periodic models (served: {served}); model {model!r} is "
            "uniaxial and takes 'applied_strain'"
        )


def check_small_strain(macro_strain: np.ndarray, what: str) -> None:
    """Every component within the small-strain ceiling of ū (|Ē_j| ≤ 1), not all zero."""
    largest = float(np.max(np.abs(macro_strain)))
    if largest > MAX_ABS_APPLIED_STRAIN:
        raise RequestError(
            f"{what} has a component of {largest:g}, outside |ε| ≤ {MAX_ABS_APPLIED_STRAIN:g} "
            "(small-strain theory; give a fraction, not percent)"
        )
    if largest == 0:
        raise RequestError(f"{what} is zero: every field would be zero")


def prediction_fields(
    served: ServedModel, youngs_modulus: np.ndarray, load: Load | None
) -> dict[str, Any]:
    """What every answer of a periodic model carries, for validated E ``[N, 1, n, n]`` MPa: the
    strain (the unit cases ``[N, 3, 3, n, n]``, or the load's ``[N, 3, n, n]``), ``C_eff``
    ``[N, 3, 3]`` MPa, the load's macro strain and stress ``[N, 3]``, the error estimate and the
    warnings (numpy values, not lists). :class:`RequestError` for a load the prediction cannot
    carry (a macro stress on a singular C_eff, or one that would strain beyond the small-strain
    ceiling). ``/predict_npy`` answers this alone; :func:`answer` adds the summary. The caller
    counts the predictions once its answer stands."""
    e = youngs_modulus
    prediction = served.run_periodic(e)
    cases, c_eff = prediction.strain, prediction.c_eff  # [N, 3, 3, n, n], [N, 3, 3]
    warnings = out_of_distribution(e, served.card)
    try:
        macro = None if load is None else load_macro_strain(c_eff, load)  # [N, 3]
    except InputError as exc:  # a singular C_eff: the prediction cannot answer this load
        raise RequestError(f"model {served.name!r}: {exc}") from None
    result: dict[str, Any] = {"warnings": warnings, "C_eff": c_eff}
    if load is None or macro is None:
        result.update(
            strain=cases, cases=list(PERIODIC_CASES), applied_strain=DEFAULT_APPLIED_STRAIN
        )
    else:
        result.update(
            strain=macro_strain_fields(cases, macro, DEFAULT_APPLIED_STRAIN),  # [N, 3, n, n]
            load=load.kind,
            macro_strain=macro,
            macro_stress=np.einsum("nij,nj->ni", c_eff.astype(np.float64), macro),
        )
    if prediction.error_estimate is not None:
        result["error_estimate"] = prediction.error_estimate
        warnings.extend(error_estimate_warnings(prediction.error_estimate))
    caveat = served.large.estimate_caveat
    if caveat is not None:
        warnings.append(caveat)
    return result


def answer(
    served: ServedModel, youngs_modulus: np.ndarray, load: Load | None, with_quantities: bool
) -> dict[str, Any]:
    """The /predict answer of a periodic model for validated E ``[N, 1, n, n]`` MPa:
    :func:`prediction_fields` with the engineering constants of C_eff, their Reuss and Voigt
    bounds at each sample's fiber fraction and, ``with_quantities``, the §9 stress fields."""
    e = youngs_modulus
    fields = prediction_fields(served, e, load)
    fraction = fiber_fraction(e).astype(np.float64)  # [N]
    try:
        constants = engineering_constants(fields["C_eff"])  # each [N]
    except InputError as exc:  # a singular C_eff has no engineering constants
        raise RequestError(f"model {served.name!r}: {exc}") from None
    bounds = constant_bounds(fraction, served.plane)  # name -> ([N], [N])
    result: dict[str, Any] = {
        "strain": fields.pop("strain"),
        "channels": list(STRAIN_CHANNELS),
        "model": served.info,
        "mode": served.mode,
        "plane": served.plane,
        "warnings": fields.pop("warnings"),
        "C_eff": fields.pop("C_eff"),
        "engineering_constants": constants,
        "bounds": {
            name: {"reuss": reuss, "voigt": voigt} for name, (reuss, voigt) in bounds.items()
        },
        "fiber_fraction": fraction,
        **fields,
    }
    if with_quantities:
        result.update(load_quantities(e, result["strain"], served.plane, load is None))
    served.counter.add(e.shape[0])
    return result


def load_macro_strain(c_eff: np.ndarray, load: Load) -> np.ndarray:
    """The macro strain ``[N, 3]`` of a load: given, or C_eff⁻¹ Σ̄ (within the ceiling)."""
    n = c_eff.shape[0]
    if load.kind == "macro_strain":
        return np.broadcast_to(load.values, (n, N_STRAIN)).copy()
    macro = macro_strain_of_stress(c_eff, load.values)  # [N, 3]
    check_small_strain(macro, f"the macro strain C_eff^-1 {load.values.tolist()}")
    return macro


def load_quantities(
    youngs_modulus: np.ndarray, strain: np.ndarray, plane: str, unit_cases: bool
) -> dict[str, Any]:
    """SPEC §9 stress ``[N, 3, n, n]`` MPa, von Mises ``[N, n, n]`` and its peak ``[N]`` of a
    load's strain ``[N, 3, n, n]``; for the unit cases ``[N, 3, 3, n, n]`` one per case."""
    if unit_cases:
        q = periodic_quantities(youngs_modulus, strain, plane, DEFAULT_APPLIED_STRAIN)
    else:
        # E_x and ν_xy of the uniaxial test do not apply to a periodic load (no free edge)
        q = quantities(youngs_modulus, strain, plane, DEFAULT_APPLIED_STRAIN)
    return {
        "stress": q["stress"],
        "stress_channels": list(STRESS_CHANNELS),
        "von_mises": q["von_mises"],
        "max_von_mises": q["max_von_mises"],
    }


def stiffness_pair(
    youngs_modulus: np.ndarray, c_eff: np.ndarray, reference_cases: np.ndarray, plane: str
) -> dict[str, Any]:
    """The model's ``C_eff`` ``[N, 3, 3]`` and FE's (from its unit cases ``[N, 3, 3, n, n]`` at
    ū = 0.1, :func:`microstrain.quantities.effective_stiffness`), MPa, with the engineering
    constants of each (``/verify`` of a periodic model)."""
    reference = effective_stiffness(youngs_modulus, reference_cases, plane, DEFAULT_APPLIED_STRAIN)
    try:
        constants = engineering_constants(c_eff), engineering_constants(reference)
    except InputError:  # a singular stiffness has no constants; the measures still say how far
        return {"C_eff": c_eff, "C_eff_fe": reference}
    return {
        "C_eff": c_eff,
        "C_eff_fe": reference,
        "engineering_constants": constants[0],
        "engineering_constants_fe": constants[1],
    }
