"""Physics of the FE solver with exact answers: homogeneous patch, laminates, symmetry, invariants.

Real dolfinx solves on the 32x32 grid; refined cases use k = 2 to stay fast.
"""

from __future__ import annotations

import numpy as np
import pytest

from data_gen.elasticity import pixel_lame, solve_elasticity
from data_gen.solver import SolverConfig, StrainSolver
from microstrain.conventions import FIBER, GRID, MATRIX
from microstrain.errors import InputError

U = 0.1
ROUND_OFF = 1e-11  # absolute, on strains of order 0.1


@pytest.fixture(scope="module")
def solvers() -> dict[tuple[str, int, str], StrainSolver]:
    cache: dict[tuple[str, int, str], StrainSolver] = {}

    def get(mode: str, k: int = 1, plane: str = "stress") -> StrainSolver:
        key = (mode, k, plane)
        if key not in cache:
            cache[key] = StrainSolver(SolverConfig(mode=mode, k=k, plane=plane, applied_strain=U))
        return cache[key]

    return get  # type: ignore[return-value]


def random_image(seed: int, fraction: float = 0.4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.where(
        rng.random((GRID, GRID)) < fraction, FIBER.youngs_modulus, MATRIX.youngs_modulus
    )


def uniaxial_lateral_strain(nu: float, plane: str) -> float:
    """eps_yy / eps_xx under uniaxial stress sigma_xx (sigma_yy = 0)."""
    return -nu if plane == "stress" else -nu / (1.0 - nu)


@pytest.mark.parametrize("plane", ["stress", "strain"])
@pytest.mark.parametrize(("mode", "k"), [("pixel", 1), ("refined", 2)])
@pytest.mark.parametrize("material", [FIBER, MATRIX], ids=["fiber", "matrix"])
def test_homogeneous_is_uniform_uniaxial_stress(solvers, mode, k, plane, material):
    strain = solvers(mode, k, plane).solve(np.full((GRID, GRID), material.youngs_modulus))
    assert strain.shape == (3, GRID, GRID) and strain.dtype == np.float64
    np.testing.assert_allclose(strain[0], U, atol=ROUND_OFF, rtol=0)
    expected_yy = uniaxial_lateral_strain(material.poisson_ratio, plane) * U
    np.testing.assert_allclose(strain[1], expected_yy, atol=ROUND_OFF, rtol=0)
    np.testing.assert_allclose(strain[2], 0.0, atol=ROUND_OFF, rtol=0)


def test_uniaxial_takes_larger_images():
    # n x n with n a multiple of 32: the same specimen resolved by more pixels
    solver = StrainSolver(SolverConfig(mode="pixel", applied_strain=U, grid=2 * GRID))
    strain = solver.solve(np.full((2 * GRID, 2 * GRID), MATRIX.youngs_modulus))
    assert strain.shape == (3, 2 * GRID, 2 * GRID)
    np.testing.assert_allclose(strain[0], U, atol=ROUND_OFF, rtol=0)
    expected_yy = uniaxial_lateral_strain(MATRIX.poisson_ratio, "stress") * U
    np.testing.assert_allclose(strain[1], expected_yy, atol=ROUND_OFF, rtol=0)
    E = np.kron(random_image(14), np.ones((2, 2)))  # each pixel split in four: the k = 2 mesh
    fine = StrainSolver(SolverConfig(mode="refined", k=2, applied_strain=U)).solve(random_image(14))
    coarse_of_fine = solver.solve(E).reshape(3, GRID, 2, GRID, 2).mean(axis=(2, 4))
    np.testing.assert_allclose(coarse_of_fine, fine, atol=ROUND_OFF, rtol=0)


@pytest.mark.parametrize("plane", ["stress", "strain"])
def test_reference_homogeneous_is_uniform_uniaxial_stress(plane):
    # the textbook solve the fast path is checked against passes the same exact test
    strain, u = solve_elasticity(np.full((GRID, GRID), MATRIX.youngs_modulus), 1, plane, U)
    assert strain.shape == (3, GRID, GRID) and strain.dtype == np.float64
    np.testing.assert_allclose(strain[0], U, atol=ROUND_OFF, rtol=0)
    expected_yy = uniaxial_lateral_strain(MATRIX.poisson_ratio, plane) * U
    np.testing.assert_allclose(strain[1], expected_yy, atol=ROUND_OFF, rtol=0)
    np.testing.assert_allclose(strain[2], 0.0, atol=ROUND_OFF, rtol=0)
    assert u.x.array.size == 2 * (GRID + 1) ** 2  # nodal displacement of the 33 x 33 Q1 nodes


@pytest.mark.parametrize(("mode", "k"), [("pixel", 1), ("refined", 2)])
def test_domain_mean_of_eps_xx_is_applied_strain(solvers, mode, k):
    for seed in (1, 2):
        strain = solvers(mode, k).solve(random_image(seed))
        assert abs(strain[0].mean() - U) < 1e-12
        assert strain[0].std() > 1e-3  # a heterogeneous field, not a trivial one


def stripes(axis: int, period: int = 8, fiber_width: int = 3) -> np.ndarray:
    """Layers of fiber (width fiber_width px) and matrix; axis=0: horizontal layers."""
    fiber = (np.arange(GRID) % period) < fiber_width
    mask = np.broadcast_to(fiber[:, None] if axis == 0 else fiber[None, :], (GRID, GRID))
    return np.where(mask, FIBER.youngs_modulus, MATRIX.youngs_modulus)


def pixel_stress(E: np.ndarray, strain: np.ndarray, plane: str) -> tuple[np.ndarray, np.ndarray]:
    """sigma_xx and sigma_yy of each pixel from its pixel-averaged strain, in float64 (the core's
    ``microstrain.quantities.stress`` answers float32, too coarse for these round-off checks)."""
    lam, mu = pixel_lame(E, plane)
    tr = strain[0] + strain[1]
    return lam * tr + 2 * mu * strain[0], lam * tr + 2 * mu * strain[1]


def mean_stress_xx(E: np.ndarray, strain: np.ndarray, plane: str) -> float:
    """Domain mean of sigma_xx from pixel strains (exact: Q1 strains on rectangles are affine)."""
    return float(pixel_stress(E, strain, plane)[0].mean())


def reuss_voigt(E: np.ndarray, plane: str) -> tuple[float, float]:
    """Bounds on the effective modulus sigma_xx/ū of the roller-loaded square.

    Reuss: the uniform uniaxial stress is statically admissible (rollers carry no shear, the top
    is free). Voigt: the uniform strain (ū, c, 0) with the best c is kinematically admissible and
    lies in the Q1 space, so it bounds the FE solution too.
    """
    lam, mu = pixel_lame(E, plane)
    c11, c12 = lam + 2 * mu, lam
    nu = np.where(E > 10_000, FIBER.poisson_ratio, MATRIX.poisson_ratio)
    s11 = 1 / E if plane == "stress" else (1 - nu**2) / E
    reuss = 1.0 / s11.mean()
    voigt = c11.mean() - c12.mean() ** 2 / c11.mean()
    return float(reuss), float(voigt)


@pytest.mark.parametrize("plane", ["stress", "strain"])
@pytest.mark.parametrize(("mode", "k"), [("pixel", 1), ("refined", 2)])
def test_layers_parallel_to_load_are_exact_voigt(solvers, mode, k, plane):
    # Horizontal layers: u = (ū x, piecewise linear in y) is exact and in the Q1 space, so each
    # layer is in uniaxial stress with eps_xx = ū and its own lateral contraction.
    E = stripes(axis=0)
    strain = solvers(mode, k, plane).solve(E)
    nu = np.where(E == FIBER.youngs_modulus, FIBER.poisson_ratio, MATRIX.poisson_ratio)
    np.testing.assert_allclose(strain[0], U, atol=ROUND_OFF, rtol=0)
    np.testing.assert_allclose(strain[1], uniaxial_lateral_strain(nu, plane) * U, atol=ROUND_OFF)
    np.testing.assert_allclose(strain[2], 0.0, atol=ROUND_OFF)
    # Voigt average of the uniaxial moduli: sigma_xx = E' ū in every layer
    e_uniaxial = E if plane == "stress" else E / (1 - nu**2)
    assert mean_stress_xx(E, strain, plane) == pytest.approx(e_uniaxial.mean() * U, rel=1e-10)


@pytest.mark.parametrize("plane", ["stress", "strain"])
def test_layers_perpendicular_to_load_lie_between_reuss_and_voigt(solvers, plane):
    # Vertical layers in series: the Reuss stress state is admissible but not compatible (the
    # phases contract differently), so only the bounds hold exactly; layers in series are soft,
    # so the FE stiffness lies much closer to Reuss than to Voigt.
    E = stripes(axis=1)
    strain = solvers("refined", 2, plane).solve(E)
    reuss, voigt = reuss_voigt(E, plane)
    effective = mean_stress_xx(E, strain, plane) / U
    assert reuss <= effective <= voigt
    assert (effective - reuss) < 0.25 * (voigt - reuss)
    # layers in series: the soft matrix takes most of the extension
    matrix = E == MATRIX.youngs_modulus
    assert strain[0][matrix].mean() > 10 * strain[0][~matrix].mean()


def test_random_microstructure_within_bounds(solvers):
    E = random_image(3)
    strain = solvers("pixel").solve(E)
    reuss, voigt = reuss_voigt(E, "stress")
    assert reuss < mean_stress_xx(E, strain, "stress") / U < voigt


@pytest.mark.parametrize("plane", ["stress", "strain"])
@pytest.mark.parametrize(("mode", "k"), [("pixel", 1), ("refined", 2)])
def test_discrete_equilibrium_of_columns_and_rows(solvers, mode, k, plane):
    # The test functions v = (phi(x), 0) and v = (0, psi(y)), piecewise linear on the pixel grid,
    # lie in the Q1 space; their gradients are constant on each pixel, where Q1 strains are
    # affine. So the Galerkin equations say exactly what the continuum's force balance says:
    # every pixel column carries the same total sigma_xx (no friction under the bottom roller,
    # a free top), and every pixel row carries zero total sigma_yy (a free top).
    E = random_image(6)
    sxx, syy = pixel_stress(E, solvers(mode, k, plane).solve(E), plane)
    columns, rows = sxx.sum(axis=0), syy.sum(axis=1)  # [32] each
    force = columns.mean()
    assert force > 0 and np.ptp(sxx) > 0.5 * force / GRID  # a loaded, heterogeneous field
    np.testing.assert_allclose(columns, force, rtol=1e-10)
    np.testing.assert_allclose(rows, 0.0, atol=1e-10 * force)
    # the pixels themselves are far from uniform: the balance holds for the sums only
    assert np.abs(sxx.sum(axis=1) - force).max() > 1e-2 * force


@pytest.mark.parametrize(("mode", "k"), [("pixel", 1), ("refined", 2)])
def test_x_mirror_symmetry(solvers, mode, k):
    solver = solvers(mode, k)
    E = random_image(4)
    strain = solver.solve(E)
    mirrored = solver.solve(E[:, ::-1])
    np.testing.assert_allclose(mirrored[0], strain[0][:, ::-1], atol=ROUND_OFF)
    np.testing.assert_allclose(mirrored[1], strain[1][:, ::-1], atol=ROUND_OFF)
    np.testing.assert_allclose(mirrored[2], -strain[2][:, ::-1], atol=ROUND_OFF)


def test_y_mirror_is_not_a_symmetry(solvers):
    solver = solvers("pixel")
    E = random_image(5)
    strain, flipped = solver.solve(E), solver.solve(E[::-1])
    assert np.abs(flipped[0] - strain[0][::-1]).max() > 1e-3


def test_pixel_mode_equals_refined_k1(solvers):
    E = random_image(6)
    np.testing.assert_allclose(
        solvers("pixel").solve(E), solvers("refined", 1).solve(E), atol=1e-13, rtol=0
    )


def test_linear_in_applied_strain(solvers):
    E = random_image(7)
    half = StrainSolver(SolverConfig(mode="pixel", applied_strain=U / 2)).solve(E)
    np.testing.assert_allclose(half, solvers("pixel").solve(E) / 2, atol=1e-13)


@pytest.mark.slow
def test_refined_converges_as_k_grows(solvers):
    E = random_image(8)
    s1, s2, s4 = (solvers("refined", k).solve(E) for k in (1, 2, 4))
    d12, d24 = np.linalg.norm(s1 - s2), np.linalg.norm(s2 - s4)
    assert d24 < 0.6 * d12, (d12, d24)
    # relative difference k=2 vs k=4 is a few percent (SPEC §3 quotes 5% against k=8)
    assert 0.005 < d24 / np.linalg.norm(s4) < 0.1


def test_solve_batch_matches_single(solvers):
    solver = solvers("pixel")
    E = np.stack([random_image(9), random_image(10)])[:, None]  # [2, 1, 32, 32]
    batch = solver.solve_batch(E)
    assert batch.shape == (2, 3, GRID, GRID)
    np.testing.assert_array_equal(batch[1], solver.solve(E[1, 0]))
    assert solver.last_solve_seconds > 0


def test_repeated_solves_reuse_factorization_correctly(solvers):
    # the in-place value update must refactor: solving A, B, A gives A's answer again
    solver = solvers("pixel")
    a, b = random_image(11), random_image(12)
    first = solver.solve(a)
    other = solver.solve(b)
    assert np.abs(other - first).max() > 1e-3
    np.testing.assert_allclose(solver.solve(a), first, atol=1e-14)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((GRID, GRID)),
        np.full((GRID, GRID), np.nan),
        np.ones((16, 16)),
        np.ones((2, 32, 32)),
    ],
)
def test_bad_images_are_input_errors(solvers, bad):
    with pytest.raises(InputError):
        solvers("pixel").solve(bad)


@pytest.mark.parametrize(
    "kwargs",
    [{"mode": "coarse"}, {"plane": "3d"}, {"k": 0}, {"k": 2.5}, {"applied_strain": float("nan")}],
)
def test_bad_config_is_input_error(kwargs):
    with pytest.raises(InputError):
        SolverConfig(**kwargs)


@pytest.mark.parametrize("kwargs", [{"plane": "3d"}, {"k": 0}, {"k": 2.5}])
def test_reference_rejects_bad_discretization(kwargs):
    with pytest.raises(InputError):
        solve_elasticity(random_image(13), **kwargs)


def test_software_versions():
    versions = StrainSolver.software_versions()
    assert set(versions) == {"dolfinx", "petsc", "numpy", "microstrain"}
    assert versions["dolfinx"].startswith("0.")
