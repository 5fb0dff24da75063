"""A quick `dynamics` run: the structured networks must hold the true energy better."""

from __future__ import annotations

import pytest

from training.baselines.dynamics import DynamicsConfig, run_dynamics


@pytest.mark.slow
def test_hnn_and_lnn_hold_energy_better_than_standard_network() -> None:
    """Seeded quick run (~50–70 s on one shared CPU core), implicit midpoint rule.

    Measured over seeds 0–2 (docs/baselines.md) the HNN holds energy 5–60× better than the
    standard network and the LNN 3.4–8× better, so the issue's hoped-for 10× holds for the HNN on
    most seeds but not for the LNN; the factors asserted here are the ones that held on every
    measured seed, with margin for this seed (measured: HNN 7.8×, LNN 6.5×). The LNN's shortfall
    is not the integrator (the canonical-coordinate midpoint rule gives the same drift) but its
    learned level set in the unseen quarter orbit; see docs/baselines.md.
    """
    result = run_dynamics(DynamicsConfig.quick(), None, log=lambda _: None)
    drift = {name: m["energy_drift"] for name, m in result["models"].items()}
    assert drift["hnn"] * 4 < drift["mlp"], drift
    assert drift["lnn"] * 3 < drift["mlp"], drift
    # the primary integrator itself conserves the exact oscillator's (quadratic) energy
    assert result["reference"]["energy_drift"] < 1e-9
    # and it is what lets the HNN show its structure: leapfrog is symplectic only for separable
    # H, and on the learned, non-separable H it makes the HNN gain energy every period
    hnn = result["models"]["hnn"]["integrators"]
    assert hnn["implicit_midpoint"]["energy_drift"] * 5 < hnn["leapfrog"]["energy_drift"]
