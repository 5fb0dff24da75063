"""The fast path of the FE solve: many n x n images, one precomputed discretization.

SPEC §1 (uniaxial test), §3 (discretization), §11 (periodic RVE). The problems are the ones
:mod:`data_gen.elasticity` states as weak forms and solves the textbook dolfinx way; read that
module first. This one gives the same pixel-averaged strain (checked against it to 1e-11 at
k = 1, 2, 4 by ``tests/data_gen/test_solver_reference.py``, and for the periodic RVE to 1e-10 by
``tests/data_gen/test_periodic_solver.py``) at a fraction of the cost per image.

Everything that does not depend on the material — mesh, function space, element matrices, the
condensed pixel super-elements of both phases, the sparsity pattern, the Dirichlet elimination or
periodic identification, the strain operators and the symbolic factorization — is built once in
:class:`StrainSolver`. The pixel interiors are statically condensed (see
:mod:`data_gen.condensation`, whose element matrices come from :mod:`data_gen.assembly`), so the
linear system lives on the pixel skeleton. Per sample, with θ = [E·fiber; E·matrix] per pixel:

    values(K_ff) = P @ θ           (written in place into the PETSc matrix, same pattern)
    b_c          = R_c @ θ         (one right-hand side per load case c)
    K_ff u_c     = b_c             (one numeric Cholesky refactorization, triangular solves per c)
    strain_c     = S @ u_c + s_c   (both phases' pixel strain, then each pixel picks its phase)

The uniaxial test has one load case; the periodic RVE has three (xx, yy, xy) sharing one
factorization, so a periodic sample costs about one uniaxial solve.

The linear solver is MUMPS Cholesky with the controls measured in docs/solver.md; the comparison
with other factorizations lives in ``benchmarks/bench_solver.py``.

Usage::

    solver = StrainSolver(SolverConfig(mode="refined", k=4))
    strain = solver.solve(E)            # E [32, 32] MPa -> float64 [3, 32, 32]
    periodic = StrainSolver(SolverConfig(boundary="periodic", grid=64))
    strains = periodic.solve(E64)       # E [64, 64] MPa -> float64 [3 cases, 3, 64, 64]
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import numpy as np

from data_gen.elasticity import (
    lame_parameters,
    load_fe_stack,
    phase_mask,
    youngs_modulus_image,
)
from microstrain.conventions import (
    BOUNDARIES,
    DEFAULT_APPLIED_STRAIN,
    DEFAULT_BOUNDARY,
    DEFAULT_K,
    DEFAULT_MODE,
    DEFAULT_PLANE,
    FIBER,
    GRID,
    MATRIX,
    MODES,
    N_CASES,
    N_STRAIN,
    PLANES,
    Material,
)
from microstrain.errors import InputError
from microstrain.fields import check_phases

# MUMPS controls, measured on the condensed skeleton (docs/solver.md): no scaling, which an SPD
# matrix factored without pivoting does not need and which costs a pass over the matrix in every
# numeric factorization; the ordering (ICNTL(7)) is chosen per k by mumps_ordering().
MUMPS_ICNTL = {
    4: 0,  # no diagnostics on stdout
    8: 0,  # scaling: none
}


def mumps_ordering(k: int) -> int:
    """MUMPS ICNTL(7) for k elements per pixel side: PORD (4) up to k = 2, else AMD (0).

    On the skeleton, AMD needs 20-25 % fewer flops than METIS at k = 4 and 8; PORD is within
    3 % of AMD there and 30 % below it at k = 2.
    """
    return 4 if k <= 2 else 0


_instance_counter = itertools.count()
MAX_CELLS_PER_SIDE = 1024  # grid x k: a 1024² Q1 mesh already takes minutes per solve


@dataclass(frozen=True)
class SolverConfig:
    """Discretization, load case and materials of one solver.

    mode: "refined" (k x k Q1 elements per pixel) or "pixel" (= refined with k = 1).
    k: elements per pixel side in refined mode (ignored by pixel mode).
    plane: "stress" (thin sheet) or "strain".
    applied_strain: ū. Uniaxial: the displacement of the right edge of the unit square (= mean
    eps_xx); periodic: the size of each unit macro strain Ē = ū e_j.
    boundary: "uniaxial" (SPEC §1) or "periodic" (SPEC §11).
    fiber, matrix: the two isotropic phases (E in MPa, ν); a pixel's E says which it is.
    grid: n, pixels per side of the images, a multiple of 32.
    """

    mode: str = DEFAULT_MODE
    k: int = DEFAULT_K
    plane: str = DEFAULT_PLANE
    applied_strain: float = DEFAULT_APPLIED_STRAIN
    boundary: str = DEFAULT_BOUNDARY
    fiber: Material = FIBER
    matrix: Material = MATRIX
    grid: int = GRID

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InputError(f"mode must be one of {', '.join(MODES)}; got '{self.mode}'")
        if self.plane not in PLANES:
            raise InputError(f"plane must be one of {', '.join(PLANES)}; got '{self.plane}'")
        if self.mode == "refined" and (int(self.k) != self.k or not 1 <= self.k <= 16):
            raise InputError(f"k must be an integer from 1 to 16; got {self.k}")
        if not math.isfinite(self.applied_strain):
            raise InputError(f"applied strain must be finite; got {self.applied_strain}")
        if self.boundary not in BOUNDARIES:
            raise InputError(
                f"boundary must be one of {', '.join(BOUNDARIES)}; got '{self.boundary}'"
            )
        check_phases(self.fiber, self.matrix)
        if int(self.grid) != self.grid or self.grid < GRID or self.grid % GRID:
            raise InputError(f"grid must be a multiple of {GRID} pixels; got {self.grid}")
        object.__setattr__(self, "grid", int(self.grid))  # 64.0 -> 64: it sizes arrays
        if self.grid * self.elements_per_pixel > MAX_CELLS_PER_SIDE:
            raise InputError(
                f"grid x k must be at most {MAX_CELLS_PER_SIDE} elements per side; "
                f"got {self.grid} x {self.elements_per_pixel}"
            )

    @property
    def elements_per_pixel(self) -> int:
        """k of the mesh actually built: 1 in pixel mode."""
        return 1 if self.mode == "pixel" else int(self.k)

    @property
    def n_cases(self) -> int:
        """Load cases per image: 1 (uniaxial) or 3 (periodic: xx, yy, xy)."""
        return N_CASES if self.boundary == "periodic" else 1

    @property
    def strain_shape(self) -> tuple[int, ...]:
        """Shape of one image's strain: (3, n, n) uniaxial, (3 cases, 3, n, n) periodic."""
        field = (N_STRAIN, self.grid, self.grid)
        return (N_CASES, *field) if self.boundary == "periodic" else field

    def discretization(self) -> dict[str, Any]:
        """The ``discretization`` attribute of SPEC §4: {mode, k}."""
        return {"mode": self.mode, "k": self.elements_per_pixel}


class StrainSolver:
    """Pixel-averaged strain of n x n microstructures for one :class:`SolverConfig`.

    Build once, call :meth:`solve` many times. Runs on ``MPI.COMM_SELF``: parallel data
    generation gives every rank its own solver and its own samples.

    ``ksp`` is the PETSc linear solver of K_ff u_f = b_f (MUMPS Cholesky). It factorizes on the
    first solve, so until then its controls can still be changed (benchmarks do).
    """

    def __init__(self, config: SolverConfig | None = None) -> None:
        t0 = time.perf_counter()
        load_fe_stack()
        import dolfinx.fem
        import dolfinx.mesh
        from mpi4py import MPI
        from petsc4py import PETSc

        from data_gen.condensation import build_condensed_operators

        self.config = config or SolverConfig()
        k = self.config.elements_per_pixel
        grid = self.config.grid
        self.n_cells_per_side = grid * k
        self.mesh = dolfinx.mesh.create_unit_square(
            MPI.COMM_SELF,
            self.n_cells_per_side,
            self.n_cells_per_side,
            dolfinx.mesh.CellType.quadrilateral,
        )
        self.V = dolfinx.fem.functionspace(self.mesh, ("Lagrange", 1, (2,)))
        # Lamé parameters per MPa of E of the two phases (fiber, matrix: the order of the θ
        # blocks): a pixel's stiffness is E times its phase's
        phases = (self.config.fiber, self.config.matrix)
        moduli = np.array([m.youngs_modulus for m in phases])
        poisson = np.array([m.poisson_ratio for m in phases])
        lam, mu = lame_parameters(moduli, poisson, self.config.plane)
        unit_lame = np.stack([lam, mu], axis=1) / moduli[:, None]  # [2, 2]
        self.ops = build_condensed_operators(
            self.V, k, unit_lame, self.config.applied_strain, self.config.boundary, grid
        )

        # K_ff shares its value array with numpy: the stiffness map writes straight into it.
        nnz = self.ops.indices.size
        self._values = np.zeros(nnz, dtype=PETSc.ScalarType)
        self._values_vec = PETSc.Vec().createWithArray(self._values, comm=PETSc.COMM_SELF)  # type: ignore[arg-type]
        self._K = PETSc.Mat().createAIJWithArrays(
            (self.ops.n_free, self.ops.n_free),
            (self.ops.indptr, self.ops.indices, self._values),  # type: ignore[arg-type]
            comm=PETSc.COMM_SELF,
        )
        self._K.assemble()
        self._theta = PETSc.Vec().createSeq(
            self.ops.stiffness_map.getSize()[1], comm=PETSc.COMM_SELF
        )
        # right-hand sides and solutions, column c = load case c, shared with PETSc vectors
        # (one per case) and, for several cases, dense matrices: MUMPS solves them in one pass
        n_free, n_cases = self.ops.n_free, self.ops.n_cases
        self._rhs = np.zeros((n_free, n_cases), order="F")  # [n_free, C]
        self._sol = np.zeros((n_free, n_cases), order="F")  # [n_free, C]
        self._rhs_vec = self._wrap(self._rhs.reshape(-1, order="F"))  # [C·n_free]
        self._b = [self._wrap(self._rhs[:, c]) for c in range(n_cases)]
        self._u = [self._wrap(self._sol[:, c]) for c in range(n_cases)]
        self._B, self._X = (
            PETSc.Mat().createDense((n_free, n_cases), array=a, comm=PETSc.COMM_SELF)  # type: ignore[arg-type]
            for a in (self._rhs, self._sol)
        )
        self._strain = self.ops.strain_map.createVecLeft()  # [2*3*n²]: as fiber, as matrix
        self._fiber = np.zeros(grid * grid, dtype=bool)  # phase of each pixel in the last solve
        self.ksp = self._make_ksp()
        self.setup_seconds = time.perf_counter() - t0
        self.last_solve_seconds = float("nan")
        # split of the last solve, for benchmarks: assembly, factor+solve, extraction (s)
        self.last_timings: dict[str, float] = {}

    @staticmethod
    def _wrap(array: np.ndarray) -> Any:
        """A PETSc vector on the memory of a contiguous float64 numpy array."""
        from petsc4py import PETSc

        return PETSc.Vec().createWithArray(array, comm=PETSc.COMM_SELF)  # type: ignore[arg-type]

    def _make_ksp(self):
        from petsc4py import PETSc

        prefix = f"microstrain_fe{next(_instance_counter)}_"  # room for command-line overrides
        ksp = PETSc.KSP().create(comm=PETSc.COMM_SELF)
        ksp.setOptionsPrefix(prefix)
        ksp.setType(PETSc.KSP.Type.PREONLY)
        pc = ksp.getPC()
        pc.setType("cholesky")
        pc.setFactorSolverType("mumps")
        ksp.setOperators(self._K)
        ksp.setFromOptions()
        pc.setFactorSetUpSolverType()  # creates the (not yet factored) MUMPS matrix
        factor = pc.getFactorMatrix()
        for icntl, value in MUMPS_ICNTL.items():
            factor.setMumpsIcntl(icntl, value)
        factor.setMumpsIcntl(7, mumps_ordering(self.config.elements_per_pixel))
        # The symbolic factorization happens on the first solve and is reused afterwards: the
        # nonzero pattern never changes, only the values (PETSc tracks this via the state).
        return ksp

    # --- per sample ----------------------------------------------------------------------
    def _solve_free(self, youngs_modulus: np.ndarray) -> None:
        """Assemble, factor and solve every load case of one image; u_c in ``self._u``."""
        t0 = time.perf_counter()
        config = self.config
        E = youngs_modulus_image(youngs_modulus, config.grid).ravel()  # [n²]
        # phase of each pixel: ν and the condensed pixel
        self._fiber = phase_mask(E, config.fiber, config.matrix)  # [n²]
        theta = self._theta.getArray()  # [2n²] = [E·fiber; E·matrix]
        np.copyto(theta[: E.size], np.where(self._fiber, E, 0.0))
        np.copyto(theta[E.size :], np.where(self._fiber, 0.0, E))
        self.ops.stiffness_map.mult(self._theta, self._values_vec)
        self._K.stateIncrease()  # values changed in place: refactor numerically
        self.ops.load_map.mult(self._theta, self._rhs_vec)  # every case's b
        t1 = time.perf_counter()
        if self.ops.n_cases == 1:
            self.ksp.solve(self._b[0], self._u[0])
        else:  # one factorization, all cases in one triangular-solve pass (half the time of three)
            self.ksp.matSolve(self._B, self._X)
        reason = self.ksp.getConvergedReason()
        if reason < 0:
            raise RuntimeError(f"linear solve failed (PETSc reason {reason})")
        self._t_assembly, self._t_factor = t1 - t0, time.perf_counter() - t1

    def solve(self, youngs_modulus: np.ndarray) -> np.ndarray:
        """Young's modulus [n, n] (or [1, n, n]) in MPa, n = ``config.grid`` -> strain float64.

        Uniaxial: [3, n, n]; periodic: [3 cases, 3, n, n] for Ē = ū e_case (cases xx, yy, xy).
        Channels eps_xx, eps_yy, gamma_xy; image convention of SPEC §2 (row 0 = top).
        """
        t0 = time.perf_counter()
        self._solve_free(youngs_modulus)
        t1 = time.perf_counter()
        n_pixels = self.config.grid**2
        strains = []
        for u, offset in zip(self._u, self.ops.strain_offsets, strict=True):
            self.ops.strain_map.mult(u, self._strain)
            both = (self._strain.getArray() + offset).reshape(2, -1, n_pixels)
            strains.append(np.where(self._fiber, both[0], both[1]))  # [3, n²]
        shape = self.config.strain_shape
        strain = (strains[0] if len(strains) == 1 else np.stack(strains)).reshape(shape)
        t2 = time.perf_counter()
        self.last_solve_seconds = t2 - t0
        self.last_timings = {
            "assembly": self._t_assembly,
            "factor_solve": self._t_factor,
            "extraction": t2 - t1,
        }
        return strain

    def solve_batch(self, youngs_modulus: np.ndarray) -> np.ndarray:
        """E maps [N, 1, n, n] (or [N, n, n]) in MPa -> strain float64 [N, *strain_shape].

        Uniaxial [N, 3, n, n]; periodic [N, 3 cases, 3, n, n].
        """
        E = np.asarray(youngs_modulus, dtype=np.float64)
        n = self.config.grid
        if E.ndim not in (3, 4) or E.shape[-2:] != (n, n) or (E.ndim == 4 and E.shape[1] != 1):
            raise InputError(f"E batch must be [N, 1, {n}, {n}]; got shape {list(E.shape)}")
        E = E.reshape(-1, n, n)
        return np.stack([self.solve(e) for e in E])

    def solve_fields(self, youngs_modulus: np.ndarray, case: int = 0):
        """Solve one image and return its full-resolution fields, see :meth:`last_fields`."""
        self.solve(youngs_modulus)
        return self.last_fields(case)

    def last_fields(self, case: int = 0):
        """Full-resolution fields of one load case of the last solve, for visualisation.

        case: 0 (uniaxial), or 0, 1, 2 = xx, yy, xy of a periodic solver. Returns (u, strain): u
        a dolfinx Function in the Q1 vector space (displacement), strain a DG0 vector Function
        with the 3 components (eps_xx, eps_yy, gamma_xy) at each element centroid.
        """
        if not 0 <= case < self.ops.n_cases:
            raise InputError(f"load case must be 0 to {self.ops.n_cases - 1}; got {case}")
        import dolfinx.fem

        from data_gen.assembly import centroid_strain_rows, unrolled_cell_dofs

        u = dolfinx.fem.Function(self.V, name="displacement")
        u.x.array[:] = self.ops.displacement(self._u[case].getArray(), self._fiber, case)
        W = dolfinx.fem.functionspace(self.mesh, ("DG", 0, (3,)))
        strain = dolfinx.fem.Function(W, name="strain")
        cell_dofs = unrolled_cell_dofs(self.V)  # [n_cells, 8]
        rows = centroid_strain_rows(self.V, cell_dofs, self.V.tabulate_dof_coordinates())
        cell_strain = np.einsum("cre,ce->cr", rows, u.x.array[cell_dofs])  # [n_cells, 3]
        strain.x.array[(W.dofmap.list[:, :1] * 3 + np.arange(3)).ravel()] = cell_strain.ravel()
        return u, strain

    # --- provenance ----------------------------------------------------------------------
    @staticmethod
    def software_versions() -> dict[str, str]:
        """Versions of the solver stack, for the ``software`` attribute of SPEC §4."""
        import dolfinx
        from petsc4py import PETSc

        import microstrain

        return {
            "dolfinx": dolfinx.__version__,
            "petsc": ".".join(str(v) for v in PETSc.Sys.getVersion()),
            "numpy": np.__version__,
            "microstrain": _package_version() or microstrain.__version__,
        }


def _package_version() -> str | None:
    try:
        return metadata.version("microstrain")
    except metadata.PackageNotFoundError:
        return None
