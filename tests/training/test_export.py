"""ONNX export of a real (briefly trained) checkpoint: parity, card, refusal, CLI errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import pytorch_lightning as pl
import torch

from microstrain.app import run
from microstrain.conventions import CARD_FILE, MODEL_FILE, ONNX_INPUT, ONNX_OUTPUT
from microstrain.errors import MicrostrainError
from microstrain.files import sha256_of
from microstrain_cli import build_app
from training import export as export_module
from training.data import StrainDataModule, read_dataset, split_indices
from training.export import ExportConfig, ParityError, export_checkpoint
from training.metrics import relative_l2
from training.module import StrainRegressor

ARCH = "course-unet"  # BatchNorm, pooling, bilinear upsampling, skips: all must export


@pytest.fixture(scope="module")
def checkpoint(standin_h5: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A course-unet trained for a few steps on the stand-in data, through the training API."""
    pl.seed_everything(0, verbose=False)
    directory = tmp_path_factory.mktemp("ckpt")
    data = StrainDataModule(path=str(standin_h5), batch_size=16)
    model = StrainRegressor(arch=ARCH)
    trainer = pl.Trainer(
        max_steps=4,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=directory,
    )
    trainer.fit(model, data)
    path = directory / "model.ckpt"
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def exported(checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("models") / "small"
    export_checkpoint(checkpoint, out, version="test-1")
    return out


def _card(model_dir: Path) -> dict:
    return json.loads((model_dir / CARD_FILE).read_text())


def _held_out(card: dict, standin_h5: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    data = read_dataset(standin_h5)
    td = card["training_data"]
    _, val, test = split_indices(td["n_total"], td["val_fraction"], td["test_fraction"], 0)
    idx = np.sort(val if split == "val" else test)
    return data["E"][idx], data["strain"][idx]


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 3, 7, 64, 129])
def test_onnxruntime_matches_pytorch_at_any_batch_size(exported, checkpoint, batch):
    torch_model = StrainRegressor.load_from_checkpoint(checkpoint).physical_model()
    rng = np.random.default_rng(batch)
    e = np.where(rng.random((batch, 1, 32, 32)) < 0.35, 85_000.0, 3_000.0).astype(np.float32)
    with torch.no_grad():
        expected = torch_model(torch.from_numpy(e)).numpy()  # [batch, 3, 32, 32]
    session = ort.InferenceSession(str(exported / MODEL_FILE), providers=["CPUExecutionProvider"])
    (got,) = session.run([ONNX_OUTPUT], {ONNX_INPUT: e})
    assert got.shape == (batch, 3, 32, 32) and got.dtype == np.float32
    assert np.abs(got - expected).max() / np.abs(expected).max() < 1e-5


@pytest.mark.slow
def test_graph_contract_and_checker(exported):
    model = onnx.load(str(exported / MODEL_FILE))
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == [ONNX_INPUT]
    assert [o.name for o in model.graph.output] == [ONNX_OUTPUT]
    batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.dim_value  # dynamic batch axis
    # eval form: running statistics as constants, no batch-statistics outputs (a BatchNorm before
    # a zero-padded conv, as in the course networks, cannot be folded into it exactly)
    for node in model.graph.node:
        if node.op_type == "BatchNormalization":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            assert len(node.output) == 1 and attrs.get("training_mode", 0) == 0


@pytest.mark.slow
def test_card_records_what_the_spec_asks(exported, standin_h5):
    card = _card(exported)
    assert card["onnx"]["sha256"] == sha256_of(exported / MODEL_FILE)
    assert card["onnx"]["parity_batch_sizes"] == [1, 7, 64]
    assert 0 <= card["onnx"]["parity_max_rel_error"] <= 1e-5
    assert card["name"] == "small" and card["version"] == "test-1"
    assert card["architecture"]["name"] == ARCH and card["architecture"]["parameters"] == 94_978
    td = card["training_data"]
    assert td["file"] == standin_h5.name and td["sha256"] == sha256_of(standin_h5)
    low, high = td["fiber_fraction_range"]
    assert 0 < low <= td["fiber_fraction_mean"] <= high < 1
    assert card["training"]["train_seconds"] > 0 and card["training"]["hardware"]
    assert set(card["normalization"]) >= {"input", "output"}
    for split in ("val", "test"):
        assert set(card["metrics"][split]) >= {"overall", "eps_xx", "eps_yy", "gamma_xy", "fiber"}
    assert card["input"]["shape"] == ["batch", 1, 32, 32]
    assert card["output"]["channels"] == ["eps_xx", "eps_yy", "gamma_xy"]
    assert "/" not in json.dumps(card["training"]["config"]["data"]["path"])  # no machine paths


@pytest.mark.slow
def test_card_metrics_are_the_onnx_models_error_on_the_held_out_split(exported, standin_h5):
    card = _card(exported)
    session = ort.InferenceSession(str(exported / MODEL_FILE), providers=["CPUExecutionProvider"])
    for split in ("val", "test"):
        e, strain = _held_out(card, standin_h5, split)
        (pred,) = session.run([ONNX_OUTPUT], {ONNX_INPUT: e})
        expected = relative_l2(
            torch.from_numpy(pred), torch.from_numpy(strain), torch.from_numpy(e)
        )
        assert card["metrics"][split]["overall"] == pytest.approx(expected["overall"], rel=1e-6)
        assert card["metrics"][split]["n_samples"] == e.shape[0]


@pytest.mark.slow
def test_export_is_refused_when_parity_fails(checkpoint, tmp_path):
    out = tmp_path / "refused"
    with pytest.raises(ParityError, match="refused"):
        export_checkpoint(checkpoint, out, config=ExportConfig(parity_tolerance=0.0))
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no staging directory left behind


@pytest.mark.slow
def test_export_is_refused_when_a_weight_changes_after_export(checkpoint, tmp_path, monkeypatch):
    original = export_module.export_onnx

    def export_then_corrupt(module, path, opset=18):
        exporter = original(module, path, opset)
        with torch.no_grad():  # the graph on disk now differs from the module it is checked against
            next(p for p in module.parameters() if p.dim() == 4).mul_(1.01)
        return exporter

    monkeypatch.setattr(export_module, "export_onnx", export_then_corrupt)
    out = tmp_path / "corrupt"
    with pytest.raises(ParityError):
        export_checkpoint(checkpoint, out)
    assert not out.exists()


@pytest.mark.slow
def test_existing_model_dir_is_kept_unless_forced(exported, checkpoint, tmp_path):
    out = tmp_path / "existing"
    shutil.copytree(exported, out)
    before = sha256_of(out / MODEL_FILE)
    with pytest.raises(MicrostrainError, match="--force"):
        export_checkpoint(checkpoint, out)
    assert sha256_of(out / MODEL_FILE) == before
    (out / "tau.json").write_text("{}")  # a report of the old model must not survive
    export_checkpoint(checkpoint, out, force=True, version="again")
    assert _card(out)["version"] == "again" and not (out / "tau.json").exists()


@pytest.mark.slow
def test_export_refuses_a_different_dataset(checkpoint, tmp_path):
    from conftest import write_standin_dataset

    other = write_standin_dataset(tmp_path / "other.h5", n=48, seed=5)
    with pytest.raises(MicrostrainError, match="not the file this model was trained on"):
        export_checkpoint(checkpoint, tmp_path / "m", dataset=other)
    assert not (tmp_path / "m").exists()


def _cli(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        run(build_app(), argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_export_cli_missing_checkpoint_is_one_line(tmp_path, capsys):
    code, _, err = _cli(["export", str(tmp_path / "no.ckpt"), "-o", str(tmp_path / "m")], capsys)
    assert code == 1 and err.strip().count("\n") == 0 and err.startswith("error: ")
    assert not (tmp_path / "m").exists()


def test_export_cli_rejects_a_file_that_is_not_a_checkpoint(tmp_path, capsys):
    bogus = tmp_path / "bogus.ckpt"
    bogus.write_bytes(b"not a checkpoint")
    code, _, err = _cli(["export", str(bogus), "-o", str(tmp_path / "m")], capsys)
    assert code == 1 and err.startswith("error: ") and err.strip().count("\n") == 0


@pytest.mark.slow
def test_export_and_tau_cli_end_to_end(checkpoint, standin_h5, tmp_path, capsys):
    out = tmp_path / "cli"
    code, stdout, err = _cli(["export", str(checkpoint), "-o", str(out), "--name", "n1"], capsys)
    assert code == 0, err
    assert "relative L2" in stdout and _card(out)["name"] == "n1"
    code, stdout, err = _cli(
        ["tau", str(out), "--dataset", str(standin_h5), "--threads", "1", "--batch-size", "8"],
        capsys,
    )
    assert code == 0, err
    card = _card(out)
    assert card["T_train"] == pytest.approx(card["training"]["train_seconds"])
    assert card["T_simulation"] == pytest.approx(0.004)  # the stand-in file's solve_seconds
    assert "tau =" in stdout and (out / "tau.png").is_file()


@pytest.mark.slow
def test_tau_takes_the_training_time_from_the_checkpoint(exported, checkpoint):
    from training.tau import training_seconds_from_checkpoint

    seconds, hardware = training_seconds_from_checkpoint(checkpoint)
    assert seconds == pytest.approx(_card(exported)["training"]["train_seconds"])
    assert seconds > 0 and hardware.startswith(("CPU", "GPU"))
