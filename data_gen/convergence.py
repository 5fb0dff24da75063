"""Discretization error of the pixel-averaged strain and of every SPEC §9 measure as k grows (§3).

For a few generated microstructures the strain is solved with k = 1, 2, 4, 8 elements per pixel
side, and each k is compared with the finest k (the reference) by:

- every SPEC §9 error measure (:func:`microstrain.measures.error_measures`, computed per sample
  and then averaged over the samples): strain and stress relative L2, energy-norm error, E_x
  error (mean and max), ν_xy error, peak von Mises error (mean and max), per channel and phase;
- the older pooled strain relative L2 ||s_k − s_ref|| / ||s_ref|| over all channels of all
  samples together, and per channel (:func:`microstrain.measures.pooled_relative_l2`), which
  this command reported before; it equals the §9 strain measure for one sample.

With ``boundary="periodic"`` (SPEC §11) the samples are periodic microstructures solved for the
three unit load cases, and the measures are the periodic ones of
:func:`microstrain.measures.periodic_error_measures`: the field measures (mean over the cases),
the C_eff error ‖Ĉ − C‖_F / ‖C‖_F and the errors of E_1, E_2, ν_12, G_12; the JSON also holds
every sample's C_eff at every k.

Any two isotropic phases (``fiber``, ``matrix``: the lecture's pair by default) are sampled,
solved and measured with their own moduli; the JSON records them in its ``config``.

The result is a rich table, a log-log PNG of every measure against k, and a JSON file with every
number.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from microstrain.conventions import (
    BOUNDARIES,
    DEFAULT_APPLIED_STRAIN,
    DEFAULT_BOUNDARY,
    DEFAULT_PLANE,
    FIBER,
    MATRIX,
    STRAIN_CHANNELS,
    Material,
)
from microstrain.errors import InputError
from microstrain.fields import check_phases, describe_phases
from microstrain.files import atomic_output
from microstrain.measures import error_measures, periodic_error_measures, pooled_relative_l2

# SPEC §10 key -> short label of the table and the PNG, in report order (all are fractions)
MEASURES = {
    "strain_relative_l2": "strain rel L2",
    "stress_relative_l2": "stress rel L2",
    "energy_norm_error": "energy norm",
    "E_x_error_mean": "E_x error mean",
    "E_x_error_max": "E_x error max",
    "nu_xy_error_mean": "ν_xy error mean",
    "max_von_mises_error_mean": "peak von Mises error mean",
    "max_von_mises_error_max": "peak von Mises error max",
}
# the same for periodic files (SPEC §11): field measures are means over the three load cases
PERIODIC_MEASURES = {
    "strain_relative_l2": "strain rel L2",
    "stress_relative_l2": "stress rel L2",
    "energy_norm_error": "energy norm",
    "C_eff_error_mean": "C_eff error mean",
    "C_eff_error_max": "C_eff error max",
    "E_1_error_mean": "E_1 error mean",
    "E_2_error_mean": "E_2 error mean",
    "nu_12_error_mean": "ν_12 error mean",
    "G_12_error_mean": "G_12 error mean",
    "G_12_error_max": "G_12 error max",
}
MEASURES_DEFINITION = (
    "SPEC §9 error measures against the finest k, each computed per sample and then averaged "
    "over the samples (microstrain.measures.error_measures)"
)
POOLED_DEFINITION = (
    "pooled relative L2 of the pixel-averaged strain against the finest k: ||s_k - s_ref|| / "
    "||s_ref|| over all samples together (microstrain.measures.pooled_relative_l2; not SPEC §9)"
)

JSON_NAME = "convergence.json"
PNG_NAME = "convergence.png"


@dataclass(frozen=True)
class ConvergenceConfig:
    n_samples: int = 3
    seed: int = 0
    ks: tuple[int, ...] = (1, 2, 4, 8)
    plane: str = DEFAULT_PLANE
    applied_strain: float = DEFAULT_APPLIED_STRAIN
    boundary: str = DEFAULT_BOUNDARY
    fiber: Material = FIBER
    matrix: Material = MATRIX

    @property
    def measures(self) -> dict[str, str]:
        """Report key -> label of the measures of this boundary mode."""
        return PERIODIC_MEASURES if self.boundary == "periodic" else MEASURES

    def __post_init__(self) -> None:
        if self.boundary not in BOUNDARIES:
            raise InputError(
                f"--boundary must be one of {', '.join(BOUNDARIES)}; got '{self.boundary}'"
            )
        if self.n_samples < 1:
            raise InputError(f"number of samples must be at least 1; got {self.n_samples}")
        if len(self.ks) < 2 or any(k < 1 or k > 16 for k in self.ks):
            raise InputError(f"give at least two k from 1 to 16; got {list(self.ks)}")
        if len(set(self.ks)) != len(self.ks):
            raise InputError(f"k values must be distinct; got {list(self.ks)}")
        check_phases(self.fiber, self.matrix)


@dataclass
class ConvergenceResult:
    config: ConvergenceConfig
    reference_k: int
    # k -> SPEC §10 dict of the §9 error measures against the finest k (per sample, then mean)
    measures: dict[int, dict[str, Any]] = field(default_factory=dict)
    # k -> pooled strain relative L2 against the finest k (all channels, and per channel)
    overall: dict[int, float] = field(default_factory=dict)
    per_channel: dict[int, dict[str, float]] = field(default_factory=dict)
    # k -> median solve time per sample (s) and setup time (s)
    solve_seconds: dict[int, float] = field(default_factory=dict)
    setup_seconds: dict[int, float] = field(default_factory=dict)
    fiber_fractions: list[float] = field(default_factory=list)
    # k -> apparent modulus E_x (MPa) of each sample: falls as k grows (nested Q1 spaces)
    apparent_modulus: dict[int, list[float]] = field(default_factory=dict)
    # periodic: k -> C_eff (MPa) of each sample, [n][3][3]
    c_eff: dict[int, list[list[list[float]]]] = field(default_factory=dict)
    hardware: str = ""

    def to_json_dict(self) -> dict[str, object]:
        return {
            "config": asdict(self.config),
            "reference_k": self.reference_k,
            "measures_definition": MEASURES_DEFINITION,
            "measures": {str(k): v for k, v in self.measures.items()},
            "metric": POOLED_DEFINITION,  # of "overall" and "per_channel"
            "overall": {str(k): v for k, v in self.overall.items()},
            "per_channel": {str(k): v for k, v in self.per_channel.items()},
            "solve_seconds": {str(k): v for k, v in self.solve_seconds.items()},
            "setup_seconds": {str(k): v for k, v in self.setup_seconds.items()},
            "fiber_fractions": self.fiber_fractions,
            "E_x": {str(k): v for k, v in self.apparent_modulus.items()},
            "C_eff": {str(k): v for k, v in self.c_eff.items()},
            "hardware": self.hardware,
        }


def run_convergence(config: ConvergenceConfig, progress: bool = True) -> ConvergenceResult:
    """Solve the samples for every k; compare with the finest k."""
    from rich.progress import Progress

    from data_gen.microstructure import GeneratorConfig, sample_microstructures
    from data_gen.solver import SolverConfig, StrainSolver
    from microstrain.fields import fiber_fraction
    from microstrain.hardware import cpu_description
    from microstrain.quantities import apparent_modulus, effective_stiffness

    periodic = config.boundary == "periodic"
    # the sampler, the solver and every measure take the same phases
    phases: dict[str, Any] = {"fiber": config.fiber, "matrix": config.matrix}
    generator = GeneratorConfig(periodic=periodic)
    E, _ = sample_microstructures(generator, config.seed, range(config.n_samples), **phases)
    ks = sorted(config.ks)
    strains: dict[int, np.ndarray] = {}  # k -> float64 [n, 3, 32, 32]
    result = ConvergenceResult(config=config, reference_k=ks[-1], hardware=cpu_description())
    result.fiber_fractions = [float(f) for f in fiber_fraction(E, **phases)]
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("solving", total=len(ks) * config.n_samples)
        for k in ks:
            bar.update(task, description=f"k = {k}")
            solver = StrainSolver(
                SolverConfig(
                    mode="refined",
                    k=k,
                    plane=config.plane,
                    applied_strain=config.applied_strain,
                    boundary=config.boundary,
                    **phases,
                )
            )
            result.setup_seconds[k] = solver.setup_seconds
            out, times = [], []
            for e in E:
                out.append(solver.solve(e))
                times.append(solver.last_solve_seconds)
                bar.advance(task)
            strains[k] = np.stack(out)  # [n, 3, 32, 32]; periodic [n, 3, 3, 32, 32]
            load = (E, strains[k], config.plane, config.applied_strain)
            if periodic:
                result.c_eff[k] = effective_stiffness(*load, **phases).tolist()
            else:
                e_x = apparent_modulus(*load, **phases)  # [n] MPa
                result.apparent_modulus[k] = [float(v) for v in e_x]
            result.solve_seconds[k] = float(np.median(times))
            del solver  # the k = 8 factorization is large; free it before the next k
    reference = strains[ks[-1]]
    for k in ks[:-1]:
        if periodic:
            result.measures[k] = periodic_error_measures(
                E, strains[k], reference, config.plane, config.applied_strain, **phases
            )
        else:
            result.measures[k] = error_measures(
                E, strains[k], reference, config.plane, config.applied_strain, **phases
            )
        result.overall[k] = pooled_relative_l2(strains[k], reference)
        result.per_channel[k] = {
            name: pooled_relative_l2(strains[k][..., c, :, :], reference[..., c, :, :])
            for c, name in enumerate(STRAIN_CHANNELS)
        }
    return result


def print_table(result: ConvergenceResult) -> None:
    """One row per measure, one column per k (narrow enough for a terminal)."""
    from rich.console import Console
    from rich.table import Table

    cfg = result.config
    ks = sorted(result.solve_seconds)
    table = Table(
        title=f"discretization error against k = {result.reference_k}: {cfg.n_samples} "
        f"{cfg.boundary} samples, seed {cfg.seed}, plane {cfg.plane}; "
        f"{describe_phases(cfg.fiber, cfg.matrix)}",
        caption="SPEC §9 measures: per sample, then mean over samples (max: largest sample); "
        f"pooled: all samples together, as reported before. {result.hardware}",
    )
    table.add_column("measure")
    for k in ks:
        table.add_column(
            f"k = {k}" + (" (ref)" if k == result.reference_k else ""), justify="right"
        )
    rows = [("strain rel L2, pooled", [result.overall.get(k) for k in ks])]
    rows += [
        (label, [result.measures.get(k, {}).get(key) for k in ks])
        for key, label in cfg.measures.items()
    ]
    for label, values in rows:
        table.add_row(label, *["" if v is None else f"{100 * v:.2f} %" for v in values])
    table.add_row("solve ms/sample", *[f"{1e3 * result.solve_seconds[k]:.1f}" for k in ks])
    Console().print(table)


def write_outputs(result: ConvergenceResult, directory: Path) -> tuple[Path, Path]:
    """JSON with every number and a log-log PNG of every measure against k."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullFormatter

    directory.mkdir(parents=True, exist_ok=True)
    json_path, png_path = directory / JSON_NAME, directory / PNG_NAME
    with atomic_output(json_path) as tmp:
        tmp.write_text(json.dumps(result.to_json_dict(), indent=2) + "\n")
    ks = sorted(result.overall)
    fig = Figure(figsize=(6.4, 4.6), dpi=120, layout="constrained")
    ax = fig.subplots()
    ax.loglog(ks, [result.overall[k] for k in ks], "o-", color="black", label="strain (pooled)")
    colours: dict[str, Any] = {}  # a max is drawn dashed in the colour of its mean
    for key, label in result.config.measures.items():
        values = [result.measures[k][key] for k in ks]
        if any(v is None for v in values):
            continue
        mean_key = key.replace("_max", "_mean")
        style = "s--" if key.endswith("_max") else "o-"
        (line,) = ax.loglog(ks, values, style, ms=4, lw=1, color=colours.get(mean_key), label=label)
        colours.setdefault(key, line.get_color())
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.xaxis.set_minor_formatter(NullFormatter())  # only the measured k are labelled
    ax.set_xlabel("elements per pixel side k")
    ax.set_ylabel(f"error against k = {result.reference_k}")
    cfg = result.config
    ax.set_title(
        f"discretization error, {cfg.n_samples} {cfg.boundary} samples, plane {cfg.plane}\n"
        f"{describe_phases(cfg.fiber, cfg.matrix)}\n"
        "SPEC §9 measures (per sample, then mean; dashed: max over samples)",
        fontsize=9,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    with atomic_output(png_path) as tmp:
        fig.savefig(tmp, format="png")
    return json_path, png_path


def timed_convergence(config: ConvergenceConfig, directory: Path, progress: bool = True):
    """run + table + files; returns (result, json path, png path, wall seconds)."""
    t0 = time.perf_counter()
    result = run_convergence(config, progress=progress)
    print_table(result)
    json_path, png_path = write_outputs(result, directory)
    return result, json_path, png_path, time.perf_counter() - t0
