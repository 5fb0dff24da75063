"""Cost of the SPEC §9 quantities and error measures beside the ONNX prediction they follow.

For a batch of 512 random microstructures: the ONNX prediction with ``models/default`` (as
``predict`` runs it, onnxruntime choosing its threads), then ``microstrain.quantities.quantities``
and ``microstrain.measures.error_measures`` of that prediction in both planes, each as ms per
batch and as a fraction of the prediction time. The reference of the measures is the prediction
with 1 % noise: the cost does not depend on the values.

    .venv/bin/python benchmarks/bench_quantities.py [--batch 512] [--model models/default]

Medians of repeated calls after a warm-up; on a shared machine they are noisy.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial

import numpy as np

from microstrain.conventions import FIBER, GRID, MATRIX
from microstrain.hardware import cpu_description
from microstrain.measures import error_measures
from microstrain.quantities import quantities
from microstrain.surrogate import SurrogateModel, default_model_dir


def median_ms(run: Callable[[], object], repeats: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--model", default=None, help="model directory (default: models/default)")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    fiber = rng.random((args.batch, 1, GRID, GRID)) < 0.4
    E = np.where(fiber, FIBER.youngs_modulus, MATRIX.youngs_modulus).astype(np.float32)
    model = SurrogateModel.load(args.model or default_model_dir())
    pred = model.predict(E)
    ref = (pred * (1 + 0.01 * rng.standard_normal(pred.shape))).astype(np.float32)
    u = 0.1

    t_onnx = median_ms(lambda: model.predict(E), args.repeats)
    rows = [("ONNX prediction", t_onnx)]
    for plane in ("stress", "strain"):
        q_ms = median_ms(partial(quantities, E, pred, plane, u), 3 * args.repeats)
        m_ms = median_ms(partial(error_measures, E, pred, ref, plane, u), 3 * args.repeats)
        rows += [(f"quantities ({plane})", q_ms), (f"error measures ({plane})", m_ms)]

    print(f"{cpu_description()}; model {model.name} ({model.directory}); batch {args.batch}")
    print(f"| {'step':<26} | {'ms / batch':>10} | {'µs / sample':>11} | {'/ ONNX':>7} |")
    print(f"|{'-' * 28}|{'-' * 12}|{'-' * 13}|{'-' * 9}|")
    for name, ms in rows:
        ratio = f"{100 * ms / t_onnx:6.1f}%"
        print(f"| {name:<26} | {ms:10.1f} | {1e3 * ms / args.batch:11.1f} | {ratio:>7} |")


if __name__ == "__main__":
    main()
