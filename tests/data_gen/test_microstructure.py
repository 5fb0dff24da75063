"""The fiber sampler: determinism by seed, prefix property, geometry, rasterization (SPEC §2)."""

import numpy as np
import pytest

from data_gen.microstructure import (
    GeneratorConfig,
    Microstructure,
    disc_mask,
    microstructure,
    sample_microstructures,
    sample_seed,
)
from microstrain.conventions import FIBER, GRID, MATRIX
from microstrain.errors import InputError


def test_same_seed_same_samples_and_prefix_property():
    config = GeneratorConfig()
    e8, s8 = sample_microstructures(config, 7, range(8))
    e8b, s8b = sample_microstructures(config, 7, range(8))
    e3, s3 = sample_microstructures(config, 7, range(3))
    assert e8.shape == (8, 1, GRID, GRID) and e8.dtype == np.float32
    assert s8.dtype == np.int64 and np.all(s8 >= 0)
    np.testing.assert_array_equal(e8, e8b)
    np.testing.assert_array_equal(s8, s8b)
    np.testing.assert_array_equal(e8[:3], e3)  # -n 3 is a prefix of -n 8
    np.testing.assert_array_equal(s8[:3], s3)
    # a subset of indices gives the same samples as the full run (what each MPI rank does)
    e_odd, _ = sample_microstructures(config, 7, range(1, 8, 2))
    np.testing.assert_array_equal(e_odd, e8[1::2])


def test_different_seeds_and_indices_differ():
    config = GeneratorConfig()
    a, _ = sample_microstructures(config, 0, range(4))
    b, _ = sample_microstructures(config, 1, range(4))
    assert not np.array_equal(a, b)
    assert len({sample_seed(0, i) for i in range(100)}) == 100
    assert len({arr.tobytes() for arr in a}) == 4


def test_per_sample_seed_regenerates_sample_alone():
    config = GeneratorConfig(fiber_fraction_min=0.3, fiber_fraction_max=0.4)
    E, seeds = sample_microstructures(config, 3, range(5))
    restored = GeneratorConfig.from_json_dict(config.to_json_dict(seed=3))
    assert restored == config
    again = microstructure(restored, int(seeds[4])).youngs_modulus
    np.testing.assert_array_equal(again, E[4])


def _check_geometry(ms: Microstructure, config: GeneratorConfig) -> None:
    c, r = ms.centres, ms.radii
    assert np.all((c >= 0.0) & (c <= 1.0))
    assert np.all((r >= config.radius_min) & (r <= config.radius_max))
    for a in range(len(r)):
        for b in range(a):
            gap = np.hypot(*(c[a] - c[b])) - r[a] - r[b]
            assert gap >= config.min_gap - 1e-12, (a, b, gap)


@pytest.mark.parametrize("min_gap", [0.0, 0.01, 0.04])
def test_fibers_do_not_overlap_and_keep_the_gap(min_gap):
    config = GeneratorConfig(min_gap=min_gap)
    for i in range(10):
        _check_geometry(microstructure(config, sample_seed(11, i)), config)


def test_mask_is_the_union_of_the_fibers_and_reaches_the_target():
    config = GeneratorConfig()
    fractions = []
    for i in range(20):
        ms = microstructure(config, sample_seed(5, i))
        union = np.zeros((GRID, GRID), dtype=bool)
        for (x, y), r in zip(ms.centres, ms.radii, strict=True):
            union |= disc_mask(x, y, r)
        np.testing.assert_array_equal(ms.mask, union)
        # the last fiber may overshoot the target by at most its own area
        assert ms.fiber_fraction <= ms.target_fraction + np.pi * config.radius_max**2 + 1e-9
        fractions.append(ms.fiber_fraction)
        assert set(np.unique(ms.youngs_modulus)) <= {FIBER.youngs_modulus, MATRIX.youngs_modulus}
    fractions = np.array(fractions)
    # defaults give a real spread inside the requested range
    assert fractions.min() >= config.fiber_fraction_min - 0.02
    assert fractions.max() <= config.fiber_fraction_max + 0.05
    assert fractions.max() - fractions.min() > 0.1


def test_rasterization_row_zero_is_the_top():
    # a disc near the top-left corner (x small, y near 1) lights pixels of row 0, column 0
    top_left = disc_mask(0.05, 0.95, 0.06)
    assert top_left[0, 0] and not top_left[-1, 0] and not top_left[0, -1]
    rows, cols = np.nonzero(top_left)
    assert rows.max() < 4 and cols.max() < 4
    # pixel (i, j) centre is x = (j + 1/2)/32, y = 1 - (i + 1/2)/32: a tiny disc there hits it only
    i, j = 5, 20
    single = disc_mask((j + 0.5) / GRID, 1 - (i + 0.5) / GRID, 0.1 / GRID)
    assert single.sum() == 1 and single[i, j]


def test_invalid_parameters_are_input_errors():
    with pytest.raises(InputError, match="fiber fraction"):
        GeneratorConfig(fiber_fraction_min=0.6, fiber_fraction_max=0.4)
    with pytest.raises(InputError, match="radius"):
        GeneratorConfig(radius_min=0.0)
    with pytest.raises(InputError, match="gap"):
        GeneratorConfig(min_gap=-0.1)
    with pytest.raises(InputError):
        sample_seed(-1, 0)
