"""The ``microstrain`` command: the composition root that wires every stage's subcommands.

It sits on its own layer above the stages (``data_gen``, ``training``, ``evaluation``,
``serving``), which share only the core ``microstrain`` package (import-linter's layers contract
in ``pyproject.toml``).
Each stage's ``cli.register(app)`` adds its commands; those modules import only light things at
module level (typer, numpy, the core) so ``microstrain --help`` starts fast. Heavy imports
(dolfinx, torch, onnxruntime, bentoml) happen inside the command bodies.
"""

from __future__ import annotations

from collections.abc import Sequence

import typer

from microstrain.app import make_app, run


def build_app() -> typer.Typer:
    from data_gen.cli import register as register_data_gen
    from evaluation.cli import register as register_evaluation
    from serving.cli import register as register_serving
    from training.cli import register as register_training

    return make_app(
        register_data_gen,
        register_training,
        register_evaluation,
        register_serving,
        help="Surrogate models for the strain field of fiber/matrix composites "
        "(FE data generation, training, ONNX export, breakeven report, REST serving).",
    )


def main(argv: Sequence[str] | None = None) -> None:
    run(build_app(), argv)


if __name__ == "__main__":
    main()
