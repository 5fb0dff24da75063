"""`generate` as real processes: SIGKILL mid-run then resume (whole run and one shard), and
`mpiexec` vs serial (2 ranks, and more ranks than cores).

All compare with an uninterrupted serial file: every dataset but the timings must be identical.
"""

import shutil
import signal
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from support.cli import MICROSTRAIN, mpiexec

from data_gen.dataset import ATTR_N_COMPLETE
from microstrain import conventions as C
from microstrain.dataset import read_info, read_samples

DETERMINISTIC = (C.DS_E, C.DS_STRAIN, C.DS_FIBER_FRACTION, C.DS_SEED)


def _command(path: Path, n: int, *extra: str) -> list[str]:
    return ["generate", "-n", str(n), "-o", str(path), "--seed", "4", "--mode", "pixel", *extra]


def _run(args: list[str], prefix: list[str] | None = None) -> None:
    out = subprocess.run(
        [*(prefix or []), *MICROSTRAIN, *args], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]


def _assert_same_samples(a: Path, b: Path) -> None:
    da, db = read_samples(a), read_samples(b)
    for name in DETERMINISTIC:
        assert da[name].dtype == db[name].dtype
        np.testing.assert_array_equal(da[name], db[name], err_msg=name)
    ia, ib = read_info(a), read_info(b)
    assert ia.complete and ib.complete and ia.n == ib.n
    for attr in ("load_case", "materials", "generator", "discretization", "schema_version"):
        assert getattr(ia, attr) == getattr(ib, attr), attr


def _n_complete(path: Path) -> int:
    """Samples flushed so far, read while another process writes (no lock; may fail)."""
    try:
        with h5py.File(path, "r", locking=False) as f:
            return int(f.attrs[ATTR_N_COMPLETE])
    except (OSError, KeyError):
        return 0


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ref") / "serial.h5"
    _run(_command(path, 240, "--chunk", "8", "--no-progress"))
    return path


def _kill_after(args: list[str], path: Path, samples: int, total: int) -> None:
    """Start ``microstrain ARGS`` and SIGKILL it once ``samples`` are flushed to ``path``."""
    proc = subprocess.Popen([*MICROSTRAIN, *args], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while _n_complete(path) < samples and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if _n_complete(path) >= total:
        pytest.skip("the run finished before it could be killed (machine too fast)")


@pytest.mark.slow
def test_resume_after_sigkill_gives_the_uninterrupted_file(tmp_path, reference):
    path = tmp_path / "killed.h5"
    args = _command(path, 240, "--chunk", "8", "--no-progress")
    _kill_after(args, path, 16, 240)
    info = read_info(path)
    assert not info.complete and 16 <= info.n < 240 and info.n % 8 == 0

    _run(args)  # the very same command resumes
    _assert_same_samples(path, reference)
    runs = read_info(path).runs
    assert [r["first_sample"] for r in runs] == [0, info.n]
    assert sum(r["samples"] for r in runs) == 240


@pytest.mark.slow
def test_killed_shard_resumes_to_its_part_of_the_serial_file(tmp_path, reference):
    path = tmp_path / "part_1.h5"
    args = _command(path, 240, "--shard", "1/2", "--chunk", "8", "--no-progress")
    _kill_after(args, path, 16, 120)
    info = read_info(path)
    assert not info.complete and 16 <= info.n < 120

    _run(args)  # the very same command resumes the shard
    got = read_samples(path)
    with h5py.File(reference) as f:  # samples 120..239 of the serial file
        ref = {name: f[name][120:240] for name in DETERMINISTIC}
    for name in DETERMINISTIC:
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)
    after = read_info(path)  # run records count samples within the file
    assert after.complete and [r["first_sample"] for r in after.runs] == [0, info.n]


@pytest.mark.slow
@pytest.mark.mpi
def test_more_ranks_than_cores_equals_serial_also_for_a_shard(tmp_path, reference):
    """Three ranks pinned to one core (taskset): oversubscribed on any machine."""
    mpi = mpiexec()
    taskset = shutil.which("taskset")
    if taskset is None:
        pytest.skip("taskset not found")
    path = tmp_path / "mpi3.h5"
    # shard 1/2 of -n 80: samples 40..79 of the serial file
    args = _command(path, 80, "--shard", "1/2", "--chunk", "7", "--no-progress")
    _run(args, prefix=[taskset, "-c", "0", mpi, "-n", "3"])
    with h5py.File(reference) as f:
        ref = {name: f[name][40:80] for name in DETERMINISTIC}
    got = read_samples(path)
    for name in DETERMINISTIC:
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)
    info = read_info(path)
    assert info.complete and info.n == 40 and info.runs[0]["ranks"] == 3


@pytest.mark.slow
@pytest.mark.mpi
def test_mpiexec_two_ranks_equals_serial(tmp_path, reference):
    mpi = mpiexec()
    path = tmp_path / "mpi.h5"
    # a smaller chunk than the reference: neither P nor the chunk size may change the samples
    env_prefix = [mpi, "-n", "2"]
    _run(_command(path, 40, "--chunk", "6", "--no-progress"), prefix=env_prefix)
    with h5py.File(reference) as f:  # first 40 samples of the serial file
        ref = {name: f[name][:40] for name in DETERMINISTIC}
    got = read_samples(path)
    for name in DETERMINISTIC:
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)
    info = read_info(path)
    assert info.complete and info.n == 40 and info.runs[0]["ranks"] == 2


@pytest.mark.slow
@pytest.mark.mpi
def test_mpiexec_error_is_reported_once(tmp_path):
    mpi = mpiexec()
    out = subprocess.run(
        [mpi, "-n", "2", *MICROSTRAIN, *_command(tmp_path / "no" / "x.h5", 4)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode != 0
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "output directory does not exist" in lines[0]
