"""`microstrain inspect`: statistics of a real (pixel-mode) dataset, the PNG, and refusals."""

from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from data_gen.generate import GenerateConfig, generate
from data_gen.inspect import dataset_stats
from data_gen.solver import SolverConfig
from microstrain import conventions as C
from microstrain.dataset import read_samples


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


def test_cli_prints_table_and_writes_png(dataset, tmp_path, capsys, run_cli):
    png = tmp_path / "grid.png"
    assert run_cli("inspect", str(dataset), "--png", str(png), "--n-show", "3") == 0
    out = capsys.readouterr().out
    for text in ("samples N", "pixel, k = 1", "plane stress", "fiber fraction", "gamma_xy",
                 "T_data", "solve time per sample"):  # fmt: skip
        assert text in out, text
    image = Image.open(png)
    assert image.format == "PNG"
    width, height = image.size
    assert width > 800 and height > 3 * 200  # 3 rows x 4 panels
    assert len(list(tmp_path.iterdir())) == 1  # no temporary file left behind


def test_incomplete_file_is_refused_loudly_unless_allowed(dataset, tmp_path, capsys, run_cli):
    partial = tmp_path / "partial.h5"
    partial.write_bytes(dataset.read_bytes())
    with h5py.File(partial, "r+") as f:
        f.attrs[C.ATTR_COMPLETE] = False
    assert run_cli("inspect", str(partial)) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "INCOMPLETE" in err and "--allow-incomplete" in err
    assert run_cli("inspect", str(partial), "--allow-incomplete") == 0
    out = capsys.readouterr().out
    assert "WARNING" in out and "INCOMPLETE" in out and "partial file" in out


@pytest.mark.parametrize("kind", ["missing", "garbage", "foreign"])
def test_bad_files_are_one_line_errors(tmp_path, capsys, kind, run_cli):
    path = tmp_path / "x.h5"
    if kind == "garbage":
        path.write_bytes(b"\x00" * 100)
    elif kind == "foreign":
        with h5py.File(path, "w") as f:
            f["numbers"] = np.arange(3)
    assert run_cli("inspect", str(path)) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err


def test_png_into_missing_directory_is_an_error(dataset, tmp_path, capsys, run_cli):
    assert run_cli("inspect", str(dataset), "--png", str(tmp_path / "no" / "g.png")) == 1
    assert "output directory does not exist" in capsys.readouterr().err
