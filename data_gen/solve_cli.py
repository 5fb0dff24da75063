"""Commands ``solve`` (FE strain of user microstructures) and ``convergence`` (error vs k).

Module-level imports stay light (typer, numpy, microstrain); dolfinx is imported in the bodies.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from microstrain.conventions import (
    ATTR_DISCRETIZATION,
    ATTR_LOAD_CASE,
    ATTR_MATERIALS,
    ATTR_SOFTWARE,
    DEFAULT_APPLIED_STRAIN,
    DEFAULT_K,
    DEFAULT_PLANE,
    LOAD_CASE,
    MATERIALS,
    MODES,
    PLANES,
)
from microstrain.errors import InputError, MicrostrainError

OUTPUT_SUFFIXES = (".npy", ".h5", ".hdf5")


def solve(
    input: Annotated[
        Path,
        typer.Argument(
            help="Microstructures (.npy or .h5): E maps in MPa or 0/1 fiber masks, "
            "shaped [32,32], [N,32,32] or [N,1,32,32]."
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "-o",
            "--output",
            help="Strain file: .npy (strain only, float32 [N,3,32,32]) or .h5 (strain, E and "
            "the SPEC §9 stress, von_mises, E_x, nu_xy, max_von_mises).",
        ),
    ],
    mode: Annotated[
        str, typer.Option(help=f"Discretization: {' | '.join(MODES)} (pixel = refined k=1).")
    ] = "refined",
    k: Annotated[
        int | None,
        typer.Option(help=f"Elements per pixel side in refined mode [default: {DEFAULT_K}]."),
    ] = None,
    plane: Annotated[str, typer.Option(help=f"Plane {' | '.join(PLANES)}.")] = DEFAULT_PLANE,
    applied_strain: Annotated[
        float, typer.Option(help="Applied strain ū (displacement of the right edge).")
    ] = DEFAULT_APPLIED_STRAIN,
    xdmf: Annotated[
        Path | None,
        typer.Option(
            help="Also write full-resolution displacement and strain fields for ParaView "
            "to DIR/fields.xdmf (one time step per sample)."
        ),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar (N > 1).")] = True,
) -> None:
    """Solve the FE problem of SPEC §1 for user microstructures and write their strain fields.

    The .h5 output also holds E, the SPEC §9 quantities for the plane and ū of the solve (stress,
    von_mises, E_x, nu_xy, max_von_mises), and the load case, materials and discretization as
    attributes.
    """
    from rich.progress import MofNCompleteColumn, Progress, TimeRemainingColumn

    from data_gen.solver import SolverConfig, StrainSolver
    from microstrain.fields import load_microstructures
    from microstrain.outputs import save_strain

    if output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise MicrostrainError(f"unsupported output format '{output.suffix}': use .npy or .h5")
    parent = output.parent if str(output.parent) else Path(".")
    if not parent.is_dir():  # fail before the solves, not after
        raise MicrostrainError(f"output directory does not exist: {parent}")
    if mode == "pixel" and k not in (None, 1):
        raise InputError(f"--k {k} contradicts --mode pixel (pixel mode is k = 1)")
    config = SolverConfig(
        mode=mode,
        k=DEFAULT_K if k is None else k,
        plane=plane,
        applied_strain=applied_strain,
    )
    E = load_microstructures(input)  # float32 [N, 1, 32, 32] MPa
    solver = StrainSolver(config)
    columns = (*Progress.get_default_columns()[:-1], MofNCompleteColumn(), TimeRemainingColumn())
    strain = []  # N x float64 [3, 32, 32]
    with contextlib.ExitStack() as stack:
        writer = None
        if xdmf is not None:
            from data_gen.xdmf_output import FieldWriter

            writer = stack.enter_context(FieldWriter(xdmf, solver))
        bar = stack.enter_context(
            Progress(*columns, disable=not progress or len(E) < 2, transient=True)
        )
        for e in bar.track(E, description="solving"):
            strain.append(solver.solve(e[0]))
            if writer is not None:
                writer.write_last(e[0])
    attrs = {
        ATTR_LOAD_CASE: json.dumps(
            {"name": LOAD_CASE, "applied_strain": applied_strain, "plane": plane}
        ),
        ATTR_MATERIALS: json.dumps(MATERIALS),
        ATTR_DISCRETIZATION: json.dumps(config.discretization()),
        ATTR_SOFTWARE: json.dumps(solver.software_versions()),
    }
    save_strain(output, np.stack(strain), E, attrs, plane=plane, applied_strain=applied_strain)
    typer.echo(
        f"wrote strain of {len(E)} sample(s) to {output} "
        f"({config.mode} k={config.elements_per_pixel}, plane {plane}, ū = {applied_strain:g})"
        + (f"; fields in {xdmf}" if xdmf is not None else "")
    )


def convergence(
    n: Annotated[int, typer.Option("-n", "--n-samples", help="Number of samples.")] = 3,
    seed: Annotated[int, typer.Option(help="Seed of the generated microstructures.")] = 0,
    ks: Annotated[
        str, typer.Option(help="Comma-separated k values; the largest is the reference.")
    ] = "1,2,4,8",
    plane: Annotated[str, typer.Option(help=f"Plane {' | '.join(PLANES)}.")] = DEFAULT_PLANE,
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Directory for convergence.json and .png.")
    ] = Path("results/convergence"),
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Discretization error of the strain and of every SPEC §9 measure vs k (elements per pixel
    side), against the largest k: stress, energy norm, E_x, ν_xy, peak von Mises."""
    from data_gen.convergence import ConvergenceConfig, timed_convergence
    from data_gen.solver import SolverConfig

    try:
        k_values = tuple(int(v) for v in ks.split(",") if v.strip())
    except ValueError:
        raise InputError(f"--ks must be comma-separated integers; got '{ks}'") from None
    SolverConfig(plane=plane)  # validates the plane before any solve
    config = ConvergenceConfig(n_samples=n, seed=seed, ks=k_values, plane=plane)
    if output.exists() and not output.is_dir():
        raise MicrostrainError(f"output {output} exists and is not a directory")
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MicrostrainError(f"cannot create output directory {output}: {exc}") from None
    _, json_path, png_path, wall = timed_convergence(config, output, progress=progress)
    typer.echo(f"wrote {json_path} and {png_path} ({wall:.1f} s)")


def register_solve_commands(app: typer.Typer) -> None:
    app.command("solve")(solve)
    app.command("convergence")(convergence)
