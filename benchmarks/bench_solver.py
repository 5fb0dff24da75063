"""Per-sample cost of the FE solver, one process, one thread (issue 2 "Performance").

    .venv/bin/python benchmarks/bench_solver.py                 # pixel, k = 2, 4, 8
    .venv/bin/python benchmarks/bench_solver.py --compare       # + every linear solver (pixel, k=4)
    .venv/bin/python benchmarks/bench_solver.py --repeats 30 --json results/bench_solver.json

Prints medians over the repetitions (the machine may be shared: medians, and CPU time beside wall
time, show how much of the wall time was waiting for a core). Columns: setup (mesh, maps,
symbolic factorization on the first solve), then per sample: assembly (Lamé vector, P @ θ,
R @ θ), factor+solve (numeric Cholesky + triangular solves), extraction (S @ u), total wall and
total CPU time. Nothing here is asserted: timings are reported, not tested.
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
from data_gen.solver import LINEAR_SOLVERS, SolverConfig, StrainSolver  # noqa: E402


def measure(config: SolverConfig, images: np.ndarray, repeats: int) -> dict[str, float]:
    """Median timings (s) over ``repeats`` solves after one warm-up solve."""
    t0 = time.perf_counter()
    solver = StrainSolver(config)
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
    out.update(solver.describe())  # type: ignore[arg-type]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=20, help="solves per configuration")
    parser.add_argument("--ks", default="1,2,4,8", help="refinements to time (1 = pixel mode)")
    parser.add_argument("--compare", action="store_true", help="also time every linear solver")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()

    images, _ = sample_microstructures(GeneratorConfig(), seed=123, indices=range(8))
    cases: list[SolverConfig] = []
    for k in (int(v) for v in args.ks.split(",")):
        cases.append(SolverConfig(mode="pixel") if k == 1 else SolverConfig(mode="refined", k=k))
    if args.compare:
        for name in LINEAR_SOLVERS:
            if name == "mumps-cholesky":
                continue
            cases += [
                SolverConfig(mode="pixel", linear_solver=name),
                SolverConfig(mode="refined", k=4, linear_solver=name),
            ]
    table = Table(title=f"FE solver, ms per sample (median of {args.repeats}; 1 thread)")
    for col in ("mode", "k", "linear solver", "unknowns", "setup s", "assembly", "factor+solve",
                "extraction", "total wall", "total CPU"):  # fmt: skip
        table.add_column(col, justify="right")
    results = []
    console = Console(width=150)
    for config in cases:
        k = config.elements_per_pixel
        # k = 8 costs ~10x k = 4: fewer repetitions keep the run short
        repeats = max(3, args.repeats // 4) if k >= 8 else args.repeats
        with console.status(f"{config.mode} k={k} {config.linear_solver}"):
            r = measure(config, images, repeats)
        results.append(r)
        table.add_row(
            config.mode, str(k), config.linear_solver, str(r["unknowns"]), f"{r['setup']:.2f}",
            *(f"{1e3 * r[key]:.2f}" for key in
              ("assembly", "factor_solve", "extraction", "total", "cpu")),
        )  # fmt: skip
    console.print(table)
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
