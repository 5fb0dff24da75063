"""`microstrain inspect`: what a dataset file holds, as a table and a picture.

Statistics are streamed over blocks of samples, so files larger than memory are fine. The PNG
grid shows one sample per row: E and the three strain channels with ``imshow(origin="upper")``,
which is the specimen as it stands (SPEC §2: row 0 is the top edge, y = 1).
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


def dataset_stats(path: str | os.PathLike[str], info: DatasetInfo | None = None) -> DatasetStats:
    """Stream over the file and collect :class:`DatasetStats`; the file must hold samples."""
    import h5py

    info = info or read_info(path)
    if info.n == 0:
        raise MicrostrainError(f"{path} holds no samples yet")
    applied = float(info.load_case.get("applied_strain", float("nan")))
    s_min = np.full(N_STRAIN, np.inf)
    s_max = np.full(N_STRAIN, -np.inf)
    s_sum = np.zeros(N_STRAIN)
    sample_means: list[np.ndarray] = []
    finite = True
    with h5py.File(path, "r") as f:
        ff = f[DS_FIBER_FRACTION][()].astype(np.float64)  # [N]
        seconds = f[DS_SOLVE_SECONDS][()]  # [N]
        for start in range(0, info.n, BLOCK):
            strain = f[DS_STRAIN][start : start + BLOCK].astype(np.float64)  # [b, 3, 32, 32]
            E = f[DS_E][start : start + BLOCK]  # [b, 1, 32, 32]
            finite &= bool(np.isfinite(strain).all() and np.isfinite(E).all())
            s_min = np.minimum(s_min, strain.min(axis=(0, 2, 3)))
            s_max = np.maximum(s_max, strain.max(axis=(0, 2, 3)))
            per_sample = strain.mean(axis=(2, 3))  # [b, 3]
            s_sum += per_sample.sum(axis=0)
            sample_means.append(per_sample[:, 0])
    eps_xx = np.concatenate(sample_means)  # [N] domain mean of eps_xx
    return DatasetStats(
        info=info,
        fiber_fraction=(float(ff.min()), float(ff.mean()), float(ff.max())),
        strain_min=s_min,
        strain_max=s_max,
        strain_mean=s_sum / info.n,
        mean_eps_xx=float(eps_xx.mean()),
        mean_eps_xx_max_rel_dev=float(np.max(np.abs(eps_xx - applied)) / abs(applied))
        if applied
        else float("nan"),
        solve_seconds_median=float(np.median(seconds)),
        solve_seconds_total=float(seconds.sum()),
        finite=finite,
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
    sw = info.software
    table.add_row("software", ", ".join(f"{k} {v}" for k, v in sorted(sw.items())) or "n/a")
    table.add_row("created", info.created or "n/a")
    return table


def plot_samples(
    path: str | os.PathLike[str], png: str | os.PathLike[str], n_show: int = 4
) -> Path:
    """PNG grid: one row per sample (the first ``n_show``), columns E and the strain channels."""
    from microstrain import plots

    if n_show <= 0:
        raise MicrostrainError(f"--n-show must be positive; got {n_show}")
    n = min(n_show, read_info(path).n)
    data = read_samples(path, (DS_E, DS_STRAIN, DS_FIBER_FRACTION), stop=n)
    rows = [
        plots.field_panels(
            data[DS_E][i, 0],  # [32, 32] MPa
            data[DS_STRAIN][i],  # [3, 32, 32]
            e_title=f"sample {i}: E, φ = {data[DS_FIBER_FRACTION][i]:.2f}",
        )
        for i in range(n)
    ]
    fig = plots.figure(rows, f"{Path(path).name}: first {n} samples (x right, y up)")
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
