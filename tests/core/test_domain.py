"""Out-of-distribution warnings (microstrain.domain): one format for predict and REST."""

from __future__ import annotations

import numpy as np

from microstrain.domain import fiber_fraction_range, out_of_distribution
from microstrain.fields import mask_to_youngs_modulus

CARD = {"training_data": {"fiber_fraction_range": [0.2, 0.5]}}


def moduli(*fractions: float) -> np.ndarray:
    """E maps ``[N, 1, 32, 32]`` whose first round(f·1024) pixels (row-major) are fiber."""
    masks = np.zeros((len(fractions), 1, 32 * 32))
    for i, f in enumerate(fractions):
        masks[i, 0, : round(f * 1024)] = 1
    return mask_to_youngs_modulus(masks.reshape(-1, 1, 32, 32))


def test_inside_the_training_range_gives_no_warning():
    assert out_of_distribution(moduli(0.2, 0.35, 0.5), CARD) == []


def test_fiber_fraction_outside_names_the_samples_and_their_fractions():
    warnings = out_of_distribution(moduli(0.3, 0.875, 0.125), CARD)
    assert warnings == [
        "fiber fraction outside the training range [0.200, 0.500] for sample #1 (0.875), "
        "#2 (0.125): the prediction is an extrapolation"
    ]


def test_more_than_five_are_counted():
    (warning,) = out_of_distribution(moduli(*[0.75] * 7), CARD)
    assert "#4 (0.750) and 2 more:" in warning and "#5" not in warning


def test_single_phase_samples_are_named_even_without_a_range_in_the_card():
    warnings = out_of_distribution(moduli(0.0, 1.0, 0.3), {})
    assert warnings == [
        "2 sample(s) are a single phase (homogeneous material); the model was trained on composites"
    ]
    assert len(out_of_distribution(moduli(0.0), CARD)) == 2  # outside the range too


def test_the_range_is_read_from_the_cards_training_data():
    assert fiber_fraction_range(CARD) == (0.2, 0.5)
    assert fiber_fraction_range({"training_data": {"fiber_fraction_range": [0.1]}}) is None
    assert fiber_fraction_range({}) is None
