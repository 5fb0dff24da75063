"""Fixtures for the training tests: a small stand-in SPEC §4 file and limited torch threads.

The file is written by ``support.datasets`` with the core's writer; its strain is a cheap smooth
function of the modulus, NOT a solution of elasticity, so these tests exercise plumbing (reading,
splitting, normalizing, training, recording, exporting). Accuracy claims belong to real data.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from support.datasets import write_standin_dataset

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def standin_h5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 stand-in samples (plumbing only)."""
    return write_standin_dataset(tmp_path_factory.mktemp("data") / "standin.h5")
