"""Per-sample cost of the FE solver, one process, one thread (issue 2 "Performance", issue 26).

    .venv/bin/python benchmarks/bench_solver.py                 # pixel, k = 2, 4, 8; both BCs
    .venv/bin/python benchmarks/bench_solver.py --ks 1,2,4 --error-samples 4  # + C_eff k=4 vs k=8
    .venv/bin/python benchmarks/bench_solver.py --compare       # + every linear solver (pixel, k=4)
    .venv/bin/python benchmarks/bench_solver.py --mumps --ks 2,4  # + MUMPS orderings and scaling
    .venv/bin/python benchmarks/bench_solver.py --repeats 30 --json results/bench_solver.json

Prints medians over the repetitions (the machine may be shared: medians, and CPU time beside wall
time, show how much of the wall time was waiting for a core). Columns: setup (mesh, maps,
symbolic factorization on the first solve), the unknowns of the condensed skeleton system, the
flops of one MUMPS factorization, then per sample: assembly (θ, P @ θ, R @ θ), factor+solve
(numeric Cholesky + triangular solves), extraction (S @ u, phase select), total wall and total
CPU time, and for a variant max |Δε|: how far its strain lies from the solver's default one
(they solve the same system, so this is round-off). A periodic row (SPEC §11) solves all three
load cases of a sample; its "/ uniaxial" column divides its total CPU and wall time by the
uniaxial row of the same k, measured in the same run on the same images. Nothing here is
asserted: timings are reported, not tested.

--error-samples N adds the discretization error of the periodic mode: N generated periodic
microstructures solved at k = 4 and k = 8, and the SPEC §11 measures of k = 4 against k = 8
(C_eff, engineering constants, the fields of the three cases).

The solver itself has one linear solver (MUMPS Cholesky); the other factorizations of --compare
are swapped into its PETSc KSP here, before the first solve (use_linear_solver).
"""

from __future__ import annotations

import os

# one core: MUMPS/BLAS must not spread over threads (set before PETSc/OpenBLAS load)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from data_gen.microstructure import GeneratorConfig, sample_microstructures  # noqa: E402
from data_gen.solver import (  # noqa: E402
    MUMPS_ICNTL,
    SolverConfig,
    StrainSolver,
    mumps_ordering,
)
from microstrain.conventions import BOUNDARIES, FIBER  # noqa: E402
from microstrain.hardware import cpu_model  # noqa: E402
from microstrain.measures import periodic_error_measures, stiffness_errors  # noqa: E402
from microstrain.quantities import effective_stiffness, engineering_constants  # noqa: E402

# --compare: name -> (PETSc PC type, factor package). The solver's own is MUMPS Cholesky, which won
# these measurements (docs/solver.md); the others are swapped in by use_linear_solver.
LINEAR_SOLVERS = {
    "mumps-cholesky": ("cholesky", "mumps"),
    "mumps-lu": ("lu", "mumps"),
    "petsc-cholesky": ("cholesky", "petsc"),
    "petsc-lu": ("lu", "petsc"),
    "superlu_dist-lu": ("lu", "superlu_dist"),
}
DEFAULT_LINEAR_SOLVER = "mumps-cholesky"
# MUMPS variants of --mumps: name -> ICNTL overrides of the solver's defaults
MUMPS_VARIANTS = {
    "AMD": {7: 0},
    "AMD, scaling": {7: 0, 8: 77},
    "METIS": {7: 5},
    "METIS, scaling": {7: 5, 8: 77},
    "QAMD": {7: 6},
    "PORD": {7: 4},
    "SCOTCH": {7: 3},
}
ORDERING_NAMES = {0: "AMD", 3: "SCOTCH", 4: "PORD", 5: "METIS", 6: "QAMD"}


def use_linear_solver(solver: StrainSolver, name: str) -> None:
    """Replace the factorization of a solver that has not solved yet by LINEAR_SOLVERS[name].

    MUMPS keeps the solver's controls (MUMPS_ICNTL and its ordering), PETSc's own factorizations
    use nested dissection.
    """
    pc_type, package = LINEAR_SOLVERS[name]
    pc = solver.ksp.getPC()
    pc.setType(pc_type)  # drops the MUMPS Cholesky factor the solver set up
    pc.setFactorSolverType(package)
    if package == "petsc":
        pc.setFactorOrdering("nd")
    if package == "mumps":
        pc.setFactorSetUpSolverType()
        factor = pc.getFactorMatrix()
        for icntl, value in MUMPS_ICNTL.items():
            factor.setMumpsIcntl(icntl, value)
        factor.setMumpsIcntl(7, mumps_ordering(solver.config.elements_per_pixel))


def mesh_sizes(solver: StrainSolver) -> dict[str, int]:
    """Cells of the mesh, unknowns and nonzeros of the condensed skeleton system."""
    return {
        "elements_per_pixel": solver.config.elements_per_pixel,
        "cells": solver.n_cells_per_side**2,
        "unknowns": solver.ops.n_free,
        "nonzeros": int(solver.ops.indices.size),
    }


def measure(
    config: SolverConfig,
    images: np.ndarray,
    repeats: int,
    linear_solver: str = DEFAULT_LINEAR_SOLVER,
    icntl: dict[int, int] | None = None,
) -> dict[str, float]:
    """Median timings (s) over ``repeats`` solves after one warm-up solve."""
    t0 = time.perf_counter()
    solver = StrainSolver(config)
    if linear_solver != DEFAULT_LINEAR_SOLVER:
        use_linear_solver(solver, linear_solver)
    mumps = LINEAR_SOLVERS[linear_solver][1] == "mumps"
    factor = solver.ksp.getPC().getFactorMatrix() if mumps else None
    if factor is not None:
        for key, value in (icntl or {}).items():
            factor.setMumpsIcntl(key, value)  # not factored yet: the controls still apply
    first = solver.solve(images[0, 0])  # symbolic factorization happens here, once
    setup = time.perf_counter() - t0
    rows: list[dict[str, float]] = []
    for i in range(repeats):
        c0 = time.process_time()
        solver.solve(images[(i + 1) % len(images), 0])
        cpu = time.process_time() - c0
        rows.append({**solver.last_timings, "total": solver.last_solve_seconds, "cpu": cpu})
    out = {key: float(np.median([r[key] for r in rows])) for key in rows[0]}
    out["setup"] = setup
    out["mflop"] = factor.getMumpsRinfog(3) / 1e6 if factor is not None else float("nan")
    # a variant must solve the same system: its largest strain difference from the default
    variant = linear_solver != DEFAULT_LINEAR_SOLVER or bool(icntl)
    out["max_strain_difference"] = (
        float(np.abs(first - StrainSolver(config).solve(images[0, 0])).max())
        if variant
        else float("nan")
    )
    out.update(mesh_sizes(solver))  # type: ignore[arg-type]
    out.update(asdict(config))  # type: ignore[arg-type]
    return out


def config_for(k: int, boundary: str = "uniaxial") -> SolverConfig:
    return (
        SolverConfig(mode="pixel", boundary=boundary)
        if k == 1
        else SolverConfig(mode="refined", k=k, boundary=boundary)
    )


def paired_ratio(k: int, images: np.ndarray, repeats: int) -> dict[str, float]:
    """Periodic / uniaxial cost at one k from interleaved solves of the same images.

    The two solvers alternate sample by sample, so both see the same load on a shared machine;
    returns the medians of the per-pair CPU and wall ratios and of each one's CPU ms.
    """
    solvers = [StrainSolver(config_for(k, b)) for b in ("uniaxial", "periodic")]
    for solver in solvers:
        solver.solve(images[0, 0])  # symbolic factorization
    cpu: list[list[float]] = [[], []]
    wall: list[list[float]] = [[], []]
    for i in range(repeats):
        for j, solver in enumerate(solvers):
            c0 = time.process_time()
            solver.solve(images[(i + 1) % len(images), 0])
            cpu[j].append(time.process_time() - c0)
            wall[j].append(solver.last_solve_seconds)
    c, w = np.array(cpu), np.array(wall)  # [2, repeats]
    return {
        "k": k,
        "uniaxial_cpu_ms": 1e3 * float(np.median(c[0])),
        "periodic_cpu_ms": 1e3 * float(np.median(c[1])),
        "cpu_ratio": float(np.median(c[1] / c[0])),
        "wall_ratio": float(np.median(w[1] / w[0])),
    }


def discretization_error(n_samples: int, seed: int, console: Console) -> dict:
    """SPEC §11 measures of periodic k = 4 against k = 8 on ``n_samples`` periodic images."""
    images, _ = sample_microstructures(GeneratorConfig(periodic=True), seed, range(n_samples))
    fine, coarse = (
        StrainSolver(SolverConfig(k=k, boundary="periodic")).solve_batch(images) for k in (8, 4)
    )  # [N, 3, 3, 32, 32] each
    plane, ubar = "stress", SolverConfig().applied_strain
    c_fine, c_coarse = (effective_stiffness(images, s, plane, ubar) for s in (fine, coarse))
    per_sample = stiffness_errors(c_coarse, c_fine)
    measures = periodic_error_measures(images, coarse, fine, plane, ubar)
    constants = engineering_constants(c_fine)
    table = Table(title="periodic k = 4 against k = 8 (plane stress, periodic geometry)")
    for col in ("sample", "fiber fraction", "E_1 MPa", "E_2 MPa", "G_12 MPa", "nu_12",
                "C_eff error", "E_1", "E_2", "G_12", "nu_12"):  # fmt: skip
        table.add_column(col, justify="right")
    fractions = (images == FIBER.youngs_modulus).mean(axis=(1, 2, 3))
    for i in range(n_samples):
        table.add_row(
            str(i), f"{fractions[i]:.3f}",
            *(f"{constants[c][i]:.0f}" for c in ("E_1", "E_2", "G_12")),
            f"{constants['nu_12'][i]:.4f}",
            *(f"{100 * per_sample[f'{m}_error'][i]:.3f} %"
              for m in ("C_eff", "E_1", "E_2", "G_12", "nu_12")),
        )  # fmt: skip
    console.print(table)
    fields = ", ".join(
        f"{case}: strain {100 * m['strain_relative_l2']:.2f} %, "
        f"energy {100 * m['energy_norm_error']:.2f} %"
        for case, m in measures["cases"].items()
    )
    console.print(f"fields of k = 4 against k = 8 (§9 measures, mean over samples): {fields}")
    return {"per_sample": {k: v.tolist() for k, v in per_sample.items()}, "measures": measures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=20, help="solves per configuration")
    parser.add_argument("--ks", default="1,2,4,8", help="refinements to time (1 = pixel mode)")
    parser.add_argument("--compare", action="store_true", help="also time every linear solver")
    parser.add_argument("--mumps", action="store_true", help="also time MUMPS orderings/scaling")
    parser.add_argument(
        "--boundaries", default=",".join(BOUNDARIES), help="uniaxial and/or periodic rows"
    )
    parser.add_argument(
        "--error-samples", type=int, default=0, help="periodic k = 4 vs k = 8 on N samples"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    boundaries = args.boundaries.split(",")

    images, _ = sample_microstructures(GeneratorConfig(), seed=123, indices=range(8))
    default_mumps = ", ".join(f"ICNTL({k})={v}" for k, v in MUMPS_ICNTL.items())
    ks = [int(v) for v in args.ks.split(",")]
    # (config, linear solver, label, ICNTL overrides)
    cases: list[tuple[SolverConfig, str, str, dict[int, int]]] = []
    for k in ks:
        for boundary in boundaries:
            config = config_for(k, boundary)
            default = ORDERING_NAMES[mumps_ordering(config.elements_per_pixel)]
            label = f"mumps-cholesky ({default}, default)"
            cases.append((config, DEFAULT_LINEAR_SOLVER, label, {}))
    if args.mumps:
        for k in ks:
            config = config_for(k)
            cases += [
                (config, DEFAULT_LINEAR_SOLVER, f"mumps-cholesky ({n})", v)
                for n, v in MUMPS_VARIANTS.items()
            ]
    if args.compare:
        for name in LINEAR_SOLVERS:
            if name == DEFAULT_LINEAR_SOLVER:
                continue
            cases += [
                (config_for(1), name, name, {}),
                (config_for(4), name, name, {}),
            ]
    table = Table(title=f"FE solver, ms per sample (median of {args.repeats}; 1 thread)")
    for col in ("mode", "k", "boundary", "linear solver", "unknowns", "setup s", "Mflop",
                "assembly", "factor+solve", "extraction", "total wall", "total CPU",
                "/ uniaxial CPU (wall)", "max |Δε|"):  # fmt: skip
        table.add_column(col, justify="right")
    results = []
    uniaxial: dict[int, dict[str, float]] = {}  # default rows of this run, per k
    console = Console(width=190)
    for config, linear_solver, label, icntl in cases:
        k = config.elements_per_pixel
        # k = 8 costs ~5x k = 4: fewer repetitions keep the run short
        repeats = max(3, args.repeats // 4) if k >= 8 else args.repeats
        with console.status(f"{config.mode} k={k} {label}"):
            r = measure(config, images, repeats, linear_solver, icntl)
        default_row = linear_solver == DEFAULT_LINEAR_SOLVER and not icntl
        if default_row and config.boundary == "uniaxial":
            uniaxial[k] = r
        ratio = "–"
        if default_row and config.boundary != "uniaxial" and k in uniaxial:
            r["cpu_ratio"] = r["cpu"] / uniaxial[k]["cpu"]
            r["wall_ratio"] = r["total"] / uniaxial[k]["total"]
            ratio = f"{r['cpu_ratio']:.2f} ({r['wall_ratio']:.2f})"
        results.append({**r, "label": label, "linear_solver": linear_solver, "icntl": icntl})
        table.add_row(
            config.mode, str(k), config.boundary, label, str(r["unknowns"]), f"{r['setup']:.2f}",
            f"{r['mflop']:.0f}",
            *(f"{1e3 * r[key]:.2f}" for key in
              ("assembly", "factor_solve", "extraction", "total", "cpu")),
            ratio,
            "–" if np.isnan(r["max_strain_difference"]) else f"{r['max_strain_difference']:.0e}",
        )  # fmt: skip
    console.print(table)
    console.print(f"MUMPS defaults: {default_mumps} (no scaling), ordering: PORD k<=2, AMD k>=4")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    console.print(
        f"machine: {cpu_model()}, {os.cpu_count()} cores, "
        f"load average {load:.1f} (wall > CPU means the process waited for a core)"
    )
    report: dict = {"load_average": load, "results": results}
    if set(BOUNDARIES) <= set(boundaries):
        pairs = Table(title=f"periodic (3 cases) / uniaxial, interleaved, median of {args.repeats}")
        for col in ("k", "uniaxial CPU ms", "periodic CPU ms", "CPU ratio", "wall ratio"):
            pairs.add_column(col, justify="right")
        report["paired"] = []
        for k in ks:
            with console.status(f"interleaved k={k}"):
                pr = paired_ratio(k, images, args.repeats)
            report["paired"].append(pr)
            pairs.add_row(
                str(k), f"{pr['uniaxial_cpu_ms']:.2f}", f"{pr['periodic_cpu_ms']:.2f}",
                f"{pr['cpu_ratio']:.2f}", f"{pr['wall_ratio']:.2f}",
            )  # fmt: skip
        console.print(pairs)
    if args.error_samples:
        with console.status("periodic k = 4 and k = 8 solves"):
            report["discretization_error"] = discretization_error(args.error_samples, 7, console)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=float))


if __name__ == "__main__":
    main()
