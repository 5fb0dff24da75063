"""Engineering quantities derived from pixel strain (SPEC §9): stress, von Mises, E_x, ν_xy, bounds.

Each pixel is one material, so its pixel-averaged strain gives its pixel-averaged stress exactly.
ν follows the phase (:func:`microstrain.fields.fiber_mask` splits the two moduli). With engineering
shear γ_xy the plane law C = [[c11, c12, 0], [c12, c11, 0], [0, 0, μ]] is

    plane stress:  c11 = E / (1 − ν²),   c12 = ν E / (1 − ν²),   μ = E / (2 (1 + ν))
    plane strain:  c11 = λ + 2μ,         c12 = λ,                λ = E ν / ((1 + ν)(1 − 2ν))

and is evaluated in the equivalent isotropic split with the plane bulk modulus κ = (c11 + c12)/2
(E / (2 (1 − ν)) in plane stress, λ + μ in plane strain), which needs fewer passes over the data:

    tr = ε_xx + ε_yy,   dev = ε_xx − ε_yy
    σ_xx = κ tr + μ dev,   σ_yy = κ tr − μ dev,   τ_xy = μ γ_xy
    von Mises² = σ_xx² − σ_xx σ_yy + σ_yy² + 3 τ_xy² (+ σ_zz² − σ_zz (σ_xx + σ_yy) in plane strain,
               σ_zz = ν (σ_xx + σ_yy))  =  (ρ κ tr)² + 3 μ² (dev² + γ²),  ρ = 1 or 1 − 2ν
    energy density ε : C : ε = σ · (ε_xx, ε_yy, γ_xy) = κ tr² + μ (dev² + γ²)

E_x = mean σ_xx / ū (the top edge is free: uniaxial stress on average); ν_xy = −mean ε_yy / ū.

Arrays follow SPEC §2: E ``[N, 1, 32, 32]`` MPa, strain ``[N, 3, 32, 32]``. All is computed in
float64; fields come back float32 (the SPEC §2 storage type), per-sample scalars (E_x, ν_xy,
max von Mises, bounds) float64 ``[N]``: they are means and maxima that the error measures compare
below float32 resolution. The work is vectorized over blocks of :data:`BLOCK` samples (so the
float64 temporaries stay in the CPU cache); for 512 samples it costs 1–2 % of the ONNX prediction
of the batch with ``models/default`` on a 2-core EPYC (``benchmarks/bench_quantities.py``).

Bounds on E_x of a fiber fraction f, with the plane's uniaxial modulus E' = E (plane stress) or
E / (1 − ν²) (plane strain), so that a homogeneous sheet sits exactly on both:

- :func:`reuss_bound` (f / E'_f + (1 − f) / E'_m)⁻¹: the uniform uniaxial stress is statically
  admissible under the rollers and the free top, so every microstructure (and every
  displacement-based FE solution, which is stiffer still) has E_x ≥ Reuss.
- :func:`voigt_bound` f E'_f + (1 − f) E'_m, the SPEC's Voigt value: exact for layers along the
  load. With unequal Poisson ratios it is not a strict bound; the rigorous upper bound is
  :func:`uniform_strain_bound` ⟨c11⟩ − ⟨c12⟩² / ⟨c11⟩ (the best uniform strain (ū, c, 0), which
  the Q1 space contains), at most 0.9 % above Voigt in plane stress and 5 % in plane strain.

Hashin–Shtrikman bounds are deliberately omitted. The 2D HS bounds on the plane bulk and shear
moduli (the transverse HS bounds of long fibers in plane strain, their plane-stress analogue for a
sheet) bound the *effective* moduli of a statistically isotropic arrangement: an ensemble or
infinite-RVE property. E_x here is the *apparent* modulus of one finite 32×32 sample under mixed
boundary conditions, and nothing makes a single image isotropic. Layers along the load (f = 0.375,
plane stress) are a valid input with E_x = Voigt = 33 750 MPa, about twice the HS upper bound
(17 480 MPa); the same layers across the load give about 5 400 MPa, below the HS lower bound
(5 490 MPa). Printed beside a sample's E_x, HS would look violated where the physics is right, so
only Reuss and Voigt are given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from microstrain.conventions import (
    FIBER,
    GRID,
    MATRIX,
    N_CASES,
    N_STRAIN,
    PLANES,
    Material,
)
from microstrain.errors import InputError
from microstrain.fields import check_phases, fiber_mask

QUANTITY_NAMES = ("stress", "von_mises", "E_x", "nu_xy", "max_von_mises")
BLOCK = 32  # samples per vectorized block: its float64 temporaries (256 KiB each) stay in cache
PIXELS = GRID * GRID


def check_plane(plane: str) -> None:
    if plane not in PLANES:
        raise InputError(f"plane must be one of {', '.join(PLANES)}; got '{plane}'")


@dataclass(frozen=True)
class PlaneLaw:
    """Per-phase moduli of one plane, per MPa of E, as (matrix, fiber) pairs.

    kappa: plane bulk modulus κ / E; mu: shear modulus μ / E; rho: trace factor of von Mises
    (1 in plane stress, 1 − 2ν in plane strain); nu: Poisson's ratio; moduli: the phases' E (MPa),
    which tell a pixel's phase (the nearer one).
    """

    plane: str
    kappa: tuple[float, float]
    mu: tuple[float, float]
    rho: tuple[float, float]
    nu: tuple[float, float]
    moduli: tuple[float, float] = (MATRIX.youngs_modulus, FIBER.youngs_modulus)

    @classmethod
    def of(cls, plane: str, fiber: Material = FIBER, matrix: Material = MATRIX) -> PlaneLaw:
        check_plane(plane)
        if (fiber, matrix) != (FIBER, MATRIX):
            check_phases(fiber, matrix)

        def pair(value: Callable[[float], float]) -> tuple[float, float]:
            return value(matrix.poisson_ratio), value(fiber.poisson_ratio)

        if plane == "stress":
            kappa, rho = pair(lambda nu: 1 / (2 * (1 - nu))), (1.0, 1.0)
        else:
            kappa = pair(lambda nu: 1 / (2 * (1 + nu) * (1 - 2 * nu)))
            rho = pair(lambda nu: 1 - 2 * nu)
        mu = pair(lambda nu: 1 / (2 * (1 + nu)))
        moduli = (matrix.youngs_modulus, fiber.youngs_modulus)
        return cls(plane, kappa, mu, rho, pair(lambda nu: nu), moduli)

    @property
    def phases(self) -> tuple[Material, Material]:
        """(fiber, matrix) of this law."""
        return (
            Material("fiber", self.moduli[1], self.nu[1]),
            Material("matrix", self.moduli[0], self.nu[0]),
        )

    def is_fiber(self, youngs_modulus: np.ndarray) -> np.ndarray:
        """bool, shaped like E (MPa): the pixels nearer the fiber's modulus."""
        fiber, matrix = self.phases
        return fiber_mask(youngs_modulus, fiber=fiber, matrix=matrix)


def lame_parameters(
    youngs_modulus: np.ndarray | float, poisson_ratio: np.ndarray | float, plane: str
) -> tuple[np.ndarray, np.ndarray]:
    """The material law (SPEC §1), one home for the FE solver and every quantity: E (MPa) and
    ν (broadcastable) -> the Lamé parameters (λ, μ) in MPa.

    For plane stress λ is replaced by λ* = 2λμ/(λ + 2μ). :class:`PlaneLaw` is the same law per
    MPa of E in the plane moduli κ = λ + μ and μ, in closed form (equal to round-off, tested).
    """
    E = np.asarray(youngs_modulus, dtype=np.float64)
    ν = np.asarray(poisson_ratio, dtype=np.float64)
    λ = E * ν / ((1.0 + ν) * (1.0 - 2.0 * ν))
    μ = E / (2.0 * (1.0 + ν))
    if plane == "stress":
        λ = 2.0 * λ * μ / (λ + 2.0 * μ)
    return λ, μ


def uniaxial_modulus(material: Material, plane: str) -> float:
    """σ_xx / ε_xx of ``material`` in uniaxial stress: E (plane stress), E / (1 − ν²) (strain)."""
    check_plane(plane)
    nu = material.poisson_ratio
    return material.youngs_modulus if plane == "stress" else material.youngs_modulus / (1 - nu**2)


def check_fields(youngs_modulus: np.ndarray, *strains: np.ndarray) -> None:
    """:class:`InputError` unless E is ``[N, 1, n, n]`` > 0 and each strain ``[N, 3, n, n]``.

    n is 32, or a multiple of it (a larger periodic RVE, SPEC §11).
    """
    n = youngs_modulus.shape[0] if youngs_modulus.ndim == 4 else -1
    side = youngs_modulus.shape[-1] if youngs_modulus.ndim == 4 else GRID
    if youngs_modulus.shape != (n, 1, side, side) or side < GRID or side % GRID:
        raise InputError(
            f"E must be [N, 1, {GRID}, {GRID}] (or n x n, n a multiple of {GRID}); "
            f"got {list(youngs_modulus.shape)}"
        )
    for strain in strains:
        if strain.shape != (n, N_STRAIN, side, side):
            raise InputError(
                f"strain must be [{n}, {N_STRAIN}, {side}, {side}] to match E; "
                f"got {list(strain.shape)}"
            )
    if n and not youngs_modulus.min() > 0:  # also catches NaN
        raise InputError("E must be positive (MPa); convert a 0/1 fiber mask to E first")


def check_applied_strain(applied_strain: float) -> None:
    if not np.isfinite(applied_strain) or applied_strain == 0:
        raise InputError(f"applied strain must be finite and non-zero; got {applied_strain}")


# --- pixel kernels on one block of flattened samples -----------------------------------------
def pixel_moduli(
    youngs_modulus: np.ndarray, law: PlaneLaw
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """E ``[n, P]`` MPa -> (κ, μ, ρ), float64 ``[n, P]`` (κ, μ in MPa; ρ None in plane stress)."""
    fiber = law.is_fiber(youngs_modulus)
    E = youngs_modulus.astype(np.float64)
    kappa = E * np.where(fiber, law.kappa[1], law.kappa[0])
    mu = E * np.where(fiber, law.mu[1], law.mu[0])
    rho = np.where(fiber, law.rho[1], law.rho[0]) if law.plane == "strain" else None
    return kappa, mu, rho


def strain_invariants(strain: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Strain ``[n, 3, P]`` -> (ε_xx + ε_yy, ε_xx − ε_yy, γ_xy), each float64 ``[n, P]``."""
    exx, eyy = strain[:, 0], strain[:, 1]
    tr = np.add(exx, eyy, dtype=np.float64)
    dev = np.subtract(exx, eyy, dtype=np.float64)
    return tr, dev, strain[:, 2].astype(np.float64)


def von_mises_squared(a: np.ndarray, b: np.ndarray, g: np.ndarray, rho: Any) -> np.ndarray:
    """(ρ a)² + 3 (b² + g²) for a = κ tr, b = μ dev, g = τ_xy, float64 ``[n, P]`` (MPa²)."""
    vm2 = b * b
    vm2 += g * g
    vm2 *= 3.0
    ra = a if rho is None else rho * a
    vm2 += ra * ra
    return vm2


def blocks(n: int) -> Iterator[slice]:
    """Slices of :data:`BLOCK` samples covering ``range(n)``."""
    for start in range(0, n, BLOCK):
        yield slice(start, min(start + BLOCK, n))


def _flat(youngs_modulus: np.ndarray, strain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validated views ``[N, P]`` of E and ``[N, 3, P]`` of strain (no copies)."""
    youngs_modulus, strain = np.asarray(youngs_modulus), np.asarray(strain)
    check_fields(youngs_modulus, strain)
    n, pixels = youngs_modulus.shape[0], youngs_modulus[0].size
    return youngs_modulus.reshape(n, pixels), strain.reshape(n, N_STRAIN, pixels)


# --- the quantities ---------------------------------------------------------------------------
def quantities(
    youngs_modulus: np.ndarray,
    strain: np.ndarray,
    plane: str,
    applied_strain: float,
    *,
    fiber: Material = FIBER,
    matrix: Material = MATRIX,
) -> dict[str, np.ndarray]:
    """All SPEC §9 quantities of strain ``[N, 3, 32, 32]`` at applied strain ū, in one pass.

    Returns ``{"stress": float32 [N, 3, 32, 32] MPa, "von_mises": float32 [N, 32, 32] MPa,
    "E_x": float64 [N] MPa, "nu_xy": float64 [N], "max_von_mises": float64 [N] MPa}``: the
    datasets ``solve -o x.h5`` and ``predict -o x.h5`` write, and what REST returns. Each pixel
    takes the law of its phase (``fiber``, ``matrix``: the lecture's pair by default); an n x n
    periodic RVE (n a multiple of 32) gives fields of that size.
    """
    E, eps = _flat(youngs_modulus, strain)
    check_applied_strain(applied_strain)
    law = PlaneLaw.of(plane, fiber, matrix)
    n, pixels = E.shape
    side = youngs_modulus.shape[-1]
    sigma = np.empty((n, N_STRAIN, pixels), dtype=np.float32)
    vm = np.empty((n, pixels), dtype=np.float32)
    mean_sxx, max_vm = np.empty(n), np.empty(n)
    for s in blocks(n):
        kappa, mu, rho = pixel_moduli(E[s], law)
        tr, dev, gamma = strain_invariants(eps[s])
        a, b, g = kappa * tr, mu * dev, mu * gamma  # [n, P] MPa
        np.add(a, b, out=sigma[s, 0])
        np.subtract(a, b, out=sigma[s, 1])
        sigma[s, 2] = g
        mean_sxx[s] = (a.sum(axis=1) + b.sum(axis=1)) / pixels
        vm2 = von_mises_squared(a, b, g, rho)
        max_vm[s] = np.sqrt(vm2.max(axis=1))
        np.sqrt(vm2, out=vm[s])
    return {
        "stress": sigma.reshape(n, N_STRAIN, side, side),
        "von_mises": vm.reshape(n, side, side),
        "E_x": mean_sxx / applied_strain,
        "nu_xy": -eps[:, 1].mean(axis=1, dtype=np.float64) / applied_strain,
        "max_von_mises": max_vm,
    }


def stress(youngs_modulus: np.ndarray, strain: np.ndarray, plane: str) -> np.ndarray:
    """σ_xx, σ_yy, τ_xy in MPa, float32 ``[N, 3, 32, 32]``, of strain ``[N, 3, 32, 32]``."""
    return quantities(youngs_modulus, strain, plane, 1.0)["stress"]


def von_mises(youngs_modulus: np.ndarray, strain: np.ndarray, plane: str) -> np.ndarray:
    """von Mises stress in MPa, float32 ``[N, 32, 32]``, of strain ``[N, 3, 32, 32]``."""
    return quantities(youngs_modulus, strain, plane, 1.0)["von_mises"]


def max_von_mises(youngs_modulus: np.ndarray, strain: np.ndarray, plane: str) -> np.ndarray:
    """Largest pixel von Mises stress in MPa, float64 ``[N]``."""
    return quantities(youngs_modulus, strain, plane, 1.0)["max_von_mises"]


def apparent_modulus(
    youngs_modulus: np.ndarray,
    strain: np.ndarray,
    plane: str,
    applied_strain: float,
    *,
    fiber: Material = FIBER,
    matrix: Material = MATRIX,
) -> np.ndarray:
    """E_x = mean σ_xx / ū in MPa, float64 ``[N]``, of strain ``[N, 3, 32, 32]`` at ū."""
    E, eps = _flat(youngs_modulus, strain)
    check_applied_strain(applied_strain)
    law = PlaneLaw.of(plane, fiber, matrix)
    mean_sxx = np.empty(E.shape[0])
    for s in blocks(E.shape[0]):
        kappa, mu, _ = pixel_moduli(E[s], law)
        tr, dev, _ = strain_invariants(eps[s])
        mean_sxx[s] = (np.vecdot(kappa, tr) + np.vecdot(mu, dev)) / E.shape[1]
    return mean_sxx / applied_strain


def apparent_poisson_ratio(strain: np.ndarray, applied_strain: float) -> np.ndarray:
    """ν_xy = −mean ε_yy / ū, float64 ``[N]``, of strain ``[N, 3, 32, 32]`` at applied strain ū."""
    strain = np.asarray(strain)
    check_applied_strain(applied_strain)
    if strain.ndim != 4 or strain.shape[1:] != (N_STRAIN, GRID, GRID):
        raise InputError(f"strain must be [N, 3, {GRID}, {GRID}]; got {list(strain.shape)}")
    return np.asarray(-strain[:, 1].mean(axis=(1, 2), dtype=np.float64) / applied_strain)


# --- bounds on E_x of a fiber fraction ------------------------------------------------------
def _fraction(fiber_fraction: Any) -> np.ndarray:
    f = np.asarray(fiber_fraction, dtype=np.float64)
    if not np.all((f >= 0) & (f <= 1)):
        raise InputError("fiber fraction must lie in [0, 1]")
    return f


def voigt_bound(
    fiber_fraction: Any, plane: str, *, fiber: Material = FIBER, matrix: Material = MATRIX
) -> np.ndarray:
    """f E'_f + (1 − f) E'_m in MPa, float64 shaped like ``fiber_fraction`` (module doc)."""
    f = _fraction(fiber_fraction)
    return f * uniaxial_modulus(fiber, plane) + (1 - f) * uniaxial_modulus(matrix, plane)


def reuss_bound(
    fiber_fraction: Any, plane: str, *, fiber: Material = FIBER, matrix: Material = MATRIX
) -> np.ndarray:
    """(f / E'_f + (1 − f) / E'_m)⁻¹ in MPa: a rigorous lower bound on E_x (module doc)."""
    f = _fraction(fiber_fraction)
    return 1.0 / (f / uniaxial_modulus(fiber, plane) + (1 - f) / uniaxial_modulus(matrix, plane))


def uniform_strain_bound(
    fiber_fraction: Any, plane: str, *, fiber: Material = FIBER, matrix: Material = MATRIX
) -> np.ndarray:
    """⟨c11⟩ − ⟨c12⟩² / ⟨c11⟩ in MPa: the rigorous upper bound on E_x (module doc)."""
    f = _fraction(fiber_fraction)
    law = PlaneLaw.of(plane, fiber, matrix)
    moduli = law.moduli
    weights = (1 - f, f)
    # c11 = κ + μ, c12 = κ − μ per phase, averaged over the area
    c11 = sum(
        w * e * (k + m) for w, e, k, m in zip(weights, moduli, law.kappa, law.mu, strict=True)
    )
    c12 = sum(
        w * e * (k - m) for w, e, k, m in zip(weights, moduli, law.kappa, law.mu, strict=True)
    )
    return np.asarray(c11 - c12**2 / c11)


# --- periodic homogenization (SPEC §11) -------------------------------------------------------
# Voigt 3x3 matrices in (xx, yy, xy) with engineering shear, MPa. A C_eff whose condition number
# exceeds this is refused where it is inverted: its inverse would be round-off, not physics.
MAX_CONDITION = 1e12
CONSTANT_NAMES = ("E_1", "E_2", "nu_12", "G_12")  # engineering constants of C_eff⁻¹
# the §9 quantities per load case that ``solve -o x.h5 --boundary periodic`` writes
PERIODIC_QUANTITY_NAMES = ("stress", "von_mises", "max_von_mises", *CONSTANT_NAMES)


def plane_stiffness(material: Material, plane: str) -> np.ndarray:
    """C of one isotropic phase in the plane, float64 ``[3, 3]`` MPa (module doc: c11, c12, μ)."""
    check_plane(plane)
    nu, e = material.poisson_ratio, material.youngs_modulus
    kappa = e / (2 * (1 - nu)) if plane == "stress" else e / (2 * (1 + nu) * (1 - 2 * nu))
    mu = e / (2 * (1 + nu))
    return np.array([[kappa + mu, kappa - mu, 0.0], [kappa - mu, kappa + mu, 0.0], [0, 0, mu]])


def check_cases(youngs_modulus: np.ndarray, strain_cases: np.ndarray) -> None:
    """:class:`InputError` unless E is ``[N, 1, n, n]`` and the cases ``[N, 3, 3, n, n]``."""
    E, cases = np.asarray(youngs_modulus), np.asarray(strain_cases)
    check_fields(E)
    n, side = E.shape[0], E.shape[-1]
    if cases.shape != (n, N_CASES, N_STRAIN, side, side):
        raise InputError(
            f"periodic strain must be [{n}, {N_CASES}, {N_STRAIN}, {side}, {side}] (sample, load "
            f"case, component, row, column) to match E; got {list(cases.shape)}"
        )


def effective_stiffness(
    youngs_modulus: np.ndarray,
    strain_cases: np.ndarray,
    plane: str,
    applied_strain: float,
    *,
    fiber: Material = FIBER,
    matrix: Material = MATRIX,
) -> np.ndarray:
    """C_eff of SPEC §11, float64 ``[N, 3, 3]`` MPa: column j = mean pixel stress of case j / ū.

    E ``[N, 1, n, n]`` MPa, strain of the three unit cases ``[N, 3, 3, n, n]`` (case xx, yy, xy;
    component eps_xx, eps_yy, gamma_xy) for Ē = ū e_j. Each pixel's stress uses its own phase.
    """
    check_cases(youngs_modulus, strain_cases)
    check_applied_strain(applied_strain)
    law = PlaneLaw.of(plane, fiber, matrix)
    n = youngs_modulus.shape[0]
    E = np.asarray(youngs_modulus).reshape(n, -1)  # [N, P]
    cases = np.asarray(strain_cases).reshape(n, N_CASES, N_STRAIN, -1)  # [N, 3, 3, P]
    c_eff = np.empty((n, N_STRAIN, N_CASES))
    for s in blocks(n):
        kappa, mu, _ = pixel_moduli(E[s], law)  # [b, P] MPa
        for j in range(N_CASES):
            tr, dev, gamma = strain_invariants(cases[s, j])
            a, b = (kappa * tr).mean(axis=1), (mu * dev).mean(axis=1)  # [b]
            c_eff[s, :, j] = np.stack([a + b, a - b, (mu * gamma).mean(axis=1)], axis=1)
    return c_eff / applied_strain


def _inverse(matrices: np.ndarray, what: str) -> np.ndarray:
    """Inverse of ``[..., 3, 3]``; one :class:`InputError` for a singular or ill-conditioned one."""
    m = np.asarray(matrices, dtype=np.float64)
    cond = np.linalg.cond(m.reshape(-1, 3, 3)) if m.size else np.empty(0)
    bad = ~np.isfinite(cond) | (cond > MAX_CONDITION)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{what} of sample {first} is singular or ill-conditioned (condition number "
            f"{cond[first]:.3g}): it cannot be inverted"
        )
    return np.linalg.inv(m)


def engineering_constants(c_eff: np.ndarray) -> dict[str, np.ndarray]:
    """E_1, E_2 (MPa), ν_12 and G_12 (MPa) of stiffness matrices ``[..., 3, 3]`` from S = C⁻¹.

    E_1 = 1/S_11, E_2 = 1/S_22, ν_12 = −S_12/S_11 (the contraction along y under a stress along
    x), G_12 = 1/S_33; each float64 shaped ``[...]``.
    """
    compliance = _inverse(c_eff, "C_eff")
    s11, s22 = compliance[..., 0, 0], compliance[..., 1, 1]
    return {
        "E_1": 1.0 / s11,
        "E_2": 1.0 / s22,
        "nu_12": -compliance[..., 0, 1] / s11,
        "G_12": 1.0 / compliance[..., 2, 2],
    }


def voigt_stiffness(
    fiber_fraction: Any, plane: str, *, fiber: Material = FIBER, matrix: Material = MATRIX
) -> np.ndarray:
    """f C_f + (1 − f) C_m, float64 ``[..., 3, 3]`` MPa: the upper bound on C_eff (energy sense).

    The uniform strain Ē is admissible in the periodic problem, so ε̄ : C_eff : ε̄ ≤ ε̄ : C_V : ε̄
    for every Ē, for the exact and for every displacement FE solution.
    """
    f = _fraction(fiber_fraction)[..., None, None]
    return f * plane_stiffness(fiber, plane) + (1 - f) * plane_stiffness(matrix, plane)


def reuss_stiffness(
    fiber_fraction: Any, plane: str, *, fiber: Material = FIBER, matrix: Material = MATRIX
) -> np.ndarray:
    """(f S_f + (1 − f) S_m)⁻¹, float64 ``[..., 3, 3]`` MPa: the lower bound on C_eff.

    The uniform stress is statically admissible, so the exact C_eff lies above it in the energy
    sense; a displacement FE solution is stiffer still.
    """
    f = _fraction(fiber_fraction)[..., None, None]
    s_f = np.linalg.inv(plane_stiffness(fiber, plane))
    s_m = np.linalg.inv(plane_stiffness(matrix, plane))
    return np.linalg.inv(f * s_f + (1 - f) * s_m)


def constant_bounds(
    fiber_fraction: Any, plane: str, *, fiber: Material = FIBER, matrix: Material = MATRIX
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """name -> (Reuss value, Voigt value) of each engineering constant, for reports.

    E_1, E_2 and G_12 of the two bounding tensors bracket those of C_eff (1/S_11 is the minimum
    over stress-free lateral states, so it is monotone in the energy order); ν_12 of the bounds
    is shown for orientation only: nothing orders Poisson's ratios.
    """
    reuss = engineering_constants(
        reuss_stiffness(fiber_fraction, plane, fiber=fiber, matrix=matrix)
    )
    voigt = engineering_constants(
        voigt_stiffness(fiber_fraction, plane, fiber=fiber, matrix=matrix)
    )
    return {name: (reuss[name], voigt[name]) for name in CONSTANT_NAMES}


def _loads(load: Any, n: int, what: str) -> np.ndarray:
    """A load ``[3]`` or ``[N, 3]`` -> float64 ``[N, 3]``; one :class:`InputError` otherwise."""
    try:
        values = np.asarray(load, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be three numbers (xx, yy, xy)") from None
    if values.shape == (N_STRAIN,):
        values = np.broadcast_to(values, (n, N_STRAIN))
    if values.shape != (n, N_STRAIN):
        raise InputError(
            f"{what} must be three numbers (xx, yy, xy) or [{n}, 3]; got {list(values.shape)}"
        )
    if not np.isfinite(values).all():
        raise InputError(f"{what} must be finite")
    return values


def macro_strain_fields(
    strain_cases: np.ndarray, macro_strain: Any, applied_strain: float
) -> np.ndarray:
    """Fields of any macro strain by superposition: Σ_j (Ē_j / ū) ε^(j), float32 ``[N, 3, n, n]``.

    ``strain_cases`` ``[N, 3, 3, n, n]`` of the unit cases at ū; ``macro_strain`` (ε̄_xx, ε̄_yy,
    γ̄_xy) ``[3]`` or one per sample ``[N, 3]``.
    """
    cases = np.asarray(strain_cases)
    if cases.ndim != 5 or cases.shape[1:3] != (N_CASES, N_STRAIN):
        raise InputError(f"periodic strain must be [N, 3, 3, n, n]; got {list(cases.shape)}")
    check_applied_strain(applied_strain)
    weights = _loads(macro_strain, cases.shape[0], "macro strain") / applied_strain  # [N, 3]
    return np.einsum("nj,njcyx->ncyx", weights, cases, dtype=np.float64).astype(np.float32)


def macro_strain_of_stress(c_eff: np.ndarray, macro_stress: Any) -> np.ndarray:
    """Ē = C_eff⁻¹ Σ̄, float64 ``[N, 3]``: the macro strain under a macro stress.

    ``c_eff`` ``[N, 3, 3]`` MPa, ``macro_stress`` (Σ̄_xx, Σ̄_yy, T̄_xy) MPa ``[3]`` or ``[N, 3]``.
    A singular or ill-conditioned C_eff is one :class:`InputError`.
    """
    c = np.asarray(c_eff, dtype=np.float64)
    if c.ndim != 3 or c.shape[1:] != (N_STRAIN, N_STRAIN):
        raise InputError(f"C_eff must be [N, 3, 3]; got {list(c.shape)}")
    sigma = _loads(macro_stress, c.shape[0], "macro stress")
    _inverse(c, "C_eff")  # refuses a singular or ill-conditioned C_eff
    return np.linalg.solve(c, sigma[..., None])[..., 0]


def periodic_quantities(
    youngs_modulus: np.ndarray,
    strain_cases: np.ndarray,
    plane: str,
    applied_strain: float,
    *,
    fiber: Material = FIBER,
    matrix: Material = MATRIX,
) -> dict[str, np.ndarray]:
    """What a periodic ``.h5`` output holds beside strain, per load case where it applies.

    ``{"C_eff": float64 [N, 3, 3] MPa, "stress": float32 [N, 3, 3, n, n] MPa, "von_mises":
    float32 [N, 3, n, n] MPa, "max_von_mises": float64 [N, 3] MPa, "E_1", "E_2", "G_12": float64
    [N] MPa, "nu_12": float64 [N]}``. E_x and ν_xy of the uniaxial test do not apply (no free
    edge); the engineering constants of C_eff take their place.
    """
    check_cases(youngs_modulus, strain_cases)
    E = np.asarray(youngs_modulus)
    cases = np.asarray(strain_cases)
    n, side = E.shape[0], E.shape[-1]
    flat = cases.reshape(n * N_CASES, N_STRAIN, side, side)
    q = quantities(
        np.repeat(E, N_CASES, axis=0), flat, plane, applied_strain, fiber=fiber, matrix=matrix
    )
    c_eff = effective_stiffness(E, cases, plane, applied_strain, fiber=fiber, matrix=matrix)
    return {
        "C_eff": c_eff,
        "stress": q["stress"].reshape(n, N_CASES, N_STRAIN, side, side),
        "von_mises": q["von_mises"].reshape(n, N_CASES, side, side),
        "max_von_mises": q["max_von_mises"].reshape(n, N_CASES),
        **engineering_constants(c_eff),
    }
