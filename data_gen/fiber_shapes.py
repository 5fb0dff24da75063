"""Fiber cross-sections: circles, ellipses and regular polygons — their pixels and their clearance.

Every fiber is given by its kind, centre (x, y) and its **equivalent radius** r, the radius of the
circle of the same area, so a radius range means the same fiber size for every shape:

- circle: radius r;
- ellipse: semi-axes a = r·√α ≥ b = r/√α for aspect ratio α ≥ 1, major axis at angle θ from x;
- polygon: regular, n sides, circumradius R = r·√(2π / (n·sin(2π/n))), a vertex at angle θ.

Clearance is tested on **covering discs**: every fiber is contained in the union of a few discs
(one for a circle, the circumcircle for a polygon, a chain of ⌈3α⌉ discs along the major axis
for an ellipse), and two fibers are accepted when every disc of one keeps ``gap`` from every disc
of the other. That test is conservative — the true gap is never smaller than requested — and for
an ellipse the chain hugs the outline (it reaches at most about 12 % of the half-width b beyond
it), so elongated fibers can still pack densely.

Only fiber pairs whose bounding circles come within ``gap`` are tested disc by disc.

Rasterization follows SPEC §2: a pixel is fiber when its centre lies inside the shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from microstrain.conventions import GRID

SHAPES = ("circle", "ellipse", "polygon")
CIRCLE, ELLIPSE, POLYGON = range(3)  # codes of SHAPES in the per-fiber ``kinds`` arrays
# Pixel-centre coordinates in the SPEC §2 image convention (row 0 = top, y = 1).
PIXEL_X = (np.arange(GRID) + 0.5) / GRID  # [32] x of column j
PIXEL_Y = 1.0 - (np.arange(GRID) + 0.5) / GRID  # [32] y of row i


def pixel_centres(grid: int = GRID) -> tuple[np.ndarray, np.ndarray]:
    """x of each column and y of each row ``[grid]`` of an image of ``grid`` pixels per side.

    Lengths are in units of 32 pixels: a larger periodic RVE (SPEC §11) is the square
    [0, grid/32]², its pixels as large as those of a 32 x 32 image; row 0 is its top.
    """
    if grid == GRID:
        return PIXEL_X, PIXEL_Y
    centres = (np.arange(grid) + 0.5) / GRID
    return centres, grid / GRID - centres


def disc_mask(cx: float, cy: float, r: float, grid: int = GRID) -> np.ndarray:
    """bool [n, n]: pixels whose centre lies in the disc of centre (cx, cy), radius r."""
    px, py = pixel_centres(grid)
    dx2 = (px - cx) ** 2  # [n] per column
    dy2 = (py - cy) ** 2  # [n] per row
    return (dy2[:, None] + dx2[None, :]) <= r * r  # [n, n]


def semi_axes(r: float, aspect: float) -> tuple[float, float]:
    """Ellipse of equivalent radius r and aspect ratio a/b: (a, b), a ≥ b, a·b = r²."""
    root = math.sqrt(aspect)
    return r * root, r / root


def circumradius(r: float, sides: int) -> float:
    """Regular ``sides``-gon of equivalent radius r (same area as the circle of radius r)."""
    return r * math.sqrt(2.0 * math.pi / (sides * math.sin(2.0 * math.pi / sides)))


def shape_mask(
    kind: int,
    cx: float,
    cy: float,
    r: float,
    aspect: float,
    angle: float,
    sides: int,
    grid: int = GRID,
    periodic: bool = False,
) -> np.ndarray:
    """bool [n, n]: pixels whose centre lies in the fiber (``angle`` in radians); ``periodic``:
    or in one of its periodic images (the period is the image's side, grid / 32 in units of 32
    pixels)."""
    if periodic:
        period = grid / GRID
        mask = np.zeros((grid, grid), dtype=bool)
        for sx, sy in IMAGE_SHIFTS:
            x, y = cx + period * sx, cy + period * sy
            mask |= shape_mask(kind, x, y, r, aspect, angle, sides, grid)
        return mask
    if kind == CIRCLE:
        return disc_mask(cx, cy, r, grid)
    px, py = pixel_centres(grid)
    dx = (px - cx)[None, :]  # [1, n]
    dy = (py - cy)[:, None]  # [n, 1]
    if kind == ELLIPSE:
        a, b = semi_axes(r, aspect)
        c, s = math.cos(angle), math.sin(angle)
        u = dx * c + dy * s  # [32, 32] along the major axis
        v = -dx * s + dy * c  # [32, 32] along the minor axis
        return (u / a) ** 2 + (v / b) ** 2 <= 1.0
    big_r = circumradius(r, sides)
    apothem = big_r * math.cos(math.pi / sides)
    inside = np.ones((grid, grid), dtype=bool)
    for k in range(sides):  # the edge between vertices k and k+1 has its normal halfway
        phi = angle + math.pi * (2 * k + 1) / sides
        inside &= dx * math.cos(phi) + dy * math.sin(phi) <= apothem
    return inside


def half_width(
    kinds: np.ndarray, r: np.ndarray, aspects: np.ndarray, sides: np.ndarray
) -> np.ndarray:
    """[B]: smallest distance from each fiber's centre to its outline — a line closer to the
    centre than this cuts the fiber whatever its orientation."""
    n = np.maximum(sides, 3)  # only polygons use it
    polygon = r * np.sqrt(2.0 * np.pi / (n * np.sin(2.0 * np.pi / n))) * np.cos(np.pi / n)
    return np.where(kinds == ELLIPSE, r / np.sqrt(aspects), np.where(kinds == POLYGON, polygon, r))


def outline(
    kind: int, cx: float, cy: float, r: float, aspect: float, angle: float, sides: int, n: int
) -> np.ndarray:
    """[n, 2] points on the fiber's boundary, for plots and for checking clearances in tests."""
    t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)  # [n]
    if kind == CIRCLE:
        local = np.stack([r * np.cos(t), r * np.sin(t)], axis=1)
    elif kind == ELLIPSE:
        a, b = semi_axes(r, aspect)
        local = np.stack([a * np.cos(t), b * np.sin(t)], axis=1)
    else:
        big_r = circumradius(r, sides)
        corners = big_r * np.stack(
            [np.cos(2 * np.pi * np.arange(sides + 1) / sides),
             np.sin(2 * np.pi * np.arange(sides + 1) / sides)], axis=1
        )  # fmt: skip
        s = t / (2.0 * math.pi) * sides  # position along the perimeter, in edges
        k = np.floor(s).astype(int)
        frac = (s - k)[:, None]
        local = (1.0 - frac) * corners[k] + frac * corners[k + 1]
    if kind != CIRCLE:
        c, s_ = math.cos(angle), math.sin(angle)
        local = local @ np.array([[c, s_], [-s_, c]])  # rotate by +angle
    return local + np.array([cx, cy])


def covering_discs(
    kinds: np.ndarray,
    r: np.ndarray,
    aspects: np.ndarray,
    angles: np.ndarray,
    sides: np.ndarray,
    ellipse_discs: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Discs whose union contains each fiber of a batch (all inputs [B], angles in radians).

    Returns ``owner`` int [D] (the fiber of each disc, non-decreasing), centre offsets [D, 2]
    from that fiber's centre and radii [D]. A circle is its own disc, a polygon its
    circumcircle. An ellipse gets ``ellipse_discs`` = m discs, one per segment [x₀, x₁] of m
    equal segments of the major axis [-a, a]. The disc must hold the ellipse's slice over its
    segment: with its centre x_c on the axis that needs ρ² = max over x in [x₀, x₁] of
    f(x) = (x - x_c)² + b²(1 - x²/a²), and f is convex for a ≥ b, so the maximum is at x₀ or
    x₁: the covering is exact. The centre x_c = (x₀ + x₁)/2 · (1 - b²/a²) makes f(x₀) = f(x₁),
    the smallest disc (a circle then gets one disc of radius r however large m is). With
    m = ⌈3α⌉ no disc reaches more than about 12 % of b beyond the outline (α ≤ 5).
    """
    is_ellipse = kinds == ELLIPSE
    rho = np.array(r, dtype=float)  # [B] circles; polygons below
    poly = kinds == POLYGON
    if poly.any():
        n = sides[poly]
        rho[poly] = r[poly] * np.sqrt(2.0 * np.pi / (n * np.sin(2.0 * np.pi / n)))
    single = np.flatnonzero(~is_ellipse)  # [B1] one disc each
    ell = np.flatnonzero(is_ellipse)  # [B2] ellipse_discs each
    root = np.sqrt(aspects[ell])
    a, b = (r[ell] * root)[:, None], (r[ell] / root)[:, None]  # [B2, 1]
    ends = a * np.linspace(-1.0, 1.0, ellipse_discs + 1)  # [B2, m + 1]
    mid = 0.5 * (ends[:, :-1] + ends[:, 1:]) * (1.0 - (b / a) ** 2)  # [B2, m] disc centres

    def reach2(x: np.ndarray) -> np.ndarray:
        return (x - mid) ** 2 + b * b * np.clip(1.0 - (x / a) ** 2, 0.0, None)

    rho_e = np.sqrt(np.maximum(reach2(ends[:, :-1]), reach2(ends[:, 1:])))  # [B2, m]
    t = angles[ell][:, None]
    off_e = np.stack([mid * np.cos(t), mid * np.sin(t)], axis=-1)  # [B2, m, 2]
    owner = np.concatenate([single, np.repeat(ell, ellipse_discs)])  # [D]
    offsets = np.concatenate([np.zeros((len(single), 2)), off_e.reshape(-1, 2)])  # [D, 2]
    radii = np.concatenate([rho[single], rho_e.reshape(-1)])  # [D]
    order = np.argsort(owner, kind="stable")  # discs grouped by fiber, in fiber order
    return owner[order], offsets[order], radii[order]


def discs_clear(
    c1: np.ndarray,
    r1: np.ndarray,
    c2: np.ndarray,
    r2: np.ndarray,
    gap: float,
    periodic: bool = False,
    period: float = 1.0,
) -> np.ndarray:
    """bool [n1, n2]: disc pairs at least ``gap`` apart (centres [n, 2], radii [n]).

    ``periodic``: on the torus of side ``period``, i.e. every periodic image of the second disc
    too (the nearest image per coordinate is the nearest image).
    """
    dx = c1[:, None, 0] - c2[None, :, 0]  # [n1, n2]
    dy = c1[:, None, 1] - c2[None, :, 1]
    if periodic:
        dx, dy = _nearest(dx, period), _nearest(dy, period)
    reach = r1[:, None] + r2[None, :] + gap
    return dx * dx + dy * dy >= reach * reach


@dataclass(frozen=True)
class FiberSet:
    """Fibers as arrays (one row each) with their covering discs (``owner`` non-decreasing)."""

    c: np.ndarray  # [F, 2] centres (x, y)
    r: np.ndarray  # [F] equivalent radii
    kinds: np.ndarray  # int [F] index into SHAPES
    aspects: np.ndarray  # [F] a/b of ellipses, 1 otherwise
    angles: np.ndarray  # [F] radians
    sides: np.ndarray  # int [F] polygon sides, 0 otherwise
    owner: np.ndarray  # int [D] fiber of each covering disc
    disc_c: np.ndarray  # [D, 2]
    disc_r: np.ndarray  # [D]

    @classmethod
    def build(
        cls,
        c: np.ndarray,
        r: np.ndarray,
        kinds: np.ndarray,
        aspects: np.ndarray,
        angles: np.ndarray,
        sides: np.ndarray,
        ellipse_discs: int,
    ) -> FiberSet:
        owner, offsets, disc_r = covering_discs(kinds, r, aspects, angles, sides, ellipse_discs)
        return cls(c, r, kinds, aspects, angles, sides, owner, c[owner] + offsets, disc_r)

    @classmethod
    def empty(cls) -> FiberSet:
        f, i = np.empty(0), np.empty(0, dtype=np.int64)
        return cls(np.empty((0, 2)), f, i, f, f, i, i, np.empty((0, 2)), f)

    def __len__(self) -> int:
        return len(self.r)

    @property
    def disc_start(self) -> np.ndarray:
        """int [F]: index of each fiber's first covering disc."""
        return np.searchsorted(self.owner, np.arange(len(self)))

    @property
    def disc_count(self) -> np.ndarray:
        return np.bincount(self.owner, minlength=len(self))

    @property
    def bound(self) -> np.ndarray:
        """[F]: radius about the centre of a circle holding all of a fiber's discs."""
        reach = np.hypot(*(self.disc_c - self.c[self.owner]).T) + self.disc_r  # [D]
        return np.maximum.reduceat(reach, self.disc_start) if len(self) else np.empty(0)

    def take(self, keep: list[int]) -> FiberSet:
        """The fibers ``keep`` (increasing indices) with their discs."""
        idx = np.asarray(keep, dtype=np.int64)
        discs = np.isin(self.owner, idx)
        owner = np.searchsorted(idx, self.owner[discs])
        return FiberSet(
            self.c[idx], self.r[idx], self.kinds[idx], self.aspects[idx], self.angles[idx],
            self.sides[idx], owner, self.disc_c[discs], self.disc_r[discs],
        )  # fmt: skip

    def concat(self, more: FiberSet) -> FiberSet:
        def cat(name: str) -> np.ndarray:
            return np.concatenate([getattr(self, name), getattr(more, name)])

        return FiberSet(
            cat("c"), cat("r"), cat("kinds"), cat("aspects"), cat("angles"), cat("sides"),
            np.concatenate([self.owner, more.owner + len(self)]), cat("disc_c"), cat("disc_r"),
        )  # fmt: skip


def _nearest(d: np.ndarray, period: float) -> np.ndarray:
    """Coordinate differences to the nearest periodic image on a torus of side ``period``."""
    return d - np.round(d) if period == 1.0 else d - period * np.round(d / period)


def _groups_clear(
    a: FiberSet,
    ia: np.ndarray,
    b: FiberSet,
    ib: np.ndarray,
    gap: float,
    periodic: bool = False,
    period: float = 1.0,
) -> np.ndarray:
    """bool [P]: fiber ia[p] of ``a`` and fiber ib[p] of ``b`` are ``gap`` apart, disc by disc."""
    na, nb = a.disc_count[ia], b.disc_count[ib]  # [P]
    n = na * nb  # disc pairs per fiber pair
    pair = np.repeat(np.arange(len(ia)), n)  # [Q]
    local = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)  # [Q] 0.. n[p]-1
    i = a.disc_start[ia][pair] + local // nb[pair]  # [Q] disc of a
    j = b.disc_start[ib][pair] + local % nb[pair]  # [Q] disc of b
    d = a.disc_c[i] - b.disc_c[j]  # [Q, 2]
    if periodic:
        d = _nearest(d, period)
    reach = a.disc_r[i] + b.disc_r[j] + gap
    ok = d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1] >= reach * reach
    return np.bincount(pair, weights=~ok, minlength=len(ia)) == 0


def clearance(cand: FiberSet, placed: FiberSet, gap: float) -> tuple[np.ndarray, np.ndarray]:
    """Which candidates keep ``gap`` from every placed fiber (bool [B]) and from each other
    (bool [B, B]), by covering discs. Only fiber pairs whose bounding circles come closer than
    ``gap`` are tested disc by disc, which keeps elongated fibers cheap."""
    cb, pb = cand.bound, placed.bound
    near_a, near_b = np.nonzero(~discs_clear(cand.c, cb, placed.c, pb, gap))  # [P] fiber pairs
    ok = _groups_clear(cand, near_a, placed, near_b, gap)
    free = np.bincount(near_a, weights=~ok, minlength=len(cand)) == 0  # [B]
    qa, qb = np.nonzero(np.triu(~discs_clear(cand.c, cb, cand.c, cb, gap), k=1))
    ok = _groups_clear(cand, qa, cand, qb, gap)
    pair = np.ones((len(cand), len(cand)), dtype=bool)  # [B, B]
    pair[qa, qb] = ok
    pair[qb, qa] = ok
    return free, pair


# --- periodic geometry (SPEC §11): the unit square is one period of the torus ----------------
# offsets of a fiber's periodic images that can reach into the square
IMAGE_SHIFTS = tuple((dx, dy) for dx in (-1.0, 0.0, 1.0) for dy in (-1.0, 0.0, 1.0))


def clear_pairs(
    a: FiberSet, b: FiberSet, gap: float, periodic: bool = False, period: float = 1.0
) -> np.ndarray:
    """bool [A, B]: fiber i of ``a`` and fiber j of ``b`` are ``gap`` apart, by covering discs
    (``periodic``: also every periodic image of j on the torus of side ``period``)."""
    torus = (periodic, period)
    if len(a.disc_r) == len(a) and len(b.disc_r) == len(b):  # one disc per fiber: the test
        return discs_clear(a.disc_c, a.disc_r, b.disc_c, b.disc_r, gap, *torus)
    near_a, near_b = np.nonzero(~discs_clear(a.c, a.bound, b.c, b.bound, gap, *torus))  # [P]
    out = np.ones((len(a), len(b)), dtype=bool)
    out[near_a, near_b] = _groups_clear(a, near_a, b, near_b, gap, *torus)
    return out


def periodic_clearance(
    cand: FiberSet, placed: FiberSet, gap: float, period: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`clearance` on the torus: every test also against the periodic images.

    Returns which candidates keep ``gap`` from every placed fiber and its images (bool [B]),
    from each other candidate and its images (bool [B, B], the diagonal left True), and from
    their own images (bool [B]: false for a fiber whose bounding circle, with the gap, does not
    fit in one period).
    """
    free = clear_pairs(cand, placed, gap, True, period).all(axis=1)  # [B]
    if len(cand.disc_r) == len(cand):  # one disc per fiber
        pair = discs_clear(cand.disc_c, cand.disc_r, cand.disc_c, cand.disc_r, gap, True, period)
    else:  # as clearance(): only the pairs whose bounding circles are near, each once
        cb = cand.bound
        near = np.triu(~discs_clear(cand.c, cb, cand.c, cb, gap, True, period), k=1)
        qa, qb = np.nonzero(near)
        ok = _groups_clear(cand, qa, cand, qb, gap, True, period)
        pair = np.ones((len(cand), len(cand)), dtype=bool)  # [B, B]
        pair[qa, qb] = ok
        pair[qb, qa] = ok
    pair |= np.eye(len(cand), dtype=bool)
    own = 2.0 * cand.bound + gap <= period
    return free, pair, own
