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

Order: network -> (compliance) -> symmetrize -> mean scaling. The mean of ε_xx is invariant under
the mirror, so the scaling keeps the symmetry, and coming last it holds to float round-off.

Everything is elementwise (Greater, Where, Div, Mul, Add, Flip, Concat, ReduceMean): no
data-dependent control flow, no parameters or buffers: nothing enters the ``state_dict`` (the
per-phase constants are plain numbers derived from ``plane``).
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
    ) -> None:
        super().__init__()
        if output_space not in OUTPUT_SPACES:
            raise ValueError(f"output_space must be one of {OUTPUT_SPACES}; got {output_space!r}")
        law = PlaneLaw.of(plane)  # validates the plane
        self.output_space = output_space
        self.mean_strain = bool(mean_strain)
        self.symmetrize = bool(symmetrize)
        self.plane = plane
        self.applied_strain = float(applied_strain)
        # (matrix, fiber) values of E/(2κ) and E/(2μ): the compliance per unit of 1/E
        self.half_inverse_kappa = (0.5 / law.kappa[0], 0.5 / law.kappa[1])
        self.half_inverse_mu = (0.5 / law.mu[0], 0.5 / law.mu[1])

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

    def average_mirror(self, strain: Tensor) -> Tensor:
        """``[2N, 3, 32, 32]`` strain of :meth:`with_mirror`'s batch -> ½ (f(E) + R f(M E))."""
        pair = strain.reshape(2, -1, *strain.shape[1:])  # [2, N, 3, 32, 32]; N stays symbolic
        mirrored = pair[1].flip(-1)  # R: columns reversed, then gamma_xy negated
        return 0.5 * (pair[0] + torch.cat([mirrored[:, :2], -mirrored[:, 2:]], dim=1))

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
        x = self.with_mirror(youngs_modulus) if self.symmetrize else youngs_modulus
        output = normalizer.decode_output(net(normalizer.encode_input(x)).float())
        strain = self.strain_of_stress(x, output) if self.output_space == "stress" else output
        if self.symmetrize:
            strain = self.average_mirror(strain)
        if self.mean_strain:
            strain = self.scale_to_mean(strain)
        return strain
