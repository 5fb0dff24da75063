"""The fast path (precomputed maps, reused factorization) against the textbook solve, and MPI.

The reference is :func:`data_gen.elasticity.solve_elasticity` — DG0 λ, μ, a UFL weak form,
``dirichletbc`` and ``LinearProblem`` with LU, strain from a ``dolfinx.fem.Expression`` at the
cell centroids — which shares no code with :mod:`data_gen.assembly` and
:mod:`data_gen.condensation` beyond the material law.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from support.materials import EPOXY, GLASS

from data_gen.elasticity import solve_elasticity
from data_gen.solver import SolverConfig, StrainSolver
from microstrain.conventions import FIBER, GRID, MATRIX
from microstrain.errors import InputError

U = 0.1


@pytest.mark.parametrize(("k", "plane"), [(1, "stress"), (2, "strain"), (4, "stress")])
def test_fast_path_equals_textbook_solve(k, plane):
    rng = np.random.default_rng(42)
    E = np.where(rng.random((GRID, GRID)) < 0.45, FIBER.youngs_modulus, MATRIX.youngs_modulus)
    solver = StrainSolver(SolverConfig(mode="refined", k=k, plane=plane, applied_strain=U))
    reference, u_reference = solve_elasticity(E, k=k, plane=plane, applied_strain=U)
    strain = solver.solve(E)
    np.testing.assert_allclose(strain, reference, atol=1e-11, rtol=0)
    # full-resolution fields too (same mesh construction -> same dof numbering)
    u, cell_strain = solver.solve_fields(E)
    np.testing.assert_allclose(u.x.array, u_reference.x.array, atol=1e-12, rtol=0)
    assert cell_strain.x.array.size == 3 * (GRID * k) ** 2


def test_user_materials_match_textbook_solve():
    # glass fiber in epoxy: the condensed pixels are built for the config's E and ν per phase
    rng = np.random.default_rng(5)
    E = np.where(rng.random((GRID, GRID)) < 0.4, GLASS.youngs_modulus, EPOXY.youngs_modulus)
    config = SolverConfig(mode="refined", k=2, applied_strain=U, fiber=GLASS, matrix=EPOXY)
    reference, _ = solve_elasticity(E, k=2, applied_strain=U, fiber=GLASS, matrix=EPOXY)
    np.testing.assert_allclose(StrainSolver(config).solve(E), reference, atol=1e-11, rtol=0)


def test_moduli_of_neither_phase_are_refused():
    solver = StrainSolver(SolverConfig(mode="pixel"))
    E = np.full((GRID, GRID), MATRIX.youngs_modulus)
    E[3, 4] = 40_000.0
    with pytest.raises(InputError, match=r"40000 MPa.*fiber 85000 MPa, matrix 3000 MPa"):
        solver.solve(E)
    with pytest.raises(InputError, match="neither phase"):
        solve_elasticity(E, k=1)
    E[3, 4] = FIBER.youngs_modulus * (1 + 1e-7)  # float32 round-off of a modulus is a phase
    assert solver.solve(E).shape == (3, GRID, GRID)


MPI_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from data_gen.elasticity import load_fe_stack
    from data_gen.solver import SolverConfig, StrainSolver

    load_fe_stack()
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    rng = np.random.default_rng(7)  # same sample on every rank
    E = np.where(rng.random((32, 32)) < 0.4, 85000.0, 3000.0)
    strain = StrainSolver(SolverConfig(mode="refined", k=2)).solve(E)
    periodic = StrainSolver(SolverConfig(mode="refined", k=2, boundary="periodic")).solve(E)
    gathered = comm.gather(np.concatenate([strain[None], periodic]), root=0)  # [4, 3, 32, 32]
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
    assert strains.shape == (2, 4, 3, GRID, GRID)  # rank, (uniaxial, periodic xx, yy, xy)
    np.testing.assert_array_equal(strains[0], strains[1])
    rng = np.random.default_rng(7)
    E = np.where(rng.random((32, 32)) < 0.4, 85000.0, 3000.0)
    serial = StrainSolver(SolverConfig(mode="refined", k=2)).solve(E)
    np.testing.assert_allclose(strains[0, 0], serial, atol=1e-13, rtol=0)
    periodic = StrainSolver(SolverConfig(mode="refined", k=2, boundary="periodic")).solve(E)
    np.testing.assert_allclose(strains[0, 1:], periodic, atol=1e-13, rtol=0)
