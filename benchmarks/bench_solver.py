"""Per-sample cost of the FE solver, one process, one thread (issue 2 "Performance").

    .venv/bin/python benchmarks/bench_solver.py                 # pixel, k = 2, 4, 8
    .venv/bin/python benchmarks/bench_solver.py --compare       # + every linear solver (pixel, k=4)
    .venv/bin/python benchmarks/bench_solver.py --mumps --ks 2,4  # + MUMPS orderings and scaling
    .venv/bin/python benchmarks/bench_solver.py --repeats 30 --json results/bench_solver.json

Prints medians over the repetitions (the machine may be shared: medians, and CPU time beside wall
time, show how much of the wall time was waiting for a core). Columns: setup (mesh, maps,
symbolic factorization on the first solve), the unknowns of the condensed skeleton system, the
flops of one MUMPS factorization, then per sample: assembly (θ, P @ θ, R @ θ), factor+solve
(numeric Cholesky + triangular solves), extraction (S @ u, phase select), total wall and total
CPU time. Nothing here is asserted: timings are reported, not tested.
"""

from __future__ import annotations

import os

# one core: MUMPS/BLAS must not spread over threads (set before PETSc/OpenBLAS load)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from data_gen.microstructure import GeneratorConfig, sample_microstructures  # noqa: E402
from data_gen.solver import (  # noqa: E402
    LINEAR_SOLVERS,
    MUMPS_ICNTL,
    SolverConfig,
    StrainSolver,
    mumps_ordering,
)

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


def measure(
    config: SolverConfig, images: np.ndarray, repeats: int, icntl: dict[int, int] | None = None
) -> dict[str, float]:
    """Median timings (s) over ``repeats`` solves after one warm-up solve."""
    t0 = time.perf_counter()
    solver = StrainSolver(config)
    factor = solver.mumps_factor()
    for key, value in (icntl or {}).items():
        factor.setMumpsIcntl(key, value)  # not factored yet: the controls still apply
    solver.solve(images[0, 0])  # symbolic factorization happens here, once
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
    out.update(solver.describe())  # type: ignore[arg-type]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=20, help="solves per configuration")
    parser.add_argument("--ks", default="1,2,4,8", help="refinements to time (1 = pixel mode)")
    parser.add_argument("--compare", action="store_true", help="also time every linear solver")
    parser.add_argument("--mumps", action="store_true", help="also time MUMPS orderings/scaling")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()

    images, _ = sample_microstructures(GeneratorConfig(), seed=123, indices=range(8))
    default_mumps = ", ".join(f"ICNTL({k})={v}" for k, v in MUMPS_ICNTL.items())
    ks = [int(v) for v in args.ks.split(",")]
    # (config, label of the linear solver, ICNTL overrides)
    cases: list[tuple[SolverConfig, str, dict[int, int]]] = []
    for k in ks:
        config = SolverConfig(mode="pixel") if k == 1 else SolverConfig(mode="refined", k=k)
        default = ORDERING_NAMES[mumps_ordering(config.elements_per_pixel)]
        cases.append((config, f"mumps-cholesky ({default}, default)", {}))
    if args.mumps:
        for k in ks:
            config = SolverConfig(mode="pixel") if k == 1 else SolverConfig(mode="refined", k=k)
            cases += [(config, f"mumps-cholesky ({n})", v) for n, v in MUMPS_VARIANTS.items()]
    if args.compare:
        for name in LINEAR_SOLVERS:
            if name == "mumps-cholesky":
                continue
            cases += [
                (SolverConfig(mode="pixel", linear_solver=name), name, {}),
                (SolverConfig(mode="refined", k=4, linear_solver=name), name, {}),
            ]
    table = Table(title=f"FE solver, ms per sample (median of {args.repeats}; 1 thread)")
    for col in ("mode", "k", "linear solver", "unknowns", "setup s", "Mflop", "assembly",
                "factor+solve", "extraction", "total wall", "total CPU"):  # fmt: skip
        table.add_column(col, justify="right")
    results = []
    console = Console(width=150)
    for config, label, icntl in cases:
        k = config.elements_per_pixel
        # k = 8 costs ~5x k = 4: fewer repetitions keep the run short
        repeats = max(3, args.repeats // 4) if k >= 8 else args.repeats
        with console.status(f"{config.mode} k={k} {label}"):
            r = measure(config, images, repeats, icntl)
        results.append({**r, "label": label, "icntl": icntl})
        table.add_row(
            config.mode, str(k), label, str(r["unknowns"]), f"{r['setup']:.2f}",
            f"{r['mflop']:.0f}",
            *(f"{1e3 * r[key]:.2f}" for key in
              ("assembly", "factor_solve", "extraction", "total", "cpu")),
        )  # fmt: skip
    console.print(table)
    console.print(f"MUMPS defaults: {default_mumps} (no scaling), ordering: PORD k<=2, AMD k>=4")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    console.print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"load average {load:.1f} (wall > CPU means the process waited for a core)"
    )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"load_average": load, "results": results}, indent=2))


if __name__ == "__main__":
    main()
