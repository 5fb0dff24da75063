"""Export a trained network to ``models/<name>/`` (SPEC §5): ONNX graph, parity check, model card.

The exported graph is ``normalizer ∘ net ∘ denormalizer`` in eval form: input ``E`` float32
``[batch, 1, 32, 32]`` raw MPa, output ``strain`` float32 ``[batch, 3, 32, 32]`` raw strain for
ū = 0.1, dynamic batch axis. The export is refused unless onnxruntime reproduces PyTorch within
``parity_tolerance`` (max |ort − torch| / max |torch|) at every batch size of the parity check, on
real validation samples. Everything is written into a temporary directory beside the target and
moved into place only when complete, so a refused or interrupted export leaves nothing behind that
looks like a model.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from microstrain.conventions import (
    CARD_FILE,
    DEFAULT_APPLIED_STRAIN,
    GRID,
    MODEL_FILE,
    N_STRAIN,
    ONNX_INPUT,
    ONNX_OUTPUT,
    SCHEMA_VERSION,
    STRAIN_CHANNELS,
)
from microstrain.errors import MicrostrainError
from microstrain.files import sha256_of

CARD_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ExportConfig:
    """How the graph is written and how strictly it is checked against PyTorch."""

    opset: int = 18
    parity_tolerance: float = 1e-5  # max |ort − torch| / max |torch|
    parity_batch_sizes: tuple[int, ...] = (1, 7, 64)
    metrics_batch_size: int = 256


class ParityError(MicrostrainError):
    """onnxruntime does not reproduce PyTorch closely enough; the export is refused."""


# --- the ONNX graph -------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's chatter (torchvision op registration, progress lines)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    finally:
        logger.setLevel(level)


def export_onnx(module: nn.Module, path: Path, opset: int = 18) -> str:
    """Write ``module`` (raw E ``[N, 1, 32, 32]`` -> raw strain ``[N, 3, 32, 32]``) to ``path``.

    The torch.export-based exporter (``dynamo=True``, the default since torch 2.9) is used; it
    folds eval-mode BatchNorm into the convolutions. Should it fail on some architecture, the
    TorchScript exporter is tried. Returns the name of the exporter that worked.
    """
    module = module.eval()
    example = torch.full((2, 1, GRID, GRID), 3000.0)  # [2, 1, 32, 32]; batch > 1 keeps it symbolic
    errors: list[str] = []
    with _quiet_exporter(), torch.no_grad():
        try:
            program = torch.onnx.export(
                module,
                (example,),
                input_names=[ONNX_INPUT],
                output_names=[ONNX_OUTPUT],
                opset_version=opset,
                dynamo=True,
                verbose=False,
                dynamic_shapes=({0: torch.export.Dim("batch")},),
            )
            assert program is not None
            program.save(str(path), external_data=False)
            return "torch.onnx.export(dynamo=True)"
        except Exception as exc:  # the fallback below is tried for any exporter failure
            errors.append(f"dynamo: {type(exc).__name__}: {exc}".splitlines()[0])
        try:
            torch.onnx.export(
                module,
                (example,),
                str(path),
                input_names=[ONNX_INPUT],
                output_names=[ONNX_OUTPUT],
                opset_version=opset,
                dynamo=False,
                dynamic_axes={ONNX_INPUT: {0: "batch"}, ONNX_OUTPUT: {0: "batch"}},
            )
            return "torch.onnx.export(dynamo=False)"
        except Exception as exc:
            errors.append(f"torchscript: {type(exc).__name__}: {exc}".splitlines()[0])
    raise MicrostrainError("ONNX export failed: " + "; ".join(errors))


def check_graph(path: Path) -> int:
    """``onnx.checker`` full check plus the model contract; returns the default-domain opset."""
    import onnx

    model = onnx.load(str(path))
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as exc:
        raise MicrostrainError(f"exported graph fails onnx.checker: {exc}") from None
    inputs = [i.name for i in model.graph.input]
    outputs = [o.name for o in model.graph.output]
    if inputs != [ONNX_INPUT] or outputs != [ONNX_OUTPUT]:
        raise MicrostrainError(f"exported graph has inputs {inputs} and outputs {outputs}")
    for value, channels in ((model.graph.input[0], 1), (model.graph.output[0], N_STRAIN)):
        dims = value.type.tensor_type.shape.dim
        if dims[0].dim_value != 0 or [d.dim_value for d in dims[1:]] != [channels, GRID, GRID]:
            raise MicrostrainError(f"'{value.name}' of the exported graph has shape {dims}")
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def ort_session(path: Path) -> Any:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run_session(session: Any, youngs_modulus: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """onnxruntime prediction in chunks: E ``[N, 1, 32, 32]`` MPa -> strain ``[N, 3, 32, 32]``."""
    chunks = []
    for i in range(0, youngs_modulus.shape[0], batch_size):
        e = np.ascontiguousarray(youngs_modulus[i : i + batch_size], dtype=np.float32)
        chunks.append(session.run([ONNX_OUTPUT], {ONNX_INPUT: e})[0])
    return np.concatenate(chunks)


def parity_errors(
    module: nn.Module, session: Any, youngs_modulus: np.ndarray, batch_sizes: tuple[int, ...]
) -> dict[int, float]:
    """max |ort − torch| / max |torch| for the first ``b`` samples, for each batch size ``b``.

    ``youngs_modulus`` ``[M, 1, 32, 32]`` real samples; repeated when M is below a batch size.
    """
    module = module.eval()
    errors: dict[int, float] = {}
    for b in batch_sizes:
        e = np.ascontiguousarray(np.resize(youngs_modulus, (b, 1, GRID, GRID)), np.float32)
        with torch.no_grad():
            reference = module(torch.from_numpy(e)).numpy()  # [b, 3, 32, 32]
        got = session.run([ONNX_OUTPUT], {ONNX_INPUT: e})[0]
        if got.shape != reference.shape:
            raise ParityError(f"onnxruntime returned shape {got.shape} for batch {b}")
        scale = float(np.abs(reference).max())
        errors[b] = float(np.abs(got - reference).max() / scale) if scale > 0 else float("inf")
    return errors


def heldout_metrics(
    session: Any, youngs_modulus: np.ndarray, strain: np.ndarray, batch_size: int = 256
) -> dict[str, float]:
    """Relative L2 (training.metrics) of the ONNX model's prediction on a held-out split."""
    from training.metrics import relative_l2

    pred = run_session(session, youngs_modulus, batch_size)
    metrics = relative_l2(
        torch.from_numpy(pred),
        torch.from_numpy(np.asarray(strain)),
        torch.from_numpy(youngs_modulus),
    )
    metrics["n_samples"] = int(youngs_modulus.shape[0])
    return metrics


# --- the model directory --------------------------------------------------------------------


@dataclass
class Split:
    """Held-out samples: E ``[N, 1, 32, 32]`` MPa, strain ``[N, 3, 32, 32]`` for ū = 0.1."""

    youngs_modulus: np.ndarray
    strain: np.ndarray


@contextlib.contextmanager
def staged_directory(target: Path, force: bool) -> Iterator[Path]:
    """Yield an empty temporary directory beside ``target``; it becomes ``target`` on success.

    An existing non-empty ``target`` is refused unless ``force`` (then it is replaced whole, so
    no stale τ report of an earlier model survives next to the new graph).
    """
    if target.exists() and not target.is_dir():
        raise MicrostrainError(f"{target} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise MicrostrainError(f"{target} is not empty; choose another directory or use --force")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.export-", dir=target.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; a model directory is not
    try:
        yield tmp
        old = None
        if target.exists():
            old = target.parent / f".{target.name}.old-{os.getpid()}"
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def export_model(
    module: nn.Module,
    out_dir: str | os.PathLike[str],
    *,
    val: Split,
    test: Split | None,
    card: dict[str, Any],
    config: ExportConfig | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Export ``module`` to ``out_dir`` with its card; returns the card written.

    ``card`` carries what only the caller knows (name, version, architecture, training,
    training_data, normalization); this function adds the ONNX facts, parity, held-out metrics
    computed with onnxruntime, the I/O contract and the creation date.
    Raises :class:`ParityError` (nothing written) when onnxruntime disagrees with PyTorch.
    """
    cfg = config or ExportConfig()
    target = Path(out_dir)
    module = module.eval()
    with staged_directory(target, force) as tmp:
        onnx_path = tmp / MODEL_FILE
        exporter = export_onnx(module, onnx_path, cfg.opset)
        opset = check_graph(onnx_path)
        session = ort_session(onnx_path)
        parity = parity_errors(module, session, val.youngs_modulus, cfg.parity_batch_sizes)
        worst = max(parity.values())
        if not worst <= cfg.parity_tolerance:
            raise ParityError(
                f"export refused: onnxruntime differs from PyTorch by {worst:.3g} "
                f"(max abs error / output scale) > tolerance {cfg.parity_tolerance:g} "
                f"(by batch size: {', '.join(f'{b}: {e:.2g}' for b, e in parity.items())})"
            )
        metrics = {"val": heldout_metrics(session, val.youngs_modulus, val.strain)}
        if test is not None:
            metrics["test"] = heldout_metrics(session, test.youngs_modulus, test.strain)
        full = complete_card(card, target.name, onnx_path, exporter, opset, parity, metrics, cfg)
        (tmp / CARD_FILE).write_text(json.dumps(full, indent=2) + "\n")
        (tmp / "README.md").write_text(model_readme(full))
    return full


def complete_card(
    card: dict[str, Any],
    default_name: str,
    onnx_path: Path,
    exporter: str,
    opset: int,
    parity: dict[int, float],
    metrics: dict[str, Any],
    cfg: ExportConfig,
) -> dict[str, Any]:
    """The card of docs/model-card.md: caller's facts + ONNX, parity, metrics and contract."""
    now = datetime.now(UTC)
    full: dict[str, Any] = {
        "schema_version": CARD_SCHEMA_VERSION,
        "name": card.get("name") or default_name,
        "version": card.get("version") or now.strftime("%Y.%m.%d-%H%M%S"),
        "created": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    full.update({k: v for k, v in card.items() if k not in full or card.get(k)})
    full["metrics"] = metrics
    full["onnx"] = {
        "file": MODEL_FILE,
        "sha256": sha256_of(onnx_path),
        "bytes": onnx_path.stat().st_size,
        "opset": opset,
        "exporter": exporter,
        "torch": torch.__version__,
        "parity_max_rel_error": max(parity.values()),
        "parity_by_batch_size": {str(b): e for b, e in parity.items()},
        "parity_batch_sizes": list(parity),
        "parity_tolerance": cfg.parity_tolerance,
    }
    full["input"] = {"name": ONNX_INPUT, "shape": ["batch", 1, GRID, GRID], "units": "MPa"}
    full["output"] = {
        "name": ONNX_OUTPUT,
        "shape": ["batch", N_STRAIN, GRID, GRID],
        "channels": list(STRAIN_CHANNELS),
        "applied_strain": DEFAULT_APPLIED_STRAIN,
    }
    full.setdefault("dataset_schema_version", SCHEMA_VERSION)
    return full


def model_readme(card: dict[str, Any]) -> str:
    """A few lines for people browsing ``models/<name>/``."""
    test = card.get("metrics", {}).get("test") or card.get("metrics", {}).get("val", {})
    overall = test.get("overall")
    err = f"{100 * overall:.2f}%" if isinstance(overall, float) else "n/a"
    arch = card.get("architecture", {})
    data = card.get("training_data", {})
    return "\n".join(
        [
            f"# Model `{card['name']}` (version {card['version']})",
            "",
            f"- architecture: {arch.get('name', '?')} ({arch.get('parameters', '?')} parameters)",
            f"- trained on: {data.get('file', '?')} ({data.get('n_train', '?')} samples, "
            f"discretization {data.get('discretization', '?')})",
            f"- held-out relative L2 (all channels): {err}",
            f"- `{MODEL_FILE}`: input `{ONNX_INPUT}` float32 [batch, 1, 32, 32] in MPa; output "
            f"`{ONNX_OUTPUT}` float32 [batch, 3, 32, 32] ({', '.join(STRAIN_CHANNELS)}) "
            f"for an applied strain of {DEFAULT_APPLIED_STRAIN}",
            f"- `{CARD_FILE}`: everything else (normalization, metrics, parity, times, τ)",
            "",
            "Predict: `microstrain predict <this directory> input.npy -o strain.npy`; breakeven "
            "report: `microstrain tau <this directory> --dataset <training file>`.",
            "",
        ]
    )


# --- from a training checkpoint -------------------------------------------------------------


def _load_checkpoint_dict(checkpoint: Path) -> dict[str, Any]:
    if not checkpoint.is_file():
        raise MicrostrainError(f"checkpoint not found: {checkpoint}")
    try:
        # our own Lightning checkpoints hold plain Python containers beside the tensors
        raw = torch.load(checkpoint, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises pickle/zip/runtime errors for foreign files
        raise MicrostrainError(f"cannot read {checkpoint} as a checkpoint: {exc}") from None
    if not isinstance(raw, dict) or "state_dict" not in raw:
        raise MicrostrainError(f"{checkpoint} is not a Lightning checkpoint of `microstrain train`")
    return raw


def training_record(checkpoint: str | os.PathLike[str]) -> dict[str, Any]:
    """What the training run recorded in the checkpoint (``checkpoint["microstrain"]``).

    Keys: ``dataset`` (summary incl. split), ``train_seconds``, ``hardware``,
    ``best_val_metrics``, ``test_metrics``, ``parameters``, ``normalization``; plus ``epoch``,
    ``global_step``, ``hyper_parameters`` and ``datamodule_hyper_parameters`` from Lightning.
    """
    from training.module import CHECKPOINT_KEY

    raw = _load_checkpoint_dict(Path(checkpoint))
    record = dict(raw.get(CHECKPOINT_KEY) or {})
    for key in ("epoch", "global_step", "hyper_parameters", "datamodule_hyper_parameters"):
        if key in raw:
            record[key] = raw[key]
    return record


def _resolve_training_data(record: dict[str, Any], checkpoint: Path, dataset: Path | None) -> Path:
    """``--dataset``, else the path the datamodule was given, else the file name next to cwd."""
    if dataset is not None:
        if not dataset.is_file():
            raise MicrostrainError(f"dataset not found: {dataset}")
        return dataset
    summary = record.get("dataset") or {}
    dm_path = (record.get("datamodule_hyper_parameters") or {}).get("path")
    candidates = [Path(p) for p in (dm_path, summary.get("file")) if p]
    candidates += [checkpoint.parent / c.name for c in candidates]
    for c in candidates:
        if c.is_file():
            return c
    name = summary.get("file") or dm_path or "?"
    raise MicrostrainError(
        f"training dataset '{name}' of {checkpoint.name} not found; pass --dataset FILE"
    )


def held_out_splits(
    record: dict[str, Any], data_path: Path
) -> tuple[Split, Split | None, dict[str, Any]]:
    """Reproduce the checkpoint's val/test split from its dataset summary (same file, same seed).

    Refuses a file whose sha256 differs from the one trained on: the split indices would point
    at other samples and held-out metrics could include training data.
    """
    from microstrain.files import sha256_of
    from training.data import read_dataset, split_indices

    summary = dict(record.get("dataset") or {})
    dm = record.get("datamodule_hyper_parameters") or {}
    expected = summary.get("sha256")
    actual = sha256_of(data_path)
    if expected and expected != actual:
        raise MicrostrainError(
            f"{data_path} is not the file this model was trained on (sha256 {actual[:12]}... vs "
            f"{expected[:12]}... in the checkpoint)"
        )
    data = read_dataset(data_path)
    n_total = int(data["E"].shape[0])
    if summary.get("n_total", n_total) != n_total:
        raise MicrostrainError(
            f"{data_path} holds {n_total} samples; the model was trained on {summary['n_total']}"
        )
    val_fraction = float(summary.get("val_fraction", dm.get("val_fraction", 0.1)))
    test_fraction = float(summary.get("test_fraction", dm.get("test_fraction", 0.1)))
    seed = int(summary.get("split_seed", dm.get("split_seed", 0)))
    _, val, test = split_indices(n_total, val_fraction, test_fraction, seed)
    if val.size == 0:
        raise MicrostrainError("the checkpoint's split has no validation samples to check parity")
    val, test = np.sort(val), np.sort(test)
    val_split = Split(data["E"][val], data["strain"][val])
    test_split = Split(data["E"][test], data["strain"][test]) if test.size else None
    if not summary:  # a checkpoint without summary: describe the file we used
        summary = {"file": data_path.name, "sha256": actual, "n_total": n_total}
    summary["file"] = Path(str(summary.get("file", data_path.name))).name
    return val_split, test_split, summary


def export_checkpoint(
    checkpoint: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    name: str | None = None,
    version: str | None = None,
    dataset: str | os.PathLike[str] | None = None,
    force: bool = False,
    config: ExportConfig | None = None,
) -> dict[str, Any]:
    """``microstrain export``: a :class:`~training.module.StrainRegressor` checkpoint -> dir."""
    from training.module import StrainRegressor

    ckpt = Path(checkpoint)
    record = training_record(ckpt)
    data_path = _resolve_training_data(record, ckpt, Path(dataset) if dataset else None)
    val, test, summary = held_out_splits(record, data_path)
    try:
        regressor = StrainRegressor.load_from_checkpoint(ckpt, map_location="cpu")
    except Exception as exc:  # Lightning re-raises missing keys / hparams mismatches as-is
        raise MicrostrainError(f"cannot restore the model from {ckpt}: {exc}") from None
    hp = dict(regressor.hparams)
    module = regressor.physical_model()
    card: dict[str, Any] = {
        "name": name,
        "version": version,
        "architecture": {
            "name": hp.get("arch"),
            "hyperparameters": hp.get("arch_kwargs") or {},
            "parameters": regressor.parameter_count,
        },
        "training": {
            "epochs": _epochs_trained(record),
            "global_step": record.get("global_step"),
            "optimizer": {k: hp.get(k) for k in ("optimizer", "lr", "weight_decay") if k in hp},
            "schedule": {
                k: v for k, v in hp.items() if k.startswith("schedule") or k == "cosine_floor"
            },
            "config": _jsonable(
                {"model": hp, "data": record.get("datamodule_hyper_parameters") or {}}
            ),
            "train_seconds": record.get("train_seconds"),
            "hardware": record.get("hardware"),
            "best_val_metrics": record.get("best_val_metrics"),
            "checkpoint": ckpt.name,
        },
        "training_data": summary,
        "normalization": regressor.normalizer.to_dict(),
    }
    return export_model(module, out_dir, val=val, test=test, card=card, config=config, force=force)


def _epochs_trained(record: dict[str, Any]) -> int | None:
    """Completed epochs from the optimizer steps (Lightning's ``epoch`` field is off by one
    depending on when the checkpoint was saved)."""
    steps = record.get("global_step")
    n_train = (record.get("dataset") or {}).get("n_train")
    batch = (record.get("datamodule_hyper_parameters") or {}).get("batch_size")
    if isinstance(steps, int) and isinstance(n_train, int) and isinstance(batch, int) and batch:
        per_epoch = -(-n_train // min(batch, n_train))
        return -(-steps // per_epoch)
    epoch = record.get("epoch")
    return int(epoch) if isinstance(epoch, int) else None


def _jsonable(value: Any) -> Any:
    """Plain JSON types (hparams may hold tuples, paths, numpy scalars); no absolute paths."""
    if isinstance(value, dict):  # "_instantiator" and the like are Lightning's bookkeeping
        return {str(k): _jsonable(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path) or (isinstance(value, str) and os.path.isabs(value)):
        return Path(value).name if Path(value).is_absolute() else str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
