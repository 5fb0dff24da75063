"""Levenberg–Marquardt, which brings every dynamics network to one training MSE."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from training.baselines.dynamics_networks import LagrangianNetwork
from training.baselines.least_squares import jacobian, levenberg_marquardt


def _fit_problem() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    x = torch.linspace(-1, 1, 12, dtype=torch.float64).unsqueeze(1)  # [12, 1]
    y = torch.sin(2 * math.pi * x)
    net = nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Linear(16, 1)).double()
    return net, x, y


def test_jacobian_matches_finite_differences() -> None:
    net, x, y = _fit_problem()
    params = list(net.parameters())
    jac = jacobian((net(x) - y).reshape(-1), params)  # [12, 49]
    assert jac.shape == (12, sum(p.numel() for p in params))
    theta = torch.nn.utils.parameters_to_vector(params).detach().clone()
    h = 1e-6
    for j in (0, 7, 20, 48):  # a weight and bias of each layer
        shifted = []
        for sign in (1, -1):
            t = theta.clone()
            t[j] += sign * h
            torch.nn.utils.vector_to_parameters(t, params)
            with torch.no_grad():
                shifted.append((net(x) - y).reshape(-1))
        torch.nn.utils.vector_to_parameters(theta, params)
        fd = (shifted[0] - shifted[1]) / (2 * h)
        torch.testing.assert_close(jac[:, j], fd, rtol=1e-6, atol=1e-8)


def test_lands_on_each_level_and_stops_at_the_lowest() -> None:
    net, x, y = _fit_problem()
    seen: dict[float, float] = {}

    def residuals() -> torch.Tensor:
        return (net(x) - y).reshape(-1)

    def loss() -> float:
        return float(residuals().detach().pow(2).mean())

    start = loss()
    result = levenberg_marquardt(
        residuals, list(net.parameters()), (1e-4, 1e-9), 200, lambda lv: seen.update({lv: loss()})
    )
    assert start > 1e-2  # an untrained net: the fit had work to do
    assert result.reached == [1e-4, 1e-9]
    assert seen[1e-4] == pytest.approx(1e-4, rel=1e-6)  # called AT the level, not below it
    assert loss() == pytest.approx(1e-9, rel=1e-6)  # and the fit ends on the lowest level
    assert result.final_loss == pytest.approx(1e-9, rel=1e-6)


def test_reports_a_level_it_cannot_reach() -> None:
    """A linear model cannot fit a sine: the fit stops at its least-squares optimum, unflagged."""
    torch.manual_seed(0)
    x = torch.linspace(-1, 1, 12, dtype=torch.float64).unsqueeze(1)
    y = torch.sin(2 * math.pi * x)
    lin = nn.Linear(1, 1).double()
    result = levenberg_marquardt(lambda: (lin(x) - y).reshape(-1), list(lin.parameters()), (1e-9,))
    assert result.reached == []
    # the least-squares line through the data, from the normal equations
    a = torch.cat([x, torch.ones_like(x)], 1)
    best = torch.linalg.lstsq(a, y).solution
    optimum = float((a @ best - y).pow(2).mean())
    assert result.final_loss == pytest.approx(optimum, rel=1e-8)


def test_jacobian_through_a_lagrangian_networks_second_derivatives() -> None:
    """The LNN's residuals contain (∂²L/∂ẋ²)⁻¹; J must differentiate that exactly, and the
    output bias, which drops out of ẍ, must give a zero column rather than an error."""
    torch.manual_seed(0)
    t = torch.linspace(0, 1.5, 20, dtype=torch.float64)
    w = math.sqrt(10.0)
    states = torch.stack([torch.sin(w * t) / w, torch.cos(w * t)], 1)  # [20, 2]
    net = LagrangianNetwork(1, (8, 8), "softplus", states.mean(0), states.std(0)).double()
    net.train()
    params = list(net.parameters())

    def residuals() -> torch.Tensor:
        return net(states)[:, 1] + 10.0 * states[:, 0]  # ẍ − ẍ_true, [20]

    jac = jacobian(residuals(), params)
    assert torch.all(jac[:, -1] == 0)  # the output bias
    theta = torch.nn.utils.parameters_to_vector(params).detach().clone()
    h = 1e-6
    for j in (0, 5, 30, jac.shape[1] - 3):
        shifted = []
        for sign in (1, -1):
            tt = theta.clone()
            tt[j] += sign * h
            torch.nn.utils.vector_to_parameters(tt, params)
            shifted.append(residuals().detach())
        torch.nn.utils.vector_to_parameters(theta, params)
        fd = (shifted[0] - shifted[1]) / (2 * h)
        torch.testing.assert_close(jac[:, j], fd, rtol=1e-5, atol=1e-7)
