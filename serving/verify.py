"""Check the surrogate against the FE solver, when this installation has one (``POST /verify``).

Serving never imports dolfinx or ``data_gen`` (import-linter enforces it, and the serving image
has neither). The solves run in long-lived worker processes (``python -m data_gen.fe_worker``)
that import dolfinx once and keep the solver of the model's discretization ready; the core's
:class:`microstrain.fe_client.FEPool` starts them with the service and replaces any that dies,
passes its time limit (``MICROSTRAIN_VERIFY_TIMEOUT_S``; the worker's process group is killed)
or whose request is cancelled. How many solves run and wait is bounded by
:mod:`serving.fe_slots`, across the service's workers.

The answer compares the surrogate with FE in the SPEC §9 measures of :mod:`microstrain.measures`
(``measures``, per sample then averaged) beside the pooled relative L2 /verify always gave; for
a periodic model (SPEC §11) the three unit cases and C_eff in the §11 measures.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from microstrain.conventions import (
    PERIODIC_CASES,
    STRAIN_CHANNELS,
)
from microstrain.errors import MicrostrainError
from microstrain.fe_client import (
    FEPool,
    SolveFailed,
    SolveTimeout,
    WorkerDied,
    discretization,
    fe_solver_available,
    is_periodic,
    solver_config,
)
from microstrain.measures import (
    error_measures,
    periodic_error_measures,
    pooled_relative_l2,
    relative_l2_per_sample,
)
from serving.fe_slots import SolveSlots

__all__ = [
    "FEChecks",
    "SolveFailed",
    "SolveTimeout",
    "SolverUnavailable",
    "WorkerDied",
    "discretization",
    "fe_solver_available",
    "is_periodic",
    "solver_config",
]

MAX_VERIFY_BATCH = 8  # checks answer in about a solve per sample: keep requests bounded


class SolverUnavailable(MicrostrainError):
    """No FE solver in this installation (answered with 501)."""

    def __init__(self) -> None:
        super().__init__(
            "this installation has no FE solver (dolfinx and data_gen are not installed); "
            "install microstrain[fe] to verify predictions"
        )


class FEChecks:
    """The FE side of ``/verify`` in one service worker: ``size`` FE worker processes (started
    now, in the background) behind the slots every service worker shares."""

    def __init__(
        self,
        slots: SolveSlots,
        size: int,
        timeout_s: float,
        warm: list[dict[str, Any]] | None = None,
    ) -> None:
        self.slots = slots
        self.timeout_s = timeout_s
        self.pool = FEPool(size, warm=warm)
        if fe_solver_available():
            self.pool.start()

    def close(self) -> None:
        self.pool.close()

    async def solve(
        self, youngs_modulus: np.ndarray, config: dict[str, Any]
    ) -> tuple[np.ndarray, dict[str, float]]:
        """FE strain of E ``[N, 1, n, n]`` MPa at ū = 0.1 (``[N, 3, n, n]``, periodic
        ``[N, 3, 3, n, n]``) and its timings in s: ``solve`` (the solver's own time), ``setup``
        and ``overhead`` (waiting for a slot or a starting worker, transfers).

        Raises :class:`~serving.fe_slots.Busy` (429/503), :class:`SolveTimeout` (504),
        :class:`WorkerDied` (503 with Retry-After), :class:`SolveFailed`, or
        :class:`SolverUnavailable` (501).
        """
        if not fe_solver_available():
            raise SolverUnavailable
        start = time.perf_counter()
        async with self.slots.slot(wait_s=self.timeout_s):
            waited = time.perf_counter() - start
            try:
                strain, timings = await self.pool.asolve(youngs_modulus, config, self.timeout_s)
            except SolveTimeout:
                raise SolveTimeout(
                    f"the FE solve took longer than {self.timeout_s:g} s "
                    "(MICROSTRAIN_VERIFY_TIMEOUT_S) and was stopped"
                ) from None
            except WorkerDied as exc:
                exc.retry_after = self.slots.retry_after()
                raise
        timings["overhead"] += waited
        self.slots.record(time.perf_counter() - start - waited)
        return strain, timings


def comparison(surrogate: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    """Relative L2 errors, overall, per channel and per sample, of ``[N, 3, 32, 32]`` fields.

    Overall and per channel pool all samples (√(Σ err² / Σ ref²), as /verify always answered);
    for one sample that is the SPEC §9 measure. Both come from :mod:`microstrain.measures`.
    """
    return {
        "relative_l2": pooled_relative_l2(surrogate, reference),
        "relative_l2_per_channel": {
            name: pooled_relative_l2(surrogate[:, c], reference[:, c])
            for c, name in enumerate(STRAIN_CHANNELS)
        },
        "relative_l2_per_sample": relative_l2_per_sample(surrogate, reference).tolist(),
    }


def periodic_comparison(surrogate: np.ndarray, reference: np.ndarray) -> dict[str, Any]:
    """Pooled relative L2 errors, overall and per unit case, of ``[N, 3, 3, n, n]`` cases."""
    return {
        "relative_l2": pooled_relative_l2(surrogate, reference),
        "relative_l2_per_case": {
            name: pooled_relative_l2(surrogate[:, c], reference[:, c])
            for c, name in enumerate(PERIODIC_CASES)
        },
    }


def measures(
    youngs_modulus: np.ndarray, surrogate: np.ndarray, reference: np.ndarray, plane: str
) -> dict[str, Any]:
    """SPEC §9 error measures of the surrogate against FE (the SPEC §10 dict), per sample then
    averaged: strain, stress, energy norm, E_x, ν_xy and peak von Mises errors, as fractions."""
    return error_measures(youngs_modulus, surrogate, reference, plane)


def periodic_measures(
    youngs_modulus: np.ndarray,
    surrogate_cases: np.ndarray,
    reference_cases: np.ndarray,
    plane: str,
    surrogate_c_eff: np.ndarray | None = None,
) -> dict[str, Any]:
    """SPEC §11 measures of a periodic model's unit cases ``[N, 3, 3, n, n]`` (and its C_eff
    ``[N, 3, 3]`` MPa, else the one of its fields) against FE's, whose C_eff comes from its
    fields."""
    return periodic_error_measures(
        youngs_modulus, surrogate_cases, reference_cases, plane, predicted_c_eff=surrogate_c_eff
    )
