"""Exact answers for the HNN, LNN and Sobolev formulas, the oscillator and the integrators."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from training.architectures.layers import mlp
from training.baselines.dynamics import DynamicsConfig, trajectory_metrics
from training.baselines.dynamics_networks import hamiltonian_vector_field, lagrangian_acceleration
from training.baselines.integrators import forward_euler, implicit_midpoint, leapfrog
from training.baselines.mass_spring import MassSpring
from training.baselines.sine import sobolev_loss, value_and_derivative

M, K = 1.5, 10.0


def _states(n: int = 17) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 1, generator=g, dtype=torch.float64), torch.randn(
        n, 1, generator=g, dtype=torch.float64
    )


def test_hnn_vector_field_exact_for_analytic_hamiltonian() -> None:
    x, p = _states()
    x_dot, p_dot = hamiltonian_vector_field(lambda x, p: p**2 / (2 * M) + K * x**2 / 2, x, p)
    torch.testing.assert_close(x_dot, p / M)
    torch.testing.assert_close(p_dot, -K * x)


@pytest.mark.parametrize("gauge", [0.0, 0.7])
def test_lnn_acceleration_exact_for_analytic_lagrangian(gauge: float) -> None:
    """ẍ = −(k/m) x; the gauge term c·x·ẋ (a total derivative) must not change it, which
    exercises the mixed second derivative."""
    x, v = _states()
    acc = lagrangian_acceleration(lambda x, v: M * v**2 / 2 + gauge * x * v - K * x**2 / 2, x, v)
    torch.testing.assert_close(acc, -K / M * x)


def test_lnn_inverts_the_velocity_hessian() -> None:
    """L = a ẋ⁴/12 − k x²/2: ∂²L/∂ẋ² = a ẋ² and ∂L/∂ẋ = a ẋ³/3 differ, so only the right
    inverse gives ẍ = −k x / (a ẋ²)."""
    x, v = _states()
    a = 2.0
    acc = lagrangian_acceleration(lambda x, v: a * v**4 / 12 - K * x**2 / 2, x, v)
    torch.testing.assert_close(acc, -K * x / (a * v**2))


def test_autograd_derivative_matches_finite_differences() -> None:
    torch.manual_seed(0)
    net = mlp(1, 1, [50, 50], "tanh").double()
    x = torch.linspace(-1, 1, 11, dtype=torch.float64).unsqueeze(1)
    _, dy = value_and_derivative(net, x, create_graph=False)
    h = 1e-6
    with torch.no_grad():
        fd = (net(x + h) - net(x - h)) / (2 * h)
    torch.testing.assert_close(dy, fd, rtol=1e-6, atol=1e-8)


class _Sine(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sin(2 * math.pi * x)


def test_sobolev_loss_uses_the_derivative() -> None:
    x = torch.linspace(-1, 1, 41).unsqueeze(1)
    y, dy = torch.sin(2 * math.pi * x), 2 * math.pi * torch.cos(2 * math.pi * x)
    model = _Sine()
    assert sobolev_loss(model, x, y, dy).item() == pytest.approx(0.0, abs=1e-10)
    # wrong derivative targets cost exactly their squared error against dŷ/dx
    expected = torch.mean(dy**2).item()
    assert sobolev_loss(model, x, y, torch.zeros_like(dy)).item() == pytest.approx(expected, 1e-5)
    # and the loss is differentiable with respect to the parameters through dŷ/dx
    net = mlp(1, 1, [8], "tanh")
    sobolev_loss(net, x, y, dy).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def _exact_run(cfg: DynamicsConfig) -> tuple[torch.Tensor, np.ndarray]:
    """Initial state [1, 2] (float64) and the times [steps + 1] of the experiment's integration."""
    state0 = torch.tensor([[cfg.x0, cfg.v0]], dtype=torch.float64)
    return state0, np.arange(cfg.steps + 1) * cfg.dt


def test_mass_spring_solution_solves_the_equation_of_motion() -> None:
    system = MassSpring(mass=M, stiffness=K, x0=0.3, v0=-1.2)
    t = np.linspace(0.0, 5.0, 101)
    x, v, a = system.solution(t)
    assert (x[0], v[0]) == pytest.approx((0.3, -1.2))
    np.testing.assert_allclose(M * a + K * x, 0.0, atol=1e-12)
    # ẋ is the derivative of x (central differences, error O(h²) ≈ 1e-9 here)
    h = 1e-5
    x_plus, x_minus = system.solution(t + h)[0], system.solution(t - h)[0]
    np.testing.assert_allclose((x_plus - x_minus) / (2 * h), v, atol=1e-8)
    energy = system.energy(x, v)
    np.testing.assert_allclose(energy, system.initial_energy(), rtol=1e-13)


def test_implicit_midpoint_follows_its_exact_discrete_rotation() -> None:
    """On ẍ = −ω²x the midpoint rule is a rotation of (ωx, ẋ) by θ = 2 atan(ωΔt/2) per step, so
    x_n = (v0/ω) sin(nθ) exactly and the energy is kept to round-off."""
    cfg = DynamicsConfig()
    state0, t = _exact_run(cfg)
    traj = implicit_midpoint(cfg.system.vector_field(), state0, cfg.dt, cfg.steps)
    w = cfg.system.omega
    theta = 2 * math.atan(w * cfg.dt / 2)
    n = np.arange(cfg.steps + 1)
    np.testing.assert_allclose(traj[:, 0], cfg.v0 / w * np.sin(n * theta), rtol=0, atol=1e-10)
    np.testing.assert_allclose(traj[:, 1], cfg.v0 * np.cos(n * theta), rtol=0, atol=1e-10)
    assert trajectory_metrics(cfg, t, traj)["energy_drift"] < 1e-10


def test_forward_euler_inflates_energy_by_one_plus_omega_dt_squared_per_step() -> None:
    cfg = DynamicsConfig()
    state0, t = _exact_run(cfg)
    traj = forward_euler(cfg.system.vector_field(), state0, cfg.dt, cfg.steps)
    growth = (1 + (cfg.system.omega * cfg.dt) ** 2) ** cfg.steps  # ≈ 2.46 over 9 s
    metrics = trajectory_metrics(cfg, t, traj)
    assert metrics["final_energy_ratio"] == pytest.approx(growth, rel=1e-12)


def test_leapfrog_conserves_exact_energy() -> None:
    cfg = DynamicsConfig()
    state0, t = _exact_run(cfg)
    traj = leapfrog(cfg.system.vector_field(), state0, cfg.dt, cfg.steps)
    metrics = trajectory_metrics(cfg, t, traj)
    assert metrics["energy_drift"] < 1e-3
    assert metrics["trajectory_error"] < 5e-3
