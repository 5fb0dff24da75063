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

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from microstrain.conventions import DEFAULT_APPLIED_STRAIN, DEFAULT_PLANE
from microstrain.quantities import PlaneLaw
from training.measures import FIBER_THRESHOLD

if TYPE_CHECKING:
    from training.normalization import Normalizer

OUTPUT_SPACES = ("strain", "stress")
# |mean ε_xx| below this fraction of ū is floored (guard of the mean-strain division)
MEAN_FLOOR = 1e-3


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
    """

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
        self.kappa, self.mu = law.kappa, law.mu  # κ / E, μ / E (the energy of the estimate)

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
        fiber = youngs_modulus > FIBER_THRESHOLD  # [N, 1, 32, 32]

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
        mirrored = pair[1].flip(-1)  # R: columns reversed, then gamma_xy negated
        return pair[0], torch.cat([mirrored[:, :2], -mirrored[:, 2:]], dim=1)

    def average_mirror(self, strain: Tensor) -> Tensor:
        """``[2N, 3, 32, 32]`` strain of :meth:`with_mirror`'s batch -> ½ (f(E) + R f(M E))."""
        direct, mirrored = self.mirror_halves(strain)
        return 0.5 * (direct + mirrored)

    def energy(self, youngs_modulus: Tensor, strain: Tensor) -> Tensor:
        """Σ over pixels of ε : C(E) : ε = κ tr² + μ dev² + μ γ² (tr = ε_xx + ε_yy,
        dev = ε_xx − ε_yy), MPa, ``[N]``, for E ``[N, 1, 32, 32]`` MPa and strain
        ``[N, 3, 32, 32]``: the squared §9 energy norm (:mod:`microstrain.measures`)."""
        fiber = youngs_modulus > FIBER_THRESHOLD  # [N, 1, 32, 32]
        kappa = youngs_modulus * torch.full_like(youngs_modulus, self.kappa[0]).masked_fill(
            fiber, self.kappa[1]
        )  # MPa
        mu = youngs_modulus * torch.full_like(youngs_modulus, self.mu[0]).masked_fill(
            fiber, self.mu[1]
        )
        e_xx, e_yy, gamma = strain[:, 0:1], strain[:, 1:2], strain[:, 2:3]
        trace, deviator = e_xx + e_yy, e_xx - e_yy
        density = kappa * trace * trace + mu * (deviator * deviator + gamma * gamma)
        return density.sum(dim=(1, 2, 3))

    def mirror_disagreement(
        self, youngs_modulus: Tensor, direct: Tensor, mirrored: Tensor, average: Tensor
    ) -> Tensor:
        """The error estimate ``[N]``: ‖f(E) − R f(M E)‖ / ‖f_sym(E)‖ in the energy norm of E
        ``[N, 1, 32, 32]``, for the halves of :meth:`mirror_halves` and the output made of them
        (each ``[N, 3, 32, 32]``; with ``mean_strain`` all three scaled to the mean, see
        :meth:`forward_with_estimate`); 0 for an exactly equivariant network. The denominator
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

    # --- the composition -----------------------------------------------------------------------
    def forward(self, net: nn.Module, normalizer: Normalizer, youngs_modulus: Tensor) -> Tensor:
        """Raw E (MPa) ``[N, 1, 32, 32]`` -> raw strain ``[N, 3, 32, 32]`` for ū, through ``net``.

        ``normalizer``: a :class:`~training.normalization.Normalizer` whose output statistics
        are those of the network's output space. The network's output is cast to float32 before
        the physics (it may be bf16 under mixed precision).
        """
        return self.forward_with_estimate(net, normalizer, youngs_modulus, estimate=False)[0]

    def forward_with_estimate(
        self, net: nn.Module, normalizer: Normalizer, youngs_modulus: Tensor, estimate: bool = True
    ) -> tuple[Tensor, Tensor | None]:
        """:meth:`forward`'s strain and, with ``symmetrize`` and ``estimate``, the error estimate
        ``[N]`` of :meth:`mirror_disagreement` (else None). The strain is computed by the same
        operations either way: the estimate only reads the two halves."""
        symmetric = self.symmetrize and (self.symmetrize_training or not self.training)
        x = self.with_mirror(youngs_modulus) if symmetric else youngs_modulus
        output = normalizer.decode_output(net(normalizer.encode_input(x)).float())
        strain = self.strain_of_stress(x, output) if self.output_space == "stress" else output
        error = None
        if symmetric:
            direct, mirrored = self.mirror_halves(strain)
            strain = 0.5 * (direct + mirrored)  # average_mirror, the halves kept
        if self.mean_strain:
            strain = self.scale_to_mean(strain)
        if symmetric and estimate:
            if self.mean_strain:  # each half as the output would be: its mean ε_xx scaled to ū
                direct, mirrored = self.scale_to_mean(direct), self.scale_to_mean(mirrored)
            error = self.mirror_disagreement(youngs_modulus, direct, mirrored, strain)
        return strain, error
