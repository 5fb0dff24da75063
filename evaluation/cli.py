"""Commands of the evaluation package: evaluate (the SPEC §9 measures of a model on datasets)
and tau (the breakeven report of an exported model)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def tau(
    model_dir: Annotated[Path, typer.Argument(help="Exported model directory.")],
    dataset: Annotated[
        Path | None,
        typer.Option(
            help="Take T_data and T_simulation from this HDF5 dataset (solve_seconds, "
            "wall_seconds) instead of the card; with --measure its images are the ones timed."
        ),
    ] = None,
    measure: Annotated[
        bool,
        typer.Option(
            "--measure",
            help="Measure T_simulation (FE solves in the solver process /verify uses) and "
            "T_surrogate (onnxruntime) now, in one run on this machine, instead of taking "
            "the card's.",
        ),
    ] = False,
    threads: Annotated[
        list[int] | None,
        typer.Option(
            help="With --measure: onnxruntime intra-op thread counts to try (repeatable)."
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(help="With --measure: batch size of the batched timing.")
    ] = 256,
    fe_samples: Annotated[
        int, typer.Option(help="With --measure: single-sample FE solves to time (median).")
    ] = 8,
) -> None:
    """Breakeven τ = (T_data + T_train) / (T_simulation − T_surrogate): tau.json, tau.md, tau.png.

    Reports the times and τ the model card holds; --dataset and --measure replace some of them.
    The card and the model are never changed.
    """
    from evaluation.tau import run_tau
    from microstrain.breakeven import format_tau
    from microstrain.surrogate import SurrogateModel

    report, files = run_tau(
        model_dir,
        dataset,
        measure,
        tuple(threads) if threads else None,
        batch_size,
        fe_samples=fe_samples,
    )
    typer.echo(
        f"T_data {report.T_data:.4g} s, T_train {report.T_train:.4g} s, "
        f"T_simulation {report.T_simulation:.4g} s/sample, T_surrogate "
        f"{report.T_surrogate:.3g} s (batch 1) / {report.T_surrogate_batched:.3g} s (batched)"
    )
    held_out = report.metrics.get("test") or report.metrics.get("val") or {}
    error = held_out.get("strain_relative_l2")
    err = f", held-out strain error {100 * error:.2f}%" if isinstance(error, int | float) else ""
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
    caveat = SurrogateModel.load(model_dir).estimate_caveat
    if caveat:
        typer.echo(f"warning: {caveat}", err=True)
    typer.echo("wrote " + ", ".join(str(p) for p in files.values()))


def evaluate(
    model_dir: Annotated[Path, typer.Argument(help="Exported model directory.")],
    files: Annotated[
        list[str], typer.Argument(help="SPEC §4 dataset files (.h5) to judge the model on.")
    ],
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the measures as JSON (SPEC §10).")
    ] = None,
    allow_incomplete: Annotated[
        bool,
        typer.Option(help="Evaluate the complete samples of an interrupted generate run."),
    ] = False,
) -> None:
    """Judge a model in the SPEC §9 measures (strain, stress, energy norm, E_x, ν_xy, peak von
    Mises) on each file: a table, and --json for scripts. Another ū is rescaled; another plane or
    load case is refused."""
    from rich.console import Console
    from rich.table import Table

    from evaluation.evaluate import evaluate, table_headers, table_rows

    report = evaluate(model_dir, files, allow_incomplete, json_out)
    model = report["model"]
    table = Table(title=f"model '{model['name']}' (sha256 {model['sha256'][:12]}): error, mean")
    for header in table_headers(report):
        table.add_column(header, justify="left" if header == "file" else "right")
    for row in table_rows(report):
        table.add_row(*row)
    Console(width=160).print(table)
    if json_out is not None:
        typer.echo(f"wrote {json_out}")


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate)
    app.command("tau")(tau)
