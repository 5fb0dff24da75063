"""Random fiber/matrix microstructures: non-overlapping fibers in the unit square (RSA sampler).

Algorithm (random sequential addition): for each sample a target fiber fraction is drawn from
``fiber_fraction_range``; candidate fibers with an equivalent radius drawn from ``radius_range``
are placed at random centres and kept when they keep at least ``min_gap`` from every fiber
already placed. Fibers are added until the *rasterized* fiber fraction reaches the target (or
``max_attempts`` placements have failed in a row, or ``max_fibers`` are placed — the sample then
keeps the fraction it reached). By default the square is **not periodic**: the load case of
SPEC §1 has roller and free edges, not periodic ones, so a fiber whose centre lies near an edge is
cut by it. With ``periodic`` (the geometry of periodic datasets, SPEC §11) the square is one
period of the torus: a fiber cut by an edge continues on the opposite edge, clearance is tested
against every fiber's periodic images, and a fiber too large for one period is not placed.

Beyond the default (circles, uniform centres, fibers may be cut by the edges), the config draws

- shapes: circles, ellipses (aspect ratio and orientation ranges), regular polygons (3–12
  sides), chosen per fiber or once per sample (:mod:`data_gen.fiber_shapes`; clearance is tested
  conservatively on covering discs, so ``min_gap`` holds for every shape);
- clustering: with ``cluster_probability`` a sample draws a few cluster centres and its fiber
  centres scatter around them (Gaussian, ``cluster_spread``);
- edges: ``free`` (the default), ``avoid`` (every fiber keeps ``min_gap`` from the four edges) or
  ``cut`` (every fiber crosses an edge);
- ``radius_per_sample``: each sample draws its own sub-range of ``radius_range`` (varies the
  polydispersity between samples; used by the broad ``mixture`` preset of
  :mod:`data_gen.families`).

Every option draws from the random stream only when it is switched on, so the default config
gives bit for bit the samples it always gave (tested against recorded values).

Rasterization follows SPEC §2: pixel (i, j) is fiber when its centre
``x = (j + ½)/32, y = 1 − (i + ½)/32`` lies inside a fiber, so row 0 is the top (y = 1).

Reproducibility: sample ``i`` of a dataset with seed ``S`` is drawn from the per-sample seed
``sample_seed(S, i)`` alone (stored in the dataset's ``seed`` column); ``microstructure(config,
sample_seed)`` regenerates it without the rest of the dataset.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np

from data_gen.fiber_shapes import (
    CIRCLE,
    ELLIPSE,
    POLYGON,
    SHAPES,
    FiberSet,
    clearance,
    disc_mask,
    discs_clear,
    half_width,
    periodic_clearance,
    shape_mask,
)
from microstrain.conventions import FIBER, GRID, MATRIX, Material
from microstrain.errors import InputError
from microstrain.fields import mask_to_youngs_modulus

__all__ = [
    "GeneratorConfig",
    "Microstructure",
    "disc_mask",
    "microstructure",
    "sample_microstructures",
    "sample_seed",
]

ALGORITHM = "random-sequential-addition"
EDGES = ("free", "avoid", "cut")
SHAPE_CHOICES = ("fiber", "sample")
_BATCH = 32  # candidates screened per vectorized step


@dataclass(frozen=True)
class GeneratorConfig:
    """Every parameter of the sampler; stored as the dataset's ``generator`` attribute.

    Lengths are fractions of the side of the unit square (one pixel = 1/32 = 0.03125); a fiber's
    radius is its equivalent radius (the circle of the same area), angles are in degrees from x.
    """

    fiber_fraction_min: float = 0.2
    fiber_fraction_max: float = 0.5
    radius_min: float = 0.05
    radius_max: float = 0.12
    min_gap: float = 0.01
    # consecutive failed placements after which a sample stops short of its target fraction
    max_attempts: int = 2000
    max_fibers: int = 0  # fibers per sample at most; 0 = no limit
    shapes: tuple[str, ...] = ("circle",)  # drawn uniformly among these
    shape_choice: str = "fiber"  # "fiber": a shape per fiber; "sample": one shape per sample
    aspect_min: float = 1.5  # ellipse a/b
    aspect_max: float = 3.0
    orientation_min: float = 0.0  # degrees; ellipse major axis / polygon vertex
    orientation_max: float = 180.0
    sides_min: int = 3  # regular polygons
    sides_max: int = 6
    radius_per_sample: bool = False  # each sample draws a sub-range of [radius_min, radius_max]
    cluster_probability: float = 0.0  # probability that a sample is clustered
    clusters_min: int = 2  # cluster centres of a clustered sample
    clusters_max: int = 4
    cluster_spread: float = 0.08  # standard deviation of fiber centres around their cluster
    edges: str = "free"  # "free" | "avoid" (no fiber within min_gap of an edge) | "cut"
    algorithm: str = field(default=ALGORITHM, init=False)
    periodic: bool = False  # fibers on the torus (periodic datasets, SPEC §11)
    # pixels per side; a larger periodic RVE (a multiple of 32) keeps the lengths above in units
    # of 32 pixels, so its fibers are as large in pixels as those of a 32 x 32 image
    grid: int = GRID

    def __post_init__(self) -> None:
        lo, hi = self.fiber_fraction_min, self.fiber_fraction_max
        if not 0.0 <= lo <= hi < 1.0:
            raise InputError(
                f"fiber fraction range [{lo:g}, {hi:g}] must satisfy 0 <= min <= max < 1"
            )
        if not 0.0 < self.radius_min <= self.radius_max <= 0.5:
            raise InputError(
                f"radius range [{self.radius_min:g}, {self.radius_max:g}] must satisfy "
                "0 < min <= max <= 0.5 (fractions of the side)"
            )
        if not 0.0 <= self.min_gap < 0.5:
            raise InputError(f"minimum gap {self.min_gap:g} must satisfy 0 <= gap < 0.5")
        if self.max_attempts < 1:
            raise InputError(f"max attempts {self.max_attempts} must be at least 1")
        if self.max_fibers < 0:
            raise InputError(f"max fibers {self.max_fibers} must be >= 0 (0 = no limit)")
        self._check_shapes()
        self._check_placement()
        if int(self.grid) != self.grid or self.grid < GRID or self.grid % GRID:
            raise InputError(f"grid must be a multiple of {GRID} pixels; got {self.grid}")
        if self.grid != GRID and not self.periodic:
            raise InputError(
                f"a {self.grid} x {self.grid} image is a periodic RVE: draw it with periodic "
                "geometry (generate --boundary periodic)"
            )

    @property
    def side(self) -> float:
        """Side of the drawn square in units of 32 pixels (1 for a 32 x 32 image)."""
        return self.grid / GRID

    def _check_shapes(self) -> None:
        unknown = [s for s in self.shapes if s not in SHAPES]
        if not self.shapes or unknown or len(set(self.shapes)) != len(self.shapes):
            raise InputError(
                f"shapes {','.join(self.shapes) or '(none)'} must be distinct names among "
                f"{', '.join(SHAPES)}"
            )
        if self.shape_choice not in SHAPE_CHOICES:
            raise InputError(f"shape choice must be one of {', '.join(SHAPE_CHOICES)}")
        if not 1.0 <= self.aspect_min <= self.aspect_max <= 10.0:
            raise InputError(
                f"aspect ratio range [{self.aspect_min:g}, {self.aspect_max:g}] must satisfy "
                "1 <= min <= max <= 10"
            )
        if not 0.0 <= self.orientation_min <= self.orientation_max <= 180.0:
            raise InputError(
                f"orientation range [{self.orientation_min:g}, {self.orientation_max:g}] must "
                "satisfy 0 <= min <= max <= 180 (degrees)"
            )
        if not 3 <= self.sides_min <= self.sides_max <= 12:
            raise InputError(
                f"polygon sides [{self.sides_min}, {self.sides_max}] must satisfy "
                "3 <= min <= max <= 12"
            )

    def _check_placement(self) -> None:
        if not 0.0 <= self.cluster_probability <= 1.0:
            raise InputError(f"cluster probability {self.cluster_probability:g} must be in [0, 1]")
        if not 1 <= self.clusters_min <= self.clusters_max:
            raise InputError(
                f"cluster count range [{self.clusters_min}, {self.clusters_max}] must satisfy "
                "1 <= min <= max"
            )
        if not self.cluster_spread > 0.0:
            raise InputError(f"cluster spread {self.cluster_spread:g} must be positive")
        if self.edges not in EDGES:
            raise InputError(f"edges must be one of {', '.join(EDGES)}; got {self.edges!r}")
        if self.edges == "cut" and self.cluster_probability > 0.0:
            raise InputError("edges 'cut' places every fiber on an edge: it cannot be clustered")

    def to_json_dict(self, seed: int) -> dict[str, object]:
        """The ``generator`` attribute: every parameter plus the dataset seed."""
        return {**asdict(self), "shapes": list(self.shapes), "seed": int(seed)}

    @classmethod
    def from_json_dict(cls, generator: dict[str, object]) -> GeneratorConfig:
        """Inverse of :meth:`to_json_dict` (the dataset seed and fixed fields are dropped).

        Files written before a parameter existed lack its key: it takes its default, which is
        what those files were drawn with.
        """
        names = {f.name for f in fields(cls) if f.init}
        kw: dict[str, Any] = {k: v for k, v in generator.items() if k in names}
        if "shapes" in kw:
            kw["shapes"] = tuple(kw["shapes"])  # type: ignore[arg-type]
        return cls(**kw)


@dataclass(frozen=True)
class Microstructure:
    """One sample: its fibers (one row each) and their rasterization.

    ``config`` is the sample's own config: the dataset's, with the per-sample choices (radius
    sub-range, shape) filled in.
    """

    centres: np.ndarray  # [F, 2] (x, y), y up, unit square
    radii: np.ndarray  # [F] equivalent radii
    kinds: np.ndarray  # int [F] index into fiber_shapes.SHAPES
    aspects: np.ndarray  # [F] a/b of ellipses (1 for the other shapes)
    angles: np.ndarray  # [F] radians
    sides: np.ndarray  # int [F] polygon sides (0 for the other shapes)
    mask: np.ndarray  # bool [n, n] (n = config.grid, 32 by default), row 0 = top
    target_fraction: float
    clusters: np.ndarray  # [C, 2] cluster centres; [0, 2] when not clustered
    config: GeneratorConfig

    @property
    def youngs_modulus(self) -> np.ndarray:
        """float32 [1, 32, 32] MPa."""
        return mask_to_youngs_modulus(self.mask)[None]

    @property
    def fiber_fraction(self) -> float:
        return float(self.mask.mean())


def sample_seed(seed: int, index: int) -> int:
    """Per-sample seed (non-negative int64) of sample ``index`` of a dataset with ``seed``.

    Depends on (seed, index) only, so a dataset of N samples is a prefix of one with more.
    """
    if seed < 0 or index < 0:
        raise InputError(f"seed and sample index must be non-negative (got {seed}, {index})")
    state = np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint64)[0]
    return int(state >> np.uint64(1))  # 63 bits: fits int64


def _sample_choices(
    config: GeneratorConfig, rng: np.random.Generator
) -> tuple[GeneratorConfig, np.ndarray | None]:
    """The per-sample draws: this sample's config and its cluster centres [C, 2] (or None)."""
    if config.radius_per_sample:
        lo, hi = np.sort(rng.uniform(config.radius_min, config.radius_max, size=2))
        config = replace(
            config, radius_min=float(lo), radius_max=float(hi), radius_per_sample=False
        )
    if config.shape_choice == "sample":
        shape = config.shapes[int(rng.integers(len(config.shapes)))]
        config = replace(config, shapes=(shape,), shape_choice="fiber")
    p = config.cluster_probability
    if p <= 0.0 or (p < 1.0 and rng.uniform() >= p):
        return config, None
    count = int(rng.integers(config.clusters_min, config.clusters_max + 1))
    return config, config.side * rng.uniform(0.0, 1.0, size=(count, 2))  # [C, 2]


def _draw_batch(
    config: GeneratorConfig, clusters: np.ndarray | None, rng: np.random.Generator
) -> tuple[FiberSet, np.ndarray]:
    """_BATCH candidate fibers and whether the edge rule allows each (bool [B]).

    Circles with uniform centres draw exactly what they always drew.
    """
    side = config.side  # 1 for a 32 x 32 image
    r = rng.uniform(config.radius_min, config.radius_max, size=_BATCH)  # [B]
    u = rng.uniform(0.0, 1.0, size=(_BATCH, 2))  # [B, 2]
    if side != 1.0:
        u = side * u
    if config.shapes == ("circle",):
        kinds = np.zeros(_BATCH, dtype=np.int64)
        aspects, angles = np.ones(_BATCH), np.zeros(_BATCH)
        sides = np.zeros(_BATCH, dtype=np.int64)
    else:
        codes = np.array([SHAPES.index(s) for s in config.shapes])
        kinds = codes[rng.integers(len(codes), size=_BATCH)]  # [B]
        aspects = rng.uniform(config.aspect_min, config.aspect_max, size=_BATCH)
        angles = np.radians(rng.uniform(config.orientation_min, config.orientation_max, _BATCH))
        sides = rng.integers(config.sides_min, config.sides_max + 1, size=_BATCH)
        aspects = np.where(kinds == ELLIPSE, aspects, 1.0)  # only what each shape uses
        angles = np.where(kinds == CIRCLE, 0.0, angles)
        sides = np.where(kinds == POLYGON, sides, 0)

    if clusters is not None:
        pick = rng.integers(len(clusters), size=_BATCH)
        c = clusters[pick] + rng.normal(0.0, config.cluster_spread, size=(_BATCH, 2))
    elif config.edges == "cut":
        # centre on a random edge, moved off it by less than the fiber's smallest half-width
        edge = rng.integers(4, size=_BATCH)  # 0 left, 1 right, 2 bottom, 3 top
        w = half_width(kinds, r, aspects, sides)  # [B]
        along, off = u[:, 0], (2.0 * u[:, 1] - 1.0) * w
        c = np.where(
            (edge < 2)[:, None],
            np.stack([np.where(edge == 0, off, side + off), along], axis=1),
            np.stack([along, np.where(edge == 2, off, side + off)], axis=1),
        )
    else:
        c = u
    if config.periodic:  # a centre off the square is the same fiber as its image on it
        c = np.mod(c, side)
    ellipse_discs = math.ceil(3.0 * config.aspect_max)  # see fiber_shapes.covering_discs
    cand = FiberSet.build(c, r, kinds, aspects, angles, sides, ellipse_discs)

    allowed = np.ones(_BATCH, dtype=bool)
    if config.edges == "avoid":
        lo = cand.disc_r + config.min_gap  # [D] nearest allowed disc centre to an edge
        inside = np.all((cand.disc_c >= lo[:, None]) & (cand.disc_c <= side - lo[:, None]), 1)
        allowed = np.logical_and.reduceat(inside, cand.disc_start)
    elif clusters is not None and not config.periodic:  # centres inside the square
        allowed = np.all((c >= 0.0) & (c <= side), axis=1)
    return cand, allowed


def microstructure(config: GeneratorConfig, per_sample_seed: int) -> Microstructure:
    """Draw one microstructure from its per-sample seed (see :func:`sample_seed`).

    Candidates are drawn in batches and screened against the placed fibers in one vectorized
    step, then accepted in draw order; the result is the sequential algorithm's, only faster.
    """
    rng = np.random.default_rng(per_sample_seed)
    target = float(rng.uniform(config.fiber_fraction_min, config.fiber_fraction_max))
    sample, clusters = _sample_choices(config, rng)
    circles = sample.shapes == ("circle",)
    placed = FiberSet.empty()
    grid = config.grid
    mask = np.zeros((grid, grid), dtype=bool)
    fiber_pixels, needed = 0, target * grid * grid
    failures, limit = 0, config.max_fibers or np.iinfo(np.int64).max

    def going(count: int) -> bool:
        return fiber_pixels < needed and failures < config.max_attempts and count < limit

    while going(len(placed)):
        cand, allowed = _draw_batch(sample, clusters, rng)
        if config.periodic:
            free, pair_clear, own = periodic_clearance(cand, placed, config.min_gap, config.side)
            allowed = allowed & own
        elif circles:  # every fiber is its own covering disc: test all pairs at once
            free = discs_clear(cand.c, cand.r, placed.c, placed.r, config.min_gap).all(axis=1)
            pair_clear = discs_clear(cand.c, cand.r, cand.c, cand.r, config.min_gap)  # [B, B]
        else:
            free, pair_clear = clearance(cand, placed, config.min_gap)
        accepted: list[int] = []
        for b in range(_BATCH):
            if not going(len(placed) + len(accepted)):
                break
            if not (allowed[b] and free[b] and pair_clear[b, accepted].all()):
                failures += 1
                continue
            failures = 0
            accepted.append(b)
            if cand.kinds[b] == CIRCLE and not config.periodic:
                mask |= disc_mask(cand.c[b, 0], cand.c[b, 1], cand.r[b])
            else:
                mask |= shape_mask(
                    int(cand.kinds[b]), float(cand.c[b, 0]), float(cand.c[b, 1]),
                    float(cand.r[b]), float(cand.aspects[b]), float(cand.angles[b]),
                    int(cand.sides[b]), grid, periodic=config.periodic,
                )  # fmt: skip
            fiber_pixels = int(np.count_nonzero(mask))
        if accepted:
            placed = placed.concat(cand.take(accepted))
    return Microstructure(
        centres=placed.c,
        radii=placed.r,
        kinds=placed.kinds,
        aspects=placed.aspects,
        angles=placed.angles,
        sides=placed.sides,
        mask=mask,
        target_fraction=target,
        clusters=clusters if clusters is not None else np.empty((0, 2)),
        config=sample,
    )


def sample_microstructures(
    config: GeneratorConfig,
    seed: int,
    indices: range | list[int],
    *,
    fiber: Material = FIBER,
    matrix: Material = MATRIX,
) -> tuple[np.ndarray, np.ndarray]:
    """Samples ``indices`` of the dataset with ``seed``.

    Returns E float32 [n, 1, grid, grid] MPa (the moduli of ``fiber`` and ``matrix``: the lecture's
    pair by default) and the per-sample seeds int64 [n].
    """
    seeds = np.array([sample_seed(seed, i) for i in indices], dtype=np.int64)  # [n]
    e = np.empty((len(seeds), 1, config.grid, config.grid), dtype=np.float32)  # [n, 1, 32, 32]
    for row, s in enumerate(seeds):
        mask = microstructure(config, int(s)).mask
        e[row, 0] = mask_to_youngs_modulus(mask, fiber=fiber, matrix=matrix)
    return e, seeds
