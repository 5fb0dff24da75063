"""MICROSTRAIN_SMALL_THREADS: the onnxruntime threads of one- to four-sample requests."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from microstrain.errors import MicrostrainError
from microstrain.hardware import usable_cores
from serving.settings import SMALL_THREADS_ENV_VAR, small_request_threads


def test_one_thread_unless_set_and_at_most_the_workers_share(monkeypatch):
    monkeypatch.delenv(SMALL_THREADS_ENV_VAR, raising=False)
    assert small_request_threads(1) == 1
    cores = usable_cores()
    monkeypatch.setenv(SMALL_THREADS_ENV_VAR, str(cores))
    assert small_request_threads(1) == cores
    for raw, message in (
        ("0", "must be at least 1"),
        ("two", "is not a whole number"),
        (str(cores + 1), f"must be at most {cores}, the cores of one of 1 worker"),
    ):
        monkeypatch.setenv(SMALL_THREADS_ENV_VAR, raw)
        with pytest.raises(MicrostrainError, match=message):
            small_request_threads(1)


def test_serve_refuses_more_threads_than_cores_in_one_line(model_dir, service_env):
    env = {**service_env, SMALL_THREADS_ENV_VAR: str(usable_cores() + 1)}
    run = subprocess.run(
        [sys.executable, "-m", "microstrain_cli", "serve", "--model", str(model_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **env},
    )
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"error: {SMALL_THREADS_ENV_VAR} must be at most"
    )
