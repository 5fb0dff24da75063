"""The datamodule: reading SPEC §4 files through the core, the seeded split, train-only
normalization, fiber masks, mirroring."""

from collections import Counter

import h5py
import numpy as np
import pytest
import torch
from support.datasets import standin_moduli, standin_strain, write_standin_dataset

from microstrain.conventions import DS_STRAIN, FIBER, MATRIX
from microstrain.dataset import write_dataset
from microstrain.errors import MicrostrainError
from training.data import StrainDataModule, split_indices
from training.normalization import fit_normalizer
from training.physics import mirror_x


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


def test_split_prefix_keeps_every_old_sample_where_it_was(tmp_path):
    # files appended after a model was trained (named to sort after the old ones): a plain split
    # of the union reshuffles the old cells, split_prefix keeps each in its part
    old = write_standin_dataset(tmp_path / "a_old.h5", n=40, seed=1)
    new = write_standin_dataset(tmp_path / "b_new.h5", n=60, seed=2)
    kw = {"val_fraction": 0.1, "test_fraction": 0.2, "split_seed": 3}
    before = _setup(old, **kw).split
    plain = _setup([old, new], **kw).split
    assert not set(plain.test) >= set(before.test)
    after = _setup([new, old], split_prefix=40, **kw).split  # the listed order does not matter
    parts = ("train", "val", "test")
    for b, a in ((getattr(before, p), getattr(after, p)) for p in parts):
        np.testing.assert_array_equal(a[a < 40], b)
    assert [int((getattr(after, p) >= 40).sum()) for p in parts] == [42, 6, 12]
    assert sorted(np.concatenate([getattr(after, p) for p in parts]).tolist()) == list(range(100))
    with pytest.raises(MicrostrainError, match="file boundary"):
        _setup([old, new], split_prefix=30, **kw)
    with pytest.raises(MicrostrainError, match="split_prefix"):
        split_indices(100, 0.1, 0.2, seed=3, prefix=100)


def test_split_prefixes_keep_every_addition_where_it_was(tmp_path):
    """A second addition: ``[40, 100]`` leaves the first 100 samples as ``40`` split them (the
    old ones as they were, the first addition's as it had them) and splits the new by itself."""
    old = write_standin_dataset(tmp_path / "a_old.h5", n=40, seed=1)
    first = write_standin_dataset(tmp_path / "b_first.h5", n=60, seed=2)
    second = write_standin_dataset(tmp_path / "c_second.h5", n=50, seed=4)
    kw = {"val_fraction": 0.1, "test_fraction": 0.2, "split_seed": 3}
    before = _setup([old, first], split_prefix=40, **kw).split
    after = _setup([second, old, first], split_prefix=[40, 100], **kw).split
    parts = ("train", "val", "test")
    for b, a in ((getattr(before, p), getattr(after, p)) for p in parts):
        np.testing.assert_array_equal(a[a < 100], b)
    assert [int((getattr(after, p) >= 100).sum()) for p in parts] == [35, 5, 10]
    assert sorted(np.concatenate([getattr(after, p) for p in parts]).tolist()) == list(range(150))
    with pytest.raises(MicrostrainError, match="increasing"):
        split_indices(150, 0.1, 0.2, seed=3, prefix=[100, 40])
    with pytest.raises(MicrostrainError, match="file boundary"):
        _setup([old, first, second], split_prefix=[40, 90], **kw)


def _setup(path, **kw) -> StrainDataModule:
    dm = StrainDataModule(path if isinstance(path, list) else str(path), **kw)
    dm.setup("fit")
    return dm


def test_normalization_comes_from_the_training_split_only(tmp_path):
    e = standin_moduli(40)
    s = standin_strain(e)
    reference = _setup(
        write_dataset(tmp_path / "d.h5", e, s), val_fraction=0.25, test_fraction=0.25, split_seed=1
    )
    # Make every val/test sample extreme; the fitted constants must not move.
    _, val_idx, test_idx = split_indices(40, 0.25, 0.25, seed=1)
    held_out = np.concatenate([val_idx, test_idx])
    e[held_out] = FIBER.youngs_modulus
    s[held_out] = 1e3
    extreme = _setup(
        write_dataset(tmp_path / "x.h5", e, s), val_fraction=0.25, test_fraction=0.25, split_seed=1
    )
    fitted = fit_normalizer(extreme.training_pieces())
    for name, buf in fit_normalizer(reference.training_pieces()).state_dict().items():
        torch.testing.assert_close(fitted.state_dict()[name], buf, rtol=0, atol=0)
    assert float(extreme.val_set.strain.max()) == 1e3  # the extreme data did reach the val split
    # and the encoded training outputs are standardized per channel (float32 statistics)
    y = fitted.encode_output(extreme.train_set.strain)
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        y.std(dim=(0, 2, 3), unbiased=False), torch.ones(3), atol=1e-5, rtol=0
    )
    assert extreme.summary["n_train"] == 20 and extreme.summary["n_val"] == 10
    np.testing.assert_array_equal(extreme.split.val, np.sort(val_idx))
    np.testing.assert_array_equal(extreme.split.test, np.sort(test_idx))


def test_strain_is_rescaled_to_the_reference_applied_strain(tmp_path):
    ref = _setup(write_standin_dataset(tmp_path / "a.h5", n=8, applied_strain=0.1))
    other = _setup(write_standin_dataset(tmp_path / "b.h5", n=8, applied_strain=0.025))
    # ū 0.025 -> 0.1 is a factor 4, exact in float32: only the files' own rounding differs
    torch.testing.assert_close(other.train_set.strain, ref.train_set.strain, rtol=1e-6, atol=0)


def test_train_limit_keeps_validation_fixed(tmp_path):
    path = write_standin_dataset(tmp_path / "d.h5", n=30)
    full = _setup(path, split_seed=2)
    small = _setup(path, split_seed=2, train_limit=4)
    assert len(small.train_set) == 4
    torch.testing.assert_close(small.val_set.strain, full.val_set.strain, rtol=0, atol=0)


def test_batches_are_cut_whole_with_shapes_and_the_fiber_mask(standin_h5):
    dm = _setup(standin_h5, batch_size=8)
    e, s, fiber = next(iter(dm.train_dataloader()))
    assert e.shape == (8, 1, 32, 32) and s.shape == (8, 3, 32, 32) and fiber.shape == e.shape
    assert e.dtype == s.dtype == torch.float32 and fiber.dtype == torch.bool
    assert set(torch.unique(e).tolist()) <= {MATRIX.youngs_modulus, FIBER.youngs_modulus}
    assert torch.equal(fiber, e == FIBER.youngs_modulus)
    assert sum(b.strain.shape[0] for b in dm.val_dataloader()) == len(dm.val_set)
    low, high = dm.summary["fiber_fraction_range"]
    fractions = dm.train_set.fiber.float().mean(dim=(1, 2, 3))
    assert (low, high) == (float(fractions.min()), float(fractions.max()))


def test_the_dataset_summary_carries_the_recorded_times(tmp_path):
    e = standin_moduli(6)
    seconds = np.array([0.5, 0.1, 0.2, 0.4, 0.3, 0.6])
    path = write_dataset(tmp_path / "t.h5", e, standin_strain(e), solve_seconds=seconds)
    dataset = _setup(path, val_fraction=0.2, test_fraction=0.2).dataset
    assert dataset["t_simulation"] == pytest.approx(0.35, rel=1e-15)  # the median solve time
    assert dataset["t_data"] == pytest.approx(2.1, rel=1e-15)  # their sum: no wall-time attribute
    untimed = _setup(write_dataset(tmp_path / "u.h5", e, standin_strain(e))).dataset
    assert untimed["t_data"] is None and untimed["t_simulation"] is None
    assert untimed["n_samples"] == 6


def _incomplete(path):
    e = standin_moduli(4)
    write_dataset(path, e, standin_strain(e), complete=False)


def _no_strain(path):
    write_standin_dataset(path, n=4)
    with h5py.File(path, "r+") as f:
        del f[DS_STRAIN]


def _nan_strain(path):
    e = standin_moduli(4)
    s = standin_strain(e)
    s[2, 1, 5, 5] = np.nan
    write_dataset(path, e, s)


@pytest.mark.parametrize(
    "write, message",
    [
        (_incomplete, "incomplete"),
        (_no_strain, "no 'strain' dataset"),
        (_nan_strain, "NaN or infinite values in 1 sample"),
    ],
)
def test_bad_files_raise_one_clear_error(tmp_path, write, message):
    path = tmp_path / "d.h5"
    write(path)
    with pytest.raises(MicrostrainError, match=message):
        _setup(path)
    with pytest.raises(MicrostrainError, match="not found"):
        _setup(tmp_path / "missing.h5")


def test_mirror_is_an_involution_and_flips_the_shear_sign():
    torch.manual_seed(0)
    e, s = torch.rand(2, 1, 32, 32), torch.randn(2, 3, 32, 32)
    e2, s2 = mirror_x(*mirror_x(e, s))
    torch.testing.assert_close(e2, e, rtol=0, atol=0)
    torch.testing.assert_close(s2, s, rtol=0, atol=0)
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


def test_augmented_batches_hold_exactly_mirrored_samples_and_masks(standin_h5):
    ds = _setup(standin_h5, augment_mirror=True).train_set
    torch.manual_seed(0)
    e, s, fiber = ds.batch(list(range(len(ds))))
    em, sm = mirror_x(ds.youngs_modulus, ds.strain)
    same = (e == ds.youngs_modulus).flatten(1).all(1) & (s == ds.strain).flatten(1).all(1)
    mirrored = (e == em).flatten(1).all(1) & (s == sm).flatten(1).all(1)
    assert bool((same | mirrored).all())
    assert 0 < int(mirrored.sum()) < len(ds)
    assert torch.equal(fiber, e == FIBER.youngs_modulus)  # the mask travels with its sample


# --- many files, streamed reading, DDP parts -------------------------------------------------


def _keys(batches) -> Counter:
    """Samples of ``batches`` by the bytes of their strain (augmentation off)."""
    return Counter(s.numpy().tobytes() for b in batches for s in b.strain)


@pytest.fixture(scope="module")
def two_files(tmp_path_factory) -> list[str]:
    """200 + 130 stand-in samples in two files (chunks of 64: the last ones partly filled)."""
    tmp = tmp_path_factory.mktemp("two")
    return [
        str(write_standin_dataset(tmp / "a.h5", n=200, seed=1)),
        str(write_standin_dataset(tmp / "b.h5", n=130, seed=2)),
    ]


def test_streamed_splits_equal_the_in_memory_ones(two_files):
    memory = _setup(two_files, lazy=False, batch_size=16, eval_batch_size=50)
    lazy = _setup(two_files, lazy=True, batch_size=16, eval_batch_size=50, shuffle_buffer=100)
    assert not memory.lazy_reading and lazy.lazy_reading
    for name in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(lazy.split, name), getattr(memory.split, name))
    for key, value in (
        fit_normalizer(memory.training_pieces()).state_dict().items()
    ):  # streamed moments, float64
        torch.testing.assert_close(
            fit_normalizer(lazy.training_pieces()).state_dict()[key], value, rtol=1e-6, atol=0
        )
    assert lazy.summary["fiber_fraction_range"] == memory.summary["fiber_fraction_range"]
    assert lazy.summary["fiber_fraction_mean"] == pytest.approx(
        memory.summary["fiber_fraction_mean"], rel=1e-6
    )
    for name in ("val", "test"):  # evaluation: the same batches in the same order
        for a, b in zip(memory.loader(name), lazy.loader(name), strict=True):
            for x, y in zip(a, b, strict=True):
                assert torch.equal(x, y)
    epoch = list(lazy.train_dataloader())
    assert _keys(epoch) == _keys([memory.train_set.batch(list(range(len(memory.train_set))))])
    assert [b.strain.shape[0] for b in epoch] == [16] * 16 + [8]  # 264 training samples


@pytest.mark.parametrize("lazy", [False, True])
def test_two_processes_see_each_training_sample_once_per_epoch(two_files, lazy):
    """What each DDP rank's loader yields (the in-memory loader is the one a GPU run uses with
    the tensors on the device): together the training split, once, in equal batch counts."""
    dm = _setup(two_files, lazy=lazy, batch_size=16, shuffle_buffer=100)
    expected = _keys([dm.train_set.batch(list(range(len(dm.train_set))))])
    orders = []
    for epoch in (0, 1):
        parts = [dm.loader("train", rank=r, world_size=2) for r in (0, 1)]
        for part in parts:
            part.sampler.set_epoch(epoch)
        batches = [list(part) for part in parts]
        assert len(batches[0]) == len(batches[1]) == len(parts[0]) == 9  # 132 samples each
        assert _keys(batches[0] + batches[1]) == expected
        orders.append([b.strain for b in batches[0]])
    assert not torch.equal(orders[0][0], orders[1][0])  # another order in the next epoch


def test_lazy_auto_holds_small_data_in_memory():
    from training.lazy_data import BYTES_PER_SAMPLE, available_memory, needs_lazy

    assert BYTES_PER_SAMPLE == 4 * 4 * 32 * 32 + 32 * 32
    assert available_memory() is not None
    assert not needs_lazy(1000) and needs_lazy(10**12)  # 17 PB do not fit


def test_a_streamed_file_with_nan_is_refused_at_setup(tmp_path):
    _nan_strain(tmp_path / "d.h5")
    with pytest.raises(MicrostrainError, match="NaN or infinite values in 1 sample"):
        _setup(tmp_path / "d.h5", lazy=True)
