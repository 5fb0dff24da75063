"""Error measures of a predicted strain field against a reference (SPEC §9, §10), in numpy.

Every measure is a fraction (0.036, not 3.6), computed **per sample and then averaged over
samples** (SPEC §9):

    strain_relative_l2     ‖ε̂ − ε‖ / ‖ε‖ over all channels and pixels of the sample; also per
                           channel (eps_xx, eps_yy, gamma_xy) and per phase (matrix, fiber pixels)
    stress_relative_l2     the same for stress σ = C ε
    energy_norm_error      √(Σ Δε : C : Δε / Σ ε : C : ε), Δε = ε̂ − ε, C per pixel; with
                           engineering shear ε : C : ε = σ · (ε_xx, ε_yy, γ_xy)
                           = κ tr² + μ (dev² + γ²) (:mod:`microstrain.quantities`)
    E_x_error              |Ê_x / E_x − 1|, reported as mean and max over samples
    nu_xy_error            |ν̂_xy / ν_xy − 1|, mean
    max_von_mises_error    |max σ̂_vM / max σ_vM − 1|, mean and max

A sample enters a measure's mean only where that measure is defined for it, i.e. where its
denominator is non-zero: a sample without fiber pixels is skipped in the fiber average (and one
without matrix pixels in the matrix average); a measure defined for no sample is ``None``. A NaN
prediction is not skipped: it makes the measure NaN, as a broken model should.

The pooled ratio √(Σ_samples Σ_pixels err² / Σ_samples Σ_pixels true²), in which samples with
large strains weigh more, is what ``serving/verify.py`` and ``data_gen/convergence.py`` report
for one check or one sample set. The two
agree for one sample, or when all samples have the same error, and differ otherwise. The SPEC §9
per-sample mean is :func:`relative_l2`; the pooled ratio, for comparisons with the older numbers,
is :func:`pooled_relative_l2`.

Stress, energy, E_x and von Mises use the kernels of :mod:`microstrain.quantities` (one physics);
all measures are ratios of quantities linear in ū, so ū cancels. Large files stream through
:class:`ErrorAccumulator` chunk by chunk; :func:`error_measures` is one update of it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from microstrain.conventions import (
    DEFAULT_APPLIED_STRAIN,
    FIBER,
    MATRIX,
    N_STRAIN,
    PERIODIC_CASES,
    STRAIN_CHANNELS,
    Material,
)
from microstrain.errors import MicrostrainError
from microstrain.quantities import (
    CONSTANT_NAMES,
    PlaneLaw,
    blocks,
    check_applied_strain,
    check_cases,
    check_fields,
    effective_stiffness,
    engineering_constants,
    pixel_moduli,
    strain_invariants,
    von_mises_squared,
)

# Per-sample measures, in report order
PER_SAMPLE = (
    "strain_relative_l2",
    *(f"strain_relative_l2_{c}" for c in STRAIN_CHANNELS),
    "strain_relative_l2_matrix",
    "strain_relative_l2_fiber",
    "stress_relative_l2",
    "energy_norm_error",
    "E_x_error",
    "nu_xy_error",
    "max_von_mises_error",
)
# per-sample measure -> report key of its mean over samples, and of its maximum where reported
_REPORTED_AS_MEAN = ("E_x_error", "nu_xy_error", "max_von_mises_error")
MEAN_KEYS = {m: f"{m}_mean" if m in _REPORTED_AS_MEAN else m for m in PER_SAMPLE}
MAX_KEYS = {"E_x_error": "E_x_error_max", "max_von_mises_error": "max_von_mises_error_max"}
# the SPEC §10 headline measures (per sample, then averaged or maximized over the samples): what
# models are judged by, and what training logs
HEADLINE_KEYS = (
    "strain_relative_l2",
    "stress_relative_l2",
    "energy_norm_error",
    "E_x_error_mean",
    "E_x_error_max",
    "nu_xy_error_mean",
    "max_von_mises_error_mean",
    "max_von_mises_error_max",
)
# SPEC §10 JSON keys (plus the per-phase strain errors), in order
REPORT_KEYS = (
    "n",
    HEADLINE_KEYS[0],
    "strain_relative_l2_per_channel",
    *HEADLINE_KEYS[1:],
    "strain_relative_l2_matrix",
    "strain_relative_l2_fiber",
)


# --- relative L2, the one home ---------------------------------------------------------------
def _squared_sums(
    prediction: np.ndarray, reference: np.ndarray, where: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Σ (p − r)² and Σ r² per sample (leading axis) over the selected entries -> two ``[N]``."""
    ref = np.asarray(reference, dtype=np.float64)
    err = np.asarray(prediction, dtype=np.float64) - ref
    if err.shape != ref.shape:
        raise MicrostrainError(f"prediction {list(err.shape)} and reference {list(ref.shape)}")
    if where is not None:
        mask = np.broadcast_to(where, ref.shape)
        err, ref = np.where(mask, err, 0.0), np.where(mask, ref, 0.0)
    n = ref.shape[0]
    err, ref = err.reshape(n, -1), ref.reshape(n, -1)
    return np.vecdot(err, err), np.vecdot(ref, ref)


def _ratio(num: np.ndarray, den: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(√(num / den), defined) per entry; NaN where den = 0 (the measure is undefined there)."""
    defined = den > 0
    out = np.full(np.shape(num), np.nan)
    np.divide(num, den, out=out, where=defined)
    return np.sqrt(out, out=out), defined


def relative_l2_per_sample(
    prediction: np.ndarray, reference: np.ndarray, where: np.ndarray | None = None
) -> np.ndarray:
    """‖p − r‖ / ‖r‖ of each sample over all its (selected) entries -> float64 ``[N]``.

    ``prediction``, ``reference``: ``[N, ...]``; ``where``: bool, broadcastable to them, selects
    entries (e.g. a phase). NaN for a sample whose selected reference is zero or empty.
    """
    return _ratio(*_squared_sums(prediction, reference, where))[0]


def relative_l2(
    prediction: np.ndarray, reference: np.ndarray, where: np.ndarray | None = None
) -> float:
    """SPEC §9 relative L2: :func:`relative_l2_per_sample` averaged over the samples where defined.

    NaN if it is defined for no sample.
    """
    values, defined = _ratio(*_squared_sums(prediction, reference, where))
    return float(values[defined].mean()) if defined.any() else float("nan")


def pooled_relative_l2(
    prediction: np.ndarray, reference: np.ndarray, where: np.ndarray | None = None
) -> float:
    """√(Σ (p − r)² / Σ r²) over all samples and entries together (not SPEC §9: module doc)."""
    num, den = _squared_sums(prediction, reference, where)
    return float(np.sqrt(num.sum() / den.sum()))


# --- all §9 measures per sample ----------------------------------------------------------------
def _block_measures(
    E: np.ndarray, pred: np.ndarray, ref: np.ndarray, law: PlaneLaw
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Measures of one block: E ``[n, P]``, strains ``[n, 3, P]`` -> name -> (value, defined)."""
    fiber = law.is_fiber(E).astype(np.float64)  # [n, P]
    r = ref.astype(np.float64)
    d = pred - r  # [n, 3, P] float64
    num_c, den_c = np.vecdot(d, d), np.vecdot(r, r)  # [n, 3]: Σ over pixels
    out = {"strain_relative_l2": _ratio(num_c.sum(axis=1), den_c.sum(axis=1))}
    for c, name in enumerate(STRAIN_CHANNELS):
        out[f"strain_relative_l2_{name}"] = _ratio(num_c[:, c], den_c[:, c])
    d2p = np.einsum("ncp,ncp->np", d, d)  # [n, P]: Σ over channels
    r2p = np.einsum("ncp,ncp->np", r, r)
    matrix = 1.0 - fiber
    out["strain_relative_l2_matrix"] = _ratio(np.vecdot(d2p, matrix), np.vecdot(r2p, matrix))
    out["strain_relative_l2_fiber"] = _ratio(np.vecdot(d2p, fiber), np.vecdot(r2p, fiber))

    kappa, mu, rho = pixel_moduli(E, law)
    tr_r, dev_r, g_r = strain_invariants(r)
    tr_d, dev_d, g_d = strain_invariants(d)
    a_r, b_r, t_r = kappa * tr_r, mu * dev_r, mu * g_r  # κ tr, μ dev, τ of the reference, MPa
    a_d, b_d, t_d = kappa * tr_d, mu * dev_d, mu * g_d  # ... of the error
    # |σ|² = (a + b)² + (a − b)² + τ² = 2a² + 2b² + τ²
    stress2_d = 2 * np.vecdot(a_d, a_d) + 2 * np.vecdot(b_d, b_d) + np.vecdot(t_d, t_d)
    stress2_r = 2 * np.vecdot(a_r, a_r) + 2 * np.vecdot(b_r, b_r) + np.vecdot(t_r, t_r)
    out["stress_relative_l2"] = _ratio(stress2_d, stress2_r)
    # ε : C : ε = a tr + b dev + τ γ
    energy_d = np.vecdot(a_d, tr_d) + np.vecdot(b_d, dev_d) + np.vecdot(t_d, g_d)
    energy_r = np.vecdot(a_r, tr_r) + np.vecdot(b_r, dev_r) + np.vecdot(t_r, g_r)
    out["energy_norm_error"] = _ratio(energy_d, energy_r)
    # Ê_x / E_x − 1 = Σ σ_xx(Δε) / Σ σ_xx(ε): the difference, so no cancellation of near values
    sxx_d = a_d.sum(axis=1) + b_d.sum(axis=1)
    sxx_r = a_r.sum(axis=1) + b_r.sum(axis=1)
    out["E_x_error"] = _ratio(sxx_d**2, sxx_r**2)
    out["nu_xy_error"] = _ratio(d[:, 1].sum(axis=1) ** 2, r[:, 1].sum(axis=1) ** 2)
    vm_r = np.sqrt(von_mises_squared(a_r, b_r, t_r, rho).max(axis=1))
    vm_p = np.sqrt(von_mises_squared(a_r + a_d, b_r + b_d, t_r + t_d, rho).max(axis=1))
    out["max_von_mises_error"] = _ratio((vm_p - vm_r) ** 2, vm_r**2)
    return out


def _measures_with_defined(
    youngs_modulus: np.ndarray,
    predicted_strain: np.ndarray,
    reference_strain: np.ndarray,
    plane: str,
    law: PlaneLaw | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    E, pred, ref = (np.asarray(a) for a in (youngs_modulus, predicted_strain, reference_strain))
    check_fields(E, pred, ref)
    law = law or PlaneLaw.of(plane)
    n, pixels = E.shape[0], E[0].size
    E, pred, ref = (
        E.reshape(n, pixels),
        pred.reshape(n, N_STRAIN, pixels),
        ref.reshape(n, N_STRAIN, pixels),
    )
    values = {m: np.empty(n) for m in PER_SAMPLE}
    defined = {m: np.empty(n, dtype=bool) for m in PER_SAMPLE}
    for s in blocks(n):
        p64 = pred[s].astype(np.float64)
        for m, (v, ok) in _block_measures(E[s], p64, ref[s], law).items():
            values[m][s], defined[m][s] = v, ok
    return {m: (values[m], defined[m]) for m in PER_SAMPLE}


def per_sample_measures(
    youngs_modulus: np.ndarray,
    predicted_strain: np.ndarray,
    reference_strain: np.ndarray,
    plane: str,
) -> dict[str, np.ndarray]:
    """Every measure of :data:`PER_SAMPLE` for each sample -> name -> float64 ``[N]``.

    E ``[N, 1, 32, 32]`` MPa, strains ``[N, 3, 32, 32]``; NaN where a measure is undefined
    (e.g. the fiber error of a sample without fiber).
    """
    return {
        m: v
        for m, (v, _) in _measures_with_defined(
            youngs_modulus, predicted_strain, reference_strain, plane
        ).items()
    }


class ErrorAccumulator:
    """SPEC §9 measures accumulated over chunks of a large file; ``compute()`` = one-shot result.

    Usage::

        acc = ErrorAccumulator(plane="stress")
        for E, pred, ref in chunks:          # [n, 1, 32, 32] MPa, [n, 3, 32, 32], [n, 3, 32, 32]
            acc.update(E, pred, ref)
        report = acc.compute()               # SPEC §10 dict
    """

    def __init__(
        self,
        plane: str,
        applied_strain: float = DEFAULT_APPLIED_STRAIN,
        *,
        fiber: Material = FIBER,
        matrix: Material = MATRIX,
    ) -> None:
        # validates the plane and the phases now, not at the first update
        self.law = PlaneLaw.of(plane, fiber, matrix)
        check_applied_strain(applied_strain)
        self.plane = plane
        self.applied_strain = applied_strain
        self.n = 0
        self._sum = dict.fromkeys(PER_SAMPLE, 0.0)
        self._count = dict.fromkeys(PER_SAMPLE, 0)
        self._max = dict.fromkeys(MAX_KEYS, -np.inf)

    def update(
        self, youngs_modulus: np.ndarray, predicted_strain: np.ndarray, reference_strain: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Add the samples of one chunk (shapes as :func:`per_sample_measures`); returns the
        chunk's per-sample values (as :func:`per_sample_measures`)."""
        measures = _measures_with_defined(
            youngs_modulus, predicted_strain, reference_strain, self.plane, self.law
        )
        for m, (values, defined) in measures.items():
            # NaN of a defined sample (a broken prediction) propagates; undefined ones are skipped
            self._sum[m] += float(np.where(defined, values, 0.0).sum())
            self._count[m] += int(defined.sum())
            if m in self._max and defined.any():
                self._max[m] = float(np.maximum(self._max[m], values[defined].max()))
        self.n += int(np.shape(youngs_modulus)[0])
        return {m: np.where(defined, values, np.nan) for m, (values, defined) in measures.items()}

    def compute_flat(self) -> dict[str, Any]:
        """``{"n": N, <mean keys>: ..., <max keys>: ...}``: per-channel keys flat, e.g.
        ``strain_relative_l2_eps_xx``; ``None`` for a measure defined for no sample."""
        if self.n == 0:
            raise MicrostrainError("no samples to compute error measures of")
        flat: dict[str, Any] = {"n": self.n}
        for m in PER_SAMPLE:
            flat[MEAN_KEYS[m]] = self._sum[m] / self._count[m] if self._count[m] else None
        for m, key in MAX_KEYS.items():
            flat[key] = self._max[m] if self._count[m] else None
        return flat

    def compute(self) -> dict[str, Any]:
        """The SPEC §10 dict (:data:`REPORT_KEYS`), per-channel errors nested."""
        return nest(self.compute_flat())


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean rank), as Spearman's ρ needs."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(len(x), dtype=np.float64)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    return (np.bincount(inverse, weights=ranks) / counts)[inverse]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two ``[N]`` arrays over the samples where both are finite
    (NaN with fewer than 3 such samples or a constant array): how well an error estimate ranks
    the true errors."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(np.corrcoef(_ranks(a), _ranks(b))[0, 1])


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """Flat measures (:meth:`ErrorAccumulator.compute_flat`) -> the SPEC §10 JSON layout."""
    channels = {c: flat[f"strain_relative_l2_{c}"] for c in STRAIN_CHANNELS}
    out = {key: flat[key] for key in REPORT_KEYS if key in flat}
    out["strain_relative_l2_per_channel"] = channels
    return {key: out[key] for key in REPORT_KEYS}


def error_measures(
    youngs_modulus: np.ndarray,
    predicted_strain: np.ndarray,
    reference_strain: np.ndarray,
    plane: str,
    applied_strain: float = DEFAULT_APPLIED_STRAIN,
    *,
    fiber: Material = FIBER,
    matrix: Material = MATRIX,
) -> dict[str, Any]:
    """The SPEC §10 dict of E ``[N, 1, 32, 32]`` MPa and strains ``[N, 3, 32, 32]``.

    ``applied_strain`` is ū of both fields; every measure is a ratio, so it only gets checked.
    ``fiber``, ``matrix``: the phases of E (the lecture's pair by default).
    """
    acc = ErrorAccumulator(plane, applied_strain, fiber=fiber, matrix=matrix)
    acc.update(youngs_modulus, predicted_strain, reference_strain)
    return acc.compute()


def strain_relative_l2(predicted_strain: np.ndarray, reference_strain: np.ndarray) -> float:
    """SPEC §9 strain relative L2 of ``[N, 3, 32, 32]`` fields (all channels)."""
    return relative_l2(predicted_strain, reference_strain)


def stress_relative_l2(
    youngs_modulus: np.ndarray,
    predicted_strain: np.ndarray,
    reference_strain: np.ndarray,
    plane: str,
) -> float:
    """SPEC §9 stress relative L2 (stress from each strain with the pixel's C)."""
    return float(
        error_measures(youngs_modulus, predicted_strain, reference_strain, plane)[
            "stress_relative_l2"
        ]
    )


def energy_norm_error(
    youngs_modulus: np.ndarray,
    predicted_strain: np.ndarray,
    reference_strain: np.ndarray,
    plane: str,
) -> float:
    """SPEC §9 energy-norm error √(Σ Δε : C : Δε / Σ ε : C : ε), averaged over samples."""
    return float(
        error_measures(youngs_modulus, predicted_strain, reference_strain, plane)[
            "energy_norm_error"
        ]
    )


# --- periodic files and models (SPEC §11) -----------------------------------------------------
# the §9 field measures reported per load case, and as their mean over the three cases
PERIODIC_FIELD_KEYS = ("strain_relative_l2", "stress_relative_l2", "energy_norm_error")
# per-sample measures of the effective stiffness: ‖Ĉ − C‖_F / ‖C‖_F and |ĉ / c − 1| of each
# engineering constant, reported as mean and max over the samples
STIFFNESS_MEASURES = ("C_eff_error", *(f"{name}_error" for name in CONSTANT_NAMES))
PERIODIC_REPORT_KEYS = (
    "n",
    *PERIODIC_FIELD_KEYS,
    *(f"{m}_{stat}" for m in STIFFNESS_MEASURES for stat in ("mean", "max")),
    "cases",
)


def stiffness_errors(
    predicted_c_eff: np.ndarray, reference_c_eff: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-sample errors of ``[N, 3, 3]`` stiffness matrices -> name -> float64 ``[N]``.

    ``C_eff_error`` ‖Ĉ − C‖_F / ‖C‖_F; ``E_1_error`` … ``nu_12_error`` |ĉ / c − 1| of the
    engineering constants (:func:`microstrain.quantities.engineering_constants`).
    """
    pred = np.asarray(predicted_c_eff, dtype=np.float64)
    ref = np.asarray(reference_c_eff, dtype=np.float64)
    if pred.shape != ref.shape or ref.ndim != 3 or ref.shape[1:] != (N_STRAIN, N_STRAIN):
        raise MicrostrainError(
            f"C_eff must be [N, 3, 3] in both; got {list(pred.shape)} and {list(ref.shape)}"
        )
    out = {"C_eff_error": _ratio(*_squared_sums(pred, ref, None))[0]}
    c_pred, c_ref = engineering_constants(pred), engineering_constants(ref)
    for name in CONSTANT_NAMES:
        out[f"{name}_error"] = np.abs(c_pred[name] - c_ref[name]) / np.abs(c_ref[name])
    return out


class PeriodicErrorAccumulator:
    """SPEC §11 measures of a periodic prediction, accumulated chunk by chunk.

    Per load case the §9 field measures (:class:`ErrorAccumulator`: strain, stress, energy norm,
    per sample then mean); the mean of each over the three cases; and the C_eff and
    engineering-constant errors (per sample, then mean and max). Stress and energy use each
    pixel's own phase (``fiber``, ``matrix``).
    """

    def __init__(
        self,
        plane: str,
        applied_strain: float = DEFAULT_APPLIED_STRAIN,
        *,
        fiber: Material = FIBER,
        matrix: Material = MATRIX,
    ) -> None:
        self.plane, self.applied_strain = plane, applied_strain
        self.fiber, self.matrix = fiber, matrix
        self.cases = {
            case: ErrorAccumulator(plane, applied_strain, fiber=fiber, matrix=matrix)
            for case in PERIODIC_CASES
        }
        self._stiffness: dict[str, list[np.ndarray]] = {m: [] for m in STIFFNESS_MEASURES}

    @property
    def n(self) -> int:
        return self.cases[PERIODIC_CASES[0]].n

    def update(
        self,
        youngs_modulus: np.ndarray,
        predicted_cases: np.ndarray,
        reference_cases: np.ndarray,
        predicted_c_eff: np.ndarray | None = None,
        reference_c_eff: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """Add one chunk: E ``[n, 1, s, s]`` MPa, the unit cases ``[n, 3, 3, s, s]`` (at the ū of
        the accumulator) and, where known, C_eff ``[n, 3, 3]`` (else computed from the cases).
        Returns the chunk's per-sample stiffness errors (name -> ``[n]``)."""
        E, pred, ref = (np.asarray(a) for a in (youngs_modulus, predicted_cases, reference_cases))
        check_cases(E, pred)
        check_cases(E, ref)
        phases = {"fiber": self.fiber, "matrix": self.matrix}
        for j, case in enumerate(PERIODIC_CASES):
            self.cases[case].update(E, pred[:, j], ref[:, j])
        if predicted_c_eff is None:
            predicted_c_eff = effective_stiffness(
                E, pred, self.plane, self.applied_strain, **phases
            )
        if reference_c_eff is None:
            reference_c_eff = effective_stiffness(E, ref, self.plane, self.applied_strain, **phases)
        errors = stiffness_errors(predicted_c_eff, reference_c_eff)
        for m in STIFFNESS_MEASURES:
            self._stiffness[m].append(errors[m])
        return errors

    def compute(self) -> dict[str, Any]:
        """``{"n", <field keys: mean over the cases>, <stiffness keys>_mean/_max, "cases": {xx:
        {strain_relative_l2, strain_relative_l2_per_channel, stress_relative_l2,
        energy_norm_error}, yy: ..., xy: ...}}`` (:data:`PERIODIC_REPORT_KEYS`)."""
        if self.n == 0:
            raise MicrostrainError("no samples to compute error measures of")
        per_case = {case: acc.compute() for case, acc in self.cases.items()}
        out: dict[str, Any] = {"n": self.n}
        for key in PERIODIC_FIELD_KEYS:
            means = [per_case[c][key] for c in PERIODIC_CASES]
            out[key] = None if None in means else float(np.mean(means))
        for m in STIFFNESS_MEASURES:
            values = np.concatenate(self._stiffness[m])
            out[f"{m}_mean"], out[f"{m}_max"] = float(values.mean()), float(values.max())
        keep = (*PERIODIC_FIELD_KEYS, "strain_relative_l2_per_channel")
        out["cases"] = {c: {k: per_case[c][k] for k in keep} for c in PERIODIC_CASES}
        return out


def periodic_error_measures(
    youngs_modulus: np.ndarray,
    predicted_cases: np.ndarray,
    reference_cases: np.ndarray,
    plane: str,
    applied_strain: float = DEFAULT_APPLIED_STRAIN,
    *,
    predicted_c_eff: np.ndarray | None = None,
    reference_c_eff: np.ndarray | None = None,
    fiber: Material = FIBER,
    matrix: Material = MATRIX,
) -> dict[str, Any]:
    """The SPEC §11 measures of one batch (:class:`PeriodicErrorAccumulator`), shapes as there."""
    acc = PeriodicErrorAccumulator(plane, applied_strain, fiber=fiber, matrix=matrix)
    acc.update(youngs_modulus, predicted_cases, reference_cases, predicted_c_eff, reference_c_eff)
    return acc.compute()
