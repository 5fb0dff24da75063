"""Process settings of the service, read from the environment (light: no bentoml import).

``microstrain serve`` sets them for the BentoML workers it starts; ``bentoml serve`` users and
container images set them directly.
"""

from __future__ import annotations

import os

from microstrain.errors import MicrostrainError
from microstrain.hardware import usable_cores

WORKERS_ENV_VAR = "MICROSTRAIN_WORKERS"  # worker processes, default 1


def configured_workers() -> int:
    raw = os.environ.get(WORKERS_ENV_VAR, "1")
    try:
        return max(1, int(raw))
    except ValueError:
        raise MicrostrainError(f"{WORKERS_ENV_VAR}={raw!r} is not a whole number") from None


def intra_op_threads(workers: int) -> int:
    """onnxruntime threads per worker: the cores shared out, at least one (ORT ignores OMP_*)."""
    return max(1, usable_cores() // workers)
