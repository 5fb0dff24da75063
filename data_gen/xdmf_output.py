"""Full-resolution fields of ``microstrain solve --xdmf DIR`` for ParaView.

One XDMF time series per command: ``DIR/fields.xdmf`` (+ ``fields.h5``) holds the FE mesh once
and, for sample i at "time" i, these named functions:

- uniaxial (SPEC §1): the nodal ``displacement`` (Q1 vector) and, per element,
  ``youngs_modulus`` (MPa) and the centroid strains ``eps_xx``, ``eps_yy``, ``gamma_xy``.
- periodic (SPEC §11): ``youngs_modulus`` and, for each unit load case c in xx, yy, xy
  (macro strain Ē = ū e_c), functions named ``case_<c>_<quantity>``:

  - ``case_<c>_displacement``: the total displacement u = Ē·x + ũ (Q1 vector), what
    "Warp By Vector" deforms the cell with;
  - ``case_<c>_fluctuation``: its periodic part ũ alone (Q1 vector, zero at the origin), which
    shows what the fibers do without the affine stretch that dominates u;
  - per element, the **total** strain ``case_<c>_eps_xx``, ``_eps_yy``, ``_gamma_xy`` = Ē +
    ε(ũ) at the centroid (its mean over the image is Ē: ũ is periodic, so ε(ũ) averages to zero);
  - per element, the stress of the element's phase ``case_<c>_sigma_xx``, ``_sigma_yy``,
    ``_tau_xy`` and ``case_<c>_von_mises`` (MPa; plane strain includes σ_zz); its mean over the
    image is ū times column c of C_eff.

The pixel-averaged strain of the ``-o`` file is the mean of these element strains over each
pixel's k x k elements. In ParaView the time slider steps through the samples.

The files are written into a hidden directory inside DIR and moved into place only when every
sample is written, so an interrupted run leaves no ``fields.xdmf`` that looks complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from data_gen.solver import StrainSolver
from microstrain.conventions import PERIODIC_CASES, STRAIN_CHANNELS, STRESS_CHANNELS
from microstrain.errors import MicrostrainError

XDMF_NAME = "fields.xdmf"
PERIODIC_VECTORS = ("displacement", "fluctuation")  # Q1 vector functions of each periodic case
PERIODIC_SCALARS = (*STRAIN_CHANNELS, *STRESS_CHANNELS, "von_mises")  # DG0, per case


def case_name(case: str, quantity: str) -> str:
    """Name of one periodic case's function in the file, e.g. ``case_xy_gamma_xy``."""
    return f"case_{case}_{quantity}"


def element_stress(law: Any, youngs_modulus: np.ndarray, strain: np.ndarray) -> np.ndarray:
    """Stress and von Mises of each element's phase, float64 ``[4, n_cells]`` MPa.

    law: :class:`microstrain.quantities.PlaneLaw` of the solve; youngs_modulus ``[n_cells]`` MPa;
    strain ``[n_cells, 3]`` (eps_xx, eps_yy, gamma_xy). Rows sigma_xx, sigma_yy, tau_xy, von
    Mises: the pixel kernels of :mod:`microstrain.quantities`, kept in float64 per element.
    """
    from microstrain.quantities import pixel_moduli, strain_invariants, von_mises_squared

    kappa, mu, rho = pixel_moduli(youngs_modulus[None], law)  # [1, n_cells] MPa
    tr, dev, gamma = strain_invariants(strain.T[None])  # [1, n_cells] each
    a, b, g = kappa * tr, mu * dev, mu * gamma
    return np.concatenate([a + b, a - b, g, np.sqrt(von_mises_squared(a, b, g, rho))])


class FieldWriter:
    """Context manager appending the fields of the solver's last solve as one time step."""

    def __init__(self, directory: str | os.PathLike[str], solver: StrainSolver) -> None:
        self.directory = Path(directory)
        self.solver = solver
        self.periodic = solver.config.boundary == "periodic"
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._tmp = Path(tempfile.mkdtemp(prefix=".partial-xdmf-", dir=self.directory))
        except OSError as exc:
            raise MicrostrainError(f"cannot write XDMF output to {self.directory}: {exc}") from None
        self._file: Any = None
        self._step = 0

    def __enter__(self) -> FieldWriter:
        import dolfinx.fem
        import dolfinx.io
        from mpi4py import MPI

        from microstrain.quantities import PlaneLaw

        mesh = self.solver.mesh
        self._file = dolfinx.io.XDMFFile(MPI.COMM_SELF, str(self._tmp / XDMF_NAME), "w")
        self._file.write_mesh(mesh)
        Q = dolfinx.fem.functionspace(mesh, ("DG", 0))
        self._cell_dof = Q.dofmap.list[:, 0]  # [n_cells] DG0 dof of each cell
        if self.periodic:
            config = self.solver.config
            self._law = PlaneLaw.of(config.plane, config.fiber, config.matrix)
            scalars = [case_name(c, q) for c in PERIODIC_CASES for q in PERIODIC_SCALARS]
            vectors = [case_name(c, q) for c in PERIODIC_CASES for q in PERIODIC_VECTORS]
        else:  # the uniaxial displacement is the Function last_fields returns
            scalars, vectors = list(STRAIN_CHANNELS), []
        self._scalars = {
            name: dolfinx.fem.Function(Q, name=name) for name in ["youngs_modulus", *scalars]
        }
        self._vectors = {name: dolfinx.fem.Function(self.solver.V, name=name) for name in vectors}
        return self

    def _set_cells(self, name: str, values: np.ndarray) -> None:
        """Cell values [n_cells] (dolfinx cell order) into the DG0 function ``name``."""
        self._scalars[name].x.array[self._cell_dof] = values

    def write_last(self, youngs_modulus: np.ndarray) -> None:
        """Write the last solve of the solver (for the image ``youngs_modulus`` [n, n], MPa)."""
        assert self._file is not None, "use FieldWriter as a context manager"
        cell_modulus = np.asarray(youngs_modulus, dtype=np.float64).ravel()[
            self.solver.ops.cell_pixel
        ]  # [n_cells] MPa
        self._set_cells("youngs_modulus", cell_modulus)
        t = float(self._step)
        if self.periodic:
            for c, case in enumerate(PERIODIC_CASES):
                u, strain = self.solver.last_fields(c)
                total = self._vectors[case_name(case, "displacement")]
                total.x.array[:] = u.x.array
                fluctuation = self._vectors[case_name(case, "fluctuation")]
                fluctuation.x.array[:] = u.x.array - self.solver.ops.offsets[c]  # u − Ē·x
                cell_strain = _cell_vectors(strain)  # [n_cells, 3]
                stress = element_stress(self._law, cell_modulus, cell_strain)  # [4, n_cells]
                for q, values in zip(PERIODIC_SCALARS, (*cell_strain.T, *stress), strict=True):
                    self._set_cells(case_name(case, q), values)
            for function in self._vectors.values():
                self._file.write_function(function, t)
        else:
            u, strain = self.solver.last_fields()
            for name, values in zip(STRAIN_CHANNELS, _cell_vectors(strain).T, strict=True):
                self._set_cells(name, values)
            self._file.write_function(u, t)
        for function in self._scalars.values():
            self._file.write_function(function, t)
        self._step += 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._file is not None:
            self._file.close()
        try:
            if exc_type is None:  # the XDMF file last: it is what makes the data look complete
                for path in sorted(self._tmp.iterdir(), key=lambda p: p.name == XDMF_NAME):
                    os.replace(path, self.directory / path.name)
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)


def _cell_vectors(function: Any) -> np.ndarray:
    """A DG0 vector Function with 3 components -> its values per cell, [n_cells, 3] cell order."""
    blocks = function.x.array.reshape(-1, len(STRAIN_CHANNELS))  # [n_cells, 3], DG0 dof order
    return blocks[function.function_space.dofmap.list[:, 0]]
