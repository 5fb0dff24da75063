"""Building blocks of the command line: app construction and the error contract.

User errors (:class:`~microstrain.errors.MicrostrainError`) print one line and exit 1.
Kept apart from :mod:`microstrain_cli` (which wires all packages together) so that
``python -m data_gen`` and friends depend on nothing but their own package.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence

import typer

from microstrain.errors import MicrostrainError


def make_app(*registrars: Callable[[typer.Typer], None], help: str | None = None) -> typer.Typer:
    app = typer.Typer(
        help=help,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    for register in registrars:
        register(app)
    return app


def run(app: typer.Typer, argv: Sequence[str] | None = None) -> None:
    """Run a typer app; user errors become one line on stderr and exit status 1."""
    try:
        app(args=list(argv) if argv is not None else None, prog_name=_prog_name())
    except MicrostrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)


def _prog_name() -> str:
    name = sys.argv[0].rsplit("/", 1)[-1] if sys.argv and sys.argv[0] else "microstrain"
    return "microstrain" if name.endswith(".py") or name == "__main__" else name
