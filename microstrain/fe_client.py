"""Long-lived FE solver processes, seen from a program that must not import dolfinx.

The solver (:mod:`data_gen.fe_worker`, run as ``python -m data_gen.fe_worker``) imports dolfinx
once, keeps one factorization-ready solver per configuration and answers solves over its stdin
and stdout until its stdin closes. :class:`FEPool` keeps ``size`` of them running for a program
(the REST service's ``/verify``, an evaluation script) and replaces any that dies or is stopped.

Frames (both directions): a 4-byte big-endian length, that many bytes of JSON header, then
``header["nbytes"]`` bytes of payload (a C-ordered array, dtype and shape in the header).

- request ``{"config": {...}, "shape": [N, 1, n, n], "dtype": "float32", "nbytes": B}`` + E (MPa);
  ``config`` holds :class:`data_gen.solver.SolverConfig`'s fields (materials as dicts); with
  ``"warm": true`` and no payload the worker only builds the solver of ``config``;
- answer ``{"ok": true, "shape": [...], "dtype": "float32", "nbytes": B, "solve_seconds": s,
  "setup_seconds": s}`` + strain, or ``{"ok": false, "error": "message"}`` for input the solver
  refuses. The worker's first frame is ``{"ready": true, "pid": p}``.

A solve past its time limit, or whose caller is cancelled, is ended by killing the worker's
process group (a MUMPS factorization cannot be interrupted); the pool starts a replacement at
once, so the next request waits only for the replacement's start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

import numpy as np

from microstrain.conventions import (
    DEFAULT_BOUNDARY,
    DEFAULT_K,
    DEFAULT_MODE,
    DEFAULT_PLANE,
    PERIODIC_LOAD_CASE,
)
from microstrain.errors import MicrostrainError

WORKER_MODULE = "data_gen.fe_worker"
START_TIMEOUT_S = 60.0  # importing dolfinx and building a solver; a busy machine is slow
_LENGTH = struct.Struct(">I")


# --- which solver a model's card asks for (its training data's discretization, plane, phases) -
def fe_solver_available() -> bool:
    """Whether the FE worker can run here; looks the modules up, imports nothing."""
    return all(importlib.util.find_spec(name) is not None for name in ("dolfinx", "data_gen"))


def discretization(card: dict[str, Any]) -> tuple[str, int, str]:
    """(mode, k, plane) of the model's training data; SPEC defaults when the card is silent."""
    data = card.get("training_data", {})
    disc = data.get("discretization", {})
    mode = str(disc.get("mode", DEFAULT_MODE))
    k = int(disc.get("k", DEFAULT_K if mode == "refined" else 1))
    plane = str(data.get("load_case", {}).get("plane", DEFAULT_PLANE))
    return mode, k, plane


def is_periodic(card: dict[str, Any]) -> bool:
    """Whether the model was trained on periodic RVEs (SPEC §11)."""
    load_case = card.get("training_data", {}).get("load_case", {})
    return load_case.get("name") == PERIODIC_LOAD_CASE


def solver_config(card: dict[str, Any], grid: int | None = None) -> dict[str, Any]:
    """The FE worker's solver settings for the model of ``card`` (SolverConfig's fields) on
    ``grid`` x ``grid`` images (None: the solver's default, 32)."""
    mode, k, plane = discretization(card)
    config: dict[str, Any] = {"mode": mode, "k": k, "plane": plane}
    config["boundary"] = "periodic" if is_periodic(card) else DEFAULT_BOUNDARY
    if grid is not None:
        config["grid"] = int(grid)
    materials = card.get("training_data", {}).get("materials") or {}
    for phase in ("fiber", "matrix"):
        if isinstance(materials.get(phase), dict):
            config[phase] = materials[phase]
    return config


class SolveTimeout(MicrostrainError):
    """The FE solve ran past its limit and its worker was stopped (answered 504)."""


class WorkerDied(MicrostrainError):
    """The worker ended during the request (killed, crashed); a replacement is starting.

    ``retry_after``: seconds after which a new request will likely find the replacement ready.
    """

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SolveFailed(MicrostrainError):
    """The solver refused the input or failed on it (the worker stays up)."""


# --- frames ------------------------------------------------------------------------------------
def write_frame(stream: IO[bytes], header: dict[str, Any], payload: bytes = b"") -> None:
    """Write one frame (module doc) and flush."""
    data = json.dumps({**header, "nbytes": len(payload)}).encode()
    stream.write(_LENGTH.pack(len(data)) + data)
    if payload:
        stream.write(payload)
    stream.flush()


def read_frame(stream: IO[bytes]) -> tuple[dict[str, Any], bytes] | None:
    """One frame from a blocking stream; None at a clean end of stream."""
    head = _read_exactly(stream, _LENGTH.size)
    if head is None:
        return None
    header = json.loads(_read_or_fail(stream, _LENGTH.unpack(head)[0]))
    return header, _read_or_fail(stream, int(header.get("nbytes", 0)))


def _read_exactly(stream: IO[bytes], n: int) -> bytes | None:
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            if left == n:
                return None
            raise EOFError("the stream ended inside a frame")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_or_fail(stream: IO[bytes], n: int) -> bytes:
    data = _read_exactly(stream, n) if n else b""
    if data is None:
        raise EOFError("the stream ended inside a frame")
    return data


def array_payload(array: np.ndarray) -> tuple[dict[str, Any], bytes]:
    """(shape and dtype header fields, bytes) of ``array``."""
    array = np.ascontiguousarray(array)
    return {"shape": list(array.shape), "dtype": str(array.dtype)}, array.tobytes()


def payload_array(header: dict[str, Any], payload: bytes) -> np.ndarray:
    """The array a frame carries."""
    return np.frombuffer(payload, dtype=np.dtype(header["dtype"])).reshape(header["shape"])


# --- one worker --------------------------------------------------------------------------------
class FEWorker:
    """One ``python -m data_gen.fe_worker`` process, leading its own process group."""

    def __init__(self, command: Sequence[str]) -> None:
        self.process = subprocess.Popen(
            list(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,  # a kill of the group reaches whatever the solver started
        )
        self.ready = False
        self.warming = 0  # warm-up requests sent whose answers are still to be read
        self.pid = self.process.pid
        self._buffer = b""

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the worker's process group and reap the worker."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        for pipe in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):
                if pipe is not None:
                    pipe.close()

    def wait_ready(self, deadline: float) -> None:
        """Block until the worker's ready frame (TimeoutError past ``deadline``, monotonic)."""
        if self.ready:
            return
        header, _ = self.read_answer(deadline)
        if not header.get("ready"):
            raise WorkerDied(f"the FE worker (pid {self.pid}) started with {header!r}")
        self.ready = True

    def call(
        self, header: dict[str, Any], payload: bytes, deadline: float
    ) -> tuple[dict[str, Any], bytes]:
        """Send one request and wait for its answer until ``deadline`` (monotonic)."""
        self.wait_ready(deadline)
        assert self.process.stdin is not None
        try:
            write_frame(self.process.stdin, header, payload)
        except (BrokenPipeError, OSError):
            raise self._died() from None
        return self.read_answer(deadline)

    def read_answer(self, deadline: float) -> tuple[dict[str, Any], bytes]:
        """The next frame from the worker's stdout, reading with ``select`` so that the wait
        ends at ``deadline`` (TimeoutError) or when the worker dies (WorkerDied)."""
        stdout = self.process.stdout
        assert stdout is not None
        fd = stdout.fileno()
        need: int | None = None
        while True:
            if need is None and len(self._buffer) >= _LENGTH.size:
                length = _LENGTH.unpack(self._buffer[: _LENGTH.size])[0]
                if len(self._buffer) >= _LENGTH.size + length:
                    header = json.loads(self._buffer[_LENGTH.size : _LENGTH.size + length])
                    self._buffer = self._buffer[_LENGTH.size + length :]
                    need = int(header.get("nbytes", 0))
            if need is not None and len(self._buffer) >= need:
                payload, self._buffer = self._buffer[:need], self._buffer[need:]
                return header, payload
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            readable, _, _ = select.select([fd], [], [], left)
            if not readable:
                continue
            try:
                chunk = os.read(fd, 1 << 20)
            except OSError:
                chunk = b""
            if not chunk:
                raise self._died()
            self._buffer += chunk

    def _died(self) -> WorkerDied:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=2)
        code = self.process.returncode
        how = f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"
        return WorkerDied(f"the FE worker (pid {self.pid}) ended during the request ({how})")


# --- a supervised pool -------------------------------------------------------------------------
class FEPool:
    """``size`` FE workers kept running; :meth:`solve` (blocking) and :meth:`asolve` (asyncio).

    A worker that dies, times out or is cancelled is killed and replaced at once. ``warm``: the
    solver configurations every new worker builds before its first request (one per served
    model), so that a check pays only for its solve.
    """

    def __init__(
        self,
        size: int,
        warm: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
        command: Sequence[str] | None = None,
    ) -> None:
        self.size = max(1, int(size))
        # distinct configurations only: two models of one discretization share a solver
        configs = [warm] if isinstance(warm, dict) else list(warm or [])
        self.warm = [c for i, c in enumerate(configs) if c not in configs[:i]]
        self.command = list(command or [sys.executable, "-m", WORKER_MODULE])
        self._idle: list[FEWorker] = []
        self._all: list[FEWorker] = []
        self._lock = threading.Condition()
        self._closed = False

    def start(self) -> FEPool:
        """Start the workers now (their start-up runs in the background)."""
        with self._lock:
            while len(self._all) < self.size:
                self._spawn_locked()
        return self

    def pids(self) -> list[int]:
        with self._lock:
            return [w.pid for w in self._all]

    def busy(self) -> int:
        """Workers serving a request now."""
        with self._lock:
            return len(self._all) - len(self._idle)

    def close(self) -> None:
        """Stop every worker (closing stdin ends one cleanly; the kill makes sure)."""
        with self._lock:
            self._closed = True
            workers, self._all, self._idle = self._all, [], []
            self._lock.notify_all()
        for worker in workers:
            worker.kill()

    def _spawn_locked(self) -> FEWorker:
        worker = FEWorker(self.command)
        for config in self.warm:
            assert worker.process.stdin is not None
            with contextlib.suppress(OSError):  # answered after the ready frame (see solve)
                write_frame(worker.process.stdin, {"config": config, "warm": True})
            worker.warming += 1
        self._all.append(worker)
        self._idle.append(worker)
        return worker

    def _take(self, deadline: float) -> FEWorker:
        with self._lock:
            while True:
                if self._closed:
                    raise WorkerDied("the FE worker pool is closed")
                while len(self._all) < self.size:
                    self._spawn_locked()
                for worker in list(self._idle):
                    if not worker.alive():  # died while idle: replaced, nobody was waiting
                        self._discard_locked(worker)
                        self._spawn_locked()
                if self._idle:
                    return self._idle.pop(0)
                if not self._lock.wait(max(0.0, deadline - time.monotonic())):
                    raise TimeoutError

    def _discard_locked(self, worker: FEWorker) -> None:
        if worker in self._idle:
            self._idle.remove(worker)
        if worker in self._all:
            self._all.remove(worker)

    def _give_back(self, worker: FEWorker, healthy: bool) -> None:
        if not healthy:
            worker.kill()
        with self._lock:
            if healthy and not self._closed:
                self._idle.append(worker)
            else:
                self._discard_locked(worker)
                if not self._closed:
                    self._spawn_locked()  # the replacement starts now, not at the next request
            self._lock.notify_all()

    def solve(
        self,
        youngs_modulus: np.ndarray,
        config: dict[str, Any],
        timeout_s: float,
        on_worker: Callable[[FEWorker], None] | None = None,
    ) -> tuple[np.ndarray, dict[str, float]]:
        """FE strain of E maps ``[N, 1, n, n]`` (MPa) for ``config`` -> (float32 strain
        ``[N, 3, n, n]`` uniaxial or ``[N, 3 cases, 3, n, n]`` periodic, timings in s).

        Timings: ``solve`` (inside the worker), ``setup`` (building a solver for a new
        configuration), ``overhead`` (everything else: waiting for a worker or its start-up,
        transferring the arrays). Raises :class:`SolveTimeout` past ``timeout_s`` (the worker is
        killed and replaced), :class:`WorkerDied` if it died meanwhile, :class:`SolveFailed`
        if the solver refused the input. ``on_worker`` is told which worker took the request.
        """
        start = time.perf_counter()
        deadline = time.monotonic() + timeout_s
        worker: FEWorker | None = None
        healthy = False
        try:
            worker = self._take(deadline)
            if on_worker is not None:
                on_worker(worker)
            if worker.warming:
                worker.wait_ready(deadline)
                for _ in range(worker.warming):
                    worker.read_answer(deadline)  # the warm-ups' (an error shows at the solve)
                worker.warming = 0
            fields, payload = array_payload(np.asarray(youngs_modulus, dtype=np.float32))
            header, data = worker.call({"config": config, **fields}, payload, deadline)
            healthy = True
        except TimeoutError:
            raise SolveTimeout(
                f"the FE solve took longer than {timeout_s:g} s and was stopped"
            ) from None
        finally:
            if worker is not None:
                self._give_back(worker, healthy)
        if not header.get("ok"):
            raise SolveFailed(f"FE solve failed: {header.get('error', 'no message')}")
        strain = payload_array(header, data).astype(np.float32)
        solve_s, setup_s = float(header["solve_seconds"]), float(header.get("setup_seconds", 0))
        total = time.perf_counter() - start
        return strain, {"solve": solve_s, "setup": setup_s, "overhead": total - solve_s - setup_s}

    async def asolve(
        self, youngs_modulus: np.ndarray, config: dict[str, Any], timeout_s: float
    ) -> tuple[np.ndarray, dict[str, float]]:
        """:meth:`solve` in a thread; a cancelled caller stops (and replaces) the worker."""
        taken: list[FEWorker] = []
        try:
            return await asyncio.to_thread(
                self.solve, youngs_modulus, config, timeout_s, taken.append
            )
        except asyncio.CancelledError:
            for worker in taken:
                worker.kill()  # the thread then sees the end of its stream and gives it back
            raise
