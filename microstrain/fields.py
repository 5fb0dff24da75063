"""Validation and conversion of user microstructures and strain fields (SPEC §2).

Every user-facing boundary (``solve``, ``predict``, REST) accepts a Young's modulus map in MPa or a
0/1 fiber mask, shaped ``[32, 32]``, ``[N, 32, 32]`` or ``[N, 1, 32, 32]``; they all go through
:func:`to_youngs_modulus` so the rules and messages are the same everywhere.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np

from microstrain.conventions import (
    DS_E,
    DS_STRAIN,
    E_SHAPE,
    FIBER,
    GRID,
    MATRIX,
    STRAIN_CHANNELS,
    STRESS_CHANNELS,
)
from microstrain.errors import InputError, MicrostrainError
from microstrain.files import atomic_output

InputKind = Literal["auto", "E", "mask"]
MODULI = (MATRIX.youngs_modulus, FIBER.youngs_modulus)
MASK_KEYS = ("fiber_mask", "mask")
# unit attribute of each SPEC §9 dataset in an .h5 output
QUANTITY_UNITS = {
    "stress": "MPa",
    "von_mises": "MPa",
    "E_x": "MPa",
    "nu_xy": "1",
    "max_von_mises": "MPa",
}


def _describe(values: np.ndarray) -> str:
    shown = ", ".join(f"{v:g}" for v in values[:4])
    return shown + (", ..." if values.size > 4 else "")


def to_youngs_modulus(data: object, kind: InputKind = "auto", name: str = "input") -> np.ndarray:
    """Validate a microstructure and return Young's modulus in MPa, float32 ``[N, 1, 32, 32]``.

    ``kind="auto"`` decides by the values: only {0, 1} is a fiber mask, only {3000, 85000} an E
    map. Raises :class:`InputError` naming the problem (shape, non-finite values, value set).
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
    if arr.shape[-2:] != (GRID, GRID):
        raise InputError(
            f"{name} has shape {given}; each microstructure must be {GRID}x{GRID} pixels"
        )
    if arr.shape[0] == 0:
        raise InputError(f"{name} holds no microstructure (N = 0)")
    if not np.all(np.isfinite(arr)):
        raise InputError(f"{name} contains NaN or infinite values")
    values = np.unique(arr)
    is_mask = bool(np.all(np.isin(values, (0.0, 1.0))))
    is_modulus = bool(np.all(np.isin(values, MODULI)))
    if kind == "mask" or (kind == "auto" and is_mask):
        if not is_mask:
            raise InputError(
                f"{name}: a fiber mask may only hold 0 (matrix) and 1 (fiber); "
                f"found {_describe(values[~np.isin(values, (0.0, 1.0))])}"
            )
        return mask_to_youngs_modulus(arr)
    if not is_modulus:
        bad = values[~np.isin(values, MODULI)]
        expected = f"{MATRIX.youngs_modulus:g} (matrix) and {FIBER.youngs_modulus:g} (fiber) MPa"
        hint = "" if kind == "E" else ", or a fiber mask of 0 and 1"
        raise InputError(
            f"{name}: E values must be exactly {expected}{hint}; found {_describe(bad)}"
        )
    return arr.astype(np.float32)


def mask_to_youngs_modulus(mask: np.ndarray) -> np.ndarray:
    """0/1 fiber mask (any shape) -> Young's modulus in MPa, float32, same shape."""
    return np.where(np.asarray(mask) > 0.5, FIBER.youngs_modulus, MATRIX.youngs_modulus).astype(
        np.float32
    )


def fiber_mask(youngs_modulus: np.ndarray) -> np.ndarray:
    """Young's modulus map (MPa) -> bool fiber mask of the same shape."""
    threshold = 0.5 * (FIBER.youngs_modulus + MATRIX.youngs_modulus)
    return np.asarray(youngs_modulus) > threshold


def fiber_fraction(youngs_modulus: np.ndarray) -> np.ndarray:
    """Fiber area fraction per sample of ``[N, 1, 32, 32]`` E maps -> float32 ``[N]``."""
    mask = fiber_mask(youngs_modulus)
    return mask.reshape(mask.shape[0], -1).mean(axis=1).astype(np.float32)


def load_microstructures(path: str | os.PathLike[str], kind: InputKind = "auto") -> np.ndarray:
    """Read E maps or fiber masks from ``.npy`` or ``.h5`` -> float32 ``[N, 1, 32, 32]`` MPa.

    In an HDF5 file the dataset ``E`` is taken, else ``fiber_mask``/``mask``, else the only
    dataset at the root.
    """
    p = Path(path)
    if not p.is_file():
        raise MicrostrainError(f"input file not found: {p}")
    suffix = p.suffix.lower()
    if suffix == ".npy":
        try:
            data = np.load(p, allow_pickle=False)
        except Exception as exc:
            raise MicrostrainError(f"cannot read {p} as a .npy array: {exc}") from None
        return to_youngs_modulus(data, kind, name=p.name)
    if suffix in (".h5", ".hdf5"):
        import h5py

        try:
            with h5py.File(p, "r") as f:
                if DS_E in f and kind != "mask":
                    return to_youngs_modulus(f[DS_E][()], "E" if kind == "auto" else kind, p.name)
                for key in MASK_KEYS:
                    if key in f:
                        return to_youngs_modulus(f[key][()], "mask", name=f"{p.name}:{key}")
                names = [k for k in f if isinstance(f[k], h5py.Dataset)]
                if len(names) != 1:
                    found = ", ".join(names) or "none"
                    raise MicrostrainError(
                        f"{p} has no dataset 'E' or 'fiber_mask' (found: {found})"
                    )
                return to_youngs_modulus(f[names[0]][()], kind, name=f"{p.name}:{names[0]}")
        except OSError as exc:
            raise MicrostrainError(f"cannot read {p} as HDF5: {exc}") from None
    raise MicrostrainError(f"unsupported input format '{p.suffix}' for {p}: use .npy or .h5")


def save_strain(
    path: str | os.PathLike[str],
    strain: np.ndarray,
    youngs_modulus: np.ndarray | None = None,
    attrs: dict[str, str] | None = None,
    plane: str | None = None,
    applied_strain: float | None = None,
) -> Path:
    """Write strain ``[N, 3, 32, 32]`` to ``.npy`` (strain only) or ``.h5`` (SPEC §7).

    The ``.h5`` file holds ``strain`` (float32), ``E`` ``[N, 1, 32, 32]`` MPa if given, and the
    root ``attrs``. Given ``plane`` (and then also E and ``applied_strain`` ū, the ū the strain
    belongs to) it also holds the SPEC §9 quantities of that strain, computed by
    :func:`microstrain.quantities.quantities` from the float32 strain as stored: ``stress``
    float32 ``[N, 3, 32, 32]`` MPa, ``von_mises`` float32 ``[N, 32, 32]`` MPa, ``E_x`` MPa,
    ``nu_xy`` and ``max_von_mises`` MPa (float64 ``[N]``), with the root attributes ``plane`` and
    ``applied_strain`` they were computed for. ``plane`` and ū are ignored for ``.npy``.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in (".npy", ".h5", ".hdf5"):
        raise MicrostrainError(f"unsupported output format '{target.suffix}': use .npy or .h5")
    strain = np.asarray(strain, dtype=np.float32)
    e = None if youngs_modulus is None else np.asarray(youngs_modulus, np.float32)
    e = None if e is None else e.reshape(-1, *E_SHAPE)
    derived: dict[str, np.ndarray] = {}  # SPEC §9 name -> values
    derived_attrs: dict[str, str | float] = {}  # what they were computed for
    if suffix != ".npy" and plane is not None:
        from microstrain.quantities import quantities  # imports this module: import when used

        if e is None or applied_strain is None:
            raise ValueError("the quantities of a plane need E and the applied strain")
        derived = quantities(e, strain, plane, applied_strain)  # before the file is opened
        derived_attrs = {"plane": plane, "applied_strain": float(applied_strain)}
    with atomic_output(target) as tmp:
        if suffix == ".npy":
            with open(tmp, "wb") as fh:
                np.save(fh, strain)
        else:
            import h5py

            with h5py.File(tmp, "w") as f:
                f.create_dataset(DS_STRAIN, data=strain, compression="gzip")
                f[DS_STRAIN].attrs["channels"] = list(STRAIN_CHANNELS)
                if e is not None:
                    f.create_dataset(DS_E, data=e, compression="gzip")
                for name, values in derived.items():
                    f.create_dataset(
                        name, data=values, compression="gzip" if values.ndim > 1 else None
                    )
                    f[name].attrs["unit"] = QUANTITY_UNITS[name]
                if derived:
                    f["stress"].attrs["channels"] = list(STRESS_CHANNELS)
                # derived_attrs last: they describe the quantities actually written
                for key, value in {**(attrs or {}), **derived_attrs}.items():
                    f.attrs[key] = value
    return target
