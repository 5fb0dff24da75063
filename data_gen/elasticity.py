"""The physics as a weak form: the textbook dolfinx solve of one 32x32 image (SPEC §1, §3).

Find the displacement u in the Q1 space V with the Dirichlet conditions below such that

    ∫_Ω σ(u) : ε(v) dx = 0   for all v in V vanishing where u is prescribed,

    ε(u) = sym ∇u,   σ(u) = λ tr(ε(u)) I + 2 μ ε(u),

    u_x = 0 on x = 0,   u_y = 0 on y = 0,   u_x = ū on x = 1,   top edge traction-free,

on the unit square Ω, no body force. Plane stress (the default) replaces λ by λ* = 2λμ/(λ + 2μ);
plane strain keeps λ. Each of the 32x32 pixels is one material, fiber or matrix, with ν following
the phase; the mesh splits every pixel into k x k bilinear quadrilaterals carrying the pixel's
material, and the strain of a pixel is the mean of its k² elements' centroid strains.

:func:`solve_elasticity` says this in dolfinx, top to bottom in the manner of dolfinx's
``demo_elasticity.py``: mesh -> material -> ε, σ -> boundary conditions -> ``LinearProblem`` ->
pixel-averaged strain. It assembles and LU-factors the whole system for every image, which is what
makes it easy to read and slow. Datasets are solved by the fast path, :mod:`data_gen.solver`
(precomputed condensed pixel matrices, one reused Cholesky factorization); the tests in
``tests/data_gen/test_solver_reference.py`` check the fast path against this function to 1e-11.

This module is also the one home of the material law (:func:`lame_parameters`, used by both) and
of the order in which the FE stack is loaded (:func:`load_fe_stack`).

Usage::

    strain, u = solve_elasticity(E, k=4, plane="stress", applied_strain=0.1)
    # E [32, 32] MPa -> strain float64 [3, 32, 32] (eps_xx, eps_yy, gamma_xy), u a dolfinx Function
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from microstrain.conventions import (
    DEFAULT_APPLIED_STRAIN,
    DEFAULT_K,
    DEFAULT_PLANE,
    FIBER,
    GRID,
    MATRIX,
    N_STRAIN,
    PLANES,
    STRAIN_SHAPE,
)
from microstrain.errors import InputError
from microstrain.fields import fiber_mask

# The problem's constants (E and ν of fiber and matrix, the default ū, k and plane) are those of
# microstrain.conventions, shared with every package; the FE solve adds two of its own.
# The strain of a Q1 element is read at its centroid (reference-cell coordinates).
CENTROID = np.array([[0.5, 0.5]])
# Options of the one linear solve: a direct LU factorization, no iterations to converge.
LINEAR_SOLVER_OPTIONS = {"ksp_type": "preonly", "pc_type": "lu"}


def load_fe_stack() -> None:
    """Load the FE stack in the one order that works; call it before importing dolfinx.

    The dolfinx wheel's bootstrap (``dolfinx_solver``) orders mpi4py's MPI library ahead of the
    compiled bindings of dolfinx and petsc4py. Every code path of ``data_gen`` that is first to
    touch dolfinx, mpi4py or petsc4py calls this; functions that receive dolfinx objects need not,
    their caller already did.
    """
    import dolfinx_solver  # noqa: F401


def pixel_moduli(youngs_modulus: np.ndarray) -> np.ndarray:
    """[32, 32], [1, 32, 32] or [1, 1, 32, 32] MPa -> float64 [32, 32], validated."""
    E = np.asarray(youngs_modulus, dtype=np.float64)
    if E.size != GRID * GRID or E.shape[-2:] != (GRID, GRID):
        raise InputError(f"E must be one {GRID}x{GRID} image; got shape {list(E.shape)}")
    E = E.reshape(GRID, GRID)
    if not np.all(np.isfinite(E)) or np.any(E <= 0.0):
        raise InputError("E must be finite and positive (MPa)")
    return E


def lame_parameters(youngs_modulus: np.ndarray, plane: str) -> tuple[np.ndarray, np.ndarray]:
    """Young's modulus per pixel (MPa) -> (λ, μ) in MPa, same shape; ν follows the phase.

    For plane stress λ is replaced by λ* = 2λμ/(λ + 2μ).
    """
    E = np.asarray(youngs_modulus, dtype=np.float64)
    ν = np.where(fiber_mask(E), FIBER.poisson_ratio, MATRIX.poisson_ratio)
    λ = E * ν / ((1.0 + ν) * (1.0 - 2.0 * ν))
    μ = E / (2.0 * (1.0 + ν))
    if plane == "stress":
        λ = 2.0 * λ * μ / (λ + 2.0 * μ)
    return λ, μ


class ElasticitySolution(NamedTuple):
    """What :func:`solve_elasticity` returns; unpacks as ``strain, u``."""

    strain: np.ndarray  # float64 [3, 32, 32] pixel-averaged eps_xx, eps_yy, gamma_xy
    displacement: Any  # dolfinx.fem.Function in the Q1 vector space (nodal u)


def solve_elasticity(
    youngs_modulus: np.ndarray,
    k: int = DEFAULT_K,
    plane: str = DEFAULT_PLANE,
    applied_strain: float = DEFAULT_APPLIED_STRAIN,
) -> ElasticitySolution:
    """Young's modulus [32, 32] MPa -> pixel-averaged strain [3, 32, 32] and displacement u.

    k: Q1 elements per pixel side (1 = pixel mode); plane: "stress" or "strain"; applied_strain:
    ū, the displacement of the right edge. Runs on ``MPI.COMM_SELF``.
    """
    if plane not in PLANES:
        raise InputError(f"plane must be one of {', '.join(PLANES)}; got '{plane}'")
    if int(k) != k or k < 1:
        raise InputError(f"k must be a positive integer; got {k}")
    E_pixel = pixel_moduli(youngs_modulus)  # [32, 32] MPa

    load_fe_stack()
    import dolfinx.fem
    import dolfinx.fem.petsc
    import dolfinx.mesh
    import ufl
    from mpi4py import MPI

    # Mesh: the unit square, k x k bilinear quadrilaterals per pixel.
    n = GRID * int(k)
    msh = dolfinx.mesh.create_unit_square(MPI.COMM_SELF, n, n, dolfinx.mesh.CellType.quadrilateral)
    V = dolfinx.fem.functionspace(msh, ("Lagrange", 1, (2,)))
    tdim = msh.topology.dim
    cells = np.arange(msh.topology.index_map(tdim).size_local, dtype=np.int32)

    # Material: every cell takes λ, μ of the pixel its midpoint lies in (row 0 = top, SPEC §2).
    midpoint = dolfinx.mesh.compute_midpoints(msh, tdim, cells)  # [n_cells, 3]
    row = np.floor((1.0 - midpoint[:, 1]) * GRID).astype(np.int64)
    col = np.floor(midpoint[:, 0] * GRID).astype(np.int64)
    pixel = row * GRID + col  # [n_cells] flat pixel index
    λ_pixel, μ_pixel = lame_parameters(E_pixel, plane)  # [32, 32] MPa each
    Q = dolfinx.fem.functionspace(msh, ("DG", 0))
    λ, μ = dolfinx.fem.Function(Q), dolfinx.fem.Function(Q)
    λ.x.array[Q.dofmap.list[cells, 0]] = λ_pixel.ravel()[pixel]
    μ.x.array[Q.dofmap.list[cells, 0]] = μ_pixel.ravel()[pixel]

    # Small-strain kinematics and Hooke's law.
    def ε(w):
        return ufl.sym(ufl.grad(w))

    def σ(w):
        return λ * ufl.tr(ε(w)) * ufl.Identity(2) + 2.0 * μ * ε(w)

    # Boundary conditions: rollers on the left and bottom edges, u_x = ū on the right edge.
    fdim = tdim - 1

    def bc(component: int, on_edge, value: float) -> dolfinx.fem.DirichletBC:
        facets = dolfinx.mesh.locate_entities_boundary(msh, fdim, on_edge)
        dofs = dolfinx.fem.locate_dofs_topological(V.sub(component), fdim, facets)
        return dolfinx.fem.dirichletbc(value, dofs, V.sub(component))

    bcs = [
        bc(0, lambda x: np.isclose(x[0], 0.0), 0.0),
        bc(1, lambda x: np.isclose(x[1], 0.0), 0.0),
        bc(0, lambda x: np.isclose(x[0], 1.0), applied_strain),
    ]

    # Weak form: no body force, and the free top edge contributes no traction term.
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    a = ufl.inner(σ(u), ε(v)) * ufl.dx
    L = ufl.inner(dolfinx.fem.Constant(msh, np.zeros(2)), v) * ufl.dx

    problem = dolfinx.fem.petsc.LinearProblem(
        a, L, bcs=bcs, petsc_options_prefix="elasticity_", petsc_options=LINEAR_SOLVER_OPTIONS
    )
    uh = problem.solve()

    # Output: centroid strain of every element (engineering shear), averaged over each pixel.
    grad = ufl.grad(uh)
    centroid_strain = dolfinx.fem.Expression(
        ufl.as_vector([grad[0, 0], grad[1, 1], grad[0, 1] + grad[1, 0]]), CENTROID
    )
    cell_strain = centroid_strain.eval(msh, cells).reshape(cells.size, N_STRAIN)
    n_pixels = GRID * GRID
    strain = np.stack(
        [np.bincount(pixel, weights=cell_strain[:, c], minlength=n_pixels) for c in range(N_STRAIN)]
    )  # [3, 1024] sums over each pixel's elements
    strain /= np.bincount(pixel, minlength=n_pixels)  # k² elements per pixel
    return ElasticitySolution(strain.reshape(STRAIN_SHAPE), uh)
