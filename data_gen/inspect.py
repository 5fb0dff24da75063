"""`microstrain inspect`: what a dataset file holds, as a table and a picture.

Statistics are streamed over blocks of samples, so files larger than memory are fine. Beside
strain they give the SPEC §9 quantities for the plane and ū of the file
(:mod:`microstrain.quantities`): the apparent modulus E_x against the Reuss and Voigt values of
each sample's fiber fraction, and the peak von Mises stress with the phase it sits in. The PNG
grid shows each sample in two rows, E and the three strain channels over von Mises and the
three stress channels, with ``imshow(origin="upper")``: the specimen as it stands (SPEC §2: row
0 is the top edge, y = 1).

A periodic file (SPEC §11) gets its own table: C_eff with the engineering constants E_1, E_2,
ν_12, G_12 beside their Reuss and Voigt values, the samples whose C_eff leaves the bounds in the
energy sense (none for an FE solution), C_eff's symmetry and each case's mean strain against its
macro strain; its picture draws each sample's three load cases. ``solve --png`` draws with the
same functions (:func:`draw_solution`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from microstrain.conventions import (
    DS_C_EFF,
    DS_E,
    DS_FIBER_FRACTION,
    DS_SOLVE_SECONDS,
    DS_STRAIN,
    FIBER,
    MATRIX,
    N_STRAIN,
    PERIODIC_CASES,
    STRAIN_CHANNELS,
    Material,
)
from microstrain.dataset import DatasetInfo, read_info, read_samples
from microstrain.errors import MicrostrainError
from microstrain.fields import describe_phases, fiber_mask
from microstrain.quantities import (
    CONSTANT_NAMES,
    constant_bounds,
    engineering_constants,
    quantities,
    reuss_bound,
    reuss_stiffness,
    voigt_bound,
    voigt_stiffness,
)

BLOCK = 1024  # samples read at a time


@dataclass(frozen=True)
class DatasetStats:
    """Summary numbers of a dataset (strain in the units of the file, for its ū)."""

    info: DatasetInfo
    fiber_fraction: tuple[float, float, float]  # min, mean, max
    strain_min: np.ndarray  # [3]
    strain_max: np.ndarray  # [3]
    strain_mean: np.ndarray  # [3]
    # domain (pixel) mean of eps_xx per sample: its mean, and the largest |mean - ū| / |ū|
    mean_eps_xx: float
    mean_eps_xx_max_rel_dev: float
    solve_seconds_median: float
    solve_seconds_total: float
    finite: bool  # no NaN/inf in E or strain
    # SPEC §9 for the plane and ū of the file; bounds of each sample's fiber fraction (MPa)
    E_x_mean: float
    voigt_mean: float
    reuss_mean: float
    # (E_x − Reuss) / (Voigt − Reuss) over the two-phase samples: min, mean, max (NaN if none)
    E_x_position: tuple[float, float, float]
    below_reuss: int  # samples with E_x < Reuss: impossible for a displacement FE solution
    peak_von_mises_mean: float  # MPa, mean over samples of each one's largest pixel value
    peak_von_mises_max: float  # MPa, the largest over all samples ...
    peak_von_mises_sample: int  # ... in this sample
    peak_in_fiber: int  # samples whose peak pixel is a fiber pixel (the rest: matrix)
    matrix_peak_von_mises: tuple[float, float]  # MPa, largest matrix pixel: mean, max (NaN: none)


def dataset_stats(path: str | os.PathLike[str], info: DatasetInfo | None = None) -> DatasetStats:
    """Stream over the file and collect :class:`DatasetStats`; the file must hold samples."""
    import h5py

    info = info or read_info(path)
    if info.n == 0:
        raise MicrostrainError(f"{path} holds no samples yet")
    applied = info.applied_strain
    phases = {"fiber": info.fiber, "matrix": info.matrix}
    s_min = np.full(N_STRAIN, np.inf)
    s_max = np.full(N_STRAIN, -np.inf)
    s_sum = np.zeros(N_STRAIN)
    sample_means: list[np.ndarray] = []
    e_x, peak, in_fiber, matrix_peak = [], [], [], []  # per block: [b] each
    finite = True
    with h5py.File(path, "r") as f:
        ff = f[DS_FIBER_FRACTION][()].astype(np.float64)  # [N]
        seconds = f[DS_SOLVE_SECONDS][()]  # [N]
        for start in range(0, info.n, BLOCK):
            strain = f[DS_STRAIN][start : start + BLOCK]  # float32 [b, 3, 32, 32]
            E = f[DS_E][start : start + BLOCK]  # [b, 1, 32, 32]
            finite &= bool(np.isfinite(strain).all() and np.isfinite(E).all())
            s_min = np.minimum(s_min, strain.min(axis=(0, 2, 3)))
            s_max = np.maximum(s_max, strain.max(axis=(0, 2, 3)))
            per_sample = strain.mean(axis=(2, 3), dtype=np.float64)  # [b, 3]
            s_sum += per_sample.sum(axis=0)
            sample_means.append(per_sample[:, 0])
            q = quantities(E, strain, info.plane, applied, **phases)
            vm = q["von_mises"].reshape(len(E), -1)  # [b, 1024] MPa
            fiber = fiber_mask(E, **phases).reshape(len(E), -1)  # [b, 1024]
            e_x.append(q["E_x"])
            peak.append(q["max_von_mises"])
            in_fiber.append(fiber[np.arange(len(E)), vm.argmax(axis=1)])
            matrix_peak.append(np.where(fiber, -np.inf, vm).max(axis=1))  # -inf: all fiber
    eps_xx = np.concatenate(sample_means)  # [N] domain mean of eps_xx
    E_x, peaks, matrix_peaks = (
        np.concatenate(e_x),
        np.concatenate(peak),
        np.concatenate(matrix_peak),
    )
    voigt = voigt_bound(ff, info.plane, **phases)  # [N] MPa
    reuss = reuss_bound(ff, info.plane, **phases)
    two_phase = voigt > reuss  # 0 < f < 1
    position = (E_x[two_phase] - reuss[two_phase]) / (voigt[two_phase] - reuss[two_phase])
    has_matrix = np.isfinite(matrix_peaks)
    nan3 = (float("nan"),) * 3
    return DatasetStats(
        info=info,
        fiber_fraction=(float(ff.min()), float(ff.mean()), float(ff.max())),
        strain_min=s_min,
        strain_max=s_max,
        strain_mean=s_sum / info.n,
        mean_eps_xx=float(eps_xx.mean()),
        mean_eps_xx_max_rel_dev=float(np.max(np.abs(eps_xx - applied)) / abs(applied)),
        solve_seconds_median=float(np.median(seconds)),
        solve_seconds_total=float(seconds.sum()),
        finite=finite,
        E_x_mean=float(E_x.mean()),
        voigt_mean=float(voigt.mean()),
        reuss_mean=float(reuss.mean()),
        E_x_position=(float(position.min()), float(position.mean()), float(position.max()))
        if position.size
        else nan3,
        # relative margin: float32 strain of a sample on the bound (a homogeneous one)
        below_reuss=int(np.sum(E_x < reuss * (1 - 1e-6))),
        peak_von_mises_mean=float(peaks.mean()),
        peak_von_mises_max=float(peaks.max()),
        peak_von_mises_sample=int(peaks.argmax()),
        peak_in_fiber=int(np.concatenate(in_fiber).sum()),
        matrix_peak_von_mises=(
            float(matrix_peaks[has_matrix].mean()),
            float(matrix_peaks[has_matrix].max()),
        )
        if has_matrix.any()
        else nan3[:2],
    )


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None or not np.isfinite(seconds):
        return "n/a"
    if seconds < 1.0:
        return f"{1e3 * seconds:.2f} ms"
    return f"{seconds:.1f} s" if seconds < 600 else f"{seconds / 60:.1f} min"


def stats_table(stats: DatasetStats) -> Any:
    """A rich Table of the statistics."""
    from rich.table import Table

    info = stats.info
    lc, disc, gen = info.load_case, info.discretization, info.generator
    table = Table(title=f"{info.path.name}", show_header=True, header_style="bold")
    table.add_column("quantity")
    table.add_column("value")
    status = "[green]yes[/]" if info.complete else "[bold red]NO — partial file[/]"
    table.add_row(
        "samples N", f"{info.n}" + (f" of {info.n_requested} requested" if info.n_requested else "")
    )
    table.add_row("complete", status)
    table.add_row("discretization", f"{disc.get('mode', '?')}, k = {disc.get('k', '?')}")
    table.add_row(
        "load case",
        f"{lc.get('name', '?')}, plane {lc.get('plane', '?')}, ū = {lc.get('applied_strain', '?')}",
    )
    table.add_row("materials", describe_phases(info.fiber, info.matrix))
    if gen and gen.get("seed") is None:  # not drawn by the sampler (e.g. written by solve)
        table.add_row("generator", ", ".join(f"{k} {v}" for k, v in sorted(gen.items())))
    elif gen:
        table.add_row(
            "generator",
            f"seed {gen.get('seed')}, target fraction {gen.get('fiber_fraction_min')}–"
            f"{gen.get('fiber_fraction_max')}, radius {gen.get('radius_min')}–"
            f"{gen.get('radius_max')}, gap {gen.get('min_gap')}",
        )
    lo, mean, hi = stats.fiber_fraction
    table.add_row("fiber fraction", f"min {lo:.3f}  mean {mean:.3f}  max {hi:.3f}")
    for c, name in enumerate(STRAIN_CHANNELS):
        table.add_row(
            name,
            f"min {stats.strain_min[c]:+.4g}  mean {stats.strain_mean[c]:+.4g}  "
            f"max {stats.strain_max[c]:+.4g}",
        )
    table.add_row(
        "domain mean eps_xx vs ū",
        f"{stats.mean_eps_xx:.6g} vs {lc.get('applied_strain', '?')} "
        f"(largest per-sample deviation {100 * stats.mean_eps_xx_max_rel_dev:.2g}%)",
    )
    lo, mean, hi = stats.E_x_position
    table.add_row(
        "E_x, bounds of φ (MPa)",
        f"E_x mean {stats.E_x_mean:.0f}  Reuss mean {stats.reuss_mean:.0f}  "
        f"Voigt mean {stats.voigt_mean:.0f}",
    )
    table.add_row(
        "E_x from Reuss (0) to Voigt (1)",
        f"min {lo:.3f}  mean {mean:.3f}  max {hi:.3f}" if np.isfinite(mean) else "n/a (one phase)",
    )
    in_fiber, n = stats.peak_in_fiber, stats.info.n
    table.add_row(
        "peak von Mises (MPa)",
        f"mean {stats.peak_von_mises_mean:.4g}  max {stats.peak_von_mises_max:.4g} (sample "
        f"{stats.peak_von_mises_sample}); in fiber {in_fiber} of {n}, matrix {n - in_fiber}",
    )
    m_mean, m_max = stats.matrix_peak_von_mises
    table.add_row(
        "peak matrix von Mises (MPa)",
        f"mean {m_mean:.4g}  max {m_max:.4g}" if np.isfinite(m_mean) else "n/a (no matrix)",
    )
    table.add_row(
        "solve time per sample",
        f"median {_fmt_seconds(stats.solve_seconds_median)}, "
        f"total {_fmt_seconds(stats.solve_seconds_total)}",
    )
    ranks = "/".join(str(r) for r in sorted({int(r.get("ranks", 1)) for r in info.runs})) or "?"
    table.add_row(
        "T_data (wall, all runs)",
        f"{_fmt_seconds(info.wall_seconds)} in {len(info.runs)} run(s), {ranks} rank(s)",
    )
    if not stats.finite:
        table.add_row("[bold red]warning[/]", "[bold red]NaN or inf values in E or strain[/]")
    if stats.below_reuss:
        table.add_row(
            "[bold red]warning[/]",
            f"[bold red]E_x below the Reuss bound in {stats.below_reuss} sample(s): "
            "not a displacement FE solution of this load case[/]",
        )
    sw = info.software
    table.add_row("software", ", ".join(f"{k} {v}" for k, v in sorted(sw.items())) or "n/a")
    table.add_row("created", info.created or "n/a")
    return table


def draw_solution(
    png: str | os.PathLike[str],
    youngs_modulus: np.ndarray,
    strain: np.ndarray,
    plane: str,
    applied_strain: float,
    boundary: str,
    name: str,
    fiber: Material = FIBER,
    matrix: Material = MATRIX,
    n_show: int = 4,
) -> Path:
    """PNG of the first ``n_show`` solved samples (:func:`microstrain.plots.solution_rows`),
    for ``solve --png`` and ``inspect --png``."""
    from microstrain import plots

    n = min(n_show, len(youngs_modulus))
    rows = plots.solution_rows(
        youngs_modulus[:n], strain[:n], plane, applied_strain, fiber=fiber, matrix=matrix
    )
    if boundary == "periodic":
        title = (
            f"{name}: first {n} samples (x right, y up), periodic; stress for plane {plane}, "
            f"unit macro strains xx, yy, xy of size {applied_strain:g}"
        )
    else:
        title = (
            f"{name}: first {n} samples (x right, y up); "
            f"stress for plane {plane}, ū = {applied_strain:g}"
        )
    fig = plots.figure(rows, title)
    return plots.save(fig, png, dpi=90)


def plot_samples(
    path: str | os.PathLike[str], png: str | os.PathLike[str], n_show: int = 4
) -> Path:
    """PNG grid of the first ``n_show`` samples, two rows each: E and the strain channels, then
    von Mises and the stress channels (SPEC §9, for the plane and ū of the file); a periodic file
    one row per load case."""
    if n_show <= 0:
        raise MicrostrainError(f"--n-show must be positive; got {n_show}")
    info = read_info(path)
    n = min(n_show, info.n)
    data = read_samples(path, (DS_E, DS_STRAIN), stop=n)
    return draw_solution(
        png, data[DS_E], data[DS_STRAIN], info.plane, info.applied_strain, info.boundary,
        Path(path).name, fiber=info.fiber, matrix=info.matrix, n_show=n,
    )  # fmt: skip


def inspect_dataset(
    path: str | os.PathLike[str],
    png: str | os.PathLike[str] | None = None,
    n_show: int = 4,
    allow_incomplete: bool = False,
) -> DatasetStats | PeriodicStats:
    """Print the statistics table; write the PNG grid if asked. Refuses partial files unless
    ``allow_incomplete`` (then warns loudly)."""
    from rich.console import Console

    info = read_info(path)
    console = Console()
    if not info.complete:
        missing = f"{info.n} of {info.n_requested}" if info.n_requested else f"{info.n}"
        message = (
            f"{path} is INCOMPLETE ({missing} samples; interrupted or still running): "
            "rerun the same generate command to finish it"
        )
        if not allow_incomplete:
            raise MicrostrainError(message + ", or pass --allow-incomplete to inspect it anyway")
        console.print(f"[bold red]WARNING: {message}[/]")
    if png is not None:  # fail before printing anything if the picture cannot be written
        if n_show <= 0:
            raise MicrostrainError(f"--n-show must be positive; got {n_show}")
        parent = Path(png).parent
        if not parent.is_dir() or not os.access(parent, os.W_OK):
            raise MicrostrainError(f"output directory does not exist or is not writable: {parent}")
    if info.boundary == "periodic":
        periodic = periodic_stats(path, info)
        console.print(periodic_table(periodic))
        if png is not None:
            console.print(f"wrote {plot_samples(path, png, n_show)}")
        return periodic
    stats = dataset_stats(path, info)
    console.print(stats_table(stats))
    if png is not None:
        written = plot_samples(path, png, n_show)
        console.print(f"wrote {written}")
    return stats


# --- periodic files (SPEC §11) ----------------------------------------------------------------
PERIODIC_BLOCK = 64  # samples read at a time: three cases each


@dataclass(frozen=True)
class PeriodicStats:
    """Summary numbers of a periodic file (C_eff in MPa, strain for the ū of the file)."""

    info: DatasetInfo
    fiber_fraction: tuple[float, float, float]  # min, mean, max
    c_eff_mean: np.ndarray  # [3, 3] MPa, mean over samples
    asymmetry_max: float  # largest ‖C − Cᵀ‖_F / ‖C‖_F over samples
    # name -> (min, mean, max) over samples, of E_1, E_2, ν_12, G_12
    constants: dict[str, tuple[float, float, float]]
    # name -> (mean Reuss value, mean Voigt value) of each sample's fiber fraction
    constant_bounds: dict[str, tuple[float, float]]
    outside_bounds: int  # samples whose C_eff leaves [C_Reuss, C_Voigt] in the energy sense
    mean_strain_max_dev: float  # largest |mean strain of a case − its Ē| / ū over samples
    strain_range: np.ndarray  # [3 cases, 3 components, 2]: min and max
    peak_von_mises_mean: np.ndarray  # [3 cases] MPa, mean over samples of each one's peak
    solve_seconds_median: float  # all three cases of a sample
    solve_seconds_total: float
    finite: bool


def periodic_stats(path: str | os.PathLike[str], info: DatasetInfo | None = None) -> PeriodicStats:
    """Stream over a periodic file and collect :class:`PeriodicStats`."""
    import h5py

    info = info or read_info(path)
    if info.n == 0:
        raise MicrostrainError(f"{path} holds no samples yet")
    phases = {"fiber": info.fiber, "matrix": info.matrix}
    ubar, plane = info.applied_strain, info.plane
    macro = ubar * np.eye(N_STRAIN)  # [case, component]
    lo = np.full((3, N_STRAIN), np.inf)
    hi = np.full((3, N_STRAIN), -np.inf)
    deviation, peaks, finite = 0.0, [], True
    with h5py.File(path, "r") as f:
        ff = f[DS_FIBER_FRACTION][()].astype(np.float64)  # [N]
        c_eff = f[DS_C_EFF][()]  # [N, 3, 3] MPa
        seconds = f[DS_SOLVE_SECONDS][()]
        for start in range(0, info.n, PERIODIC_BLOCK):
            strain = f[DS_STRAIN][start : start + PERIODIC_BLOCK]  # float32 [b, 3, 3, s, s]
            E = f[DS_E][start : start + PERIODIC_BLOCK]  # [b, 1, s, s]
            finite &= bool(np.isfinite(strain).all() and np.isfinite(E).all())
            lo = np.minimum(lo, strain.min(axis=(0, 3, 4)))
            hi = np.maximum(hi, strain.max(axis=(0, 3, 4)))
            means = strain.mean(axis=(3, 4), dtype=np.float64)  # [b, case, component]
            deviation = max(deviation, float(np.abs(means - macro).max() / abs(ubar)))
            b, side = len(E), E.shape[-1]
            flat = strain.reshape(b * 3, N_STRAIN, side, side)
            q = quantities(np.repeat(E, 3, axis=0), flat, plane, ubar, **phases)
            peaks.append(q["max_von_mises"].reshape(b, 3))
    finite &= bool(np.isfinite(c_eff).all())
    if not finite:
        raise MicrostrainError(f"{path} holds NaN or infinite values in E, strain or C_eff")
    constants = engineering_constants(c_eff)  # name -> [N]
    bounds = constant_bounds(ff, plane, **phases)  # name -> ([N], [N])
    voigt, reuss = voigt_stiffness(ff, plane, **phases), reuss_stiffness(ff, plane, **phases)
    # relative margin: float32 fields of a sample on a bound (a homogeneous one)
    tol = 1e-6 * np.abs(voigt).max(axis=(1, 2))  # [N] MPa
    above = np.linalg.eigvalsh(voigt - c_eff).min(axis=1) < -tol
    below = np.linalg.eigvalsh(c_eff - reuss).min(axis=1) < -tol
    norms = np.linalg.norm(c_eff, axis=(1, 2))
    asymmetry = np.linalg.norm(c_eff - c_eff.transpose(0, 2, 1), axis=(1, 2)) / norms
    return PeriodicStats(
        info=info,
        fiber_fraction=(float(ff.min()), float(ff.mean()), float(ff.max())),
        c_eff_mean=c_eff.mean(axis=0),
        asymmetry_max=float(asymmetry.max()),
        constants={
            k: (float(v.min()), float(v.mean()), float(v.max())) for k, v in constants.items()
        },
        constant_bounds={k: (float(r.mean()), float(v.mean())) for k, (r, v) in bounds.items()},
        outside_bounds=int(np.sum(above | below)),
        mean_strain_max_dev=deviation,
        strain_range=np.stack([lo, hi], axis=-1),
        peak_von_mises_mean=np.concatenate(peaks).mean(axis=0),
        solve_seconds_median=float(np.median(seconds)),
        solve_seconds_total=float(np.sum(seconds)),
        finite=finite,
    )


CONSTANT_LABELS = {"E_1": "E_1 (MPa)", "E_2": "E_2 (MPa)", "nu_12": "ν_12", "G_12": "G_12 (MPa)"}


def periodic_table(stats: PeriodicStats) -> Any:
    """A rich Table of a periodic file's statistics."""
    from rich.table import Table

    info = stats.info
    lc, disc, gen = info.load_case, info.discretization, info.generator
    table = Table(title=f"{info.path.name} (periodic, SPEC §11)", header_style="bold")
    table.add_column("quantity")
    table.add_column("value")
    status = "[green]yes[/]" if info.complete else "[bold red]NO — partial file[/]"
    requested = f" of {info.n_requested} requested" if info.n_requested else ""
    table.add_row("samples N", f"{info.n}{requested}, {info.grid} x {info.grid} pixels")
    table.add_row("complete", status)
    table.add_row("discretization", f"{disc.get('mode', '?')}, k = {disc.get('k', '?')}")
    table.add_row(
        "load case",
        f"periodic, cases {', '.join(lc.get('cases', PERIODIC_CASES))} (unit macro strains of "
        f"size {lc.get('applied_strain', '?')}), plane {lc.get('plane', '?')}",
    )
    table.add_row("materials", describe_phases(info.fiber, info.matrix))
    if gen.get("seed") is not None:
        table.add_row(
            "generator",
            f"seed {gen.get('seed')}, periodic geometry {'yes' if gen.get('periodic') else 'no'},"
            f" target fraction {gen.get('fiber_fraction_min')}–{gen.get('fiber_fraction_max')}",
        )
    lo, mean, hi = stats.fiber_fraction
    table.add_row("fiber fraction", f"min {lo:.3f}  mean {mean:.3f}  max {hi:.3f}")
    rows = [" ".join(f"{v:9.1f}" for v in row) for row in stats.c_eff_mean]
    table.add_row("C_eff mean (MPa; xx, yy, xy)", "\n".join(rows))
    table.add_row("C_eff symmetry", f"largest ‖C − Cᵀ‖ / ‖C‖ {stats.asymmetry_max:.1e}")
    for name in CONSTANT_NAMES:
        c_lo, c_mean, c_hi = stats.constants[name]
        reuss, voigt = stats.constant_bounds[name]
        fmt = ".4f" if name == "nu_12" else ".0f"
        table.add_row(
            CONSTANT_LABELS[name],
            f"mean {c_mean:{fmt}}  min {c_lo:{fmt}}  max {c_hi:{fmt}}   "
            f"(Reuss {reuss:{fmt}}, Voigt {voigt:{fmt}})",
        )
    table.add_row(
        "C_eff within Reuss–Voigt",
        "every sample (energy sense)"
        if stats.outside_bounds == 0
        else f"[bold red]{stats.outside_bounds} sample(s) outside: not an FE solution[/]",
    )
    table.add_row(
        "mean strain of each case vs Ē",
        f"largest deviation {100 * stats.mean_strain_max_dev:.2g}% of ū",
    )
    for j, case in enumerate(PERIODIC_CASES):
        ranges = "  ".join(
            f"{name} {stats.strain_range[j, c, 0]:+.3g}…{stats.strain_range[j, c, 1]:+.3g}"
            for c, name in enumerate(STRAIN_CHANNELS)
        )
        table.add_row(
            f"case {case}", f"{ranges}\npeak von Mises mean {stats.peak_von_mises_mean[j]:.4g} MPa"
        )
    table.add_row(
        "solve time per sample (3 cases)",
        f"median {_fmt_seconds(stats.solve_seconds_median)}, "
        f"total {_fmt_seconds(stats.solve_seconds_total)}",
    )
    if info.runs:
        table.add_row(
            "T_data (wall, all runs)",
            f"{_fmt_seconds(info.wall_seconds)} in {len(info.runs)} run(s)",
        )
    sw = info.software
    table.add_row("software", ", ".join(f"{k} {v}" for k, v in sorted(sw.items())) or "n/a")
    table.add_row("created", info.created or "n/a")
    return table
