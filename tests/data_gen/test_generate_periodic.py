"""`microstrain generate --boundary periodic`: the SPEC §11 file from real solves (k = 1, tiny N),
the same samples serially, in shards and under `mpiexec -n 2`; user materials; refusals."""

import subprocess
from pathlib import Path

import numpy as np
import pytest
from support.cli import MICROSTRAIN, invoke, mpiexec
from support.materials import EPOXY, GLASS

from data_gen.microstructure import GeneratorConfig, sample_microstructures
from data_gen.solver import SolverConfig, StrainSolver
from microstrain import conventions as C
from microstrain.dataset import load_samples, read_info, read_samples
from microstrain.quantities import effective_stiffness, reuss_stiffness, voigt_stiffness

DETERMINISTIC = (C.DS_E, C.DS_STRAIN, C.DS_C_EFF, C.DS_FIBER_FRACTION, C.DS_SEED)
N = 4


def _args(path: Path, *extra: str) -> list[str]:
    return ["generate", "-n", str(N), "-o", str(path), "--seed", "2", "--k", "1",
            "--boundary", "periodic", *extra]  # fmt: skip


@pytest.fixture(scope="module")
def serial(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("periodic") / "serial.h5"
    result = invoke(*_args(path))  # the progress bar on, as users run it
    assert result.exit_code == 0, result.output
    assert "periodic" in result.stdout
    return path


def _assert_same(path: Path, reference: Path, rows: slice = slice(None)) -> None:
    got, ref = read_samples(path, DETERMINISTIC), read_samples(reference, DETERMINISTIC)
    for name in DETERMINISTIC:
        np.testing.assert_array_equal(got[name], ref[name][rows], err_msg=name)


def test_the_periodic_file_is_spec_11_and_holds_the_solvers_answer(serial):
    info = read_info(serial)
    assert info.complete and info.n == N and info.boundary == "periodic"
    assert info.load_case == {
        "name": "periodic", "cases": ["xx", "yy", "xy"], "applied_strain": 0.1, "plane": "stress",
    }  # fmt: skip
    assert info.generator == GeneratorConfig(periodic=True).to_json_dict(seed=2)
    samples = load_samples(serial, boundary="periodic")
    assert samples.strain.shape == (N, 3, 3, 32, 32) and samples.c_eff.shape == (N, 3, 3)
    # the sampler's periodic microstructures, solved by the solver: C_eff from its float64 fields
    E, _ = sample_microstructures(GeneratorConfig(periodic=True), 2, range(N))
    np.testing.assert_array_equal(samples.youngs_modulus, E)
    solver = StrainSolver(SolverConfig(k=1, boundary="periodic"))
    fields = np.stack([solver.solve(e[0]) for e in E])  # [N, 3, 3, 32, 32] float64
    np.testing.assert_array_equal(samples.strain, fields.astype(np.float32))
    np.testing.assert_array_equal(samples.c_eff, effective_stiffness(E, fields, "stress", 0.1))
    # each case's mean strain is its macro strain; C_eff symmetric, inside the bounds
    means = samples.strain.astype(np.float64).mean(axis=(3, 4))  # [N, case, component]
    np.testing.assert_allclose(means, np.broadcast_to(0.1 * np.eye(3), means.shape), atol=1e-7)
    c = samples.c_eff
    np.testing.assert_allclose(c, c.transpose(0, 2, 1), rtol=0, atol=1e-9 * np.abs(c).max())
    for ci, f in zip(c, samples.fiber_fraction, strict=True):
        assert np.linalg.eigvalsh(voigt_stiffness(f, "stress") - ci).min() > -1e-6
        assert np.linalg.eigvalsh(ci - reuss_stiffness(f, "stress")).min() > -1e-6


def test_shards_hold_the_serial_files_samples(serial, tmp_path):
    for i, rows in enumerate((slice(0, 2), slice(2, 4))):
        path = tmp_path / f"part{i}.h5"
        result = invoke(*_args(path, "--shard", f"{i}/2", "--no-progress"))
        assert result.exit_code == 0, result.output
        _assert_same(path, serial, rows)


@pytest.mark.slow
@pytest.mark.mpi
def test_mpiexec_two_ranks_equals_serial(serial, tmp_path):
    path = tmp_path / "mpi.h5"
    out = subprocess.run(
        [mpiexec(), "-n", "2", *MICROSTRAIN, *_args(path, "--chunk", "3", "--no-progress")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    _assert_same(path, serial)
    assert read_info(path).runs[0]["ranks"] == 2


def test_user_materials_are_recorded_and_solved(tmp_path):
    path = tmp_path / "glass.h5"
    result = invoke(*_args(path, "--fiber", "72000,0.22", "--matrix", "3500,0.35", "--no-progress"))
    assert result.exit_code == 0, result.output
    info = read_info(path)
    assert info.phases == (GLASS, EPOXY)
    samples = load_samples(path, boundary="periodic")
    assert set(np.unique(samples.youngs_modulus)) == {3500.0, 72000.0}
    phases = {"fiber": GLASS, "matrix": EPOXY}
    for ci, f in zip(samples.c_eff, samples.fiber_fraction, strict=True):
        assert np.linalg.eigvalsh(voigt_stiffness(f, "stress", **phases) - ci).min() > -1e-6
        assert np.linalg.eigvalsh(ci - reuss_stiffness(f, "stress", **phases)).min() > -1e-6
    # the same for a uniaxial file: the phases change the solve, not only the label
    uni = tmp_path / "glass_uniaxial.h5"
    result = invoke("generate", "-n", "2", "-o", uni, "--k", "1", "--fiber", "72000,0.22",
                    "--matrix", "3500,0.35", "--no-progress")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert read_info(uni).phases == (GLASS, EPOXY) and read_info(uni).boundary == "uniaxial"
    assert set(np.unique(load_samples(uni).youngs_modulus)) == {3500.0, 72000.0}


def test_geometry_can_be_switched_off(tmp_path):
    path = tmp_path / "plain.h5"
    result = invoke(*_args(path, "--no-periodic-geometry", "--no-progress"))
    assert result.exit_code == 0, result.output
    assert read_info(path).generator["periodic"] is False


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--applied-strain", "10"], "outside 0 < |ū| ≤ 1"),
        (["--fiber", "72000,0.5"], "--fiber: Poisson's ratio must lie in (-1, 0.5)"),
        (["--matrix", "3500"], "--matrix must be E,nu"),
        (["--fiber", "3000,0.3"], "different Young's moduli"),
        (["--boundary", "biaxial"], "--boundary must be one of uniaxial, periodic"),
    ],
)
def test_bad_options_are_one_error_line(tmp_path, extra, message):
    args = _args(tmp_path / "x.h5", "--no-progress")
    args[args.index("--boundary") : args.index("--boundary") + 2] = []
    result = invoke(
        *args, *(extra if "--boundary" in extra else ["--boundary", "periodic", *extra])
    )
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert not (tmp_path / "x.h5").exists()


def test_a_periodic_command_does_not_resume_a_uniaxial_file(serial, tmp_path):
    path = tmp_path / "u.h5"
    assert invoke("generate", "-n", "2", "-o", path, "--k", "1", "--no-progress").exit_code == 0
    result = invoke(*_args(path, "--no-progress"))
    assert result.exit_code == 1 and "generated by a different command" in result.stderr
    assert "load_case.name: file 'uniaxial-x' != requested 'periodic'" in result.stderr


def test_larger_rves_of_64_x_64_pixels(tmp_path):
    path = tmp_path / "rve64.h5"
    result = invoke("generate", "-n", "1", "-o", path, "--k", "1", "--boundary", "periodic",
                    "--grid", "64", "--no-progress")  # fmt: skip
    assert result.exit_code == 0, result.output
    info = read_info(path)
    assert info.grid == 64 and info.generator["grid"] == 64
    samples = load_samples(path, boundary="periodic")
    assert samples.strain.shape == (1, 3, 3, 64, 64)
    E, _ = sample_microstructures(GeneratorConfig(periodic=True, grid=64), 0, range(1))
    np.testing.assert_array_equal(samples.youngs_modulus, E)
    fields = StrainSolver(SolverConfig(k=1, boundary="periodic", grid=64)).solve(E[0, 0])
    np.testing.assert_array_equal(
        samples.c_eff, effective_stiffness(E, fields[None], "stress", 0.1)
    )
    refused = invoke("generate", "-n", "1", "-o", tmp_path / "u.h5", "--grid", "64")
    assert refused.exit_code == 1 and "periodic" in refused.stderr
