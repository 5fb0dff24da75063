"""The model card ``card.json`` (SPEC §5, docs/model-card.md) and the model directory's README.

The card is assembled from the artifacts that measured each value, never recomputed: the
checkpoint (architecture, hyperparameters, normalization, epoch), the run record ``run.json``
(training data, split, T_train, held-out metrics of the best checkpoint), the dataset summary in
that record (T_data, T_simulation) and the export itself (ONNX facts, parity, T_surrogate, τ).
It is written once, by ``export``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from microstrain.breakeven import SurrogateTiming, breakeven, format_tau
from microstrain.conventions import (
    CARD_FILE,
    DEFAULT_APPLIED_STRAIN,
    DS_SOLVE_SECONDS,
    GRID,
    MODEL_FILE,
    N_CASES,
    N_STRAIN,
    ONNX_C_EFF,
    ONNX_INPUT,
    ONNX_OUTPUT,
    PERIODIC_CASES,
    PERIODIC_LOAD_CASE,
    SCHEMA_VERSION,
    STRAIN_CHANNELS,
)

CARD_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class OnnxFacts:
    """What the export measured about the written graph."""

    sha256: str
    bytes: int
    opset: int
    exporter: str
    torch: str  # the version that wrote the graph
    parity: dict[int, float]  # batch size -> max |ort − torch| / max |torch|
    parity_tolerance: float


def onnx_fields(onnx: OnnxFacts) -> dict[str, Any]:
    """The card's ``onnx`` section: the graph file, its sha256 and how it was checked."""
    return {
        "file": MODEL_FILE,
        "sha256": onnx.sha256,
        "bytes": onnx.bytes,
        "opset": onnx.opset,
        "exporter": onnx.exporter,
        "torch": onnx.torch,
        "parity_max_rel_error": max(onnx.parity.values()),
        "parity_by_batch_size": {str(b): e for b, e in onnx.parity.items()},
        "parity_batch_sizes": list(onnx.parity),
        "parity_tolerance": onnx.parity_tolerance,
    }


def without_machine_paths(value: Any) -> Any:
    """``value`` with absolute paths cut to their file name (a card travels between machines)."""
    if isinstance(value, dict):
        return {k: without_machine_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_machine_paths(v) for v in value]
    if isinstance(value, str) and os.path.isabs(value):
        return Path(value).name
    return value


def training_data(record: dict[str, Any]) -> dict[str, Any]:
    """``card.training_data``: the dataset's identity and the split, from the run record.

    ``files`` lists every file of the dataset (one, or the shards of a directory) with its
    sha256; ``file``/``sha256`` name the one file (for several: a description and ``None``).
    """
    dataset, split = record["dataset"], record["split"]
    files = dataset.get("files") or [
        {"file": dataset["file"], "sha256": dataset["sha256"], "n_samples": dataset["n_samples"]}
    ]
    return {
        "file": dataset["file"],
        "sha256": dataset["sha256"],
        "files": files,
        "n_total": split["n_total"],
        "n_train": split["n_train"],
        "n_val": split["n_val"],
        "n_test": split["n_test"],
        "split_seed": split["seed"],
        "val_fraction": split["val_fraction"],
        "test_fraction": split["test_fraction"],
        **({"split_prefix": split["prefix"]} if split.get("prefix") else {}),
        "generator": dataset.get("generator") or {},
        "discretization": dataset.get("discretization") or {},
        "load_case": dataset.get("load_case") or {},
        "fiber_fraction_range": split["fiber_fraction_range"],
        "fiber_fraction_mean": split["fiber_fraction_mean"],
    }


def surrogate_timing_source(timing: SurrogateTiming) -> str:
    """How T_surrogate was measured, as the card's ``timing_sources`` says it."""
    return (
        f"onnxruntime at export, median per sample: batch 1 with {timing.threads_batch1} "
        f"thread(s), batch {timing.batch_size} with {timing.threads_batched} thread(s)"
    )


def breakeven_of(
    t_data: float, t_train: float, t_simulation: float, timing: SurrogateTiming
) -> dict[str, float | None]:
    """τ (SPEC §6) at batch 1 and batched, from the recorded times and the graph's timing."""
    return {
        "tau": breakeven(t_data, t_train, t_simulation, timing.t_batch1),
        "tau_batched": breakeven(t_data, t_train, t_simulation, timing.t_batched),
    }


def breakeven_fields(record: dict[str, Any], timing: SurrogateTiming) -> dict[str, Any]:
    """The card's top-level times (s), τ (SPEC §6) and where and on what each was measured.

    T_data and T_simulation come from the dataset summary in the run record, T_train from the
    record, T_surrogate from ``timing`` (measured by the export). Without recorded solve times
    the dataset-side times and τ are left out rather than guessed.
    """
    dataset = record["dataset"]
    t_train = float(record["T_train"])
    fields: dict[str, Any] = {}
    hardware = {"T_train": record["T_train_hardware"], "T_surrogate": timing.hardware}
    sources = {
        "T_train": "run.json of the training run: fit wall time, summed over resumed runs",
        "T_surrogate": surrogate_timing_source(timing),
    }
    t_data, t_sim = dataset.get("t_data"), dataset.get("t_simulation")
    if t_data is not None and t_sim is not None:
        fields.update(T_data=float(t_data))
        hardware["T_data"] = hardware["T_simulation"] = dataset["hardware"]
        sources["T_data"] = f"{dataset['file']}: {dataset['t_data_source']}"
        sources["T_simulation"] = (
            f"{dataset['file']}: median of {DS_SOLVE_SECONDS} over {dataset['n_samples']} "
            f"samples (mean {dataset['t_simulation_mean']:.4g} s)"
        )
    fields["T_train"] = t_train
    if t_sim is not None:
        fields["T_simulation"] = float(t_sim)
    fields.update(T_surrogate=timing.t_batch1, T_surrogate_batched=timing.t_batched)
    if t_data is not None and t_sim is not None:
        fields.update(breakeven_of(float(t_data), t_train, float(t_sim), timing))
    order = ("T_data", "T_train", "T_simulation", "T_surrogate")
    fields["timing_hardware"] = {k: hardware[k] for k in order if k in hardware}
    fields["timing_sources"] = {k: sources[k] for k in order if k in sources}
    return fields


def build_card(
    *,
    name: str,
    version: str | None,
    architecture: dict[str, Any],
    training: dict[str, Any],
    normalization: dict[str, Any],
    record: dict[str, Any],
    onnx: OnnxFacts,
    timing: SurrogateTiming,
) -> dict[str, Any]:
    """The whole card of docs/model-card.md, in its documented field order."""
    created = datetime.now(UTC)
    return {
        "schema_version": CARD_SCHEMA_VERSION,
        "name": name,
        "version": version or created.strftime("%Y.%m.%d-%H%M%S"),
        "created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "architecture": architecture,
        "training": without_machine_paths(training),
        "training_data": training_data(record),
        "normalization": normalization,
        "metrics": record.get("metrics") or {},
        "onnx": onnx_fields(onnx),
        "input": {"name": ONNX_INPUT, "shape": ["batch", 1, GRID, GRID], "units": "MPa"},
        "output": {
            "name": ONNX_OUTPUT,
            "shape": ["batch", N_STRAIN, GRID, GRID],
            "channels": list(STRAIN_CHANNELS),
            "applied_strain": DEFAULT_APPLIED_STRAIN,
        },
        "dataset_schema_version": SCHEMA_VERSION,
        **breakeven_fields(record, timing),
    }


# the cell sizes a periodic model is checked at (parity at export) and offered for (SPEC §11)
PERIODIC_INPUT_SIZES = (GRID, 2 * GRID)


def periodic_fields(physics_options: dict[str, Any]) -> dict[str, Any]:
    """What a periodic model's card says beside the uniaxial fields (SPEC §11): the image sizes
    it takes, both outputs' shapes, and the physics built into its graph."""
    return {
        "input": {"name": ONNX_INPUT, "shape": ["batch", 1, "n", "n"], "units": "MPa"},
        "input_sizes": list(PERIODIC_INPUT_SIZES),
        "output": {
            "name": ONNX_OUTPUT,
            "shape": ["batch", N_CASES, N_STRAIN, "n", "n"],
            "cases": list(PERIODIC_CASES),
            "channels": list(STRAIN_CHANNELS),
            "applied_strain": DEFAULT_APPLIED_STRAIN,
        },
        "output_C_eff": {
            "name": ONNX_C_EFF,
            "shape": ["batch", N_STRAIN, N_STRAIN],
            "units": "MPa",
            "order": "Voigt xx, yy, xy (engineering shear)",
        },
        "physics": {"kind": "periodic", **physics_options},
    }


def estimate_summary(evaluation: dict[str, Any]) -> dict[str, Any] | None:
    """How the error estimate tracked the true error on the judged files: the median over the
    files of each file's median estimate / true energy-norm error and each file's Spearman ρ
    (``None`` without an estimate). Consumers read it (:attr:`SurrogateModel.estimate_caveat`)."""
    per_file = {
        stem: result["error_estimate"]
        for stem, result in evaluation.items()
        if isinstance(result.get("error_estimate"), dict)
    }
    ratios = [
        q["median_estimate_over_error"]
        for q in per_file.values()
        if isinstance(q.get("median_estimate_over_error"), float)
    ]
    if not ratios:
        return None
    return {
        "measured_on": f"the judged files ({', '.join(per_file)})",
        "median_estimate_over_error": float(sorted(ratios)[len(ratios) // 2]),
        "spearman_energy_norm": {s: q.get("spearman_energy_norm") for s, q in per_file.items()},
    }


def model_readme(card: dict[str, Any]) -> str:
    """A few lines for people browsing ``models/<name>/``."""
    test = card.get("metrics", {}).get("test") or card.get("metrics", {}).get("val", {})
    strain_error = test.get("strain_relative_l2")
    err = f"{100 * strain_error:.2f}%" if isinstance(strain_error, float) else "n/a"
    arch = card.get("architecture", {})
    data = card.get("training_data", {})
    tau_text = format_tau(card["tau"]) if "tau" in card else "n/a"
    graph = (
        f"- `{MODEL_FILE}`: input `{ONNX_INPUT}` float32 [batch, 1, 32, 32] in MPa; output "
        f"`{ONNX_OUTPUT}` float32 [batch, 3, 32, 32] ({', '.join(STRAIN_CHANNELS)}) "
        f"for an applied strain of {DEFAULT_APPLIED_STRAIN}"
    )
    usage = "input.npy -o strain.npy"
    if data.get("load_case", {}).get("name") == PERIODIC_LOAD_CASE:  # SPEC §11
        sizes = " or ".join(f"{n}x{n}" for n in card.get("input_sizes", [GRID]))
        graph = (
            f"- `{MODEL_FILE}`: input `{ONNX_INPUT}` float32 [batch, 1, n, n] in MPa (n: {sizes}, "
            f"periodic cells, plane {data['load_case'].get('plane')}); outputs `{ONNX_OUTPUT}` "
            f"float32 [batch, 3, 3, n, n] (the unit cases {', '.join(PERIODIC_CASES)} of size "
            f"{DEFAULT_APPLIED_STRAIN}), `{ONNX_C_EFF}` float32 [batch, 3, 3] MPa and "
            "`error_estimate` [batch]"
        )
        usage = "cells.npy -o out.h5 [--macro-stress SXX,SYY,TXY]"
        c_eff = test.get("C_eff_error_mean")
        if isinstance(c_eff, float):
            err += f" (mean over the three cases); C_eff {100 * c_eff:.2f}%"
    return "\n".join(
        [
            f"# Model `{card['name']}` (version {card['version']})",
            "",
            f"- architecture: {arch.get('name', '?')} ({arch.get('parameters', '?')} parameters)",
            f"- trained on: {data.get('file', '?')} ({data.get('n_train', '?')} samples, "
            f"discretization {data.get('discretization', '?')})",
            f"- held-out strain error (SPEC §9 strain_relative_l2, per sample then mean): {err}",
            f"- breakeven τ (batch 1): {tau_text} evaluations",
            graph,
            f"- `{CARD_FILE}`: everything else (normalization, metrics, parity, times, τ)",
            "",
            f"Predict: `microstrain predict <this directory> {usage}`; breakeven "
            "report: `microstrain tau <this directory>` (`--measure` times it on your machine).",
            "",
        ]
    )
