"""Periodic files of SPEC §11 through the one reader: schema, mode, refusals, union reads."""

import json

import h5py
import numpy as np
import pytest
from support.datasets import standin_moduli, write_standin_dataset
from support.materials import EPOXY, GLASS

from microstrain.conventions import DS_C_EFF, DS_STRAIN
from microstrain.dataset import (
    check_boundary,
    load_samples,
    open_union,
    read_info,
    write_dataset,
)
from microstrain.errors import MicrostrainError
from microstrain.quantities import effective_stiffness


def periodic_fields(n: int, side: int = 32, seed: int = 0):
    """Schema-correct stand-in fields (not an elasticity solution): E [n, 1, s, s], cases."""
    e = np.tile(standin_moduli(n, seed), (1, 1, side // 32, side // 32))
    rng = np.random.default_rng(seed)
    cases = rng.normal(size=(n, 3, 3, side, side)).astype(np.float32) * 0.01
    for j in range(3):
        cases[:, j, j] += 0.05
    return e, cases


@pytest.mark.parametrize("side", [32, 64])
def test_a_periodic_file_reads_back_with_its_mode_and_stiffness(tmp_path, side):
    e, cases = periodic_fields(3, side)
    path = write_dataset(tmp_path / "p.h5", e, cases, applied_strain=0.05, plane="strain")
    info = read_info(path)
    assert (info.boundary, info.grid, info.n, info.plane) == ("periodic", side, 3, "strain")
    assert info.load_case == {
        "name": "periodic",
        "cases": ["xx", "yy", "xy"],
        "applied_strain": 0.05,
        "plane": "strain",
    }
    samples = load_samples(path, boundary="periodic")
    assert samples.strain.shape == (3, 3, 3, side, side)
    np.testing.assert_allclose(samples.strain, cases * 2, rtol=1e-6)  # rescaled to ū = 0.1
    expected = effective_stiffness(e, cases, "strain", 0.05)
    np.testing.assert_array_equal(samples.c_eff, expected)  # C_eff does not scale with ū
    with h5py.File(path) as f:
        assert f[DS_C_EFF].dtype == np.float64
        assert list(f[DS_STRAIN].attrs["cases"]) == ["xx", "yy", "xy"]


def test_materials_are_recorded_and_define_the_phases(tmp_path):
    e, cases = periodic_fields(2)
    e = np.where(e > 10_000, GLASS.youngs_modulus, EPOXY.youngs_modulus).astype(np.float32)
    path = write_dataset(tmp_path / "g.h5", e, cases, fiber=GLASS, matrix=EPOXY)
    info = read_info(path)
    assert info.phases == (GLASS, EPOXY)
    assert json.loads(h5py.File(path).attrs["materials"])["fiber"] == {
        "name": "fiber",
        "youngs_modulus": 72000.0,
        "poisson_ratio": 0.22,
    }
    samples = load_samples(path, boundary="periodic")
    np.testing.assert_allclose(samples.fiber_fraction, (e > 10_000).mean(axis=(1, 2, 3)))


def test_each_mode_refuses_the_other_in_one_line(tmp_path):
    uniaxial = write_standin_dataset(tmp_path / "u.h5", n=4)
    e, cases = periodic_fields(2)
    periodic = write_dataset(tmp_path / "p.h5", e, cases)
    with pytest.raises(
        MicrostrainError, match=r"is a periodic file .* takes uniaxial files"
    ) as err:
        load_samples(periodic)
    assert "\n" not in str(err.value)
    with pytest.raises(MicrostrainError, match=r"is a uniaxial file .* takes periodic files"):
        load_samples(uniaxial, boundary="periodic")
    with pytest.raises(MicrostrainError, match="is a periodic file"):
        open_union(periodic)
    with pytest.raises(MicrostrainError, match="evaluate takes uniaxial"):
        check_boundary(read_info(periodic), "uniaxial", "evaluate")


def test_a_union_of_periodic_files_reads_any_samples(tmp_path):
    e1, c1 = periodic_fields(3, seed=1)
    e2, c2 = periodic_fields(2, seed=2)
    write_dataset(tmp_path / "a.h5", e1, c1)
    write_dataset(tmp_path / "b.h5", e2, c2, applied_strain=0.2)
    union = open_union(tmp_path, boundary="periodic")
    E, strain = union.read(np.array([4, 0, 3]))
    np.testing.assert_array_equal(E, np.concatenate([e2[1:], e1[:1], e2[:1]]))
    np.testing.assert_allclose(strain, np.concatenate([c2[1:] / 2, c1[:1], c2[:1] / 2]), rtol=1e-6)


def test_periodic_images_of_another_size_are_refused(tmp_path):
    e, cases = periodic_fields(1)
    path = write_dataset(tmp_path / "p.h5", e, cases)
    with h5py.File(path, "r+") as f:
        del f["E"]
        f["E"] = np.full((1, 1, 48, 48), 3000.0, np.float32)
    with pytest.raises(MicrostrainError, match="multiple of 32"):
        read_info(path)
