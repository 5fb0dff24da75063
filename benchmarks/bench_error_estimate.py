"""How well a model's error estimate ranks its true errors (issue 12: the goal is ρ ≥ 0.6).

The estimate is the ``error_estimate`` output of a symmetrized model (the x-mirror disagreement
‖f(E) − R f(M E)‖ / ‖f_sym(E)‖ in the energy norm, training/physics.py). For each SPEC §4 file:
N, Spearman's rank correlation ρ of the estimate against the true per-sample energy-norm error
and stress error (:func:`microstrain.measures.per_sample_measures`, in the file's plane), the
median of estimate / true energy-norm error (to calibrate the warning threshold), and how many
samples the service would flag (estimate above ``ERROR_ESTIMATE_WARNING``) with their median true
error beside the others'.

    .venv/bin/python benchmarks/bench_error_estimate.py models/default data/test.h5 data/f*.h5
    .venv/bin/python benchmarks/bench_error_estimate.py MODEL FILES... --json out.json

onnxruntime and numpy only (Spearman's ρ: :func:`microstrain.measures.spearman`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from microstrain.dataset import load_samples
from microstrain.errors import MicrostrainError
from microstrain.measures import per_sample_measures, spearman
from microstrain.surrogate import ERROR_ESTIMATE_WARNING, SurrogateModel

CHUNK = 256  # samples per onnxruntime call
ARRAYS = ("estimate", "energy", "stress")


def measure(model: SurrogateModel, path: Path) -> dict[str, object]:
    """The row of one file (see the module docstring)."""
    samples = load_samples(path)
    strain, estimate = model.predict_with_estimate(samples.youngs_modulus, batch_size=CHUNK)
    if estimate is None:
        raise MicrostrainError(f"{model.directory} has no error estimate (not symmetrized)")
    true = per_sample_measures(
        samples.youngs_modulus.astype(np.float64),
        strain.astype(np.float64),
        samples.strain.astype(np.float64),
        samples.info.plane,
    )
    return row(str(path), estimate, true["energy_norm_error"], true["stress_relative_l2"])


def row(name: str, estimate: np.ndarray, energy: np.ndarray, stress: np.ndarray) -> dict:
    """The row of one file, or of several pooled (``name`` "all files")."""
    flagged = estimate > ERROR_ESTIMATE_WARNING
    return {
        "file": name,
        "n": len(estimate),
        "spearman_energy": spearman(estimate.astype(np.float64), energy),
        "spearman_stress": spearman(estimate.astype(np.float64), stress),
        "median_estimate": float(np.median(estimate)),
        "median_energy_error": float(np.nanmedian(energy)),
        "median_ratio": float(np.nanmedian(estimate / energy)),
        "flagged": int(flagged.sum()),
        "estimate": estimate,  # the arrays, for the pooled row (not printed or written)
        "energy": energy,
        "stress": stress,
        "median_energy_error_flagged": float(np.median(energy[flagged])) if flagged.any() else None,
        "median_energy_error_unflagged": float(np.median(energy[~flagged]))
        if (~flagged).any()
        else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="exported model directory (symmetrized)")
    parser.add_argument("files", type=Path, nargs="+", help="SPEC §4 dataset files")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    try:
        model = SurrogateModel.load(args.model)
        rows = [measure(model, f) for f in args.files]
        if len(rows) > 1:  # ranks across files too: the families differ in their error level
            pooled = {k: np.concatenate([r.pop(k) for r in rows]) for k in ARRAYS}
            rows.append(row("all files (pooled)", **pooled))
        for r in rows:
            for k in ARRAYS:
                r.pop(k, None)
    except MicrostrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"model {model.name} {model.version}; warning threshold {ERROR_ESTIMATE_WARNING:.0%}")
    print(
        f"{'file':<40} {'N':>6} {'ρ energy':>9} {'ρ stress':>9} {'med est':>8} "
        f"{'med err':>8} {'est/err':>8} {'flagged':>8}"
    )
    for r in rows:
        print(
            f"{Path(str(r['file'])).name:<40} {r['n']:>6} {r['spearman_energy']:>9.3f} "
            f"{r['spearman_stress']:>9.3f} {r['median_estimate']:>8.2%} "
            f"{r['median_energy_error']:>8.2%} {r['median_ratio']:>8.2f} {r['flagged']:>8}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
