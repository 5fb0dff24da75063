"""Breakeven bookkeeping (SPEC §6): predictions served, persisted so restarts keep counting.

The count lives in a small JSON file per model (keyed by the ONNX sha256, so a new model starts
from zero). Several workers update it: each update takes an exclusive ``flock`` on a lock file
beside it and replaces the file atomically (:func:`microstrain.files.write_json`), so a crash
never leaves half a file.

An atomic replace costs milliseconds (10 ms and more on a busy disk), more than a one-sample
prediction, so the service does not write per request: it counts in memory and a background
thread writes the pending count once a second (:meth:`PredictionCounter.start`) and at shutdown.
A worker killed with SIGKILL loses at most the last second of its count.

Location: ``$MICROSTRAIN_STATE_DIR`` if set, else ``$XDG_STATE_HOME/microstrain`` (default
``~/.local/state/microstrain``): writable by the service user and outside the repository.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from microstrain.breakeven import format_tau
from microstrain.errors import MicrostrainError
from microstrain.files import write_json

STATE_DIR_ENV_VAR = "MICROSTRAIN_STATE_DIR"


def state_dir() -> Path:
    env = os.environ.get(STATE_DIR_ENV_VAR)
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "microstrain"


@dataclass
class PredictionCounter:
    """Predictions (samples, not requests) served with one model, shared by all workers.

    ``add`` writes through at once unless :meth:`start` runs the once-a-second writer.
    """

    path: Path
    _pending: int = field(default=0, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _stop: threading.Event | None = field(default=None, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    @classmethod
    def for_model(cls, model_sha256: str, directory: Path | None = None) -> PredictionCounter:
        d = directory if directory is not None else state_dir()
        return cls(d / f"serving-{model_sha256[:16]}.json")

    def read(self) -> dict[str, Any]:
        """The state on disk plus this process's count not written yet."""
        state = self._read_file()
        state["predictions"] = int(state.get("predictions", 0)) + self._pending
        return state

    def _read_file(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except (OSError, json.JSONDecodeError):
            return {"predictions": 0, "first_served": None}
        return data if isinstance(data, dict) else {"predictions": 0, "first_served": None}

    def add(self, n: int) -> None:
        """Count ``n`` predictions: written now, or by the writer thread if it runs."""
        with self._lock:
            self._pending += n
        if self._thread is None:
            self.flush()

    def flush(self) -> int:
        """Write the pending count; returns the total. Best effort if the disk refuses."""
        with self._lock:
            pending, self._pending = self._pending, 0
        if pending == 0:
            return int(self._read_file().get("predictions", 0))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path.with_suffix(".lock"), "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                state = self._read_file()
                state["predictions"] = int(state.get("predictions", 0)) + pending
                state.setdefault("first_served", None)
                if state["first_served"] is None:
                    state["first_served"] = datetime.now(UTC).isoformat(timespec="seconds")
                write_json(self.path, state)
                return int(state["predictions"])
        except (OSError, MicrostrainError):
            # a full or read-only disk must not fail predictions; the count just stops moving
            return int(self._read_file().get("predictions", 0))

    def start(self, interval_s: float = 1.0) -> None:
        """Write the pending count every ``interval_s`` from a daemon thread, until :meth:`stop`."""
        if self._thread is not None:
            return
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(interval_s):
                self.flush()

        self._stop = stop
        self._thread = threading.Thread(target=run, name="prediction-counter", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the writer thread and write what is pending."""
        if self._stop is not None and self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5)
        self._thread = self._stop = None
        self.flush()


def breakeven_report(predictions: int, card: dict[str, Any]) -> dict[str, Any]:
    """τ as the card holds it, the fraction of τ reached and compute time saved (s) so far.

    τ is read, never recomputed: export measured the times and wrote τ into the card once
    (``tau: null`` means "never": the surrogate is not faster). saved = n·(T_sim − T_surr)
    − T_data − T_train, negative until breakeven. Missing card values give ``None`` fields
    rather than guesses.
    """
    times = {key: card.get(key) for key in ("T_data", "T_train", "T_simulation", "T_surrogate")}
    report: dict[str, Any] = {"predictions": predictions, **times}
    known = all(isinstance(v, int | float) and math.isfinite(v) for v in times.values())
    if "tau" not in card or not known:
        report.update(tau=card.get("tau"), fraction_of_tau=None, seconds_saved=None)
        report["note"] = "the model card lacks tau, T_data, T_train, T_simulation or T_surrogate"
        return report
    tau = card["tau"]
    t_data, t_train, t_sim, t_surr = (float(v) for v in times.values())  # type: ignore[arg-type]
    report["tau"] = tau
    report["tau_text"] = "never" if tau is None else f"{format_tau(tau)} predictions"
    report["fraction_of_tau"] = predictions / tau if tau else None  # tau None: never pays off
    report["seconds_saved"] = predictions * (t_sim - t_surr) - t_data - t_train
    report["paid_off"] = tau is not None and predictions >= tau
    return report
