"""``microstrain solve`` and ``microstrain convergence`` on tiny inputs (real solves)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from support.cli import assert_one_error_line, invoke

from data_gen.solver import SolverConfig, StrainSolver
from microstrain.conventions import FIBER, GRID, MATRIX
from microstrain.measures import REPORT_KEYS
from microstrain.quantities import QUANTITY_NAMES, quantities


def masks(n: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((n, GRID, GRID)) < 0.4).astype(np.uint8)


def test_solve_mask_npy_to_npy_matches_solver(tmp_path: Path):
    np.save(tmp_path / "m.npy", masks(2))
    result = invoke("solve", tmp_path / "m.npy", "-o", tmp_path / "s.npy", "--mode", "pixel")
    assert result.exit_code == 0, result.output
    strain = np.load(tmp_path / "s.npy")
    assert strain.shape == (2, 3, GRID, GRID) and strain.dtype == np.float32
    E = np.where(masks(2)[1] == 1, FIBER.youngs_modulus, MATRIX.youngs_modulus)
    expected = StrainSolver(SolverConfig(mode="pixel")).solve(E)
    np.testing.assert_allclose(strain[1], expected, rtol=1e-6, atol=1e-8)


def test_solve_h5_with_attrs_and_xdmf(tmp_path: Path):
    E = np.where(masks(2, seed=1), FIBER.youngs_modulus, MATRIX.youngs_modulus)[:, None]
    with h5py.File(tmp_path / "in.h5", "w") as f:
        f["E"] = E.astype(np.float32)  # [2, 1, 32, 32]
    out, fields = tmp_path / "s.h5", tmp_path / "fields"
    result = invoke(
        "solve", tmp_path / "in.h5", "-o", out, "--k", "2", "--plane", "strain",
        "--applied-strain", "0.05", "--xdmf", fields, "--no-progress",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    with h5py.File(out) as f:
        strain = f["strain"][()]
        assert json.loads(f.attrs["discretization"]) == {"mode": "refined", "k": 2}
        load_case = json.loads(f.attrs["load_case"])
        assert load_case["plane"] == "strain" and load_case["applied_strain"] == 0.05
        assert "dolfinx" in json.loads(f.attrs["software"])
        np.testing.assert_array_equal(f["E"][()], E)
        assert f.attrs["plane"] == "strain" and f.attrs["applied_strain"] == 0.05
        written = {name: f[name][()] for name in QUANTITY_NAMES}
    assert strain.shape == (2, 3, GRID, GRID)
    # the quantities are the core's of the FE strain as stored (one implementation: exact)
    expected = quantities(E.astype(np.float32), strain, "strain", 0.05)
    for name in QUANTITY_NAMES:
        assert written[name].dtype == expected[name].dtype, name
        np.testing.assert_array_equal(written[name], expected[name], err_msg=name)
    assert abs(strain[:, 0].mean() - 0.05) < 1e-6
    xdmf = (fields / "fields.xdmf").read_text()
    assert (fields / "fields.h5").is_file()
    for name in ("displacement", "eps_xx", "eps_yy", "gamma_xy", "youngs_modulus"):
        assert f'Name="{name}"' in xdmf
    assert xdmf.count("<Time ") == 2 * 5  # 2 samples x 5 fields
    assert not [p for p in fields.iterdir() if p.name.startswith(".")]  # no partial leftovers


@pytest.mark.parametrize("plane", ["stress", "strain"])
def test_solve_h5_quantities_of_a_homogeneous_sheet(tmp_path: Path, plane: str):
    """A one-phase sheet is in uniform uniaxial stress, which Q1 represents exactly:
    u = (ū x, −ν' ū y), σ_xx = E' ū, σ_yy = τ_xy = 0, with E' = E, ν' = ν in plane stress and
    E' = E / (1 − ν²), ν' = ν / (1 − ν) in plane strain, where σ_zz = ν σ_xx adds to von Mises."""
    ubar = 0.02  # not the default: the quantities must be those of the solve's ū
    np.save(tmp_path / "m.npy", np.stack([np.zeros((GRID, GRID)), np.ones((GRID, GRID))]))
    out = tmp_path / "s.h5"
    args = ("--mode", "pixel", "--plane", plane, "--applied-strain", ubar, "--no-progress")
    result = invoke("solve", tmp_path / "m.npy", "-o", out, *args)
    assert result.exit_code == 0, result.output
    with h5py.File(out) as f:
        q = {name: f[name][()] for name in QUANTITY_NAMES}
    for i, material in enumerate((MATRIX, FIBER)):
        E, nu = material.youngs_modulus, material.poisson_ratio
        if plane == "stress":
            E_x, nu_xy, vm_per_sxx = E, nu, 1.0
        else:
            E_x, nu_xy, vm_per_sxx = E / (1 - nu**2), nu / (1 - nu), np.sqrt(1 - nu + nu**2)
        sxx = E_x * ubar  # MPa
        # float32 storage of the strain: relative round-off ~1e-7
        assert q["E_x"][i] == pytest.approx(E_x, rel=1e-6)
        assert q["nu_xy"][i] == pytest.approx(nu_xy, rel=1e-6)
        np.testing.assert_allclose(q["stress"][i, 0], sxx, rtol=1e-6)
        np.testing.assert_allclose(q["stress"][i, 1:], 0.0, atol=1e-6 * sxx)
        np.testing.assert_allclose(q["von_mises"][i], vm_per_sxx * sxx, rtol=1e-6)
        assert q["max_von_mises"][i] == pytest.approx(vm_per_sxx * sxx, rel=1e-6)
    if plane == "stress":  # the closed form, literally: von Mises = E ū
        np.testing.assert_allclose(q["von_mises"][1], FIBER.youngs_modulus * ubar, rtol=1e-6)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mode", "pixel", "--k", "3"], "contradicts"),
        (["--mode", "coarse"], "mode"),
        (["--k", "0"], "k must"),
        (["--plane", "3d"], "plane"),
    ],
)
def test_solve_bad_options_are_user_errors(tmp_path: Path, args, message):
    np.save(tmp_path / "m.npy", masks(1))
    result = invoke("solve", tmp_path / "m.npy", "-o", tmp_path / "s.npy", *args)
    assert_one_error_line(result, message)
    assert not (tmp_path / "s.npy").exists()


@pytest.mark.parametrize(
    ("make_input", "output", "message"),
    [
        (lambda p: np.save(p / "in.npy", np.random.default_rng(0).random((32, 32))), "s.npy", "E"),
        (lambda p: np.save(p / "in.npy", np.ones((3, 16, 16))), "s.npy", "shape"),
        (lambda p: (p / "in.npy").write_bytes(b"not numpy"), "s.npy", "cannot read"),
        (lambda p: None, "s.npy", "not found"),
        (lambda p: np.save(p / "in.npy", np.ones((32, 32))), "s.csv", "format"),
        (lambda p: np.save(p / "in.npy", np.ones((32, 32))), "missing/s.npy", "does not exist"),
    ],
)
def test_solve_bad_input_is_one_error_and_no_output(tmp_path: Path, make_input, output, message):
    make_input(tmp_path)
    result = invoke("solve", tmp_path / "in.npy", "-o", tmp_path / output)
    assert_one_error_line(result, message)
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], ["in.npy"])


def test_solve_error_is_one_line_exit_1(tmp_path: Path):
    np.save(tmp_path / "in.npy", np.full((32, 32), np.nan))
    out = subprocess.run(
        [sys.executable, "-m", "data_gen", "solve", str(tmp_path / "in.npy"), "-o",
         str(tmp_path / "s.npy")],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert out.returncode == 1
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "NaN" in lines[0], out.stderr


@pytest.mark.slow
def test_convergence_reports_every_measure_against_k(tmp_path: Path):
    result = invoke("convergence", "-n", "2", "--ks", "1,2,4", "-o", tmp_path, "--no-progress")
    assert result.exit_code == 0, result.output
    for text in ("k = 4 (ref)", "pooled", "per sample, then mean", "energy norm", "von Mises"):
        assert text in result.output, text
    report = json.loads((tmp_path / "convergence.json").read_text())
    assert report["reference_k"] == 4
    m1, m2 = report["measures"]["1"], report["measures"]["2"]
    assert list(m1) == list(REPORT_KEYS) and m1["n"] == 2
    for key in ("strain_relative_l2", "stress_relative_l2", "energy_norm_error",
                "E_x_error_mean", "nu_xy_error_mean", "max_von_mises_error_mean"):  # fmt: skip
        assert 0 < m2[key] < m1[key] < 0.5, key  # the error shrinks as k grows
    e1, e2 = report["overall"]["1"], report["overall"]["2"]  # pooled, as before
    assert 0 < e2 < e1 < 0.5
    assert set(report["per_channel"]["1"]) == {"eps_xx", "eps_yy", "gamma_xy"}
    # E_x = 2 × strain energy / ū², and the k = 1 ⊂ 2 ⊂ 4 Q1 spaces are nested under the same
    # prescribed displacement: the coarser solution is a trial function of the finer problem,
    # so its energy, hence E_x, is higher, sample by sample
    E_x = {k: np.array(report["E_x"][str(k)]) for k in (1, 2, 4)}  # MPa [2]
    assert np.all(E_x[1] > E_x[2]) and np.all(E_x[2] > E_x[4])
    for k, m in ((1, m1), (2, m2)):  # the measure is |E_x,k / E_x,ref − 1| of these E_x
        assert m["E_x_error_max"] == pytest.approx(np.max(E_x[k] / E_x[4] - 1), rel=1e-9)
    assert (tmp_path / "convergence.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("ks", ["4", "1,x", "1,1", "0,2"])
def test_convergence_bad_ks(tmp_path: Path, ks):
    result = invoke("convergence", "--ks", ks, "-o", tmp_path / "c")
    assert_one_error_line(result, "k")
