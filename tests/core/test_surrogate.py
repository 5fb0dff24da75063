"""The exported-model loader (SPEC §5): the graph is checked against its card before any use."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from microstrain.conventions import CARD_FILE, MODEL_FILE
from microstrain.errors import MicrostrainError
from microstrain.files import sha256_of
from microstrain.surrogate import SurrogateModel, default_model_dir


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(default_model_dir(), target)
    return target


def test_the_shipped_model_loads_and_its_card_matches_the_graph(model_copy: Path) -> None:
    model = SurrogateModel.load(model_copy)
    assert model.sha256 == sha256_of(model_copy / MODEL_FILE)
    e = np.full((2, 1, 32, 32), 3000.0, dtype=np.float32)
    assert model.predict(e).shape == (2, 3, 32, 32)


def test_one_flipped_byte_is_refused(model_copy: Path) -> None:
    graph = bytearray((model_copy / MODEL_FILE).read_bytes())
    graph[len(graph) // 2] ^= 0x01
    (model_copy / MODEL_FILE).write_bytes(bytes(graph))
    with pytest.raises(MicrostrainError, match="does not match its card"):
        SurrogateModel.load(model_copy)


def test_a_card_without_the_graph_checksum_is_refused(model_copy: Path) -> None:
    card = json.loads((model_copy / CARD_FILE).read_text())
    del card["onnx"]["sha256"]
    (model_copy / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(MicrostrainError, match=r"records no onnx\.sha256"):
        SurrogateModel.load(model_copy)


def test_a_missing_card_is_refused(model_copy: Path) -> None:
    (model_copy / CARD_FILE).unlink()
    with pytest.raises(MicrostrainError, match=r"no card\.json"):
        SurrogateModel.load(model_copy)


def test_a_graph_alone_opens_without_a_card_for_export(model_copy: Path) -> None:
    (model_copy / CARD_FILE).unlink()
    model = SurrogateModel.from_onnx(model_copy / MODEL_FILE)
    assert model.card == {}
    reference = SurrogateModel.load(default_model_dir())
    e = np.full((1, 1, 32, 32), 85000.0, dtype=np.float32)
    np.testing.assert_array_equal(model.predict(e), reference.predict(e))
