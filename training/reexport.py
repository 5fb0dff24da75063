"""``python -m training.reexport models/NAME``: a model's own weights in the graph this code writes.

When the export learns to write a faster graph of the same function (an order of operators that
commutes, say), a shipped model gets it without training again:

1. rebuild the :class:`~training.model.Surrogate` from the directory's ``weights.pt``, refused
   unless the card names its sha256 (``weights_sha256``) and the file has it;
2. export it, and refuse unless onnxruntime reproduces PyTorch within the export's own gate at
   the export's batch sizes and, for a periodic model, at every cell size the card offers;
3. refuse unless the new graph agrees with the model's present graph within the same gate
   (the same function, not merely the same weights);
4. time the new graph as the export does, and write ``model.onnx``, the card's graph facts, its
   T_surrogate and τ (the recorded T_data, T_train and T_simulation stay) and ``README.md``.

Everything is written into a staging copy of the directory that replaces it only when complete
(:func:`microstrain.files.staged_directory`), so a refusal leaves the model as it was.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from microstrain.conventions import CARD_FILE, GRID, MODEL_FILE
from microstrain.errors import MicrostrainError
from microstrain.files import staged_directory, write_json, write_text
from training.card import breakeven_of, model_readme, onnx_fields, surrogate_timing_source
from training.export import ExportConfig, time_graph, write_checked_graph
from training.model import Surrogate
from training.onnx_graph import ParityError
from training.recover_weights import compare_graphs, print_each
from training.weights import WEIGHTS_FILE, read_card


def reexport(model_dir: str | Path, config: ExportConfig | None = None) -> dict[str, Any]:
    """Re-export ``model_dir`` in place from its ``weights.pt``; returns what changed."""
    cfg = config or ExportConfig()
    directory = Path(model_dir)
    surrogate = Surrogate.from_checkpoint(directory)  # weights.pt, checked against the card
    card = read_card(directory)
    if "weights_sha256" not in card:
        raise MicrostrainError(
            f"{directory / CARD_FILE} names no weights_sha256: its {WEIGHTS_FILE} cannot be "
            "told to be the graph's (python -m training.recover_weights writes both)"
        )
    sides = tuple(int(n) for n in card.get("input_sizes", [GRID]))
    before = card["onnx"]["sha256"]
    with staged_directory(directory, force=True) as tmp:
        for item in directory.iterdir():
            if item.is_file():
                shutil.copy2(item, tmp / item.name)
        onnx_path = tmp / MODEL_FILE
        facts = write_checked_graph(surrogate, onnx_path, cfg, sides)
        agreement = {
            side: compare_graphs(directory / MODEL_FILE, onnx_path, side, relative=True)
            for side in sides
        }
        worst = max(max(by_output.values()) for by_output in agreement.values())
        if not worst <= cfg.parity_tolerance:
            raise ParityError(
                f"{directory}: the new graph differs from the present one by {worst:.3g} "
                f"(relative), above the export's gate {cfg.parity_tolerance:g}: not the same "
                "function; export it as a new model instead"
            )
        timing = time_graph(onnx_path, cfg)
        card["onnx"] = onnx_fields(facts)
        card.update(T_surrogate=timing.t_batch1, T_surrogate_batched=timing.t_batched)
        recorded = [card.get(k) for k in ("T_data", "T_train", "T_simulation")]
        if all(isinstance(v, int | float) for v in recorded):
            t_data, t_train, t_sim = (float(v) for v in recorded)  # type: ignore[arg-type]
            card.update(breakeven_of(t_data, t_train, t_sim, timing))
        card.setdefault("timing_hardware", {})["T_surrogate"] = timing.hardware
        card.setdefault("timing_sources", {})["T_surrogate"] = surrogate_timing_source(timing)
        write_json(tmp / CARD_FILE, card)
        write_text(tmp / "README.md", model_readme(card))
    return {
        "model": str(directory),
        "sha256_before": before,
        "sha256": card["onnx"]["sha256"],
        "max_rel_difference_to_before": {str(s): a for s, a in agreement.items()},
        "T_surrogate": card["T_surrogate"],
        "tau": card.get("tau"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.reexport", description=__doc__)
    parser.add_argument("models", nargs="+", type=Path, help="model directories")
    args = parser.parse_args(argv)
    return print_each(args.models, reexport)


if __name__ == "__main__":
    raise SystemExit(main())
