"""The periodic core of SPEC §11 (C_eff, engineering constants, bounds, superposition) and the
user-material rules, on fields whose answer is known in closed form."""

import numpy as np
import pytest
from support.materials import EPOXY, GLASS

from microstrain.conventions import FIBER, MATRIX
from microstrain.errors import InputError
from microstrain.fields import (
    fiber_fraction,
    parse_material,
    to_youngs_modulus,
    validate_applied_strain,
)
from microstrain.quantities import (
    constant_bounds,
    effective_stiffness,
    engineering_constants,
    macro_strain_fields,
    macro_strain_of_stress,
    periodic_quantities,
    plane_stiffness,
    quantities,
    reuss_stiffness,
    voigt_stiffness,
)

U = 0.1


def unit_cases(n: int, side: int = 32) -> np.ndarray:
    """The three unit cases of a homogeneous RVE: uniform strain ū e_j, [n, 3, 3, side, side]."""
    cases = np.zeros((n, 3, 3, side, side))
    for j in range(3):
        cases[:, j, j] = U
    return cases


@pytest.mark.parametrize("plane", ["stress", "strain"])
@pytest.mark.parametrize("phases", [(FIBER, MATRIX), (GLASS, EPOXY)])
@pytest.mark.parametrize("side", [32, 64])
def test_homogeneous_sheet_gives_its_own_stiffness_and_constants(plane, phases, side):
    fiber, matrix = phases
    for material in phases:
        E = np.full((2, 1, side, side), material.youngs_modulus, np.float32)
        c_eff = effective_stiffness(E, unit_cases(2, side), plane, U, fiber=fiber, matrix=matrix)
        np.testing.assert_allclose(
            c_eff, np.broadcast_to(plane_stiffness(material, plane), c_eff.shape), rtol=1e-12
        )
        const = engineering_constants(c_eff)
        nu, e = material.poisson_ratio, material.youngs_modulus
        # plane strain: the in-plane constants of a long body are E/(1-ν²) and ν/(1-ν)
        e_in, nu_in = (e, nu) if plane == "stress" else (e / (1 - nu**2), nu / (1 - nu))
        np.testing.assert_allclose(const["E_1"], e_in, rtol=1e-12)
        np.testing.assert_allclose(const["E_2"], e_in, rtol=1e-12)
        np.testing.assert_allclose(const["nu_12"], nu_in, rtol=1e-12)
        np.testing.assert_allclose(const["G_12"], e / (2 * (1 + nu)), rtol=1e-12)


def laminate(plane: str, f_layers: int = 12) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Layers along x (rows of fiber and matrix) with their exact periodic fields.

    In each layer the strain is uniform: ε_xx = Ē_xx in every layer (the layers share x), σ_yy
    and τ_xy are the same in every layer (equilibrium across the interfaces), and the layer means
    of ε_yy, γ_xy are Ē_yy, γ̄_xy. Returns E [1, 1, 32, 32], the cases [1, 3, 3, 32, 32] and the
    closed-form C [3, 3].
    """
    rows = np.arange(32) < f_layers  # fiber rows
    f = f_layers / 32
    cf, cm = plane_stiffness(FIBER, plane), plane_stiffness(MATRIX, plane)
    # unknowns per case: (ε_yy, γ_xy) of fiber and matrix layers, 4 equations
    cases = np.zeros((1, 3, 3, 32, 32))
    c_closed = np.zeros((3, 3))
    for j in range(3):
        ebar = U * np.eye(3)[j]
        a = np.zeros((4, 4))
        b = np.zeros(4)
        # σ_yy, τ_xy equal: (cf - cm)[1:, :] applied, with ε_xx = ēxx
        for row, comp in enumerate((1, 2)):
            a[row, :2] = cf[comp, 1:]
            a[row, 2:] = -cm[comp, 1:]
            b[row] = -(cf[comp, 0] - cm[comp, 0]) * ebar[0]
        a[2, [0, 2]] = f, 1 - f  # mean ε_yy
        a[3, [1, 3]] = f, 1 - f  # mean γ_xy
        b[2:] = ebar[1:]
        x = np.linalg.solve(a, b)
        eps_f, eps_m = np.array([ebar[0], *x[:2]]), np.array([ebar[0], *x[2:]])
        cases[0, j] = np.where(rows[None, :, None], eps_f[:, None, None], eps_m[:, None, None])
        c_closed[:, j] = (f * cf @ eps_f + (1 - f) * cm @ eps_m) / U
    E = np.where(rows[:, None], FIBER.youngs_modulus, MATRIX.youngs_modulus)
    return np.broadcast_to(E, (1, 1, 32, 32)).astype(np.float32), cases, c_closed


@pytest.mark.parametrize("plane", ["stress", "strain"])
def test_laminate_lies_between_reuss_and_voigt_and_touches_them(plane):
    E, cases, c_closed = laminate(plane)
    c_eff = effective_stiffness(E, cases, plane, U)[0]
    np.testing.assert_allclose(c_eff, c_closed, rtol=1e-12)
    np.testing.assert_allclose(c_eff, c_eff.T, rtol=1e-12, atol=1e-9)
    f = fiber_fraction(E)[0]
    voigt, reuss = voigt_stiffness(f, plane), reuss_stiffness(f, plane)
    # energy sense: C_V - C_eff and C_eff - C_R positive semi-definite
    assert np.linalg.eigvalsh(voigt - c_eff).min() > -1e-8 * np.abs(voigt).max()
    assert np.linalg.eigvalsh(c_eff - reuss).min() > -1e-8 * np.abs(voigt).max()
    # the layers carry the same shear stress: the shear compliance is the mean compliance
    s_eff, s_r = np.linalg.inv(c_eff), np.linalg.inv(reuss)
    np.testing.assert_allclose(s_eff[2, 2], s_r[2, 2], rtol=1e-12)


def test_constant_bounds_bracket_the_laminate():
    E, cases, _ = laminate("stress")
    const = engineering_constants(effective_stiffness(E, cases, "stress", U))
    bounds = constant_bounds(fiber_fraction(E), "stress")
    for name in ("E_1", "E_2", "G_12"):
        lo, hi = bounds[name]
        assert lo[0] * (1 - 1e-12) <= const[name][0] <= hi[0] * (1 + 1e-12), name
    # the layers carry the same shear stress: G_12 is the Reuss value
    np.testing.assert_allclose(const["G_12"], bounds["G_12"][0], rtol=1e-12)


def test_superposition_of_the_unit_cases():
    _, cases, c_closed = laminate("stress")
    load = np.array([0.02, -0.01, 0.03])
    fields = macro_strain_fields(cases, load, U)  # [1, 3, 32, 32]
    np.testing.assert_allclose(fields.mean(axis=(2, 3))[0], load, rtol=1e-6)
    expected = sum(load[j] / U * cases[:, j] for j in range(3))
    np.testing.assert_allclose(fields, expected, rtol=1e-6, atol=1e-9)
    # the macro stress of that strain gives it back
    stress = c_closed @ load
    np.testing.assert_allclose(macro_strain_of_stress(c_closed[None], stress)[0], load, rtol=1e-12)


def test_singular_stiffness_and_bad_loads_are_one_clear_error():
    with pytest.raises(InputError, match="singular or ill-conditioned"):
        macro_strain_of_stress(np.zeros((1, 3, 3)), [1.0, 0.0, 0.0])
    with pytest.raises(InputError, match="singular or ill-conditioned"):
        engineering_constants(np.diag([1.0, 1.0, 1e-15])[None])
    c = plane_stiffness(MATRIX, "stress")[None]
    with pytest.raises(InputError, match="three numbers"):
        macro_strain_of_stress(c, [1.0, 2.0])
    with pytest.raises(InputError, match="finite"):
        macro_strain_fields(unit_cases(1), [np.nan, 0, 0], U)
    with pytest.raises(InputError, match="periodic strain"):
        effective_stiffness(np.full((1, 1, 32, 32), 3000.0), np.zeros((1, 3, 32, 32)), "stress", U)


def test_periodic_quantities_per_case_use_each_pixels_phase():
    rng = np.random.default_rng(0)
    mask = rng.random((2, 1, 64, 64)) < 0.4
    E = np.where(mask, GLASS.youngs_modulus, EPOXY.youngs_modulus).astype(np.float32)
    cases = rng.normal(size=(2, 3, 3, 64, 64)) * 0.01
    q = periodic_quantities(E, cases, "strain", U, fiber=GLASS, matrix=EPOXY)
    assert q["stress"].shape == (2, 3, 3, 64, 64)
    assert q["von_mises"].shape == (2, 3, 64, 64)
    assert q["max_von_mises"].shape == (2, 3)
    cg, ce = plane_stiffness(GLASS, "strain"), plane_stiffness(EPOXY, "strain")
    expected = np.where(
        mask[:, None],
        np.einsum("ab,njbyx->njayx", cg, cases),
        np.einsum("ab,njbyx->njayx", ce, cases),
    )
    np.testing.assert_allclose(q["stress"], expected, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(
        q["C_eff"], expected.mean(axis=(3, 4)).transpose(0, 2, 1) / U, rtol=1e-10
    )


def test_user_materials_in_the_uniaxial_quantities():
    E = np.where(
        np.arange(32)[None, None, :, None] < 10, GLASS.youngs_modulus, EPOXY.youngs_modulus
    )
    E = np.broadcast_to(E, (1, 1, 32, 32)).astype(np.float32)
    strain = np.zeros((1, 3, 32, 32), np.float32)
    strain[:, 0] = U
    q = quantities(E, strain, "stress", U, fiber=GLASS, matrix=EPOXY)
    c = np.where(
        E[0, 0] == GLASS.youngs_modulus,
        plane_stiffness(GLASS, "stress")[0, 0],
        plane_stiffness(EPOXY, "stress")[0, 0],
    )
    np.testing.assert_allclose(q["stress"][0, 0], c * U, rtol=1e-6)
    assert fiber_fraction(E, fiber=GLASS, matrix=EPOXY)[0] == pytest.approx(10 / 32)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("72000", "must be E,nu"),
        ("72000,0.22,1", "must be E,nu"),
        ("a,0.3", "must be E,nu"),
        ("-5,0.3", "positive"),
        ("0,0.3", "positive"),
        ("3500,0.5", r"\(-1, 0.5\)"),
        ("3500,-1", r"\(-1, 0.5\)"),
        ("3500,nan", r"\(-1, 0.5\)"),
    ],
)
def test_bad_materials_are_one_clear_error(text, message):
    with pytest.raises(InputError, match=message):
        parse_material(text, "fiber")


def test_materials_and_maps():
    assert parse_material(" 72000 , 0.22 ", "fiber") == GLASS
    mask = np.eye(32)
    E = to_youngs_modulus(mask, fiber=GLASS, matrix=EPOXY)
    assert set(np.unique(E)) == {GLASS.youngs_modulus, EPOXY.youngs_modulus}
    np.testing.assert_array_equal(to_youngs_modulus(E, fiber=GLASS, matrix=EPOXY), E)
    with pytest.raises(InputError, match="3500 \\(matrix\\) and 72000 \\(fiber\\)"):
        to_youngs_modulus(np.full((32, 32), 3000.0), fiber=GLASS, matrix=EPOXY)
    with pytest.raises(InputError, match="multiple of 32"):
        to_youngs_modulus(np.ones((48, 48)), larger=True)
    assert to_youngs_modulus(np.ones((64, 64)), larger=True).shape == (1, 1, 64, 64)


@pytest.mark.parametrize("value", [0.0, 10.0, -1.5, float("nan"), float("inf")])
def test_applied_strain_rule(value):
    with pytest.raises(InputError, match="applied strain"):
        validate_applied_strain(value)


def test_applied_strain_rule_accepts_small_strains():
    assert validate_applied_strain(-1.0) == -1.0
    assert validate_applied_strain(0.1) == 0.1
