"""Command: export (checkpoint -> models/<name>/)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def export(
    checkpoint: Annotated[Path, typer.Argument(help="Lightning checkpoint (.ckpt) of `train`.")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Model directory to create, e.g. models/mine/.")
    ],
    name: Annotated[
        str | None, typer.Option(help="Model name in the card (default: directory name).")
    ] = None,
    version: Annotated[
        str | None, typer.Option(help="Free-text version (default: UTC date and time).")
    ] = None,
    dataset: Annotated[
        Path | None,
        typer.Option(help="Training HDF5 file, if it moved since training (same split)."),
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing model directory.")] = False,
) -> None:
    """Export a checkpoint to ONNX + card.json, refused unless onnxruntime matches PyTorch."""
    from training.export import export_checkpoint

    card = export_checkpoint(
        checkpoint, output, name=name, version=version, dataset=dataset, force=force
    )
    parity = card["onnx"]["parity_max_rel_error"]
    typer.echo(f"wrote {output / 'model.onnx'} and card.json (ONNX vs PyTorch: {parity:.2g})")
    for split, values in card["metrics"].items():
        per_channel = ", ".join(
            f"{k} {100 * values[k]:.2f}%" for k in ("eps_xx", "eps_yy", "gamma_xy")
        )
        typer.echo(
            f"{split}: relative L2 {100 * values['overall']:.2f}% ({per_channel}; "
            f"fiber {100 * values['fiber']:.2f}%, matrix {100 * values['matrix']:.2f}%)"
        )


def register(app: typer.Typer) -> None:
    app.command("export")(export)
