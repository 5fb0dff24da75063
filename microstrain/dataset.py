"""The dataset file of SPEC §4: its one reader, and a small writer for whole arrays.

Layout (names from :mod:`microstrain.conventions`)::

    E               float32 [N, 1, 32, 32]   Young's modulus (MPa)
    strain          float32 [N, 3, 32, 32]   eps_xx, eps_yy, gamma_xy for ū of the file
    fiber_fraction  float32 [N]
    seed            int64   [N]              per-sample seed (data_gen.microstructure)
    solve_seconds   float64 [N]              FE wall time of each sample
    attrs: schema_version, load_case, materials, generator, discretization, software (JSON),
           created, complete, plus n_requested, wall_seconds (T_data summed over all runs) and
           runs (JSON list: one entry per run of ``generate`` that wrote to the file).

A periodic file (SPEC §11, ``load_case.name == "periodic"``) holds E ``[N, 1, n, n]``, strain
``[N, 3, 3, n, n]`` (load case xx, yy, xy; component; row; column), ``C_eff`` float64 ``[N, 3, 3]``
and the same per-sample columns; n is 32 or a multiple of it. :func:`read_info` tells the two
modes apart (:attr:`DatasetInfo.boundary`), and every consumer states the mode it takes
(``boundary=`` of :func:`load_samples` and :func:`open_union`, or :func:`check_boundary`), so a
file of the other mode is refused with one line that says what it is.

Every stage reads datasets through this module: ``data_gen`` (inspect, resume), ``training``
(the datamodule), the reports (T_data, T_simulation) and evaluation. The resumable writer of
``generate`` lives in :mod:`data_gen.dataset`; :func:`write_dataset` writes a whole file at once
(tests, tools).

Training may read many files as one dataset (a directory of shards, or a list):
:func:`open_union` checks that they agree and fixes their order, and :class:`DatasetUnion` reads
any samples of the union in contiguous, chunk-aligned pieces, so the same reader serves a dataset
held in memory and one streamed from disk.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    ATTR_SHARD,
    ATTR_SOFTWARE,
    ATTR_WALL_SECONDS,
    DEFAULT_APPLIED_STRAIN,
    DEFAULT_BOUNDARY,
    DEFAULT_PLANE,
    DS_C_EFF,
    DS_E,
    DS_FIBER_FRACTION,
    DS_SEED,
    DS_SOLVE_SECONDS,
    DS_STRAIN,
    E_SHAPE,
    FIBER,
    GRID,
    LOAD_CASE,
    MATRIX,
    N_CASES,
    N_STRAIN,
    PERIODIC_CASES,
    PERIODIC_LOAD_CASE,
    SCHEMA_VERSION,
    STRAIN_CHANNELS,
    STRAIN_SHAPE,
    Material,
)
from microstrain.errors import MicrostrainError
from microstrain.fields import fiber_fraction, materials_attr, materials_of
from microstrain.files import atomic_output, sha256_of, timestamp
from microstrain.quantities import effective_stiffness

# dataset name -> (dtype, per-sample shape)
FIELDS: dict[str, tuple[str, tuple[int, ...]]] = {
    DS_E: ("float32", E_SHAPE),
    DS_STRAIN: ("float32", STRAIN_SHAPE),
    DS_FIBER_FRACTION: ("float32", ()),
    DS_SEED: ("int64", ()),
    DS_SOLVE_SECONDS: ("float64", ()),
}


def fields_of(boundary: str = DEFAULT_BOUNDARY, side: int = GRID) -> dict[str, tuple[str, tuple]]:
    """Dataset name -> (dtype, per-sample shape) of a file of ``boundary`` with n = ``side``."""
    if boundary == DEFAULT_BOUNDARY and side == GRID:
        return FIELDS
    if boundary != PERIODIC_LOAD_CASE:
        raise MicrostrainError(f"a {boundary} file holds {GRID}x{GRID} images only")
    return {
        DS_E: ("float32", (1, side, side)),
        DS_STRAIN: ("float32", (N_CASES, N_STRAIN, side, side)),
        DS_C_EFF: ("float64", (N_STRAIN, N_CASES)),
        DS_FIBER_FRACTION: ("float32", ()),
        DS_SEED: ("int64", ()),
        DS_SOLVE_SECONDS: ("float64", ()),
    }


def load_case_attr(boundary: str, applied_strain: float, plane: str) -> dict[str, Any]:
    """The ``load_case`` attribute (SPEC §4, §11) of a file of ``boundary``."""
    if boundary == PERIODIC_LOAD_CASE:
        return {
            "name": PERIODIC_LOAD_CASE,
            "cases": list(PERIODIC_CASES),
            "applied_strain": applied_strain,
            "plane": plane,
        }
    return {"name": LOAD_CASE, "applied_strain": applied_strain, "plane": plane}


CHUNK_SAMPLES = 64  # HDF5 chunk length along N
# gzip is readable by every HDF5 tool; level 1 + shuffle compresses the fields nearly as well as
# level 9 at a fraction of the time (pixel-mode generation is only a few ms per sample).
COMPRESSION: dict[str, Any] = {"compression": "gzip", "compression_opts": 1, "shuffle": True}


def attr_text(value: Any) -> str:
    """An HDF5 string attribute (``str`` or ``bytes``) as ``str``."""
    return value.decode() if isinstance(value, bytes) else str(value)


def json_attr(value: Any) -> Any:
    """A JSON-encoded HDF5 attribute, decoded; text that is not JSON comes back as text."""
    if value is None:
        return None
    try:
        return json.loads(attr_text(value))
    except (json.JSONDecodeError, TypeError):
        return attr_text(value)


def _h5py() -> Any:
    import h5py

    return h5py


@dataclass(frozen=True)
class DatasetInfo:
    """Attributes of a dataset file, JSON decoded."""

    path: Path
    n: int
    complete: bool
    n_requested: int | None
    schema_version: int | None
    load_case: dict[str, Any]
    materials: dict[str, Any]
    generator: dict[str, Any]
    discretization: dict[str, Any]
    software: dict[str, Any]
    created: str | None
    wall_seconds: float | None
    runs: list[dict[str, Any]]
    shard: dict[str, Any] | None = None  # {index, count, first_sample, n_total} of generate --shard
    grid: int = GRID  # n of the n x n images

    @property
    def boundary(self) -> str:
        """``"periodic"`` for a SPEC §11 file, else ``"uniaxial"`` (SPEC §1)."""
        return "periodic" if self.load_case_name == PERIODIC_LOAD_CASE else DEFAULT_BOUNDARY

    @property
    def phases(self) -> tuple[Material, Material]:
        """(fiber, matrix) the file was solved with (the lecture's where it records none)."""
        return materials_of(self.materials)

    @property
    def fiber(self) -> Material:
        return self.phases[0]

    @property
    def matrix(self) -> Material:
        return self.phases[1]

    @property
    def applied_strain(self) -> float:
        """ū of the file's strain (SPEC §1)."""
        return float(self.load_case.get("applied_strain", DEFAULT_APPLIED_STRAIN))

    @property
    def plane(self) -> str:
        return str(self.load_case.get("plane", DEFAULT_PLANE))

    @property
    def load_case_name(self) -> str:
        return str(self.load_case.get("name", LOAD_CASE))

    @property
    def hardware(self) -> str:
        """The machine(s) the samples were generated on, as far as the file records it."""
        named = sorted({str(r["hardware"]) for r in self.runs if "hardware" in r})
        if named:
            return "; ".join(named)
        ranks = sorted({int(r["ranks"]) for r in self.runs if "ranks" in r})
        detail = f" ({'/'.join(map(str, ranks))} MPI rank(s))" if ranks else ""
        return f"not recorded in the dataset{detail}"


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


BOUNDARY_WORDS = {
    "uniaxial": "a uniaxial file (SPEC §1: strain [N, 3, n, n] of the pull along x)",
    "periodic": "a periodic file (SPEC §11: three load cases [N, 3, 3, n, n] and C_eff)",
}


def check_boundary(info: DatasetInfo, boundary: str, consumer: str = "this command") -> None:
    """One :class:`MicrostrainError` line unless the file is of ``boundary`` (uniaxial/periodic)."""
    if info.boundary != boundary:
        raise MicrostrainError(
            f"{info.path} is {BOUNDARY_WORDS[info.boundary]}; {consumer} takes "
            f"{boundary} files{' (--boundary periodic)' if boundary == 'periodic' else ''}"
        )


def _schema(f: Any, p: Path) -> tuple[dict[str, tuple[str, tuple]], int]:
    """The fields a file must hold, by its load case and image size; and that size."""
    lc = _as_dict(json_attr(f.attrs.get(ATTR_LOAD_CASE, "{}")))
    boundary = "periodic" if lc.get("name") == PERIODIC_LOAD_CASE else DEFAULT_BOUNDARY
    side = GRID
    if boundary == "periodic" and DS_E in f and f[DS_E].ndim == 4:
        side = int(f[DS_E].shape[-1])
        if side < GRID or side % GRID or f[DS_E].shape[-2] != side:
            raise MicrostrainError(
                f"{p}: dataset '{DS_E}' has shape {list(f[DS_E].shape)}, expected [N, 1, n, n] "
                f"with n a multiple of {GRID}"
            )
    return fields_of(boundary, side), side


def read_info(path: str | os.PathLike[str]) -> DatasetInfo:
    """Validate a dataset file against SPEC §4 and return its attributes.

    Raises :class:`MicrostrainError` for a missing, unreadable or malformed file.
    """
    p = Path(path)
    if not p.is_file():
        raise MicrostrainError(f"dataset file not found: {p}")
    h5py = _h5py()
    try:
        with h5py.File(p, "r") as f:
            fields, side = _schema(f, p)
            for name, (_, shape) in fields.items():
                if name not in f:
                    raise MicrostrainError(f"{p} is not a microstrain dataset: no '{name}' dataset")
                if f[name].shape[1:] != shape:
                    raise MicrostrainError(
                        f"{p}: dataset '{name}' has shape {list(f[name].shape)}, "
                        f"expected [N, {', '.join(map(str, shape))}]".replace(", ]", "]")
                    )
            n = f[DS_E].shape[0]
            if any(f[name].shape[0] != n for name in fields):
                raise MicrostrainError(f"{p}: datasets have different lengths (damaged file)")
            a = f.attrs
            if ATTR_COMPLETE not in a:
                raise MicrostrainError(f"{p} has no '{ATTR_COMPLETE}' attribute")
            try:
                runs = json_attr(a.get(ATTR_RUNS, "[]"))
                return DatasetInfo(
                    path=p,
                    n=n,
                    complete=bool(a[ATTR_COMPLETE]),
                    n_requested=int(a[ATTR_N_REQUESTED]) if ATTR_N_REQUESTED in a else None,
                    schema_version=(
                        int(a[ATTR_SCHEMA_VERSION]) if ATTR_SCHEMA_VERSION in a else None
                    ),
                    load_case=_as_dict(json_attr(a.get(ATTR_LOAD_CASE, "{}"))),
                    materials=_as_dict(json_attr(a.get(ATTR_MATERIALS, "{}"))),
                    generator=_as_dict(json_attr(a.get(ATTR_GENERATOR, "{}"))),
                    discretization=_as_dict(json_attr(a.get(ATTR_DISCRETIZATION, "{}"))),
                    software=_as_dict(json_attr(a.get(ATTR_SOFTWARE, "{}"))),
                    created=attr_text(a[ATTR_CREATED]) if ATTR_CREATED in a else None,
                    wall_seconds=(float(a[ATTR_WALL_SECONDS]) if ATTR_WALL_SECONDS in a else None),
                    runs=[r for r in runs if isinstance(r, dict)] if isinstance(runs, list) else [],
                    shard=_as_dict(json_attr(a.get(ATTR_SHARD, "{}"))) or None,
                    grid=side,
                )
            except (ValueError, TypeError) as exc:
                raise MicrostrainError(f"{p}: malformed attribute ({exc})") from None
    except OSError as exc:
        raise MicrostrainError(f"cannot read {p} as HDF5: {exc}") from None


def read_samples(
    path: str | os.PathLike[str],
    names: tuple[str, ...] = tuple(FIELDS),
    stop: int | None = None,
    indices: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Raw datasets ``names``: the first ``stop`` samples, or the samples ``indices``."""
    h5py = _h5py()
    try:
        with h5py.File(path, "r") as f:
            if indices is None:
                return {name: f[name][:stop] for name in names}
            idx = np.asarray(indices, dtype=np.int64)
            order = np.argsort(idx)  # h5py fancy indexing wants increasing indices
            inverse = np.argsort(order)
            return {name: f[name][idx[order]][inverse] for name in names}
    except OSError as exc:
        raise MicrostrainError(f"cannot read {path} as HDF5: {exc}") from None


@dataclass
class Samples:
    """Samples of a dataset, strain rescaled to the models' ū = 0.1 (fields are linear in ū)."""

    info: DatasetInfo
    youngs_modulus: np.ndarray  # float32 [N, 1, 32, 32] MPa
    strain: np.ndarray  # float32 [N, 3, 32, 32] for ū = DEFAULT_APPLIED_STRAIN
    fiber_fraction: np.ndarray  # float32 [N]
    indices: np.ndarray  # int64 [N]: which samples of the file these are
    # periodic files: strain is [N, 3, 3, n, n] and this the file's float64 [N, 3, 3] (MPa)
    c_eff: np.ndarray | None = None


def check_readable(info: DatasetInfo, allow_incomplete: bool = False) -> None:
    """Refuse a file that is incomplete (unless ``allow_incomplete``), empty or made for ū = 0."""
    p = info.path
    if not info.complete and not allow_incomplete:
        raise MicrostrainError(
            f"{p} is marked incomplete (interrupted generation?); finish it with the same "
            "generate command, or pass --allow-incomplete"
        )
    if info.n == 0:
        raise MicrostrainError(f"{p} holds no samples")
    if info.applied_strain == 0.0 or not math.isfinite(info.applied_strain):
        raise MicrostrainError(f"{p}: applied_strain is {info.applied_strain}; cannot rescale")


def _refuse_non_finite(path: Path, name: str, values: np.ndarray, indices: np.ndarray) -> None:
    """One error line if ``values`` ``[n, ...]`` of samples ``indices`` hold NaN or inf."""
    bad = ~np.isfinite(values.reshape(values.shape[0], -1)).all(axis=1)
    if bad.any():
        raise MicrostrainError(
            f"{path}: '{name}' holds NaN or infinite values in {int(bad.sum())} sample(s) "
            f"(first: sample {int(indices[np.flatnonzero(bad)[0]])})"
        )


def load_samples(
    path: str | os.PathLike[str],
    *,
    allow_incomplete: bool = False,
    indices: np.ndarray | None = None,
    boundary: str = DEFAULT_BOUNDARY,
) -> Samples:
    """Read E and strain of a SPEC §4 file (or a §11 one, ``boundary="periodic"``) for learning
    or judging a model.

    Refuses (one :class:`MicrostrainError` line) a file of the other mode, one that is
    incomplete (unless ``allow_incomplete``: then the complete samples are read), empty, recorded
    for ū = 0, or whose E or strain holds NaN or infinite values.
    """
    info = read_info(path)
    p = info.path
    check_boundary(info, boundary)
    check_readable(info, allow_incomplete)
    if indices is not None:
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= info.n):
            raise MicrostrainError(f"{p}: sample index out of range [0, {info.n})")
    else:
        idx = np.arange(info.n, dtype=np.int64)
    periodic = info.boundary == "periodic"
    raw = read_samples(
        p, (DS_E, DS_STRAIN, DS_C_EFF) if periodic else (DS_E, DS_STRAIN), indices=idx
    )
    youngs_modulus = np.asarray(raw[DS_E], dtype=np.float32)  # [N, 1, n, n]
    strain = np.asarray(raw[DS_STRAIN], dtype=np.float32)  # [N, 3, 32, 32] or [N, 3, 3, n, n]
    for name, values in ((DS_E, youngs_modulus), (DS_STRAIN, strain)):
        _refuse_non_finite(p, name, values, idx)
    if info.applied_strain != DEFAULT_APPLIED_STRAIN:
        strain *= np.float32(DEFAULT_APPLIED_STRAIN / info.applied_strain)
    return Samples(
        info=info,
        youngs_modulus=youngs_modulus,
        strain=strain,
        fiber_fraction=fiber_fraction(youngs_modulus, fiber=info.fiber, matrix=info.matrix),
        indices=idx,
        c_eff=np.asarray(raw[DS_C_EFF], dtype=np.float64) if periodic else None,
    )


# --- many files read as one dataset ----------------------------------------------------------

# What the files of one dataset must share (DatasetInfo attributes); ū may differ (rescaled).
MATCHING = ("schema_version", "load_case_name", "plane", "materials", "discretization", "grid")
READ_SPAN = 4096  # most samples one contiguous read takes: bounds a read's temporary memory
OPEN_FILES = 16  # open HDF5 files a union keeps (a directory may hold thousands of shards)


def dataset_files(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The files ``source`` names: a file, every ``*.h5`` of a directory, or a list of these."""
    if isinstance(source, str | os.PathLike):
        p = Path(source)
        if not p.is_dir():
            return [p]
        files = sorted(p.glob("*.h5"))
        if not files:
            raise MicrostrainError(f"no .h5 dataset files in the directory {p}")
        return files
    files = [f for s in source for f in dataset_files(s)]
    if not files:
        raise MicrostrainError("no dataset files given")
    return files


def _same_samples(info: DatasetInfo) -> Any:
    """Equal for two files that hold the same samples: one file, or one shard of one run."""
    if not info.shard:
        return str(info.path.resolve())
    run = json.dumps([info.generator, info.discretization, info.load_case], sort_keys=True)
    return run, json.dumps(info.shard, sort_keys=True)


def _order(infos: list[DatasetInfo]) -> list[DatasetInfo]:
    """Shards of one run by their index (= the serial file's order), anything else by name.

    Refuses one sample range twice: the same file, or two files of the same shard of one run.
    """
    seen: dict[Any, Path] = {}
    for info in infos:
        key = _same_samples(info)
        if key in seen:
            raise MicrostrainError(
                f"{info.path} holds the same samples as {seen[key]}: give each file once"
            )
        seen[key] = info.path
    shards = [i.shard for i in infos]
    runs = {json.dumps(i.generator, sort_keys=True) for i in infos}
    counts = {(s or {}).get("count") for s in shards}
    if all(shards) and len(runs) == 1 and len(counts) == 1:
        return sorted(infos, key=lambda i: int((i.shard or {})["index"]))
    return sorted(infos, key=lambda i: (i.path.name, str(i.path)))


def open_union(
    source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    allow_incomplete: bool = False,
    boundary: str = DEFAULT_BOUNDARY,
) -> DatasetUnion:
    """Check the files ``source`` names (:func:`dataset_files`) and join them into one dataset.

    Each file must be of ``boundary`` (:func:`check_boundary`), readable
    (:func:`check_readable`) and agree with the first on schema
    version, load case, plane, materials and discretization (:data:`MATCHING`); the message names
    the odd file. Their order is fixed by :func:`_order`, so a split over the union is the same
    whichever way the files were listed.
    """
    infos = [read_info(p) for p in dataset_files(source)]
    for info in infos:
        check_boundary(info, boundary)
        check_readable(info, allow_incomplete)
    first = infos[0]
    for info in infos[1:]:
        for name in MATCHING:
            mine, theirs = getattr(info, name), getattr(first, name)
            if mine != theirs:
                raise MicrostrainError(
                    f"{info.path} does not match {first.path}: {name} {mine!r} vs {theirs!r} (the "
                    "files of one dataset share schema, load case, plane, materials and "
                    "discretization)"
                )
    ordered = _order(infos)
    if len(ordered) == 1:
        description = ordered[0].path.name
    elif isinstance(source, str | os.PathLike) and Path(source).is_dir():
        description = f"{Path(source).name}/ ({len(ordered)} files)"
    else:
        names = [i.path.name for i in ordered]
        shown = ", ".join(names) if len(names) <= 3 else f"{names[0]}, ..., {names[-1]}"
        description = f"{shown} ({len(names)} files)"
    return DatasetUnion(ordered, description)


class DatasetUnion:
    """SPEC §4 files read as one dataset: sample i is sample ``i - offsets[j]`` of file j.

    :meth:`read` returns any samples, strain rescaled to ū = 0.1, reading each file in contiguous
    pieces aligned to its HDF5 chunks (a chunk is decompressed once per read). Files are opened
    on first use and at most :data:`OPEN_FILES` stay open; a union can be pickled (the handles
    are not).
    """

    def __init__(self, infos: Sequence[DatasetInfo], description: str) -> None:
        self.infos = tuple(infos)
        self.description = description
        self.offsets = np.concatenate([[0], np.cumsum([i.n for i in infos])]).astype(np.int64)
        self._handles: dict[int, Any] = {}  # file number -> open h5py.File, oldest first
        self._chunks: dict[int, int] = {}  # file number -> samples per HDF5 chunk

    @property
    def n(self) -> int:
        return int(self.offsets[-1])

    @property
    def paths(self) -> list[Path]:
        return [i.path for i in self.infos]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_handles": {}}

    def close(self) -> None:
        for f in self._handles.values():
            f.close()
        self._handles.clear()

    def _file(self, j: int) -> Any:
        f = self._handles.pop(j, None)
        if f is None:
            if len(self._handles) >= OPEN_FILES:
                self._handles.pop(next(iter(self._handles))).close()
            try:
                f = _h5py().File(self.infos[j].path, "r")
            except OSError as exc:
                raise MicrostrainError(f"cannot read {self.infos[j].path} as HDF5: {exc}") from None
        self._handles[j] = f  # most recently used last
        return f

    def chunk_length(self, j: int) -> int:
        """Samples per HDF5 chunk of file ``j`` (contiguous files: :data:`CHUNK_SAMPLES`)."""
        if j not in self._chunks:
            chunks = self._file(j)[DS_STRAIN].chunks
            self._chunks[j] = int(chunks[0]) if chunks else CHUNK_SAMPLES
        return self._chunks[j]

    def chunk_ids(self, indices: np.ndarray) -> np.ndarray:
        """A number per sample that is equal exactly for samples of one HDF5 chunk of one file."""
        idx = np.asarray(indices, dtype=np.int64)
        files = np.searchsorted(self.offsets, idx, side="right") - 1
        lengths = np.array([self.chunk_length(j) for j in range(len(self.infos))], np.int64)
        first_chunk = np.concatenate([[0], np.cumsum(-(-np.diff(self.offsets) // lengths))])
        return first_chunk[files] + (idx - self.offsets[files]) // lengths[files]

    def read(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """E ``[n, 1, 32, 32]`` MPa and strain ``[n, 3, 32, 32]`` (ū = 0.1) of samples ``indices``.

        Periodic files: E ``[n, 1, s, s]`` and strain ``[n, 3, 3, s, s]``. Any order, repeats
        allowed. Refuses NaN or infinite values, naming file and sample.
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.n):
            raise MicrostrainError(f"{self.description}: sample index out of range [0, {self.n})")
        order = np.argsort(idx, kind="stable")
        wanted = idx[order]  # sorted: each file's samples are one run of it
        shapes = fields_of(self.infos[0].boundary, self.infos[0].grid)
        youngs_modulus = np.empty((idx.size, *shapes[DS_E][1]), np.float32)
        strain = np.empty((idx.size, *shapes[DS_STRAIN][1]), np.float32)
        bounds = np.searchsorted(wanted, self.offsets)
        for j, (lo, hi) in enumerate(itertools.pairwise(bounds)):
            if lo == hi:
                continue
            local = wanted[lo:hi] - self.offsets[j]
            f, info = self._file(j), self.infos[j]
            for a, b in self._spans(local, self.chunk_length(j)):
                start, stop = int(local[a]), int(local[b - 1]) + 1
                rows = local[a:b] - start  # [b - a] rows of the contiguous piece
                e = f[DS_E][start:stop][rows]
                s = f[DS_STRAIN][start:stop][rows]
                _refuse_non_finite(info.path, DS_E, e, local[a:b])
                _refuse_non_finite(info.path, DS_STRAIN, s, local[a:b])
                youngs_modulus[order[lo + a : lo + b]] = e
                strain[order[lo + a : lo + b]] = s
            if info.applied_strain != DEFAULT_APPLIED_STRAIN:
                mine = order[lo:hi]
                strain[mine] *= np.float32(DEFAULT_APPLIED_STRAIN / info.applied_strain)
        return youngs_modulus, strain

    @staticmethod
    def _spans(local: np.ndarray, chunk: int) -> list[tuple[int, int]]:
        """Cut sorted sample numbers of one file into pieces [a, b) to read contiguously: runs of
        adjacent chunks, at most :data:`READ_SPAN` samples long (whole chunks, at least one)."""
        cid = local // chunk
        starts = np.flatnonzero(np.diff(cid)) + 1  # where a new chunk begins
        pieces: list[tuple[int, int]] = []
        a = 0
        for k in [*starts.tolist(), local.size]:
            if (
                k == local.size
                or cid[k] != cid[k - 1] + 1
                or (cid[k] + 1 - cid[a]) * chunk > READ_SPAN
            ):
                pieces.append((a, k))
                a = k
        return pieces


# --- times recorded in a dataset (T_data, T_simulation of SPEC §6) ---------------------------


@dataclass
class DatasetSummary:
    """What a run record and a model card say about a dataset: identity and recorded times.

    The times are ``None`` for a file that records no solve times (a user's own tool wrote it):
    such a file still trains and is judged, only τ stays unknown.
    """

    file: str  # a name, or a description of several files
    sha256: str | None  # of the one file; None for several (each is in ``files``)
    n_samples: int
    t_data: float | None  # seconds, T_data
    t_data_source: str  # which record T_data comes from
    t_simulation: float | None  # seconds per sample: median of solve_seconds
    t_simulation_mean: float | None
    hardware: str
    load_case: dict[str, Any] = field(default_factory=dict)
    generator: dict[str, Any] = field(default_factory=dict)
    discretization: dict[str, Any] = field(default_factory=dict)
    files: list[dict[str, Any]] = field(default_factory=list)  # file, sha256, n_samples, ...


def summarize(path: str | os.PathLike[str]) -> DatasetSummary:
    """Identity and recorded times of a dataset file.

    T_data is the file's total wall-time attribute when data_gen wrote one (it includes mesh
    building, sampling and I/O), else the sum of the per-sample ``solve_seconds``; T_simulation is
    the median per-sample solve time, i.e. one FE evaluation at the dataset's fidelity.
    """
    info = read_info(path)
    seconds = _solve_seconds(info.path)
    t_data: float | None = None
    t_simulation: float | None = None
    t_simulation_mean: float | None = None
    source = f"none: the file records no {DS_SOLVE_SECONDS}"
    if seconds.size:
        t_data, source = float(seconds.sum()), f"sum of {DS_SOLVE_SECONDS} ({seconds.size} samples)"
        t_simulation, t_simulation_mean = float(np.median(seconds)), float(seconds.mean())
        wall = info.wall_seconds
        if wall is not None and math.isfinite(wall) and wall > 0:
            t_data, source = wall, f"attribute '{ATTR_WALL_SECONDS}' (total wall time of generate)"
    digest = sha256_of(info.path)
    return DatasetSummary(
        file=info.path.name,
        sha256=digest,
        n_samples=info.n,
        t_data=t_data,
        t_data_source=source,
        t_simulation=t_simulation,
        t_simulation_mean=t_simulation_mean,
        hardware=info.hardware,
        load_case=info.load_case,
        generator=info.generator,
        discretization=info.discretization,
        files=[_file_entry(info, digest)],
    )


def _solve_seconds(path: Path) -> np.ndarray:
    """The recorded per-sample solve times of a file, float64 ``[n]`` (unrecorded ones left out)."""
    seconds = np.asarray(read_samples(path, (DS_SOLVE_SECONDS,))[DS_SOLVE_SECONDS])
    return seconds[np.isfinite(seconds) & (seconds > 0)].astype(np.float64)


def _file_entry(info: DatasetInfo, digest: str) -> dict[str, Any]:
    """One file of a dataset's provenance."""
    entry: dict[str, Any] = {"file": info.path.name, "sha256": digest, "n_samples": info.n}
    entry["applied_strain"] = info.applied_strain
    if info.shard:
        entry["shard"] = info.shard
    return entry


def summarize_union(union: DatasetUnion) -> DatasetSummary:
    """:func:`summarize` of a dataset of one or many files; ``files`` lists each with its sha256.

    For several files, T_data is the sum of the files' T_data (machine time, wherever each was
    generated), T_simulation the median solve time over all their samples; the generator is the
    files' common one, else ``{"files": {name: generator}}``.
    """
    if len(union.infos) == 1:
        return summarize(union.paths[0])
    parts = [summarize(p) for p in union.paths]
    seconds = np.concatenate([_solve_seconds(p) for p in union.paths])
    timed = all(part.t_data is not None for part in parts)
    generators = {i.path.name: i.generator for i in union.infos}
    first = union.infos[0]
    common = all(g == first.generator for g in generators.values())
    return DatasetSummary(
        file=union.description,
        sha256=None,
        n_samples=union.n,
        t_data=sum(float(part.t_data or 0.0) for part in parts) if timed else None,
        t_data_source=f"sum over {len(parts)} files of each file's T_data"
        if timed
        else "none: not every file records its generation time",
        t_simulation=float(np.median(seconds)) if timed and seconds.size else None,
        t_simulation_mean=float(seconds.mean()) if timed and seconds.size else None,
        hardware="; ".join(sorted({part.hardware for part in parts})),
        load_case=first.load_case,
        generator=first.generator if common else {"files": generators},
        discretization=first.discretization,
        files=[f for part in parts for f in part.files],
    )


# --- writing a whole file at once ------------------------------------------------------------


def write_dataset(
    path: str | os.PathLike[str],
    youngs_modulus: np.ndarray,
    strain: np.ndarray,
    *,
    applied_strain: float = DEFAULT_APPLIED_STRAIN,
    plane: str = DEFAULT_PLANE,
    generator: dict[str, Any] | None = None,
    discretization: dict[str, Any] | None = None,
    seed: np.ndarray | None = None,
    solve_seconds: np.ndarray | None = None,
    wall_seconds: float | None = None,
    complete: bool = True,
    fiber: Material = FIBER,
    matrix: Material = MATRIX,
    c_eff: np.ndarray | None = None,
    extra: dict[str, tuple[np.ndarray, dict[str, Any]]] | None = None,
    attrs: dict[str, Any] | None = None,
) -> Path:
    """Write E ``[N, 1, 32, 32]`` and strain ``[N, 3, 32, 32]`` (for ``applied_strain``) atomically.

    A SPEC §4 file; missing per-sample seeds count from 0, missing solve times are NaN. Strain
    ``[N, 3, 3, n, n]`` (the three unit cases) makes a periodic SPEC §11 file, with E
    ``[N, 1, n, n]`` and ``c_eff`` ``[N, 3, 3]`` MPa (computed from the strain when not given).
    ``fiber``, ``matrix``: the phases (recorded in ``materials``); ``extra``: more datasets, name
    -> (values ``[N, ...]``, their attributes); ``attrs``: more root attributes.
    """
    periodic = np.ndim(strain) == 5
    side = int(np.shape(youngs_modulus)[-1]) if periodic else GRID
    shapes = fields_of("periodic" if periodic else DEFAULT_BOUNDARY, side)
    e = np.asarray(youngs_modulus, dtype=np.float32).reshape(-1, *shapes[DS_E][1])
    s = np.asarray(strain, dtype=np.float32).reshape(-1, *shapes[DS_STRAIN][1])
    n = e.shape[0]
    if s.shape[0] != n:
        raise MicrostrainError(f"E holds {n} samples but strain {s.shape[0]}")
    arrays = {
        DS_E: e,
        DS_STRAIN: s,
        DS_FIBER_FRACTION: fiber_fraction(e, fiber=fiber, matrix=matrix),
        DS_SEED: np.arange(n, dtype=np.int64) if seed is None else np.asarray(seed, np.int64),
        DS_SOLVE_SECONDS: (
            np.full(n, np.nan) if solve_seconds is None else np.asarray(solve_seconds, np.float64)
        ),
    }
    if periodic:
        if c_eff is None:
            c_eff = effective_stiffness(e, s, plane, applied_strain, fiber=fiber, matrix=matrix)
        arrays[DS_C_EFF] = np.asarray(c_eff, dtype=np.float64).reshape(n, N_STRAIN, N_CASES)
    more = {name: np.asarray(values) for name, (values, _) in (extra or {}).items()}
    h5py = _h5py()
    with atomic_output(path) as tmp, h5py.File(tmp, "w") as f:
        for name, values in {**arrays, **more}.items():
            chunks = (min(CHUNK_SAMPLES, max(n, 1)), *values.shape[1:])
            f.create_dataset(name, data=values, chunks=chunks, **COMPRESSION)
        for name, (_, dataset_attrs) in (extra or {}).items():
            for key, value in dataset_attrs.items():
                f[name].attrs[key] = value
        f[DS_STRAIN].attrs["channels"] = list(STRAIN_CHANNELS)
        if periodic:
            f[DS_STRAIN].attrs["cases"] = list(PERIODIC_CASES)
            f[DS_C_EFF].attrs["units"] = "MPa"
        f.attrs[ATTR_SCHEMA_VERSION] = SCHEMA_VERSION
        boundary = "periodic" if periodic else DEFAULT_BOUNDARY
        f.attrs[ATTR_LOAD_CASE] = json.dumps(load_case_attr(boundary, applied_strain, plane))
        f.attrs[ATTR_MATERIALS] = json.dumps(materials_attr(fiber, matrix))
        f.attrs[ATTR_GENERATOR] = json.dumps(generator or {})
        f.attrs[ATTR_DISCRETIZATION] = json.dumps(discretization or {"mode": "pixel", "k": 1})
        f.attrs[ATTR_SOFTWARE] = json.dumps({})
        f.attrs[ATTR_CREATED] = timestamp()
        if wall_seconds is not None:
            f.attrs[ATTR_WALL_SECONDS] = wall_seconds
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
        f.attrs[ATTR_COMPLETE] = complete
    return Path(path)
