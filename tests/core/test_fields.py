"""Input validation and conversion shared by solve, predict and REST (SPEC §2)."""

import h5py
import numpy as np
import pytest

from microstrain.conventions import FIBER, MATRIX
from microstrain.errors import InputError, MicrostrainError
from microstrain.fields import (
    fiber_fraction,
    load_microstructures,
    to_youngs_modulus,
)
from microstrain.files import atomic_output
from microstrain.outputs import save_strain


def _mask(n: int = 2) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.random((n, 32, 32)) < 0.3).astype(np.float64)


@pytest.mark.parametrize("shape", [(32, 32), (3, 32, 32), (3, 1, 32, 32)])
def test_accepted_shapes_become_n1hw(shape):
    out = to_youngs_modulus(np.ones(shape))
    assert out.dtype == np.float32
    assert out.shape == (int(np.prod(shape)) // 1024, 1, 32, 32)
    assert np.all(out == FIBER.youngs_modulus)


def test_mask_and_modulus_give_the_same_map():
    mask = _mask()
    e = np.where(mask > 0, FIBER.youngs_modulus, MATRIX.youngs_modulus)
    np.testing.assert_array_equal(to_youngs_modulus(mask), to_youngs_modulus(e))
    np.testing.assert_allclose(fiber_fraction(to_youngs_modulus(mask)), mask.mean(axis=(1, 2)))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (np.ones((31, 32)), "32x32"),
        (np.ones((2, 3, 32, 32)), "expected [32, 32]"),
        (np.ones(5), "expected [32, 32]"),
        (np.full((32, 32), np.nan), "NaN"),
        (np.full((32, 32), 1234.0), "1234"),
        (np.zeros((0, 32, 32)), "N = 0"),
        ([["a"]], "not a numeric array"),
    ],
)
def test_bad_input_names_the_problem(data, message):
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        to_youngs_modulus(data)


def test_explicit_kinds_are_enforced():
    with pytest.raises(InputError, match="fiber mask"):
        to_youngs_modulus(np.full((32, 32), 3000.0), kind="mask")
    with pytest.raises(InputError, match="E values"):
        to_youngs_modulus(np.ones((32, 32)), kind="E")


def test_load_npy_and_h5(tmp_path):
    mask = _mask(4)
    np.save(tmp_path / "m.npy", mask)
    with h5py.File(tmp_path / "m.h5", "w") as f:
        f["fiber_mask"] = mask
    a = load_microstructures(tmp_path / "m.npy")
    b = load_microstructures(tmp_path / "m.h5")
    np.testing.assert_array_equal(a, b)
    assert a.shape == (4, 1, 32, 32)


def test_missing_and_corrupt_files_are_user_errors(tmp_path):
    with pytest.raises(MicrostrainError, match="not found"):
        load_microstructures(tmp_path / "absent.npy")
    (tmp_path / "bad.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(MicrostrainError, match="HDF5"):
        load_microstructures(tmp_path / "bad.h5")
    (tmp_path / "x.txt").write_text("1")
    with pytest.raises(MicrostrainError, match="unsupported"):
        load_microstructures(tmp_path / "x.txt")


def test_failed_write_leaves_nothing(tmp_path):
    target = tmp_path / "out.npy"
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_save_strain_roundtrip(tmp_path):
    strain = np.random.default_rng(1).random((2, 3, 32, 32)).astype(np.float32)
    save_strain(tmp_path / "s.npy", strain)
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy"), strain)
    save_strain(tmp_path / "s.h5", strain, youngs_modulus=np.full((2, 1, 32, 32), 3000.0))
    with h5py.File(tmp_path / "s.h5") as f:
        np.testing.assert_array_equal(f["strain"][()], strain)
        assert list(f["strain"].attrs["channels"]) == ["eps_xx", "eps_yy", "gamma_xy"]
    with pytest.raises(MicrostrainError, match="does not exist"):
        save_strain(tmp_path / "nodir" / "s.npy", strain)


def test_save_strain_h5_holds_the_quantities_of_its_plane_and_npy_only_strain(tmp_path):
    from microstrain.quantities import QUANTITY_NAMES, quantities

    E = np.where(_mask(), FIBER.youngs_modulus, MATRIX.youngs_modulus)[:, None]  # [2, 1, 32, 32]
    strain = np.random.default_rng(2).normal(0, 0.05, (2, 3, 32, 32))  # float64: stored float32
    save_strain(tmp_path / "q.h5", strain, E, {"applied_strain": "0.3"}, "strain", 0.05)
    expected = quantities(E.astype(np.float32), strain.astype(np.float32), "strain", 0.05)
    with h5py.File(tmp_path / "q.h5") as f:
        for name in QUANTITY_NAMES:
            np.testing.assert_array_equal(f[name][()], expected[name], err_msg=name)
        assert f["stress"].attrs["unit"] == "MPa"
        assert list(f["stress"].attrs["channels"]) == ["sigma_xx", "sigma_yy", "tau_xy"]
        # the attributes say what the quantities were computed for, over a caller's attribute
        assert f.attrs["plane"] == "strain" and f.attrs["applied_strain"] == 0.05
    save_strain(tmp_path / "q.npy", strain, E, plane="strain", applied_strain=0.05)
    np.testing.assert_array_equal(np.load(tmp_path / "q.npy"), strain.astype(np.float32))
    with pytest.raises(ValueError, match="need E"):
        save_strain(tmp_path / "bad.h5", strain, plane="stress", applied_strain=0.1)
    with pytest.raises(InputError, match="plane"):
        save_strain(tmp_path / "bad.h5", strain, E, plane="3d", applied_strain=0.1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["q.h5", "q.npy"]


def test_written_file_has_ordinary_permissions(tmp_path):
    import os
    import stat

    path = save_strain(tmp_path / "p.npy", np.zeros((1, 3, 32, 32)))
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


def test_shape_message_names_the_shape_as_given():
    with pytest.raises(InputError, match=r"shape \[2, 2\]"):
        to_youngs_modulus(np.ones((2, 2)))
