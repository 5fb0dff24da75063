"""JSON answers of the service as bytes: numpy fields encoded one sample at a time, in Rust.

BentoML encodes an API's return value with ``json.dumps`` of a pydantic dump: for one sample
that is 1–2 ms of pure Python, more than the model, and for 512 samples seconds and a Python
float object per number at once (hundreds of MB). The service therefore answers with ready
bytes: :func:`json_bytes` hands each sample's numbers to ``pydantic_core.to_json`` (serde +
shortest round-trip floats) and joins the pieces, so at most one sample exists as Python lists at
a time. Floats are the float32 values exactly (``float(np.float32(x))``); NaN and infinities,
which JSON lacks, become ``null``.

:func:`quantity_fields` adds the SPEC §9 quantities of a prediction (``"quantities": true``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic_core import to_json

from microstrain.conventions import STRESS_CHANNELS
from microstrain.fields import fiber_fraction
from microstrain.quantities import quantities, reuss_bound, voigt_bound

JSON_MEDIA_TYPE = "application/json"


def _encode(value: Any) -> bytes:
    if isinstance(value, np.ndarray):
        if value.ndim >= 2:  # one sample at a time: bounded Python lists
            items = (to_json(item.tolist(), inf_nan_mode="null") for item in value)
            return b"[" + b",".join(items) + b"]"
        return to_json(value.tolist(), inf_nan_mode="null")
    if isinstance(value, np.generic):
        return to_json(value.item(), inf_nan_mode="null")
    if isinstance(value, dict):
        return json_bytes(value)
    return to_json(value, inf_nan_mode="null")


def json_bytes(answer: dict[str, Any]) -> bytes:
    """UTF-8 JSON of ``answer``; its values may be numpy arrays (any shape) or JSON values."""
    parts = [to_json(str(key)) + b":" + _encode(value) for key, value in answer.items()]
    return b"{" + b",".join(parts) + b"}"


def quantity_fields(
    youngs_modulus: np.ndarray, strain: np.ndarray, plane: str, applied_strain: float
) -> dict[str, Any]:
    """SPEC §9 quantities of strain ``[N, 3, 32, 32]`` at ū, for E ``[N, 1, 32, 32]`` MPa.

    ``stress`` float32 ``[N, 3, 32, 32]`` MPa (sigma_xx, sigma_yy, tau_xy), ``von_mises``
    float32 ``[N, 32, 32]`` MPa, ``E_x`` MPa, ``nu_xy``, ``max_von_mises`` MPa (each ``[N]``),
    and beside E_x the fiber fraction and its Voigt and Reuss values (MPa, ``[N]``), all computed
    by the shared core (:mod:`microstrain.quantities`) for ``plane``.
    """
    q = quantities(youngs_modulus, strain, plane, applied_strain)
    f = fiber_fraction(youngs_modulus).astype(np.float64)  # [N]
    return {
        "stress": q["stress"],
        "stress_channels": list(STRESS_CHANNELS),
        "von_mises": q["von_mises"],
        "E_x": q["E_x"],
        "nu_xy": q["nu_xy"],
        "max_von_mises": q["max_von_mises"],
        "fiber_fraction": f,
        "voigt_bound": voigt_bound(f, plane),
        "reuss_bound": reuss_bound(f, plane),
        "plane": plane,
    }
