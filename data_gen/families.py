"""Named microstructure distributions: training presets and held-out evaluation families.

A **preset** is a named :class:`GeneratorConfig` (``microstrain generate --preset NAME``):

- ``default``: what ``generate`` draws without options (and what ``models/default`` was trained
  on): circles, target fraction 0.2–0.5, radius 0.05–0.12;
- ``mixture``: a broad training distribution for a model that must serve fiber fractions
  0.05–0.6, radii 0.03–0.15, circular and elliptical fibers. Per sample it draws the target
  fraction (0.05–0.7; what cannot be packed stops at the jamming fraction, ≤ 0.6), its own
  radius sub-range of 0.03–0.15, one shape (circle, or ellipse of aspect 1.5–3 at a random
  orientation) and, with probability ½, three to six clusters.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from data_gen.microstructure import GeneratorConfig
from microstrain.errors import InputError

MIXTURE = GeneratorConfig(
    # targets above what random sequential addition can pack stop at its jamming fraction
    # (0.45-0.6): drawing them up to 0.7 puts about one sample in ten into 0.5-0.6
    fiber_fraction_min=0.05,
    fiber_fraction_max=0.7,
    radius_min=0.03,
    radius_max=0.15,
    min_gap=0.0,  # a gap of 0.01 is a third of the smallest radius and caps dense samples
    max_attempts=1000,
    shapes=("circle", "ellipse"),
    shape_choice="sample",
    aspect_min=1.5,
    aspect_max=3.0,
    radius_per_sample=True,
    cluster_probability=0.5,
    clusters_min=3,
    clusters_max=6,
    cluster_spread=0.12,
)

PRESETS: dict[str, GeneratorConfig] = {"default": GeneratorConfig(), "mixture": MIXTURE}


def preset(name: str) -> GeneratorConfig:
    """The generator of a preset."""
    if name in PRESETS:
        return PRESETS[name]
    raise InputError(f"unknown preset {name!r}; choose one of {', '.join(preset_names())}")


def preset_names() -> list[str]:
    return [*PRESETS]


def configure(name: str, **overrides: Any) -> GeneratorConfig:
    """Preset ``name`` with the parameters given in ``overrides`` (``None`` = keep the preset's)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    return replace(preset(name), **given)
