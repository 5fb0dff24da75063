"""Fixtures of the serving tests: fixture models (no torch), the service in-process and as a
process on a free loopback port (:mod:`serving.local_server`), a mask."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from support.models import KERNEL, make_model_dir, make_periodic_model_dir

from microstrain.conventions import FIBER, GRID, MATRIX, MODEL_ENV_VAR, MODEL_FILE
from serving.local_server import ServerFailed, running_server
from serving.registry import MODELS_ENV_VAR


@pytest.fixture(scope="session")
def models_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def model_dir(models_root: Path) -> Path:
    """``model.onnx`` (fixed 3x3 conv, see support.models) + ``card.json``."""
    return make_model_dir(models_root / "fixture")


@pytest.fixture(scope="session")
def periodic_model_dir(models_root: Path) -> Path:
    """The periodic fixture (SPEC §11, support.models), served as ``periodic``."""
    return make_periodic_model_dir(models_root / "periodic")


@pytest.fixture(scope="session")
def service_env(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment a service process needs: the fixture model and a private state directory."""
    return {
        MODEL_ENV_VAR: str(model_dir),
        "MICROSTRAIN_STATE_DIR": str(tmp_path_factory.mktemp("state")),
        "MICROSTRAIN_WORKERS": "1",
    }


REPO = Path(__file__).resolve().parents[2]
# the process tests: one FE check at a time and 4 waiting, so that a flood of /verify is refused
SERVER_SETTINGS = {
    "MICROSTRAIN_VERIFY_CONCURRENCY": "1",
    "MICROSTRAIN_VERIFY_QUEUE": "4",
    "MICROSTRAIN_VERIFY_TIMEOUT_S": "60",
}


@contextlib.contextmanager
def serve_process(model: Path | list[Path], env: dict[str, str], log_path: Path) -> Iterator[str]:
    """``microstrain serve --model MODEL ...`` on a free loopback port until the block ends;
    yields its base URL (a test failure, with the log's tail, if it does not start)."""
    models = model if isinstance(model, list) else [model]
    try:
        with running_server(models, env, log_path) as server:
            yield server.url
    except ServerFailed as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def tampered(models_root: Path) -> Path:
    """A fixture model with one byte of its last weight flipped; the card is unchanged."""
    directory = make_model_dir(models_root / "tampered")
    onnx_path = directory / MODEL_FILE
    graph = bytearray(onnx_path.read_bytes())
    weights = graph.find(KERNEL.tobytes())  # the convolution's raw float32 weights
    assert weights > 0
    graph[weights + 17] ^= 0x01  # one bit of one weight: still a valid graph
    onnx_path.write_bytes(bytes(graph))
    ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])  # still loads
    return directory


@pytest.fixture(scope="session")
def server(
    service_env: dict[str, str],
    model_dir: Path,
    periodic_model_dir: Path,
    tampered: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, Path]]:
    """Base URL of `microstrain serve --model <fixture> --model <periodic> --model <tampered>`
    (SERVER_SETTINGS; the tampered one is refused alone) and its log file."""
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    models = [model_dir, periodic_model_dir, tampered]
    with serve_process(models, {**service_env, **SERVER_SETTINGS}, log_path) as url:
        yield url, log_path


@pytest.fixture
def access_log_server(
    service_env: dict[str, str], model_dir: Path, tmp_path: Path
) -> Iterator[tuple[str, Path]]:
    """As :func:`server`, with MICROSTRAIN_ACCESS_LOG=1 (BentoML's line per request)."""
    log_path = tmp_path / "serve.log"
    env = {**service_env, **SERVER_SETTINGS, "MICROSTRAIN_ACCESS_LOG": "1"}
    with serve_process(model_dir, env, log_path) as url:
        yield url, log_path


@pytest.fixture(scope="module")
def page_server(
    service_env: dict[str, str], periodic_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`microstrain serve` as a user starts it, on every shipped model (what a user of the web
    page sees); the periodic fixture stands in for models/periodic where a checkout lacks it."""
    shipped = REPO / "models"
    models = [d for d in sorted(shipped.iterdir()) if (d / MODEL_FILE).is_file()]
    models.sort(key=lambda d: d.name != "default")
    if not models:  # a work branch without the shipped models
        models = [make_model_dir(tmp_path_factory.mktemp("models") / "default")]
    if not any(d.name == "periodic" for d in models):
        models.append(periodic_model_dir)
    log = tmp_path_factory.mktemp("page") / "serve.log"
    with serve_process(models, {**service_env, **SERVER_SETTINGS}, log) as url:
        yield url


@pytest.fixture(scope="session")
def client(
    service_env: dict[str, str], model_dir: Path, periodic_model_dir: Path
) -> Iterator[object]:
    """Starlette TestClient over BentoML's ASGI app of the service (lifespan included) serving
    the uniaxial fixture (the default: served first) and the periodic one; one per session:
    BentoML registers its Prometheus metrics once per process."""
    from starlette.testclient import TestClient

    env = {
        **service_env,
        MODELS_ENV_VAR: os.pathsep.join([str(model_dir), str(periodic_model_dir)]),
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
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
