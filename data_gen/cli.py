"""Commands of data_gen: generate, inspect (here) and solve, convergence (data_gen.solve_cli).

Module-level imports stay light (typer, microstrain): dolfinx, mpi4py, h5py and matplotlib are
imported inside the command bodies.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer

from data_gen.solve_cli import (
    BOUNDARY_HELP,
    FIBER_HELP,
    MATRIX_HELP,
    check_boundary_option,
    phases,
    register_solve_commands,
)
from microstrain.conventions import (
    DEFAULT_APPLIED_STRAIN,
    DEFAULT_BOUNDARY,
    DEFAULT_K,
    DEFAULT_MODE,
    DEFAULT_PLANE,
    MODES,
    PLANES,
)
from microstrain.errors import InputError, MicrostrainError

_GEN = "Microstructure generator"
# kept in step with data_gen.families.FAMILIES (a test checks): importing it here would load numpy
FAMILY_NAMES = (
    "sparse",
    "dense",
    "small-fibers",
    "large-fibers",
    "ellipses",
    "clustered",
    "edge-cut",
    "polygons",
)
GENERATE_EPILOG = (
    "Re-running the same command on an interrupted file resumes it and gives the file an "
    "uninterrupted run gives; a different command on an existing file is refused unless "
    "--overwrite. Under `mpiexec -n P microstrain generate ...` the samples are split over P "
    "ranks and the file is identical to the serial one. `--shard I/K` writes part I of K of the "
    "run: the K part files hold the serial file's samples, in order of I."
)
INSPECT_EPILOG = (
    "Reports N, the complete flag, mode/k, load case, fiber fraction range, per-channel strain "
    "ranges, the domain mean of eps_xx against ū, solve time per sample and T_data. A partial "
    "(interrupted) file is refused unless --allow-incomplete."
)
_FE = "Finite-element solve"


def _opt(help_text: str, *names: str) -> Any:
    """A generator option: ``None`` unless given, so it overrides the preset only then."""
    return typer.Option(*names, help=help_text, rich_help_panel=_GEN)


def generate(
    n: Annotated[int, typer.Option("-n", "--n-samples", help="Number of samples (N).")],
    output: Annotated[
        Path,
        typer.Option(
            "-o", "--output", help="Dataset file (.h5) to write; a directory for --family all."
        ),
    ],
    seed: Annotated[
        int | None,
        typer.Option(help="Dataset seed; sample i depends on (seed, i) only.  [default: 0]"),
    ] = None,
    preset: Annotated[
        str,
        typer.Option(
            help="Named generator to start from: default | mixture (broad training "
            "distribution) | a family's name; the options below override its parameters "
            "(defaults shown: the default preset's).",
            rich_help_panel=_GEN,
        ),
    ] = "default",
    family: Annotated[
        str | None,
        typer.Option(
            help=f"Held-out evaluation family ({' | '.join(FAMILY_NAMES)}), with its own "
            "generator and seed; 'all' writes every family to OUTPUT/<family>.h5.",
            rich_help_panel=_GEN,
        ),
    ] = None,
    fiber_fraction_min: Annotated[
        float | None, _opt("Lowest target fiber fraction (default: 0.2).")
    ] = None,
    fiber_fraction_max: Annotated[
        float | None, _opt("Highest target fiber fraction (default: 0.5).")
    ] = None,
    radius_min: Annotated[
        float | None,
        _opt(
            "Smallest fiber radius, fraction of the side (default: 0.05). Non-circular "
            "fibers: radius of the circle of equal area."
        ),
    ] = None,
    radius_max: Annotated[float | None, _opt("Largest fiber radius (default: 0.12).")] = None,
    min_gap: Annotated[
        float | None, _opt("Minimum gap between fibers, fraction of the side (default: 0.01).")
    ] = None,
    max_attempts: Annotated[
        int | None,
        _opt(
            "Failed placements in a row before a sample stops short of its target (default: 2000)."
        ),
    ] = None,
    max_fibers: Annotated[
        int | None, _opt("Fibers per sample at most; 0 = no limit (default: 0).")
    ] = None,
    shapes: Annotated[
        str | None,
        _opt(
            "Fiber shapes, comma-separated, drawn uniformly: circle, ellipse, polygon "
            "(default: circle)."
        ),
    ] = None,
    shape_choice: Annotated[
        str | None, _opt("Draw a shape per 'fiber' or one per 'sample' (default: fiber).")
    ] = None,
    aspect_min: Annotated[
        float | None, _opt("Smallest ellipse aspect ratio a/b (default: 1.5).")
    ] = None,
    aspect_max: Annotated[
        float | None, _opt("Largest ellipse aspect ratio a/b (default: 3).")
    ] = None,
    orientation_min: Annotated[
        float | None, _opt("Smallest orientation, degrees from x (default: 0).")
    ] = None,
    orientation_max: Annotated[
        float | None, _opt("Largest orientation, degrees from x (default: 180).")
    ] = None,
    sides_min: Annotated[int | None, _opt("Fewest polygon sides (default: 3).")] = None,
    sides_max: Annotated[int | None, _opt("Most polygon sides (default: 6).")] = None,
    radius_per_sample: Annotated[
        bool | None,
        _opt(
            "Each sample draws its own sub-range of the radius range (default: no).",
            "--radius-per-sample/--no-radius-per-sample",
        ),
    ] = None,
    cluster_probability: Annotated[
        float | None, _opt("Probability that a sample is clustered (default: 0).")
    ] = None,
    clusters_min: Annotated[
        int | None, _opt("Fewest clusters of a clustered sample (default: 2).")
    ] = None,
    clusters_max: Annotated[
        int | None, _opt("Most clusters of a clustered sample (default: 4).")
    ] = None,
    cluster_spread: Annotated[
        float | None,
        _opt("Standard deviation of fiber centres about their cluster (default: 0.08)."),
    ] = None,
    edges: Annotated[
        str | None,
        _opt(
            "Fibers and the square's edges: free (may be cut), avoid (keep min-gap from "
            "them), cut (every fiber crosses an edge) (default: free)."
        ),
    ] = None,
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
            help="Applied strain ū: the displacement of the right edge (uniaxial), the size of "
            "each unit macro strain (periodic); 0 < |ū| ≤ 1.",
            rich_help_panel=_FE,
        ),
    ] = DEFAULT_APPLIED_STRAIN,
    boundary: Annotated[
        str, typer.Option(help=BOUNDARY_HELP, rich_help_panel=_FE)
    ] = DEFAULT_BOUNDARY,
    periodic_geometry: Annotated[
        bool | None,
        typer.Option(
            "--periodic-geometry/--no-periodic-geometry",
            help="Draw fibers on the torus (one cut by an edge continues on the opposite edge). "
            "[default: on for --boundary periodic, off for uniaxial]",
            rich_help_panel=_GEN,
        ),
    ] = None,
    grid: Annotated[
        int,
        typer.Option(
            help="Pixels per side of each sample: 32, or a multiple of 32 for larger periodic "
            "RVEs (--boundary periodic), whose fibers keep their size in pixels.",
            rich_help_panel=_GEN,
        ),
    ] = 32,
    fiber: Annotated[str | None, typer.Option(help=FIBER_HELP, rich_help_panel=_FE)] = None,
    matrix: Annotated[str | None, typer.Option(help=MATRIX_HELP, rich_help_panel=_FE)] = None,
    shard: Annotated[
        str | None,
        typer.Option(
            help="Write only part I of K of the run: its samples [I*N/K, (I+1)*N/K) of the "
            "-n N, bit for bit as the whole run writes them (independent jobs write the K parts).",
            metavar="I/K",
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing file instead of resuming it.")
    ] = False,
    chunk: Annotated[
        int, typer.Option(help="Samples per write (a kill loses at most this many).")
    ] = 64,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Generate a dataset of random fiber microstructures and their FE strain fields (HDF5)."""
    from data_gen.families import configure, family_outputs
    from data_gen.generate import GenerateConfig, world_communicator
    from data_gen.generate import generate as run_generate
    from data_gen.shards import parse_shard
    from data_gen.solver import SolverConfig
    from microstrain.fields import validate_applied_strain

    overrides = {
        "fiber_fraction_min": fiber_fraction_min,
        "fiber_fraction_max": fiber_fraction_max,
        "radius_min": radius_min,
        "radius_max": radius_max,
        "min_gap": min_gap,
        "max_attempts": max_attempts,
        "max_fibers": max_fibers,
        "shapes": tuple(s.strip() for s in shapes.split(",")) if shapes is not None else None,
        "shape_choice": shape_choice,
        "aspect_min": aspect_min,
        "aspect_max": aspect_max,
        "orientation_min": orientation_min,
        "orientation_max": orientation_max,
        "sides_min": sides_min,
        "sides_max": sides_max,
        "radius_per_sample": radius_per_sample,
        "cluster_probability": cluster_probability,
        "clusters_min": clusters_min,
        "clusters_max": clusters_max,
        "cluster_spread": cluster_spread,
        "edges": edges,
    }
    comm = None
    try:
        check_boundary_option(boundary)
        torus = boundary == "periodic" if periodic_geometry is None else periodic_geometry
        solver = SolverConfig(
            mode=mode,
            k=k,
            plane=plane,
            applied_strain=validate_applied_strain(applied_strain),
            boundary=boundary,
            grid=grid,
            **phases(fiber, matrix),
        )
        common: dict[str, Any] = {"n": n, "solver": solver, "overwrite": overwrite, "chunk": chunk}
        common["shard"] = parse_shard(shard) if shard is not None else None
        if family is None:
            generator = configure(preset, **overrides, periodic=torus, grid=grid)
            configs = [GenerateConfig(output=output, seed=seed or 0, generator=generator, **common)]
        else:
            given = [f"--{k.replace('_', '-')}" for k, v in overrides.items() if v is not None]
            given += ["--seed"] * (seed is not None) + ["--preset"] * (preset != "default")
            if given:
                raise InputError(
                    f"--family fixes the generator and the seed; drop {', '.join(given)} (or use "
                    "--preset FAMILY to start from a family's parameters)"
                )
            configs = [
                GenerateConfig(
                    output=path,
                    seed=fam.seed,
                    generator=replace(fam.generator, periodic=torus, grid=grid),
                    family=fam.name,
                    **common,
                )
                for fam, path in family_outputs(family, output)
            ]
        comm = world_communicator()
        results = [run_generate(config, progress=progress, comm=comm) for config in configs]
    except MicrostrainError:
        # every rank raises the same error: let rank 0 alone print it
        if comm is not None and comm.Get_rank() != 0:
            sys.exit(1)
        raise
    if comm.Get_rank() != 0:
        return
    for config, result in zip(configs, results, strict=True):
        out = config.output
        if result.new_samples == 0:
            typer.echo(f"{out} is already complete ({result.n} samples); nothing to do")
            continue
        ms = 1e3 * result.run_seconds / result.new_samples
        part = f"N = {result.n}"
        if config.shard is not None:
            span = config.samples
            part = f"shard {config.shard}: samples {span.start}..{span.stop - 1} of N = {config.n}"
        typer.echo(
            f"wrote {result.new_samples} samples to {out} ({part}, "
            f"{config.solver.mode} k={config.solver.elements_per_pixel}, {boundary}, "
            f"{result.ranks} rank(s)) "
            f"in {result.run_seconds:.1f} s = {ms:.1f} ms/sample; "
            f"T_data = {result.wall_seconds:.1f} s"
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
