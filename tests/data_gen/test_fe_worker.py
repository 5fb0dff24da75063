"""The long-lived FE worker seen through the core's pool (what /verify and tau --measure use):
its answers equal an in-process solve, and a pool warmed with every served model's
configuration answers each model's first check without building a solver."""

from __future__ import annotations

import numpy as np
import pytest

from data_gen.solver import SolverConfig, StrainSolver
from microstrain.fe_client import FEPool

UNIAXIAL = {"mode": "pixel", "k": 1, "plane": "stress", "boundary": "uniaxial"}
PERIODIC = {"mode": "pixel", "k": 1, "plane": "strain", "boundary": "periodic"}


@pytest.fixture(scope="module")
def pool():
    warmed = FEPool(1, warm=[UNIAXIAL, PERIODIC, dict(UNIAXIAL)]).start()
    yield warmed
    warmed.close()


def _image() -> np.ndarray:
    mask = np.random.default_rng(3).random((1, 1, 32, 32)) < 0.4
    return np.where(mask, 85_000.0, 3_000.0).astype(np.float32)  # [1, 1, 32, 32] MPa


@pytest.mark.parametrize("config", [UNIAXIAL, PERIODIC], ids=["uniaxial", "periodic"])
def test_a_warmed_worker_solves_each_served_configuration_without_setup(pool, config):
    E = _image()
    strain, timings = pool.solve(E, config, timeout_s=60)
    assert timings["setup"] == 0.0  # built while warming, before this request
    expected = StrainSolver(SolverConfig(**config)).solve(E[0, 0].astype(np.float64))
    np.testing.assert_allclose(strain[0], expected, rtol=1e-6, atol=1e-9)  # float32 transfer


def test_a_configuration_named_twice_is_warmed_once(pool):
    assert pool.warm == [UNIAXIAL, PERIODIC]
