"""``python -m training.recover_weights models/NAME``: ``weights.pt`` from a model's graph.

A model directory exported before ``weights.pt`` existed holds its weights only in
``model.onnx``. This rebuilds its :class:`~training.model.Surrogate` from the graph's initializers
and the card's configuration (:meth:`Surrogate.from_onnx`), exports that surrogate again to a
temporary file with the export's own code, and compares the two graphs' predictions with
onnxruntime. Only when every output agrees bit for bit does it write ``weights.pt`` and add its
sha256 to the card (``weights_sha256``); ``model.onnx`` is never touched, so the card's sha256 of
the graph and every loader's check stay valid.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from microstrain.conventions import CARD_FILE, GRID, MODEL_FILE, ONNX_INPUT
from microstrain.errors import MicrostrainError
from microstrain.files import sha256_of, write_json
from microstrain.surrogate import SurrogateModel
from training.model import Surrogate
from training.onnx_graph import export_onnx, parity_inputs
from training.weights import WEIGHTS_FILE, save_weights

# the comparison batches: random two-phase images of fiber fraction 0.1-0.6, one sample, and
# an odd size (the graph's batch axis is symbolic)
CHECK_BATCHES = ((256, 11), (1, 5), (33, 9))


def compare_graphs(
    first: Path, second: Path, side: int = GRID, relative: bool = False
) -> dict[str, float]:
    """Largest |difference| of each output of two graphs on :data:`CHECK_BATCHES` of
    ``side`` × ``side`` cells; ``relative``: over the largest |output| of ``first``."""
    a, b = SurrogateModel.from_onnx(first).session, SurrogateModel.from_onnx(second).session
    names = [o.name for o in a.get_outputs()]
    if [o.name for o in b.get_outputs()] != names:
        raise MicrostrainError(f"{second} answers other outputs than {first}")
    worst = dict.fromkeys(names, 0.0)
    scale = dict.fromkeys(names, 0.0)
    for n, seed in CHECK_BATCHES:
        e = parity_inputs(n, seed, side)  # [n, 1, side, side] MPa
        for name, x, y in zip(
            names, a.run(names, {ONNX_INPUT: e}), b.run(names, {ONNX_INPUT: e}), strict=True
        ):
            worst[name] = max(worst[name], float(np.abs(x - y).max()))
            scale[name] = max(scale[name], float(np.abs(x).max()))
    if relative:
        return {name: worst[name] / scale[name] if scale[name] else worst[name] for name in names}
    return worst


def recover(model_dir: str | os.PathLike[str], write: bool = True) -> dict[str, Any]:
    """Rebuild, re-export and compare; with ``write`` and no difference, write ``weights.pt``
    and its sha256 into the card. Returns what was found."""
    directory = Path(model_dir)
    surrogate, config = Surrogate.from_onnx(directory)
    with tempfile.TemporaryDirectory() as tmp:
        again = Path(tmp) / MODEL_FILE
        export_onnx(surrogate, again)
        differences = compare_graphs(directory / MODEL_FILE, again)
    result: dict[str, Any] = {"model": str(directory), "max_abs_difference": differences}
    identical = all(v == 0.0 for v in differences.values())
    result["bit_identical"] = identical
    if write and identical:
        card_path = directory / CARD_FILE
        card = json.loads(card_path.read_text())
        before = sha256_of(directory / MODEL_FILE)
        weights = save_weights(surrogate.state_dict(), config, directory / WEIGHTS_FILE)
        card["weights_sha256"] = sha256_of(weights)
        write_json(card_path, card)
        assert sha256_of(directory / MODEL_FILE) == before  # the graph is never rewritten
        result["weights_sha256"] = card["weights_sha256"]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.recover_weights", description=__doc__)
    parser.add_argument("models", nargs="+", type=Path, help="model directories")
    parser.add_argument("--check", action="store_true", help="compare only, write nothing")
    args = parser.parse_args(argv)
    return print_each(args.models, lambda model: recover(model, write=not args.check))


def print_each(models: list[Path], action: Callable[[Path], dict[str, Any]]) -> int:
    """The command line of these model tools: ``action``'s answer as one JSON line per model;
    on the first refusal one ``error:`` line and exit status 1."""
    try:
        for model in models:
            print(json.dumps(action(model)))
    except MicrostrainError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
