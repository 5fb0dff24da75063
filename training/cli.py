"""Commands of the training package, each owned by its own module."""

from __future__ import annotations

import typer

from training.baselines.cli import register as register_baselines
from training.export_cli import register as register_export
from training.train_cli import register as register_train


def register(app: typer.Typer) -> None:
    register_train(app)
    register_export(app)
    register_baselines(app)
