"""Named microstructure distributions: training presets and held-out evaluation families.

A **preset** is a named :class:`GeneratorConfig` (``microstrain generate --preset NAME``):

- ``default``: what ``generate`` draws without options (and what ``models/default`` was trained
  on): circles, target fraction 0.2–0.5, radius 0.05–0.12;
- ``mixture``: a broad training distribution for a model that must serve fiber fractions
  0.05–0.6, radii 0.03–0.15, circular and elliptical fibers. Per sample it draws the target
  fraction (0.05–0.7; what cannot be packed stops at the jamming fraction, ≤ 0.6), its own
  radius sub-range of 0.03–0.15, one shape (circle, or ellipse of aspect 1.5–3 at a random
  orientation) and, with probability ½, three to six clusters.

An **evaluation family** (``microstrain generate --family NAME``) is a preset with a fixed seed,
unlike the ``default`` training distribution in one respect each (SPEC §10). Its definition —
parameters and seed — is shipped, not its files; ``--family all -o DIR`` writes them all. The
seeds are far from the small seeds used for training sets; and since a sample depends on
(config, seed, index), a family's samples differ from every training sample anyway. The fiber
fractions each family claims (``fraction_range``) are what its first 64 samples achieve, and a
test checks them (``tests/data_gen/test_families.py``).

Periodic datasets (``generate --boundary periodic``, SPEC §11) draw every preset and family on the
torus (``GeneratorConfig.periodic``): the same parameters and seeds, with fibers that continue
across the edges. Their fractions stay in the same claimed ranges, except where a fiber cut by the
square's edge used to lose area: on the torus a fiber keeps all of it, so large and edge-cut
fibers reach a little more (``periodic_fraction_range``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
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


@dataclass(frozen=True)
class Family:
    """A held-out evaluation distribution: a generator, a fixed seed, what it claims."""

    name: str
    description: str
    generator: GeneratorConfig
    seed: int
    fraction_range: tuple[float, float]  # achieved rasterized fiber fractions (claimed)
    periodic_fraction_range: tuple[float, float] | None = None  # on the torus, where it differs

    @property
    def torus_fraction_range(self) -> tuple[float, float]:
        """The fractions its periodic twin achieves (claimed)."""
        return self.periodic_fraction_range or self.fraction_range


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "sparse",
            "few fibers: fiber fraction 0.05-0.15",
            # the last fiber may overshoot the target by its own area
            GeneratorConfig(fiber_fraction_min=0.05, fiber_fraction_max=0.12),
            seed=900_001,
            fraction_range=(0.05, 0.15),
        ),
        Family(
            "dense",
            "packed fibers: fiber fraction 0.5-0.6, radius 0.03-0.1, no gap (so RSA reaches it)",
            GeneratorConfig(
                fiber_fraction_min=0.5,
                fiber_fraction_max=0.59,
                radius_min=0.03,
                radius_max=0.1,
                min_gap=0.0,
            ),
            seed=900_002,
            fraction_range=(0.5, 0.6),
        ),
        Family(
            "small-fibers",
            "many small fibers, radius 0.025-0.04 (0.8-1.3 pixels)",
            GeneratorConfig(
                fiber_fraction_min=0.2, fiber_fraction_max=0.4, radius_min=0.025, radius_max=0.04
            ),
            seed=900_003,
            fraction_range=(0.2, 0.4),
        ),
        Family(
            "large-fibers",
            "one or two large fibers, radius 0.2-0.3",
            GeneratorConfig(
                fiber_fraction_min=0.15,
                fiber_fraction_max=0.45,
                radius_min=0.2,
                radius_max=0.3,
                max_fibers=2,
            ),
            seed=900_004,
            fraction_range=(0.15, 0.4),
            periodic_fraction_range=(0.15, 0.5),
        ),
        Family(
            "ellipses",
            "elongated elliptical fibers, aspect ratio 2.5-5, random orientation",
            GeneratorConfig(
                fiber_fraction_min=0.15,
                fiber_fraction_max=0.35,
                radius_min=0.05,
                radius_max=0.1,
                shapes=("ellipse",),
                aspect_min=2.5,
                aspect_max=5.0,
            ),
            seed=900_005,
            fraction_range=(0.15, 0.36),
        ),
        Family(
            "clustered",
            "fibers gathered around 2-3 cluster centres",
            GeneratorConfig(
                fiber_fraction_min=0.15,
                fiber_fraction_max=0.3,
                radius_min=0.04,
                radius_max=0.08,
                cluster_probability=1.0,
                clusters_min=2,
                clusters_max=3,
                cluster_spread=0.1,
            ),
            seed=900_006,
            fraction_range=(0.13, 0.31),
        ),
        Family(
            "edge-cut",
            "every fiber cut by an edge of the square",
            GeneratorConfig(
                fiber_fraction_min=0.1,
                fiber_fraction_max=0.25,
                radius_min=0.06,
                radius_max=0.12,
                edges="cut",
            ),
            seed=900_007,
            fraction_range=(0.1, 0.25),
            periodic_fraction_range=(0.1, 0.26),
        ),
        Family(
            "polygons",
            "regular polygonal fibers, 3-6 sides, random orientation",
            GeneratorConfig(
                fiber_fraction_min=0.2,
                fiber_fraction_max=0.4,
                radius_min=0.05,
                radius_max=0.1,
                shapes=("polygon",),
                sides_min=3,
                sides_max=6,
            ),
            seed=900_008,
            fraction_range=(0.2, 0.4),
        ),
    )
}


def preset(name: str) -> GeneratorConfig:
    """The generator of a preset or of a family (a family's parameters without its seed)."""
    if name in PRESETS:
        return PRESETS[name]
    if name in FAMILIES:
        return FAMILIES[name].generator
    raise InputError(f"unknown preset {name!r}; choose one of {', '.join(preset_names())}")


def preset_names() -> list[str]:
    return [*PRESETS, *FAMILIES]


def configure(name: str, **overrides: Any) -> GeneratorConfig:
    """Preset ``name`` with the parameters given in ``overrides`` (``None`` = keep the preset's)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    return replace(preset(name), **given)


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise InputError(f"unknown family {name!r}; choose one of {', '.join(FAMILIES)} or 'all'")
    return FAMILIES[name]


def family_outputs(name: str, output: Path) -> list[tuple[Family, Path]]:
    """The families ``name`` asks for and their files: ``all`` writes ``output/<family>.h5``
    (the directory is created if its parent exists), a single family writes ``output``."""
    if name != "all":
        return [(family(name), output)]
    if output.suffix in (".h5", ".hdf5"):
        raise InputError(
            f"--family all writes one file per family: -o must be a directory, not {output}"
        )
    try:
        output.mkdir(exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output directory {output}: {exc.strerror}") from None
    return [(f, output / f"{f.name}.h5") for f in FAMILIES.values()]
