"""Benchmark of `microstrain generate`: marginal cost per sample with HDF5 writing, MPI speed-up.

For each discretization and rank count P, `[mpiexec -n P] microstrain generate` runs twice, with
N_small and N_large samples; the file's own `wall_seconds` (everything after Python start-up:
imports, solver setup, sampling, solving, gathering, writing) gives

    marginal ms/sample = (T(N_large) - T(N_small)) / (N_large - N_small)

which removes the fixed set-up cost. Speed-up at P ranks is the ratio of marginal costs; efficiency
is speed-up / P. The sampler alone is timed in-process, and the median `solve_seconds` of the file
gives the FE share, so the table also shows what writing and bookkeeping cost.

``--boundaries uniaxial periodic`` (the default) measures every mode for both load cases in one
run: a periodic sample (SPEC §11) is three load cases sharing one factorization, drawn on the
torus, with C_eff; the last column gives its marginal cost over the uniaxial one of the same mode
and P, measured in the same run.

``--launch shards`` runs the P ranks as P independent processes instead, `generate --shard i/P`
(what a SLURM array or several machines do; they need no MPI), started together; T is the largest
`wall_seconds` of the P files. ``--launch both`` measures both ways.

Usage:  .venv/bin/python benchmarks/bench_generate.py [--quick] [--ranks 1 2 4] [--modes pixel k4]
        [--launch mpi|shards|both] [--boundaries uniaxial periodic]
Timings on a shared machine are noisy; the table says so only by its spread between repeats.
With more ranks than cores (P = 4 on 2 cores) the ranks share the cores: no speed-up is possible,
the row shows what oversubscription costs.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from data_gen.families import PRESETS
from data_gen.microstructure import GeneratorConfig, microstructure, sample_seed
from microstrain.conventions import BOUNDARIES, DS_SOLVE_SECONDS
from microstrain.dataset import read_info, read_samples
from microstrain.hardware import cpu_description

# name -> (generate options, N_small, N_large)
CASES = {
    "pixel": (["--mode", "pixel"], 64, 576),
    "k2": (["--mode", "refined", "--k", "2"], 32, 288),
    "k4": (["--mode", "refined", "--k", "4"], 16, 144),
}
QUICK = {"pixel": (32, 160), "k2": (16, 64), "k4": (8, 40)}


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_generate(
    options: list[str], n: int, ranks: int, out: Path, repeats: int
) -> tuple[float, float, float]:
    """Best wall_seconds and best CPU seconds (all ranks, whole process) over ``repeats`` runs,
    and the median solve_seconds of the last file."""
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or "mpiexec"
    prefix = [mpiexec, "-n", str(ranks)] if ranks > 1 else []
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        cmd = [*prefix, sys.executable, "-m", "microstrain_cli", "generate", "-n", str(n)]
        cmd += ["-o", str(out), "--seed", "0", "--overwrite", "--no-progress", *options]
        cpu0 = _children_cpu_seconds()
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        best_cpu = min(best_cpu, _children_cpu_seconds() - cpu0)
        best = min(best, float(read_info(out).wall_seconds or "nan"))
    solve = statistics.median(read_samples(out, (DS_SOLVE_SECONDS,))[DS_SOLVE_SECONDS])
    return best, best_cpu, float(solve)


def run_shards(
    options: list[str], n: int, count: int, out: Path, repeats: int
) -> tuple[float, float, float]:
    """Like :func:`run_generate`, as ``count`` concurrent ``generate --shard i/count`` processes:
    the largest wall_seconds of the parts, CPU seconds of all, median solve_seconds of all."""
    best, best_cpu = float("inf"), float("inf")
    parts = [out.with_name(f"{out.stem}_{i}.h5") for i in range(count)]
    for _ in range(repeats):
        cpu0 = _children_cpu_seconds()
        jobs = []
        for i, part in enumerate(parts):
            cmd = [
                sys.executable,
                "-m",
                "microstrain_cli",
                "generate",
                "-n",
                str(n),
                "-o",
                str(part),
            ]
            cmd += ["--seed", "0", "--overwrite", "--no-progress", "--shard", f"{i}/{count}"]
            jobs.append(subprocess.Popen([*cmd, *options], stdout=subprocess.DEVNULL))
        if any(job.wait() for job in jobs):
            raise RuntimeError(f"a shard of {count} failed")
        best_cpu = min(best_cpu, _children_cpu_seconds() - cpu0)
        best = min(best, max(float(read_info(part).wall_seconds or "nan") for part in parts))
    seconds = [read_samples(part, (DS_SOLVE_SECONDS,))[DS_SOLVE_SECONDS] for part in parts]
    return best, best_cpu, float(statistics.median([s for x in seconds for s in x]))


def sampler_ms(config: GeneratorConfig, n: int = 200) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        microstructure(config, sample_seed(0, i))
    return 1e3 * (time.perf_counter() - t0) / n


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", nargs="+", default=["pixel", "k2", "k4"], choices=sorted(CASES))
    parser.add_argument(
        "--boundaries", nargs="+", default=["uniaxial", "periodic"], choices=BOUNDARIES
    )
    parser.add_argument("--ranks", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2, help="best of this many runs")
    parser.add_argument("--quick", action="store_true", help="small N (smoke test, noisier)")
    parser.add_argument(
        "--launch",
        choices=["mpi", "shards", "both"],
        default="mpi",
        help="P ranks as mpiexec -n P, as P independent --shard jobs, or both",
    )
    args = parser.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    table = Table(title="microstrain generate: marginal cost per sample (HDF5 writing included)")
    columns = ["mode", "launch", "P", "N", "T(N_small) s", "T(N_large) s", "marginal ms/sample"]
    columns += ["marginal CPU ms/sample", "FE solve ms (median)", "speed-up", "efficiency"]
    columns += ["periodic / uniaxial"]
    for col in columns:
        table.add_column(col, justify="right")
    sampler = {name: sampler_ms(config) for name, config in PRESETS.items()}
    sampler |= {
        f"{name}, periodic geometry": sampler_ms(replace(config, periodic=True))
        for name, config in PRESETS.items()
    }
    uniaxial: dict[tuple[str, str, int], float] = {}  # (mode, launch, P) -> marginal ms
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.h5"
        for mode, boundary in [(m, b) for m in args.modes for b in args.boundaries]:
            options, n_small, n_large = CASES[mode]
            options = [*options, "--boundary", boundary]
            if args.quick:
                n_small, n_large = QUICK[mode]
            base: float | None = None
            launches = ["mpi", "shards"] if args.launch == "both" else [args.launch]
            for p in args.ranks:
                for launch in launches if p > 1 else ["serial"]:
                    run = run_shards if launch == "shards" else run_generate
                    t_small, cpu_small, _ = run(options, n_small, p, out, args.repeats)
                    t_large, cpu_large, solve = run(options, n_large, p, out, args.repeats)
                    marginal = 1e3 * (t_large - t_small) / (n_large - n_small)
                    marginal_cpu = 1e3 * (cpu_large - cpu_small) / (n_large - n_small)
                    base = marginal if p == 1 else base
                    speedup = base / marginal if base else float("nan")
                    if boundary == "uniaxial":
                        uniaxial[mode, launch, p] = marginal
                    ratio = marginal / uniaxial.get((mode, launch, p), float("nan"))
                    table.add_row(
                        f"{mode} {boundary}", launch, str(p), f"{n_small}/{n_large}",
                        f"{t_small:.2f}", f"{t_large:.2f}", f"{marginal:.2f}",
                        f"{marginal_cpu:.2f}", f"{1e3 * solve:.2f}", f"{speedup:.2f}",
                        f"{100 * speedup / p:.0f}%",
                        f"{ratio:.2f}" if boundary == "periodic" else "",
                    )  # fmt: skip
                    print(f"done: {mode} {boundary} {launch} P={p}", file=sys.stderr, flush=True)
    console = Console(width=160)
    console.print(cpu_description() + ", load average " + ", ".join(
        f"{x:.1f}" for x in os.getloadavg()
    ))  # fmt: skip
    console.print(table)
    for name, ms in sampler.items():
        console.print(f"sampler alone (in-process, preset {name}): {ms:.2f} ms/sample")
    console.print(
        "marginal = (T(N_large) - T(N_small)) / (N_large - N_small), T = the file's wall_seconds; "
        "speed-up = marginal(P=1) / marginal(P); best of "
        f"{args.repeats} runs each. CPU = user + system time of all ranks (a load-independent "
        "view on a busy machine; MPI ranks busy-wait, so at P > 1 it includes waiting)."
    )


if __name__ == "__main__":
    main()
