"""Commands: export (checkpoint -> models/<name>/) and tau (breakeven report)."""

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


def tau(
    model_dir: Annotated[Path, typer.Argument(help="Exported model directory.")],
    dataset: Annotated[
        Path | None,
        typer.Option(help="HDF5 dataset with solve_seconds (default: the card's training file)."),
    ] = None,
    checkpoint: Annotated[
        Path | None, typer.Option(help="Checkpoint to take T_train from (default: the card).")
    ] = None,
    threads: Annotated[
        list[int] | None,
        typer.Option(help="onnxruntime intra-op thread counts to try (repeatable)."),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Batch size of the batched timing.")] = 256,
) -> None:
    """Breakeven τ = (T_data + T_train) / (T_simulation − T_surrogate): tau.json/md/png + card."""
    from microstrain.errors import InputError
    from training.tau import format_tau, run_tau

    if batch_size < 1 or any(t < 1 for t in threads or ()):
        raise InputError("--batch-size and --threads must be positive")
    report, files = run_tau(
        model_dir, dataset, checkpoint, tuple(threads) if threads else None, batch_size
    )
    typer.echo(
        f"T_data {report.T_data:.4g} s, T_train {report.T_train:.4g} s, "
        f"T_simulation {report.T_simulation:.4g} s/sample, T_surrogate "
        f"{report.T_surrogate:.3g} s (batch 1) / {report.T_surrogate_batched:.3g} s (batched)"
    )
    test = report.metrics.get("test") or report.metrics.get("val") or {}
    err = f", held-out relative L2 {100 * test['overall']:.2f}%" if "overall" in test else ""
    typer.echo(
        f"tau = {format_tau(report.tau)} (batch 1), {format_tau(report.tau_batched)} (batched); "
        f"speed-up {report.speedup:,.0f}x / {report.speedup_batched:,.0f}x{err}"
    )
    if report.dataset.get("matches_training_data") is False:
        typer.echo(
            f"warning: {report.dataset['file']} is not the file the model was trained on; "
            "T_data and T_simulation describe that file",
            err=True,
        )
    typer.echo("wrote " + ", ".join(str(p) for p in files.values()))


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("tau")(tau)
