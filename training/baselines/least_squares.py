"""Levenberg–Marquardt for small full-batch least-squares fits of a network's parameters.

The dynamics experiment fits networks with ~17,000 parameters to 100 residuals. Gradient methods
stall on such fits at very different losses for different architectures (L-BFGS left the
Lagrangian network 5–35× above the standard network), which would make a comparison of the
architectures a comparison of how hard each is to optimise. A Gauss–Newton method with damping
converges on all of them. Neither torch nor its ecosystem ships one, and SciPy's MINPACK ``lm``
needs at least as many residuals as parameters, so it is written here.

With r ∈ R^m the residuals and J = ∂r/∂θ ∈ R^{m×n} (m ≪ n), the damped Gauss–Newton step is
    δ = (JᵀJ + μ I)⁻¹ Jᵀ r = Jᵀ (J Jᵀ + μ I)⁻¹ r,
and the right-hand form only solves an m × m system. μ = λ · mean(diag(J Jᵀ)) makes λ scale-free;
λ shrinks after a step that lowers the loss and grows until one does (Levenberg's rule).
J comes from one batched backward pass (``is_grads_batched``), so second derivatives inside the
residuals (Hamiltonian and Lagrangian networks) are differentiated once more, not approximated.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

Residuals = Callable[[], torch.Tensor]  # () -> r [m], differentiable in the parameters


@dataclass
class FitResult:
    losses: list[float] = field(default_factory=list)  # mean(r²) before each iteration, then final
    reached: list[float] = field(default_factory=list)  # the levels landed on, in order

    @property
    def final_loss(self) -> float:
        return self.losses[-1]


def jacobian(residuals: torch.Tensor, params: Sequence[torch.Tensor]) -> torch.Tensor:
    """∂r/∂θ as a dense [m, n] matrix (θ = all ``params`` flattened in order)."""
    m = residuals.numel()
    eye = torch.eye(m, dtype=residuals.dtype, device=residuals.device)
    grads = torch.autograd.grad(
        residuals, list(params), grad_outputs=eye, is_grads_batched=True, allow_unused=True
    )
    blocks = [
        (torch.zeros((m, *p.shape), dtype=p.dtype, device=p.device) if g is None else g).reshape(
            m, -1
        )
        for g, p in zip(grads, params, strict=True)
    ]  # a None gradient is a parameter the residuals ignore (the LNN's output bias)
    return torch.cat(blocks, dim=1)


def levenberg_marquardt(
    residual_fn: Residuals,
    params: Sequence[torch.Tensor],
    levels: Sequence[float] = (0.0,),
    max_iterations: int = 200,
    on_level: Callable[[float], None] | None = None,
    damping: float = 1e-3,
) -> FitResult:
    """Minimise mean(r²) over ``params`` in place, down to the lowest of ``levels`` at most.

    Whenever a step crosses one of ``levels``, its length is cut by bisection so the parameters
    sit at mean(r²) = level (to 1e-12 of the step), and ``on_level(level)`` is called there (to
    evaluate or snapshot the model *at that training error*); then the full step is taken, so the
    optimiser's path does not depend on which levels are watched. The fit ends on the lowest
    level, when no step lowers the loss any more, or after ``max_iterations``.
    """
    params = list(params)
    pending = sorted(levels, reverse=True)
    vec = torch.nn.utils.parameters_to_vector
    set_vec = torch.nn.utils.vector_to_parameters
    result = FitResult()

    def loss_now() -> float:
        return float(residual_fn().detach().pow(2).mean())

    def land(theta: torch.Tensor, step: torch.Tensor, level: float) -> None:
        lo, hi = 0.0, 1.0  # fractions of the step with loss(lo) > level ≥ loss(hi)
        while hi - lo > 1e-12:
            mid = 0.5 * (lo + hi)
            set_vec(theta - mid * step, params)
            if loss_now() > level:
                lo = mid
            else:
                hi = mid
        set_vec(theta - hi * step, params)
        result.reached.append(level)
        if on_level is not None:
            on_level(level)

    start = loss_now()
    while pending and start <= pending[0]:  # already below on entry: nothing to land on
        result.reached.append(pending.pop(0))
    if not pending:
        result.losses.append(start)
        return result
    lam = damping
    for _ in range(max_iterations):
        r = residual_fn()
        jac = jacobian(r, params).detach()
        r = r.detach()
        loss = float(r.pow(2).mean())
        result.losses.append(loss)
        theta = vec(params).detach().clone()
        jjt = jac @ jac.T  # [m, m]
        scale = float(jjt.diagonal().mean())
        eye = torch.eye(len(r), dtype=r.dtype, device=r.device)
        while True:
            step = jac.T @ torch.linalg.solve(jjt + lam * scale * eye, r)  # [n]
            set_vec(theta - step, params)
            new = loss_now()
            if new < loss:
                lam = max(lam / 3.0, 1e-15)
                break
            lam *= 4.0
            if lam > 1e12:  # not even a tiny gradient step lowers the loss: as far as it goes
                set_vec(theta, params)
                return result
        while pending and new <= pending[0]:
            land(theta, step, pending.pop(0))
            if not pending:  # the lowest level: stay where it was landed
                result.losses.append(loss_now())
                return result
            set_vec(theta - step, params)
    result.losses.append(loss_now())
    return result
