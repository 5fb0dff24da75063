"""`microstrain predict` with a periodic model (SPEC §11): the unit cases and C_eff, a macro
strain or a macro stress by superposition, the engineering constants, and the refusals."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from support.cli import CliResult, invoke
from support.models import make_model_dir, make_periodic_model_dir, reference_periodic

from microstrain.quantities import engineering_constants, periodic_quantities, quantities


@pytest.fixture(scope="module")
def periodic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_periodic_model_dir(tmp_path_factory.mktemp("models") / "periodic")


def cells(tmp_path: Path, n: int = 2, side: int = 32) -> tuple[Path, np.ndarray]:
    """``n`` 0/1 masks in a .npy file and their E ``[n, 1, side, side]`` MPa."""
    mask = np.random.default_rng(side).random((n, side, side)) < 0.4
    path = tmp_path / "cells.npy"
    np.save(path, mask.astype(np.float64))
    return path, np.where(mask, 85_000.0, 3_000.0).astype(np.float32)[:, None]


def predicted(
    model_dir: Path, tmp_path: Path, out_name: str, *options: object, side: int = 32
) -> tuple[Path, np.ndarray, CliResult]:
    """``microstrain predict`` of :func:`cells` into ``tmp_path / out_name``, which must succeed:
    the output path, the cells' E ``[n, 1, side, side]`` MPa and the command's result."""
    path, e = cells(tmp_path, side=side)
    out = tmp_path / out_name
    result = invoke("predict", model_dir, path, "-o", out, *options)
    assert result.exit_code == 0, result.output
    return out, e, result


@pytest.mark.parametrize("side", [32, 64])
def test_the_unit_cases_c_eff_and_constants_are_written(
    periodic_dir: Path, tmp_path: Path, side: int
) -> None:
    out, e, result = predicted(periodic_dir, tmp_path, "out.h5", side=side)
    cases, c_eff, estimate = reference_periodic(e)
    with h5py.File(out) as f:
        np.testing.assert_allclose(f["strain"][:], cases, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(f["C_eff"][:], c_eff, rtol=1e-5)
        constants = engineering_constants(f["C_eff"][:])
        for name in ("E_1", "E_2", "nu_12", "G_12"):
            np.testing.assert_allclose(f[name][:], constants[name], rtol=1e-12)
        expected = periodic_quantities(e, f["strain"][:], "strain", 0.1)
        np.testing.assert_allclose(f["von_mises"][:], expected["von_mises"], rtol=1e-6)
        np.testing.assert_allclose(f["error_estimate"][:], estimate, rtol=1e-4)
        assert f.attrs["plane"] == "strain"
    assert "E_1" in result.stdout


def test_a_macro_stress_gives_fields_whose_mean_strain_is_c_eff_inverse_times_it(
    periodic_dir: Path, tmp_path: Path
) -> None:
    out, e, _ = predicted(periodic_dir, tmp_path, "out.h5", "--macro-stress", "100,0,0")
    with h5py.File(out) as f:
        strain, c_eff = f["strain"][:], f["C_eff"][:]  # [N, 3, n, n], [N, 3, 3]
        expected_macro = np.linalg.solve(c_eff, np.array([100.0, 0, 0])[None, :, None])[..., 0]
        np.testing.assert_allclose(f["macro_strain"][:], expected_macro, rtol=1e-12)
        np.testing.assert_allclose(
            strain.astype(np.float64).mean(axis=(2, 3)), expected_macro, rtol=1e-5, atol=1e-9
        )
        # the mean stress of the superposed field is the macro stress (C_eff of the fields)
        np.testing.assert_array_equal(f["macro_stress"][:], np.tile([100.0, 0, 0], (2, 1)))
        np.testing.assert_allclose(
            f["stress"][:], quantities(e, strain, "strain", 1.0)["stress"], rtol=1e-6
        )
        assert f["unit_cases"].shape == (2, 3, 3, 32, 32) and f["von_mises"].shape == (2, 32, 32)


def test_a_macro_strain_is_the_superposition_of_the_cases(
    periodic_dir: Path, tmp_path: Path
) -> None:
    out, e, _ = predicted(periodic_dir, tmp_path, "out.npy", "--macro-strain", "0.01,-0.002,0.004")
    cases, _, _ = reference_periodic(e)
    expected = np.einsum("j,njchw->nchw", np.array([0.1, -0.02, 0.04]), cases)
    np.testing.assert_allclose(np.load(out), expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--macro-strain", "0.01,0"], "--macro-strain must be three finite numbers"),
        (["--macro-stress", "1,a,2"], "--macro-stress must be three numbers"),
        (["--macro-strain", "0,0,0", "--macro-stress", "1,0,0"], "not both"),
        (["--plane", "stress"], "plane"),
    ],
)
def test_bad_loads_and_the_other_plane_are_one_error_line(
    periodic_dir: Path, tmp_path: Path, options: list[str], message: str
) -> None:
    path, _ = cells(tmp_path)
    result = invoke("predict", periodic_dir, path, "-o", tmp_path / "o.h5", *options)
    assert result.exit_code != 0 and message in result.stderr
    assert result.stderr.count("error:") == 1 and not (tmp_path / "o.h5").exists()


def test_a_uniaxial_model_refuses_a_macro_load(tmp_path: Path) -> None:
    model = make_model_dir(tmp_path / "uniaxial")
    path, _ = cells(tmp_path)
    result = invoke("predict", model, path, "-o", tmp_path / "o.h5", "--macro-stress", "1,0,0")
    assert result.exit_code != 0 and "need a periodic model" in result.stderr


def test_png_draws_the_three_cases_or_the_loads_fields(periodic_dir: Path, tmp_path: Path) -> None:
    from PIL import Image

    path, _ = cells(tmp_path)
    sizes = {}
    for name, load in (("cases", ()), ("shear", ("--macro-stress", "0,0,50"))):
        png = tmp_path / f"{name}.png"
        result = invoke("predict", periodic_dir, path, "-o", tmp_path / "o.h5", "--png", png, *load)
        assert result.exit_code == 0, result.output
        assert f"wrote {png}" in result.stdout
        with Image.open(png) as image:
            sizes[name] = image.size
    # a row per unit case of five panels (E, three strains, von Mises) against the load's two rows
    # of four (E and its strains over von Mises and its stresses)
    assert sizes["cases"][1] / sizes["shear"][1] == pytest.approx(3 / 2, rel=0.15)
    assert sizes["cases"][0] / sizes["shear"][0] == pytest.approx(5 / 4, rel=0.15)
