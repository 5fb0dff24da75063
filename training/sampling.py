"""Which samples each process trains on, batch by batch: one epoch plan shared by all DDP ranks.

Every rank computes the same plan from (seed, epoch) without talking to the others, then takes its
own part. Within an epoch each sample of a split is seen exactly once across the ranks, and every
rank gets the same number of batches (DDP synchronizes gradients at every step, so a rank with an
extra batch would wait forever). Lightning's own ``DistributedSampler`` pads the last batches with
repeated samples instead; our loaders are plain iterables, which Lightning leaves alone.

The split's positions ``0..n-1`` come grouped in *blocks* of consecutive positions: one sample
each when the data are in memory, one HDF5 chunk each when they are streamed from disk
(:mod:`training.lazy_data`), so that a reader decompresses a chunk once per epoch. An epoch:

1. shuffle the blocks (training) or keep their order (evaluation);
2. cut the epoch's sequence of samples into one contiguous part per rank, of equal sizes up to
   one sample (a block cut in two is read by both ranks);
3. group each rank's blocks into buffers of about ``buffer`` samples and shuffle inside each
   buffer (training; ``buffer = 0``: no buffers, the block shuffle is the whole shuffle);
4. cut the rank's samples into the common number of batches ``ceil(ceil(n / ranks) / batch)``:
   full batches first, the rest spread evenly over the last ones. Only a rank that has fewer
   samples than batches (batch size 1 and an odd split) repeats one of its own samples.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from microstrain.errors import MicrostrainError


@dataclass(frozen=True)
class EpochOrder:
    """One rank's epoch: positions in the order they are used, cut into buffers and batches.

    ``stream`` int64 ``[m]``; ``buffers`` and ``batches`` are boundaries into it (int64
    ``[k + 1]``, from 0 to m): buffer b is ``stream[buffers[b]:buffers[b + 1]]``.
    """

    stream: np.ndarray
    buffers: np.ndarray
    batches: np.ndarray

    def batch_positions(self) -> Iterator[np.ndarray]:
        for a, b in itertools.pairwise(self.batches):
            yield self.stream[a:b]


def batch_sizes(n: int, n_batches: int, batch_size: int) -> np.ndarray:
    """``n`` samples as ``n_batches`` batches of at most ``batch_size``: full ones first, the
    remainder spread evenly over the last ones (each at least 1). Needs ``n >= n_batches``."""
    full = n_batches - 1
    while full > 0 and n - full * batch_size < n_batches - full:
        full -= 1
    rest = n - full * batch_size
    tail = n_batches - full
    spread = np.full(tail, rest // tail, np.int64) + (np.arange(tail) < rest % tail)
    return np.concatenate([np.full(full, batch_size, np.int64), spread])


class BatchPlan:
    """The epoch plan of one split for rank ``rank`` of ``world_size``.

    Args:
        block_starts: int64 ``[n_blocks + 1]``, block k = positions ``starts[k]..starts[k+1]-1``.
        batch_size: samples per batch and rank.
        shuffle: shuffle blocks and buffers with ``(seed, epoch)`` (training splits).
        seed: the run's seed (the same on every rank).
        buffer: samples per shuffle buffer (0: no buffers).

    :meth:`set_epoch` is what Lightning calls at the start of every training epoch (it looks for
    ``loader.sampler.set_epoch``), so a resumed run continues with the order it would have had.
    """

    def __init__(
        self,
        block_starts: np.ndarray,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        buffer: int = 0,
    ) -> None:
        self.starts = np.asarray(block_starts, dtype=np.int64)
        self.n = int(self.starts[-1])
        if batch_size < 1:
            raise MicrostrainError(f"the batch size must be at least 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise MicrostrainError(f"rank {rank} of {world_size} processes")
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.rank, self.world_size, self.buffer = rank, world_size, buffer
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        """Batches per rank and epoch: the same for every rank and every epoch."""
        most = -(-self.n // self.world_size)  # samples of the largest part
        return -(-most // self.batch_size)

    def _global_stream(self) -> tuple[np.ndarray, np.ndarray]:
        """All positions of the epoch in block order, and where each block ends in it."""
        sizes = np.diff(self.starts)
        if self.shuffle:
            blocks = np.random.default_rng([self.seed, self.epoch]).permutation(sizes.size)
        else:
            blocks = np.arange(sizes.size)
        sizes = sizes[blocks]
        ends = np.cumsum(sizes)
        stream = np.repeat(self.starts[blocks] - (ends - sizes), sizes) + np.arange(self.n)
        return stream.astype(np.int64), ends

    def order(self) -> EpochOrder:
        """This rank's :class:`EpochOrder` of the current epoch."""
        if self.n == 0:  # an empty split (e.g. test_fraction 0): no batches
            empty = np.zeros(1, np.int64)
            return EpochOrder(np.zeros(0, np.int64), empty, empty)
        if self.n < self.world_size:
            raise MicrostrainError(
                f"a split of {self.n} sample(s) cannot give each of {self.world_size} processes "
                "a sample: use fewer processes or a larger split"
            )
        stream, ends = self._global_stream()
        lo = self.rank * self.n // self.world_size
        hi = (self.rank + 1) * self.n // self.world_size
        mine = stream[lo:hi].copy()  # this rank's contiguous part of the epoch
        block_ends = ends[(ends > lo) & (ends < hi)] - lo
        buffers = self._buffers(block_ends, mine)
        n_batches = len(self)
        if mine.size < n_batches:  # tiny split or batch size 1: repeat some of this rank's own
            mine = np.resize(mine, n_batches)
            buffers = np.array([0, n_batches], np.int64)
        cuts = np.cumsum(batch_sizes(mine.size, n_batches, self.batch_size))
        return EpochOrder(mine, buffers, np.concatenate([[0], cuts]).astype(np.int64))

    def _buffers(self, block_ends: np.ndarray, stream: np.ndarray) -> np.ndarray:
        """Buffer boundaries at block ends, about ``buffer`` samples apart; shuffles each buffer
        of ``stream`` in place (training)."""
        if self.buffer <= 0:
            return np.array([0, stream.size], np.int64)
        cuts = [0]
        for end in [*block_ends.tolist(), stream.size]:
            if end - cuts[-1] >= self.buffer or end == stream.size:
                cuts.append(end)
        bounds = np.array(cuts, np.int64)
        if self.shuffle:  # this rank's own part: a generator of its own
            rng = np.random.default_rng([self.seed, self.epoch, 1 + self.rank])
            for a, b in itertools.pairwise(bounds):
                stream[a:b] = rng.permutation(stream[a:b])
        return bounds


class BatchSource(Protocol):
    """A split's samples that can be read as batches (:class:`~training.data.StrainBatch`)."""

    def __len__(self) -> int: ...

    def batches(self, order: EpochOrder) -> Iterator[Any]: ...


class Batches:
    """One epoch of whole batches for this process: what the trainer iterates.

    Not a ``DataLoader``: Lightning would replace its sampler with a ``DistributedSampler``. The
    plan is exposed as ``sampler`` so Lightning's ``set_epoch`` call reaches it (and
    ``batch_sampler`` is None, which Lightning looks at next to ``sampler``).
    """

    batch_sampler = None

    def __init__(self, source: BatchSource, plan: BatchPlan) -> None:
        self.source = source
        self.sampler = plan

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[Any]:
        return self.source.batches(self.sampler.order())
