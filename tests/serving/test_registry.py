"""Which models a service serves (serving/registry.py), without a server: discovery, refusals
alone, lookup by name only."""

from __future__ import annotations

import os

import pytest
from support.models import make_model_dir, make_periodic_model_dir

from microstrain.conventions import MODEL_ENV_VAR
from microstrain.errors import MicrostrainError
from serving.registry import MODELS_ENV_VAR, UnknownModel, discover, load_models, model_directories


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    base = tmp_path_factory.mktemp("models")
    for name in ("accurate", "default"):
        make_model_dir(base / name)
    make_periodic_model_dir(base / "periodic")
    (base / "notes").mkdir()  # no model.onnx: not a model
    return base


def test_discover_puts_default_first_and_skips_other_directories(root):
    assert [d.name for d in discover(root)] == ["default", "accurate", "periodic"]
    assert discover(root / "absent") == []


def test_the_environment_selects_several_one_or_all(root, monkeypatch):
    monkeypatch.delenv(MODEL_ENV_VAR, raising=False)
    monkeypatch.setenv(
        MODELS_ENV_VAR, os.pathsep.join([str(root / "periodic"), str(root / "default")])
    )
    assert [d.name for d in model_directories()] == ["periodic", "default"]
    monkeypatch.delenv(MODELS_ENV_VAR)
    monkeypatch.setenv(MODEL_ENV_VAR, str(root / "accurate"))
    assert [d.name for d in model_directories()] == ["accurate"]


def test_a_broken_or_duplicate_model_is_refused_alone(root, tmp_path):
    twin = make_model_dir(tmp_path / "other" / "default")  # a second 'default'
    missing = tmp_path / "gone"
    served = load_models([root / "default", twin, missing, root / "periodic"], 1, ())
    assert served.names() == ["default", "periodic"] and served.default_name == "default"
    assert len(served.refused) == 2
    assert "'default'" in served.refused[0] and "already served" in served.refused[0]
    assert "'gone' refused: no model.onnx" in served.refused[1]
    assert served.periodic_names() == ["periodic"]


def test_lookup_is_by_name_only(root):
    served = load_models([root / "accurate", root / "periodic"], 1, ())
    assert served.get(None).name == "accurate"  # no 'default': the first one
    for name in ("default", "../accurate", str(root / "accurate"), "periodic/"):
        with pytest.raises(UnknownModel, match="served models: accurate, periodic") as caught:
            served.get(name)
        assert caught.value.status == 404


def test_nothing_to_serve_is_one_line(tmp_path):
    with pytest.raises(MicrostrainError, match="no model to serve") as caught:
        load_models([], 1, ())
    assert "\n" not in str(caught.value)
    with pytest.raises(MicrostrainError, match="no model could be served") as caught:
        load_models([tmp_path / "a", tmp_path / "b"], 1, ())
    assert (
        "\n" not in str(caught.value) and "'a'" in str(caught.value) and "'b'" in str(caught.value)
    )


def test_each_further_model_costs_one_session(root):
    served = load_models([root / "default", root / "accurate", root / "periodic"], 2, (1, 2))
    default, *others = (served.get(name) for name in served.names())
    # the default answers small requests from its own one- and two-thread sessions
    assert sorted(default.small.sessions) == [1, 2]
    assert all(s is not default.large for s in default.small.sessions.values())
    for model in others:  # the others from their one session, large requests and small alike
        assert model.small.sessions == {1: model.large}  # the small requests' fewest threads
        assert model.small.pick() is model.large
