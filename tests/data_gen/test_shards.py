"""`generate --shard I/K`: the K parts hold the serial file's samples bit for bit; resume per
shard; refusals; one-line errors (real pixel-mode solves, in-process)."""

import h5py
import numpy as np
import pytest

from data_gen.dataset import ATTR_N_COMPLETE
from data_gen.shards import Shard, check_shards, parse_shard, read_shard
from microstrain import conventions as C
from microstrain.dataset import read_info, read_samples
from microstrain.errors import InputError, MicrostrainError

DETERMINISTIC = (C.DS_E, C.DS_STRAIN, C.DS_FIBER_FRACTION, C.DS_SEED)
N = 7  # odd: the two shards differ in size (3 and 4 samples)


def _args(path, *extra):
    return ("generate", "-n", N, "--seed", 11, "-o", path, "--mode", "pixel", "--chunk", 2,
            "--no-progress", *extra)  # fmt: skip


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The serial file and its two shards, each written by its own command."""
    from support.cli import invoke

    tmp = tmp_path_factory.mktemp("shards")
    paths = {"serial": tmp / "serial.h5", 0: tmp / "part_0.h5", 1: tmp / "part_1.h5"}
    assert invoke(*_args(paths["serial"])).exit_code == 0
    for i in (1, 0):  # any order: the jobs are independent
        assert invoke(*_args(paths[i], "--shard", f"{i}/2")).exit_code == 0
    return paths


def test_shards_concatenated_equal_the_serial_run_bit_for_bit(runs):
    serial = read_samples(runs["serial"])
    parts = [read_samples(runs[i]) for i in (0, 1)]
    assert [len(p[C.DS_SEED]) for p in parts] == [3, 4]
    for name in DETERMINISTIC:
        joined = np.concatenate([p[name] for p in parts])
        assert joined.dtype == serial[name].dtype
        np.testing.assert_array_equal(joined, serial[name], err_msg=name)
    whole, part = read_info(runs["serial"]), read_info(runs[1])
    for attr in ("load_case", "materials", "generator", "discretization", "schema_version"):
        assert getattr(part, attr) == getattr(whole, attr), attr
    assert part.complete and part.n == part.n_requested == 4


def test_shard_attribute_lets_a_reader_put_the_parts_together(runs):
    assert read_shard(runs[0]) == {"index": 0, "count": 2, "first_sample": 0, "n_total": N}
    assert read_shard(runs[1]) == {"index": 1, "count": 2, "first_sample": 3, "n_total": N}
    assert read_shard(runs["serial"]) is None
    ordered = check_shards([runs[1], runs[0]])
    assert [info.path for info in ordered] == [runs[0], runs[1]]
    with pytest.raises(MicrostrainError, match=r"shards \[1\] given"):
        check_shards([runs[1]])
    with pytest.raises(MicrostrainError, match="not a shard"):
        check_shards([runs[0], runs["serial"]])


def test_interrupted_shard_resumes_to_the_same_file(tmp_path, runs, run_cli):
    path = tmp_path / "part_1.h5"
    assert run_cli(*_args(path, "--shard", "1/2")) == 0
    # what a kill after the first chunk leaves: 2 samples counted, the file not complete
    with h5py.File(path, "r+") as f:
        f.attrs[ATTR_N_COMPLETE] = 2
        f.attrs[C.ATTR_COMPLETE] = False
    assert read_info(path).n == 4  # rows past n_complete are dropped on resume
    assert run_cli(*_args(path, "--shard", "1/2")) == 0
    got, want = read_samples(path), read_samples(runs[1])
    for name in DETERMINISTIC:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    runs_attr = read_info(path).runs
    assert [r["samples"] for r in runs_attr] == [4, 2] and read_info(path).complete


def test_another_shard_or_a_whole_run_is_refused(runs, capsys, run_cli):
    for extra, message in [
        (("--shard", "0/2"), "file: shard 1/2 of N = 7, samples 3..6; requested: shard 0/2"),
        ((), "requested: a whole run"),
    ]:
        assert run_cli(*_args(runs[1], *extra)) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and message in err and "\n" not in err
    assert run_cli(*_args(runs["serial"], "--shard", "0/2")) == 1
    assert "file: a whole run" in capsys.readouterr().err
    assert read_info(runs[1]).complete  # untouched


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("3/2", "--shard 3/2: the shard index must be 0 to 1"),
        ("a/b", "--shard must be I/K with whole numbers"),
        ("0/0", "--shard 0/0: the shard count must be at least 1"),
        ("-1/2", "--shard must be I/K"),
        ("1/2/3", "--shard must be I/K"),
    ],
)
def test_bad_shard_values_are_one_line_errors(tmp_path, capsys, run_cli, value, message):
    out = tmp_path / "p.h5"
    assert run_cli(*_args(out, "--shard", value)) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and message in err and "\n" not in err
    assert not out.exists()


def test_an_empty_shard_is_refused(tmp_path, capsys, run_cli):
    out = tmp_path / "p.h5"
    assert run_cli("generate", "-n", 1, "-o", out, "--mode", "pixel", "--shard", "0/2") == 1
    assert "holds no sample" in capsys.readouterr().err


@pytest.mark.parametrize("n_total", [1, 2, 7, 64, 1000, 1001])
@pytest.mark.parametrize("count", [1, 2, 3, 8])
def test_shards_partition_the_run(n_total, count):
    spans = [Shard(i, count).samples(n_total) for i in range(count)]
    assert [k for span in spans for k in span] == list(range(n_total))
    sizes = [len(s) for s in spans]
    assert max(sizes) - min(sizes) <= 1
    assert parse_shard(f" {count - 1} / {count} ") == Shard(count - 1, count)
    with pytest.raises(InputError):
        Shard(count, count)
