"""The mass-spring oscillator m ẍ + k x = 0: exact solution, true energy and exact vector field.

The dynamics experiment learns this system from samples and measures every learned model against
it: trajectories against :meth:`MassSpring.solution`, energy drift with the TRUE energy
:meth:`MassSpring.energy` (never a model's learned one), and :meth:`MassSpring.vector_field`
integrated with the same schemes as the networks, as the reference for the integrators' own error.
State layout as in :mod:`training.baselines.dynamics_networks`: ``[x, ẋ]``, one degree of freedom.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from training.baselines.integrators import VectorField


@dataclass(frozen=True)
class MassSpring:
    """Free undamped oscillator; SI units (kg, N/m, m, m/s) give energies in J."""

    mass: float = 1.0
    stiffness: float = 10.0
    x0: float = 0.0  # initial position
    v0: float = 1.0  # initial velocity

    @property
    def omega(self) -> float:
        """Angular frequency √(k/m), rad/s."""
        return math.sqrt(self.stiffness / self.mass)

    def solution(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """x(t), ẋ(t), ẍ(t) from (x0, v0) at t = 0; each shaped like ``t``."""
        w = self.omega
        x = self.x0 * np.cos(w * t) + self.v0 / w * np.sin(w * t)
        v = -self.x0 * w * np.sin(w * t) + self.v0 * np.cos(w * t)
        return x, v, -(w**2) * x

    def energy(self, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        """E = ½ m ẋ² + ½ k x², shaped like ``x``."""
        return 0.5 * self.mass * v**2 + 0.5 * self.stiffness * x**2

    def initial_energy(self) -> float:
        """E(0) of the initial state."""
        return float(self.energy(np.array(self.x0), np.array(self.v0)))

    def vector_field(self) -> VectorField:
        """The exact rate (ẋ, −k/m x) of a state batch [B, 2]."""

        def field(state: torch.Tensor) -> torch.Tensor:
            x, v = state[:, :1], state[:, 1:]
            return torch.cat([v, -self.stiffness / self.mass * x], dim=1)

        return field
