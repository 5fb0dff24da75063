"""`microstrain serve` as a real process on a free loopback port: HTTP, metrics, fuzzing.

Also proves the serving package stays light: importing the service pulls in neither torch nor
dolfinx.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from support.models import reference_strain

from microstrain.fields import to_youngs_modulus

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 90


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(
    service_env: dict[str, str], model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """Base URL of `microstrain serve --model <fixture>` and the file its output goes to."""
    port = free_port()
    # a file, not a pipe: nobody reads a pipe while tests run, and a full one blocks the server
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    log = open(log_path, "w")
    env = {**os.environ, **service_env}
    env.pop("MICROSTRAIN_MODEL")  # --model must be what selects the model
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "microstrain_cli",
            "serve",
            "--port",
            str(port),
            "--model",
            model_dir,
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its BentoML workers share the group: stopped together
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"serve exited early: {log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        else:
            pytest.fail("serve did not become ready")
        yield url, log_path
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # BentoML's arbiter stops its workers
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def test_serve_prints_where_it_listens_and_answers(server, youngs_modulus):
    url, log_path = server
    assert f"listening on http://localhost:{url.rsplit(':', 1)[1]}" in log_path.read_text()
    r = httpx.post(f"{url}/predict", json={"E": youngs_modulus.tolist()}, timeout=30)
    assert r.status_code == 200, r.text
    strain = np.asarray(r.json()["strain"], np.float32)
    expected = reference_strain(to_youngs_modulus(youngs_modulus))
    np.testing.assert_allclose(strain, expected, rtol=1e-5, atol=1e-6)
    bad = httpx.post(f"{url}/predict", json={"E": [[1.0]]}, timeout=30)
    assert bad.status_code == 422 and "32x32" in bad.json()["error"]


def test_metrics_and_probes(server):
    url, _ = server
    assert httpx.get(f"{url}/livez", timeout=10).status_code == 200
    metrics = httpx.get(f"{url}/metrics", timeout=10)
    assert metrics.status_code == 200
    assert "bentoml_service_request" in metrics.text
    assert httpx.get(f"{url}/model", timeout=10).json()["version"] == "test-1"


@pytest.mark.slow
def test_fuzzing_the_openapi_spec_finds_no_5xx(server, tmp_path):
    """schemathesis against /docs.json: bounded examples, zero server errors, still ready."""
    url, _ = server
    report = tmp_path / "fuzz.json"
    cmd = [
        str(Path(sys.executable).parent / "st"),
        "run",
        f"{url}/docs.json",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        "25",
        "--seed",
        "20261127",
        "--request-timeout",
        "30",
        "--no-color",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(report),
    ]
    # cwd: schemathesis keeps a .schemathesis/ example database in its working directory
    run = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, check=False, cwd=tmp_path
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    statuses = [int(code) for code in re.findall(r'"status_code":\s*(\d+)', report.read_text())]
    assert len(statuses) > 100, "the fuzz run sent too few requests"
    assert max(statuses) < 500
    assert httpx.get(f"{url}/readyz", timeout=10).status_code == 200


def test_serve_with_a_missing_model_is_one_line(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "microstrain_cli", "serve", "--model", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 1
    assert run.stderr.strip().startswith("error: no model.onnx")
    assert len(run.stderr.strip().splitlines()) == 1


def test_importing_the_service_pulls_no_torch_or_dolfinx(service_env):
    code = (
        "import sys, serving.service, serving.serve_cli\n"
        "heavy = sorted(m for m in ('torch', 'dolfinx', 'dolfinx_solver', 'petsc4py', "
        "'pytorch_lightning', 'training', 'data_gen') if m in sys.modules)\n"
        "print(','.join(heavy))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **service_env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=REPO,
    )
    assert run.stdout.strip() == "", f"serving imported {run.stdout.strip()}"
