"""Fixtures of the serving tests: a fixture model (no torch), the service in-process, a mask."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from support.models import make_model_dir

from microstrain.conventions import FIBER, GRID, MATRIX, MODEL_ENV_VAR


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``model.onnx`` (fixed 3x3 conv, see support.models) + ``card.json``."""
    return make_model_dir(tmp_path_factory.mktemp("models") / "fixture")


@pytest.fixture(scope="session")
def service_env(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment a service process needs: the fixture model and a private state directory."""
    return {
        MODEL_ENV_VAR: str(model_dir),
        "MICROSTRAIN_STATE_DIR": str(tmp_path_factory.mktemp("state")),
        "MICROSTRAIN_WORKERS": "1",
    }


@pytest.fixture(scope="module")
def client(service_env: dict[str, str]) -> Iterator[object]:
    """Starlette TestClient over BentoML's ASGI app of the service (lifespan included)."""
    from starlette.testclient import TestClient

    saved = {k: os.environ.get(k) for k in service_env}
    os.environ.update(service_env)
    try:
        from serving.service import MicrostrainService

        app = MicrostrainService.to_asgi()  # type: ignore[attr-defined]
        with TestClient(app, raise_server_exceptions=False) as test_client:
            yield test_client
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def mask() -> np.ndarray:
    """A 32x32 fiber mask (int 0/1): a disc of fiber fraction ~0.28, inside the card's range."""
    i, j = np.mgrid[0:GRID, 0:GRID]
    return (((i - 15.5) ** 2 + (j - 15.5) ** 2) < 9.5**2).astype(int)


@pytest.fixture
def youngs_modulus(mask: np.ndarray) -> np.ndarray:
    """The same microstructure as E in MPa, float64 [32, 32]."""
    return np.where(mask == 1, FIBER.youngs_modulus, MATRIX.youngs_modulus)
