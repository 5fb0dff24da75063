"""`microstrain evaluate` (SPEC §10) against an independent computation of the SPEC §9 measures."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from support.cli import invoke
from support.datasets import standin_moduli, standin_strain

from microstrain.conventions import ATTR_LOAD_CASE, CARD_FILE, FIBER, MATRIX, MODEL_FILE
from microstrain.dataset import write_dataset
from microstrain.files import sha256_of
from microstrain.surrogate import SurrogateModel, default_model_dir


def independent_measures(E: np.ndarray, pred: np.ndarray, ref: np.ndarray, u: float) -> dict:
    """SPEC §9 written out sample by sample with the textbook 3×3 plane-stress matrix."""
    out: dict[str, list[float]] = {k: [] for k in ("strain", "stress", "energy", "ex", "nu", "vm")}
    fields = (E[:, 0].astype(np.float64), pred.astype(np.float64), ref.astype(np.float64))
    for e, p, r in zip(*fields, strict=True):
        nu = np.where(e > 40_000, FIBER.poisson_ratio, MATRIX.poisson_ratio)
        sig = {}
        for name, eps in (("p", p), ("r", r), ("d", p - r)):
            f = e / (1 - nu**2)
            sig[name] = np.stack(
                [
                    f * (eps[0] + nu * eps[1]),
                    f * (nu * eps[0] + eps[1]),
                    e / (2 * (1 + nu)) * eps[2],
                ]
            )
        vm = {
            k: np.sqrt(s[0] ** 2 - s[0] * s[1] + s[1] ** 2 + 3 * s[2] ** 2) for k, s in sig.items()
        }
        out["strain"].append(np.linalg.norm(p - r) / np.linalg.norm(r))
        out["stress"].append(np.linalg.norm(sig["p"] - sig["r"]) / np.linalg.norm(sig["r"]))
        out["energy"].append(np.sqrt(np.sum(sig["d"] * (p - r)) / np.sum(sig["r"] * r)))
        out["ex"].append(abs(sig["p"][0].mean() / sig["r"][0].mean() - 1))
        out["nu"].append(abs(p[1].mean() / r[1].mean() - 1))
        out["vm"].append(abs(vm["p"].max() / vm["r"].max() - 1))
    return {k: np.asarray(v) for k, v in out.items()}


@pytest.fixture
def dataset(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    e = standin_moduli(40, seed=3)
    strain = standin_strain(e)  # any reference field will do: the measures are compared
    return write_dataset(tmp_path / "d.h5", e, strain), e, strain


def test_json_agrees_with_an_independent_computation(dataset, tmp_path: Path) -> None:
    path, e, strain = dataset
    out = tmp_path / "eval.json"
    result = invoke("evaluate", default_model_dir(), path, "--json", out)
    assert result.exit_code == 0, result.output
    assert path.name in result.stdout  # the table names the file
    got = json.loads(out.read_text())["files"][str(path)]
    pred = SurrogateModel.load(default_model_dir()).predict(e)
    want = independent_measures(e, pred, strain, 0.1)
    assert got["n"] == 40
    rtol = 1e-5  # float32 fields, float64 sums: round-off only
    assert got["strain_relative_l2"] == pytest.approx(want["strain"].mean(), rel=rtol)
    assert got["stress_relative_l2"] == pytest.approx(want["stress"].mean(), rel=rtol)
    assert got["energy_norm_error"] == pytest.approx(want["energy"].mean(), rel=rtol)
    assert got["E_x_error_mean"] == pytest.approx(want["ex"].mean(), rel=rtol)
    assert got["E_x_error_max"] == pytest.approx(want["ex"].max(), rel=rtol)
    assert got["nu_xy_error_mean"] == pytest.approx(want["nu"].mean(), rel=rtol)
    assert got["max_von_mises_error_mean"] == pytest.approx(want["vm"].mean(), rel=rtol)
    assert got["max_von_mises_error_max"] == pytest.approx(want["vm"].max(), rel=rtol)
    channels = got["strain_relative_l2_per_channel"]
    for c, name in enumerate(("eps_xx", "eps_yy", "gamma_xy")):
        per = [
            np.linalg.norm(p[c] - r[c]) / np.linalg.norm(r[c])
            for p, r in zip(pred, strain, strict=True)
        ]
        assert channels[name] == pytest.approx(np.mean(per), rel=rtol)


def test_another_applied_strain_is_rescaled(dataset, tmp_path: Path) -> None:
    path, e, strain = dataset
    half = write_dataset(tmp_path / "half.h5", e, 0.5 * strain, applied_strain=0.05)
    out = tmp_path / "eval.json"
    assert invoke("evaluate", default_model_dir(), path, half, "--json", out).exit_code == 0
    files = json.loads(out.read_text())["files"]
    a, b = files[str(path)], files[str(half)]
    for key in ("strain_relative_l2", "stress_relative_l2", "energy_norm_error", "E_x_error_max"):
        assert b[key] == pytest.approx(a[key], rel=1e-6)


def test_another_plane_is_refused_naming_both(dataset, tmp_path: Path) -> None:
    _, e, strain = dataset
    other = write_dataset(tmp_path / "strain.h5", e, strain, plane="strain")
    result = invoke("evaluate", default_model_dir(), other)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "plane strain" in lines[0] and "plane stress" in lines[0]


def test_another_load_case_is_refused(dataset, tmp_path: Path) -> None:
    path, _, _ = dataset
    with h5py.File(path, "r+") as f:
        f.attrs[ATTR_LOAD_CASE] = json.dumps(
            {"name": "shear-xy", "applied_strain": 0.1, "plane": "stress"}
        )
    result = invoke("evaluate", default_model_dir(), path)
    assert result.exit_code == 1 and "shear-xy" in result.stderr and "uniaxial-x" in result.stderr


def test_nan_strain_is_one_clear_error(dataset, tmp_path: Path) -> None:
    _, e, strain = dataset
    bad = strain.copy()
    bad[7, 1, 3, 3] = np.nan
    path = write_dataset(tmp_path / "nan.h5", e, bad)
    result = invoke("evaluate", default_model_dir(), path, "--json", tmp_path / "x.json")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and "NaN" in result.stderr and "sample 7" in result.stderr
    assert not (tmp_path / "x.json").exists()  # nothing half-written


def test_an_incomplete_file_needs_allow_incomplete(dataset, tmp_path: Path) -> None:
    _, e, strain = dataset
    path = write_dataset(tmp_path / "part.h5", e, strain, complete=False)
    refused = invoke("evaluate", default_model_dir(), path)
    assert refused.exit_code == 1 and "--allow-incomplete" in refused.stderr
    assert invoke("evaluate", default_model_dir(), path, "--allow-incomplete").exit_code == 0


def test_a_tampered_model_is_refused(dataset, tmp_path: Path) -> None:
    path, _, _ = dataset
    model = tmp_path / "model"
    shutil.copytree(default_model_dir(), model)
    graph = bytearray((model / MODEL_FILE).read_bytes())
    graph[-100] ^= 0x10
    (model / MODEL_FILE).write_bytes(bytes(graph))
    assert (
        sha256_of(model / MODEL_FILE)
        != json.loads((model / CARD_FILE).read_text())["onnx"]["sha256"]
    )
    result = invoke("evaluate", model, path)
    assert result.exit_code == 1 and "does not match its card" in result.stderr


def test_evaluate_leaves_the_model_directory_byte_identical(dataset, tmp_path: Path) -> None:
    path, _, _ = dataset
    model = tmp_path / "model"
    shutil.copytree(default_model_dir(), model)
    before = {p.name: p.read_bytes() for p in model.iterdir()}
    assert invoke("evaluate", model, path, "--json", tmp_path / "e.json").exit_code == 0
    assert {p.name: p.read_bytes() for p in model.iterdir()} == before
