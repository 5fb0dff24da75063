"""Random fiber/matrix microstructures: non-overlapping circular fibers in the unit square.

Algorithm (random sequential addition): for each sample a target fiber fraction is drawn from
``fiber_fraction_range``; fibers with a radius drawn from ``radius_range`` are placed at uniformly
random centres in [0, 1]² and kept when they keep at least ``min_gap`` (centre distance
≥ r₁ + r₂ + gap) from every fiber already placed. Fibers are added until the *rasterized* fiber
fraction reaches the target (or ``max_attempts`` placements have failed in a row — the sample then
keeps the fraction it reached). The square is **not periodic**: the load case of SPEC §1 has roller
and free edges, not periodic ones, so a fiber whose centre lies near an edge is simply cut by it.

Rasterization follows SPEC §2: pixel (i, j) is fiber when its centre
``x = (j + ½)/32, y = 1 − (i + ½)/32`` lies inside a fiber, so row 0 is the top (y = 1).

Reproducibility: sample ``i`` of a dataset with seed ``S`` is drawn from the per-sample seed
``sample_seed(S, i)`` alone (stored in the dataset's ``seed`` column); ``microstructure(config,
sample_seed)`` regenerates it without the rest of the dataset.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import numpy as np

from microstrain.conventions import GRID
from microstrain.errors import InputError
from microstrain.fields import mask_to_youngs_modulus

ALGORITHM = "random-sequential-addition"
# Pixel-centre coordinates in the SPEC §2 image convention (row 0 = top, y = 1).
_PIXEL_X = (np.arange(GRID) + 0.5) / GRID  # [32] x of column j
_BATCH = 32  # candidates screened per vectorized step
_PIXEL_Y = 1.0 - (np.arange(GRID) + 0.5) / GRID  # [32] y of row i


@dataclass(frozen=True)
class GeneratorConfig:
    """Every parameter of the sampler; stored as the dataset's ``generator`` attribute.

    Lengths are fractions of the side of the unit square (one pixel = 1/32 = 0.03125).
    """

    fiber_fraction_min: float = 0.2
    fiber_fraction_max: float = 0.5
    radius_min: float = 0.05
    radius_max: float = 0.12
    min_gap: float = 0.01
    # consecutive failed placements after which a sample stops short of its target fraction
    max_attempts: int = 2000
    algorithm: str = field(default=ALGORITHM, init=False)
    periodic: bool = field(default=False, init=False)

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

    def to_json_dict(self, seed: int) -> dict[str, object]:
        """The ``generator`` attribute: every parameter plus the dataset seed."""
        return {**asdict(self), "seed": int(seed), "grid": GRID}

    @classmethod
    def from_json_dict(cls, generator: dict[str, object]) -> GeneratorConfig:
        """Inverse of :meth:`to_json_dict` (the dataset seed and fixed fields are dropped)."""
        names = {f.name for f in fields(cls) if f.init}
        return cls(**{k: v for k, v in generator.items() if k in names})  # type: ignore[arg-type]


@dataclass(frozen=True)
class Microstructure:
    """One sample: fibers as circles and their rasterization."""

    centres: np.ndarray  # [F, 2] (x, y), y up, unit square
    radii: np.ndarray  # [F]
    mask: np.ndarray  # bool [32, 32], row 0 = top
    target_fraction: float

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


def disc_mask(cx: float, cy: float, r: float) -> np.ndarray:
    """bool [32, 32]: pixels whose centre lies in the disc of centre (cx, cy), radius r."""
    dx2 = (_PIXEL_X - cx) ** 2  # [32] per column
    dy2 = (_PIXEL_Y - cy) ** 2  # [32] per row
    return (dy2[:, None] + dx2[None, :]) <= r * r  # [32, 32]


def _clear(
    c1: np.ndarray, r1: np.ndarray, c2: np.ndarray, r2: np.ndarray, gap: float
) -> np.ndarray:
    """bool [n1, n2]: disc pairs at least ``gap`` apart (centres [n, 2], radii [n])."""
    dx = c1[:, None, 0] - c2[None, :, 0]  # [n1, n2]
    dy = c1[:, None, 1] - c2[None, :, 1]
    reach = r1[:, None] + r2[None, :] + gap
    return dx * dx + dy * dy >= reach * reach


def microstructure(config: GeneratorConfig, per_sample_seed: int) -> Microstructure:
    """Draw one microstructure from its per-sample seed (see :func:`sample_seed`).

    Candidates are drawn in batches and screened against the placed fibers in one vectorized
    step, then accepted in draw order; the result is the sequential algorithm's, only faster.
    """
    rng = np.random.default_rng(per_sample_seed)
    target = float(rng.uniform(config.fiber_fraction_min, config.fiber_fraction_max))
    centres = np.empty((0, 2))  # [F, 2]
    radii = np.empty(0)  # [F]
    mask = np.zeros((GRID, GRID), dtype=bool)
    fiber_pixels, needed = 0, target * GRID * GRID
    failures = 0
    while fiber_pixels < needed and failures < config.max_attempts:
        cand_r = rng.uniform(config.radius_min, config.radius_max, size=_BATCH)  # [B]
        cand_c = rng.uniform(0.0, 1.0, size=(_BATCH, 2))  # [B, 2]
        # clearance of every candidate to every placed fiber [B, F] and to each other [B, B]
        free = _clear(cand_c, cand_r, centres, radii, config.min_gap).all(axis=1)  # [B]
        pair_clear = _clear(cand_c, cand_r, cand_c, cand_r, config.min_gap)  # [B, B]
        accepted: list[int] = []
        for b in range(_BATCH):
            if fiber_pixels >= needed or failures >= config.max_attempts:
                break
            if not (free[b] and pair_clear[b, accepted].all()):
                failures += 1
                continue
            failures = 0
            accepted.append(b)
            mask |= disc_mask(cand_c[b, 0], cand_c[b, 1], cand_r[b])
            fiber_pixels = int(np.count_nonzero(mask))
        if accepted:
            centres = np.concatenate([centres, cand_c[accepted]])
            radii = np.concatenate([radii, cand_r[accepted]])
    return Microstructure(centres, radii, mask, target)


def sample_microstructures(
    config: GeneratorConfig, seed: int, indices: range | list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Samples ``indices`` of the dataset with ``seed``.

    Returns E float32 [n, 1, 32, 32] MPa and the per-sample seeds int64 [n].
    """
    seeds = np.array([sample_seed(seed, i) for i in indices], dtype=np.int64)  # [n]
    e = np.empty((len(seeds), 1, GRID, GRID), dtype=np.float32)  # [n, 1, 32, 32]
    for row, s in enumerate(seeds):
        e[row] = microstructure(config, int(s)).youngs_modulus
    return e, seeds
