"""SPEC §5: a model.onnx whose sha256 is not the card's is refused by every loader.

One flipped byte in the graph's weights still makes a loadable ONNX file, the silent kind of
damage this guards against; ``predict``, ``tau`` and ``evaluate`` refuse it with one ``error:``
line, ``serve`` of that model alone exits non-zero with one line before any worker starts, and
``serve`` of several refuses it alone (``test_serving_process``). The ``tampered`` fixture is in
conftest.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from support.cli import invoke
from support.datasets import write_standin_dataset

from microstrain.conventions import MODEL_FILE


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "does not match its card" in lines[0] and "refusing" in lines[0], lines[0]
    return lines[0]


def test_predict_refuses(tampered, tmp_path):
    np.save(tmp_path / "in.npy", np.zeros((32, 32)))
    result = invoke("predict", tampered, tmp_path / "in.npy", "-o", tmp_path / "out.npy")
    assert result.exit_code == 1
    one_error_line(result.stderr)
    assert not (tmp_path / "out.npy").exists()


def test_tau_refuses(tampered, tmp_path):
    copy = shutil.copytree(tampered, tmp_path / "model")
    result = invoke("tau", copy)
    assert result.exit_code == 1
    one_error_line(result.stderr)
    assert sorted(p.name for p in copy.iterdir()) == ["card.json", MODEL_FILE]  # no report


def test_evaluate_refuses(tampered, tmp_path):
    data = write_standin_dataset(tmp_path / "data.h5", n=4)
    result = invoke("evaluate", tampered, data, "--json", tmp_path / "report.json")
    assert result.exit_code == 1
    one_error_line(result.stderr)
    assert not (tmp_path / "report.json").exists()


def test_serve_exits_with_one_line(tampered):
    run = subprocess.run(
        [sys.executable, "-m", "microstrain_cli", "serve", "--port", "1", "--model", tampered],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 1
    one_error_line(run.stderr)
    assert "listening" not in run.stdout


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("MICROSTRAIN_VERIFY_QUEUE", "-1", ["MICROSTRAIN_VERIFY_QUEUE", "at least 0"]),
        ("MICROSTRAIN_VERIFY_CONCURRENCY", "two", ["not a whole number"]),
        ("MICROSTRAIN_VERIFY_TIMEOUT_S", "0", ["positive"]),
        ("MICROSTRAIN_API_TOKEN", " spaced ", ["printable ASCII"]),
        ("MICROSTRAIN_TRACING", "yes", ["MICROSTRAIN_TRACING", "0 or 1"]),
    ],
)
def test_serve_with_a_bad_setting_is_one_line(model_dir, variable, value, words, monkeypatch):
    def not_here(*args: object) -> None:  # a setting that passed would replace pytest
        raise AssertionError(f"serve started despite {variable}={value!r}")

    monkeypatch.setattr(os, "execve", not_here)
    monkeypatch.setenv(variable, value)
    result = invoke("serve", "--port", "1", "--model", model_dir)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and all(w in lines[0] for w in words), result.stderr
