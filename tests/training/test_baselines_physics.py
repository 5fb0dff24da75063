"""Formula functions of the HNN, LNN and Sobolev loss against analytic callables."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from training.architectures.fully_connected import mlp
from training.architectures.hamiltonian import hamiltonian_vector_field, lagrangian_acceleration
from training.baselines.dynamics import DynamicsConfig, exact_field, leapfrog, trajectory_metrics
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


def test_leapfrog_conserves_exact_energy() -> None:
    cfg = DynamicsConfig()
    steps = round(cfg.t_end / cfg.dt)
    traj = leapfrog(exact_field(cfg), torch.tensor([[cfg.x0, cfg.v0]]), cfg.dt, steps)
    metrics = trajectory_metrics(cfg, np.arange(steps + 1) * cfg.dt, traj)
    assert metrics["energy_drift"] < 1e-3
    assert metrics["trajectory_error"] < 5e-3
