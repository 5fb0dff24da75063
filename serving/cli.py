"""Commands of the serving package, each owned by its own module."""

from __future__ import annotations

import typer

from serving.predict_cli import register as register_predict
from serving.serve_cli import register as register_serve


def register(app: typer.Typer) -> None:
    register_serve(app)
    register_predict(app)
