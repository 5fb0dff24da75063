"""Command: ``microstrain baselines <experiment>`` (the lecture's other architectures).

Experiments: ``sine`` (fully connected, gradient-descent variants, Sobolev), ``strain`` (FC, GNN,
RNN against the CNN/U-Net candidates on a SPEC §4 dataset), ``dynamics`` (standard vs
Hamiltonian vs Lagrangian networks), ``all`` (every experiment, then one comparison report).
Each writes ``<out>/<experiment>/<experiment>.md`` with PNG figures and ``<experiment>.json``.
Torch is imported inside the command body so ``microstrain --help`` stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from microstrain.errors import MicrostrainError

EXPERIMENTS = ("sine", "strain", "dynamics", "all")
DEFAULT_OUT = Path("results/baselines")


def baselines(
    experiment: Annotated[str, typer.Argument(help="sine | strain | dynamics | all")],
    quick: Annotated[
        bool, typer.Option("--quick", help="few epochs / small models: a CI-size run")
    ] = False,
    out: Annotated[Path, typer.Option("--out", help="results folder")] = DEFAULT_OUT,
    json_file: Annotated[
        Path | None,
        typer.Option("--json", help="dynamics: also write {'models': {mlp, hnn, lnn}} here"),
    ] = None,
    data: Annotated[
        Path | None, typer.Option("--data", help="strain: SPEC §4 HDF5 dataset to compare on")
    ] = None,
    epochs: Annotated[
        int | None, typer.Option("--epochs", min=1, help="override the experiment's epochs")
    ] = None,
    train_limit: Annotated[
        int | None,
        typer.Option(
            "--train-limit", min=1, help="strain: train on the first N samples of the train split"
        ),
    ] = None,
    threads: Annotated[
        int, typer.Option("--threads", min=1, help="torch CPU threads (shared machines: 1)")
    ] = 1,
) -> None:
    """Run a baseline experiment and write its Markdown report with figures."""
    if experiment not in EXPERIMENTS:
        raise MicrostrainError(
            f"unknown experiment {experiment!r}; choose one of {', '.join(EXPERIMENTS)}"
        )
    if experiment in ("strain", "all") and data is None:
        raise MicrostrainError("the strain experiment needs --data FILE (a SPEC §4 dataset)")
    if data is not None and not data.is_file():
        raise MicrostrainError(f"dataset not found: {data}")
    out.mkdir(parents=True, exist_ok=True)  # so --json may point inside it
    if json_file is not None and not json_file.parent.is_dir():
        raise MicrostrainError(f"directory of --json does not exist: {json_file.parent}")

    import torch

    from training.baselines.report import combined_report, write_json

    torch.set_num_threads(threads)
    todo = ("sine", "dynamics", "strain") if experiment == "all" else (experiment,)
    for name in todo:
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        result = _run(name, folder, quick, epochs, data, train_limit)
        write_json(folder / f"{name}.json", result)
        if name == "dynamics" and json_file is not None:
            write_json(json_file, result)
        typer.echo(f"{name}: report written to {folder / (name + '.md')}")
    if experiment == "all":
        typer.echo(f"comparison report: {combined_report(out, todo)}")


def _run(
    name: str,
    folder: Path,
    quick: bool,
    epochs: int | None,
    data: Path | None,
    train_limit: int | None = None,
) -> dict:
    if name == "sine":
        from training.baselines import sine

        cfg = sine.with_epochs(sine.SineConfig.quick() if quick else sine.SineConfig(), epochs)
        return sine.run_sine(cfg, folder)
    if name == "dynamics":
        from training.baselines.dynamics import DynamicsConfig, run_dynamics, with_epochs
        from training.baselines.dynamics_report import write_dynamics_report

        dyn_cfg = with_epochs(DynamicsConfig.quick() if quick else DynamicsConfig(), epochs)
        run = run_dynamics(dyn_cfg)
        write_dynamics_report(run, folder)
        return run.results
    from training.baselines.strain import StrainBaselineConfig, run_strain

    assert data is not None
    strain_cfg = StrainBaselineConfig.quick() if quick else StrainBaselineConfig()
    return run_strain(strain_cfg.with_epochs(epochs).with_train_limit(train_limit), data, folder)


def register(app: typer.Typer) -> None:
    app.command("baselines")(baselines)
