"""Command: predict (offline prediction with an exported model, onnxruntime only).

Same inputs as ``microstrain solve`` (E map in MPa or 0/1 fiber mask, ``[32, 32]``,
``[N, 32, 32]`` or ``[N, 1, 32, 32]``, ``.npy`` or ``.h5``) and as ``POST /predict_image`` (a
32×32 PNG mask picture, :func:`serving.images.mask_from_png`); ū obeys the one rule of
:func:`microstrain.fields.validate_applied_strain`, ``--plane`` the one of REST
(:func:`serving.validation.check_plane`). Output strain ``[N, 3, 32, 32]``
(eps_xx, eps_yy, gamma_xy) as ``.npy`` or ``.h5``, for the requested applied strain ū. An ``.h5``
output also holds the SPEC §9 quantities (stress, von_mises, E_x, nu_xy, max_von_mises) in the
model's plane (card ``training_data.load_case.plane``), written by
:func:`microstrain.outputs.save_strain` as ``solve -o x.h5`` writes them; ``--png`` draws strain
and, beneath, von Mises and stress. A model with an error estimate (a symmetrized one: the
graph's ``error_estimate`` output) adds it: a dataset ``error_estimate`` ``[N]`` in an ``.h5``
output, a one-line summary on the console, and a warning for samples above
:data:`microstrain.surrogate.ERROR_ESTIMATE_WARNING`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from microstrain.conventions import (
    DEFAULT_APPLIED_STRAIN,
    MAX_ABS_APPLIED_STRAIN,
    STRAIN_CHANNELS,
)
from microstrain.domain import out_of_distribution
from microstrain.errors import InputError, MicrostrainError
from microstrain.fields import load_microstructures, validate_applied_strain
from microstrain.outputs import save_periodic, save_strain
from microstrain.quantities import (
    engineering_constants,
    macro_strain_fields,
    macro_strain_of_stress,
)
from microstrain.surrogate import ERROR_ESTIMATE_WARNING, SurrogateModel, save_error_estimate
from serving.images import mask_from_png
from serving.validation import check_plane, error_estimate_warnings

OUTPUT_SUFFIXES = (".npy", ".h5", ".hdf5")
CHUNK = 256  # samples per onnxruntime call: bounds the memory of intermediate activations


def predict(
    model_dir: Annotated[
        Path, typer.Argument(help="Exported model directory (model.onnx + card.json).")
    ],
    input_path: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT",
            help="E maps (MPa) or 0/1 fiber masks, .npy or .h5, shaped [32,32], [N,32,32] or "
            "[N,1,32,32]; or a 32x32 PNG picture of a mask (gray >= 128 is fiber).",
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Strain [N,3,32,32] as .npy or .h5.")
    ],
    applied_strain: Annotated[
        float,
        typer.Option(
            "--applied-strain", "-u", help="Prescribed displacement ū on x = 1; 0 < |ū| ≤ 1."
        ),
    ] = DEFAULT_APPLIED_STRAIN,
    plane: Annotated[
        str | None,
        typer.Option(
            help="Check that the model was trained in this plane (stress or strain); a model "
            "answers only its own plane (its card).",
            show_default=False,
        ),
    ] = None,
    png: Annotated[
        Path | None,
        typer.Option(
            help="Also draw one sample: E and the predicted strain, von Mises and stress (a "
            "periodic model: the macro load's fields, else its three unit cases)."
        ),
    ] = None,
    sample: Annotated[int, typer.Option(help="Which sample the --png shows.")] = 0,
    macro_strain: Annotated[
        str | None,
        typer.Option(
            "--macro-strain",
            metavar="EXX,EYY,GXY",
            help="Periodic model: the fields of this macro strain (engineering shear), by "
            "superposition of the three unit cases.",
            show_default=False,
        ),
    ] = None,
    macro_stress: Annotated[
        str | None,
        typer.Option(
            "--macro-stress",
            metavar="SXX,SYY,TXY",
            help="Periodic model: the fields under this macro stress (MPa): macro strain "
            "C_eff^-1 S, then superposition.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Predict strain fields with an exported surrogate (no FE solve, no torch); an .h5 output
    also holds stress, von Mises, E_x, nu_xy and the peak von Mises stress."""
    if output.suffix.lower() not in OUTPUT_SUFFIXES:
        raise MicrostrainError(f"unsupported output format '{output.suffix}': use .npy or .h5")
    if png is not None and png.suffix.lower() != ".png":
        raise MicrostrainError(f"--png must name a .png file, got '{png.name}'")
    for target in (output, png):
        if target is not None and not target.parent.is_dir():
            raise MicrostrainError(f"output directory does not exist: {target.parent}")
    try:
        validate_applied_strain(applied_strain)
    except InputError as exc:
        raise InputError(f"--applied-strain: {exc}") from None
    model = SurrogateModel.load(model_dir)  # refuses a model.onnx that does not match its card
    youngs_modulus = load_input(input_path, larger=model.is_periodic)  # [N, 1, n, n] MPa
    if not 0 <= sample < youngs_modulus.shape[0]:
        raise InputError(
            f"--sample {sample} out of range: the input holds {youngs_modulus.shape[0]}"
        )
    check_plane(plane, model.name, model.plane, "--plane", "leave --plane out")
    plane = model.plane
    if model.is_periodic:
        load = periodic_load(macro_strain, macro_stress)
        predict_periodic(model, youngs_modulus, output, applied_strain, load, png, sample)
        return
    if macro_strain is not None or macro_stress is not None:
        raise InputError(
            f"--macro-strain and --macro-stress need a periodic model; '{model.name}' is "
            "the uniaxial test of SPEC §1 (use --applied-strain)"
        )
    # [N, 3, 32, 32] and [N] (None when the model has no estimate)
    strain, estimate = model.predict_with_estimate(youngs_modulus, applied_strain, CHUNK)
    warnings = out_of_distribution(youngs_modulus, model.card)
    attrs = {
        "model": model.name,
        "model_version": model.version,
        "model_sha256": model.sha256,
        "channels": json.dumps(list(STRAIN_CHANNELS)),
    }
    save_strain(output, strain, youngs_modulus, attrs, plane, applied_strain)
    if estimate is not None:
        warnings.extend(error_estimate_warnings(estimate))
        if output.suffix.lower() != ".npy":
            save_error_estimate(output, estimate)  # dataset "error_estimate" [N]
    if png is not None:
        title = f"surrogate '{model.name}', sample #{sample}, applied strain ū = {applied_strain:g}"
        one = slice(sample, sample + 1)
        plot_prediction(png, youngs_modulus[one], strain[one], plane, applied_strain, title)
    for line in warnings:
        typer.echo(f"warning: {line}", err=True)
    n = strain.shape[0]
    typer.echo(f"wrote {output} ({n} sample{'s' * (n != 1)}, model {model.name} {model.version})")
    if estimate is not None:
        typer.echo(estimate_summary(estimate))
    if png is not None:
        typer.echo(f"wrote {png}")


def load_input(path: Path, larger: bool = False) -> np.ndarray:
    """E ``[N, 1, 32, 32]`` MPa of INPUT: ``.npy``/``.h5`` as ``solve`` reads them (``larger``:
    any n x n, n a multiple of 32, for a periodic model), a ``.png`` mask picture as
    ``POST /predict_image`` reads it."""
    if path.suffix.lower() != ".png":
        return load_microstructures(path, larger=larger)
    if not path.is_file():
        raise MicrostrainError(f"input file not found: {path}")
    return mask_from_png(path.read_bytes())


def estimate_summary(estimate: np.ndarray) -> str:
    """One console line on the error estimate ``[N]`` (relative, the mirror's disagreement)."""
    worst = int(np.argmax(estimate))
    return (
        f"error estimate (x-mirror disagreement, energy norm): median {np.median(estimate):.2%}, "
        f"max {estimate[worst]:.2%} (sample #{worst}); warning above {ERROR_ESTIMATE_WARNING:.0%}"
    )


def plot_prediction(
    path: Path,
    youngs_modulus: np.ndarray,
    strain: np.ndarray,
    plane: str,
    applied_strain: float,
    title: str,
) -> None:
    """One sample as the specimen stands (:func:`serving.images.prediction_figure`), at ``path``."""
    from microstrain import plots
    from serving.images import PICTURE_DPI, prediction_figure

    fig = prediction_figure(youngs_modulus, strain, plane, applied_strain, title)
    plots.save(fig, path, dpi=PICTURE_DPI)


# --- periodic models (SPEC §11) -------------------------------------------------------------
def periodic_load(
    macro_strain: str | None, macro_stress: str | None
) -> tuple[str, np.ndarray] | None:
    """(``"macro_strain"`` or ``"macro_stress"``, its three values) of the options, or None."""
    if macro_strain is not None and macro_stress is not None:
        raise InputError("give either --macro-strain or --macro-stress, not both")
    for name, text in (("macro_strain", macro_strain), ("macro_stress", macro_stress)):
        if text is None:
            continue
        option = "--" + name.replace("_", "-")
        try:
            values = np.array([float(v) for v in text.split(",")], dtype=np.float64)
        except ValueError:
            raise InputError(f"{option} must be three numbers XX,YY,XY; got '{text}'") from None
        if values.shape != (3,) or not np.isfinite(values).all():
            raise InputError(f"{option} must be three finite numbers XX,YY,XY; got '{text}'")
        if name == "macro_strain" and np.abs(values).max() > MAX_ABS_APPLIED_STRAIN:
            raise InputError(
                f"{option}: small strain only (|component| <= {MAX_ABS_APPLIED_STRAIN:g})"
            )
        return name, values
    return None


def predict_periodic(
    model: SurrogateModel,
    youngs_modulus: np.ndarray,
    output: Path,
    applied_strain: float,
    load: tuple[str, np.ndarray] | None,
    png: Path | None = None,
    sample: int = 0,
) -> None:
    """The unit cases and C_eff of a periodic model (and a macro load's fields) to ``output``
    (:func:`microstrain.outputs.save_periodic`), with the out-of-distribution, error-estimate
    and calibration warnings; ``png`` draws ``sample``: the load's fields, else the three cases."""
    prediction = model.predict_periodic(youngs_modulus, applied_strain, CHUNK)
    c_eff = prediction.c_eff.astype(np.float64)  # [N, 3, 3] MPa
    n = youngs_modulus.shape[0]
    macro_strain = macro_stress = None
    if load is not None and load[0] == "macro_stress":
        macro_stress = np.broadcast_to(load[1], (n, 3))
        macro_strain = macro_strain_of_stress(c_eff, macro_stress)  # [N, 3]: Ē = C_eff⁻¹ Σ̄
    elif load is not None:
        macro_strain = np.broadcast_to(load[1], (n, 3))
    attrs = {
        "model": model.name,
        "model_version": model.version,
        "model_sha256": model.sha256,
        "channels": json.dumps(list(STRAIN_CHANNELS)),
    }
    save_periodic(
        output,
        youngs_modulus,
        prediction.strain,
        c_eff,
        model.plane,
        applied_strain,
        attrs,
        macro_strain=macro_strain,
        macro_stress=macro_stress,
    )
    estimate = prediction.error_estimate
    warnings = out_of_distribution(youngs_modulus, model.card)
    if estimate is not None:
        warnings.extend(error_estimate_warnings(estimate))
        if output.suffix.lower() != ".npy":
            save_error_estimate(output, estimate)
    if model.estimate_caveat:
        warnings.append(model.estimate_caveat)
    if png is not None:
        plot_periodic(png, model, youngs_modulus, prediction.strain, applied_strain, sample, load,
                      None if macro_strain is None else macro_strain[sample])  # fmt: skip
    for line in warnings:
        typer.echo(f"warning: {line}", err=True)
    constants = engineering_constants(c_eff)
    what = "the unit cases xx, yy, xy" if load is None else f"{load[0].replace('_', ' ')}"
    typer.echo(f"wrote {output} ({n} cell{'s' * (n != 1)}: {what}, C_eff; model {model.name})")
    typer.echo(
        "sample 0: "
        + ", ".join(f"{k} {constants[k][0]:.4g}" for k in ("E_1", "E_2", "nu_12", "G_12"))
        + (
            f"; macro strain {np.array2string(macro_strain[0], precision=4)}"
            if macro_strain is not None
            else ""
        )
    )
    if png is not None:
        typer.echo(f"wrote {png}")


def plot_periodic(
    path: Path,
    model: SurrogateModel,
    youngs_modulus: np.ndarray,
    strain_cases: np.ndarray,
    applied_strain: float,
    sample: int,
    load: tuple[str, np.ndarray] | None,
    macro_strain: np.ndarray | None,
) -> None:
    """One cell of a periodic prediction at ``path``: under a load, its strain over its stress
    and von Mises; without one, a row per unit case (as ``solve --png`` draws FE's)."""
    from microstrain import plots
    from serving.images import PICTURE_DPI

    one = slice(sample, sample + 1)
    head = f"surrogate '{model.name}', cell #{sample} (periodic, x right, y up)"
    head += f", plane {model.plane}"
    if load is None or macro_strain is None:
        fields = strain_cases[one]  # [1, 3, 3, n, n]
        title = f"{head}: unit macro strains xx, yy, xy of size {applied_strain:g}"
    else:
        # [1, 3, n, n]
        fields = macro_strain_fields(strain_cases[one], macro_strain, applied_strain)
        given = np.array2string(np.asarray(load[1]), precision=4)
        title = f"{head}: {load[0].replace('_', ' ')} {given}" + (
            f" MPa, macro strain {np.array2string(macro_strain, precision=4)}"
            if load[0] == "macro_stress"
            else ""
        )
    rows = plots.solution_rows(
        youngs_modulus[one], fields, model.plane, applied_strain, first=sample
    )
    plots.save(plots.figure(rows, title), path, dpi=PICTURE_DPI)


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)
