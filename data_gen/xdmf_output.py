"""Full-resolution fields of ``microstrain solve --xdmf DIR`` for ParaView.

One XDMF time series per command: ``DIR/fields.xdmf`` (+ ``fields.h5``) holds the FE mesh once and,
for sample i at "time" i, the nodal displacement (Q1 vector) and, per element, Young's modulus
(MPa) and the centroid strains eps_xx, eps_yy, gamma_xy. In ParaView the time slider steps through
the samples; "Warp By Vector" on ``displacement`` shows the deformed specimen.

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
from microstrain.conventions import STRAIN_CHANNELS
from microstrain.errors import MicrostrainError

XDMF_NAME = "fields.xdmf"


class FieldWriter:
    """Context manager appending the fields of the solver's last solve as one time step."""

    def __init__(self, directory: str | os.PathLike[str], solver: StrainSolver) -> None:
        self.directory = Path(directory)
        self.solver = solver
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

        mesh = self.solver.mesh
        self._file = dolfinx.io.XDMFFile(MPI.COMM_SELF, str(self._tmp / XDMF_NAME), "w")
        self._file.write_mesh(mesh)
        Q = dolfinx.fem.functionspace(mesh, ("DG", 0))
        self._cell_dof = Q.dofmap.list[:, 0]  # [n_cells] DG0 dof of each cell
        self._scalars = {
            name: dolfinx.fem.Function(Q, name=name)
            for name in ("youngs_modulus", *STRAIN_CHANNELS)
        }
        return self

    def write_last(self, youngs_modulus: np.ndarray) -> None:
        """Write the last solve of the solver (for the image ``youngs_modulus`` [32, 32], MPa)."""
        assert self._file is not None, "use FieldWriter as a context manager"
        u, strain = self.solver.last_fields()
        cell_pixel = self.solver.ops.cell_pixel
        self._scalars["youngs_modulus"].x.array[self._cell_dof] = np.asarray(
            youngs_modulus, dtype=np.float64
        ).ravel()[cell_pixel]
        blocks = strain.x.array.reshape(-1, len(STRAIN_CHANNELS))  # [n_cells, 3], DG0 order
        cell_strain = blocks[strain.function_space.dofmap.list[:, 0]]  # [n_cells, 3], cell order
        for c, name in enumerate(STRAIN_CHANNELS):
            self._scalars[name].x.array[self._cell_dof] = cell_strain[:, c]
        t = float(self._step)
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
            if exc_type is None:
                for path in self._tmp.iterdir():
                    os.replace(path, self.directory / path.name)
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)
