"""Accuracy against latency of exported models, all measured in one run (the Pareto table).

For each model directory, in one process on one machine:

- parameters (from the card) and the per-sample time with onnxruntime at batch 1 and batched
  (256), with 1 and 2 intra-op threads; the models are timed in ``--rounds`` interleaved rounds
  and each figure is the median over the rounds, so that the load of a shared machine falls on all
  of them alike. "× ref" is the ratio to the FIRST model (e.g. the previous default);
- the SPEC §9 measures on the card's own test split (``metrics.test``: comparable between models
  trained on the same files and split), and on the given files (:func:`microstrain.scoring.
  score_file`, the same code as ``microstrain evaluate``): the mean over the files and the worst
  file;
- for a model with an error estimate, Spearman's ρ of the estimate against the true energy-norm
  error over all given files pooled, and the lowest per-file ρ.

A model is Pareto-optimal (``*``) when no other is both faster at batch 1 (2 threads) and
lower in test energy-norm error (the file mean where a card lacks a test split).

    .venv/bin/python benchmarks/bench_models.py REF_DIR MODEL_DIR... --files data/heldout_*.h5 \\
        data/families/*.h5 [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np
from bench_error_estimate import measure as estimate_arrays  # this script's directory
from bench_error_estimate import pooled

from microstrain.breakeven import measure_surrogate, timing_inputs
from microstrain.errors import MicrostrainError
from microstrain.hardware import cpu_description
from microstrain.scoring import estimate_quality, score_file
from microstrain.surrogate import SurrogateModel

FIELDS = ("strain_relative_l2", "stress_relative_l2", "energy_norm_error", "E_x_error_mean")
SHORT = {"strain_relative_l2": "strain", "stress_relative_l2": "stress"}
SHORT |= {"energy_norm_error": "energy", "E_x_error_mean": "E_x"}
TIMES = ("1t batch1", "1t batched", "2t batch1", "2t batched")


def timings(dirs: list[Path], rounds: int, budget: float) -> dict[Path, dict[str, float]]:
    """Median over interleaved rounds of the per-sample seconds, per model and thread count."""
    inputs = timing_inputs(256)
    samples: dict[Path, dict[str, list[float]]] = {d: {k: [] for k in TIMES} for d in dirs}
    for _ in range(rounds):
        for d in dirs:
            t = measure_surrogate(d, inputs, threads=(1, 2), batch_size=256, budget_s=budget)
            for threads, modes in t.by_threads.items():
                for mode, seconds in modes.items():
                    samples[d][f"{threads}t {mode}"].append(seconds)
    return {d: {k: statistics.median(v) for k, v in s.items()} for d, s in samples.items()}


def accuracy(model_dir: Path, files: list[Path]) -> dict[str, Any]:
    """Parameters, the card's test measures, the measures on ``files`` (mean, worst) and the
    error estimate's ρ (pooled and the lowest per file, as benchmarks/bench_error_estimate.py)."""
    model = SurrogateModel.load(model_dir)
    test = model.card.get("metrics", {}).get("test", {})
    scored = {f.stem: score_file(model, f) for f in files}
    out: dict[str, Any] = {
        "parameters": model.card["architecture"]["parameters"],
        "test": {m: test.get(m) for m in FIELDS},
        "files": scored,
    }
    for m in FIELDS:
        values = [s[m] for s in scored.values()] if scored else []
        out.setdefault("mean", {})[m] = float(np.mean(values)) if values else None
        out.setdefault("worst", {})[m] = max(values) if values else None
    out["worst_file"] = (
        max(scored, key=lambda k: scored[k]["stress_relative_l2"]) if scored else None
    )
    if model.has_error_estimate and files:
        per_file = [estimate_arrays(model, f) for f in files]
        both = pooled(per_file)
        out["estimate_rho_pooled"] = estimate_quality(both["estimate"], both["energy"])[
            "spearman_energy_norm"
        ]
        per_file_rho = [s["error_estimate"]["spearman_energy_norm"] for s in scored.values()]
        out["estimate_rho_min"] = min((r for r in per_file_rho if r is not None), default=None)
    return out


def pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, nargs="+", help="model directories; the first is ref")
    parser.add_argument("--files", type=Path, nargs="*", default=[], help="SPEC §4 files to judge")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--budget", type=float, default=1.0, help="seconds per timing")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    try:
        acc = {d: accuracy(d, args.files) for d in args.models}
        times = timings(args.models, args.rounds, args.budget)
    except MicrostrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    ref = times[args.models[0]]

    def key_error(d: Path) -> float:
        value = acc[d]["test"]["energy_norm_error"] or acc[d]["mean"]["energy_norm_error"]
        return float("inf") if value is None else float(value)

    pareto = {
        d
        for d in args.models
        if not any(
            times[o]["2t batch1"] < times[d]["2t batch1"] and key_error(o) < key_error(d)
            for o in args.models
        )
    }
    print(f"{cpu_description()}; {args.rounds} interleaved rounds; ms per sample (× ref)")
    head = ["model", "params", *TIMES]
    head += [f"test {SHORT[m]}" for m in FIELDS]
    head += [f"files {SHORT[m]}" for m in FIELDS[:3]] + ["worst stress", "est. ρ (min)"]
    print("| " + " | ".join(head) + " |")
    print("|---|" + "---:|" * (len(head) - 1))
    for d in args.models:
        a, t = acc[d], times[d]
        cells = [f"{d.name}{' *' if d in pareto else ''}", f"{a['parameters']:,}"]
        cells += [f"{1e3 * t[k]:.2f} ({t[k] / ref[k]:.2f}×)" for k in TIMES]
        cells += [pct(a["test"][m]) for m in FIELDS]
        cells += [pct(a["mean"][m]) for m in FIELDS[:3]]
        worst = a["worst_file"]
        cells.append(f"{pct(a['worst']['stress_relative_l2'])} ({worst})" if worst else "—")
        rho = a.get("estimate_rho_pooled")
        low = a.get("estimate_rho_min")
        cells.append(f"{rho:.2f} ({low:.2f})" if rho is not None and low is not None else "—")
        print("| " + " | ".join(cells) + " |")
    if args.json:
        rows = {str(d): {"times_s": times[d], **acc[d]} for d in args.models}
        args.json.write_text(json.dumps(rows, indent=2, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
