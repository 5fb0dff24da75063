"""Commands of data_gen: generate, inspect (here) and solve, convergence (data_gen.solve_cli).

Module-level imports stay light (typer, microstrain): dolfinx, mpi4py, h5py and matplotlib are
imported inside the command bodies.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from data_gen.solve_cli import register_solve_commands
from microstrain.conventions import (
    DEFAULT_APPLIED_STRAIN,
    DEFAULT_K,
    DEFAULT_MODE,
    DEFAULT_PLANE,
    MODES,
    PLANES,
)
from microstrain.errors import MicrostrainError

_GEN = "Microstructure generator"
GENERATE_EPILOG = (
    "Re-running the same command on an interrupted file resumes it and gives the file an "
    "uninterrupted run gives; a different command on an existing file is refused unless "
    "--overwrite. Under `mpiexec -n P microstrain generate ...` the samples are split over P "
    "ranks and the file is identical to the serial one."
)
INSPECT_EPILOG = (
    "Reports N, the complete flag, mode/k, load case, fiber fraction range, per-channel strain "
    "ranges, the domain mean of eps_xx against ū, solve time per sample and T_data. A partial "
    "(interrupted) file is refused unless --allow-incomplete."
)
_FE = "Finite-element solve"


def generate(
    n: Annotated[int, typer.Option("-n", "--n-samples", help="Number of samples (N).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Dataset file (.h5) to write.")],
    seed: Annotated[
        int, typer.Option(help="Dataset seed; sample i depends on (seed, i) only.")
    ] = 0,
    fiber_fraction_min: Annotated[
        float, typer.Option(help="Lowest target fiber fraction.", rich_help_panel=_GEN)
    ] = 0.2,
    fiber_fraction_max: Annotated[
        float, typer.Option(help="Highest target fiber fraction.", rich_help_panel=_GEN)
    ] = 0.5,
    radius_min: Annotated[
        float,
        typer.Option(help="Smallest fiber radius (fraction of the side).", rich_help_panel=_GEN),
    ] = 0.05,
    radius_max: Annotated[
        float,
        typer.Option(help="Largest fiber radius (fraction of the side).", rich_help_panel=_GEN),
    ] = 0.12,
    min_gap: Annotated[
        float,
        typer.Option(
            help="Minimum gap between fibers (fraction of the side).", rich_help_panel=_GEN
        ),
    ] = 0.01,
    max_attempts: Annotated[
        int,
        typer.Option(
            help="Failed placements in a row before a sample stops short of its target.",
            rich_help_panel=_GEN,
        ),
    ] = 2000,
    mode: Annotated[
        str,
        typer.Option(
            help=f"Discretization: {' | '.join(MODES)} (pixel = refined k=1).", rich_help_panel=_FE
        ),
    ] = DEFAULT_MODE,
    k: Annotated[
        int, typer.Option(help="Elements per pixel side in refined mode.", rich_help_panel=_FE)
    ] = DEFAULT_K,
    plane: Annotated[
        str, typer.Option(help=f"Plane {' | '.join(PLANES)}.", rich_help_panel=_FE)
    ] = DEFAULT_PLANE,
    applied_strain: Annotated[
        float,
        typer.Option(
            help="Applied strain ū (displacement of the right edge).", rich_help_panel=_FE
        ),
    ] = DEFAULT_APPLIED_STRAIN,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing file instead of resuming it.")
    ] = False,
    chunk: Annotated[
        int, typer.Option(help="Samples per write (a kill loses at most this many).")
    ] = 64,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Generate a dataset of random fiber microstructures and their FE strain fields (HDF5)."""
    from data_gen.generate import GenerateConfig, world_communicator
    from data_gen.generate import generate as run_generate
    from data_gen.microstructure import GeneratorConfig
    from data_gen.solver import SolverConfig

    comm = None
    try:
        config = GenerateConfig(
            n=n,
            output=output,
            seed=seed,
            generator=GeneratorConfig(
                fiber_fraction_min=fiber_fraction_min,
                fiber_fraction_max=fiber_fraction_max,
                radius_min=radius_min,
                radius_max=radius_max,
                min_gap=min_gap,
                max_attempts=max_attempts,
            ),
            solver=SolverConfig(mode=mode, k=k, plane=plane, applied_strain=applied_strain),
            overwrite=overwrite,
            chunk=chunk,
        )
        comm = world_communicator()
        result = run_generate(config, progress=progress, comm=comm)
    except MicrostrainError:
        # every rank raises the same error: let rank 0 alone print it
        if comm is not None and comm.Get_rank() != 0:
            sys.exit(1)
        raise
    if comm.Get_rank() != 0:
        return
    if result.new_samples == 0:
        typer.echo(f"{output} is already complete ({result.n} samples); nothing to do")
        return
    ms = 1e3 * result.run_seconds / result.new_samples
    typer.echo(
        f"wrote {result.new_samples} samples to {output} (N = {result.n}, "
        f"{config.solver.mode} k={config.solver.elements_per_pixel}, {result.ranks} rank(s)) "
        f"in {result.run_seconds:.1f} s = {ms:.1f} ms/sample; T_data = {result.wall_seconds:.1f} s"
    )


def inspect(
    path: Annotated[Path, typer.Argument(help="Dataset file (.h5) written by generate.")],
    png: Annotated[
        Path | None, typer.Option("--png", help="Also write a PNG grid of samples here.")
    ] = None,
    n_show: Annotated[int, typer.Option(help="Samples shown in the PNG grid.")] = 4,
    allow_incomplete: Annotated[
        bool,
        typer.Option(
            "--allow-incomplete", help="Report on a partial (interrupted) file, do not refuse it."
        ),
    ] = False,
) -> None:
    """Statistics of a dataset file and a PNG grid of samples (E and the strain channels)."""
    from data_gen.inspect import inspect_dataset

    inspect_dataset(path, png=png, n_show=n_show, allow_incomplete=allow_incomplete)


def register(app: typer.Typer) -> None:
    app.command("generate", epilog=GENERATE_EPILOG)(generate)
    app.command("inspect", epilog=INSPECT_EPILOG)(inspect)
    register_solve_commands(app)
