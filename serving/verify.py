"""Check the surrogate against the FE solver, when this installation has one (``POST /verify``).

Serving never imports dolfinx or ``data_gen`` (import-linter enforces it, and the serving image
has neither): the solve runs as
``python -m data_gen solve in.npy -o out.npy --mode M --k K --plane P``
in a subprocess on temporary files, with the discretization the model was trained on (card
``training_data.discretization``). The subprocess leads its own process group: a solve that
passes its time limit (``MICROSTRAIN_VERIFY_TIMEOUT_S``), or whose request is cancelled, is
killed with everything it started. How many solves run and wait is bounded by
:mod:`serving.fe_slots`.

The answer compares the surrogate with FE in the SPEC §9 measures of :mod:`microstrain.measures`
(``measures``, per sample then averaged) beside the pooled relative L2 /verify always gave.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from microstrain.conventions import (
    DEFAULT_K,
    DEFAULT_MODE,
    DEFAULT_PLANE,
    STRAIN_CHANNELS,
    STRAIN_SHAPE,
)
from microstrain.errors import MicrostrainError
from microstrain.measures import error_measures, pooled_relative_l2, relative_l2_per_sample
from serving.settings import DEFAULT_VERIFY_TIMEOUT_S

MAX_VERIFY_BATCH = 8  # each FE solve takes a good fraction of a second: keep requests bounded


class SolveTimeout(MicrostrainError):
    """The FE solve ran past its limit and was killed (answered with 504)."""


class SolverUnavailable(MicrostrainError):
    """No FE solver in this installation (answered with 501)."""

    def __init__(self) -> None:
        super().__init__(
            "this installation has no FE solver (dolfinx and data_gen are not installed); "
            "install microstrain[fe] to verify predictions"
        )


def fe_solver_available() -> bool:
    """Whether ``python -m data_gen solve`` can run here; looks the modules up, imports nothing."""
    return all(importlib.util.find_spec(name) is not None for name in ("dolfinx", "data_gen"))


def discretization(card: dict[str, Any]) -> tuple[str, int, str]:
    """(mode, k, plane) of the model's training data; SPEC defaults when the card is silent."""
    data = card.get("training_data", {})
    disc = data.get("discretization", {})
    mode = str(disc.get("mode", DEFAULT_MODE))
    k = int(disc.get("k", DEFAULT_K if mode == "refined" else 1))
    plane = str(data.get("load_case", {}).get("plane", DEFAULT_PLANE))
    return mode, k, plane


async def fe_solve(
    youngs_modulus: np.ndarray,
    mode: str,
    k: int,
    plane: str = DEFAULT_PLANE,
    timeout_s: float = DEFAULT_VERIFY_TIMEOUT_S,
) -> tuple[np.ndarray, float]:
    """FE strain ``[N, 3, 32, 32]`` for ū = 0.1 and the wall time of the solve subprocess (s).

    Raises :class:`SolveTimeout` after ``timeout_s`` (the solver's process group is killed),
    :class:`SolverUnavailable` without dolfinx, :class:`MicrostrainError` if the solve fails.
    """
    if not fe_solver_available():
        raise SolverUnavailable
    with tempfile.TemporaryDirectory(prefix="microstrain-verify-") as tmp:
        src, dst = Path(tmp) / "in.npy", Path(tmp) / "out.npy"
        np.save(src, youngs_modulus)
        cmd = [sys.executable, "-m", "data_gen", "solve", str(src), "-o", str(dst)]
        cmd += ["--mode", mode, "--k", str(k), "--plane", plane]
        start = time.perf_counter()
        # asyncio subprocess: a long solve must not hold the worker's inference thread; its own
        # session (process group), so a kill reaches whatever the solver started
        proc = await asyncio.create_subprocess_exec(
            *cmd,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        try:
            _, stderr = await asyncio.wait_for(proc.communicate(), timeout_s)
        except TimeoutError:
            raise SolveTimeout(
                f"the FE solve took longer than {timeout_s:g} s (MICROSTRAIN_VERIFY_TIMEOUT_S) "
                "and was stopped"
            ) from None
        finally:
            if proc.returncode is None:  # timed out or the request was cancelled
                kill_group(proc.pid)
                await proc.wait()
        seconds = time.perf_counter() - start
        if proc.returncode != 0:
            last = stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
            raise MicrostrainError(f"FE solve failed (exit {proc.returncode}): {last[0]}")
        strain = np.load(dst)
    if strain.shape != (youngs_modulus.shape[0], *STRAIN_SHAPE):
        raise MicrostrainError(f"FE solve returned shape {list(strain.shape)}")
    return strain.astype(np.float32), seconds


def kill_group(pid: int) -> None:
    """SIGKILL the process group ``pid`` leads (the solver and its children)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


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


def measures(
    youngs_modulus: np.ndarray, surrogate: np.ndarray, reference: np.ndarray, plane: str
) -> dict[str, Any]:
    """SPEC §9 error measures of the surrogate against FE (the SPEC §10 dict), per sample then
    averaged: strain, stress, energy norm, E_x, ν_xy and peak von Mises errors, as fractions."""
    return error_measures(youngs_modulus, surrogate, reference, plane)
