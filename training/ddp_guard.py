"""What keeps a multi-process (DDP) run from hanging: a bounded collective wait and a prompt stop.

Three things, used by :mod:`training.fit`:

- :func:`set_collective_timeout`: the process group's timeout (``--ddp_timeout_s``, default
  :data:`DEFAULT_DDP_TIMEOUT_S`). A collective that one rank never joins ends on every rank after
  that long with an error, which :func:`collective_error` turns into one line naming the option.
- :class:`StopOnSignal`: SIGINT (Ctrl-C) or SIGTERM to a rank stops it, and the ranks it started,
  within :data:`STOP_GRACE_S` seconds even while it is blocked in a collective. Python runs signal
  handlers only between bytecodes, so a rank waiting in a C++ collective (or Lightning's own
  SIGTERM handler, which broadcasts from inside the handler) never gets to run them; the C-level
  handler still writes the signal's number to the wakeup file descriptor, and a thread waiting
  on it ends the process when the main thread has not done so in time.
- the ordering rule that makes collectives match lives where the metrics are logged
  (:meth:`training.module.StrainRegressor._log_reduced`).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import threading
from datetime import timedelta
from typing import Any

from microstrain.errors import MicrostrainError

DEFAULT_DDP_TIMEOUT_S = 600.0  # longer than any wait between collectives of a healthy run
STOP_GRACE_S = 3.0  # time the main thread has to stop by itself after SIGINT/SIGTERM
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def set_collective_timeout(strategy: Any, seconds: float) -> None:
    """Give a DDP ``strategy`` (not yet set up) a process-group timeout of ``seconds``."""
    if seconds <= 0:
        raise MicrostrainError(f"--ddp_timeout_s must be positive; got {seconds:g}")
    if hasattr(strategy, "_timeout"):  # DDPStrategy keeps the timeout it passes to the group
        strategy._timeout = timedelta(seconds=seconds)


def collective_error(exc: BaseException, seconds: float, rank: int) -> MicrostrainError | None:
    """One line for a DDP collective that timed out or lost its peer; None for other errors."""
    import torch.distributed as dist

    text = str(exc)
    if not isinstance(exc, dist.DistError) and "gloo" not in text.lower():
        return None
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    if "timed out" in text.lower() or "timeout" in text.lower():
        return MicrostrainError(
            f"rank {rank}: a DDP collective waited longer than {seconds:g} s (--ddp_timeout_s) "
            f"for the other processes and the run was stopped ({first})"
        )
    return MicrostrainError(f"rank {rank}: a DDP collective failed, another process ended: {first}")


def end_started_ranks(strategy: Any) -> None:
    """SIGKILL the ranks that Lightning's launcher started from this process (none under
    ``torchrun`` or SLURM, whose launchers end the other ranks themselves)."""
    for proc in getattr(getattr(strategy, "launcher", None), "procs", None) or []:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait(timeout=5)


class StopOnSignal:
    """End this process and its child processes within :data:`STOP_GRACE_S` of SIGINT/SIGTERM.

    Used as a context manager around the fit in the main thread. The usual handlers still run
    first (Lightning's graceful shutdown, KeyboardInterrupt); the thread only acts when the
    process is still alive after the grace time.
    """

    def __init__(self, grace_s: float = STOP_GRACE_S) -> None:
        self.grace_s = grace_s
        self._read_fd = self._write_fd = -1
        self._previous_fd = -1
        self._previous_handlers: dict[int, Any] = {}
        self._stopped = threading.Event()

    def __enter__(self) -> StopOnSignal:
        if threading.current_thread() is not threading.main_thread():
            return self  # signals reach the main thread only: nothing to guard here
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)
        self._previous_fd = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
            # a Python-level handler, so that the C handler writes to the wakeup fd; it ends the
            # process the Python way (finally blocks, Lightning's teardown) when it can run
            self._previous_handlers[signal.SIGTERM] = signal.signal(signal.SIGTERM, _raise_exit)
        threading.Thread(target=self._watch, name="stop-on-signal", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._read_fd < 0:
            return
        self._stopped.set()
        signal.set_wakeup_fd(self._previous_fd)
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        with contextlib.suppress(OSError):
            os.write(self._write_fd, b"\0")  # wakes the thread, which then ends
        os.close(self._write_fd)

    def _watch(self) -> None:
        try:
            while not self._stopped.is_set():
                select.select([self._read_fd], [], [])
                data = os.read(self._read_fd, 64)
                if self._stopped.is_set():
                    return
                signums = [b for b in data if b in _STOP_SIGNALS]
                if signums:
                    self._stop_after_grace(signums[0])
                    return
        finally:
            os.close(self._read_fd)

    def _stop_after_grace(self, signum: int) -> None:
        if self._stopped.wait(self.grace_s):
            return  # the main thread finished by itself
        _kill_children()
        name = signal.Signals(signum).name
        print(f"error: stopped by {name}; the training processes were ended", file=sys.stderr)
        sys.stderr.flush()
        os._exit(128 + signum)


def _raise_exit(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _kill_children() -> None:
    """SIGKILL every process this one started (the other ranks of Lightning's launcher)."""
    import psutil

    with contextlib.suppress(psutil.Error):
        children = psutil.Process().children(recursive=True)
        for child in children:
            with contextlib.suppress(psutil.Error):
                child.kill()
        psutil.wait_procs(children, timeout=2.0)
