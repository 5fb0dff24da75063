"""``tau.png``: the cumulative cost of n evaluations, FE against the surrogate, τ where they cross.

    FE:         n · T_simulation
    surrogate:  T_data + T_train + n · T_surrogate      (batch 1, and batched)

Log-log axes: both costs are straight lines, so the crossing shows at every scale.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from evaluation.tau_report import TauReport
from microstrain import plots
from microstrain.breakeven import format_tau


def plot_cumulative_cost(report: TauReport, path: str | os.PathLike[str]) -> Path:
    """Draw the cost lines of ``report`` with τ (batch 1 and batched) marked; PNG to ``path``."""
    from matplotlib.figure import Figure

    upfront = report.T_data + report.T_train
    taus = [t for t in (report.tau, report.tau_batched) if t is not None]
    n_max = 10 ** math.ceil(math.log10(max([*taus, 50.0]) * 20))
    n = np.logspace(0, math.log10(n_max), 400)  # [400] evaluations
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    ax.plot(n, n * report.T_simulation, label=f"FE solve ({report.T_simulation:.3g} s each)")
    ax.plot(
        n,
        upfront + n * report.T_surrogate,
        label=f"surrogate, batch 1 ({report.T_surrogate:.2g} s each + {upfront:.3g} s up front)",
    )
    ax.plot(
        n,
        upfront + n * report.T_surrogate_batched,
        "--",
        label=f"surrogate, batched ({report.T_surrogate_batched:.2g} s each)",
    )
    marks = (
        (report.tau, "τ", "k", (-10, 12), "right"),
        (report.tau_batched, "τ batched", "tab:green", (10, -20), "left"),
    )
    for tau, label, color, offset, align in marks:
        if tau is None:
            continue
        y = tau * report.T_simulation
        ax.axvline(tau, color=color, lw=0.8, ls=":")
        ax.plot([tau], [y], "o", color=color)
        ax.annotate(
            f"{label} = {format_tau(tau)}",
            (tau, y),
            textcoords="offset points",
            xytext=offset,
            ha=align,
            color=color,
            bbox={"boxstyle": "round", "fc": "white", "ec": color, "alpha": 0.9},
        )
    if report.tau is None and report.tau_batched is None:
        ax.text(0.35, 0.1, "τ: never (the surrogate is not faster)", transform=ax.transAxes)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(1, n_max)
    y_low = min(report.T_simulation, upfront if upfront > 0 else report.T_simulation)
    ax.set_ylim(y_low / 2, max(upfront, n_max * report.T_simulation) * 2)
    ax.set_xlabel("number of evaluations n")
    ax.set_ylabel("cumulative wall time (s)")
    ax.set_title(f"Breakeven of model '{report.model}'")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    return plots.save(fig, path, dpi=120)
