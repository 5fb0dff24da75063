"""Many SPEC §4 files read as one dataset (microstrain.dataset.open_union): order, agreement,
refusals naming the odd file, chunk-aligned reads of any samples, rescaling, provenance."""

import json

import h5py
import numpy as np
import pytest
from support.datasets import standin_moduli, standin_strain, write_standin_dataset

from microstrain import dataset as D
from microstrain.conventions import ATTR_LOAD_CASE, ATTR_SCHEMA_VERSION, ATTR_SHARD, DS_STRAIN
from microstrain.dataset import open_union, read_samples, summarize, summarize_union, write_dataset
from microstrain.errors import MicrostrainError
from microstrain.files import sha256_of

GENERATOR = {"kind": "test-run", "seed": 7}


def _write_run(directory, n_total=10, count=3, names=("c.h5", "a.h5", "b.h5"), seconds=None):
    """The ``count`` shards of one run of ``n_total`` stand-in samples, shard i named names[i]
    (name order is not shard order); returns the whole run's E and strain."""
    directory.mkdir(exist_ok=True)
    e = standin_moduli(n_total, seed=1)
    s = standin_strain(e)
    for i in range(count):
        lo, hi = i * n_total // count, (i + 1) * n_total // count
        path = write_dataset(
            directory / names[i], e[lo:hi], s[lo:hi], generator=GENERATOR,
            solve_seconds=None if seconds is None else seconds[lo:hi],
        )  # fmt: skip
        shard = {"index": i, "count": count, "first_sample": lo, "n_total": n_total}
        with h5py.File(path, "r+") as f:
            f.attrs[ATTR_SHARD] = json.dumps(shard)
    return e, s


def test_a_directory_of_shards_reads_as_the_whole_run_in_shard_order(tmp_path):
    e, s = _write_run(tmp_path / "run")
    union = open_union(tmp_path / "run")
    assert [p.name for p in union.paths] == ["c.h5", "a.h5", "b.h5"]  # shard 0, 1, 2
    assert union.n == 10 and union.offsets.tolist() == [0, 3, 6, 10]
    got_e, got_s = union.read(np.arange(10))
    np.testing.assert_array_equal(got_e, e)
    np.testing.assert_array_equal(got_s, s)
    listed = open_union([tmp_path / "run" / name for name in ("b.h5", "c.h5", "a.h5")])
    assert listed.paths == union.paths  # however they are listed
    assert "run/ (3 files)" == union.description


def test_plain_files_are_ordered_by_name(tmp_path):
    for name, seed in (("b.h5", 2), ("a.h5", 1)):
        write_standin_dataset(tmp_path / name, n=4, seed=seed)
    union = open_union([tmp_path / "b.h5", tmp_path / "a.h5"])
    assert [p.name for p in union.paths] == ["a.h5", "b.h5"]
    np.testing.assert_array_equal(
        union.read(np.arange(4))[1], read_samples(union.paths[0])[DS_STRAIN]
    )


def test_any_samples_in_any_order_read_chunk_by_chunk(tmp_path, monkeypatch):
    """200 samples in chunks of 64; pieces cut at every chunk (READ_SPAN 64) or spanning."""
    path = write_standin_dataset(tmp_path / "big.h5", n=200)
    whole = read_samples(path)
    union = open_union(path)
    assert union.chunk_length(0) == 64
    rng = np.random.default_rng(0)
    wanted = np.concatenate([rng.permutation(200)[:90], [5, 5, 199, 0]])  # repeats too
    for span in (64, 4096):
        monkeypatch.setattr(D, "READ_SPAN", span)
        e, s = union.read(wanted)
        np.testing.assert_array_equal(e, whole["E"][wanted])
        np.testing.assert_array_equal(s, whole[DS_STRAIN][wanted])
    ids = union.chunk_ids(np.arange(200))
    assert ids.tolist() == (np.arange(200) // 64).tolist()
    with pytest.raises(MicrostrainError, match="out of range"):
        union.read(np.array([200]))


def test_each_files_strain_is_rescaled_to_the_models_applied_strain(tmp_path):
    a = write_standin_dataset(tmp_path / "a.h5", n=4, applied_strain=0.1)
    b = write_standin_dataset(tmp_path / "b.h5", n=4, applied_strain=0.025)
    union = open_union([a, b])
    s = union.read(np.arange(8))[1]
    # ū 0.025 -> 0.1 is a factor 4, exact in float32: only the files' own rounding differs
    np.testing.assert_allclose(s[4:], s[:4], rtol=1e-6, atol=0)
    assert [f["applied_strain"] for f in summarize_union(union).files] == [0.1, 0.025]


def _plane_strain(path):
    write_standin_dataset(path, n=4, plane="strain")


def _refined(path):
    e = standin_moduli(4)
    write_dataset(path, e, standin_strain(e), discretization={"mode": "refined", "k": 4})


def _other_load_case(path):
    write_standin_dataset(path, n=4)
    with h5py.File(path, "r+") as f:
        f.attrs[ATTR_LOAD_CASE] = json.dumps(
            {"name": "shear-xy", "applied_strain": 0.1, "plane": "stress"}
        )


def _other_schema(path):
    write_standin_dataset(path, n=4)
    with h5py.File(path, "r+") as f:
        f.attrs[ATTR_SCHEMA_VERSION] = 99


@pytest.mark.parametrize(
    "write, what",
    [
        (_plane_strain, "plane"),
        (_refined, "discretization"),
        (_other_load_case, "load_case_name"),
        (_other_schema, "schema_version"),
    ],
)
def test_a_file_that_disagrees_is_refused_by_name(tmp_path, write, what):
    write_standin_dataset(tmp_path / "a.h5", n=4)
    write(tmp_path / "odd.h5")
    with pytest.raises(MicrostrainError) as caught:
        open_union(tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'odd.h5'} does not match {tmp_path / 'a.h5'}: {what}")


def test_the_same_samples_twice_are_refused(tmp_path):
    path = write_standin_dataset(tmp_path / "a.h5", n=4)
    with pytest.raises(MicrostrainError, match="holds the same samples as"):
        open_union([path, tmp_path / "." / "a.h5"])
    _write_run(tmp_path / "run", names=("x.h5", "y.h5", "z.h5"))
    copy = tmp_path / "run" / "y_again.h5"
    copy.write_bytes((tmp_path / "run" / "y.h5").read_bytes())
    with pytest.raises(MicrostrainError, match=r"y_again.h5 holds the same samples as .*y.h5"):
        open_union(tmp_path / "run")


def test_bad_files_are_one_clear_error_naming_the_file(tmp_path):
    with pytest.raises(MicrostrainError, match=r"no \.h5 dataset files in the directory"):
        open_union(tmp_path)
    write_standin_dataset(tmp_path / "a.h5", n=4)
    e = standin_moduli(4)
    write_dataset(tmp_path / "b.h5", e, standin_strain(e), complete=False)
    with pytest.raises(MicrostrainError, match=r"b.h5 is marked incomplete"):
        open_union(tmp_path)
    s = standin_strain(e)
    s[3, 0, 1, 1] = np.inf
    write_dataset(tmp_path / "b.h5", e, s)
    union = open_union(tmp_path)
    union.read(np.arange(4))  # the first file is fine
    with pytest.raises(MicrostrainError, match=r"b.h5: 'strain' holds NaN or infinite values in "
                       r"1 sample\(s\) \(first: sample 3\)"):  # fmt: skip
        union.read(np.array([6, 7]))


def test_the_summary_lists_every_file_with_its_sha256(tmp_path):
    seconds = np.array([0.5, 0.1, 0.2, 0.4, 0.3, 0.6, 0.9, 0.8, 0.7, 1.0])
    _write_run(tmp_path / "run", seconds=seconds)
    union = open_union(tmp_path / "run")
    summary = summarize_union(union)
    assert [(f["file"], f["sha256"], f["n_samples"]) for f in summary.files] == [
        (p.name, sha256_of(p), info.n) for p, info in zip(union.paths, union.infos, strict=True)
    ]
    assert [f["shard"]["index"] for f in summary.files] == [0, 1, 2]
    assert summary.sha256 is None and summary.n_samples == 10
    assert summary.t_data == pytest.approx(seconds.sum(), rel=1e-12)  # each file: its solve times
    assert summary.t_simulation == pytest.approx(np.median(seconds), rel=1e-15)
    assert summary.generator == GENERATOR
    one = summarize_union(open_union(union.paths[0]))
    alone = summarize(union.paths[0])
    assert one == alone and one.files == [
        {**summary.files[0], "file": "c.h5"}
    ]  # one file: the file's own summary
