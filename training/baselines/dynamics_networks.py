"""Dynamics networks (state → rate): the standard, Hamiltonian (HNN) and Lagrangian (LNN) networks.

All three share one interface so they are trained and integrated identically:
``model(state) -> state_rate`` with ``state = [x, v]`` of shape [B, 2D] (position, velocity) and
``state_rate = [ẋ, v̇]`` of the same shape (D degrees of freedom; the mass-spring case has D = 1).

- :class:`DerivativeNetwork` — the unconstrained reference: an MLP from state to its rate.
- :class:`HamiltonianNetwork` — an MLP for the scalar H(x, p), p = m v; the rate follows from
  Hamilton's equations ẋ = ∂H/∂p, ṗ = −∂H/∂x (:func:`hamiltonian_vector_field`).
- :class:`LagrangianNetwork` — an MLP for the scalar L(x, ẋ); the acceleration follows from the
  Euler–Lagrange equation solved for ẍ (:func:`lagrangian_acceleration`):
  ẍ = (∂²L/∂ẋ²)⁻¹ (∂L/∂x − ∂²L/∂x∂ẋ · ẋ).

The formula functions accept any differentiable callable, so the tests feed them the analytic
H = p²/2m + kx²/2 and L = mẋ²/2 − kx²/2 and check that the exact dynamics come out.

Every network starts with a fixed :class:`Standardize` layer (training-data mean and standard
deviation of its inputs): x and v differ in amplitude by √(k/m), and an unscaled input would make
the second derivatives the LNN inverts badly conditioned. Autograd differentiates through it, so
H and L stay functions of the physical (x, p) and (x, ẋ). :func:`build_model` builds any of the
three by name (:data:`MODELS`) from the training data's statistics.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from training.architectures.layers import mlp

MODELS = ("mlp", "hnn", "lnn")  # standard network, Hamiltonian network, Lagrangian network
ScalarFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # ([B, D], [B, D]) -> [B(,1)]


def _grads(
    out: torch.Tensor, wrt: Sequence[torch.Tensor], create_graph: bool
) -> list[torch.Tensor]:
    """d(sum out)/d w for each w in ``wrt``; zeros where ``out`` does not depend on w.

    Summing over the batch is exact because each sample's output depends on its own inputs only.
    The graph is retained so the same output can be differentiated again (Hessian rows).
    """
    if not out.requires_grad:
        return [torch.zeros_like(w) for w in wrt]
    grads = torch.autograd.grad(
        out.sum(), list(wrt), create_graph=create_graph, retain_graph=True, allow_unused=True
    )
    return [torch.zeros_like(w) if g is None else g for g, w in zip(grads, wrt, strict=True)]


def hamiltonian_vector_field(
    hamiltonian: ScalarFunction, x: torch.Tensor, p: torch.Tensor, create_graph: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hamilton's equations: (ẋ, ṗ) = (∂H/∂p, −∂H/∂x), each [B, D].

    ``create_graph=True`` keeps the graph so a loss on the rates can be back-propagated to the
    parameters of H (training); leave it False when integrating.
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        p = p.detach().requires_grad_(True)
        h = hamiltonian(x, p)
        dh_dx, dh_dp = _grads(h, (x, p), create_graph)
    return dh_dp, -dh_dx


def lagrangian_acceleration(
    lagrangian: ScalarFunction, x: torch.Tensor, v: torch.Tensor, create_graph: bool = False
) -> torch.Tensor:
    """ẍ from the Euler–Lagrange equation, [B, D].

    d/dt ∂L/∂ẋ = ∂L/∂x expands to ∂²L/∂ẋ² ẍ + ∂²L/∂x∂ẋ ẋ = ∂L/∂x, so the matrix that must be
    inverted is the Hessian in the velocities, ∂²L/∂ẋ² ([B, D, D]), not any first derivative.
    Rows of the mixed Hessian are built one velocity component at a time (D is small).
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        v = v.detach().requires_grad_(True)
        lag = lagrangian(x, v)
        # first derivatives keep their graph: ∂L/∂ẋ is differentiated again
        dl_dx, dl_dv = _grads(lag, (x, v), create_graph=True)  # [B, D] each
        hess_vv_rows, hess_vx_rows = [], []
        for i in range(v.shape[1]):
            d2_dv, d2_dx = _grads(dl_dv[:, i], (v, x), create_graph)
            hess_vv_rows.append(d2_dv)  # ∂²L/∂ẋ_i∂ẋ  [B, D]
            hess_vx_rows.append(d2_dx)  # ∂²L/∂ẋ_i∂x  [B, D]
    hess_vv = torch.stack(hess_vv_rows, dim=1)  # [B, D, D]
    hess_vx = torch.stack(hess_vx_rows, dim=1)  # [B, D, D]: row i = ∂(∂L/∂ẋ_i)/∂x
    rhs = dl_dx - (hess_vx @ v.unsqueeze(-1)).squeeze(-1)  # [B, D]
    # solve_ex: a singular Hessian (an L that is flat in ẋ) gives NaN instead of an exception, so a
    # diverging learned Lagrangian shows up in the metrics rather than aborting the experiment
    acc, info = torch.linalg.solve_ex(hess_vv, rhs)
    acc = torch.where((info == 0).unsqueeze(-1), acc, torch.full_like(acc, torch.nan))
    return acc if create_graph else acc.detach()


class Standardize(nn.Module):
    """Fixed affine input map (z − mean) / std, [B, F] → [B, F]; not trained."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: torch.Tensor | None = None, std: torch.Tensor | None = None) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(()) if mean is None else mean.detach().clone())
        self.register_buffer("std", torch.ones(()) if std is None else std.detach().clone())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.mean) / self.std


def _scaled_mlp(
    n_in: int,
    n_out: int,
    hidden: Sequence[int],
    act: str,
    input_mean: torch.Tensor | None,
    input_std: torch.Tensor | None,
) -> nn.Sequential:
    return nn.Sequential(Standardize(input_mean, input_std), *mlp(n_in, n_out, hidden, act))


class DerivativeNetwork(nn.Module):
    """Standard network: [x, v] ↦ [ẋ, v̇] with no structure imposed. [B, 2D] → [B, 2D].

    ``output_scale`` ([2D], e.g. the rates' standard deviation) multiplies the raw output so the
    last layer works at unit scale, as the scalar networks below do through their inputs.
    """

    output_scale: torch.Tensor

    def __init__(
        self,
        dof: int = 1,
        hidden: Sequence[int] = (64, 64),
        act: str = "tanh",
        input_mean: torch.Tensor | None = None,
        input_std: torch.Tensor | None = None,
        output_scale: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.dof = dof
        self.net = _scaled_mlp(2 * dof, 2 * dof, hidden, act, input_mean, input_std)
        scale = torch.ones(()) if output_scale is None else output_scale.detach().clone()
        self.register_buffer("output_scale", scale)

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        return self.net(state) * self.output_scale


class HamiltonianNetwork(nn.Module):
    """HNN: a scalar H(x, p; Θ) whose symplectic gradient is the rate. [B, 2D] → [B, 2D].

    The state carries velocity; the known mass converts it to momentum p = m v and back
    (v̇ = ṗ / m), so the HNN's rates are comparable with the other models'.
    """

    def __init__(
        self,
        dof: int = 1,
        hidden: Sequence[int] = (64, 64),
        act: str = "tanh",
        mass: float = 1.0,
        input_mean: torch.Tensor | None = None,
        input_std: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.dof = dof
        self.mass = mass
        # standardised (x, p): the state's velocity statistics times the mass
        self.net = _scaled_mlp(2 * dof, 1, hidden, act, input_mean, input_std)

    def hamiltonian(self, x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, p], dim=1)).squeeze(1)  # [B]

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        x, v = state[:, : self.dof], state[:, self.dof :]
        x_dot, p_dot = hamiltonian_vector_field(
            self.hamiltonian, x, self.mass * v, create_graph=self.training
        )
        return torch.cat([x_dot, p_dot / self.mass], dim=1)


class LagrangianNetwork(nn.Module):
    """LNN: a scalar L(x, ẋ; Θ); ẋ passes through, ẍ from Euler–Lagrange. [B, 2D] → [B, 2D].

    Softplus is the default activation because tanh's second derivative vanishes far from the
    origin, which would make ∂²L/∂ẋ² (the matrix that is inverted) nearly singular there.
    """

    def __init__(
        self,
        dof: int = 1,
        hidden: Sequence[int] = (64, 64),
        act: str = "softplus",
        input_mean: torch.Tensor | None = None,
        input_std: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.dof = dof
        self.net = _scaled_mlp(2 * dof, 1, hidden, act, input_mean, input_std)

    def lagrangian(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, v], dim=1)).squeeze(1)  # [B]

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        x, v = state[:, : self.dof], state[:, self.dof :]
        acc = lagrangian_acceleration(self.lagrangian, x, v, create_graph=self.training)
        return torch.cat([v, acc], dim=1)


def build_model(
    name: str,
    states: torch.Tensor,
    rates: torch.Tensor,
    hidden: Sequence[int],
    act: str,
    mass: float,
) -> nn.Module:
    """One of :data:`MODELS` for one degree of freedom, standardised with the training data.

    ``states`` [m, 2] = (x, ẋ) and ``rates`` [m, 2] = (ẋ, ẍ) give the input statistics (and the
    standard network's output scale); the model takes their dtype.
    """
    mean, std = states.mean(0), states.std(0)  # [2] each
    if name == "mlp":
        model: nn.Module = DerivativeNetwork(1, hidden, act, mean, std, rates.std(0))
    elif name == "hnn":
        # the HNN sees (x, p = m v)
        scale = torch.tensor([1.0, mass], dtype=states.dtype)
        model = HamiltonianNetwork(1, hidden, act, mass, mean * scale, std * scale)
    elif name == "lnn":
        model = LagrangianNetwork(1, hidden, act, mean, std)
    else:
        raise ValueError(f"unknown dynamics model {name!r}; choose from {', '.join(MODELS)}")
    return model.to(states.dtype)
