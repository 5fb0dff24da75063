"""Periodic models (SPEC §11) in the §11 measures: candidates side by side, C_eff estimators.

Rows: the first-order MKS localization (the classical baseline; PyMKS's method, written here in
numpy: PyMKS 0.4 pins an old numpy/dask stack this environment does not take) and exported
periodic models (``--model``), on the test split of the training files (the split every periodic
run draws: ``--val-fraction``/``--test-fraction``/``--split-seed``, the configs' values) and on
each file of ``--family``. Measures (microstrain.measures.PeriodicErrorAccumulator): the field
errors per load case, their mean, and C_eff / E_1 / E_2 / ν_12 / G_12 errors against the files'
C_eff.

``--estimators`` also compares the two ways of taking C_eff from fields, on the exact FE fields of
the test split and on each model's predicted fields: the mean stress of the cases (symmetrized)
and the energy Gram matrix ⟨ε^(i) : C : ε^(j)⟩ / ū².

    .venv/bin/python benchmarks/bench_periodic.py --train data/periodic/train \\
        --family data/periodic/families/*.h5 --model models/periodic --estimators

First-order MKS: per load case j and strain component c, the fluctuation field is a convolution
of the fiber indicator m with an influence kernel α_jc, fitted per spatial frequency k by least
squares over the training cells: α_jc(k) = Σ_s conj(M_s(k)) Ε_s,jc(k) / Σ_s |M_s(k)|². The
mean of each case is set to ū e_j, as the model's is. It is exact for small phase contrast and
known to fail at ours (28): the row shows by how much.
"""

from __future__ import annotations

import argparse
import glob
import time
from pathlib import Path
from typing import Any

import numpy as np

from microstrain.conventions import DEFAULT_APPLIED_STRAIN, FIBER, MATRIX, N_CASES
from microstrain.dataset import load_samples, open_union
from microstrain.fields import fiber_mask
from microstrain.hardware import cpu_description
from microstrain.measures import PeriodicErrorAccumulator
from microstrain.quantities import effective_stiffness, plane_stiffness
from microstrain.surrogate import SurrogateModel
from training.data import split_indices

UBAR = DEFAULT_APPLIED_STRAIN


class FirstOrderMKS:
    """Fiber indicator -> the three unit cases by per-frequency influence coefficients."""

    def __init__(self) -> None:
        self.alpha: np.ndarray | None = None  # complex [3, 3, n, n]

    def fit(self, youngs_modulus: np.ndarray, cases: np.ndarray) -> FirstOrderMKS:
        """E ``[N, 1, n, n]`` MPa, unit cases ``[N, 3, 3, n, n]`` for ū."""
        m = np.fft.fft2(fiber_mask(youngs_modulus)[:, 0].astype(np.float64))  # [N, n, n]
        fields = np.fft.fft2(cases.astype(np.float64))  # [N, 3, 3, n, n]
        numerator = np.einsum("shw,sjchw->jchw", np.conj(m), fields)
        denominator = (np.abs(m) ** 2).sum(axis=0)  # [n, n]
        self.alpha = numerator / np.where(denominator > 0, denominator, 1.0)
        return self

    def predict(self, youngs_modulus: np.ndarray) -> np.ndarray:
        if self.alpha is None:
            raise RuntimeError("fit first")
        m = np.fft.fft2(fiber_mask(youngs_modulus)[:, 0].astype(np.float64))
        fields = np.fft.ifft2(self.alpha[None] * m[:, None, None]).real  # [N, 3, 3, n, n]
        fields -= fields.mean(axis=(-2, -1), keepdims=True)
        return (fields + UBAR * np.eye(N_CASES)[None, :, :, None, None]).astype(np.float32)


def energy_gram(youngs_modulus: np.ndarray, cases: np.ndarray, plane: str) -> np.ndarray:
    """⟨ε^(i) : C : ε^(j)⟩ / ū² ``[N, 3, 3]`` MPa (numpy twin of the periodic physics')."""
    fiber = fiber_mask(youngs_modulus)[:, 0]  # [N, n, n]
    c = np.where(
        fiber[..., None, None], plane_stiffness(FIBER, plane), plane_stiffness(MATRIX, plane)
    )  # [N, n, n, 3, 3]
    u = cases.astype(np.float64)
    gram = np.einsum("nichw,nhwcd,njdhw->nij", u, c, u)
    return 0.5 * (gram + gram.transpose(0, 2, 1)) / (u.shape[-1] * u.shape[-2] * UBAR * UBAR)


def relative_frobenius(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.linalg.norm(a - b, axis=(1, 2)) / np.linalg.norm(b, axis=(1, 2))


def score(
    predicted: np.ndarray, c_eff: np.ndarray | None, e: np.ndarray, ref: Any, plane: str
) -> dict[str, Any]:
    acc = PeriodicErrorAccumulator(plane)
    acc.update(e, predicted, ref.strain, c_eff, ref.c_eff)
    return acc.compute()


def row(name: str, where: str, m: dict[str, Any]) -> str:
    cells = [
        m["strain_relative_l2"],
        m["stress_relative_l2"],
        m["energy_norm_error"],
        m["C_eff_error_mean"],
        m["C_eff_error_max"],
        m["E_1_error_mean"],
        m["E_2_error_mean"],
        m["nu_12_error_mean"],
        m["G_12_error_mean"],
    ]
    return f"| {name} | {where} | {m['n']} | " + " | ".join(f"{100 * v:.2f}" for v in cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", nargs="+", default=["data/periodic/train"])
    parser.add_argument("--family", nargs="*", default=[])
    parser.add_argument("--model", nargs="*", default=[])
    parser.add_argument("--val-fraction", type=float, default=0.05)
    parser.add_argument("--test-fraction", type=float, default=0.05)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument(
        "--split-prefix",
        type=int,
        nargs="+",
        default=None,
        help="the configs' data.split_prefix, one count per addition of files after a model",
    )
    parser.add_argument("--estimators", action="store_true")
    args = parser.parse_args()

    union = open_union(args.train, boundary="periodic")
    train, _, test = split_indices(
        union.n, args.val_fraction, args.test_fraction, args.split_seed, args.split_prefix
    )
    e_train, s_train = union.read(np.sort(train))
    e_test, s_test = union.read(np.sort(test))
    plane = union.infos[0].plane

    class Ref:  # the test split with its C_eff (the mean stress of the FE fields)
        strain = s_test
        c_eff = effective_stiffness(e_test, s_test, plane, UBAR)

    files: dict[str, tuple[np.ndarray, Any]] = {"test split": (e_test, Ref)}
    for pattern in args.family:
        for path in sorted(glob.glob(pattern)):
            samples = load_samples(path, boundary="periodic")
            files[Path(path).stem] = (samples.youngs_modulus, samples)

    print(f"{cpu_description()}; train {len(train)} cells, test {len(test)}")
    columns = "strain | stress | energy | C_eff mean | C_eff max | E_1 | E_2 | ν_12 | G_12"
    print(f"| model | file | N | {columns} |")
    print("|" + "---|" * 12)
    started = time.perf_counter()
    mks = FirstOrderMKS().fit(e_train, s_train)
    fit_seconds = time.perf_counter() - started
    for where, (e, ref) in files.items():
        if e.shape[-1] != e_train.shape[-1]:  # its kernels are fitted at the training size
            continue
        pred = mks.predict(e)
        print(row("first-order MKS", where, score(pred, None, e, ref, plane)))
    models = [SurrogateModel.load(m) for m in args.model]
    predictions = {}
    for model in models:
        for where, (e, ref) in files.items():
            p = model.predict_periodic(e, batch_size=256)
            predictions[(model.name, where)] = p
            print(
                row(model.name, where, score(p.strain, p.c_eff.astype(np.float64), e, ref, plane))
            )
    print(f"MKS fit: {fit_seconds:.2f} s")

    if args.estimators:
        print(
            "\nC_eff from fields, relative Frobenius error against the file's C_eff (mean / max %)"
        )
        print("| fields | file | mean stress (symmetrized) | energy Gram |")
        print("|---|---|---|---|")
        for where, (e, ref) in files.items():
            estimators = {"exact FE (pixel-averaged)": ref.strain}
            for model in models:
                estimators[model.name] = predictions[(model.name, where)].strain
            for fields_name, fields in estimators.items():
                stress = effective_stiffness(e, fields, plane, UBAR)
                stress = 0.5 * (stress + stress.transpose(0, 2, 1))
                a = relative_frobenius(stress, ref.c_eff)
                b = relative_frobenius(energy_gram(e, fields, plane), ref.c_eff)
                print(
                    f"| {fields_name} | {where} | {100 * a.mean():.2f} / {100 * a.max():.2f} | "
                    f"{100 * b.mean():.2f} / {100 * b.max():.2f} |"
                )


if __name__ == "__main__":
    main()
