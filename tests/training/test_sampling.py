"""The epoch plan shared by DDP ranks: every sample of a split once per epoch across the ranks,
the same number of batches on every rank, a new order every epoch, whole blocks kept together."""

import itertools

import numpy as np
import pytest

from microstrain.errors import MicrostrainError
from training.sampling import BatchPlan, batch_sizes


def _plans(starts, batch, world, **kw):
    return [BatchPlan(starts, batch, rank=r, world_size=world, **kw) for r in range(world)]


def _blocks(sizes):
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


@pytest.mark.parametrize("n, batch, world", [(20, 4, 2), (21, 4, 2), (38, 16, 3), (7, 32, 2)])
@pytest.mark.parametrize("shuffle", [True, False])
def test_each_sample_once_per_epoch_across_ranks_in_equal_batch_counts(n, batch, world, shuffle):
    plans = _plans(np.arange(n + 1), batch, world, shuffle=shuffle, seed=3)
    for epoch in (0, 1):
        orders = []
        for plan in plans:
            plan.set_epoch(epoch)
            orders.append(plan.order())
        seen = np.concatenate([o.stream for o in orders])
        assert sorted(seen.tolist()) == list(range(n))  # once each, no padding
        counts = {len(list(o.batch_positions())) for o in orders}
        assert counts == {len(plans[0])}  # the ranks step together
        for o in orders:
            sizes = np.diff(o.batches)
            assert sizes.min() >= 1 and sizes.max() <= batch


def test_one_process_without_shuffle_is_the_file_order_in_full_batches():
    (plan,) = _plans(np.arange(12), 4, 1, shuffle=False)  # 11 samples
    assert [b.tolist() for b in plan.order().batch_positions()] == [
        [0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10],
    ]  # fmt: skip


def test_the_order_depends_on_seed_and_epoch_only():
    a, b = (BatchPlan(np.arange(101), 8, shuffle=True, seed=1) for _ in range(2))
    np.testing.assert_array_equal(a.order().stream, b.order().stream)
    first = a.order().stream.copy()
    a.set_epoch(1)
    assert not np.array_equal(a.order().stream, first)
    other = BatchPlan(np.arange(101), 8, shuffle=True, seed=2)
    assert not np.array_equal(other.order().stream, first)


def test_blocks_stay_together_within_buffers():
    """Lazy reading: whole HDF5 chunks are shuffled, then samples within a buffer of chunks."""
    rng = np.random.default_rng(0)
    sizes = rng.integers(40, 65, size=30)  # chunks of a split: 40..64 of 64 samples used
    starts = _blocks(sizes)
    n = int(starts[-1])
    block_of = np.repeat(np.arange(sizes.size), sizes)
    plans = _plans(starts, 32, 2, shuffle=True, seed=0, buffer=256)
    orders = [p.order() for p in plans]
    assert sorted(np.concatenate([o.stream for o in orders]).tolist()) == list(range(n))
    for o in orders:
        buffers = list(zip(o.buffers[:-1], o.buffers[1:], strict=True))
        assert len(buffers) > 1
        owners = [set(block_of[o.stream[a:b]].tolist()) for a, b in buffers]
        for before, after in itertools.pairwise(owners):
            assert not before & after  # a block lies in one buffer
        first = o.stream[o.buffers[0] : o.buffers[1]]
        assert not np.array_equal(first, np.sort(first))  # shuffled within the buffer


def test_a_rank_with_fewer_samples_than_batches_repeats_its_own():
    # 3 samples, batch 1, 2 ranks: parts of 1 and 2 samples, 2 steps each
    orders = [p.order() for p in _plans(np.arange(4), 1, 2, shuffle=False)]
    assert [o.stream.tolist() for o in orders] == [[0, 0], [1, 2]]
    assert [len(list(o.batch_positions())) for o in orders] == [2, 2]


def test_a_split_smaller_than_the_number_of_processes_is_refused():
    (plan, _, _) = _plans(np.arange(4), 4, 3, shuffle=False)  # 3 samples: one each
    assert plan.order().stream.size == 1
    small = _plans(np.arange(3), 4, 3, shuffle=False)[0]
    with pytest.raises(MicrostrainError, match="cannot give each of 3 processes"):
        small.order()
    empty = _plans(np.arange(1), 4, 2, shuffle=False)[0]  # an empty split: no batches
    assert len(empty) == 0 and list(empty.order().batch_positions()) == []


def test_batch_sizes_fill_batches_first():
    assert batch_sizes(19, 2, 16).tolist() == [16, 3]
    assert batch_sizes(10, 3, 4).tolist() == [4, 4, 2]
    assert batch_sizes(3, 3, 4).tolist() == [1, 1, 1]
    assert batch_sizes(9, 3, 4).tolist() == [4, 4, 1]
    assert batch_sizes(5, 3, 4).tolist() == [2, 2, 1]
