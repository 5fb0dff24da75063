"""`microstrain serve` as a real process on a free loopback port: HTTP, metrics, fuzzing.

Also proves the serving package stays light: importing the service pulls in neither torch nor
dolfinx.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from support.models import reference_strain

from microstrain.fields import to_youngs_modulus
from serving.local_server import fuzz

REPO = Path(__file__).resolve().parents[2]


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


def test_several_models_served_and_a_tampered_one_refused_alone(server, mask):
    url, log_path = server
    log = log_path.read_text()
    refusals = [line for line in log.splitlines() if "refused" in line]
    assert len(refusals) == 1 and refusals[0].startswith("warning: model 'tampered' refused")
    assert "does not match its card" in refusals[0]
    listing = httpx.get(f"{url}/models", timeout=10).json()
    assert [m["name"] for m in listing["models"]] == ["fixture", "periodic"]
    r = httpx.post(
        f"{url}/predict",
        json={"model": "periodic", "fiber_mask": mask.tolist(), "macro_stress": [0, 0, 50]},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert np.asarray(r.json()["strain"]).shape == (1, 3, 32, 32)
    gone = httpx.post(f"{url}/predict", json={"model": "tampered", "fiber_mask": mask.tolist()})
    assert gone.status_code == 404 and "fixture, periodic" in gone.json()["error"]


def test_metrics_and_probes(server):
    url, _ = server
    assert httpx.get(f"{url}/livez", timeout=10).status_code == 200
    metrics = httpx.get(f"{url}/metrics", timeout=10)
    assert metrics.status_code == 200
    assert "bentoml_service_request" in metrics.text
    assert httpx.get(f"{url}/model", timeout=10).json()["version"] == "test-1"


ROUTES = {
    "/predict",
    "/predict_npy",
    "/predict_image",
    "/verify",
    "/model",
    "/models",
    "/breakeven",
    "/",
}


@pytest.mark.slow
def test_fuzzing_the_openapi_spec_finds_no_5xx(server, tmp_path):
    """schemathesis against /docs.json, every route (the binary one too): bounded examples,
    zero server errors, still ready."""
    url, _ = server
    run = fuzz(url, tmp_path, examples=25, seed=20261127, request_timeout_s=30, timeout_s=300)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    answered = run.statuses  # {"POST /predict": [status, ...], ...}
    statuses = [code for codes in answered.values() for code in codes]
    assert len(statuses) > 100, "the fuzz run sent too few requests"
    assert max(statuses) < 500
    paths = {label.split(" ", 1)[1] for label in answered}
    assert ROUTES <= paths, ROUTES - paths
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
