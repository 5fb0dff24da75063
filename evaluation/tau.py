"""The breakeven report (SPEC §6): ``tau.json``, ``tau.md`` and ``tau.png`` beside a model's card.

    τ = (T_data + T_train) / (T_simulation − T_surrogate)      ("never" when T_surrogate ≥ T_sim)

Export measured the times and wrote them and τ into ``card.json`` once; by default the report
shows exactly those. Two things may replace card values, each named in the report's sources:

- ``dataset``: T_data and T_simulation recorded in a SPEC §4 file
  (:func:`microstrain.dataset.summarize`);
- ``measure``: T_simulation and T_surrogate measured now, in one run on this machine: FE solves
  one sample at a time in the solver process ``/verify`` uses, in the discretization the model
  was trained on (:func:`microstrain.breakeven.measure_simulation`), and onnxruntime at batch 1
  and batched (:func:`microstrain.breakeven.measure_surrogate`). T_data stays the real
  generation cost (the card's, or the dataset's).

τ is then computed again from the times shown (:func:`microstrain.breakeven.breakeven`). The
report never rewrites the card or the model. No torch, no direct HDF5 access.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from evaluation.tau_plot import plot_cumulative_cost
from evaluation.tau_report import TAU_PNG, TauReport
from microstrain.breakeven import (
    SimulationTiming,
    SurrogateTiming,
    breakeven,
    measure_simulation,
    measure_surrogate,
    timing_inputs,
)
from microstrain.conventions import DS_E, DS_SOLVE_SECONDS
from microstrain.dataset import read_samples, summarize
from microstrain.errors import InputError, MicrostrainError
from microstrain.files import write_json, write_text
from microstrain.surrogate import SurrogateModel

TAU_JSON = "tau.json"
TAU_MD = "tau.md"
TIMES = ("T_data", "T_train", "T_simulation", "T_surrogate", "T_surrogate_batched")
FROM_CARD = "card.json (written by export)"
BATCH_SIZE = 256  # samples per call of the batched surrogate timing
FE_SAMPLES = 8  # single-sample FE solves timed by --measure (their median is T_simulation)


# --- collecting the times -----------------------------------------------------------------------


def _card_seconds(card: dict[str, Any], key: str) -> float | None:
    value = card.get(key)
    if key == "T_train" and value is None:  # cards of older exports: the training run's record
        value = card.get("training", {}).get("train_seconds")
    return float(value) if isinstance(value, int | float) else None


def _card_sources(card: dict[str, Any]) -> dict[str, str]:
    """Where the card's times come from: export's ``timing_sources`` when it wrote them."""
    recorded = card.get("timing_sources") or {}
    sources = {}
    for key in TIMES:
        detail = recorded.get("T_surrogate" if key == "T_surrogate_batched" else key)
        sources[key] = f"{FROM_CARD}: {detail}" if detail else FROM_CARD
    return sources


def _missing(names: list[str], card_path: Path) -> MicrostrainError:
    needs = {
        "T_data": "--dataset FILE",
        "T_simulation": "--dataset FILE",
        "T_surrogate": "--measure",
        "T_surrogate_batched": "--measure",
    }
    hints = sorted({needs[n] for n in names if n in needs})
    hint = f"; pass {' and '.join(hints)}" if hints else "; export the model again"
    return MicrostrainError(f"{card_path} holds no {', '.join(names)}{hint}")


def collect(
    model_dir: str | os.PathLike[str],
    dataset: str | os.PathLike[str] | None = None,
    measure: bool = False,
    threads: tuple[int, ...] | None = None,
    batch_size: int = BATCH_SIZE,
    budget_s: float = 1.5,
    fe_samples: int = FE_SAMPLES,
) -> TauReport:
    """The report of ``model_dir``: the card's times and τ, with the replacements asked for."""
    if batch_size < 1 or any(t < 1 for t in threads or ()):
        raise InputError("--batch-size and --threads must be positive")
    if not measure and (threads is not None or batch_size != BATCH_SIZE):
        raise InputError("--threads and --batch-size set up a measurement: add --measure")
    if fe_samples < 1 or (not measure and fe_samples != FE_SAMPLES):
        raise InputError("--fe-samples sets up a measurement of at least one solve: add --measure")
    model = SurrogateModel.load(model_dir)  # refuses a missing or broken model.onnx
    card = model.card
    card_path = model.directory / "card.json"
    seconds: dict[str, float | None] = {k: _card_seconds(card, k) for k in TIMES}
    sources = _card_sources(card)
    hardware = {str(k): str(v) for k, v in (card.get("timing_hardware") or {}).items()}
    if "T_train" not in hardware and "hardware" in card.get("training", {}):
        hardware["T_train"] = str(card["training"]["hardware"])

    summary: dict[str, Any] = {}
    if dataset is not None:
        found = summarize(dataset)
        if found.t_data is None or found.t_simulation is None:
            raise MicrostrainError(f"{dataset}: {found.t_data_source}; it cannot give T_data")
        seconds["T_data"], seconds["T_simulation"] = found.t_data, found.t_simulation
        sources["T_data"] = f"{found.file}: {found.t_data_source}"
        sources["T_simulation"] = (
            f"{found.file}: median of {DS_SOLVE_SECONDS} over {found.n_samples} samples "
            f"(mean {found.t_simulation_mean:.4g} s)"
        )
        hardware["T_data"] = hardware["T_simulation"] = found.hardware
        summary = asdict(found)
        training_data = card.get("training_data", {})
        # one training file (sha256) or several (files: [{file, sha256}, ...])
        expected = {training_data.get("sha256")} | {
            f.get("sha256") for f in training_data.get("files") or [] if isinstance(f, dict)
        }
        expected.discard(None)
        summary["matches_training_data"] = found.sha256 in expected if expected else None

    timing: SurrogateTiming | None = None
    simulation: SimulationTiming | None = None
    if measure:
        youngs_modulus = None
        if dataset is not None:  # real microstructures when at hand
            youngs_modulus = read_samples(dataset, (DS_E,), stop=batch_size)[DS_E]
        inputs = timing_inputs(batch_size, youngs_modulus)  # [B, 1, 32, 32] MPa
        simulation = measure_simulation(card, inputs, fe_samples)
        seconds["T_simulation"] = simulation.t_simulation
        solver = simulation.solver
        sources["T_simulation"] = (
            f"measured now: FE solver worker ({solver.get('mode')} k={solver.get('k')}, plane "
            f"{solver.get('plane')}), median of {simulation.n_samples} single-sample solves"
        )
        hardware["T_simulation"] = simulation.hardware
        timing = measure_surrogate(model.directory, inputs, threads, batch_size, budget_s)
        seconds["T_surrogate"], seconds["T_surrogate_batched"] = timing.t_batch1, timing.t_batched
        sources["T_surrogate"] = (
            f"measured now: onnxruntime, median, {timing.threads_batch1} intra-op thread(s)"
        )
        sources["T_surrogate_batched"] = (
            f"measured now: onnxruntime, median, {timing.threads_batched} intra-op thread(s)"
        )
        hardware["T_surrogate"] = timing.hardware

    missing = [k for k in TIMES if seconds[k] is None]
    if missing:
        raise _missing(missing, card_path)
    t = {k: float(v) for k, v in seconds.items() if v is not None}
    t_data, t_train, t_sim = t["T_data"], t["T_train"], t["T_simulation"]
    t1, tb = t["T_surrogate"], t["T_surrogate_batched"]
    # the card's τ stands as long as the report shows the card's times
    if dataset is None and not measure and "tau" in card and "tau_batched" in card:
        tau, tau_batched = card["tau"], card["tau_batched"]
        sources["tau"] = FROM_CARD
    else:
        tau = breakeven(t_data, t_train, t_sim, t1)
        tau_batched = breakeven(t_data, t_train, t_sim, tb)
        sources["tau"] = "computed from the times above"
    return TauReport(
        model=model.name,
        T_data=t_data,
        T_train=t_train,
        T_simulation=t_sim,
        T_surrogate=t1,
        T_surrogate_batched=tb,
        tau=tau,
        tau_batched=tau_batched,
        speedup=t_sim / t1 if t1 > 0 else math.inf,
        speedup_batched=t_sim / tb if tb > 0 else math.inf,
        timing_hardware=hardware,
        sources=sources,
        surrogate_timing=asdict(timing) if timing is not None else None,
        simulation_timing=asdict(simulation) if simulation is not None else None,
        metrics=card.get("metrics", {}),
        dataset=summary,
    )


def write_report(report: TauReport, model_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """Write tau.json, tau.md and tau.png into ``model_dir``, each atomically; nothing else."""
    d = Path(model_dir)
    return {
        "json": write_json(d / TAU_JSON, asdict(report)),
        "md": write_text(d / TAU_MD, report.markdown()),
        "png": plot_cumulative_cost(report, d / TAU_PNG),
    }


def run_tau(
    model_dir: str | os.PathLike[str],
    dataset: str | os.PathLike[str] | None = None,
    measure: bool = False,
    threads: tuple[int, ...] | None = None,
    batch_size: int = BATCH_SIZE,
    budget_s: float = 1.5,
    fe_samples: int = FE_SAMPLES,
) -> tuple[TauReport, dict[str, Path]]:
    """:func:`collect` the report and :func:`write_report` it beside the card."""
    report = collect(model_dir, dataset, measure, threads, batch_size, budget_s, fe_samples)
    return report, write_report(report, model_dir)
