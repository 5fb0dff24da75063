"""The fast path (precomputed maps, reused factorization) against a plain dolfinx solve, and MPI.

The reference is written the textbook way — DG0 λ, μ, a UFL weak form, ``dirichletbc`` and
``LinearProblem`` with LU, strain from a ``dolfinx.fem.Expression`` at the cell centroids — and
shares no code with :mod:`data_gen.assembly`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dolfinx_solver  # noqa: F401 - orders MPI ahead of dolfinx's compiled bindings

# isort: split
import dolfinx.fem
import dolfinx.fem.petsc
import dolfinx.mesh
import numpy as np
import pytest
import ufl
from mpi4py import MPI

from data_gen.solver import SolverConfig, StrainSolver, lame_parameters
from microstrain.conventions import FIBER, GRID, MATRIX

U = 0.1


def plain_dolfinx_strain(E: np.ndarray, k: int, plane: str) -> tuple[np.ndarray, np.ndarray]:
    """Reference solve -> (pixel strain [3, 32, 32], nodal displacement [n_dofs])."""
    n = GRID * k
    msh = dolfinx.mesh.create_unit_square(MPI.COMM_SELF, n, n, dolfinx.mesh.CellType.quadrilateral)
    V = dolfinx.fem.functionspace(msh, ("Lagrange", 1, (2,)))
    Q = dolfinx.fem.functionspace(msh, ("DG", 0))
    # material of each cell from its midpoint, independently of the solver's maps
    tdim = msh.topology.dim
    n_cells = msh.topology.index_map(tdim).size_local
    mid = dolfinx.mesh.compute_midpoints(msh, tdim, np.arange(n_cells, dtype=np.int32))
    row = np.floor((1 - mid[:, 1]) * GRID).astype(int)
    col = np.floor(mid[:, 0] * GRID).astype(int)
    lam_pix, mu_pix = lame_parameters(E, plane)
    lam, mu = dolfinx.fem.Function(Q), dolfinx.fem.Function(Q)
    lam.x.array[Q.dofmap.list[:, 0]] = lam_pix[row, col]
    mu.x.array[Q.dofmap.list[:, 0]] = mu_pix[row, col]

    def eps(w):
        return ufl.sym(ufl.grad(w))

    def sigma(w):
        return lam * ufl.tr(eps(w)) * ufl.Identity(2) + 2 * mu * eps(w)

    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    a = ufl.inner(sigma(u), eps(v)) * ufl.dx
    L = ufl.inner(dolfinx.fem.Constant(msh, np.zeros(2)), v) * ufl.dx
    fdim = tdim - 1

    def bc(component: int, marker, value: float) -> dolfinx.fem.DirichletBC:
        facets = dolfinx.mesh.locate_entities_boundary(msh, fdim, marker)
        dofs = dolfinx.fem.locate_dofs_topological(V.sub(component), fdim, facets)
        return dolfinx.fem.dirichletbc(value, dofs, V.sub(component))

    bcs = [
        bc(0, lambda x: np.isclose(x[0], 0.0), 0.0),
        bc(1, lambda x: np.isclose(x[1], 0.0), 0.0),
        bc(0, lambda x: np.isclose(x[0], 1.0), U),
    ]
    problem = dolfinx.fem.petsc.LinearProblem(
        a,
        L,
        bcs=bcs,
        petsc_options_prefix="reference_",
        petsc_options={"ksp_type": "preonly", "pc_type": "lu"},
    )
    uh = problem.solve()
    grad = ufl.grad(uh)
    expr = dolfinx.fem.Expression(
        ufl.as_vector([grad[0, 0], grad[1, 1], grad[0, 1] + grad[1, 0]]), np.array([[0.5, 0.5]])
    )
    cell_strain = expr.eval(msh, np.arange(n_cells, dtype=np.int32)).reshape(n_cells, 3)
    pixel = row * GRID + col
    strain = np.stack(
        [np.bincount(pixel, weights=cell_strain[:, c], minlength=GRID * GRID) for c in range(3)]
    ) / np.bincount(pixel, minlength=GRID * GRID)
    return strain.reshape(3, GRID, GRID), uh.x.array.copy()


@pytest.mark.parametrize(("k", "plane"), [(1, "stress"), (2, "strain"), (4, "stress")])
def test_fast_path_equals_plain_dolfinx_assembly(k, plane):
    rng = np.random.default_rng(42)
    E = np.where(rng.random((GRID, GRID)) < 0.45, FIBER.youngs_modulus, MATRIX.youngs_modulus)
    solver = StrainSolver(SolverConfig(mode="refined", k=k, plane=plane, applied_strain=U))
    reference, u_reference = plain_dolfinx_strain(E, k, plane)
    strain = solver.solve(E)
    np.testing.assert_allclose(strain, reference, atol=1e-11, rtol=0)
    # full-resolution fields too (same mesh construction -> same dof numbering)
    u, cell_strain = solver.solve_fields(E)
    np.testing.assert_allclose(u.x.array, u_reference, atol=1e-12, rtol=0)
    assert cell_strain.x.array.size == 3 * (GRID * k) ** 2


def test_moduli_other_than_the_two_phases_match_plain_dolfinx():
    # the condensed pixel is E times its phase's unit super-element (ν follows the phase), so
    # any positive moduli are solved exactly, not only FIBER and MATRIX
    rng = np.random.default_rng(5)
    fiber = rng.random((GRID, GRID)) < 0.4
    E = np.where(
        fiber, rng.uniform(50_000, 120_000, fiber.shape), rng.uniform(500, 40_000, fiber.shape)
    )
    solver = StrainSolver(SolverConfig(mode="refined", k=2, plane="stress", applied_strain=U))
    reference, _ = plain_dolfinx_strain(E, 2, "stress")
    np.testing.assert_allclose(solver.solve(E), reference, atol=1e-11, rtol=0)


MPI_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from mpi4py import MPI
    from data_gen.solver import SolverConfig, StrainSolver

    comm = MPI.COMM_WORLD
    rng = np.random.default_rng(7)  # same sample on every rank
    E = np.where(rng.random((32, 32)) < 0.4, 85000.0, 3000.0)
    strain = StrainSolver(SolverConfig(mode="refined", k=2)).solve(E)
    gathered = comm.gather(strain, root=0)
    if comm.rank == 0:
        np.save(sys.argv[1], np.stack(gathered))
    """
)


@pytest.mark.mpi
@pytest.mark.slow
def test_each_rank_solves_on_comm_self_identically(tmp_path: Path):
    mpiexec = Path(sys.executable).parent / "mpiexec"
    if not mpiexec.exists():
        pytest.skip("mpiexec of the dolfinx wheel not found beside the interpreter")
    script = tmp_path / "solve_each_rank.py"
    script.write_text(MPI_SCRIPT)
    out = tmp_path / "strains.npy"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [str(mpiexec), "-n", "2", sys.executable, str(script), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    strains = np.load(out)
    assert strains.shape == (2, 3, GRID, GRID)
    np.testing.assert_array_equal(strains[0], strains[1])
    rng = np.random.default_rng(7)
    E = np.where(rng.random((32, 32)) < 0.4, 85000.0, 3000.0)
    serial = StrainSolver(SolverConfig(mode="refined", k=2)).solve(E)
    np.testing.assert_allclose(strains[0], serial, atol=1e-13, rtol=0)
