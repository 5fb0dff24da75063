"""`microstrain train` (LightningCLI) and `microstrain learning-curve` through the real CLI.

Plumbing only, so the data are the stand-in file of ``support.datasets``, not an FE generation.
"""

import csv
import json
import math
import re
from pathlib import Path

import pytest
import torch
import yaml
from support.cli import invoke
from support.datasets import write_standin_dataset

from microstrain.files import sha256_of
from training.measures import LOGGED_MEASURES
from training.module import CHECKPOINT_KEY, StrainRegressor
from training.run_record import RUN_RECORD

REPO = Path(__file__).resolve().parents[2]
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def _train(*args: object):
    return invoke("train", *args, *QUIET)


def _best_checkpoint(output: str) -> Path:
    match = re.search(r"best checkpoint: (\S+)", output)
    assert match, output
    return Path(match.group(1))


def test_help_is_lightning_clis():
    result = invoke("train", "--help")
    assert result.exit_code == 0, result.output
    for option in (
        "--config",
        "--trainer.max_epochs",
        "--data.path",
        "--model.arch",
        "--ckpt_path",
    ):
        assert option in result.stdout


def test_run_writes_checkpoints_and_one_run_record_then_resumes(tmp_path, standin_h5):
    runs = tmp_path / "runs"
    common = [
        "--config", REPO / "configs" / "course-unet.yaml",
        "--data.path", standin_h5,
        "--data.batch_size", "16",
        "--runs_dir", runs,
        "--name", "smoke",
        "--images.n_samples", "0",
    ]  # fmt: skip
    result = _train(*common, "--trainer.max_epochs", "2")
    assert result.exit_code == 0, result.output
    best = _best_checkpoint(result.stdout)
    run_dir = runs / "smoke" / "version_0"
    assert best.is_file() and best.parent == run_dir / "checkpoints"
    resolved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert resolved["model"]["arch"] == "course-unet"
    assert resolved["trainer"]["max_epochs"] == 2
    assert resolved["data"]["batch_size"] == 16
    assert list(run_dir.glob("events.out.tfevents.*"))
    assert f"run record: {run_dir / RUN_RECORD}" in result.stdout
    assert "test (best checkpoint): strain_relative_l2" in result.stdout

    record = json.loads((run_dir / RUN_RECORD).read_text())
    # the checkpoints are exactly the files the record hashed when fitting ended
    for entry in record["checkpoints"].values():
        assert sha256_of(run_dir / entry["file"]) == entry["sha256"]
    assert record["checkpoints"]["best"]["file"] == f"checkpoints/{best.name}"
    assert record["dataset"]["file"] == standin_h5.name
    assert record["dataset"]["sha256"] == sha256_of(standin_h5)
    assert record["dataset"]["t_simulation"] == 0.004  # the stand-in's solve_seconds
    split = record["split"]
    assert (split["n_total"], split["n_train"], split["n_val"], split["n_test"]) == (48, 38, 5, 5)
    assert len(split["val_indices"]) == 5 and len(split["test_indices"]) == 5
    assert not set(split["val_indices"]) & set(split["test_indices"])
    assert record["epochs"] == 2 and record["global_step"] == 2 * 3  # 38 samples, batch 16
    assert record["T_train"] > 0 and record["T_train_hardware"].startswith("CPU")
    for name in ("val", "test"):
        metrics = record["metrics"][name]
        assert set(metrics) >= set(LOGGED_MEASURES)
        assert metrics["n_samples"] == 5
    assert record["config"]["model"]["arch"] == "course-unet"
    assert record["config"]["data"]["batch_size"] == 16
    ckpt = torch.load(best, weights_only=False)
    assert "test_metrics" not in ckpt[CHECKPOINT_KEY]  # test results live in the record only
    assert ckpt[CHECKPOINT_KEY]["val_metrics"]["strain_relative_l2"] == pytest.approx(
        record["metrics"]["val"]["strain_relative_l2"], rel=1e-6
    )

    # resume: the epoch counter and the accumulated training time continue in a new run dir
    first_last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    resumed = _train(
        *common, "--trainer.max_epochs", "3", "--ckpt_path", run_dir / "checkpoints" / "last.ckpt"
    )
    assert resumed.exit_code == 0, resumed.output
    second = runs / "smoke" / "version_1"
    last = torch.load(second / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["epoch"] == first_last["epoch"] + 1  # one more epoch, not three from scratch
    assert last["global_step"] == 3 * first_last["global_step"] // 2
    resumed_record = json.loads((second / RUN_RECORD).read_text())
    assert resumed_record["epochs"] == 3
    assert resumed_record["T_train"] > record["T_train"]  # summed over both runs
    assert (
        sha256_of(run_dir / "checkpoints" / "last.ckpt") == record["checkpoints"]["last"]["sha256"]
    )


def test_fast_dev_run_writes_nothing_to_the_current_directory(tmp_path, standin_h5, monkeypatch):
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    result = _train(
        "--model.arch", "res-unet",
        "--data.path", standin_h5,
        "--trainer.fast_dev_run", "true",
        "--runs_dir", tmp_path,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert list(workdir.iterdir()) == []
    assert not list(tmp_path.rglob(RUN_RECORD))  # no checkpoint, nothing to record


@pytest.mark.slow
def test_overfit_one_learns_one_sample_by_heart(tmp_path, standin_h5):
    result = _train(
        "--config", REPO / "configs" / "course-cnn.yaml",
        "--data.path", standin_h5,
        "--overfit-one",
        "--model.lr", "3e-3",
        "--trainer.max_epochs", "600",
        "--runs_dir", tmp_path,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    match = re.search(
        r"final loss (\S+) .*errors on the sample: strain_relative_l2 (\S+),", result.stdout
    )
    assert match, result.output
    # EarlyStopping stops at the threshold OVERFIT_LOSS = 1e-4 of normalized MSE
    assert float(match.group(1)) < 1e-4
    # normalized MSE < 1e-4 over 3 channels bounds each channel's by 3e-4; the normalizer's std
    # of the one sample is below its RMS, so its strain error is below sqrt(3e-4) ≈ 0.017
    assert float(match.group(2)) < 0.017
    record = json.loads(next(tmp_path.rglob(RUN_RECORD)).read_text())
    assert record["split"]["n_train"] == 1 and "test" not in record["metrics"]


def test_missing_dataset_is_one_error_line(tmp_path):
    result = _train("--data.path", tmp_path / "no.h5", "--runs_dir", tmp_path)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: dataset file not found: {tmp_path / 'no.h5'}"
    )
    assert not list(tmp_path.rglob(RUN_RECORD))


def test_learning_curve_writes_table_and_plot(tmp_path, standin_h5):
    out = tmp_path / "lc"
    result = invoke(
        "learning-curve", "--data", standin_h5, "--sizes", "2,8", "--epochs", "2",
        "--min-steps", "4", "--weight-decay", "1e-3", "-o", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((out / "learning_curve.csv").open()))
    assert [(r["m"], float(r["weight_decay"])) for r in rows] == [
        ("2", 0.0), ("2", 1e-3), ("8", 0.0), ("8", 1e-3),
    ]  # fmt: skip
    table = (out / "learning_curve.md").read_text()
    assert "| m | weight decay |" in table
    for r in rows:  # the table shows the CSV's numbers, each a finite SPEC §9 strain error
        assert math.isfinite(float(r["val_rel_l2"])) and math.isfinite(float(r["train_rel_l2"]))
        assert f"| {float(r['train_rel_l2']):.4f} | {float(r['val_rel_l2']):.4f} |" in table
    assert (out / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_a_checkpoint_restores_the_physical_model(tmp_path, standin_h5):
    result = _train(
        "--model.arch", "course-cnn",
        "--data.path", standin_h5,
        "--trainer.max_epochs", "1",
        "--trainer.logger", "false",
        "--runs_dir", tmp_path,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    model = StrainRegressor.load_from_checkpoint(_best_checkpoint(result.stdout))
    assert model.hardware and model.best_val_metrics and model.train_seconds > 0
    assert model.physical_model().strain(torch.full((2, 1, 32, 32), 3000.0)).shape == (2, 3, 32, 32)
    assert (tmp_path / "course-cnn" / RUN_RECORD).is_file()  # no logger: the root dir is the run


def test_a_list_of_files_streamed_from_disk_trains_and_is_recorded_file_by_file(tmp_path):
    files = [
        write_standin_dataset(tmp_path / "b.h5", n=20, seed=2),
        write_standin_dataset(tmp_path / "a.h5", n=28, seed=1),
    ]
    result = _train(
        "--model.arch", "course-cnn",
        "--data.path", f"[{files[0]}, {files[1]}]",
        "--data.lazy", "true",
        "--data.batch_size", "16",
        "--trainer.max_epochs", "1",
        "--trainer.logger", "false",
        "--images.n_samples", "0",
        "--runs_dir", tmp_path / "runs",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    record = json.loads(next((tmp_path / "runs").rglob(RUN_RECORD)).read_text())
    assert record["reading"] == "streamed"
    assert record["dataset"]["file"] == "a.h5, b.h5 (2 files)"  # in name order
    assert [(f["file"], f["sha256"]) for f in record["dataset"]["files"]] == [
        (p.name, sha256_of(p)) for p in sorted(files)
    ]
    assert record["split"]["n_total"] == 48 and record["global_step"] == 3  # 38 samples, batch 16
    assert record["metrics"]["test"]["n_samples"] == 5


def test_files_that_disagree_are_one_error_line_naming_the_odd_file(tmp_path):
    write_standin_dataset(tmp_path / "a.h5", n=8)
    write_standin_dataset(tmp_path / "b.h5", n=8, plane="strain")
    result = _train("--data.path", tmp_path, "--runs_dir", tmp_path / "runs")
    assert result.exit_code == 1
    last = result.stderr.strip().splitlines()[-1]
    odd, first = tmp_path / "b.h5", tmp_path / "a.h5"
    assert last.startswith(f"error: {odd} does not match {first}: plane 'strain' vs 'stress'")
