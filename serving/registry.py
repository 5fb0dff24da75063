"""Which models one service serves (SPEC §8, §11 REST): found, loaded, checked and looked up.

``microstrain serve`` serves every model directory under ``models/`` (one with a ``model.onnx``)
or those named with repeated ``--model``; it hands the list to the workers in
``MICROSTRAIN_MODELS`` (directories joined by ``os.pathsep``). ``MICROSTRAIN_MODEL`` (one
directory) still selects a single model, for ``bentoml serve`` and container images.

Each model is loaded alone and checked against its card's sha256 (:meth:`SurrogateModel.load`);
one that fails is refused with one line and the others are still served. A model's name is its
directory's name (``models/periodic`` is ``periodic``). A request names a model that way and the
name is only ever a key of :class:`ServedModels`: it is never joined into a path, so
``"../../etc"`` is an unknown name like any other (404 naming the served models).

A model holds its onnxruntime sessions (one for large batches, the small-request ones of
:mod:`serving.small_sessions`), one lock per session (a session runs one call at a time) and its
own prediction counter (:mod:`serving.state`, keyed by the graph's sha256).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from microstrain.conventions import (
    DEFAULT_APPLIED_STRAIN,
    DEFAULT_MODEL_NAME,
    MATRIX,
    MODEL_ENV_VAR,
    MODEL_FILE,
    MODELS_DIR,
)
from microstrain.errors import MicrostrainError
from microstrain.fe_client import discretization
from microstrain.surrogate import PeriodicPrediction, SurrogateModel, repository_root
from serving.small_sessions import SmallSessions
from serving.state import PredictionCounter
from serving.validation import RequestError

MODELS_ENV_VAR = "MICROSTRAIN_MODELS"
SMALL_BATCH = 4  # samples up to which a request runs inline, on the small-request session
CHUNK = 64  # samples per onnxruntime run of a large batch: bounds the activation memory
# the card's headline measures that GET /models repeats (test split), per mode
HEADLINE_MEASURES = {
    "uniaxial": ("strain_relative_l2", "energy_norm_error", "E_x_error_mean"),
    "periodic": ("strain_relative_l2", "energy_norm_error", "C_eff_error_mean"),
}


class UnknownModel(RequestError):
    """A request named a model this service does not serve (404)."""

    def __init__(self, name: str, served: list[str]) -> None:
        super().__init__(
            f"model {name!r} is not served here; served models: {', '.join(served)} "
            "(GET /models lists them)",
            404,
        )


def model_directories() -> list[Path]:
    """The model directories to serve: ``$MICROSTRAIN_MODELS``, else ``$MICROSTRAIN_MODEL``,
    else every directory under ``models/`` of this checkout that holds a ``model.onnx``."""
    many = os.environ.get(MODELS_ENV_VAR, "")
    if many.strip():
        return [Path(p) for p in many.split(os.pathsep) if p.strip()]
    one = os.environ.get(MODEL_ENV_VAR, "")
    if one.strip():
        return [Path(one)]
    return discover(repository_root() / MODELS_DIR)


def discover(root: Path) -> list[Path]:
    """Subdirectories of ``root`` that hold a ``model.onnx``, ``default`` first, then by name."""
    if not root.is_dir():
        return []
    found = sorted(d for d in root.iterdir() if (d / MODEL_FILE).is_file())
    return sorted(found, key=lambda d: d.name != DEFAULT_MODEL_NAME)


@dataclass
class ServedModel:
    """One served model: its sessions, the locks that serialize them, its counter."""

    name: str
    large: SurrogateModel  # batches above the small-request size, threads = the worker's share
    small: SmallSessions[SurrogateModel]
    counter: PredictionCounter
    _locks: dict[int, threading.Lock] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for session in (self.large, *self.small.sessions.values()):
            self._locks[id(session)] = threading.Lock()
        self.fe_mode, self.k, _ = discretization(self.card)
        self.plane = self.large.plane
        self.mode = "periodic" if self.large.is_periodic else "uniaxial"
        self.sizes = tuple(self.large.input_sizes)
        self.info = {"name": self.name, "version": self.large.version, "sha256": self.sha256}

    @property
    def card(self) -> dict[str, Any]:
        return self.large.card

    @property
    def sha256(self) -> str:
        return self.large.sha256

    @property
    def periodic(self) -> bool:
        return self.mode == "periodic"

    def sessions(self) -> Iterator[SurrogateModel]:
        yield self.large
        yield from (s for s in self.small.sessions.values() if s is not self.large)

    def session_for(self, n: int) -> tuple[SurrogateModel, threading.Lock]:
        """The session for a request of ``n`` samples (and the lock to hold while it runs)."""
        session = self.small.pick() if n <= SMALL_BATCH else self.large
        return session, self._locks[id(session)]

    def run_periodic(self, youngs_modulus: np.ndarray) -> PeriodicPrediction:
        """The unit cases ``[N, 3, 3, n, n]`` (ū = 0.1), C_eff ``[N, 3, 3]`` MPa and the error
        estimate ``[N]`` of a periodic model for E ``[N, 1, n, n]`` MPa."""
        session, lock = self.session_for(youngs_modulus.shape[0])
        with lock:
            return session.predict_periodic(youngs_modulus, DEFAULT_APPLIED_STRAIN, CHUNK)

    def run_uniaxial(
        self, youngs_modulus: np.ndarray, applied_strain: float, estimate: bool = True
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Strain ``[N, 3, 32, 32]`` at ū and the error estimate ``[N]`` (None if the model has
        none, or without ``estimate``) for E ``[N, 1, 32, 32]`` MPa."""
        session, lock = self.session_for(youngs_modulus.shape[0])
        with lock:
            if estimate:
                return session.predict_with_estimate(youngs_modulus, applied_strain, CHUNK)
            return session.predict(youngs_modulus, applied_strain, CHUNK), None

    def summary(self, default: bool) -> dict[str, Any]:
        """What ``GET /models`` says of this model."""
        test = self.card.get("metrics", {}).get("test", {})
        headline = {k: test[k] for k in HEADLINE_MEASURES[self.mode] if k in test}
        return {
            "name": self.name,
            "default": default,
            "mode": self.mode,
            "plane": self.plane,
            "input_sizes": list(self.sizes),
            "applied_strain": DEFAULT_APPLIED_STRAIN,
            "version": self.large.version,
            "sha256": self.sha256,
            "error_estimate": self.large.has_error_estimate,
            "measures": {"split": "test", **headline} if headline else {},
        }

    def warm_up(self) -> None:
        """One run per session, so the first client does not pay onnxruntime's lazy start."""
        e = np.full((1, 1, self.sizes[0], self.sizes[0]), MATRIX.youngs_modulus, np.float32)
        for session in self.sessions():
            if self.periodic:
                session.predict_periodic(e)
            else:
                session.predict(e)


def load_model(directory: Path, threads: int, small_threads: tuple[int, ...]) -> ServedModel:
    """The model in ``directory`` with a large session of ``threads`` onnxruntime threads and
    one small-request session per entry of ``small_threads`` (none: the large one answers small
    requests too); :class:`MicrostrainError` if it is missing, broken or does not match its
    card."""
    large = SurrogateModel.load(directory, intra_op_threads=threads)
    small = {t: SurrogateModel.load(directory, intra_op_threads=t) for t in small_threads}
    if any(m.sha256 != large.sha256 for m in small.values()):
        raise MicrostrainError(f"{directory} changed while it was being loaded")
    counter = PredictionCounter.for_model(large.sha256)
    return ServedModel(directory.name, large, SmallSessions(small or {threads: large}), counter)


@dataclass
class ServedModels:
    """The models of one service by name; the first is the default unless one is ``default``."""

    models: dict[str, ServedModel]
    refused: list[str] = field(default_factory=list)  # one line per model that was not loaded

    @property
    def default_name(self) -> str:
        return DEFAULT_MODEL_NAME if DEFAULT_MODEL_NAME in self.models else next(iter(self.models))

    @property
    def default(self) -> ServedModel:
        return self.models[self.default_name]

    def names(self) -> list[str]:
        return list(self.models)

    def periodic_names(self) -> list[str]:
        return [m.name for m in self.models.values() if m.periodic]

    def get(self, name: str | None) -> ServedModel:
        """The model a request named (``None``: the default); :class:`UnknownModel` (404)."""
        if name is None:
            return self.default
        if not isinstance(name, str) or name not in self.models:
            raise UnknownModel(str(name), self.names())
        return self.models[name]

    def __iter__(self) -> Iterator[ServedModel]:
        return iter(self.models.values())

    def listing(self) -> dict[str, Any]:
        """``GET /models``: every served model's summary, the default first."""
        ordered = sorted(self.models.values(), key=lambda m: m.name != self.default_name)
        return {
            "default": self.default_name,
            "models": [m.summary(m.name == self.default_name) for m in ordered],
        }


def load_models(
    directories: list[Path], threads: int, small_threads: tuple[int, ...]
) -> ServedModels:
    """Every loadable model of ``directories``; one that fails is refused alone (a line in
    ``refused``), a second model of the same name too. :class:`MicrostrainError` if none loads.
    Only the first (the default) gets the small-request sessions of ``small_threads``."""
    if len(directories) == 1:  # one model: its own error is the one line
        only = load_model(directories[0], threads, small_threads)
        return ServedModels({only.name: only})
    models: dict[str, ServedModel] = {}
    refused: list[str] = []
    for directory in directories:
        name = directory.name
        if name in models:
            refused.append(
                f"model {name!r} ({directory}) refused: a model of that name is already served "
                f"from {models[name].large.directory}"
            )
            continue
        # the default model (the first that loads) keeps its large and small-request sessions;
        # every further model answers all its requests from one session, so that serving it
        # costs one onnxruntime session of memory. That session has the small requests' fewest
        # threads: a one-sample request is the common one, and on a shared machine the fewest
        # threads answer it fastest (serving.small_sessions); large batches of a further model
        # pay for it in throughput.
        size = threads if not models or not small_threads else min(small_threads)
        small = small_threads if not models else ()
        try:
            models[name] = load_model(directory, size, small)
        except MicrostrainError as exc:
            refused.append(f"model {name!r} refused: {exc}")
    if not models:
        if not directories:
            raise MicrostrainError(
                f"no model to serve: {MODELS_DIR}/ holds no model directory (model.onnx + "
                "card.json); name one with --model"
            )
        raise MicrostrainError("no model could be served: " + "; ".join(refused))
    return ServedModels(models, refused)
