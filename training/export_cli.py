"""Command: export (checkpoint -> models/<name>/)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def export(
    checkpoint: Annotated[
        Path, typer.Argument(help="Best checkpoint (.ckpt) of `train`; its run.json beside it.")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Model directory to create, e.g. models/mine/.")
    ],
    name: Annotated[
        str | None, typer.Option(help="Model name in the card (default: directory name).")
    ] = None,
    version: Annotated[
        str | None, typer.Option(help="Free-text version (default: UTC date and time).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing model directory.")] = False,
    error_estimate: Annotated[
        bool | None,
        typer.Option(
            "--error-estimate/--no-error-estimate",
            help="Give a symmetrized model the second output error_estimate (the mirror's "
            "disagreement). Default: on when each half was trained by itself "
            "(symmetrize_training false), the case where it tracks the error (docs/training.md).",
            show_default=False,
        ),
    ] = None,
    judge_on: Annotated[
        list[Path] | None,
        typer.Option(
            "--judge-on",
            help="SPEC §4 file (an evaluation family, a held-out set) to record the model's "
            "SPEC §9 measures on in the card; repeatable.",
        ),
    ] = None,
) -> None:
    """Export a checkpoint to ONNX + card.json (metrics, times, τ), refused unless onnxruntime
    matches PyTorch. Reads only the checkpoint and its run record, not the dataset."""
    from microstrain.breakeven import format_tau
    from microstrain.surrogate import SurrogateModel
    from training.export import ExportConfig, export_checkpoint

    card = export_checkpoint(
        checkpoint,
        output,
        name=name,
        version=version,
        force=force,
        judge_on=judge_on,
        config=ExportConfig(error_estimate=error_estimate),
    )
    parity = card["onnx"]["parity_max_rel_error"]
    typer.echo(f"wrote {output / 'model.onnx'} and card.json (ONNX vs PyTorch: {parity:.2g})")
    for split, values in card["metrics"].items():  # SPEC §9: per sample, then the mean
        parts = [("strain", "strain_relative_l2"), ("stress", "stress_relative_l2")]
        # a periodic model's: the cases' field measures and C_eff (E_x needs a free edge)
        periodic = "C_eff_error_mean" in values
        last = ("C_eff", "C_eff_error_mean") if periodic else ("E_x", "E_x_error_mean")
        parts += [("energy", "energy_norm_error"), last]
        shown = ", ".join(f"{label} {100 * values[k]:.2f}%" for label, k in parts if k in values)
        typer.echo(f"{split}: {shown}")
    for stem, measures in card.get("evaluation", {}).items():
        typer.echo(
            f"{stem}: strain {100 * measures['strain_relative_l2']:.2f}%, stress "
            f"{100 * measures['stress_relative_l2']:.2f}%, energy "
            f"{100 * measures['energy_norm_error']:.2f}%, "
            + (
                f"C_eff {100 * measures['C_eff_error_mean']:.2f}%"  # periodic (SPEC §11)
                if "C_eff_error_mean" in measures
                else f"E_x {100 * measures['E_x_error_mean']:.2f}%"
            )
        )
    timing = (
        f"T_surrogate {card['T_surrogate']:.3g} s (batch 1) / "
        f"{card['T_surrogate_batched']:.3g} s (batched), T_train {card['T_train']:.4g} s"
    )
    if "tau" in card:
        timing += (
            f", T_simulation {card['T_simulation']:.4g} s: tau = {format_tau(card['tau'])} "
            f"(batch 1), {format_tau(card['tau_batched'])} (batched)"
        )
    typer.echo(timing)
    caveat = SurrogateModel.load(output).estimate_caveat
    if caveat:
        typer.echo(f"warning: {caveat}", err=True)


def register(app: typer.Typer) -> None:
    app.command("export")(export)
