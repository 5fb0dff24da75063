"""The resumable writer and the core reader of SPEC §4, without the solver: schema, resume
bookkeeping, refusals."""

import json

import h5py
import numpy as np
import pytest

from data_gen.dataset import ATTR_N_COMPLETE, DatasetIdentity, DatasetWriter
from microstrain import conventions as C
from microstrain.conventions import ATTR_RUNS, ATTR_WALL_SECONDS
from microstrain.dataset import FIELDS, read_info, read_samples
from microstrain.errors import MicrostrainError


def _identity(seed: int = 0, k: int = 4) -> DatasetIdentity:
    return DatasetIdentity(
        load_case={"name": C.LOAD_CASE, "applied_strain": 0.1, "plane": "stress"},
        materials=C.MATERIALS,
        generator={"seed": seed, "radius_min": 0.05},
        discretization={"mode": "refined", "k": k},
    )


def _fields(start: int, n: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(start)
    return {
        C.DS_E: rng.random((n, *C.E_SHAPE), dtype=np.float32),
        C.DS_STRAIN: rng.random((n, *C.STRAIN_SHAPE), dtype=np.float32),
        C.DS_FIBER_FRACTION: rng.random(n, dtype=np.float32),
        C.DS_SEED: np.arange(start, start + n, dtype=np.int64),
        C.DS_SOLVE_SECONDS: rng.random(n),
    }


def _open(path, n=10, **kw):
    return DatasetWriter.open(path, _identity(**kw), {"dolfinx": "x"}, n_requested=n)


def test_schema_attributes_and_complete_flag(tmp_path):
    path = tmp_path / "d.h5"
    w = _open(path)
    assert read_info(path).complete is False
    w.append(_fields(0, 6), run_wall_seconds=1.0)
    w.append(_fields(6, 4), run_wall_seconds=2.5)
    assert read_info(path).complete is False  # all samples there, but not finished yet
    w.finish(run_wall_seconds=3.0)

    info = read_info(path)
    assert info.complete is True and info.n == 10 and info.n_requested == 10
    assert info.schema_version == C.SCHEMA_VERSION
    assert info.load_case == {"name": "uniaxial-x", "applied_strain": 0.1, "plane": "stress"}
    assert info.discretization == {"mode": "refined", "k": 4}
    assert info.materials == C.MATERIALS
    assert info.wall_seconds == pytest.approx(3.0)
    assert [r["samples"] for r in info.runs] == [10]
    with h5py.File(path) as f:
        for name, (dtype, shape) in FIELDS.items():
            ds = f[name]
            assert ds.dtype == np.dtype(dtype) and ds.shape == (10, *shape)
            assert ds.chunks[1:] == shape and ds.compression == "gzip"
        assert list(f[C.DS_STRAIN].attrs["channels"]) == list(C.STRAIN_CHANNELS)
        for attr in (C.ATTR_LOAD_CASE, C.ATTR_GENERATOR, C.ATTR_SOFTWARE, C.ATTR_MATERIALS):
            json.loads(f.attrs[attr])  # every JSON attribute parses
        assert isinstance(f.attrs[C.ATTR_CREATED], str)
    data = read_samples(path)
    np.testing.assert_array_equal(data[C.DS_SEED], np.arange(10))
    np.testing.assert_array_equal(data[C.DS_E][6:], _fields(6, 4)[C.DS_E])


def test_resume_continues_and_sums_wall_time(tmp_path):
    path = tmp_path / "d.h5"
    w = _open(path)
    w.append(_fields(0, 4), run_wall_seconds=2.0)
    del w  # "killed": never finished
    w = _open(path)
    assert w.n_complete == 4
    w.append(_fields(4, 6), run_wall_seconds=1.5)
    w.finish(run_wall_seconds=1.5)
    info = read_info(path)
    assert info.complete and info.n == 10
    assert info.wall_seconds == pytest.approx(3.5)
    assert [(r["first_sample"], r["samples"]) for r in info.runs] == [(0, 4), (4, 6)]


def test_rows_past_n_complete_are_dropped_on_resume(tmp_path):
    path = tmp_path / "d.h5"
    w = _open(path)
    w.append(_fields(0, 4), run_wall_seconds=1.0)
    with h5py.File(path, "r+") as f:  # a run killed after growing the datasets
        for name in FIELDS:
            f[name].resize(7, axis=0)
    w = _open(path)
    assert w.n_complete == 4
    assert read_info(path).n == 4


def test_a_different_command_is_refused_unless_overwrite(tmp_path):
    path = tmp_path / "d.h5"
    _open(path, seed=0).append(_fields(0, 2), run_wall_seconds=1.0)
    with pytest.raises(MicrostrainError, match=r"different command.*generator\.seed"):
        _open(path, seed=1)
    with pytest.raises(MicrostrainError, match=r"discretization\.k"):
        _open(path, k=2)
    w = DatasetWriter.open(path, _identity(seed=1), {}, n_requested=10, overwrite=True)
    assert w.n_complete == 0 and read_info(path).generator["seed"] == 1


def test_more_samples_than_requested_is_refused(tmp_path):
    path = tmp_path / "d.h5"
    _open(path).append(_fields(0, 6), run_wall_seconds=1.0)
    with pytest.raises(MicrostrainError, match="already holds 6 samples"):
        _open(path, n=5)


def test_foreign_or_corrupt_existing_file_is_refused(tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(MicrostrainError, match="not an HDF5 file"):
        _open(junk)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(MicrostrainError, match="not a dataset written by"):
        _open(other)


def test_unwritable_or_missing_output_directory(tmp_path):
    with pytest.raises(MicrostrainError, match="does not exist"):
        _open(tmp_path / "absent" / "d.h5")
    with pytest.raises(MicrostrainError, match="is a directory"):
        _open(tmp_path)


def test_read_info_errors_are_one_clear_message(tmp_path):
    with pytest.raises(MicrostrainError, match="not found"):
        read_info(tmp_path / "absent.h5")
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(200))
    with pytest.raises(MicrostrainError, match="cannot read"):
        read_info(bad)
    partial = tmp_path / "partial.h5"
    with h5py.File(partial, "w") as f:
        f[C.DS_E] = np.zeros((2, *C.E_SHAPE), dtype=np.float32)
    with pytest.raises(MicrostrainError, match="no 'strain' dataset"):
        read_info(partial)


def test_partial_file_reports_its_count(tmp_path):
    path = tmp_path / "d.h5"
    _open(path, n=10).append(_fields(0, 3), run_wall_seconds=0.5)
    info = read_info(path)
    assert not info.complete and info.n == 3 and info.n_requested == 10
    with h5py.File(path) as f:
        assert int(f.attrs[ATTR_N_COMPLETE]) == 3
        assert float(f.attrs[ATTR_WALL_SECONDS]) == pytest.approx(0.5)
        assert json.loads(f.attrs[ATTR_RUNS])[0]["samples"] == 3
