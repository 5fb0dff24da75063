"""`microstrain generate`: real dolfinx solves (pixel mode, tiny N), schema, prefix, refusals."""

import json
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest

from data_gen.families import MIXTURE
from data_gen.generate import GenerateConfig, generate, split_chunk
from data_gen.microstructure import GeneratorConfig, sample_microstructures
from data_gen.solver import SolverConfig, StrainSolver
from microstrain import conventions as C
from microstrain.dataset import FIELDS, read_info, read_samples
from microstrain.errors import InputError, MicrostrainError

PIXEL = SolverConfig(mode="pixel")
OLD_GENERATOR_KEYS = {
    "algorithm",
    "fiber_fraction_max",
    "fiber_fraction_min",
    "grid",
    "max_attempts",
    "min_gap",
    "periodic",
    "radius_max",
    "radius_min",
    "seed",
}


def _generate(path: Path, n: int, **kw) -> None:
    generate(GenerateConfig(n=n, output=path, solver=PIXEL, **kw), progress=False)


@pytest.fixture(scope="module")
def pixel_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("gen") / "pixel.h5"
    _generate(path, 6, seed=3, chunk=4)
    return path


def test_file_has_the_spec_schema(pixel_file):
    info = read_info(pixel_file)
    assert info.complete and info.n == 6 and info.n_requested == 6
    assert info.discretization == {"mode": "pixel", "k": 1}
    assert info.load_case == {"name": "uniaxial-x", "applied_strain": 0.1, "plane": "stress"}
    assert info.generator == GeneratorConfig().to_json_dict(seed=3)
    assert {"dolfinx", "petsc", "numpy", "microstrain"} <= set(info.software)
    assert info.wall_seconds > 0 and len(info.runs) == 1 and info.runs[0]["samples"] == 6
    with h5py.File(pixel_file) as f:
        for name, (dtype, shape) in FIELDS.items():
            assert f[name].dtype == np.dtype(dtype) and f[name].shape == (6, *shape)
        assert f.attrs[C.ATTR_COMPLETE] == True  # noqa: E712 - numpy bool
        json.loads(f.attrs[C.ATTR_MATERIALS])


def test_content_matches_sampler_and_solver(pixel_file):
    data = read_samples(pixel_file)
    E, seeds = sample_microstructures(GeneratorConfig(), 3, range(6))
    np.testing.assert_array_equal(data[C.DS_E], E)
    np.testing.assert_array_equal(data[C.DS_SEED], seeds)
    fiber = E[:, 0] == C.FIBER.youngs_modulus
    np.testing.assert_allclose(data[C.DS_FIBER_FRACTION], fiber.mean(axis=(1, 2)))
    # one sample solved again independently gives the stored field
    strain = StrainSolver(PIXEL).solve(E[5, 0])
    np.testing.assert_allclose(data[C.DS_STRAIN][5], strain, rtol=1e-5, atol=1e-7)
    # invariant of SPEC §1: the domain mean of eps_xx is ū
    np.testing.assert_allclose(data[C.DS_STRAIN][:, 0].mean(axis=(1, 2)), 0.1, rtol=1e-5)
    assert np.all(data[C.DS_SOLVE_SECONDS] > 0)


def test_smaller_n_is_a_prefix_and_chunking_does_not_matter(tmp_path, pixel_file):
    path = tmp_path / "three.h5"
    _generate(path, 3, seed=3, chunk=2)
    small, big = read_samples(path), read_samples(pixel_file)
    for name in (C.DS_E, C.DS_STRAIN, C.DS_FIBER_FRACTION, C.DS_SEED):
        np.testing.assert_array_equal(small[name], big[name][:3])
    # extending the 3-sample file to 6 gives the 6-sample file
    _generate(path, 6, seed=3, chunk=4)
    extended = read_samples(path)
    for name in (C.DS_E, C.DS_STRAIN, C.DS_SEED):
        np.testing.assert_array_equal(extended[name], big[name])
    info = read_info(path)
    assert info.complete and [r["samples"] for r in info.runs] == [3, 3]


def test_rerun_on_complete_file_changes_nothing(tmp_path, capsys, run_cli):
    path = tmp_path / "d.h5"
    args = ("generate", "-n", "2", "-o", str(path), "--mode", "pixel", "--no-progress")
    assert run_cli(*args) == 0
    before = read_info(path)
    assert run_cli(*args) == 0
    assert "already complete" in capsys.readouterr().out
    after = read_info(path)
    assert after.runs == before.runs and after.wall_seconds == before.wall_seconds


def test_different_command_is_refused_with_one_line(tmp_path, capsys, run_cli):
    path = tmp_path / "d.h5"
    assert run_cli("generate", "-n", "2", "-o", str(path), "--mode", "pixel", "--no-progress") == 0
    capsys.readouterr()
    status = run_cli("generate", "-n", "2", "-o", str(path), "--mode", "pixel", "--seed", "5")
    err = capsys.readouterr().err.strip()
    assert status == 1 and "\n" not in err
    assert err.startswith("error:") and "generator.seed" in err and "--overwrite" in err
    assert read_info(path).generator["seed"] == 0  # untouched
    status = run_cli("generate", "-n", "2", "-o", str(path), "--mode", "pixel", "--seed", "5",
                  "--overwrite", "--no-progress")  # fmt: skip
    assert status == 0 and read_info(path).generator["seed"] == 5


def test_preset_and_options_are_recorded_and_regenerate_the_samples(tmp_path, run_cli):
    path = tmp_path / "mix.h5"
    args = ("generate", "-n", "3", "-o", path, "--mode", "pixel", "--no-progress", "--seed", "2")
    assert run_cli(*args, "--preset", "mixture", "--shapes", "ellipse,polygon",
                   "--edges", "avoid") == 0  # fmt: skip
    wanted = replace(MIXTURE, shapes=("ellipse", "polygon"), edges="avoid")
    info = read_info(path)
    assert info.generator == wanted.to_json_dict(seed=2)
    config = GeneratorConfig.from_json_dict(info.generator)
    assert config == wanted
    data = read_samples(path)
    E, _ = sample_microstructures(config, 2, range(3))
    np.testing.assert_array_equal(data[C.DS_E], E)
    np.testing.assert_allclose(data[C.DS_STRAIN][:, 0].mean(axis=(1, 2)), 0.1, rtol=1e-5)


def test_file_from_before_the_new_generator_options_resumes(tmp_path, pixel_file):
    # pixel_file's first 4 samples, its generator attribute as written before shapes existed
    path = tmp_path / "old.h5"
    _generate(path, 4, seed=3, chunk=4)
    old = {k: v for k, v in read_info(path).generator.items() if k in OLD_GENERATOR_KEYS}
    with h5py.File(path, "r+") as f:
        f.attrs[C.ATTR_GENERATOR] = json.dumps(old, sort_keys=True)
    _generate(path, 6, seed=3, chunk=4)  # the same command, extended: resumes
    assert read_info(path).generator == GeneratorConfig().to_json_dict(seed=3)
    np.testing.assert_array_equal(
        read_samples(path)[C.DS_STRAIN], read_samples(pixel_file)[C.DS_STRAIN]
    )
    # an old file of another command is still refused
    with h5py.File(path, "r+") as f:
        f.attrs[C.ATTR_GENERATOR] = json.dumps({**old, "min_gap": 0.02}, sort_keys=True)
    with pytest.raises(MicrostrainError, match=r"generator\.min_gap"):
        _generate(path, 8, seed=3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-n", "2", "--preset", "fancy"), "unknown preset 'fancy'"),
        (("-n", "2", "--shapes", "circle,star"), "shapes circle,star must be"),
        (("-n", "2", "--edges", "wrap"), "edges must be one of"),
        (("-n", "0"), "number of samples must be positive"),
        (("-n", "2", "--mode", "coarse"), "mode must be one of"),
        (("-n", "2", "--plane", "shell"), "plane must be one of"),
        (("-n", "2", "--k", "0"), "k must be an integer"),
        (("-n", "2", "--fiber-fraction-min", "0.7"), "fiber fraction range"),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path, capsys, args, message, run_cli):
    out = tmp_path / "d.h5"
    assert run_cli("generate", "-o", str(out), *args) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err
    assert not out.exists()


def test_unwritable_output_directory(tmp_path, capsys, run_cli):
    assert run_cli("generate", "-n", "2", "-o", str(tmp_path / "no" / "d.h5")) == 1
    assert "output directory does not exist" in capsys.readouterr().err


def test_config_validation():
    with pytest.raises(InputError):
        GenerateConfig(n=-1, output=Path("x.h5"))
    with pytest.raises(InputError):
        GenerateConfig(n=1, output=Path("x.h5"), chunk=0)


@pytest.mark.parametrize(
    ("count", "ranks", "offload"),
    [(64, 1, 0.0), (64, 2, 0.0), (64, 2, 5.3), (7, 3, 2.0), (1, 4, 9.0)],
)
def test_split_chunk_covers_the_chunk_and_offloads_rank_0(count, ranks, offload):
    counts = split_chunk(count, ranks, offload)
    assert len(counts) == ranks and sum(counts) == count and min(counts) >= 0
    if ranks > 1:
        assert counts[0] <= min(counts[1:]) + 1  # rank 0 also writes: never more work
        assert max(counts[1:]) - min(counts[1:]) <= 1
