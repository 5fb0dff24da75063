"""Commands: ``train`` (LightningCLI, see :mod:`training.fit`) and ``learning-curve``.

Module-level imports stay light; torch and Lightning are imported inside the command bodies.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from microstrain.errors import MicrostrainError

# Spellings a user is likely to type, mapped to the LightningCLI option names.
_ALIASES = {"--overfit-one": "--overfit_one=true", "--ckpt-path": "--ckpt_path"}


def _lightning_args(args: list[str]) -> list[str]:
    out = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if key == "--overfit-one":
            out.append(f"--overfit_one={value or 'true'}")
        elif key == "--allow-incomplete":  # the spelling the dataset reader's refusal suggests
            out.append(f"--data.allow_incomplete={value or 'true'}")
        elif key in _ALIASES:
            out.append(_ALIASES[key] + sep + value)
        else:
            out.append(arg)
    return out


def train(ctx: typer.Context) -> None:
    """Train a strain network (LightningCLI; `microstrain train --help` lists every option).

    Example: microstrain train --config configs/res-unet.yaml --data.path data/train.h5
    """
    from training.fit import main

    main(_lightning_args(list(ctx.args)))


def learning_curve(
    data: Annotated[Path, typer.Option("--data", help="Dataset file (.h5, SPEC §4).")],
    sizes: Annotated[
        str, typer.Option(help="Comma-separated training-set sizes m.")
    ] = "4,16,64,256",
    arch: Annotated[str, typer.Option(help="Registry name of the network.")] = "course-cnn",
    epochs: Annotated[
        int, typer.Option(help="Epochs per run (gradient steps scale with m).")
    ] = 100,
    min_steps: Annotated[
        int, typer.Option(help="At least this many gradient steps per run (small m).")
    ] = 500,
    weight_decay: Annotated[
        float, typer.Option(help="L2 regularization of the regularized runs.")
    ] = 1e-3,
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 1e-3,
    batch_size: Annotated[int, typer.Option(help="Batch size.")] = 16,
    val_fraction: Annotated[float, typer.Option(help="Validation fraction.")] = 0.1,
    test_fraction: Annotated[float, typer.Option(help="Test fraction.")] = 0.1,
    split_seed: Annotated[int, typer.Option(help="Split seed.")] = 0,
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Folder for table (.md, .csv) and plot (.png).")
    ] = Path("results/learning_curve"),
) -> None:
    """Validation error vs training-set size m, with and without regularization (lecture)."""
    try:
        parsed = [int(s) for s in sizes.split(",") if s.strip()]
    except ValueError:
        raise MicrostrainError(
            f"--sizes must be integers separated by commas, got {sizes!r}"
        ) from None
    if not parsed or min(parsed) < 1:
        raise MicrostrainError("--sizes needs at least one positive size")
    from training.learning_curve import LearningCurveConfig, run_learning_curve

    config = LearningCurveConfig(
        data=str(data),
        sizes=tuple(parsed),
        arch=arch,
        epochs=epochs,
        min_steps=min_steps,
        weight_decay=weight_decay,
        lr=lr,
        batch_size=batch_size,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        split_seed=split_seed,
    )
    run_learning_curve(config, output)


def register(app: typer.Typer) -> None:
    app.command(
        "train",
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
        add_help_option=False,
    )(train)
    app.command("learning-curve")(learning_curve)
