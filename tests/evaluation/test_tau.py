"""`microstrain tau` (SPEC §6): the report beside the card, from the card's times by default,
with T_data/T_simulation from a dataset or T_surrogate measured now on request; never touching
the card or the model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.cli import invoke
from support.datasets import write_standin_dataset
from support.models import make_model_dir

from evaluation.tau import TAU_JSON, TAU_MD, TAU_PNG, run_tau
from microstrain.breakeven import breakeven, format_tau
from microstrain.conventions import CARD_FILE, MODEL_FILE
from microstrain.hardware import cpu_description

N_STANDIN = 48  # samples of the stand-in file, each recorded with solve_seconds = 0.004 s
STANDIN_SOLVE_SECONDS = 0.004


@pytest.fixture
def model(tmp_path: Path) -> Path:
    """Fixture graph and a card with T_data 100, T_train 50, T_sim 0.5, T_surr 0.001/0.0002 s."""
    directory = make_model_dir(tmp_path / "m")
    card = json.loads((directory / CARD_FILE).read_text())
    # the SPEC §9 measures of the test split; a pooled figure beside them is not reported
    card["metrics"] = {
        "test": {"strain_relative_l2": 0.031, "energy_norm_error": 0.025, "overall": 0.9}
    }
    (directory / CARD_FILE).write_text(json.dumps(card, indent=2))
    return directory


@pytest.fixture(scope="module")
def standin_h5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_standin_dataset(tmp_path_factory.mktemp("tau") / "train.h5", n=N_STANDIN)


def card_of(model: Path) -> dict:
    return json.loads((model / CARD_FILE).read_text())


@pytest.mark.parametrize(
    "extra",
    [
        [],
        ["--dataset", "{data}"],
        ["--measure", "--threads", "1", "--batch-size", "8", "--fe-samples", "1"],
    ],
    ids=["card", "dataset", "measure"],
)
def test_tau_never_rewrites_the_card_or_the_model(model, standin_h5, extra):
    before = {name: (model / name).read_bytes() for name in (CARD_FILE, MODEL_FILE)}
    result = invoke("tau", model, *(a.format(data=standin_h5) for a in extra))
    assert result.exit_code == 0, result.output
    for name, content in before.items():
        assert (model / name).read_bytes() == content, name
    assert sorted(p.name for p in model.iterdir()) == sorted(
        [CARD_FILE, MODEL_FILE, TAU_JSON, TAU_MD, TAU_PNG]
    )  # the three reports, no temporary files


def test_by_default_the_report_holds_the_cards_times_and_tau(model):
    result = invoke("tau", model)
    assert result.exit_code == 0, result.output
    card, report = card_of(model), json.loads((model / TAU_JSON).read_text())
    for key in ("T_data", "T_train", "T_simulation", "T_surrogate", "T_surrogate_batched"):
        assert report[key] == card[key], key
    assert report["tau"] == card["tau"] and report["tau_batched"] == card["tau_batched"]
    assert report["timing_hardware"] == card["timing_hardware"]
    assert set(report["sources"].values()) == {"card.json (written by export)"}
    assert report["surrogate_timing"] is None and report["simulation_timing"] is None
    assert report["dataset"] == {}
    assert report["speedup"] == card["T_simulation"] / card["T_surrogate"]
    assert f"tau = {format_tau(card['tau'])} (batch 1)" in result.stdout
    text = (model / TAU_MD).read_text()
    assert format_tau(card["tau"]) in text and format_tau(card["tau_batched"]) in text
    # the held-out §9 measures stand next to the speed-up, not a pooled figure
    assert "| strain_relative_l2 | energy_norm_error |" in text
    assert "| test | 3.10% | 2.50% |" in text and "90.00%" not in text
    assert "held-out strain error 3.10%" in result.stdout
    assert (model / TAU_PNG).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_cards_timing_sources_are_named(tmp_path):
    sources = {"T_data": "train.h5: attribute 'wall_seconds'", "T_surrogate": "onnxruntime"}
    report, _ = run_tau(make_model_dir(tmp_path / "m", timing_sources=sources))
    assert report.sources["T_data"] == "card.json (written by export): " + sources["T_data"]
    assert report.sources["T_surrogate_batched"].endswith(": onnxruntime")
    assert report.sources["T_train"] == "card.json (written by export)"


def test_a_dataset_gives_T_data_and_T_simulation(model, standin_h5):
    card = card_of(model)
    report, _ = run_tau(model, dataset=standin_h5)
    t_data = N_STANDIN * STANDIN_SOLVE_SECONDS  # no wall-time attribute: the sum of the solves
    assert report.T_data == pytest.approx(t_data, rel=1e-12)
    assert report.T_simulation == STANDIN_SOLVE_SECONDS
    assert report.T_train == card["T_train"] and report.T_surrogate == card["T_surrogate"]
    expected = (t_data + card["T_train"]) / (STANDIN_SOLVE_SECONDS - card["T_surrogate"])
    assert report.tau == pytest.approx(expected, rel=1e-12)
    assert report.sources["T_simulation"].startswith("train.h5: median of solve_seconds over 48")
    assert report.dataset["matches_training_data"] is False  # the card names another file


def test_a_foreign_dataset_is_named_in_a_warning(model, standin_h5):
    result = invoke("tau", model, "--dataset", standin_h5)
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("warning: train.h5 is not the file the model was trained on")


def test_measure_times_the_simulation_and_the_surrogate_now(model):
    """T_simulation and T_surrogate in one run on this machine; T_data and T_train stay."""
    card = card_of(model)
    report, _ = run_tau(model, measure=True, threads=(1,), batch_size=8, budget_s=0.1, fe_samples=3)
    timing = report.surrogate_timing
    assert timing is not None and timing["batch_size"] == 8 and set(timing["by_threads"]) == {"1"}
    assert report.T_surrogate == timing["by_threads"]["1"]["batch1"]
    assert report.T_surrogate_batched == timing["by_threads"]["1"]["batched"]
    simulation = report.simulation_timing
    assert simulation is not None and simulation["n_samples"] == 3
    assert report.T_simulation == sorted(simulation["seconds"])[1]  # the median of three
    assert simulation["solver"]["mode"] == "refined" and simulation["solver"]["k"] == 4
    assert report.T_data == card["T_data"] and report.T_train == card["T_train"]
    t = (card["T_data"], card["T_train"], report.T_simulation)
    assert report.tau == breakeven(*t, report.T_surrogate)
    assert report.tau_batched == breakeven(*t, report.T_surrogate_batched)
    hardware = report.timing_hardware
    assert hardware["T_surrogate"] == hardware["T_simulation"] == cpu_description()
    assert report.sources["T_surrogate"].startswith("measured now")
    assert report.sources["T_simulation"].startswith("measured now: FE solver worker")
    text = (model / TAU_MD).read_text()
    assert "| 1 |" in text  # the table of thread counts
    assert "3 single-sample solves" in text


def test_never_when_the_simulation_is_faster(tmp_path):
    model = make_model_dir(
        tmp_path / "slow", T_simulation=0.0005, tau=None, tau_batched=None, T_surrogate=0.001
    )
    report, _ = run_tau(model)
    assert report.tau is None and report.tau_batched is None  # batched 0.0002 < 0.0005: the card
    assert json.loads((model / TAU_JSON).read_text())["tau"] is None
    assert "| never |" in (model / TAU_MD).read_text()


def test_tau_is_computed_again_from_a_datasets_times(standin_h5, tmp_path):
    model = make_model_dir(tmp_path / "m", T_surrogate=0.01)  # slower than the 4 ms solves
    report, _ = run_tau(model, dataset=standin_h5)
    assert report.tau is None  # never: 0.01 s >= T_simulation
    t_data = N_STANDIN * STANDIN_SOLVE_SECONDS
    expected = (t_data + 50.0) / (STANDIN_SOLVE_SECONDS - 0.0002)  # batched 0.2 ms still wins
    assert report.tau_batched == pytest.approx(expected, rel=1e-12)
    assert report.sources["tau"] == "computed from the times above"


@pytest.mark.parametrize(
    ("remove", "hint"),
    [(("T_data",), "--dataset FILE"), (("T_surrogate", "tau"), "--measure")],
)
def test_a_card_without_times_asks_for_them_in_one_line(tmp_path, remove, hint):
    model = make_model_dir(tmp_path / "old")
    card = card_of(model)
    for key in remove:
        del card[key]
    (model / CARD_FILE).write_text(json.dumps(card))
    result = invoke("tau", model)
    assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.output
    assert result.stderr.startswith(f"error: {model / CARD_FILE} holds no {remove[0]}")
    assert hint in result.stderr
    assert not (model / TAU_JSON).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--threads", "2"], "add --measure"),
        (["--fe-samples", "2"], "add --measure"),
        (["--measure", "--batch-size", "0"], "must be positive"),
        (["--dataset", "{tmp}/absent.h5"], "not found"),
    ],
)
def test_bad_arguments_are_one_line(model, tmp_path, args, message):
    result = invoke("tau", model, *(a.format(tmp=tmp_path) for a in args))
    assert result.exit_code == 1 and result.stderr.startswith("error: "), result.output
    assert message in result.stderr and result.stderr.count("\n") == 1


def test_a_missing_model_is_one_line(tmp_path):
    result = invoke("tau", tmp_path / "absent")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.output
    assert result.stderr.startswith("error: no model.onnx")


def test_python_m_evaluation_runs_tau(model):
    run = subprocess.run(
        [sys.executable, "-m", "evaluation", "tau", str(model)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "wrote" in run.stdout and (model / TAU_JSON).is_file()
