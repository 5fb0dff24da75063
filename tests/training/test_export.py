"""Export of a real (briefly trained) run: the checkpoint and its run record are all it reads.

The run is trained through `microstrain train` on a stand-in file that is then moved away, so
every export here proves that the dataset is not needed. Checked: the ONNX contract and parity,
the card's metrics and times taken from the record, τ, refusals, and reproducible re-export.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from support.cli import invoke
from support.datasets import standin_moduli, standin_strain

import training.export as export_module
from microstrain.breakeven import breakeven
from microstrain.conventions import CARD_FILE, MODEL_FILE, ONNX_INPUT, ONNX_OUTPUT
from microstrain.dataset import load_samples, write_dataset
from microstrain.errors import MicrostrainError
from microstrain.files import sha256_of
from microstrain.measures import ErrorAccumulator
from microstrain.surrogate import SurrogateModel
from training.export import ExportConfig, export_checkpoint
from training.module import StrainRegressor
from training.onnx_graph import PARITY_TOLERANCE, ParityError, parity_inputs
from training.run_record import RUN_RECORD

ARCH = "course-unet"  # BatchNorm, pooling, bilinear upsampling, skips: all must export
N, SOLVE_SECONDS, WALL_SECONDS = 48, 5.0, 30.0
# a quick T_surrogate for the tests that do not look at it
FAST = ExportConfig(timing_batch_size=8, timing_budget_s=0.05, timing_threads=(1,))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Train course-unet for 2 epochs with `microstrain train`, then move the dataset away."""
    root = tmp_path_factory.mktemp("run")
    e = standin_moduli(N, seed=3)
    data = write_dataset(
        root / "train.h5",
        e,
        standin_strain(e),
        solve_seconds=np.full(N, SOLVE_SECONDS),
        wall_seconds=WALL_SECONDS,
    )
    digest = sha256_of(data)
    result = invoke(
        "train", "--model.arch", ARCH, "--data.path", data, "--data.batch_size", "16",
        "--trainer.max_epochs", "2", "--trainer.logger", "false", "--images.n_samples", "0",
        "--trainer.enable_progress_bar", "false", "--runs_dir", root / "runs",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    best = Path(result.stdout.split("best checkpoint: ")[1].split()[0])
    moved = data.rename(tmp_path_factory.mktemp("elsewhere") / "moved.h5")
    run_dir = root / "runs" / ARCH
    return {
        "best": best,
        "record": json.loads((run_dir / RUN_RECORD).read_text()),
        "run_dir": run_dir,
        "data": moved,  # for the tests that check the record against the data
        "sha256": digest,
    }


@pytest.fixture(scope="module")
def exported(run: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real command, with its default parity sizes and timing."""
    out = tmp_path_factory.mktemp("models") / "small"
    result = invoke("export", run["best"], "-o", out, "--version", "test-1")
    assert result.exit_code == 0, result.output
    assert "val: strain " in result.stdout and "tau = " in result.stdout
    return out


def _card(model_dir: Path) -> dict:
    return json.loads((model_dir / CARD_FILE).read_text())


@pytest.mark.slow
@pytest.mark.parametrize("batch", [1, 3, 7, 64, 129])
def test_onnxruntime_matches_pytorch_at_any_batch_size(exported, run, batch):
    torch_model = StrainRegressor.load_from_checkpoint(run["best"]).physical_model()
    e = parity_inputs(batch, seed=100 + batch)
    with torch.no_grad():
        expected = torch_model.strain(torch.from_numpy(e)).numpy()  # [batch, 3, 32, 32]
    got = SurrogateModel.load(exported).predict(e)
    assert got.shape == (batch, 3, 32, 32) and got.dtype == np.float32
    assert np.abs(got - expected).max() / np.abs(expected).max() <= PARITY_TOLERANCE


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
    # no exporter debug metadata: no stack traces with the exporting machine's paths
    assert not any(node.metadata_props for node in model.graph.node)
    repository = str(Path(__file__).resolve().parents[2]).encode()
    assert repository not in (exported / MODEL_FILE).read_bytes()


@pytest.mark.slow
def test_card_takes_data_split_and_metrics_from_the_run_record(exported, run):
    card, record = _card(exported), run["record"]
    assert [p.name for p in exported.parent.iterdir()] == ["small"]  # no staging or scratch left
    assert card["onnx"]["sha256"] == sha256_of(exported / MODEL_FILE)
    assert card["onnx"]["parity_batch_sizes"] == [1, 7, 64]
    assert 0 <= card["onnx"]["parity_max_rel_error"] <= PARITY_TOLERANCE
    assert card["name"] == "small" and card["version"] == "test-1"
    assert card["architecture"]["name"] == ARCH and card["architecture"]["parameters"] == 94_978
    td = card["training_data"]
    assert td["file"] == "train.h5" and td["sha256"] == run["sha256"]
    assert (td["n_total"], td["n_train"], td["n_val"], td["n_test"]) == (48, 38, 5, 5)
    low, high = td["fiber_fraction_range"]
    assert 0 < low <= td["fiber_fraction_mean"] <= high < 1
    assert card["metrics"] == record["metrics"] and set(card["metrics"]) == {"val", "test"}
    assert card["training"]["best_val_metrics"] == record["metrics"]["val"]
    assert card["training"]["train_seconds"] == record["T_train"] > 0
    assert card["training"]["init_from_seconds"] == record["T_train_init_from"] == 0.0
    assert card["training"]["epochs"] == 2 and card["training"]["checkpoint"] == run["best"].name
    assert set(card["normalization"]) >= {"input", "output"}
    assert card["input"]["shape"] == ["batch", 1, 32, 32]
    assert card["output"]["channels"] == ["eps_xx", "eps_yy", "gamma_xy"]
    assert "/" not in card["training"]["config"]["data"]["path"]  # no machine paths


@pytest.mark.slow
def test_card_holds_the_recorded_times_and_tau(exported, run):
    card = _card(exported)
    assert card["T_data"] == WALL_SECONDS  # the dataset's wall-time attribute, via the record
    assert card["T_simulation"] == SOLVE_SECONDS  # median solve time
    assert card["T_train"] == run["record"]["T_train"]
    assert card["T_surrogate"] > 0 and card["T_surrogate_batched"] > 0
    assert card["tau"] == breakeven(
        card["T_data"], card["T_train"], card["T_simulation"], card["T_surrogate"]
    )
    assert card["tau_batched"] == breakeven(
        card["T_data"], card["T_train"], card["T_simulation"], card["T_surrogate_batched"]
    )
    hardware = card["timing_hardware"]
    assert set(hardware) == {"T_data", "T_train", "T_simulation", "T_surrogate"}
    assert hardware["T_train"] == run["record"]["T_train_hardware"]
    assert "wall_seconds" in card["timing_sources"]["T_data"]


@pytest.mark.slow
def test_recorded_metrics_are_the_exported_models_error_on_the_recorded_split(exported, run):
    """The record's split indices pick the held-out samples, and its metrics (PyTorch, when
    training ended) are what the ONNX model scores on them, within the parity tolerance."""
    model = SurrogateModel.load(exported)
    for split in ("val", "test"):
        indices = np.asarray(run["record"]["split"][f"{split}_indices"])
        samples = load_samples(run["data"], indices=indices)
        pred = model.predict(samples.youngs_modulus)
        scores = ErrorAccumulator("stress")  # the SPEC §9 measures, in the core
        scores.update(samples.youngs_modulus, pred, samples.strain)
        got = scores.compute_flat()
        recorded = _card(exported)["metrics"][split]
        assert recorded["n_samples"] == len(indices) == 5
        strain_measures = [k for k in recorded if k.startswith("strain_relative_l2")]
        assert len(strain_measures) == 6  # all channels, each channel, each phase
        for name in strain_measures:
            assert recorded[name] == pytest.approx(got[name], rel=1e-5), name


@pytest.mark.slow
def test_export_never_touches_the_run(exported, run):
    for entry in run["record"]["checkpoints"].values():
        assert sha256_of(run["run_dir"] / entry["file"]) == entry["sha256"]
    assert json.loads((run["run_dir"] / RUN_RECORD).read_text()) == run["record"]


@pytest.mark.slow
def test_re_export_gives_the_same_predictions(exported, run, tmp_path):
    again = tmp_path / "again"
    export_checkpoint(run["best"], again, config=FAST)
    e = parity_inputs(16, seed=9)
    first = SurrogateModel.load(exported, intra_op_threads=1).predict(e)
    second = SurrogateModel.load(again, intra_op_threads=1).predict(e)
    np.testing.assert_array_equal(second, first)


@pytest.mark.slow
def test_export_is_refused_when_parity_fails(run, tmp_path):
    out = tmp_path / "refused"
    config = ExportConfig(parity_tolerance=0.0, timing_budget_s=0.05)
    with pytest.raises(ParityError, match="refused"):
        export_checkpoint(run["best"], out, config=config)
    assert list(tmp_path.iterdir()) == []  # no model, no staging directory left behind


@pytest.mark.slow
def test_export_is_refused_when_a_weight_changes_after_export(run, tmp_path, monkeypatch):
    original = export_module.export_onnx

    def export_then_corrupt(module, path, opset=20):
        exporter = original(module, path, opset)
        with torch.no_grad():  # the graph on disk now differs from the module it is checked against
            next(p for p in module.parameters() if p.dim() == 4).mul_(1.01)
        return exporter

    monkeypatch.setattr(export_module, "export_onnx", export_then_corrupt)
    out = tmp_path / "corrupt"
    with pytest.raises(ParityError):
        export_checkpoint(run["best"], out, config=FAST)
    assert not out.exists()


@pytest.mark.slow
def test_existing_model_dir_is_kept_unless_forced(exported, run, tmp_path):
    out = tmp_path / "existing"
    shutil.copytree(exported, out)
    before = sha256_of(out / MODEL_FILE)
    with pytest.raises(MicrostrainError, match="--force"):
        export_checkpoint(run["best"], out, config=FAST)
    assert sha256_of(out / MODEL_FILE) == before
    (out / "tau.json").write_text("{}")  # a report of the old model must not survive
    export_checkpoint(run["best"], out, force=True, version="again", config=FAST)
    assert _card(out)["version"] == "again" and not (out / "tau.json").exists()


def test_export_refuses_a_checkpoint_the_record_does_not_describe(run, tmp_path):
    alone = tmp_path / "alone" / "checkpoints"
    alone.mkdir(parents=True)
    shutil.copy(run["best"], alone / "best.ckpt")
    with pytest.raises(MicrostrainError, match=r"no run record run\.json"):
        export_checkpoint(alone / "best.ckpt", tmp_path / "m", config=FAST)
    shutil.copy(run["run_dir"] / RUN_RECORD, alone / RUN_RECORD)
    with (alone / "best.ckpt").open("ab") as fh:
        fh.write(b"\0")  # a changed file: the record's metrics are not its metrics
    with pytest.raises(MicrostrainError, match="a checkpoint of that run, not the best one"):
        export_checkpoint(alone / "best.ckpt", tmp_path / "m", config=FAST)
    assert not (tmp_path / "m").exists()


def test_export_cli_missing_checkpoint_is_one_line(tmp_path):
    result = invoke("export", tmp_path / "no.ckpt", "-o", tmp_path / "m")
    assert result.exit_code == 1 and result.stderr.startswith("error: ")
    assert result.stderr.strip().count("\n") == 0
    assert not (tmp_path / "m").exists()


def test_export_cli_rejects_a_file_that_is_not_a_checkpoint(tmp_path):
    bogus = tmp_path / "bogus.ckpt"
    bogus.write_bytes(b"not a checkpoint")
    result = invoke("export", bogus, "-o", tmp_path / "m")
    assert result.exit_code == 1 and result.stderr.startswith("error: ")
    assert result.stderr.strip().count("\n") == 0


@pytest.mark.slow
def test_judged_files_in_the_card_equal_what_evaluate_reports(run, tmp_path):
    e = standin_moduli(12, seed=21)
    family = write_dataset(tmp_path / "sparse.h5", e, standin_strain(e))
    out = tmp_path / "judged"
    result = invoke("export", run["best"], "-o", out, "--judge-on", family)
    assert result.exit_code == 0, result.output
    assert "sparse: strain" in result.stdout
    judged = _card(out)["evaluation"]["sparse"]
    assert judged["file"] == "sparse.h5" and judged["sha256"] == sha256_of(family)
    report = tmp_path / "eval.json"
    assert invoke("evaluate", out, family, "--json", report).exit_code == 0
    evaluated = json.loads(report.read_text())["files"][str(family)]
    for key, value in evaluated.items():
        assert judged[key] == value, key
