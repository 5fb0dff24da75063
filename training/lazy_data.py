"""Training data streamed from disk, for datasets larger than memory.

A split is a sorted list of sample numbers of the union (:class:`microstrain.dataset.DatasetUnion`).
Its *blocks* are the runs of samples that share one HDF5 chunk of one file (64 samples when
``generate`` wrote the file), so an epoch plan (:mod:`training.sampling`) shuffles whole chunks and
then the samples within a buffer of ``shuffle_buffer`` samples: each chunk is decompressed once
per epoch, the reads are contiguous, and a batch mixes samples of many chunks. Only one buffer
(about 70 MB for 4,096 samples) is held at a time.

What the in-memory path computes from the whole training split, :func:`scan_training_split`
computes in one streamed pass: the normalizer's constants (means and standard deviations merged
piece by piece in float64; the same float32 constants as :meth:`Normalizer.fit` up to the last
bit), the training split's fiber fractions, and the refusal of non-finite values anywhere in the
splits. ``lazy = "auto"`` streams when the in-memory tensors of all local processes would take
more than half the available memory (:func:`needs_lazy`).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from microstrain.conventions import E_SHAPE, STRAIN_SHAPE
from microstrain.dataset import DatasetUnion
from microstrain.fields import fiber_fraction, fiber_mask
from training.data import Split, StrainBatch, random_mirror
from training.normalization import _MIN_STD, Normalizer
from training.sampling import EpochOrder

# In-memory bytes per sample: float32 E and strain, bool fiber mask.
BYTES_PER_SAMPLE = 4 * (int(np.prod(E_SHAPE)) + int(np.prod(STRAIN_SHAPE))) + int(np.prod(E_SHAPE))
SCAN_PIECE = 1024  # samples per read of the statistics pass


def available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux ``MemAvailable``), or None."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (OSError, ValueError, AttributeError):
        return None


def needs_lazy(n_samples: int, processes: int = 1) -> bool:
    """Whether ``processes`` in-memory copies of ``n_samples`` would take over half the memory."""
    available = available_memory()
    return available is not None and 2 * n_samples * BYTES_PER_SAMPLE * processes > available


class _Moments:
    """Count, mean and sum of squared deviations per channel, merged piece by piece (float64)."""

    def __init__(self, channels: int) -> None:
        self.count = 0
        self.mean = np.zeros(channels)
        self.m2 = np.zeros(channels)

    def add(self, values: np.ndarray) -> None:
        """``values`` ``[n, channels, ...]``: one more piece (Chan et al.'s pairwise update)."""
        x = np.moveaxis(values.astype(np.float64), 1, 0).reshape(values.shape[1], -1)
        count = x.shape[1]
        if count == 0:
            return
        mean = x.mean(axis=1)
        m2 = np.square(x - mean[:, None]).sum(axis=1)
        total = self.count + count
        delta = mean - self.mean
        self.mean = self.mean + delta * count / total
        self.m2 = self.m2 + m2 + np.square(delta) * self.count * count / total
        self.count = total

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / max(self.count, 1))  # population std, as Normalizer.fit


def scan_training_split(union: DatasetUnion, split: Split) -> tuple[Normalizer, dict[str, Any]]:
    """One streamed pass over the split's samples: the normalizer fitted on the training split,
    the training split's fiber fractions, and non-finite values refused (by the reader)."""
    used = np.unique(np.concatenate([split.train, split.val, split.test]))
    is_train = np.isin(used, split.train)
    youngs, strain = _Moments(1), _Moments(3)
    low, high, total = np.inf, -np.inf, 0.0
    for a in range(0, used.size, SCAN_PIECE):
        e, s = union.read(used[a : a + SCAN_PIECE])
        train = is_train[a : a + SCAN_PIECE]
        e, s = e[train], s[train]
        youngs.add(e)
        strain.add(s)
        if e.shape[0]:
            fraction = fiber_fraction(e)  # [n]
            low, high = min(low, float(fraction.min())), max(high, float(fraction.max()))
            total += float(fraction.astype(np.float64).sum())
    normalizer = Normalizer()
    normalizer.input_mean.fill_(float(youngs.mean[0]))
    normalizer.input_std.fill_(max(float(youngs.std[0]), _MIN_STD))
    normalizer.output_mean.copy_(torch.from_numpy(strain.mean).view(1, 3, 1, 1).float())
    normalizer.output_std.copy_(torch.from_numpy(strain.std).view(1, 3, 1, 1).clamp_min(_MIN_STD))
    summary = {
        "fiber_fraction_range": [low, high],
        "fiber_fraction_mean": float(np.float32(total / max(split.train.size, 1))),
    }
    return normalizer, summary


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
