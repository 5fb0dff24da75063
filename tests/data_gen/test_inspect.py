"""`microstrain inspect`: statistics of real (pixel-mode) datasets, the PNG, and refusals."""

from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image
from support.cli import invoke

from data_gen.generate import GenerateConfig, generate
from data_gen.inspect import dataset_stats
from data_gen.solver import SolverConfig, StrainSolver
from microstrain import conventions as C
from microstrain.conventions import FIBER, GRID, MATRIX
from microstrain.dataset import read_samples, write_dataset
from microstrain.fields import fiber_mask
from microstrain.quantities import quantities, reuss_bound, uniform_strain_bound, voigt_bound


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("insp") / "d.h5"
    generate(GenerateConfig(n=5, output=path, seed=1, solver=SolverConfig(mode="pixel")), False)
    return path


def test_stats_agree_with_the_data(dataset):
    stats = dataset_stats(dataset)
    data = read_samples(dataset)
    strain = data[C.DS_STRAIN].astype(np.float64)  # [5, 3, 32, 32]
    np.testing.assert_allclose(stats.strain_min, strain.min(axis=(0, 2, 3)))
    np.testing.assert_allclose(stats.strain_max, strain.max(axis=(0, 2, 3)))
    np.testing.assert_allclose(stats.strain_mean, strain.mean(axis=(0, 2, 3)), rtol=1e-6)
    ff = data[C.DS_FIBER_FRACTION]
    assert stats.fiber_fraction == pytest.approx((ff.min(), ff.mean(), ff.max()))
    assert stats.mean_eps_xx == pytest.approx(0.1, rel=1e-5)
    assert stats.mean_eps_xx_max_rel_dev < 1e-4
    assert stats.solve_seconds_total == pytest.approx(data[C.DS_SOLVE_SECONDS].sum())
    assert stats.finite


def test_quantity_stats_are_the_cores_and_within_the_bounds(dataset):
    stats = dataset_stats(dataset)
    data = read_samples(dataset)
    E, ff = data[C.DS_E], data[C.DS_FIBER_FRACTION]  # [5, 1, 32, 32] MPa, [5]
    q = quantities(E, data[C.DS_STRAIN], "stress", 0.1)
    voigt, reuss = voigt_bound(ff, "stress"), reuss_bound(ff, "stress")
    position = (q["E_x"] - reuss) / (voigt - reuss)
    assert stats.E_x_mean == pytest.approx(q["E_x"].mean(), rel=1e-12)
    assert (stats.voigt_mean, stats.reuss_mean) == pytest.approx((voigt.mean(), reuss.mean()))
    assert stats.E_x_position == pytest.approx((position.min(), position.mean(), position.max()))
    # a displacement FE solution lies between the rigorous bounds of its fiber fraction
    assert np.all(reuss < q["E_x"]) and np.all(q["E_x"] < uniform_strain_bound(ff, "stress"))
    assert stats.below_reuss == 0 and 0 < stats.E_x_position[0]
    peaks = q["max_von_mises"]
    assert stats.peak_von_mises_mean == pytest.approx(peaks.mean(), rel=1e-12)
    assert stats.peak_von_mises_max == peaks.max()
    assert stats.peak_von_mises_sample == peaks.argmax()
    vm = q["von_mises"].reshape(5, -1)  # [5, 1024] MPa
    fiber = fiber_mask(E).reshape(5, -1)
    assert stats.peak_in_fiber == sum(fiber[i, vm[i].argmax()] for i in range(5))
    matrix_peaks = np.where(fiber, 0.0, vm).max(axis=1)
    assert stats.matrix_peak_von_mises == pytest.approx((matrix_peaks.mean(), matrix_peaks.max()))


def test_quantity_stats_use_the_plane_and_applied_strain_of_the_file(tmp_path):
    """Plane strain, ū = 0.05: a matrix sheet, a fiber sheet and fiber/matrix layers along the
    load are in exact uniaxial stress (Q1 represents it), σ_xx = E' ū with E' = E / (1 − ν²),
    σ_zz = ν σ_xx: E_x = E' (the layers: the Voigt value, position 1) and von Mises
    σ_xx √(1 − ν + ν²) in each phase."""
    ubar, plane = 0.05, "strain"
    layers = np.zeros((GRID, GRID))
    layers[: GRID // 2] = 1.0  # fiber on top, matrix below: interfaces along x
    masks = np.stack([np.zeros((GRID, GRID)), np.ones((GRID, GRID)), layers])
    E = np.where(masks > 0, FIBER.youngs_modulus, MATRIX.youngs_modulus)[:, None]
    solver = StrainSolver(SolverConfig(mode="pixel", plane=plane, applied_strain=ubar))
    path = write_dataset(
        tmp_path / "h.h5", E, solver.solve_batch(E), applied_strain=ubar, plane=plane
    )
    stats = dataset_stats(path)

    def modulus(m):  # plane-strain uniaxial modulus E', von Mises per σ_xx
        return m.youngs_modulus / (1 - m.poisson_ratio**2), np.sqrt(
            1 - m.poisson_ratio + m.poisson_ratio**2
        )

    (e_m, vm_m), (e_f, vm_f) = modulus(MATRIX), modulus(FIBER)
    voigt = (e_m + e_f) / 2
    reuss = 2 / (1 / e_m + 1 / e_f)
    assert stats.E_x_mean == pytest.approx((e_m + e_f + voigt) / 3, rel=1e-6)
    assert stats.voigt_mean == pytest.approx((e_m + e_f + voigt) / 3, rel=1e-12)
    assert stats.reuss_mean == pytest.approx((e_m + e_f + reuss) / 3, rel=1e-12)
    assert stats.E_x_position == pytest.approx((1.0, 1.0, 1.0), abs=1e-5)  # only the layers
    assert stats.peak_von_mises_max == pytest.approx(vm_f * e_f * ubar, rel=1e-6)
    assert stats.peak_von_mises_mean == pytest.approx(
        (vm_m * e_m + 2 * vm_f * e_f) * ubar / 3, rel=1e-6
    )
    assert stats.peak_in_fiber == 2  # the fiber sheet and the layers
    assert stats.matrix_peak_von_mises == pytest.approx((vm_m * e_m * ubar,) * 2, rel=1e-6)


def test_cli_prints_table_and_writes_png(dataset, tmp_path):
    png = tmp_path / "grid.png"
    result = invoke("inspect", dataset, "--png", png, "--n-show", "2")
    assert result.exit_code == 0, result.output
    for text in ("samples N", "pixel, k = 1", "plane stress", "fiber fraction", "gamma_xy",
                 "T_data", "solve time per sample", "Reuss mean", "Voigt mean",
                 "peak von Mises", "in fiber", "peak matrix von Mises"):  # fmt: skip
        assert text in result.stdout, text
    image = Image.open(png)
    assert image.format == "PNG"
    width, height = image.size
    assert width > 800 and height > 4 * 200  # 2 samples x (E, strain; von Mises, stress)
    assert len(list(tmp_path.iterdir())) == 1  # no temporary file left behind


def test_incomplete_file_is_refused_loudly_unless_allowed(dataset, tmp_path):
    partial = tmp_path / "partial.h5"
    partial.write_bytes(dataset.read_bytes())
    with h5py.File(partial, "r+") as f:
        f.attrs[C.ATTR_COMPLETE] = False
    result = invoke("inspect", partial)
    assert result.exit_code == 1
    err = result.stderr.strip()
    assert "\n" not in err and "INCOMPLETE" in err and "--allow-incomplete" in err
    result = invoke("inspect", partial, "--allow-incomplete")
    assert result.exit_code == 0, result.output
    assert "WARNING" in result.stdout and "INCOMPLETE" in result.stdout
    assert "partial file" in result.stdout


@pytest.mark.parametrize("kind", ["missing", "garbage", "foreign"])
def test_bad_files_are_one_line_errors(tmp_path, kind):
    path = tmp_path / "x.h5"
    if kind == "garbage":
        path.write_bytes(b"\x00" * 100)
    elif kind == "foreign":
        with h5py.File(path, "w") as f:
            f["numbers"] = np.arange(3)
    result = invoke("inspect", path)
    assert result.exit_code == 1
    err = result.stderr.strip()
    assert err.startswith("error:") and "\n" not in err


def test_png_into_missing_directory_is_an_error(dataset, tmp_path):
    result = invoke("inspect", dataset, "--png", tmp_path / "no" / "g.png")
    assert result.exit_code == 1 and "output directory does not exist" in result.stderr
