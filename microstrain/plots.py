"""Strain-field pictures: the one home of the colour rules every figure of a 32×32 field follows.

Rules (one :class:`Style` per quantity):

- E (MPa): ``gray_r`` (fiber dark, matrix light) on the fixed range [E_matrix, E_fiber], so
  every panel reads alike, also one of a single-phase sample; the colour bar marks both moduli.
- eps_xx, eps_yy: ``viridis`` over the values shown.
- gamma_xy and every error (prediction − reference): diverging ``RdBu_r`` symmetric about 0,
  since their sign matters (SPEC §1: mirroring in x flips the sign of γ).
- Stress (SPEC §9, MPa) as strain: sigma_xx, sigma_yy ``viridis``, tau_xy diverging; von Mises,
  a magnitude, ``magma`` from its smallest to its largest value.
- A prediction and its reference share one colour range (:func:`limits` over both).
- Colour bars are labelled with the quantity and its unit.

Fields are drawn with ``imshow(origin="upper", extent=(0, 1, 0, 1))``: row 0 is the top edge
y = 1 (SPEC §2), so the picture is the specimen as it stands. Figures are plain
:class:`matplotlib.figure.Figure` objects rendered by Agg: no pyplot, no global backend switch,
nothing left open. ``matplotlib`` is imported inside the functions that draw, so importing this
module stays cheap.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from microstrain.conventions import (
    FIBER,
    MATRIX,
    PERIODIC_CASES,
    STRAIN_CHANNELS,
    STRESS_CHANNELS,
    Material,
)
from microstrain.fields import fiber_mask
from microstrain.files import atomic_output
from microstrain.quantities import quantities


@dataclass(frozen=True)
class Style:
    """How one quantity is drawn."""

    title: str  # panel title, e.g. "ε_xx"
    unit: str  # colour-bar label
    cmap: str
    symmetric: bool  # diverging: limits ±max|value|, white at 0


STYLES: dict[str, Style] = {
    "E": Style("E", "Young's modulus (MPa)", "gray_r", symmetric=False),
    "eps_xx": Style("ε_xx", "strain (–)", "viridis", symmetric=False),
    "eps_yy": Style("ε_yy", "strain (–)", "viridis", symmetric=False),
    "gamma_xy": Style("γ_xy", "shear strain (–)", "RdBu_r", symmetric=True),
    "sigma_xx": Style("σ_xx", "stress (MPa)", "viridis", symmetric=False),
    "sigma_yy": Style("σ_yy", "stress (MPa)", "viridis", symmetric=False),
    "tau_xy": Style("τ_xy", "shear stress (MPa)", "RdBu_r", symmetric=True),
    "von_mises": Style("von Mises", "stress (MPa)", "magma", symmetric=False),
}
E_LIMITS = (MATRIX.youngs_modulus, FIBER.youngs_modulus)  # MPa


def style(quantity: str) -> Style:
    """The style of ``"E"``, a strain channel, or ``"<channel> error"`` (diverging, same unit)."""
    if quantity.endswith(" error"):
        base = STYLES[quantity.removesuffix(" error")]
        return Style(f"{base.title} error", "error (–)", "RdBu_r", symmetric=True)
    return STYLES[quantity]


def limits(quantity: str, *fields: np.ndarray) -> tuple[float, float]:
    """One colour range for all ``fields`` of ``quantity`` (a prediction and its reference)."""
    if quantity == "E":
        return E_LIMITS
    values = [np.asarray(f, np.float64) for f in fields]
    if style(quantity).symmetric:
        bound = max(float(np.abs(v).max()) for v in values) or 1.0
        return -bound, bound
    return min(float(v.min()) for v in values), max(float(v.max()) for v in values)


def unit_interval(field: np.ndarray, low: float, high: float) -> np.ndarray:
    """``field`` mapped linearly from [low, high] to [0, 1] (zeros when the range is empty)."""
    f = np.asarray(field, np.float64)
    return (f - low) / (high - low) if high > low else np.zeros_like(f)


def rgb(field: np.ndarray, quantity: str, lim: tuple[float, float] | None = None) -> np.ndarray:
    """``[32, 32]`` field -> uint8 RGB ``[32, 32, 3]`` in the quantity's colours (no axes)."""
    from matplotlib import colormaps

    low, high = lim if lim is not None else limits(quantity, field)
    colours = colormaps[style(quantity).cmap](unit_interval(field, low, high))  # [32, 32, 4]
    return (colours[..., :3] * 255).astype(np.uint8)


@dataclass
class Panel:
    """One field in a figure: ``field`` ``[32, 32]``, what it is, its title and colour range."""

    field: np.ndarray
    quantity: str
    title: str | None = None  # default: the quantity's title
    lim: tuple[float, float] | None = None  # default: limits(quantity, field)
    colorbar: bool = True


def draw(fig: Any, ax: Any, panel: Panel, axes_labels: bool = True, font_size: float = 10) -> None:
    """Draw ``panel`` into ``ax`` of ``fig`` with its colour rule and (optionally) colour bar."""
    small = font_size - 2  # ticks and colour-bar labels
    st = style(panel.quantity)
    low, high = panel.lim if panel.lim is not None else limits(panel.quantity, panel.field)
    image = ax.imshow(
        panel.field, origin="upper", extent=(0, 1, 0, 1), cmap=st.cmap, vmin=low, vmax=high
    )
    ax.set_title(panel.title if panel.title is not None else st.title, fontsize=font_size)
    if axes_labels:
        ax.set_xticks([0, 0.5, 1])
        ax.set_yticks([0, 0.5, 1])
        ax.set_xlabel("x", labelpad=1)
        ax.set_ylabel("y", labelpad=1)
        ax.tick_params(labelsize=small)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    if panel.colorbar:
        bar = fig.colorbar(image, ax=ax, shrink=0.85, pad=0.02)
        bar.set_label(st.unit, fontsize=small)
        bar.ax.tick_params(labelsize=small)
        if panel.quantity == "E":  # two phases: name them instead of a continuous scale
            bar.set_ticks([low, high], labels=[f"{low:g}\nmatrix", f"{high:g}\nfiber"])


def figure(
    rows: Sequence[Sequence[Panel]],
    title: str | None = None,
    panel_size: tuple[float, float] = (3.3, 2.9),
    axes_labels: bool = True,
    font_size: float = 10,
) -> Any:
    """A :class:`~matplotlib.figure.Figure` with one row of panels per entry of ``rows``."""
    from matplotlib.figure import Figure

    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    width, height = panel_size
    fig = Figure(figsize=(width * n_cols, height * n_rows + 0.4), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for ax_row, row in zip(axes, rows, strict=True):
        for ax, panel in zip(ax_row, row, strict=False):
            draw(fig, ax, panel, axes_labels, font_size)
        for ax in ax_row[len(row) :]:
            ax.set_visible(False)
    if title:
        fig.suptitle(title, fontsize=font_size + 1)
    return fig


def save(fig: Any, path: str | os.PathLike[str], dpi: int = 100) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically."""
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    return Path(path)


# --- the figures the commands draw --------------------------------------------------------------


def field_panels(
    youngs_modulus: np.ndarray,
    strain: np.ndarray,
    e_title: str | None = None,
    e_lim: tuple[float, float] | None = None,
) -> list[Panel]:
    """E ``[32, 32]`` MPa and its strain ``[3, 32, 32]``: four panels, each with its colour bar.

    ``e_lim``: the (matrix, fiber) moduli of user materials (the lecture's pair by default)."""
    panels = [Panel(np.asarray(youngs_modulus), "E", title=e_title, lim=e_lim)]
    panels += [Panel(np.asarray(f), c) for c, f in zip(STRAIN_CHANNELS, strain, strict=True)]
    return panels


def stress_panels(
    stress: np.ndarray, von_mises: np.ndarray, von_mises_title: str | None = None
) -> list[Panel]:
    """von Mises ``[32, 32]`` and stress ``[3, 32, 32]`` (MPa, SPEC §9): four panels that sit
    under :func:`field_panels` of the same sample (von Mises under E, σ_xx under ε_xx, ...)."""
    panels = [Panel(np.asarray(von_mises), "von_mises", title=von_mises_title)]
    panels += [Panel(np.asarray(f), c) for c, f in zip(STRESS_CHANNELS, stress, strict=True)]
    return panels


def comparison_panels(
    youngs_modulus: np.ndarray, reference: np.ndarray, prediction: np.ndarray
) -> list[Panel]:
    """E, then per channel: reference and prediction on one shared range, and their difference.

    ``youngs_modulus`` ``[32, 32]`` MPa; ``reference``, ``prediction`` ``[3, 32, 32]``. The colour
    bar of the shared range sits beside the prediction.
    """
    panels = [Panel(np.asarray(youngs_modulus), "E", colorbar=False)]
    for c, name in enumerate(STRAIN_CHANNELS):
        ref, pred = np.asarray(reference[c]), np.asarray(prediction[c])
        lim = limits(name, ref, pred)
        title = style(name).title
        panels += [
            Panel(ref, name, f"{title} reference", lim, colorbar=False),
            Panel(pred, name, f"{title} prediction", lim),
            Panel(pred - ref, f"{name} error", f"{title} error"),
        ]
    return panels


def solution_rows(
    youngs_modulus: np.ndarray,
    strain: np.ndarray,
    plane: str,
    applied_strain: float,
    fiber: Material = FIBER,
    matrix: Material = MATRIX,
    first: int = 0,
) -> list[list[Any]]:
    """Panel rows of samples: uniaxial strain ``[n, 3, s, s]`` gives two rows each (E and the
    strain channels over von Mises and the stress channels); periodic strain ``[n, 3, 3, s, s]``
    one row per load case (E, the case's strain channels, its von Mises). ``first``: the number
    of the first sample, for the titles."""
    phases = {"fiber": fiber, "matrix": matrix}
    e_lim = (matrix.youngs_modulus, fiber.youngs_modulus)
    E = np.asarray(youngs_modulus)
    rows: list[list[Any]] = []
    for i in range(len(E)):
        fraction = float(fiber_mask(E[i], **phases).mean())
        cases = strain[i] if strain.ndim == 5 else strain[i][None]  # [cases, 3, s, s]
        for j, case_strain in enumerate(cases):
            q = quantities(E[i : i + 1], case_strain[None], plane, applied_strain, **phases)
            vm = q["von_mises"][0]  # [s, s] MPa
            phase = "fiber" if fiber_mask(E[i, 0], **phases).flat[vm.argmax()] else "matrix"
            if strain.ndim == 5:
                title = f"sample {first + i}, case {PERIODIC_CASES[j]}: E, φ = {fraction:.2f}"
                rows.append(
                    [
                        *field_panels(E[i, 0], case_strain, e_title=title, e_lim=e_lim),
                        Panel(vm, "von_mises", title=f"von Mises: peak in {phase}"),
                    ]
                )
                continue
            rows += [
                field_panels(
                    E[i, 0],
                    case_strain,
                    e_title=f"sample {first + i}: E, φ = {fraction:.2f}",
                    e_lim=e_lim,
                ),
                stress_panels(q["stress"][0], vm, von_mises_title=f"von Mises: peak in {phase}"),
            ]
    return rows
