"""The periodic model end to end: `microstrain train --config configs/periodic.yaml` on a small
FE-solved periodic file (SPEC §11), `microstrain export`, and the exported graph run by the core
at 32 x 32 and 64 x 64. Accuracy belongs to real training; here every exact property holds
whatever the weights: the mean strain of each case, C_eff's symmetry and definiteness, the
swap equivariance, parity, and what the card states."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from support.cli import invoke
from support.periodic import periodic_moduli, write_periodic_dataset

from microstrain.conventions import CARD_FILE
from microstrain.files import sha256_of
from microstrain.surrogate import SurrogateModel
from training.measures import UNIAXIAL_ONLY
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
