"""Callbacks for the DDP test: which training samples each rank saw, per epoch; a stalled rank.

Loaded by the `microstrain train` processes of tests/training/test_ddp.py through
``--trainer.callbacks+=ddp_recorder.SeenSamples`` (this directory on PYTHONPATH). A sample is
known by its fiber mask, read the same way whether or not it was x-mirrored (:func:`sample_key`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl

from microstrain.fields import fiber_mask


def sample_key(youngs_modulus: np.ndarray) -> str:
    """One E map ``[1, 32, 32]`` (MPa) -> the same text for it and for its x-mirror."""
    mask = fiber_mask(youngs_modulus)
    return min(np.packbits(m).tobytes().hex() for m in (mask, mask[..., ::-1].copy()))


class SeenSamples(pl.Callback):
    """Write ``seen_rank<R>.json``: per epoch, the keys of the training samples of every batch."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)
        self.seen: dict[int, list[list[str]]] = {}

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        e = batch[0].detach().cpu().numpy()  # [B, 1, 32, 32]
        keys = [sample_key(sample) for sample in e]
        self.seen.setdefault(trainer.current_epoch, []).append(keys)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"seen_rank{trainer.global_rank}.json"
        path.write_text(json.dumps({"world_size": trainer.world_size, "epochs": self.seen}))


class StallRankOne(pl.Callback):
    """Rank 1 stops answering at the end of the first training epoch (a rank stuck elsewhere):
    rank 0 then waits in the epoch's first collective, which rank 1 never joins.

    Each rank writes ``rank<R>.pid``; rank 1 writes ``stalled`` just before it stops.
    """

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / f"rank{trainer.global_rank}.pid").write_text(str(os.getpid()))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_rank == 1:
            (self.out_dir / "stalled").write_text("")
            time.sleep(600)  # ended by the other rank or the test, never by itself in time
