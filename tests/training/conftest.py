"""Fixtures for the training tests: small SPEC §4 files and limited torch threads.

``write_standin_dataset`` writes a schema-correct HDF5 file whose strain is a cheap smooth function
of the modulus, NOT a solution of elasticity: it exercises the plumbing (reading, splitting,
normalizing, training, checkpointing). Accuracy claims belong to real data from ``data_gen``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from microstrain.conventions import (
    ATTR_COMPLETE,
    ATTR_DISCRETIZATION,
    ATTR_GENERATOR,
    ATTR_LOAD_CASE,
    ATTR_MATERIALS,
    ATTR_SCHEMA_VERSION,
    DS_E,
    DS_FIBER_FRACTION,
    DS_SEED,
    DS_SOLVE_SECONDS,
    DS_STRAIN,
    FIBER,
    LOAD_CASE,
    MATERIALS,
    MATRIX,
    SCHEMA_VERSION,
)

torch.set_num_threads(1)


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


def write_standin_dataset(
    path: Path, n: int = 48, seed: int = 0, applied_strain: float = 0.1
) -> Path:
    rng = np.random.default_rng(seed)
    fraction_target = rng.uniform(0.2, 0.5, size=(n, 1, 1, 1))
    noise = _smooth(rng.random((n, 1, 32, 32)), passes=2)  # blobs after thresholding
    ranks = noise.reshape(n, -1).argsort(axis=1).argsort(axis=1).reshape(noise.shape)
    mask = ranks < fraction_target * noise[0].size
    youngs_modulus = np.where(mask, FIBER.youngs_modulus, MATRIX.youngs_modulus).astype(np.float32)
    with h5py.File(path, "w") as f:
        f.create_dataset(DS_E, data=youngs_modulus, chunks=(1, 1, 32, 32), compression="gzip")
        f.create_dataset(DS_STRAIN, data=standin_strain(youngs_modulus, applied_strain))
        f.create_dataset(DS_FIBER_FRACTION, data=mask.mean(axis=(1, 2, 3)).astype(np.float32))
        f.create_dataset(DS_SEED, data=np.arange(n, dtype=np.int64) + seed * 10_000)
        f.create_dataset(DS_SOLVE_SECONDS, data=np.full(n, 0.004))
        f.attrs[ATTR_SCHEMA_VERSION] = SCHEMA_VERSION
        f.attrs[ATTR_LOAD_CASE] = json.dumps(
            {"name": LOAD_CASE, "applied_strain": applied_strain, "plane": "stress"}
        )
        f.attrs[ATTR_MATERIALS] = json.dumps(MATERIALS)
        f.attrs[ATTR_GENERATOR] = json.dumps({"kind": "test-standin", "seed": seed})
        f.attrs[ATTR_DISCRETIZATION] = json.dumps({"mode": "pixel", "k": 1})
        f.attrs[ATTR_COMPLETE] = True
    return path


@pytest.fixture(scope="session")
def standin_h5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 stand-in samples (plumbing only)."""
    return write_standin_dataset(tmp_path_factory.mktemp("data") / "standin.h5")


@pytest.fixture(scope="session")
def pixel_h5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """64 real samples from ``data_gen`` (pixel mode, ~25 ms each), made by its own command."""
    import subprocess
    import sys

    path = tmp_path_factory.mktemp("real") / "pixel64.h5"
    cmd = [sys.executable, "-m", "data_gen", "generate", "-n", "64", "--mode", "pixel"]
    cmd += ["--seed", "7", "-o", str(path), "--no-progress"]
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return path
