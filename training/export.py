"""``microstrain export``: a checkpoint and its run record in, ``models/<name>/`` out (SPEC §5).

The steps, each in its own module:

1. rebuild the :class:`~training.model.Surrogate` (normalizer ∘ net ∘ physics, eval form) from
   the checkpoint (:meth:`~training.model.Surrogate.from_checkpoint`), no Lightning needed;
2. read the run record ``run.json`` beside it (:mod:`training.run_record`): training data, split,
   T_train and the held-out metrics of this very checkpoint, measured when training ended;
3. write and check the graph, and refuse the export unless onnxruntime reproduces PyTorch
   (:mod:`training.onnx_graph`);
4. measure T_surrogate of the written graph now (:func:`microstrain.breakeven.measure_surrogate`)
   and compute τ from the recorded T_data, T_simulation and T_train;
5. write ``weights.pt`` (weights and units, :mod:`training.weights`; its sha256 in the card),
   ``card.json`` and ``README.md`` (:mod:`training.card`).

The training dataset is not read: an export needs nothing but the checkpoint and its record.
Everything is written into a staging directory beside the target that becomes the model directory
only when complete (:func:`microstrain.files.staged_directory`), so a refused or interrupted export
leaves nothing behind that looks like a model.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from microstrain.breakeven import SurrogateTiming, measure_surrogate, timing_inputs
from microstrain.conventions import CARD_FILE, GRID, MODEL_FILE
from microstrain.errors import MicrostrainError
from microstrain.files import sha256_of, staged_directory, write_json, write_text
from microstrain.scoring import score_file
from microstrain.surrogate import SurrogateModel
from training.architectures import parameter_count
from training.card import (
    PERIODIC_INPUT_SIZES,
    OnnxFacts,
    build_card,
    estimate_summary,
    model_readme,
    periodic_fields,
)
from training.model import Surrogate, SurrogateConfig
from training.onnx_graph import (
    DEFAULT_OPSET,
    PARITY_TOLERANCE,
    check_graph,
    check_parity,
    export_onnx,
)
from training.run_record import read_run_record
from training.weights import WEIGHTS_FILE, load_checkpoint, save_weights


@dataclass(frozen=True)
class ExportConfig:
    """How the graph is written, how strictly it is checked, how long T_surrogate is timed."""

    opset: int = DEFAULT_OPSET
    parity_tolerance: float = PARITY_TOLERANCE  # max |ort − torch| / max |torch|
    parity_batch_sizes: tuple[int, ...] = (1, 7, 64)
    timing_batch_size: int = 256  # the batched T_surrogate
    timing_budget_s: float = 1.0  # per (thread count, batch mode) pair
    timing_threads: tuple[int, ...] | None = None  # None: 1 and min(cores, 4)
    # the mirror's disagreement as a second output of a symmetrized model (training/physics.py).
    # None: on exactly when each half was trained by itself (symmetrize_training false); a
    # network trained THROUGH the symmetrization has unsupervised halves, whose disagreement
    # measured no error (docs/training.md). True/False force it.
    error_estimate: bool | None = None


def _epochs_trained(raw: dict[str, Any], record: dict[str, Any]) -> int | None:
    """Completed epochs of the checkpoint from its optimizer steps (Lightning's ``epoch`` field
    is off by one depending on when the checkpoint was saved)."""
    steps = raw.get("global_step")
    n_train = record["split"].get("n_train")
    batch = record["config"]["data"].get("batch_size")
    if isinstance(steps, int) and isinstance(n_train, int) and isinstance(batch, int) and batch:
        per_epoch = -(-n_train // min(batch, n_train))
        return -(-steps // per_epoch)
    epoch = raw.get("epoch")
    return int(epoch) if isinstance(epoch, int) else None


def time_graph(onnx_path: Path, cfg: ExportConfig) -> SurrogateTiming:
    """T_surrogate of the written graph, by :func:`microstrain.breakeven.measure_surrogate`."""
    return measure_surrogate(
        onnx_path,
        timing_inputs(cfg.timing_batch_size),
        cfg.timing_threads,
        cfg.timing_batch_size,
        cfg.timing_budget_s,
    )


def write_checked_graph(
    surrogate: Surrogate, onnx_path: Path, cfg: ExportConfig, sizes: tuple[int, ...] = (GRID,)
) -> OnnxFacts:
    """Write ``surrogate``'s graph to ``onnx_path`` and check it; :class:`ParityError` unless
    onnxruntime reproduces PyTorch within the gate at the export's batch sizes and at every cell
    size of ``sizes`` (n × n cells) beyond 32 × 32."""
    exporter = export_onnx(surrogate, onnx_path, cfg.opset)
    opset = check_graph(onnx_path, surrogate.output_names)
    parity = check_parity(surrogate, onnx_path, cfg.parity_batch_sizes, cfg.parity_tolerance)
    for side in sizes:
        if side != GRID:
            check_parity(surrogate, onnx_path, (2,), cfg.parity_tolerance, side=side)
    return OnnxFacts(
        sha256=sha256_of(onnx_path),
        bytes=onnx_path.stat().st_size,
        opset=opset,
        exporter=exporter,
        torch=torch.__version__,
        parity=parity,
        parity_tolerance=cfg.parity_tolerance,
    )


def judge(onnx_path: Path, card: dict[str, Any], files: list[Path]) -> dict[str, Any]:
    """SPEC §9 measures of the graph on each file, keyed by the file's stem (a family's name)."""
    surrogate = SurrogateModel.from_onnx(onnx_path)
    surrogate.card = card  # its load case, for the compatibility check
    judged: dict[str, Any] = {}
    for file in files:
        if file.stem in judged:
            raise MicrostrainError(f"two files to judge on are named '{file.stem}'")
        measures = score_file(surrogate, file)
        judged[file.stem] = {"file": file.name, "sha256": sha256_of(file), **measures}
    return judged


def export_checkpoint(
    checkpoint: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    name: str | None = None,
    version: str | None = None,
    force: bool = False,
    config: ExportConfig | None = None,
    judge_on: list[Path] | None = None,
) -> dict[str, Any]:
    """Export the best checkpoint of a training run to ``out_dir``; returns the card written.

    ``judge_on``: SPEC §4 files (evaluation families, held-out sets) on which the exported graph
    is judged in the SPEC §9 measures (:mod:`microstrain.scoring`, as ``evaluate`` does); the card
    records them under ``evaluation``, beside the test split's measures of the run record.
    Raises :class:`ParityError` (nothing written) when onnxruntime disagrees with PyTorch.
    """
    cfg = config or ExportConfig()
    ckpt, target = Path(checkpoint), Path(out_dir)
    raw = load_checkpoint(ckpt)
    record = read_run_record(ckpt)
    hp = dict(raw.get("hyper_parameters") or {})
    surrogate = Surrogate.from_checkpoint(ckpt, cfg.error_estimate)
    config_ = SurrogateConfig.from_hparams(hp)
    val_metrics = (record.get("metrics") or {}).get("val")
    training = {
        "epochs": _epochs_trained(raw, record),
        "global_step": raw.get("global_step"),
        "optimizer": {k: hp.get(k) for k in ("optimizer", "lr", "weight_decay") if k in hp},
        "schedule": {
            k: v for k, v in hp.items() if k.startswith("schedule") or k == "cosine_floor"
        },
        "config": {"model": record["config"]["model"], "data": record["config"]["data"]},
        "train_seconds": record["T_train"],  # with the init_from checkpoint's, which follows
        "init_from_seconds": record.get("T_train_init_from", 0.0),
        "hardware": record["T_train_hardware"],
        "best_val_metrics": val_metrics,
        "checkpoint": ckpt.name,
    }
    with staged_directory(target, force) as tmp:
        onnx_path = tmp / MODEL_FILE
        periodic = surrogate.physics.kind == "periodic"
        sizes = PERIODIC_INPUT_SIZES if periodic else (GRID,)
        facts = write_checked_graph(surrogate, onnx_path, cfg, sizes)
        weights = save_weights(surrogate.state_dict(), config_, tmp / WEIGHTS_FILE)
        timing = time_graph(onnx_path, cfg)
        card = build_card(
            name=name or target.name,
            version=version,
            architecture={
                "name": hp.get("arch"),
                "hyperparameters": hp.get("arch_kwargs") or {},
                "parameters": parameter_count(surrogate.net),
            },
            training=training,
            normalization=surrogate.normalizer.to_dict(),
            record=record,
            onnx=facts,
            timing=timing,
        )
        card["weights_sha256"] = sha256_of(weights)
        if periodic:
            card.update(periodic_fields(surrogate.physics.options()))
        if judge_on:
            card["evaluation"] = judge(onnx_path, card, judge_on)
            if surrogate.error_estimate and (summary := estimate_summary(card["evaluation"])):
                card["error_estimate"] = summary
        write_json(tmp / CARD_FILE, card)
        write_text(tmp / "README.md", model_readme(card))
    return card
