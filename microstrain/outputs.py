"""Writing a solution or a prediction (SPEC §7): strain alone (``.npy``) or strain with its SPEC §9
quantities (``.h5``), for ``solve`` and ``predict``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from microstrain.conventions import (
    DS_C_EFF,
    DS_E,
    DS_STRAIN,
    E_SHAPE,
    PERIODIC_CASES,
    STRAIN_CHANNELS,
    STRESS_CHANNELS,
)
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


def save_periodic(
    path: str | os.PathLike[str],
    youngs_modulus: np.ndarray,
    cases: np.ndarray,
    c_eff: np.ndarray,
    plane: str,
    applied_strain: float,
    attrs: dict[str, str] | None = None,
    macro_strain: np.ndarray | None = None,
    macro_stress: np.ndarray | None = None,
) -> Path:
    """Write a periodic prediction or solution (SPEC §11) to ``.npy`` or ``.h5``.

    E ``[N, 1, n, n]`` MPa, the unit cases ``[N, 3, 3, n, n]`` for ``applied_strain`` ū, C_eff
    ``[N, 3, 3]`` MPa. Without a load the file holds the cases as ``strain`` and, per case,
    ``stress`` ``[N, 3, 3, n, n]``, ``von_mises`` ``[N, 3, n, n]`` and ``max_von_mises``
    ``[N, 3]``. With ``macro_strain`` Ē ``[N, 3]`` (and the ``macro_stress`` Σ̄ ``[N, 3]`` MPa
    it came from, if it did) ``strain`` is that load's field Σ_j (Ē_j / ū) ε^(j) ``[N, 3, n, n]``
    (its mean is exactly Ē), with its ``stress``, ``von_mises`` ``[N, n, n]`` and
    ``max_von_mises`` ``[N]``; the cases are kept as ``unit_cases``. Always beside them:
    ``E``, ``C_eff`` and the engineering constants ``E_1``, ``E_2``, ``nu_12``, ``G_12`` ``[N]``
    of the core (:func:`microstrain.quantities.engineering_constants`). ``.npy`` holds the
    strain alone (the load's, else the cases).
    """
    from microstrain.quantities import (
        engineering_constants,
        macro_strain_fields,
        periodic_quantities,
        quantities,
    )

    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in (".npy", ".h5", ".hdf5"):
        raise MicrostrainError(f"unsupported output format '{target.suffix}': use .npy or .h5")
    e = np.asarray(youngs_modulus, np.float32)
    cases = np.asarray(cases, np.float32)
    c = np.asarray(c_eff, np.float64)
    datasets: dict[str, tuple[np.ndarray, dict[str, object]]] = {}
    if macro_strain is None:
        strain = cases
        derived = periodic_quantities(e, cases, plane, applied_strain)
        for name in ("stress", "von_mises", "max_von_mises"):
            datasets[name] = (derived[name], {"unit": "MPa"})
    else:
        strain = macro_strain_fields(cases, macro_strain, applied_strain)  # [N, 3, n, n]
        derived = quantities(e, strain, plane, 1.0)  # E_x, ν_xy of a free edge do not apply
        for name in ("stress", "von_mises", "max_von_mises"):
            datasets[name] = (derived[name], {"unit": "MPa"})
        datasets["unit_cases"] = (cases, {"cases": list(PERIODIC_CASES)})
        datasets["macro_strain"] = (np.asarray(macro_strain, np.float64), {"unit": "1"})
        if macro_stress is not None:
            datasets["macro_stress"] = (np.asarray(macro_stress, np.float64), {"unit": "MPa"})
    datasets["stress"][1]["channels"] = list(STRESS_CHANNELS)
    datasets[DS_C_EFF] = (c, {"unit": "MPa", "order": "xx, yy, xy (engineering shear)"})
    for name, values in engineering_constants(c).items():
        datasets[name] = (values, {"unit": "1" if name == "nu_12" else "MPa"})
    with atomic_output(target) as tmp:
        if suffix == ".npy":
            with open(tmp, "wb") as fh:
                np.save(fh, strain)
            return target
        import h5py

        with h5py.File(tmp, "w") as f:
            f.create_dataset(DS_STRAIN, data=strain, compression="gzip")
            f[DS_STRAIN].attrs["channels"] = list(STRAIN_CHANNELS)
            if macro_strain is None:
                f[DS_STRAIN].attrs["cases"] = list(PERIODIC_CASES)
            f.create_dataset(DS_E, data=e, compression="gzip")
            for name, (values, meta) in datasets.items():
                f.create_dataset(name, data=values, compression="gzip" if values.ndim > 2 else None)
                for key, value in meta.items():
                    f[name].attrs[key] = value
            for key, value in {
                **(attrs or {}),
                "plane": plane,
                "applied_strain": float(applied_strain),
            }.items():
                f.attrs[key] = value
    return target
