"""SPEC §5: a model.onnx whose sha256 is not the card's is refused by every loader.

One flipped byte in the graph's weights still makes a loadable ONNX file, the silent kind of
damage this guards against; ``predict``, ``tau`` and ``evaluate`` refuse it with one ``error:``
line, ``serve`` exits non-zero with one line before any worker starts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from support.cli import invoke
from support.datasets import write_standin_dataset
from support.models import KERNEL, make_model_dir

from microstrain.conventions import MODEL_FILE


@pytest.fixture(scope="module")
def tampered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fixture model with one byte of its last weight flipped; the card is unchanged."""
    directory = make_model_dir(tmp_path_factory.mktemp("models") / "tampered")
    onnx_path = directory / MODEL_FILE
    graph = bytearray(onnx_path.read_bytes())
    weights = graph.find(KERNEL.tobytes())  # the convolution's raw float32 weights
    assert weights > 0
    graph[weights + 17] ^= 0x01  # one bit of one weight: still a valid graph
    onnx_path.write_bytes(bytes(graph))
    ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])  # still loads
    return directory


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
