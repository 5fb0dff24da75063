"""Torch twin of :mod:`microstrain.quantities` and :mod:`microstrain.measures` for training.

The same SPEC §9 physics on tensors, on any device, differentiable: stress, von Mises, E_x, ν_xy,
energy density and the energy-norm error; :class:`ErrorMeasures`, a torchmetrics ``Metric`` that
accumulates the §9 error measures over batches and DDP ranks (sums and counts reduce by ``sum``,
maxima by ``max``); and two training losses, :func:`energy_norm_loss` and :func:`stress_loss`
(per sample squared, then averaged).
The per-phase moduli come from :class:`microstrain.quantities.PlaneLaw` and the measure names
from :mod:`microstrain.measures`, so the numpy and torch results agree to round-off (tested).

The phase of each pixel is given, never guessed from the value range: ``fiber_or_modulus`` is a
bool fiber mask ``[N, 1, 32, 32]`` (E then follows the phase) or a floating E map in MPa (fiber
where E lies above the midpoint of the two moduli). A 0/1 mask stored as floats must be passed
as ``mask.bool()``; :class:`ErrorMeasures` accepts only the bool mask.

Strains are physical (``[N, 3, 32, 32]``: eps_xx, eps_yy, gamma_xy) or any common multiple of
them: the measures and losses are ratios. Nothing here syncs with the host (no ``.item()``).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

from microstrain.conventions import DEFAULT_PLANE, FIBER, MATRIX, STRAIN_CHANNELS
from microstrain.measures import HEADLINE_KEYS, MAX_KEYS, MEAN_KEYS, PER_SAMPLE
from microstrain.quantities import PlaneLaw

# the keys of ErrorMeasures.compute() that training logs (``val/<key>``, ``test/<key>``) and
# records: the SPEC §10 headline measures of the numpy home, then the strain error per channel
# and per phase (each per sample, then the mean)
LOGGED_MEASURES = (
    *HEADLINE_KEYS,
    *(f"strain_relative_l2_{c}" for c in STRAIN_CHANNELS),
    "strain_relative_l2_matrix",
    "strain_relative_l2_fiber",
)
# E_x and ν_xy are the apparent constants of the uniaxial pull (SPEC §9); a periodic unit case
# has no free edge, so a periodic model is judged by C_eff and its constants instead (SPEC §11)
UNIAXIAL_ONLY = ("E_x_error_mean", "E_x_error_max", "nu_xy_error_mean")


def logged_measures(periodic: bool) -> tuple[str, ...]:
    """The measures training logs and records for a uniaxial or a periodic model."""
    if not periodic:
        return LOGGED_MEASURES
    return (*(k for k in LOGGED_MEASURES if k not in UNIAXIAL_ONLY), "C_eff_error_mean")


# a pixel whose E (MPa) lies above the midpoint of the two moduli is fiber
FIBER_MODULUS_THRESHOLD = 0.5 * (FIBER.youngs_modulus + MATRIX.youngs_modulus)


def fiber_of(fiber_or_modulus: Tensor) -> Tensor:
    """Bool fiber mask ``[N, 1, 32, 32]`` of a bool mask (itself) or an E map in MPa."""
    if fiber_or_modulus.dtype == torch.bool:
        return fiber_or_modulus
    if not fiber_or_modulus.is_floating_point():
        raise TypeError(f"expected a bool fiber mask or float E map, got {fiber_or_modulus.dtype}")
    return fiber_or_modulus > FIBER_MODULUS_THRESHOLD


def pixel_moduli(
    fiber_or_modulus: Tensor, plane: str, dtype: torch.dtype
) -> tuple[Tensor, Tensor, Tensor | None]:
    """(κ, μ, ρ) per pixel ``[N, 32, 32]`` in ``dtype``: plane bulk and shear modulus (MPa) and the
    von Mises trace factor (None in plane stress); see :mod:`microstrain.quantities`."""
    law = PlaneLaw.of(plane)
    fiber = fiber_of(fiber_or_modulus)[:, 0]  # [N, 32, 32]

    def per_phase(pair: tuple[float, float]) -> Tensor:
        # (matrix, fiber) values filled on the device: no host-to-device copy, exact in dtype
        return torch.full_like(fiber, pair[0], dtype=dtype).masked_fill_(fiber, pair[1])

    if fiber_or_modulus.dtype == torch.bool:
        E = per_phase((MATRIX.youngs_modulus, FIBER.youngs_modulus))
    else:
        E = fiber_or_modulus[:, 0].to(dtype)
    rho = per_phase(law.rho) if plane == "strain" else None
    return E * per_phase(law.kappa), E * per_phase(law.mu), rho


def _parts(
    fiber_or_modulus: Tensor, strain: Tensor, plane: str
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor | None]:
    """(κ tr, μ dev, τ_xy, tr, dev, γ, ρ) per pixel ``[N, 32, 32]`` of strain ``[N, 3, 32, 32]``."""
    kappa, mu, rho = pixel_moduli(fiber_or_modulus, plane, strain.dtype)
    tr, dev, gamma = strain[:, 0] + strain[:, 1], strain[:, 0] - strain[:, 1], strain[:, 2]
    return kappa * tr, mu * dev, mu * gamma, tr, dev, gamma, rho


def stress(fiber_or_modulus: Tensor, strain: Tensor, plane: str = DEFAULT_PLANE) -> Tensor:
    """σ_xx, σ_yy, τ_xy in MPa ``[N, 3, 32, 32]`` of strain ``[N, 3, 32, 32]``."""
    a, b, t = _parts(fiber_or_modulus, strain, plane)[:3]
    return torch.stack([a + b, a - b, t], dim=1)


def _von_mises(a: Tensor, b: Tensor, t: Tensor, rho: Tensor | None) -> Tensor:
    ra = a if rho is None else rho * a
    # clamp: the gradient of sqrt at an unstressed pixel would be infinite
    return (ra.square() + 3 * (b.square() + t.square())).clamp_min(1e-30).sqrt()


def von_mises(fiber_or_modulus: Tensor, strain: Tensor, plane: str = DEFAULT_PLANE) -> Tensor:
    """von Mises stress in MPa ``[N, 32, 32]`` (plane strain with σ_zz = ν (σ_xx + σ_yy))."""
    a, b, t, _, _, _, rho = _parts(fiber_or_modulus, strain, plane)
    return _von_mises(a, b, t, rho)


def apparent_modulus(
    fiber_or_modulus: Tensor, strain: Tensor, plane: str, applied_strain: float
) -> Tensor:
    """E_x = mean σ_xx / ū in MPa ``[N]``."""
    a, b = _parts(fiber_or_modulus, strain, plane)[:2]
    return (a + b).mean(dim=(1, 2)) / applied_strain


def apparent_poisson_ratio(strain: Tensor, applied_strain: float) -> Tensor:
    """ν_xy = −mean ε_yy / ū ``[N]``."""
    return -strain[:, 1].mean(dim=(1, 2)) / applied_strain


def energy_density(fiber_or_modulus: Tensor, strain: Tensor, plane: str = DEFAULT_PLANE) -> Tensor:
    """ε : C : ε = κ tr² + μ (dev² + γ²) in MPa ``[N, 32, 32]`` (tr = ε_xx + ε_yy,
    dev = ε_xx − ε_yy): twice the energy density, the one form training, its losses and the
    exported error estimate use."""
    kappa, mu, _ = pixel_moduli(fiber_or_modulus, plane, strain.dtype)
    tr, dev, gamma = strain[:, 0] + strain[:, 1], strain[:, 0] - strain[:, 1], strain[:, 2]
    return kappa * tr * tr + mu * (dev * dev + gamma * gamma)


def _ratio(num: Tensor, den: Tensor) -> tuple[Tensor, Tensor]:
    """(√(num / den), defined): NaN where den = 0, where the measure is undefined."""
    defined = den > 0
    value = (num / torch.where(defined, den, torch.ones_like(den))).sqrt()
    return torch.where(defined, value, torch.full_like(value, float("nan"))), defined


def energy_norm_error(
    fiber_or_modulus: Tensor, pred: Tensor, target: Tensor, plane: str = DEFAULT_PLANE
) -> Tensor:
    """√(Σ Δε : C : Δε / Σ ε : C : ε) per sample ``[N]`` (NaN for a zero reference)."""
    num = energy_density(fiber_or_modulus, pred - target, plane).sum(dim=(1, 2))
    den = energy_density(fiber_or_modulus, target, plane).sum(dim=(1, 2))
    return _ratio(num, den)[0]


def per_sample_measures(
    fiber_or_modulus: Tensor, pred: Tensor, target: Tensor, plane: str = DEFAULT_PLANE
) -> dict[str, tuple[Tensor, Tensor]]:
    """Every measure of :data:`microstrain.measures.PER_SAMPLE` -> (value ``[N]``, defined ``[N]``).

    Computed in the dtype of ``target`` (cast ``pred`` and ``target`` to float64 for reports).
    """
    pred = pred.to(target.dtype)
    fiber = fiber_of(fiber_or_modulus)[:, 0].to(target.dtype)  # [N, 32, 32]
    d = pred - target
    d2, r2 = d.square(), target.square()  # [N, 3, 32, 32]
    out = {"strain_relative_l2": _ratio(d2.sum(dim=(1, 2, 3)), r2.sum(dim=(1, 2, 3)))}
    num_c, den_c = d2.sum(dim=(2, 3)), r2.sum(dim=(2, 3))  # [N, 3]
    for c, name in enumerate(STRAIN_CHANNELS):
        out[f"strain_relative_l2_{name}"] = _ratio(num_c[:, c], den_c[:, c])
    d2p, r2p = d2.sum(dim=1), r2.sum(dim=1)  # [N, 32, 32]
    for phase, weight in (("matrix", 1 - fiber), ("fiber", fiber)):
        out[f"strain_relative_l2_{phase}"] = _ratio(
            (d2p * weight).sum(dim=(1, 2)), (r2p * weight).sum(dim=(1, 2))
        )
    a_d, b_d, t_d, tr_d, dev_d, g_d, rho = _parts(fiber_or_modulus, d, plane)
    a_r, b_r, t_r, tr_r, dev_r, g_r, _ = _parts(fiber_or_modulus, target, plane)

    def total(x: Tensor) -> Tensor:
        return x.sum(dim=(1, 2))

    out["stress_relative_l2"] = _ratio(
        total(2 * a_d.square() + 2 * b_d.square() + t_d.square()),
        total(2 * a_r.square() + 2 * b_r.square() + t_r.square()),
    )
    out["energy_norm_error"] = _ratio(
        total(a_d * tr_d + b_d * dev_d + t_d * g_d), total(a_r * tr_r + b_r * dev_r + t_r * g_r)
    )
    out["E_x_error"] = _ratio(total(a_d + b_d).square(), total(a_r + b_r).square())
    out["nu_xy_error"] = _ratio(total(d[:, 1]).square(), total(target[:, 1]).square())
    vm_r = _von_mises(a_r, b_r, t_r, rho).amax(dim=(1, 2))
    vm_p = _von_mises(a_r + a_d, b_r + b_d, t_r + t_d, rho).amax(dim=(1, 2))
    out["max_von_mises_error"] = _ratio((vm_p - vm_r).square(), vm_r.square())
    return out


# --- losses ----------------------------------------------------------------------------------
def _tiny(x: Tensor) -> Tensor:
    """``x`` floored at the dtype's smallest normal number: a guard that no loaded sample hits."""
    return x.clamp_min(torch.finfo(x.dtype).tiny)


def energy_norm_loss(
    fiber_or_modulus: Tensor, pred: Tensor, target: Tensor, plane: str = DEFAULT_PLANE
) -> Tensor:
    """Mean over samples of Σ Δε : C : Δε / Σ ε : C : ε: the squared energy-norm error.

    Each sample is normalized by its own reference energy (so a soft sample counts as much as a
    stiff one) and each pixel weighed by its stiffness, as the structure does; a scalar,
    differentiable in ``pred``. Per sample it is :func:`energy_norm_error` squared.
    """
    num = energy_density(fiber_or_modulus, pred - target, plane).sum(dim=(1, 2))  # [N]
    den = energy_density(fiber_or_modulus, target, plane).sum(dim=(1, 2))
    return (num / _tiny(den)).mean()


def stress_loss(
    fiber_or_modulus: Tensor, pred: Tensor, target: Tensor, plane: str = DEFAULT_PLANE
) -> Tensor:
    """Mean over samples of |σ(ε̂) − σ(ε)|² / |σ(ε)|²: the squared relative stress error.

    Per sample it is the measure ``stress_relative_l2`` squared.
    """
    num = stress(fiber_or_modulus, pred - target, plane).square().sum(dim=(1, 2, 3))  # [N]
    den = stress(fiber_or_modulus, target, plane).square().sum(dim=(1, 2, 3))
    return (num / _tiny(den)).mean()


def strain_relative_l2(pred: Tensor, target: Tensor) -> Tensor:
    """``strain_relative_l2`` of SPEC §9 per sample ``[N]``: |ε̂ − ε| / |ε| over the three
    channels and every pixel of strains ``[N, 3, n, n]``."""
    num = (pred - target).double().square().sum(dim=(1, 2, 3))  # [N]
    den = target.double().square().sum(dim=(1, 2, 3))
    return (num / _tiny(den)).sqrt()


def measures_of(
    pred: Tensor, target: Tensor, fiber: Tensor, plane: str = DEFAULT_PLANE
) -> dict[str, float]:
    """The SPEC §9 measures of one set of samples (strains ``[N, 3, 32, 32]``, bool fiber mask
    ``[N, 1, 32, 32]``) as plain floats, keyed as :class:`ErrorMeasures` logs them."""
    metric = ErrorMeasures(plane)
    metric.update(pred.detach().cpu(), target.detach().cpu(), fiber.cpu())
    return {k: float(v) for k, v in metric.compute().items()}


def strain_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Mean over samples of |ε̂ − ε|² / |ε|² over the three channels: the squared relative strain
    error. Per sample it is the measure ``strain_relative_l2`` squared. Unlike the two losses
    above it weighs a matrix pixel's strain as much as a fiber's, where engineers read strain
    concentrations (the soft matrix carries the large strains)."""
    num = (pred - target).square().sum(dim=(1, 2, 3))  # [N]
    den = target.square().sum(dim=(1, 2, 3))
    return (num / _tiny(den)).mean()


# --- the metric --------------------------------------------------------------------------------
class ErrorMeasures(Metric):
    """SPEC §9 error measures over an epoch, as :class:`microstrain.measures.ErrorAccumulator`.

    ``update(pred, target, fiber)``: strains ``[N, 3, 32, 32]``, bool fiber mask
    ``[N, 1, 32, 32]``. ``compute()`` returns float32 scalars keyed like
    ``ErrorAccumulator.compute_flat()`` (``strain_relative_l2``, ``strain_relative_l2_eps_xx``, …,
    ``E_x_error_mean``, ``E_x_error_max``, …, ``n``); a measure defined for no sample is NaN.
    Accumulates in float64.
    """

    full_state_update = False
    sums: Tensor
    counts: Tensor
    maxima: Tensor
    n: Tensor

    def __init__(self, plane: str = DEFAULT_PLANE, **kwargs) -> None:
        super().__init__(**kwargs)
        PlaneLaw.of(plane)  # validates the plane
        self.plane = plane
        k, m = len(PER_SAMPLE), len(MAX_KEYS)
        self.add_state("sums", torch.zeros(k, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("counts", torch.zeros(k, dtype=torch.float64), dist_reduce_fx="sum")
        inf = torch.full((m,), -torch.inf, dtype=torch.float64)
        self.add_state("maxima", inf, dist_reduce_fx="max")
        self.add_state("n", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor, fiber: Tensor) -> None:  # type: ignore[override]
        if fiber.dtype != torch.bool:
            raise TypeError(f"fiber must be a bool mask [N, 1, 32, 32]; got dtype {fiber.dtype}")
        measures = per_sample_measures(fiber, pred.double(), target.double(), self.plane)
        values = torch.stack([measures[m][0] for m in PER_SAMPLE])  # [K, N]
        defined = torch.stack([measures[m][1] for m in PER_SAMPLE])  # [K, N]
        # a NaN of a defined sample (broken prediction) propagates; undefined ones are skipped
        self.sums += torch.where(defined, values, torch.zeros_like(values)).sum(dim=1)
        self.counts += defined.sum(dim=1)
        peak = torch.stack(
            [torch.where(measures[m][1], measures[m][0], -torch.inf).amax() for m in MAX_KEYS]
        )
        self.maxima = torch.maximum(self.maxima, peak)
        self.n += target.shape[0]

    def compute(self) -> dict[str, Tensor]:  # type: ignore[override]
        means = self.sums / self.counts  # 0/0 = NaN: defined for no sample
        out = {"n": self.n.float()}
        out.update({MEAN_KEYS[m]: means[i].float() for i, m in enumerate(PER_SAMPLE)})
        for j, (m, key) in enumerate(MAX_KEYS.items()):
            seen = self.counts[PER_SAMPLE.index(m)] > 0
            out[key] = torch.where(seen, self.maxima[j], torch.nan).float()
        return out
