"""PNG in, PNG out: mask pictures of ``predict`` and ``POST /predict_image``, prediction figures.

A mask picture is a 32×32 grayscale PNG (colour is converted with ITU-R 601 luma); pixels with
gray value ≥ 128 are fiber, darker ones matrix — white fibers on black, as the mask is drawn.
The prediction figure (:func:`prediction_figure`: ``predict --png`` and ``/predict_image?
picture=true``) has titled panels of E, strain, von Mises and stress with colour bars and units,
in the colour rules of :mod:`microstrain.plots`; :func:`strain_png` is the bare strain strip.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from microstrain import plots
from microstrain.conventions import GRID, STRAIN_CHANNELS
from microstrain.fields import mask_to_youngs_modulus
from serving.validation import RequestError

FIBER_GRAY_LEVEL = 128  # gray value (0-255) from which a pixel counts as fiber
MAX_PNG_BYTES = 1 << 20  # a 32x32 PNG is a few hundred bytes; refuse anything absurd early
UPSCALE = 8  # each strain pixel becomes an UPSCALE x UPSCALE block in the picture
GAP = 4  # pixels between the panels
PICTURE_DPI = 110  # as predict --png draws it
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def is_png(path: Path) -> bool:
    """Whether the file starts with the PNG signature (what ``predict`` reads as a mask picture)."""
    with open(path, "rb") as f:
        return f.read(len(PNG_SIGNATURE)) == PNG_SIGNATURE


def mask_from_png(data: bytes) -> np.ndarray:
    """PNG bytes -> E map float32 ``[1, 1, 32, 32]`` MPa; :class:`RequestError` if unusable."""
    from PIL import Image, UnidentifiedImageError

    if len(data) > MAX_PNG_BYTES:
        raise RequestError(f"image is {len(data)} bytes; a 32x32 PNG needs far fewer", 413)
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format != "PNG":
                raise RequestError(f"image must be a PNG, got {img.format or 'unknown format'}")
            if img.size != (GRID, GRID):
                raise RequestError(f"image is {img.size[0]}x{img.size[1]}; expected {GRID}x{GRID}")
            gray = np.asarray(img.convert("L"), dtype=np.uint8)  # [32, 32], row 0 = top
    except UnidentifiedImageError:  # its message names a Python object, not the problem
        raise RequestError(
            f"image is not a readable PNG: {len(data)} bytes in no image format Pillow knows"
        ) from None
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise RequestError(f"image is not a readable PNG ({exc})") from None
    return mask_to_youngs_modulus(gray >= FIBER_GRAY_LEVEL)[None, None]


def mask_to_png(mask: np.ndarray) -> bytes:
    """Bool or 0/1 ``[32, 32]`` fiber mask -> grayscale PNG (fiber white); for docs and tests."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((np.asarray(mask) > 0.5).astype(np.uint8) * 255, mode="L").save(buf, "PNG")
    return buf.getvalue()


def strain_png(strain: np.ndarray) -> bytes:
    """Strain ``[3, 32, 32]`` -> RGB PNG of the channels left to right (eps_xx, eps_yy, gamma_xy).

    Each channel in its colours of :mod:`microstrain.plots` over its own range (gamma_xy
    diverging, symmetric about zero), each pixel enlarged to an ``UPSCALE`` block.
    """
    from PIL import Image

    panels = []
    for channel, field in zip(STRAIN_CHANNELS, np.asarray(strain, np.float64), strict=True):
        colours = plots.rgb(field, channel)  # [32, 32, 3]
        panels.append(np.kron(colours, np.ones((UPSCALE, UPSCALE, 1), np.uint8)))
    side = GRID * UPSCALE
    canvas = np.full((side, 3 * side + 2 * GAP, 3), 255, np.uint8)  # white gaps
    for i, panel in enumerate(panels):
        canvas[:, i * (side + GAP) : i * (side + GAP) + side] = panel
    buf = io.BytesIO()
    Image.fromarray(canvas, mode="RGB").save(buf, "PNG")
    return buf.getvalue()


def prediction_figure(
    youngs_modulus: np.ndarray, strain: np.ndarray, plane: str, applied_strain: float, title: str
) -> Any:
    """One sample as the specimen stands: E ``[1, 1, 32, 32]`` MPa and its strain
    ``[1, 3, 32, 32]`` in the first row; von Mises (under E) and stress in the second, with
    E_x and the peak von Mises stress in the title (strain only when ū = 0)."""
    from microstrain.quantities import quantities

    rows = [plots.field_panels(youngs_modulus[0, 0], strain[0])]
    if applied_strain:
        q = quantities(youngs_modulus, strain, plane, applied_strain)
        rows.append(plots.stress_panels(q["stress"][0], q["von_mises"][0]))
        title += (
            f"\nE_x = {q['E_x'][0]:,.0f} MPa, ν_xy = {q['nu_xy'][0]:.3f}, "
            f"peak von Mises {q['max_von_mises'][0]:,.0f} MPa (plane {plane})"
        )
    return plots.figure(rows, title, panel_size=(3.5, 3.0))


def prediction_png(
    youngs_modulus: np.ndarray, strain: np.ndarray, plane: str, applied_strain: float, model: str
) -> bytes:
    """:func:`prediction_figure` of the first sample as PNG bytes (``/predict_image``)."""
    title = f"surrogate '{model}', applied strain ū = {applied_strain:g}"
    fig = prediction_figure(youngs_modulus[:1], strain[:1], plane, applied_strain, title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=PICTURE_DPI)
    return buf.getvalue()
