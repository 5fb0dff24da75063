"""The reference FE solver: 2D linear elasticity of a 32x32 fiber/matrix image (SPEC §1, §3).

    find u in V:  ∫ σ(u) : ε(v) dx = 0  for all v,   σ = λ tr(ε) I + 2 μ ε,
    u_x = 0 on x = 0,  u_y = 0 on y = 0,  u_x = ū on x = 1,  top edge traction-free.

Plane stress (default) uses λ* = 2λμ/(λ + 2μ) in place of λ. Each pixel is split into k x k
bilinear Q1 elements carrying the pixel's material (``mode="pixel"`` is k = 1); the strain of a
pixel is the mean of its elements' centroid strains.

Everything that does not depend on the material — mesh, function space, element matrices, the
condensed pixel super-elements of both phases, the sparsity pattern, the Dirichlet elimination,
the strain operators and the symbolic factorization — is built once in :class:`StrainSolver`.
The pixel interiors are statically condensed (see :mod:`data_gen.condensation`), so the linear
system lives on the pixel skeleton. Per sample, with θ = [E·fiber; E·matrix] per pixel:

    values(K_ff) = P @ θ           (written in place into the PETSc matrix, same pattern)
    b_f          = R @ θ
    K_ff u_f     = b_f             (numeric Cholesky refactorization + triangular solves)
    strain       = S @ u_f + s_0   (both phases' pixel strain, then each pixel picks its phase)

Usage::

    solver = StrainSolver(SolverConfig(mode="refined", k=4))
    strain = solver.solve(E)            # E [32, 32] MPa -> float64 [3, 32, 32]
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Any

import numpy as np

from microstrain.conventions import (
    DEFAULT_APPLIED_STRAIN,
    DEFAULT_K,
    DEFAULT_MODE,
    DEFAULT_PLANE,
    FIBER,
    GRID,
    MATRIX,
    MODES,
    PLANES,
    STRAIN_SHAPE,
)
from microstrain.errors import InputError
from microstrain.fields import fiber_mask

# name -> (PETSc PC type, factor solver type); "mumps-cholesky" won the measurements in
# docs/solver.md, the others stay selectable for benchmarks.
LINEAR_SOLVERS = {
    "mumps-cholesky": ("cholesky", "mumps"),
    "mumps-lu": ("lu", "mumps"),
    "petsc-cholesky": ("cholesky", "petsc"),
    "petsc-lu": ("lu", "petsc"),
    "superlu_dist-lu": ("lu", "superlu_dist"),
}
DEFAULT_LINEAR_SOLVER = "mumps-cholesky"
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


@dataclass(frozen=True)
class SolverConfig:
    """Discretization and load case of one solver.

    mode: "refined" (k x k Q1 elements per pixel) or "pixel" (= refined with k = 1).
    k: elements per pixel side in refined mode (ignored by pixel mode).
    plane: "stress" (thin sheet) or "strain".
    applied_strain: ū, the displacement of the right edge of the unit square (= mean eps_xx).
    linear_solver: a key of :data:`LINEAR_SOLVERS`.
    """

    mode: str = DEFAULT_MODE
    k: int = DEFAULT_K
    plane: str = DEFAULT_PLANE
    applied_strain: float = DEFAULT_APPLIED_STRAIN
    linear_solver: str = DEFAULT_LINEAR_SOLVER

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InputError(f"mode must be one of {', '.join(MODES)}; got '{self.mode}'")
        if self.plane not in PLANES:
            raise InputError(f"plane must be one of {', '.join(PLANES)}; got '{self.plane}'")
        if self.mode == "refined" and (int(self.k) != self.k or not 1 <= self.k <= 16):
            raise InputError(f"k must be an integer from 1 to 16; got {self.k}")
        if not math.isfinite(self.applied_strain):
            raise InputError(f"applied strain must be finite; got {self.applied_strain}")
        if self.linear_solver not in LINEAR_SOLVERS:
            names = ", ".join(LINEAR_SOLVERS)
            raise InputError(f"linear solver must be one of {names}; got '{self.linear_solver}'")

    @property
    def elements_per_pixel(self) -> int:
        """k of the mesh actually built: 1 in pixel mode."""
        return 1 if self.mode == "pixel" else int(self.k)

    def discretization(self) -> dict[str, Any]:
        """The ``discretization`` attribute of SPEC §4: {mode, k}."""
        return {"mode": self.mode, "k": self.elements_per_pixel}


def lame_parameters(youngs_modulus: np.ndarray, plane: str) -> tuple[np.ndarray, np.ndarray]:
    """Young's modulus per pixel (MPa) -> (λ, μ) in MPa, same shape; ν follows the phase.

    For plane stress λ is replaced by λ* = 2λμ/(λ + 2μ).
    """
    E = np.asarray(youngs_modulus, dtype=np.float64)
    nu = np.where(fiber_mask(E), FIBER.poisson_ratio, MATRIX.poisson_ratio)
    lam = E * nu / ((1.0 + nu) * (1.0 - 2.0 * nu))
    mu = E / (2.0 * (1.0 + nu))
    if plane == "stress":
        lam = 2.0 * lam * mu / (lam + 2.0 * mu)
    return lam, mu


def _as_single_image(youngs_modulus: np.ndarray) -> np.ndarray:
    """[32, 32], [1, 32, 32] or [1, 1, 32, 32] MPa -> float64 [32, 32], validated."""
    E = np.asarray(youngs_modulus, dtype=np.float64)
    if E.size != GRID * GRID or E.shape[-2:] != (GRID, GRID):
        raise InputError(f"E must be one {GRID}x{GRID} image; got shape {list(E.shape)}")
    E = E.reshape(GRID, GRID)
    if not np.all(np.isfinite(E)) or np.any(E <= 0.0):
        raise InputError("E must be finite and positive (MPa)")
    return E


def load_fe_stack() -> None:
    """Import the dolfinx wheel's bootstrap first: it orders MPI ahead of the compiled bindings."""
    import dolfinx_solver  # noqa: F401


class StrainSolver:
    """Pixel-averaged strain of 32x32 microstructures for one :class:`SolverConfig`.

    Build once, call :meth:`solve` many times. Runs on ``MPI.COMM_SELF``: parallel data
    generation gives every rank its own solver and its own samples.
    """

    # representative E of the two phases (fiber, matrix), the order of the θ blocks
    _phase_moduli = np.array([FIBER.youngs_modulus, MATRIX.youngs_modulus])

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
        self.n_cells_per_side = GRID * k
        self.mesh = dolfinx.mesh.create_unit_square(
            MPI.COMM_SELF,
            self.n_cells_per_side,
            self.n_cells_per_side,
            dolfinx.mesh.CellType.quadrilateral,
        )
        self.V = dolfinx.fem.functionspace(self.mesh, ("Lagrange", 1, (2,)))
        # Lamé parameters per MPa of E of the two phases: a pixel's stiffness is E times its phase's
        lam, mu = lame_parameters(self._phase_moduli, self.config.plane)
        unit_lame = np.stack([lam, mu], axis=1) / self._phase_moduli[:, None]  # [2, 2]
        self.ops = build_condensed_operators(self.V, k, unit_lame, self.config.applied_strain)

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
        self._b = self._K.createVecLeft()
        self._u = self._K.createVecRight()
        self._strain = self.ops.strain_map.createVecLeft()  # [2*3*1024]: as fiber, as matrix
        self._fiber = np.zeros(GRID * GRID, dtype=bool)  # phase of each pixel in the last solve
        self._ksp = self._make_ksp()
        self.setup_seconds = time.perf_counter() - t0
        self.last_solve_seconds = float("nan")
        # split of the last solve, for benchmarks: assembly, factor+solve, extraction (s)
        self.last_timings: dict[str, float] = {}

    def _make_ksp(self):
        from petsc4py import PETSc

        pc_type, factor_type = LINEAR_SOLVERS[self.config.linear_solver]
        prefix = f"microstrain_fe{next(_instance_counter)}_"  # room for command-line overrides
        ksp = PETSc.KSP().create(comm=PETSc.COMM_SELF)
        ksp.setOptionsPrefix(prefix)
        ksp.setType(PETSc.KSP.Type.PREONLY)
        pc = ksp.getPC()
        pc.setType(pc_type)
        pc.setFactorSolverType(factor_type)
        if factor_type == "petsc":
            pc.setFactorOrdering("nd")
        ksp.setOperators(self._K)
        ksp.setFromOptions()
        if factor_type == "mumps":
            pc.setFactorSetUpSolverType()  # creates the (not yet factored) MUMPS matrix
            factor = pc.getFactorMatrix()
            for icntl, value in MUMPS_ICNTL.items():
                factor.setMumpsIcntl(icntl, value)
            factor.setMumpsIcntl(7, mumps_ordering(self.config.elements_per_pixel))
        # The symbolic factorization happens on the first solve and is reused afterwards: the
        # nonzero pattern never changes, only the values (PETSc tracks this via the state).
        return ksp

    def mumps_factor(self):
        """The PETSc factor matrix of MUMPS (None for other linear solvers), for benchmarks.

        Before the first solve its controls can still be changed (``setMumpsIcntl``); after it,
        ``getMumpsRinfog(3)`` is the flop count of one numeric factorization.
        """
        if LINEAR_SOLVERS[self.config.linear_solver][1] != "mumps":
            return None
        return self._ksp.getPC().getFactorMatrix()

    # --- per sample ----------------------------------------------------------------------
    def _solve_free(self, youngs_modulus: np.ndarray) -> None:
        """Assemble, factor and solve for one image; leaves u_f in ``self._u``."""
        t0 = time.perf_counter()
        E = _as_single_image(youngs_modulus).ravel()  # [1024]
        self._fiber = fiber_mask(E)  # [1024] phase of each pixel: ν and the condensed pixel
        theta = self._theta.getArray()  # [2048] = [E·fiber; E·matrix]
        np.copyto(theta[: E.size], np.where(self._fiber, E, 0.0))
        np.copyto(theta[E.size :], np.where(self._fiber, 0.0, E))
        self.ops.stiffness_map.mult(self._theta, self._values_vec)
        self._K.stateIncrease()  # values changed in place: refactor numerically
        self.ops.load_map.mult(self._theta, self._b)
        t1 = time.perf_counter()
        self._ksp.solve(self._b, self._u)
        reason = self._ksp.getConvergedReason()
        if reason < 0:
            raise RuntimeError(f"linear solve failed (PETSc reason {reason})")
        self._t_assembly, self._t_factor = t1 - t0, time.perf_counter() - t1

    def solve(self, youngs_modulus: np.ndarray) -> np.ndarray:
        """Young's modulus [32, 32] (or [1, 32, 32]) in MPa -> strain float64 [3, 32, 32].

        Channels eps_xx, eps_yy, gamma_xy; image convention of SPEC §2 (row 0 = top).
        """
        t0 = time.perf_counter()
        self._solve_free(youngs_modulus)
        t1 = time.perf_counter()
        self.ops.strain_map.mult(self._u, self._strain)
        both = (self._strain.getArray() + self.ops.strain_offset).reshape(2, -1, GRID * GRID)
        strain = np.where(self._fiber, both[0], both[1]).reshape(STRAIN_SHAPE)  # [3, 32, 32]
        t2 = time.perf_counter()
        self.last_solve_seconds = t2 - t0
        self.last_timings = {
            "assembly": self._t_assembly,
            "factor_solve": self._t_factor,
            "extraction": t2 - t1,
        }
        return strain

    def solve_batch(self, youngs_modulus: np.ndarray) -> np.ndarray:
        """E maps [N, 1, 32, 32] (or [N, 32, 32]) in MPa -> strain float64 [N, 3, 32, 32]."""
        E = np.asarray(youngs_modulus, dtype=np.float64)
        if E.ndim not in (3, 4) or E.shape[-2:] != (GRID, GRID) or E.size % (GRID * GRID):
            raise InputError(f"E batch must be [N, 1, {GRID}, {GRID}]; got shape {list(E.shape)}")
        E = E.reshape(-1, GRID, GRID)
        return np.stack([self.solve(e) for e in E])

    def solve_fields(self, youngs_modulus: np.ndarray):
        """Solve one image and return its full-resolution fields, see :meth:`last_fields`."""
        self.solve(youngs_modulus)
        return self.last_fields()

    def last_fields(self):
        """Full-resolution fields of the last solve, for visualisation (``--xdmf``).

        Returns (u, strain): u a dolfinx Function in the Q1 vector space (displacement), strain a
        DG0 vector Function with the 3 components (eps_xx, eps_yy, gamma_xy) at each element
        centroid.
        """
        import dolfinx.fem

        from data_gen.assembly import centroid_strain_rows, unrolled_cell_dofs

        u = dolfinx.fem.Function(self.V, name="displacement")
        u.x.array[:] = self.ops.displacement(self._u.getArray(), self._fiber)
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

    def describe(self) -> dict[str, Any]:
        """Config plus mesh sizes, for logs and the convergence report."""
        return {
            **asdict(self.config),
            "elements_per_pixel": self.config.elements_per_pixel,
            "cells": self.n_cells_per_side**2,
            "unknowns": self.ops.n_free,
            "nonzeros": int(self.ops.indices.size),
        }


def _package_version() -> str | None:
    try:
        return metadata.version("microstrain")
    except metadata.PackageNotFoundError:
        return None
