"""Discretization error of the pixel-averaged strain as the mesh is refined (SPEC §3).

For a few generated microstructures the strain is solved with k = 1, 2, 4, 8 elements per pixel
side; each k is compared with the finest by the relative L2 difference

    e_k = ||s_k − s_finest|| / ||s_finest||

over all channels of all samples together, and per channel. The result is a rich table, a
log-log PNG of e_k against k, and a JSON file with every number.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from microstrain.conventions import DEFAULT_APPLIED_STRAIN, DEFAULT_PLANE, STRAIN_CHANNELS
from microstrain.errors import InputError
from microstrain.files import atomic_output

JSON_NAME = "convergence.json"
PNG_NAME = "convergence.png"


@dataclass(frozen=True)
class ConvergenceConfig:
    n_samples: int = 3
    seed: int = 0
    ks: tuple[int, ...] = (1, 2, 4, 8)
    plane: str = DEFAULT_PLANE
    applied_strain: float = DEFAULT_APPLIED_STRAIN

    def __post_init__(self) -> None:
        if self.n_samples < 1:
            raise InputError(f"number of samples must be at least 1; got {self.n_samples}")
        if len(self.ks) < 2 or any(k < 1 or k > 16 for k in self.ks):
            raise InputError(f"give at least two k from 1 to 16; got {list(self.ks)}")
        if len(set(self.ks)) != len(self.ks):
            raise InputError(f"k values must be distinct; got {list(self.ks)}")


@dataclass
class ConvergenceResult:
    config: ConvergenceConfig
    reference_k: int
    # k -> relative L2 difference against the finest k (overall and per channel)
    overall: dict[int, float] = field(default_factory=dict)
    per_channel: dict[int, dict[str, float]] = field(default_factory=dict)
    # k -> median solve time per sample (s) and setup time (s)
    solve_seconds: dict[int, float] = field(default_factory=dict)
    setup_seconds: dict[int, float] = field(default_factory=dict)
    fiber_fractions: list[float] = field(default_factory=list)

    def to_json_dict(self) -> dict[str, object]:
        return {
            "config": asdict(self.config),
            "reference_k": self.reference_k,
            "metric": "relative L2 difference of the pixel-averaged strain against the finest k",
            "overall": {str(k): v for k, v in self.overall.items()},
            "per_channel": {str(k): v for k, v in self.per_channel.items()},
            "solve_seconds": {str(k): v for k, v in self.solve_seconds.items()},
            "setup_seconds": {str(k): v for k, v in self.setup_seconds.items()},
            "fiber_fractions": self.fiber_fractions,
        }


def relative_l2(strain: np.ndarray, reference: np.ndarray) -> float:
    """||strain − reference|| / ||reference|| over all entries."""
    return float(np.linalg.norm(strain - reference) / np.linalg.norm(reference))


def run_convergence(config: ConvergenceConfig, progress: bool = True) -> ConvergenceResult:
    """Solve the samples for every k; compare with the finest k."""
    from rich.progress import Progress

    from data_gen.microstructure import GeneratorConfig, sample_microstructures
    from data_gen.solver import SolverConfig, StrainSolver
    from microstrain.fields import fiber_fraction

    E, _ = sample_microstructures(GeneratorConfig(), config.seed, range(config.n_samples))
    ks = sorted(config.ks)
    strains: dict[int, np.ndarray] = {}
    result = ConvergenceResult(config=config, reference_k=ks[-1])
    result.fiber_fractions = [float(f) for f in fiber_fraction(E)]
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("solving", total=len(ks) * config.n_samples)
        for k in ks:
            bar.update(task, description=f"k = {k}")
            solver = StrainSolver(
                SolverConfig(
                    mode="refined", k=k, plane=config.plane, applied_strain=config.applied_strain
                )
            )
            result.setup_seconds[k] = solver.setup_seconds
            out, times = [], []
            for e in E:
                out.append(solver.solve(e))
                times.append(solver.last_solve_seconds)
                bar.advance(task)
            strains[k] = np.stack(out)  # [n, 3, 32, 32]
            result.solve_seconds[k] = float(np.median(times))
            del solver  # the k = 8 factorization is large; free it before the next k
    reference = strains[ks[-1]]
    for k in ks[:-1]:
        result.overall[k] = relative_l2(strains[k], reference)
        result.per_channel[k] = {
            name: relative_l2(strains[k][:, c], reference[:, c])
            for c, name in enumerate(STRAIN_CHANNELS)
        }
    return result


def print_table(result: ConvergenceResult) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"pixel-averaged strain vs k = {result.reference_k} "
        f"({result.config.n_samples} samples, seed {result.config.seed}, "
        f"plane {result.config.plane})"
    )
    table.add_column("k", justify="right")
    table.add_column("all channels", justify="right")
    for name in STRAIN_CHANNELS:
        table.add_column(name, justify="right")
    table.add_column("solve ms/sample", justify="right")
    for k in sorted(result.solve_seconds):
        if k == result.reference_k:
            cells = ["(reference)", *["" for _ in STRAIN_CHANNELS]]
        else:
            cells = [
                f"{100 * result.overall[k]:.2f} %",
                *[f"{100 * result.per_channel[k][c]:.2f} %" for c in STRAIN_CHANNELS],
            ]
        table.add_row(str(k), *cells, f"{1e3 * result.solve_seconds[k]:.1f}")
    Console().print(table)


def write_outputs(result: ConvergenceResult, directory: Path) -> tuple[Path, Path]:
    """JSON with every number and a log-log PNG of the error against k."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    directory.mkdir(parents=True, exist_ok=True)
    json_path, png_path = directory / JSON_NAME, directory / PNG_NAME
    with atomic_output(json_path) as tmp:
        tmp.write_text(json.dumps(result.to_json_dict(), indent=2) + "\n")
    ks = sorted(result.overall)
    fig, ax = plt.subplots(figsize=(5.0, 3.8), dpi=120)
    ax.loglog(ks, [result.overall[k] for k in ks], "o-", color="black", label="all channels")
    for name in STRAIN_CHANNELS:
        ax.loglog(ks, [result.per_channel[k][name] for k in ks], ".--", label=name)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.xaxis.set_minor_formatter(NullFormatter())  # only the measured k are labelled
    ax.set_xlabel("elements per pixel side k")
    ax.set_ylabel(f"relative L2 difference to k = {result.reference_k}")
    ax.set_title("discretization error of the pixel-averaged strain")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with atomic_output(png_path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return json_path, png_path


def timed_convergence(config: ConvergenceConfig, directory: Path, progress: bool = True):
    """run + table + files; returns (result, json path, png path, wall seconds)."""
    t0 = time.perf_counter()
    result = run_convergence(config, progress=progress)
    print_table(result)
    json_path, png_path = write_outputs(result, directory)
    return result, json_path, png_path, time.perf_counter() - t0
