"""Surrogate speed on CPU: onnxruntime vs PyTorch eager, beside the FE solve it replaces.

For each network: per-sample latency at batch 1 and per-sample time at batch 256 (throughput),
for intra-op thread counts 1 and 2, with onnxruntime (the exported graph, as `predict` and
serving run it) and with PyTorch eager (``torch.inference_mode``). The FE time per sample comes
from a dataset's ``solve_seconds`` (``--dataset``) or from a few samples generated now with
``python -m data_gen generate`` at the default fidelity (refined k = 4), on the same machine.

    .venv/bin/python benchmarks/bench_surrogate.py                      # random-weight course-unet
    .venv/bin/python benchmarks/bench_surrogate.py --arch course-cnn --arch res-unet
    .venv/bin/python benchmarks/bench_surrogate.py --checkpoint runs/x/best.ckpt --dataset d.h5
    .venv/bin/python benchmarks/bench_surrogate.py --models models/default models/periodic

Timings are medians of repeated calls after a warm-up; on a shared machine they are noisy.
Weights do not change the cost of these networks, so random weights time the architecture.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from microstrain.breakeven import median_seconds
from microstrain.conventions import FIBER, MATRIX, MODEL_FILE, ONNX_INPUT, ONNX_OUTPUT
from microstrain.dataset import summarize
from microstrain.hardware import cpu_description
from training.architectures import build, parameter_count
from training.model import Surrogate
from training.normalization import Normalizer
from training.onnx_graph import export_onnx
from training.physics import Physics


@dataclass
class Row:
    """Seconds per sample for one network and thread count."""

    network: str
    parameters: int
    threads: int
    ort_batch1: float
    ort_batched: float
    torch_batch1: float
    torch_batched: float


def networks(args: argparse.Namespace) -> list[tuple[str, Surrogate]]:
    """(label, surrogate) for the checkpoint or the requested architectures."""
    if args.checkpoint:
        model = Surrogate.from_checkpoint(args.checkpoint)
        return [(f"{model.net.__class__.__name__} (checkpoint)", model)]
    out: list[tuple[str, Surrogate]] = []
    for arch in args.arch or ["course-unet"]:
        torch.manual_seed(0)
        out.append((arch, Surrogate(build(arch), Normalizer(), Physics()).eval()))
    return out


def fe_seconds(args: argparse.Namespace, workdir: Path) -> tuple[float, str]:
    """Median FE solve time per sample and where it comes from."""
    path = args.dataset
    if path is None:
        path = workdir / "fe.h5"
        cmd = [sys.executable, "-m", "data_gen", "generate", "-n", str(args.fe_samples)]
        subprocess.run([*cmd, "-o", str(path), "--no-progress"], check=True, capture_output=True)
    timing = summarize(path)
    mode = timing.discretization
    source = (
        f"median solve_seconds of {timing.n_samples} samples "
        f"({mode.get('mode', '?')} k={mode.get('k', '?')}, "
        f"{'generated now' if args.dataset is None else Path(path).name})"
    )
    if timing.t_simulation is None:
        raise SystemExit(f"error: {path} records no solve times")
    return timing.t_simulation, source


def bench(args: argparse.Namespace) -> list[Row]:
    rng = np.random.default_rng(0)
    e = np.where(rng.random((args.batch, 1, 32, 32)) < 0.35, FIBER.youngs_modulus, 0.0)
    e = np.where(e == 0.0, MATRIX.youngs_modulus, e).astype(np.float32)  # [B, 1, 32, 32] MPa
    one, batch = torch.from_numpy(e[:1]), torch.from_numpy(e)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, module in networks(args):
            onnx_path = Path(tmp) / f"{label.split()[0]}-{MODEL_FILE}"
            export_onnx(module, onnx_path)
            params = parameter_count(module)
            for threads in args.threads:
                torch.set_num_threads(threads)
                opts = ort.SessionOptions()
                opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
                session = ort.InferenceSession(
                    str(onnx_path), opts, providers=["CPUExecutionProvider"]
                )

                def eager(x: torch.Tensor, m: torch.nn.Module = module) -> object:
                    with torch.inference_mode():
                        return m(x)

                def onnx(x: np.ndarray, s: ort.InferenceSession = session) -> object:
                    return s.run([ONNX_OUTPUT], {ONNX_INPUT: x})

                budget = args.budget
                rows.append(
                    Row(
                        network=label,
                        parameters=params,
                        threads=threads,
                        ort_batch1=median_seconds(lambda: onnx(e[:1]), 300, budget),
                        ort_batched=median_seconds(lambda: onnx(e), 30, budget) / args.batch,
                        torch_batch1=median_seconds(lambda: eager(one), 300, budget),
                        torch_batched=median_seconds(lambda: eager(batch), 30, budget) / args.batch,
                    )
                )
                print(f"  measured {label}, {threads} thread(s)", file=sys.stderr)
    return rows


def table(rows: list[Row], t_fe: float, fe_source: str, batch: int) -> str:
    ms = 1e3
    lines = [
        f"CPU: {cpu_description().removeprefix('CPU: ')}; torch {torch.__version__}, "
        f"onnxruntime {ort.__version__}",
        f"FE solve: {t_fe * ms:.1f} ms/sample ({fe_source})",
        "",
        f"| network | params | threads | ORT batch 1 (ms) | ORT batch {batch} (ms/sample) "
        f"| torch batch 1 (ms) | torch batch {batch} (ms/sample) | speed-up FE/ORT best |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        best = min(r.ort_batch1, r.ort_batched)
        lines.append(
            f"| {r.network} | {r.parameters:,} | {r.threads} "
            f"| {r.ort_batch1 * ms:.3f} | {r.ort_batched * ms:.3f} "
            f"| {r.torch_batch1 * ms:.3f} | {r.torch_batched * ms:.3f} | {t_fe / best:,.0f}× |"
        )
    return "\n".join(lines)


def model_latency(models: list[Path], threads: tuple[int, ...], rounds: int = 7) -> str:
    """One batch-1 prediction of each exported model directory (every output of its graph: a
    periodic model's three cases, C_eff and estimate), timed in interleaved rounds in one run so
    that the ratios to the first model share the machine's state; the median round wins."""
    from microstrain.surrogate import SurrogateModel

    rng = np.random.default_rng(0)
    mask = rng.random((1, 1, 32, 32)) < 0.35
    e = np.where(mask, FIBER.youngs_modulus, MATRIX.youngs_modulus).astype(np.float32)
    lines = [
        f"CPU: {cpu_description().removeprefix('CPU: ')}; onnxruntime {ort.__version__}",
        "",
        f"| model | outputs | threads | batch 1 (ms, median of {rounds} rounds) | × {models[0]} |",
        "|---|---|---:|---:|---:|",
    ]
    for t in threads:
        loaded = [SurrogateModel.load(m, intra_op_threads=t) for m in models]
        names = [[o.name for o in m.session.get_outputs()] for m in loaded]
        per_round: list[list[float]] = [[] for _ in loaded]
        for _ in range(rounds):
            for i, model in enumerate(loaded):

                def run(s: ort.InferenceSession = model.session, n: list[str] = names[i]) -> object:
                    return s.run(n, {ONNX_INPUT: e})

                per_round[i].append(median_seconds(run, 200, 0.3))
        medians = [float(np.median(r)) for r in per_round]
        for path, outs, median in zip(models, names, medians, strict=True):
            lines.append(
                f"| {path} | {', '.join(outs)} | {t} | {median * 1e3:.3f} "
                f"| {median / medians[0]:.2f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--models",
        type=Path,
        nargs="+",
        help="exported model directories: batch-1 latency of each, as ratios to the first "
        "(e.g. models/default models/periodic), instead of the network rows",
    )
    parser.add_argument("--arch", action="append", help="registry network (repeatable)")
    parser.add_argument("--checkpoint", type=Path, help="time a trained checkpoint instead")
    parser.add_argument("--dataset", type=Path, help="take the FE time from this dataset")
    parser.add_argument("--fe-samples", type=int, default=6, help="samples to generate for FE")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--budget", type=float, default=2.0, help="seconds per measurement")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args()
    if args.models:
        print(model_latency(args.models, tuple(args.threads)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        t_fe, fe_source = fe_seconds(args, Path(tmp))
    rows = bench(args)
    print(table(rows, t_fe, fe_source, args.batch))
    if args.json:
        args.json.write_text(
            json.dumps({"fe_seconds": t_fe, "rows": [asdict(r) for r in rows]}, indent=2)
        )


if __name__ == "__main__":
    main()
