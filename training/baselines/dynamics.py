"""Experiment ``dynamics``: standard vs Hamiltonian vs Lagrangian networks on a mass-spring system.

m ẍ + k x = 0 with m = 1, k = 10, x(0) = 0, ẋ(0) = 1 (lecture §3.9.8; :mod:`.mass_spring`). The
three networks of :mod:`.dynamics_networks` are trained on the lecture's 50 noise-free triplets
(x, ẋ, ẍ) sampled on t ∈ [0, 1.5] — about three quarters of one period — all to the SAME training
MSE ``fit_tolerance``: full-batch Adam as a warm start, then Levenberg–Marquardt
(:mod:`.least_squares`), whose last step is shortened to land on it. Each model's vector field,
and the exact one as a reference, is then integrated from the same initial state to t = 9 with
every scheme of :mod:`.integrators`. Reported per model and scheme: trajectory error (relative L2
of x(t) over [0, 9]) and energy drift max_t |E(t) − E(0)| / E(0) with the TRUE energy; the
headline is the implicit midpoint rule, symplectic for any H. Each model's drift is also recorded
at the other training MSEs ``drift_levels`` of the same optimiser path.

Why these choices (equal fit, the midpoint rule, float64, softplus, standardised inputs, clean
data) and what the earlier ones gave: docs/baselines.md. Plots and Markdown:
:mod:`.dynamics_report`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from training.architectures.layers import parameter_count
from training.baselines.dynamics_networks import MODELS, build_model
from training.baselines.integrators import INTEGRATE, INTEGRATORS, VectorField
from training.baselines.least_squares import levenberg_marquardt
from training.baselines.mass_spring import MassSpring

PRIMARY_INTEGRATOR = "implicit_midpoint"  # symplectic for every H, separable or not
# the HNN and LNN differentiate through the network twice (the LNN inverts ∂²L/∂ẋ²); float32
# round-off in those derivatives was a visible share of the drift
DTYPE = torch.float64


@dataclass(frozen=True)
class DynamicsConfig:
    mass: float = 1.0
    stiffness: float = 10.0
    x0: float = 0.0
    v0: float = 1.0
    t_train: float = 1.5  # training window [0, t_train]
    n_train: int = 50  # triplets (x, ẋ, ẍ) in the window
    noise: float = 0.0  # training-data noise, fraction of each quantity's amplitude
    t_end: float = 9.0  # integrate to here
    dt: float = 0.01
    hidden: tuple[int, ...] = (128, 128)
    act: str = "softplus"  # one activation for all three models (smooth second derivatives)
    epochs: int = 1000  # full-batch Adam epochs (warm start), then Levenberg–Marquardt
    fit_tolerance: float = 1e-8  # every model is trained to this training MSE (the headline)
    lm_iterations: int = 300  # at most, after Adam
    # further training MSEs at which the drift is recorded too (implicit midpoint only); levels
    # below fit_tolerance continue training past it, from the same optimiser path
    drift_levels: tuple[float, ...] = (1e-5, 1e-6, 1e-7, 1e-9, 1e-10)
    lr: float = 1e-3
    clip: float = 1.0  # max gradient norm per Adam step
    seed: int = 0

    @property
    def system(self) -> MassSpring:
        return MassSpring(self.mass, self.stiffness, self.x0, self.v0)

    @property
    def steps(self) -> int:
        """Integration steps of Δt from 0 to ``t_end``."""
        return round(self.t_end / self.dt)

    @classmethod
    def quick(cls) -> DynamicsConfig:
        return cls(epochs=500, lm_iterations=200, drift_levels=(1e-6, 1e-7))


def with_epochs(cfg: DynamicsConfig, epochs: int | None) -> DynamicsConfig:
    """``cfg`` with ``epochs`` Adam epochs and at most ``epochs`` LM iterations (None keeps it),
    so a short smoke run (``--epochs 20``) is short in both phases."""
    if not epochs:
        return cfg
    return replace(cfg, epochs=epochs, lm_iterations=min(cfg.lm_iterations, epochs))


def fit_levels(cfg: DynamicsConfig) -> list[float]:
    """The training MSEs at which a model is evaluated, highest first (includes the tolerance)."""
    return sorted({cfg.fit_tolerance, *cfg.drift_levels}, reverse=True)


def level_key(level: float) -> str:
    """How a training-MSE level is named in the JSON and the report: ``1e-08``."""
    return f"{level:.0e}"


def training_data(cfg: DynamicsConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The lecture's samples on [0, t_train]: states (x, ẋ) and rates (ẋ, ẍ), each [n_train, 2]."""
    t_data = np.linspace(0.0, cfg.t_train, cfg.n_train)
    x_d, v_d, a_d = cfg.system.solution(t_data)
    if cfg.noise > 0:
        # relative to each quantity's amplitude, the same U(−1, 1) form as the sine experiment
        rng = np.random.default_rng(cfg.seed)
        x_d, v_d, a_d = (
            q + cfg.noise * np.max(np.abs(q)) * rng.uniform(-1, 1, q.shape) for q in (x_d, v_d, a_d)
        )
    states = torch.tensor(np.stack([x_d, v_d], 1), dtype=DTYPE)  # [m, 2]
    rates = torch.tensor(np.stack([v_d, a_d], 1), dtype=DTYPE)  # [m, 2]
    return states, rates


def rate_residuals(model: nn.Module, states: torch.Tensor, rates: torch.Tensor) -> torch.Tensor:
    """(model rate − data rate) / std(data rate), flattened [2m]; its mean square is the loss.

    Dividing by each rate's spread keeps ẍ (√(k/m) ≈ 3× larger than ẋ) from dominating; for the
    LNN ẋ passes through, so its loss is the lecture's loss on ẍ alone.
    """
    return ((model(states) - rates) / rates.std(0)).reshape(-1)


def training_mse(model: nn.Module, states: torch.Tensor, rates: torch.Tensor) -> float:
    """The training loss of :func:`train_model`."""
    return float(rate_residuals(model, states, rates).detach().pow(2).mean())


def train_model(
    model: nn.Module, states: torch.Tensor, rates: torch.Tensor, cfg: DynamicsConfig
) -> tuple[list[float], dict[float, dict[str, torch.Tensor]]]:
    """Full-batch Adam, then Levenberg–Marquardt, on the MSE of [ẋ, ẍ] / std; states, rates [m, 2].

    Every model is trained to the same training MSE ``cfg.fit_tolerance`` (LM lands on it exactly)
    so the models are compared at equal fit, not at whatever loss each optimiser stalls at. On the
    way, a copy of the parameters is kept at each of :func:`fit_levels` the loss reaches.
    Returns (loss per Adam epoch then per LM iteration, {level: state_dict}).
    """
    pending = fit_levels(cfg)
    snapshots: dict[float, dict[str, torch.Tensor]] = {}

    def residuals() -> torch.Tensor:
        return rate_residuals(model, states, rates)

    def snapshot(level: float) -> None:
        snapshots[level] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    model.train()
    history: list[float] = []
    adam = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    for _ in range(cfg.epochs):
        adam.zero_grad()
        loss = residuals().pow(2).mean()
        history.append(loss.item())
        while pending and history[-1] <= pending[0]:
            snapshot(pending.pop(0))  # the parameters this loss belongs to (before the step)
        if not pending:
            break
        loss.backward()
        # a learned Lagrangian whose ∂²L/∂ẋ² nears zero gives huge accelerations and gradients;
        # clipping (applied to all three models alike) keeps one such step from wrecking training
        nn.utils.clip_grad_norm_(model.parameters(), cfg.clip)
        adam.step()
    if pending:
        fit = levenberg_marquardt(
            residuals, list(model.parameters()), pending, cfg.lm_iterations, on_level=snapshot
        )
        history.extend(fit.losses)
    model.eval()
    return history, snapshots


def trajectory_metrics(cfg: DynamicsConfig, t: np.ndarray, traj: np.ndarray) -> dict[str, float]:
    """Energy drift and trajectory errors of one integrated trajectory [T, 2] against truth."""
    system = cfg.system
    x_true, _v_true, _ = system.solution(t)
    x, v = traj[:, 0], traj[:, 1]
    energy = system.energy(x, v)
    e0 = system.initial_energy()
    finite = bool(np.all(np.isfinite(traj)))
    extrap = t > cfg.t_train
    rel = lambda a, b: float(np.linalg.norm(a - b) / np.linalg.norm(b))  # noqa: E731
    return {
        "energy_drift": float(np.max(np.abs(energy - e0)) / e0) if finite else math.inf,
        "trajectory_error": rel(x, x_true) if finite else math.inf,
        "trajectory_error_extrapolation": rel(x[extrap], x_true[extrap]) if finite else math.inf,
        "final_energy_ratio": float(energy[-1] / e0) if finite else math.inf,
    }


@dataclass
class DynamicsRun:
    """One run of the experiment: the JSON results and what the report plots besides them."""

    config: DynamicsConfig
    # {"config", "primary", "models": {name: {...}}, "reference": {...}}, see run_dynamics
    results: dict[str, Any]
    histories: dict[str, list[float]]  # per model: loss per Adam epoch, then per LM iteration
    trajectories: dict[str, dict[str, np.ndarray]]  # {model or "exact": {scheme: [T, 2]}}
    t: np.ndarray  # [T] integration times, s


def run_dynamics(
    cfg: DynamicsConfig,
    log: Callable[[str], None] = print,
    schemes: Sequence[str] = INTEGRATORS,
) -> DynamicsRun:
    """Train the three models, integrate each field with ``schemes``, measure against the truth.

    ``results`` is ``{"config": ..., "models": {name: {...}}, "reference": {...}}`` where each
    model entry carries the primary-scheme ``energy_drift`` and ``trajectory_error`` plus every
    scheme under ``"integrators"``. ``schemes`` must include :data:`PRIMARY_INTEGRATOR`; fewer
    schemes only make a run cheaper (a test over several seeds).
    """
    if PRIMARY_INTEGRATOR not in schemes:
        raise ValueError(f"schemes must include the primary {PRIMARY_INTEGRATOR!r}")
    torch.manual_seed(cfg.seed)
    states, rates = training_data(cfg)
    steps = cfg.steps
    t = np.arange(steps + 1) * cfg.dt
    state0 = torch.tensor([[cfg.x0, cfg.v0]], dtype=DTYPE)
    primary = INTEGRATE[PRIMARY_INTEGRATOR]

    fields: dict[str, VectorField] = {}
    results: dict[str, Any] = {"config": asdict(cfg), "models": {}, "primary": PRIMARY_INTEGRATOR}
    histories: dict[str, list[float]] = {}
    for name in MODELS:
        torch.manual_seed(cfg.seed)
        model = build_model(name, states, rates, cfg.hidden, cfg.act, cfg.mass)
        start = time.perf_counter()
        histories[name], snapshots = train_model(model, states, rates, cfg)
        train_s = time.perf_counter() - start
        trained = {k: v.detach().clone() for k, v in model.state_dict().items()}
        by_mse = {}  # {training-MSE level: energy drift}; the headline level follows below
        for level, state in snapshots.items():
            if level != cfg.fit_tolerance:
                model.load_state_dict(state)
                traj = primary(model, state0, cfg.dt, steps)
                by_mse[level_key(level)] = trajectory_metrics(cfg, t, traj)["energy_drift"]
        reached = cfg.fit_tolerance in snapshots
        # the headline model is the one at the common training error; one that never got there
        # is reported where its training ended, not at the last snapshot integrated above
        model.load_state_dict(snapshots[cfg.fit_tolerance] if reached else trained)
        fields[name] = model
        mse = training_mse(model, states, rates)
        results["models"][name] = {
            "parameters": parameter_count(model),
            "train_seconds": train_s,
            "training_mse": mse,
            "reached_fit_tolerance": reached,
            "drift_by_training_mse": by_mse,
        }
        log(
            f"dynamics: trained {name} in {train_s:.1f} s (training MSE {mse:.2e}"
            + ("" if reached else f", did NOT reach {cfg.fit_tolerance:.0e}")
            + ")"
        )
    fields["exact"] = cfg.system.vector_field()

    trajectories: dict[str, dict[str, np.ndarray]] = {}
    for name, field in fields.items():
        trajectories[name] = {}
        per_scheme = {}
        for scheme in schemes:
            traj = INTEGRATE[scheme](field, state0, cfg.dt, steps)
            trajectories[name][scheme] = traj
            per_scheme[scheme] = trajectory_metrics(cfg, t, traj)
        entry = results["models"].setdefault(name, {}) if name != "exact" else {}
        entry.update(per_scheme[PRIMARY_INTEGRATOR])
        entry["integrators"] = per_scheme
        if name != "exact" and entry["reached_fit_tolerance"]:
            by_mse = {
                **entry["drift_by_training_mse"],
                level_key(cfg.fit_tolerance): entry["energy_drift"],
            }
            entry["drift_by_training_mse"] = {
                level_key(lv): by_mse[level_key(lv)]
                for lv in fit_levels(cfg)
                if level_key(lv) in by_mse
            }
        if name == "exact":
            results["reference"] = entry
    return DynamicsRun(cfg, results, histories, trajectories, t)
