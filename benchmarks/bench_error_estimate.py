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
from microstrain.scoring import estimate_quality
from microstrain.surrogate import ERROR_ESTIMATE_WARNING, SurrogateModel

CHUNK = 256  # samples per onnxruntime call


def measure(model: SurrogateModel, path: Path) -> dict[str, np.ndarray]:
    """The per-sample arrays of one file: the model's estimate and its true energy-norm and
    stress errors, each ``[N]``."""
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
    return {
        "estimate": estimate.astype(np.float64),
        "energy": true["energy_norm_error"],
        "stress": true["stress_relative_l2"],
    }


def row(name: str, arrays: dict[str, np.ndarray]) -> dict[str, object]:
    """The row of one file, or of several pooled: the estimate's quality as ``score_file``
    reports it (:func:`microstrain.scoring.estimate_quality`), its ρ against the stress error,
    and the median true error of the flagged samples beside the others'."""
    estimate, energy = arrays["estimate"], arrays["energy"]
    flagged = estimate > ERROR_ESTIMATE_WARNING
    return {
        "file": name,
        "n": len(estimate),
        **estimate_quality(estimate, energy),
        "spearman_stress": spearman(estimate, arrays["stress"]),
        "median_energy_error_flagged": float(np.median(energy[flagged])) if flagged.any() else None,
        "median_energy_error_unflagged": float(np.median(energy[~flagged]))
        if (~flagged).any()
        else None,
    }


def pooled(per_file: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The arrays of several files as one (ranks across files: their error levels differ)."""
    return {k: np.concatenate([a[k] for a in per_file]) for k in per_file[0]}


def rho(value: object) -> str:
    return "—" if value is None else f"{float(value):.3f}"  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="exported model directory (symmetrized)")
    parser.add_argument("files", type=Path, nargs="+", help="SPEC §4 dataset files")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args(argv)
    try:
        model = SurrogateModel.load(args.model)
        per_file = [measure(model, f) for f in args.files]
    except MicrostrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    rows = [row(str(f), a) for f, a in zip(args.files, per_file, strict=True)]
    if len(rows) > 1:
        rows.append(row("all files (pooled)", pooled(per_file)))
    print(f"model {model.name} {model.version}; warning threshold {ERROR_ESTIMATE_WARNING:.0%}")
    print(
        f"{'file':<40} {'N':>6} {'ρ energy':>9} {'ρ stress':>9} {'med est':>8} "
        f"{'med err':>8} {'est/err':>8} {'flagged':>8}"
    )
    for r in rows:
        print(
            f"{Path(str(r['file'])).name:<40} {r['n']:>6} {rho(r['spearman_energy_norm']):>9} "
            f"{rho(r['spearman_stress']):>9} {r['median_estimate']:>8.2%} "
            f"{r['median_energy_norm_error']:>8.2%} {r['median_estimate_over_error']:>8.2f} "
            f"{r['flagged']:>8}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
