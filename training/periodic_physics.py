"""Exact physics of SPEC §11 (periodic homogenization) around a network with 9 output channels.

The network sees one periodic image E ``[N, 1, n, n]`` and predicts the fields of the three unit
load cases at once (channel ``3 j + c``: case j of xx, yy, xy, component c of eps_xx,
eps_yy, gamma_xy). Everything below is a fixed, parameter-free map, in the training graph and in
the exported one alike:

- **Mean strain.** The domain mean of case j's strain is exactly its macro strain ū e_j: each
  predicted field has its own mean subtracted and ū e_j added (:meth:`PeriodicPhysics.unit_cases`).
  A periodic field's mean is the only constraint periodicity puts on it (the mean of the gradient
  of a periodic ũ is zero), so this projection is exact and costs nothing the network needs.
- **Symmetries.** For each reflection g of the square (SPEC §11: the mirrors in x and in y, the
  x <-> y swap, and their products), the unit cases of gE are those of E moved by g: with T_g the
  image map and Q_g the signed permutation of (eps_xx, eps_yy, gamma_xy),
  ``U(gE)[j] = T_g Q_g Σ_k (Q_g⁻¹)_kj U(E)[k]``, i.e. in the matrix layout ``[case, component]``
  ``U(E) = Q_gᵀ T_g(U(gE)) Q_g`` (every Q_g here is orthogonal and its own inverse) and
  ``C_eff(gE) = Q_g C_eff(E) Q_gᵀ``. The graph evaluates the network on the batch and on its
  images under the elements ``in_graph`` (one forward pass of the concatenated batch), maps each
  prediction back and averages them: the result is exactly equivariant under that subgroup. The
  other elements (and whole-pixel periodic shifts) are training augmentation
  (:func:`random_symmetry`, built on :func:`transform_sample`).
- **Error estimate.** The members' disagreement in the energy norm of SPEC §9, summed over the
  three cases: ``sqrt(mean_g ‖m_g − m̄‖²_C) · 2 / ‖m̄‖_C`` (for two members ‖m₁ − m₂‖ / ‖m̄‖,
  the uniaxial model's mirror estimate).
- **C_eff**, from the averaged fields, symmetric and positive definite by construction:
  ``estimator="stress"``: the mean stress of each case over ū (SPEC §11's definition), made
  symmetric; ``"energy"``: the Gram matrix ⟨ε^(i) : C : ε^(j)⟩ / ū² (positive definite for any
  fields whose means are ū e_j); ``"auto"`` (the default): the symmetrized mean stress where it is
  positive definite (Sylvester's criterion on its leading minors), else the Gram matrix. Why the
  mean stress first: each pixel is one material, so the mean stress of exact pixel-averaged
  fields IS the FE's C_eff, while their energy misses the intra-pixel fluctuation energy and is
  biased low (docs/training.md measures both on FE data).

Shapes: unit cases ``[N, 3, 3, n, n]`` (case, component, row, column); C_eff ``[N, 3, 3]`` MPa
(Voigt, engineering shear); estimate ``[N]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from microstrain.conventions import (
    DEFAULT_APPLIED_STRAIN,
    N_CASES,
    N_STRAIN,
    ONNX_C_EFF,
    ONNX_ERROR_ESTIMATE,
    ONNX_OUTPUT,
)
from microstrain.quantities import PlaneLaw
from training.measures import FIBER_MODULUS_THRESHOLD

PERIODIC_PLANE = "strain"  # a unidirectional ply's cross-section: long fibers, plane strain
C_EFF_ESTIMATORS = ("auto", "stress", "energy")

# the reflections of the square, each its own inverse: (flip columns, flip rows, transpose) of
# the image in the row-0-at-top layout, and the signed permutation Q of (eps_xx, eps_yy, gamma_xy)
_SWAP = ((0, 1, 0), (1, 0, 0), (0, 0, 1))
_MIRROR = ((1, 0, 0), (0, 1, 0), (0, 0, -1))
REFLECTIONS: dict[str, tuple[tuple[bool, bool, bool], tuple[tuple[int, ...], ...]]] = {
    "identity": ((False, False, False), ((1, 0, 0), (0, 1, 0), (0, 0, 1))),
    "mirror_x": ((True, False, False), _MIRROR),  # x -> 1 - x: columns reversed
    "mirror_y": ((False, True, False), _MIRROR),  # y -> 1 - y: rows reversed
    "rotate_180": ((True, True, False), ((1, 0, 0), (0, 1, 0), (0, 0, 1))),
    # (x, y) -> (y, x): E[::-1, ::-1].T in the image layout (SPEC §11)
    "swap": ((True, True, True), _SWAP),
    # (x, y) -> (1 - y, 1 - x): the plain transpose E.T
    "antiswap": ((False, False, True), _SWAP),
}


def voigt_map(element: str) -> np.ndarray:
    """Q ``[3, 3]`` of a reflection: the transformed strain is Q ε (engineering shear)."""
    return np.asarray(REFLECTIONS[element][1], dtype=np.float64)


def signed_permutation(unit_cases: Tensor, element: str) -> Tensor:
    """Qᵀ U Q for unit cases ``[N, 3 (case), 3 (component), n, n]`` and the signed permutation Q
    of ``element``: entry (k, c) is s_k s_c U[π(k), π(c)] (π(k) the row of column k's nonzero,
    s_k its sign): a gather and a constant sign, no matrix products (identity: U itself)."""
    q = voigt_map(element)
    if np.array_equal(q, np.eye(N_STRAIN)):
        return unit_cases
    order = [int(np.flatnonzero(q[:, k])[0]) for k in range(N_STRAIN)]
    signs = np.array([q[order[k], k] for k in range(N_STRAIN)])
    if order != list(range(N_STRAIN)):
        unit_cases = unit_cases[:, order][:, :, order]
    if (signs < 0).any():
        sign = torch.as_tensor(np.outer(signs, signs), dtype=unit_cases.dtype)
        unit_cases = unit_cases * sign.to(unit_cases.device)[None, :, :, None, None]
    return unit_cases


def transform_image(x: Tensor, element: str) -> Tensor:
    """The image map T_g of ``element`` on the last two axes (row, column) of ``x``."""
    flip_columns, flip_rows, transpose = REFLECTIONS[element][0]
    dims = [d for d, on in ((-1, flip_columns), (-2, flip_rows)) if on]
    if dims:
        x = x.flip(dims)
    return x.transpose(-1, -2) if transpose else x


def transform_sample(
    youngs_modulus: Tensor, unit_cases: Tensor, element: str, shift: tuple[int, int] = (0, 0)
) -> tuple[Tensor, Tensor]:
    """An exact new sample from one: E ``[..., 1, n, n]`` and its unit cases
    ``[..., 3, 3, n, n]`` under a reflection and a periodic shift by whole pixels (rows,
    columns). Training augmentation; tested against FE solves."""
    q = torch.as_tensor(voigt_map(element), dtype=unit_cases.dtype, device=unit_cases.device)
    e = transform_image(youngs_modulus, element)
    # U(gE)[j] = T Q Σ_k (Q⁻¹)_kj U(E)[k]; Q⁻¹ = Qᵀ
    moved = torch.einsum("cd,...kdhw,jk->...jchw", q, transform_image(unit_cases, element), q)
    if shift != (0, 0):
        e = torch.roll(e, shift, dims=(-2, -1))
        moved = torch.roll(moved, shift, dims=(-2, -1))
    return e, moved


def phase_moduli(youngs_modulus: Tensor, plane: str) -> tuple[Tensor, Tensor]:
    """Per-pixel plane bulk and shear moduli κ, μ (MPa) ``[N, 1, n, n]`` of E ``[N, 1, n, n]``;
    the phase of a pixel is whether E lies above the midpoint. In these invariants the Voigt
    stiffness is [[κ + μ, κ − μ, 0], [κ − μ, κ + μ, 0], [0, 0, μ]]: every map below is
    elementwise (no matrix per pixel), which onnxruntime runs far faster than an Einsum."""
    law = PlaneLaw.of(plane)
    fiber = youngs_modulus > FIBER_MODULUS_THRESHOLD  # [N, 1, n, n]

    def per_phase(pair: tuple[float, float]) -> Tensor:
        return youngs_modulus * torch.full_like(youngs_modulus, pair[0]).masked_fill(fiber, pair[1])

    return per_phase(law.kappa), per_phase(law.mu)


def invariants(unit_cases: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(tr, dev, γ) = (ε_xx + ε_yy, ε_xx − ε_yy, γ_xy), each ``[N, 3, n, n]`` (one per case), of
    the unit cases ``[N, 3, 3, n, n]``."""
    e_xx, e_yy, gamma = unit_cases[:, :, 0], unit_cases[:, :, 1], unit_cases[:, :, 2]
    return e_xx + e_yy, e_xx - e_yy, gamma


def mean_stress_stiffness(
    youngs_modulus: Tensor, unit_cases: Tensor, plane: str, ubar: float
) -> Tensor:
    """SPEC §11's C_eff of fields: column j the mean stress of case j over ū, ``[N, 3, 3]``
    (not symmetrized: exact fields give a symmetric matrix, predicted ones nearly so).
    σ_xx = κ tr + μ dev, σ_yy = κ tr − μ dev, τ_xy = μ γ."""
    kappa, mu = phase_moduli(youngs_modulus, plane)
    trace, deviator, gamma = invariants(unit_cases)
    a = (kappa * trace).mean(dim=(-2, -1))  # [N, 3 cases]
    b = (mu * deviator).mean(dim=(-2, -1))
    g = (mu * gamma).mean(dim=(-2, -1))
    return torch.stack([a + b, a - b, g], dim=1) / ubar  # [N, component, case]


def energy_stiffness(youngs_modulus: Tensor, unit_cases: Tensor, plane: str, ubar: float) -> Tensor:
    """The Gram matrix ⟨ε^(i) : C : ε^(j)⟩ / ū² ``[N, 3, 3]`` MPa of the unit cases:
    κ tr_i tr_j + μ (dev_i dev_j + γ_i γ_j), averaged over the pixels."""
    kappa, mu = phase_moduli(youngs_modulus, plane)
    trace, deviator, gamma = invariants(unit_cases)  # [N, 3, n, n]
    t, d, g = trace.unsqueeze(2), deviator.unsqueeze(2), gamma.unsqueeze(2)  # [N, 3, 1, n, n]
    density = kappa.unsqueeze(1) * t * t.transpose(1, 2) + mu.unsqueeze(1) * (
        d * d.transpose(1, 2) + g * g.transpose(1, 2)
    )  # [N, 3, 3, n, n]
    gram = density.mean(dim=(-2, -1))
    gram = 0.5 * (gram + gram.transpose(1, 2))  # symmetric to the bit, not to round-off
    return gram / (ubar * ubar)


def is_positive_definite(matrix: Tensor) -> Tensor:
    """Sylvester's criterion for symmetric ``[N, 3, 3]``: all leading minors positive, ``[N]``."""
    a = matrix
    minor1 = a[:, 0, 0]
    minor2 = a[:, 0, 0] * a[:, 1, 1] - a[:, 0, 1] * a[:, 1, 0]
    minor3 = (
        a[:, 0, 0] * (a[:, 1, 1] * a[:, 2, 2] - a[:, 1, 2] * a[:, 2, 1])
        - a[:, 0, 1] * (a[:, 1, 0] * a[:, 2, 2] - a[:, 1, 2] * a[:, 2, 0])
        + a[:, 0, 2] * (a[:, 1, 0] * a[:, 2, 1] - a[:, 1, 1] * a[:, 2, 0])
    )
    return (minor1 > 0) & (minor2 > 0) & (minor3 > 0)


class PeriodicPhysics(nn.Module):
    """The maps above for one plane: the ``"periodic"`` physics of :mod:`training.model`'s slot.

    The network has 9 output channels (:attr:`network_channels`), standardized on the training
    strains (:meth:`output_target`); de-normalized, channel ``3 j + c`` is case j's component c
    for ū = 0.1 before the mean projection.

    Args:
        plane: ``"strain"`` (the periodic model's; ``"stress"`` only for comparisons).
        applied_strain: ū of the unit cases (SPEC §11: 0.1).
        in_graph: the reflections evaluated and averaged in every forward pass, ``"identity"``
            first (one element: no averaging, no estimate).
        estimator: how C_eff is taken from the fields (module docstring).
        symmetrize_training: average over ``in_graph`` in training too; False (the default)
            trains each orientation by itself (with augmentation), so every member stays
            supervised and their disagreement stays an estimate of the error.
    """

    kind = "periodic"
    network_channels = N_CASES * N_STRAIN
    output_quantity = "strain"
    estimate_by_default = True

    def __init__(
        self,
        plane: str = PERIODIC_PLANE,
        applied_strain: float = DEFAULT_APPLIED_STRAIN,
        in_graph: Sequence[str] = ("identity", "swap"),
        estimator: str = "auto",
        symmetrize_training: bool = False,
    ) -> None:
        super().__init__()
        PlaneLaw.of(plane)  # validates
        unknown = [g for g in in_graph if g not in REFLECTIONS]
        if unknown or not in_graph or in_graph[0] != "identity":
            raise ValueError(
                f"in_graph must start with 'identity' and name reflections of {list(REFLECTIONS)}; "
                f"got {list(in_graph)}"
            )
        if estimator not in C_EFF_ESTIMATORS:
            raise ValueError(f"estimator must be one of {C_EFF_ESTIMATORS}; got {estimator!r}")
        self.plane = plane
        self.applied_strain = float(applied_strain)
        self.in_graph = tuple(in_graph)
        self.estimator = estimator
        self.symmetrize_training = bool(symmetrize_training)
        # plain tensors, not buffers: nothing enters the state_dict (they follow from the options)
        self._unit = torch.eye(N_CASES, dtype=torch.float64) * self.applied_strain  # [case, comp]

    def options(self) -> dict[str, Any]:
        """JSON keyword arguments that rebuild this physics (cards, ``weights.pt``)."""
        return {
            "plane": self.plane,
            "applied_strain": self.applied_strain,
            "in_graph": list(self.in_graph),
            "estimator": self.estimator,
            "symmetrize_training": self.symmetrize_training,
        }

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.options().items())

    @property
    def has_error_estimate(self) -> bool:
        return len(self.in_graph) > 1

    def output_names(self, error_estimate: bool) -> tuple[str, ...]:
        """The graph's outputs in order: strain, C_eff [, error_estimate]."""
        names = (ONNX_OUTPUT, ONNX_C_EFF)
        return (
            (*names, ONNX_ERROR_ESTIMATE) if error_estimate and self.has_error_estimate else names
        )

    def output_target(self, youngs_modulus: Tensor, strain: Tensor) -> Tensor:
        """The dataset's unit cases ``[n, 3, 3, h, w]`` as the network's 9 channels
        ``[n, 9, h, w]``: what the normalizer's output statistics describe."""
        return strain.reshape(strain.shape[0], self.network_channels, *strain.shape[-2:])

    @property
    def members(self) -> tuple[str, ...]:
        """The elements of this pass: all of ``in_graph``, or only the identity in training
        without ``symmetrize_training``."""
        if self.training and not self.symmetrize_training:
            return self.in_graph[:1]
        return self.in_graph

    def network_input(self, youngs_modulus: Tensor) -> Tensor:
        """Raw E ``[N, 1, n, n]`` -> ``[G N, 1, n, n]``: the batch under each member."""
        members = self.members
        if len(members) == 1:
            return youngs_modulus
        return torch.cat([transform_image(youngs_modulus, g) for g in members], dim=0)

    def unit_cases(self, output: Tensor) -> Tensor:
        """De-normalized network output ``[N, 9, n, n]`` -> the unit cases
        ``[N, 3, 3, n, n]`` whose means are exactly ū e_j."""
        fields = output.reshape(output.shape[0], N_CASES, N_STRAIN, *output.shape[-2:])
        unit = self._unit.to(fields)[None, :, :, None, None]  # [1, 3, 3, 1, 1]
        return fields - fields.mean(dim=(-2, -1), keepdim=True) + unit

    def energy(self, youngs_modulus: Tensor, unit_cases: Tensor) -> Tensor:
        """Σ over pixels and cases of ε : C(E) : ε = κ tr² + μ (dev² + γ²), MPa, ``[N]`` (the
        squared energy norm)."""
        kappa, mu = phase_moduli(youngs_modulus, self.plane)
        trace, deviator, gamma = invariants(unit_cases)  # [N, 3, n, n]
        density = kappa * trace * trace + mu * (deviator * deviator + gamma * gamma)
        return density.sum(dim=(1, 2, 3))

    def stiffness(self, youngs_modulus: Tensor, unit_cases: Tensor) -> Tensor:
        """C_eff ``[N, 3, 3]`` MPa of the fields by :attr:`estimator`, symmetric and positive
        definite (module docstring)."""
        ubar = self.applied_strain
        if self.estimator == "energy":
            return energy_stiffness(youngs_modulus, unit_cases, self.plane, ubar)
        stress = mean_stress_stiffness(youngs_modulus, unit_cases, self.plane, ubar)
        stress = 0.5 * (stress + stress.transpose(1, 2))
        if self.estimator == "stress":
            return stress
        energy = energy_stiffness(youngs_modulus, unit_cases, self.plane, ubar)
        positive = is_positive_definite(stress)[:, None, None]  # [N, 1, 1]
        return torch.where(positive, stress, energy)

    def forward(
        self, youngs_modulus: Tensor, network_input: Tensor, output: Tensor, estimate: bool
    ) -> dict[str, Tensor]:
        """Raw E ``[N, 1, n, n]`` MPa, :meth:`network_input`'s batch and the de-normalized
        network output ``[G N, 9, n, n]`` -> ``{"strain": [N, 3, 3, n, n] for ū, "C_eff":
        [N, 3, 3] MPa}`` and, with ``estimate`` and several members, ``"error_estimate"`` ``[N]``.
        """
        members = self.members
        cases = self.unit_cases(output)  # [G N, 3, 3, n, n]
        grouped = cases.reshape(len(members), -1, *cases.shape[1:])  # [G, N, 3, 3, n, n]
        back = [
            # U(E) = Qᵀ T(U(gE)) Q in the [case, component] layout, Q a signed permutation
            signed_permutation(transform_image(grouped[k], g), g)
            for k, g in enumerate(members)
        ]
        average = back[0] if len(back) == 1 else torch.stack(back).mean(dim=0)
        outputs = {ONNX_OUTPUT: average, ONNX_C_EFF: self.stiffness(youngs_modulus, average)}
        if estimate and len(back) > 1:
            spread = torch.stack(
                [self.energy(youngs_modulus, member - average) for member in back]
            ).mean(dim=0)  # [N]
            tiny = torch.finfo(torch.float32).tiny
            reference = self.energy(youngs_modulus, average).clamp_min(tiny)
            outputs[ONNX_ERROR_ESTIMATE] = 2.0 * torch.sqrt(spread / reference)
        return outputs


# --- training on periodic samples ------------------------------------------------------------
def per_case(unit_cases: Tensor, fiber: Tensor) -> tuple[Tensor, Tensor]:
    """Unit cases ``[B, 3, 3, n, n]`` and fiber mask ``[B, 1, n, n]`` as ``3 B`` single-case
    samples (``[3 B, 3, n, n]``, ``[3 B, 1, n, n]``, sample-major): every SPEC §9 field measure
    and loss of the uniaxial model then applies to each load case (SPEC §11: per case, then
    mean)."""
    b = unit_cases.shape[0]
    fields = unit_cases.reshape(b * N_CASES, N_STRAIN, *unit_cases.shape[-2:])
    return fields, fiber.repeat_interleave(N_CASES, dim=0)


def c_eff_relative_error(predicted: Tensor, reference: Tensor) -> Tensor:
    """‖Ĉ − C‖_F / ‖C‖_F per sample, ``[B]``, of ``[B, 3, 3]`` stiffnesses (SPEC §11)."""
    difference = torch.linalg.matrix_norm(predicted - reference)
    return difference / torch.linalg.matrix_norm(reference)


# the eight symmetries of the square as products of the reflections above (the rotations by a
# quarter turn are a swap followed by a mirror)
SQUARE_GROUP: tuple[tuple[str, ...], ...] = (
    ("identity",),
    ("mirror_x",),
    ("mirror_y",),
    ("rotate_180",),
    ("swap",),
    ("antiswap",),
    ("swap", "mirror_x"),
    ("swap", "mirror_y"),
)


def random_symmetry(
    youngs_modulus: Tensor, unit_cases: Tensor, fiber: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Training augmentation: each sample (E ``[B, 1, n, n]``, unit cases
    ``[B, 3, 3, n, n]``, fiber mask ``[B, 1, n, n]``) under one of the eight symmetries of the
    square and a periodic shift by whole pixels, drawn uniformly from torch's global generator:
    every result is an exact FE sample (tested against the solver)."""
    b, n = youngs_modulus.shape[0], youngs_modulus.shape[-1]
    device = youngs_modulus.device
    choice = torch.randint(len(SQUARE_GROUP), (b,), device=device).tolist()
    shifts = torch.randint(n, (b, 2), device=device).tolist()
    es, cases, fibers = [], [], []
    for i in range(b):
        e, u, f = youngs_modulus[i], unit_cases[i], fiber[i]
        for element in SQUARE_GROUP[choice[i]]:
            e, u = transform_sample(e, u, element)
            f = transform_image(f, element)
        shift = (shifts[i][0], shifts[i][1])
        es.append(torch.roll(e, shift, dims=(-2, -1)))
        cases.append(torch.roll(u, shift, dims=(-2, -1)))
        fibers.append(torch.roll(f, shift, dims=(-2, -1)))
    return torch.stack(es), torch.stack(cases), torch.stack(fibers)
