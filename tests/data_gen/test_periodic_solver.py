"""The periodic RVE of SPEC §11, exact answers: homogeneous sheet, laminates, symmetries, bounds.

Real dolfinx solves; k = 1 or 2 keeps them fast. The fast path (condensed skeleton, one
factorization for the three load cases) is checked against the textbook weak form
(``solve_periodic``: dolfinx's K and PETSc's P^T K P) to 1e-10.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from support.materials import EPOXY, GLASS

from data_gen.elasticity import lame_parameters, load_fe_stack, solve_periodic
from data_gen.solver import SolverConfig, StrainSolver
from microstrain.conventions import FIBER, GRID, MATRIX, N_CASES, Material
from microstrain.errors import InputError
from microstrain.quantities import effective_stiffness, reuss_stiffness, voigt_stiffness

U = 0.1
ROUND_OFF = 1e-11  # absolute, on strains of order 0.1
LECTURE = (FIBER, MATRIX)

SolverFactory = Callable[..., StrainSolver]


@pytest.fixture(scope="module")
def solvers() -> SolverFactory:
    cache: dict[tuple, StrainSolver] = {}

    def get(k: int = 1, plane: str = "stress", materials=LECTURE, grid: int = GRID) -> StrainSolver:
        key = (k, plane, materials, grid)
        if key not in cache:
            fiber, matrix = materials
            config = SolverConfig(
                mode="refined", k=k, plane=plane, applied_strain=U, boundary="periodic",
                fiber=fiber, matrix=matrix, grid=grid,
            )  # fmt: skip
            cache[key] = StrainSolver(config)
        return cache[key]

    return get


def random_image(seed: int, materials=LECTURE, fraction: float = 0.4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    fiber, matrix = materials
    return np.where(
        rng.random((GRID, GRID)) < fraction, fiber.youngs_modulus, matrix.youngs_modulus
    )


def stiffness(material: Material, plane: str) -> np.ndarray:
    """Plane C [3, 3] (MPa; eps_xx, eps_yy, gamma_xy) of an isotropic phase, from λ and μ."""
    lam, mu = (
        float(v) for v in lame_parameters(material.youngs_modulus, material.poisson_ratio, plane)
    )
    return np.array([[lam + 2 * mu, lam, 0.0], [lam, lam + 2 * mu, 0.0], [0.0, 0.0, mu]])


def c_eff(E: np.ndarray, strain: np.ndarray, plane: str, materials=LECTURE) -> np.ndarray:
    """C_eff [3, 3] of one image E [n, n] from its three cases [3, 3, n, n] (the core's rule)."""
    fiber, matrix = materials
    return effective_stiffness(E[None, None], strain[None], plane, U, fiber=fiber, matrix=matrix)[0]


def unit_strains(n: int = GRID) -> np.ndarray:
    """The uniform fields Ē = ū e_j of the three cases: [3, 3, n, n]."""
    return np.broadcast_to(U * np.eye(N_CASES)[:, :, None, None], (N_CASES, 3, n, n))


# --- exact fields ---------------------------------------------------------------------------
@pytest.mark.parametrize("plane", ["stress", "strain"])
@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("phase", [0, 1], ids=["fiber", "matrix"])
def test_homogeneous_sheet_gives_uniform_fields_and_its_own_stiffness(solvers, k, plane, phase):
    material = LECTURE[phase]
    E = np.full((GRID, GRID), material.youngs_modulus)
    strain = solvers(k, plane).solve(E)
    assert strain.shape == (N_CASES, 3, GRID, GRID) and strain.dtype == np.float64
    np.testing.assert_allclose(strain, unit_strains(), atol=ROUND_OFF, rtol=0)
    expected = stiffness(material, plane)
    np.testing.assert_allclose(c_eff(E, strain, plane), expected, atol=1e-10 * expected.max())


def laminate_stiffness(layers: list[np.ndarray], fractions: np.ndarray, normal: str) -> np.ndarray:
    """Exact C [3, 3] of a periodic laminate of phases C_i [3, 3] with area fractions f_i.

    Along the layers the strain is continuous, so the in-plane component p (eps_xx for layers
    along x, eps_yy along y) is the same in every layer; across them equilibrium makes the
    tractions n (sigma_yy, tau_xy, or sigma_xx, tau_xy) the same. Per layer ε_n = C_nn⁻¹ (Σ_n −
    C_np Ē_p), and ⟨ε_n⟩ = Ē_n gives Σ_n = ⟨C_nn⁻¹⟩⁻¹ (Ē_n + ⟨C_nn⁻¹ C_np⟩ Ē_p): the Reuss
    average across the layers, the Voigt average along them.
    """
    p, n = ([0], [1, 2]) if normal == "y" else ([1], [0, 2])
    inv_nn = [np.linalg.inv(C[np.ix_(n, n)]) for C in layers]
    mean_inv = sum(f * a for f, a in zip(fractions, inv_nn, strict=True))
    coupling = sum(
        f * a @ C[np.ix_(n, p)] for f, a, C in zip(fractions, inv_nn, layers, strict=True)
    )
    C_n = np.linalg.inv(mean_inv)  # Σ_n = C_n (Ē_n + coupling Ē_p)
    result = np.zeros((3, 3))
    result[np.ix_(n, n)] = C_n
    result[np.ix_(n, p)] = C_n @ coupling
    for f, a, C in zip(fractions, inv_nn, layers, strict=True):
        # Σ_p = ⟨C_pp Ē_p + C_pn ε_n⟩ with ε_n = a (C_n Ē_n + (C_n coupling − C_np) Ē_p)
        result[np.ix_(p, n)] += f * C[np.ix_(p, n)] @ a @ C_n
        result[np.ix_(p, p)] += f * (
            C[np.ix_(p, p)] + C[np.ix_(p, n)] @ a @ (C_n @ coupling - C[np.ix_(n, p)])
        )
    return result


def layers(normal: str, materials=LECTURE, period: int = 8, fiber_width: int = 3) -> np.ndarray:
    """Periodic layers of fiber (fiber_width of every period pixels) and matrix, E [32, 32]."""
    fiber = (np.arange(GRID) % period) < fiber_width
    mask = np.broadcast_to(fiber[:, None] if normal == "y" else fiber[None, :], (GRID, GRID))
    return np.where(mask, materials[0].youngs_modulus, materials[1].youngs_modulus)


@pytest.mark.parametrize("plane", ["stress", "strain"])
@pytest.mark.parametrize("normal", ["y", "x"], ids=["layers_along_x", "layers_along_y"])
@pytest.mark.parametrize("materials", [LECTURE, (GLASS, EPOXY)], ids=["lecture", "glass_epoxy"])
def test_laminates_give_the_closed_form_stiffness(solvers, plane, normal, materials):
    # the exact solution is piecewise affine with kinks on pixel edges: it lies in the Q1 space
    E = layers(normal, materials)
    strain = solvers(1, plane, materials).solve(E)
    f = float((E == materials[0].youngs_modulus).mean())
    phases = [stiffness(m, plane) for m in materials]
    expected = laminate_stiffness(phases, np.array([f, 1 - f]), normal)
    C = c_eff(E, strain, plane, materials)
    np.testing.assert_allclose(C, expected, atol=1e-10 * np.abs(expected).max(), rtol=0)
    # and every layer's field is uniform
    along = 1 if normal == "y" else 0  # pixels of one layer run along this image axis
    np.testing.assert_allclose(np.ptp(strain, axis=2 + along), 0.0, atol=ROUND_OFF)
    assert np.abs(C[0, 0] - C[1, 1]) > 0.1 * C[0, 0]  # a strongly anisotropic answer


# --- invariants of any microstructure ---------------------------------------------------------
@pytest.mark.parametrize("plane", ["stress", "strain"])
@pytest.mark.parametrize("k", [1, 2])
def test_mean_strain_of_each_case_is_its_macro_strain(solvers, k, plane):
    for seed in (1, 2):
        strain = solvers(k, plane).solve(random_image(seed))
        np.testing.assert_allclose(strain.mean(axis=(2, 3)), U * np.eye(N_CASES), atol=1e-14)
        assert strain[:, 0].std() > 1e-3  # heterogeneous fields, not trivial ones


@pytest.mark.parametrize("plane", ["stress", "strain"])
@pytest.mark.parametrize("materials", [LECTURE, (GLASS, EPOXY)], ids=["lecture", "glass_epoxy"])
def test_c_eff_is_symmetric_positive_definite_within_reuss_and_voigt(solvers, plane, materials):
    for seed, k in ((3, 1), (4, 2)):
        E = random_image(seed, materials)
        C = c_eff(E, solvers(k, plane, materials).solve(E), plane, materials)
        np.testing.assert_allclose(C, C.T, atol=1e-10 * np.abs(C).max(), rtol=0)
        eigenvalues = np.linalg.eigvalsh(C)
        assert eigenvalues.min() > 0
        f = float((E == materials[0].youngs_modulus).mean())
        fiber, matrix = materials
        voigt = voigt_stiffness(f, plane, fiber=fiber, matrix=matrix)
        reuss = reuss_stiffness(f, plane, fiber=fiber, matrix=matrix)
        # energy sense: ε:C_R:ε <= ε:C:ε <= ε:C_V:ε for every ε, strictly for a real mixture
        assert np.linalg.eigvalsh(voigt - C).min() > 1e-3 * eigenvalues.max()
        assert np.linalg.eigvalsh(C - reuss).min() > 1e-3 * eigenvalues.max()


def test_whole_pixel_shift_shifts_the_fields_and_keeps_c_eff(solvers):
    solver = solvers(2)
    E = random_image(5)
    strain = solver.solve(E)
    shift = (7, -12)  # rows, columns
    shifted = solver.solve(np.roll(E, shift, axis=(0, 1)))
    np.testing.assert_allclose(shifted, np.roll(strain, shift, axis=(2, 3)), atol=ROUND_OFF)
    C = c_eff(E, strain, "stress")
    np.testing.assert_allclose(
        c_eff(np.roll(E, shift, axis=(0, 1)), shifted, "stress"), C, atol=1e-10 * C.max()
    )


def swap_xy(field: np.ndarray) -> np.ndarray:
    """The image of x <-> y in the row-0-at-top convention, on the last two axes."""
    return np.swapaxes(field[..., ::-1, ::-1], -1, -2)


def test_swapping_x_and_y_exchanges_the_xx_and_yy_cases(solvers):
    solver = solvers(2)
    E = random_image(6)
    strain = solver.solve(E)
    swapped = solver.solve(swap_xy(E))
    order = [1, 0, 2]  # xx <-> yy, for the cases and the components alike; gamma keeps its sign
    expected = swap_xy(strain)[order][:, order]
    np.testing.assert_allclose(swapped, expected, atol=ROUND_OFF)
    C = c_eff(E, strain, "stress")
    np.testing.assert_allclose(
        c_eff(swap_xy(E), swapped, "stress"), C[np.ix_(order, order)], atol=1e-10 * C.max()
    )
    assert abs(C[0, 0] - C[1, 1]) > 1e-3 * C[0, 0]  # a test that can tell the cases apart


@pytest.mark.parametrize("axis", [1, 0], ids=["mirror_x", "mirror_y"])
def test_mirror_flips_the_sign_of_shear(solvers, axis):
    solver = solvers(2)
    E = random_image(7)
    strain = solver.solve(E)
    mirrored = solver.solve(np.flip(E, axis=axis))
    S = np.diag([1.0, 1.0, -1.0])
    # case j of the mirror is S e_j of the original, and every gamma changes sign:
    # mirrored[i, c] = S_ii S_cc flip(strain[i, c])
    expected = np.einsum("i,c,icrs->icrs", np.diag(S), np.diag(S), np.flip(strain, axis=2 + axis))
    np.testing.assert_allclose(mirrored, expected, atol=ROUND_OFF)
    C = c_eff(E, strain, "stress")
    np.testing.assert_allclose(
        c_eff(np.flip(E, axis=axis), mirrored, "stress"), S @ C @ S, atol=1e-10 * C.max()
    )
    assert abs(C[0, 2]) > 1e-4 * C[0, 0]  # a random image couples shear and extension


# --- fast path against the weak form; larger RVEs -------------------------------------------
@pytest.mark.parametrize(
    ("k", "plane", "materials"),
    [(1, "stress", LECTURE), (1, "strain", LECTURE), (2, "stress", LECTURE),
     (2, "strain", LECTURE), (2, "stress", (GLASS, EPOXY))],
)  # fmt: skip
def test_fast_path_equals_weak_form(solvers, k, plane, materials):
    E = random_image(8, materials, fraction=0.45)
    fiber, matrix = materials
    reference, displacements = solve_periodic(E, k, plane, U, fiber, matrix)
    solver = solvers(k, plane, materials)
    np.testing.assert_allclose(solver.solve(E), reference, atol=1e-10, rtol=0)
    # full-resolution displacement of the xy case too (same mesh -> same dof numbering); the
    # affine parts are the same field, the periodic parts are pinned at the same node
    u, _ = solver.last_fields(case=2)
    np.testing.assert_allclose(u.x.array, displacements[2].x.array, atol=1e-10, rtol=0)


def test_tiled_64_rve_repeats_the_32_fields_and_c_eff(solvers):
    E = random_image(9)
    strain = solvers(1).solve(E)
    tiled = np.tile(E, (2, 2))
    big = solvers(1, grid=2 * GRID).solve(tiled)
    assert big.shape == (N_CASES, 3, 2 * GRID, 2 * GRID)
    np.testing.assert_allclose(big, np.tile(strain, (2, 2)), atol=ROUND_OFF)
    C = c_eff(E, strain, "stress")
    np.testing.assert_allclose(c_eff(tiled, big, "stress"), C, atol=1e-10 * C.max())


def test_64_image_of_split_pixels_is_the_32_image_at_k2(solvers):
    # every pixel split in 2 x 2 at k = 1 is the same mesh and material as the 32 image at k = 2
    E = random_image(15)
    fine = solvers(1, grid=2 * GRID).solve(np.kron(E, np.ones((2, 2))))
    averaged = fine.reshape(N_CASES, 3, GRID, 2, GRID, 2).mean(axis=(3, 5))
    np.testing.assert_allclose(averaged, solvers(2).solve(E), atol=ROUND_OFF)


def test_three_cases_share_one_factorization(solvers):
    # PETSc's event log counts MUMPS numeric factorizations and multi-RHS solves
    load_fe_stack()
    from petsc4py import PETSc

    PETSc.Log.begin()
    factorizations, solves = (PETSc.Log.Event(n) for n in ("MatCholFctrNum", "MatMatSolve"))
    solver = solvers(2)
    before = [e.getPerfInfo()["count"] for e in (factorizations, solves)]
    for seed in (13, 14):
        solver.solve(random_image(seed))
    after = [e.getPerfInfo()["count"] for e in (factorizations, solves)]
    assert [a - b for a, b in zip(after, before, strict=True)] == [2, 2]  # one each per image


def test_solve_batch_stacks_the_cases(solvers):
    solver = solvers(1)
    E = np.stack([random_image(10), random_image(11)])[:, None]  # [2, 1, 32, 32]
    batch = solver.solve_batch(E)
    assert batch.shape == (2, N_CASES, 3, GRID, GRID)
    np.testing.assert_array_equal(batch[1], solver.solve(E[1, 0]))


# --- refusals -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kwargs",
    [
        {"boundary": "clamped"},
        {"grid": 48},
        {"grid": 16},
        {"fiber": Material("fiber", 72_000.0, 0.5)},
        {"matrix": Material("matrix", -3.0, 0.3)},
        {"fiber": Material("fiber", 3_000.0, 0.22)},  # the matrix's modulus: phases unreadable
    ],
)
def test_bad_config_is_one_input_error(kwargs):
    with pytest.raises(InputError):
        SolverConfig(boundary=kwargs.pop("boundary", "periodic"), **kwargs)


def test_images_of_another_size_or_material_are_refused(solvers):
    solver = solvers(1)
    with pytest.raises(InputError, match="32x32"):
        solver.solve(np.full((2 * GRID, 2 * GRID), MATRIX.youngs_modulus))
    with pytest.raises(InputError, match=r"neither phase.*fiber 85000 MPa, matrix 3000 MPa"):
        solver.solve(random_image(12, (GLASS, EPOXY)))
