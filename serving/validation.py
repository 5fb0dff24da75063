"""Checks of REST requests, as pure functions that need no server (SPEC §2, §8).

BentoML 1.4 parses the JSON body with pydantic, which lets ``NaN``/``Infinity`` literals through,
does not reject ragged or oversized arrays, and never limits the body. So the service hands the
parsed fields to these functions; each problem raises :class:`RequestError` with the HTTP status
and a one-line message naming the field. Shape, finiteness and value-set rules are the shared
ones of :func:`microstrain.fields.to_youngs_modulus`; :func:`youngs_modulus` accepts the common
valid case with a few vectorized comparisons (``to_youngs_modulus`` sorts every value, which
costs more than the model for a batch of 512) and leaves everything else, and every message, to
it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from microstrain.conventions import DEFAULT_APPLIED_STRAIN, FIBER, GRID, MATRIX, MAX_BATCH, PLANES
from microstrain.errors import InputError, MicrostrainError
from microstrain.fields import (
    InputKind,
    mask_to_youngs_modulus,
    to_youngs_modulus,
    validate_applied_strain,
)
from microstrain.surrogate import ERROR_ESTIMATE_WARNING


class RequestError(MicrostrainError):
    """A request the client must fix; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Microstructures:
    """Validated input of one request."""

    youngs_modulus: np.ndarray  # float32 [N, 1, 32, 32], MPa
    source: str  # "E", "fiber_mask" or "body": where the client sent it


def _nested_depth(value: Any) -> int:
    depth = 0
    while isinstance(value, list) and value:
        depth, value = depth + 1, value[0]
    return depth


def batch_size(value: Any) -> int:
    """N of a nested-list ``[N, 32, 32]`` or ``[N, 1, 32, 32]``, 1 for anything else (cheap:
    it looks down the first elements only; validation comes later)."""
    return _leading_count(value, _nested_depth(value)) if isinstance(value, list) else 1


def _leading_count(value: list[Any], depth: int) -> int:
    """N of an ``[N, 32, 32]`` or ``[N, 1, 32, 32]`` nested list, 1 for ``[32, 32]``."""
    return len(value) if depth >= 3 else 1


def microstructures(
    E: Any = None, fiber_mask: Any = None, sizes: tuple[int, ...] = (GRID,)
) -> Microstructures:
    """Exactly one of ``E`` (MPa) or ``fiber_mask`` (0/1), nested lists of numbers.

    Returns float32 ``[N, 1, n, n]`` E maps, n one of ``sizes`` (the model's input sizes).
    Raises :class:`RequestError` (422) for both or neither field, non-numeric or ragged arrays,
    bad shapes, NaN/inf, values outside the two moduli (or 0/1 for masks) and batches over
    ``MAX_BATCH``.
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
    e = youngs_modulus(arr, "E" if field == "E" else "mask", name=field, sizes=sizes)
    return Microstructures(e, field)


def youngs_modulus(
    arr: np.ndarray, kind: InputKind, name: str, sizes: tuple[int, ...] = (GRID,)
) -> np.ndarray:
    """A numeric array -> float32 ``[N, 1, n, n]`` MPa under the rules of ``to_youngs_modulus``.

    The valid layouts with exactly the two moduli (or 0/1 for a mask) are converted here; any
    other array goes to :func:`microstrain.fields.to_youngs_modulus`, which accepts it by the
    same rules or raises the shared message (as a 422 :class:`RequestError`). n is one of
    ``sizes``: 32 for a uniaxial model, the card's sizes for a periodic one.
    """
    side = _side(arr)
    e = _plain_case(arr, kind, side) if side in sizes else None
    if e is None:
        try:
            e = to_youngs_modulus(arr, kind, name=name, larger=sizes != (GRID,))
        except InputError as exc:
            raise RequestError(_sizes_message(str(exc), sizes)) from None
        if e.shape[-1] not in sizes:
            raise RequestError(_sizes_message(f"{name} has shape {list(arr.shape)}", sizes))
    if e.shape[0] > MAX_BATCH:
        raise RequestError(f"{name} holds {e.shape[0]} microstructures; at most {MAX_BATCH}")
    return e


def _side(arr: np.ndarray) -> int:
    """n of an array shaped ``[..., n, n]`` (0 for anything else)."""
    return int(arr.shape[-1]) if arr.ndim >= 2 and arr.shape[-1] == arr.shape[-2] else 0


def _sizes_message(message: str, sizes: tuple[int, ...]) -> str:
    """The shared message, with the sizes a model of several sizes takes (a shape problem)."""
    if sizes == (GRID,) or "shape" not in message:
        return message
    listed = " or ".join(f"{n}x{n}" for n in sizes)
    return f"{message}; this model takes microstructures of {listed} pixels"


def _plain_case(arr: np.ndarray, kind: InputKind, side: int = GRID) -> np.ndarray | None:
    """float32 ``[N, 1, n, n]`` MPa (n = ``side``) if ``arr`` is a well-formed E map or mask,
    else None."""
    if arr.ndim == 2:
        n = 1
    elif arr.ndim == 3 or (arr.ndim == 4 and arr.shape[1] == 1):
        n = arr.shape[0]
    else:
        return None
    if n == 0 or arr.shape[-2:] != (side, side) or arr.dtype.kind not in "fiub":
        return None
    shaped = arr.reshape(n, 1, side, side)
    # NaN compares unequal to everything: it fails both tests and goes to the full check
    if kind != "E" and bool(((shaped == 0) | (shaped == 1)).all()):
        return mask_to_youngs_modulus(shaped)
    if kind != "mask" and bool(
        ((shaped == MATRIX.youngs_modulus) | (shaped == FIBER.youngs_modulus)).all()
    ):
        return shaped.astype(np.float32)
    return None


def from_npy_array(arr: np.ndarray, sizes: tuple[int, ...] = (GRID,)) -> Microstructures:
    """The array of a ``.npy`` body (E in MPa or a 0/1 mask, told apart by the values)."""
    return Microstructures(youngs_modulus(arr, "auto", name="the .npy array", sizes=sizes), "body")


def applied_strain(value: float | None) -> float:
    """ū (the default when None) by the core's one rule (:func:`validate_applied_strain`:
    finite, non-zero, ``|ū| ≤ 1``); the model predicts for 0.1 and results scale linearly."""
    if value is None:
        return DEFAULT_APPLIED_STRAIN
    try:
        return validate_applied_strain(value)
    except InputError as exc:
        raise RequestError(f"'applied_strain': {exc}") from None


def check_plane(
    plane: str | None,
    model: str,
    model_plane: str,
    field: str = "'plane'",
    hint: str = "leave 'plane' out, or name a model trained in that plane: GET /models",
) -> None:
    """A request may state the plane it means; it must be the model's, which the message names
    (a model answers only the plane it was trained in). One rule for REST and ``predict``."""
    if plane is None or plane == model_plane:
        return
    if plane not in PLANES:
        raise RequestError(f"{field} must be one of {', '.join(PLANES)}; got {plane!r}")
    raise RequestError(
        f"model {model!r} was trained in plane {model_plane}; it cannot answer plane {plane} "
        f"({hint})"
    )


def error_estimate_warnings(
    estimate: np.ndarray, threshold: float = ERROR_ESTIMATE_WARNING
) -> list[str]:
    """One warning line (or none) for the samples whose error estimate ``[N]`` (a relative error,
    the model's mirror disagreement) exceeds ``threshold``; shared by REST and ``predict``."""
    values = np.asarray(estimate, dtype=np.float64)  # [N]
    high = np.flatnonzero(~(values <= threshold))  # NaN counts as high
    if high.size == 0:
        return []
    listed = ", ".join(f"#{i}" for i in high[:10]) + (", …" if high.size > 10 else "")
    worst = float(np.max(values[high]))  # NaN if any is NaN
    return [
        f"error estimate above {threshold:.0%} for {high.size} of {len(values)} sample"
        f"{'s' * (len(values) != 1)} ({listed}; highest {worst:.1%}): these predictions may be "
        "inaccurate; check them against the FE solver (/verify or `microstrain solve`)"
    ]
