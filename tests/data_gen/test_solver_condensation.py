"""Static condensation of the pixel interiors: exact properties of the super-elements.

The end-to-end equality with a plain dolfinx solve (k = 1, 2, 4, and materials other than the
lecture's) lives in test_solver_reference.py; here the pieces are checked against closed forms.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from data_gen.condensation import condense, pixel_layout, reference_pixel
from data_gen.elasticity import lame_parameters
from data_gen.solver import SolverConfig, StrainSolver
from microstrain.conventions import FIBER, GRID, MATRIX, Material


@pytest.fixture(scope="module", params=[2, 4], ids=["k2", "k4"])
def solver(request) -> StrainSolver:
    return StrainSolver(SolverConfig(mode="refined", k=request.param, plane="stress"))


def boundary_coordinates(solver: StrainSolver, pixel: int) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates [n, 2] of the nodes of a pixel's boundary and interior dofs (in dof order)."""
    coords = solver.V.tabulate_dof_coordinates()[:, :2]  # [n_nodes, 2]
    ops = solver.ops
    return coords[ops.boundary_dofs[pixel] // 2], coords[ops.interior_dofs[pixel] // 2]


def field_at(dofs: np.ndarray, xy: np.ndarray, G: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Affine displacement u = G x + c evaluated at the dofs (component = dof % 2)."""
    u = xy @ G.T + c  # [n, 2]
    return u[np.arange(dofs.size), dofs % 2]


def test_skeleton_sizes(solver):
    k = solver.config.k
    ops = solver.ops
    assert ops.boundary_dofs.shape == (GRID * GRID, 8 * k)
    assert ops.interior_dofs.shape == (GRID * GRID, 2 * (k - 1) ** 2)
    n_nodes = (GRID * k + 1) ** 2
    skeleton = 2 * (n_nodes - GRID * GRID * (k - 1) ** 2)  # 14 850 dofs at k = 4
    dirichlet = np.unique(ops.boundary_dofs)[ops.unknown_of_dof[np.unique(ops.boundary_dofs)] < 0]
    assert ops.n_free + dirichlet.size == skeleton
    pulled = dirichlet[ops.offsets[0, dirichlet] != 0]  # u_x = ū on the right edge, 0 elsewhere
    assert pulled.size == GRID * k + 1 and np.all(pulled % 2 == 0)
    np.testing.assert_array_equal(ops.offsets[0, pulled], solver.config.applied_strain)
    # every dof is a skeleton dof or the interior dof of exactly one pixel
    everything = np.concatenate([np.unique(ops.boundary_dofs), ops.interior_dofs.ravel()])
    np.testing.assert_array_equal(np.sort(everything), np.arange(ops.n_dofs))


@pytest.mark.parametrize("phase", [0, 1], ids=["fiber", "matrix"])
def test_affine_fields_pass_the_patch_test(solver, phase):
    # An affine displacement solves the equilibrium equations inside a homogeneous pixel, so the
    # recovery must reproduce it exactly and the strain operator must return its constant strain.
    rng = np.random.default_rng(phase)
    G, c = rng.normal(size=(2, 2)), rng.normal(size=2)
    element = solver.ops.phases[phase]
    for pixel in (0, 517, GRID * GRID - 1):
        xy_b, xy_i = boundary_coordinates(solver, pixel)
        u_b = field_at(solver.ops.boundary_dofs[pixel], xy_b, G, c)
        u_i = field_at(solver.ops.interior_dofs[pixel], xy_i, G, c)
        np.testing.assert_allclose(element.recovery @ u_b, u_i, atol=1e-13)
        expected = [G[0, 0], G[1, 1], G[0, 1] + G[1, 0]]
        np.testing.assert_allclose(element.strain @ u_b, expected, atol=1e-12)


@pytest.mark.parametrize("phase", [0, 1], ids=["fiber", "matrix"])
def test_super_element_is_symmetric_with_rigid_modes_only(solver, phase):
    S = solver.ops.phases[phase].stiffness
    np.testing.assert_array_equal(S, S.T)
    xy_b, _ = boundary_coordinates(solver, 0)
    dofs = solver.ops.boundary_dofs[0]
    rotation = np.array([[0.0, -1.0], [1.0, 0.0]])
    for G, c in [(np.zeros((2, 2)), np.array([1.0, 0.0])), (np.zeros((2, 2)), np.array([0, 1.0]))]:
        np.testing.assert_allclose(S @ field_at(dofs, xy_b, G, c), 0.0, atol=1e-12)
    np.testing.assert_allclose(S @ field_at(dofs, xy_b, rotation, np.zeros(2)), 0.0, atol=1e-12)
    eigenvalues = np.linalg.eigvalsh(S)
    assert np.all(np.abs(eigenvalues[:3]) < 1e-12 * eigenvalues[-1])  # the three rigid modes
    assert eigenvalues[3] > 1e-6 * eigenvalues[-1]  # everything else costs energy


def test_super_element_scales_with_youngs_modulus(solver):
    # condensing the pixel stiffness of an actual modulus gives E times the unit super-element
    k = solver.config.k
    A, B, _, _ = reference_pixel(solver.V, k)
    layout = pixel_layout(solver.V.tabulate_dof_coordinates(), k)
    materials = ((60_000.0, FIBER.poisson_ratio), (3_000.0, MATRIX.poisson_ratio))
    for element, (E, nu) in zip(solver.ops.phases, materials, strict=True):
        lam, mu = lame_parameters(E, nu, "stress")
        direct = condense(lam * A + mu * B, np.zeros((3, A.shape[0])), layout.boundary,
                          layout.interior)  # fmt: skip
        scale = np.abs(direct.stiffness).max()
        np.testing.assert_allclose(direct.stiffness, E * element.stiffness, atol=1e-12 * scale)
        np.testing.assert_allclose(direct.recovery, element.recovery, atol=1e-13)
    fiber, matrix = solver.ops.phases
    assert not np.allclose(fiber.stiffness, matrix.stiffness)  # ν differs between the phases


def test_scaling_every_modulus_leaves_the_strain_unchanged(solver):
    # a solver built for both moduli times 1.3 gives the same strain; changing one phase's E
    # changes it, and so does changing one phase's ν alone
    rng = np.random.default_rng(3)
    fiber = rng.random((GRID, GRID)) < 0.4
    E = np.where(fiber, FIBER.youngs_modulus, MATRIX.youngs_modulus)
    strain = solver.solve(E)
    config = solver.config

    def scaled(material: Material, factor: float, nu: float | None = None) -> Material:
        nu = material.poisson_ratio if nu is None else nu
        return Material(material.name, factor * material.youngs_modulus, nu)

    def solve_with(fiber_material: Material, matrix_material: Material) -> np.ndarray:
        other = StrainSolver(replace(config, fiber=fiber_material, matrix=matrix_material))
        image = np.where(fiber, fiber_material.youngs_modulus, matrix_material.youngs_modulus)
        return other.solve(image)

    np.testing.assert_allclose(
        solve_with(scaled(FIBER, 1.3), scaled(MATRIX, 1.3)), strain, atol=1e-11, rtol=0
    )
    assert np.abs(solve_with(FIBER, scaled(MATRIX, 2.0)) - strain).max() > 1e-3
    assert np.abs(solve_with(FIBER, scaled(MATRIX, 1.0, nu=0.3)) - strain).max() > 1e-3
