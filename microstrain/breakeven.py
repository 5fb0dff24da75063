"""Breakeven τ (SPEC §6) and the surrogate time it needs, measured with onnxruntime.

    n · T_simulation = T_data + T_train + n · T_surrogate
    τ = (T_data + T_train) / (T_simulation − T_surrogate)      ("never" when T_surrogate ≥ T_sim)

The lecture slide prints a ``+`` in the denominator; the derivation above gives the minus sign.
All times are seconds; T_simulation and T_surrogate are per sample. ``export`` measures
T_surrogate and writes the times and τ into the card once; ``tau`` reports them, and with
``--measure`` times T_simulation (:func:`measure_simulation`, the FE solver process ``/verify``
uses) and T_surrogate in one run on one machine; serving counts predictions against the card's τ.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from microstrain.conventions import E_SHAPE
from microstrain.errors import MicrostrainError
from microstrain.fe_client import FEPool, fe_solver_available, solver_config
from microstrain.fields import mask_to_youngs_modulus
from microstrain.hardware import cpu_description, usable_cores
from microstrain.surrogate import SurrogateModel

FORMULA = "tau = (T_data + T_train) / (T_simulation - T_surrogate)"


def breakeven(
    t_data: float, t_train: float, t_simulation: float, t_surrogate: float
) -> float | None:
    """τ = (T_data + T_train) / (T_simulation − T_surrogate); ``None`` means "never".

    A surrogate that is not faster than the simulation (T_surrogate ≥ T_simulation) never pays
    off, however often it is used.
    """
    for name, value in (
        ("T_data", t_data),
        ("T_train", t_train),
        ("T_simulation", t_simulation),
        ("T_surrogate", t_surrogate),
    ):
        if not math.isfinite(value) or value < 0:
            raise MicrostrainError(f"{name} must be a finite time >= 0 s, got {value}")
    saving = t_simulation - t_surrogate
    if saving <= 0:
        return None
    return (t_data + t_train) / saving


def format_tau(tau: float | None) -> str:
    """Human form: ``never`` or the number of evaluations, rounded up (a whole evaluation)."""
    return "never" if tau is None else f"{math.ceil(tau):,d}"


def timing_inputs(n: int, youngs_modulus: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """E maps ``[n, 1, 32, 32]`` MPa for timing: the given samples (repeated), else random masks.

    The network's cost does not depend on the pixel values; real samples are used when at hand
    only so that nothing exotic (denormals) could distort the timing.
    """
    if youngs_modulus is not None and len(youngs_modulus) > 0:
        return np.resize(np.asarray(youngs_modulus, dtype=np.float32), (n, *E_SHAPE))
    rng = np.random.default_rng(seed)
    return mask_to_youngs_modulus(rng.random((n, *E_SHAPE)) < 0.35)


def median_seconds(run: Callable[[], object], repeats: int, budget_s: float) -> float:
    """Median wall time of ``run()`` over up to ``repeats`` calls within about ``budget_s``."""
    run()  # warm-up: first call allocates and plans the graph
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats and (len(times) < 3 or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


@dataclass
class SurrogateTiming:
    """Median onnxruntime wall time per sample (seconds) at batch 1 and batched."""

    t_batch1: float
    t_batched: float
    batch_size: int
    threads_batch1: int
    threads_batched: int
    by_threads: dict[str, dict[str, float]]  # {"1": {"batch1": s, "batched": s}, ...}
    hardware: str


def measure_surrogate(
    model: str | os.PathLike[str],
    inputs: np.ndarray,
    threads: tuple[int, ...] | None = None,
    batch_size: int = 256,
    budget_s: float = 2.0,
) -> SurrogateTiming:
    """Time an exported model with onnxruntime now, per sample, for each intra-op thread count.

    ``model`` is a model directory (its graph checked against the card) or a bare ``.onnx`` file
    (export times the graph it has just written, before the card exists).

    ``inputs`` ``[M, 1, 32, 32]`` (M ≥ ``batch_size``). The thread count is chosen per mode by
    measurement (on a shared 2-core machine one thread often wins at batch 1). ``budget_s``
    bounds the time spent per (threads, mode) pair.
    """
    if threads is None:
        threads = tuple(sorted({1, max(1, min(usable_cores(), 4))}))
    if inputs.shape[0] < batch_size:
        inputs = np.resize(inputs, (batch_size, *E_SHAPE))
    one = np.ascontiguousarray(inputs[:1], dtype=np.float32)  # [1, 1, 32, 32]
    batch = np.ascontiguousarray(inputs[:batch_size], dtype=np.float32)  # [B, 1, 32, 32]
    by_threads: dict[str, dict[str, float]] = {}
    for t in threads:
        surrogate = (
            SurrogateModel.from_onnx(model, intra_op_threads=t)
            if Path(model).suffix == ".onnx"
            else SurrogateModel.load(model, intra_op_threads=t)
        )
        by_threads[str(t)] = {
            "batch1": median_seconds(partial(surrogate.predict, one), 200, budget_s),
            "batched": median_seconds(partial(surrogate.predict, batch), 20, budget_s) / batch_size,
        }
    best1 = min(by_threads, key=lambda k: by_threads[k]["batch1"])
    bestb = min(by_threads, key=lambda k: by_threads[k]["batched"])
    return SurrogateTiming(
        t_batch1=by_threads[best1]["batch1"],
        t_batched=by_threads[bestb]["batched"],
        batch_size=batch_size,
        threads_batch1=int(best1),
        threads_batched=int(bestb),
        by_threads=by_threads,
        hardware=cpu_description(),
    )


@dataclass
class SimulationTiming:
    """Median wall time of one FE solve (seconds per sample), measured now in a long-lived
    solver process (:mod:`microstrain.fe_client`): the solve alone, after the solver was built."""

    t_simulation: float
    n_samples: int
    seconds: list[float]  # each sample's solve
    setup_seconds: float  # building the solver once (not part of T_simulation)
    solver: dict[str, object]  # the solver configuration of the model's card
    hardware: str


SIMULATION_TIMEOUT_S = 300.0  # one solve; a k = 4 sample takes well under a second


def measure_simulation(
    card: dict[str, object], youngs_modulus: np.ndarray, samples: int = 8
) -> SimulationTiming:
    """Time FE solves of the first ``samples`` E maps ``[M, 1, n, n]`` (MPa) one by one, in the
    solver configuration of ``card`` (its training data's discretization, plane and phases), in
    one FE worker started for the measurement: per-sample times, as ``solve_seconds`` of a
    dataset records them, with the worker's start-up and the solver's setup left out."""
    if not fe_solver_available():
        raise MicrostrainError(
            "measuring T_simulation needs the FE solver (dolfinx and data_gen): install "
            "microstrain[fe], or leave out --measure to report the card's times"
        )
    if samples < 1:
        raise MicrostrainError("the FE timing needs at least one sample")
    config = solver_config(card, grid=int(youngs_modulus.shape[-1]))
    inputs = np.resize(np.asarray(youngs_modulus, np.float32), (samples, *youngs_modulus.shape[1:]))
    pool = FEPool(1, warm=config).start()
    try:
        seconds, setup = [], 0.0
        for i in range(samples):
            _, timing = pool.solve(inputs[i : i + 1], config, SIMULATION_TIMEOUT_S)
            seconds.append(timing["solve"])
            setup += timing["setup"]
    finally:
        pool.close()
    return SimulationTiming(
        t_simulation=float(np.median(seconds)),
        n_samples=samples,
        seconds=seconds,
        setup_seconds=setup,
        solver=dict(config),
        hardware=cpu_description(),
    )
