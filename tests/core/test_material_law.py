"""One material law (SPEC §1): the Lamé parameters the FE solver uses and the plane moduli of
the §9 quantities are the same law."""

from __future__ import annotations

import numpy as np
import pytest

from microstrain.conventions import FIBER, MATRIX, PLANES
from microstrain.quantities import PlaneLaw, lame_parameters


@pytest.mark.parametrize("plane", PLANES)
def test_the_plane_law_is_the_lame_law_per_mpa(plane):
    law = PlaneLaw.of(plane)
    for i, material in enumerate((MATRIX, FIBER)):  # PlaneLaw pairs are (matrix, fiber)
        lam, mu = lame_parameters(1.0, material.poisson_ratio, plane)
        assert law.kappa[i] == pytest.approx(float(lam + mu), rel=1e-15)  # κ = λ + μ
        assert law.mu[i] == float(mu)


def test_plane_stress_lame_gives_the_uniaxial_modulus():
    """σ_xx / ε_xx under uniaxial stress is E in plane stress: 4μ(λ* + μ)/(λ* + 2μ) = E."""
    youngs = np.array([MATRIX.youngs_modulus, FIBER.youngs_modulus])
    lam, mu = lame_parameters(
        youngs, np.array([MATRIX.poisson_ratio, FIBER.poisson_ratio]), "stress"
    )
    modulus = 4 * mu * (lam + mu) / (lam + 2 * mu)
    np.testing.assert_allclose(modulus, youngs, rtol=1e-14)
