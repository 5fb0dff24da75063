"""`microstrain solve`, `inspect` and `evaluate` on files that `solve` writes: both boundary
modes, n x n periodic RVEs, user materials, pictures and refusals (real solves, k = 1)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import h5py
import numpy as np
import pytest
from support.cli import assert_one_error_line, invoke
from support.materials import EPOXY, GLASS

from data_gen.microstructure import GeneratorConfig, sample_microstructures
from data_gen.solver import SolverConfig, StrainSolver
from microstrain.dataset import load_samples, read_info
from microstrain.quantities import effective_stiffness, engineering_constants, periodic_quantities
from microstrain.surrogate import default_model_dir

PNG = b"\x89PNG\r\n\x1a\n"


def disc_mask(side: int = 64) -> np.ndarray:
    """Two discs on the torus, one cut by the corner (0/1 mask [side, side])."""
    yy, xx = np.mgrid[0:side, 0:side] / side
    mask = np.zeros((side, side), np.uint8)
    for cx, cy, r in ((0.02, 0.03, 0.18), (0.55, 0.6, 0.22)):
        dx, dy = np.abs(xx - cx), np.abs(yy - cy)
        dx, dy = np.minimum(dx, 1 - dx), np.minimum(dy, 1 - dy)
        mask[dx**2 + dy**2 <= r * r] = 1
    return mask


@pytest.fixture(scope="module")
def periodic_out(tmp_path_factory) -> Path:
    """The docs' worked example at k = 1: a 64 x 64 mask solved periodically to an .h5."""
    directory = tmp_path_factory.mktemp("solve")
    np.save(directory / "mask.npy", disc_mask())
    out = directory / "out.h5"
    result = invoke("solve", directory / "mask.npy", "-o", out, "--boundary", "periodic",
                    "--k", "1", "--png", directory / "out.png")  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def test_periodic_solve_writes_a_complete_spec_11_file(periodic_out):
    info = read_info(periodic_out)
    assert info.complete and info.boundary == "periodic" and info.grid == 64 and info.n == 1
    samples = load_samples(periodic_out, boundary="periodic")
    E = samples.youngs_modulus  # [1, 1, 64, 64]
    fields = StrainSolver(SolverConfig(k=1, boundary="periodic", grid=64)).solve(E[0, 0])
    np.testing.assert_array_equal(samples.strain[0], fields.astype(np.float32))
    c_eff = effective_stiffness(E, fields[None], "stress", 0.1)  # from the float64 fields
    np.testing.assert_array_equal(samples.c_eff, c_eff)
    with h5py.File(periodic_out) as f:
        q = periodic_quantities(E, f["strain"][()], "stress", 0.1)
        for name in ("stress", "von_mises", "max_von_mises"):
            np.testing.assert_array_equal(f[name][()], q[name], err_msg=name)
        for name, value in engineering_constants(c_eff).items():
            np.testing.assert_array_equal(f[name][()], value, err_msg=name)
        assert f["stress"].shape == (1, 3, 3, 64, 64) and f["E_1"].attrs["unit"] == "MPa"
        assert int(f["seed"][0]) == -1  # not drawn by the sampler
    assert (periodic_out.parent / "out.png").read_bytes()[:8] == PNG


def test_inspect_reports_c_eff_constants_and_bounds(periodic_out, tmp_path):
    result = invoke("inspect", periodic_out, "--png", tmp_path / "i.png")
    assert result.exit_code == 0, result.output
    for text in ("periodic", "64 x 64", "C_eff mean", "E_1 (MPa)", "G_12 (MPa)", "ν_12",
                 "Reuss", "Voigt", "every sample", "case xy"):  # fmt: skip
        assert text in result.stdout, text
    assert (tmp_path / "i.png").read_bytes()[:8] == PNG


def test_a_tiled_rve_has_the_c_eff_of_its_tile(tmp_path):
    """No length scale: 2 x 2 copies of a 32 x 32 period are the same composite."""
    tile = disc_mask(32)
    np.save(tmp_path / "one.npy", tile)
    np.save(tmp_path / "four.npy", np.tile(tile, (2, 2)))
    for name in ("one", "four"):
        result = invoke("solve", tmp_path / f"{name}.npy", "-o", tmp_path / f"{name}.h5",
                        "--boundary", "periodic", "--mode", "pixel")  # fmt: skip
        assert result.exit_code == 0, result.output
    one = load_samples(tmp_path / "one.h5", boundary="periodic")
    four = load_samples(tmp_path / "four.h5", boundary="periodic")
    np.testing.assert_allclose(four.c_eff, one.c_eff, rtol=1e-9)
    np.testing.assert_allclose(four.strain[..., :32, :32], one.strain, rtol=1e-4, atol=1e-7)


def test_periodic_npy_out_and_a_stack_of_masks(tmp_path):
    np.save(tmp_path / "m.npy", np.stack([disc_mask(32), 1 - disc_mask(32)]))
    result = invoke("solve", tmp_path / "m.npy", "-o", tmp_path / "s.npy", "--boundary",
                    "periodic", "--mode", "pixel", "--no-progress")  # fmt: skip
    assert result.exit_code == 0, result.output
    strain = np.load(tmp_path / "s.npy")
    assert strain.shape == (2, 3, 3, 32, 32) and strain.dtype == np.float32


def test_uniaxial_solve_output_is_read_by_inspect_and_evaluate(tmp_path):
    np.save(tmp_path / "m.npy", np.stack([disc_mask(32), disc_mask(32)[::-1]]))
    out = tmp_path / "u.h5"
    result = invoke("solve", tmp_path / "m.npy", "-o", out, "--png", tmp_path / "u.png",
                    "--no-progress")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert read_info(out).complete and read_info(out).boundary == "uniaxial"
    assert (tmp_path / "u.png").read_bytes()[:8] == PNG
    inspected = invoke("inspect", out)
    assert inspected.exit_code == 0 and "E_x" in inspected.stdout, inspected.output
    evaluated = invoke("evaluate", default_model_dir(), out, "--json", tmp_path / "e.json")
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["files"][str(out)]["n"] == 2


def test_evaluate_refuses_a_periodic_file_in_one_line(periodic_out):
    result = invoke("evaluate", default_model_dir(), periodic_out)
    assert_one_error_line(result, "periodic")


def test_user_materials_in_both_modes(tmp_path):
    np.save(tmp_path / "m.npy", disc_mask(32))
    phases = ("--fiber", "72000,0.22", "--matrix", "3500,0.35", "--mode", "pixel")
    for boundary in ("uniaxial", "periodic"):
        out = tmp_path / f"{boundary}.h5"
        result = invoke("solve", tmp_path / "m.npy", "-o", out, "--boundary", boundary, *phases)
        assert result.exit_code == 0, result.output
        info = read_info(out)
        assert info.phases == (GLASS, EPOXY) and info.boundary == boundary
        with h5py.File(out) as f:
            assert set(np.unique(f["E"][()])) == {3500.0, 72000.0}
        assert invoke("inspect", out).exit_code == 0
    # an E map of the given moduli is taken as is; the lecture's moduli are not these phases
    e_map = np.where(disc_mask(32) > 0, 72000.0, 3500.0)
    np.save(tmp_path / "e.npy", e_map)
    ok = invoke("solve", tmp_path / "e.npy", "-o", tmp_path / "e.npy.h5", *phases)
    assert ok.exit_code == 0, ok.output
    np.save(tmp_path / "lecture.npy", np.where(disc_mask(32) > 0, 85000.0, 3000.0))
    assert_one_error_line(
        invoke("solve", tmp_path / "lecture.npy", "-o", tmp_path / "x.npy", *phases),
        "E values must be exactly 3500 (matrix) and 72000 (fiber) MPa",
    )


@pytest.mark.parametrize(
    ("image", "args", "message"),
    [
        (np.ones((32, 32)), ["--applied-strain", "10"], "outside 0 < |ū| ≤ 1"),
        (np.ones((32, 32)), ["--applied-strain", "0"], "outside 0 < |ū| ≤ 1"),
        (np.ones((48, 48)), ["--boundary", "periodic"], "multiple of 32"),
        (np.ones((64, 64)), [], "must be 32x32 pixels"),
        (np.ones((32, 32)), ["--matrix", "3500,0.6"], "--matrix: Poisson's ratio"),
        (np.ones((32, 32)), ["--fiber", "-1,0.2"], "--fiber: Young's modulus must be positive"),
        (np.ones((32, 32)), ["--png", "p.jpg"], "--png must name a .png file"),
    ],
)
def test_refusals_are_one_line_and_write_nothing(tmp_path, image, args, message):
    np.save(tmp_path / "in.npy", image)
    result = invoke("solve", tmp_path / "in.npy", "-o", tmp_path / "s.h5", *args)
    assert_one_error_line(result, message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npy"]


def test_convergence_reports_c_eff_and_the_constants_against_k(tmp_path):
    result = invoke("convergence", "--boundary", "periodic", "-n", "1", "--ks", "1,2", "-o",
                    tmp_path)  # fmt: skip
    assert result.exit_code == 0, result.output
    for text in ("periodic", "C_eff error mean", "G_12 error mean", "energy norm"):
        assert text in result.output, text
    report = json.loads((tmp_path / "convergence.json").read_text())
    m1 = report["measures"]["1"]
    assert report["config"]["boundary"] == "periodic" and m1["n"] == 1
    for key in ("strain_relative_l2", "C_eff_error_mean", "E_1_error_mean", "nu_12_error_mean"):
        assert m1[key] > 0, key
    # Ē : C_eff : Ē is the least energy over the periodic fluctuations, and the k = 1 space of
    # them lies inside the k = 2 one: the coarser C_eff is stiffer, C_1 − C_2 positive definite
    c1, c2 = (np.array(report["C_eff"][k][0]) for k in ("1", "2"))
    assert np.linalg.eigvalsh(c1 - c2).min() > 0
    assert m1["C_eff_error_mean"] == pytest.approx(
        np.linalg.norm(c1 - c2) / np.linalg.norm(c2), rel=1e-9
    )
    assert (tmp_path / "convergence.png").read_bytes()[:8] == PNG


def test_convergence_with_user_materials_solves_and_names_them(tmp_path):
    """Glass/epoxy samples have the default run's geometry (the sampler draws shapes, then maps
    them to the phases' moduli) but another C_eff; the phases reach the sampler, the solver and
    the measures, and the table and the JSON name them."""
    materials = {"fiber": GLASS, "matrix": EPOXY}
    runs = {}
    for name, phases in (("default", ()), ("glass", ("--fiber", "72000,0.22", "--matrix",
                                                      "3500,0.35"))):  # fmt: skip
        result = invoke("convergence", "--boundary", "periodic", "-n", "2", "--ks", "1,2", "-o",
                        tmp_path / name, *phases)  # fmt: skip
        assert result.exit_code == 0, result.output
        runs[name] = (" ".join(result.stdout.split()), json.loads((tmp_path / name /
                      "convergence.json").read_text()))  # fmt: skip
    (text, glass), (default_text, default) = runs["glass"], runs["default"]
    assert "fiber E = 72000 MPa, ν = 0.22; matrix E = 3500 MPa, ν = 0.35" in text
    assert "fiber E = 85000 MPa, ν = 0.22; matrix E = 3000 MPa, ν = 0.4" in default_text
    assert glass["config"]["fiber"] == asdict(GLASS)
    assert glass["config"]["matrix"] == asdict(EPOXY)
    assert glass["fiber_fractions"] == default["fiber_fractions"]
    c_glass, c_default = (np.array(run["C_eff"]["2"]) for run in (glass, default))  # [2, 3, 3]
    difference = np.linalg.norm(c_glass - c_default, axis=(1, 2))
    assert np.all(difference > 0.05 * np.linalg.norm(c_default, axis=(1, 2)))
    # the same samples made of glass/epoxy and solved directly at k = 2 give that C_eff
    E, _ = sample_microstructures(GeneratorConfig(periodic=True), 0, range(2), **materials)
    solver = StrainSolver(SolverConfig(k=2, boundary="periodic", **materials))
    fields = np.stack([solver.solve(e[0]) for e in E])  # [2, 3, 3, 32, 32]
    expected = effective_stiffness(E, fields, "stress", 0.1, **materials)
    np.testing.assert_allclose(c_glass, expected, rtol=1e-10, atol=1e-10 * np.abs(expected).max())
    assert glass["measures"]["1"]["C_eff_error_mean"] > 0


@pytest.mark.parametrize(
    ("phases", "message"),
    [
        (["--fiber", "72000"], "--fiber must be E,nu"),
        (["--matrix", "3500,0.6"], "--matrix: Poisson's ratio"),
        (["--fiber", "3000,0.2"], "different Young's moduli"),
    ],
)
def test_convergence_refuses_bad_materials_in_one_line(tmp_path, phases, message):
    result = invoke("convergence", "--boundary", "periodic", "-o", tmp_path / "c", *phases)
    assert_one_error_line(result, message)
    assert not (tmp_path / "c").exists()
