"""Evaluation families (SPEC §10): each produces what it claims; `generate --family` writes them."""

from dataclasses import replace

import numpy as np
import pytest

from data_gen.cli import FAMILY_NAMES
from data_gen.families import FAMILIES, PRESETS, configure, preset
from data_gen.fiber_shapes import SHAPES, outline
from data_gen.microstructure import GeneratorConfig, microstructure, sample_seed
from microstrain import conventions as C
from microstrain.dataset import read_info, read_samples

N_CLAIMED = 64  # the claims hold for (at least) the first 64 samples of each family


def _samples(config: GeneratorConfig, seed: int, n: int = N_CLAIMED) -> list:
    return [microstructure(config, sample_seed(seed, i)) for i in range(n)]


def block_variation(mask: np.ndarray) -> float:
    """Clustering statistic: coefficient of variation of the fiber fraction over the 16 blocks
    of 8 x 8 pixels (0 for an even spread; large when the fibers gather in a few blocks)."""
    blocks = mask.reshape(4, 8, 4, 8).mean(axis=(1, 3))  # [4, 4]
    return float(blocks.std() / blocks.mean())


def test_the_table_is_consistent():
    assert tuple(FAMILIES) == FAMILY_NAMES
    seeds = [f.seed for f in FAMILIES.values()]
    assert len(set(seeds)) == len(seeds) and min(seeds) >= 900_000  # far from training seeds
    for name, fam in FAMILIES.items():
        assert fam.name == name and preset(name) == fam.generator == configure(name)
        lo, hi = fam.fraction_range
        assert fam.generator.fiber_fraction_min >= lo - 1e-12 and 0 < lo < hi < 1
        assert fam.generator != PRESETS["default"]


@pytest.mark.parametrize("name", list(FAMILIES))
def test_family_fractions_are_in_the_claimed_range(name):
    fam = FAMILIES[name]
    fractions = np.array([ms.fiber_fraction for ms in _samples(fam.generator, fam.seed)])
    lo, hi = fam.fraction_range
    assert fractions.min() >= lo and fractions.max() <= hi, (fractions.min(), fractions.max())


@pytest.mark.parametrize("name", list(FAMILIES))
def test_periodic_family_fractions_are_in_the_claimed_range(name):
    fam = FAMILIES[name]
    torus = replace(fam.generator, periodic=True)
    fractions = np.array([ms.fiber_fraction for ms in _samples(torus, fam.seed)])
    lo, hi = fam.torus_fraction_range
    assert fractions.min() >= lo and fractions.max() <= hi, (fractions.min(), fractions.max())


def test_sparse_and_dense_are_outside_the_default_range():
    default_lo, default_hi = 0.2, 0.5
    sparse = [ms.fiber_fraction for ms in _samples(FAMILIES["sparse"].generator, 900_001, 16)]
    assert max(sparse) <= 0.15 < default_lo
    assert FAMILIES["dense"].fraction_range[0] >= default_hi


def test_small_and_large_fibers():
    for ms in _samples(FAMILIES["small-fibers"].generator, FAMILIES["small-fibers"].seed, 16):
        assert ms.radii.max() <= 0.04 and len(ms.radii) >= 40
    counts = []
    for ms in _samples(FAMILIES["large-fibers"].generator, FAMILIES["large-fibers"].seed):
        assert ms.radii.min() >= 0.2
        counts.append(len(ms.radii))
    assert set(counts) == {1, 2}  # one or two large fibers, both occur


def test_shape_families_have_their_shapes():
    for ms in _samples(FAMILIES["ellipses"].generator, FAMILIES["ellipses"].seed, 16):
        assert {SHAPES[k] for k in ms.kinds} == {"ellipse"} and ms.aspects.min() >= 2.5
    sides = set()
    for ms in _samples(FAMILIES["polygons"].generator, FAMILIES["polygons"].seed, 16):
        assert {SHAPES[k] for k in ms.kinds} == {"polygon"}
        sides |= set(ms.sides.tolist())
    assert sides == {3, 4, 5, 6}


def test_clustered_family_is_clustered():
    fam = FAMILIES["clustered"]
    uniform = replace(fam.generator, cluster_probability=0.0)
    clustered = np.mean([block_variation(ms.mask) for ms in _samples(fam.generator, fam.seed)])
    even = np.mean([block_variation(ms.mask) for ms in _samples(uniform, fam.seed)])
    # measured: 0.87 against 0.50 for the same fractions and radii placed uniformly
    assert clustered > 1.5 * even


def test_edge_cut_family_has_every_fiber_across_an_edge():
    fam = FAMILIES["edge-cut"]
    for ms in _samples(fam.generator, fam.seed, 16):
        for f in range(len(ms.radii)):
            pts = outline(int(ms.kinds[f]), *ms.centres[f], ms.radii[f], ms.aspects[f],
                          ms.angles[f], int(ms.sides[f]), n=2000)  # fmt: skip
            inside = np.all((pts > 0.0) & (pts < 1.0), axis=1)
            assert inside.any() and not inside.all()
        # a fiber reaches at most 2 r_max = 0.24 into the square: the centre stays matrix
        assert not ms.mask[8:24, 8:24].any() and ms.mask.any()


def test_family_cli_writes_the_family_with_its_seed(tmp_path, run_cli):
    path = tmp_path / "large.h5"
    assert run_cli("generate", "--family", "large-fibers", "-n", "1", "-o", path,
                   "--no-progress") == 0  # fmt: skip
    info = read_info(path)
    fam = FAMILIES["large-fibers"]
    assert info.discretization == {"mode": "refined", "k": 4}  # families default to k = 4
    assert info.generator == {**fam.generator.to_json_dict(seed=fam.seed), "family": fam.name}
    assert GeneratorConfig.from_json_dict(info.generator) == fam.generator
    expected = microstructure(fam.generator, sample_seed(fam.seed, 0)).youngs_modulus
    np.testing.assert_array_equal(read_samples(path)[C.DS_E][0], expected)


def test_family_all_writes_one_file_per_family(tmp_path, run_cli):
    out = tmp_path / "families"
    args = ("generate", "--family", "all", "-n", "2", "-o", out, "--mode", "pixel", "--no-progress")
    assert run_cli(*args) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{n}.h5" for n in FAMILIES)
    for name, fam in FAMILIES.items():
        info = read_info(out / f"{name}.h5")
        assert info.complete and info.n == 2 and info.generator["family"] == name
        assert info.generator["seed"] == fam.seed
    assert run_cli(*args) == 0  # a rerun finds every file complete


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--family", "dense", "--seed", "3"), "--family fixes the generator and the seed"),
        (("--family", "dense", "--min-gap", "0.02"), "drop --min-gap"),
        (("--family", "dense", "--preset", "mixture"), "drop --preset"),
        (("--family", "wavy"), "unknown family 'wavy'"),
        (("--family", "all", "-o", "x.h5"), "-o must be a directory"),
    ],
)
def test_bad_family_options_are_one_line_errors(tmp_path, capsys, run_cli, args, message):
    out = ("-o", tmp_path / "f.h5") if "-o" not in args else ()
    assert run_cli("generate", "-n", "2", *out, *args) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err
