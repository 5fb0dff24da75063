"""Batch data generation: sample microstructures, solve them, write the SPEC §4 file.

Serial or under MPI (``mpiexec -n P microstrain generate ...``): the samples are processed in
chunks of ``chunk`` consecutive indices. Each chunk is cut into P contiguous blocks, one per rank;
every rank draws its samples from their per-sample seeds and solves them with its own
:class:`~data_gen.solver.StrainSolver` on ``COMM_SELF``. Rank 0 gathers the blocks and appends the
chunk to the file (h5py is serial here: only rank 0 touches the file).

Rank 0 also does the writing, so it gets a smaller block: it measures how long a write takes
against a solve and moves that many samples to the other ranks, and it tells them their next
blocks *before* writing, so the write overlaps their solves. Since sample i depends on
(seed, i) alone, the split never changes the file: it is identical for every P and chunk size,
and an interrupted run resumes at the first missing chunk.

With a shard (``--shard i/n``, :mod:`data_gen.shards`) the same happens for the samples of that
shard only, under their indices in the whole run: the n shard files hold exactly the samples of
the unsharded file.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from data_gen.dataset import DatasetIdentity, DatasetWriter
from data_gen.microstructure import GeneratorConfig, sample_microstructures
from data_gen.shards import Shard, check_resumable, write_shard
from data_gen.solver import SolverConfig, StrainSolver
from microstrain.conventions import (
    ATTR_GENERATOR,
    DS_C_EFF,
    DS_E,
    DS_FIBER_FRACTION,
    DS_SEED,
    DS_SOLVE_SECONDS,
    DS_STRAIN,
)
from microstrain.dataset import fields_of, json_attr, load_case_attr, read_info
from microstrain.errors import InputError, MicrostrainError
from microstrain.fields import fiber_fraction, materials_attr
from microstrain.quantities import effective_stiffness

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
    family: str | None = None  # evaluation family (data_gen.families), recorded in ``generator``
    shard: Shard | None = None  # write only this shard of the run of ``n`` samples

    @property
    def samples(self) -> range:
        """The sample indices this command writes: all ``n``, or its shard's."""
        return self.shard.samples(self.n) if self.shard else range(self.n)

    def __post_init__(self) -> None:
        if self.n <= 0:
            raise InputError(f"number of samples must be positive; got {self.n}")
        if self.seed < 0:
            raise InputError(f"seed must be non-negative; got {self.seed}")
        if self.chunk <= 0:
            raise InputError(f"chunk size must be positive; got {self.chunk}")
        if not self.samples:
            raise InputError(f"--shard {self.shard} of a run of {self.n} samples holds no sample")
        if self.generator.grid != self.solver.grid:
            raise InputError(
                f"the sampler draws {self.generator.grid} x {self.generator.grid} images but the "
                f"solver takes {self.solver.grid} x {self.solver.grid}"
            )

    def generator_attr(self) -> dict[str, object]:
        """The ``generator`` attribute: every parameter, the seed, and the family if any."""
        attr = self.generator.to_json_dict(self.seed)
        return attr if self.family is None else {**attr, "family": self.family}

    def identity(self) -> DatasetIdentity:
        """The attributes that must match for a resume (SPEC §4 JSON attributes)."""
        solver = self.solver
        return DatasetIdentity(
            load_case=load_case_attr(solver.boundary, float(solver.applied_strain), solver.plane),
            materials=materials_attr(solver.fiber, solver.matrix),
            generator=self.generator_attr(),
            discretization=self.solver.discretization(),
        )


@dataclass(frozen=True)
class GenerateResult:
    path: Path
    n: int  # samples in the file (of the shard, when sharded)
    new_samples: int  # written by this run
    run_seconds: float  # wall time of this run (rank 0)
    wall_seconds: float  # T_data: all runs that wrote the file
    ranks: int


def adopt_older_generator(path: Path, config: GenerateConfig) -> None:
    """Let a file written before some generator parameters existed resume.

    Its ``generator`` attribute lacks their keys. When it reads back as the requested config
    (the missing parameters take their defaults, which are what it was drawn with) and seed,
    the attribute is rewritten in full, so the resume check of :class:`DatasetWriter` passes;
    anything else is left for that check to refuse.
    """
    import h5py

    if config.overwrite or not path.is_file() or not h5py.is_hdf5(path):
        return
    wanted = config.generator_attr()
    try:
        with h5py.File(path, "r") as f:
            have = json_attr(f.attrs.get(ATTR_GENERATOR))
        if not isinstance(have, dict) or set(have) >= set(wanted):
            return
        if have.get("seed") != config.seed or GeneratorConfig.from_json_dict(have) != (
            config.generator
        ):
            return
        with h5py.File(path, "r+") as f:
            f.attrs[ATTR_GENERATOR] = json.dumps(wanted, sort_keys=True)
    except (OSError, MicrostrainError, TypeError):
        return  # damaged or foreign: DatasetWriter.open says so


def world_communicator() -> Any:
    """MPI.COMM_WORLD (a size-1 communicator when not started by mpiexec)."""
    import dolfinx_solver  # noqa: F401 - loads the MPI library the bindings were built with
    from mpi4py import MPI

    return MPI.COMM_WORLD


def _solve_share(
    solver: StrainSolver, config: GenerateConfig, indices: range
) -> dict[str, np.ndarray]:
    """Sample and solve ``indices``: every field of the file for them, index order.

    Periodic: strain ``[n, 3, 3, 32, 32]`` and C_eff ``[n, 3, 3]``, computed from the solver's
    float64 fields before they are stored as float32.
    """
    sc = config.solver
    phases = {"fiber": sc.fiber, "matrix": sc.matrix}
    E, seeds = sample_microstructures(config.generator, config.seed, indices, **phases)
    strain = np.empty((len(indices), *sc.strain_shape), dtype=np.float32)
    c_eff = np.empty((len(indices), 3, 3))
    seconds = np.empty(len(indices), dtype=np.float64)
    for row, e in enumerate(E):
        solution = solver.solve(e[0])  # float64 [3, 32, 32] or [3, 3, 32, 32]
        strain[row] = solution
        seconds[row] = solver.last_solve_seconds
        if sc.boundary == "periodic":
            c_eff[row] = effective_stiffness(
                e[None], solution[None], sc.plane, sc.applied_strain, **phases
            )[0]
    fields = {
        DS_E: E,
        DS_STRAIN: strain,
        DS_FIBER_FRACTION: fiber_fraction(E, **phases),
        DS_SEED: seeds,
        DS_SOLVE_SECONDS: seconds,
    }
    if sc.boundary == "periodic":
        fields[DS_C_EFF] = c_eff
    return fields


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The blocks of one chunk, in rank order, as one chunk."""
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def split_chunk(count: int, ranks: int, rank0_offload: float = 0.0) -> list[int]:
    """Block sizes of a chunk of ``count`` samples over ``ranks`` ranks.

    ``rank0_offload`` is rank 0's extra work per chunk in samples (its write time over its time
    per solve); the blocks are sized so every rank finishes together.
    """
    if ranks == 1:
        return [count]
    fair = (count + max(rank0_offload, 0.0)) / ranks
    first = max(0, min(count, round(fair - rank0_offload)))
    rest, extra = divmod(count - first, ranks - 1)
    return [first] + [rest + (1 if r < extra else 0) for r in range(ranks - 1)]


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
            shard_attr = config.shard.attr(config.n) if config.shard else None
            if not config.overwrite:
                check_resumable(Path(config.output), shard_attr)
            adopt_older_generator(Path(config.output), config)
            writer = DatasetWriter.open(
                config.output,
                config.identity(),
                software,
                n_requested=len(config.samples),
                ranks=size,
                overwrite=config.overwrite,
                fields=fields_of(config.solver.boundary, config.solver.grid),
            )
            if shard_attr is not None:
                write_shard(writer.path, shard_attr)
        except MicrostrainError as exc:
            error = str(exc)
    _agree(comm, error)
    start = comm.bcast(writer.n_complete if writer else None, root=0)

    todo = config.samples[start:]  # sample indices still missing from the file
    solver = StrainSolver(config.solver) if todo else None
    bar = _progress_bar(len(config.samples), start, enabled=progress and rank == 0)
    chunks = [todo[c : c + config.chunk] for c in range(0, len(todo), config.chunk)]
    counts = split_chunk(len(chunks[0]), size) if chunks else []
    write_seconds, solve_per_sample = 0.0, 0.0  # rank 0's last measurements
    try:
        for j, chunk in enumerate(chunks):
            offset = sum(counts[:rank])
            mine = chunk[offset : offset + counts[rank]]
            part: dict[str, np.ndarray] | None = None
            error = None
            t0 = time.perf_counter()
            try:
                if len(mine):
                    assert solver is not None
                    part = _solve_share(solver, config, mine)
            except MicrostrainError as exc:
                error = f"samples {chunk.start}..{chunk.stop - 1}: {exc}"
            if len(mine):
                solve_per_sample = (time.perf_counter() - t0) / len(mine)
            gathered = comm.gather((part, error), root=0)
            decision = None
            if rank == 0:
                errors = [e for _, e in gathered if e]
                offload = write_seconds / solve_per_sample if solve_per_sample > 0 else 0.0
                following = (
                    split_chunk(len(chunks[j + 1]), size, offload) if j + 1 < len(chunks) else []
                )
                decision = (errors[0] if errors else None, following)
            error, counts = comm.bcast(decision, root=0)
            if error:
                raise MicrostrainError(error)
            if writer is not None:  # the other ranks are solving the next chunk meanwhile
                t1 = time.perf_counter()
                writer.append(_concat([p for p, _ in gathered if p]), t1 - t_start)
                write_seconds = time.perf_counter() - t1
                bar.update(len(chunk))
    finally:
        bar.close()

    run_seconds = time.perf_counter() - t_start
    wall = None
    if writer is not None:
        # a file that was already complete is left untouched (no empty run recorded)
        if todo or not read_info(writer.path).complete:
            writer.finish(run_seconds)
        wall = read_info(writer.path).wall_seconds
    comm.Barrier()  # the file is complete before any rank returns
    return GenerateResult(
        path=Path(config.output),
        n=len(config.samples),
        new_samples=len(todo),
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
