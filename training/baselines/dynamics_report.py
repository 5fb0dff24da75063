"""Report of the dynamics experiment: figures of learning, drift vs fit and trajectories; tables.

Renders a :class:`~training.baselines.dynamics.DynamicsRun` into ``dynamics.md`` with PNG figures
beside it: the learning histories, the energy drift against the training MSE each model was
stopped at, and per integration scheme the trajectories, phase portraits and true-energy error of
every model and of the exact field. The numbers themselves are the run's JSON results.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from training.baselines.dynamics import (
    PRIMARY_INTEGRATOR,
    DynamicsConfig,
    DynamicsRun,
    fit_levels,
    level_key,
)
from training.baselines.dynamics_networks import MODELS
from training.baselines.report import markdown_table, save_figure, write_report

COLORS = {"mlp": "tab:red", "hnn": "tab:blue", "lnn": "tab:green", "exact": "k"}
_ENERGY_FLOOR = 1e-6  # lower limit of the energy-error plots


def write_dynamics_report(run: DynamicsRun, out_dir: Path) -> None:
    """``dynamics.md`` and the PNG figures of one run in ``out_dir`` (created if missing)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = {
        "history": _history_figure(run, out_dir / "dynamics_history.png"),
        "drift_vs_fit": _drift_vs_fit_figure(run, out_dir / "dynamics_drift_vs_fit.png"),
    }
    for scheme in run.trajectories["exact"]:  # the integrators this run used, in run order
        figures[scheme] = _scheme_figure(run, scheme, out_dir / f"dynamics_{scheme}.png")
    write_report(
        out_dir / "dynamics.md",
        "Dynamics: standard vs Hamiltonian vs Lagrangian networks",
        _body(run),
        figures,
    )


def _history_figure(run: DynamicsRun, path: Path) -> str:
    """Training MSE per Adam epoch, then per LM iteration, of every model."""
    import matplotlib.pyplot as plt

    cfg = run.config
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, hist in run.histories.items():
        ax.semilogy(hist, label=name, color=COLORS[name])
    ax.axvline(cfg.epochs, color="0.6", ls=":", lw=1)
    ax.axhline(cfg.fit_tolerance, color="0.3", ls="--", lw=1, label="fit tolerance")
    ax.set(
        xlabel=f"Adam epoch (≤ {cfg.epochs}), then Levenberg–Marquardt iteration",
        ylabel="training MSE of [ẋ, ẍ] / std",
        title="learning histories",
    )
    ax.legend()
    return save_figure(fig, path)


def _drift_vs_fit_figure(run: DynamicsRun, path: Path) -> str:
    """Energy drift (primary scheme) against the training MSE each model was stopped at."""
    import matplotlib.pyplot as plt

    cfg = run.config
    fig, ax = plt.subplots(figsize=(6, 4))
    for name in MODELS:
        by = run.results["models"][name]["drift_by_training_mse"]
        pts = [(lv, by[level_key(lv)]) for lv in fit_levels(cfg) if level_key(lv) in by]
        if pts:
            ax.loglog(*zip(*pts, strict=True), "o-", color=COLORS[name], label=name)
    ax.axvline(cfg.fit_tolerance, color="0.3", ls="--", lw=1, label="fit tolerance (headline)")
    ax.invert_xaxis()
    ax.set(
        xlabel="training MSE the model was stopped at",
        ylabel="energy drift by t = 9",
        title=f"energy drift vs fit ({PRIMARY_INTEGRATOR.replace('_', ' ')})",
    )
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def _scheme_figure(run: DynamicsRun, scheme: str, path: Path) -> str:
    """Trajectories x(t), phase portraits and true-energy error of every model under ``scheme``."""
    import matplotlib.pyplot as plt

    cfg, t, trajectories = run.config, run.t, run.trajectories
    x_true, v_true, _ = cfg.system.solution(t)
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    axes[0].plot(t, x_true, "k--", lw=1, label="exact solution")
    for name in MODELS:
        traj = trajectories[name][scheme]
        axes[0].plot(t, traj[:, 0], color=COLORS[name], label=name)
        axes[1].plot(traj[:, 0], traj[:, 1], color=COLORS[name], lw=1, label=name)
        axes[2].semilogy(t, _energy_error(cfg, traj), color=COLORS[name], label=name)
    ref = trajectories["exact"][scheme]
    axes[2].semilogy(t, _energy_error(cfg, ref), "k:", label="exact field, same scheme")
    axes[1].plot(x_true, v_true, "k--", lw=1, label="exact")
    axes[0].axvspan(0, cfg.t_train, color="0.9", label="training window")
    axes[0].set(xlabel="t", ylabel="x", title=f"trajectories ({scheme.replace('_', ' ')})")
    axes[1].set(xlabel="x", ylabel="ẋ", title="phase portrait")
    # a log scale: the differences between the models are 1e-4 … 1e-2 of E(0), invisible on
    # a linear E/E(0) axis; the floor hides round-off of the exactly conserving schemes
    axes[2].set(
        xlabel="t",
        ylabel="|E(t) − E(0)| / E(0)",
        title="true-energy error",
        ylim=(_ENERGY_FLOOR, 10.0),
    )
    # fit every orbit of this scheme (forward Euler spirals out), but at most 3× the true
    # amplitude so one diverging model cannot squash the rest into the centre
    span = np.array([np.max(np.abs(x_true)), np.max(np.abs(v_true))])  # [2]
    reach = np.nanmax(np.abs(np.stack([trajectories[n][scheme] for n in MODELS])), axis=(0, 1))
    lim = 1.1 * np.clip(reach, span, 3 * span)  # [2]
    axes[1].set(xlim=(-lim[0], lim[0]), ylim=(-lim[1], lim[1]))
    for ax in axes:
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def _energy_error(cfg: DynamicsConfig, traj: np.ndarray) -> np.ndarray:
    """|E(t) − E(0)| / E(0) of a trajectory [T, 2], floored for a log axis. [T]"""
    energy = cfg.system.energy(traj[:, 0], traj[:, 1])
    return np.maximum(np.abs(energy / energy[0] - 1.0), _ENERGY_FLOOR)


def _body(run: DynamicsRun) -> list[str]:
    """The report's paragraphs and tables: per model and scheme, training, drift vs fit."""
    cfg, results = run.config, run.results
    rows = []
    for name in [*MODELS, "exact"]:
        entry = results["models"][name] if name in results["models"] else results["reference"]
        for scheme in run.trajectories["exact"]:
            m = entry["integrators"][scheme]
            rows.append(
                [
                    name if name != "exact" else "exact field (reference)",
                    scheme.replace("_", " "),
                    f"{m['energy_drift']:.3g}",
                    f"{m['trajectory_error']:.3g}",
                    f"{m['trajectory_error_extrapolation']:.3g}",
                ]
            )
    table = markdown_table(
        ["model", "integrator", "energy drift", "traj. error (0–9)", "traj. error (1.5–9)"], rows
    )
    train_rows = [
        [
            n,
            results["models"][n]["parameters"],
            f"{results['models'][n]['train_seconds']:.1f}",
            f"{results['models'][n]['training_mse']:.2e}",
            "yes" if results["models"][n]["reached_fit_tolerance"] else "**no**",
        ]
        for n in MODELS
    ]
    mlp_by = results["models"]["mlp"]["drift_by_training_mse"]
    sweep_rows = []
    for lv in fit_levels(cfg):
        key = level_key(lv)
        row = [key + (" (headline)" if lv == cfg.fit_tolerance else "")]
        for n in MODELS:
            d = results["models"][n]["drift_by_training_mse"].get(key)
            row.append("—" if d is None else f"{d:.3g}")
        for n in ("hnn", "lnn"):
            d = results["models"][n]["drift_by_training_mse"].get(key)
            ok = d is not None and key in mlp_by and d > 0
            row.append(f"{mlp_by[key] / d:.1f}×" if ok else "—")
        sweep_rows.append(row)
    return [
        f"m ẍ + k x = 0, m = {cfg.mass}, k = {cfg.stiffness}, x(0) = {cfg.x0}, "
        f"ẋ(0) = {cfg.v0}; {cfg.n_train} triplets on t ∈ [0, {cfg.t_train}], "
        f"integrated to t = {cfg.t_end} with Δt = {cfg.dt}. Networks: {list(cfg.hidden)} hidden, "
        f"float64, training-data noise {cfg.noise:g}, seed {cfg.seed}. Every network is trained "
        f"to the same training MSE {cfg.fit_tolerance:.0e} (of [ẋ, ẍ] / std): up to "
        f"{cfg.epochs} epochs of full-batch Adam (lr {cfg.lr}), then Levenberg–Marquardt "
        f"(≤ {cfg.lm_iterations} iterations), whose last step is shortened to land on it.",
        "Energy drift = max_t |E(t) − E(0)| / E(0) with the true energy; trajectory error = "
        "relative L2 of x(t). Primary integrator (JSON `energy_drift`): "
        f"{PRIMARY_INTEGRATOR.replace('_', ' ')} — symplectic for any H; leapfrog and "
        "symplectic Euler are symplectic only for separable H = T(p) + V(x), which a learned "
        "H(x, p) is not, so under them the HNN gains energy every period. Forward Euler adds "
        "energy even to the exact field (see the reference rows).",
        table,
        markdown_table(
            ["model", "parameters", "train s", "training MSE", "reached tolerance"], train_rows
        ),
        "Energy drift (implicit midpoint) of the same training runs stopped at other training "
        "MSEs, and the standard network's drift divided by the structured networks':",
        markdown_table(["training MSE", *MODELS, "mlp / hnn", "mlp / lnn"], sweep_rows),
    ]
