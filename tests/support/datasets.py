"""Small SPEC §4 files for tests that exercise plumbing, written with the core's writer.

``write_standin_dataset`` writes a schema-correct file whose strain is a cheap smooth function of
the modulus, NOT a solution of elasticity: it exercises reading, splitting, normalizing, training,
checkpointing and export. Accuracy and physics claims belong to real data from ``data_gen``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from microstrain.conventions import FIBER, MATRIX
from microstrain.dataset import write_dataset


def _smooth(field: np.ndarray, passes: int = 3) -> np.ndarray:
    """Repeated 5-point averaging along the last two axes (edge-padded)."""
    for _ in range(passes):
        p = np.pad(field, [(0, 0)] * (field.ndim - 2) + [(1, 1), (1, 1)], mode="edge")
        field = (
            p[..., 1:-1, 1:-1]
            + p[..., :-2, 1:-1]
            + p[..., 2:, 1:-1]
            + p[..., 1:-1, :-2]
            + p[..., 1:-1, 2:]
        ) * 0.2
    return field


def standin_strain(youngs_modulus: np.ndarray, applied_strain: float = 0.1) -> np.ndarray:
    """A smooth, deterministic stand-in for the strain of ``[N, 1, 32, 32]`` E maps."""
    compliance = _smooth(MATRIX.youngs_modulus / youngs_modulus[:, 0])  # [N, 32, 32]
    eps_xx = applied_strain * compliance / compliance.mean(axis=(1, 2), keepdims=True)
    eps_yy = -0.35 * eps_xx
    gamma = 0.5 * np.gradient(eps_xx, axis=2)
    return np.stack([eps_xx, eps_yy, gamma], axis=1).astype(np.float32)  # [N, 3, 32, 32]


def standin_moduli(n: int, seed: int = 0) -> np.ndarray:
    """``n`` random blob microstructures (fiber fraction 0.2–0.5) as E ``[n, 1, 32, 32]`` MPa."""
    rng = np.random.default_rng(seed)
    fraction_target = rng.uniform(0.2, 0.5, size=(n, 1, 1, 1))
    noise = _smooth(rng.random((n, 1, 32, 32)), passes=2)  # blobs after thresholding
    ranks = noise.reshape(n, -1).argsort(axis=1).argsort(axis=1).reshape(noise.shape)
    mask = ranks < fraction_target * noise[0].size
    return np.where(mask, FIBER.youngs_modulus, MATRIX.youngs_modulus).astype(np.float32)


def write_standin_dataset(
    path: Path, n: int = 48, seed: int = 0, applied_strain: float = 0.1, plane: str = "stress"
) -> Path:
    youngs_modulus = standin_moduli(n, seed)
    return write_dataset(
        path,
        youngs_modulus,
        standin_strain(youngs_modulus, applied_strain),
        applied_strain=applied_strain,
        plane=plane,
        generator={"kind": "test-standin", "seed": seed},
        discretization={"mode": "pixel", "k": 1},
        seed=np.arange(n, dtype=np.int64) + seed * 10_000,
        solve_seconds=np.full(n, 0.004),
    )
