"""DDP on the CPU as users run it (docs/scaling.md): 2 gloo processes, the progress bar and the
default callbacks on, on a directory of two shards made by `generate --shard 0/2` and `--shard
1/2` (pixel mode, 24 samples) whose validation and test splits (3 samples each) the ranks hold
unequally (2 and 1). The run trains to the end; each training sample is seen once per epoch
across the ranks; the recorded metrics are those of every validation and test sample; rank 0
alone writes; and the checkpoint exports. The same under `torchrun`. What ends a run that would
hang: a rank that stops answering ends it after ``--ddp_timeout_s`` with one error; SIGTERM to the
launcher while a rank waits in a collective ends every rank within seconds; a missing data file
is one error line before any rank starts.

The runs are real `microstrain train` subprocesses: Lightning's launcher starts the second rank
by running the same command again. Small callbacks (``ddp_recorder``) write what each rank saw
or stall one rank.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from ddp_recorder import sample_key
from support.cli import MICROSTRAIN, invoke
from support.datasets import write_standin_dataset

from microstrain.dataset import open_union
from microstrain.files import sha256_of
from training.data import StrainDataModule
from training.export import ExportConfig, export_checkpoint
from training.fit import load_datamodule
from training.measures import LOGGED_MEASURES, measures_of
from training.module import StrainRegressor
from training.normalization import fit_normalizer
from training.run_record import RUN_RECORD

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
N = 24
FAST = ExportConfig(timing_batch_size=8, timing_budget_s=0.05, timing_threads=(1,))
# 3 validation and 3 test samples of 24: the two ranks hold 2 and 1 of each
SPLIT = ("--data.val_fraction", "0.125", "--data.test_fraction", "0.125")
TORCHRUN = Path(sys.executable).parent / "torchrun"
# the stalled run's --ddp_timeout_s: also the time a rank waits for the others to start (the
# store's connection), so more than the spread of the ranks' start on a busy machine
TIMEOUT_S = 20


def _env() -> dict[str, str]:
    """The environment with ``ddp_recorder`` importable in every rank (this directory only:
    with ``tests/`` on the path, ``tests/training`` would shadow the ``training`` package)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), *filter(None, [env.get("PYTHONPATH")])])
    return env


def _train_args(data: Path, runs: Path, *extra: object) -> list[str]:
    """`train` with the DDP options of docs/scaling.md (2 CPU processes), progress bar on."""
    args = [
        "train", "--config", REPO / "configs" / "course-cnn.yaml", "--data.path", data,
        "--trainer.max_epochs", "2", "--data.batch_size", "4", *SPLIT,
        "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
        "--runs_dir", runs, "--name", "ddp", *extra,
    ]  # fmt: skip
    return [str(a) for a in args]


def _generate(out: Path, *extra: object) -> None:
    args = ("generate", "-n", N, "--seed", 3, "--mode", "pixel", "-o", out, "--no-progress")
    result = invoke(*args, *extra)
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``shards/part_{0,1}.h5`` (two independent jobs) and ``serial.h5`` (the same run whole)."""
    tmp = tmp_path_factory.mktemp("ddp-data")
    (tmp / "shards").mkdir()
    for i in (1, 0):
        _generate(tmp / "shards" / f"part_{i}.h5", "--shard", f"{i}/2")
    _generate(tmp / "serial.h5")
    return tmp


@pytest.fixture(scope="module")
def run(data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("ddp-run")
    recorder = (
        "--trainer.callbacks+=ddp_recorder.SeenSamples",
        f"--trainer.callbacks.out_dir={tmp / 'seen'}",
    )
    command = [*MICROSTRAIN, *_train_args(data / "shards", tmp / "runs", *recorder)]
    result = subprocess.run(
        command, cwd=tmp, env=_env(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    run_dir = tmp / "runs" / "ddp" / "version_0"
    record = json.loads((run_dir / RUN_RECORD).read_text())
    return {"tmp": tmp, "run_dir": run_dir, "record": record, "stdout": result.stdout}


def test_the_ddp_run_trains_to_the_end_and_rank_0_alone_writes(run, data):
    record, run_dir = run["record"], run["run_dir"]
    assert record["config"]["trainer"]["world_size"] == 2
    assert record["config"]["trainer"]["strategy"] == "DDPStrategy"
    assert record["epochs"] == 2
    # 18 training samples: 9 per rank in 3 batches -> 3 optimizer steps per epoch
    assert record["global_step"] == 2 * 3
    assert [p.name for p in (run["tmp"] / "runs" / "ddp").iterdir()] == ["version_0"]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        Path(record["checkpoints"]["best"]["file"]).name,
        "last.ckpt",
    ]
    assert len(list(run["tmp"].rglob(RUN_RECORD))) == 1
    assert run["stdout"].count("best checkpoint:") == 1  # printed by rank 0 only
    files = record["dataset"]["files"]
    assert [f["file"] for f in files] == ["part_0.h5", "part_1.h5"]
    for f in files:
        assert f["sha256"] == sha256_of(data / "shards" / f["file"])
    assert [f["shard"]["index"] for f in files] == [0, 1]
    assert record["dataset"]["n_samples"] == N and record["reading"] == "in memory"


def test_each_training_sample_is_seen_once_per_epoch_across_the_ranks(run, data):
    split = run["record"]["split"]
    union = open_union(data / "shards")
    held_out = set(split["val_indices"]) | set(split["test_indices"])
    train = np.array([i for i in range(union.n) if i not in held_out])
    expected = Counter(sample_key(e) for e in union.read(train)[0])
    assert len(expected) == len(train) == 18  # every training sample has its own key
    seen = [json.loads((run["tmp"] / "seen" / f"seen_rank{r}.json").read_text()) for r in (0, 1)]
    assert all(s["world_size"] == 2 for s in seen)
    for epoch in ("0", "1"):
        batches = [s["epochs"][epoch] for s in seen]
        assert [len(b) for b in batches] == [3, 3]  # the ranks step together
        got = Counter(key for rank in batches for batch in rank for key in batch)
        assert got == expected, epoch
    # a new order every epoch (Lightning's set_epoch reaches the plan)
    assert seen[0]["epochs"]["0"] != seen[0]["epochs"]["1"]


def _metrics_of(model: StrainRegressor, dataset) -> dict[str, float]:
    e, s, fiber = dataset.batch(list(range(len(dataset))))
    with torch.no_grad():
        measures = measures_of(model.predict_strain(e), s, fiber, model.physics.plane)
    return {k: v for k, v in measures.items() if k in LOGGED_MEASURES}


def test_the_recorded_metrics_are_those_of_every_validation_and_test_sample(run):
    record = run["record"]
    best = run["run_dir"] / record["checkpoints"]["best"]["file"]
    model = StrainRegressor.load_from_checkpoint(best, map_location="cpu").eval()
    datamodule = load_datamodule(str(best))
    datamodule.setup("test")
    assert datamodule.split.val.tolist() == record["split"]["val_indices"]
    # the ranks held 2 and 1 of the 3 samples: a rank's own number would differ
    for name, dataset in (("val", datamodule.val_set), ("test", datamodule.test_set)):
        recorded = record["metrics"][name]
        assert recorded["n_samples"] == len(dataset) == 3
        for key, value in _metrics_of(model, dataset).items():
            assert recorded[key] == pytest.approx(value, rel=1e-5), (name, key)


def test_the_checkpoint_of_the_ddp_run_exports(run, data, tmp_path):
    record = run["record"]
    best = run["run_dir"] / record["checkpoints"]["best"]["file"]
    card = export_checkpoint(best, tmp_path / "model", config=FAST)
    assert max(card["onnx"]["parity_by_batch_size"].values()) <= FAST.parity_tolerance
    files = card["training_data"]["files"]
    assert [(f["file"], f["sha256"]) for f in files] == [
        (name, sha256_of(data / "shards" / name)) for name in ("part_0.h5", "part_1.h5")
    ]
    assert card["training_data"]["n_train"] == 18 and card["T_train"] == record["T_train"]


def test_the_shard_directory_is_the_serial_file_split_and_samples(data):
    shards = StrainDataModule(str(data / "shards"), split_seed=5)
    serial = StrainDataModule(str(data / "serial.h5"), split_seed=5)
    listed = StrainDataModule([str(data / "shards" / f"part_{i}.h5") for i in (1, 0)], split_seed=5)
    for dm in (shards, serial, listed):
        dm.setup("fit")
    for dm in (shards, listed):
        for name in ("train", "val", "test"):
            np.testing.assert_array_equal(getattr(dm.split, name), getattr(serial.split, name))
        for name in ("train_set", "val_set", "test_set"):
            a, b = getattr(dm, name), getattr(serial, name)
            assert torch.equal(a.youngs_modulus, b.youngs_modulus)
            assert torch.equal(a.strain, b.strain)
        units = fit_normalizer(dm.training_pieces()).state_dict()
        for key, value in fit_normalizer(serial.training_pieces()).state_dict().items():
            assert torch.equal(units[key], value)


@pytest.fixture(scope="module")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 stand-in samples (plumbing only) for the runs that end early."""
    return write_standin_dataset(tmp_path_factory.mktemp("ddp-standin") / "standin.h5", n=24)


def test_torchrun_as_in_the_docs_trains_to_the_end_with_the_progress_bar(standin, tmp_path):
    command = [
        TORCHRUN, "--standalone", "--nnodes", "1", "--nproc-per-node", "2",
        "-m", "microstrain_cli", *_train_args(standin, tmp_path / "runs"),
    ]  # fmt: skip
    result = subprocess.run(
        [str(c) for c in command], cwd=tmp_path, env=_env(), capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    record = json.loads((tmp_path / "runs" / "ddp" / "version_0" / RUN_RECORD).read_text())
    assert record["config"]["trainer"]["world_size"] == 2 and record["epochs"] == 2
    assert record["metrics"]["val"]["n_samples"] == record["metrics"]["test"]["n_samples"] == 3
    assert result.stdout.count("best checkpoint:") == 1


def _start_stalled_run(data: Path, tmp: Path, timeout_s: int) -> subprocess.Popen[str]:
    extra = (
        "--ddp_timeout_s", timeout_s, "--trainer.callbacks+=ddp_recorder.StallRankOne",
        f"--trainer.callbacks.out_dir={tmp / 'marks'}",
    )  # fmt: skip
    return subprocess.Popen(
        [*MICROSTRAIN, *_train_args(data, tmp / "runs", *extra)],
        cwd=tmp, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_for(path: Path, proc: subprocess.Popen[str], within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while not path.exists():
        assert proc.poll() is None, proc.communicate()[1][-4000:]
        assert time.monotonic() < deadline, f"{path.name} did not appear in {within_s} s"
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def test_a_rank_that_stops_answering_ends_the_run_with_one_error_after_the_timeout(
    standin, tmp_path
):
    proc = _start_stalled_run(standin, tmp_path, timeout_s=TIMEOUT_S)
    try:
        _, stderr = proc.communicate(timeout=180)  # fit start (~20 s here), the timeout, teardown
    finally:
        proc.kill()
    assert proc.returncode == 1
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr[-4000:]
    assert "rank 0" in errors[0] and f"longer than {TIMEOUT_S} s (--ddp_timeout_s)" in errors[0]
    stalled = int((tmp_path / "marks" / "rank1.pid").read_text())
    assert not _alive(stalled)  # the launcher ended the rank it started


def test_sigterm_to_the_launcher_ends_every_rank_while_one_waits_in_a_collective(standin, tmp_path):
    proc = _start_stalled_run(standin, tmp_path, timeout_s=300)
    try:
        _wait_for(tmp_path / "marks" / "stalled", proc, within_s=120)
        pids = [int((tmp_path / "marks" / f"rank{r}.pid").read_text()) for r in (0, 1)]
        assert pids[0] == proc.pid
        # let rank 0 reach the collective rank 1 never joins, the case the guard is for (were it
        # not there yet, Lightning's own SIGTERM handler would end the ranks: passes as well)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=20)  # the guard's 3 s grace, then the kill
    finally:
        proc.kill()
    assert proc.returncode != 0
    deadline = time.monotonic() + 5
    while _alive(pids[1]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pids[1])
    assert stderr.count("error:") == 1, stderr[-4000:]


def test_a_missing_data_file_is_one_error_before_any_rank_starts(tmp_path):
    command = [*MICROSTRAIN, *_train_args(tmp_path / "missing.h5", tmp_path / "runs")]
    result = subprocess.run(
        command, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert result.stderr.count("error:") == 1, result.stderr[-4000:]
    assert "missing.h5" in result.stderr
    assert not (tmp_path / "runs").exists()
