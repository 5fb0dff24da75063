"""Bounded FE checks: at most C solves run at once and at most Q requests wait, in all workers.

The slots are lock files in one directory that every worker of the service shares (under the
state directory, :func:`serving.state.state_dir`): ``run-<i>`` for i < C and ``admit-<j>`` for
j < C + Q. A ``/verify`` request first takes any free admission file with a non-blocking
``flock`` (none free: :class:`Busy`, answered 429 with ``Retry-After``), then polls the run files
until one is free (longer than its wait limit: :class:`WaitedTooLong`, 503 with
``Retry-After``). ``flock`` locks belong to the open file, so the coroutines of one worker
exclude each other as processes do, and the kernel drops the locks of a worker that dies (even
by SIGKILL) with its files: no slot is ever lost. Waiting requests poll, so they are not
served strictly in arrival order.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import math
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from serving.validation import RequestError

POLL_S = 0.05  # a waiting request looks for a free solve this often; solves take seconds


class Busy(RequestError):
    """All solve and waiting places are taken (429); ``retry_after`` in whole seconds."""

    def __init__(self, message: str, retry_after: int, status: int = 429) -> None:
        super().__init__(message, status)
        self.retry_after = retry_after


class WaitedTooLong(Busy):
    """A request waited its limit for a solve (503)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, retry_after, 503)


@dataclass
class SolveSlots:
    """C run slots and C + Q admission slots as lock files in ``directory``."""

    directory: Path
    concurrency: int
    queue: int
    typical_solve_s: float = 5.0  # updated by :meth:`record`; only sizes Retry-After

    @classmethod
    def in_directory(cls, directory: Path, concurrency: int, queue: int) -> SolveSlots:
        """Slots shared through ``directory``; a private one if it cannot be made (then the
        limits hold per worker only)."""
        try:
            directory.mkdir(parents=True, exist_ok=True)
            probe = directory / "admit-0.lock"
            probe.touch()
        except OSError:
            directory = Path(tempfile.mkdtemp(prefix="microstrain-verify-slots-"))
        return cls(directory, concurrency, queue)

    def retry_after(self) -> int:
        """Seconds until a place is likely free: the work ahead divided among the solves."""
        ahead = (self.concurrency + self.queue) / self.concurrency
        return max(1, math.ceil(self.typical_solve_s * ahead))

    def record(self, seconds: float) -> None:
        """Remember a solve's duration (exponential average) for Retry-After."""
        self.typical_solve_s = 0.7 * self.typical_solve_s + 0.3 * seconds

    @contextlib.asynccontextmanager
    async def slot(self, wait_s: float) -> AsyncIterator[None]:
        """Hold a run slot for the block; raise :class:`Busy` or :class:`WaitedTooLong`."""
        admission = self._take("admit", self.concurrency + self.queue)
        if admission is None:
            raise Busy(
                f"the FE solver is busy: {self.concurrency} check(s) running and "
                f"{self.queue} waiting (MICROSTRAIN_VERIFY_CONCURRENCY, MICROSTRAIN_VERIFY_QUEUE);"
                " try again later",
                self.retry_after(),
            )
        try:
            deadline = time.monotonic() + wait_s
            while (running := self._take("run", self.concurrency)) is None:
                if time.monotonic() > deadline:
                    raise WaitedTooLong(
                        f"waited {wait_s:g} s for a free FE solve (MICROSTRAIN_VERIFY_TIMEOUT_S);"
                        " try again later",
                        self.retry_after(),
                    )
                await asyncio.sleep(POLL_S)
            try:
                yield
            finally:
                running.close()  # closing the file drops its lock
        finally:
            admission.close()

    def _take(self, prefix: str, count: int) -> IO[str] | None:
        """An open, exclusively locked ``<prefix>-<i>.lock`` of the first free i, or None."""
        for i in range(count):
            handle = open(self.directory / f"{prefix}-{i}.lock", "a")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            return handle
        return None
