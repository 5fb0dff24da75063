"""Exact physics of SPEC §1 built around a network, inside the graph that is trained and exported.

Three independent options of :class:`Physics`, each a fixed, parameter-free map (all off: the
plain ``normalizer ∘ net ∘ denormalizer``, and :class:`~training.normalization.PhysicalModel`
keeps that graph unchanged):

- ``output_space="stress"``: the network predicts normalized stress (σ_xx, σ_yy, τ_xy; the
  normalizer holds the training stresses' statistics); the strain follows exactly, per pixel,
  from the compliance C(E, ν, plane)⁻¹. With κ and μ the plane bulk and shear moduli of the
  pixel's phase (:class:`microstrain.quantities.PlaneLaw`, the same law the §9 measures use)::

      tr  = (σ_xx + σ_yy) / (2κ),   dev = (σ_xx − σ_yy) / (2μ),   γ_xy = τ_xy / μ
      ε_xx = (tr + dev) / 2,        ε_yy = (tr − dev) / 2

  Why: fibers are 28× stiffer than the matrix, so their strains are tiny and strain-space MSE
  hardly sees them, although they carry most of the load.
- ``mean_strain``: the domain mean of ε_xx is exactly ū (SPEC §1); the strain field (all three
  channels) is scaled by ū / mean ε_xx. The division is guarded: a mean closer to 0 than
  :data:`MEAN_FLOOR` · ū is replaced by that floor (with its sign), which only an untrained
  network can produce.
- ``symmetrize``: x-mirror equivariance (SPEC §1: mirroring E in x mirrors ε_xx and ε_yy and
  flips the sign of γ_xy)::

      f_sym(E) = ½ (f(E) + R f(M E))

  with M the mirror of the input and R that of the output, computed as ONE forward pass of the
  batch concatenated with its mirror (``[2N, 1, 32, 32]``), so the exported graph stays one graph
  with a dynamic batch axis.

  The two halves' disagreement is a free per-sample error estimate
  (:meth:`Physics.mirror_disagreement`, the graph's second output ``error_estimate``)::

      d(E) = ‖f(E) − R f(M E)‖_C / ‖f_sym(E)‖_C,   ‖ε‖_C² = Σ_pixels ε : C(E) : ε

  in the energy norm of SPEC §9 (the measure the targets are judged in; it weighs the stiff
  fibers, which carry most of the load, by their stiffness, where plain strain L2 hardly sees
  their tiny strains). With ``mean_strain`` the halves are compared as the output is made:
  each scaled to mean ε_xx = ū first, and f_sym after its scaling. The network's raw scale is
  free there (training only sees the scaled output; the default's raw mean ε_xx is a fraction
  of ū), so the unscaled halves' disagreement was mostly a difference of scale that the output
  does not have. Comparing the scaled halves is what makes the estimate rank the true
  energy-norm error on every held-out family (the figures are in docs/training.md, "The mirror
  estimate, compared as the output is made").

Order: network -> (compliance) -> symmetrize -> mean scaling. The mean of ε_xx is invariant under
the mirror, so the scaling keeps the symmetry, and coming last it holds to float round-off.

Everything is elementwise or a reduction (Greater, Where, Div, Mul, Add, Flip, Concat, ReduceMean,
ReduceSum, Sqrt, Max): no data-dependent control flow, no parameters or buffers: nothing enters
the ``state_dict`` (the per-phase constants are plain numbers derived from ``plane``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from microstrain.conventions import (
    DEFAULT_APPLIED_STRAIN,
    DEFAULT_PLANE,
    N_STRAIN,
    ONNX_ERROR_ESTIMATE,
    ONNX_OUTPUT,
)
from microstrain.quantities import PlaneLaw
from training.measures import FIBER_MODULUS_THRESHOLD, energy_density, stress

OUTPUT_SPACES = ("strain", "stress")
# |mean ε_xx| below this fraction of ū is floored (guard of the mean-strain division)
MEAN_FLOOR = 1e-3


def mirror_strain(strain: Tensor) -> Tensor:
    """R, the x-mirror of a strain field ``[N, 3, 32, 32]`` (SPEC §1: x -> 1 - x mirrors ε_xx and
    ε_yy and flips the sign of γ_xy): columns reversed, then γ_xy negated. Exact."""
    mirrored = strain.flip(-1)
    return torch.cat([mirrored[:, :2], -mirrored[:, 2:]], dim=1)


def mirror_x(youngs_modulus: Tensor, strain: Tensor) -> tuple[Tensor, Tensor]:
    """The x-mirror of a sample batch: (M E ``[N, 1, 32, 32]``, R ε ``[N, 3, 32, 32]``)."""
    return youngs_modulus.flip(-1), mirror_strain(strain)


class Physics(nn.Module):
    """The options above, for one plane; applied by :meth:`forward` around a network.

    Args:
        output_space: ``"strain"`` or ``"stress"`` (what the network's normalized output is).
        mean_strain: scale the strain so that its domain mean of ε_xx is ``applied_strain``.
        symmetrize: average the prediction with the mirrored prediction of the mirrored input.
        symmetrize_training: with ``symmetrize``, symmetrize in training too (the default); False
            symmetrizes only in eval mode (validation, export, serving): the network is then
            trained on each orientation by itself (with mirror augmentation), at half the cost
            per step, and its two halves stay supervised, so their disagreement is an estimate.
        plane: ``"stress"`` or ``"strain"`` (the compliance of ``output_space="stress"``).
        applied_strain: ū the model predicts for (SPEC §1: 0.1).

    The uniaxial configuration of :class:`training.model.Surrogate`'s physics slot (the
    interface is in :mod:`training.model`).
    """

    kind = "uniaxial"
    network_channels = N_STRAIN  # the network predicts (eps_xx, eps_yy, gamma_xy) or stress

    def __init__(
        self,
        output_space: str = "strain",
        mean_strain: bool = False,
        symmetrize: bool = False,
        plane: str = DEFAULT_PLANE,
        applied_strain: float = DEFAULT_APPLIED_STRAIN,
        symmetrize_training: bool = True,
    ) -> None:
        super().__init__()
        if output_space not in OUTPUT_SPACES:
            raise ValueError(f"output_space must be one of {OUTPUT_SPACES}; got {output_space!r}")
        law = PlaneLaw.of(plane)  # validates the plane
        self.output_space = output_space
        self.mean_strain = bool(mean_strain)
        self.symmetrize = bool(symmetrize)
        self.symmetrize_training = bool(symmetrize_training)
        self.plane = plane
        self.applied_strain = float(applied_strain)
        # (matrix, fiber) values of E/(2κ) and E/(2μ): the compliance per unit of 1/E
        self.half_inverse_kappa = (0.5 / law.kappa[0], 0.5 / law.kappa[1])
        self.half_inverse_mu = (0.5 / law.mu[0], 0.5 / law.mu[1])

    @property
    def output_quantity(self) -> str:
        """What the normalizer's output statistics describe: ``"strain"`` or ``"stress"``."""
        return self.output_space

    @property
    def has_error_estimate(self) -> bool:
        """True with ``symmetrize``: the mirror's disagreement can be an output."""
        return self.symmetrize

    @property
    def estimate_by_default(self) -> bool:
        """Whether export adds the estimate unless told: only when each half was trained by
        itself (``symmetrize_training`` false); halves trained through the symmetrization are
        unsupervised, and their disagreement measures no error (docs/training.md)."""
        return self.symmetrize and not self.symmetrize_training

    @property
    def is_identity(self) -> bool:
        """True when every option is off: the network's decoded output is the strain."""
        return self.output_space == "strain" and not self.mean_strain and not self.symmetrize

    def options(self) -> dict[str, Any]:
        """The options as JSON (for cards and logs)."""
        return {
            "output_space": self.output_space,
            "mean_strain": self.mean_strain,
            "symmetrize": self.symmetrize,
            "symmetrize_training": self.symmetrize_training,
            "plane": self.plane,
        }

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.options().items())

    # --- the three maps ------------------------------------------------------------------------
    def strain_of_stress(self, youngs_modulus: Tensor, stress: Tensor) -> Tensor:
        """Exact per-pixel compliance: E ``[N, 1, 32, 32]`` MPa, stress ``[N, 3, 32, 32]`` MPa ->
        strain ``[N, 3, 32, 32]`` (eps_xx, eps_yy, gamma_xy). The phase of a pixel is whether its E
        lies above the midpoint of the two moduli; its stiffness is its own E."""
        fiber = youngs_modulus > FIBER_MODULUS_THRESHOLD  # [N, 1, 32, 32]

        def per_phase(pair: tuple[float, float]) -> Tensor:  # in E's dtype, on E's device
            return torch.full_like(youngs_modulus, pair[0]).masked_fill(fiber, pair[1])

        inverse_kappa = per_phase(self.half_inverse_kappa) / youngs_modulus  # 1/(2κ) [N,1,32,32]
        inverse_mu = per_phase(self.half_inverse_mu) / youngs_modulus  # 1/(2μ)
        s_xx, s_yy, tau = stress[:, 0:1], stress[:, 1:2], stress[:, 2:3]
        trace = (s_xx + s_yy) * inverse_kappa
        deviator = (s_xx - s_yy) * inverse_mu
        gamma = 2 * tau * inverse_mu
        return torch.cat([0.5 * (trace + deviator), 0.5 * (trace - deviator), gamma], dim=1)

    def with_mirror(self, youngs_modulus: Tensor) -> Tensor:
        """``[N, 1, 32, 32]`` -> ``[2N, 1, 32, 32]``: the batch, then its x-mirror (M E)."""
        return torch.cat([youngs_modulus, youngs_modulus.flip(-1)], dim=0)

    def mirror_halves(self, strain: Tensor) -> tuple[Tensor, Tensor]:
        """``[2N, 3, 32, 32]`` strain of :meth:`with_mirror`'s batch -> (f(E), R f(M E)), each
        ``[N, 3, 32, 32]``."""
        pair = strain.reshape(2, -1, *strain.shape[1:])  # [2, N, 3, 32, 32]; N stays symbolic
        return pair[0], mirror_strain(pair[1])

    def average_mirror(self, strain: Tensor) -> Tensor:
        """``[2N, 3, 32, 32]`` strain of :meth:`with_mirror`'s batch -> ½ (f(E) + R f(M E))."""
        direct, mirrored = self.mirror_halves(strain)
        return 0.5 * (direct + mirrored)

    def energy(self, youngs_modulus: Tensor, strain: Tensor) -> Tensor:
        """Σ over pixels of ε : C(E) : ε, MPa, ``[N]``, for E ``[N, 1, 32, 32]`` MPa and strain
        ``[N, 3, 32, 32]``: the squared §9 energy norm
        (:func:`training.measures.energy_density`)."""
        return energy_density(youngs_modulus, strain, self.plane).sum(dim=(1, 2))

    def mirror_disagreement(
        self, youngs_modulus: Tensor, direct: Tensor, mirrored: Tensor, average: Tensor
    ) -> Tensor:
        """The error estimate ``[N]``: ‖f(E) − R f(M E)‖ / ‖f_sym(E)‖ in the energy norm of E
        ``[N, 1, 32, 32]``, for the halves of :meth:`mirror_halves` and the output made of them
        (each ``[N, 3, 32, 32]``; with ``mean_strain`` all three scaled to the mean, see
        :meth:`forward`); 0 for an exactly equivariant network. The denominator
        is floored at the smallest normal float32 (an all-zero prediction gives a large, finite
        estimate)."""
        difference = self.energy(youngs_modulus, direct - mirrored)
        reference = self.energy(youngs_modulus, average)
        tiny = torch.finfo(torch.float32).tiny
        return torch.sqrt(difference / reference.clamp_min(tiny))

    def scale_to_mean(self, strain: Tensor) -> Tensor:
        """Strain ``[N, 3, 32, 32]`` scaled by ū / mean ε_xx per sample (guarded division)."""
        mean = strain[:, 0:1].mean(dim=(2, 3), keepdim=True)  # [N, 1, 1, 1]
        floor = MEAN_FLOOR * self.applied_strain
        tiny = mean.abs() < floor
        safe = torch.where(tiny, torch.where(mean < 0, -floor, floor), mean)
        return strain * (self.applied_strain / safe)

    # --- the slot of training.model.Surrogate ---------------------------------------------------
    def output_names(self, error_estimate: bool) -> tuple[str, ...]:
        """The graph's outputs: ``strain``, and ``error_estimate`` when asked for and
        symmetrized."""
        if error_estimate and self.has_error_estimate:
            return (ONNX_OUTPUT, ONNX_ERROR_ESTIMATE)
        return (ONNX_OUTPUT,)

    def _symmetric(self) -> bool:
        return self.symmetrize and (self.symmetrize_training or not self.training)

    def network_input(self, youngs_modulus: Tensor) -> Tensor:
        """Raw E ``[N, 1, 32, 32]`` MPa -> the batch the network sees: with the x-mirror
        ``[2N, 1, 32, 32]`` when symmetrized (in training only with ``symmetrize_training``)."""
        return self.with_mirror(youngs_modulus) if self._symmetric() else youngs_modulus

    def output_target(self, youngs_modulus: Tensor, strain: Tensor) -> Tensor:
        """What the network's de-normalized output stands for, of training samples (the
        normalizer's output statistics): strain ``[n, 3, 32, 32]``, or its stress in MPa."""
        if self.output_space == "stress":
            return stress(youngs_modulus, strain.double(), self.plane)
        return strain

    def forward(
        self, youngs_modulus: Tensor, network_input: Tensor, output: Tensor, estimate: bool
    ) -> dict[str, Tensor]:
        """The outputs of the surrogate for raw E ``[N, 1, 32, 32]`` MPa, given the de-normalized
        network output ``[N', 3, 32, 32]`` (float32) on :meth:`network_input`'s batch:
        ``strain`` ``[N, 3, 32, 32]`` for ū and, with ``estimate`` and a symmetrized pass,
        ``error_estimate`` ``[N]`` (:meth:`mirror_disagreement`). The strain is computed by the
        same operations either way: the estimate only reads the two halves."""
        symmetric = self._symmetric()
        x = network_input
        strain = self.strain_of_stress(x, output) if self.output_space == "stress" else output
        if symmetric:
            direct, mirrored = self.mirror_halves(strain)
            strain = 0.5 * (direct + mirrored)  # average_mirror, the halves kept
        if self.mean_strain:
            strain = self.scale_to_mean(strain)
        outputs = {ONNX_OUTPUT: strain}
        if symmetric and estimate:
            if self.mean_strain:  # each half as the output would be: its mean ε_xx scaled to ū
                direct, mirrored = self.scale_to_mean(direct), self.scale_to_mean(mirrored)
            outputs[ONNX_ERROR_ESTIMATE] = self.mirror_disagreement(
                youngs_modulus, direct, mirrored, strain
            )
        return outputs
