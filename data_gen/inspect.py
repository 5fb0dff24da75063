"""`microstrain inspect`: what a dataset file holds, as a table and a picture.

Statistics are streamed over blocks of samples, so files larger than memory are fine. Beside
strain they give the SPEC §9 quantities for the plane and ū of the file
(:mod:`microstrain.quantities`): the apparent modulus E_x against the Reuss and Voigt values of
each sample's fiber fraction, and the peak von Mises stress with the phase it sits in. The PNG
grid shows each sample in two rows, E and the three strain channels over von Mises and the
three stress channels, with ``imshow(origin="upper")``: the specimen as it stands (SPEC §2: row
0 is the top edge, y = 1).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from microstrain.conventions import (
    DS_E,
    DS_FIBER_FRACTION,
    DS_SOLVE_SECONDS,
    DS_STRAIN,
    N_STRAIN,
    STRAIN_CHANNELS,
)
from microstrain.dataset import DatasetInfo, read_info, read_samples
from microstrain.errors import MicrostrainError
from microstrain.fields import fiber_mask
from microstrain.quantities import quantities, reuss_bound, voigt_bound

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
            q = quantities(E, strain, info.plane, applied)
            vm = q["von_mises"].reshape(len(E), -1)  # [b, 1024] MPa
            fiber = fiber_mask(E).reshape(len(E), -1)  # [b, 1024]
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
    voigt, reuss = voigt_bound(ff, info.plane), reuss_bound(ff, info.plane)  # [N] MPa
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
    if gen:
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


def plot_samples(
    path: str | os.PathLike[str], png: str | os.PathLike[str], n_show: int = 4
) -> Path:
    """PNG grid of the first ``n_show`` samples, two rows each: E and the strain channels, then
    von Mises and the stress channels (SPEC §9, for the plane and ū of the file)."""
    from microstrain import plots

    if n_show <= 0:
        raise MicrostrainError(f"--n-show must be positive; got {n_show}")
    info = read_info(path)
    n = min(n_show, info.n)
    data = read_samples(path, (DS_E, DS_STRAIN, DS_FIBER_FRACTION), stop=n)
    E, strain = data[DS_E], data[DS_STRAIN]  # [n, 1, 32, 32] MPa, [n, 3, 32, 32]
    q = quantities(E, strain, info.plane, info.applied_strain)
    rows = []
    for i in range(n):
        vm = q["von_mises"][i]  # [32, 32] MPa
        phase = "fiber" if fiber_mask(E[i, 0]).flat[vm.argmax()] else "matrix"
        rows += [
            plots.field_panels(
                E[i, 0], strain[i], e_title=f"sample {i}: E, φ = {data[DS_FIBER_FRACTION][i]:.2f}"
            ),
            plots.stress_panels(
                q["stress"][i],
                vm,
                von_mises_title=f"von Mises: peak in {phase}",
            ),
        ]
    title = (
        f"{Path(path).name}: first {n} samples (x right, y up); "
        f"stress for plane {info.plane}, ū = {info.applied_strain:g}"
    )
    fig = plots.figure(rows, title)
    return plots.save(fig, png, dpi=90)


def inspect_dataset(
    path: str | os.PathLike[str],
    png: str | os.PathLike[str] | None = None,
    n_show: int = 4,
    allow_incomplete: bool = False,
) -> DatasetStats:
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
    stats = dataset_stats(path, info)
    console.print(stats_table(stats))
    if png is not None:
        written = plot_samples(path, png, n_show)
        console.print(f"wrote {written}")
    return stats
