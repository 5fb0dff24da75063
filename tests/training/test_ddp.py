"""DDP on the CPU: the issue's command (2 gloo processes) on a directory of two shards made by
`generate --shard 0/2` and `--shard 1/2` (pixel mode, 24 samples) trains to the end; each
training sample is seen once per epoch across the ranks; the recorded metrics are those of every
validation and test sample; rank 0 alone writes; and the checkpoint exports.

The run is a real `microstrain train` subprocess: Lightning's launcher starts the second rank by
running the same command again. A small callback (``ddp_recorder``) writes what each rank saw.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from ddp_recorder import sample_key
from support.cli import MICROSTRAIN, invoke

from microstrain.dataset import open_union
from microstrain.files import sha256_of
from training.data import StrainDataModule
from training.export import ExportConfig, export_checkpoint
from training.fit import load_datamodule
from training.metrics import relative_l2
from training.module import StrainRegressor
from training.run_record import RUN_RECORD

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
N = 24
FAST = ExportConfig(timing_batch_size=8, timing_budget_s=0.05, timing_threads=(1,))


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
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(HERE), str(REPO / "tests"), *filter(None, [env.get("PYTHONPATH")])]
    )
    command = [
        *MICROSTRAIN, "train",
        "--config", REPO / "configs" / "course-cnn.yaml",
        "--data.path", data / "shards",
        "--trainer.max_epochs", "2",
        "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
        "--data.batch_size", "4",
        "--runs_dir", tmp / "runs", "--name", "ddp",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--trainer.callbacks+=ddp_recorder.SeenSamples",
        f"--trainer.callbacks.out_dir={tmp / 'seen'}",
    ]  # fmt: skip
    result = subprocess.run(
        [str(c) for c in command], cwd=tmp, env=env, capture_output=True, text=True, timeout=500
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
    # 20 training samples: 10 per rank, batches of 4, 4, 2 -> 3 optimizer steps per epoch
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
    assert len(expected) == len(train) == 20  # every training sample has its own key
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
        return relative_l2(model.predict_strain(e), s, fiber)


def test_the_recorded_metrics_are_those_of_every_validation_and_test_sample(run):
    record = run["record"]
    best = run["run_dir"] / record["checkpoints"]["best"]["file"]
    model = StrainRegressor.load_from_checkpoint(best, map_location="cpu").eval()
    datamodule = load_datamodule(str(best))
    datamodule.setup("test")
    assert datamodule.split.val.tolist() == record["split"]["val_indices"]
    # each rank held one of the two validation samples: a rank's own number would differ
    for name, dataset in (("val", datamodule.val_set), ("test", datamodule.test_set)):
        recorded = record["metrics"][name]
        assert recorded["n_samples"] == len(dataset) == 2
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
    assert card["training_data"]["n_train"] == 20 and card["T_train"] == record["T_train"]


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
        for key, value in serial.normalizer.state_dict().items():
            assert torch.equal(dm.normalizer.state_dict()[key], value)
