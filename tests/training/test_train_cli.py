"""`microstrain train` (LightningCLI) and `microstrain learning-curve` through the real CLI."""

import csv
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from microstrain_cli import build_app
from training.module import CHECKPOINT_KEY, StrainRegressor

REPO = Path(__file__).resolve().parents[2]
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def _train(*args: str):
    result = CliRunner().invoke(build_app(), ["train", *args, *QUIET], catch_exceptions=False)
    return result


def _best_checkpoint(output: str) -> Path:
    match = re.search(r"best checkpoint: (\S+)", output)
    assert match, output
    return Path(match.group(1))


def test_help_is_lightning_clis():
    out = subprocess.run(
        [sys.executable, "-m", "microstrain_cli", "train", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=True,
    ).stdout
    for option in (
        "--config",
        "--trainer.max_epochs",
        "--data.path",
        "--model.arch",
        "--ckpt_path",
    ):
        assert option in out


def test_smoke_run_with_config_and_overrides_on_real_data(tmp_path, pixel_h5):
    runs = tmp_path / "runs"
    result = _train(
        "--config", str(REPO / "configs" / "course-unet.yaml"),
        "--data.path", str(pixel_h5),
        "--trainer.max_epochs", "2",
        "--data.batch_size", "16",
        "--runs_dir", str(runs),
        "--name", "smoke",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    best = _best_checkpoint(result.output)
    assert best.is_file() and best.parent.parent.parent == runs / "smoke"
    resolved = yaml.safe_load((best.parent.parent / "config.yaml").read_text())
    assert resolved["model"]["arch"] == "course-unet"
    assert resolved["trainer"]["max_epochs"] == 2
    assert resolved["data"]["batch_size"] == 16
    assert list(best.parent.parent.glob("events.out.tfevents.*"))
    ckpt = torch.load(best, weights_only=False)
    extras = ckpt[CHECKPOINT_KEY]
    assert set(extras["test_metrics"]) >= {"overall", "eps_xx", "fiber", "matrix"}
    assert extras["dataset"]["discretization"] == {"mode": "pixel", "k": 1}
    assert "test (best checkpoint): overall" in result.output

    # resume: the epoch counter and the accumulated training time continue
    resumed = _train(
        "--config", str(REPO / "configs" / "course-unet.yaml"),
        "--data.path", str(pixel_h5),
        "--trainer.max_epochs", "3",
        "--data.batch_size", "16",
        "--runs_dir", str(runs),
        "--name", "smoke",
        "--ckpt_path", str(best.parent / "last.ckpt"),
    )  # fmt: skip
    assert resumed.exit_code == 0, resumed.output
    last = torch.load(_best_checkpoint(resumed.output).parent / "last.ckpt", weights_only=False)
    first_last = torch.load(best.parent / "last.ckpt", weights_only=False)
    assert last["epoch"] == first_last["epoch"] + 1  # one more epoch, not three from scratch
    assert last["global_step"] == 3 * first_last["global_step"] // 2
    assert last[CHECKPOINT_KEY]["train_seconds"] > extras["train_seconds"]


def test_fast_dev_run(tmp_path, standin_h5, monkeypatch):
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    result = _train(
        "--model.arch", "res-unet",
        "--data.path", str(standin_h5),
        "--trainer.fast_dev_run", "true",
        "--runs_dir", str(tmp_path),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert list(workdir.iterdir()) == []  # nothing lands in the current directory


@pytest.mark.slow
def test_overfit_one_learns_one_sample_by_heart(tmp_path, pixel_h5):
    result = _train(
        "--config", str(REPO / "configs" / "course-cnn.yaml"),
        "--data.path", str(pixel_h5),
        "--overfit-one",
        "--model.lr", "3e-3",
        "--trainer.max_epochs", "600",
        "--runs_dir", str(tmp_path),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    match = re.search(
        r"final loss (\S+) .*relative L2 on the sample: overall (\S+),", result.output
    )
    assert match, result.output
    assert float(match.group(1)) < 2e-4
    assert float(match.group(2)) < 0.03


def test_missing_dataset_is_one_error_line(tmp_path):
    cmd = [sys.executable, "-m", "microstrain_cli", "train", "--data.path", str(tmp_path / "no.h5")]
    cmd += ["--runs_dir", str(tmp_path), *QUIET]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == f"error: dataset not found: {tmp_path / 'no.h5'}"


def test_learning_curve_writes_table_and_plot(tmp_path, pixel_h5):
    out = tmp_path / "lc"
    result = CliRunner().invoke(
        build_app(),
        ["learning-curve", "--data", str(pixel_h5), "--sizes", "2,8", "--epochs", "2",
         "--min-steps", "4", "--weight-decay", "1e-3", "-o", str(out)],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((out / "learning_curve.csv").open()))
    assert [(r["m"], float(r["weight_decay"])) for r in rows] == [
        ("2", 0.0), ("2", 1e-3), ("8", 0.0), ("8", 1e-3),
    ]  # fmt: skip
    assert all(0 < float(r["val_rel_l2"]) < 10 for r in rows)
    assert (out / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    assert "| m | weight decay |" in (out / "learning_curve.md").read_text()


def test_a_checkpoint_records_what_the_export_needs(tmp_path, standin_h5):
    result = _train(
        "--model.arch", "course-cnn",
        "--data.path", str(standin_h5),
        "--trainer.max_epochs", "1",
        "--runs_dir", str(tmp_path),
    )  # fmt: skip
    model = StrainRegressor.load_from_checkpoint(_best_checkpoint(result.output))
    assert model.dataset_summary["n_total"] == 48
    assert model.hardware and model.best_val_metrics
    assert model.physical_model()(torch.full((2, 1, 32, 32), 3000.0)).shape == (2, 3, 32, 32)
