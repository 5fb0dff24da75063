"""The physics as a weak form: the textbook dolfinx solves of one n x n image (SPEC §1, §3, §11).

Find the displacement u in the Q1 space V such that

    ∫_Ω σ(u) : ε(v) dx = 0   for all admissible v in V,

    ε(u) = sym ∇u,   σ(u) = λ tr(ε(u)) I + 2 μ ε(u),

on the unit square Ω, no body force, under one of two boundary conditions:

- ``uniaxial`` (SPEC §1, :func:`solve_elasticity`): u_x = 0 on x = 0, u_y = 0 on y = 0,
  u_x = ū on x = 1, top edge traction-free; v vanishes where u is prescribed.
- ``periodic`` (SPEC §11, :func:`solve_periodic`): u = Ē·x + ũ with ũ periodic on the unit square
  (opposite edges and the four corners identified) and pinned at the node (0, 0); v is periodic
  too. With the periodic map P (each dof of V <- the unknown of its master node) the discrete
  problem is the textbook one, P^T K P w = −P^T K u_Ē, ũ = P w, assembled by dolfinx (K) and
  PETSc (``PtAP``). One factorization serves the three unit load cases Ē = ū e_j.

Plane stress (the default) replaces λ by λ* = 2λμ/(λ + 2μ); plane strain keeps λ. Each pixel is
one of two isotropic phases, fiber or matrix (E and ν of each; by default the lecture's pair of
``microstrain.conventions``), told apart by E; the mesh splits every pixel into k x k bilinear
quadrilaterals carrying the pixel's material, and the strain of a pixel is the mean of its k²
elements' centroid strains.

Both functions say this in dolfinx, top to bottom in the manner of dolfinx's
``demo_elasticity.py``: mesh -> material -> ε, σ -> boundary conditions -> linear solve ->
pixel-averaged strain. They assemble and LU-factor the whole system for every image, which is
what makes them easy to read and slow. Datasets are solved by the fast path,
:mod:`data_gen.solver` (precomputed condensed pixel matrices, one reused Cholesky factorization);
``tests/data_gen/test_solver_reference.py`` and ``test_periodic_solver.py`` check the fast path
against these functions.

The material law is the core's (:func:`microstrain.quantities.lame_parameters`, used by both);
this module is the one home of the pixel phase rule (:func:`phase_mask`) and of the order in
which the FE stack is loaded (:func:`load_fe_stack`).

Usage::

    strain, u = solve_elasticity(E, k=4, plane="stress", applied_strain=0.1)
    # E [32, 32] MPa -> strain float64 [3, 32, 32] (eps_xx, eps_yy, gamma_xy), u a dolfinx Function
    strain, u = solve_periodic(E, k=4)
    # E [n, n] MPa -> strain float64 [3 cases, 3, n, n], u one dolfinx Function per case
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
    N_CASES,
    N_STRAIN,
    PLANES,
    Material,
)
from microstrain.errors import InputError
from microstrain.quantities import lame_parameters

# The problem's constants (E and ν of fiber and matrix, the default ū, k and plane) are those of
# microstrain.conventions, shared with every package; the FE solve adds three of its own.
# The strain of a Q1 element is read at its centroid (reference-cell coordinates).
CENTROID = np.array([[0.5, 0.5]])
# Options of the one linear solve: a direct LU factorization, no iterations to converge.
LINEAR_SOLVER_OPTIONS = {"ksp_type": "preonly", "pc_type": "lu"}
# A pixel belongs to a phase when its E is that phase's modulus to this relative tolerance
# (float32 files hold every modulus to 6e-8).
PHASE_TOLERANCE = 1e-6


def load_fe_stack() -> None:
    """Load the FE stack in the one order that works; call it before importing dolfinx.

    The dolfinx wheel's bootstrap (``dolfinx_solver``) orders mpi4py's MPI library ahead of the
    compiled bindings of dolfinx and petsc4py. Every code path of ``data_gen`` that is first to
    touch dolfinx, mpi4py or petsc4py calls this; functions that receive dolfinx objects need not,
    their caller already did.
    """
    import dolfinx_solver  # noqa: F401


def youngs_modulus_image(youngs_modulus: np.ndarray, grid: int | None = None) -> np.ndarray:
    """[n, n], [1, n, n] or [1, 1, n, n] MPa -> float64 [n, n], validated.

    n is ``grid`` when given, else any multiple of 32 (SPEC §11: larger periodic RVEs).
    """
    E = np.asarray(youngs_modulus, dtype=np.float64)
    n = E.shape[-1] if E.ndim >= 2 else 0
    if grid is not None and n != grid:
        raise InputError(f"E must be one {grid}x{grid} image; got shape {list(E.shape)}")
    if E.ndim < 2 or E.shape[-2] != n or E.size != n * n or n % GRID or n == 0:
        raise InputError(
            f"E must be one n x n image, n a multiple of {GRID}; got shape {list(E.shape)}"
        )
    E = E.reshape(n, n)
    if not np.all(np.isfinite(E)) or np.any(E <= 0.0):
        raise InputError("E must be finite and positive (MPa)")
    return E


def phase_mask(
    youngs_modulus: np.ndarray, fiber: Material = FIBER, matrix: Material = MATRIX
) -> np.ndarray:
    """E (MPa, any shape) -> bool mask of the same shape, True where the pixel is fiber.

    A pixel is the phase whose modulus is closest to its E (relatively); a value that is neither
    modulus to :data:`PHASE_TOLERANCE` is an :class:`InputError` naming the two moduli.
    """
    E = np.asarray(youngs_modulus, dtype=np.float64)
    off_fiber = np.abs(E - fiber.youngs_modulus) / fiber.youngs_modulus
    off_matrix = np.abs(E - matrix.youngs_modulus) / matrix.youngs_modulus
    is_fiber = off_fiber <= off_matrix
    stray = np.minimum(off_fiber, off_matrix) > PHASE_TOLERANCE
    if np.any(stray):
        raise InputError(
            f"E holds {E[stray].flat[0]:g} MPa, which is neither phase the solver was built for: "
            f"fiber {fiber.youngs_modulus:g} MPa, matrix {matrix.youngs_modulus:g} MPa"
        )
    return is_fiber


def pixel_lame(
    youngs_modulus: np.ndarray, plane: str, fiber: Material = FIBER, matrix: Material = MATRIX
) -> tuple[np.ndarray, np.ndarray]:
    """E map (MPa) -> (λ, μ) per pixel in MPa, same shape; ν follows the pixel's phase."""
    E = np.asarray(youngs_modulus, dtype=np.float64)
    ν = np.where(phase_mask(E, fiber, matrix), fiber.poisson_ratio, matrix.poisson_ratio)
    return lame_parameters(E, ν, plane)


def affine_displacement(x: np.ndarray, macro_strain: np.ndarray) -> np.ndarray:
    """u = Ē·x: points [2 or 3, m] -> displacement [2, m] for Ē = (eps_xx, eps_yy, gamma_xy).

    The symmetric gradient (no rotation): u_x = eps_xx x + gamma/2 y, u_y = gamma/2 x + eps_yy y.
    """
    exx, eyy, gxy = (float(v) for v in macro_strain)
    return np.stack([exx * x[0] + 0.5 * gxy * x[1], 0.5 * gxy * x[0] + eyy * x[1]])


def unit_macro_strains(applied_strain: float) -> np.ndarray:
    """The three load cases of SPEC §11, Ē_j = ū e_j: float64 [3 cases, 3 components]."""
    return applied_strain * np.eye(N_CASES)


class ElasticitySolution(NamedTuple):
    """What :func:`solve_elasticity` returns; unpacks as ``strain, u``."""

    strain: np.ndarray  # float64 [3, n, n] pixel-averaged eps_xx, eps_yy, gamma_xy
    displacement: Any  # dolfinx.fem.Function in the Q1 vector space (nodal u)


class PeriodicSolution(NamedTuple):
    """What :func:`solve_periodic` returns; unpacks as ``strain, u``."""

    strain: np.ndarray  # float64 [3 cases, 3, n, n]: case xx, yy, xy; eps_xx, eps_yy, gamma_xy
    displacement: list[Any]  # per case, u = Ē·x + ũ as a dolfinx Function (Q1 vector space)


def _check_discretization(k: int, plane: str) -> None:
    if plane not in PLANES:
        raise InputError(f"plane must be one of {', '.join(PLANES)}; got '{plane}'")
    if int(k) != k or k < 1:
        raise InputError(f"k must be a positive integer; got {k}")


class _Problem(NamedTuple):
    """Mesh, space, bilinear form and pixel map of one image, as both solves build them."""

    mesh: Any
    V: Any
    a: Any  # the UFL bilinear form ∫ σ(u) : ε(v) dx
    cells: np.ndarray  # int32 [n_cells]
    pixel: np.ndarray  # int64 [n_cells] flat pixel index of each cell (row 0 = top)


def _problem(
    E_pixel: np.ndarray, k: int, plane: str, fiber: Material, matrix: Material
) -> _Problem:
    import dolfinx.fem
    import dolfinx.mesh
    import ufl
    from mpi4py import MPI

    # Mesh: the unit square, k x k bilinear quadrilaterals per pixel.
    n_pixels = E_pixel.shape[0]
    n = n_pixels * int(k)
    msh = dolfinx.mesh.create_unit_square(MPI.COMM_SELF, n, n, dolfinx.mesh.CellType.quadrilateral)
    V = dolfinx.fem.functionspace(msh, ("Lagrange", 1, (2,)))
    tdim = msh.topology.dim
    cells = np.arange(msh.topology.index_map(tdim).size_local, dtype=np.int32)

    # Material: every cell takes λ, μ of the pixel its midpoint lies in (row 0 = top, SPEC §2).
    midpoint = dolfinx.mesh.compute_midpoints(msh, tdim, cells)  # [n_cells, 3]
    row = np.floor((1.0 - midpoint[:, 1]) * n_pixels).astype(np.int64)
    col = np.floor(midpoint[:, 0] * n_pixels).astype(np.int64)
    pixel = row * n_pixels + col  # [n_cells] flat pixel index
    λ_pixel, μ_pixel = pixel_lame(E_pixel, plane, fiber, matrix)  # [n, n] MPa each
    Q = dolfinx.fem.functionspace(msh, ("DG", 0))
    λ, μ = dolfinx.fem.Function(Q), dolfinx.fem.Function(Q)
    λ.x.array[Q.dofmap.list[cells, 0]] = λ_pixel.ravel()[pixel]
    μ.x.array[Q.dofmap.list[cells, 0]] = μ_pixel.ravel()[pixel]

    # Small-strain kinematics and Hooke's law.
    def ε(w):
        return ufl.sym(ufl.grad(w))

    def σ(w):
        return λ * ufl.tr(ε(w)) * ufl.Identity(2) + 2.0 * μ * ε(w)

    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    a = ufl.inner(σ(u), ε(v)) * ufl.dx
    return _Problem(msh, V, a, cells, pixel)


def _pixel_strain(problem: _Problem, uh: Any, n_pixels: int) -> np.ndarray:
    """Centroid strain of every element (engineering shear), averaged over each pixel: [3, n, n]."""
    import dolfinx.fem
    import ufl

    grad = ufl.grad(uh)
    centroid_strain = dolfinx.fem.Expression(
        ufl.as_vector([grad[0, 0], grad[1, 1], grad[0, 1] + grad[1, 0]]), CENTROID
    )
    cells, pixel = problem.cells, problem.pixel
    cell_strain = centroid_strain.eval(problem.mesh, cells).reshape(cells.size, N_STRAIN)
    size = n_pixels * n_pixels
    strain = np.stack(
        [np.bincount(pixel, weights=cell_strain[:, c], minlength=size) for c in range(N_STRAIN)]
    )  # [3, n²] sums over each pixel's elements
    strain /= np.bincount(pixel, minlength=size)  # k² elements per pixel
    return strain.reshape(N_STRAIN, n_pixels, n_pixels)


def solve_elasticity(
    youngs_modulus: np.ndarray,
    k: int = DEFAULT_K,
    plane: str = DEFAULT_PLANE,
    applied_strain: float = DEFAULT_APPLIED_STRAIN,
    fiber: Material = FIBER,
    matrix: Material = MATRIX,
) -> ElasticitySolution:
    """The uniaxial test of SPEC §1: E [n, n] MPa -> pixel strain [3, n, n] and displacement u.

    k: Q1 elements per pixel side (1 = pixel mode); plane: "stress" or "strain"; applied_strain:
    ū, the displacement of the right edge; fiber, matrix: the two phases. Runs on
    ``MPI.COMM_SELF``.
    """
    _check_discretization(k, plane)
    E_pixel = youngs_modulus_image(youngs_modulus)  # [n, n] MPa

    load_fe_stack()
    import dolfinx.fem
    import dolfinx.fem.petsc
    import dolfinx.mesh
    import ufl

    problem = _problem(E_pixel, k, plane, fiber, matrix)
    msh, V = problem.mesh, problem.V

    # Boundary conditions: rollers on the left and bottom edges, u_x = ū on the right edge.
    fdim = msh.topology.dim - 1

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
    v = ufl.TestFunction(V)
    L = ufl.inner(dolfinx.fem.Constant(msh, np.zeros(2)), v) * ufl.dx

    linear_problem = dolfinx.fem.petsc.LinearProblem(
        problem.a,
        L,
        bcs=bcs,
        petsc_options_prefix="elasticity_",
        petsc_options=LINEAR_SOLVER_OPTIONS,
    )
    uh = linear_problem.solve()
    return ElasticitySolution(_pixel_strain(problem, uh, E_pixel.shape[0]), uh)


def periodic_map(V: Any, n_cells_per_side: int) -> Any:
    """The periodic map P of V: PETSc AIJ [n_dofs, n_unknowns] with one 1 per row.

    Node (i, j) of the (n + 1)² grid is the node (i mod n, j mod n): the right edge repeats the
    left, the top the bottom, and all four corners are (0, 0). Its unknowns are those of the
    master nodes minus the pinned node (0, 0), whose rows of P are zero (ũ = 0 there).
    """
    from petsc4py import PETSc

    n = n_cells_per_side
    xy = V.tabulate_dof_coordinates()[:, :2]  # [n_nodes, 2], node = dof block
    i, j = (np.rint(xy[:, c] * n).astype(np.int64) % n for c in range(2))
    master = i + n * j  # [n_nodes] position of the master node on the n x n torus
    unknown_node = np.full(n * n, -1, dtype=np.int64)  # torus position -> unknown node number
    unknown_node[1:] = np.arange(n * n - 1)  # position 0 = (0, 0) is pinned
    node_unknown = unknown_node[master]  # [n_nodes]
    dof_unknown = np.where(node_unknown >= 0, 2 * node_unknown, -1)[:, None] + np.arange(2)
    dof_unknown = dof_unknown.ravel()  # [n_dofs] unknown of each dof; < 0 on the pinned node
    has_unknown = node_unknown.repeat(2) >= 0
    indptr = np.concatenate([[0], np.cumsum(has_unknown)]).astype(PETSc.IntType)
    indices = dof_unknown[has_unknown].astype(PETSc.IntType)
    values = np.ones(indices.size, dtype=PETSc.ScalarType)
    shape = (dof_unknown.size, 2 * (n * n - 1))
    csr = (indptr, indices, values)
    return PETSc.Mat().createAIJ(shape, csr=csr, comm=PETSc.COMM_SELF)  # type: ignore[arg-type]


def solve_periodic(
    youngs_modulus: np.ndarray,
    k: int = DEFAULT_K,
    plane: str = DEFAULT_PLANE,
    applied_strain: float = DEFAULT_APPLIED_STRAIN,
    fiber: Material = FIBER,
    matrix: Material = MATRIX,
) -> PeriodicSolution:
    """The periodic RVE of SPEC §11: E [n, n] MPa -> strain [3 cases, 3, n, n] and u per case.

    Cases xx, yy, xy: Ē = ū e_j in (eps_xx, eps_yy, gamma_xy). Arguments as
    :func:`solve_elasticity`. Runs on ``MPI.COMM_SELF``.
    """
    _check_discretization(k, plane)
    E_pixel = youngs_modulus_image(youngs_modulus)  # [n, n] MPa

    load_fe_stack()
    import dolfinx.fem
    import dolfinx.fem.petsc
    from petsc4py import PETSc

    problem = _problem(E_pixel, k, plane, fiber, matrix)
    V = problem.V

    # K of the whole mesh (no boundary conditions), then the periodic system P^T K P.
    K = dolfinx.fem.petsc.assemble_matrix(dolfinx.fem.form(problem.a))
    K.assemble()
    P = periodic_map(V, E_pixel.shape[0] * int(k))
    A = K.PtAP(P)

    ksp = PETSc.KSP().create(PETSc.COMM_SELF)
    ksp.setOperators(A)
    ksp.setType(LINEAR_SOLVER_OPTIONS["ksp_type"])
    ksp.getPC().setType(LINEAR_SOLVER_OPTIONS["pc_type"])  # factored once, used for all cases

    strains, displacements = [], []
    for macro in unit_macro_strains(applied_strain):
        u_affine = dolfinx.fem.Function(V)  # Ē·x
        u_affine.interpolate(lambda x, macro=macro: affine_displacement(x, macro))
        b, w = A.createVecLeft(), A.createVecRight()
        P.multTranspose(K * u_affine.x.petsc_vec, b)
        b.scale(-1.0)  # load: −P^T K u_Ē
        ksp.solve(b, w)
        uh = dolfinx.fem.Function(V, name="displacement")
        P.mult(w, uh.x.petsc_vec)  # ũ = P w
        uh.x.array[:] += u_affine.x.array
        strains.append(_pixel_strain(problem, uh, E_pixel.shape[0]))
        displacements.append(uh)
    return PeriodicSolution(np.stack(strains), displacements)
