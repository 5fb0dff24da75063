"""The breakeven report's content (SPEC §6): what ``tau.json`` holds and ``tau.md`` says.

:mod:`evaluation.tau` collects the times and writes the files; :mod:`evaluation.tau_plot` draws
``tau.png`` from the same report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from microstrain.breakeven import FORMULA, format_tau

TAU_PNG = "tau.png"


@dataclass
class TauReport:
    """Everything ``tau.json`` holds (times in seconds; T_simulation, T_surrogate per sample)."""

    model: str
    T_data: float
    T_train: float
    T_simulation: float
    T_surrogate: float
    T_surrogate_batched: float
    tau: float | None  # None: never
    tau_batched: float | None
    speedup: float  # T_simulation / T_surrogate
    speedup_batched: float
    timing_hardware: dict[str, str]  # time name -> machine it was measured on
    sources: dict[str, str]  # time name (and "tau") -> where the value comes from
    surrogate_timing: dict[str, Any] | None  # SurrogateTiming when measured now
    simulation_timing: dict[str, Any] | None  # SimulationTiming when measured now
    metrics: dict[str, Any]  # the card's held-out metrics, per split
    dataset: dict[str, Any]  # DatasetSummary of --dataset, empty without one
    created: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    formula: str = FORMULA

    def markdown(self) -> str:
        """The report a person reads: times, τ, speed-up and the held-out error beside it."""
        st = self.surrogate_timing
        hw, src = self.timing_hardware, self.sources
        batch = f"batch {st['batch_size']}" if st else "batched"
        use = f"batches of {st['batch_size']}" if st else "batched calls"
        lines = [
            f"# Breakeven τ for model `{self.model}`",
            "",
            f"τ = (T_data + T_train) / (T_simulation − T_surrogate) — created {self.created}.",
            "",
            "| quantity | seconds | source | hardware |",
            "|---|---:|---|---|",
            _row("T_data", self.T_data, src["T_data"], hw.get("T_data")),
            _row("T_train", self.T_train, src["T_train"], hw.get("T_train")),
            _row(
                "T_simulation (per sample)",
                self.T_simulation,
                src["T_simulation"],
                hw.get("T_simulation"),
            ),
            _row(
                "T_surrogate, batch 1 (per sample)",
                self.T_surrogate,
                src["T_surrogate"],
                hw.get("T_surrogate"),
            ),
            _row(
                f"T_surrogate, {batch} (per sample)",
                self.T_surrogate_batched,
                src["T_surrogate_batched"],
                hw.get("T_surrogate"),
            ),
            "",
            "| surrogate use | speed-up T_sim / T_surr | τ (evaluations to break even) |",
            "|---|---:|---:|",
            f"| one sample per call | {self.speedup:,.0f}× | {format_tau(self.tau)} |",
            f"| {use} | {self.speedup_batched:,.0f}× | {format_tau(self.tau_batched)} |",
            "",
            f"τ: {src['tau']}.",
            "",
            "## Accuracy at this speed (held-out, SPEC §9: per sample, then the mean over samples)",
            "",
            *_metrics_table(self.metrics),
            "",
            "A speed-up is only worth its error: the surrogate replaces an FE solve only where "
            "an error of this size is acceptable and the microstructure resembles the training "
            "data.",
        ]
        sim = self.simulation_timing
        if sim:
            each = ", ".join(f"{1000 * t:.1f}" for t in sim["seconds"])
            lines += [
                "",
                "## FE solves timed for T_simulation (milliseconds per sample)",
                "",
                f"{sim['n_samples']} single-sample solves ({each}); median "
                f"{1000 * sim['t_simulation']:.1f} ms; solver {sim['solver']}; the worker's "
                "start-up and the solver's setup are not part of it.",
            ]
        if st:
            lines += [
                "",
                "## Surrogate timing by thread count (seconds per sample)",
                "",
                "| intra-op threads | batch 1 | batched |",
                "|---:|---:|---:|",
            ]
            for t, row in st["by_threads"].items():
                lines.append(f"| {t} | {row['batch1']:.3g} | {row['batched']:.3g} |")
        lines += ["", f"![cumulative cost]({TAU_PNG})", ""]
        return "\n".join(lines)


def _row(name: str, seconds: float, source: str, hardware: str | None) -> str:
    return f"| {name} | {seconds:.4g} | {source} | {hardware or 'unknown'} |"


# columns of the accuracy table (SPEC §9 measures), in this order when the card has them
METRIC_COLUMNS = (
    "strain_relative_l2",
    "stress_relative_l2",
    "energy_norm_error",
    "E_x_error_mean",
    "nu_xy_error_mean",
    "max_von_mises_error_mean",
)


def _metrics_table(metrics: dict[str, Any]) -> list[str]:
    splits = [s for s, v in metrics.items() if isinstance(v, dict)]
    keys = [k for k in METRIC_COLUMNS if any(k in metrics[s] for s in splits)]
    if not splits or not keys:
        return ["(no held-out metrics in the card)"]
    lines = ["| split | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    for s in splits:
        cells = [_pct(metrics[s].get(k)) for k in keys]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return lines


def _pct(value: Any) -> str:
    return f"{100 * float(value):.2f}%" if isinstance(value, int | float) else "–"
