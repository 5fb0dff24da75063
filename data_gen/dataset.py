"""The resumable writer of ``generate``: a SPEC §4 file that grows chunk by chunk.

The schema and its reader live in :mod:`microstrain.dataset`; this module adds what only data
generation needs: resuming a file written by the same command, and crash safety.

Crash safety: datasets are resizable along N and only ever hold complete samples. Each
:meth:`DatasetWriter.append` opens the file, grows and fills every dataset, flushes, then records
the new sample count in ``n_complete`` and closes it again, so a killed run loses at most the
samples of the chunk it was solving and the file on disk keeps ``complete = False``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from microstrain.conventions import (
    ATTR_COMPLETE,
    ATTR_CREATED,
    ATTR_DISCRETIZATION,
    ATTR_GENERATOR,
    ATTR_LOAD_CASE,
    ATTR_MATERIALS,
    ATTR_N_REQUESTED,
    ATTR_RUNS,
    ATTR_SCHEMA_VERSION,
    ATTR_SOFTWARE,
    ATTR_WALL_SECONDS,
    DS_C_EFF,
    DS_E,
    DS_STRAIN,
    PERIODIC_CASES,
    SCHEMA_VERSION,
    STRAIN_CHANNELS,
)
from microstrain.dataset import CHUNK_SAMPLES, COMPRESSION, FIELDS, json_attr
from microstrain.errors import MicrostrainError
from microstrain.files import check_output_dir, timestamp
from microstrain.hardware import cpu_description

# Extra root attributes of this writer (beyond SPEC §4).
ATTR_N_COMPLETE = "n_complete"  # samples written and flushed

# The attributes that make two generate commands "the same" for resuming.
IDENTITY_ATTRS = (ATTR_LOAD_CASE, ATTR_MATERIALS, ATTR_GENERATOR, ATTR_DISCRETIZATION)


@dataclass(frozen=True)
class DatasetIdentity:
    """What a ``generate`` command asks for, as the JSON attributes of SPEC §4."""

    load_case: dict[str, Any]
    materials: dict[str, Any]
    generator: dict[str, Any]
    discretization: dict[str, Any]

    def attrs(self) -> dict[str, str]:
        return {
            ATTR_LOAD_CASE: json.dumps(self.load_case, sort_keys=True),
            ATTR_MATERIALS: json.dumps(self.materials, sort_keys=True),
            ATTR_GENERATOR: json.dumps(self.generator, sort_keys=True),
            ATTR_DISCRETIZATION: json.dumps(self.discretization, sort_keys=True),
        }

    def differences(self, file_attrs: Any) -> list[str]:
        """Human-readable ``attr.key: file value != requested`` for every mismatch."""
        diffs: list[str] = []
        for name, wanted in zip(
            IDENTITY_ATTRS,
            (self.load_case, self.materials, self.generator, self.discretization),
            strict=True,
        ):
            if name not in file_attrs:
                diffs.append(f"{name} missing")
                continue
            have = json_attr(file_attrs[name])
            for key in sorted(set(have) | set(wanted)):
                if have.get(key) != wanted.get(key):
                    diffs.append(
                        f"{name}.{key}: file {have.get(key)!r} != requested {wanted.get(key)!r}"
                    )
        return diffs


class DatasetWriter:
    """Create or resume a dataset file; append samples chunk by chunk.

    Use :meth:`open`; then :meth:`append` per chunk and :meth:`finish` at the end.
    """

    def __init__(
        self,
        path: Path,
        n_complete: int,
        previous_wall_seconds: float,
        runs: list,
        fields: dict[str, tuple[str, tuple]] = FIELDS,
    ):
        self.path = path
        self.fields = fields
        self.n_complete = n_complete
        self._previous_wall = previous_wall_seconds
        self._runs = runs

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        identity: DatasetIdentity,
        software: dict[str, str],
        n_requested: int,
        ranks: int = 1,
        overwrite: bool = False,
        fields: dict[str, tuple[str, tuple]] = FIELDS,
    ) -> DatasetWriter:
        """Resume ``path`` if it holds the same command's samples, else create it.

        ``fields``: name -> (dtype, per-sample shape) of the file
        (:func:`microstrain.dataset.fields_of`: uniaxial by default, or periodic).

        Raises :class:`MicrostrainError` for an unwritable directory, a file of another command
        (unless ``overwrite``), a damaged file, or a file already holding more than
        ``n_requested`` samples.
        """
        target = Path(path)
        check_output_dir(target)
        if target.exists() and not overwrite:
            writer = cls._resume(target, identity, n_requested, fields)
        else:
            writer = cls._create(target, identity, software, n_requested, fields)
        writer._runs.append(
            {
                "started": timestamp(),
                "ranks": ranks,
                "hardware": cpu_description(),
                "first_sample": writer.n_complete,
                "samples": 0,
                "wall_seconds": 0.0,
            }
        )
        return writer

    @classmethod
    def _create(
        cls,
        path: Path,
        identity: DatasetIdentity,
        software: dict[str, str],
        n_requested: int,
        fields: dict[str, tuple[str, tuple]],
    ) -> DatasetWriter:
        path.unlink(missing_ok=True)
        try:
            with h5py.File(path, "w") as f:
                for name, (dtype, shape) in fields.items():
                    f.create_dataset(
                        name,
                        shape=(0, *shape),
                        maxshape=(None, *shape),
                        dtype=dtype,
                        chunks=(CHUNK_SAMPLES, *shape),
                        **COMPRESSION,
                    )
                f[DS_STRAIN].attrs["channels"] = list(STRAIN_CHANNELS)
                f[DS_E].attrs["units"] = "MPa"
                if DS_C_EFF in fields:
                    f[DS_STRAIN].attrs["cases"] = list(PERIODIC_CASES)
                    f[DS_C_EFF].attrs["units"] = "MPa"
                f.attrs[ATTR_SCHEMA_VERSION] = SCHEMA_VERSION
                for key, value in identity.attrs().items():
                    f.attrs[key] = value
                f.attrs[ATTR_SOFTWARE] = json.dumps(software, sort_keys=True)
                f.attrs[ATTR_CREATED] = timestamp()
                f.attrs[ATTR_COMPLETE] = False
                f.attrs[ATTR_N_COMPLETE] = 0
                f.attrs[ATTR_N_REQUESTED] = n_requested
                f.attrs[ATTR_WALL_SECONDS] = 0.0
                f.attrs[ATTR_RUNS] = "[]"
        except OSError as exc:
            raise MicrostrainError(f"cannot create {path}: {exc}") from None
        return cls(path, 0, 0.0, [], fields)

    @classmethod
    def _resume(
        cls,
        path: Path,
        identity: DatasetIdentity,
        n_requested: int,
        fields: dict[str, tuple[str, tuple]],
    ) -> DatasetWriter:
        if not h5py.is_hdf5(path):
            raise MicrostrainError(
                f"{path} exists and is not an HDF5 file; use --overwrite to replace it"
            )
        try:
            with h5py.File(path, "r+") as f:
                if ATTR_N_COMPLETE not in f.attrs or DS_E not in f:
                    raise MicrostrainError(
                        f"{path} exists and is not a dataset written by 'microstrain generate'; "
                        "use --overwrite to replace it"
                    )
                diffs = identity.differences(f.attrs)
                if diffs:
                    raise MicrostrainError(
                        f"{path} was generated by a different command ({'; '.join(diffs)}); "
                        "use --overwrite to replace it or choose another output file"
                    )
                if any(name not in f for name in fields):
                    raise MicrostrainError(
                        f"{path} exists and is not a dataset written by 'microstrain generate'; "
                        "use --overwrite to replace it"
                    )
                n_complete = int(f.attrs[ATTR_N_COMPLETE])
                if n_complete > n_requested:
                    raise MicrostrainError(
                        f"{path} already holds {n_complete} samples, more than the "
                        f"{n_requested} requested; use -n {n_complete} or more, or --overwrite"
                    )
                # A run killed between growing the datasets and recording n_complete leaves
                # rows past n_complete; they are not trusted.
                for name in fields:
                    if f[name].shape[0] != n_complete:
                        f[name].resize(n_complete, axis=0)
                f.attrs[ATTR_N_REQUESTED] = n_requested
                if n_complete < n_requested:
                    f.attrs[ATTR_COMPLETE] = False
                wall = float(f.attrs.get(ATTR_WALL_SECONDS, 0.0))
                runs = json_attr(f.attrs.get(ATTR_RUNS, "[]"))
        except OSError as exc:
            raise MicrostrainError(
                f"cannot resume {path}: the file is damaged or locked ({exc}); "
                "use --overwrite to start it again"
            ) from None
        return cls(path, n_complete, wall, runs, fields)

    def append(self, fields: dict[str, np.ndarray], run_wall_seconds: float) -> None:
        """Append one chunk: ``fields`` maps every name of the file's fields to ``[n, ...]``.

        ``run_wall_seconds`` is the wall time of the current run so far (recorded with it).
        """
        n = {len(v) for v in fields.values()}
        if len(n) != 1 or set(fields) != set(self.fields):
            raise ValueError(f"append needs equal-length arrays for {sorted(self.fields)}")
        count = n.pop()
        with h5py.File(self.path, "r+") as f:
            start = self.n_complete
            for name, values in fields.items():
                ds = f[name]
                ds.resize(start + count, axis=0)
                ds[start:] = values
            f.flush()  # data on disk before the count that vouches for it
            self.n_complete = start + count
            f.attrs[ATTR_N_COMPLETE] = self.n_complete
            self._record_run(f, run_wall_seconds, count)

    def finish(self, run_wall_seconds: float) -> None:
        """Mark the file complete (all requested samples present)."""
        with h5py.File(self.path, "r+") as f:
            if self.n_complete != int(f.attrs[ATTR_N_REQUESTED]):
                raise RuntimeError("finish() before all requested samples were written")
            self._record_run(f, run_wall_seconds, 0)
            f.attrs[ATTR_COMPLETE] = True

    def _record_run(self, f: Any, run_wall_seconds: float, new_samples: int) -> None:
        run = self._runs[-1]
        run["samples"] += new_samples
        run["wall_seconds"] = round(run_wall_seconds, 6)
        f.attrs[ATTR_WALL_SECONDS] = self._previous_wall + run_wall_seconds
        f.attrs[ATTR_RUNS] = json.dumps(self._runs)
