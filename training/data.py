"""The SPEC §4 datasets as a LightningDataModule, wholly in memory, read through the core.

The file is read once by :func:`microstrain.dataset.load_samples` (the one reader: schema checks,
refusal of incomplete or non-finite files, strain rescaled to ū = 0.1). The datasets are small
(4 KiB of modulus + 12 KiB of strain per sample), so ``setup`` keeps them as tensors; when training
on a GPU the tensors are moved there once and batches are cut by indexing on the device, so loading
never starves the accelerator. Batches are fetched whole instead of sample by sample, which keeps
the data path cheap on CPU too.

A batch is ``(E, strain, fiber)``: E ``[B, 1, 32, 32]`` MPa, strain ``[B, 3, 32, 32]`` for ū = 0.1
and the boolean fiber mask ``[B, 1, 32, 32]`` the metrics need, computed once at ``setup`` with the
core's rule (:func:`microstrain.fields.fiber_mask`).

The split is a seeded permutation of the file's samples; :attr:`StrainDataModule.split` holds its
index arrays and the training run writes them into its run record (``training.run_record``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from microstrain.dataset import load_samples, summarize
from microstrain.errors import MicrostrainError
from microstrain.fields import fiber_mask
from training.normalization import Normalizer


class StrainBatch(NamedTuple):
    """E ``[B, 1, 32, 32]`` MPa, strain ``[B, 3, 32, 32]`` fiber ``[B, 1, 32, 32]`` bool."""

    youngs_modulus: torch.Tensor
    strain: torch.Tensor
    fiber: torch.Tensor


def mirror_x(
    youngs_modulus: torch.Tensor, strain: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact x-mirror symmetry of SPEC §1 (x -> 1 - x) applied to a sample batch.

    E ``[N, 1, 32, 32]`` is flipped along x (columns); eps_xx and eps_yy are flipped; gamma_xy is
    flipped and changes sign. Returns new tensors.
    """
    sign = torch.tensor([1.0, 1.0, -1.0], dtype=strain.dtype, device=strain.device)
    return youngs_modulus.flip(-1), strain.flip(-1) * sign.view(1, 3, 1, 1)


@dataclass(frozen=True)
class Split:
    """Sorted sample indices of the file: train, validation and test (int64 arrays)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def split_indices(
    n_total: int, val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded permutation of ``range(n_total)`` cut into (train, val, test) index arrays.

    Val and test get ``round(fraction * n)`` samples, at least one each when their fraction is
    positive; the rest is training data.
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise MicrostrainError("val_fraction and test_fraction must be in [0, 1) with sum < 1")
    n_val = max(round(val_fraction * n_total), 1 if val_fraction > 0 else 0)
    n_test = max(round(test_fraction * n_total), 1 if test_fraction > 0 else 0)
    if n_total - n_val - n_test < 1:
        raise MicrostrainError(
            f"{n_total} samples are too few for val_fraction={val_fraction}, "
            f"test_fraction={test_fraction}"
        )
    order = np.random.default_rng(seed).permutation(n_total)
    return order[n_val + n_test :], order[:n_val], order[n_val : n_val + n_test]


def dataset_summary(path: str | Path) -> dict[str, Any]:
    """:func:`microstrain.dataset.summarize` as JSON types: identity, T_data, T_simulation."""
    return asdict(summarize(path))


class InMemoryStrainDataset(Dataset):
    """Raw E ``[n, 1, 32, 32]`` (MPa), strain ``[n, 3, 32, 32]`` (ū = 0.1), bool fiber mask.

    :meth:`batch` returns a whole :class:`StrainBatch` by one index operation (on whichever device
    the tensors live); with ``augment_mirror`` each sample of a batch is x-mirrored with
    probability 1/2 (its fiber mask with it).
    """

    def __init__(
        self,
        youngs_modulus: torch.Tensor,
        strain: torch.Tensor,
        fiber: torch.Tensor,
        augment_mirror: bool = False,
    ) -> None:
        self.youngs_modulus = youngs_modulus
        self.strain = strain
        self.fiber = fiber
        self.augment_mirror = augment_mirror

    def __len__(self) -> int:
        return self.youngs_modulus.shape[0]

    def to(self, device: torch.device) -> InMemoryStrainDataset:
        self.youngs_modulus = self.youngs_modulus.to(device)
        self.strain = self.strain.to(device)
        self.fiber = self.fiber.to(device)
        return self

    def batch(self, indices: list[int]) -> StrainBatch:
        idx = torch.as_tensor(indices, device=self.youngs_modulus.device)
        e, s, f = self.youngs_modulus[idx], self.strain[idx], self.fiber[idx]
        if self.augment_mirror:
            flip = torch.rand(len(indices), device=e.device).view(-1, 1, 1, 1) < 0.5  # [B,1,1,1]
            e_m, s_m = mirror_x(e, s)
            e = torch.where(flip, e_m, e)
            s = torch.where(flip, s_m, s)
            f = torch.where(flip, f.flip(-1), f)
        return StrainBatch(e, s, f)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.youngs_modulus[index], self.strain[index]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """E and strain of ``indices`` (pictures, benchmarks); the loader uses :meth:`batch`."""
        b = self.batch(indices)
        return b.youngs_modulus, b.strain


class _Batches(Dataset):
    """What the DataLoader indexes: one whole :class:`StrainBatch` per list of indices."""

    def __init__(self, samples: InMemoryStrainDataset) -> None:
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitems__(self, indices: list[int]) -> StrainBatch:
        return self.samples.batch(indices)


def _batch_as_is(batch: Any) -> Any:
    """``collate_fn`` for :meth:`_Batches.__getitems__`: the batch is ready."""
    return batch


class StrainDataModule(pl.LightningDataModule):
    """Train/val/test splits of one SPEC §4 file, held in memory.

    Args:
        path: the HDF5 dataset.
        batch_size: training batch size (evaluation uses ``eval_batch_size``).
        val_fraction, test_fraction, split_seed: the recorded, reproducible split.
        augment_mirror: x-mirror half of each training batch (exact symmetry, SPEC §1).
        train_limit: keep only the first ``train_limit`` training samples of the split (learning
            curves, overfit-one); the val/test splits do not change.
        device_resident: move the tensors to the training device once (GPU) and index there.
        allow_incomplete: train on the complete samples of an interrupted generation.

    After ``setup``: :attr:`normalizer` (fitted on the training split), :attr:`split` (indices),
    :attr:`dataset` (:func:`dataset_summary` of the file) and :attr:`summary` (split sizes and
    the training split's fiber fractions).
    """

    def __init__(
        self,
        path: str = "data/train.h5",
        batch_size: int = 32,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_seed: int = 0,
        augment_mirror: bool = False,
        train_limit: int | None = None,
        eval_batch_size: int = 256,
        device_resident: bool = True,
        allow_incomplete: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.normalizer: Normalizer | None = None
        self.split: Split | None = None
        self.dataset: dict[str, Any] = {}
        self.summary: dict[str, Any] = {}
        self.train_set: InMemoryStrainDataset | None = None
        self.val_set: InMemoryStrainDataset | None = None
        self.test_set: InMemoryStrainDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        hp: Any = self.hparams
        samples = load_samples(hp.path, allow_incomplete=hp.allow_incomplete)
        n_total = samples.youngs_modulus.shape[0]
        train, val, test = split_indices(n_total, hp.val_fraction, hp.test_fraction, hp.split_seed)
        if hp.train_limit is not None:
            if hp.train_limit < 1:
                raise MicrostrainError("train_limit must be at least 1")
            train = train[: hp.train_limit]
        self.split = Split(*(np.sort(i) for i in (train, val, test)))
        e = torch.from_numpy(samples.youngs_modulus)  # [N, 1, 32, 32]
        s = torch.from_numpy(samples.strain)  # [N, 3, 32, 32]
        f = torch.from_numpy(fiber_mask(samples.youngs_modulus))  # bool [N, 1, 32, 32]
        t_idx, v_idx, s_idx = (torch.from_numpy(i) for i in asdict(self.split).values())
        self.normalizer = Normalizer.fit(e[t_idx], s[t_idx])
        self.train_set = InMemoryStrainDataset(e[t_idx], s[t_idx], f[t_idx], hp.augment_mirror)
        self.val_set = InMemoryStrainDataset(e[v_idx], s[v_idx], f[v_idx])
        self.test_set = InMemoryStrainDataset(e[s_idx], s[s_idx], f[s_idx])
        fraction = samples.fiber_fraction[self.split.train]  # [n_train]
        self.dataset = dataset_summary(hp.path)
        self.summary = {
            "n_total": n_total,
            "n_train": len(train),
            "n_val": len(val),
            "n_test": len(test),
            "fiber_fraction_range": [float(fraction.min()), float(fraction.max())],
            "fiber_fraction_mean": float(fraction.mean()),
        }
        trainer = self.trainer
        if hp.device_resident and trainer is not None:
            device = trainer.strategy.root_device
            if device.type != "cpu":
                for ds in (self.train_set, self.val_set, self.test_set):
                    ds.to(device)

    def _loader(self, ds: InMemoryStrainDataset | None, batch: int, shuffle: bool) -> DataLoader:
        if ds is None:
            raise MicrostrainError("StrainDataModule.setup() has not run")
        return DataLoader(
            _Batches(ds),
            batch_size=min(batch, len(ds)),
            shuffle=shuffle,
            num_workers=0,  # the data are in memory already; workers would only copy them
            collate_fn=_batch_as_is,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, self.hparams["batch_size"], shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, self.hparams["eval_batch_size"], shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, self.hparams["eval_batch_size"], shuffle=False)
