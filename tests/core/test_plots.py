"""Colour rules of strain-field pictures (microstrain.plots), shared by every figure."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib import colormaps

from microstrain import plots
from microstrain.conventions import FIBER, MATRIX, STRAIN_CHANNELS

rng = np.random.default_rng(0)
FIELD = rng.normal(0.0, 0.05, (32, 32))  # [32, 32]


def test_each_quantity_has_its_colormap():
    assert plots.style("E").cmap == "gray_r"
    assert [plots.style(c).cmap for c in STRAIN_CHANNELS] == ["viridis", "viridis", "RdBu_r"]
    assert [plots.style(c).symmetric for c in STRAIN_CHANNELS] == [False, False, True]
    for channel in STRAIN_CHANNELS:  # every error is diverging about zero
        assert plots.style(f"{channel} error").cmap == "RdBu_r"
        assert plots.style(f"{channel} error").symmetric


def test_limits_are_shared_and_symmetric_for_shear():
    other = FIELD * 3 + 0.1
    assert plots.limits("eps_xx", FIELD, other) == (
        min(FIELD.min(), other.min()),
        max(FIELD.max(), other.max()),
    )
    bound = max(np.abs(FIELD).max(), np.abs(other).max())
    assert plots.limits("gamma_xy", FIELD, other) == (-bound, bound)
    assert plots.limits("gamma_xy", np.zeros((32, 32))) == (-1.0, 1.0)  # no empty range
    # E: the two moduli, whatever the sample holds (also a single phase)
    assert plots.limits("E", np.full((32, 32), MATRIX.youngs_modulus)) == (
        MATRIX.youngs_modulus,
        FIBER.youngs_modulus,
    )


def test_rgb_puts_zero_shear_at_the_centre_of_the_diverging_map():
    field = np.zeros((32, 32))
    field[0, 0], field[0, 1] = 0.02, -0.02  # limits ±0.02: zero sits halfway
    image = plots.rgb(field, "gamma_xy")  # [32, 32, 3]
    cmap = colormaps["RdBu_r"]
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image[5, 5], (np.array(cmap(0.5)[:3]) * 255).astype(np.uint8))
    np.testing.assert_array_equal(image[0, 0], (np.array(cmap(1.0)[:3]) * 255).astype(np.uint8))
    np.testing.assert_array_equal(image[0, 1], (np.array(cmap(0.0)[:3]) * 255).astype(np.uint8))


def test_comparison_shares_the_colour_range_of_reference_and_prediction():
    e = np.where(rng.random((32, 32)) < 0.3, FIBER.youngs_modulus, MATRIX.youngs_modulus)
    reference = rng.normal(0.0, 0.05, (3, 32, 32))
    prediction = reference * 1.1
    fig = plots.figure([plots.comparison_panels(e, reference, prediction)], axes_labels=False)
    images = [ax.images[0] for ax in fig.axes if ax.images and ax.get_label() != "<colorbar>"]
    assert len(images) == 10  # E, then reference | prediction | error per channel
    for c in range(3):
        ref, pred, err = images[1 + 3 * c : 4 + 3 * c]
        assert (
            ref.get_clim()
            == pred.get_clim()
            == plots.limits(STRAIN_CHANNELS[c], reference[c], prediction[c])
        )
        low, high = err.get_clim()
        assert low == -high == -np.abs(prediction[c] - reference[c]).max()


def test_fields_stand_as_the_specimen_and_colour_bars_carry_units(tmp_path):
    e = np.full((32, 32), MATRIX.youngs_modulus)
    fig = plots.figure([plots.field_panels(e, np.stack([FIELD] * 3))], "title")
    field_axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    for ax in field_axes:
        image = ax.images[0]
        assert image.origin == "upper" and image.get_extent() == [0, 1, 0, 1]  # row 0 = y = 1
    bars = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    labels = [bar.get_ylabel() for bar in bars]
    assert labels == ["Young's modulus (MPa)", "strain (–)", "strain (–)", "shear strain (–)"]
    png = plots.save(fig, tmp_path / "f.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["f.png"]


@pytest.mark.parametrize("quantity", ["E", *STRAIN_CHANNELS, "gamma_xy error"])
def test_every_quantity_has_a_unit(quantity):
    assert plots.style(quantity).unit.endswith(("(MPa)", "(–)"))
