"""Writing a solution or a prediction (SPEC §7): strain alone (``.npy``) or strain with its SPEC §9
quantities (``.h5``), for ``solve`` and ``predict``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from microstrain.conventions import DS_E, DS_STRAIN, E_SHAPE, STRAIN_CHANNELS, STRESS_CHANNELS
from microstrain.errors import MicrostrainError
from microstrain.files import atomic_output
from microstrain.quantities import quantities

# unit attribute of each SPEC §9 dataset in an .h5 output
QUANTITY_UNITS = {
    "stress": "MPa",
    "von_mises": "MPa",
    "E_x": "MPa",
    "nu_xy": "1",
    "max_von_mises": "MPa",
}


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
