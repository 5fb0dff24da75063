"""Batch data generation: sample microstructures, solve them, write the SPEC §4 file.

Serial or under MPI (``mpiexec -n P microstrain generate ...``): the samples are processed in
chunks of ``chunk`` consecutive indices; inside a chunk rank r takes indices r, r + P, r + 2P, ...
(round-robin, so every rank gets the same mix of cheap and costly samples), draws them from their
per-sample seeds and solves them with its own :class:`~data_gen.solver.StrainSolver` on
``COMM_SELF``. Rank 0 gathers the chunk, puts it back in index order and appends it to the file
(h5py is serial here: only rank 0 touches the file). Since sample i depends on (seed, i) alone,
the file is identical for every P and every chunk size, and an interrupted run resumes at the
first missing chunk.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from data_gen.dataset import DatasetIdentity, DatasetWriter, read_info
from data_gen.microstructure import GeneratorConfig, sample_microstructures
from data_gen.solver import SolverConfig, StrainSolver
from microstrain.conventions import (
    DS_E,
    DS_FIBER_FRACTION,
    DS_SEED,
    DS_SOLVE_SECONDS,
    DS_STRAIN,
    LOAD_CASE,
    MATERIALS,
)
from microstrain.errors import InputError, MicrostrainError
from microstrain.fields import fiber_fraction

DEFAULT_CHUNK = 64  # samples per gather + write: a kill loses at most this many


@dataclass(frozen=True)
class GenerateConfig:
    """One ``generate`` command: ``n`` samples of ``generator`` and ``seed``, solved."""

    n: int
    output: Path
    seed: int = 0
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    solver: SolverConfig = field(default_factory=SolverConfig)
    overwrite: bool = False
    chunk: int = DEFAULT_CHUNK

    def __post_init__(self) -> None:
        if self.n <= 0:
            raise InputError(f"number of samples must be positive; got {self.n}")
        if self.seed < 0:
            raise InputError(f"seed must be non-negative; got {self.seed}")
        if self.chunk <= 0:
            raise InputError(f"chunk size must be positive; got {self.chunk}")

    def identity(self) -> DatasetIdentity:
        """The attributes that must match for a resume (SPEC §4 JSON attributes)."""
        return DatasetIdentity(
            load_case={
                "name": LOAD_CASE,
                "applied_strain": float(self.solver.applied_strain),
                "plane": self.solver.plane,
            },
            materials=MATERIALS,
            generator=self.generator.to_json_dict(self.seed),
            discretization=self.solver.discretization(),
        )


@dataclass(frozen=True)
class GenerateResult:
    path: Path
    n: int  # samples in the file
    new_samples: int  # written by this run
    run_seconds: float  # wall time of this run (rank 0)
    wall_seconds: float  # T_data: all runs that wrote the file
    ranks: int


def world_communicator() -> Any:
    """MPI.COMM_WORLD (a size-1 communicator when not started by mpiexec)."""
    import dolfinx_solver  # noqa: F401 - loads the MPI library the bindings were built with
    from mpi4py import MPI

    return MPI.COMM_WORLD


def _solve_share(
    solver: StrainSolver, config: GenerateConfig, indices: range
) -> dict[str, np.ndarray]:
    """Sample and solve ``indices``: every field of the file for them, index order."""
    E, seeds = sample_microstructures(config.generator, config.seed, indices)  # [n, 1, 32, 32]
    strain = np.empty((len(indices), 3, *E.shape[-2:]), dtype=np.float32)  # [n, 3, 32, 32]
    seconds = np.empty(len(indices), dtype=np.float64)
    for row, e in enumerate(E):
        strain[row] = solver.solve(e[0])
        seconds[row] = solver.last_solve_seconds
    return {
        DS_E: E,
        DS_STRAIN: strain,
        DS_FIBER_FRACTION: fiber_fraction(E),
        DS_SEED: seeds,
        DS_SOLVE_SECONDS: seconds,
    }


def _interleave(parts: list[dict[str, np.ndarray]], count: int) -> dict[str, np.ndarray]:
    """Undo the round-robin split: part r holds rows r, r + P, ... of a chunk of ``count``."""
    size = len(parts)
    out: dict[str, np.ndarray] = {}
    for name, first in parts[0].items():
        merged = np.empty((count, *first.shape[1:]), dtype=first.dtype)
        for r, part in enumerate(parts):
            merged[r::size] = part[name]
        out[name] = merged
    return out


def _agree(comm: Any, error: str | None) -> None:
    """Collective: if any rank reports an error, every rank raises the first one."""
    errors = [e for e in comm.allgather(error) if e]
    if errors:
        raise MicrostrainError(errors[0])


def generate(config: GenerateConfig, progress: bool = True, comm: Any = None) -> GenerateResult:
    """Write (or resume) the dataset of ``config``; collective over ``comm`` (default: world).

    Raises :class:`MicrostrainError` on every rank for user errors (output, refused resume).
    """
    t_start = time.perf_counter()
    comm = comm if comm is not None else world_communicator()
    rank, size = comm.Get_rank(), comm.Get_size()
    # On every rank: importing petsc4py initializes PETSc, a collective call on COMM_WORLD.
    software = StrainSolver.software_versions()

    writer: DatasetWriter | None = None
    error: str | None = None
    if rank == 0:
        try:
            writer = DatasetWriter.open(
                config.output,
                config.identity(),
                software,
                n_requested=config.n,
                ranks=size,
                overwrite=config.overwrite,
            )
        except MicrostrainError as exc:
            error = str(exc)
    _agree(comm, error)
    start = comm.bcast(writer.n_complete if writer else None, root=0)

    solver = StrainSolver(config.solver) if start < config.n else None
    bar = _progress_bar(config.n, start, enabled=progress and rank == 0)
    try:
        for chunk_start in range(start, config.n, config.chunk):
            chunk = range(chunk_start, min(chunk_start + config.chunk, config.n))
            part: dict[str, np.ndarray] | None = None
            error = None
            try:
                assert solver is not None
                part = _solve_share(solver, config, chunk[rank::size])
            except MicrostrainError as exc:
                error = f"sample {chunk.start}..{chunk.stop - 1}: {exc}"
            _agree(comm, error)
            parts = comm.gather(part, root=0)
            if writer is not None:
                writer.append(_interleave(parts, len(chunk)), time.perf_counter() - t_start)
                bar.update(len(chunk))
    finally:
        bar.close()

    run_seconds = time.perf_counter() - t_start
    wall = None
    if writer is not None:
        # a file that was already complete is left untouched (no empty run recorded)
        if start < config.n or not read_info(writer.path).complete:
            writer.finish(run_seconds)
        wall = read_info(writer.path).wall_seconds
    comm.Barrier()  # the file is complete before any rank returns
    return GenerateResult(
        path=Path(config.output),
        n=config.n,
        new_samples=config.n - start,
        run_seconds=run_seconds,
        wall_seconds=float(wall) if wall is not None else float("nan"),
        ranks=size,
    )


def _progress_bar(total: int, initial: int, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        unit="sample",
        desc="generate",
        disable=not enabled,
        dynamic_ncols=True,
    )
