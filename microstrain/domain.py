"""The training domain of a model: warnings for inputs outside the data it was trained on.

A surrogate interpolates its training data; outside it the prediction is an extrapolation and
may be wrong without any sign. The card's training-data summary (``training_data`` in
``card.json``, docs/model-card.md) records the range of fiber fractions the model saw, and the
generator never draws single-phase images. Inputs beyond either get a warning, not an error:
`predict` prints them on stderr, the REST service returns them in ``warnings``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from microstrain.fields import fiber_fraction

SHOWN = 5  # samples named in a warning; the rest are counted


def fiber_fraction_range(card: dict[str, Any]) -> tuple[float, float] | None:
    """``training_data.fiber_fraction_range`` of a card, or ``None`` if it records none."""
    bounds = card.get("training_data", {}).get("fiber_fraction_range")
    if isinstance(bounds, list | tuple) and len(bounds) == 2:
        return float(bounds[0]), float(bounds[1])
    return None


def out_of_distribution(youngs_modulus: np.ndarray, card: dict[str, Any]) -> list[str]:
    """One warning per kind of out-of-domain input among E maps ``[N, 1, 32, 32]`` (MPa).

    Kinds: fiber fraction outside the card's training range (naming the first samples and their
    fractions), and samples of a single phase (homogeneous material).
    """
    fractions = fiber_fraction(youngs_modulus)  # [N]
    warnings: list[str] = []
    bounds = fiber_fraction_range(card)
    if bounds is not None:
        low, high = bounds
        outside = np.flatnonzero((fractions < low) | (fractions > high))
        if outside.size:
            shown = ", ".join(f"#{i} ({fractions[i]:.3f})" for i in outside[:SHOWN])
            more = f" and {outside.size - SHOWN} more" if outside.size > SHOWN else ""
            warnings.append(
                f"fiber fraction outside the training range [{low:.3f}, {high:.3f}] for sample "
                f"{shown}{more}: the prediction is an extrapolation"
            )
    uniform = np.flatnonzero((fractions == 0) | (fractions == 1))
    if uniform.size:
        warnings.append(
            f"{uniform.size} sample(s) are a single phase (homogeneous material); "
            "the model was trained on composites"
        )
    return warnings
