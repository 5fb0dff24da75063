"""The periodic model end to end: `microstrain train --config configs/periodic.yaml` on a small
FE-solved periodic file (SPEC §11), `microstrain export`, and the exported graph run by the core
at 32 x 32 and 64 x 64. Accuracy belongs to real training; here every exact property holds
whatever the weights: the mean strain of each case, C_eff's symmetry and definiteness, the
swap equivariance, parity, and what the card states."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from support.cli import invoke
from support.periodic import periodic_moduli, write_periodic_dataset

from microstrain.breakeven import breakeven
from microstrain.conventions import CARD_FILE
from microstrain.files import sha256_of
from microstrain.surrogate import SurrogateModel, repository_root
from training.measures import UNIAXIAL_ONLY
from training.model import Surrogate
from training.onnx_graph import PARITY_TOLERANCE, check_parity, export_onnx
from training.recover_weights import compare_graphs
from training.weights import WEIGHTS_FILE

SMALL_NET = ("--model.arch_kwargs.widths", "[8, 8, 16, 16]")


@pytest.fixture(scope="module")
def cells(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_periodic_dataset(tmp_path_factory.mktemp("data") / "cells.h5", n=12, seed=2)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, cells: Path) -> Path:
    root = tmp_path_factory.mktemp("periodic")
    data = cells
    family = write_periodic_dataset(root / "family.h5", n=4, seed=9)
    result = invoke(
        "train", "--config", "configs/periodic.yaml", *SMALL_NET, "--data.path", data,
        "--data.batch_size", "4", "--data.val_fraction", "0.2", "--data.test_fraction", "0.2",
        "--trainer.max_epochs", "1", "--trainer.logger", "false", "--images.n_samples", "0",
        "--runs_dir", root / "runs", "--name", "periodic",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    best = Path(result.stdout.split("best checkpoint: ")[1].split()[0])
    out = root / "models" / "periodic"
    result = invoke("export", best, "-o", out, "--judge-on", family)
    assert result.exit_code == 0, result.output
    assert "C_eff" in result.stdout
    return out


def test_the_card_states_the_periodic_contract(exported: Path) -> None:
    card = json.loads((exported / CARD_FILE).read_text())
    load_case = card["training_data"]["load_case"]
    assert load_case["name"] == "periodic" and load_case["plane"] == "strain"
    assert load_case["cases"] == ["xx", "yy", "xy"]
    assert card["input_sizes"] == [32, 64]
    assert card["output"]["shape"] == ["batch", 3, 3, "n", "n"]
    assert card["physics"]["kind"] == "periodic" and card["physics"]["in_graph"] == [
        "identity",
        "swap",
    ]
    assert card["weights_sha256"] == sha256_of(exported / WEIGHTS_FILE)
    family = card["evaluation"]["family"]
    assert {"C_eff_error_mean", "E_1_error_mean", "cases"} <= set(family)
    assert "test" in card["metrics"] and "C_eff_error_mean" in card["metrics"]["test"]
    for split in ("val", "test"):  # the uniaxial pull's E_x and ν_xy do not judge a unit case
        assert not set(UNIAXIAL_ONLY) & set(card["metrics"][split])


@pytest.mark.parametrize("side", [32, 64])
def test_the_exported_graph_keeps_the_exact_physics(exported: Path, side: int) -> None:
    model = SurrogateModel.load(exported)
    e = periodic_moduli(3, side, seed=4)
    p = model.predict_periodic(e)
    assert p.strain.shape == (3, 3, 3, side, side) and p.error_estimate is not None
    means = p.strain.astype(np.float64).mean(axis=(3, 4))  # [N, case, component]
    np.testing.assert_allclose(means, np.broadcast_to(0.1 * np.eye(3), means.shape), atol=2e-7)
    np.testing.assert_array_equal(p.c_eff, p.c_eff.transpose(0, 2, 1))
    assert np.linalg.eigvalsh(p.c_eff.astype(np.float64)).min() > 0
    # x <-> y swap (SPEC §11: E[::-1, ::-1].T) is built into the graph: cases and components swap
    swapped = model.predict_periodic(np.ascontiguousarray(e[:, :, ::-1, ::-1].swapaxes(2, 3)))
    perm = [1, 0, 2]
    expected = p.strain[:, perm][:, :, perm][..., ::-1, ::-1].swapaxes(3, 4)
    np.testing.assert_allclose(swapped.strain, expected, atol=1e-5 * np.abs(p.strain).max())
    np.testing.assert_allclose(swapped.c_eff, p.c_eff[:, perm][:, :, perm], rtol=1e-4)


def test_a_plane_stress_periodic_file_is_refused_in_one_line(tmp_path: Path) -> None:
    """The periodic model is plane strain (a unidirectional ply's cross-section)."""
    data = write_periodic_dataset(tmp_path / "stress.h5", n=6, seed=1, plane="stress")
    result = invoke(
        "train", "--config", "configs/periodic.yaml", *SMALL_NET, "--data.path", data,
        "--trainer.max_epochs", "1", "--trainer.logger", "false", "--runs_dir", tmp_path / "runs",
        "--model.plane", "null",
    )  # fmt: skip
    assert result.exit_code != 0
    assert "the periodic model is plane strain" in result.stderr
    assert result.stderr.count("error:") == 1


def test_a_shipped_periodic_model_starts_a_new_training(
    exported: Path, cells: Path, tmp_path: Path
) -> None:
    """weights.pt (weights + normalizer) is all `--model.init_from` needs."""
    result = invoke(
        "train", "--config", "configs/periodic.yaml", *SMALL_NET, "--data.path", cells,
        "--data.val_fraction", "0.2", "--data.test_fraction", "0.2",
        "--trainer.max_epochs", "1", "--trainer.logger", "false", "--images.n_samples", "0",
        "--runs_dir", tmp_path / "runs", "--model.init_from", exported,
    )  # fmt: skip
    assert result.exit_code == 0, result.output


def _reexport(directory: Path) -> subprocess.CompletedProcess[str]:
    """``python -m training.reexport DIR`` as docs/training.md tells users to run it."""
    return subprocess.run(
        [sys.executable, "-m", "training.reexport", str(directory)],
        capture_output=True, text=True, timeout=300, cwd=repository_root(),
    )  # fmt: skip


def _files(directory: Path) -> dict[str, str]:
    return {p.name: sha256_of(p) for p in sorted(directory.iterdir())}


def test_reexport_rewrites_the_graph_and_its_card_together(exported: Path, tmp_path: Path) -> None:
    """The model's own weights in the graph this code writes: the card names the new graph,
    its timing and τ follow it, and the graph computes what PyTorch computes."""
    copy = shutil.copytree(exported, tmp_path / "periodic")
    card_before = json.loads((copy / CARD_FILE).read_text())
    result = _reexport(copy)
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout.splitlines()[-1])
    assert set(answer["max_rel_difference_to_before"]) == {"32", "64"}
    card = json.loads((copy / CARD_FILE).read_text())
    assert card["onnx"]["sha256"] == sha256_of(copy / "model.onnx") == answer["sha256"]
    assert card["T_surrogate"] == answer["T_surrogate"] > 0
    assert card["tau"] == breakeven(
        card["T_data"], card["T_train"], card["T_simulation"], card["T_surrogate"]
    )
    for kept in ("weights_sha256", "metrics", "evaluation", "version", "T_train", "T_data"):
        assert card[kept] == card_before[kept], kept
    surrogate = Surrogate.from_checkpoint(copy)
    for side in (32, 64):
        errors = check_parity(surrogate, copy / "model.onnx", (3,), PARITY_TOLERANCE, side=side)
        assert max(errors.values()) <= PARITY_TOLERANCE
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_reexport_refuses_weights_of_another_function(exported: Path, tmp_path: Path) -> None:
    """weights.pt that no longer computes what model.onnx computes is a new model, not a new
    graph: one line, exit 1, and the directory as it was."""
    copy = shutil.copytree(exported, tmp_path / "periodic")
    payload = torch.load(copy / WEIGHTS_FILE, weights_only=True)
    key = next(k for k in payload["state_dict"] if k.endswith("head.2.weight"))
    payload["state_dict"][key] = payload["state_dict"][key] * 1.5
    torch.save(payload, copy / WEIGHTS_FILE)
    card = json.loads((copy / CARD_FILE).read_text())
    card["weights_sha256"] = sha256_of(copy / WEIGHTS_FILE)
    (copy / CARD_FILE).write_text(json.dumps(card))
    before = _files(copy)
    result = _reexport(copy)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "not the same function" in result.stderr
    assert _files(copy) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_reexport_refuses_weights_the_card_does_not_name(exported: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(exported, tmp_path / "periodic")
    card = json.loads((copy / CARD_FILE).read_text())
    card["weights_sha256"] = "0" * 64
    (copy / CARD_FILE).write_text(json.dumps(card))
    before = _files(copy)
    result = _reexport(copy)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "does not match the sha256" in result.stderr
    assert _files(copy) == before


def test_the_shipped_periodic_graph_is_what_this_code_exports(tmp_path: Path) -> None:
    """models/periodic's model.onnx is the export of its weights.pt by the code here, output
    for output (so a change to the network's graph that is not re-exported fails here)."""
    shipped = repository_root() / "models" / "periodic"
    surrogate = Surrogate.from_checkpoint(shipped)
    export_onnx(surrogate, tmp_path / "model.onnx")
    assert set(compare_graphs(shipped / "model.onnx", tmp_path / "model.onnx").values()) == {0.0}
