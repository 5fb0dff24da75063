"""The SPEC §4 datasets as a LightningDataModule: one file or many, in memory or streamed.

``--data.path`` names one file, a directory of ``.h5`` files (the shards of ``generate --shard``)
or a list of files; :func:`microstrain.dataset.open_union` checks that they agree (schema, load
case, plane, materials, discretization; ū may differ, strain is rescaled to ū = 0.1) and fixes
their order, and the seeded split is drawn over that union, so the same files give the same
split however they were listed (and the shards of a run the split of its serial file).

Samples are read by the core's one reader (:class:`microstrain.dataset.DatasetUnion`: refusal of
non-finite values, rescaling). Small datasets (4 KiB of modulus + 12 KiB of strain per sample)
are held as tensors; when training on a GPU the tensors are moved there once and batches are cut
by indexing on the device, so loading never starves the accelerator. A dataset larger than memory
is streamed chunk by chunk (:mod:`training.lazy_data`); ``lazy = "auto"`` decides by size against
the available memory.

A batch is ``(E, strain, fiber)``: E ``[B, 1, 32, 32]`` MPa, strain ``[B, 3, 32, 32]`` for ū = 0.1
and the boolean fiber mask ``[B, 1, 32, 32]`` the metrics need, computed with the core's rule
(:func:`microstrain.fields.fiber_mask`). Loaders are :class:`training.sampling.Batches`: under DDP
each process gets its own part of every epoch, each sample exactly once, and the same number of
batches as the others.

:attr:`StrainDataModule.split` holds the split's index arrays (positions in the union) and the
training run writes them into its run record (``training.run_record``), with :attr:`dataset`:
every file and its sha256.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from functools import cached_property
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch

from microstrain.dataset import DatasetUnion, open_union, summarize_union
from microstrain.errors import MicrostrainError
from microstrain.fields import fiber_fraction, fiber_mask
from training.batch import Split, StrainBatch, random_mirror
from training.lazy_data import LazyStrainDataset, needs_lazy, scan_training_split
from training.periodic_physics import random_symmetry
from training.sampling import Batches, BatchPlan, EpochOrder

STATISTICS_CHUNK = 4096  # training samples per piece of the normalizer's statistics


def prefix_counts(prefix: int | list[int]) -> list[int]:
    """``split_prefix`` as its list of counts, one per addition of files."""
    return prefix if isinstance(prefix, list) else [prefix]


def split_indices(
    n_total: int,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    prefix: int | list[int] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded permutation of ``range(n_total)`` cut into (train, val, test) index arrays.

    Val and test get ``round(fraction * n)`` samples, at least one each when their fraction is
    positive; the rest is training data.

    ``prefix``: the first ``prefix`` samples are split exactly as a union of ``prefix`` samples
    is, and the samples after them get a split of their own (same fractions and seed, offset by
    ``prefix``). Files appended to a dataset then leave every old sample in the part it was in:
    a run that starts from weights trained on the old split tests only on cells they never saw.
    A list of increasing prefixes does this once per addition: ``[a, b]`` splits the first ``b``
    samples as ``prefix=a`` did, and the samples after ``b`` by themselves.
    """
    if prefix is not None:
        counts = prefix_counts(prefix)
        if not counts or counts != sorted(set(counts)):
            raise MicrostrainError(
                f"split_prefix must be a count or increasing counts; got {prefix}"
            )
        *earlier, last = counts
        if not 0 < last < n_total:
            raise MicrostrainError(
                f"split_prefix must be between 1 and the {n_total - 1} samples before the last; "
                f"got {last}"
            )
        old = split_indices(last, val_fraction, test_fraction, seed, earlier or None)
        new = split_indices(n_total - last, val_fraction, test_fraction, seed)
        train, val, test = (np.concatenate([a, b + last]) for a, b in zip(old, new, strict=True))
        return train, val, test
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


def dataset_summary(path: str | list[str]) -> dict[str, Any]:
    """:func:`microstrain.dataset.summarize_union` as JSON types: every file with its sha256,
    T_data, T_simulation."""
    return asdict(summarize_union(open_union(path)))


def _check_file_boundary(union: DatasetUnion, prefix: int) -> None:
    """Refuse a ``split_prefix`` that does not end where one of the union's files ends (the old
    files must come first in name order, and all of them)."""
    if prefix not in union.offsets[1:].tolist():
        names = ", ".join(f"{info.path.name} ({info.n})" for info in union.infos)
        raise MicrostrainError(
            f"split_prefix {prefix} does not end at a file boundary of the union (in name order: "
            f"{names}); name the added files to sort after the old ones"
        )


class InMemoryStrainDataset:
    """Raw E ``[n, 1, 32, 32]`` (MPa), strain ``[n, 3, 32, 32]`` (ū = 0.1), bool fiber mask.

    :meth:`batch` returns a whole :class:`StrainBatch` by one index operation (on whichever device
    the tensors live); with ``augment_mirror`` each sample of a batch is x-mirrored with
    probability 1/2 (:func:`random_mirror`). Every sample is its own block of the epoch plan
    (:mod:`training.sampling`): the shuffle is per sample.
    """

    def __init__(
        self,
        youngs_modulus: torch.Tensor,
        strain: torch.Tensor,
        fiber: torch.Tensor,
        augment_mirror: bool = False,
        periodic: bool = False,
    ) -> None:
        self.youngs_modulus = youngs_modulus
        self.strain = strain
        self.fiber = fiber
        self.augment_mirror = augment_mirror
        # periodic samples (SPEC §11): the augmentation is the square's symmetries and shifts
        self.periodic = periodic
        self.block_starts = np.arange(len(self) + 1, dtype=np.int64)
        self.buffer = 0

    def __len__(self) -> int:
        return self.youngs_modulus.shape[0]

    def to(self, device: torch.device) -> InMemoryStrainDataset:
        self.youngs_modulus = self.youngs_modulus.to(device)
        self.strain = self.strain.to(device)
        self.fiber = self.fiber.to(device)
        return self

    def batch(self, indices: list[int] | np.ndarray) -> StrainBatch:
        idx = torch.as_tensor(indices, device=self.youngs_modulus.device)
        out = StrainBatch(self.youngs_modulus[idx], self.strain[idx], self.fiber[idx])
        if self.augment_mirror and self.periodic:
            return StrainBatch(*random_symmetry(*out))
        return random_mirror(out) if self.augment_mirror else out

    def batches(self, order: EpochOrder) -> Iterator[StrainBatch]:
        for positions in order.batch_positions():
            yield self.batch(positions)


StrainSet = Any  # InMemoryStrainDataset or training.lazy_data.LazyStrainDataset


class StrainDataModule(pl.LightningDataModule):
    """Train/val/test splits of a SPEC §4 dataset of one or many files.

    Args:
        path: a dataset file, a directory of them (shards) or a list of files.
        batch_size: training batch size per process (evaluation uses ``eval_batch_size``).
        val_fraction, test_fraction, split_seed: the recorded, reproducible split.
        augment_mirror: x-mirror half of each training batch (exact symmetry, SPEC §1); periodic
            data: each sample under one of the square's eight symmetries and a random periodic
            shift (SPEC §11, :func:`training.periodic_physics.random_symmetry`).
        train_limit: keep only the first ``train_limit`` training samples of the split (learning
            curves, overfit-one); the val/test splits do not change.
        split_prefix: split the union's first ``split_prefix`` samples (its files in name order,
            :func:`microstrain.dataset.open_union`) as a union of that size and the rest by
            themselves (:func:`split_indices`): for files added after a model was trained, named
            to sort after the old ones; it must end at a file boundary. A list of counts, one per
            addition, keeps every earlier split as it was.
        device_resident: move the tensors to the training device once (GPU) and index there.
        allow_incomplete: train on the complete samples of an interrupted generation.
        lazy: stream the samples from disk (``true``), hold them in memory (``false``) or decide
            by size against the available memory (``"auto"``).
        shuffle_buffer: samples per shuffle buffer of the streamed training data (whole HDF5
            chunks are shuffled, then the samples within each buffer).
        boundary: ``"uniaxial"`` (SPEC §4 files) or ``"periodic"`` (SPEC §11: strain
            ``[n, 3, 3, s, s]``, the three unit cases; held in memory).

    After ``setup``: :meth:`training_pieces` (what the normalizer is fitted on),
    :attr:`split` (indices into the union), :attr:`summary` (split sizes and the training
    split's fiber fractions),
    :attr:`lazy_reading` (what ``lazy`` resolved to) and :attr:`dataset` (:func:`dataset_summary`:
    every file with its sha256; on global rank 0, elsewhere when first asked).
    """

    def __init__(
        self,
        path: str | list[str] = "data/train.h5",
        batch_size: int = 32,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_seed: int = 0,
        augment_mirror: bool = False,
        train_limit: int | None = None,
        eval_batch_size: int = 256,
        device_resident: bool = True,
        allow_incomplete: bool = False,
        lazy: bool | Literal["auto"] = "auto",
        shuffle_buffer: int = 4096,
        boundary: Literal["uniaxial", "periodic"] = "uniaxial",
        split_prefix: int | list[int] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.split: Split | None = None
        self.union: DatasetUnion | None = None
        self.summary: dict[str, Any] = {}
        self.lazy_reading = False
        self.shuffle_seed = 0
        self.train_set: StrainSet | None = None
        self.val_set: StrainSet | None = None
        self.test_set: StrainSet | None = None

    @cached_property
    def dataset(self) -> dict[str, Any]:
        """:func:`dataset_summary` of the union (hashes every file: done by ``setup`` on global
        rank 0 only, the rank that writes the run record)."""
        if self.union is None:
            raise MicrostrainError("StrainDataModule.setup() has not run")
        return asdict(summarize_union(self.union))

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        hp: Any = self.hparams
        union = open_union(hp.path, allow_incomplete=hp.allow_incomplete, boundary=hp.boundary)
        if hp.split_prefix is not None:
            for prefix in prefix_counts(hp.split_prefix):
                _check_file_boundary(union, prefix)
        train, val, test = split_indices(
            union.n, hp.val_fraction, hp.test_fraction, hp.split_seed, hp.split_prefix
        )
        if hp.train_limit is not None:
            if hp.train_limit < 1:
                raise MicrostrainError("train_limit must be at least 1")
            train = train[: hp.train_limit]
        self.union, self.split = union, Split(*(np.sort(i) for i in (train, val, test)))
        self.lazy_reading, self.shuffle_seed = self._agreed_choices(union)
        if self.lazy_reading and hp.boundary == "periodic":
            raise MicrostrainError(
                "periodic datasets are held in memory (lazy false); this one does not fit"
            )
        if self.lazy_reading:
            self._setup_lazy(union, self.split)
        else:
            self._setup_in_memory(union, self.split)
        self.summary = {
            "n_total": union.n,
            "n_train": len(train),
            "n_val": len(val),
            "n_test": len(test),
            **self.summary,
        }
        if self.trainer is None or self.trainer.is_global_zero:
            _ = self.dataset  # hashed now, before the fit's clock (T_train) starts

    def _agreed_choices(self, union: DatasetUnion) -> tuple[bool, int]:
        """Lazy or not, and the shuffle seed: rank 0's choice on every rank (each rank sees its
        own free memory, and an unseeded run its own torch seed; the plans must agree)."""
        hp: Any = self.hparams
        trainer = self.trainer
        processes = trainer.num_devices if trainer is not None else 1
        lazy = needs_lazy(union.n, processes) if hp.lazy == "auto" else bool(hp.lazy)
        seed = torch.initial_seed()  # what seed_everything set
        if trainer is not None and trainer.world_size > 1:
            lazy, seed = trainer.strategy.broadcast((lazy, seed), src=0)
        return lazy, seed

    def _setup_in_memory(self, union: DatasetUnion, split: Split) -> None:
        hp: Any = self.hparams
        sets = []
        for indices in (split.train, split.val, split.test):
            e, s = union.read(indices)  # [n, 1, 32, 32] MPa, [n, 3, 32, 32] for ū = 0.1
            fiber = fiber_mask(e)  # bool [n, 1, 32, 32]
            tensors = (torch.from_numpy(e), torch.from_numpy(s), torch.from_numpy(fiber))
            sets.append(InMemoryStrainDataset(*tensors, periodic=hp.boundary == "periodic"))
        sets[0].augment_mirror = hp.augment_mirror
        self.train_set, self.val_set, self.test_set = sets
        fraction = fiber_fraction(self.train_set.youngs_modulus.numpy())  # [n_train]
        self.summary = {
            "fiber_fraction_range": [float(fraction.min()), float(fraction.max())],
            "fiber_fraction_mean": float(fraction.mean()),
        }
        trainer = self.trainer
        if hp.device_resident and trainer is not None:
            device = trainer.strategy.root_device
            if device.type != "cpu":
                for ds in sets:
                    ds.to(device)

    def _setup_lazy(self, union: DatasetUnion, split: Split) -> None:
        hp: Any = self.hparams
        self.summary = scan_training_split(union, split)
        self.train_set = LazyStrainDataset(union, split.train, hp.augment_mirror, hp.shuffle_buffer)
        self.val_set = LazyStrainDataset(union, split.val, False, hp.shuffle_buffer)
        self.test_set = LazyStrainDataset(union, split.test, False, hp.shuffle_buffer)

    def training_pieces(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The training split, unaugmented, in pieces of :data:`STATISTICS_CHUNK` samples:
        (E ``[n, 1, 32, 32]`` MPa, strain ``[n, 3, 32, 32]``), held in memory or streamed."""
        train = self.train_set
        if train is None:
            raise MicrostrainError("StrainDataModule.setup() has not run")
        augment, train.augment_mirror = train.augment_mirror, False
        try:
            for a in range(0, len(train), STATISTICS_CHUNK):
                piece = train.batch(np.arange(a, min(a + STATISTICS_CHUNK, len(train))))
                yield piece.youngs_modulus, piece.strain
        finally:
            train.augment_mirror = augment

    def loader(
        self,
        split: Literal["train", "val", "test"],
        rank: int | None = None,
        world_size: int | None = None,
    ) -> Batches:
        """The batches of ``split`` for process ``rank`` of ``world_size`` (default: the
        trainer's, else 0 of 1): the training split shuffled per epoch, the others in order."""
        ds = {"train": self.train_set, "val": self.val_set, "test": self.test_set}[split]
        if ds is None:
            raise MicrostrainError("StrainDataModule.setup() has not run")
        trainer = self.trainer
        if rank is None:
            rank = trainer.global_rank if trainer is not None else 0
        if world_size is None:
            world_size = trainer.world_size if trainer is not None else 1
        plan = BatchPlan(
            ds.block_starts,
            self.hparams["batch_size" if split == "train" else "eval_batch_size"],
            shuffle=split == "train",
            seed=self.shuffle_seed,
            rank=rank,
            world_size=world_size,
            buffer=ds.buffer,
        )
        return Batches(ds, plan)

    def train_dataloader(self) -> Batches:
        return self.loader("train")

    def val_dataloader(self) -> Batches:
        return self.loader("val")

    def test_dataloader(self) -> Batches:
        return self.loader("test")
