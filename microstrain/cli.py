"""The ``microstrain`` command: one entry point, subcommands contributed by each package.

Each package's ``cli.register(app)`` adds its commands; those modules import only light things at
module level (typer, numpy, this package) so ``microstrain --help`` starts fast. Heavy imports
(dolfinx, torch, onnxruntime, bentoml) happen inside the command bodies.

User errors (:class:`~microstrain.errors.MicrostrainError`) print one line and exit 1.
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


def build_app() -> typer.Typer:
    from data_gen.cli import register as register_data_gen
    from serving.cli import register as register_serving
    from training.cli import register as register_training

    return make_app(
        register_data_gen,
        register_training,
        register_serving,
        help="Surrogate models for the strain field of fiber/matrix composites "
        "(FE data generation, training, ONNX export, breakeven report, REST serving).",
    )


def main(argv: Sequence[str] | None = None) -> None:
    run(build_app(), argv)


if __name__ == "__main__":
    main()
