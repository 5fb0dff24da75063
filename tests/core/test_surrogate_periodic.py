"""A periodic exported model (SPEC §11) run by the core's loader: its outputs, sizes and card."""

import json
from pathlib import Path

import numpy as np
import pytest
from support.models import make_model_dir, make_periodic_model_dir, reference_periodic

from microstrain.conventions import CARD_FILE
from microstrain.errors import InputError, MicrostrainError
from microstrain.surrogate import SurrogateModel, default_model_dir


@pytest.fixture(scope="module")
def periodic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_periodic_model_dir(tmp_path_factory.mktemp("models") / "periodic")


def microstructures(n: int, count: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = rng.random((count, 1, n, n)) < rng.uniform(0.2, 0.6, (count, 1, 1, 1))
    return np.where(mask, 85000.0, 3000.0).astype(np.float32)  # [count, 1, n, n]


@pytest.mark.parametrize("n", [32, 64])
def test_the_unit_cases_c_eff_and_estimate_come_back_at_each_listed_size(
    periodic_dir: Path, n: int
) -> None:
    model = SurrogateModel.load(periodic_dir)
    assert model.is_periodic and model.plane == "strain" and model.input_sizes == [32, 64]
    e = microstructures(n)
    prediction = model.predict_periodic(e, batch_size=2)  # two chunks
    strain, c_eff, estimate = reference_periodic(e)
    assert prediction.strain.shape == (3, 3, 3, n, n) and prediction.c_eff.shape == (3, 3, 3)
    np.testing.assert_allclose(prediction.strain, strain, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(prediction.c_eff, c_eff, rtol=1e-5)
    assert prediction.error_estimate is not None
    np.testing.assert_allclose(prediction.error_estimate, estimate, rtol=1e-4, atol=1e-6)
    # the contract every consumer relies on: case j's mean strain is ū e_j
    means = prediction.strain.astype(np.float64).mean(axis=(3, 4))  # [N, 3, 3]
    np.testing.assert_allclose(means, np.broadcast_to(0.1 * np.eye(3), means.shape), atol=1e-6)


def test_another_applied_strain_scales_the_cases_but_not_c_eff(periodic_dir: Path) -> None:
    model = SurrogateModel.load(periodic_dir)
    e = microstructures(32, count=2)
    base, scaled = model.predict_periodic(e), model.predict_periodic(e, applied_strain=0.02)
    np.testing.assert_allclose(scaled.strain, 0.2 * base.strain, rtol=1e-6)
    np.testing.assert_array_equal(scaled.c_eff, base.c_eff)


def test_a_size_the_card_does_not_list_is_one_input_error(periodic_dir: Path) -> None:
    model = SurrogateModel.load(periodic_dir)
    with pytest.raises(InputError, match=r"takes microstructures of 32x32 or 64x64 pixels"):
        model.predict_periodic(microstructures(48, count=1))


def test_a_uniaxial_model_has_no_unit_cases(tmp_path: Path) -> None:
    model = SurrogateModel.load(make_model_dir(tmp_path / "uniaxial"))
    assert not model.is_periodic and model.input_sizes == [32]
    with pytest.raises(MicrostrainError, match="is not periodic"):
        model.predict_periodic(microstructures(32, count=1))
    assert SurrogateModel.load(default_model_dir()).estimate_caveat is None


def test_a_periodic_card_on_a_graph_without_c_eff_is_refused(tmp_path: Path) -> None:
    periodic = make_periodic_model_dir(tmp_path / "periodic")
    card = json.loads((periodic / CARD_FILE).read_text())
    uniaxial = make_model_dir(tmp_path / "uniaxial")
    card["onnx"] = json.loads((uniaxial / CARD_FILE).read_text())["onnx"]
    (uniaxial / CARD_FILE).write_text(json.dumps(card))
    with pytest.raises(MicrostrainError, match="whose graph also returns 'C_eff'"):
        SurrogateModel.load(uniaxial)


def test_an_estimate_that_understates_the_held_out_error_is_said(tmp_path: Path) -> None:
    quality = {"median_estimate_over_error": 0.2, "measured_on": "the test split"}
    model = SurrogateModel.load(make_periodic_model_dir(tmp_path / "p", error_estimate=quality))
    assert model.estimate_caveat is not None
    assert "understates" in model.estimate_caveat and "0.20" in model.estimate_caveat
    calibrated = {"median_estimate_over_error": 1.3, "measured_on": "the test split"}
    model = SurrogateModel.load(make_periodic_model_dir(tmp_path / "q", error_estimate=calibrated))
    assert model.estimate_caveat is None


def test_the_shipped_periodic_model_keeps_its_exact_physics() -> None:
    """models/periodic as shipped: both sizes of its card, each case's mean exact, C_eff
    symmetric positive definite, plane strain."""
    from microstrain.surrogate import repository_root

    model = SurrogateModel.load(repository_root() / "models" / "periodic")
    assert model.is_periodic and model.plane == "strain" and model.input_sizes == [32, 64]
    for n in model.input_sizes:
        p = model.predict_periodic(microstructures(n, count=2, seed=n))
        means = p.strain.astype(np.float64).mean(axis=(3, 4))
        np.testing.assert_allclose(means, np.broadcast_to(0.1 * np.eye(3), means.shape), atol=1e-6)
        np.testing.assert_array_equal(p.c_eff, p.c_eff.transpose(0, 2, 1))
        assert np.linalg.eigvalsh(p.c_eff.astype(np.float64)).min() > 0
