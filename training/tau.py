"""Breakeven τ (SPEC §6): after how many evaluations data generation and training have paid off.

    n · T_simulation = T_data + T_train + n · T_surrogate
    τ = (T_data + T_train) / (T_simulation − T_surrogate)      ("never" when T_surrogate ≥ T_sim)

The lecture slide prints a ``+`` in the denominator; the derivation above gives the minus sign.
All times are seconds; T_simulation and T_surrogate are per sample. This module collects the
times (dataset file, checkpoint/card, onnxruntime measured now), computes τ for the batch-1 and
the batched surrogate time, and writes ``tau.json``, ``tau.md``, ``tau.png`` and the card's
top-level numbers. It runs the surrogate with onnxruntime only; torch is not needed.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from microstrain.conventions import (
    ATTR_RUNS,
    ATTR_WALL_SECONDS,
    CARD_FILE,
    DS_E,
    DS_SOLVE_SECONDS,
    E_SHAPE,
    STRAIN_CHANNELS,
)
from microstrain.errors import MicrostrainError
from microstrain.fields import mask_to_youngs_modulus
from microstrain.files import atomic_output, sha256_of
from microstrain.hardware import cpu_description
from microstrain.surrogate import SurrogateModel

TAU_JSON = "tau.json"
TAU_MD = "tau.md"
TAU_PNG = "tau.png"
# Root attributes data_gen writes (data_gen/dataset.py; training may not import data_gen):
# total wall time of all `generate` runs that wrote the file (T_data), and the run log.
ATTR_HARDWARE = "hardware"


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


# --- collecting the times -------------------------------------------------------------------


@dataclass
class DatasetTiming:
    """T_data and T_simulation as recorded by data_gen in a dataset file (seconds)."""

    file: str
    sha256: str
    n_samples: int
    t_data: float
    t_data_source: str  # which record T_data comes from
    t_simulation: float  # median of solve_seconds
    t_simulation_mean: float
    hardware: str
    discretization: dict[str, Any] = field(default_factory=dict)


def dataset_timing(path: str | os.PathLike[str]) -> DatasetTiming:
    """Read T_data and T_simulation from an HDF5 dataset (SPEC §4).

    T_data is the file's total wall-time attribute when data_gen wrote one (it includes mesh
    building, sampling and I/O), else the sum of the per-sample ``solve_seconds``; T_simulation is
    the median per-sample solve time, i.e. one FE evaluation at the dataset's fidelity.
    """
    import h5py

    p = Path(path)
    if not p.is_file():
        raise MicrostrainError(f"dataset not found: {p}")
    try:
        with h5py.File(p, "r") as f:
            if DS_SOLVE_SECONDS not in f:
                raise MicrostrainError(f"{p} has no '{DS_SOLVE_SECONDS}' dataset (SPEC §4)")
            seconds = np.asarray(f[DS_SOLVE_SECONDS][()], dtype=np.float64)  # [N]
            attrs = {k: f.attrs[k] for k in f.attrs}
    except OSError as exc:
        raise MicrostrainError(f"cannot read {p} as HDF5: {exc}") from None
    seconds = seconds[np.isfinite(seconds) & (seconds > 0)]
    if seconds.size == 0:
        raise MicrostrainError(f"{p}: '{DS_SOLVE_SECONDS}' holds no positive solve time")
    t_data, source = float(seconds.sum()), f"sum of {DS_SOLVE_SECONDS} ({seconds.size} samples)"
    wall = float(np.asarray(attrs.get(ATTR_WALL_SECONDS, 0.0)).item())
    if math.isfinite(wall) and wall > 0:
        t_data, source = wall, f"attribute '{ATTR_WALL_SECONDS}' (total wall time of generate)"
    hardware = _dataset_hardware(attrs)
    discretization = _json_attr(attrs.get("discretization"))
    return DatasetTiming(
        file=p.name,
        sha256=sha256_of(p),
        n_samples=int(seconds.size),
        t_data=t_data,
        t_data_source=source,
        t_simulation=float(np.median(seconds)),
        t_simulation_mean=float(seconds.mean()),
        hardware=hardware,
        discretization=discretization if isinstance(discretization, dict) else {},
    )


def _dataset_hardware(attrs: dict[str, Any]) -> str:
    """The machine the dataset was generated on, as far as the file records it."""
    if ATTR_HARDWARE in attrs:
        return _text(attrs[ATTR_HARDWARE])
    runs = _json_attr(attrs.get(ATTR_RUNS))
    runs = runs if isinstance(runs, list) else []
    named = sorted({str(r["hardware"]) for r in runs if isinstance(r, dict) and "hardware" in r})
    if named:
        return "; ".join(named)
    ranks = sorted({int(r["ranks"]) for r in runs if isinstance(r, dict) and "ranks" in r})
    detail = f" ({'/'.join(map(str, ranks))} MPI rank(s))" if ranks else ""
    return f"not recorded in the dataset{detail}"


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


def _json_attr(value: Any) -> Any:
    if value is None:
        return None
    try:
        return json.loads(_text(value))
    except (json.JSONDecodeError, TypeError):
        return _text(value)


def sample_inputs(dataset: Path | None, n: int, seed: int = 0) -> np.ndarray:
    """E maps ``[n, 1, 32, 32]`` MPa for timing: from the dataset if given, else random masks.

    The network's cost does not depend on the pixel values; real samples are used when at hand
    only so that nothing exotic (denormals) could distort the timing.
    """
    if dataset is not None:
        import h5py

        with h5py.File(dataset, "r") as f:
            if DS_E in f and f[DS_E].shape[0] > 0:
                m = int(f[DS_E].shape[0])
                e = np.asarray(f[DS_E][: min(n, m)], dtype=np.float32)
                return np.resize(e, (n, *E_SHAPE))  # repeats samples when the file is small
    rng = np.random.default_rng(seed)
    return mask_to_youngs_modulus(rng.random((n, *E_SHAPE)) < 0.35)


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


def median_seconds(run: Any, repeats: int, budget_s: float) -> float:
    """Median wall time of ``run()`` over up to ``repeats`` calls within about ``budget_s``."""
    run()  # warm-up: first call allocates and plans the graph
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeats and (len(times) < 3 or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def measure_surrogate(
    model_dir: str | os.PathLike[str],
    inputs: np.ndarray,
    threads: tuple[int, ...] | None = None,
    batch_size: int = 256,
    budget_s: float = 2.0,
) -> SurrogateTiming:
    """Time the exported model with onnxruntime now, per sample, for each intra-op thread count.

    ``inputs`` ``[M, 1, 32, 32]`` (M ≥ ``batch_size``). The thread count is chosen per mode by
    measurement (on a shared 2-core machine one thread often wins at batch 1). ``budget_s``
    bounds the time spent per (threads, mode) pair.
    """
    if threads is None:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        threads = tuple(sorted({1, max(1, min(cores, 4))}))
    if inputs.shape[0] < batch_size:
        inputs = np.resize(inputs, (batch_size, *E_SHAPE))
    one = np.ascontiguousarray(inputs[:1], dtype=np.float32)  # [1, 1, 32, 32]
    batch = np.ascontiguousarray(inputs[:batch_size], dtype=np.float32)  # [B, 1, 32, 32]
    by_threads: dict[str, dict[str, float]] = {}
    for t in threads:
        model = SurrogateModel.load(model_dir, intra_op_threads=t)
        by_threads[str(t)] = {
            "batch1": median_seconds(lambda m=model: m.predict(one), 200, budget_s),
            "batched": median_seconds(lambda m=model: m.predict(batch), 20, budget_s) / batch_size,
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


# --- the report -----------------------------------------------------------------------------


@dataclass
class TauReport:
    """Everything ``tau.json`` holds (seconds)."""

    model: str
    T_data: float
    T_train: float
    T_simulation: float
    T_surrogate: float
    T_surrogate_batched: float
    tau: float | None
    tau_batched: float | None
    speedup: float
    speedup_batched: float
    timing_hardware: dict[str, str]
    sources: dict[str, str]
    surrogate_timing: dict[str, Any]
    metrics: dict[str, Any]  # the card's held-out relative L2 (val/test)
    dataset: dict[str, Any]
    created: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    formula: str = "tau = (T_data + T_train) / (T_simulation - T_surrogate)"

    @classmethod
    def build(
        cls,
        model: str,
        t_data: float,
        t_train: float,
        t_simulation: float,
        surrogate: SurrogateTiming,
        timing_hardware: dict[str, str],
        sources: dict[str, str],
        metrics: dict[str, Any],
        dataset: dict[str, Any],
    ) -> TauReport:
        t1, tb = surrogate.t_batch1, surrogate.t_batched
        return cls(
            model=model,
            T_data=t_data,
            T_train=t_train,
            T_simulation=t_simulation,
            T_surrogate=t1,
            T_surrogate_batched=tb,
            tau=breakeven(t_data, t_train, t_simulation, t1),
            tau_batched=breakeven(t_data, t_train, t_simulation, tb),
            speedup=t_simulation / t1 if t1 > 0 else math.inf,
            speedup_batched=t_simulation / tb if tb > 0 else math.inf,
            timing_hardware=timing_hardware,
            sources=sources,
            surrogate_timing=asdict(surrogate),
            metrics=metrics,
            dataset=dataset,
        )

    def card_fields(self) -> dict[str, Any]:
        """The top-level numbers docs/model-card.md puts in ``card.json``."""
        return {
            "T_data": self.T_data,
            "T_train": self.T_train,
            "T_simulation": self.T_simulation,
            "T_surrogate": self.T_surrogate,
            "T_surrogate_batched": self.T_surrogate_batched,
            "tau": self.tau,
            "tau_batched": self.tau_batched,
            "timing_hardware": self.timing_hardware,
        }

    def markdown(self) -> str:
        """The report a person reads: times, τ, speed-up and the held-out error beside it."""
        st = self.surrogate_timing
        lines = [
            f"# Breakeven τ for model `{self.model}`",
            "",
            f"τ = (T_data + T_train) / (T_simulation − T_surrogate) — created {self.created}.",
            "",
            "| quantity | seconds | source | hardware |",
            "|---|---:|---|---|",
            _row("T_data", self.T_data, self.sources["T_data"], self.timing_hardware["T_data"]),
            _row("T_train", self.T_train, self.sources["T_train"], self.timing_hardware["T_train"]),
            _row(
                "T_simulation (per sample)",
                self.T_simulation,
                self.sources["T_simulation"],
                self.timing_hardware["T_simulation"],
            ),
            _row(
                "T_surrogate, batch 1 (per sample)",
                self.T_surrogate,
                f"onnxruntime, median, {st['threads_batch1']} intra-op thread(s)",
                self.timing_hardware["T_surrogate"],
            ),
            _row(
                f"T_surrogate, batch {st['batch_size']} (per sample)",
                self.T_surrogate_batched,
                f"onnxruntime, median, {st['threads_batched']} intra-op thread(s)",
                self.timing_hardware["T_surrogate"],
            ),
            "",
            "| surrogate use | speed-up T_sim / T_surr | τ (evaluations to break even) |",
            "|---|---:|---:|",
            f"| one sample per call | {self.speedup:,.0f}× | {format_tau(self.tau)} |",
            f"| batches of {st['batch_size']} | {self.speedup_batched:,.0f}× "
            f"| {format_tau(self.tau_batched)} |",
            "",
            "## Accuracy at this speed (held-out relative L2, physical units)",
            "",
        ]
        lines += _metrics_table(self.metrics)
        lines += [
            "",
            "A speed-up is only worth its error: the surrogate replaces an FE solve only where "
            "an error of this size is acceptable and the microstructure resembles the training "
            "data.",
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


def _row(name: str, seconds: float, source: str, hardware: str) -> str:
    return f"| {name} | {seconds:.4g} | {source} | {hardware} |"


def _metrics_table(metrics: dict[str, Any]) -> list[str]:
    splits = [s for s in ("val", "test") if isinstance(metrics.get(s), dict)]
    if not splits:
        return ["(no held-out metrics in the card)"]
    keys = ["overall", *STRAIN_CHANNELS, "fiber", "matrix"]
    lines = ["| split | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    for s in splits:
        cells = [_pct(metrics[s].get(k)) for k in keys]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return lines


def _pct(value: Any) -> str:
    return f"{100 * float(value):.2f}%" if isinstance(value, int | float) else "–"


def plot_cumulative_cost(report: TauReport, path: Path) -> None:
    """Cumulative cost of n evaluations: FE n·T_sim vs surrogate T_data + T_train + n·T_surr.

    Log-log axes; the crossings (τ for batch 1 and batched) are marked.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    upfront = report.T_data + report.T_train
    taus = [t for t in (report.tau, report.tau_batched) if t is not None]
    n_max = 10 ** math.ceil(math.log10(max([*taus, 50.0]) * 20))
    n = np.logspace(0, math.log10(n_max), 400)  # [400] evaluations
    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    ax.plot(n, n * report.T_simulation, label=f"FE solve ({report.T_simulation:.3g} s each)")
    ax.plot(
        n,
        upfront + n * report.T_surrogate,
        label=f"surrogate, batch 1 ({report.T_surrogate:.2g} s each + {upfront:.3g} s up front)",
    )
    ax.plot(
        n,
        upfront + n * report.T_surrogate_batched,
        "--",
        label=f"surrogate, batched ({report.T_surrogate_batched:.2g} s each)",
    )
    marks = (
        (report.tau, "τ", "k", (-10, 12), "right"),
        (report.tau_batched, "τ batched", "tab:green", (10, -20), "left"),
    )
    for tau, label, color, offset, align in marks:
        if tau is None:
            continue
        y = tau * report.T_simulation
        ax.axvline(tau, color=color, lw=0.8, ls=":")
        ax.plot([tau], [y], "o", color=color)
        ax.annotate(
            f"{label} = {format_tau(tau)}",
            (tau, y),
            textcoords="offset points",
            xytext=offset,
            ha=align,
            color=color,
            bbox={"boxstyle": "round", "fc": "white", "ec": color, "alpha": 0.9},
        )
    if report.tau is None and report.tau_batched is None:
        ax.text(0.35, 0.1, "τ: never (the surrogate is not faster)", transform=ax.transAxes)
    # log-log: both costs are straight lines and the crossing is visible at every scale
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(1, n_max)
    y_low = min(report.T_simulation, upfront if upfront > 0 else report.T_simulation)
    ax.set_ylim(y_low / 2, max(upfront, n_max * report.T_simulation) * 2)
    ax.set_xlabel("number of evaluations n")
    ax.set_ylabel("cumulative wall time (s)")
    ax.set_title(f"Breakeven of model '{report.model}'")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def write_report(report: TauReport, model_dir: Path) -> dict[str, Path]:
    """Write tau.json, tau.md, tau.png and update the card's top-level numbers atomically."""
    out = {"json": model_dir / TAU_JSON, "md": model_dir / TAU_MD, "png": model_dir / TAU_PNG}
    with atomic_output(out["json"]) as tmp:
        tmp.write_text(json.dumps(asdict(report), indent=2) + "\n")
    with atomic_output(out["md"]) as tmp:
        tmp.write_text(report.markdown())
    plot_cumulative_cost(report, out["png"])
    card_path = model_dir / CARD_FILE
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    card.update(report.card_fields())
    with atomic_output(card_path) as tmp:
        tmp.write_text(json.dumps(card, indent=2) + "\n")
    out["card"] = card_path
    return out


# --- putting it together (the `tau` command) ------------------------------------------------


def _resolve_dataset(card: dict[str, Any], model_dir: Path, dataset: Path | None) -> Path | None:
    """``--dataset`` if given, else the card's training file relative to cwd or the model dir."""
    if dataset is not None:
        if not dataset.is_file():
            raise MicrostrainError(f"dataset not found: {dataset}")
        return dataset
    name = card.get("training_data", {}).get("file")
    if not name:
        return None
    for candidate in (Path(name), model_dir / name, model_dir / Path(name).name):
        if candidate.is_file():
            return candidate
    return None


def training_seconds_from_checkpoint(checkpoint: Path) -> tuple[float, str]:
    """(T_train, hardware) recorded by the training run in a Lightning checkpoint."""
    from training.export import training_record

    record = training_record(checkpoint)
    seconds = record.get("train_seconds")
    if not isinstance(seconds, int | float):
        raise MicrostrainError(f"{checkpoint} records no training time")
    return float(seconds), str(record.get("hardware", "unknown"))


def run_tau(
    model_dir: str | os.PathLike[str],
    dataset: str | os.PathLike[str] | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
    threads: tuple[int, ...] | None = None,
    batch_size: int = 256,
    budget_s: float = 1.5,
) -> tuple[TauReport, dict[str, Path]]:
    """Collect T_data, T_train, T_simulation, measure T_surrogate, write the report files.

    Without a dataset at hand (e.g. a shipped model on a fresh checkout) the card's earlier
    T_data and T_simulation are reused and only T_surrogate is measured again, on this machine.
    """
    d = Path(model_dir)
    card_path = d / CARD_FILE
    if not card_path.is_file():
        raise MicrostrainError(f"no {CARD_FILE} in model directory {d}")
    try:
        card: dict[str, Any] = json.loads(card_path.read_text())
    except json.JSONDecodeError as exc:
        raise MicrostrainError(f"{card_path} is not valid JSON: {exc}") from None
    hardware = dict(card.get("timing_hardware") or {})
    sources: dict[str, str] = {}
    dataset_info: dict[str, Any] = {}

    ds_path = _resolve_dataset(card, d, Path(dataset) if dataset is not None else None)
    if ds_path is not None:
        timing = dataset_timing(ds_path)
        t_data, t_sim = timing.t_data, timing.t_simulation
        sources["T_data"] = f"{timing.file}: {timing.t_data_source}"
        sources["T_simulation"] = (
            f"{timing.file}: median of {DS_SOLVE_SECONDS} over {timing.n_samples} samples "
            f"(mean {timing.t_simulation_mean:.4g} s)"
        )
        hardware["T_data"] = hardware["T_simulation"] = timing.hardware
        dataset_info = asdict(timing)
        expected = card.get("training_data", {}).get("sha256")
        dataset_info["matches_training_data"] = expected == timing.sha256 if expected else None
    elif isinstance(card.get("T_data"), int | float) and isinstance(
        card.get("T_simulation"), int | float
    ):
        t_data, t_sim = float(card["T_data"]), float(card["T_simulation"])
        sources["T_data"] = sources["T_simulation"] = "card.json (earlier tau run)"
        hardware.setdefault("T_data", "unknown")
        hardware.setdefault("T_simulation", "unknown")
    else:
        file = card.get("training_data", {}).get("file", "?")
        raise MicrostrainError(
            f"training dataset '{file}' not found; pass --dataset FILE (the HDF5 file with "
            f"{DS_SOLVE_SECONDS}) to collect T_data and T_simulation"
        )

    if checkpoint is not None:
        t_train, hardware["T_train"] = training_seconds_from_checkpoint(Path(checkpoint))
        sources["T_train"] = f"checkpoint {Path(checkpoint).name}"
    else:
        training = card.get("training", {})
        value = training.get("train_seconds", card.get("T_train"))
        if not isinstance(value, int | float):
            raise MicrostrainError(f"{card_path} records no training time; pass --checkpoint CKPT")
        t_train = float(value)
        sources["T_train"] = "card.json (training run)"
        hardware["T_train"] = str(training.get("hardware", hardware.get("T_train", "unknown")))

    inputs = sample_inputs(ds_path, batch_size)
    surrogate = measure_surrogate(d, inputs, threads, batch_size, budget_s)
    hardware["T_surrogate"] = surrogate.hardware
    report = TauReport.build(
        model=str(card.get("name", d.name)),
        t_data=t_data,
        t_train=t_train,
        t_simulation=t_sim,
        surrogate=surrogate,
        timing_hardware=hardware,
        sources=sources,
        metrics=card.get("metrics", {}),
        dataset=dataset_info,
    )
    return report, write_report(report, d)
