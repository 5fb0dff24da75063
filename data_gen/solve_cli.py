"""Commands ``solve`` (FE strain of user microstructures) and ``convergence`` (error vs k).

Module-level imports stay light (typer, numpy, microstrain); dolfinx is imported in the bodies.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer

from microstrain.conventions import (
    ATTR_SOFTWARE,
    BOUNDARIES,
    DEFAULT_APPLIED_STRAIN,
    DEFAULT_BOUNDARY,
    DEFAULT_K,
    DEFAULT_PLANE,
    DS_C_EFF,
    FIBER,
    MATRIX,
    MODES,
    PLANES,
    STRESS_CHANNELS,
)
from microstrain.errors import InputError, MicrostrainError

if TYPE_CHECKING:
    from data_gen.solver import SolverConfig

OUTPUT_SUFFIXES = (".npy", ".h5", ".hdf5")
BOUNDARY_HELP = (
    "uniaxial: the pull along x of SPEC §1 (rollers, free top); periodic: the image is one period "
    "of the composite (SPEC §11), solved for the three unit macro strains xx, yy, xy, with C_eff."
)
FIBER_HELP = "Fiber phase as E,nu (MPa, Poisson's ratio), e.g. 72000,0.22 [default: 85000,0.22]."
MATRIX_HELP = "Matrix phase as E,nu (MPa, Poisson's ratio), e.g. 3500,0.35 [default: 3000,0.4]."


def phases(fiber: str | None, matrix: str | None) -> dict[str, Any]:
    """``--fiber`` / ``--matrix`` as the SolverConfig keywords (the lecture's pair by default)."""
    from microstrain.fields import check_phases, parse_material

    pair = {
        "fiber": FIBER if fiber is None else parse_material(fiber, "fiber"),
        "matrix": MATRIX if matrix is None else parse_material(matrix, "matrix"),
    }
    check_phases(pair["fiber"], pair["matrix"])
    return pair


def check_boundary_option(boundary: str) -> str:
    if boundary not in BOUNDARIES:
        raise InputError(f"--boundary must be one of {', '.join(BOUNDARIES)}; got '{boundary}'")
    return boundary


def solve(
    input: Annotated[
        Path,
        typer.Argument(
            help="Microstructures (.npy or .h5): E maps in MPa or 0/1 fiber masks, shaped "
            "[n,n], [N,n,n] or [N,1,n,n]: n = 32 (uniaxial), a multiple of 32 (periodic)."
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "-o",
            "--output",
            help="Strain file: .npy (strain only: float32 [N,3,32,32], periodic [N,3,3,n,n]) or "
            ".h5 (a dataset file that inspect and evaluate read: E, strain, the SPEC §9 "
            "quantities; periodic also C_eff and E_1, E_2, nu_12, G_12).",
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
        float,
        typer.Option(
            help="Applied strain ū: the displacement of the right edge (uniaxial), the size of "
            "each unit macro strain (periodic); 0 < |ū| ≤ 1."
        ),
    ] = DEFAULT_APPLIED_STRAIN,
    boundary: Annotated[str, typer.Option(help=BOUNDARY_HELP)] = DEFAULT_BOUNDARY,
    fiber: Annotated[str | None, typer.Option(help=FIBER_HELP)] = None,
    matrix: Annotated[str | None, typer.Option(help=MATRIX_HELP)] = None,
    png: Annotated[
        Path | None,
        typer.Option(help="Also draw the first samples' fields (strain, von Mises) to this PNG."),
    ] = None,
    xdmf: Annotated[
        Path | None,
        typer.Option(
            help="Also write full-resolution FE fields for ParaView to DIR/fields.xdmf, one time "
            "step per sample: displacement and strain; periodic: per case (case_xx_..., "
            "case_yy_..., case_xy_...) total and fluctuating displacement, total strain, stress."
        ),
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar (N > 1).")] = True,
) -> None:
    """Solve the FE problem of SPEC §1 (or the periodic one of SPEC §11) for user
    microstructures and write their strain fields.

    The .h5 output is a complete dataset file (SPEC §4, §11) that `inspect` and `evaluate` read:
    E, strain, fiber_fraction, solve_seconds, the SPEC §9 quantities for the plane and ū of the
    solve (periodic: per load case, with C_eff and its engineering constants), and the load
    case, materials and discretization as attributes.
    """
    from rich.progress import MofNCompleteColumn, Progress, TimeRemainingColumn

    from data_gen.solver import SolverConfig, StrainSolver
    from microstrain.fields import load_microstructures, validate_applied_strain

    if output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise MicrostrainError(f"unsupported output format '{output.suffix}': use .npy or .h5")
    for target in (output, png):  # fail before the solves, not after
        parent = target.parent if target is not None and str(target.parent) else Path(".")
        if target is not None and not parent.is_dir():
            raise MicrostrainError(f"output directory does not exist: {parent}")
    if png is not None and png.suffix.lower() != ".png":
        raise MicrostrainError(f"--png must name a .png file; got {png}")
    if mode == "pixel" and k not in (None, 1):
        raise InputError(f"--k {k} contradicts --mode pixel (pixel mode is k = 1)")
    periodic = check_boundary_option(boundary) == "periodic"
    pair = phases(fiber, matrix)
    E = load_microstructures(input, larger=periodic, **pair)  # float32 [N, 1, n, n] MPa
    config = SolverConfig(
        mode=mode,
        k=DEFAULT_K if k is None else k,
        plane=plane,
        applied_strain=validate_applied_strain(applied_strain),
        boundary=boundary,
        grid=E.shape[-1],
        **pair,
    )
    solver = StrainSolver(config)
    columns = (*Progress.get_default_columns()[:-1], MofNCompleteColumn(), TimeRemainingColumn())
    fields = []  # N x float64 [3, n, n] or [3, 3, n, n]
    seconds = []
    with contextlib.ExitStack() as stack:
        writer = None
        if xdmf is not None:
            from data_gen.xdmf_output import FieldWriter

            writer = stack.enter_context(FieldWriter(xdmf, solver))
        bar = stack.enter_context(
            Progress(*columns, disable=not progress or len(E) < 2, transient=True)
        )
        for e in bar.track(E, description="solving"):
            fields.append(solver.solve(e[0]))
            seconds.append(solver.last_solve_seconds)
            if writer is not None:
                writer.write_last(e[0])
    solution = np.stack(fields)
    write_solution(output, E, solution, config, solver.software_versions(), np.array(seconds))
    if png is not None:
        from data_gen.inspect import draw_solution

        draw_solution(
            png, E, solution, config.plane, applied_strain, config.boundary, input.name,
            fiber=config.fiber, matrix=config.matrix,
        )  # fmt: skip
    typer.echo(
        f"wrote strain of {len(E)} sample(s) to {output} "
        f"({config.mode} k={config.elements_per_pixel}, {boundary}, plane {plane}, "
        f"ū = {applied_strain:g})"
        + (f"; fields in {xdmf}" if xdmf is not None else "")
        + (f"; picture {png}" if png is not None else "")
    )


def write_solution(
    output: Path,
    youngs_modulus: np.ndarray,
    solution: np.ndarray,
    config: SolverConfig,
    software: dict[str, str],
    seconds: np.ndarray,
) -> None:
    """``.npy``: the strain alone; ``.h5``: a complete dataset file with the §9 quantities.

    ``solution`` float64 ``[N, 3, n, n]`` (uniaxial) or ``[N, 3, 3, n, n]`` (periodic); C_eff is
    computed from it before the fields are stored as float32, the other quantities from the
    stored float32 strain (so a reader recomputing them gets the same numbers).
    """
    from microstrain.dataset import write_dataset
    from microstrain.outputs import QUANTITY_UNITS, save_strain
    from microstrain.quantities import (
        effective_stiffness,
        engineering_constants,
        periodic_quantities,
        quantities,
    )

    strain = solution.astype(np.float32)
    if output.suffix.lower() == ".npy":
        save_strain(output, strain)
        return
    pair = {"fiber": config.fiber, "matrix": config.matrix}
    plane, ubar = config.plane, config.applied_strain
    units = {**QUANTITY_UNITS, "E_1": "MPa", "E_2": "MPa", "G_12": "MPa", "nu_12": "1"}
    c_eff = None
    if config.boundary == "periodic":
        c_eff = effective_stiffness(youngs_modulus, solution, plane, ubar, **pair)
        derived = periodic_quantities(youngs_modulus, strain, plane, ubar, **pair)
        derived.pop(DS_C_EFF)
        derived.update(engineering_constants(c_eff))
    else:
        derived = quantities(youngs_modulus, strain, plane, ubar, **pair)
    extra: dict[str, tuple[np.ndarray, dict[str, Any]]] = {
        name: (values, {"unit": units[name]}) for name, values in derived.items()
    }
    extra["stress"][1]["channels"] = list(STRESS_CHANNELS)
    write_dataset(
        output,
        youngs_modulus,
        strain,
        applied_strain=ubar,
        plane=plane,
        generator={"source": "solve"},
        discretization=config.discretization(),
        seed=np.full(len(strain), -1, dtype=np.int64),  # not drawn by the sampler
        solve_seconds=seconds,
        wall_seconds=float(np.sum(seconds)),
        c_eff=c_eff,
        extra=extra,
        attrs={
            ATTR_SOFTWARE: json.dumps(software),
            "plane": plane,  # what the quantities were computed for
            "applied_strain": float(ubar),
        },
        fiber=config.fiber,
        matrix=config.matrix,
    )


def convergence(
    n: Annotated[int, typer.Option("-n", "--n-samples", help="Number of samples.")] = 3,
    seed: Annotated[int, typer.Option(help="Seed of the generated microstructures.")] = 0,
    ks: Annotated[
        str, typer.Option(help="Comma-separated k values; the largest is the reference.")
    ] = "1,2,4,8",
    plane: Annotated[str, typer.Option(help=f"Plane {' | '.join(PLANES)}.")] = DEFAULT_PLANE,
    boundary: Annotated[
        str,
        typer.Option(
            help="uniaxial (SPEC §1) or periodic (SPEC §11: periodic microstructures, the three "
            "load cases, and the C_eff and engineering-constant errors beside the fields')."
        ),
    ] = DEFAULT_BOUNDARY,
    fiber: Annotated[str | None, typer.Option(help=FIBER_HELP)] = None,
    matrix: Annotated[str | None, typer.Option(help=MATRIX_HELP)] = None,
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Directory for convergence.json and .png.")
    ] = Path("results/convergence"),
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Discretization error of the strain and of every SPEC §9 measure vs k (elements per pixel
    side), against the largest k: stress, energy norm, E_x, ν_xy, peak von Mises; periodic: the
    fields of the three load cases, C_eff and E_1, E_2, ν_12, G_12. The samples are made of the
    --fiber and --matrix phases (the lecture's pair by default)."""
    from data_gen.convergence import ConvergenceConfig, timed_convergence
    from data_gen.solver import SolverConfig

    try:
        k_values = tuple(int(v) for v in ks.split(",") if v.strip())
    except ValueError:
        raise InputError(f"--ks must be comma-separated integers; got '{ks}'") from None
    SolverConfig(plane=plane)  # validates the plane before any solve
    config = ConvergenceConfig(
        n_samples=n,
        seed=seed,
        ks=k_values,
        plane=plane,
        boundary=check_boundary_option(boundary),
        **phases(fiber, matrix),
    )
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
