"""The datamodule: reading SPEC §4 files, the seeded split, train-only normalization, mirroring."""

import h5py
import numpy as np
import pytest
import torch
from conftest import write_standin_dataset

from microstrain.conventions import ATTR_COMPLETE, DS_E, DS_STRAIN, FIBER, MATRIX
from microstrain.errors import MicrostrainError
from training.data import StrainDataModule, mirror_x, read_dataset, split_indices
from training.normalization import Normalizer


def test_split_is_seeded_disjoint_and_complete():
    a = split_indices(100, 0.1, 0.2, seed=3)
    b = split_indices(100, 0.1, 0.2, seed=3)
    c = split_indices(100, 0.1, 0.2, seed=4)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a[0], c[0])
    assert [len(x) for x in a] == [70, 10, 20]
    assert sorted(np.concatenate(a).tolist()) == list(range(100))


def test_split_refuses_impossible_fractions():
    with pytest.raises(MicrostrainError):
        split_indices(3, 0.5, 0.5, seed=0)
    with pytest.raises(MicrostrainError, match="too few"):
        split_indices(2, 0.4, 0.4, seed=0)


def test_normalization_comes_from_the_training_split_only(tmp_path):
    path = write_standin_dataset(tmp_path / "d.h5", n=40)
    dm = StrainDataModule(str(path), val_fraction=0.25, test_fraction=0.25, split_seed=1)
    dm.setup("fit")
    reference = Normalizer.fit(dm.train_set.youngs_modulus, dm.train_set.strain)
    _, val_idx, test_idx = split_indices(40, 0.25, 0.25, seed=1)
    # Make every val/test sample extreme; the fitted constants must not move.
    with h5py.File(path, "r+") as f:
        e, s = f[DS_E][()], f[DS_STRAIN][()]
        for idx in (val_idx, test_idx):
            e[idx] = FIBER.youngs_modulus
            s[idx] = 1e3
        f[DS_E][...] = e
        f[DS_STRAIN][...] = s
    extreme = StrainDataModule(str(path), val_fraction=0.25, test_fraction=0.25, split_seed=1)
    extreme.setup("fit")
    for name, buf in reference.state_dict().items():
        torch.testing.assert_close(extreme.normalizer.state_dict()[name], buf)
    assert float(extreme.val_set.strain.max()) == 1e3  # the extreme data did reach the val split
    # and the encoded training outputs are standardized per channel
    y = extreme.normalizer.encode_output(extreme.train_set.strain)
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4, rtol=0)
    torch.testing.assert_close(
        y.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-4, rtol=0
    )
    assert extreme.summary["n_train"] == 20 and extreme.summary["n_val"] == 10


def test_strain_is_rescaled_to_the_reference_applied_strain(tmp_path):
    ref = read_dataset(write_standin_dataset(tmp_path / "a.h5", n=4, applied_strain=0.1))
    other = read_dataset(write_standin_dataset(tmp_path / "b.h5", n=4, applied_strain=0.025))
    np.testing.assert_allclose(other["strain"], ref["strain"], rtol=1e-5, atol=1e-9)


def test_train_limit_keeps_validation_fixed(tmp_path):
    path = write_standin_dataset(tmp_path / "d.h5", n=30)
    full = StrainDataModule(str(path), split_seed=2)
    small = StrainDataModule(str(path), split_seed=2, train_limit=4)
    full.setup("fit")
    small.setup("fit")
    assert len(small.train_set) == 4
    torch.testing.assert_close(small.val_set.strain, full.val_set.strain)


def test_batches_are_cut_whole_with_the_right_shapes(standin_h5):
    dm = StrainDataModule(str(standin_h5), batch_size=8)
    dm.setup("fit")
    e, s = next(iter(dm.train_dataloader()))
    assert e.shape == (8, 1, 32, 32) and s.shape == (8, 3, 32, 32)
    assert e.dtype == s.dtype == torch.float32
    assert set(torch.unique(e).tolist()) <= {MATRIX.youngs_modulus, FIBER.youngs_modulus}
    assert sum(b[0].shape[0] for b in dm.val_dataloader()) == len(dm.val_set)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda f: f.attrs.__setitem__(ATTR_COMPLETE, False), "incomplete"),
        (lambda f: f.__delitem__(DS_STRAIN), "no dataset 'strain'"),
    ],
)
def test_bad_files_raise_one_clear_error(tmp_path, mutate, message):
    path = write_standin_dataset(tmp_path / "d.h5", n=4)
    with h5py.File(path, "r+") as f:
        mutate(f)
    with pytest.raises(MicrostrainError, match=message):
        read_dataset(path)
    with pytest.raises(MicrostrainError, match="not found"):
        read_dataset(tmp_path / "missing.h5")


def test_mirror_is_an_involution_and_flips_the_shear_sign():
    torch.manual_seed(0)
    e, s = torch.rand(2, 1, 32, 32), torch.randn(2, 3, 32, 32)
    e2, s2 = mirror_x(*mirror_x(e, s))
    torch.testing.assert_close(e2, e)
    torch.testing.assert_close(s2, s)
    em, sm = mirror_x(e, s)
    assert float(em[0, 0, 3, 0]) == float(e[0, 0, 3, -1])
    assert float(sm[0, 0, 3, 0]) == float(s[0, 0, 3, -1])
    assert float(sm[0, 2, 3, 0]) == -float(s[0, 2, 3, -1])


@pytest.mark.slow
def test_mirror_augmentation_labels_are_exact_fe_solutions():
    """Solve a microstructure and its x-mirror with the FE solver: labels transform exactly."""
    from data_gen.solver import SolverConfig, StrainSolver

    rng = np.random.default_rng(5)
    mask = rng.random((32, 32)) < 0.3
    mask[:, :10] = False  # clearly asymmetric in x
    e = np.where(mask, FIBER.youngs_modulus, MATRIX.youngs_modulus)
    solver = StrainSolver(SolverConfig(mode="refined", k=2))
    strain = solver.solve(e)  # [3, 32, 32]
    strain_mirrored_geometry = solver.solve(e[:, ::-1].copy())
    e_t = torch.from_numpy(e[None, None])
    em, sm = mirror_x(e_t, torch.from_numpy(strain[None]))
    np.testing.assert_array_equal(em[0, 0].numpy(), e[:, ::-1])
    scale = np.abs(strain).max()
    np.testing.assert_allclose(sm[0].numpy(), strain_mirrored_geometry, atol=1e-9 * scale, rtol=0)
    assert np.abs(strain_mirrored_geometry - strain).max() > 1e-3 * scale  # not trivially equal


def test_augmented_batches_hold_exactly_mirrored_samples(standin_h5):
    dm = StrainDataModule(str(standin_h5), augment_mirror=True)
    dm.setup("fit")
    ds = dm.train_set
    torch.manual_seed(0)
    e, s = ds.__getitems__(list(range(len(ds))))
    em, sm = mirror_x(ds.youngs_modulus, ds.strain)
    same = (e == ds.youngs_modulus).flatten(1).all(1) & (s == ds.strain).flatten(1).all(1)
    mirrored = (e == em).flatten(1).all(1) & (s == sm).flatten(1).all(1)
    assert bool((same | mirrored).all())
    assert 0 < int(mirrored.sum()) < len(ds)
