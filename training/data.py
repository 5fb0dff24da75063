"""The HDF5 datasets of SPEC §4 as a LightningDataModule, wholly in memory.

The datasets are small (4 KiB of modulus + 12 KiB of strain per sample), so ``setup`` reads them
once into tensors; when training on a GPU the tensors are moved there once and batches are cut by
indexing on the device, so loading never starves the accelerator. Batches are fetched whole
(``__getitems__``) instead of sample by sample, which keeps the data path cheap on CPU too.

The split is a seeded permutation: ``(n_total, val_fraction, test_fraction, split_seed)`` in the
checkpoint's hyperparameters reproduce it exactly. Strain is rescaled to ū = 0.1 (SPEC §1:
fields are linear in ū), so files written for another ū train the same model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from microstrain.conventions import (
    ATTR_COMPLETE,
    ATTR_DISCRETIZATION,
    ATTR_GENERATOR,
    ATTR_LOAD_CASE,
    DEFAULT_APPLIED_STRAIN,
    DS_E,
    DS_FIBER_FRACTION,
    DS_STRAIN,
    E_SHAPE,
    STRAIN_SHAPE,
)
from microstrain.errors import MicrostrainError
from microstrain.files import sha256_of
from training.normalization import Normalizer


def mirror_x(
    youngs_modulus: torch.Tensor, strain: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The exact x-mirror symmetry of SPEC §1 (x -> 1 - x) applied to a sample batch.

    E ``[N, 1, 32, 32]`` is flipped along x (columns); eps_xx and eps_yy are flipped; gamma_xy is
    flipped and changes sign. Returns new tensors.
    """
    sign = torch.tensor([1.0, 1.0, -1.0], dtype=strain.dtype, device=strain.device)
    return youngs_modulus.flip(-1), strain.flip(-1) * sign.view(1, 3, 1, 1)


def _json_attr(f: h5py.File, name: str) -> Any:
    raw = f.attrs.get(name)
    if raw is None:
        return None
    if isinstance(raw, bytes):
        raw = raw.decode()
    try:
        return json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        return raw


def read_dataset(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a SPEC §4 file -> ``{"E": [N,1,32,32], "strain": [N,3,32,32] for ū=0.1, ...}``.

    Raises :class:`MicrostrainError` for a missing, unreadable, incomplete or malformed file.
    """
    p = Path(path)
    if not p.is_file():
        raise MicrostrainError(f"dataset not found: {p}")
    try:
        with h5py.File(p, "r") as f:
            for name in (DS_E, DS_STRAIN):
                if name not in f:
                    raise MicrostrainError(f"{p} has no dataset '{name}' (not a microstrain file)")
            if not bool(f.attrs.get(ATTR_COMPLETE, True)):
                raise MicrostrainError(f"{p} is marked incomplete (interrupted generation?)")
            youngs_modulus = np.asarray(f[DS_E][()], dtype=np.float32)
            strain = np.asarray(f[DS_STRAIN][()], dtype=np.float32)
            fraction = f[DS_FIBER_FRACTION][()] if DS_FIBER_FRACTION in f else None
            load_case = _json_attr(f, ATTR_LOAD_CASE) or {}
            generator = _json_attr(f, ATTR_GENERATOR)
            discretization = _json_attr(f, ATTR_DISCRETIZATION)
    except OSError as exc:
        raise MicrostrainError(f"cannot read {p} as HDF5: {exc}") from None
    n = youngs_modulus.shape[0]
    if youngs_modulus.shape[1:] != E_SHAPE or strain.shape != (n, *STRAIN_SHAPE):
        raise MicrostrainError(
            f"{p}: E {list(youngs_modulus.shape)} / strain {list(strain.shape)} do not match "
            f"[N, {', '.join(map(str, E_SHAPE))}] / [N, {', '.join(map(str, STRAIN_SHAPE))}]"
        )
    if n == 0:
        raise MicrostrainError(f"{p} holds no samples")
    applied = float(load_case.get("applied_strain", DEFAULT_APPLIED_STRAIN))
    if applied == 0.0:
        raise MicrostrainError(f"{p}: applied_strain is 0; cannot rescale to ū = 0.1")
    strain *= DEFAULT_APPLIED_STRAIN / applied  # linear elasticity: fields scale with ū
    if fraction is None:
        fraction = (youngs_modulus > youngs_modulus.min()).mean(axis=(1, 2, 3))
    return {
        "E": youngs_modulus,
        "strain": strain,
        "fiber_fraction": np.asarray(fraction, dtype=np.float32),
        "load_case": load_case,
        "generator": generator,
        "discretization": discretization,
    }


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


class InMemoryStrainDataset(Dataset):
    """Raw E ``[n, 1, 32, 32]`` (MPa) and strain ``[n, 3, 32, 32]`` (ū = 0.1) tensors.

    ``__getitems__`` returns a whole batch by one index operation (on whichever device the tensors
    live); with ``augment_mirror`` each sample of a batch is x-mirrored with probability 1/2.
    """

    def __init__(
        self, youngs_modulus: torch.Tensor, strain: torch.Tensor, augment_mirror: bool = False
    ) -> None:
        self.youngs_modulus = youngs_modulus
        self.strain = strain
        self.augment_mirror = augment_mirror

    def __len__(self) -> int:
        return self.youngs_modulus.shape[0]

    def to(self, device: torch.device) -> InMemoryStrainDataset:
        self.youngs_modulus = self.youngs_modulus.to(device)
        self.strain = self.strain.to(device)
        return self

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.youngs_modulus[index], self.strain[index]

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(indices, device=self.youngs_modulus.device)
        e, s = self.youngs_modulus[idx], self.strain[idx]  # [B, 1, 32, 32], [B, 3, 32, 32]
        if self.augment_mirror:
            flip = torch.rand(len(indices), device=e.device) < 0.5  # [B]
            e_m, s_m = mirror_x(e, s)
            e = torch.where(flip.view(-1, 1, 1, 1), e_m, e)
            s = torch.where(flip.view(-1, 1, 1, 1), s_m, s)
        return e, s


def _batch_as_is(batch: Any) -> Any:
    """``collate_fn`` for :meth:`InMemoryStrainDataset.__getitems__`: the batch is ready."""
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
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.normalizer: Normalizer | None = None
        self.summary: dict[str, Any] = {}
        self.train_set: InMemoryStrainDataset | None = None
        self.val_set: InMemoryStrainDataset | None = None
        self.test_set: InMemoryStrainDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        hp: Any = self.hparams
        data = read_dataset(hp.path)
        n_total = data["E"].shape[0]
        train, val, test = split_indices(n_total, hp.val_fraction, hp.test_fraction, hp.split_seed)
        if hp.train_limit is not None:
            if hp.train_limit < 1:
                raise MicrostrainError("train_limit must be at least 1")
            train = train[: hp.train_limit]
        e = torch.from_numpy(data["E"])
        s = torch.from_numpy(data["strain"])
        t_idx, v_idx, s_idx = (torch.from_numpy(np.sort(i)) for i in (train, val, test))
        self.normalizer = Normalizer.fit(e[t_idx], s[t_idx])
        self.train_set = InMemoryStrainDataset(e[t_idx], s[t_idx], hp.augment_mirror)
        self.val_set = InMemoryStrainDataset(e[v_idx], s[v_idx])
        self.test_set = InMemoryStrainDataset(e[s_idx], s[s_idx])
        fraction = data["fiber_fraction"][train]
        self.summary = {
            "file": Path(hp.path).name,
            "sha256": sha256_of(hp.path),
            "n_total": n_total,
            "n_train": len(train),
            "n_val": len(val),
            "n_test": len(test),
            "split_seed": hp.split_seed,
            "val_fraction": hp.val_fraction,
            "test_fraction": hp.test_fraction,
            "generator": data["generator"],
            "discretization": data["discretization"],
            "load_case": data["load_case"],
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
            ds,
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
