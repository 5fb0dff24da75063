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

from microstrain.conventions import FIBER, GRID, MATRIX, N_STRAIN, PLANES, Material
from microstrain.errors import InputError
from microstrain.fields import fiber_mask

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
    (1 in plane stress, 1 − 2ν in plane strain); nu: Poisson's ratio.
    """

    plane: str
    kappa: tuple[float, float]
    mu: tuple[float, float]
    rho: tuple[float, float]
    nu: tuple[float, float]

    @classmethod
    def of(cls, plane: str) -> PlaneLaw:
        check_plane(plane)

        def pair(value: Callable[[float], float]) -> tuple[float, float]:
            return value(MATRIX.poisson_ratio), value(FIBER.poisson_ratio)

        if plane == "stress":
            kappa, rho = pair(lambda nu: 1 / (2 * (1 - nu))), (1.0, 1.0)
        else:
            kappa = pair(lambda nu: 1 / (2 * (1 + nu) * (1 - 2 * nu)))
            rho = pair(lambda nu: 1 - 2 * nu)
        return cls(plane, kappa, pair(lambda nu: 1 / (2 * (1 + nu))), rho, pair(lambda nu: nu))


def uniaxial_modulus(material: Material, plane: str) -> float:
    """σ_xx / ε_xx of ``material`` in uniaxial stress: E (plane stress), E / (1 − ν²) (strain)."""
    check_plane(plane)
    nu = material.poisson_ratio
    return material.youngs_modulus if plane == "stress" else material.youngs_modulus / (1 - nu**2)


def check_fields(youngs_modulus: np.ndarray, *strains: np.ndarray) -> None:
    """:class:`InputError` unless E is ``[N, 1, 32, 32]`` > 0 and each strain ``[N, 3, 32, 32]``."""
    n = youngs_modulus.shape[0] if youngs_modulus.ndim == 4 else -1
    if youngs_modulus.shape != (n, 1, GRID, GRID):
        raise InputError(f"E must be [N, 1, {GRID}, {GRID}]; got {list(youngs_modulus.shape)}")
    for strain in strains:
        if strain.shape != (n, N_STRAIN, GRID, GRID):
            raise InputError(
                f"strain must be [{n}, {N_STRAIN}, {GRID}, {GRID}] to match E; "
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
    fiber = fiber_mask(youngs_modulus)
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
    n = youngs_modulus.shape[0]
    return youngs_modulus.reshape(n, PIXELS), strain.reshape(n, N_STRAIN, PIXELS)


# --- the quantities ---------------------------------------------------------------------------
def quantities(
    youngs_modulus: np.ndarray, strain: np.ndarray, plane: str, applied_strain: float
) -> dict[str, np.ndarray]:
    """All SPEC §9 quantities of strain ``[N, 3, 32, 32]`` at applied strain ū, in one pass.

    Returns ``{"stress": float32 [N, 3, 32, 32] MPa, "von_mises": float32 [N, 32, 32] MPa,
    "E_x": float64 [N] MPa, "nu_xy": float64 [N], "max_von_mises": float64 [N] MPa}``: the
    datasets ``solve -o x.h5`` and ``predict -o x.h5`` write, and what REST returns.
    """
    E, eps = _flat(youngs_modulus, strain)
    check_applied_strain(applied_strain)
    law = PlaneLaw.of(plane)
    n = E.shape[0]
    sigma = np.empty((n, N_STRAIN, PIXELS), dtype=np.float32)
    vm = np.empty((n, PIXELS), dtype=np.float32)
    mean_sxx, max_vm = np.empty(n), np.empty(n)
    for s in blocks(n):
        kappa, mu, rho = pixel_moduli(E[s], law)
        tr, dev, gamma = strain_invariants(eps[s])
        a, b, g = kappa * tr, mu * dev, mu * gamma  # [n, P] MPa
        np.add(a, b, out=sigma[s, 0])
        np.subtract(a, b, out=sigma[s, 1])
        sigma[s, 2] = g
        mean_sxx[s] = (a.sum(axis=1) + b.sum(axis=1)) / PIXELS
        vm2 = von_mises_squared(a, b, g, rho)
        max_vm[s] = np.sqrt(vm2.max(axis=1))
        np.sqrt(vm2, out=vm[s])
    return {
        "stress": sigma.reshape(n, N_STRAIN, GRID, GRID),
        "von_mises": vm.reshape(n, GRID, GRID),
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
    youngs_modulus: np.ndarray, strain: np.ndarray, plane: str, applied_strain: float
) -> np.ndarray:
    """E_x = mean σ_xx / ū in MPa, float64 ``[N]``, of strain ``[N, 3, 32, 32]`` at ū."""
    E, eps = _flat(youngs_modulus, strain)
    check_applied_strain(applied_strain)
    law = PlaneLaw.of(plane)
    mean_sxx = np.empty(E.shape[0])
    for s in blocks(E.shape[0]):
        kappa, mu, _ = pixel_moduli(E[s], law)
        tr, dev, _ = strain_invariants(eps[s])
        mean_sxx[s] = (np.vecdot(kappa, tr) + np.vecdot(mu, dev)) / PIXELS
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


def voigt_bound(fiber_fraction: Any, plane: str) -> np.ndarray:
    """f E'_f + (1 − f) E'_m in MPa, float64 shaped like ``fiber_fraction`` (module doc)."""
    f = _fraction(fiber_fraction)
    return f * uniaxial_modulus(FIBER, plane) + (1 - f) * uniaxial_modulus(MATRIX, plane)


def reuss_bound(fiber_fraction: Any, plane: str) -> np.ndarray:
    """(f / E'_f + (1 − f) / E'_m)⁻¹ in MPa: a rigorous lower bound on E_x (module doc)."""
    f = _fraction(fiber_fraction)
    return 1.0 / (f / uniaxial_modulus(FIBER, plane) + (1 - f) / uniaxial_modulus(MATRIX, plane))


def uniform_strain_bound(fiber_fraction: Any, plane: str) -> np.ndarray:
    """⟨c11⟩ − ⟨c12⟩² / ⟨c11⟩ in MPa: the rigorous upper bound on E_x (module doc)."""
    f = _fraction(fiber_fraction)
    law = PlaneLaw.of(plane)
    moduli = (MATRIX.youngs_modulus, FIBER.youngs_modulus)
    weights = (1 - f, f)
    # c11 = κ + μ, c12 = κ − μ per phase, averaged over the area
    c11 = sum(
        w * e * (k + m) for w, e, k, m in zip(weights, moduli, law.kappa, law.mu, strict=True)
    )
    c12 = sum(
        w * e * (k - m) for w, e, k, m in zip(weights, moduli, law.kappa, law.mu, strict=True)
    )
    return np.asarray(c11 - c12**2 / c11)
