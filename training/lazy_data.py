"""Training data streamed from disk, for datasets larger than memory.

A split is a sorted list of sample numbers of the union (:class:`microstrain.dataset.DatasetUnion`).
Its *blocks* are the runs of samples that share one HDF5 chunk of one file (64 samples when
``generate`` wrote the file), so an epoch plan (:mod:`training.sampling`) shuffles whole chunks and
then the samples within a buffer of ``shuffle_buffer`` samples: each chunk is decompressed once
per epoch, the reads are contiguous, and a batch mixes samples of many chunks. Only one buffer
(about 70 MB for 4,096 samples) is held at a time.

Before training, :func:`scan_training_split` reads every sample of the splits once: the
training split's fiber fractions, and the refusal of non-finite values anywhere in the splits.
The normalizer's statistics are streamed the same way, by
:meth:`~training.data.StrainDataModule.training_pieces`. ``lazy = "auto"`` streams when the
in-memory tensors of all local processes would take more than half the available memory
(:func:`needs_lazy`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np
import psutil
import torch

from microstrain.conventions import E_SHAPE, STRAIN_SHAPE
from microstrain.dataset import DatasetUnion
from microstrain.fields import fiber_fraction, fiber_mask
from training.batch import Split, StrainBatch, random_mirror
from training.sampling import EpochOrder

# In-memory bytes per sample: float32 E and strain, bool fiber mask.
BYTES_PER_SAMPLE = 4 * (int(np.prod(E_SHAPE)) + int(np.prod(STRAIN_SHAPE))) + int(np.prod(E_SHAPE))
SCAN_PIECE = 1024  # samples per read of the statistics pass


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (psutil's ``available``), or None."""
    try:
        return int(psutil.virtual_memory().available)
    except (OSError, RuntimeError):
        return None


def needs_lazy(n_samples: int, processes: int = 1) -> bool:
    """Whether ``processes`` in-memory copies of ``n_samples`` would take over half the memory."""
    available = available_memory()
    return available is not None and 2 * n_samples * BYTES_PER_SAMPLE * processes > available


def scan_training_split(union: DatasetUnion, split: Split) -> dict[str, Any]:
    """One streamed pass over the split's samples: the training split's fiber fractions, and
    non-finite values anywhere in the splits refused (by the reader)."""
    used = np.unique(np.concatenate([split.train, split.val, split.test]))
    is_train = np.isin(used, split.train)
    fractions: list[np.ndarray] = []
    for a in range(0, used.size, SCAN_PIECE):
        e, _ = union.read(used[a : a + SCAN_PIECE])  # every sample read: all are checked
        fractions.append(fiber_fraction(e[is_train[a : a + SCAN_PIECE]]))  # [n]
    fraction = np.concatenate(fractions)  # [n_train]
    return {
        "fiber_fraction_range": [float(fraction.min()), float(fraction.max())],
        "fiber_fraction_mean": float(fraction.mean()),
    }


class LazyStrainDataset:
    """Samples ``indices`` (sorted, of the union) read from disk when an epoch asks for them.

    :meth:`batches` reads one buffer of the epoch plan at a time and cuts batches from it;
    :meth:`batch` reads any samples at once (pictures, overfit-one). Tensors live on the CPU;
    the trainer moves each batch to its device.
    """

    def __init__(
        self, union: DatasetUnion, indices: np.ndarray, augment_mirror: bool, buffer: int
    ) -> None:
        self.union = union
        self.indices = np.asarray(indices, dtype=np.int64)
        self.augment_mirror = augment_mirror
        self.buffer = buffer
        chunk = union.chunk_ids(self.indices)  # [n]
        cuts = np.flatnonzero(np.diff(chunk)) + 1  # where the next HDF5 chunk begins
        self.block_starts = np.concatenate([[0], cuts, [self.indices.size]]).astype(np.int64)

    def __len__(self) -> int:
        return int(self.indices.size)

    def _make(self, youngs_modulus: np.ndarray, strain: np.ndarray) -> StrainBatch:
        e, s = torch.from_numpy(youngs_modulus), torch.from_numpy(strain)
        out = StrainBatch(e, s, torch.from_numpy(fiber_mask(youngs_modulus)))
        return random_mirror(out) if self.augment_mirror else out

    def batch(self, positions: list[int] | np.ndarray) -> StrainBatch:
        return self._make(*self.union.read(self.indices[np.asarray(positions, np.int64)]))

    def batches(self, order: EpochOrder) -> Iterator[StrainBatch]:
        """The epoch's batches, reading buffer after buffer (a batch may span two buffers)."""
        buffers = itertools.pairwise(order.buffers.tolist())
        held_e = np.empty((0, *E_SHAPE), np.float32)  # samples of the stream [lo, hi)
        held_s = np.empty((0, *STRAIN_SHAPE), np.float32)
        lo = hi = 0
        for a, b in itertools.pairwise(order.batches.tolist()):
            while hi < b:
                c, d = next(buffers)  # c == hi: buffers tile the stream
                e, s = self.union.read(self.indices[order.stream[c:d]])
                held_e = np.concatenate([held_e[a - lo :], e]) if hi > a else e
                held_s = np.concatenate([held_s[a - lo :], s]) if hi > a else s
                lo, hi = (a if hi > a else c), d
            yield self._make(held_e[a - lo : b - lo], held_s[a - lo : b - lo])
