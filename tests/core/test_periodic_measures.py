"""SPEC §11 error measures of periodic predictions: per load case, C_eff and constants."""

import numpy as np
import pytest
from support.materials import EPOXY, GLASS

from microstrain.errors import MicrostrainError
from microstrain.measures import (
    PERIODIC_REPORT_KEYS,
    PeriodicErrorAccumulator,
    periodic_error_measures,
)
from microstrain.quantities import effective_stiffness, plane_stiffness

U = 0.1


def sample(n: int = 3, side: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mask = rng.random((n, 1, side, side)) < 0.35
    E = np.where(mask, 85_000.0, 3_000.0).astype(np.float32)
    cases = rng.normal(size=(n, 3, 3, side, side)) * 0.02
    for j in range(3):
        cases[:, j, j] += U
    return E, cases


def test_exact_prediction_has_zero_error_and_all_keys():
    E, cases = sample()
    report = periodic_error_measures(E, cases, cases, "stress", U)
    assert tuple(report) == PERIODIC_REPORT_KEYS
    assert report["n"] == 3
    for key in PERIODIC_REPORT_KEYS[1:-1]:
        assert report[key] == 0.0, key
    assert set(report["cases"]) == {"xx", "yy", "xy"}


@pytest.mark.parametrize("side", [32, 64])
def test_a_uniformly_scaled_prediction_errs_by_the_scale_everywhere_but_poisson(side):
    E, cases = sample(side=side)
    report = periodic_error_measures(E, 1.05 * cases, cases, "strain", U)
    for key in ("strain_relative_l2", "stress_relative_l2", "energy_norm_error"):
        assert report[key] == pytest.approx(0.05, rel=1e-9)
    for key in ("C_eff_error", "E_1_error", "E_2_error", "G_12_error"):
        assert report[f"{key}_mean"] == pytest.approx(0.05, rel=1e-9)
        assert report[f"{key}_max"] == pytest.approx(0.05, rel=1e-9)
    assert report["nu_12_error_max"] == pytest.approx(0.0, abs=1e-12)


def test_one_wrong_case_shows_in_that_case_and_a_third_of_the_mean():
    E, cases = sample()
    pred = cases.copy()
    pred[:, 2] *= 1.3  # the shear case only
    report = periodic_error_measures(E, pred, cases, "stress", U)
    assert report["cases"]["xx"]["strain_relative_l2"] == 0.0
    assert report["cases"]["xy"]["strain_relative_l2"] == pytest.approx(0.3, rel=1e-9)
    assert report["strain_relative_l2"] == pytest.approx(0.1, rel=1e-9)


def test_energy_norm_uses_the_given_phases():
    E, cases = sample(n=1)
    E = np.where(E > 10_000, GLASS.youngs_modulus, EPOXY.youngs_modulus).astype(np.float32)
    rng = np.random.default_rng(1)
    pred = cases + rng.normal(size=cases.shape) * 0.005
    report = periodic_error_measures(E, pred, cases, "stress", U, fiber=GLASS, matrix=EPOXY)
    c = np.where(
        (E[0, 0] == GLASS.youngs_modulus)[..., None, None],
        plane_stiffness(GLASS, "stress"),
        plane_stiffness(EPOXY, "stress"),
    )  # [32, 32, 3, 3]
    for j, case in enumerate(("xx", "yy", "xy")):
        d, r = (pred - cases)[0, j], cases[0, j]  # [3, 32, 32]
        num = np.einsum("ayx,yxab,byx->", d, c, d)
        den = np.einsum("ayx,yxab,byx->", r, c, r)
        assert report["cases"][case]["energy_norm_error"] == pytest.approx(np.sqrt(num / den))


def test_given_stiffness_is_used_and_streaming_equals_one_shot():
    E, cases = sample(n=4)
    ref_c = effective_stiffness(E, cases, "stress", U)
    pred_c = ref_c * 1.02
    one = periodic_error_measures(E, cases, cases, "stress", U, predicted_c_eff=pred_c)
    assert one["C_eff_error_mean"] == pytest.approx(0.02, rel=1e-9)
    acc = PeriodicErrorAccumulator("stress", U)
    for s in (slice(0, 1), slice(1, 4)):
        acc.update(E[s], cases[s], cases[s], pred_c[s], ref_c[s])
    assert acc.compute() == one


def test_bad_shapes_are_one_clear_error():
    E, cases = sample(n=2)
    with pytest.raises(MicrostrainError, match="periodic strain must be"):
        periodic_error_measures(E, cases[:, :2], cases, "stress", U)
    with pytest.raises(MicrostrainError, match="no samples"):
        PeriodicErrorAccumulator("stress").compute()
