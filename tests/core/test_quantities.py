"""SPEC §9 quantities: closed forms of the homogeneous sheet in both planes, the plane laws written
out as 3x3 matrices, FE solves with exact answers (homogeneous, layers along the load), bounds."""

from __future__ import annotations

import numpy as np
import pytest

from microstrain.conventions import FIBER, GRID, MATRIX
from microstrain.errors import InputError
from microstrain.fields import fiber_fraction
from microstrain.quantities import (
    QUANTITY_NAMES,
    apparent_modulus,
    apparent_poisson_ratio,
    max_von_mises,
    quantities,
    reuss_bound,
    stress,
    uniform_strain_bound,
    voigt_bound,
    von_mises,
)

U = 0.1
PLANES = ("stress", "strain")
FE_ROUND_OFF = 1e-12  # relative: the FE solves below reproduce exact fields to ~1e-13
FLOAT32 = 2e-7  # relative resolution of the float32 fields


def random_modulus(n: int, seed: int = 0, fraction: float = 0.4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    fiber = rng.random((n, 1, GRID, GRID)) < fraction
    return np.where(fiber, FIBER.youngs_modulus, MATRIX.youngs_modulus).astype(np.float32)


def random_strain(n: int, seed: int = 1) -> np.ndarray:
    return (0.05 * np.random.default_rng(seed).standard_normal((n, 3, GRID, GRID))).astype(
        np.float32
    )


def homogeneous(material, plane: str) -> tuple[np.ndarray, np.ndarray, float, float, float]:
    """Exact uniaxial-stress field of a homogeneous sheet: E, strain, E_x, ν_xy, σ_xx.

    The top is free and the rollers carry no shear, so σ_yy = τ = 0 and σ_xx is uniform. Plane
    stress: ε_yy = −ν ū, σ_xx = E ū. Plane strain (ε_zz = 0, so σ_zz = ν σ_xx): ε_yy = −ν/(1 − ν) ū,
    σ_xx = E/(1 − ν²) ū.
    """
    E, nu = material.youngs_modulus, material.poisson_ratio
    if plane == "stress":
        e_x, nu_xy = E, nu
    else:
        e_x, nu_xy = E / (1 - nu**2), nu / (1 - nu)
    strain = np.zeros((1, 3, GRID, GRID))
    strain[:, 0], strain[:, 1] = U, -nu_xy * U
    return np.full((1, 1, GRID, GRID), E), strain, e_x, nu_xy, e_x * U


@pytest.mark.parametrize("plane", PLANES)
@pytest.mark.parametrize("material", [FIBER, MATRIX], ids=["fiber", "matrix"])
def test_homogeneous_sheet_closed_form(material, plane):
    E, strain, e_x, nu_xy, sxx = homogeneous(material, plane)
    q = quantities(E, strain, plane, U)
    assert q["E_x"][0] == pytest.approx(e_x, rel=1e-14)
    assert q["nu_xy"][0] == pytest.approx(nu_xy, rel=1e-14)
    np.testing.assert_allclose(q["stress"][0, 0], sxx, rtol=FLOAT32)
    np.testing.assert_allclose(q["stress"][0, 1:], 0.0, atol=1e-12 * sxx)  # σ_yy = τ = 0
    nu = material.poisson_ratio
    # von Mises: plane stress uniaxial σ_xx; plane strain adds σ_zz = ν σ_xx
    vm = sxx if plane == "stress" else sxx * np.sqrt(1 - nu + nu**2)
    if plane == "stress":
        assert vm == pytest.approx(material.youngs_modulus * U, rel=1e-15)
    np.testing.assert_allclose(q["von_mises"][0], vm, rtol=FLOAT32)
    assert q["max_von_mises"][0] == pytest.approx(vm, rel=1e-14)


def plane_law_matrix(E: np.ndarray, plane: str) -> np.ndarray:
    """C per pixel as the textbook 3x3 matrix on (ε_xx, ε_yy, γ_xy) -> ``[N, H, W, 3, 3]``."""
    E = E[:, 0].astype(np.float64)
    nu = np.where(E > 44_000, FIBER.poisson_ratio, MATRIX.poisson_ratio)
    C = np.zeros((*E.shape, 3, 3))
    if plane == "stress":
        f = E / (1 - nu**2)
        C[..., 0, 0] = C[..., 1, 1] = f
        C[..., 0, 1] = C[..., 1, 0] = f * nu
        C[..., 2, 2] = f * (1 - nu) / 2
    else:
        lam, mu = E * nu / ((1 + nu) * (1 - 2 * nu)), E / (2 * (1 + nu))
        C[..., 0, 0] = C[..., 1, 1] = lam + 2 * mu
        C[..., 0, 1] = C[..., 1, 0] = lam
        C[..., 2, 2] = mu
    return C


def von_mises_3d(sigma: np.ndarray, E: np.ndarray, plane: str) -> np.ndarray:
    """The full 3D von Mises formula with σ_zz = 0 (stress) or ν (σ_xx + σ_yy) (strain)."""
    sxx, syy, txy = sigma[:, 0], sigma[:, 1], sigma[:, 2]
    nu = np.where(E[:, 0] > 44_000, FIBER.poisson_ratio, MATRIX.poisson_ratio)
    szz = 0 * sxx if plane == "stress" else nu * (sxx + syy)
    return np.sqrt(0.5 * ((sxx - syy) ** 2 + (syy - szz) ** 2 + (szz - sxx) ** 2) + 3 * txy**2)


@pytest.mark.parametrize("plane", PLANES)
def test_stress_and_von_mises_equal_the_textbook_forms(plane):
    E, strain = random_modulus(40), random_strain(40)  # 40 > one block of 32 samples
    expected = np.einsum("nhwij,njhw->nihw", plane_law_matrix(E, plane), strain.astype(np.float64))
    scale = np.abs(expected).max()
    got = stress(E, strain, plane)
    assert got.dtype == np.float32 and got.shape == strain.shape
    np.testing.assert_allclose(got, expected, rtol=FLOAT32, atol=FLOAT32 * scale)
    vm = von_mises_3d(expected, E, plane)
    np.testing.assert_allclose(von_mises(E, strain, plane), vm, rtol=FLOAT32, atol=FLOAT32 * scale)
    np.testing.assert_allclose(max_von_mises(E, strain, plane), vm.max(axis=(1, 2)), rtol=1e-13)
    np.testing.assert_allclose(
        apparent_modulus(E, strain, plane, U), expected[:, 0].mean(axis=(1, 2)) / U, rtol=1e-12
    )
    nu_xy = -strain[:, 1].astype(np.float64).mean(axis=(1, 2)) / U
    np.testing.assert_allclose(apparent_poisson_ratio(strain, U), nu_xy, rtol=1e-13)


def test_quantities_dict_names_shapes_and_dtypes():
    E, strain = random_modulus(5), random_strain(5)
    q = quantities(E, strain, "stress", U)
    assert tuple(q) == QUANTITY_NAMES
    assert q["stress"].shape == (5, 3, GRID, GRID) and q["stress"].dtype == np.float32
    assert q["von_mises"].shape == (5, GRID, GRID) and q["von_mises"].dtype == np.float32
    for name in ("E_x", "nu_xy", "max_von_mises"):
        assert q[name].shape == (5,) and q[name].dtype == np.float64


def test_x_mirror_keeps_the_scalars_and_mirrors_von_mises():
    # SPEC §1: mirroring in x mirrors ε_xx, ε_yy and flips γ_xy; von Mises must not see the sign
    E, strain = random_modulus(3), random_strain(3)
    mirrored = strain[..., ::-1].copy()
    mirrored[:, 2] *= -1
    a, b = quantities(E, strain, "strain", U), quantities(E[..., ::-1], mirrored, "strain", U)
    np.testing.assert_array_equal(b["von_mises"], a["von_mises"][..., ::-1])
    for name in ("E_x", "nu_xy", "max_von_mises"):
        np.testing.assert_allclose(b[name], a[name], rtol=1e-14)


def test_linear_in_applied_strain():
    E, strain = random_modulus(2), random_strain(2)
    a, b = quantities(E, strain, "stress", U), quantities(E, 0.5 * strain, "stress", 0.5 * U)
    np.testing.assert_allclose(b["E_x"], a["E_x"], rtol=1e-14)
    np.testing.assert_allclose(b["max_von_mises"], 0.5 * a["max_von_mises"], rtol=1e-14)


# --- bounds ---------------------------------------------------------------------------------
def test_bounds_of_the_spec_in_plane_stress():
    f = np.array([0.0, 0.3, 1.0])
    Ef, Em = FIBER.youngs_modulus, MATRIX.youngs_modulus
    np.testing.assert_allclose(voigt_bound(f, "stress"), f * Ef + (1 - f) * Em, rtol=1e-15)
    np.testing.assert_allclose(reuss_bound(f, "stress"), 1 / (f / Ef + (1 - f) / Em), rtol=1e-15)


@pytest.mark.parametrize("plane", PLANES)
def test_bounds_are_ordered_and_meet_at_the_pure_phases(plane):
    f = np.linspace(0, 1, 11)
    reuss, voigt, upper = (b(f, plane) for b in (reuss_bound, voigt_bound, uniform_strain_bound))
    assert np.all(reuss[1:-1] < voigt[1:-1]) and np.all(voigt[1:-1] < upper[1:-1])
    for material, end in ((MATRIX, 0), (FIBER, -1)):
        _, _, e_x, _, _ = homogeneous(material, plane)
        np.testing.assert_allclose([reuss[end], voigt[end], upper[end]], e_x, rtol=1e-14)


def test_bounds_refuse_a_fraction_outside_0_1():
    with pytest.raises(InputError, match="fiber fraction"):
        voigt_bound(1.2, "stress")


# --- bad input ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("E", "strain", "plane", "u", "message"),
    [
        (np.full((2, 32, 32), 3000.0), np.zeros((2, 3, 32, 32)), "stress", U, "E must be"),
        (np.full((2, 1, 32, 32), 3000.0), np.zeros((3, 3, 32, 32)), "stress", U, "strain must"),
        (np.ones((1, 1, 32, 32)) * 0, np.zeros((1, 3, 32, 32)), "stress", U, "positive"),
        (np.full((1, 1, 32, 32), 3000.0), np.zeros((1, 3, 32, 32)), "3d", U, "plane"),
        (np.full((1, 1, 32, 32), 3000.0), np.zeros((1, 3, 32, 32)), "stress", 0.0, "non-zero"),
    ],
)
def test_bad_input_is_one_clear_error(E, strain, plane, u, message):
    with pytest.raises(InputError, match=message):
        quantities(E, strain, plane, u)


# --- on real FE solutions -------------------------------------------------------------------
@pytest.fixture(scope="module")
def fe_solve():
    pytest.importorskip("dolfinx_solver", reason="needs the FE solver (microstrain[fe])")
    from data_gen.solver import SolverConfig, StrainSolver

    solvers = {
        plane: StrainSolver(SolverConfig(mode="pixel", plane=plane, applied_strain=U))
        for plane in PLANES
    }
    return lambda E, plane: solvers[plane].solve_batch(E)


@pytest.mark.parametrize("plane", PLANES)
def test_fe_homogeneous_sheet(fe_solve, plane):
    for material in (FIBER, MATRIX):
        E, _, e_x, nu_xy, sxx = homogeneous(material, plane)
        q = quantities(E, fe_solve(E, plane), plane, U)
        assert q["E_x"][0] == pytest.approx(e_x, rel=FE_ROUND_OFF)
        assert q["nu_xy"][0] == pytest.approx(nu_xy, rel=FE_ROUND_OFF)
        vm = (
            sxx
            if plane == "stress"
            else sxx * np.sqrt(1 - material.poisson_ratio * (1 - material.poisson_ratio))
        )
        assert q["max_von_mises"][0] == pytest.approx(vm, rel=FE_ROUND_OFF)


@pytest.mark.parametrize("plane", PLANES)
def test_fe_layers_along_the_load_reach_voigt(fe_solve, plane):
    # each layer in uniaxial stress with ε_xx = ū: E_x is the area average of E' exactly, and
    # ν_xy the area average of the layers' lateral contraction ratios
    fiber_rows = (np.arange(GRID) % 8) < 3
    E = np.where(fiber_rows[:, None], FIBER.youngs_modulus, MATRIX.youngs_modulus)
    E = np.broadcast_to(E, (1, 1, GRID, GRID)).astype(np.float32)
    f = fiber_fraction(E).astype(np.float64)
    q = quantities(E, fe_solve(E, plane), plane, U)
    np.testing.assert_allclose(q["E_x"], voigt_bound(f, plane), rtol=FE_ROUND_OFF)
    nus = [homogeneous(m, plane)[3] for m in (FIBER, MATRIX)]
    np.testing.assert_allclose(q["nu_xy"], f * nus[0] + (1 - f) * nus[1], rtol=FE_ROUND_OFF)


@pytest.mark.parametrize("plane", PLANES)
def test_fe_random_microstructure_between_reuss_and_voigt(fe_solve, plane):
    E = random_modulus(3, seed=3)
    f = fiber_fraction(E).astype(np.float64)
    e_x = apparent_modulus(E, fe_solve(E, plane), plane, U)
    assert np.all(reuss_bound(f, plane) < e_x)
    assert np.all(e_x < voigt_bound(f, plane))
    # a random pixel arrangement is far from both bounds: the test would see a wrong stiffness
    assert np.all(e_x > 1.5 * reuss_bound(f, plane)) and np.all(e_x < 0.5 * voigt_bound(f, plane))
