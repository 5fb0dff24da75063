"""SPEC §9/§10 error measures: exact values, per-sample-then-average, phases, chunked streaming."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from microstrain import measures
from microstrain.conventions import FIBER, GRID, MATRIX
from microstrain.errors import MicrostrainError
from microstrain.measures import (
    REPORT_KEYS,
    ErrorAccumulator,
    energy_norm_error,
    error_measures,
    per_sample_measures,
    pooled_relative_l2,
    relative_l2,
    relative_l2_per_sample,
    strain_relative_l2,
    stress_relative_l2,
)
from microstrain.quantities import quantities

U = 0.1
PLANES = ("stress", "strain")
EXACT = 1e-13  # float64 round-off of sums over 3072 entries


def random_modulus(n: int, seed: int = 0, fraction: float = 0.4) -> np.ndarray:
    fiber = np.random.default_rng(seed).random((n, 1, GRID, GRID)) < fraction
    return np.where(fiber, FIBER.youngs_modulus, MATRIX.youngs_modulus)


def random_strain(n: int, seed: int = 1) -> np.ndarray:
    """A plausible field: mean ε_xx = ū and contraction, plus heterogeneity."""
    rng = np.random.default_rng(seed)
    strain = 0.03 * rng.standard_normal((n, 3, GRID, GRID))
    strain[:, 0] += U
    strain[:, 1] -= 0.35 * U
    return strain


def flat_values(report: dict) -> list:
    channels = report["strain_relative_l2_per_channel"]
    return [v for k, v in report.items() if k not in ("n", "strain_relative_l2_per_channel")] + [
        *channels.values()
    ]


@pytest.mark.parametrize("plane", PLANES)
def test_identical_fields_have_zero_error(plane):
    E, strain = random_modulus(4), random_strain(4)
    report = error_measures(E, strain, strain, plane, U)
    assert tuple(report) == REPORT_KEYS
    assert report["n"] == 4
    assert set(report["strain_relative_l2_per_channel"]) == {"eps_xx", "eps_yy", "gamma_xy"}
    assert all(v == 0.0 for v in flat_values(report))


@pytest.mark.parametrize("plane", PLANES)
def test_scaled_prediction_has_exactly_that_relative_error(plane):
    # ε̂ = 1.1 ε: every measure is linear in the field, so each one is exactly 0.1
    E, strain = random_modulus(40), random_strain(40)  # 40 > one block of 32 samples
    report = error_measures(E, 1.1 * strain, strain, plane, U)
    for value in flat_values(report):
        assert value == pytest.approx(0.1, rel=EXACT)
    assert strain_relative_l2(1.1 * strain, strain) == pytest.approx(0.1, rel=EXACT)
    assert stress_relative_l2(E, 1.1 * strain, strain, plane) == pytest.approx(0.1, rel=EXACT)
    assert energy_norm_error(E, 1.1 * strain, strain, plane) == pytest.approx(0.1, rel=EXACT)


def test_per_sample_then_average_differs_from_pooled():
    # sample 0: error 10 %, sample 1: 10x larger strain with error 30 %
    E, strain = random_modulus(2), random_strain(2)
    strain[1] *= 10
    pred = strain * np.array([1.1, 1.3])[:, None, None, None]
    assert relative_l2(pred, strain) == pytest.approx(0.2, rel=EXACT)
    np.testing.assert_allclose(relative_l2_per_sample(pred, strain), [0.1, 0.3], rtol=EXACT)
    a, b = (np.sum(strain[i] ** 2) for i in (0, 1))
    pooled = math.sqrt((0.01 * a + 0.09 * b) / (a + b))
    assert pooled_relative_l2(pred, strain) == pytest.approx(pooled, rel=EXACT)
    assert pooled > 0.29  # the large sample dominates the pooled number
    report = error_measures(E, pred, strain, "stress", U)
    assert report["strain_relative_l2"] == pytest.approx(0.2, rel=EXACT)
    assert report["E_x_error_mean"] == pytest.approx(0.2, rel=EXACT)
    assert report["E_x_error_max"] == pytest.approx(0.3, rel=EXACT)
    assert report["max_von_mises_error_max"] == pytest.approx(0.3, rel=EXACT)


def test_per_channel_and_per_phase_are_separate():
    # error only in γ_xy of the fiber pixels
    E, strain = random_modulus(3), random_strain(3)
    fiber = E[:, 0] == FIBER.youngs_modulus
    pred = strain.copy()
    pred[:, 2] += np.where(fiber, 0.01, 0.0)
    report = error_measures(E, pred, strain, "stress", U)
    channels = report["strain_relative_l2_per_channel"]
    assert channels["eps_xx"] == channels["eps_yy"] == 0.0 and channels["gamma_xy"] > 0
    assert report["strain_relative_l2_matrix"] == 0.0
    expected = relative_l2(pred, strain, where=fiber[:, None])
    assert report["strain_relative_l2_fiber"] == pytest.approx(expected, rel=EXACT)
    assert report["nu_xy_error_mean"] == 0.0 and report["E_x_error_mean"] == 0.0


def test_sample_without_fiber_is_skipped_in_the_fiber_average():
    E, strain = random_modulus(2), random_strain(2)
    E[1] = MATRIX.youngs_modulus  # no fiber pixel
    pred = strain * np.array([1.1, 1.3])[:, None, None, None]
    per_sample = per_sample_measures(E, pred, strain, "stress")
    assert math.isnan(per_sample["strain_relative_l2_fiber"][1])
    report = error_measures(E, pred, strain, "stress", U)
    assert report["strain_relative_l2_fiber"] == pytest.approx(0.1, rel=EXACT)
    assert report["strain_relative_l2_matrix"] == pytest.approx(0.2, rel=EXACT)
    only_matrix = error_measures(E[1:], pred[1:], strain[1:], "stress", U)
    assert only_matrix["strain_relative_l2_fiber"] is None


def test_a_nan_prediction_is_not_skipped():
    E, strain = random_modulus(2), random_strain(2)
    pred = strain.copy()
    pred[0, 0, 5, 5] = np.nan
    report = error_measures(E, pred, strain, "stress", U)
    assert math.isnan(report["strain_relative_l2"]) and math.isnan(report["E_x_error_max"])


def explicit_energy(E: np.ndarray, strain: np.ndarray, plane: str) -> np.ndarray:
    """Σ ε : C : ε per sample with the textbook C and engineering shear, σ · (ε_xx, ε_yy, γ)."""
    sigma = quantities(E, strain, plane, U)["stress"].astype(np.float64)  # float32 fields
    return np.einsum("nchw,nchw->n", sigma, strain)


@pytest.mark.parametrize("plane", PLANES)
def test_measures_agree_with_the_quantities(plane):
    E, ref = random_modulus(5, seed=4), random_strain(5, seed=5)
    pred = ref + 0.01 * np.random.default_rng(6).standard_normal(ref.shape)
    per_sample = per_sample_measures(E, pred, ref, plane)
    energy = np.sqrt(explicit_energy(E, pred - ref, plane) / explicit_energy(E, ref, plane))
    np.testing.assert_allclose(per_sample["energy_norm_error"], energy, rtol=1e-6)
    q_pred, q_ref = quantities(E, pred, plane, U), quantities(E, ref, plane, U)
    for measure, name in (
        ("E_x_error", "E_x"),
        ("nu_xy_error", "nu_xy"),
        ("max_von_mises_error", "max_von_mises"),
    ):
        expected = np.abs(q_pred[name] / q_ref[name] - 1)
        np.testing.assert_allclose(per_sample[measure], expected, rtol=1e-9)
    stress_pred, stress_ref = q_pred["stress"], q_ref["stress"]
    np.testing.assert_allclose(
        per_sample["stress_relative_l2"], relative_l2_per_sample(stress_pred, stress_ref), rtol=1e-4
    )


@pytest.mark.parametrize("plane", PLANES)
def test_chunked_accumulation_equals_one_shot(plane):
    E, ref = random_modulus(70, seed=7), random_strain(70, seed=8)
    E[3] = MATRIX.youngs_modulus
    pred = (ref * (1 + 0.05 * np.random.default_rng(9).standard_normal(ref.shape))).astype(
        np.float32
    )
    one_shot = error_measures(E, pred, ref, plane, U)
    acc = ErrorAccumulator(plane, U)
    for start, stop in ((0, 7), (7, 20), (20, 21), (21, 70)):
        acc.update(E[start:stop], pred[start:stop], ref[start:stop])
    chunked = acc.compute()
    assert chunked["n"] == one_shot["n"] == 70
    np.testing.assert_allclose(flat_values(chunked), flat_values(one_shot), rtol=1e-13)


def test_accumulator_without_samples_is_an_error():
    with pytest.raises(MicrostrainError, match="no samples"):
        ErrorAccumulator("stress").compute()


def test_mismatched_shapes_are_one_clear_error():
    E, strain = random_modulus(2), random_strain(2)
    with pytest.raises(MicrostrainError, match="strain must be"):
        error_measures(E, strain[:1], strain, "stress", U)


def test_spearman_is_scipys_rank_correlation_with_ties_and_skips_nan():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 6, 40).astype(float)  # many ties
    b = a + rng.normal(0, 2, 40)
    reference = scipy.stats.spearmanr(a, b).statistic
    assert measures.spearman(a, b) == pytest.approx(reference, abs=1e-12)
    assert measures.spearman(b, np.exp(b)) == pytest.approx(1.0)  # any increasing map
    assert measures.spearman(b, -b) == pytest.approx(-1.0)
    with_nan = np.append(b, np.nan)
    assert measures.spearman(with_nan, np.append(a, 1.0)) == measures.spearman(b, a)
    assert np.isnan(measures.spearman(np.ones(5), np.arange(5.0)))  # constant: undefined
