"""Fiber shapes: equal-area sizes, rasterization at pixel centres, exact covering discs."""

import math

import numpy as np
import pytest

from data_gen.fiber_shapes import (
    CIRCLE,
    ELLIPSE,
    POLYGON,
    FiberSet,
    clearance,
    covering_discs,
    disc_mask,
    half_width,
    outline,
    shape_mask,
)
from microstrain.conventions import GRID


def _polygon_area(pts: np.ndarray) -> float:
    x, y = pts.T
    return 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


@pytest.mark.parametrize(
    ("kind", "aspect", "sides"), [(CIRCLE, 1.0, 0), (ELLIPSE, 3.0, 0), (POLYGON, 1.0, 3),
                                  (POLYGON, 1.0, 6)]
)  # fmt: skip
def test_equivalent_radius_means_equal_area(kind, aspect, sides):
    r = 0.2
    pts = outline(kind, 0.5, 0.5, r, aspect, 0.3, sides, n=20000)
    assert _polygon_area(pts) == pytest.approx(
        math.pi * r * r, rel=1e-6 if kind == POLYGON else 1e-4
    )
    # half_width is the smallest centre-to-outline distance
    w = half_width(np.array([kind]), np.array([r]), np.array([aspect]), np.array([sides]))[0]
    assert np.hypot(*(pts - 0.5).T).min() == pytest.approx(w, rel=1e-4)


def test_rasterization_of_shapes_at_pixel_centres():
    # an ellipse of aspect 1 is the disc; at every orientation
    for angle in (0.0, 0.7, 2.0):
        np.testing.assert_array_equal(
            shape_mask(ELLIPSE, 0.41, 0.63, 0.17, 1.0, angle, 0), disc_mask(0.41, 0.63, 0.17)
        )
    # a horizontal ellipse 2a = 20 pixels by 2b = 4 pixels centred on a pixel corner
    a, b = 10 / GRID, 2 / GRID
    r, aspect = math.sqrt(a * b), a / b
    mask = shape_mask(ELLIPSE, 0.5, 0.5, r, aspect, 0.0, 0)
    rows, cols = np.nonzero(mask)
    assert cols.min() == 6 and cols.max() == 25 and rows.min() == 14 and rows.max() == 17
    vertical = shape_mask(ELLIPSE, 0.5, 0.5, r, aspect, math.pi / 2, 0)
    np.testing.assert_array_equal(vertical, mask.T)
    # a square of side 16 pixels (vertex at 45°) centred on a pixel corner: 16 x 16 pixels
    side = 16 / GRID
    square = shape_mask(POLYGON, 0.5, 0.5, side / math.sqrt(math.pi), 1.0, math.pi / 4, 4)
    assert square.sum() == 256 and square[8:24, 8:24].all()


@pytest.mark.parametrize("aspect", [1.0, 1.5, 3.0, 5.0])
def test_covering_discs_contain_the_ellipse_and_hug_it(aspect):
    r, angle = 0.1, 0.9
    m = math.ceil(3 * aspect)
    owner, offsets, rho = covering_discs(
        np.array([ELLIPSE]), np.array([r]), np.array([aspect]), np.array([angle]),
        np.array([0]), ellipse_discs=m,
    )  # fmt: skip
    assert len(rho) == m and np.all(owner == 0)
    # the filled ellipse lies in the union: its outline does (the discs are centred on the axis)
    ellipse = outline(ELLIPSE, 0.0, 0.0, r, aspect, angle, 0, n=5000)  # [n, 2]
    covered = np.hypot(*(ellipse[:, None] - offsets[None]).transpose(2, 0, 1)) <= rho * (1 + 1e-12)
    assert covered.any(axis=1).all()
    # the union's outline (disc arcs inside no disc) stays within 12 % of b of the ellipse
    t = np.linspace(0.0, 2 * np.pi, 360, endpoint=False)
    arcs = (offsets[:, None] + rho[:, None, None] * np.stack([np.cos(t), np.sin(t)], 1)).reshape(
        -1, 2
    )  # [m * 360, 2]
    depth = np.hypot(*(arcs[:, None] - offsets[None]).transpose(2, 0, 1)) - rho  # [P, m]
    boundary = arcs[(depth < -1e-9).sum(axis=1) == 0]  # strictly inside no disc
    excess = np.hypot(*(boundary[:, None] - ellipse[None]).transpose(2, 0, 1)).min(axis=1)
    b = r / math.sqrt(aspect)
    assert excess.max() <= 0.12 * b
    if aspect == 1.0:  # a circle needs one disc, however many it gets
        np.testing.assert_allclose(offsets, 0.0, atol=1e-15)
        np.testing.assert_allclose(rho, r, rtol=1e-12)


def test_clearance_by_discs_matches_the_geometry():
    # two parallel ellipses side by side, their true gap 0.001 below the requested one:
    # refused (the test is conservative); 12 % of b above it each: accepted (and tight)
    r, aspect, gap = 0.1, 4.0, 0.02
    b = r / math.sqrt(aspect)
    for distance, clear in [(2 * b + gap - 0.001, False), (2 * b + gap + 0.24 * b, True)]:
        fibers = FiberSet.build(
            np.array([[0.5, 0.3], [0.5, 0.3 + distance]]), np.full(2, r),
            np.full(2, ELLIPSE), np.full(2, aspect), np.zeros(2), np.zeros(2, dtype=int),
            ellipse_discs=math.ceil(3 * aspect),
        )  # fmt: skip
        free, pair = clearance(fibers.take([1]), fibers.take([0]), gap)
        assert bool(free[0]) is clear
        _, pair = clearance(fibers, FiberSet.empty(), gap)
        assert bool(pair[0, 1]) is clear and bool(pair[1, 0]) is clear
