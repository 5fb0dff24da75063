"""Commands of data_gen: generate, solve, inspect, convergence."""

from __future__ import annotations

import typer

from microstrain.errors import MicrostrainError


def register(app: typer.Typer) -> None:
    for name in (
        "generate",
        "solve",
        "inspect",
        "convergence",
    ):

        def _not_yet(name: str = name) -> None:
            raise MicrostrainError(f"'{name}' is not yet available")

        app.command(name, help=f"{name} (not yet available)")(_not_yet)
