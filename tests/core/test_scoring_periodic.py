"""A periodic model judged on a periodic file in the SPEC §11 measures (evaluate, export)."""

from pathlib import Path

import numpy as np
import pytest
from support.models import make_model_dir, make_periodic_model_dir, reference_periodic
from support.periodic import write_periodic_dataset

from microstrain.dataset import load_samples
from microstrain.errors import MicrostrainError
from microstrain.quantities import engineering_constants
from microstrain.scoring import score_file
from microstrain.surrogate import SurrogateModel


@pytest.fixture(scope="module")
def periodic_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_periodic_dataset(tmp_path_factory.mktemp("data") / "cells.h5", n=5)


def test_the_measures_are_those_of_the_predictions_against_the_file(
    periodic_file: Path, tmp_path: Path
) -> None:
    model = SurrogateModel.load(make_periodic_model_dir(tmp_path / "p"))
    result = score_file(model, periodic_file)
    samples = load_samples(periodic_file, boundary="periodic")
    strain, c_eff, estimate = reference_periodic(samples.youngs_modulus)
    assert samples.c_eff is not None
    c_error = np.linalg.norm(c_eff - samples.c_eff, axis=(1, 2)) / np.linalg.norm(
        samples.c_eff, axis=(1, 2)
    )
    assert result["n"] == 5
    assert result["C_eff_error_mean"] == pytest.approx(c_error.mean(), rel=1e-5)
    assert result["C_eff_error_max"] == pytest.approx(c_error.max(), rel=1e-5)
    e1 = engineering_constants(c_eff.astype(np.float64))["E_1"]
    e1_true = engineering_constants(samples.c_eff)["E_1"]
    assert result["E_1_error_mean"] == pytest.approx(np.abs(e1 / e1_true - 1).mean(), rel=1e-4)
    xx = strain[:, 0] - samples.strain[:, 0]
    per_sample = np.sqrt(
        (xx**2).sum(axis=(1, 2, 3)) / (samples.strain[:, 0] ** 2).sum(axis=(1, 2, 3))
    )
    assert result["cases"]["xx"]["strain_relative_l2"] == pytest.approx(per_sample.mean(), rel=1e-4)
    quality = result["error_estimate"]
    assert quality["median_estimate"] == pytest.approx(float(np.median(estimate)), rel=1e-5)


def test_a_uniaxial_model_is_refused_on_a_periodic_file(
    periodic_file: Path, tmp_path: Path
) -> None:
    model = SurrogateModel.load(make_model_dir(tmp_path / "u"))
    with pytest.raises(MicrostrainError, match="load case 'periodic'"):
        score_file(model, periodic_file)
