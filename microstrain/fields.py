"""Validation and conversion of user microstructures and strain fields (SPEC §2).

Every user-facing boundary (``solve``, ``predict``, REST) accepts a Young's modulus map in MPa or a
0/1 fiber mask, shaped ``[32, 32]``, ``[N, 32, 32]`` or ``[N, 1, 32, 32]``; they all go through
:func:`to_youngs_modulus` so the rules and messages are the same everywhere.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import numpy as np

from microstrain.conventions import (
    DS_E,
    FIBER,
    GRID,
    MATRIX,
    MAX_ABS_APPLIED_STRAIN,
    Material,
)
from microstrain.errors import InputError, MicrostrainError

InputKind = Literal["auto", "E", "mask"]
MODULI = (MATRIX.youngs_modulus, FIBER.youngs_modulus)
MASK_KEYS = ("fiber_mask", "mask")


def _describe(values: np.ndarray) -> str:
    shown = ", ".join(f"{v:g}" for v in values[:4])
    return shown + (", ..." if values.size > 4 else "")


def to_youngs_modulus(
    data: object,
    kind: InputKind = "auto",
    name: str = "input",
    *,
    fiber: Material = FIBER,
    matrix: Material = MATRIX,
    larger: bool = False,
) -> np.ndarray:
    """Validate a microstructure and return Young's modulus in MPa, float32 ``[N, 1, n, n]``.

    ``kind="auto"`` decides by the values: only {0, 1} is a fiber mask, only the two phases'
    moduli (``matrix``, ``fiber``; the lecture's {3000, 85000} by default) an E map. n is 32;
    with ``larger`` any multiple of 32 (a periodic RVE, SPEC §11). Raises :class:`InputError`
    naming the problem (shape, non-finite values, value set).
    """
    try:
        arr = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name} is not a numeric array ({exc})") from None
    given = list(arr.shape)
    if arr.ndim == 2:
        arr = arr[None, None]
    elif arr.ndim == 3:
        arr = arr[:, None]
    elif arr.ndim != 4 or arr.shape[1] != 1:
        raise InputError(
            f"{name} has shape {list(arr.shape)}; expected [32, 32], [N, 32, 32] or [N, 1, 32, 32]"
        )
    side = arr.shape[-1]
    if larger and (arr.shape[-2] != side or side < GRID or side % GRID):
        raise InputError(
            f"{name} has shape {given}; each microstructure must be n x n pixels with n a "
            f"multiple of {GRID}"
        )
    if not larger and arr.shape[-2:] != (GRID, GRID):
        raise InputError(
            f"{name} has shape {given}; each microstructure must be {GRID}x{GRID} pixels"
        )
    if arr.shape[0] == 0:
        raise InputError(f"{name} holds no microstructure (N = 0)")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} contains NaN or infinite values")
    moduli = (matrix.youngs_modulus, fiber.youngs_modulus)
    values = np.unique(arr)
    is_mask = bool(np.all(np.isin(values, (0.0, 1.0))))
    is_modulus = bool(np.all(np.isin(values, moduli)))
    if kind == "mask" or (kind == "auto" and is_mask):
        if not is_mask:
            raise InputError(
                f"{name}: a fiber mask may only hold 0 (matrix) and 1 (fiber); "
                f"found {_describe(values[~np.isin(values, (0.0, 1.0))])}"
            )
        return mask_to_youngs_modulus(arr, fiber=fiber, matrix=matrix)
    if not is_modulus:
        bad = values[~np.isin(values, moduli)]
        expected = f"{matrix.youngs_modulus:g} (matrix) and {fiber.youngs_modulus:g} (fiber) MPa"
        hint = "" if kind == "E" else ", or a fiber mask of 0 and 1"
        raise InputError(
            f"{name}: E values must be exactly {expected}{hint}; found {_describe(bad)}"
        )
    return arr.astype(np.float32)


def mask_to_youngs_modulus(
    mask: np.ndarray, *, fiber: Material = FIBER, matrix: Material = MATRIX
) -> np.ndarray:
    """0/1 fiber mask (any shape) -> Young's modulus in MPa, float32, same shape."""
    return np.where(np.asarray(mask) > 0.5, fiber.youngs_modulus, matrix.youngs_modulus).astype(
        np.float32
    )


def fiber_mask(
    youngs_modulus: np.ndarray, *, fiber: Material = FIBER, matrix: Material = MATRIX
) -> np.ndarray:
    """Young's modulus map (MPa) -> bool fiber mask of the same shape (the nearer phase)."""
    threshold = 0.5 * (fiber.youngs_modulus + matrix.youngs_modulus)
    e = np.asarray(youngs_modulus)
    return e > threshold if fiber.youngs_modulus > matrix.youngs_modulus else e < threshold


def fiber_fraction(
    youngs_modulus: np.ndarray, *, fiber: Material = FIBER, matrix: Material = MATRIX
) -> np.ndarray:
    """Fiber area fraction per sample of ``[N, 1, n, n]`` E maps -> float32 ``[N]``."""
    mask = fiber_mask(youngs_modulus, fiber=fiber, matrix=matrix)
    return mask.reshape(mask.shape[0], -1).mean(axis=1).astype(np.float32)


# --- user materials and the applied strain: one rule each, for every command and REST ----------
def parse_material(text: str, name: str) -> Material:
    """``"72000,0.22"`` (Young's modulus in MPa, Poisson's ratio) -> :class:`Material` ``name``.

    Raises :class:`InputError` for malformed text, E ≤ 0 or ν outside (−1, 0.5): an isotropic
    phase is stable only there, and plane strain divides by 1 − 2ν.
    """
    parts = [p.strip() for p in str(text).split(",")]
    try:
        if len(parts) != 2:
            raise ValueError
        modulus, ratio = float(parts[0]), float(parts[1])
    except ValueError:
        raise InputError(
            f"--{name} must be E,nu (Young's modulus in MPa, Poisson's ratio), e.g. 72000,0.22; "
            f"got {text!r}"
        ) from None
    return check_material(Material(name, modulus, ratio), label=f"--{name}")


def check_material(material: Material, label: str | None = None) -> Material:
    """The material itself if E > 0 (finite) and −1 < ν < 0.5, else one :class:`InputError`
    whose message starts with ``label`` (the material's name by default)."""
    e, nu = material.youngs_modulus, material.poisson_ratio
    who = label or material.name
    if not (math.isfinite(e) and e > 0):
        raise InputError(f"{who}: Young's modulus must be positive (MPa); got {e:g}")
    if not (math.isfinite(nu) and -1.0 < nu < 0.5):
        raise InputError(f"{who}: Poisson's ratio must lie in (-1, 0.5); got {nu:g}")
    return material


def check_phases(fiber: Material, matrix: Material) -> None:
    """Both phases valid and told apart by their moduli (an E map holds nothing else)."""
    check_material(fiber)
    check_material(matrix)
    if fiber.youngs_modulus == matrix.youngs_modulus:
        raise InputError(
            f"fiber and matrix need different Young's moduli (an E map tells the phases apart "
            f"by them); both are {fiber.youngs_modulus:g} MPa"
        )


def describe_phases(fiber: Material = FIBER, matrix: Material = MATRIX) -> str:
    """One line naming both phases, as reports print them."""
    return (
        f"fiber E = {fiber.youngs_modulus:g} MPa, ν = {fiber.poisson_ratio:g}; "
        f"matrix E = {matrix.youngs_modulus:g} MPa, ν = {matrix.poisson_ratio:g}"
    )


def materials_attr(fiber: Material = FIBER, matrix: Material = MATRIX) -> dict[str, Any]:
    """The ``materials`` attribute of a file (SPEC §4): the lecture's pair by default."""
    return {
        "fiber": asdict(Material("fiber", fiber.youngs_modulus, fiber.poisson_ratio)),
        "matrix": asdict(Material("matrix", matrix.youngs_modulus, matrix.poisson_ratio)),
    }


def materials_of(attr: dict[str, Any]) -> tuple[Material, Material]:
    """(fiber, matrix) of a ``materials`` attribute; a phase it lacks is the lecture's."""
    phases = []
    for default in (FIBER, MATRIX):
        entry = attr.get(default.name) if isinstance(attr, dict) else None
        if isinstance(entry, dict):
            try:
                phase = Material(
                    default.name, float(entry["youngs_modulus"]), float(entry["poisson_ratio"])
                )
            except (KeyError, TypeError, ValueError):
                raise MicrostrainError(
                    f"malformed '{default.name}' in materials: {entry}"
                ) from None
        else:
            phase = default
        phases.append(phase)
    return phases[0], phases[1]


def validate_applied_strain(value: float) -> float:
    """ū: finite, non-zero and |ū| ≤ 1 (small strain), else one :class:`InputError` line.

    The one rule of every command (solve, generate, predict) and REST; fields scale with ū, so the
    ceiling only catches unit mistakes (percent instead of fraction).
    """
    try:
        u = float(value)
    except (TypeError, ValueError):
        raise InputError(f"applied strain must be a number; got {value!r}") from None
    if not math.isfinite(u) or u == 0 or abs(u) > MAX_ABS_APPLIED_STRAIN:
        raise InputError(
            f"applied strain ū = {u:g} is outside 0 < |ū| ≤ {MAX_ABS_APPLIED_STRAIN:g} "
            "(small-strain theory; give a fraction, not percent)"
        )
    return u


def load_microstructures(
    path: str | os.PathLike[str],
    kind: InputKind = "auto",
    *,
    fiber: Material = FIBER,
    matrix: Material = MATRIX,
    larger: bool = False,
) -> np.ndarray:
    """Read E maps or fiber masks from ``.npy`` or ``.h5`` -> float32 ``[N, 1, n, n]`` MPa.

    In an HDF5 file the dataset ``E`` is taken, else ``fiber_mask``/``mask``, else the only
    dataset at the root. ``fiber``, ``matrix`` and ``larger`` as :func:`to_youngs_modulus`.
    """
    phases: dict[str, Any] = {"fiber": fiber, "matrix": matrix, "larger": larger}
    p = Path(path)
    if not p.is_file():
        raise MicrostrainError(f"input file not found: {p}")
    suffix = p.suffix.lower()
    if suffix == ".npy":
        try:
            data = np.load(p, allow_pickle=False)
        except Exception as exc:
            raise MicrostrainError(f"cannot read {p} as a .npy array: {exc}") from None
        return to_youngs_modulus(data, kind, name=p.name, **phases)
    if suffix in (".h5", ".hdf5"):
        import h5py

        try:
            with h5py.File(p, "r") as f:
                if DS_E in f and kind != "mask":
                    return to_youngs_modulus(
                        f[DS_E][()], "E" if kind == "auto" else kind, p.name, **phases
                    )
                for key in MASK_KEYS:
                    if key in f:
                        return to_youngs_modulus(
                            f[key][()], "mask", name=f"{p.name}:{key}", **phases
                        )
                names = [k for k in f if isinstance(f[k], h5py.Dataset)]
                if len(names) != 1:
                    found = ", ".join(names) or "none"
                    raise MicrostrainError(
                        f"{p} has no dataset 'E' or 'fiber_mask' (found: {found})"
                    )
                return to_youngs_modulus(
                    f[names[0]][()], kind, name=f"{p.name}:{names[0]}", **phases
                )
        except OSError as exc:
            raise MicrostrainError(f"cannot read {p} as HDF5: {exc}") from None
    raise MicrostrainError(f"unsupported input format '{p.suffix}' for {p}: use .npy or .h5")
