"""Time integrators for a state → rate vector field: implicit midpoint, leapfrog, two Euler schemes.

Every scheme takes the field f ([B, 2] → [B, 2], state ``[x, ẋ]``), the initial state [1, 2], the
step Δt and the number of steps, and returns the trajectory as a NumPy array [steps + 1, 2]. A
trajectory that leaves any plausible range (non-finite, or 1e3 × the initial amplitude) is stopped
and padded with NaN, so a diverging learned field shows up in the metrics instead of running on.

The implicit midpoint rule is symplectic for EVERY Hamiltonian, separable or not, and conserves
quadratic invariants exactly; Störmer–Verlet leapfrog and symplectic Euler are symplectic only for
a separable H = T(p) + V(x); forward Euler (the lecture's) adds energy even to the exact field.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

VectorField = Callable[[torch.Tensor], torch.Tensor]  # state [B, 2] -> rate [B, 2]


def implicit_midpoint(
    field: VectorField,
    state0: torch.Tensor,
    dt: float,
    steps: int,
    tol: float = 1e-12,
    max_iter: int = 50,
) -> np.ndarray:
    """s_{n+1} = s_n + Δt f((s_n + s_{n+1}) / 2), solved by fixed-point iteration. [steps + 1, 2].

    Symplectic for any Hamiltonian (separable or not) and symmetric; it conserves quadratic
    invariants exactly, so the exact oscillator keeps its energy to round-off. The iteration
    contracts because Δt·Lip(f) ≈ ωΔt ≈ 0.03; ``tol`` is absolute on the state (float64).
    """
    states = [state0]
    s = state0
    for _ in range(steps):
        nxt = (s + dt * field(s)).detach()  # explicit Euler predictor
        for _ in range(max_iter):
            new = (s + dt * field(0.5 * (s + nxt))).detach()
            converged = float((new - nxt).abs().max()) < tol
            nxt = new
            if converged or _diverged(nxt):
                break
        s = nxt
        states.append(s)
        if _diverged(s):
            break
    return _finish(states, steps)


def leapfrog(field: VectorField, state0: torch.Tensor, dt: float, steps: int) -> np.ndarray:
    """Störmer–Verlet: half kick, drift at the half-step velocity, half kick. [steps + 1, 2].

    Second order and symplectic for separable H; its own energy error for the exact oscillator is
    about (ωΔt)²/8, far below symplectic Euler's ωΔt/2, so model errors are not masked.
    """
    states = [state0]
    s = state0
    for _ in range(steps):
        x, v = s[:, :1], s[:, 1:]
        v_half = v + 0.5 * dt * field(s)[:, 1:]
        x_new = x + dt * field(torch.cat([x, v_half], dim=1))[:, :1]
        v_new = v_half + 0.5 * dt * field(torch.cat([x_new, v_half], dim=1))[:, 1:]
        s = torch.cat([x_new, v_new], dim=1).detach()
        states.append(s)
        if _diverged(s):
            break
    return _finish(states, steps)


def symplectic_euler(field: VectorField, state0: torch.Tensor, dt: float, steps: int) -> np.ndarray:
    """Velocity first, then position at the new velocity (semi-implicit Euler).

    v_{n+1} = v_n + Δt v̇(x_n, v_n);  x_{n+1} = x_n + Δt ẋ(x_n, v_{n+1}).
    Exactly symplectic when the vector field comes from a separable H(x, p) = T(p) + V(x); for the
    learned fields it is the same explicit scheme for all models, which is what the comparison
    needs. Returns [steps + 1, 2].
    """
    states = [state0]
    s = state0
    for _ in range(steps):
        v_new = s[:, 1:] + dt * field(s)[:, 1:]
        x_new = s[:, :1] + dt * field(torch.cat([s[:, :1], v_new], dim=1))[:, :1]
        s = torch.cat([x_new, v_new], dim=1).detach()
        states.append(s)
        if _diverged(s):
            break
    return _finish(states, steps)


def forward_euler(field: VectorField, state0: torch.Tensor, dt: float, steps: int) -> np.ndarray:
    """s_{n+1} = s_n + Δt f(s_n). Returns the trajectory [steps + 1, 2]."""
    states = [state0]
    s = state0
    for _ in range(steps):
        s = (s + dt * field(s)).detach()
        states.append(s)
        if _diverged(s):
            break
    return _finish(states, steps)


INTEGRATE: dict[str, Callable[[VectorField, torch.Tensor, float, int], np.ndarray]] = {
    "implicit_midpoint": implicit_midpoint,
    "leapfrog": leapfrog,
    "symplectic_euler": symplectic_euler,
    "forward_euler": forward_euler,
}
INTEGRATORS = tuple(INTEGRATE)  # scheme names, in report order


def _diverged(s: torch.Tensor) -> bool:
    # 1e3 × the initial amplitude: far outside anything a trained model should visit
    return not bool(torch.isfinite(s).all()) or float(s.abs().max()) > 1e3


def _finish(states: list[torch.Tensor], steps: int) -> np.ndarray:
    """Stack the states; pad with NaN when integration stopped early on divergence."""
    traj = torch.cat(states).numpy()
    if len(traj) < steps + 1:
        traj = np.concatenate([traj, np.full((steps + 1 - len(traj), 2), np.nan, traj.dtype)])
    return traj
