"""A long-lived FE solver process: ``python -m data_gen.fe_worker``.

Imports dolfinx once, then answers solve requests on stdin/stdout (the frames of
:mod:`microstrain.fe_client`, which starts and supervises these processes) until stdin closes.
One :class:`~data_gen.solver.StrainSolver` per configuration is kept, so a request pays for its
solves only (a new configuration once for the solver's set-up). Anything the native libraries
print goes to stderr: stdout carries the frames alone.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import fields
from typing import IO, Any

import numpy as np

from microstrain.conventions import Material
from microstrain.errors import MicrostrainError
from microstrain.fe_client import array_payload, payload_array, read_frame, write_frame

MAX_SOLVERS = 4  # configurations kept at once (a service uses one; each holds a factorization)


def _protocol_streams() -> tuple[IO[bytes], IO[bytes]]:
    """(stdin, a private copy of stdout); fd 1 then points at stderr for native prints."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    return sys.stdin.buffer, out


def solver_config(raw: dict[str, Any]) -> Any:
    """A :class:`~data_gen.solver.SolverConfig` from a request's ``config`` dict."""
    from data_gen.solver import SolverConfig

    known = {f.name for f in fields(SolverConfig)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise MicrostrainError(f"unknown solver settings: {', '.join(unknown)}")
    values = dict(raw)
    for phase in ("fiber", "matrix"):
        if isinstance(values.get(phase), dict):
            values[phase] = Material(**values[phase])
    return SolverConfig(**values)


class Worker:
    """The solvers of one process, by configuration."""

    def __init__(self) -> None:
        self.solvers: dict[Any, Any] = {}

    def solver(self, config: Any) -> tuple[Any, float]:
        """(the solver of ``config``, seconds spent building it now)."""
        from data_gen.solver import StrainSolver

        if config in self.solvers:
            return self.solvers[config], 0.0
        start = time.perf_counter()
        if len(self.solvers) >= MAX_SOLVERS:
            self.solvers.pop(next(iter(self.solvers)))
        self.solvers[config] = StrainSolver(config)
        return self.solvers[config], time.perf_counter() - start

    def answer(self, header: dict[str, Any], payload: bytes) -> tuple[dict[str, Any], bytes]:
        """The answer frame of one request frame."""
        try:
            solver, setup = self.solver(solver_config(header.get("config", {})))
            if header.get("warm"):
                return {"ok": True, "setup_seconds": setup, "solve_seconds": 0.0}, b""
            youngs_modulus = payload_array(header, payload)
            start = time.perf_counter()
            strain = solver.solve_batch(youngs_modulus).astype(np.float32)
            seconds = time.perf_counter() - start
        except (MicrostrainError, ValueError, TypeError, KeyError) as exc:
            return {"ok": False, "error": str(exc) or type(exc).__name__}, b""
        fields_, data = array_payload(strain)
        return {"ok": True, "solve_seconds": seconds, "setup_seconds": setup, **fields_}, data


def main() -> None:
    stdin, stdout = _protocol_streams()
    from data_gen.elasticity import load_fe_stack

    load_fe_stack()  # the import that a per-check process paid every time
    worker = Worker()
    write_frame(stdout, {"ready": True, "pid": os.getpid()})
    while (frame := read_frame(stdin)) is not None:
        header, data = worker.answer(*frame)
        write_frame(stdout, header, data)


if __name__ == "__main__":
    main()
