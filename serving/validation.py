"""Checks of REST requests, as pure functions that need no server (SPEC §2, §8).

BentoML 1.4 parses the JSON body with pydantic, which lets ``NaN``/``Infinity`` literals through,
does not reject ragged or oversized arrays, and never limits the body. So the service hands the
parsed fields to these functions; each problem raises :class:`RequestError` with the HTTP status
and a one-line message naming the field. Shape, finiteness and value-set rules are the shared
ones of :func:`microstrain.fields.to_youngs_modulus`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from microstrain.conventions import MAX_BATCH
from microstrain.errors import InputError, MicrostrainError
from microstrain.fields import to_youngs_modulus

# Small-strain theory: the model is linear in ū and only meaningful for small strains; |ū| = 1
# (100 %) is a generous ceiling that still catches unit mistakes (percent instead of fraction).
MAX_ABS_APPLIED_STRAIN = 1.0


class RequestError(MicrostrainError):
    """A request the client must fix; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Microstructures:
    """Validated input of one request."""

    youngs_modulus: np.ndarray  # float32 [N, 1, 32, 32], MPa
    source: str  # "E" or "fiber_mask": the field the client sent


def _nested_depth(value: Any) -> int:
    depth = 0
    while isinstance(value, list) and value:
        depth, value = depth + 1, value[0]
    return depth


def _leading_count(value: list[Any], depth: int) -> int:
    """N of an ``[N, 32, 32]`` or ``[N, 1, 32, 32]`` nested list, 1 for ``[32, 32]``."""
    return len(value) if depth >= 3 else 1


def microstructures(E: Any = None, fiber_mask: Any = None) -> Microstructures:
    """Exactly one of ``E`` (MPa) or ``fiber_mask`` (0/1), nested lists of numbers.

    Returns float32 ``[N, 1, 32, 32]`` E maps. Raises :class:`RequestError` (422) for both or
    neither field, non-numeric or ragged arrays, bad shapes, NaN/inf, values outside the two
    moduli (or 0/1 for masks) and batches over ``MAX_BATCH``.
    """
    if E is not None and fiber_mask is not None:
        raise RequestError("give either 'E' or 'fiber_mask', not both")
    if E is None and fiber_mask is None:
        raise RequestError("missing input: give 'E' (Young's modulus, MPa) or 'fiber_mask' (0/1)")
    field, data = ("E", E) if E is not None else ("fiber_mask", fiber_mask)
    if not isinstance(data, list):
        raise RequestError(f"'{field}' must be a nested list of numbers")
    # count before converting: a huge batch is refused without building the array
    n = _leading_count(data, _nested_depth(data))
    if n > MAX_BATCH:
        raise RequestError(f"'{field}' holds {n} microstructures; at most {MAX_BATCH} per request")
    try:
        arr = np.asarray(data)
    except ValueError:  # numpy >= 1.24 refuses ragged nesting
        raise RequestError(f"'{field}' is ragged: every row must have the same length") from None
    if arr.dtype.kind not in "iuf":
        # strings, booleans, nulls or mixed nesting: numpy would quietly coerce some of them
        raise RequestError(f"'{field}' must hold only numbers (found {arr.dtype.kind!r} values)")
    try:
        e = to_youngs_modulus(arr, "E" if field == "E" else "mask", name=field)
    except InputError as exc:
        raise RequestError(str(exc)) from None
    if e.shape[0] > MAX_BATCH:
        raise RequestError(f"'{field}' holds {e.shape[0]} microstructures; at most {MAX_BATCH}")
    return Microstructures(e, field)


def applied_strain(value: float) -> float:
    """ū: finite, non-zero, ``|ū| ≤ 1``; the model predicts for 0.1 and results scale linearly."""
    if not math.isfinite(value):
        raise RequestError("'applied_strain' must be a finite number")
    if value == 0 or abs(value) > MAX_ABS_APPLIED_STRAIN:
        raise RequestError(
            f"'applied_strain' = {value:g} is outside 0 < |ū| ≤ {MAX_ABS_APPLIED_STRAIN:g} "
            "(small-strain theory; give a fraction, not percent)"
        )
    return float(value)
