"""Recurrent baseline: a bidirectional LSTM/GRU reading the image column by column along x.

The load is applied along x (SPEC §1), so the sequence runs from the clamped left edge (column 0,
x = 0) to the loaded right edge (column 31); each step sees one whole column of 32 pixels. The
bidirectional pass lets every column's output depend on the material on both sides of it, as the
elastic equilibrium does. Per step the hidden states are mapped back to that column's 3 × 32
strain values.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from microstrain.conventions import GRID, N_STRAIN


@dataclass(frozen=True)
class RecurrentStrainConfig:
    cell: str = "lstm"  # "lstm" | "gru"
    hidden: int = 128  # hidden state per direction
    layers: int = 2
    dropout: float = 0.0


class RecurrentStrain(nn.Module):
    """[N, 1, 32, 32] → [N, 3, 32, 32]; sequence = 32 columns, features = 32 pixels each."""

    def __init__(self, config: RecurrentStrainConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or RecurrentStrainConfig()
        cells = {"lstm": nn.LSTM, "gru": nn.GRU}
        if c.cell not in cells:
            raise ValueError(f"unknown recurrent cell {c.cell!r}; choose lstm or gru")
        self.rnn = cells[c.cell](
            input_size=GRID,
            hidden_size=c.hidden,
            num_layers=c.layers,
            batch_first=True,
            bidirectional=True,
            dropout=c.dropout if c.layers > 1 else 0.0,
        )
        self.head = nn.Linear(2 * c.hidden, N_STRAIN * GRID)

    def forward(self, youngs_modulus: torch.Tensor) -> torch.Tensor:
        n = youngs_modulus.shape[0]
        columns = youngs_modulus[:, 0].transpose(1, 2)  # [N, 32 columns (x), 32 rows]
        h, _ = self.rnn(columns)  # [N, 32, 2·hidden]
        out = self.head(h).reshape(n, GRID, N_STRAIN, GRID)  # [N, column, channel, row]
        return out.permute(0, 2, 3, 1)  # [N, 3, 32 rows, 32 columns]


def build_rnn_strain(
    cell: str = "lstm", hidden: int = 128, layers: int = 2, dropout: float = 0.0
) -> RecurrentStrain:
    """Registry builder for ``rnn-strain``."""
    return RecurrentStrain(RecurrentStrainConfig(cell, hidden, layers, dropout))
